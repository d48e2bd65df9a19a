//! One conn record and its CSV rendering in the UWF-ZeekData22 column order.

use crate::cells::{write_datetime, write_ipv4, write_java_double, write_u64};
use crate::ids::{new_uid, push_community_id, Proto};
use crate::rng::Rng;

/// The header of every part file, exactly as the UWF-ZeekData22 export has it.
pub const HEADER: &str = "resp_pkts,service,orig_ip_bytes,local_resp,missed_bytes,protocol,duration,conn_state,dest_ip,orig_pkts,community_id,resp_ip_bytes,dest_port,orig_bytes,local_orig,datetime,history,resp_bytes,uid,src_port,ts,src_ip,mitre_attack_tactics";

/// Columns that may be empty (null) in generated data.
pub const NULLABLE_COLUMNS: &[&str] =
    &["service", "duration", "orig_bytes", "resp_bytes", "history"];

/// Label values written to `mitre_attack_tactics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Label {
    None,
    Reconnaissance,
    Discovery,
}

impl Label {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Label::None => "none",
            Label::Reconnaissance => "Reconnaissance",
            Label::Discovery => "Discovery",
        }
    }
}

/// Zeek measures time as a double near 1.6e9, whose spacing is 2^-22 s, so a
/// duration (a difference of two such doubles) is a multiple of 2^-22.
const TICKS_PER_SEC: f64 = 4_194_304.0;

/// Quantises a positive duration to Zeek's resolution (at least one tick).
pub(crate) fn zeek_duration(secs: f64) -> f64 {
    (secs * TICKS_PER_SEC).round().max(1.0) / TICKS_PER_SEC
}

/// A conn record. `duration == None` means Zeek left duration, orig_bytes and
/// resp_bytes unset together, which it does when the connection lasted zero
/// time (a single packet).
#[derive(Debug, Clone)]
pub(crate) struct Flow {
    pub ts_us: i64,
    pub src: [u8; 4],
    pub sport: u16,
    pub dst: [u8; 4],
    pub dport: u16,
    pub proto: Proto,
    pub service: Option<&'static str>,
    pub duration: Option<f64>,
    pub orig_bytes: u64,
    pub resp_bytes: u64,
    pub conn_state: &'static str,
    pub missed_bytes: u64,
    pub history: Option<&'static str>,
    pub orig_pkts: u64,
    pub orig_ip_bytes: u64,
    pub resp_pkts: u64,
    pub resp_ip_bytes: u64,
    pub label: Label,
}

impl Flow {
    /// A flow with the given endpoints and everything else zero/unset.
    pub(crate) fn new(
        proto: Proto,
        src: [u8; 4],
        sport: u16,
        dst: [u8; 4],
        dport: u16,
        ts_us: i64,
    ) -> Self {
        Flow {
            ts_us,
            src,
            sport,
            dst,
            dport,
            proto,
            service: None,
            duration: None,
            orig_bytes: 0,
            resp_bytes: 0,
            conn_state: "OTH",
            missed_bytes: 0,
            history: None,
            orig_pkts: 0,
            orig_ip_bytes: 0,
            resp_pkts: 0,
            resp_ip_bytes: 0,
            label: Label::None,
        }
    }

    /// Sets packet and payload counts; IP bytes add `hdr` bytes per packet.
    /// With `duration` `None` the payload counts are recorded as unset.
    pub(crate) fn counts(
        &mut self,
        orig_pkts: u64,
        orig_bytes: u64,
        resp_pkts: u64,
        resp_bytes: u64,
        hdr: u64,
        duration: Option<f64>,
    ) {
        self.orig_pkts = orig_pkts;
        self.resp_pkts = resp_pkts;
        self.orig_bytes = orig_bytes;
        self.resp_bytes = resp_bytes;
        self.orig_ip_bytes = orig_bytes + orig_pkts * hdr;
        self.resp_ip_bytes = resp_bytes + resp_pkts * hdr;
        self.duration = duration.map(zeek_duration);
    }

