//! Runs the self-test groups named on the command line and prints the `RESULT` line.

use core::fmt;

use super::report::{Outcome, Reporter};
use super::{boot, platform};
use crate::cmdline::Options;
use crate::xen::console;

/// The console as a `fmt::Write` sink for test lines.
pub struct ConsoleOut;

impl fmt::Write for ConsoleOut {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        console::write(s.as_bytes()).map_err(|_| fmt::Error)
    }
}

/// Runs every selected group; an unknown group counts as a failed test `group-<name>`.
/// `boot` needs no event, grant or xenstore set-up; `events`, `grants` and `services` bring
/// up what they need (`platform` runs all four), `blk` everything before its first test.
pub fn run(opts: &Options<'_>) -> Outcome {
    let mut rep = Reporter::new(ConsoleOut, opts.inject_fail);
    for group in opts.groups() {
        match group {
            "boot" => boot::run(&mut rep),
            "platform" => platform::run(&mut rep),
            "events" => platform::run_events(&mut rep),
            "grants" => platform::run_grants(&mut rep),
            "services" => platform::run_services(&mut rep),
            "net" => super::net::run(&mut rep),
            // Not in `platform`: fetches a blob from another domain (`peer-ip=`).
            "net-peer" => super::net_peer::run(&mut rep),
            // Not part of `platform`: its answers differ from stock Xen's where Xen's own
            // bounds are tighter (see the module).
            "hostile-bounds" => super::hostile_bounds::run(&mut rep),
            // Not in `platform`: a hostile guest's calls by class, their answers digested
            // (compared with stock Xen's by `cargo xtask test`).
            "hostile" => super::hostile::run(&mut rep),
            // Not in `platform`: a page filled with a pattern (first run) and checked
            // (second), for hv's isolation boot.
            "canary" => {
                crate::kernel::ensure_events();
                super::hostile::canary::run(&mut rep)
            }
            // Not in `platform`: it gives pages back to the hypervisor and takes them again.
            "balloon" => super::balloon::run(&mut rep),
            // Not in `platform`: spins with interrupts off for `spin-secs=` seconds, to be
            // run beside other domains on hv.
            "spin" => super::spin::run(&mut rep, opts),
            // Not in `platform`: the singleshot timer armed over and over while events arrive
            // for `spin-secs=` seconds (issue 28's triple fault, sought).
            "timer-storm" => super::timer_storm::run(&mut rep, opts),
            // Not in `platform`: faults on purpose, for the crash report's check.
            "fault" => super::fault::run(),
            // Not in `platform`: overflows the stack on purpose, for the double fault's report.
            "fault-stack" => super::fault::run_stack(),
            // Not in `platform`: the emulated local APIC's registers, timer and self-IPI.
            "lapic" => super::lapic::run(&mut rep),
            // Not in `platform`: two domains started together, `pair=offer` and
            // `pair=accept`, each told the other's id in `data/peer-domid`.
            "pair" => super::pair::run(&mut rep, opts),
            // Not in `platform`: figures for `cargo xtask bench` (`BENCH` lines).
            "bench" => {
                crate::kernel::ensure_events();
                super::bench::run(&mut rep);
            }
            "blk" => {
                crate::kernel::ensure_platform();
                super::blk::run(&mut rep)
            }
            // Not in `platform`: its floods leave no trace, but are for hv's harness only.
            "xs-quota" => {
                crate::kernel::ensure_platform();
                for &(name, test) in super::xs_quota::TESTS {
                    let _ = rep.record(name, test());
                }
            }
            other => {
                let name = alloc::format!("group-{other}");
                let _ = rep.record(&name, Err("unknown self-test group"));
            }
        }
    }
    // If the console is broken, RESULT cannot be printed; the shutdown reason still tells.
    rep.finish().unwrap_or(Outcome::SomeFailed)
}
