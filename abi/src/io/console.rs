//! The PV console page of `xen/io/console.h`: two byte rings (`in`, `out`) and their indices.
//!
//! The page is shared with the console backend, so code never holds a reference to an
//! [`XenconsInterface`]: it reads and writes the fields through raw pointers with volatile or
//! atomic accesses, at the offsets `core::mem::offset_of!` gives. The indices run freely over
//! all of `u32` (wrapping); a byte's slot is `idx & (ring size - 1)`
//! ([`mask_xencons_in_idx`], [`mask_xencons_out_idx`]).

use core::mem::{align_of, offset_of, size_of};

/// `XENCONS_RING_IDX`: a free-running console ring index.
pub type XenconsRingIdx = u32;

/// Size in bytes of the `in` ring (backend to guest): `sizeof(((struct xencons_interface *)0)->in)`.
pub const XENCONS_IN_RING_SIZE: u32 = 1024;
/// Size in bytes of the `out` ring (guest to backend): `sizeof(((struct xencons_interface *)0)->out)`.
pub const XENCONS_OUT_RING_SIZE: u32 = 2048;

/// `MASK_XENCONS_IDX(idx, ring)` for a ring of `ring_size` bytes (a power of two): the slot of
/// the free-running index `idx`.
pub const fn mask_xencons_idx(idx: XenconsRingIdx, ring_size: u32) -> u32 {
    idx & ring_size.wrapping_sub(1)
}

/// `MASK_XENCONS_IDX(idx, intf->in)`: the slot of `idx` in the `in` ring.
pub const fn mask_xencons_in_idx(idx: XenconsRingIdx) -> u32 {
    mask_xencons_idx(idx, XENCONS_IN_RING_SIZE)
}

/// `MASK_XENCONS_IDX(idx, intf->out)`: the slot of `idx` in the `out` ring.
pub const fn mask_xencons_out_idx(idx: XenconsRingIdx) -> u32 {
    mask_xencons_idx(idx, XENCONS_OUT_RING_SIZE)
}

/// `struct xencons_interface`: the console page.
///
/// The guest produces into `out` (advancing `out_prod`; the backend advances `out_cons`) and
/// consumes from `in` (advancing `in_cons`; the backend advances `in_prod`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XenconsInterface {
    /// `in`: bytes from the backend to the guest.
    pub in_: [u8; XENCONS_IN_RING_SIZE as usize],
    /// `out`: bytes from the guest to the backend.
    pub out: [u8; XENCONS_OUT_RING_SIZE as usize],
    /// Guest's consumer index of `in`.
    pub in_cons: XenconsRingIdx,
    /// Backend's producer index of `in`.
    pub in_prod: XenconsRingIdx,
    /// Backend's consumer index of `out`.
    pub out_cons: XenconsRingIdx,
    /// Guest's producer index of `out`.
    pub out_prod: XenconsRingIdx,
}
const _: () = {
    assert!(size_of::<XenconsInterface>() == 3088);
    assert!(align_of::<XenconsInterface>() == 4);
    assert!(offset_of!(XenconsInterface, in_) == 0);
    assert!(offset_of!(XenconsInterface, out) == 1024);
    assert!(offset_of!(XenconsInterface, in_cons) == 3072);
    assert!(offset_of!(XenconsInterface, in_prod) == 3076);
    assert!(offset_of!(XenconsInterface, out_cons) == 3080);
    assert!(offset_of!(XenconsInterface, out_prod) == 3084);
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_wrap_at_ring_sizes() {
        assert_eq!(mask_xencons_in_idx(1023), 1023);
        assert_eq!(mask_xencons_in_idx(1024), 0);
        assert_eq!(mask_xencons_out_idx(2049), 1);
        assert_eq!(mask_xencons_out_idx(u32::MAX), 2047);
        assert_eq!(mask_xencons_idx(5, 4), 1);
    }
}
