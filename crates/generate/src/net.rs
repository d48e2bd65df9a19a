//! The simulated network: address plan, hosts, ports and the activity clock.

use crate::rng::Rng;

/// Monday 2022-02-07 00:00:00 UTC; UWF-ZeekData22's CSV rows are from February 2022.
pub(crate) const WINDOW_START_SECS: i64 = 1_644_192_000;
/// Two weeks of traffic.
pub(crate) const WINDOW_SECS: i64 = 14 * 86_400;
/// The campus is on US Central time (UTC-6 in February).
const LOCAL_OFFSET_SECS: i64 = -6 * 3600;

pub(crate) const DNS_PRIMARY: [u8; 4] = [143, 88, 5, 1];
pub(crate) const DNS_SECONDARY: [u8; 4] = [143, 88, 5, 2];
pub(crate) const DOMAIN_CONTROLLERS: [[u8; 4]; 2] = [[143, 88, 2, 10], [143, 88, 2, 11]];
pub(crate) const BROADCAST: [u8; 4] = [255, 255, 255, 255];
pub(crate) const ZERO: [u8; 4] = [0, 0, 0, 0];

/// Attacker hosts of the recon exercises, with how much of the activity each runs.
pub(crate) const ATTACKERS: [([u8; 4], f64); 4] = [
    ([143, 88, 5, 12], 0.55),
    ([143, 88, 5, 13], 0.25),
    ([143, 88, 6, 21], 0.12),
    ([143, 88, 12, 77], 0.08),
];

/// Public /16s of large providers that clients talk to.
const EXTERNAL_PREFIXES: [([u8; 2], f64); 14] = [
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
];

pub(crate) const PUBLIC_RESOLVERS: [[u8; 4]; 7] = [
    [8, 8, 8, 8],
    [8, 8, 4, 4],
    [1, 1, 1, 1],
    [9, 9, 9, 9],
    [192, 5, 6, 30],
    [199, 7, 83, 42],
    [192, 33, 14, 30],
];

pub(crate) const PUBLIC_NTP: [[u8; 4]; 4] = [
    [129, 6, 15, 28],
    [132, 163, 97, 1],
    [216, 239, 35, 0],
    [162, 159, 200, 1],
];

/// Operating system family of a host: decides ephemeral ports and TCP header size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Os {
    Windows,
    Linux,
    Other,
}

impl Os {
    /// A fixed OS per address, so a host behaves consistently across flows.
    pub(crate) fn of(ip: [u8; 4]) -> Os {
        let h = crate::rng::mix(&[u64::from(u32::from_be_bytes(ip))]) % 100;
        match h {
            0..=59 => Os::Windows,
            60..=89 => Os::Linux,
            _ => Os::Other,
        }
    }

    /// An ephemeral source port as this OS allocates them.
    pub(crate) fn ephemeral_port(self, rng: &mut Rng) -> u16 {
        let (lo, hi) = match self {
            Os::Windows => (49_152, 65_535),
            Os::Linux => (32_768, 60_999),
            Os::Other => (1_024, 65_535),
        };
        rng.range(lo, hi) as u16
    }

    /// IP + TCP header bytes per packet (Linux adds the timestamp option).
    pub(crate) fn tcp_header(self) -> u64 {
        match self {
            Os::Linux => 52,
            _ => 40,
        }
    }
}

/// A client workstation in 143.88.8.0-143.88.15.255; low addresses are busier.
pub(crate) fn client(rng: &mut Rng) -> [u8; 4] {
    let subnet = 8 + (8.0 * rng.f64().powf(1.3)) as u8;
    let host = 10 + (241.0 * rng.f64().powi(2)) as u8;
    [143, 88, subnet, host]
}

/// An internal server (file, web, application) in 143.88.1.0-143.88.3.255.
pub(crate) fn server(rng: &mut Rng) -> [u8; 4] {
    [143, 88, rng.range(1, 3) as u8, rng.range(10, 40) as u8]
}

/// Any address inside 143.88.0.0/16.
pub(crate) fn internal_any(rng: &mut Rng) -> [u8; 4] {
    [143, 88, rng.range(0, 255) as u8, rng.range(1, 254) as u8]
}

/// An address of a large public service.
pub(crate) fn external(rng: &mut Rng) -> [u8; 4] {
    let p = rng.pick(&EXTERNAL_PREFIXES);
    [p[0], p[1], rng.range(0, 255) as u8, rng.range(1, 254) as u8]
}

/// Relative traffic volume at an instant: office hours on weekdays are busiest.
fn activity(epoch_secs: i64) -> f64 {
    let local = epoch_secs + LOCAL_OFFSET_SECS;
    // 1970-01-01 was a Thursday; 0 = Monday.
    let weekday = (local.div_euclid(86_400) + 3).rem_euclid(7);
    let hour = local.rem_euclid(86_400) / 3600;
    let base = match hour {
        0..=5 => 0.22,
        6..=7 => 0.5,
        8..=16 => 1.0,
        17..=20 => 0.55,
        _ => 0.33,
    };
    if weekday >= 5 {
        base * 0.4
    } else {
        base
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

/// A start time (epoch microseconds) following the weekly activity curve.
pub(crate) fn benign_ts_us(rng: &mut Rng) -> i64 {
    loop {
        let off = rng.range(0, (WINDOW_SECS * 1_000_000 - 1) as u64) as i64;
        let us = WINDOW_START_SECS * 1_000_000 + off;
        if rng.f64() < activity(us / 1_000_000) {
            return clean_us(us);
        }
    }
}

/// A session start (epoch microseconds) during weekday working hours, when
/// the exercises were run.
pub(crate) fn working_hours_ts_us(rng: &mut Rng) -> i64 {
    loop {
        let off = rng.range(0, (WINDOW_SECS * 1_000_000 - 1) as u64) as i64;
        let us = WINDOW_START_SECS * 1_000_000 + off;
        if activity(us / 1_000_000) >= 1.0 || rng.chance(0.04) {
            return clean_us(us);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_stay_in_the_window() {
        let mut rng = Rng::new(5);
        let lo = WINDOW_START_SECS * 1_000_000;
        let hi = lo + WINDOW_SECS * 1_000_000;
        for _ in 0..10_000 {
            let t = benign_ts_us(&mut rng);
            assert!((lo..hi + 1).contains(&t));
            assert_ne!(t % 1000, 0);
        }
    }

    #[test]
    fn office_hours_are_busier_than_nights() {
        // 2022-02-08 (Tue) 15:00 UTC = 09:00 local; 09:00 UTC = 03:00 local.
        assert_eq!(activity(1_644_332_400), 1.0);
        assert_eq!(activity(1_644_310_800), 0.22);
        // Saturday 2022-02-12 15:00 UTC.
        assert_eq!(activity(1_644_678_000), 0.4);
    }

    #[test]
    fn ephemeral_ports_follow_the_os() {
        let mut rng = Rng::new(1);
        for _ in 0..1000 {
            assert!(Os::Windows.ephemeral_port(&mut rng) >= 49_152);
            let p = Os::Linux.ephemeral_port(&mut rng);
            assert!((32_768..=60_999).contains(&p));
        }
    }
}
