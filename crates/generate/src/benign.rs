//! Ordinary traffic (label `none`) and the rare `Discovery` rows.
//!
//! Each row is drawn on its own from a per-row generator, so rows can be made
//! in any order and on any thread. What the traffic looks like (which kinds
//! of connection, their shares, ports, sizes and outcomes) comes from the
//! profile's [`BenignMix`]; the code here only says how a connection of each
//! kind is put together.

use crate::flow::{Flow, Label};
use crate::ids::Proto;
use crate::net::{self, Os};
use crate::profile::Params;
use crate::rng::Rng;

/// One kind of benign connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
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
    /// Remote desktop sessions to jump hosts and servers: long, heavy.
    Rdp,
    /// An inventory or vulnerability scanner sweeping clients on purpose:
    /// benign, but shaped like a port scan (S0, REJ, RSTO).
    AssetScan,
}

/// A log-normal distribution: `(median, log-space sigma)`.
pub(crate) type LogNormal = (f64, f64);

/// Weighted TCP outcomes: `((conn_state, history), weight)`.
pub(crate) type TcpOutcomes = &'static [((&'static str, &'static str), f64)];

/// Sizes and lengths of an established client TCP session.
#[derive(Debug)]
pub(crate) struct SessionShape {
    pub outcomes: TcpOutcomes,
    pub orig_pkts: LogNormal,
    /// Responder packets per originator packet.
    pub resp_per_orig: LogNormal,
    pub orig_bytes: LogNormal,
    pub resp_bytes: LogNormal,
    pub external_duration: LogNormal,
    pub internal_duration: LogNormal,
}

