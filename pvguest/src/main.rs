//! The `pvguest` kernel binary: the boot path, platform and application live in the library;
//! this crate adds the entry the boot stub calls, which hands control from the boot sequence
//! to the self-tests or the application, and the panic handler.
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("pvguest is a kernel: build it for x86_64-unknown-none and boot it on Xen");
    std::process::exit(2);
}

// The PVH entry (note, boot stack, page tables, long mode), which calls `kernel_start`.
#[cfg(target_os = "none")]
pvh::pvh_entry!(
    stack_size = pvguest::arch::BOOT_STACK_SIZE,
    entry = kernel_start
);

/// The Rust entry, called once by the PVH entry stub with the start info's physical address:
/// the boot sequence, then the self-tests the command line names (and a durable-storage run
/// after them if asked for), a durable-storage run, or the application.
#[cfg(target_os = "none")]
extern "C" fn kernel_start(start_info_paddr: u32) -> ! {
    use pvguest::selftest::report::Outcome;
    use pvguest::{app, cmdline::Options, durable, kernel, selftest, xen::shutdown};

    let state = kernel::boot(start_info_paddr);
    let cmdline = state.cmdline();
    let opts = Options::parse(cmdline);
    if opts.selftest.is_some() {
        match selftest::run::run(&opts) {
            // A durable-storage run may follow passed self-tests (on the disk they left open).
            Outcome::AllPassed if durable::requested(cmdline) => {
                durable::run(cmdline, selftest::blk::take_rw_disk())
            }
            Outcome::AllPassed => shutdown::poweroff(),
            Outcome::SomeFailed => shutdown::crash(),
        }
    }
    if durable::requested(cmdline) {
        durable::run(cmdline, None);
    }
    app::main()
}

/// Prints the panic and shuts the domain down with reason crash.
#[cfg(target_os = "none")]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    pvguest::kernel::panic(info)
}
