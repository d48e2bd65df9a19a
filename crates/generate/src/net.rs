//! The simulated network: address plan, hosts, ports and the activity clock.

use crate::rng::Rng;

/// Monday 2022-02-07 00:00:00 UTC; UWF-ZeekData22's CSV rows are from February 2022.
pub(crate) const WINDOW_START_SECS: i64 = 1_644_192_000;
/// Two weeks of traffic.
pub(crate) const WINDOW_SECS: i64 = 14 * 86_400;

pub(crate) const BROADCAST: [u8; 4] = [255, 255, 255, 255];
pub(crate) const ZERO: [u8; 4] = [0, 0, 0, 0];

/// Operating system family of a host: decides ephemeral ports and TCP header size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Os {
    Windows,
    Linux,
    /// macOS: BSD stack, IANA ephemeral range, TCP timestamps on.
    Mac,
    /// Printers, phones, appliances: any port above 1023.
    Other,
}

impl Os {
    /// An ephemeral source port as this OS allocates them.
    pub(crate) fn ephemeral_port(self, rng: &mut Rng) -> u16 {
        let (lo, hi) = match self {
            Os::Windows | Os::Mac => (49_152, 65_535),
            Os::Linux => (32_768, 60_999),
            Os::Other => (1_024, 65_535),
        };
        rng.range(lo, hi) as u16
    }

    /// IP + TCP header bytes per packet (Linux and macOS add the timestamp option).
    pub(crate) fn tcp_header(self) -> u64 {
        match self {
            Os::Linux | Os::Mac => 52,
            _ => 40,
        }
    }
}

/// Where client workstations sit: `prefix.subnet.host`, with subnet and host
/// skewed towards the low end (`first + count * u^k`), since low subnets and
/// addresses are the busier ones.
#[derive(Debug)]
pub(crate) struct ClientRange {
    pub prefix: [u8; 2],
    pub first_subnet: u8,
    pub subnets: f64,
    pub first_host: u8,
    pub hosts: f64,
}

/// Where internal servers sit: `prefix.subnet.host`, both uniform.
#[derive(Debug)]
pub(crate) struct ServerRange {
    pub prefix: [u8; 2],
    pub subnets: (u64, u64),
    pub hosts: (u64, u64),
}

/// The address plan of one simulated network and the OS its hosts run.
#[derive(Debug)]
pub(crate) struct Network {
    pub clients: ClientRange,
    pub servers: ServerRange,
    /// The /16s that count as inside (targets of failed connections).
    pub internal: &'static [[u8; 2]],
    /// Primary and secondary resolver of the clients.
    pub resolvers: [[u8; 4]; 2],
    /// Share of client queries that go to the primary resolver.
    pub primary_resolver_share: f64,
    pub domain_controllers: &'static [[u8; 4]],
    pub dhcp_server: [u8; 4],
    /// The time source domain members and clients sync with.
    pub ntp_server: [u8; 4],
    pub log_collector: [u8; 4],
    /// Hosts of the recon exercises, with how much of the activity each runs.
    pub attackers: &'static [([u8; 4], f64)],
    /// Benign hosts that probe the network on purpose (inventory and
    /// vulnerability scanners); only used by profiles whose mix has them.
    pub asset_scanners: &'static [[u8; 4]],
    /// Public /16s of large providers that clients talk to.
    pub external_prefixes: &'static [([u8; 2], f64)],
    pub public_resolvers: &'static [[u8; 4]],
    pub public_ntp: &'static [[u8; 4]],
    /// OS of client addresses (inside `clients.prefix`) and of every other
    /// host, as `(os, upper bound)` over a per-address hash in 0..100.
    pub client_os: &'static [(Os, u64)],
    pub server_os: &'static [(Os, u64)],
}

