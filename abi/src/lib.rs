//! The Xen 4.17 guest ABI for x86_64 HVM/PVH guests and their backends.
//!
//! Layouts and constants of Xen's public headers (interface version `0x00040e00`), the generic
//! shared ring with Xen's index and notification rules, and xenstore message framing; no other
//! logic. Every wire type is `#[repr(C)]` with its size and field offsets asserted beside it, and
//! `abi/conformance` compares them with the headers Debian's `libxen-dev` installs.
//!
//! Naming: constants keep Xen's names, upper-cased, with leading underscores dropped
//! (`__HYPERVISOR_sched_op` is [`xen::HYPERVISOR_SCHED_OP`]); a C `struct foo_bar` is the Rust
//! type `FooBar`; fields keep their C names (a Rust keyword gets a trailing underscore: `type_`).
#![no_std]

pub mod byte_ring;
pub mod cpuid;
pub mod elfnote;
pub mod errno;
pub mod event_channel;
pub mod features;
pub mod grant_table;
pub mod hvm;
pub mod io;
pub mod memory;
pub mod op;
pub mod page;
pub mod ring;
pub mod sched;
pub mod start_info;
pub mod vcpu;
pub mod version;
pub mod wire;
pub mod xen;

/// The Xen interface version this crate describes (`__XEN_INTERFACE_VERSION__`).
pub const XEN_INTERFACE_VERSION: u32 = 0x0004_0e00;
