//! How many connections the service holds and how large their socket buffers are, from a
//! memory budget: one rule, [`Pool::for_memory`].
//!
//! A connection slot costs its socket's receive and transmit buffers (`2 × buffer`, allocated
//! once, when the service starts) plus what one connection may hold of its own at the worst
//! moment, [`WORKING_BYTES`]: a value of `PUT /kv/<key>` or the answer of `GET /kv/<key>`
//! ([`MAX_VALUE`]), or a head ([`MAX_HEAD`]), never two of them at once, and the socket and
//! connection structures. The rule:
//!
//! 1. With [`BUFFER`] (16 KiB) buffers, `slots = budget / (2 × 16 KiB + WORKING_BYTES)`.
//! 2. Above [`MAX_SLOTS`] slots, the count stays at `MAX_SLOTS` and the rest goes to the
//!    buffers (larger windows, faster transfers): `buffer = (budget / MAX_SLOTS −
//!    WORKING_BYTES) / 2`, in whole KiB, at most [`MAX_BUFFER`].
//! 3. Below [`MIN_SLOTS`] slots, the count stays at `MIN_SLOTS` and the buffers shrink to fit:
//!    `buffer = (budget / MIN_SLOTS − WORKING_BYTES) / 2` in whole KiB, at least
//!    [`MIN_BUFFER`] (so a budget under `MIN_SLOTS × (2 × MIN_BUFFER + WORKING_BYTES)`, about
//!    580 KiB, is exceeded: the service does not run with fewer slots or smaller buffers).
//!
//! [`MAX_SLOTS`] bounds the work per frame: smoltcp looks at every socket for each segment
//! that arrives, and [`crate::Server`] at every slot each turn.
//! [`DEFAULT_BUDGET`] gives 24 slots of 16 KiB + 16 KiB.
//!
//! Why 16 KiB, for now: a socket's buffers are its TCP window (receive) and what it may have
//! in flight (transmit), so one connection moves at most a buffer per round trip, and a 16 MiB
//! transfer takes about 1,000 round trips (issue 30). 64 KiB buffers left the guest's 4 MiB
//! budget 28 slots, and 32 KiB 50: too few to hold a burst. hv's churn check (200
//! connections, then a timed `GET /`) then found every slot taken by a handshake of the same
//! turn, and the GET's SYN was dropped (5.6 s until QEMU sent it again); slow heads lost GETs
//! too. With 83 slots both pass. The guest's heap, whose quarter is the budget, was held at
//! 16 MiB (83 slots in every guest); it now takes half of the guest's largest free run, up
//! to 256 MiB, and smoltcp scales its window by itself when rule 2 makes the buffer larger
//! (up to [`MAX_BUFFER`]).
//!
//! Why [`MAX_SLOTS`] is 128, not the 256 it was: a 128 MiB guest then had 256 slots of
//! 22 KiB, and its upload from dom0 (issue 30, `cargo xtask bench --features-only`) was
//! bounded by that window: the guest's event loop slept more than half of the transfer
//! (`"loop":{"asleep_us"}` in `GET /`) while dom0 waited, and each acknowledgement covered
//! about a whole window (`tx_acks` against the bytes moved). With 128 slots the same guest
//! has 54 KiB buffers (the upload went from about 15 to 22 MB/s in one boot), still more
//! slots than the churn checks need (83), and only open connections cost smoltcp anything
//! per frame (free slots wait outside the socket set, [`crate::server`]).
//!
//! [`MAX_VALUE`]: crate::MAX_VALUE
//! [`MAX_HEAD`]: crate::MAX_HEAD

use crate::{MAX_HEAD, MAX_VALUE};

