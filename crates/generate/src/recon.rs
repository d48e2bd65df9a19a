//! Reconnaissance flows (label `Reconnaissance`), produced in attacker
//! sessions: bursts from a few hosts, each running one technique. Which
//! techniques, how fast and against which ports is the profile's
//! [`ReconMix`].

use crate::benign::{dns_query_bytes, LogNormal};
use crate::flow::{Flow, Label};
use crate::ids::Proto;
use crate::net::{self, Os};
use crate::profile::Params;
use crate::rng::Rng;
use crate::OutputFormat;

/// One recon technique; a session runs one of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Technique {
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
    /// masscan-style stateless sweep: one option-less SYN per address and
    /// port, never retried, in random order, from one source port per run.
    Masscan,
    /// SMB host enumeration (NetExec/CrackMapExec style): negotiate, an
    /// anonymous NTLM session setup, disconnect.
    SmbSweep,
}

/// What one network's attackers do.
#[derive(Debug)]
pub(crate) struct ReconMix {
    /// Share of recon flows per technique.
    pub techniques: &'static [(Technique, f64)],
    /// Flows per session (before clamping to 3..=400).
    pub session_flows: LogNormal,
    /// Subnets a session targets, `[a, b, c]` of `a.b.c.0/24`.
    pub target_subnets: &'static [([u8; 3], f64)],
    /// Share of sessions that use the primary resolver.
    pub primary_resolver_share: f64,
    /// Range of the per-session DNS query size of PTR sweeps.
    pub ptr_query_bytes: (u64, u64),
    /// OS of the attacking hosts: their stack's ephemeral range, and the
    /// ports of Discovery rows.
    pub attacker_os: Os,
    /// Share of flows from the OS's ephemeral range; the rest come from raw
    /// sockets, any port above 1023.
    pub stack_port_share: f64,
    /// Mean gap between flows of a session, in seconds, per technique.
    pub gaps: Gaps,
    /// Queries per socket of a PTR sweep.
    pub ptr_queries: &'static [(u64, f64)],
    /// Answers to PTR queries: REFUSED, NXDOMAIN, a PTR record.
    pub ptr_answers: [f64; 3],
    /// Bytes a PTR record adds to the echoed question.
    pub ptr_record_bytes: (u64, u64),
    /// Bytes a brute-forced name's answer adds to the question.
    pub brute_answer: LogNormal,
    /// `(port, service)` of version-detection probes.
    pub service_ports: &'static [((u16, Option<&'static str>), f64)],
    /// UDP ports probed.
    pub udp_ports: &'static [(u16, f64)],
    /// Ports of SYN scans and the share of probes that go to them (the rest
    /// to a random port).
    pub syn_ports: &'static [u16],
    pub syn_top_share: f64,
    /// Cumulative shares of SYN scan outcomes S0 (retried) and REJ; the rest
    /// are RSTO (open).
    pub syn_outcomes: [f64; 2],
    /// Share of echo requests answered.
    pub ping_reply_share: f64,
    /// Ports of the stateless sweep, each as likely as the others.
    pub masscan_ports: &'static [u16],
    /// Third octets a stateless sweep covers (inclusive).
    pub masscan_subnets: (u64, u64),
}

/// Mean gap between a session's flows per technique, in seconds: the
/// tools' timing templates and rates.
#[derive(Debug)]
pub(crate) struct Gaps {
    pub ptr: f64,
    pub brute: f64,
    pub service: f64,
    pub udp: f64,
    pub syn: f64,
    pub ping: f64,
    pub single_syn: f64,
    pub masscan: f64,
    pub smb: f64,
}

/// Splits `n` flows over the techniques by largest remainder, so the mix is
/// the same for every seed.
fn quotas(techniques: &[(Technique, f64)], n: usize) -> Vec<usize> {
    let mut q = vec![0usize; techniques.len()];
    let mut rem = vec![(0.0f64, 0usize); techniques.len()];
    for (i, (_, share)) in techniques.iter().enumerate() {
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
    subnet: [u8; 3],
    next_host: u8,
    resolver: [u8; 4],
    /// Query size the session's tool sends (name length varies little).
    query_bytes: u64,
    ts_us: i64,
    /// The one source port of a stateless sweep, drawn at its first probe
    /// (so other techniques' sessions keep their draws).
    fixed_port: Option<u16>,
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
        [
            self.subnet[0],
            self.subnet[1],
            self.subnet[2],
            self.next_host,
        ]
    }

    fn advance(&mut self, rng: &mut Rng, mean_gap_secs: f64) -> i64 {
        self.ts_us += (rng.exponential(mean_gap_secs) * 1e6) as i64 + 1;
        net::clean_us(self.ts_us)
    }
}

