//! `HYPERVISOR_xen_version`: the version and feature submaps.

use super::*;

/// `XENVER_version`: `(major, minor)`.
pub fn xen_version() -> Result<(u16, u16), HypercallError> {
    // SAFETY: XENVER_version takes a NULL argument and writes nothing.
    let v = check(unsafe {
        hypercall2(
            x::HYPERVISOR_XEN_VERSION,
            abi::version::XENVER_VERSION.into(),
            0,
        )
    }?)?;
    // `check` passed a non-negative value; each half is 16 bits.
    let half = |x: i64| u16::try_from(x & 0xffff).unwrap_or(0);
    Ok((half(v >> 16), half(v)))
}

/// `XENVER_get_features`: feature submap `index` (features `32*index .. 32*index+31`).
pub fn get_features(index: u32) -> Result<u32, HypercallError> {
    let mut fi = abi::version::XenFeatureInfo {
        submap_idx: index,
        submap: 0,
    };
    // SAFETY: `fi` is a live xen_feature_info that Xen reads and writes during the call.
    check(unsafe {
        hypercall2(
            x::HYPERVISOR_XEN_VERSION,
            abi::version::XENVER_GET_FEATURES.into(),
            ptr_mut(&mut fi),
        )
    }?)?;
    Ok(fi.submap)
}
