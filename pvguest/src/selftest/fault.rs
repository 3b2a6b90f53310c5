//! Self-test groups `fault` and `fault-stack` (not part of `platform`): the guest faults on
//! purpose, so that its fault handler prints the crash report (`EXCEPTION ...` and
//! `BACKTRACE fault ...`, which xtask resolves to functions and lines) and the domain crashes.
//! `fault` reads an unmapped address (a page fault); `fault-stack` recurses until the boot
//! stack runs into its guard page, where the page fault cannot be delivered on that stack and
//! the CPU raises a double fault instead, handled on its own IST stack. Without that stack the
//! domain would triple-fault and print nothing. They report no `TEST` line: the harness
//! judges the report (`HOST crash-symbols`, `HOST crash-stack-overflow`).

/// A canonical address (bit 47 clear: a #PF, not a #GP) far above pvguest's identity map (4 GiB): never mapped.
pub const UNMAPPED: u64 = 0x4000_0000_0000;

/// Runs the group `fault`: faults, and so never returns.
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

/// Runs the group `fault-stack`: overflows the boot stack, and so never returns.
pub fn run_stack() -> ! {
    let (bottom, top) = pvh::boot::stack_range();
    log::info!(
        "fault-stack: recursing through the {} KiB boot stack into its guard page",
        (top - bottom) / 1024
    );
    let depth = descend(0);
    // Not reached: the double fault's handler crashes the domain.
    panic!("recursing {depth} frames did not overflow the stack");
}

/// Recurses with a 512-byte frame each time, until the stack overflows: the function the
/// crash report of `fault-stack` must name.
#[inline(never)]
fn descend(depth: u64) -> u64 {
    let frame = core::hint::black_box([depth.to_le_bytes()[0]; 512]);
    // Never true (`black_box` hides that from the compiler), so the recursion has an end the
    // compiler cannot remove, and the call cannot become a loop.
    if core::hint::black_box(depth) == u64::MAX {
        return depth;
    }
    descend(depth + 1).wrapping_add(u64::from(frame[usize::from(frame[0]) % 512]))
}
