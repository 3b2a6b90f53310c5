//! `pvguest`: a library OS for Xen PVH guests.
//!
//! Protocol logic lives in [`proto`] and the other host-testable modules ([`boot_info`],
//! [`cmdline`], [`memory::frames`], [`selftest::report`]); the kernel proper (boot, paging,
//! exceptions and the event upcall, hypercalls, console, heap, time, event channels, grant
//! tables, xenstore) is compiled only for `x86_64-unknown-none`.
#![cfg_attr(target_os = "none", no_std)]

extern crate alloc;

/// The start-info reader (pvh's; the `XENMEM_memory_map` fallback is in `kernel`).
pub use pvh::boot_info;
pub mod cmdline;
pub mod memory;
pub mod proto;
pub mod selftest;

#[cfg(target_os = "none")]
pub mod app;
#[cfg(target_os = "none")]
pub mod arch;
#[cfg(target_os = "none")]
pub mod disk;
#[cfg(target_os = "none")]
pub mod durable;
#[cfg(target_os = "none")]
pub mod kernel;
#[cfg(target_os = "none")]
pub mod service;
#[cfg(target_os = "none")]
pub mod xen;
