//! The guest-physical layout hv gives a domain: that of a Xen 4.17 PVH domU built by `xl`
//! with `memory = 128` (xtask's stock-Xen config), domain id 1, one vCPU.
//!
//! RAM starts at 0. libxc's x86 HVM/PVH builder keeps eight "special pages" just below
//! 0xff000000 (pfn 0xfeff8..0xfefff); the xenstore ring is special page 4 and the console
//! ring special page 7 (xenlab saw the console at 0xfefff000 on stock Xen).

/// The domain's id (xl gives the first domU 1).
pub const DOMID: u16 = 1;

/// Bytes of RAM (xl `memory = 128`).
pub const RAM_BYTES: u64 = 128 << 20;

/// Page size.
pub const PAGE_SIZE: u64 = 4096;

/// First pfn of libxc's special-page region.
pub const SPECIAL_REGION_FIRST_PFN: u64 = 0xfeff8;
/// Number of special pages.
pub const SPECIAL_REGION_PAGES: u64 = 8;

/// The xenstore ring page (`HVM_PARAM_STORE_PFN`).
pub const STORE_PFN: u64 = SPECIAL_REGION_FIRST_PFN + 4;
/// The console ring page (`HVM_PARAM_CONSOLE_PFN`).
pub const CONSOLE_PFN: u64 = SPECIAL_REGION_FIRST_PFN + 7;

/// The xenstore event channel (`HVM_PARAM_STORE_EVTCHN`): xl allocates it first.
pub const STORE_EVTCHN: u32 = 1;
/// The console event channel (`HVM_PARAM_CONSOLE_EVTCHN`): xl allocates it second.
pub const CONSOLE_EVTCHN: u32 = 2;

const _: () = assert!(CONSOLE_PFN == 0xfefff && STORE_PFN == 0xfeffc);
const _: () = assert!(RAM_BYTES.is_multiple_of(2 << 20));
