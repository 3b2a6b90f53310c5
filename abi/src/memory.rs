//! Memory operations: `xen/memory.h` (`HYPERVISOR_memory_op`), plus the E820 entry that
//! `XENMEM_memory_map` fills (Xen's internal `struct e820entry`; not in the public headers).

use core::fmt;
use core::mem::{align_of, offset_of, size_of};

use crate::xen::{Domid, XenPfn, XenUlong};

// ---------------------------------------------------------------------------------------------
// XENMEM_* (first argument of HYPERVISOR_memory_op)
// ---------------------------------------------------------------------------------------------

/// Grow the reservation by extents; argument [`XenMemoryReservation`].
pub const XENMEM_INCREASE_RESERVATION: u32 = 0;
/// Free extents (balloon out); argument [`XenMemoryReservation`].
pub const XENMEM_DECREASE_RESERVATION: u32 = 1;
/// Highest machine frame number in use; argument NULL.
pub const XENMEM_MAXIMUM_RAM_PAGE: u32 = 2;
/// Current reservation in pages; argument [`XenMemoryDomain`].
pub const XENMEM_CURRENT_RESERVATION: u32 = 3;
/// Maximum reservation in pages; argument [`XenMemoryDomain`].
pub const XENMEM_MAXIMUM_RESERVATION: u32 = 4;
/// MFNs of the machine-to-physical table's 2 MiB extents; argument [`XenMachphysMfnList`].
pub const XENMEM_MACHPHYS_MFN_LIST: u32 = 5;
/// Populate guest frames with memory; argument [`XenMemoryReservation`].
pub const XENMEM_POPULATE_PHYSMAP: u32 = 6;
/// Map a Xen-owned page (shared info, grant frames, ...) at a guest frame; argument
/// [`XenAddToPhysmap`].
pub const XENMEM_ADD_TO_PHYSMAP: u32 = 7;
/// The caller's pseudo-physical E820 memory map; argument [`XenMemoryMap`].
pub const XENMEM_MEMORY_MAP: u32 = 9;
/// The machine E820 memory map (privileged); argument [`XenMemoryMap`].
pub const XENMEM_MACHINE_MEMORY_MAP: u32 = 10;
/// Exchange extents for others with different constraints; argument [`XenMemoryExchange`].
pub const XENMEM_EXCHANGE: u32 = 11;
/// Virtual range of the machine-to-physical table; argument [`XenMachphysMapping`].
pub const XENMEM_MACHPHYS_MAPPING: u32 = 12;
/// Set a domain's pseudo-physical memory map (toolstack); argument [`XenForeignMemoryMap`].
pub const XENMEM_SET_MEMORY_MAP: u32 = 13;
/// Highest guest frame number in use; argument [`XenMemoryDomain`].
pub const XENMEM_MAXIMUM_GPFN: u32 = 14;
/// Unmap a page from the physmap; argument [`XenRemoveFromPhysmap`].
pub const XENMEM_REMOVE_FROM_PHYSMAP: u32 = 15;
/// Set the populate-on-demand target; argument [`XenPodTarget`].
pub const XENMEM_SET_POD_TARGET: u32 = 16;
/// Get the populate-on-demand target; argument [`XenPodTarget`].
pub const XENMEM_GET_POD_TARGET: u32 = 17;
/// Batched add-to-physmap; argument [`XenAddToPhysmapBatch`].
pub const XENMEM_ADD_TO_PHYSMAP_BATCH: u32 = 23;
/// Compat machine-to-physical MFN list (32-bit PV); argument [`XenMachphysMfnList`].
pub const XENMEM_MACHPHYS_COMPAT_MFN_LIST: u32 = 25;
/// Virtual NUMA topology (`struct xen_vnuma_topology_info`).
pub const XENMEM_GET_VNUMAINFO: u32 = 26;
/// Map a resource (ioreq server, grant table, ...) of a domain; argument
/// [`XenMemAcquireResource`].
pub const XENMEM_ACQUIRE_RESOURCE: u32 = 28;

