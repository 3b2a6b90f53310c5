//! The values the `vector-registers` self-test leaves in xmm0..xmm15 and MXCSR, and their
//! comparison with what it finds there later (host-testable; the test itself is
//! `vector_registers`, kernel only).
//!
//! Every value carries the domain id, so a value another domain left behind never passes for
//! this domain's own, and the round, so a value this domain itself left in an earlier round
//! does not either.

use core::fmt;

/// The number of xmm registers the test fills (xmm0..xmm15 in 64-bit mode).
pub const REGISTERS: usize = 16;

/// MXCSR after reset: every exception masked, round to nearest, no flags.
pub const MXCSR_DEFAULT: u32 = 0x1f80;

/// The value for `xmm<register>` in `round` of domain `domid`: each 64-bit half is a tag
/// byte (`0x5a` low, `0xa5` high), the domain id in bits 32..=47, the round's low 24 bits in
/// bits 8..=31 and the register index in bits 0..=7. Distinct across registers, halves,
/// domains and (for 2^24 rounds) rounds.
pub fn value(domid: u16, round: u32, register: u8) -> u128 {
    let body = u64::from(domid) << 32 | u64::from(round & 0xff_ffff) << 8 | u64::from(register);
    let low = 0x5a00_0000_0000_0000 | body;
    let high = 0xa500_0000_0000_0000 | body;
    u128::from(high) << 64 | u128::from(low)
}

/// The values for xmm0..xmm15 in `round` of domain `domid`.
pub fn pattern(domid: u16, round: u32) -> [u128; REGISTERS] {
    let mut values = [0; REGISTERS];
    for (register, v) in (0u8..).zip(values.iter_mut()) {
        *v = value(domid, round, register);
    }
    values
}

/// The MXCSR value domain `domid` sets: the default (every exception masked) with rounding
/// control (bits 13..=14) from the domain id's bits 0..=1, flush-to-zero (bit 15) from its
/// bit 2 and the six sticky exception flags (bits 0..=5) from its bits 3..=8, so that
/// domains 1 to 511 each set a different value, none of them the default. Masked flags raise
/// nothing, and DAZ (bit 6, absent on some CPUs) stays clear.
pub fn mxcsr(domid: u16) -> u32 {
    let d = u32::from(domid);
    MXCSR_DEFAULT | (d & 3) << 13 | (d >> 2 & 1) << 15 | (d >> 3 & 0x3f)
}

/// A register that did not hold the value this domain left in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mismatch {
    /// The register index (`xmm<register>`).
    pub register: usize,
    /// What it held.
    pub seen: u128,
    /// What this domain had loaded.
    pub expected: u128,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "xmm{} is {:#034x}, expected {:#034x}",
            self.register, self.seen, self.expected
        )
    }
}

/// The first register whose value in `seen` differs from `expected`.
pub fn first_mismatch(expected: &[u128; REGISTERS], seen: &[u128; REGISTERS]) -> Option<Mismatch> {
    expected
        .iter()
        .zip(seen)
        .position(|(e, s)| e != s)
        .map(|register| Mismatch {
            register,
            seen: seen[register],
            expected: expected[register],
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_carry_domain_round_and_register() {
        assert_eq!(
            value(2, 7, 3),
            0xa500_0002_0000_0703_5a00_0002_0000_0703,
            "the layout the module docs give"
        );
        let mut all = std::collections::HashSet::new();
        for domid in [1, 2, 3, 0x7fef] {
            for round in [0, 1, 2, 0xff_ffff] {
                let p = pattern(domid, round);
                for (i, v) in p.iter().enumerate() {
                    let high = u64::try_from(v >> 64).expect("64 bits");
                    let low = u64::try_from(v & u128::from(u64::MAX)).expect("64 bits");
                    assert_ne!(high, low, "the two halves differ");
                    assert_eq!(low >> 32 & 0xffff, u64::from(domid));
                    assert_eq!(low & 0xff, i as u64);
                    assert!(all.insert(*v), "{v:#x} used twice");
                }
            }
        }
        assert!(!all.contains(&0), "a zeroed register never passes");
    }

    #[test]
    fn mxcsr_differs_per_domain_and_sets_only_safe_bits() {
        let mut seen = std::collections::HashSet::new();
        for domid in 1..512 {
            let m = mxcsr(domid);
            assert_ne!(m, MXCSR_DEFAULT, "domain {domid}");
            assert!(seen.insert(m), "domain {domid}: {m:#x} twice");
            assert_eq!(m & 0x1f80, 0x1f80, "every exception stays masked");
            assert_eq!(m & !0xffbf, 0, "no DAZ, nothing reserved");
        }
        assert_eq!(mxcsr(1), 0x3f80, "domain 1 rounds down");
        assert_eq!(mxcsr(2), 0x5f80, "domain 2 rounds up");
    }

    #[test]
    fn first_mismatch_names_the_register_and_both_values() {
        let expected = pattern(1, 0);
        assert_eq!(first_mismatch(&expected, &expected), None);
        let mut seen = expected;
        seen[12] = value(2, 0, 12);
        seen[14] = 0;
        let m = first_mismatch(&expected, &seen).expect("xmm12 differs");
        assert_eq!(m.register, 12);
        assert_eq!(
            m.to_string(),
            "xmm12 is 0xa50000020000000c5a0000020000000c, \
             expected 0xa50000010000000c5a0000010000000c"
        );
        // Another round's value is caught too.
        assert!(first_mismatch(&expected, &pattern(1, 1)).is_some());
        // So is a register another context switch zeroed.
        let zeroed = first_mismatch(&expected, &[0; REGISTERS]).map(|m| m.register);
        assert_eq!(zeroed, Some(0));
    }
}
