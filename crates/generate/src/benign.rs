//! Ordinary campus traffic (label `none`) and the rare `Discovery` rows.
//!
//! Each row is drawn on its own from a per-row generator, so rows can be made
//! in any order and on any thread.

use crate::flow::{Flow, Label};
use crate::ids::Proto;
use crate::net::{self, Os};
use crate::rng::Rng;

#[derive(Debug, Clone, Copy)]
enum Kind {
    DnsInternal,
    DnsUpstream,
    SslExternal,
    SslInternal,
    Http,
    Ntp,
    Windows,
    Dhcp,
    Multicast,
    Icmp,
    FailedTcp,
    OtherTcp,
    Syslog,
}

/// Share of each kind among benign rows.
const KINDS: [(Kind, f64); 13] = [
    (Kind::DnsInternal, 0.430),
    (Kind::DnsUpstream, 0.050),
    (Kind::SslExternal, 0.170),
    (Kind::SslInternal, 0.030),
    (Kind::Http, 0.050),
    (Kind::Ntp, 0.040),
    (Kind::Windows, 0.060),
    (Kind::Dhcp, 0.010),
    (Kind::Multicast, 0.030),
    (Kind::Icmp, 0.0075),
    (Kind::FailedTcp, 0.0060),
    (Kind::OtherTcp, 0.100),
    (Kind::Syslog, 0.0165),
];

/// One benign conn record.
pub(crate) fn benign_flow(rng: &mut Rng) -> Flow {
    let ts = net::benign_ts_us(rng);
    match rng.pick(&KINDS) {
        Kind::DnsInternal => dns_internal(rng, ts),
        Kind::DnsUpstream => dns_upstream(rng, ts),
        Kind::SslExternal => tcp_session(rng, ts, true, 443, Some("ssl")),
        Kind::SslInternal => {
            let port = rng.pick(&[(443, 0.8), (8443, 0.1), (636, 0.1)]);
            tcp_session(rng, ts, false, port, Some("ssl"))
        }
        Kind::Http => {
            let external = rng.chance(0.8);
            let port = if external {
                80
            } else {
                rng.pick(&[(80, 0.7), (8080, 0.3)])
            };
            tcp_session(rng, ts, external, port, Some("http"))
        }
        Kind::Ntp => ntp(rng, ts),
        Kind::Windows => windows_services(rng, ts),
        Kind::Dhcp => dhcp(rng, ts),
        Kind::Multicast => multicast(rng, ts),
        Kind::Icmp => icmp(rng, ts),
        Kind::FailedTcp => failed_tcp(rng, ts),
        Kind::OtherTcp => other_tcp(rng, ts),
        Kind::Syslog => syslog(rng, ts),
    }
}

/// A DNS query size in bytes (header + name + type/class, sometimes EDNS).
pub(crate) fn dns_query_bytes(rng: &mut Rng) -> u64 {
    rng.lognormal(36.0, 0.28).clamp(17.0, 300.0) as u64
}

/// Round-trip time to the campus resolver: mostly cached answers, some recursion.
pub(crate) fn resolver_rtt(rng: &mut Rng) -> f64 {
    if rng.chance(0.68) {
        rng.lognormal(0.0004, 0.45)
    } else {
        rng.lognormal(0.04, 0.7)
    }
}

