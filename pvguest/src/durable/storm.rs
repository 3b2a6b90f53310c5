//! The deterministic put storm of the durable-storage check (`kv-storm=<seed>`): which key and
//! value put number `n` writes. The harness (`xtask/src/xen/blk.rs`) computes the same.

use alloc::format;
use alloc::string::String;

/// Keys the storm cycles through.
pub const STORM_KEYS: u64 = 40;

/// The key of put `n`: `k00` .. `k39`.
pub fn key(seed: u64, n: u64) -> String {
    format!("k{:02}", n.wrapping_mul(7).wrapping_add(seed) % STORM_KEYS)
}

/// The value of put `n`: `s<seed>n<n>` and `n % 64` times `x` (printable, so the guest can
/// print it and the harness compare it).
pub fn value(seed: u64, n: u64) -> String {
    let mut v = format!("s{seed}n{n}");
    for _ in 0..n % 64 {
        v.push('x');
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_storm_is_deterministic_and_cycles_its_keys() {
        assert_eq!(key(1, 0), "k01");
        assert_eq!(key(1, 1), "k08");
        assert_eq!(value(2, 3), "s2n3xxx");
        assert_eq!(value(2, 64), "s2n64");
        let keys: std::collections::BTreeSet<_> = (0..40).map(|n| key(5, n)).collect();
        assert_eq!(keys.len(), 40, "7 is prime to 40: every key within 40 puts");
    }
}
