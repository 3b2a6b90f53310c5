//! Self-test group `hostile-bounds` (issue 22): the calls with which a hostile guest found
//! hv's missing bounds, each expecting Xen 4.17's answer. Not part of `platform`, so its
//! lines are not compared with stock Xen's; `cargo xtask hv-test` boots it once on hv and
//! checks hv's paging-pool line as well.
//!
//! - `hostile-memory-map-wrapped`: `XENMEM_memory_map` with its argument in the last 8 bytes
//!   below 2^64: `-EFAULT`, nothing read through a wrapped address.
//! - `hostile-grant-frame-2-32`: `XENMEM_add_to_physmap` of grant-table frame 2^32: stock Xen
//!   4.17 truncates the index to 32 bits and places frame 0 (answer 0), and so does hv.
//! - `hostile-copy-negative-count`: `GNTTABOP_copy` with count 2^31: `-EINVAL` at once.
//! - `hostile-copy-preempted`: `GNTTABOP_copy` with count 2^31 - 1 over 1 MiB of operations
//!   followed by a hole: `-EFAULT` where the operations end, and the timer armed before the
//!   call fires while it is still under way (Xen's continuation; the handler sees the first
//!   operation done and the last not yet).
//! - `hostile-remap-flood`: 10,000 moves of shared_info, each to a 2 MiB region never used
//!   before, then home: each answers 0 or `-ENOMEM` (Xen's paging pool is finite and its p2m
//!   keeps emptied tables, so stock Xen answers `-ENOMEM` once its pool is used up; hv gives
//!   emptied tables back and answers 0 throughout), and the clock works afterwards.

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::mem::{offset_of, size_of};
use core::sync::atomic::{AtomicI32, AtomicU64, Ordering};

use abi::grant_table::{GNTST_PERMISSION_DENIED, GnttabCopy};
use abi::memory::{XENMAPSPACE_GRANT_TABLE, XENMAPSPACE_SHARED_INFO};
use x86_64::instructions::interrupts;

use super::report::Reporter;
use super::run::ConsoleOut;
use crate::memory::frames::FRAME_SIZE;
use crate::memory::global;
use crate::proto::evtchn::Port;
use crate::xen::hypercall::{self, HypercallError};
use crate::xen::{events, shared_page, time};

