//! Traffic profiles: which network the rows come from.
//!
//! A profile is data, not code: one [`Params`] value per network holding its
//! address plan, clock, benign mix and attacker behaviour, read by `net`,
//! `benign` and `recon`. Both live here side by side so the differences can
//! be read in one place. The campus values are exactly the constants the
//! generator had before profiles existed, and every draw is made in the same
//! order, so campus output keeps its bytes for every seed.

use std::fmt;
use std::str::FromStr;

use crate::benign::{BenignMix, Kind, SessionShape};
use crate::error::Error;
use crate::net::{ClientRange, Clock, Network, Os, ServerRange};
use crate::recon::{Gaps, ReconMix, Technique};

/// Which simulated network to generate, so a model can be trained on one
/// kind of traffic and tested on another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Profile {
    /// A university campus like UWF-ZeekData22's: 143.88.0.0/16, heavy
    /// client DNS, web and NTP, mixed Windows/Linux hosts, recon from a few
    /// Kali hosts (nmap at normal speed, PTR sweeps). About 21% of rows are
    /// recon copies.
    #[default]
    Campus,
    /// A Windows enterprise: clients in 10.20.0.0/16 and servers in
    /// 10.10.0.0/16, Active Directory (SMB, Kerberos, LDAP, RPC), RDP and
    /// HTTPS to SaaS, Windows/macOS ephemeral ports, an authorised asset
    /// scanner among the benign rows, and recon by other tools at other
    /// speeds (nmap -T2, masscan-style sweeps, SMB enumeration, AD DNS
    /// sweeps). About 15% of rows are recon copies.
    Enterprise,
}

impl Profile {
    /// Every profile, in a fixed order.
    pub const ALL: [Profile; 2] = [Profile::Campus, Profile::Enterprise];

    /// The lower-case name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Profile::Campus => "campus",
            Profile::Enterprise => "enterprise",
        }
    }

    /// The network this profile simulates.
    pub(crate) fn params(self) -> &'static Params {
        match self {
            Profile::Campus => &CAMPUS,
            Profile::Enterprise => &ENTERPRISE,
        }
    }

    /// The seed every random stream is keyed by. Campus uses the seed itself
    /// (its historic bytes); other profiles mix their name in, so the same
    /// seed never gives two profiles the same uids or part file names, and
    /// their datasets can be combined without colliding.
    pub(crate) fn stream_seed(self, seed: u64) -> u64 {
        match self {
            Profile::Campus => seed,
            Profile::Enterprise => crate::rng::mix(&[seed, u64::from_be_bytes(*b"ENTRPRSE")]),
        }
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Profile {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        Profile::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| Error::UnknownProfile {
                name: s.to_string(),
            })
    }
}

/// Everything that differs between profiles.
#[derive(Debug)]
pub(crate) struct Params {
    pub net: Network,
    pub clock: Clock,
    pub benign: BenignMix,
    pub recon: ReconMix,
    /// Share of rows that are Reconnaissance copies.
    pub recon_share: f64,
    /// Share of rows labelled Discovery.
    pub discovery_share: f64,
}

/// OS split shared by every campus host: 60% Windows, 30% Linux, 10% other.
const CAMPUS_OS: &[(Os, u64)] = &[(Os::Windows, 60), (Os::Linux, 90), (Os::Other, 100)];

