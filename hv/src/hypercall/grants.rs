//! `grant_table_op`, decoded from guest memory and answered from the domain's
//! [`crate::grant::GrantTable`] as Xen 4.17's `do_grant_table_op`.
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    reason = "do_grant_table_op takes cmd and count as unsigned int and checks count as a signed int, as here"
)]

use abi::errno::{XEN_EINVAL, XEN_ENOSYS};
use abi::grant_table as g;

use super::{EFAULT, HypercallEnv, Outcome, XenState, done, err, not_implemented};
use crate::grant::{CopyOp, CopyPtr};

/// `GNTTABOP_CMD_MASK`: the low 12 bits name the operation; the rest is a continuation
/// argument only `GNTTABOP_cache_flush` may carry.
const CMD_MASK: u32 = (1 << 12) - 1;

/// Copies done per hypercall before hv would need a continuation: hv has none, so it
/// handles any count in one go (the guest count is bounded by `i32::MAX` as in Xen).
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
    if cmd & !CMD_MASK != 0 && cmd & CMD_MASK != g::GNTTABOP_CACHE_FLUSH {
        return done(err(XEN_EINVAL));
    }
    match cmd & CMD_MASK {
        g::GNTTABOP_QUERY_SIZE => {
            if count != 1 {
                return done(err(XEN_EINVAL));
            }
            let mut raw = [0u8; 16];
            if env.read_guest(uop, &mut raw).is_err() {
                return done(EFAULT);
            }
            let dom = u16::from_le_bytes([raw[0], raw[1]]);
            let (status, nr, max) = st.grants.query_size(dom);
            if status == g::GNTST_OKAY {
                raw[4..8].copy_from_slice(&nr.to_le_bytes());
                raw[8..12].copy_from_slice(&max.to_le_bytes());
            }
            raw[12..14].copy_from_slice(&status.to_le_bytes());
            match env.write_guest(uop, &raw) {
                Ok(()) => done(0),
                Err(_) => done(EFAULT),
            }
        }
        g::GNTTABOP_SETUP_TABLE => {
            if count != 1 {
                return done(err(XEN_EINVAL));
            }
            let mut raw = [0u8; 24];
            if env.read_guest(uop, &mut raw).is_err() {
                return done(EFAULT);
            }
            let dom = u16::from_le_bytes([raw[0], raw[1]]);
            let nr = u32::from_le_bytes([raw[4], raw[5], raw[6], raw[7]]);
            let mut b8 = [0u8; 8];
            b8.copy_from_slice(&raw[16..24]);
            let list = u64::from_le_bytes(b8);
            let mut status = st.grants.setup_table(dom, nr);
            if status == g::GNTST_OKAY {
                for i in 0..nr {
                    let gfn = st.grants.frame_gfn(i);
                    let va = list.wrapping_add(8 * u64::from(i));
                    if env.write_guest(va, &gfn.to_le_bytes()).is_err() {
                        status = g::GNTST_BAD_VIRT_ADDR;
                    }
                }
            }
            match env.write_guest(uop + 8, &status.to_le_bytes()) {
                Ok(()) => done(0),
                Err(_) => done(EFAULT),
            }
        }
        g::GNTTABOP_COPY => {
            for i in 0..u64::from(count) {
                let va = uop.wrapping_add(40 * i);
                let mut raw = [0u8; 40];
                if env.read_guest(va, &mut raw).is_err() {
                    return done(EFAULT);
                }
                let op = decode_copy(&raw);
                let status = st.grants.copy(env, &op);
                if env
                    .write_guest(va.wrapping_add(36), &status.to_le_bytes())
                    .is_err()
                {
                    return done(EFAULT);
                }
            }
            done(0)
        }
        g::GNTTABOP_SET_VERSION => {
            let mut raw = [0u8; 4];
            if env.read_guest(uop, &mut raw).is_err() {
                return done(EFAULT);
            }
            let (ret, version) = st.grants.set_version(u32::from_le_bytes(raw));
            match env.write_guest(uop, &version.to_le_bytes()) {
                Ok(()) => done(ret),
                Err(_) => done(EFAULT),
            }
        }
        g::GNTTABOP_GET_VERSION => {
            let mut raw = [0u8; 8];
            if env.read_guest(uop, &mut raw).is_err() {
                return done(EFAULT);
            }
            match st.grants.get_version(u16::from_le_bytes([raw[0], raw[1]])) {
                Ok(v) => match env.write_guest(uop + 4, &v.to_le_bytes()) {
                    Ok(()) => done(0),
                    Err(_) => done(EFAULT),
                },
                Err(x) => done(x),
            }
        }
        // Mapping grants into this domain, transfers, v2 status frames, swaps and cache
        // flushes are not implemented.
        g::GNTTABOP_MAP_GRANT_REF
        | g::GNTTABOP_UNMAP_GRANT_REF
        | g::GNTTABOP_UNMAP_AND_REPLACE
        | g::GNTTABOP_TRANSFER
        | g::GNTTABOP_GET_STATUS_FRAMES
        | g::GNTTABOP_SWAP_GRANT_REF
        | g::GNTTABOP_CACHE_FLUSH => not_implemented(),
        _ => done(err(XEN_ENOSYS)),
    }
}

fn decode_copy(raw: &[u8; 40]) -> CopyOp {
    let ptr = |o: usize| {
        let mut b8 = [0u8; 8];
        b8.copy_from_slice(&raw[o..o + 8]);
        CopyPtr {
            u: u64::from_le_bytes(b8),
            domid: u16::from_le_bytes([raw[o + 8], raw[o + 9]]),
            offset: u16::from_le_bytes([raw[o + 10], raw[o + 11]]),
        }
    };
    CopyOp {
        source: ptr(0),
        dest: ptr(16),
        len: u16::from_le_bytes([raw[32], raw[33]]),
        flags: u16::from_le_bytes([raw[34], raw[35]]),
    }
}
