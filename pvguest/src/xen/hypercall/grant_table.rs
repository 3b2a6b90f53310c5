//! `HYPERVISOR_grant_table_op`: typed by `abi::op::GnttabSubop`.

use super::*;

/// `GNTTABOP_query_size` for this domain: `(current frames, maximum frames)`.
pub fn gnttab_query_size() -> Result<(u32, u32), HypercallError> {
    let mut q = abi::grant_table::GnttabQuerySize {
        dom: DOMID_SELF,
        ..Default::default()
    };
    // SAFETY: GNTTABOP_query_size reads and writes only its argument.
    unsafe { gnttab_op(&mut q) }?;
    if q.status != abi::grant_table::GNTST_OKAY {
        return Err(HypercallError::Xen(q.status.into()));
    }
    Ok((q.nr_frames, q.max_nr_frames))
}

/// `GNTTABOP_copy` with one request; Xen's per-request answer is left in `op.status`.
///
/// # Safety
/// Xen writes `op.len` bytes at the destination: a frame of this domain (by `gmfn` or a
/// grant of it) that the caller owns and expects to change, with no Rust reference to it.
pub unsafe fn gnttab_copy(op: &mut abi::grant_table::GnttabCopy) -> Result<(), HypercallError> {
    // SAFETY: forwarded from this function's contract (the destination).
    unsafe { gnttab_op(op) }
}

/// Issues the `GNTTABOP_*` that `T` goes with ([`GnttabSubop::CMD`]) with one `arg` (count 1).
///
/// # Safety
/// Whatever guest memory the operation names besides `arg` (a copy's destination, a frame to
/// map or give away) must be the caller's to change, with no Rust reference to it.
unsafe fn gnttab_op<T: GnttabSubop>(arg: &mut T) -> Result<(), HypercallError> {
    // SAFETY: `T` is the gnttab_* struct `T::CMD` takes (abi's sealed pairs; repr(C)); one
    // live, writable element (count 1); the caller vouches for any other memory it names.
    check(unsafe {
        hypercall5(
            x::HYPERVISOR_GRANT_TABLE_OP,
            T::CMD.into(),
            ptr_mut(arg),
            1,
            0,
            0,
        )
    }?)?;
    Ok(())
}

/// `GNTTABOP_map_grant_ref` with one request; Xen's per-request answer is left in
/// `op.status` (and the handle in `op.handle`).
///
/// # Safety
/// With `GNTMAP_host_map`, Xen puts the granted frame at guest-physical address
/// `op.host_addr` of this domain: that frame must be one the kernel neither uses nor hands
/// out (outside its RAM and the toolstack's special pages), reached only through raw
/// volatile accesses while mapped.
pub unsafe fn gnttab_map_grant_ref(
    op: &mut abi::grant_table::GnttabMapGrantRef,
) -> Result<(), HypercallError> {
    // SAFETY: forwarded from this function's contract (the frame at `host_addr`).
    unsafe { gnttab_op(op) }
}

/// `GNTTABOP_unmap_grant_ref` with one request; Xen's answer is left in `op.status`.
///
/// # Safety
/// The kernel must hold no access in flight to the frame at `op.host_addr` and must not
/// touch it after the call (it becomes an empty guest-physical frame again).
pub unsafe fn gnttab_unmap_grant_ref(
    op: &mut abi::grant_table::GnttabUnmapGrantRef,
) -> Result<(), HypercallError> {
    // SAFETY: forwarded from this function's contract.
    unsafe { gnttab_op(op) }
}