    /// Appends the CSV line (with `\n`); the uid is drawn from `rng`.
    pub(crate) fn render(&self, rng: &mut Rng, out: &mut Vec<u8>) {
        let ts = self.ts_us as f64 / 1e6;
        let set = self.duration.is_some();
        write_u64(out, self.resp_pkts);
        out.push(b',');
        if let Some(s) = self.service {
            if s.contains(',') {
                out.push(b'"');
                out.extend_from_slice(s.as_bytes());
                out.push(b'"');
            } else {
                out.extend_from_slice(s.as_bytes());
            }
        }
        out.push(b',');
        write_u64(out, self.orig_ip_bytes);
        out.extend_from_slice(b",false,");
        write_u64(out, self.missed_bytes);
        out.push(b',');
        out.extend_from_slice(self.proto.name().as_bytes());
        out.push(b',');
        if let Some(d) = self.duration {
            write_java_double(out, d);
        }
        out.push(b',');
        out.extend_from_slice(self.conn_state.as_bytes());
        out.push(b',');
        write_ipv4(out, self.dst);
        out.push(b',');
        write_u64(out, self.orig_pkts);
        out.push(b',');
        push_community_id(out, self.proto, self.src, self.sport, self.dst, self.dport);
        out.push(b',');
        write_u64(out, self.resp_ip_bytes);
        out.push(b',');
        write_u64(out, u64::from(self.dport));
        out.push(b',');
        if set {
            write_u64(out, self.orig_bytes);
        }
        out.extend_from_slice(b",false,");
        write_datetime(out, ts);
        out.push(b',');
        if let Some(h) = self.history {
            out.extend_from_slice(h.as_bytes());
        }
        out.push(b',');
        if set {
            write_u64(out, self.resp_bytes);
        }
        out.push(b',');
        new_uid(rng, out);
        out.push(b',');
        write_u64(out, u64::from(self.sport));
        out.push(b',');
        write_java_double(out, ts);
        out.push(b',');
        write_ipv4(out, self.src);
        out.push(b',');
        out.extend_from_slice(self.label.name().as_bytes());
        out.push(b'\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_real_excerpt_row_shape() {
        let mut f = Flow::new(
            Proto::Udp,
            [143, 88, 5, 12],
            36073,
            [143, 88, 5, 1],
            53,
            1_644_465_509_979_958,
        );
        f.service = Some("dns");
        f.conn_state = "SF";
        f.history = Some("Dd");
        f.counts(2, 130, 2, 130, 28, Some(0.002279996871948242));
        f.label = Label::Reconnaissance;
        let mut out = Vec::new();
        f.render(&mut Rng::new(1), &mut out);
        let line = String::from_utf8(out).expect("ascii");
        let cells: Vec<&str> = line.trim_end().split(',').collect();
        let real = "2,dns,186,false,0,udp,0.002279996871948242,SF,143.88.5.1,2,1:Z2qpnUv+rxq4N1rn7Go962U/gi8=,186,53,130,false,2022-02-10T03:58:29.979Z,Dd,130,CwO2bA321vyBxBjtxb,36073,1.644465509979958E9,143.88.5.12,Reconnaissance";
        let real: Vec<&str> = real.split(',').collect();
        assert_eq!(cells.len(), 23);
        for (i, (a, b)) in cells.iter().zip(&real).enumerate() {
            if i != 18 {
                assert_eq!(a, b, "column {i}");
            }
        }
    }

    #[test]
    fn unset_and_multi_service_cells() {
        let mut f = Flow::new(
            Proto::Tcp,
            [143, 88, 9, 20],
            50000,
            [143, 88, 2, 10],
            445,
            1_644_400_000_000_001,
        );
        f.service = Some("smb,gssapi,ntlm");
        f.conn_state = "S0";
        f.counts(1, 0, 0, 0, 52, None);
        let mut out = Vec::new();
        f.render(&mut Rng::new(1), &mut out);
        let line = String::from_utf8(out).expect("ascii");
        assert!(
            line.starts_with("0,\"smb,gssapi,ntlm\",52,false,0,tcp,,S0,143.88.2.10,1,1:"),
            "{line}"
        );
        assert!(
            line.contains(",445,,false,2022-02-09T09:46:40.000Z,,,C"),
            "{line}"
        );
    }

    #[test]
    fn durations_are_multiples_of_zeek_ticks() {
        assert_eq!(zeek_duration(0.0), 2.384185791015625E-7);
        assert_eq!(zeek_duration(0.002279996871948242), 0.002279996871948242);
        assert_eq!(zeek_duration(1.0), 1.0);
    }
}
