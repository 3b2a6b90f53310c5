//! Self-test group `spin` (not part of `platform`): the guest disables interrupts and spins
//! for `spin-secs=<n>` seconds of Xen system time (default 5), with no hypercall and no halt,
//! then enables them again: `FACT spin.seconds <n>` and `TEST spin ok`. On hv a domain beside
//! it must keep running all the while (hv preempts the spinner with its own timer); on stock
//! Xen it just works.
//!
//! The clock is the pvclock in `vcpu_info` (shared memory and `rdtsc`, no interrupt needed).
//! A singleshot timer armed just before the spin fires during it: its upcall must not run
//! while interrupts are off, and must run once they are on again.

use alloc::format;
use alloc::string::String;

use x86_64::instructions::interrupts;

use super::report::Reporter;
use super::run::ConsoleOut;
use crate::cmdline::Options;
use crate::xen::shared_info::ClockError;
use crate::xen::{hypercall, time};
use xenbus::Instant;

/// The vCPU this runs on.
const VCPU: u32 = 0;
/// When the timer armed before the spin fires, after the spin starts.
const TIMER_MS: u64 = 10;
/// How long the upcall of that timer may take to arrive once interrupts are on.
const UPCALL_WAIT_MS: u64 = 2_000;
/// Clock reads in a row that may fail (Xen updating the record each time) before the spin
/// gives up.
const CLOCK_FAILURES_MAX: u32 = 1_000_000;

/// Runs the group: one test, `spin`.
pub fn run(rep: &mut Reporter<'_, ConsoleOut>, opts: &Options<'_>) {
    let result = opts.spin_seconds().and_then(|secs| {
        let _ = rep.fact("spin", "seconds", secs);
        spin(secs)
    });
    let _ = rep.record("spin", result);
}

fn spin(secs: u32) -> Result<(), String> {
    if !crate::kernel::ensure_events() || time::timer_port().is_none() {
        return Err("event channels and the timer are not up".into());
    }
    interrupts::disable();
    let before = timer_events();
    let spun = arm_and_spin(secs, before);
    interrupts::enable();
    let (start, stopped, upcalls_while_off) = spun?;
    if upcalls_while_off != 0 {
        return Err(format!(
            "{upcalls_while_off} timer upcalls ran while interrupts were off"
        ));
    }
    // The timer's deadline passed long ago: its upcall is due as soon as interrupts are on,
    // or once the hypervisor next runs (a yield makes sure it does).
    let wait_end = time::deadline_ms(UPCALL_WAIT_MS).map_err(clock)?;
    while timer_events() == before {
        if time::now().map_err(clock)? >= wait_end {
            return Err(format!(
                "the timer that fired during the spin sent no upcall within {UPCALL_WAIT_MS} ms \
                 of enabling interrupts"
            ));
        }
        hypercall::sched_yield().map_err(|e| format!("SCHEDOP_yield: {e}"))?;
    }
    log::info!(
        "spin: {} ms with interrupts off; the timer's upcall came after",
        stopped.as_nanos().saturating_sub(start.as_nanos()) / 1_000_000
    );
    Ok(())
}

/// `VIRQ_TIMER` events delivered so far (counted by the upcall's handler).
fn timer_events() -> u64 {
    time::stats().timer_events
}

fn clock(e: ClockError) -> String {
    format!("clock: {e:?}")
}

/// With interrupts off: arms the timer [`TIMER_MS`] ahead, then spins until `secs` seconds
/// have passed, with no hypercall and no halt. `(start, end, timer upcalls that ran)`.
fn arm_and_spin(secs: u32, before: u64) -> Result<(Instant, Instant, u64), String> {
    let start = time::now().map_err(clock)?;
    hypercall::set_singleshot_timer(VCPU, start.add_millis(TIMER_MS))
        .map_err(|e| format!("arming the timer: {e}"))?;
    let end = start.add_millis(u64::from(secs) * 1000);
    let mut failures = 0u32;
    loop {
        match time::now() {
            Ok(now) if now >= end => {
                return Ok((start, now, timer_events().wrapping_sub(before)));
            }
            Ok(_) => failures = 0,
            Err(e) if failures >= CLOCK_FAILURES_MAX => return Err(clock(e)),
            Err(_) => failures += 1,
        }
        core::hint::spin_loop();
    }
}
