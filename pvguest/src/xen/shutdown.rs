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
/// and its frame-pointer backtrace (`BACKTRACE fault <rip> <return address>...`, resolved by
/// xtask) through the emergency console writer and shuts the domain down with reason crash.
pub fn fault(fault: &pvh::exceptions::Fault<'_>) -> ! {
    let _ = writeln!(EmergencyWriter, "EXCEPTION {fault}");
    // The boot stack's high-water mark: its whole size when the fault was an overflow into
    // the guard page (the double fault then arrives on its IST stack).
    let used = crate::arch::stack::boot_stack_use();
    let _ = writeln!(
        EmergencyWriter,
        "STACK size {} peak {}",
        used.size, used.peak
    );
    let mut returns = [0; pvh::backtrace::DEPTH_MAX];
    let n = pvh::backtrace::walk_boot_stack(fault.frame.rbp, &mut returns);
    let _ = pvh::backtrace::write_line(
        &mut EmergencyWriter,
        "fault",
        Some(fault.frame.rip),
        returns.get(..n).unwrap_or(&[]),
    );
    crash()
}

/// Prints the backtrace of the caller (`BACKTRACE panic <return address>...`) through the
/// emergency console writer.
#[inline(never)]
pub fn print_backtrace() {
    let mut returns = [0; pvh::backtrace::DEPTH_MAX];
    let n = pvh::backtrace::walk_boot_stack(pvh::backtrace::current_rbp(), &mut returns);
    let _ = pvh::backtrace::write_line(
        &mut EmergencyWriter,
        "panic",
        None,
        returns.get(..n).unwrap_or(&[]),
    );
}
