//! Stable 64-bit hashing of row contents. Split assignment must not change
//! between runs, Rust releases or machines, so no `std`/`ahash` hashers
//! (their seeds and algorithms are not promised to stay put).

/// Multiplier of the per-value step (FxHash's constant).
const K: u64 = 0x517c_c1b7_2722_0a95;

/// Marker hashed in place of a null value.
pub(crate) const NULL: u64 = 0x6e75_6c6c_6e75_6c6c;

/// Folds one 64-bit value into a running hash. Cheap, and for a fixed
/// running hash a bijection of `v`, so rows differing in one value never collide.
#[inline]
pub(crate) fn add(h: u64, v: u64) -> u64 {
    (h.rotate_left(5) ^ v).wrapping_mul(K)
}

/// A second running hash, independent of [`add`] (another multiplier and a
/// xor-shift per step) and, like it, a bijection of `v` for a fixed running
/// hash: the two together key a row by 128 bits.
#[inline]
pub(crate) fn add2(h: u64, v: u64) -> u64 {
    let x = (h ^ v).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    x ^ (x >> 29)
}

/// Murmur3's 64-bit finaliser: spreads every input bit over the output, so
/// the result can be ranked as a uniform random number.
#[inline]
pub(crate) fn finish(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

/// Hash of a byte string (length-prefixed, so "ab"+"c" differs from "a"+"bc").
pub(crate) fn bytes(b: &[u8]) -> u64 {
    let mut h = add(0, b.len() as u64);
    let mut chunks = b.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        h = add(h, u64::from_le_bytes(w));
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut w = [0u8; 8];
        w[..rest.len()].copy_from_slice(rest);
        h = add(h, u64::from_le_bytes(w));
    }
    finish(h)
}

/// Bits of a number with -0.0 folded into 0.0 and every NaN into one NaN.
#[inline]
pub(crate) fn f64_bits(v: f64) -> u64 {
    if v == 0.0 {
        0
    } else if v.is_nan() {
        0x7ff8_0000_0000_0000
    } else {
        v.to_bits()
    }
}

/// Bits of a feature value as the model sees it (f32), canonical like [`f64_bits`].
#[inline]
pub(crate) fn f32_bits(v: f32) -> u32 {
    if v == 0.0 {
        0
    } else if v.is_nan() {
        0x7fc0_0000
    } else {
        v.to_bits()
    }
}

/// A uniform rank for item `h` under `seed`, salted per use so that the
/// test draw and the validation draw are independent.
#[inline]
pub(crate) fn rank(seed: u64, salt: u64, h: u64, occurrence: u64) -> u64 {
    finish(add(
        add(add(finish(seed ^ salt), h), occurrence),
        0x2545_f491_4f6c_dd1d,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_values() {
        // Pinned: changing these would silently move rows between split sides.
        assert_eq!(bytes(b"CxliI024KyrEUEt6Za"), bytes(b"CxliI024KyrEUEt6Za"));
        assert_ne!(bytes(b"ab"), bytes(b"ab\0"));
        assert_eq!(f64_bits(-0.0), f64_bits(0.0));
        assert_eq!(f64_bits(f64::NAN), f64_bits(-f64::NAN));
        assert_eq!(finish(1), 0xb456_bcfc_34c2_cb2c);
        assert_eq!(add(0, 1), K);
    }
}
