//! `HYPERVISOR_memory_op`: the memory map and `XENMEM_add_to_physmap`.

use super::*;

/// `XENMEM_memory_map`: fills `buf` with this domain's E820 map; returns the entry count.
pub fn memory_map(buf: &mut [abi::memory::E820Entry]) -> Result<usize, HypercallError> {
    let nr_entries = u32::try_from(buf.len()).map_err(|_| HypercallError::BufferTooLarge)?;
    let mut map = abi::memory::XenMemoryMap {
        nr_entries,
        buffer: buf.as_mut_ptr() as u64,
    };
    // SAFETY: `map` is live and points to `buf`, which has room for `nr_entries` entries of
    // the packed 20-byte layout Xen writes; Xen writes at most that many.
    check(unsafe {
        hypercall2(
            x::HYPERVISOR_MEMORY_OP,
            abi::memory::XENMEM_MEMORY_MAP.into(),
            ptr_mut(&mut map),
        )
    }?)?;
    Ok((map.nr_entries as usize).min(buf.len()))
}

/// `XENMEM_add_to_physmap` with `XENMAPSPACE_shared_info`: puts the shared-info page at
/// guest frame `gpfn`.
///
/// # Safety
/// The page at `gpfn` must be a page the kernel owns and uses for nothing else: Xen replaces
/// it, and its former contents are gone.
pub unsafe fn map_shared_info(gpfn: u64) -> Result<(), HypercallError> {
    // SAFETY: forwarded from this function's contract.
    unsafe { add_to_physmap(abi::memory::XENMAPSPACE_SHARED_INFO, 0, gpfn) }
}

/// `XENMEM_add_to_physmap` with `XENMAPSPACE_grant_table`: puts grant-table frame `index`
/// at guest frame `gpfn` (Xen grows the table to `index + 1` frames if needed).
///
/// # Safety
/// The page at `gpfn` must be a page the kernel owns and uses for nothing else: Xen replaces
/// it with the grant-table frame, and its former contents are gone.
pub unsafe fn map_grant_frame(index: u32, gpfn: u64) -> Result<(), HypercallError> {
    // SAFETY: forwarded from this function's contract.
    unsafe { add_to_physmap(abi::memory::XENMAPSPACE_GRANT_TABLE, index.into(), gpfn) }
}

/// `XENMEM_add_to_physmap` for this domain: puts page `idx` of `space` at guest frame `gpfn`.
///
/// # Safety
/// The page at `gpfn` must be a page the kernel owns and uses for nothing else: Xen replaces
/// it, and its former contents are gone.
unsafe fn add_to_physmap(space: u32, idx: u64, gpfn: u64) -> Result<(), HypercallError> {
    let xatp = abi::memory::XenAddToPhysmap {
        domid: DOMID_SELF,
        size: 0,
        space,
        idx,
        gpfn,
    };
    // SAFETY: `xatp` is live and only read by Xen; the caller guarantees the target frame is
    // free for Xen to replace.
    check(unsafe {
        hypercall2(
            x::HYPERVISOR_MEMORY_OP,
            abi::memory::XENMEM_ADD_TO_PHYSMAP.into(),
            ptr(&xatp),
        )
    }?)?;
    Ok(())
}

/// A reservation operation (`XENMEM_increase_reservation`, `decrease_reservation` or
/// `populate_physmap`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReservationOp {
    /// Give the domain more pages (placed nowhere in a translated guest's physical map).
    Increase,
    /// Remove the extents at the guest frames listed.
    Decrease,
    /// Put fresh pages at the guest frames listed.
    Populate,
}

/// `XENMEM_{increase,decrease}_reservation` / `populate_physmap` of `2^order`-page extents
/// at the guest frames `extents` for domain `domid`, with `mem_flags`; Xen's raw answer
/// (the number of extents done, or what it refused with).
///
/// # Safety
/// For [`ReservationOp::Decrease`] and [`ReservationOp::Populate`], every page of every
/// extent must be one the kernel owns and does not touch until it is populated again (or
/// lies outside its memory): Xen removes or replaces it, and its contents are gone.
pub unsafe fn reservation_raw(
    op: ReservationOp,
    extents: &[u64],
    order: u32,
    mem_flags: u32,
    domid: u16,
) -> Result<i64, HypercallError> {
    let cmd = match op {
        ReservationOp::Increase => abi::memory::XENMEM_INCREASE_RESERVATION,
        ReservationOp::Decrease => abi::memory::XENMEM_DECREASE_RESERVATION,
        ReservationOp::Populate => abi::memory::XENMEM_POPULATE_PHYSMAP,
    };
    let r = abi::memory::XenMemoryReservation {
        extent_start: extents.as_ptr() as u64,
        nr_extents: extents.len() as u64,
        extent_order: order,
        mem_flags,
        domid,
    };
    // SAFETY: `r` and the extent list are live and only read (a translated guest's list is
    // never written); the caller guarantees the pages named.
    unsafe { hypercall2(x::HYPERVISOR_MEMORY_OP, cmd.into(), ptr(&r)) }
}

/// `XENMEM_current_reservation` (`current`) or `maximum_reservation` of domain `domid`, with
/// `start_extent` in the command's continuation bits (Xen insists on 0); Xen's raw answer
/// (pages, or an errno).
pub fn reservation_query(
    current: bool,
    domid: u16,
    start_extent: u64,
) -> Result<i64, HypercallError> {
    let op = if current {
        abi::memory::XENMEM_CURRENT_RESERVATION
    } else {
        abi::memory::XENMEM_MAXIMUM_RESERVATION
    };
    let arg = abi::memory::XenMemoryDomain { domid };
    // SAFETY: `arg` is live and only read.
    unsafe {
        hypercall2(
            x::HYPERVISOR_MEMORY_OP,
            u64::from(op) | (start_extent << 6),
            ptr(&arg),
        )
    }
}

/// `XENMEM_get_pod_target` for domain `domid`; Xen's raw answer (a domU is refused).
pub fn get_pod_target(domid: u16) -> Result<i64, HypercallError> {
    let mut arg = abi::memory::XenPodTarget {
        domid,
        ..Default::default()
    };
    // SAFETY: `arg` is live and writable; Xen writes at most the struct.
    unsafe {
        hypercall2(
            x::HYPERVISOR_MEMORY_OP,
            abi::memory::XENMEM_GET_POD_TARGET.into(),
            ptr_mut(&mut arg),
        )
    }
}