/// The buffer size of rule 1 (the module docs say why 16 KiB for now).
pub const BUFFER: usize = 16 * 1024;
/// The smallest buffer (rule 3): a few full segments.
pub const MIN_BUFFER: usize = 4 * 1024;
/// The largest buffer (rule 2): smoltcp scales its window (RFC 7323) above 64 KiB.
pub const MAX_BUFFER: usize = 256 * 1024;
/// The fewest slots (rule 3).
pub const MIN_SLOTS: usize = 20;
/// The most slots (rule 2): beyond it the memory goes to larger windows (the module docs
/// say why 128).
pub const MAX_SLOTS: usize = 128;
/// What one connection may hold besides its socket buffers: the larger of a value and a head,
/// and 1 KiB for the socket and connection structures.
pub const WORKING_BYTES: usize = max(MAX_VALUE, MAX_HEAD) + 1024;
/// The budget of the original pool: 24 slots of [`BUFFER`] + [`BUFFER`].
pub const DEFAULT_BUDGET: usize = 24 * (2 * BUFFER + WORKING_BYTES);

const fn max(a: usize, b: usize) -> usize {
    if a > b { a } else { b }
}

/// The connection slots: how many, and each socket's receive and transmit buffer size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool {
    /// Connection slots (listening sockets when free).
    pub slots: usize,
    /// Receive buffer, and transmit buffer, of each socket, in bytes.
    pub buffer: usize,
}

impl Pool {
    /// The pool for `budget` bytes of memory (the module docs give the rule).
    pub const fn for_memory(budget: usize) -> Self {
        let slots = budget / (2 * BUFFER + WORKING_BYTES);
        if slots > MAX_SLOTS {
            let buffer = (budget / MAX_SLOTS - WORKING_BYTES) / 2 / 1024 * 1024;
            let buffer = if buffer > MAX_BUFFER {
                MAX_BUFFER
            } else {
                buffer
            };
            Self {
                slots: MAX_SLOTS,
                buffer,
            }
        } else if slots < MIN_SLOTS {
            let each = budget / MIN_SLOTS;
            let buffer = if each > WORKING_BYTES + 2 * MIN_BUFFER {
                (each - WORKING_BYTES) / 2 / 1024 * 1024
            } else {
                MIN_BUFFER
            };
            Self {
                slots: MIN_SLOTS,
                buffer,
            }
        } else {
            Self {
                slots,
                buffer: BUFFER,
            }
        }
    }

    /// Bytes the pool may use at most: its buffers and every connection's working memory.
    pub const fn bytes(&self) -> usize {
        self.slots * (2 * self.buffer + WORKING_BYTES)
    }
}

impl Default for Pool {
    /// [`Pool::for_memory`]`(`[`DEFAULT_BUDGET`]`)`: 24 slots of 16 KiB + 16 KiB.
    fn default() -> Self {
        Self::for_memory(DEFAULT_BUDGET)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_24_slots_of_16_kib() {
        assert_eq!(
            Pool::default(),
            Pool {
                slots: 24,
                buffer: 16 * 1024
            }
        );
    }

    #[test]
    fn more_memory_more_slots_then_larger_buffers() {
        let kib = 1024;
        let mib = 1024 * kib;
        for (budget, slots, buffer) in [
            (0, MIN_SLOTS, MIN_BUFFER),
            (500 * kib, MIN_SLOTS, MIN_BUFFER),
            (800 * kib, MIN_SLOTS, 11 * kib),
            (mib, 20, 16 * kib),
            (2 * mib, 41, 16 * kib),
            (3 * mib, 62, 16 * kib),
            (4 * mib, 83, 16 * kib),
            (6 * mib, 125, 16 * kib),
            (12 * mib, MAX_SLOTS, 39 * kib),
            (16 * mib, MAX_SLOTS, 55 * kib),
            (64 * mib, MAX_SLOTS, 247 * kib),
            (80 * mib, MAX_SLOTS, MAX_BUFFER),
        ] {
            let pool = Pool::for_memory(budget);
            assert_eq!((pool.slots, pool.buffer), (slots, buffer), "{budget}");
            if budget >= MIN_SLOTS * (2 * MIN_BUFFER + WORKING_BYTES) {
                assert!(pool.bytes() <= budget, "{budget}: {pool:?}");
            }
        }
        // Monotonic: more memory never gives fewer slots or smaller buffers.
        let mut last = Pool::for_memory(0);
        for budget in (0..80 * mib).step_by(37 * kib) {
            let pool = Pool::for_memory(budget);
            assert!(pool.slots >= last.slots, "{budget}");
            assert!(pool.buffer >= last.buffer, "{budget}");
            last = pool;
        }
    }
}