/// An other-TCP service: `(port, service Zeek names, internal)`.
pub(crate) type OtherService = (u16, Option<&'static str>, bool);

/// What a network's benign traffic is made of.
#[derive(Debug)]
pub(crate) struct BenignMix {
    /// Share of each kind among benign rows.
    pub kinds: &'static [(Kind, f64)],
    /// Query size in bytes (header + name + type/class, sometimes EDNS);
    /// Active Directory names are longer than a student's web lookups.
    pub dns_query: LogNormal,
    /// Share of client lookups the resolver answers from its cache, and the
    /// round-trip times of cached and recursed answers.
    pub dns_cached_share: f64,
    pub dns_cached_rtt: LogNormal,
    pub dns_recursed_rtt: LogNormal,
    /// Cumulative shares of client DNS outcomes: answered, unanswered single
    /// query, unanswered retries, answer only; the rest are long-lived sockets.
    pub dns_outcomes: [f64; 4],
    pub session: SessionShape,
    pub ssl_internal_ports: &'static [(u16, f64)],
    /// Share of plain HTTP that leaves the network.
    pub http_external_share: f64,
    /// Share of NTP that goes to the network's own time source.
    pub ntp_internal_share: f64,
    /// Cumulative shares of SMB, Kerberos and RPC in Windows traffic; the
    /// rest is LDAP.
    pub windows_split: [f64; 3],
    pub smb_to_dc_share: f64,
    pub kerberos_udp_share: f64,
    /// Share of LDAP that is CLDAP (UDP), the DC locator's pings.
    pub cldap_share: f64,
    /// Ports of failed connection attempts to well-known services, and the
    /// share of attempts that go to one of them (the rest to a random port).
    pub failed_ports: &'static [(u16, f64)],
    pub failed_known_port_share: f64,
    /// Cumulative shares of single-SYN and retried-SYN failures; the rest are REJ.
    pub failed_outcomes: [f64; 2],
    /// Other TCP services and their shares.
    pub other_tcp: &'static [(OtherService, f64)],
}

/// One benign conn record.
pub(crate) fn benign_flow(rng: &mut Rng, p: &Params) -> Flow {
    let ts = p.clock.benign_ts_us(rng);
    let b = &p.benign;
    match rng.pick(b.kinds) {
        Kind::DnsInternal => dns_internal(rng, p, ts),
        Kind::DnsUpstream => dns_upstream(rng, p, ts),
        Kind::SslExternal => tcp_session(rng, p, ts, true, 443, Some("ssl")),
        Kind::SslInternal => {
            let port = rng.pick(b.ssl_internal_ports);
            tcp_session(rng, p, ts, false, port, Some("ssl"))
        }
        Kind::Http => {
            let external = rng.chance(b.http_external_share);
            let port = if external {
                80
            } else {
                rng.pick(&[(80, 0.7), (8080, 0.3)])
            };
            tcp_session(rng, p, ts, external, port, Some("http"))
        }
        Kind::Ntp => ntp(rng, p, ts),
        Kind::Windows => windows_services(rng, p, ts),
        Kind::Dhcp => dhcp(rng, p, ts),
        Kind::Multicast => multicast(rng, p, ts),
        Kind::Icmp => icmp(rng, p, ts),
        Kind::FailedTcp => failed_tcp(rng, p, ts),
        Kind::OtherTcp => other_tcp(rng, p, ts),
        Kind::Syslog => syslog(rng, p, ts),
        Kind::Rdp => rdp(rng, p, ts),
        Kind::AssetScan => asset_scan(rng, p, ts),
    }
}

/// A DNS query size in bytes.
pub(crate) fn dns_query_bytes(rng: &mut Rng, p: &Params) -> u64 {
    let (median, sigma) = p.benign.dns_query;
    rng.lognormal(median, sigma).clamp(17.0, 300.0) as u64
}

/// Round-trip time to the internal resolver: mostly cached answers, some recursion.
pub(crate) fn resolver_rtt(rng: &mut Rng, p: &Params) -> f64 {
    let b = &p.benign;
    let (median, sigma) = if rng.chance(b.dns_cached_share) {
        b.dns_cached_rtt
    } else {
        b.dns_recursed_rtt
    };
    rng.lognormal(median, sigma)
}

fn dns_internal(rng: &mut Rng, p: &Params, ts: i64) -> Flow {
    let src = p.net.client(rng);
    let os = p.net.os_of(src);
    let dst = p.net.resolver(rng, p.net.primary_resolver_share);
    let mut f = Flow::new(Proto::Udp, src, os.ephemeral_port(rng), dst, 53, ts);
    f.service = Some("dns");
    let [answered, unanswered, retried, answer_only] = p.benign.dns_outcomes;
    let v = rng.f64();
    if v < answered {
        // Answered queries, one or several on the same socket.
        let n = rng.pick(&[(1, 0.78), (2, 0.17), (3, 0.03), (4, 0.02)]);
        let (mut q, mut r) = (0, 0);
        for _ in 0..n {
            let qi = dns_query_bytes(rng, p);
            q += qi;
            r += if rng.chance(0.04) {
                qi // REFUSED / bare NXDOMAIN
            } else {
                qi + rng.lognormal(52.0, 0.75).clamp(10.0, 1400.0) as u64
            };
        }
        let d = resolver_rtt(rng, p) * (1.0 + 0.3 * (n - 1) as f64);
        f.conn_state = "SF";
        f.history = Some("Dd");
        f.counts(n, q, n, r, 28, Some(d));
    } else if v < unanswered {
        // A single query that was never answered: Zeek leaves duration unset.
        f.conn_state = "S0";
        f.history = Some("D");
        f.counts(1, dns_query_bytes(rng, p), 0, 0, 28, None);
    } else if v < retried {
        // Retransmitted queries without answer; the Windows resolver retries
        // after 1 s, then 2 s more, then 4 s more.
        let n = rng.pick(&[(2, 0.6), (3, 0.3), (4, 0.1)]);
        let q = dns_query_bytes(rng, p) * n;
        let wait = match n {
            2 => 1.0,
            3 => 3.0,
            _ => 7.0,
        };
        f.conn_state = "S0";
        f.history = Some("D");
        f.counts(n, q, 0, 0, 28, Some(wait + rng.lognormal(0.004, 0.8)));
    } else if v < answer_only {
        // Only the answer was seen (the query took another path).
        f.conn_state = "SHR";
        f.history = Some("d");
        let r = dns_query_bytes(rng, p) + rng.lognormal(50.0, 0.7) as u64;
        f.counts(0, 0, 1, r, 28, None);
    } else {
        // Long-lived sockets with many exchanges.
        let n = rng.range(3, 12);
        let q: u64 = (0..n).map(|_| dns_query_bytes(rng, p)).sum();
        let r = q + (0..n).map(|_| rng.lognormal(50.0, 0.7) as u64).sum::<u64>();
        f.conn_state = "SF";
        f.history = Some("Dd");
        f.counts(n, q, n, r, 28, Some(rng.lognormal(0.4, 1.5)));
    }
    f
}

fn dns_upstream(rng: &mut Rng, p: &Params, ts: i64) -> Flow {
    let src = p.net.resolver(rng, 0.8);
    let dst = rng.choose(p.net.public_resolvers);
    // The resolver randomises its source port over the whole range.
    let mut f = Flow::new(Proto::Udp, src, rng.range(1024, 65_535) as u16, dst, 53, ts);
    f.service = Some("dns");
    let q = dns_query_bytes(rng, p) + 11;
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
    p: &Params,
    ts: i64,
    external: bool,
    port: u16,
    service: Option<&'static str>,
) -> Flow {
    let src = p.net.client(rng);
    let os = p.net.os_of(src);
    let dst = if external {
        p.net.external(rng)
    } else {
        p.net.server(rng)
    };
    let mut f = Flow::new(Proto::Tcp, src, os.ephemeral_port(rng), dst, port, ts);
    f.service = service;
    let shape = &p.benign.session;
    let (state, history) = rng.pick(shape.outcomes);
    f.conn_state = state;
    f.history = Some(history);
    let ln = |rng: &mut Rng, (median, sigma): LogNormal| rng.lognormal(median, sigma);
    let op = ln(rng, shape.orig_pkts).clamp(5.0, 50_000.0) as u64;
    let rp = ((op as f64) * ln(rng, shape.resp_per_orig)).clamp(3.0, 80_000.0) as u64;
    let ob = ln(rng, shape.orig_bytes).clamp(150.0, 5.0e7) as u64;
    let rb = ln(rng, shape.resp_bytes).clamp(100.0, 5.0e8) as u64;
    let d = if external {
        ln(rng, shape.external_duration)
    } else {
        ln(rng, shape.internal_duration)
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

fn ntp(rng: &mut Rng, p: &Params, ts: i64) -> Flow {
    let src = p.net.client(rng);
    let os = p.net.os_of(src);
    let internal = rng.chance(p.benign.ntp_internal_share);
    let dst = if internal {
        p.net.ntp_server
    } else {
        rng.choose(p.net.public_ntp)
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
fn windows_services(rng: &mut Rng, p: &Params, ts: i64) -> Flow {
    let b = &p.benign;
    let src = p.net.client(rng);
    let os = p.net.os_of(src);
    let dc = rng.choose(p.net.domain_controllers);
    let [smb, kerberos, rpc] = b.windows_split;
    let v = rng.f64();
    if v < smb {
        let dst = if rng.chance(b.smb_to_dc_share) {
            dc
        } else {
            p.net.server(rng)
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
    } else if v < kerberos {
        // Kerberos: mostly TCP for tickets with PACs, some UDP.
        let udp = rng.chance(b.kerberos_udp_share);
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
    } else if v < rpc {
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
        let udp = rng.chance(b.cldap_share);
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

fn dhcp(rng: &mut Rng, p: &Params, ts: i64) -> Flow {
    let client = p.net.client(rng);
    if rng.chance(0.6) {
        // Renewal, unicast to the server.
        let mut f = Flow::new(Proto::Udp, client, 68, p.net.dhcp_server, 67, ts);
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
fn multicast(rng: &mut Rng, p: &Params, ts: i64) -> Flow {
    let src = p.net.client(rng);
    let (dst, port, service) = rng.pick(&[
        (([224, 0, 0, 251], 5353, Some("dns")), 0.55),
        (([224, 0, 0, 252], 5355, Some("dns")), 0.40),
        // NetBIOS name queries go to the client's /24 broadcast address.
        (([src[0], src[1], src[2], 255], 137, None), 0.03),
        (([239, 255, 255, 250], 1900, None), 0.02),
    ]);
    let sport = if port == 137 || port == 5353 {
        port
    } else {
        p.net.os_of(src).ephemeral_port(rng)
    };
    let mut f = Flow::new(Proto::Udp, src, sport, dst, port, ts);
    f.service = service;
    f.conn_state = "S0";
    f.history = Some("D");
    let n = rng.pick(&[(1, 0.7), (2, 0.22), (3, 0.08)]);
    let each = if port == 1900 {
        rng.range(120, 180)
    } else {
        dns_query_bytes(rng, p)
    };
    let d = if n == 1 {
        None
    } else {
        Some(rng.lognormal(0.5, 1.0))
    };
    f.counts(n, each * n, 0, 0, 28, d);
    f
}

fn icmp(rng: &mut Rng, p: &Params, ts: i64) -> Flow {
    let src = p.net.client(rng);
    let os = p.net.os_of(src);
    let dst = if rng.chance(0.5) {
        p.net.server(rng)
    } else {
        p.net.external(rng)
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
fn failed_tcp(rng: &mut Rng, p: &Params, ts: i64) -> Flow {
    let b = &p.benign;
    let src = p.net.client(rng);
    let os = p.net.os_of(src);
    let dst = if rng.chance(0.5) {
        p.net.internal_any(rng)
    } else {
        p.net.external(rng)
    };
    let port = if rng.chance(b.failed_known_port_share) {
        rng.pick(b.failed_ports)
    } else {
        rng.range(1024, 65_535) as u16
    };
    let mut f = Flow::new(Proto::Tcp, src, os.ephemeral_port(rng), dst, port, ts);
    // SYN with MSS, SACK and window scale, plus timestamps on Linux and macOS.
    let syn = if matches!(os, Os::Linux | Os::Mac) {
        60
    } else {
        52
    };
    let [single, retried] = b.failed_outcomes;
    let v = rng.f64();
    if v < single {
        f.conn_state = "S0";
        f.history = Some("S");
        f.orig_pkts = 1;
        f.orig_ip_bytes = syn;
    } else if v < retried {
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
fn other_tcp(rng: &mut Rng, p: &Params, ts: i64) -> Flow {
    let (port, service, internal) = rng.pick(p.benign.other_tcp);
    let mut f = tcp_session(rng, p, ts, !internal, port, service);
    if service == Some("ssh") && rng.chance(0.3) {
        // Interactive sessions last long and trickle small packets.
        let d = rng.lognormal(400.0, 1.2).min(28_800.0);
        f.duration = Some(crate::flow::zeek_duration(d));
    }
    f
}

/// Servers shipping logs to the collector: one-way UDP streams.
fn syslog(rng: &mut Rng, p: &Params, ts: i64) -> Flow {
    let src = p.net.server(rng);
    let mut f = Flow::new(
        Proto::Udp,
        src,
        p.net.os_of(src).ephemeral_port(rng),
        p.net.log_collector,
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

/// An RDP session from a client to a server: TLS-wrapped (Zeek still names
/// it `rdp`), minutes to hours long, screen updates dominating the bytes.
fn rdp(rng: &mut Rng, p: &Params, ts: i64) -> Flow {
    let src = p.net.client(rng);
    let os = p.net.os_of(src);
    let dst = p.net.server(rng);
    let mut f = Flow::new(Proto::Tcp, src, os.ephemeral_port(rng), dst, 3389, ts);
    f.service = Some("rdp");
    let (state, history) = rng.pick(&[
        (("SF", "ShADadFf"), 0.55),
        (("SF", "ShADadfF"), 0.15),
        (("RSTO", "ShADadR"), 0.15),
        (("S1", "ShADad"), 0.15),
    ]);
    f.conn_state = state;
    f.history = Some(history);
    let d = rng.lognormal(900.0, 1.4).clamp(2.0, 36_000.0);
    // Input events and acks every ~0.2 s; graphics updates come back larger.
    let op = (d * rng.lognormal(6.0, 0.6)).clamp(20.0, 2.0e6) as u64;
    let rp = (op as f64 * rng.lognormal(1.6, 0.3)) as u64;
    let ob = op * rng.range(60, 140);
    let rb = rp * rng.range(300, 1100);
    f.counts(op, ob, rp, rb, os.tcp_header(), Some(d));
    f
}

/// One probe of an authorised scanner: a SYN to a management port of a
/// client, mostly dropped by the host firewall, sometimes refused, and reset
/// by the scanner once it learns the port is open.
fn asset_scan(rng: &mut Rng, p: &Params, ts: i64) -> Flow {
    let src = rng.choose(p.net.asset_scanners);
    let dst = p.net.client(rng);
    let port = rng.pick(&[
        (135u16, 0.25),
        (445, 0.25),
        (139, 0.1),
        (3389, 0.15),
        (5985, 0.15),
        (22, 0.05),
        (80, 0.05),
    ]);
    let sport = p.net.os_of(src).ephemeral_port(rng);
    let mut f = Flow::new(Proto::Tcp, src, sport, dst, port, ts);
    let v = rng.f64();
    if v < 0.5 {
        f.conn_state = "S0";
        f.history = Some("S");
        f.counts(1, 0, 0, 0, 0, None);
        f.orig_ip_bytes = 44;
    } else if v < 0.75 {
        f.conn_state = "REJ";
        f.history = Some("Sr");
        f.counts(1, 0, 1, 0, 0, Some(rng.lognormal(0.0006, 0.7)));
        f.orig_ip_bytes = 44;
        f.resp_ip_bytes = 40;
    } else {
        f.conn_state = "RSTO";
        f.history = Some("ShAR");
        f.counts(3, 0, 1, 0, 0, Some(rng.lognormal(0.0015, 0.7)));
        f.orig_ip_bytes = 124;
        f.resp_ip_bytes = 44;
    }
    f
}

/// A `Discovery` row: an attacker host enumerating the domain (SMB shares,
/// RPC, LDAP, Kerberos) after the recon phase.
pub(crate) fn discovery_flow(rng: &mut Rng, p: &Params) -> Flow {
    let ts = p.clock.working_hours_ts_us(rng);
    let src = rng.pick(p.net.attackers);
    let os = p.recon.attacker_os;
    let dst = if rng.chance(0.6) {
        rng.choose(p.net.domain_controllers)
    } else {
        p.net.server(rng)
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