fn dns_internal(rng: &mut Rng, ts: i64) -> Flow {
    let src = net::client(rng);
    let os = Os::of(src);
    let dst = if rng.chance(0.8) {
        net::DNS_PRIMARY
    } else {
        net::DNS_SECONDARY
    };
    let mut f = Flow::new(Proto::Udp, src, os.ephemeral_port(rng), dst, 53, ts);
    f.service = Some("dns");
    let v = rng.f64();
    if v < 0.825 {
        // Answered queries, one or several on the same socket.
        let n = rng.pick(&[(1, 0.78), (2, 0.17), (3, 0.03), (4, 0.02)]);
        let (mut q, mut r) = (0, 0);
        for _ in 0..n {
            let qi = dns_query_bytes(rng);
            q += qi;
            r += if rng.chance(0.04) {
                qi // REFUSED / bare NXDOMAIN
            } else {
                qi + rng.lognormal(52.0, 0.75).clamp(10.0, 1400.0) as u64
            };
        }
        let d = resolver_rtt(rng) * (1.0 + 0.3 * (n - 1) as f64);
        f.conn_state = "SF";
        f.history = Some("Dd");
        f.counts(n, q, n, r, 28, Some(d));
    } else if v < 0.90 {
        // A single query that was never answered: Zeek leaves duration unset.
        f.conn_state = "S0";
        f.history = Some("D");
        f.counts(1, dns_query_bytes(rng), 0, 0, 28, None);
    } else if v < 0.93 {
        // Retransmitted queries without answer; the Windows resolver retries
        // after 1 s, then 2 s more, then 4 s more.
        let n = rng.pick(&[(2, 0.6), (3, 0.3), (4, 0.1)]);
        let q = dns_query_bytes(rng) * n;
        let wait = match n {
            2 => 1.0,
            3 => 3.0,
            _ => 7.0,
        };
        f.conn_state = "S0";
        f.history = Some("D");
        f.counts(n, q, 0, 0, 28, Some(wait + rng.lognormal(0.004, 0.8)));
    } else if v < 0.942 {
        // Only the answer was seen (the query took another path).
        f.conn_state = "SHR";
        f.history = Some("d");
        let r = dns_query_bytes(rng) + rng.lognormal(50.0, 0.7) as u64;
        f.counts(0, 0, 1, r, 28, None);
    } else {
        // Long-lived sockets with many exchanges.
        let n = rng.range(3, 12);
        let q: u64 = (0..n).map(|_| dns_query_bytes(rng)).sum();
        let r = q + (0..n).map(|_| rng.lognormal(50.0, 0.7) as u64).sum::<u64>();
        f.conn_state = "SF";
        f.history = Some("Dd");
        f.counts(n, q, n, r, 28, Some(rng.lognormal(0.4, 1.5)));
    }
    f
}

fn dns_upstream(rng: &mut Rng, ts: i64) -> Flow {
    let src = if rng.chance(0.8) {
        net::DNS_PRIMARY
    } else {
        net::DNS_SECONDARY
    };
    let dst = rng.choose(&net::PUBLIC_RESOLVERS);
    // The resolver randomises its source port over the whole range.
    let mut f = Flow::new(Proto::Udp, src, rng.range(1024, 65_535) as u16, dst, 53, ts);
    f.service = Some("dns");
    let q = dns_query_bytes(rng) + 11;
    if rng.chance(0.9) {
        let r = q + rng.lognormal(90.0, 0.9).clamp(10.0, 1400.0) as u64;
        f.conn_state = "SF";
        f.history = Some("Dd");
        f.counts(1, q, 1, r, 28, Some(rng.lognormal(0.03, 0.7)));
    } else {
        f.conn_state = "S0";
        f.history = Some("D");
        f.counts(1, q, 0, 0, 28, None);
    }
    f
}