static CAMPUS: Params = Params {
    net: Network {
        clients: ClientRange {
            prefix: [143, 88],
            first_subnet: 8,
            subnets: 8.0,
            first_host: 10,
            hosts: 241.0,
        },
        servers: ServerRange {
            prefix: [143, 88],
            subnets: (1, 3),
            hosts: (10, 40),
        },
        internal: &[[143, 88]],
        resolvers: [[143, 88, 5, 1], [143, 88, 5, 2]],
        primary_resolver_share: 0.8,
        domain_controllers: &[[143, 88, 2, 10], [143, 88, 2, 11]],
        // The primary resolver also serves DHCP and NTP.
        dhcp_server: [143, 88, 5, 1],
        ntp_server: [143, 88, 5, 1],
        log_collector: [143, 88, 4, 20],
        attackers: &[
            ([143, 88, 5, 12], 0.55),
            ([143, 88, 5, 13], 0.25),
            ([143, 88, 6, 21], 0.12),
            ([143, 88, 12, 77], 0.08),
        ],
        asset_scanners: &[],
        external_prefixes: &[
            ([142, 250], 0.16),
            ([172, 217], 0.08),
            ([13, 107], 0.10),
            ([20, 190], 0.06),
            ([52, 96], 0.06),
            ([104, 16], 0.09),
            ([151, 101], 0.06),
            ([23, 45], 0.06),
            ([17, 253], 0.05),
            ([31, 13], 0.04),
            ([54, 230], 0.07),
            ([35, 186], 0.05),
            ([40, 126], 0.05),
            ([199, 232], 0.03),
        ],
        public_resolvers: &[
            [8, 8, 8, 8],
            [8, 8, 4, 4],
            [1, 1, 1, 1],
            [9, 9, 9, 9],
            [192, 5, 6, 30],
            [199, 7, 83, 42],
            [192, 33, 14, 30],
        ],
        public_ntp: &[
            [129, 6, 15, 28],
            [132, 163, 97, 1],
            [216, 239, 35, 0],
            [162, 159, 200, 1],
        ],
        client_os: CAMPUS_OS,
        server_os: CAMPUS_OS,
    },
    // US Central time (UTC-6 in February); students keep the network busy
    // into the evening.
    clock: Clock {
        utc_offset_secs: -6 * 3600,
        hours: &[(5, 0.22), (7, 0.5), (16, 1.0), (20, 0.55), (23, 0.33)],
        weekend: 0.4,
        off_hours_recon: 0.04,
    },
    benign: BenignMix {
        kinds: &[
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
        ],
        dns_query: (36.0, 0.28),
        dns_cached_share: 0.68,
        dns_cached_rtt: (0.0004, 0.45),
        dns_recursed_rtt: (0.04, 0.7),
        dns_outcomes: [0.825, 0.90, 0.93, 0.942],
        session: SessionShape {
            outcomes: &[
                (("SF", "ShADadFf"), 0.42),
                (("SF", "ShADadfF"), 0.22),
                (("SF", "ShADdaFf"), 0.06),
                (("S1", "ShADad"), 0.08),
                (("RSTO", "ShADadR"), 0.08),
                (("RSTR", "ShADadr"), 0.07),
                (("RSTR", "ShADadFr"), 0.03),
                (("SH", "ShADaF"), 0.02),
                (("OTH", "DdA"), 0.02),
            ],
            orig_pkts: (14.0, 0.8),
            resp_per_orig: (1.3, 0.4),
            orig_bytes: (1000.0, 1.0),
            resp_bytes: (6000.0, 1.5),
            external_duration: (1.5, 2.0),
            internal_duration: (0.5, 2.0),
        },
        ssl_internal_ports: &[(443, 0.8), (8443, 0.1), (636, 0.1)],
        http_external_share: 0.8,
        ntp_internal_share: 0.75,
        windows_split: [0.45, 0.75, 0.94],
        smb_to_dc_share: 0.4,
        kerberos_udp_share: 0.3,
        cldap_share: 0.35,
        failed_ports: &[
            (443, 0.3),
            (80, 0.2),
            (445, 0.2),
            (8080, 0.1),
            (3389, 0.1),
            (22, 0.1),
        ],
        failed_known_port_share: 0.5,
        failed_outcomes: [0.35, 0.7],
        other_tcp: &[
            ((22, Some("ssh"), true), 0.22),
            ((3389, Some("rdp"), true), 0.12),
            ((3389, Some("ssl"), true), 0.10),
            ((25, Some("smtp"), true), 0.06),
            ((587, Some("smtp"), false), 0.04),
            ((3306, Some("mysql"), true), 0.08),
            ((8080, Some("http"), true), 0.10),
            ((8443, Some("ssl"), false), 0.08),
            ((993, Some("ssl"), false), 0.08),
            ((21, Some("ftp"), true), 0.02),
            ((5985, Some("http"), true), 0.10),
        ],
    },
    recon: ReconMix {
        techniques: &[
            (Technique::DnsPtrSweep, 0.49),
            (Technique::DnsBrute, 0.05),
            (Technique::ServiceProbe, 0.28),
            (Technique::UdpProbe, 0.13),
            (Technique::SynScan, 0.03),
            (Technique::PingSweep, 0.012),
            (Technique::SingleSyn, 0.008),
        ],
        session_flows: (45.0, 0.8),
        target_subnets: &[
            ([143, 88, 1], 0.2),
            ([143, 88, 2], 0.25),
            ([143, 88, 3], 0.15),
            ([143, 88, 5], 0.15),
            ([143, 88, 8], 0.1),
            ([143, 88, 10], 0.1),
            ([143, 88, 14], 0.05),
        ],
        primary_resolver_share: 0.85,
        ptr_query_bytes: (38, 66),
        // Kali: the Linux stack's range, raw-socket tools picking any port.
        attacker_os: Os::Linux,
        stack_port_share: 0.85,
        // nmap's normal timing (-T3).
        gaps: Gaps {
            ptr: 0.08,
            brute: 0.15,
            service: 0.4,
            udp: 0.6,
            syn: 0.01,
            ping: 0.02,
            single_syn: 0.005,
            masscan: 0.0,
            smb: 0.0,
        },
        ptr_queries: &[(1, 0.35), (2, 0.55), (3, 0.10)],
        // The campus resolver mostly refuses or has no reverse zone.
        ptr_answers: [0.5, 0.35, 0.15],
        ptr_record_bytes: (28, 50),
        brute_answer: (52.0, 0.75),
        service_ports: &[
            ((80, Some("http")), 0.22),
            ((443, Some("ssl")), 0.20),
            ((22, Some("ssh")), 0.14),
            ((445, Some("smb")), 0.08),
            ((8080, Some("http")), 0.06),
            ((3389, Some("ssl")), 0.06),
            ((21, Some("ftp")), 0.05),
            ((25, Some("smtp")), 0.05),
            ((3306, Some("mysql")), 0.04),
            ((5985, Some("http")), 0.05),
            ((8443, Some("ssl")), 0.05),
        ],
        udp_ports: &[(123, 0.6), (161, 0.25), (53, 0.15)],
        // nmap's most common ports.
        syn_ports: &[
            21, 22, 23, 25, 53, 80, 110, 111, 135, 139, 143, 443, 445, 993, 995, 1723, 3306, 3389,
            5900, 8080,
        ],
        syn_top_share: 0.6,
        syn_outcomes: [0.45, 0.9],
        ping_reply_share: 0.5,
        // No stateless sweeps on campus.
        masscan_ports: &[],
        masscan_subnets: (0, 0),
    },
    recon_share: 0.21,
    discovery_share: 0.001,
};

