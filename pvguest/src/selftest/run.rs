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
/// `boot` needs no event, grant or xenstore set-up; `platform` brings it up after its boot
/// tests, `blk` before its first.
pub fn run(opts: &Options<'_>) -> Outcome {
    let mut rep = Reporter::new(ConsoleOut, opts.inject_fail);
    for group in opts.groups() {
        match group {
            "boot" => boot::run(&mut rep),
            "platform" => platform::run(&mut rep),
            "blk" => {
                crate::kernel::ensure_platform();
                super::blk::run(&mut rep)
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
