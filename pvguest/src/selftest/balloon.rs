//! Self-test group `balloon` (issue 24, item 5): the guest gives pages back to the
//! hypervisor and takes them again, as a balloon driver does, and checks Xen 4.17's answers
//! and accounting. Not part of `platform`; `cargo xtask hv-test` boots it on hv (with hv's
//! teardown check), and its lines are the same on stock Xen.
//!
//! Every number recorded is an answer or a difference of page counts, never a count itself
//! (what the toolstack gives a domain at boot differs between the two). Nothing reads a page
//! while it is ballooned out (Xen and hv answer such an access differently).
//!
//! - `balloon-decrease`: four pages out (`XENMEM_decrease_reservation`): the answer, the
//!   drop of `XENMEM_current_reservation`, and that the pages are gone (a second decrease of
//!   one answers 0 extents done).
//! - `balloon-populate`: the four back (`XENMEM_populate_physmap`): the answer, the count
//!   restored, each page zeroed, written and read back.
//! - `balloon-2mib`: one 2 MiB extent (order 9, a domU's largest) out and back.
//! - `balloon-scattered`: every other page of 1 MiB out in one call and back in another, as
//!   a balloon driver frees pages scattered through memory (on hv, more holes than its frame
//!   allocator's range table holds: the rest stay with the domain as spares, reused first).
//! - `balloon-refusals`: order 10, a frame outside RAM, another domain, populate-on-demand,
//!   a frame beyond the guest-physical limit (not done, but the page stays counted, as Xen's
//!   `populate_physmap` keeps it), and the queries' errnos.
//! - `balloon-beyond-max`: populating one page more than `maximum_reservation` allows
//!   stops at the ceiling, and the pages go back.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::report::Reporter;
use super::run::ConsoleOut;
use crate::memory::frames::FRAME_SIZE;
use crate::memory::global;
use crate::xen::hypercall::{self, HypercallError, ReservationOp};