// ---------------------------------------------------------------------------------------------
// XENMEMF_* (xen_memory_reservation.mem_flags)
// ---------------------------------------------------------------------------------------------

/// Populate the physmap with populate-on-demand entries.
pub const XENMEMF_POPULATE_ON_DEMAND: u32 = 1 << 16;
/// Allocate only from the node given with `XENMEMF_node`.
pub const XENMEMF_EXACT_NODE_REQUEST: u32 = 1 << 17;
/// The node given is a virtual node.
pub const XENMEMF_VNODE: u32 = 1 << 18;

/// `struct xen_memory_reservation`: argument of increase/decrease reservation and
/// populate_physmap.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenMemoryReservation {
    /// Guest handle: address of an array of `xen_pfn_t` extent bases (IN and/or OUT).
    pub extent_start: u64,
    /// Number of extents.
    pub nr_extents: XenUlong,
    /// Each extent is 2^`extent_order` pages.
    pub extent_order: u32,
    /// `XENMEMF_*` flags (address bits in 7:0, node in 15:8).
    pub mem_flags: u32,
    /// Domain whose reservation changes (unprivileged callers: `DOMID_SELF`).
    pub domid: Domid,
}
const _: () = {
    assert!(size_of::<XenMemoryReservation>() == 32 && align_of::<XenMemoryReservation>() == 8);
    assert!(offset_of!(XenMemoryReservation, extent_start) == 0);
    assert!(offset_of!(XenMemoryReservation, nr_extents) == 8);
    assert!(offset_of!(XenMemoryReservation, extent_order) == 16);
    assert!(offset_of!(XenMemoryReservation, mem_flags) == 20);
    assert!(offset_of!(XenMemoryReservation, domid) == 24);
};

/// `struct xen_memory_exchange`: argument of `XENMEM_exchange`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenMemoryExchange {
    /// IN: extents to give up (C `in`).
    pub in_: XenMemoryReservation,
    /// IN/OUT: extents to receive.
    pub out: XenMemoryReservation,
    /// OUT: number of input extents exchanged (must be zero on entry).
    pub nr_exchanged: XenUlong,
}
const _: () = {
    assert!(size_of::<XenMemoryExchange>() == 72 && align_of::<XenMemoryExchange>() == 8);
    assert!(offset_of!(XenMemoryExchange, in_) == 0);
    assert!(offset_of!(XenMemoryExchange, out) == 32);
    assert!(offset_of!(XenMemoryExchange, nr_exchanged) == 64);
};

/// `struct xen_memory_domain`: argument of the reservation and maximum-GPFN queries.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenMemoryDomain {
    /// Domain to query (may be `DOMID_SELF`).
    pub domid: Domid,
}
const _: () = {
    assert!(size_of::<XenMemoryDomain>() == 2 && align_of::<XenMemoryDomain>() == 2);
    assert!(offset_of!(XenMemoryDomain, domid) == 0);
};

/// `struct xen_machphys_mfn_list`: argument of `XENMEM_machphys_mfn_list`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenMachphysMfnList {
    /// Size of the `extent_start` array.
    pub max_extents: u32,
    /// Guest handle: address of an array of `xen_pfn_t` to fill.
    pub extent_start: u64,
    /// OUT: number of extents written.
    pub nr_extents: u32,
}
const _: () = {
    assert!(size_of::<XenMachphysMfnList>() == 24 && align_of::<XenMachphysMfnList>() == 8);
    assert!(offset_of!(XenMachphysMfnList, max_extents) == 0);
    assert!(offset_of!(XenMachphysMfnList, extent_start) == 8);
    assert!(offset_of!(XenMachphysMfnList, nr_extents) == 16);
};

/// `struct xen_machphys_mapping`: argument of `XENMEM_machphys_mapping`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenMachphysMapping {
    /// Start virtual address of the table.
    pub v_start: XenUlong,
    /// End virtual address of the table.
    pub v_end: XenUlong,
    /// Largest MFN that can be looked up.
    pub max_mfn: XenUlong,
}
const _: () = {
    assert!(size_of::<XenMachphysMapping>() == 24 && align_of::<XenMachphysMapping>() == 8);
    assert!(offset_of!(XenMachphysMapping, v_start) == 0);
    assert!(offset_of!(XenMachphysMapping, v_end) == 8);
    assert!(offset_of!(XenMachphysMapping, max_mfn) == 16);
};

