//! Self-test mode `bench` (`selftest=bench`): the guest's own measurements for
//! `cargo xtask bench`, printed at column 0 as `BENCH <name> <value>` lines (the harness parses
//! them; they are figures, never judged). One `TEST bench-ran` line says the mode ran.
//!
//! Each figure is the mean of [`ROUNDS`] round trips timed with the TSC (`rdtsc` before and
//! after the loop), in TSC cycles, and in nanoseconds from pvclock over the same loop:
//! - `hypercall-xen-version`: `xen_version(XENVER_version)`, a cheap hypercall answered from
//!   the hypervisor's own data;
//! - `hypercall-unassigned`: hypercall 63, which both Xen and hv answer with `-ENOSYS` at once
//!   (on hv the bare cost of a VMMCALL exit and return, dispatch included);
//! - `event-loopback`: `EVTCHNOP_send` on a port bound to another port of this domain, until
//!   its handler ran from the upcall (busy wait, interrupts on, no halt).
//!
//! With `bench-disk=xvd<x>` (and `bench-mb=<n>`, default 8) the mode also measures that disk
//! through `blkfront` (it overwrites its first n MiB): `BENCH blk-<name> <bytes> <ns>` lines for
//! sequential writes and reads of 4 KiB requests one at a time (`-qd1`, over n/8 MiB) and of the largest
//! requests with as many in flight as the ring takes (`-full`), and `BENCH blk-rand-read-4k
//! <requests> <ns>` for 4 KiB reads at pseudo-random offsets with the ring full. Between
//! submissions the guest waits on the disk's event channel (never spins, so the backend runs).

use alloc::boxed::Box;
use core::fmt::Write;
use core::sync::atomic::{AtomicU64, Ordering};

use abi::xen::DOMID_SELF;

use super::report::Reporter;
use super::run::ConsoleOut;
use blkfront::BlkError;
use xenbus::platform::EventChannel;

use crate::arch::read_tsc;
use crate::cmdline::option;
use crate::disk::Disk;
use crate::xen::platform::KernelEvents;
use crate::xen::{events, hypercall, time};

/// Round trips per figure.
pub const ROUNDS: u64 = 2000;

/// The event handler's count of deliveries.
static HITS: AtomicU64 = AtomicU64::new(0);

/// Times `ROUNDS` calls of `op`: `(TSC cycles, nanoseconds)` per call, or why not.
fn time_loop(mut op: impl FnMut() -> bool) -> Result<(u64, u64), &'static str> {
    let t0 = time::now().map_err(|_| "no clock")?;
    let c0 = read_tsc();
    for _ in 0..ROUNDS {
        if !op() {
            return Err("an operation failed");
        }
    }
    let c1 = read_tsc();
    let t1 = time::now().map_err(|_| "no clock")?;
    Ok((
        c1.saturating_sub(c0) / ROUNDS,
        t1.as_nanos().saturating_sub(t0.as_nanos()) / ROUNDS,
    ))
}

/// Prints `BENCH <name>-cycles <c>` and `BENCH <name>-ns <ns>`.
fn print(rep: &mut Reporter<'_, ConsoleOut>, name: &str, (cycles, ns): (u64, u64)) {
    let out = rep.out();
    let _ = writeln!(out, "BENCH {name}-cycles {cycles}");
    let _ = writeln!(out, "BENCH {name}-ns {ns}");
}

/// Runs the measurements; `TEST bench-ran` passes when every figure was taken.
pub fn run(rep: &mut Reporter<'_, ConsoleOut>) {
    let result = measure(rep);
    let _ = rep.record("bench-ran", result);
    let cmdline = crate::kernel::boot_state().map_or("", |b| b.cmdline());
    if let Some(name) = option(cmdline, "bench-disk") {
        crate::kernel::ensure_platform();
        let mb = option(cmdline, "bench-mb")
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(8)
            .clamp(1, 1024);
        let result = disk_bench(rep, name, mb);
        let _ = rep.record("bench-blk-ran", result);
    }
}

/// One block measurement: `total` bytes in requests of `len` bytes at most `depth` in flight,
/// reads or writes, sequential or at pseudo-random 4 KiB-aligned offsets within `span`.
struct BlkRun {
    name: &'static str,
    write: bool,
    len: usize,
    depth: usize,
    random: bool,
}

