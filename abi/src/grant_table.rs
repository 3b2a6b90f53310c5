//! Grant tables: `xen/grant_table.h` (`HYPERVISOR_grant_table_op`).

use core::fmt;
use core::mem::{align_of, offset_of, size_of};

use crate::xen::{Domid, XenPfn};

/// `grant_ref_t`: index of an entry in a domain's grant table.
pub type GrantRef = u32;
/// `grant_handle_t`: handle of a mapped grant, returned by `GNTTABOP_map_grant_ref`.
pub type GrantHandle = u32;
/// `grant_status_t`: one entry of a v2 status frame.
pub type GrantStatus = u16;

// ---------------------------------------------------------------------------------------------
// Grant entries
// ---------------------------------------------------------------------------------------------

/// `struct grant_entry_v1`: one entry of a v1 grant table (shared with Xen).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GrantEntryV1 {
    /// `GTF_*` type and flags (written by the guest and by Xen).
    pub flags: u16,
    /// The domain being granted access.
    pub domid: Domid,
    /// The granted frame (GFN), or the frame transferred in.
    pub frame: u32,
}
const _: () = {
    assert!(size_of::<GrantEntryV1>() == 8 && align_of::<GrantEntryV1>() == 4);
    assert!(offset_of!(GrantEntryV1, flags) == 0);
    assert!(offset_of!(GrantEntryV1, domid) == 2);
    assert!(offset_of!(GrantEntryV1, frame) == 4);
};

/// Number of grant entries at the start of the table reserved for the toolstack.
pub const GNTTAB_NR_RESERVED_ENTRIES: GrantRef = 8;
/// Reserved entry granting the console ring to the console backend.
pub const GNTTAB_RESERVED_CONSOLE: GrantRef = 0;
/// Reserved entry granting the xenstore ring to xenstored.
pub const GNTTAB_RESERVED_XENSTORE: GrantRef = 1;

/// Entry type: grants nothing.
pub const GTF_INVALID: u16 = 0;
/// Entry type: `domid` may map/access `frame`.
pub const GTF_PERMIT_ACCESS: u16 = 1;
/// Entry type: `domid` may transfer one page to this domain (Xen writes `frame`).
pub const GTF_ACCEPT_TRANSFER: u16 = 2;
/// Entry type: `domid` may use a grant of another domain (v2 only).
pub const GTF_TRANSITIVE: u16 = 3;
/// Mask of the entry type.
pub const GTF_TYPE_MASK: u16 = 3;
/// Subflag: read-only access only.
pub const GTF_READONLY: u16 = 1 << 2;
/// Subflag (set by Xen): currently mapped for reading.
pub const GTF_READING: u16 = 1 << 3;
/// Subflag (set by Xen): currently mapped for writing.
pub const GTF_WRITING: u16 = 1 << 4;
/// Subflag (x86): page-level write-through for mappings.
pub const GTF_PWT: u16 = 1 << 5;
/// Subflag (x86): page-level cache disable for mappings.
pub const GTF_PCD: u16 = 1 << 6;
/// Subflag (x86): PAT bit for mappings.
pub const GTF_PAT: u16 = 1 << 7;
/// Subflag: grant only a sub-range of the page (copy only, v2).
pub const GTF_SUB_PAGE: u16 = 1 << 8;
/// Transfer subflag (set by Xen): committed to the transfer; do not modify the entry.
pub const GTF_TRANSFER_COMMITTED: u16 = 1 << 2;
/// Transfer subflag (set by Xen): transfer completed, `frame` is valid.
pub const GTF_TRANSFER_COMPLETED: u16 = 1 << 3;

/// `struct grant_entry_header`: the common header of a v2 entry.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GrantEntryHeader {
    /// `GTF_*` type and flags.
    pub flags: u16,
    /// The domain being granted access.
    pub domid: Domid,
}
const _: () = {
    assert!(size_of::<GrantEntryHeader>() == 4 && align_of::<GrantEntryHeader>() == 2);
    assert!(offset_of!(GrantEntryHeader, flags) == 0);
    assert!(offset_of!(GrantEntryHeader, domid) == 2);
};

