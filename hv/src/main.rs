//! The `hv` kernel binary: everything lives in the library; this crate adds the panic
//! handler.
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("hv is a kernel: build it for x86_64-unknown-none and boot it under QEMU");
    std::process::exit(2);
}

/// Prints the panic on the serial port and stops QEMU.
#[cfg(target_os = "none")]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    hv::kernel::panic(info)
}
