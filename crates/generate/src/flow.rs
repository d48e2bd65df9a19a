//! One conn record and its renderings: a CSV line in the UWF-ZeekData22
//! column order, or a native Zeek conn.log TSV line.

use crate::cells::{
    write_datetime, write_fixed6, write_ipv4, write_java_double, write_ts_micros, write_u64,
    write_zeek_header_time,
};
use crate::ids::{new_uid, push_community_id, Proto};
use crate::net;
use crate::rng::Rng;
use crate::OutputFormat;

/// Zeek's `#unset_field` marker.
const UNSET: &str = "-";

/// The header of every part file, exactly as the UWF-ZeekData22 export has it.
pub const HEADER: &str = "resp_pkts,service,orig_ip_bytes,local_resp,missed_bytes,protocol,duration,conn_state,dest_ip,orig_pkts,community_id,resp_ip_bytes,dest_port,orig_bytes,local_orig,datetime,history,resp_bytes,uid,src_port,ts,src_ip,mitre_attack_tactics";

/// The `#fields` line of a Zeek TSV conn log: Zeek's 21 default conn fields.
pub const ZEEK_FIELDS: &str = "#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tservice\tduration\torig_bytes\tresp_bytes\tconn_state\tlocal_orig\tlocal_resp\tmissed_bytes\thistory\torig_pkts\torig_ip_bytes\tresp_pkts\tresp_ip_bytes\ttunnel_parents";

/// The `#types` line matching [`ZEEK_FIELDS`].
pub const ZEEK_TYPES: &str = "#types\ttime\tstring\taddr\tport\taddr\tport\tenum\tstring\tinterval\tcount\tcount\tstring\tbool\tbool\tcount\tstring\tcount\tcount\tcount\tcount\tset[string]";

