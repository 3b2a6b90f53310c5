//! The Xen platform as seen from a PVH domU: discovery, hypercalls, shared info and time,
//! the PV console, and shutdown.

pub mod console;
pub mod cpuid;
pub mod hypercall;
pub mod shared_info;
pub mod shutdown;