/// An established TCP session (TLS, HTTP, ...), from a client to a server.
fn tcp_session(
    rng: &mut Rng,
    ts: i64,
    external: bool,
    port: u16,
    service: Option<&'static str>,
) -> Flow {
    let src = net::client(rng);
    let os = Os::of(src);
    let dst = if external {
        net::external(rng)
    } else {
        net::server(rng)
    };
    let mut f = Flow::new(Proto::Tcp, src, os.ephemeral_port(rng), dst, port, ts);
    f.service = service;
    let (state, history) = rng.pick(&[
        (("SF", "ShADadFf"), 0.42),
        (("SF", "ShADadfF"), 0.22),
        (("SF", "ShADdaFf"), 0.06),
        (("S1", "ShADad"), 0.08),
        (("RSTO", "ShADadR"), 0.08),
        (("RSTR", "ShADadr"), 0.07),
        (("RSTR", "ShADadFr"), 0.03),
        (("SH", "ShADaF"), 0.02),
        (("OTH", "DdA"), 0.02),
    ]);
    f.conn_state = state;
    f.history = Some(history);
    let op = rng.lognormal(14.0, 0.8).clamp(5.0, 50_000.0) as u64;
    let rp = ((op as f64) * rng.lognormal(1.3, 0.4)).clamp(3.0, 80_000.0) as u64;
    let ob = rng.lognormal(1000.0, 1.0).clamp(150.0, 5.0e7) as u64;
    let rb = rng.lognormal(6000.0, 1.5).clamp(100.0, 5.0e8) as u64;
    let d = if external {
        rng.lognormal(1.5, 2.0)
    } else {
        rng.lognormal(0.5, 2.0)
    };
    f.counts(
        op,
        ob,
        rp,
        rb,
        os.tcp_header(),
        Some(d.clamp(0.0008, 7200.0)),
    );
    if rng.chance(0.01) {
        f.missed_bytes = rng.range(1, rb.max(2));
    }
    f
}

fn ntp(rng: &mut Rng, ts: i64) -> Flow {
    let src = net::client(rng);
    let os = Os::of(src);
    let internal = rng.chance(0.75);
    let dst = if internal {
        net::DNS_PRIMARY
    } else {
        rng.choose(&net::PUBLIC_NTP)
    };
    // w32time and ntpd send from port 123; chrony uses an ephemeral port.
    let sport = match os {
        Os::Linux if rng.chance(0.6) => os.ephemeral_port(rng),
        _ => 123,
    };
    let mut f = Flow::new(Proto::Udp, src, sport, dst, 123, ts);
    f.service = Some("ntp");
    if rng.chance(0.9) {
        let rtt = if internal {
            rng.lognormal(0.0009, 0.6)
        } else {
            rng.lognormal(0.03, 0.5)
        };
        f.conn_state = "SF";
        f.history = Some("Dd");
        f.counts(1, 48, 1, 48, 28, Some(rtt));
    } else {
        f.conn_state = "S0";
        f.history = Some("D");
        f.counts(1, 48, 0, 0, 28, None);
    }
    f
}