// ---------------------------------------------------------------------------------------------
// Physmap changes
// ---------------------------------------------------------------------------------------------

/// Map space: the shared-info page (`idx` 0).
pub const XENMAPSPACE_SHARED_INFO: u32 = 0;
/// Map space: grant-table frame `idx` (OR [`XENMAPIDX_GRANT_TABLE_STATUS`] for status frames).
pub const XENMAPSPACE_GRANT_TABLE: u32 = 1;
/// Map space: move the guest frame `idx` to `gpfn`.
pub const XENMAPSPACE_GMFN: u32 = 2;
/// Map space: a range of `size` guest frames (`XENMEM_add_to_physmap` only).
pub const XENMAPSPACE_GMFN_RANGE: u32 = 3;
/// Map space: a frame of another domain (`XENMEM_add_to_physmap_batch` only).
pub const XENMAPSPACE_GMFN_FOREIGN: u32 = 4;
/// Map space: device MMIO (Arm only).
pub const XENMAPSPACE_DEV_MMIO: u32 = 5;

/// `xen_add_to_physmap.idx` flag with `XENMAPSPACE_grant_table`: map a v2 status frame.
pub const XENMAPIDX_GRANT_TABLE_STATUS: XenUlong = 0x8000_0000;

/// `struct xen_add_to_physmap`: argument of `XENMEM_add_to_physmap`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenAddToPhysmap {
    /// Domain whose physmap changes.
    pub domid: Domid,
    /// Number of pages for `XENMAPSPACE_gmfn_range`.
    pub size: u16,
    /// `XENMAPSPACE_*`.
    pub space: u32,
    /// Index into the space.
    pub idx: XenUlong,
    /// Guest frame where the page should appear.
    pub gpfn: XenPfn,
}
const _: () = {
    assert!(size_of::<XenAddToPhysmap>() == 24 && align_of::<XenAddToPhysmap>() == 8);
    assert!(offset_of!(XenAddToPhysmap, domid) == 0);
    assert!(offset_of!(XenAddToPhysmap, size) == 2);
    assert!(offset_of!(XenAddToPhysmap, space) == 4);
    assert!(offset_of!(XenAddToPhysmap, idx) == 8);
    assert!(offset_of!(XenAddToPhysmap, gpfn) == 16);
};

/// `union xen_add_to_physmap_batch_extra`: the space-specific field of
/// [`XenAddToPhysmapBatch`].
#[repr(C)]
#[derive(Clone, Copy)]
pub union XenAddToPhysmapBatchExtra {
    /// Owner of the frames for `XENMAPSPACE_gmfn_foreign`.
    pub foreign_domid: Domid,
    /// Must be zero for the other spaces.
    pub res0: u16,
}
const _: () = {
    assert!(size_of::<XenAddToPhysmapBatchExtra>() == 2);
    assert!(align_of::<XenAddToPhysmapBatchExtra>() == 2);
};

impl Default for XenAddToPhysmapBatchExtra {
    fn default() -> Self {
        Self { res0: 0 }
    }
}

impl fmt::Debug for XenAddToPhysmapBatchExtra {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XenAddToPhysmapBatchExtra")
            .finish_non_exhaustive()
    }
}