/// A test's verdict and its `FACT <test>.<key> <value>` lines.
type Answer = (Result<(), String>, Vec<(&'static str, String)>);

const EFAULT: i64 = -14;
const EINVAL: i64 = -22;
const ENOMEM: i64 = -12;

/// A named test.
type Test = (&'static str, fn() -> Answer);

/// The tests, in order.
const TESTS: &[Test] = &[
    ("hostile-memory-map-wrapped", memory_map_wrapped),
    ("hostile-grant-frame-2-32", grant_frame_2_32),
    ("hostile-copy-negative-count", copy_negative_count),
    ("hostile-copy-preempted", copy_preempted),
    ("hostile-remap-flood", remap_flood),
];

/// Runs the group (events and the timer first).
pub fn run(rep: &mut Reporter<'_, ConsoleOut>) {
    crate::kernel::ensure_events();
    for &(name, test) in TESTS {
        let (result, facts) = test();
        for (key, value) in facts {
            let _ = rep.fact(name, key, value);
        }
        let _ = rep.record(name, result);
    }
}

/// The verdict on a raw answer that should be `want`, with the answer as the FACT.
fn expect(r: Result<i64, HypercallError>, want: i64) -> Answer {
    match r {
        Ok(v) if v == want => (Ok(()), vec![("errno", format!("{v}"))]),
        Ok(v) => (
            Err(format!("answered {v}; Xen answers {want}")),
            vec![("errno", format!("{v}"))],
        ),
        Err(e) => (Err(format!("{e}")), vec![("errno", format!("{e}"))]),
    }
}

fn failed(why: impl Into<String>) -> Answer {
    (Err(why.into()), Vec::new())
}

fn memory_map_wrapped() -> Answer {
    // SAFETY: the argument is the last 8 bytes below 2^64, where this kernel maps nothing:
    // the 16-byte struct would cross 2^64, and Xen answers -EFAULT without writing anything.
    expect(
        unsafe { hypercall::memory_map_at(0u64.wrapping_sub(8)) },
        EFAULT,
    )
}

fn grant_frame_2_32() -> Answer {
    let Ok(frame) = global::allocate_frames(1) else {
        return failed("no frame");
    };
    // SAFETY: the frame was just taken from the allocator for this probe and is used for
    // nothing else: Xen replaces it with grant-table frame 0 (this group uses no grants).
    expect(
        unsafe {
            hypercall::add_to_physmap_raw(XENMAPSPACE_GRANT_TABLE, 1 << 32, frame / FRAME_SIZE)
        },
        0,
    )
}

fn copy_negative_count() -> Answer {
    let Ok(page) = global::allocate_frames(1) else {
        return failed("no frame");
    };
    // SAFETY: Xen refuses the count before it reads any operation; the page is this probe's
    // own anyway.
    expect(unsafe { hypercall::gnttab_copy_raw(page, 1 << 31) }, EINVAL)
}

/// Turns guest frame `gfn` (the caller's to lose) into a hole in the domain's physical map:
/// shared_info is moved over it and back home. Interrupts stay off meanwhile (the upcall
/// reads shared_info at home, which is a hole while the page is away), and nothing reads the
/// clock.
fn punch_hole(gfn: u64) -> Result<(), String> {
    let home = shared_page::shared_info().addr() / FRAME_SIZE;
    interrupts::without_interrupts(|| {
        // SAFETY: `gfn` is the caller's to lose; nothing touches shared_info's home frame
        // until it is back.
        let away = unsafe { hypercall::add_to_physmap_raw(XENMAPSPACE_SHARED_INFO, 0, gfn) };
        // SAFETY: `home` is the shared-info page's own frame.
        let back = unsafe { hypercall::add_to_physmap_raw(XENMAPSPACE_SHARED_INFO, 0, home) };
        match (away, back) {
            (Ok(0), Ok(0)) => Ok(()),
            other => Err(format!("moving shared_info away and back: {other:?}")),
        }
    })
}

/// Frames of `gnttab_copy` operations in the preemption test (2 MiB).
const COPY_FRAMES: u64 = 512;
/// Bytes of those operations.
const COPY_BYTES: usize = 512 * 4096;
const _: () = assert!(COPY_BYTES as u64 == COPY_FRAMES * FRAME_SIZE);
/// The status the operations carry until Xen writes theirs.
const UNWRITTEN: i16 = 0x7777;
/// Where the timer handler looks: the first and the last operation's status (0: nowhere).
static WATCH_FIRST: AtomicU64 = AtomicU64::new(0);
static WATCH_LAST: AtomicU64 = AtomicU64::new(0);
/// What the handler saw there the first time it ran ([`NOT_RUN`]: it has not run).
static SEEN_FIRST: AtomicI32 = AtomicI32::new(NOT_RUN);
static SEEN_LAST: AtomicI32 = AtomicI32::new(NOT_RUN);
/// No status: the handler has not run.
const NOT_RUN: i32 = i32::MAX;

/// The `VIRQ_TIMER` handler during the test: notes the two statuses once.
fn watch(_: Port) {
    let (first, last) = (
        WATCH_FIRST.load(Ordering::SeqCst),
        WATCH_LAST.load(Ordering::SeqCst),
    );
    if first == 0 || SEEN_LAST.load(Ordering::SeqCst) != NOT_RUN {
        return;
    }
    // SAFETY: both are aligned i16 status fields of the operations this test owns (identity
    // mapped), written only by Xen; volatile reads of plain integers.
    let (f, l) = unsafe {
        (
            core::ptr::read_volatile(first as *const i16),
            core::ptr::read_volatile(last as *const i16),
        )
    };
    SEEN_FIRST.store(i32::from(f), Ordering::SeqCst);
    SEEN_LAST.store(i32::from(l), Ordering::SeqCst);
}

fn copy_preempted() -> Answer {
    let Some(port) = time::timer_port() else {
        return failed("no timer");
    };
    let Ok(base) = global::allocate_frames(COPY_FRAMES + 1) else {
        return failed("no frames");
    };
    if let Err(e) = punch_hole(base / FRAME_SIZE + COPY_FRAMES) {
        return failed(e);
    }
    // The timer's handler is this test's for the calls.
    let Ok(()) = events::unbind(port) else {
        return failed("unbind VIRQ_TIMER");
    };
    let bound = events::bind(port, Box::new(watch)).map_err(|e| format!("bind: {e:?}"));
    // A slow moment of the emulator can let the timer fire before the call begins: then
    // again, with a later timer.
    let mut outcome = Err(String::from("not run"));
    for delay_ms in [TIMER_DELAY_MS, 4 * TIMER_DELAY_MS] {
        outcome = bound.clone().and_then(|()| copy_once(base, delay_ms));
        if !matches!(&outcome, Ok((_, (f, _), _)) if *f == i32::from(UNWRITTEN)) {
            break;
        }
    }
    let _ = events::unbind(port);
    let _ = events::bind_latch(port);
    let (r, seen, ms) = match outcome {
        Ok(o) => o,
        Err(e) => return failed(e),
    };
    let ops = COPY_FRAMES * FRAME_SIZE / size_of::<GnttabCopy>() as u64;
    log::info!("hostile-copy-preempted: {ops} operations in {ms} ms");
    let (mut verdict, facts) = expect(r, EFAULT);
    let written = i32::from(GNTST_PERMISSION_DENIED);
    let during = (written, i32::from(UNWRITTEN));
    if verdict.is_ok() && seen != during {
        verdict = Err(match seen {
            (NOT_RUN, _) => format!("the timer never fired during the {ms} ms call"),
            (f, _) if f == i32::from(UNWRITTEN) => "the timer fired before the call began".into(),
            (f, l) if (f, l) == (written, written) => {
                format!("the timer fired only after the {ms} ms call returned")
            }
            (f, l) => format!("the timer saw statuses {f} and {l}"),
        });
    }
    (verdict, facts)
}

/// One copy's answer, the statuses the timer's handler saw (first, last), the call's ms.
type CopyRun = (Result<i64, HypercallError>, (i32, i32), u64);

/// When the timer fires after it is armed, just before the call.
const TIMER_DELAY_MS: u64 = 5;

/// One `GNTTABOP_copy` of count 2^31 - 1 over the operations at `base` (up to the hole after
/// them), with the timer armed `delay_ms` ahead: the answer, the statuses the timer's
/// handler saw (first, last) and the call's length in ms.
fn copy_once(base: u64, delay_ms: u64) -> Result<CopyRun, String> {
    let size = size_of::<GnttabCopy>() as u64;
    let ops = COPY_FRAMES * FRAME_SIZE / size;
    let status_at = |i: u64| base + i * size + offset_of!(GnttabCopy, status) as u64;
    // Every operation all zero (domain 0's frame 0 by number: refused at once with
    // GNTST_permission_denied), its status marked unwritten.
    // SAFETY: the frames were taken from the allocator for this test (identity mapped,
    // referenced by nothing else); the statuses are aligned i16 fields inside them.
    unsafe {
        core::ptr::write_bytes(base as *mut u8, 0, COPY_BYTES);
        for i in 0..ops {
            core::ptr::write_volatile(status_at(i) as *mut i16, UNWRITTEN);
        }
    }
    SEEN_FIRST.store(NOT_RUN, Ordering::SeqCst);
    SEEN_LAST.store(NOT_RUN, Ordering::SeqCst);
    WATCH_LAST.store(status_at(ops - 1), Ordering::SeqCst);
    WATCH_FIRST.store(status_at(0), Ordering::SeqCst);
    let armed = time::deadline_ms(delay_ms)
        .map_err(|e| format!("clock: {e:?}"))
        .and_then(|d| hypercall::set_singleshot_timer(0, d).map_err(|e| format!("timer: {e}")));
    let start = time::now();
    // SAFETY: the operations up to the hole are this test's (nothing references them); each
    // is refused before it copies a byte; Xen stops with -EFAULT at the hole.
    let r = armed.map(|()| unsafe { hypercall::gnttab_copy_raw(base, (1 << 31) - 1) });
    let end = time::now();
    WATCH_FIRST.store(0, Ordering::SeqCst);
    let r = r?;
    let ms = match (start, end) {
        (Ok(s), Ok(e)) => e.as_nanos().saturating_sub(s.as_nanos()) / 1_000_000,
        _ => 0,
    };
    // SAFETY: as above: aligned status fields of this test's operations.
    let statuses = unsafe {
        (
            core::ptr::read_volatile(status_at(0) as *const i16),
            core::ptr::read_volatile(status_at(ops - 1) as *const i16),
        )
    };
    if statuses != (GNTST_PERMISSION_DENIED, GNTST_PERMISSION_DENIED) {
        return Err(format!("statuses after the call: {statuses:?}"));
    }
    let seen = (
        SEEN_FIRST.load(Ordering::SeqCst),
        SEEN_LAST.load(Ordering::SeqCst),
    );
    Ok((r, seen, ms))
}

/// shared_info moves in the flood.
const REMAPS: u64 = 10_000;
/// The first frame of the flood: 4 GiB, above the domain's RAM and special pages.
const FLOOD_BASE_GFN: u64 = (4 << 30) / FRAME_SIZE;
/// Frames in 2 MiB: each move goes to a region never used before.
const FRAMES_PER_2M: u64 = 512;

fn remap_flood() -> Answer {
    let home = shared_page::shared_info().addr() / FRAME_SIZE;
    let before = time::now();
    // Interrupts off while shared_info is away from home (see `punch_hole`).
    let (moved, enomem, odd, back) = interrupts::without_interrupts(|| {
        let (mut moved, mut enomem, mut odd) = (0u64, 0u64, None);
        for i in 0..REMAPS {
            let gfn = FLOOD_BASE_GFN + i * FRAMES_PER_2M;
            // SAFETY: the frame lies above the domain's RAM: nothing of the kernel's is there;
            // shared_info's home is not touched until it is back.
            match unsafe { hypercall::add_to_physmap_raw(XENMAPSPACE_SHARED_INFO, 0, gfn) } {
                Ok(0) => moved += 1,
                Ok(ENOMEM) => enomem += 1,
                other => {
                    odd = Some((i, other));
                    break;
                }
            }
        }
        // SAFETY: `home` is the shared-info page's own frame.
        let back = unsafe { hypercall::add_to_physmap_raw(XENMAPSPACE_SHARED_INFO, 0, home) };
        (moved, enomem, odd, back)
    });
    let facts = vec![
        ("moved", format!("{moved}")),
        ("enomem", format!("{enomem}")),
    ];
    let verdict = if let Some((i, answer)) = odd {
        Err(format!(
            "move {i} answered {answer:?}; Xen answers 0 or {ENOMEM}"
        ))
    } else if back != Ok(0) {
        Err(format!("moving shared_info home answered {back:?}"))
    } else {
        match (before, time::now()) {
            (Ok(b), Ok(a)) if a > b => Ok(()),
            other => Err(format!("the clock after the flood: {other:?}")),
        }
    };
    (verdict, facts)
}
