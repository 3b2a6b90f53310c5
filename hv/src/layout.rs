//! The domain hv builds: that of a Xen 4.17 PVH domU made by `xl` with `memory = 128`
//! (xtask's stock-Xen config), domain id 1, one vCPU. The guest-physical layout itself
//! (RAM from 0, libxc's special pages below 0xff000000) is [`crate::builder::layout`].

use crate::builder::layout::{CONSOLE_GFN, STORE_GFN};

/// The domain's id (xl gives the first domU 1).
pub const DOMID: u16 = 1;

/// MiB of RAM (xl `memory = 128`).
pub const MEMORY_MIB: u64 = 128;

/// The xenstore ring page (`HVM_PARAM_STORE_PFN`).
pub const STORE_PFN: u64 = STORE_GFN;
/// The console ring page (`HVM_PARAM_CONSOLE_PFN`).
pub const CONSOLE_PFN: u64 = CONSOLE_GFN;

/// The xenstore event channel (`HVM_PARAM_STORE_EVTCHN`): xl allocates it first (stock Xen
/// gave pvguest port 1).
pub const STORE_EVTCHN: u32 = 1;
/// The console event channel (`HVM_PARAM_CONSOLE_EVTCHN`): xl allocates it second.
pub const CONSOLE_EVTCHN: u32 = 2;

const _: () = assert!(CONSOLE_PFN == 0xfefff && STORE_PFN == 0xfeffc);
