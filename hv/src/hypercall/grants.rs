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

use core::mem::size_of;

use super::args::{element_va, get_field, read_struct, write_field, write_struct};
use super::{EFAULT, HypercallEnv, Outcome, XenState, done, err, not_implemented, written};
use crate::grant::{CopyOp, CopyPtr};

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
        // Mapping grants into this domain, transfers, v2 status frames, swaps and cache
        // flushes are not implemented.
        <g::GnttabMapGrantRef as GnttabSubop>::CMD
        | <g::GnttabUnmapGrantRef as GnttabSubop>::CMD
        | <g::GnttabUnmapAndReplace as GnttabSubop>::CMD
        | <g::GnttabTransfer as GnttabSubop>::CMD
        | <g::GnttabGetStatusFrames as GnttabSubop>::CMD
        | <g::GnttabSwapGrantRef as GnttabSubop>::CMD
        | <g::GnttabCacheFlush as GnttabSubop>::CMD => not_implemented(),
        _ => done(err(XEN_ENOSYS)),
    }
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