/// `grant_entry_v2.full_page`: a v1-style full-page grant.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GrantEntryV2FullPage {
    /// Common header.
    pub hdr: GrantEntryHeader,
    /// Padding.
    pub pad0: u32,
    /// The granted frame.
    pub frame: u64,
}
const _: () = {
    assert!(size_of::<GrantEntryV2FullPage>() == 16 && align_of::<GrantEntryV2FullPage>() == 8);
    assert!(offset_of!(GrantEntryV2FullPage, hdr) == 0);
    assert!(offset_of!(GrantEntryV2FullPage, pad0) == 4);
    assert!(offset_of!(GrantEntryV2FullPage, frame) == 8);
};

/// `grant_entry_v2.sub_page`: access to bytes `[page_off, page_off + length)` of `frame`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GrantEntryV2SubPage {
    /// Common header.
    pub hdr: GrantEntryHeader,
    /// First byte granted.
    pub page_off: u16,
    /// Number of bytes granted.
    pub length: u16,
    /// The granted frame.
    pub frame: u64,
}
const _: () = {
    assert!(size_of::<GrantEntryV2SubPage>() == 16 && align_of::<GrantEntryV2SubPage>() == 8);
    assert!(offset_of!(GrantEntryV2SubPage, hdr) == 0);
    assert!(offset_of!(GrantEntryV2SubPage, page_off) == 4);
    assert!(offset_of!(GrantEntryV2SubPage, length) == 6);
    assert!(offset_of!(GrantEntryV2SubPage, frame) == 8);
};

/// `grant_entry_v2.transitive`: use of grant `gref` of domain `trans_domid`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GrantEntryV2Transitive {
    /// Common header.
    pub hdr: GrantEntryHeader,
    /// Domain owning the original grant.
    pub trans_domid: Domid,
    /// Padding.
    pub pad0: u16,
    /// The original grant.
    pub gref: GrantRef,
}
const _: () = {
    assert!(size_of::<GrantEntryV2Transitive>() == 12);
    assert!(align_of::<GrantEntryV2Transitive>() == 4);
    assert!(offset_of!(GrantEntryV2Transitive, hdr) == 0);
    assert!(offset_of!(GrantEntryV2Transitive, trans_domid) == 4);
    assert!(offset_of!(GrantEntryV2Transitive, pad0) == 6);
    assert!(offset_of!(GrantEntryV2Transitive, gref) == 8);
};

/// `union grant_entry_v2`: one entry of a v2 grant table (16 bytes).
#[repr(C)]
#[derive(Clone, Copy)]
pub union GrantEntryV2 {
    /// Common header.
    pub hdr: GrantEntryHeader,
    /// Full-page grant.
    pub full_page: GrantEntryV2FullPage,
    /// Sub-page grant.
    pub sub_page: GrantEntryV2SubPage,
    /// Transitive grant.
    pub transitive: GrantEntryV2Transitive,
    /// Padding to 16 bytes.
    pub __spacer: [u32; 4],
}
const _: () = assert!(size_of::<GrantEntryV2>() == 16 && align_of::<GrantEntryV2>() == 8);

impl Default for GrantEntryV2 {
    fn default() -> Self {
        Self {
            full_page: GrantEntryV2FullPage::default(),
        }
    }
}

impl fmt::Debug for GrantEntryV2 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrantEntryV2").finish_non_exhaustive()
    }
}

// ---------------------------------------------------------------------------------------------
// GNTTABOP_* (first argument of HYPERVISOR_grant_table_op)
// ---------------------------------------------------------------------------------------------

/// Map grants of other domains; arguments [`GnttabMapGrantRef`].
pub const GNTTABOP_MAP_GRANT_REF: u32 = 0;
/// Unmap mapped grants; arguments [`GnttabUnmapGrantRef`].
pub const GNTTABOP_UNMAP_GRANT_REF: u32 = 1;
/// Set up the caller's grant table and get its frames; argument [`GnttabSetupTable`].
pub const GNTTABOP_SETUP_TABLE: u32 = 2;
/// Dump a grant table to Xen's console; argument [`GnttabDumpTable`].
pub const GNTTABOP_DUMP_TABLE: u32 = 3;
/// Transfer page ownership; arguments [`GnttabTransfer`].
pub const GNTTABOP_TRANSFER: u32 = 4;
/// Copy between grants and/or local frames; arguments [`GnttabCopy`].
pub const GNTTABOP_COPY: u32 = 5;
/// Current and maximum grant-table size; argument [`GnttabQuerySize`].
pub const GNTTABOP_QUERY_SIZE: u32 = 6;
/// Unmap a grant, replacing its PTE (PV); arguments [`GnttabUnmapAndReplace`].
pub const GNTTABOP_UNMAP_AND_REPLACE: u32 = 7;
/// Select grant-table version 1 or 2; argument [`GnttabSetVersion`].
pub const GNTTABOP_SET_VERSION: u32 = 8;
/// Get the v2 status frames; argument [`GnttabGetStatusFrames`].
pub const GNTTABOP_GET_STATUS_FRAMES: u32 = 9;
/// Get a domain's grant-table version; argument [`GnttabGetVersion`].
pub const GNTTABOP_GET_VERSION: u32 = 10;
/// Swap two grant entries; arguments [`GnttabSwapGrantRef`].
pub const GNTTABOP_SWAP_GRANT_REF: u32 = 11;
/// Clean/invalidate caches of granted memory (Arm); arguments [`GnttabCacheFlush`].
pub const GNTTABOP_CACHE_FLUSH: u32 = 12;