/// SMB, Kerberos, LDAP and RPC between clients and the domain servers.
fn windows_services(rng: &mut Rng, ts: i64) -> Flow {
    let src = net::client(rng);
    let os = Os::of(src);
    let dc = rng.choose(&net::DOMAIN_CONTROLLERS);
    let v = rng.f64();
    if v < 0.45 {
        let dst = if rng.chance(0.4) {
            dc
        } else {
            net::server(rng)
        };
        let mut f = Flow::new(Proto::Tcp, src, os.ephemeral_port(rng), dst, 445, ts);
        f.service = Some(rng.pick(&[
            ("smb,gssapi,ntlm", 0.25),
            ("gssapi,smb,krb", 0.35),
            ("smb", 0.25),
            ("gssapi,smb,ntlm", 0.10),
            ("dce_rpc,smb", 0.05),
        ]));
        let (state, history) = rng.pick(&[
            (("SF", "ShADadFf"), 0.6),
            (("S1", "ShADad"), 0.2),
            (("RSTO", "ShADadR"), 0.1),
            (("RSTR", "ShADadfr"), 0.1),
        ]);
        f.conn_state = state;
        f.history = Some(history);
        let op = rng.lognormal(25.0, 1.2).clamp(6.0, 100_000.0) as u64;
        let rp = (op as f64 * rng.lognormal(0.9, 0.2)).max(4.0) as u64;
        let ob = rng.lognormal(4000.0, 1.5).clamp(300.0, 1.0e8) as u64;
        let rb = rng.lognormal(9000.0, 1.8).clamp(300.0, 1.0e9) as u64;
        f.counts(
            op,
            ob,
            rp,
            rb,
            os.tcp_header(),
            Some(rng.lognormal(2.0, 2.2).clamp(0.002, 28_800.0)),
        );
        f
    } else if v < 0.75 {
        // Kerberos: mostly TCP for tickets with PACs, some UDP.
        let udp = rng.chance(0.3);
        let proto = if udp { Proto::Udp } else { Proto::Tcp };
        let mut f = Flow::new(proto, src, os.ephemeral_port(rng), dc, 88, ts);
        let ob = rng.lognormal(1500.0, 0.3) as u64;
        let rb = rng.lognormal(1550.0, 0.3) as u64;
        let d = rng.lognormal(0.004, 0.8);
        if udp {
            f.service = Some("krb");
            f.conn_state = "SF";
            f.history = Some("Dd");
            f.counts(1, ob, 1, rb, 28, Some(d));
        } else {
            f.service = Some("krb_tcp");
            f.conn_state = "SF";
            f.history = Some(rng.pick(&[("ShADadFf", 0.7), ("ShADadfF", 0.3)]));
            f.counts(
                rng.range(4, 6),
                ob,
                rng.range(3, 5),
                rb,
                os.tcp_header(),
                Some(d),
            );
        }
        f
    } else if v < 0.94 {
        // DCE/RPC endpoint mapper and friends.
        let mut f = Flow::new(Proto::Tcp, src, os.ephemeral_port(rng), dc, 135, ts);
        f.service = Some("dce_rpc");
        f.conn_state = "SF";
        f.history = Some("ShADadFf");
        let op = rng.range(4, 9);
        f.counts(
            op,
            rng.range(72, 400),
            op - 1,
            rng.range(60, 300),
            os.tcp_header(),
            Some(rng.lognormal(0.01, 0.9)),
        );
        f
    } else {
        // LDAP: Zeek of early 2022 has no LDAP analyzer, so service stays unset.
        let udp = rng.chance(0.35);
        let proto = if udp { Proto::Udp } else { Proto::Tcp };
        let mut f = Flow::new(proto, src, os.ephemeral_port(rng), dc, 389, ts);
        if udp {
            f.conn_state = "SF";
            f.history = Some("Dd");
            f.counts(
                1,
                rng.range(150, 260),
                1,
                rng.range(150, 320),
                28,
                Some(rng.lognormal(0.001, 0.6)),
            );
        } else {
            f.conn_state = rng.pick(&[("SF", 0.8), ("RSTO", 0.2)]);
            f.history = Some(if f.conn_state == "SF" {
                "ShADadFf"
            } else {
                "ShADadR"
            });
            let op = rng.lognormal(8.0, 0.8).max(4.0) as u64;
            f.counts(
                op,
                rng.lognormal(1200.0, 1.0) as u64,
                op,
                rng.lognormal(3000.0, 1.2) as u64,
                os.tcp_header(),
                Some(rng.lognormal(0.1, 1.8)),
            );
        }
        f
    }
}

fn dhcp(rng: &mut Rng, ts: i64) -> Flow {
    let client = net::client(rng);
    if rng.chance(0.6) {
        // Renewal, unicast to the server.
        let mut f = Flow::new(Proto::Udp, client, 68, net::DNS_PRIMARY, 67, ts);
        f.service = Some("dhcp");
        f.conn_state = "SF";
        f.history = Some("Dd");
        f.counts(
            1,
            rng.range(300, 340),
            1,
            rng.range(300, 350),
            28,
            Some(rng.lognormal(0.002, 0.8)),
        );
        f
    } else {
        // Discover/request broadcast from an unconfigured client.
        let mut f = Flow::new(Proto::Udp, net::ZERO, 68, net::BROADCAST, 67, ts);
        f.service = Some("dhcp");
        f.conn_state = "S0";
        f.history = Some("D");
        let n = rng.pick(&[(1, 0.5), (2, 0.35), (4, 0.15)]);
        let d = if n == 1 {
            None
        } else {
            Some(rng.lognormal(3.0, 0.5))
        };
        f.counts(n, 300 * n, 0, 0, 28, d);
        f
    }
}

