//! The `pvguest` kernel binary: the boot path, platform and application live in the library;
//! this crate adds the panic handler.
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("pvguest is a kernel: build it for x86_64-unknown-none and boot it on Xen");
    std::process::exit(2);
}

/// Prints the panic and shuts the domain down with reason crash.
#[cfg(target_os = "none")]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    pvguest::kernel::panic(info)
}