/// Runs `run` on `disk`: nanoseconds from the first submission to the last completion.
fn blk_run(disk: &mut Disk, run: &BlkRun, total: u64, span: u64) -> Result<u64, BlkError> {
    let data = alloc::vec![0x5a_u8; run.len];
    let len = run.len as u64;
    let count = total / len;
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let (mut issued, mut done) = (0u64, 0u64);
    let t0 = time::now().map_err(|_| BlkError::Timeout)?;
    while done < count {
        while issued < count && disk.in_flight() < run.depth && disk.can_submit() {
            let offset = if run.random {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x % (span / len)) * len
            } else {
                issued * len
            };
            if run.write {
                disk.submit_write(offset, &data)?;
            } else {
                disk.submit_read(offset, run.len)?;
            }
            issued += 1;
        }
        disk.kick()?;
        let completions = disk.poll();
        if completions.is_empty() {
            let deadline = time::deadline_ms(30_000).map_err(|_| BlkError::Timeout)?;
            if !KernelEvents.wait(disk.port(), deadline) {
                // 30 s without an event: one last look, then give up.
                let late = disk.poll();
                if late.is_empty() {
                    return Err(BlkError::Timeout);
                }
                for c in late {
                    c.result?;
                    done += 1;
                }
            }
            continue;
        }
        for c in completions {
            c.result?;
            done += 1;
        }
    }
    let t1 = time::now().map_err(|_| BlkError::Timeout)?;
    Ok(t1.as_nanos().saturating_sub(t0.as_nanos()))
}

/// The block measurements on disk `name` over its first `mb` MiB.
fn disk_bench(rep: &mut Reporter<'_, ConsoleOut>, name: &str, mb: u64) -> Result<(), &'static str> {
    let mut disk = crate::disk::connect(name).map_err(|_| "cannot connect the disk")?;
    let total = mb << 20;
    if disk.info().bytes() < total {
        return Err("the disk is smaller than bench-mb");
    }
    let big = disk.max_request_bytes();
    let depth = 32;
    let runs = [
        BlkRun {
            name: "blk-seq-write-qd1",
            write: true,
            len: 4096,
            depth: 1,
            random: false,
        },
        BlkRun {
            name: "blk-seq-read-qd1",
            write: false,
            len: 4096,
            depth: 1,
            random: false,
        },
        BlkRun {
            name: "blk-seq-write-full",
            write: true,
            len: big,
            depth,
            random: false,
        },
        BlkRun {
            name: "blk-seq-read-full",
            write: false,
            len: big,
            depth,
            random: false,
        },
        BlkRun {
            name: "blk-rand-read-4k",
            write: false,
            len: 4096,
            depth,
            random: true,
        },
    ];
    for run in &runs {
        // One request at a time is slow on stock Xen under TCG: an eighth of the bytes.
        let bytes = if run.depth == 1 { total / 8 } else { total };
        let ns = blk_run(&mut disk, run, bytes, total).map_err(|_| "a request failed")?;
        let out = rep.out();
        if run.random {
            let _ = writeln!(out, "BENCH {} {} {ns}", run.name, bytes / 4096);
        } else {
            let _ = writeln!(out, "BENCH {} {bytes} {ns}", run.name);
        }
    }
    let s = disk.stats();
    let _ = writeln!(
        rep.out(),
        "BENCH blk-frontend requests {} notifications {}",
        s.requests,
        s.notifications
    );
    Ok(())
}

fn measure(rep: &mut Reporter<'_, ConsoleOut>) -> Result<(), &'static str> {
    let version = time_loop(|| hypercall::xen_version().is_ok())?;
    print(rep, "hypercall-xen-version", version);
    let unassigned = time_loop(|| hypercall::unassigned().is_ok())?;
    print(rep, "hypercall-unassigned", unassigned);
    let a = events::alloc_unbound(DOMID_SELF).map_err(|_| "alloc_unbound")?;
    let b = events::bind_interdomain(DOMID_SELF, a).map_err(|_| "bind_interdomain")?;
    events::bind(
        a,
        Box::new(|_| {
            HITS.fetch_add(1, Ordering::SeqCst);
        }),
    )
    .map_err(|_| "bind a handler")?;
    let delivery = time_loop(|| {
        let before = HITS.load(Ordering::SeqCst);
        if events::send(b).is_err() {
            return false;
        }
        let mut spins = 0u32;
        while HITS.load(Ordering::SeqCst) == before {
            spins += 1;
            if spins > 100_000_000 {
                return false;
            }
            core::hint::spin_loop();
        }
        true
    });
    let _ = events::close(a);
    let _ = events::close(b);
    print(rep, "event-loopback", delivery?);
    Ok(())
}