/// Link-local discovery: mDNS and LLMNR (parsed as DNS), NetBIOS and SSDP.
fn multicast(rng: &mut Rng, ts: i64) -> Flow {
    let src = net::client(rng);
    let (dst, port, service) = rng.pick(&[
        (([224, 0, 0, 251], 5353, Some("dns")), 0.55),
        (([224, 0, 0, 252], 5355, Some("dns")), 0.40),
        (([143, 88, src[2], 255], 137, None), 0.03),
        (([239, 255, 255, 250], 1900, None), 0.02),
    ]);
    let sport = if port == 137 || port == 5353 {
        port
    } else {
        Os::of(src).ephemeral_port(rng)
    };
    let mut f = Flow::new(Proto::Udp, src, sport, dst, port, ts);
    f.service = service;
    f.conn_state = "S0";
    f.history = Some("D");
    let n = rng.pick(&[(1, 0.7), (2, 0.22), (3, 0.08)]);
    let each = if port == 1900 {
        rng.range(120, 180)
    } else {
        dns_query_bytes(rng)
    };
    let d = if n == 1 {
        None
    } else {
        Some(rng.lognormal(0.5, 1.0))
    };
    f.counts(n, each * n, 0, 0, 28, d);
    f
}

fn icmp(rng: &mut Rng, ts: i64) -> Flow {
    let src = net::client(rng);
    let os = Os::of(src);
    let dst = if rng.chance(0.5) {
        net::server(rng)
    } else {
        net::external(rng)
    };
    // Zeek logs ICMP type and code in the port columns; echo request is 8/0.
    let mut f = Flow::new(Proto::Icmp, src, 8, dst, 0, ts);
    f.conn_state = "OTH";
    let payload = if os == Os::Windows { 32 } else { 56 };
    let v = rng.f64();
    if v < 0.8 {
        let n = if os == Os::Windows {
            4
        } else {
            rng.range(1, 10)
        };
        let d = (n as f64 - 1.0) + rng.lognormal(0.002, 1.0);
        f.counts(n, payload * n, n, payload * n, 28, Some(d));
    } else if v < 0.9 {
        f.counts(1, payload, 0, 0, 28, None);
    } else {
        let n = rng.range(2, 4);
        f.counts(
            n,
            payload * n,
            0,
            0,
            28,
            Some(n as f64 - 1.0 + rng.f64() * 0.01),
        );
    }
    f
}

/// Connection attempts that fail: stale services, blocked ports, P2P.
fn failed_tcp(rng: &mut Rng, ts: i64) -> Flow {
    let src = net::client(rng);
    let os = Os::of(src);
    let dst = if rng.chance(0.5) {
        net::internal_any(rng)
    } else {
        net::external(rng)
    };
    let port = if rng.chance(0.5) {
        rng.pick(&[
            (443, 0.3),
            (80, 0.2),
            (445, 0.2),
            (8080, 0.1),
            (3389, 0.1),
            (22, 0.1),
        ])
    } else {
        rng.range(1024, 65_535) as u16
    };
    let mut f = Flow::new(Proto::Tcp, src, os.ephemeral_port(rng), dst, port, ts);
    let syn = if os == Os::Linux { 60 } else { 52 };
    let v = rng.f64();
    if v < 0.35 {
        f.conn_state = "S0";
        f.history = Some("S");
        f.orig_pkts = 1;
        f.orig_ip_bytes = syn;
    } else if v < 0.7 {
        let n = rng.range(2, 3);
        f.conn_state = "S0";
        f.history = Some("S");
        f.counts(
            n,
            0,
            0,
            0,
            0,
            Some(if n == 2 { 1.0 } else { 3.0 } + rng.lognormal(0.01, 0.5)),
        );
        f.orig_ip_bytes = n * syn;
    } else {
        f.conn_state = "REJ";
        f.history = Some("Sr");
        f.counts(1, 0, 1, 0, 0, Some(rng.lognormal(0.0008, 1.0)));
        f.orig_ip_bytes = syn;
        f.resp_ip_bytes = 40;
    }
    f
}

