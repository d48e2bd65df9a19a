//! Reconnaissance flows (label `Reconnaissance`), produced in attacker
//! sessions: bursts from a few hosts, each running one technique.

use crate::benign::dns_query_bytes;
use crate::flow::{Flow, Label};
use crate::ids::Proto;
use crate::net::{self, Os};
use crate::rng::Rng;
use crate::OutputFormat;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Technique {
    /// Reverse (PTR) lookups of a whole subnet against the resolver: client
    /// DNS, but with its own size, timing and answer pattern.
    DnsPtrSweep,
    /// Forward brute-force lookups: indistinguishable from client DNS.
    DnsBrute,
    /// Version detection against open TCP ports: short, small, complete sessions.
    ServiceProbe,
    /// UDP service probes (NTP, SNMP, DNS on scanned hosts).
    UdpProbe,
    /// SYN scan answers: S0 (filtered), REJ (closed), RSTO (open).
    SynScan,
    /// ICMP echo host discovery.
    PingSweep,
    /// SYN probes that got no answer and were not retried (one packet).
    SingleSyn,
}

/// Share of recon flows per technique.
const TECHNIQUES: [(Technique, f64); 7] = [
    (Technique::DnsPtrSweep, 0.49),
    (Technique::DnsBrute, 0.05),
    (Technique::ServiceProbe, 0.28),
    (Technique::UdpProbe, 0.13),
    (Technique::SynScan, 0.03),
    (Technique::PingSweep, 0.012),
    (Technique::SingleSyn, 0.008),
];

/// Splits `n` flows over the techniques by largest remainder, so the mix is
/// the same for every seed.
fn quotas(n: usize) -> [usize; 7] {
    let mut q = [0usize; 7];
    let mut rem = [(0.0f64, 0usize); 7];
    for (i, (_, share)) in TECHNIQUES.iter().enumerate() {
        let exact = share * n as f64;
        q[i] = exact.floor() as usize;
        rem[i] = (exact - exact.floor(), i);
    }
    let mut left = n - q.iter().sum::<usize>();
    rem.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    for &(_, i) in rem.iter() {
        if left == 0 {
            break;
        }
        q[i] += 1;
        left -= 1;
    }
    q
}

/// Per-session context: who scans what, from when.
struct Session {
    attacker: [u8; 4],
    subnet: u8,
    next_host: u8,
    resolver: [u8; 4],
    /// Query size the session's tool sends (name length varies little).
    query_bytes: u64,
    ts_us: i64,
}

impl Session {
    fn next_target(&mut self, rng: &mut Rng) -> [u8; 4] {
        self.next_host = if self.next_host >= 254 {
            1
        } else {
            self.next_host + 1
        };
        if rng.chance(0.1) {
            self.next_host = rng.range(1, 254) as u8;
        }
        [143, 88, self.subnet, self.next_host]
    }

    fn advance(&mut self, rng: &mut Rng, mean_gap_secs: f64) -> i64 {
        self.ts_us += (rng.exponential(mean_gap_secs) * 1e6) as i64 + 1;
        net::clean_us(self.ts_us)
    }
}

/// An attacker's ephemeral source port (Kali: Linux range, with raw-socket
/// tools picking any port).
fn attacker_port(rng: &mut Rng) -> u16 {
    if rng.chance(0.85) {
        Os::Linux.ephemeral_port(rng)
    } else {
        rng.range(1024, 65_535) as u16
    }
}

