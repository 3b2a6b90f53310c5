//! The deterministic blob of `GET /blob/<n>`: byte `i` is the top byte of
//! `i × 0x9E3779B97F4A7C15` (64-bit wrapping multiplication, the golden-ratio constant), so a
//! client can check any range without the service keeping anything.

/// The multiplier.
pub const MULTIPLIER: u64 = 0x9E37_79B9_7F4A_7C15;

/// Byte `index` of every blob.
pub const fn byte(index: u64) -> u8 {
    (index.wrapping_mul(MULTIPLIER) >> 56) as u8
}

/// Fills `out` with bytes `start..start + out.len()`.
pub fn fill(start: u64, out: &mut [u8]) {
    let mut value = start.wrapping_mul(MULTIPLIER);
    for b in out {
        *b = (value >> 56) as u8;
        value = value.wrapping_add(MULTIPLIER);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_is_byte_by_byte() {
        let mut out = [0u8; 300];
        fill(u64::MAX - 100, &mut out);
        for (i, b) in out.iter().enumerate() {
            assert_eq!(*b, byte((u64::MAX - 100).wrapping_add(i as u64)));
        }
        assert_eq!(byte(0), 0);
        assert_eq!(byte(1), 0x9e);
    }
}
