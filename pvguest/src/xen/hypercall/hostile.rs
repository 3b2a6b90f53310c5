//! Probes of the `hostile-bounds` self-tests: hypercalls with the arguments a hostile guest
//! passes (an argument at the top of the address space, a frame index past 32 bits, a
//! `GNTTABOP_copy` count near 2^31), each returning Xen's raw answer.

use super::*;

/// `XENMEM_memory_map` with its argument at guest-virtual `arg`; Xen's raw answer.
///
/// # Safety
/// Whatever `arg` names (and the buffer pointer Xen may read there) must be memory the kernel
/// lets Xen write, or memory Xen cannot reach (then it answers `-EFAULT`).
pub unsafe fn memory_map_at(arg: u64) -> Result<i64, HypercallError> {
    // SAFETY: forwarded from this function's contract.
    unsafe {
        hypercall2(
            x::HYPERVISOR_MEMORY_OP,
            abi::memory::XENMEM_MEMORY_MAP.into(),
            arg,
        )
    }
}

/// `XENMEM_add_to_physmap` of page `idx` of `space` (any 64-bit index) at guest frame `gpfn`;
/// Xen's raw answer.
///
/// # Safety
/// As [`map_grant_frame`]: the page at `gpfn` must be the kernel's to lose.
pub unsafe fn add_to_physmap_raw(space: u32, idx: u64, gpfn: u64) -> Result<i64, HypercallError> {
    let xatp = abi::memory::XenAddToPhysmap {
        domid: DOMID_SELF,
        size: 0,
        space,
        idx,
        gpfn,
    };
    // SAFETY: `xatp` is live and only read; the caller vouches for the frame at `gpfn`.
    unsafe {
        hypercall2(
            x::HYPERVISOR_MEMORY_OP,
            abi::memory::XENMEM_ADD_TO_PHYSMAP.into(),
            ptr(&xatp),
        )
    }
}

/// `GNTTABOP_copy` of `count` operations from the array at guest-virtual `uop`; Xen's raw
/// answer (after every continuation: the guest re-executes the call where Xen stopped it).
///
/// # Safety
/// The array's elements Xen reaches (up to `count`, or up to the first it cannot read) must be
/// the caller's, writable (Xen writes each `status`) and not referenced as Rust data, and
/// every copy they describe must write only memory the caller expects to change.
pub unsafe fn gnttab_copy_raw(uop: u64, count: u64) -> Result<i64, HypercallError> {
    // SAFETY: forwarded from this function's contract.
    unsafe {
        hypercall5(
            x::HYPERVISOR_GRANT_TABLE_OP,
            <abi::grant_table::GnttabCopy as GnttabSubop>::CMD.into(),
            uop,
            count,
            0,
            0,
        )
    }
}

/// Hypercall `nr` (a slot of the hypercall page, below [`HYPERCALL_SLOTS`]) with `args`, for
/// the `hostile` self-test group; Xen's raw answer.
///
/// # Safety
/// As for any hypercall: whatever `args` name must be memory Xen may read or write for
/// operation `nr` without harming the kernel, or memory Xen cannot reach (it answers
/// `-EFAULT`), and the operation must not take away memory the kernel uses.
pub unsafe fn raw_call(nr: u32, args: [u64; 5]) -> Result<i64, HypercallError> {
    if nr >= HYPERCALL_SLOTS {
        return Err(HypercallError::BufferTooLarge);
    }
    // SAFETY: forwarded from this function's contract.
    unsafe { hypercall5(nr, args[0], args[1], args[2], args[3], args[4]) }
}
