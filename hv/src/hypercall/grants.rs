//! `grant_table_op`, decoded from guest memory and answered from the domain's
//! [`crate::grant::GrantTable`] as Xen 4.17's `do_grant_table_op`.
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    reason = "do_grant_table_op takes cmd and count as unsigned int and checks count as a signed int, as here"
)]

use abi::errno::{XEN_EINVAL, XEN_ENOSYS};
use abi::grant_table as g;
use abi::op::GnttabSubop;
use abi::wire::Plain;

use core::mem::size_of;

use super::args::{element_va, get_field, read_struct, write_field, write_struct};
use super::{
    EFAULT, GuestFault, HypercallEnv, Outcome, XenState, done, err, not_implemented, written,
};
use crate::grant::{CopyOp, CopyPtr, MapEntry};

/// `GNTTABOP_CMD_MASK`: the low 12 bits name the operation; the rest is a continuation
/// argument only `GNTTABOP_cache_flush` may carry.
const CMD_MASK: u32 = (1 << 12) - 1;

/// `GNTTABOP_*`, dispatched by `abi::op`'s pairs of argument struct and number. A count whose
/// signed value is negative is `-EINVAL` at once; a long `GNTTABOP_copy` yields when
/// [`super::preempt_due`] says so, with Xen's continuation (`"ihi"`: the command, the handle
/// advanced past the operations done, the count left).
pub(super) fn grant_table_op(
    env: &mut impl HypercallEnv,
    st: &mut XenState,
    args: [u64; 5],
) -> Outcome {
    let cmd = args[0] as u32;
    let (uop, count) = (args[1], args[2] as u32);
    if (count as i32) < 0 {
        return done(err(XEN_EINVAL));
    }
    if cmd & !CMD_MASK != 0 && cmd & CMD_MASK != <g::GnttabCacheFlush as GnttabSubop>::CMD {
        return done(err(XEN_EINVAL));
    }
    match cmd & CMD_MASK {
        <g::GnttabQuerySize as GnttabSubop>::CMD => {
            if count != 1 {
                return done(err(XEN_EINVAL));
            }
            let Ok(op) = read_struct::<g::GnttabQuerySize>(env, uop) else {
                return done(EFAULT);
            };
            let (status, nr, max) = st.grants.query_size(op.dom);
            if status == g::GNTST_OKAY
                && (write_field!(env, uop, g::GnttabQuerySize, nr_frames, nr).is_err()
                    || write_field!(env, uop, g::GnttabQuerySize, max_nr_frames, max).is_err())
            {
                return done(EFAULT);
            }
            written(write_field!(env, uop, g::GnttabQuerySize, status, status))
        }
        <g::GnttabSetupTable as GnttabSubop>::CMD => {
            if count != 1 {
                return done(err(XEN_EINVAL));
            }
            let Ok(op) = read_struct::<g::GnttabSetupTable>(env, uop) else {
                return done(EFAULT);
            };
            let mut status = st.grants.setup_table(op.dom, op.nr_frames);
            if status == g::GNTST_OKAY {
                for i in 0..op.nr_frames {
                    let gfn: abi::xen::XenPfn = st.grants.frame_gfn(i);
                    let va = element_va::<abi::xen::XenPfn>(op.frame_list, u64::from(i));
                    if va.and_then(|va| write_struct(env, va, &gfn)).is_err() {
                        status = g::GNTST_BAD_VIRT_ADDR;
                    }
                }
            }
            written(write_field!(env, uop, g::GnttabSetupTable, status, status))
        }
        <g::GnttabCopy as GnttabSubop>::CMD => {
            let start = env.now_ns();
            for i in 0..u64::from(count) {
                if i != 0 && super::preempt_due(env, st, start) {
                    // Xen's gnttab_copy stops before operation i; do_grant_table_op
                    // continues with the rest.
                    let Ok(rest) = element_va::<g::GnttabCopy>(uop, i) else {
                        return done(EFAULT);
                    };
                    return super::continuation([
                        args[0],
                        rest,
                        u64::from(count) - i,
                        args[3],
                        args[4],
                    ]);
                }
                let Ok(va) = element_va::<g::GnttabCopy>(uop, i) else {
                    return done(EFAULT);
                };
                let mut image = [0u8; size_of::<g::GnttabCopy>()];
                if env.read_guest(va, &mut image).is_err() {
                    return done(EFAULT);
                }
                let op = decode_copy(&image);
                let status = st.grants.copy(env, &op);
                if write_field!(env, va, g::GnttabCopy, status, status).is_err() {
                    return done(EFAULT);
                }
            }
            done(0)
        }
        <g::GnttabSetVersion as GnttabSubop>::CMD => {
            let Ok(g::GnttabSetVersion { version }) = read_struct(env, uop) else {
                return done(EFAULT);
            };
            let (ret, version) = st.grants.set_version(version);
            match write_struct(env, uop, &g::GnttabSetVersion { version }) {
                Ok(()) => done(ret),
                Err(_) => done(EFAULT),
            }
        }
        <g::GnttabGetVersion as GnttabSubop>::CMD => {
            let Ok(mut op) = read_struct::<g::GnttabGetVersion>(env, uop) else {
                return done(EFAULT);
            };
            match st.grants.get_version(op.dom) {
                Ok(v) => {
                    op.version = v;
                    written(write_struct(env, uop, &op))
                }
                Err(x) => done(x),
            }
        }
        <g::GnttabMapGrantRef as GnttabSubop>::CMD => {
            batch(env, st, args, |env, st, op: g::GnttabMapGrantRef, va| {
                let (status, handle) = match map_grant_ref(env, st, &op) {
                    Ok(h) => (g::GNTST_OKAY, h),
                    Err(s) => (s, 0),
                };
                // Xen writes the op back: status, handle and (0 for a PVH domU)
                // dev_bus_addr.
                write_field!(env, va, g::GnttabMapGrantRef, status, status)?;
                write_field!(env, va, g::GnttabMapGrantRef, handle, handle)?;
                write_field!(env, va, g::GnttabMapGrantRef, dev_bus_addr, 0u64)
            })
        }
        <g::GnttabUnmapGrantRef as GnttabSubop>::CMD => {
            batch(env, st, args, |env, st, op: g::GnttabUnmapGrantRef, va| {
                let status = match unmap_grant_ref(env, st, &op) {
                    Ok(()) => g::GNTST_OKAY,
                    Err(s) => s,
                };
                write_field!(env, va, g::GnttabUnmapGrantRef, status, status)
            })
        }
        // Unmap-and-replace (PV), transfers, v2 status frames, swaps and cache flushes are
        // not implemented.
        <g::GnttabUnmapAndReplace as GnttabSubop>::CMD
        | <g::GnttabTransfer as GnttabSubop>::CMD
        | <g::GnttabGetStatusFrames as GnttabSubop>::CMD
        | <g::GnttabSwapGrantRef as GnttabSubop>::CMD
        | <g::GnttabCacheFlush as GnttabSubop>::CMD => not_implemented(),
        _ => done(err(XEN_ENOSYS)),
    }
}

