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
//! 2. Above [`MAX_SLOTS`] slots, the count stays at `MAX_SLOTS` and the rest goes to larger
//!    buffers (larger windows, faster transfers): first to [`LARGE_SLOTS`] of the slots, up
//!    to [`MAX_BUFFER`] each, then what is left to every other slot alike, up to
//!    `MAX_BUFFER` too; each buffer in whole KiB. A free large slot listens before any other,
//!    so a new connection takes a large slot when one is free ([`crate::server`]).
//! 3. Below [`MIN_SLOTS`] slots, the count stays at `MIN_SLOTS` and the buffers shrink to fit:
//!    `buffer = (budget / MIN_SLOTS − WORKING_BYTES) / 2` in whole KiB, at least
//!    [`MIN_BUFFER`] (so a budget under `MIN_SLOTS × (2 × MIN_BUFFER + WORKING_BYTES)`, about
//!    580 KiB, is exceeded: the service does not run with fewer slots or smaller buffers).
//!
//! The pool's bytes ([`Pool::bytes`]: every slot's two buffers and [`WORKING_BYTES`]) never
//! exceed the budget, but under rule 3's floor.
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
//! Why a few large slots beside the others (issue 30): a single transfer moves at most a
//! window per round trip, so one connection from dom0 over the bridge was bounded by the
//! 54 KiB that rule 2 gave each of the 128 slots of a 128 MiB guest (16 MiB budget), both
//! ways, while the churn checks need many slots, not large ones. Rule 2 now gives
//! [`LARGE_SLOTS`] of them 256 KiB first and the other 124 49 KiB: the same total, the same
//! slot count. A large slot costs 2 × 240 KiB beyond a 16 KiB one, so four cost the budget
//! under 2 MiB; more than four bulk transfers at once share the smaller windows. Measured
//! with `cargo xtask bench --features-only` (`PVXEN_BENCH_EXTRA`, one sample per variant,
//! two boots): dom0's download took 35.7 and 47.9 MB/s with the large slot, 44.2 and 39.0
//! with every slot at 256 KiB, 49.3 and 44.2 at 512 KiB, 32.9 at 54 KiB (the old pool;
//! 37.3 in a third boot), Linux 46.6 in both: the window bounded it, and transfers of
//! 0.3-0.5 s timed in 10 ms steps scatter by a tenth. The upload hardly moved with the
//! window (26.6 to 32.9 MB/s from 54 to 512 KiB, Linux 44 to 56): the guest's
//! acknowledgements fell from one per 54 KiB to one per 230 KiB while it slept about half
//! the transfer, and its profile (`PVXEN_BENCH_PROFILE`) found it hashing the body in 4 of
//! 7 samples (`POST /sink` answers its SHA-256; Linux's nginx computes none): from 54 KiB up
//! the window does not bound the upload, the guest's CPU does (beside dom0's, on the same
//! two host cores under QEMU). The bench's upload row now sends to `POST /discard` (read and
//! dropped unhashed, the work nginx does): in one `cargo xtask bench` run, every feature on,
//! 67.1 MB/s from dom0 with the large slot (29.96 to the hashed `/sink`), Linux 40.0.
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
/// The slots that take the memory beyond rule 1 first (rule 2): a few bulk transfers at
/// once get the largest windows (the module docs say why).
pub const LARGE_SLOTS: usize = 4;
/// What one connection may hold besides its socket buffers: the larger of a value and a head,
/// and 1 KiB for the socket and connection structures.
pub const WORKING_BYTES: usize = max(MAX_VALUE, MAX_HEAD) + 1024;
/// The budget of the original pool: 24 slots of [`BUFFER`] + [`BUFFER`].
pub const DEFAULT_BUDGET: usize = 24 * (2 * BUFFER + WORKING_BYTES);

const fn max(a: usize, b: usize) -> usize {
    if a > b { a } else { b }
}

const fn min(a: usize, b: usize) -> usize {
    if a < b { a } else { b }
}

/// Rounds down to whole KiB.
const fn kib(bytes: usize) -> usize {
    bytes / 1024 * 1024
}

/// The connection slots: how many, and each socket's receive and transmit buffer size.
/// `large` of the `slots` have buffers of `large_buffer` bytes, the others of `buffer`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool {
    /// Connection slots (listening sockets when free), the large ones included.
    pub slots: usize,
    /// Receive buffer, and transmit buffer, of each socket but the large ones, in bytes.
    pub buffer: usize,
    /// How many of the slots are large (none below rule 2): free large slots listen before
    /// the others, so a new connection takes one when one is free ([`crate::server`]).
    pub large: usize,
    /// Receive buffer, and transmit buffer, of each large slot's socket, in bytes (equal to
    /// `buffer` when there are none).
    pub large_buffer: usize,
}

impl Pool {
    /// `slots` slots of `buffer` bytes each way, none large.
    pub const fn uniform(slots: usize, buffer: usize) -> Self {
        Self {
            slots,
            buffer,
            large: 0,
            large_buffer: buffer,
        }
    }