// ---------------------------------------------------------------------------------------------
// GNTMAP_* (gnttab_map_grant_ref.flags)
// ---------------------------------------------------------------------------------------------

/// Map for access by I/O devices (`dev_bus_addr` returned).
pub const GNTMAP_DEVICE_MAP: u32 = 1 << 0;
/// Map for access by host CPUs (at `host_addr`).
pub const GNTMAP_HOST_MAP: u32 = 1 << 1;
/// Map read-only.
pub const GNTMAP_READONLY: u32 = 1 << 2;
/// With `GNTMAP_host_map`: the mapping is usable by the current application too (PV).
pub const GNTMAP_APPLICATION_MAP: u32 = 1 << 3;
/// With `GNTMAP_host_map`: `host_addr` is the machine address of the PTE to update (PV).
pub const GNTMAP_CONTAINS_PTE: u32 = 1 << 4;
/// Bits placed into guest-available PTE bits (with `XENFEAT_gnttab_map_avail_bits`).
pub const GNTMAP_GUEST_AVAIL_MASK: u32 = !0 << 16;

// ---------------------------------------------------------------------------------------------
// GNTST_* (status fields)
// ---------------------------------------------------------------------------------------------

/// Success.
pub const GNTST_OKAY: i16 = 0;
/// Undefined error.
pub const GNTST_GENERAL_ERROR: i16 = -1;
/// Unrecognised domain id.
pub const GNTST_BAD_DOMAIN: i16 = -2;
/// Unrecognised or inappropriate grant reference.
pub const GNTST_BAD_GNTREF: i16 = -3;
/// Unrecognised or inappropriate handle.
pub const GNTST_BAD_HANDLE: i16 = -4;
/// Inappropriate virtual address to map.
pub const GNTST_BAD_VIRT_ADDR: i16 = -5;
/// Inappropriate device address to unmap.
pub const GNTST_BAD_DEV_ADDR: i16 = -6;
/// Out of space in the I/O MMU.
pub const GNTST_NO_DEVICE_SPACE: i16 = -7;
/// Not enough privilege for the operation.
pub const GNTST_PERMISSION_DENIED: i16 = -8;
/// The page was invalid for the operation.
pub const GNTST_BAD_PAGE: i16 = -9;
/// Copy arguments cross a page boundary.
pub const GNTST_BAD_COPY_ARG: i16 = -10;
/// Transfer page address too large.
pub const GNTST_ADDRESS_TOO_BIG: i16 = -11;
/// Operation not done; try again.
pub const GNTST_EAGAIN: i16 = -12;
/// Out of space (handles etc.).
pub const GNTST_NO_SPACE: i16 = -13;

// ---------------------------------------------------------------------------------------------
// Arguments
// ---------------------------------------------------------------------------------------------

/// `struct gnttab_map_grant_ref`: one request of `GNTTABOP_map_grant_ref`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabMapGrantRef {
    /// IN: guest-physical (HVM) or virtual/PTE (PV) address to map at.
    pub host_addr: u64,
    /// IN: `GNTMAP_*`.
    pub flags: u32,
    /// IN: the grant reference (C `ref`).
    pub ref_: GrantRef,
    /// IN: the granting domain.
    pub dom: Domid,
    /// OUT: `GNTST_*`.
    pub status: i16,
    /// OUT: handle for the unmap.
    pub handle: GrantHandle,
    /// OUT: bus address with `GNTMAP_device_map`.
    pub dev_bus_addr: u64,
}
const _: () = {
    assert!(size_of::<GnttabMapGrantRef>() == 32 && align_of::<GnttabMapGrantRef>() == 8);
    assert!(offset_of!(GnttabMapGrantRef, host_addr) == 0);
    assert!(offset_of!(GnttabMapGrantRef, flags) == 8);
    assert!(offset_of!(GnttabMapGrantRef, ref_) == 12);
    assert!(offset_of!(GnttabMapGrantRef, dom) == 16);
    assert!(offset_of!(GnttabMapGrantRef, status) == 18);
    assert!(offset_of!(GnttabMapGrantRef, handle) == 20);
    assert!(offset_of!(GnttabMapGrantRef, dev_bus_addr) == 24);
};

