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