impl Network {
    /// A fixed OS per address, so a host behaves consistently across flows.
    pub(crate) fn os_of(&self, ip: [u8; 4]) -> Os {
        let h = crate::rng::mix(&[u64::from(u32::from_be_bytes(ip))]) % 100;
        let table = if [ip[0], ip[1]] == self.clients.prefix {
            self.client_os
        } else {
            self.server_os
        };
        table
            .iter()
            .find(|(_, bound)| h < *bound)
            .map_or(Os::Other, |&(os, _)| os)
    }

    /// A client workstation.
    pub(crate) fn client(&self, rng: &mut Rng) -> [u8; 4] {
        let c = &self.clients;
        let subnet = c.first_subnet + (c.subnets * rng.f64().powf(1.3)) as u8;
        let host = c.first_host + (c.hosts * rng.f64().powi(2)) as u8;
        [c.prefix[0], c.prefix[1], subnet, host]
    }

    /// An internal server (file, web, application).
    pub(crate) fn server(&self, rng: &mut Rng) -> [u8; 4] {
        let s = &self.servers;
        [
            s.prefix[0],
            s.prefix[1],
            rng.range(s.subnets.0, s.subnets.1) as u8,
            rng.range(s.hosts.0, s.hosts.1) as u8,
        ]
    }

    /// Any address inside the network.
    pub(crate) fn internal_any(&self, rng: &mut Rng) -> [u8; 4] {
        // A single /16 takes no draw to choose, as before profiles existed,
        // so the campus rows keep their bytes.
        let p = match self.internal {
            [only] => *only,
            all => rng.choose(all),
        };
        [p[0], p[1], rng.range(0, 255) as u8, rng.range(1, 254) as u8]
    }

    /// An address of a large public service.
    pub(crate) fn external(&self, rng: &mut Rng) -> [u8; 4] {
        let p = rng.pick(self.external_prefixes);
        [p[0], p[1], rng.range(0, 255) as u8, rng.range(1, 254) as u8]
    }

    /// The resolver a client (or a recon tool) sends a query to.
    pub(crate) fn resolver(&self, rng: &mut Rng, primary_share: f64) -> [u8; 4] {
        if rng.chance(primary_share) {
            self.resolvers[0]
        } else {
            self.resolvers[1]
        }
    }
}

/// When a network is busy: local time zone, hourly levels, weekends.
#[derive(Debug)]
pub(crate) struct Clock {
    pub utc_offset_secs: i64,
    /// `(last hour, level)` in increasing hours, the last one ending at 23.
    pub hours: &'static [(i64, f64)],
    /// Factor on Saturdays and Sundays.
    pub weekend: f64,
    /// Chance that a recon session starting outside office hours is kept.
    pub off_hours_recon: f64,
}

impl Clock {
    /// Relative traffic volume at an instant: office hours on weekdays are busiest.
    fn activity(&self, epoch_secs: i64) -> f64 {
        let local = epoch_secs + self.utc_offset_secs;
        // 1970-01-01 was a Thursday; 0 = Monday.
        let weekday = (local.div_euclid(86_400) + 3).rem_euclid(7);
        let hour = local.rem_euclid(86_400) / 3600;
        let base = self
            .hours
            .iter()
            .find(|(last, _)| hour <= *last)
            .map_or(0.0, |&(_, level)| level);
        if weekday >= 5 {
            base * self.weekend
        } else {
            base
        }
    }

    /// A start time (epoch microseconds) following the weekly activity curve.
    pub(crate) fn benign_ts_us(&self, rng: &mut Rng) -> i64 {
        loop {
            let off = rng.range(0, (WINDOW_SECS * 1_000_000 - 1) as u64) as i64;
            let us = WINDOW_START_SECS * 1_000_000 + off;
            if rng.f64() < self.activity(us / 1_000_000) {
                return clean_us(us);
            }
        }
    }

    /// A session start (epoch microseconds), mostly during weekday working
    /// hours, when the exercises were run.
    pub(crate) fn working_hours_ts_us(&self, rng: &mut Rng) -> i64 {
        loop {
            let off = rng.range(0, (WINDOW_SECS * 1_000_000 - 1) as u64) as i64;
            let us = WINDOW_START_SECS * 1_000_000 + off;
            if self.activity(us / 1_000_000) >= 1.0 || rng.chance(self.off_hours_recon) {
                return clean_us(us);
            }
        }
    }
}

