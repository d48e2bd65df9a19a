//! Flow identifiers as Zeek writes them: `uid` and Community ID v1.

use crate::rng::Rng;

/// Transport protocol of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Proto {
    Tcp,
    Udp,
    Icmp,
}

impl Proto {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Icmp => "icmp",
        }
    }

    fn number(self) -> u8 {
        match self {
            Proto::Tcp => 6,
            Proto::Udp => 17,
            Proto::Icmp => 1,
        }
    }
}

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

fn push_base62(out: &mut Vec<u8>, mut v: u64) {
    let mut buf = [0u8; 11];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = BASE62[(v % 62) as usize];
        v /= 62;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// A Zeek connection uid: `C` followed by the base62 forms of a 64-bit and a
/// 32-bit random word, as Zeek builds it, hence usually 18 characters
/// (`CwO2bA321vyBxBjtxb`) and occasionally shorter.
pub(crate) fn new_uid(rng: &mut Rng, out: &mut Vec<u8>) {
    out.push(b'C');
    push_base62(out, rng.next_u64());
    push_base62(out, rng.next_u64() >> 32);
}

/// SHA-1 (FIPS 180-4), only for Community ID; not used for security.
/// Works on the stack: one call per row must not allocate.
pub(crate) fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [
        0x6745_2301,
        0xEFCD_AB89,
        0x98BA_DCFE,
        0x1032_5476,
        0xC3D2_E1F0,
    ];
    let full = data.len() / 64 * 64;
    for block in data[..full].chunks_exact(64) {
        sha1_block(&mut h, block);
    }
    let rest = &data[full..];
    let mut tail = [0u8; 128];
    tail[..rest.len()].copy_from_slice(rest);
    tail[rest.len()] = 0x80;
    let tail_len = if rest.len() < 56 { 64 } else { 128 };
    let bit_len = (data.len() as u64).wrapping_mul(8);
    tail[tail_len - 8..tail_len].copy_from_slice(&bit_len.to_be_bytes());
    for block in tail[..tail_len].chunks_exact(64) {
        sha1_block(&mut h, block);
    }
    let mut out = [0u8; 20];
    for (chunk, v) in out.chunks_exact_mut(4).zip(h) {
        chunk.copy_from_slice(&v.to_be_bytes());
    }
    out
}

fn sha1_block(h: &mut [u32; 5], block: &[u8]) {
    let mut w = [0u32; 80];
    for (i, word) in block.chunks_exact(4).enumerate() {
        w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
    }
    for i in 16..80 {
        w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
    }
    let [mut a, mut b, mut c, mut d, mut e] = *h;
    for (i, wi) in w.iter().enumerate() {
        let (f, k) = match i {
            0..=19 => ((b & c) | (!b & d), 0x5A82_7999),
            20..=39 => (b ^ c ^ d, 0x6ED9_EBA1),
            40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC),
            _ => (b ^ c ^ d, 0xCA62_C1D6),
        };
        let t = a
            .rotate_left(5)
            .wrapping_add(f)
            .wrapping_add(e)
            .wrapping_add(k)
            .wrapping_add(*wi);
        e = d;
        d = c;
        c = b.rotate_left(30);
        b = a;
        a = t;
    }
    for (hv, v) in h.iter_mut().zip([a, b, c, d, e]) {
        *hv = hv.wrapping_add(v);
    }
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn push_base64(out: &mut Vec<u8>, data: &[u8]) {
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(BASE64[((n >> (18 - 6 * i)) & 63) as usize]);
            } else {
                out.push(b'=');
            }
        }
    }
}

/// ICMP type/code as Community ID sees them: request/reply types map to their
/// counterpart so both directions hash alike; others are one-way.
fn icmp_ports(icmp_type: u16, code: u16) -> (u16, u16, bool) {
    let counterpart = match icmp_type {
        8 => Some(0),
        0 => Some(8),
        13 => Some(14),
        14 => Some(13),
        15 => Some(16),
        16 => Some(15),
        17 => Some(18),
        18 => Some(17),
        10 => Some(9),
        9 => Some(10),
        _ => None,
    };
    match counterpart {
        Some(c) => (icmp_type, c, false),
        None => (icmp_type, code, true),
    }
}