/// Runs `one` over the `count` operations of type `T` at `uop` (Xen's map and unmap loops),
/// each read whole and its OUT fields written back by `one`; a long batch yields with Xen's continuation as
/// `GNTTABOP_copy` does.
fn batch<T: Plain, E: HypercallEnv>(
    env: &mut E,
    st: &mut XenState,
    args: [u64; 5],
    mut one: impl FnMut(&mut E, &mut XenState, T, u64) -> Result<(), GuestFault>,
) -> Outcome {
    let (uop, count) = (args[1], args[2] as u32);
    let start = env.now_ns();
    for i in 0..u64::from(count) {
        if i != 0 && super::preempt_due(env, st, start) {
            let Ok(rest) = element_va::<T>(uop, i) else {
                return done(EFAULT);
            };
            return super::continuation([args[0], rest, u64::from(count) - i, args[3], args[4]]);
        }
        let Ok(va) = element_va::<T>(uop, i) else {
            return done(EFAULT);
        };
        let Ok(op) = read_struct::<T>(env, va) else {
            return done(EFAULT);
        };
        if one(env, st, op, va).is_err() {
            return done(EFAULT);
        }
    }
    done(0)
}

/// One `GNTTABOP_map_grant_ref` of a PVH domU, as Xen 4.17's `map_grant_ref` with
/// `create_grant_p2m_mapping`: the handle, or the `GNTST_*` status.
fn map_grant_ref(
    env: &mut impl HypercallEnv,
    st: &mut XenState,
    op: &g::GnttabMapGrantRef,
) -> Result<u32, i16> {
    use abi::grant_table::{
        GNTMAP_APPLICATION_MAP, GNTMAP_CONTAINS_PTE, GNTMAP_DEVICE_MAP, GNTMAP_HOST_MAP,
        GNTMAP_READONLY,
    };
    if op.flags & (GNTMAP_DEVICE_MAP | GNTMAP_HOST_MAP) == 0 {
        return Err(g::GNTST_BAD_GNTREF);
    }
    // paging_mode_external: no device, application or PTE mappings.
    if op.flags & (GNTMAP_DEVICE_MAP | GNTMAP_APPLICATION_MAP | GNTMAP_CONTAINS_PTE) != 0 {
        return Err(g::GNTST_GENERAL_ERROR);
    }
    // rcu_lock_domain_by_id: a domain hv runs. (Mapping one's own grants is not
    // implemented: see the crate's divergences.)
    if op.dom == st.domid {
        return Err(g::GNTST_GENERAL_ERROR);
    }
    if !env.foreign_exists(op.dom) {
        return Err(g::GNTST_BAD_DOMAIN);
    }
    let handle = st.maptrack.free_handle().ok_or(g::GNTST_NO_DEVICE_SPACE)?;
    let readonly = op.flags & GNTMAP_READONLY != 0;
    let foreign = env.foreign_acquire(op.dom, op.ref_, st.domid, readonly, true)?;
    // create_grant_p2m_mapping: host_map (and readonly) only; the frame at host_addr's gfn.
    let gfn = op.host_addr >> 12;
    if op.flags & !GNTMAP_READONLY != GNTMAP_HOST_MAP || env.map_foreign(gfn, &foreign).is_err() {
        env.foreign_release(&foreign);
        return Err(g::GNTST_GENERAL_ERROR);
    }
    st.maptrack.insert(handle, MapEntry { foreign, gfn });
    Ok(handle)
}