/// Renders `n` recon flows (one line each in `format`, with `\n`) for `seed`.
pub(crate) fn recon_lines(seed: u64, n: usize, format: OutputFormat) -> Vec<Vec<u8>> {
    let mut lines = Vec::with_capacity(n);
    let mut session_index = 0u64;
    for (t, quota) in quotas(n).into_iter().enumerate() {
        let technique = TECHNIQUES[t].0;
        let mut left = quota;
        while left > 0 {
            let mut rng = Rng::for_item(seed, crate::STREAM_RECON, session_index);
            session_index += 1;
            let size = (rng.lognormal(45.0, 0.8).round() as usize)
                .clamp(3, 400)
                .min(left);
            left -= size;
            let mut s = Session {
                attacker: rng.pick(&net::ATTACKERS),
                subnet: rng.pick(&[
                    (1u8, 0.2),
                    (2, 0.25),
                    (3, 0.15),
                    (5, 0.15),
                    (8, 0.1),
                    (10, 0.1),
                    (14, 0.05),
                ]),
                next_host: rng.range(0, 200) as u8,
                resolver: if rng.chance(0.85) {
                    net::DNS_PRIMARY
                } else {
                    net::DNS_SECONDARY
                },
                query_bytes: rng.range(38, 66),
                ts_us: net::working_hours_ts_us(&mut rng),
            };
            for _ in 0..size {
                let mut f = match technique {
                    Technique::DnsPtrSweep => dns_ptr_sweep(&mut rng, &mut s),
                    Technique::DnsBrute => dns_brute(&mut rng, &mut s),
                    Technique::ServiceProbe => service_probe(&mut rng, &mut s),
                    Technique::UdpProbe => udp_probe(&mut rng, &mut s),
                    Technique::SynScan => syn_scan(&mut rng, &mut s),
                    Technique::PingSweep => ping(&mut rng, &mut s),
                    Technique::SingleSyn => single_syn(&mut rng, &mut s),
                };
                f.label = Label::Reconnaissance;
                let mut line = Vec::with_capacity(256);
                f.render_as(format, &mut rng, &mut line);
                lines.push(line);
            }
        }
    }
    lines
}

fn dns_ptr_sweep(rng: &mut Rng, s: &mut Session) -> Flow {
    let ts = s.advance(rng, 0.08);
    let mut f = Flow::new(
        Proto::Udp,
        s.attacker,
        attacker_port(rng),
        s.resolver,
        53,
        ts,
    );
    f.service = Some("dns");
    let v = rng.f64();
    if v < 0.975 {
        let n = rng.pick(&[(1, 0.35), (2, 0.55), (3, 0.10)]);
        let (mut q, mut r) = (0, 0);
        for _ in 0..n {
            let qi = s.query_bytes + rng.range(0, 3);
            q += qi;
            r += match rng.pick(&[(0u8, 0.5), (1, 0.35), (2, 0.15)]) {
                // REFUSED: the answer echoes the question.
                0 => qi,
                // NXDOMAIN with the zone's SOA.
                1 => qi + rng.range(75, 110),
                _ => qi + rng.range(28, 50),
            };
        }
        let d = rng.lognormal(0.0023, 0.15) * (1.0 + 0.25 * (n - 1) as f64);
        f.conn_state = "SF";
        f.history = Some("Dd");
        f.counts(n, q, n, r, 28, Some(d));
    } else if v < 0.99 {
        let n = rng.range(2, 3);
        f.conn_state = "S0";
        f.history = Some("D");
        // The scanner's own resolver gives up after 2.5 s per retry.
        f.counts(
            n,
            s.query_bytes * n,
            0,
            0,
            28,
            Some(2.5 * (n - 1) as f64 + rng.lognormal(0.002, 0.3)),
        );
    } else {
        f.conn_state = "S0";
        f.history = Some("D");
        f.counts(1, s.query_bytes, 0, 0, 28, None);
    }
    f
}

/// Forward lookups of guessed names, shaped like a client's answered queries.
fn dns_brute(rng: &mut Rng, s: &mut Session) -> Flow {
    let ts = s.advance(rng, 0.15);
    let mut f = Flow::new(
        Proto::Udp,
        s.attacker,
        attacker_port(rng),
        s.resolver,
        53,
        ts,
    );
    f.service = Some("dns");
    let n = rng.pick(&[(1, 0.8), (2, 0.2)]);
    let (mut q, mut r) = (0, 0);
    for _ in 0..n {
        let qi = dns_query_bytes(rng);
        q += qi;
        r += qi + rng.lognormal(52.0, 0.75).clamp(10.0, 1400.0) as u64;
    }
    let d = crate::benign::resolver_rtt(rng);
    f.conn_state = "SF";
    f.history = Some("Dd");
    f.counts(n, q, n, r, 28, Some(d));
    f
}