    /// The pool for `budget` bytes of memory (the module docs give the rule).
    pub const fn for_memory(budget: usize) -> Self {
        let slots = budget / (2 * BUFFER + WORKING_BYTES);
        if slots > MAX_SLOTS {
            // Rule 2: beyond MAX_SLOTS slots of BUFFER, the large slots grow first, then
            // every other slot, each to MAX_BUFFER at most.
            let extra = budget - MAX_SLOTS * (2 * BUFFER + WORKING_BYTES);
            let large_grow = min(extra / LARGE_SLOTS / 2, MAX_BUFFER - BUFFER);
            let left = extra - LARGE_SLOTS * 2 * large_grow;
            let small_grow = min(left / (MAX_SLOTS - LARGE_SLOTS) / 2, MAX_BUFFER - BUFFER);
            let buffer = kib(BUFFER + small_grow);
            let large_buffer = kib(BUFFER + large_grow);
            Self {
                slots: MAX_SLOTS,
                buffer,
                large: if large_buffer > buffer {
                    LARGE_SLOTS
                } else {
                    0
                },
                large_buffer,
            }
        } else if slots < MIN_SLOTS {
            let each = budget / MIN_SLOTS;
            let buffer = if each > WORKING_BYTES + 2 * MIN_BUFFER {
                kib((each - WORKING_BYTES) / 2)
            } else {
                MIN_BUFFER
            };
            Self::uniform(MIN_SLOTS, buffer)
        } else {
            Self::uniform(slots, BUFFER)
        }
    }

    /// Bytes the pool may use at most: its buffers and every connection's working memory.
    pub const fn bytes(&self) -> usize {
        self.slots.saturating_sub(self.large) * (2 * self.buffer + WORKING_BYTES)
            + self.large * (2 * self.large_buffer + WORKING_BYTES)
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

    const KIB: usize = 1024;
    const MIB: usize = 1024 * KIB;

    #[test]
    fn the_default_is_24_slots_of_16_kib() {
        assert_eq!(Pool::default(), Pool::uniform(24, 16 * KIB));
    }

    #[test]
    fn more_memory_more_slots_then_large_slots_then_larger_buffers() {
        for (budget, slots, buffer, large, large_buffer) in [
            (0, MIN_SLOTS, MIN_BUFFER, 0, MIN_BUFFER),
            (500 * KIB, MIN_SLOTS, MIN_BUFFER, 0, MIN_BUFFER),
            (800 * KIB, MIN_SLOTS, 11 * KIB, 0, 11 * KIB),
            (MIB, 20, 16 * KIB, 0, 16 * KIB),
            (2 * MIB, 41, 16 * KIB, 0, 16 * KIB),
            (3 * MIB, 62, 16 * KIB, 0, 16 * KIB),
            // The guest's heap of 16 MiB (the churn checks): 83 slots.
            (4 * MIB, 83, 16 * KIB, 0, 16 * KIB),
            (6 * MIB, 125, 16 * KIB, 0, 16 * KIB),
            // Past MAX_SLOTS slots of 16 KiB (6,272 KiB): the large slots grow first.
            (
                6272 * KIB + 384 * KIB,
                MAX_SLOTS,
                16 * KIB,
                LARGE_SLOTS,
                64 * KIB,
            ),
            (8 * MIB, MAX_SLOTS, 16 * KIB, LARGE_SLOTS, 256 * KIB),
            (12 * MIB, MAX_SLOTS, 32 * KIB, LARGE_SLOTS, 256 * KIB),
            // A 128 MiB guest (about 16 MiB: 54 KiB each before the large slots).
            (16 * MIB, MAX_SLOTS, 49 * KIB, LARGE_SLOTS, 256 * KIB),
            (64 * MIB, MAX_SLOTS, 247 * KIB, LARGE_SLOTS, 256 * KIB),
            (80 * MIB, MAX_SLOTS, MAX_BUFFER, 0, MAX_BUFFER),
        ] {
            let pool = Pool::for_memory(budget);
            assert_eq!(
                pool,
                Pool {
                    slots,
                    buffer,
                    large,
                    large_buffer
                },
                "{budget}"
            );
        }
    }

    #[test]
    fn the_pool_stays_within_its_budget_and_grows_with_it() {
        let mut last = Pool::for_memory(0);
        for budget in (0..80 * MIB).step_by(37 * KIB) {
            let pool = Pool::for_memory(budget);
            if budget >= MIN_SLOTS * (2 * MIN_BUFFER + WORKING_BYTES) {
                assert!(pool.bytes() <= budget, "{budget}: {pool:?}");
            }
            // Monotonic: more memory never gives fewer slots or smaller buffers.
            assert!(pool.slots >= last.slots, "{budget}");
            assert!(pool.buffer >= last.buffer, "{budget}");
            assert!(pool.large_buffer >= last.large_buffer, "{budget}");
            // The large slots are larger, or there are none.
            assert!(pool.large <= pool.slots, "{budget}: {pool:?}");
            assert_eq!(
                pool.large > 0,
                pool.large_buffer > pool.buffer,
                "{budget}: {pool:?}"
            );
            assert!(pool.large_buffer <= MAX_BUFFER && pool.buffer <= MAX_BUFFER);
            // Whole KiB.
            assert_eq!(
                (pool.buffer % KIB, pool.large_buffer % KIB),
                (0, 0),
                "{budget}"
            );
            last = pool;
        }
    }

    #[test]
    fn the_bytes_count_the_large_slots_apart() {
        let pool = Pool {
            slots: 10,
            buffer: 16 * KIB,
            large: 2,
            large_buffer: 256 * KIB,
        };
        assert_eq!(
            pool.bytes(),
            8 * (32 * KIB + WORKING_BYTES) + 2 * (512 * KIB + WORKING_BYTES)
        );
        assert_eq!(
            Pool::uniform(3, 4 * KIB).bytes(),
            3 * (8 * KIB + WORKING_BYTES)
        );
    }
}
