//! Self-test group `platform`: the group `boot` ([`super::boot`]), the tests
//! `vector-registers` ([`super::vector_registers`]) and `extended-state`
//! ([`super::extended_state`]), then the groups `events`
//! ([`super::events`]), `grants` ([`super::grants`]) and `services` (the console under load,
//! xenstore: [`super::store`]), in that order. Each group brings up only what it needs:
//! `events` event channels and the timer, `grants` the grant table, `services` xenstore too.
//! `vector-registers` needs the timer and xenstore (its domain id), so within `platform` the
//! whole platform comes up after `boot`: the test runs as early as it can, so that two
//! domains booted together run it at the same time.

use alloc::format;
use alloc::string::String;

use super::report::Reporter;
use super::run::ConsoleOut;
use crate::xen::console;

/// What a test returns: `Err` carries the reason for the `FAIL` line.
pub(super) type TestResult = Result<(), String>;
/// A named test.
pub(super) type Test = (&'static str, fn() -> TestResult);

/// Runs the four groups, `vector-registers` and `extended-state` after the first.
pub fn run(rep: &mut Reporter<'_, ConsoleOut>) {
    super::boot::run(rep);
    crate::kernel::ensure_platform();
    run_tests(
        rep,
        &[
            (
                "vector-registers",
                super::vector_registers::vector_registers,
            ),
            ("extended-state", super::extended_state::extended_state),
        ],
    );
    run_events(rep);
    run_grants(rep);
    run_services(rep);
    log::info!(
        "platform: events {:?}, time {:?}, xenstore {:?}",
        crate::xen::events::stats(),
        crate::xen::time::stats(),
        crate::xen::xenstore::stats()
    );
}

fn run_tests(rep: &mut Reporter<'_, ConsoleOut>, tests: &[Test]) {
    for &(name, test) in tests {
        let result = test();
        let _ = rep.record(name, result);
    }
}

fn print_facts(rep: &mut Reporter<'_, ConsoleOut>, group: &str, facts: &[(&str, String)]) {
    for (key, value) in facts {
        let _ = rep.fact(group, key, value);
    }
}

/// Group `events`: `FACT events.*`, then time and event-channel tests.
pub fn run_events(rep: &mut Reporter<'_, ConsoleOut>) {
    crate::kernel::ensure_events();
    print_facts(rep, "events", &super::events::facts());
    run_tests(rep, super::events::TESTS);
}

/// Group `grants`: `FACT grants.*`, then the grant tests.
pub fn run_grants(rep: &mut Reporter<'_, ConsoleOut>) {
    crate::kernel::ensure_grants();
    print_facts(rep, "grants", &super::grants::facts());
    run_tests(rep, super::grants::TESTS);
}

/// Group `services`: the console under load, xenstore and the xenbus front end.
pub fn run_services(rep: &mut Reporter<'_, ConsoleOut>) {
    crate::kernel::ensure_platform();
    run_tests(rep, &[("console-flood", console_flood)]);
    run_tests(rep, super::store::TESTS);
}

/// Lines of the console flood.
pub const FLOOD_LINES: u32 = 2000;

fn console_flood() -> TestResult {
    let before = console::stats();
    let mut first = None;
    for i in 1..=FLOOD_LINES {
        // Batched: the backend is notified only when the ring fills, so the writer must wait
        // for it (the ring-full path) many times over.
        let mut result = console::print_batched(format_args!("FLOOD {i} {FLOOD_LINES}\n"));
        if i == FLOOD_LINES {
            result = result.and_then(|()| console::notify());
        }
        if let Err(e) = result {
            // A stalled backend makes every later write wait out the stall timeout too:
            // stop at the first failure.
            first = Some((i, e));
            break;
        }
    }
    let after = console::stats();
    log::info!(
        "console-flood: {} ring-full waits, {} polls, {} event waits, {} renotifies",
        after.full_waits - before.full_waits,
        after.polls - before.polls,
        after.event_waits - before.event_waits,
        after.renotifies - before.renotifies
    );
    match first {
        None => Ok(()),
        Some((i, e)) => Err(format!(
            "write {i} of {FLOOD_LINES} failed ({e}); the flood stopped there"
        )),
    }
}