/// An attacker's source port: its stack's ephemeral range, with raw-socket
/// tools picking any port.
fn attacker_port(rng: &mut Rng, r: &ReconMix) -> u16 {
    if rng.chance(r.stack_port_share) {
        r.attacker_os.ephemeral_port(rng)
    } else {
        rng.range(1024, 65_535) as u16
    }
}

/// Renders `n` recon flows (one line each in `format`, with `\n`) for `seed`.
pub(crate) fn recon_lines(seed: u64, n: usize, format: OutputFormat, p: &Params) -> Vec<Vec<u8>> {
    let r = &p.recon;
    let mut lines = Vec::with_capacity(n);
    let mut session_index = 0u64;
    for (t, quota) in quotas(r.techniques, n).into_iter().enumerate() {
        let technique = r.techniques[t].0;
        let mut left = quota;
        while left > 0 {
            let mut rng = Rng::for_item(seed, crate::STREAM_RECON, session_index);
            session_index += 1;
            let (median, sigma) = r.session_flows;
            let size = (rng.lognormal(median, sigma).round() as usize)
                .clamp(3, 400)
                .min(left);
            left -= size;
            let mut s = Session {
                attacker: rng.pick(p.net.attackers),
                subnet: rng.pick(r.target_subnets),
                next_host: rng.range(0, 200) as u8,
                resolver: p.net.resolver(&mut rng, r.primary_resolver_share),
                query_bytes: rng.range(r.ptr_query_bytes.0, r.ptr_query_bytes.1),
                ts_us: p.clock.working_hours_ts_us(&mut rng),
                fixed_port: None,
            };
            for _ in 0..size {
                let mut f = match technique {
                    Technique::DnsPtrSweep => dns_ptr_sweep(&mut rng, &mut s, r),
                    Technique::DnsBrute => dns_brute(&mut rng, &mut s, p),
                    Technique::ServiceProbe => service_probe(&mut rng, &mut s, r),
                    Technique::UdpProbe => udp_probe(&mut rng, &mut s, r),
                    Technique::SynScan => syn_scan(&mut rng, &mut s, r),
                    Technique::PingSweep => ping(&mut rng, &mut s, r),
                    Technique::SingleSyn => single_syn(&mut rng, &mut s, r),
                    Technique::Masscan => masscan(&mut rng, &mut s, r),
                    Technique::SmbSweep => smb_sweep(&mut rng, &mut s, r),
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

fn dns_ptr_sweep(rng: &mut Rng, s: &mut Session, rm: &ReconMix) -> Flow {
    let ts = s.advance(rng, rm.gaps.ptr);
    let mut f = Flow::new(
        Proto::Udp,
        s.attacker,
        attacker_port(rng, rm),
        s.resolver,
        53,
        ts,
    );
    f.service = Some("dns");
    let [refused, nxdomain, record] = rm.ptr_answers;
    let answers = [(0u8, refused), (1, nxdomain), (2, record)];
    let v = rng.f64();
    if v < 0.975 {
        let n = rng.pick(rm.ptr_queries);
        let (mut q, mut r) = (0, 0);
        for _ in 0..n {
            let qi = s.query_bytes + rng.range(0, 3);
            q += qi;
            r += match rng.pick(&answers) {
                // REFUSED: the answer echoes the question.
                0 => qi,
                // NXDOMAIN with the zone's SOA.
                1 => qi + rng.range(75, 110),
                _ => qi + rng.range(rm.ptr_record_bytes.0, rm.ptr_record_bytes.1),
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
fn dns_brute(rng: &mut Rng, s: &mut Session, p: &Params) -> Flow {
    let rm = &p.recon;
    let ts = s.advance(rng, rm.gaps.brute);
    let mut f = Flow::new(
        Proto::Udp,
        s.attacker,
        attacker_port(rng, rm),
        s.resolver,
        53,
        ts,
    );
    f.service = Some("dns");
    let n = rng.pick(&[(1, 0.8), (2, 0.2)]);
    let (mut q, mut r) = (0, 0);
    let (median, sigma) = rm.brute_answer;
    for _ in 0..n {
        let qi = dns_query_bytes(rng, p);
        q += qi;
        r += qi + rng.lognormal(median, sigma).clamp(10.0, 1400.0) as u64;
    }
    let d = crate::benign::resolver_rtt(rng, p);
    f.conn_state = "SF";
    f.history = Some("Dd");
    f.counts(n, q, n, r, 28, Some(d));
    f
}

fn service_probe(rng: &mut Rng, s: &mut Session, rm: &ReconMix) -> Flow {
    let ts = s.advance(rng, rm.gaps.service);
    let dst = s.next_target(rng);
    let (port, service) = rng.pick(rm.service_ports);
    let mut f = Flow::new(
        Proto::Tcp,
        s.attacker,
        attacker_port(rng, rm),
        dst,
        port,
        ts,
    );
    f.service = service;
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
        Some("http") if rng.chance(0.4) => 18,
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

fn udp_probe(rng: &mut Rng, s: &mut Session, rm: &ReconMix) -> Flow {
    let ts = s.advance(rng, rm.gaps.udp);
    let dst = s.next_target(rng);
    let kind = rng.pick(rm.udp_ports);
    let mut f = Flow::new(
        Proto::Udp,
        s.attacker,
        attacker_port(rng, rm),
        dst,
        kind,
        ts,
    );
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
        137 => {
            // NetBIOS node status (nbstat): a 50-byte query; Windows hosts
            // with file sharing answer with their name table. Zeek has no
            // analyzer for it, so service stays unset.
            if v < 0.4 {
                f.conn_state = "SF";
                f.history = Some("Dd");
                f.counts(
                    1,
                    50,
                    1,
                    rng.range(200, 270),
                    28,
                    Some(rng.lognormal(0.0008, 0.6)),
                );
            } else {
                f.conn_state = "S0";
                f.history = Some("D");
                f.counts(1, 50, 0, 0, 28, None);
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
fn scan_port(rng: &mut Rng, rm: &ReconMix) -> u16 {
    if rng.chance(rm.syn_top_share) {
        rng.choose(rm.syn_ports)
    } else {
        rng.range(1, 65_535) as u16
    }
}

fn syn_scan(rng: &mut Rng, s: &mut Session, rm: &ReconMix) -> Flow {
    let ts = s.advance(rng, rm.gaps.syn);
    let dst = s.next_target(rng);
    let mut f = Flow::new(
        Proto::Tcp,
        s.attacker,
        attacker_port(rng, rm),
        dst,
        scan_port(rng, rm),
        ts,
    );
    let [filtered, closed] = rm.syn_outcomes;
    let v = rng.f64();
    if v < filtered {
        f.conn_state = "S0";
        f.history = Some("S");
        f.counts(2, 0, 0, 0, 44, Some(1.0 + rng.lognormal(0.002, 0.5)));
    } else if v < closed {
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

fn ping(rng: &mut Rng, s: &mut Session, rm: &ReconMix) -> Flow {
    let ts = s.advance(rng, rm.gaps.ping);
    let dst = s.next_target(rng);
    let mut f = Flow::new(Proto::Icmp, s.attacker, 8, dst, 0, ts);
    f.conn_state = "OTH";
    if rng.chance(rm.ping_reply_share) {
        f.counts(1, 0, 1, 0, 28, Some(rng.lognormal(0.0005, 0.8)));
    } else {
        f.counts(1, 0, 0, 0, 28, None);
    }
    f
}

fn single_syn(rng: &mut Rng, s: &mut Session, rm: &ReconMix) -> Flow {
    let ts = s.advance(rng, rm.gaps.single_syn);
    let dst = s.next_target(rng);
    let mut f = Flow::new(
        Proto::Tcp,
        s.attacker,
        attacker_port(rng, rm),
        dst,
        scan_port(rng, rm),
        ts,
    );
    f.conn_state = "S0";
    f.history = Some("S");
    f.counts(1, 0, 0, 0, 44, None);
    f
}

/// A stateless SYN: the sweep never retransmits, its SYN has no TCP options
/// (40 IP bytes, not nmap's 44), an open port's SYN-ACK is answered by the
/// scanning host's own stack with a RST, and targets come in random order.
fn masscan(rng: &mut Rng, s: &mut Session, rm: &ReconMix) -> Flow {
    let ts = s.advance(rng, rm.gaps.masscan);
    let dst = [
        s.subnet[0],
        s.subnet[1],
        rng.range(rm.masscan_subnets.0, rm.masscan_subnets.1) as u8,
        rng.range(1, 254) as u8,
    ];
    let sport = match s.fixed_port {
        Some(port) => port,
        None => *s.fixed_port.insert(rng.range(40_000, 60_000) as u16),
    };
    let port = rng.choose(rm.masscan_ports);
    let mut f = Flow::new(Proto::Tcp, s.attacker, sport, dst, port, ts);
    let v = rng.f64();
    if v < 0.82 {
        f.conn_state = "S0";
        f.history = Some("S");
        f.counts(1, 0, 0, 0, 40, None);
    } else if v < 0.95 {
        f.conn_state = "REJ";
        f.history = Some("Sr");
        f.counts(1, 0, 1, 0, 40, Some(rng.lognormal(0.0005, 0.8)));
    } else {
        f.conn_state = "RSTO";
        f.history = Some("ShR");
        f.counts(2, 0, 1, 0, 40, Some(rng.lognormal(0.0006, 0.8)));
        f.resp_ip_bytes = 44;
    }
    f
}

/// One host of an SMB enumeration: small, quick and nearly the same bytes
/// every time, where a user's SMB session is large and varied.
fn smb_sweep(rng: &mut Rng, s: &mut Session, rm: &ReconMix) -> Flow {
    let ts = s.advance(rng, rm.gaps.smb);
    let dst = s.next_target(rng);
    let mut f = Flow::new(Proto::Tcp, s.attacker, attacker_port(rng, rm), dst, 445, ts);
    let v = rng.f64();
    if v < 0.3 {
        // Host firewall drops it; the tool retries once after a second.
        f.conn_state = "S0";
        f.history = Some("S");
        f.counts(2, 0, 0, 0, 60, Some(1.0 + rng.lognormal(0.002, 0.4)));
        return f;
    }
    f.service = Some(rng.pick(&[("gssapi,smb,ntlm", 0.7), ("smb,gssapi,ntlm", 0.3)]));
    let (state, history) = rng.pick(&[
        (("SF", "ShADadFf"), 0.55),
        (("RSTO", "ShADadR"), 0.35),
        (("RSTR", "ShADadr"), 0.10),
    ]);
    f.conn_state = state;
    f.history = Some(history);
    let op = rng.range(6, 9);
    let rp = rng.range(5, 8);
    let ob = rng.lognormal(560.0, 0.12) as u64;
    let rb = rng.lognormal(820.0, 0.18) as u64;
    f.counts(op, ob, rp, rb, 52, Some(rng.lognormal(0.018, 0.6)));
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::profile::Profile;

    #[test]
    fn quotas_add_up_and_follow_shares() {
        let campus = Profile::Campus.params().recon.techniques;
        assert_eq!(quotas(campus, 0), [0; 7]);
        assert_eq!(quotas(campus, 3), [2, 0, 1, 0, 0, 0, 0]);
        let q = quotas(campus, 1641);
        assert_eq!(q.iter().sum::<usize>(), 1641);
        assert_eq!(q, [804, 82, 460, 213, 49, 20, 13]);
        let enterprise = Profile::Enterprise.params().recon.techniques;
        let q = quotas(enterprise, 1000);
        assert_eq!(q.iter().sum::<usize>(), 1000);
        assert_eq!(q.len(), enterprise.len());
    }

    #[test]
    fn recon_lines_are_deterministic() {
        for profile in [Profile::Campus, Profile::Enterprise] {
            let p = profile.params();
            let a = recon_lines(42, 50, OutputFormat::UwfCsv, p);
            assert_eq!(a.len(), 50);
            assert_eq!(a, recon_lines(42, 50, OutputFormat::UwfCsv, p));
            assert_ne!(a, recon_lines(43, 50, OutputFormat::UwfCsv, p));
            assert!(a.iter().all(|l| l.ends_with(b",Reconnaissance\n")));
            let t = recon_lines(42, 50, OutputFormat::ZeekTsv, p);
            assert_eq!(t.len(), 50);
            assert!(t.iter().all(|l| l.ends_with(b"\t(empty)\n")));
        }
    }

    #[test]
    fn a_stateless_sweep_keeps_one_source_port() {
        let p = Profile::Enterprise.params();
        let mut s = Session {
            attacker: [10, 20, 7, 99],
            subnet: [10, 20, 0],
            next_host: 0,
            resolver: p.net.resolvers[0],
            query_bytes: 42,
            ts_us: 1_644_400_000_000_001,
            fixed_port: None,
        };
        let mut rng = Rng::new(4);
        let flows: Vec<Flow> = (0..200)
            .map(|_| masscan(&mut rng, &mut s, &p.recon))
            .collect();
        assert!(flows.iter().all(|f| f.sport == flows[0].sport));
        assert!(flows
            .iter()
            .all(|f| f.orig_ip_bytes == 40 || f.orig_ip_bytes == 80));
        let s0 = flows.iter().filter(|f| f.conn_state == "S0").count();
        assert!((140..185).contains(&s0), "{s0}");
        assert!(flows
            .iter()
            .all(|f| p.recon.masscan_ports.contains(&f.dport)));
    }
}