/// Keeps microsecond timestamps off whole milliseconds, where the double and
/// the truncated `datetime` could disagree by one millisecond.
pub(crate) fn clean_us(us: i64) -> i64 {
    if us % 1000 == 0 {
        us + 1
    } else {
        us
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::Profile;

    #[test]
    fn timestamps_stay_in_the_window() {
        let lo = WINDOW_START_SECS * 1_000_000;
        let hi = lo + WINDOW_SECS * 1_000_000;
        for profile in [Profile::Campus, Profile::Enterprise] {
            let clock = &profile.params().clock;
            let mut rng = Rng::new(5);
            for _ in 0..10_000 {
                for t in [
                    clock.benign_ts_us(&mut rng),
                    clock.working_hours_ts_us(&mut rng),
                ] {
                    assert!((lo..hi + 1).contains(&t));
                    assert_ne!(t % 1000, 0);
                }
            }
        }
    }

    #[test]
    fn office_hours_are_busier_than_nights() {
        let campus = &Profile::Campus.params().clock;
        // 2022-02-08 (Tue) 15:00 UTC = 09:00 local; 09:00 UTC = 03:00 local.
        assert_eq!(campus.activity(1_644_332_400), 1.0);
        assert_eq!(campus.activity(1_644_310_800), 0.22);
        // Saturday 2022-02-12 15:00 UTC.
        assert_eq!(campus.activity(1_644_678_000), 0.4);
        // 23:00 local is the last band.
        assert_eq!(campus.activity(1_644_296_400), 0.33);
        let ent = &Profile::Enterprise.params().clock;
        // The enterprise is on US Eastern time: 09:00 local is 14:00 UTC.
        assert_eq!(ent.activity(1_644_328_800), 1.0);
        assert_eq!(ent.activity(1_644_310_800), 0.06);
        assert_eq!(ent.activity(1_644_678_000), 0.1);
    }

    #[test]
    fn ephemeral_ports_follow_the_os() {
        let mut rng = Rng::new(1);
        for _ in 0..1000 {
            assert!(Os::Windows.ephemeral_port(&mut rng) >= 49_152);
            assert!(Os::Mac.ephemeral_port(&mut rng) >= 49_152);
            let p = Os::Linux.ephemeral_port(&mut rng);
            assert!((32_768..=60_999).contains(&p));
        }
    }

    #[test]
    fn hosts_fall_in_each_profiles_address_plan() {
        let campus = &Profile::Campus.params().net;
        let ent = &Profile::Enterprise.params().net;
        let mut rng = Rng::new(3);
        for _ in 0..10_000 {
            let c = campus.client(&mut rng);
            assert!(
                c[..2] == [143, 88] && (8..=15).contains(&c[2]) && c[3] >= 10,
                "{c:?}"
            );
            let c = ent.client(&mut rng);
            assert!(c[..2] == [10, 20] && c[2] < 64 && c[3] >= 10, "{c:?}");
            let s = ent.server(&mut rng);
            assert!(s[..2] == [10, 10] && (1..=4).contains(&s[2]), "{s:?}");
            let i = ent.internal_any(&mut rng);
            assert!(i[..2] == [10, 20] || i[..2] == [10, 10], "{i:?}");
            assert_ne!(ent.os_of(ent.client(&mut rng)), Os::Linux);
        }
        // Campus OS shares are the historic 60/30/10 split.
        let mut counts = [0usize; 4];
        for host in 0..=255u8 {
            for subnet in 0..40u8 {
                counts[campus.os_of([143, 88, subnet, host]) as usize] += 1;
            }
        }
        assert_eq!(counts[Os::Mac as usize], 0);
        assert!(
            (5800..6400).contains(&counts[Os::Windows as usize]),
            "{counts:?}"
        );
    }
}
