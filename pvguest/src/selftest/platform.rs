//! Self-test group `platform`: the `boot` group ([`super::boot`]) before the event, grant and
//! xenstore set-up; then, once that is up, the console under load, time and event channels
//! ([`super::events`]), grants ([`super::grants`]) and xenstore ([`super::store`]).

use alloc::format;
use alloc::string::String;

use super::report::Reporter;
use super::run::ConsoleOut;
use crate::xen::console;

/// What a test returns: `Err` carries the reason for the `FAIL` line.
pub(super) type TestResult = Result<(), String>;
/// A named test.
pub(super) type Test = (&'static str, fn() -> TestResult);

/// Runs the group, recording each test: the boot tests, the platform set-up, the rest.
pub fn run(rep: &mut Reporter<'_, ConsoleOut>) {
    super::boot::run(rep);
    crate::kernel::ensure_platform();
    let tests: [Test; 1] = [("console-flood", console_flood)];
    let rest = super::events::TESTS
        .iter()
        .chain(super::grants::TESTS)
        .chain(super::store::TESTS);
    for &(name, test) in tests.iter().chain(rest) {
        let result = test();
        let _ = rep.record(name, result);
    }
    log::info!(
        "platform: events {:?}, time {:?}, xenstore {:?}",
        crate::xen::events::stats(),
        crate::xen::time::stats(),
        crate::xen::xenstore::stats()
    );
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