/// A test's verdict and its `FACT <test>.<key> <value>` lines.
type Answer = (Result<(), String>, Vec<(&'static str, String)>);

/// A named test.
type Test = (&'static str, fn() -> Answer);

/// The tests, in order.
const TESTS: &[Test] = &[
    ("balloon-decrease", decrease),
    ("balloon-populate", populate),
    ("balloon-2mib", two_mib),
    ("balloon-scattered", scattered),
    ("balloon-refusals", refusals),
    ("balloon-beyond-max", beyond_max),
];

const SELF: u16 = abi::xen::DOMID_SELF;
/// Pages the first two tests move.
const PAGES: usize = 4;
/// [`PAGES`] as Xen counts extents (4).
const EXTENTS: i64 = 4;
/// Guest frames above this domain's RAM (4 GiB up), never mapped by its page tables.
const ABOVE_RAM: u64 = 0x10_0000;

/// The pages `balloon-decrease` gives back and `balloon-populate` takes again.
static MOVED: spin::Mutex<Option<[u64; PAGES]>> = spin::Mutex::new(None);

/// Runs the group.
pub fn run(rep: &mut Reporter<'_, ConsoleOut>) {
    // The counts themselves, for the log only (they differ between hypervisors).
    log::info!(
        "balloon: current_reservation {:?}, maximum_reservation {:?} pages",
        current(),
        maximum()
    );
    for &(name, test) in TESTS {
        let (result, facts) = test();
        for (key, value) in facts {
            let _ = rep.fact(name, key, value);
        }
        let _ = rep.record(name, result);
    }
}

/// Collects a test's facts and the first thing that went wrong.
#[derive(Default)]
struct Check {
    facts: Vec<(&'static str, String)>,
    failed: Option<String>,
}

impl Check {
    /// Records `got` as FACT `key`; a failure if it is not `want`.
    fn expect(&mut self, key: &'static str, got: Result<i64, HypercallError>, want: i64) {
        let shown = match got {
            Ok(v) => format!("{v}"),
            Err(e) => format!("{e}"),
        };
        if got != Ok(want) && self.failed.is_none() {
            self.failed = Some(format!("{key}: {shown}, Xen answers {want}"));
        }
        self.facts.push((key, shown));
    }

    fn fail(&mut self, why: String) {
        if self.failed.is_none() {
            self.failed = Some(why);
        }
    }

    fn answer(self) -> Answer {
        (self.failed.map_or(Ok(()), Err), self.facts)
    }
}

fn current() -> Result<i64, HypercallError> {
    hypercall::reservation_query(true, SELF, 0)
}

fn maximum() -> Result<i64, HypercallError> {
    hypercall::reservation_query(false, SELF, 0)
}

/// `current_reservation` now less `before` (an error stays an error).
fn change(before: Result<i64, HypercallError>) -> Result<i64, HypercallError> {
    Ok(current()? - before?)
}

/// # Safety
/// As [`hypercall::reservation_raw`].
unsafe fn reserve(op: ReservationOp, gfns: &[u64], order: u32) -> Result<i64, HypercallError> {
    // SAFETY: forwarded.
    unsafe { hypercall::reservation_raw(op, gfns, order, 0, SELF) }
}

fn decrease() -> Answer {
    let mut c = Check::default();
    let Ok(base) = global::allocate_frames(PAGES as u64) else {
        return (Err("no frames".into()), Vec::new());
    };
    let gfns: [u64; PAGES] = core::array::from_fn(|i| base / FRAME_SIZE + i as u64);
    let before = current();
    // SAFETY: the frames were just taken for this test and nothing touches them until
    // `balloon-populate` puts pages back.
    c.expect(
        "answer",
        unsafe { reserve(ReservationOp::Decrease, &gfns, 0) },
        EXTENTS,
    );
    c.expect("current-change", change(before), -(EXTENTS));
    // SAFETY: the page is gone already; Xen finds nothing to remove.
    c.expect(
        "again",
        unsafe { reserve(ReservationOp::Decrease, &gfns[1..2], 0) },
        0,
    );
    c.expect("current-change-again", change(before), -(EXTENTS));
    *MOVED.lock() = Some(gfns);
    c.answer()
}

/// Checks that each page at `gfns` reads as zeros, then holds what is written to it.
fn fill_and_check(c: &mut Check, gfns: &[u64]) {
    let mut zeroed = true;
    for (k, &gfn) in gfns.iter().enumerate() {
        let page = (gfn * FRAME_SIZE) as *mut u64;
        // SAFETY: the page was just populated at `gfn`, which this kernel's identity map
        // covers (it is one of its RAM frames, taken for this test); 512 aligned u64s.
        unsafe {
            for i in 0..512 {
                zeroed &= core::ptr::read_volatile(page.add(i)) == 0;
                core::ptr::write_volatile(page.add(i), (gfn << 12) ^ i as u64 ^ k as u64);
            }
            for i in 0..512 {
                if core::ptr::read_volatile(page.add(i)) != (gfn << 12) ^ i as u64 ^ k as u64 {
                    c.fail(format!(
                        "page {gfn:#x} word {i} did not keep what was written"
                    ));
                }
            }
        }
    }
    c.facts
        .push(("zeroed", String::from(if zeroed { "yes" } else { "no" })));
    if !zeroed {
        c.fail(String::from("a populated page was not zeroed"));
    }
}

fn populate() -> Answer {
    let mut c = Check::default();
    let Some(gfns) = *MOVED.lock() else {
        return (Err("balloon-decrease did not run".into()), Vec::new());
    };
    let before = current();
    // SAFETY: the frames are the ones `balloon-decrease` gave back; nothing uses them.
    c.expect(
        "answer",
        unsafe { reserve(ReservationOp::Populate, &gfns, 0) },
        EXTENTS,
    );
    c.expect("current-change", change(before), EXTENTS);
    fill_and_check(&mut c, &gfns);
    c.answer()
}

fn two_mib() -> Answer {
    let mut c = Check::default();
    const HUGE: u64 = 2 << 20;
    let Ok(base) = global::allocate_frames(2 * 512 - 1) else {
        return (Err("no frames".into()), Vec::new());
    };
    let start = base.next_multiple_of(HUGE) / FRAME_SIZE;
    let before = current();
    // SAFETY: the 2 MiB from `start` lie inside the frames just taken for this test; nothing
    // touches them until they are populated again below.
    c.expect(
        "decrease",
        unsafe { reserve(ReservationOp::Decrease, &[start], 9) },
        1,
    );
    c.expect("current-change", change(before), -512);
    // SAFETY: as above; the first page is gone already.
    c.expect(
        "again",
        unsafe { reserve(ReservationOp::Decrease, &[start], 0) },
        0,
    );
    // SAFETY: as above.
    c.expect(
        "populate",
        unsafe { reserve(ReservationOp::Populate, &[start], 9) },
        1,
    );
    c.expect("current-restored", change(before), 0);
    fill_and_check(&mut c, &[start, start + 255, start + 511]);
    c.answer()
}

fn scattered() -> Answer {
    let mut c = Check::default();
    let Ok(base) = global::allocate_frames(256) else {
        return (Err("no frames".into()), Vec::new());
    };
    let gfns: Vec<u64> = (0..128).map(|i| base / FRAME_SIZE + 2 * i).collect();
    let before = current();
    // SAFETY: the frames were just taken for this test; nothing touches every other one of
    // them until they are populated again below.
    c.expect(
        "decrease",
        unsafe { reserve(ReservationOp::Decrease, &gfns, 0) },
        128,
    );
    c.expect("current-change", change(before), -128);
    // SAFETY: as above.
    c.expect(
        "populate",
        unsafe { reserve(ReservationOp::Populate, &gfns, 0) },
        128,
    );
    c.expect("current-restored", change(before), 0);
    fill_and_check(&mut c, &gfns);
    c.answer()
}

fn refusals() -> Answer {
    let mut c = Check::default();
    let before = current();
    let max_before = maximum();
    let Ok(frame) = global::allocate_frames(1) else {
        return (Err("no frames".into()), Vec::new());
    };
    let gfn = frame / FRAME_SIZE;
    // SAFETY: the frame is this test's; every call below is refused before it is touched,
    // or names frames outside this kernel's memory.
    unsafe {
        c.expect(
            "decrease-order-10",
            reserve(ReservationOp::Decrease, &[gfn], 10),
            0,
        );
        c.expect(
            "populate-order-10",
            reserve(ReservationOp::Populate, &[gfn], 10),
            0,
        );
        c.expect(
            "increase-order-10",
            reserve(ReservationOp::Increase, &[0], 10),
            0,
        );
        c.expect(
            "decrease-outside-ram",
            reserve(ReservationOp::Decrease, &[ABOVE_RAM], 0),
            0,
        );
        c.expect(
            "decrease-domain-0",
            hypercall::reservation_raw(ReservationOp::Decrease, &[gfn], 0, 0, 0),
            0,
        );
        c.expect(
            "populate-on-demand",
            hypercall::reservation_raw(
                ReservationOp::Populate,
                &[ABOVE_RAM],
                0,
                abi::memory::XENMEMF_POPULATE_ON_DEMAND,
                SELF,
            ),
            0,
        );
        c.expect(
            "address-bits-12",
            hypercall::reservation_raw(ReservationOp::Populate, &[ABOVE_RAM], 0, 12, SELF),
            0,
        );
        c.expect("current-unchanged", change(before), 0);
        // Beyond the guest-physical limit: not done, the page allocated stays counted.
        c.expect(
            "populate-beyond-limit",
            reserve(ReservationOp::Populate, &[1 << 40], 0),
            0,
        );
        c.expect("current-after-beyond-limit", change(before), 1);
    }
    c.expect(
        "current-domain-0",
        hypercall::reservation_query(true, 0, 0),
        -1,
    );
    c.expect(
        "maximum-domain-999",
        hypercall::reservation_query(false, 999, 0),
        -3,
    );
    c.expect(
        "current-start-extent",
        hypercall::reservation_query(true, SELF, 1),
        -22,
    );
    c.expect("get-pod-target", hypercall::get_pod_target(SELF), -1);
    c.expect(
        "maximum-change",
        Ok(maximum().unwrap_or(0) - max_before.unwrap_or(0)),
        0,
    );
    c.answer()
}

fn beyond_max() -> Answer {
    let mut c = Check::default();
    let (Ok(cur), Ok(max)) = (current(), maximum()) else {
        return (Err("the reservation queries failed".into()), Vec::new());
    };
    let gap = max - cur;
    let (Ok(room), Ok(asked)) = (usize::try_from(gap), u64::try_from(gap + 1)) else {
        return (
            Err(format!("current {cur} above maximum {max}")),
            Vec::new(),
        );
    };
    let gfns: Vec<u64> = (0..asked).map(|i| ABOVE_RAM + i).collect();
    // SAFETY: the frames lie above this kernel's memory; nothing maps or touches them.
    let done = unsafe { reserve(ReservationOp::Populate, &gfns, 0) };
    c.expect("done-less-room", done.map(|d| d - gap), 0);
    c.expect("current-less-maximum", Ok(current().unwrap_or(0) - max), 0);
    let mapped = gfns.get(..room).unwrap_or(&[]);
    // SAFETY: as above.
    let back = unsafe { reserve(ReservationOp::Decrease, mapped, 0) };
    c.expect("decrease-less-room", back.map(|d| d - gap), 0);
    c.expect("current-restored", Ok(current().unwrap_or(0) - cur), 0);
    c.answer()
}
