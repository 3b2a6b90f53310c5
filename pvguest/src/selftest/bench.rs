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

use alloc::boxed::Box;
use core::fmt::Write;
use core::sync::atomic::{AtomicU64, Ordering};

use abi::xen::DOMID_SELF;

use super::report::Reporter;
use super::run::ConsoleOut;
use crate::arch::read_tsc;
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