/// `struct gnttab_unmap_grant_ref`: one request of `GNTTABOP_unmap_grant_ref`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabUnmapGrantRef {
    /// IN: address the grant is mapped at (0 = none).
    pub host_addr: u64,
    /// IN: device mapping to remove (0 = none).
    pub dev_bus_addr: u64,
    /// IN: handle from the map.
    pub handle: GrantHandle,
    /// OUT: `GNTST_*`.
    pub status: i16,
}
const _: () = {
    assert!(size_of::<GnttabUnmapGrantRef>() == 24 && align_of::<GnttabUnmapGrantRef>() == 8);
    assert!(offset_of!(GnttabUnmapGrantRef, host_addr) == 0);
    assert!(offset_of!(GnttabUnmapGrantRef, dev_bus_addr) == 8);
    assert!(offset_of!(GnttabUnmapGrantRef, handle) == 16);
    assert!(offset_of!(GnttabUnmapGrantRef, status) == 20);
};

/// `struct gnttab_setup_table`: argument of `GNTTABOP_setup_table`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabSetupTable {
    /// IN: the domain (`DOMID_SELF`).
    pub dom: Domid,
    /// IN: number of frames wanted.
    pub nr_frames: u32,
    /// OUT: `GNTST_*`.
    pub status: i16,
    /// Guest handle: address of an array of `nr_frames` `xen_pfn_t` (OUT, PV frames).
    pub frame_list: u64,
}
const _: () = {
    assert!(size_of::<GnttabSetupTable>() == 24 && align_of::<GnttabSetupTable>() == 8);
    assert!(offset_of!(GnttabSetupTable, dom) == 0);
    assert!(offset_of!(GnttabSetupTable, nr_frames) == 4);
    assert!(offset_of!(GnttabSetupTable, status) == 8);
    assert!(offset_of!(GnttabSetupTable, frame_list) == 16);
};

/// `struct gnttab_dump_table`: argument of `GNTTABOP_dump_table`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabDumpTable {
    /// IN: the domain.
    pub dom: Domid,
    /// OUT: `GNTST_*`.
    pub status: i16,
}
const _: () = {
    assert!(size_of::<GnttabDumpTable>() == 4 && align_of::<GnttabDumpTable>() == 2);
    assert!(offset_of!(GnttabDumpTable, dom) == 0);
    assert!(offset_of!(GnttabDumpTable, status) == 2);
};

/// `struct gnttab_transfer`: one request of `GNTTABOP_transfer`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabTransfer {
    /// IN: frame to give away.
    pub mfn: XenPfn,
    /// IN: receiving domain.
    pub domid: Domid,
    /// IN: receiver's `GTF_accept_transfer` grant (C `ref`).
    pub ref_: GrantRef,
    /// OUT: `GNTST_*`.
    pub status: i16,
}
const _: () = {
    assert!(size_of::<GnttabTransfer>() == 24 && align_of::<GnttabTransfer>() == 8);
    assert!(offset_of!(GnttabTransfer, mfn) == 0);
    assert!(offset_of!(GnttabTransfer, domid) == 8);
    assert!(offset_of!(GnttabTransfer, ref_) == 12);
    assert!(offset_of!(GnttabTransfer, status) == 16);
};

/// `gnttab_copy.flags`: `source.u.ref` is a grant reference (else `source.u.gmfn` a frame).
pub const GNTCOPY_SOURCE_GREF: u16 = 1 << 0;
/// `gnttab_copy.flags`: `dest.u.ref` is a grant reference (else `dest.u.gmfn` a frame).
pub const GNTCOPY_DEST_GREF: u16 = 1 << 1;

