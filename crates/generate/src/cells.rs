//! Cell writers that reproduce Spark's CSV output byte for byte.

use std::fmt::Write as _;

/// A fixed stack buffer for `core::fmt`, so formatting a double never allocates.
struct StackBuf {
    buf: [u8; 48],
    len: usize,
}

impl StackBuf {
    fn new() -> Self {
        StackBuf {
            buf: [0; 48],
            len: 0,
        }
    }
    fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl std::fmt::Write for StackBuf {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        if end > self.buf.len() {
            return Err(std::fmt::Error);
        }
        self.buf[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Significant digits (no leading/trailing zeros beyond the first) and the
/// decimal exponent of the first digit, from Rust's `{:e}` / `{:.Ne}` output.
fn parse_sci(text: &[u8], digits: &mut [u8; 24]) -> Option<(usize, i32)> {
    let e = text.iter().position(|&c| c == b'e')?;
    let mut n = 0;
    for &c in &text[..e] {
        if c.is_ascii_digit() {
            if n == digits.len() {
                return None;
            }
            digits[n] = c;
            n += 1;
        }
    }
    let exp: i32 = std::str::from_utf8(&text[e + 1..]).ok()?.parse().ok()?;
    while n > 1 && digits[n - 1] == b'0' {
        n -= 1;
    }
    Some((n, exp))
}

/// Number of significant decimal digits of `a`'s exact value, when it has at
/// most 21 (more never matter for ties against a 17-digit shortest form).
fn exact_significant_digits(a: f64, exp21: i32) -> Option<i32> {
    let bits = a.to_bits();
    let field = ((bits >> 52) & 0x7FF) as i32;
    let frac = bits & ((1 << 52) - 1);
    let (mut m, mut e) = if field == 0 {
        (frac, -1074)
    } else {
        (frac | (1 << 52), field - 1075)
    };
    let tz = m.trailing_zeros() as i32;
    m >>= tz;
    e += tz;
    if e < 0 {
        // m * 2^e has exactly -e fractional decimal digits, the last one 5.
        Some(exp21 - e + 1)
    } else if e < 74 {
        let v = u128::from(m) << e;
        let mut t = v;
        let mut zeros = 0;
        while t % 10 == 0 {
            t /= 10;
            zeros += 1;
        }
        Some(exp21 + 1 - zeros)
    } else {
        None
    }
}

/// When the exact value lies halfway between two shortest candidates of `n`
/// digits, Java takes the one with an even last digit (Rust may take the
/// other). Returns the even candidate's digits, count and exponent.
fn even_tie(a: f64, n: usize, shortest_exp: i32) -> Option<([u8; 24], usize, i32)> {
    // Cheap test first: a tie needs exactly n+1 exact significant digits.
    if exact_significant_digits(a, shortest_exp)? != n as i32 + 1 {
        return None;
    }
    let mut text = StackBuf::new();
    write!(text, "{a:.20e}").ok()?;
    let bytes = text.as_bytes();
    let e_pos = bytes.iter().position(|&c| c == b'e')?;
    let exp21: i32 = std::str::from_utf8(&bytes[e_pos + 1..])
        .ok()?
        .parse()
        .ok()?;
    if exact_significant_digits(a, exp21)? != n as i32 + 1 {
        return None;
    }
    // The 21-digit form is exact here; its first n+1 digits end in 5.
    let mut p = [0u8; 24];
    let mut len = 0;
    for &c in &bytes[..e_pos] {
        if c.is_ascii_digit() && len < n + 1 {
            p[len] = c;
            len += 1;
        }
    }
    let mut exp = exp21;
    let mut digits = [0u8; 24];
    digits[..n].copy_from_slice(&p[..n]);
    if (digits[n - 1] - b'0') % 2 == 1 {
        // Round the truncated candidate up to the even neighbour.
        let mut i = n;
        loop {
            if i == 0 {
                digits.copy_within(0..n, 1);
                digits[0] = b'1';
                exp += 1;
                break;
            }
            i -= 1;
            if digits[i] == b'9' {
                digits[i] = b'0';
            } else {
                digits[i] += 1;
                break;
            }
        }
    }
    let mut n = n;
    while n > 1 && digits[n - 1] == b'0' {
        n -= 1;
    }
    // Keep Rust's choice unless the even candidate also reads back as `a`.
    let mut check = StackBuf::new();
    let text = std::str::from_utf8(&digits[..n]).ok()?;
    write!(check, "0.{text}e{}", exp + 1).ok()?;
    let back: f64 = std::str::from_utf8(check.as_bytes()).ok()?.parse().ok()?;
    (back == a).then_some((digits, n, exp))
}

/// Writes `x` as Java's `Double.toString` (JDK 19+) does, which is what Spark
/// writes into CSV: the shortest decimal that reads back as `x`, in plain
/// notation for 1e-3 <= |x| < 1e7 (`0.002279996871948242`, `5.0`) and as
/// `d.dddE±n` otherwise (`1.644465509979958E9`, `1.4066696166992188E-5`).
pub(crate) fn write_java_double(out: &mut Vec<u8>, x: f64) {
    if x.is_nan() {
        out.extend_from_slice(b"NaN");
        return;
    }
    if x.is_infinite() {
        out.extend_from_slice(if x > 0.0 { b"Infinity" } else { b"-Infinity" });
        return;
    }
    if x.is_sign_negative() {
        out.push(b'-');
    }
    let a = x.abs();
    if a == 0.0 {
        out.extend_from_slice(b"0.0");
        return;
    }
    let mut digits = [0u8; 24];
    let mut text = StackBuf::new();
    // Rust's `{:e}` without precision is the shortest round-trip form.
    let parsed = write!(text, "{a:e}")
        .ok()
        .and_then(|()| parse_sci(text.as_bytes(), &mut digits));
    let Some((mut n, mut exp)) = parsed else {
        // Unreachable for finite doubles; keep a readable fallback anyway.
        out.extend_from_slice(format!("{a}").as_bytes());
        return;
    };
    if n == 1 {
        // Java never picks a one-digit decimal: it takes the closest two-digit
        // one, which only differs from `d.0` for the tiniest subnormals
        // (Double.MIN_VALUE prints as 4.9E-324).
        let mut two = StackBuf::new();
        if write!(two, "{a:.1e}").is_ok() {
            let mut d2 = [0u8; 24];
            if let Some((n2, e2)) = parse_sci(two.as_bytes(), &mut d2) {
                let reparsed = std::str::from_utf8(two.as_bytes())
                    .ok()
                    .and_then(|s| s.parse::<f64>().ok());
                if reparsed == Some(a) {
                    digits = d2;
                    n = n2;
                    exp = e2;
                }
            }
        }
    } else if let Some((d, n2, e2)) = even_tie(a, n, exp) {
        digits = d;
        n = n2;
        exp = e2;
    }
    let digits = &digits[..n];
    if (1e-3..1e7).contains(&a) {
        if exp >= 0 {
            let int_len = exp as usize + 1;
            if n > int_len {
                out.extend_from_slice(&digits[..int_len]);
                out.push(b'.');
                out.extend_from_slice(&digits[int_len..]);
            } else {
                out.extend_from_slice(digits);
                out.extend(std::iter::repeat_n(b'0', int_len - n));
                out.extend_from_slice(b".0");
            }
        } else {
            out.extend_from_slice(b"0.");
            out.extend(std::iter::repeat_n(b'0', (-exp - 1) as usize));
            out.extend_from_slice(digits);
        }
    } else {
        out.push(digits[0]);
        out.push(b'.');
        if n > 1 {
            out.extend_from_slice(&digits[1..]);
        } else {
            out.push(b'0');
        }
        out.push(b'E');
        write_i64(out, i64::from(exp));
    }
}

/// Writes an unsigned integer in plain decimal.
pub(crate) fn write_u64(out: &mut Vec<u8>, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// Writes a signed integer in plain decimal.
pub(crate) fn write_i64(out: &mut Vec<u8>, v: i64) {
    if v < 0 {
        out.push(b'-');
    }
    write_u64(out, v.unsigned_abs());
}

/// Writes a dotted IPv4 address.
pub(crate) fn write_ipv4(out: &mut Vec<u8>, ip: [u8; 4]) {
    for (i, octet) in ip.iter().enumerate() {
        if i > 0 {
            out.push(b'.');
        }
        write_u64(out, u64::from(*octet));
    }
}

fn write_2(out: &mut Vec<u8>, v: u32) {
    out.push(b'0' + (v / 10 % 10) as u8);
    out.push(b'0' + (v % 10) as u8);
}

/// Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Writes the `datetime` cell for an epoch-seconds `ts`, the way Spark derives
/// it: microseconds truncated from the double, then milliseconds truncated,
/// as `2022-02-10T03:58:29.979Z`.
pub(crate) fn write_datetime(out: &mut Vec<u8>, ts: f64) {
    let micros = (ts * 1e6) as i64;
    let millis = micros.div_euclid(1000);
    let secs = millis.div_euclid(1000);
    let ms = millis.rem_euclid(1000) as u32;
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400) as u32;
    let (y, m, d) = civil_from_days(days);
    write_i64(out, y);
    out.push(b'-');
    write_2(out, m);
    out.push(b'-');
    write_2(out, d);
    out.push(b'T');
    write_2(out, sod / 3600);
    out.push(b':');
    write_2(out, sod / 60 % 60);
    out.push(b':');
    write_2(out, sod % 60);
    out.push(b'.');
    out.push(b'0' + (ms / 100) as u8);
    write_2(out, ms % 100);
    out.push(b'Z');
}

/// Writes `x` with exactly six decimals, as Zeek's ASCII writer prints
/// `time` and `interval` values (`0.002280`, `3.000000`).
pub(crate) fn write_fixed6(out: &mut Vec<u8>, x: f64) {
    let mut text = StackBuf::new();
    if write!(text, "{x:.6}").is_ok() {
        out.extend_from_slice(text.as_bytes());
    } else {
        // Only values beyond ~1e40 overflow the stack buffer.
        out.extend_from_slice(format!("{x:.6}").as_bytes());
    }
}

/// Writes epoch microseconds as Zeek writes `ts`: seconds with six decimals,
/// straight from the integer so no digit depends on double rounding.
pub(crate) fn write_ts_micros(out: &mut Vec<u8>, us: i64) {
    if us < 0 {
        out.push(b'-');
    }
    let abs = us.unsigned_abs();
    write_u64(out, abs / 1_000_000);
    out.push(b'.');
    let mut digits = [b'0'; 6];
    let mut rest = abs % 1_000_000;
    for d in digits.iter_mut().rev() {
        *d = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    out.extend_from_slice(&digits);
}

/// Writes epoch seconds in the UTC form of Zeek's `#open` / `#close`
/// header lines: `2022-02-07-00-00-00`.
pub(crate) fn write_zeek_header_time(out: &mut Vec<u8>, secs: i64) {
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400) as u32;
    let (y, m, d) = civil_from_days(days);
    write_i64(out, y);
    for v in [m, d, sod / 3600, sod / 60 % 60, sod % 60] {
        out.push(b'-');
        write_2(out, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn java(x: f64) -> String {
        let mut out = Vec::new();
        write_java_double(&mut out, x);
        String::from_utf8(out).unwrap_or_default()
    }

    #[test]
    fn java_double_matches_uwf_cells() {
        assert_eq!(java(1.644465509979958E9), "1.644465509979958E9");
        assert_eq!(java(1.4066696166992188E-5), "1.4066696166992188E-5");
        assert_eq!(java(0.002279996871948242), "0.002279996871948242");
        assert_eq!(java(5.004887819290161), "5.004887819290161");
        assert_eq!(java(5.0), "5.0");
        assert_eq!(java(2.384185791015625E-7), "2.384185791015625E-7");
        // 890 * 2^-22 lies halfway between two 17-digit decimals: Java takes the even one.
        assert_eq!(java(890.0 / 4_194_304.0), "2.1219253540039062E-4");
    }

    #[test]
    fn java_double_plain_and_scientific_ranges() {
        assert_eq!(java(0.001), "0.001");
        assert_eq!(java(0.005), "0.005");
        assert_eq!(java(9.99e-4), "9.99E-4");
        assert_eq!(java(1.0e-4), "1.0E-4");
        assert_eq!(java(9_999_999.0), "9999999.0");
        assert_eq!(java(9_999_999.999999998), "9999999.999999998");
        assert_eq!(java(1.0e7), "1.0E7");
        assert_eq!(java(12_345_678.9), "1.23456789E7");
        assert_eq!(java(1.0), "1.0");
        assert_eq!(java(10.0), "10.0");
        assert_eq!(java(100.5), "100.5");
        assert_eq!(java(1_234_567.0), "1234567.0");
        assert_eq!(java(0.1), "0.1");
        assert_eq!(java(0.30000000000000004), "0.30000000000000004");
        assert_eq!(java(-1.5), "-1.5");
        assert_eq!(java(-2.5e-9), "-2.5E-9");
        assert_eq!(java(1.0e23), "1.0E23");
        assert_eq!(java(1.0e10), "1.0E10");
    }

    #[test]
    fn java_double_special_values() {
        assert_eq!(java(0.0), "0.0");
        assert_eq!(java(-0.0), "-0.0");
        assert_eq!(java(f64::NAN), "NaN");
        assert_eq!(java(f64::INFINITY), "Infinity");
        assert_eq!(java(f64::NEG_INFINITY), "-Infinity");
        assert_eq!(java(f64::MIN_POSITIVE), "2.2250738585072014E-308");
        assert_eq!(java(f64::MAX), "1.7976931348623157E308");
        // Double.MIN_VALUE: Java's two-digit rule, not the shortest "5E-324".
        assert_eq!(java(f64::from_bits(1)), "4.9E-324");
    }

    #[test]
    fn java_double_round_trips() {
        let mut r = crate::rng::Rng::new(3);
        for _ in 0..20_000 {
            let x = f64::from_bits(r.next_u64());
            if x.is_finite() {
                let s = java(x);
                assert_eq!(s.parse::<f64>().ok(), Some(x), "{s}");
            }
        }
    }

    #[test]
    fn integers_and_addresses() {
        let mut out = Vec::new();
        write_u64(&mut out, 0);
        out.push(b' ');
        write_u64(&mut out, u64::MAX);
        out.push(b' ');
        write_i64(&mut out, -42);
        out.push(b' ');
        write_ipv4(&mut out, [143, 88, 5, 12]);
        assert_eq!(out, b"0 18446744073709551615 -42 143.88.5.12");
    }

    #[test]
    fn datetime_truncates_to_milliseconds() {
        let mut out = Vec::new();
        write_datetime(&mut out, 1.644465509979958E9);
        assert_eq!(out, b"2022-02-10T03:58:29.979Z");
        out.clear();
        write_datetime(&mut out, 1.644465509982958E9);
        assert_eq!(out, b"2022-02-10T03:58:29.982Z");
        out.clear();
        write_datetime(&mut out, 951_782_400.000_5); // leap day 2000
        assert_eq!(out, b"2000-02-29T00:00:00.000Z");
        out.clear();
        write_datetime(&mut out, 0.0);
        assert_eq!(out, b"1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn zeek_number_and_time_cells() {
        let mut out = Vec::new();
        write_ts_micros(&mut out, 1_644_465_509_979_958);
        out.push(b' ');
        write_ts_micros(&mut out, 1_644_400_000_000_001);
        out.push(b' ');
        write_ts_micros(&mut out, 19_981_745);
        out.push(b' ');
        write_fixed6(&mut out, 0.002279996871948242);
        out.push(b' ');
        write_fixed6(&mut out, 2.384185791015625E-7);
        out.push(b' ');
        write_fixed6(&mut out, 3.0);
        out.push(b' ');
        write_zeek_header_time(&mut out, 1_644_192_000);
        assert_eq!(
            String::from_utf8(out).unwrap_or_default(),
            "1644465509.979958 1644400000.000001 19.981745 0.002280 0.000000 3.000000 2022-02-07-00-00-00"
        );
    }
}
