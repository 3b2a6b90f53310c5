//! Xen's byte rings: the console's `in`/`out` (`io/console.h`) and xenstore's `req`/`rsp`
//! (`io/xs_wire.h`) share one scheme, written once here.
//!
//! A ring is a power-of-two array of bytes with two free-running `u32` indexes: the producer
//! advances `prod` after writing bytes, the consumer advances `cons` after reading them, both
//! wrapping over all of `u32`. The slot of index `i` is `i & (size - 1)`. `prod - cons`
//! (wrapping) is the number of bytes in the ring; above `size` the peer has corrupted the
//! indexes and the ring must be refused.
//!
//! This module is only the arithmetic: it says which slots a transfer touches and what the
//! index becomes. The caller copies the bytes (volatile or atomic accesses of shared memory)
//! and orders them with the barriers of the ring's protocol: read the other side's index, a
//! barrier, the data, a barrier, then publish its own index.
#![warn(clippy::arithmetic_side_effects)]

use core::ops::Range;

/// A byte ring's geometry: its size, a power of two.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteRing {
    size: u32,
}

/// The indexes of a byte ring are impossible: `prod - cons` exceeds the ring size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CorruptIndexes {
    /// `prod - cons` (wrapping), as found.
    pub used: u32,
}

/// One transfer into or out of a ring: `len` bytes at the slots `first` then `second` (empty
/// unless the transfer wraps), after which the moving index is `new_index`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transfer {
    /// Bytes moved (at most what was asked for and what the ring allows).
    pub len: usize,
    /// Slots of the first `first.len()` bytes.
    pub first: Range<usize>,
    /// Slots of the remaining bytes (from slot 0), empty if the transfer does not wrap.
    pub second: Range<usize>,
    /// The producer (for [`ByteRing::produce`]) or consumer (for [`ByteRing::consume`])
    /// index after the transfer.
    pub new_index: u32,
}

impl ByteRing {
    /// The geometry of a ring of `size` bytes, or `None` if `size` is not a power of two.
    pub const fn new(size: u32) -> Option<Self> {
        if size.is_power_of_two() {
            Some(Self { size })
        } else {
            None
        }
    }

    /// The ring size in bytes.
    pub const fn size(&self) -> u32 {
        self.size
    }

    /// The slot of the free-running index `idx` (`MASK_XENCONS_IDX`, `MASK_XENSTORE_IDX`).
    pub const fn slot(&self, idx: u32) -> u32 {
        idx & self.size.wrapping_sub(1) // size >= 1: a power of two
    }

    /// Bytes in the ring, checked: more than the ring holds means corrupt indexes.
    pub const fn used(&self, cons: u32, prod: u32) -> Result<u32, CorruptIndexes> {
        let used = prod.wrapping_sub(cons);
        if used > self.size {
            Err(CorruptIndexes { used })
        } else {
            Ok(used)
        }
    }

    /// Free bytes, checked as [`ByteRing::used`].
    pub const fn space(&self, cons: u32, prod: u32) -> Result<u32, CorruptIndexes> {
        match self.used(cons, prod) {
            Ok(used) => Ok(self.size.saturating_sub(used)), // used <= size (checked)
            Err(e) => Err(e),
        }
    }

    /// The producer's transfer of up to `want` bytes at `prod` (as many as there is space).
    pub fn produce(&self, cons: u32, prod: u32, want: usize) -> Result<Transfer, CorruptIndexes> {
        let space = self.space(cons, prod)?;
        Ok(self.transfer(prod, space, want))
    }

    /// The consumer's transfer of up to `want` bytes at `cons` (as many as the ring holds).
    pub fn consume(&self, cons: u32, prod: u32, want: usize) -> Result<Transfer, CorruptIndexes> {
        let used = self.used(cons, prod)?;
        Ok(self.transfer(cons, used, want))
    }

    /// `min(want, available)` bytes at index `at`, split where the ring wraps.
    fn transfer(&self, at: u32, available: u32, want: usize) -> Transfer {
        let len = available.min(u32::try_from(want).unwrap_or(u32::MAX));
        let start = self.slot(at) as usize;
        // start < size and first_len <= size - start: no step can overflow.
        let until_end = (self.size as usize).saturating_sub(start);
        let first_len = (len as usize).min(until_end);
        Transfer {
            len: len as usize,
            first: start..start.saturating_add(first_len),
            second: 0..(len as usize).saturating_sub(first_len),
            new_index: at.wrapping_add(len),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RING: ByteRing = match ByteRing::new(1024) {
        Some(r) => r,
        None => panic!("1024 is a power of two"),
    };

    #[test]
    fn sizes_must_be_powers_of_two_and_slots_wrap() {
        assert_eq!(ByteRing::new(1000), None);
        assert_eq!(ByteRing::new(0), None);
        assert_eq!(RING.size(), 1024);
        assert_eq!(RING.slot(1023), 1023);
        assert_eq!(RING.slot(1024), 0);
        assert_eq!(RING.slot(u32::MAX), 1023);
    }

    #[test]
    fn impossible_indexes_are_refused_as_corrupt() {
        assert_eq!(RING.used(0, 1024), Ok(1024));
        assert_eq!(RING.used(0, 1025), Err(CorruptIndexes { used: 1025 }));
        // prod behind cons: a huge wrapped difference.
        assert_eq!(
            RING.space(10, 5),
            Err(CorruptIndexes { used: u32::MAX - 4 })
        );
        assert!(RING.produce(0, 2000, 1).is_err());
        assert!(RING.consume(0, 2000, 1).is_err());
    }

    #[test]
    fn transfers_split_at_the_ring_end_and_wrap_at_u32_max() {
        // 10 bytes written at slot 1020: 4 at the end, 6 from slot 0.
        let t = RING.produce(1000, 1020, 10).unwrap();
        assert_eq!(
            t,
            Transfer {
                len: 10,
                first: 1020..1024,
                second: 0..6,
                new_index: 1030
            }
        );
        // Limited by space: the ring holds 1000 of 1024.
        assert_eq!(RING.produce(20, 1020, 100).unwrap().len, 24);
        // Full and empty.
        assert_eq!(RING.produce(0, 1024, 5).unwrap().len, 0);
        assert_eq!(RING.consume(7, 7, 5).unwrap().len, 0);
        // Indexes wrapping over u32: cons = 2^32 - 2, prod = 3 holds 5 bytes.
        let t = RING.consume(u32::MAX - 1, 3, 64).unwrap();
        assert_eq!(
            t,
            Transfer {
                len: 5,
                first: 1022..1024,
                second: 0..3,
                new_index: 3
            }
        );
    }
}