static ENTERPRISE: Params = Params {
    net: Network {
        clients: ClientRange {
            prefix: [10, 20],
            first_subnet: 0,
            subnets: 64.0,
            first_host: 10,
            hosts: 241.0,
        },
        servers: ServerRange {
            prefix: [10, 10],
            subnets: (1, 4),
            hosts: (10, 60),
        },
        internal: &[[10, 20], [10, 10]],
        // Active Directory: the domain controllers are the resolvers, split
        // by site rather than primary/secondary.
        resolvers: [[10, 10, 0, 10], [10, 10, 0, 11]],
        primary_resolver_share: 0.6,
        domain_controllers: &[[10, 10, 0, 10], [10, 10, 0, 11], [10, 10, 0, 12]],
        dhcp_server: [10, 10, 0, 20],
        // Domain members sync with the PDC emulator.
        ntp_server: [10, 10, 0, 10],
        log_collector: [10, 10, 5, 20],
        // A compromised workstation, a planted box in the server room and a
        // second workstation.
        attackers: &[
            ([10, 20, 7, 99], 0.5),
            ([10, 10, 4, 66], 0.3),
            ([10, 20, 33, 142], 0.2),
        ],
        asset_scanners: &[[10, 10, 3, 50], [10, 10, 3, 51]],
        // SaaS: Microsoft 365 and Azure first, then Salesforce, Zoom, AWS,
        // Google, CDNs and the VPN/SASE provider.
        external_prefixes: &[
            ([13, 107], 0.18),
            ([52, 96], 0.10),
            ([40, 126], 0.08),
            ([20, 190], 0.08),
            ([52, 112], 0.08),
            ([104, 16], 0.06),
            ([136, 146], 0.06),
            ([170, 114], 0.05),
            ([54, 230], 0.05),
            ([142, 250], 0.08),
            ([23, 45], 0.04),
            ([35, 186], 0.04),
            ([162, 247], 0.04),
            ([151, 101], 0.06),
        ],
        // The DCs forward to a filtering resolver.
        public_resolvers: &[[208, 67, 222, 222], [208, 67, 220, 220], [1, 1, 1, 1]],
        public_ntp: &[[40, 119, 6, 228], [129, 6, 15, 28]],
        // Managed Windows laptops and some Macs, both with the IANA range.
        client_os: &[(Os::Windows, 88), (Os::Mac, 100)],
        server_os: &[(Os::Windows, 55), (Os::Linux, 100)],
    },
    // US Eastern time (UTC-5 in February); office hours, quiet nights and
    // weekends. Attackers like the quiet: a third of off-hours sessions stay.
    clock: Clock {
        utc_offset_secs: -5 * 3600,
        hours: &[(5, 0.06), (7, 0.35), (17, 1.0), (19, 0.4), (23, 0.15)],
        weekend: 0.1,
        off_hours_recon: 0.3,
    },
    benign: BenignMix {
        kinds: &[
            (Kind::DnsInternal, 0.210),
            (Kind::DnsUpstream, 0.015),
            (Kind::SslExternal, 0.250),
            (Kind::SslInternal, 0.060),
            (Kind::Http, 0.020),
            (Kind::Ntp, 0.012),
            (Kind::Windows, 0.240),
            (Kind::Rdp, 0.030),
            (Kind::Dhcp, 0.004),
            (Kind::Multicast, 0.030),
            (Kind::Icmp, 0.004),
            (Kind::FailedTcp, 0.030),
            (Kind::AssetScan, 0.020),
            (Kind::OtherTcp, 0.055),
            (Kind::Syslog, 0.020),
        ],
        // SRV and FQDN lookups of domain names are longer.
        dns_query: (44.0, 0.25),
        dns_cached_share: 0.8,
        dns_cached_rtt: (0.0003, 0.4),
        dns_recursed_rtt: (0.025, 0.7),
        dns_outcomes: [0.90, 0.935, 0.95, 0.955],
        session: SessionShape {
            // Proxies and firewalls reset more sessions than they leave half-open.
            outcomes: &[
                (("SF", "ShADadFf"), 0.50),
                (("SF", "ShADadfF"), 0.20),
                (("SF", "ShADdaFf"), 0.04),
                (("S1", "ShADad"), 0.05),
                (("RSTO", "ShADadR"), 0.05),
                (("RSTR", "ShADadr"), 0.10),
                (("RSTR", "ShADadFr"), 0.02),
                (("SH", "ShADaF"), 0.02),
                (("OTH", "DdA"), 0.02),
            ],
            // SaaS sync and collaboration: more data, long-lived keep-alives.
            orig_pkts: (22.0, 0.9),
            resp_per_orig: (1.5, 0.4),
            orig_bytes: (2400.0, 1.2),
            resp_bytes: (14_000.0, 1.7),
            external_duration: (8.0, 2.2),
            internal_duration: (0.8, 1.8),
        },
        // HTTPS apps, LDAPS, global catalog over TLS.
        ssl_internal_ports: &[(443, 0.6), (636, 0.15), (3269, 0.1), (8443, 0.15)],
        // Most plain HTTP is internal (intranet, WSUS); the proxy blocks the rest.
        http_external_share: 0.3,
        ntp_internal_share: 0.97,
        windows_split: [0.40, 0.65, 0.75],
        smb_to_dc_share: 0.3,
        kerberos_udp_share: 0.1,
        cldap_share: 0.45,
        failed_ports: &[
            (445, 0.25),
            (135, 0.15),
            (443, 0.2),
            (3389, 0.1),
            (80, 0.1),
            (8080, 0.1),
            (5985, 0.1),
        ],
        failed_known_port_share: 0.7,
        // Host firewalls drop more than they refuse.
        failed_outcomes: [0.45, 0.75],
        other_tcp: &[
            ((3389, Some("rdp"), true), 0.12),
            // Zeek (2022) has no TDS, Oracle, global catalog or ADWS analyzer.
            ((1433, None, true), 0.15),
            ((1521, None, true), 0.06),
            ((3268, None, true), 0.10),
            ((9389, None, true), 0.05),
            ((5985, Some("http"), true), 0.12),
            ((8080, Some("http"), true), 0.10),
            ((8443, Some("ssl"), true), 0.08),
            ((22, Some("ssh"), true), 0.08),
            ((25, Some("smtp"), true), 0.06),
            ((993, Some("ssl"), false), 0.04),
            ((5671, Some("ssl"), false), 0.04),
        ],
    },
    recon: ReconMix {
        techniques: &[
            (Technique::DnsPtrSweep, 0.20),
            (Technique::DnsBrute, 0.08),
            (Technique::ServiceProbe, 0.14),
            (Technique::SmbSweep, 0.14),
            (Technique::UdpProbe, 0.06),
            (Technique::SynScan, 0.16),
            (Technique::Masscan, 0.18),
            (Technique::PingSweep, 0.04),
        ],
        session_flows: (70.0, 0.9),
        target_subnets: &[
            ([10, 10, 0], 0.15),
            ([10, 10, 1], 0.15),
            ([10, 10, 2], 0.10),
            ([10, 10, 3], 0.05),
            ([10, 20, 0], 0.15),
            ([10, 20, 1], 0.10),
            ([10, 20, 2], 0.10),
            ([10, 20, 5], 0.10),
            ([10, 20, 12], 0.10),
        ],
        primary_resolver_share: 0.7,
        // `d.c.b.a.in-addr.arpa` questions of a 10/8 sweep.
        ptr_query_bytes: (40, 44),
        // Tools run on a Windows host go through its stack (IANA range).
        attacker_os: Os::Windows,
        stack_port_share: 0.7,
        // Polite timing (nmap -T2 waits 0.4 s between probes), a slow
        // sequential DNS tool, and a stateless sweep at hundreds of packets/s.
        gaps: Gaps {
            ptr: 0.9,
            brute: 0.5,
            service: 1.6,
            udp: 2.0,
            syn: 0.45,
            ping: 0.5,
            single_syn: 0.005,
            masscan: 0.002,
            smb: 0.3,
        },
        ptr_queries: &[(1, 0.9), (2, 0.1)],
        // AD-integrated reverse zones answer for most domain hosts.
        ptr_answers: [0.02, 0.33, 0.65],
        ptr_record_bytes: (40, 62),
        // SRV records with additional A records.
        brute_answer: (170.0, 0.45),
        service_ports: &[
            ((445, Some("smb")), 0.20),
            ((135, Some("dce_rpc")), 0.15),
            ((3389, Some("rdp")), 0.12),
            ((5985, Some("http")), 0.10),
            ((80, Some("http")), 0.10),
            ((443, Some("ssl")), 0.12),
            ((389, None), 0.08),
            ((1433, None), 0.07),
            ((22, Some("ssh")), 0.06),
        ],
        udp_ports: &[(161, 0.45), (137, 0.35), (123, 0.2)],
        // What an AD-aware port list looks for.
        syn_ports: &[
            53, 88, 135, 139, 389, 445, 464, 593, 636, 1433, 3268, 3269, 3389, 5985, 5986, 8080,
            8443, 9389, 47001, 49668,
        ],
        syn_top_share: 0.85,
        syn_outcomes: [0.7, 0.88],
        // Windows Firewall drops echo requests by default.
        ping_reply_share: 0.15,
        masscan_ports: &[22, 80, 135, 443, 445, 1433, 3389, 5985, 8080],
        masscan_subnets: (0, 63),
    },
    recon_share: 0.15,
    discovery_share: 0.002,
};

