//! The Xen platform as seen from a PVH domU: discovery, hypercalls, shared info and time,
//! event channels, grant tables, xenstore, the PV console, and shutdown.

pub mod console;
pub mod cpuid;
pub mod events;
pub mod grant_map;
pub mod grant_table;
pub mod hypercall;
pub mod platform;
pub mod shared_info;
pub mod shared_page;
pub mod shutdown;
pub mod suspend;
pub mod time;
pub mod xenstore;