/// `gnttab_copy_ptr.u`: a grant reference or a local frame, per `GNTCOPY_*`.
#[repr(C)]
#[derive(Clone, Copy)]
pub union GnttabCopyPtrU {
    /// A grant reference of `domid` (C `ref`).
    pub ref_: GrantRef,
    /// A frame of the caller.
    pub gmfn: XenPfn,
}
const _: () = assert!(size_of::<GnttabCopyPtrU>() == 8 && align_of::<GnttabCopyPtrU>() == 8);

impl Default for GnttabCopyPtrU {
    fn default() -> Self {
        Self { gmfn: 0 }
    }
}

impl fmt::Debug for GnttabCopyPtrU {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GnttabCopyPtrU").finish_non_exhaustive()
    }
}

/// `struct gnttab_copy_ptr`: one end of a grant copy.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct GnttabCopyPtr {
    /// Grant reference or frame.
    pub u: GnttabCopyPtrU,
    /// Domain owning the grant (or `DOMID_SELF` for a frame).
    pub domid: Domid,
    /// Byte offset in the page.
    pub offset: u16,
}
const _: () = {
    assert!(size_of::<GnttabCopyPtr>() == 16 && align_of::<GnttabCopyPtr>() == 8);
    assert!(offset_of!(GnttabCopyPtr, u) == 0);
    assert!(offset_of!(GnttabCopyPtr, domid) == 8);
    assert!(offset_of!(GnttabCopyPtr, offset) == 10);
};

/// `struct gnttab_copy`: one request of `GNTTABOP_copy` (may not cross a page boundary).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct GnttabCopy {
    /// IN: where to copy from.
    pub source: GnttabCopyPtr,
    /// IN: where to copy to.
    pub dest: GnttabCopyPtr,
    /// IN: number of bytes.
    pub len: u16,
    /// IN: `GNTCOPY_*`.
    pub flags: u16,
    /// OUT: `GNTST_*`.
    pub status: i16,
}
const _: () = {
    assert!(size_of::<GnttabCopy>() == 40 && align_of::<GnttabCopy>() == 8);
    assert!(offset_of!(GnttabCopy, source) == 0);
    assert!(offset_of!(GnttabCopy, dest) == 16);
    assert!(offset_of!(GnttabCopy, len) == 32);
    assert!(offset_of!(GnttabCopy, flags) == 34);
    assert!(offset_of!(GnttabCopy, status) == 36);
};

/// `struct gnttab_query_size`: argument of `GNTTABOP_query_size`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabQuerySize {
    /// IN: the domain.
    pub dom: Domid,
    /// OUT: current number of frames.
    pub nr_frames: u32,
    /// OUT: maximum number of frames.
    pub max_nr_frames: u32,
    /// OUT: `GNTST_*`.
    pub status: i16,
}
const _: () = {
    assert!(size_of::<GnttabQuerySize>() == 16 && align_of::<GnttabQuerySize>() == 4);
    assert!(offset_of!(GnttabQuerySize, dom) == 0);
    assert!(offset_of!(GnttabQuerySize, nr_frames) == 4);
    assert!(offset_of!(GnttabQuerySize, max_nr_frames) == 8);
    assert!(offset_of!(GnttabQuerySize, status) == 12);
};

/// `struct gnttab_unmap_and_replace`: one request of `GNTTABOP_unmap_and_replace` (PV).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabUnmapAndReplace {
    /// IN: address the grant is mapped at.
    pub host_addr: u64,
    /// IN: address whose mapping replaces it.
    pub new_addr: u64,
    /// IN: handle from the map.
    pub handle: GrantHandle,
    /// OUT: `GNTST_*`.
    pub status: i16,
}
const _: () = {
    assert!(size_of::<GnttabUnmapAndReplace>() == 24);
    assert!(align_of::<GnttabUnmapAndReplace>() == 8);
    assert!(offset_of!(GnttabUnmapAndReplace, host_addr) == 0);
    assert!(offset_of!(GnttabUnmapAndReplace, new_addr) == 8);
    assert!(offset_of!(GnttabUnmapAndReplace, handle) == 16);
    assert!(offset_of!(GnttabUnmapAndReplace, status) == 20);
};

/// `struct gnttab_set_version`: argument of `GNTTABOP_set_version`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabSetVersion {
    /// IN: version wanted (1 or 2); OUT: version in use.
    pub version: u32,
}
const _: () = {
    assert!(size_of::<GnttabSetVersion>() == 4 && align_of::<GnttabSetVersion>() == 4);
    assert!(offset_of!(GnttabSetVersion, version) == 0);
};