/// SSH, RDP, mail, databases and web on odd ports.
fn other_tcp(rng: &mut Rng, ts: i64) -> Flow {
    let (port, service, internal) = rng.pick(&[
        ((22, "ssh", true), 0.22),
        ((3389, "rdp", true), 0.12),
        ((3389, "ssl", true), 0.10),
        ((25, "smtp", true), 0.06),
        ((587, "smtp", false), 0.04),
        ((3306, "mysql", true), 0.08),
        ((8080, "http", true), 0.10),
        ((8443, "ssl", false), 0.08),
        ((993, "ssl", false), 0.08),
        ((21, "ftp", true), 0.02),
        ((5985, "http", true), 0.10),
    ]);
    let mut f = tcp_session(rng, ts, !internal, port, Some(service));
    if service == "ssh" && rng.chance(0.3) {
        // Interactive sessions last long and trickle small packets.
        let d = rng.lognormal(400.0, 1.2).min(28_800.0);
        f.duration = Some(crate::flow::zeek_duration(d));
    }
    f
}

/// Servers shipping logs to the collector: one-way UDP streams.
fn syslog(rng: &mut Rng, ts: i64) -> Flow {
    let src = net::server(rng);
    let mut f = Flow::new(
        Proto::Udp,
        src,
        Os::of(src).ephemeral_port(rng),
        [143, 88, 4, 20],
        514,
        ts,
    );
    f.service = Some("syslog");
    f.conn_state = "S0";
    f.history = Some("D");
    let n = rng.lognormal(20.0, 1.5).clamp(2.0, 50_000.0) as u64;
    let each = rng.lognormal(180.0, 0.4) as u64;
    f.counts(n, each * n, 0, 0, 28, Some(rng.lognormal(60.0, 1.0)));
    f
}

/// A `Discovery` row: an attacker host enumerating the domain (SMB shares,
/// RPC, LDAP, Kerberos) after the recon phase.
pub(crate) fn discovery_flow(rng: &mut Rng) -> Flow {
    let ts = net::working_hours_ts_us(rng);
    let src = rng.pick(&net::ATTACKERS);
    let os = Os::Linux;
    let dst = if rng.chance(0.6) {
        rng.choose(&net::DOMAIN_CONTROLLERS)
    } else {
        net::server(rng)
    };
    let (port, service) = rng.pick(&[
        ((445, Some("smb,gssapi,ntlm")), 0.45),
        ((445, Some("gssapi,smb,ntlm")), 0.15),
        ((135, Some("dce_rpc")), 0.15),
        ((389, None), 0.15),
        ((88, Some("krb_tcp")), 0.10),
    ]);
    let mut f = Flow::new(Proto::Tcp, src, os.ephemeral_port(rng), dst, port, ts);
    f.service = service;
    f.conn_state = rng.pick(&[("SF", 0.75), ("RSTO", 0.15), ("S1", 0.1)]);
    f.history = Some(match f.conn_state {
        "SF" => "ShADadFf",
        "RSTO" => "ShADadR",
        _ => "ShADad",
    });
    let op = rng.lognormal(14.0, 0.6).max(4.0) as u64;
    let rp = (op as f64 * 0.9).max(3.0) as u64;
    f.counts(
        op,
        rng.lognormal(1800.0, 0.7) as u64,
        rp,
        rng.lognormal(3500.0, 0.9) as u64,
        os.tcp_header(),
        Some(rng.lognormal(0.4, 1.2)),
    );
    f.label = Label::Discovery;
    f
}