#[cfg(test)]
mod tests {
    use super::*;

    fn total<T>(items: &[(T, f64)]) -> f64 {
        items.iter().map(|(_, w)| w).sum()
    }

    #[test]
    fn names_round_trip_and_unknown_names_are_errors() {
        for p in Profile::ALL {
            assert_eq!(p.name().parse::<Profile>().ok(), Some(p));
            assert_eq!(p.to_string(), p.name());
        }
        assert_eq!(
            " Enterprise ".parse::<Profile>().ok(),
            Some(Profile::Enterprise)
        );
        let err = "dorm".parse::<Profile>().expect_err("unknown");
        assert_eq!(
            err.to_string(),
            "unknown traffic profile 'dorm' (expected campus or enterprise)"
        );
        assert_eq!(Profile::default(), Profile::Campus);
    }

    #[test]
    fn campus_streams_keep_the_seed_and_others_do_not() {
        assert_eq!(Profile::Campus.stream_seed(42), 42);
        assert_ne!(Profile::Enterprise.stream_seed(42), 42);
        assert_ne!(
            Profile::Enterprise.stream_seed(42),
            Profile::Enterprise.stream_seed(43)
        );
    }

    #[test]
    fn every_mix_is_complete_and_its_parts_exist() {
        for profile in Profile::ALL {
            let p = profile.params();
            for (name, sum) in [
                ("kinds", total(p.benign.kinds)),
                ("techniques", total(p.recon.techniques)),
                ("outcomes", total(p.benign.session.outcomes)),
                ("other_tcp", total(p.benign.other_tcp)),
                ("attackers", total(p.net.attackers)),
                ("targets", total(p.recon.target_subnets)),
                ("service_ports", total(p.recon.service_ports)),
                ("udp_ports", total(p.recon.udp_ports)),
                ("ptr_queries", total(p.recon.ptr_queries)),
            ] {
                assert!((sum - 1.0).abs() < 1e-9, "{profile} {name} sums to {sum}");
            }
            // Weights `pick` normalises (campus's external prefixes sum to 0.96).
            assert!(p.net.external_prefixes.iter().all(|(_, w)| *w > 0.0));
            // Parameters a mix relies on are there (a pick from an empty
            // list would panic).
            let kinds: Vec<Kind> = p.benign.kinds.iter().map(|(k, _)| *k).collect();
            assert_eq!(
                kinds.contains(&Kind::AssetScan),
                !p.net.asset_scanners.is_empty(),
                "{profile}"
            );
            let uses = |t| p.recon.techniques.iter().any(|(x, _)| *x == t);
            assert_eq!(
                uses(Technique::Masscan),
                !p.recon.masscan_ports.is_empty(),
                "{profile}"
            );
            assert!(uses(Technique::Masscan) == (p.recon.gaps.masscan > 0.0));
            assert!(uses(Technique::SmbSweep) == (p.recon.gaps.smb > 0.0));
            assert!(!p.recon.syn_ports.is_empty() && !p.net.domain_controllers.is_empty());
            assert!(p.net.client_os.last().is_some_and(|&(_, b)| b == 100));
            assert!(p.net.server_os.last().is_some_and(|&(_, b)| b == 100));
            assert_eq!(p.clock.hours.last().map(|h| h.0), Some(23));
            let [a, b, c, d] = p.benign.dns_outcomes;
            assert!(a < b && b < c && c < d && d < 1.0);
            assert!(p.recon_share + p.discovery_share < 0.5);
        }
    }
}
