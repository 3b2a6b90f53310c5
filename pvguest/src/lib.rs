//! `pvguest`: a library OS for Xen PVH guests.
//!
//! Protocol logic lives in [`proto`] and the other host-testable modules ([`boot_info`],
//! [`cmdline`], [`vbd`], [`memory::frames`], [`memory::global`], [`durable::storm`],
//! [`selftest::report`]); the kernel proper (boot, paging, exceptions and the event upcall,
//! hypercalls, console, heap, time, event channels, grant tables, xenstore) is compiled only
//! for `x86_64-unknown-none`.
//!
//! Floors point down: the machine layer (`arch`) and the platform (`xen`) never import the
//! boot sequence (`kernel`), which imports neither the application (`app`, `durable`) nor the
//! self-tests (`selftest`); the binary's entry (`main.rs`) runs the boot sequence, then hands
//! control to one of them. xtask's tidy test keeps the top-level modules free of import cycles.
#![cfg_attr(target_os = "none", no_std)]

extern crate alloc;

/// The start-info reader (pvh's; the `XENMEM_memory_map` fallback is in `kernel`).
pub use pvh::boot_info;
pub mod cmdline;
pub mod durable;
pub mod memory;
pub mod proto;
pub mod reads;
pub mod selftest;
pub mod vbd;

#[cfg(target_os = "none")]
pub mod app;
#[cfg(target_os = "none")]
pub mod arch;
#[cfg(target_os = "none")]
pub mod disk;
#[cfg(target_os = "none")]
pub mod kernel;
#[cfg(target_os = "none")]
pub mod service;
#[cfg(target_os = "none")]
pub mod xen;
