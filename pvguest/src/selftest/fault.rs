//! Self-test group `fault` (not part of `platform`): the guest reads an unmapped address on
//! purpose, so that its fault handler prints the crash report (`EXCEPTION ...` and
//! `BACKTRACE fault ...`, which xtask resolves to functions and lines) and the domain crashes.
//! It reports no `TEST` line: the harness judges the report (`HOST crash-symbols`).

/// A canonical address (bit 47 clear: a #PF, not a #GP) far above pvguest's identity map (4 GiB): never mapped.
pub const UNMAPPED: u64 = 0x4000_0000_0000;

/// Runs the group: faults, and so never returns.
pub fn run() -> ! {
    log::info!("fault: reading {UNMAPPED:#x}, which is not mapped");
    let value = read_unmapped();
    // Not reached: the page fault's handler crashes the domain.
    panic!("reading {UNMAPPED:#x} did not fault (read {value:#x})");
}

/// Reads [`UNMAPPED`]: the function the crash report must name.
#[inline(never)]
fn read_unmapped() -> u64 {
    // SAFETY: the read faults on purpose (nothing is mapped there); the page-fault handler
    // reports it and crashes the domain, so no value is ever produced from it.
    unsafe { core::ptr::read_volatile(UNMAPPED as *const u64) }
}