/// `struct gnttab_get_status_frames`: argument of `GNTTABOP_get_status_frames`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabGetStatusFrames {
    /// IN: number of frames wanted.
    pub nr_frames: u32,
    /// IN: the domain.
    pub dom: Domid,
    /// OUT: `GNTST_*`.
    pub status: i16,
    /// Guest handle: address of an array of `nr_frames` `uint64_t` (OUT).
    pub frame_list: u64,
}
const _: () = {
    assert!(size_of::<GnttabGetStatusFrames>() == 16);
    assert!(align_of::<GnttabGetStatusFrames>() == 8);
    assert!(offset_of!(GnttabGetStatusFrames, nr_frames) == 0);
    assert!(offset_of!(GnttabGetStatusFrames, dom) == 4);
    assert!(offset_of!(GnttabGetStatusFrames, status) == 6);
    assert!(offset_of!(GnttabGetStatusFrames, frame_list) == 8);
};

/// `struct gnttab_get_version`: argument of `GNTTABOP_get_version`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabGetVersion {
    /// IN: the domain.
    pub dom: Domid,
    /// Padding.
    pub pad: u16,
    /// OUT: the grant-table version.
    pub version: u32,
}
const _: () = {
    assert!(size_of::<GnttabGetVersion>() == 8 && align_of::<GnttabGetVersion>() == 4);
    assert!(offset_of!(GnttabGetVersion, dom) == 0);
    assert!(offset_of!(GnttabGetVersion, pad) == 2);
    assert!(offset_of!(GnttabGetVersion, version) == 4);
};

/// `struct gnttab_swap_grant_ref`: one request of `GNTTABOP_swap_grant_ref`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabSwapGrantRef {
    /// IN: first entry.
    pub ref_a: GrantRef,
    /// IN: second entry.
    pub ref_b: GrantRef,
    /// OUT: `GNTST_*`.
    pub status: i16,
}
const _: () = {
    assert!(size_of::<GnttabSwapGrantRef>() == 12 && align_of::<GnttabSwapGrantRef>() == 4);
    assert!(offset_of!(GnttabSwapGrantRef, ref_a) == 0);
    assert!(offset_of!(GnttabSwapGrantRef, ref_b) == 4);
    assert!(offset_of!(GnttabSwapGrantRef, status) == 8);
};

/// `gnttab_cache_flush.op`: clean the cache.
pub const GNTTAB_CACHE_CLEAN: u32 = 1 << 0;
/// `gnttab_cache_flush.op`: invalidate the cache.
pub const GNTTAB_CACHE_INVAL: u32 = 1 << 1;
/// `gnttab_cache_flush.op`: `a.ref` is a grant reference (else `a.dev_bus_addr`).
pub const GNTTAB_CACHE_SOURCE_GREF: u32 = 1 << 31;

/// `gnttab_cache_flush.a`: a bus address or a grant reference, per `GNTTAB_CACHE_SOURCE_GREF`.
#[repr(C)]
#[derive(Clone, Copy)]
pub union GnttabCacheFlushA {
    /// Device bus address.
    pub dev_bus_addr: u64,
    /// Grant reference (C `ref`).
    pub ref_: GrantRef,
}
const _: () = {
    assert!(size_of::<GnttabCacheFlushA>() == 8 && align_of::<GnttabCacheFlushA>() == 8);
};

impl Default for GnttabCacheFlushA {
    fn default() -> Self {
        Self { dev_bus_addr: 0 }
    }
}

impl fmt::Debug for GnttabCacheFlushA {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GnttabCacheFlushA").finish_non_exhaustive()
    }
}

/// `struct gnttab_cache_flush`: one request of `GNTTABOP_cache_flush`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct GnttabCacheFlush {
    /// Bus address or grant reference.
    pub a: GnttabCacheFlushA,
    /// Offset from the start of the grant.
    pub offset: u16,
    /// Size within the grant.
    pub length: u16,
    /// `GNTTAB_CACHE_*`.
    pub op: u32,
}
const _: () = {
    assert!(size_of::<GnttabCacheFlush>() == 16 && align_of::<GnttabCacheFlush>() == 8);
    assert!(offset_of!(GnttabCacheFlush, a) == 0);
    assert!(offset_of!(GnttabCacheFlush, offset) == 8);
    assert!(offset_of!(GnttabCacheFlush, length) == 10);
    assert!(offset_of!(GnttabCacheFlush, op) == 12);
};
