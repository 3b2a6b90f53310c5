//! Self-test group `timer-storm` (not part of `platform`): issue 28's triple fault, reported
//! at the guest's `VCPUOP_set_singleshot_timer` under load, sought on purpose. For
//! `spin-secs=<n>` seconds (default 5) the guest arms its singleshot timer over and over with
//! deadlines from the past to a few hundred microseconds ahead while an event-channel
//! loopback keeps events arriving, in three ways taken in turn: armed with interrupts on (the
//! upcall Xen injects right after the hypercall returns), armed and then halted on
//! ([`time::wait_until`], as the service's loop idles), and an event sent just before the
//! arming. `TEST timer-storm ok` if every round ended and the timer kept firing; the counts
//! (rounds, timer events, upcalls, halts) and the boot stack's peak in a log line. A triple
//! fault ends the domain instead (Xen logs it: `cargo xtask xen-timer-storm` reads `xl
//! dmesg`).

use alloc::format;
use alloc::string::String;

use abi::xen::DOMID_SELF;

use super::report::Reporter;
use super::run::ConsoleOut;
use crate::cmdline::Options;
use crate::proto::evtchn::Port;
use crate::xen::events;
use crate::xen::{hypercall, time};

/// The vCPU this runs on.
const VCPU: u32 = 0;
/// The deadlines, cycled: microseconds after now (0: already due when armed).
const AHEAD_US: [u64; 8] = [0, 1, 5, 20, 50, 100, 250, 500];
/// How long one round may take before the storm counts it as a lost wake-up.
const ROUND_MS: u64 = 1_000;

/// Runs the group: one test, `timer-storm`.
pub fn run(rep: &mut Reporter<'_, ConsoleOut>, opts: &Options<'_>) {
    let result = opts.spin_seconds().and_then(storm);
    let _ = rep.record("timer-storm", result);
}

fn storm(secs: u32) -> Result<(), String> {
    if !crate::kernel::ensure_events() || time::timer_port().is_none() {
        return Err("event channels and the timer are not up".into());
    }
    let a = events::alloc_unbound(DOMID_SELF).map_err(|e| format!("alloc_unbound: {e}"))?;
    let b = events::bind_interdomain(DOMID_SELF, a).map_err(|e| format!("bind: {e}"))?;
    events::bind_latch(b).map_err(|e| format!("bind_latch: {e}"))?;
    let result = rounds(secs, a, b);
    let _ = events::unbind(b);
    let _ = events::close(a);
    let _ = events::close(b);
    result
}

fn rounds(secs: u32, a: Port, b: Port) -> Result<(), String> {
    let clock = |e: crate::xen::shared_info::ClockError| format!("clock: {e:?}");
    let start = time::now().map_err(clock)?;
    let end = start.add_millis(u64::from(secs) * 1000);
    let (timer0, upcalls0, halts0) = counts();
    let mut round: u64 = 0;
    let mut aheads = AHEAD_US.iter().copied().cycle();
    loop {
        let now = time::now().map_err(clock)?;
        if now >= end {
            break;
        }
        let ahead = aheads.next().unwrap_or(0);
        let deadline = xenbus::Instant::from_nanos(now.as_nanos().saturating_add(ahead * 1000));
        let limit = now.add_millis(ROUND_MS);
        match round % 3 {
            // Armed with interrupts on: the timer's upcall (and the loopback's) may arrive
            // right as the hypercall returns.
            0 => {
                let before = time::stats().timer_events;
                arm(deadline)?;
                while time::stats().timer_events == before {
                    if time::now().map_err(clock)? >= limit {
                        return Err(format!(
                            "round {round}: the timer armed {ahead} us ahead never fired"
                        ));
                    }
                    core::hint::spin_loop();
                }
            }
            // Armed, then halted on until the deadline (the service's idle path).
            1 => {
                time::sleep_until(deadline).map_err(|e| format!("round {round}: {e}"))?;
            }
            // An event sent, the timer armed, then halted on until the event is seen.
            _ => {
                events::send(a).map_err(|e| format!("round {round}: send: {e}"))?;
                arm(deadline)?;
                let seen = time::wait_until(limit, || events::take_latched(b))
                    .map_err(|e| format!("round {round}: {e}"))?;
                if !seen {
                    return Err(format!("round {round}: the loopback's event never arrived"));
                }
            }
        }
        round += 1;
        if round.is_multiple_of(100_000) {
            let (t, u, h) = counts();
            log::info!(
                "timer-storm: {round} rounds, {} timer events, {} upcalls, {} halts",
                t - timer0,
                u - upcalls0,
                h - halts0
            );
        }
    }
    let (t, u, h) = counts();
    let used = crate::arch::stack::boot_stack_use();
    log::info!(
        "timer-storm: {secs} s, {round} rounds, {} timer events, {} upcalls, {} halts; boot \
         stack peak {} of {} bytes",
        t - timer0,
        u - upcalls0,
        h - halts0,
        used.peak,
        used.size
    );
    Ok(())
}

/// `VCPUOP_set_singleshot_timer` for `deadline` (with interrupts as they are).
fn arm(deadline: xenbus::Instant) -> Result<(), String> {
    hypercall::set_singleshot_timer(VCPU, crate::xen::shared_info::to_xen(deadline))
        .map_err(|e| format!("VCPUOP_set_singleshot_timer: {e}"))
}

/// Timer events, upcalls and halts so far.
fn counts() -> (u64, u64, u64) {
    (
        time::stats().timer_events,
        events::stats().upcalls,
        time::stats().halts,
    )
}
