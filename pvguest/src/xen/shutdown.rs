//! Domain shutdown through `SCHEDOP_shutdown`, after flushing the console.

use core::fmt::Write;

use super::console::{self, EmergencyWriter};
use super::hypercall::{self, ShutdownReason};

fn halt_forever() -> ! {
    loop {
        x86_64::instructions::interrupts::disable();
        x86_64::instructions::hlt();
    }
}

fn shutdown(reason: ShutdownReason, flushed: Result<(), console::ConsoleError>) -> ! {
    if let Err(e) = flushed {
        let _ = writeln!(
            EmergencyWriter,
            "[WARN ] console flush before shutdown: {e}"
        );
    }
    let err = hypercall::sched_shutdown(reason);
    let _ = writeln!(
        EmergencyWriter,
        "[ERROR] SCHEDOP_shutdown({reason:?}) failed: {err}"
    );
    halt_forever()
}

/// Flushes the console and powers the domain off.
pub fn poweroff() -> ! {
    shutdown(ShutdownReason::Poweroff, console::flush())
}

/// Flushes the console and reboots the domain.
pub fn reboot() -> ! {
    shutdown(ShutdownReason::Reboot, console::flush())
}

/// Flushes the console if it is not locked (the crash may come from inside it) and shuts
/// the domain down with reason crash.
pub fn crash() -> ! {
    shutdown(ShutdownReason::Crash, console::try_flush())
}

/// The CPU exception handler the boot sequence gives `pvh::exceptions::init`: prints the fault
/// through the emergency console writer and shuts the domain down with reason crash.
pub fn fault(fault: &pvh::exceptions::Fault<'_>) -> ! {
    let _ = writeln!(EmergencyWriter, "EXCEPTION {fault}");
    crash()
}