/// Appends the Community ID v1 (seed 0) of an IPv4 flow, `1:<base64 sha1>`.
/// For ICMP, `sport`/`dport` are the type and code, as in Zeek's conn log.
pub(crate) fn push_community_id(
    out: &mut Vec<u8>,
    proto: Proto,
    src: [u8; 4],
    sport: u16,
    dst: [u8; 4],
    dport: u16,
) {
    let (sp, dp, one_way) = match proto {
        Proto::Icmp => icmp_ports(sport, dport),
        _ => (sport, dport, false),
    };
    let ordered = one_way || src < dst || (src == dst && sp < dp);
    let (a, ap, b, bp) = if ordered {
        (src, sp, dst, dp)
    } else {
        (dst, dp, src, sp)
    };
    let mut input = [0u8; 16];
    // input[0..2] is the seed, 0.
    input[2..6].copy_from_slice(&a);
    input[6..10].copy_from_slice(&b);
    input[10] = proto.number();
    // input[11] is padding.
    input[12..14].copy_from_slice(&ap.to_be_bytes());
    input[14..16].copy_from_slice(&bp.to_be_bytes());
    out.extend_from_slice(b"1:");
    push_base64(out, &sha1(&input));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn cid(proto: Proto, src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16) -> String {
        let mut out = Vec::new();
        push_community_id(&mut out, proto, src, sport, dst, dport);
        String::from_utf8(out).expect("ascii")
    }

    #[test]
    fn sha1_known_answers() {
        assert_eq!(
            hex(&sha1(b"abc")),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(hex(&sha1(b"")), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        let long = b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
        assert_eq!(hex(&sha1(long)), "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
        let million = vec![b'a'; 1_000_000];
        assert_eq!(
            hex(&sha1(&million)),
            "34aa973cd4c4daa4f61eeb2bdbad27316534016f"
        );
    }

    #[test]
    fn community_id_spec_vectors() {
        let (a, b) = ([1, 2, 3, 4], [5, 6, 7, 8]);
        assert_eq!(
            cid(Proto::Tcp, a, 1122, b, 3344),
            "1:wCb3OG7yAFWelaUydu0D+125CLM="
        );
        assert_eq!(
            cid(Proto::Tcp, b, 3344, a, 1122),
            "1:wCb3OG7yAFWelaUydu0D+125CLM="
        );
        assert_eq!(
            cid(Proto::Udp, a, 1122, b, 3344),
            "1:0Mu9InQx6z4ZiCZM/7HXi2WMhOg="
        );
        assert_eq!(
            cid(Proto::Icmp, a, 8, b, 0),
            "1:crodRHL2FEsHjbv3UkRrfbs4bZ0="
        );
        assert_eq!(
            cid(Proto::Icmp, b, 0, a, 0),
            "1:crodRHL2FEsHjbv3UkRrfbs4bZ0="
        );
    }

    #[test]
    fn community_id_matches_real_uwf_row() {
        // From the UWF-ZeekData22 CSV excerpt: 143.88.5.12:36073 -> 143.88.5.1:53/udp.
        let id = cid(Proto::Udp, [143, 88, 5, 12], 36073, [143, 88, 5, 1], 53);
        assert_eq!(id, "1:Z2qpnUv+rxq4N1rn7Go962U/gi8=");
    }

    #[test]
    fn uid_shape() {
        let mut rng = Rng::new(9);
        let mut lens = [0usize; 20];
        for _ in 0..1000 {
            let mut out = Vec::new();
            new_uid(&mut rng, &mut out);
            assert_eq!(out[0], b'C');
            assert!(out[1..].iter().all(u8::is_ascii_alphanumeric));
            lens[out.len()] += 1;
        }
        // Mostly 18 characters, as in real Zeek logs.
        assert!(lens[18] > 650, "{lens:?}");
        assert_eq!(lens[..14].iter().sum::<usize>(), 0);
    }
}