fn service_probe(rng: &mut Rng, s: &mut Session) -> Flow {
    let ts = s.advance(rng, 0.4);
    let dst = s.next_target(rng);
    let (port, service) = rng.pick(&[
        ((80, "http"), 0.22),
        ((443, "ssl"), 0.20),
        ((22, "ssh"), 0.14),
        ((445, "smb"), 0.08),
        ((8080, "http"), 0.06),
        ((3389, "ssl"), 0.06),
        ((21, "ftp"), 0.05),
        ((25, "smtp"), 0.05),
        ((3306, "mysql"), 0.04),
        ((5985, "http"), 0.05),
        ((8443, "ssl"), 0.05),
    ]);
    let mut f = Flow::new(Proto::Tcp, s.attacker, attacker_port(rng), dst, port, ts);
    f.service = Some(service);
    let (state, history) = rng.pick(&[
        (("SF", "ShADadFf"), 0.35),
        (("SF", "ShADadfF"), 0.20),
        (("RSTO", "ShADadR"), 0.25),
        (("RSTO", "ShADR"), 0.05),
        (("RSTR", "ShADadr"), 0.10),
        (("S1", "ShADad"), 0.05),
    ]);
    f.conn_state = state;
    f.history = Some(history);
    let op = rng.lognormal(4.5, 0.2).clamp(3.0, 7.0) as u64;
    let rp = rng.lognormal(4.0, 0.25).clamp(2.0, 7.0) as u64;
    let ob = match service {
        // nmap's GetRequest probe is 18 bytes.
        "http" if rng.chance(0.4) => 18,
        _ => rng.lognormal(120.0, 0.5).clamp(1.0, 1000.0) as u64,
    };
    let rb = rng.lognormal(700.0, 0.9).clamp(20.0, 20_000.0) as u64;
    // Silent services make nmap wait out its 5-6 s NULL probe.
    let d = if rng.chance(0.35) {
        5.0 + rng.f64() * 1.2
    } else {
        rng.lognormal(0.03, 0.8)
    };
    f.counts(op, ob, rp, rb, 52, Some(d));
    f
}

fn udp_probe(rng: &mut Rng, s: &mut Session) -> Flow {
    let ts = s.advance(rng, 0.6);
    let dst = s.next_target(rng);
    let kind = rng.pick(&[(123u16, 0.6), (161, 0.25), (53, 0.15)]);
    let mut f = Flow::new(Proto::Udp, s.attacker, attacker_port(rng), dst, kind, ts);
    let v = rng.f64();
    match kind {
        123 => {
            f.service = Some("ntp");
            if v < 0.88 {
                // Mode 6 READVAR (ntp-info): 12-byte query, long text answer.
                f.conn_state = "SF";
                f.history = Some("Dd");
                let r = rng.lognormal(420.0, 0.3) as u64;
                f.counts(
                    1,
                    12,
                    rng.range(1, 2),
                    r,
                    28,
                    Some(rng.lognormal(0.0012, 0.6)),
                );
            } else {
                f.conn_state = "S0";
                f.history = Some("D");
                f.counts(1, 48, 0, 0, 28, None);
            }
        }
        161 => {
            f.service = Some("snmp");
            let q = rng.range(40, 46);
            if v < 0.3 {
                f.conn_state = "SF";
                f.history = Some("Dd");
                f.counts(
                    1,
                    q,
                    1,
                    rng.range(90, 320),
                    28,
                    Some(rng.lognormal(0.002, 0.7)),
                );
            } else if v < 0.9 {
                f.conn_state = "S0";
                f.history = Some("D");
                f.counts(2, 2 * q, 0, 0, 28, Some(1.0 + rng.lognormal(0.002, 0.5)));
            } else {
                f.conn_state = "S0";
                f.history = Some("D");
                f.counts(1, q, 0, 0, 28, None);
            }
        }
        _ => {
            // nmap's DNS payload is a bare 12-byte status request.
            f.service = Some("dns");
            f.conn_state = "S0";
            f.history = Some("D");
            if v < 0.3 {
                f.counts(1, 12, 0, 0, 28, None);
            } else {
                f.counts(2, 24, 0, 0, 28, Some(1.0 + rng.lognormal(0.002, 0.5)));
            }
        }
    }
    f
}