/// `struct xen_add_to_physmap_batch`: argument of `XENMEM_add_to_physmap_batch`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct XenAddToPhysmapBatch {
    /// Domain whose physmap changes.
    pub domid: Domid,
    /// `XENMAPSPACE_*`.
    pub space: u16,
    /// Number of pages.
    pub size: u16,
    /// Space-specific field.
    pub u: XenAddToPhysmapBatchExtra,
    /// Guest handle: address of `size` `xen_ulong_t` indices.
    pub idxs: u64,
    /// Guest handle: address of `size` `xen_pfn_t` target frames.
    pub gpfns: u64,
    /// Guest handle: address of `size` `int` per-index error codes (OUT).
    pub errs: u64,
}
const _: () = {
    assert!(size_of::<XenAddToPhysmapBatch>() == 32 && align_of::<XenAddToPhysmapBatch>() == 8);
    assert!(offset_of!(XenAddToPhysmapBatch, domid) == 0);
    assert!(offset_of!(XenAddToPhysmapBatch, space) == 2);
    assert!(offset_of!(XenAddToPhysmapBatch, size) == 4);
    assert!(offset_of!(XenAddToPhysmapBatch, u) == 6);
    assert!(offset_of!(XenAddToPhysmapBatch, idxs) == 8);
    assert!(offset_of!(XenAddToPhysmapBatch, gpfns) == 16);
    assert!(offset_of!(XenAddToPhysmapBatch, errs) == 24);
};

/// `struct xen_remove_from_physmap`: argument of `XENMEM_remove_from_physmap`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenRemoveFromPhysmap {
    /// Domain whose physmap changes.
    pub domid: Domid,
    /// Guest frame of the mapping to remove.
    pub gpfn: XenPfn,
}
const _: () = {
    assert!(size_of::<XenRemoveFromPhysmap>() == 16 && align_of::<XenRemoveFromPhysmap>() == 8);
    assert!(offset_of!(XenRemoveFromPhysmap, domid) == 0);
    assert!(offset_of!(XenRemoveFromPhysmap, gpfn) == 8);
};

// ---------------------------------------------------------------------------------------------
// Memory maps
// ---------------------------------------------------------------------------------------------

/// `struct xen_memory_map`: argument of `XENMEM_memory_map` / `XENMEM_machine_memory_map`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenMemoryMap {
    /// IN: capacity of the buffer in entries; OUT: entries stored.
    pub nr_entries: u32,
    /// Guest handle: address of an array of [`E820Entry`].
    pub buffer: u64,
}
const _: () = {
    assert!(size_of::<XenMemoryMap>() == 16 && align_of::<XenMemoryMap>() == 8);
    assert!(offset_of!(XenMemoryMap, nr_entries) == 0);
    assert!(offset_of!(XenMemoryMap, buffer) == 8);
};

/// `struct xen_foreign_memory_map`: argument of `XENMEM_set_memory_map`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenForeignMemoryMap {
    /// Domain whose map is set.
    pub domid: Domid,
    /// The map.
    pub map: XenMemoryMap,
}
const _: () = {
    assert!(size_of::<XenForeignMemoryMap>() == 24 && align_of::<XenForeignMemoryMap>() == 8);
    assert!(offset_of!(XenForeignMemoryMap, domid) == 0);
    assert!(offset_of!(XenForeignMemoryMap, map) == 8);
};

/// One E820 entry as `XENMEM_memory_map` writes it (BIOS INT 15h/E820 format, packed, 20
/// bytes; Xen's internal `struct e820entry`, Rust-only).
#[repr(C, packed)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct E820Entry {
    /// Base physical address.
    pub addr: u64,
    /// Size in bytes.
    pub size: u64,
    /// `E820_*` type.
    pub type_: u32,
}
const _: () = {
    assert!(size_of::<E820Entry>() == 20 && align_of::<E820Entry>() == 1);
    assert!(offset_of!(E820Entry, addr) == 0);
    assert!(offset_of!(E820Entry, size) == 8);
    assert!(offset_of!(E820Entry, type_) == 16);
};

/// E820 type: usable RAM (Rust-only; same value as `XEN_HVM_MEMMAP_TYPE_RAM`).
pub const E820_RAM: u32 = 1;
/// E820 type: reserved.
pub const E820_RESERVED: u32 = 2;
/// E820 type: ACPI tables (reclaimable).
pub const E820_ACPI: u32 = 3;
/// E820 type: ACPI non-volatile storage.
pub const E820_NVS: u32 = 4;
/// E820 type: unusable memory.
pub const E820_UNUSABLE: u32 = 5;

// ---------------------------------------------------------------------------------------------
// Populate-on-demand and resources
// ---------------------------------------------------------------------------------------------

