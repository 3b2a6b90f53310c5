//! What every domain hv builds shares with a Xen 4.17 PVH domU made by `xl`: the special
//! pages' frames and the order of the toolstack's event channels. Ids, names and memory
//! sizes come from each domain's config (`kernel::start`); the guest-physical layout itself
//! (RAM from 0, libxc's special pages below 0xff000000) is [`crate::builder::layout`].

use crate::builder::layout::{CONSOLE_GFN, STORE_GFN};

/// MiB of RAM of the domain hv builds from a bare ELF module (xtask's stock-Xen config,
/// `memory = 128`).
pub const DEFAULT_MEMORY_MIB: u64 = 128;

/// The name of the domain hv builds from a bare ELF module (xtask's stock-Xen config).
pub const DEFAULT_NAME: &str = "pvguest";

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