/// One `GNTTABOP_unmap_grant_ref` of a PVH domU, as Xen 4.17's `unmap_common` with
/// `replace_grant_p2m_mapping`.
fn unmap_grant_ref(
    env: &mut impl HypercallEnv,
    st: &mut XenState,
    op: &g::GnttabUnmapGrantRef,
) -> Result<(), i16> {
    let entry = st.maptrack.get(op.handle).ok_or(g::GNTST_BAD_HANDLE)?;
    if op.host_addr == 0 {
        // Nothing asked to be unmapped: the mapping stays (Xen's flags keep host_map).
        return Ok(());
    }
    // replace_grant_p2m_mapping: the frame at host_addr must be this mapping's.
    let gfn = op.host_addr >> 12;
    if gfn != entry.gfn || env.unmap_foreign(gfn, &entry.foreign).is_err() {
        return Err(g::GNTST_GENERAL_ERROR);
    }
    st.maptrack.remove(op.handle);
    env.foreign_release(&entry.foreign);
    Ok(())
}

/// A `gnttab_copy` as copied from the guest, its `u` unions read as the 64-bit `gmfn` (a
/// grant reference is its low 32 bits, as Xen reads `u.ref`).
fn decode_copy(image: &[u8; size_of::<g::GnttabCopy>()]) -> CopyOp {
    CopyOp {
        source: CopyPtr {
            u: get_field!(*image, g::GnttabCopy, source.u.gmfn),
            domid: get_field!(*image, g::GnttabCopy, source.domid),
            offset: get_field!(*image, g::GnttabCopy, source.offset),
        },
        dest: CopyPtr {
            u: get_field!(*image, g::GnttabCopy, dest.u.gmfn),
            domid: get_field!(*image, g::GnttabCopy, dest.domid),
            offset: get_field!(*image, g::GnttabCopy, dest.offset),
        },
        len: get_field!(*image, g::GnttabCopy, len),
        flags: get_field!(*image, g::GnttabCopy, flags),
    }
}