/// Ports a SYN scan sweeps: the usual top ports plus random high ones.
fn scan_port(rng: &mut Rng) -> u16 {
    const TOP: [u16; 20] = [
        21, 22, 23, 25, 53, 80, 110, 111, 135, 139, 143, 443, 445, 993, 995, 1723, 3306, 3389,
        5900, 8080,
    ];
    if rng.chance(0.6) {
        rng.choose(&TOP)
    } else {
        rng.range(1, 65_535) as u16
    }
}

fn syn_scan(rng: &mut Rng, s: &mut Session) -> Flow {
    let ts = s.advance(rng, 0.01);
    let dst = s.next_target(rng);
    let mut f = Flow::new(
        Proto::Tcp,
        s.attacker,
        attacker_port(rng),
        dst,
        scan_port(rng),
        ts,
    );
    let v = rng.f64();
    if v < 0.45 {
        f.conn_state = "S0";
        f.history = Some("S");
        f.counts(2, 0, 0, 0, 44, Some(1.0 + rng.lognormal(0.002, 0.5)));
    } else if v < 0.9 {
        f.conn_state = "REJ";
        f.history = Some("Sr");
        f.counts(1, 0, 1, 0, 0, Some(rng.lognormal(0.0004, 0.8)));
        f.orig_ip_bytes = 44;
        f.resp_ip_bytes = 40;
    } else {
        f.conn_state = "RSTO";
        f.history = Some("ShR");
        f.counts(2, 0, 1, 0, 0, Some(rng.lognormal(0.0005, 0.8)));
        f.orig_ip_bytes = 84;
        f.resp_ip_bytes = 44;
    }
    f
}

fn ping(rng: &mut Rng, s: &mut Session) -> Flow {
    let ts = s.advance(rng, 0.02);
    let dst = s.next_target(rng);
    let mut f = Flow::new(Proto::Icmp, s.attacker, 8, dst, 0, ts);
    f.conn_state = "OTH";
    if rng.chance(0.5) {
        f.counts(1, 0, 1, 0, 28, Some(rng.lognormal(0.0005, 0.8)));
    } else {
        f.counts(1, 0, 0, 0, 28, None);
    }
    f
}

fn single_syn(rng: &mut Rng, s: &mut Session) -> Flow {
    let ts = s.advance(rng, 0.005);
    let dst = s.next_target(rng);
    let mut f = Flow::new(
        Proto::Tcp,
        s.attacker,
        attacker_port(rng),
        dst,
        scan_port(rng),
        ts,
    );
    f.conn_state = "S0";
    f.history = Some("S");
    f.counts(1, 0, 0, 0, 44, None);
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas_add_up_and_follow_shares() {
        assert_eq!(quotas(0), [0; 7]);
        assert_eq!(quotas(3), [2, 0, 1, 0, 0, 0, 0]);
        let q = quotas(1641);
        assert_eq!(q.iter().sum::<usize>(), 1641);
        assert_eq!(q, [804, 82, 460, 213, 49, 20, 13]);
    }

    #[test]
    fn recon_lines_are_deterministic() {
        let a = recon_lines(42, 50, OutputFormat::UwfCsv);
        assert_eq!(a.len(), 50);
        assert_eq!(a, recon_lines(42, 50, OutputFormat::UwfCsv));
        assert_ne!(a, recon_lines(43, 50, OutputFormat::UwfCsv));
        assert!(a.iter().all(|l| l.ends_with(b",Reconnaissance\n")));
        let t = recon_lines(42, 50, OutputFormat::ZeekTsv);
        assert_eq!(t.len(), 50);
        assert!(t.iter().all(|l| l.ends_with(b"\t(empty)\n")));
    }
}