/// Appends the header block Zeek opens a conn log with. `#open` is the start
/// of the simulated capture window (not the wall clock), so a seed still
/// gives byte-identical files.
pub(crate) fn write_zeek_header(out: &mut Vec<u8>) {
    out.extend_from_slice(
        b"#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tconn\n#open\t",
    );
    write_zeek_header_time(out, net::WINDOW_START_SECS);
    out.push(b'\n');
    out.extend_from_slice(ZEEK_FIELDS.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(ZEEK_TYPES.as_bytes());
    out.push(b'\n');
}

/// Appends the `#close` line, at the end of the capture window.
pub(crate) fn write_zeek_close(out: &mut Vec<u8>) {
    out.extend_from_slice(b"#close\t");
    write_zeek_header_time(out, net::WINDOW_START_SECS + net::WINDOW_SECS);
    out.push(b'\n');
}

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

    /// Appends the line in `format`; both renderings draw the same uid from
    /// `rng`, so a seed gives the same connections in either format.
    pub(crate) fn render_as(&self, format: OutputFormat, rng: &mut Rng, out: &mut Vec<u8>) {
        match format {
            OutputFormat::UwfCsv => self.render(rng, out),
            OutputFormat::ZeekTsv => self.render_zeek_tsv(rng, out),
        }
    }

    /// Appends the Zeek TSV line (with `\n`) in [`ZEEK_FIELDS`] order: `-`
    /// for unset, `F` for the booleans (UWF's sensor had no local networks
    /// configured), `(empty)` tunnel_parents. Times are printed with six
    /// decimals like Zeek does, so durations lose the sub-microsecond part
    /// the CSV's shortest doubles keep. The label is not a conn.log field.
    pub(crate) fn render_zeek_tsv(&self, rng: &mut Rng, out: &mut Vec<u8>) {
        let set = self.duration.is_some();
        write_ts_micros(out, self.ts_us);
        out.push(b'\t');
        new_uid(rng, out);
        out.push(b'\t');
        write_ipv4(out, self.src);
        out.push(b'\t');
        write_u64(out, u64::from(self.sport));
        out.push(b'\t');
        write_ipv4(out, self.dst);
        out.push(b'\t');
        write_u64(out, u64::from(self.dport));
        out.push(b'\t');
        out.extend_from_slice(self.proto.name().as_bytes());
        out.push(b'\t');
        out.extend_from_slice(self.service.unwrap_or(UNSET).as_bytes());
        out.push(b'\t');
        match self.duration {
            Some(d) => write_fixed6(out, d),
            None => out.extend_from_slice(UNSET.as_bytes()),
        }
        for bytes in [self.orig_bytes, self.resp_bytes] {
            out.push(b'\t');
            if set {
                write_u64(out, bytes);
            } else {
                out.extend_from_slice(UNSET.as_bytes());
            }
        }
        out.push(b'\t');
        out.extend_from_slice(self.conn_state.as_bytes());
        out.extend_from_slice(b"\tF\tF\t");
        write_u64(out, self.missed_bytes);
        out.push(b'\t');
        out.extend_from_slice(self.history.unwrap_or(UNSET).as_bytes());
        for count in [
            self.orig_pkts,
            self.orig_ip_bytes,
            self.resp_pkts,
            self.resp_ip_bytes,
        ] {
            out.push(b'\t');
            write_u64(out, count);
        }
        out.extend_from_slice(b"\t(empty)\n");
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
    fn zeek_header_and_close_lines() {
        let mut out = Vec::new();
        write_zeek_header(&mut out);
        write_zeek_close(&mut out);
        let text = String::from_utf8(out).expect("ascii");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            &lines[..6],
            [
                "#separator \\x09",
                "#set_separator\t,",
                "#empty_field\t(empty)",
                "#unset_field\t-",
                "#path\tconn",
                "#open\t2022-02-07-00-00-00",
            ]
        );
        assert_eq!(lines[6], ZEEK_FIELDS);
        assert_eq!(lines[7], ZEEK_TYPES);
        assert_eq!(lines[8], "#close\t2022-02-21-00-00-00");
        assert_eq!(lines.len(), 9);
    }

    #[test]
    fn durations_are_multiples_of_zeek_ticks() {
        assert_eq!(zeek_duration(0.0), 2.384185791015625E-7);
        assert_eq!(zeek_duration(0.002279996871948242), 0.002279996871948242);
        assert_eq!(zeek_duration(1.0), 1.0);
    }

    #[test]
    fn renders_zeek_tsv_like_a_sensor() {
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
        let (mut csv, mut tsv) = (Vec::new(), Vec::new());
        f.render_as(OutputFormat::UwfCsv, &mut Rng::new(1), &mut csv);
        f.render_as(OutputFormat::ZeekTsv, &mut Rng::new(1), &mut tsv);
        let tsv = String::from_utf8(tsv).expect("ascii");
        let cells: Vec<&str> = tsv.trim_end().split('\t').collect();
        assert_eq!(cells.len(), ZEEK_FIELDS.split('\t').count() - 1);
        assert_eq!(cells.len(), ZEEK_TYPES.split('\t').count() - 1);
        let uid = String::from_utf8(csv)
            .expect("ascii")
            .split(',')
            .nth(18)
            .map(str::to_owned);
        assert_eq!(Some(cells[1].to_string()), uid, "same uid as the CSV row");
        let expected = "1644465509.979958\tUID\t143.88.5.12\t36073\t143.88.5.1\t53\tudp\tdns\t0.002280\t130\t130\tSF\tF\tF\t0\tDd\t2\t186\t2\t186\t(empty)";
        assert_eq!(tsv.trim_end(), expected.replace("UID", cells[1]));
        assert!(tsv.ends_with('\n'));
    }

    #[test]
    fn zeek_tsv_marks_unset_cells() {
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
        f.render_zeek_tsv(&mut Rng::new(1), &mut out);
        let line = String::from_utf8(out).expect("ascii");
        let cells: Vec<&str> = line.trim_end().split('\t').collect();
        assert_eq!(cells[0], "1644400000.000001");
        assert_eq!(
            &cells[7..16],
            ["smb,gssapi,ntlm", "-", "-", "-", "S0", "F", "F", "0", "-"]
        );
        assert_eq!(&cells[16..], ["1", "52", "0", "0", "(empty)"]);
    }
}
