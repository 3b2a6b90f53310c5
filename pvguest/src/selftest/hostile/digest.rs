//! The `hostile` group's bookkeeping, host-testable: the seeded generator that picks each
//! call ([`Prng`], SplitMix64), the digest of a class's answers ([`Digest`], FNV-1a 64 over
//! each answer's eight little-endian bytes, so that any difference in any answer or in their
//! order shows), and the distinct answers per kind of call ([`Kinds`], for the log).

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

/// SplitMix64: small, seeded, the same sequence on every platform.
#[derive(Clone, Debug)]
pub struct Prng(u64);

impl Prng {
    /// The generator for `seed`.
    pub const fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64().checked_rem(n).unwrap_or(0)
    }

    /// One element of `items` (`None` when it is empty).
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        let i = usize::try_from(self.below(items.len() as u64)).ok()?;
        items.get(i)
    }
}

/// FNV-1a 64 of a sequence of answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Digest(u64);

impl Default for Digest {
    fn default() -> Self {
        Self::new()
    }
}

impl Digest {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;

    /// The digest of no answers.
    pub const fn new() -> Self {
        Self(Self::OFFSET)
    }

    /// Adds one answer.
    pub fn add(&mut self, answer: i64) {
        for b in answer.to_le_bytes() {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(Self::PRIME);
        }
    }

    /// The digest as 16 hex digits.
    pub fn hex(&self) -> String {
        format!("{:016x}", self.0)
    }
}

/// The answers seen per kind of call, each answer once, in order of kind name then answer.
#[derive(Clone, Debug, Default)]
pub struct Kinds(BTreeMap<String, Vec<i64>>);

impl Kinds {
    /// Notes that a call of `kind` answered `answer`.
    pub fn note(&mut self, kind: &str, answer: i64) {
        let seen = match self.0.get_mut(kind) {
            Some(seen) => seen,
            None => self.0.entry(String::from(kind)).or_default(),
        };
        if let Err(at) = seen.binary_search(&answer) {
            seen.insert(at, answer);
        }
    }

    /// `kind=a/b kind2=c ...`: every kind and the answers it gave, `per_line` kinds a line
    /// (the kernel's log cuts long lines).
    pub fn lines(&self, per_line: usize) -> Vec<String> {
        let words: Vec<String> = self
            .0
            .iter()
            .map(|(kind, answers)| {
                let list: Vec<String> = answers.iter().map(|a| format!("{a}")).collect();
                format!("{kind}={}", list.join("/"))
            })
            .collect();
        words.chunks(per_line.max(1)).map(|c| c.join(" ")).collect()
    }
}

/// One class's record: the calls made, the digest of their answers and the kinds.
#[derive(Clone, Debug, Default)]
pub struct ClassRecord {
    /// Calls made.
    pub calls: u64,
    /// The digest of their answers, in order.
    pub digest: Digest,
    /// Distinct answers per kind.
    pub kinds: Kinds,
}

impl ClassRecord {
    /// Records one call of `kind` and its answer.
    pub fn add(&mut self, kind: &str, answer: i64) {
        self.calls = self.calls.saturating_add(1);
        self.digest.add(answer);
        self.kinds.note(kind, answer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generator_is_seeded_and_deterministic() {
        let (mut a, mut b, mut c) = (Prng::new(1), Prng::new(1), Prng::new(2));
        let xs: Vec<u64> = (0..8).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..8).map(|_| b.next_u64()).collect();
        let zs: Vec<u64> = (0..8).map(|_| c.next_u64()).collect();
        assert_eq!(xs, ys);
        assert_ne!(xs, zs);
        // SplitMix64's published first output for seed 0.
        assert_eq!(Prng::new(0).next_u64(), 0xe220_a839_7b1d_cdaf);
        assert_eq!(Prng::new(5).below(0), 0);
        assert!((0..1000).all(|_| a.below(7) < 7));
        assert_eq!(a.pick::<u8>(&[]), None);
    }

    #[test]
    fn the_digest_changes_with_any_answer_or_order() {
        let digest = |xs: &[i64]| {
            let mut d = Digest::new();
            xs.iter().for_each(|&x| d.add(x));
            d.hex()
        };
        assert_eq!(digest(&[]), "cbf29ce484222325");
        assert_ne!(digest(&[-22, -38]), digest(&[-38, -22]));
        assert_ne!(digest(&[-22, -38]), digest(&[-22, -3]));
        assert_eq!(digest(&[-22, -38]), digest(&[-22, -38]));
    }

    #[test]
    fn kinds_keep_each_answer_once() {
        let mut r = ClassRecord::default();
        for (k, a) in [("send", -22), ("close", -22), ("send", -22), ("send", 0)] {
            r.add(k, a);
        }
        assert_eq!(r.calls, 4);
        assert_eq!(r.kinds.lines(8), ["close=-22 send=-22/0"]);
        assert_eq!(r.kinds.lines(1), ["close=-22", "send=-22/0"]);
    }
}
