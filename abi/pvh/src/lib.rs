//! `pvh`: the x86_64 machine layer both kernels (`pvguest` and `hv`) share, below anything
//! Xen-specific.
//!
//! Host-testable (plain `cargo test -p pvh`):
//! - [`boot_info`]: the PVH start info (`hvm_start_info`) read through [`boot_info::PhysRead`],
//!   its command line, modules and memory map, and the choice between the start info's map and
//!   a fallback the caller supplies (pvguest's is the `XENMEM_memory_map` hypercall; hv has
//!   none).
//! - [`frames`]: free physical ranges (RAM minus reserved and non-RAM ranges, each frame once
//!   however untidy the map) and the frame allocator over them.
//! - [`backtrace`]: the bounded frame-pointer walk of both kernels' crash reports and their
//!   `BACKTRACE` line (the walk of the boot stack itself is kernel only).
//! - [`stack`]: the stacks' high-water marks, from the paint the entry stub and `gdt` leave
//!   (the scan is host-tested; reading the live stacks is kernel only).
//!
//! Kernel only (`x86_64-unknown-none`):
//! - `pvh_entry!`: the PVH entry stub, the `XEN_ELFNOTE_PHYS32_ENTRY` note, the boot page
//!   tables, the boot stack with its guard page and the switch to long mode, expanded in the
//!   kernel crate with its stack size and Rust entry; `boot` reaches what it built (the
//!   identity map's size, the stack, the guard page installation, an identity-map reader).
//! - `gdt`: the GDT and the TSS with the double-fault IST stack.
//! - `exceptions`: the IDT, the stubs of vectors 0..31 with the fault handler passed in, and
//!   `exceptions::set_interrupt_gate` for the kernel's own interrupt stubs.
//! - `port`: port I/O. `heap`: the locked heap a kernel makes its `#[global_allocator]`.
//!
//! The crate knows nothing of Xen's hypercalls, its console or either kernel: what differs
//! between the kernels (stack size, entry function, what a fault prints and how the kernel
//! stops) is passed in.
#![cfg_attr(target_os = "none", no_std)]

pub mod backtrace;
pub mod boot_info;
pub mod frames;
pub mod stack;

#[cfg(target_os = "none")]
pub mod boot;
#[cfg(target_os = "none")]
pub mod entry;
#[cfg(target_os = "none")]
pub mod exceptions;
#[cfg(target_os = "none")]
pub mod gdt;
#[cfg(target_os = "none")]
pub mod heap;
#[cfg(target_os = "none")]
pub mod port;