/// `struct xen_pod_target`: argument of `XENMEM_{set,get}_pod_target`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenPodTarget {
    /// IN: target in pages.
    pub target_pages: u64,
    /// OUT: pages allocated to the domain.
    pub tot_pages: u64,
    /// OUT: pages in the PoD cache.
    pub pod_cache_pages: u64,
    /// OUT: outstanding PoD entries.
    pub pod_entries: u64,
    /// IN: the domain.
    pub domid: Domid,
}
const _: () = {
    assert!(size_of::<XenPodTarget>() == 40 && align_of::<XenPodTarget>() == 8);
    assert!(offset_of!(XenPodTarget, target_pages) == 0);
    assert!(offset_of!(XenPodTarget, tot_pages) == 8);
    assert!(offset_of!(XenPodTarget, pod_cache_pages) == 16);
    assert!(offset_of!(XenPodTarget, pod_entries) == 24);
    assert!(offset_of!(XenPodTarget, domid) == 32);
};

/// Resource type: an ioreq server's pages.
pub const XENMEM_RESOURCE_IOREQ_SERVER: u16 = 0;
/// Resource type: a grant table's frames.
pub const XENMEM_RESOURCE_GRANT_TABLE: u16 = 1;
/// Resource type: a vCPU's trace buffer.
pub const XENMEM_RESOURCE_VMTRACE_BUF: u16 = 2;
/// Grant-table resource id: the shared frames.
pub const XENMEM_RESOURCE_GRANT_TABLE_ID_SHARED: u32 = 0;
/// Grant-table resource id: the (v2) status frames.
pub const XENMEM_RESOURCE_GRANT_TABLE_ID_STATUS: u32 = 1;
/// Ioreq-server resource frame: the buffered ioreq page.
pub const XENMEM_RESOURCE_IOREQ_SERVER_FRAME_BUFIOREQ: u64 = 0;

/// `struct xen_mem_acquire_resource`: argument of `XENMEM_acquire_resource`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenMemAcquireResource {
    /// IN: domain owning the resource.
    pub domid: Domid,
    /// IN: `XENMEM_resource_*` type.
    pub type_: u16,
    /// IN: type-specific id.
    pub id: u32,
    /// IN/OUT: number of frames to map (0 with a NULL list: query the size).
    pub nr_frames: u32,
    /// Must be zero.
    pub pad: u32,
    /// IN: index of the first frame.
    pub frame: u64,
    /// Guest handle: address of an array of `xen_pfn_t` (GFNs to map at, for HVM callers).
    pub frame_list: u64,
}
const _: () = {
    assert!(size_of::<XenMemAcquireResource>() == 32);
    assert!(align_of::<XenMemAcquireResource>() == 8);
    assert!(offset_of!(XenMemAcquireResource, domid) == 0);
    assert!(offset_of!(XenMemAcquireResource, type_) == 2);
    assert!(offset_of!(XenMemAcquireResource, id) == 4);
    assert!(offset_of!(XenMemAcquireResource, nr_frames) == 8);
    assert!(offset_of!(XenMemAcquireResource, pad) == 12);
    assert!(offset_of!(XenMemAcquireResource, frame) == 16);
    assert!(offset_of!(XenMemAcquireResource, frame_list) == 24);
};

/// `struct xen_vmemrange`: one virtual NUMA memory range (`XENMEM_get_vnumainfo`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenVmemrange {
    /// First byte of the range.
    pub start: u64,
    /// End of the range (exclusive).
    pub end: u64,
    /// Flags (none defined).
    pub flags: u32,
    /// Virtual node id.
    pub nid: u32,
}
const _: () = {
    assert!(size_of::<XenVmemrange>() == 24 && align_of::<XenVmemrange>() == 8);
    assert!(offset_of!(XenVmemrange, start) == 0);
    assert!(offset_of!(XenVmemrange, end) == 8);
    assert!(offset_of!(XenVmemrange, flags) == 16);
    assert!(offset_of!(XenVmemrange, nid) == 20);
};
