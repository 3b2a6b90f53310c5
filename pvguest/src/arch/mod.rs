//! x86_64 machine layer: the PVH entry and page tables, GDT/TSS, IDT and exception stubs,
//! the event-channel upcall stub and idle (`sti; hlt`), and port I/O. The only place that
//! touches control registers and descriptor tables.

pub mod boot;
pub mod exceptions;
pub mod gdt;
pub mod paging;
pub mod port;
pub mod upcall;

/// Reads the time-stamp counter (`RDTSC`).
pub fn read_tsc() -> u64 {
    // SAFETY: RDTSC has no memory effects; the domain runs with tsc_mode native or emulated
    // TSC, either way readable at CPL 0.
    unsafe { core::arch::x86_64::_rdtsc() }
}
