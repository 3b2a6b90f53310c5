//! Version queries: `xen/version.h` (`HYPERVISOR_xen_version`).

use core::mem::{align_of, offset_of, size_of};

use crate::xen::XenUlong;

// ---------------------------------------------------------------------------------------------
// XENVER_* (first argument of HYPERVISOR_xen_version)
// ---------------------------------------------------------------------------------------------

/// Returns the version, major in bits 31:16 and minor in bits 15:0; argument NULL.
pub const XENVER_VERSION: u32 = 0;
/// Fills a [`XenExtraversion`] (e.g. ".2").
pub const XENVER_EXTRAVERSION: u32 = 1;
/// Fills a [`XenCompileInfo`].
pub const XENVER_COMPILE_INFO: u32 = 2;
/// Fills a [`XenCapabilitiesInfo`] (e.g. "xen-3.0-x86_64 hvm-3.0-x86_64").
pub const XENVER_CAPABILITIES: u32 = 3;
/// Fills a [`XenChangesetInfo`].
pub const XENVER_CHANGESET: u32 = 4;
/// Fills a [`XenPlatformParameters`].
pub const XENVER_PLATFORM_PARAMETERS: u32 = 5;
/// Fills a [`XenFeatureInfo`] (one 32-bit submap of `XENFEAT_*`).
pub const XENVER_GET_FEATURES: u32 = 6;
/// Returns the host page size in bytes; argument NULL.
pub const XENVER_PAGESIZE: u32 = 7;
/// Fills a `xen_domain_handle_t` with the caller's handle.
pub const XENVER_GUEST_HANDLE: u32 = 8;
/// Fills a [`XenCommandline`] with Xen's command line (privileged).
pub const XENVER_COMMANDLINE: u32 = 9;
/// Fills a [`XenBuildId`]; returns the number of bytes written.
pub const XENVER_BUILD_ID: u32 = 10;

// ---------------------------------------------------------------------------------------------
// Argument types
// ---------------------------------------------------------------------------------------------

/// `xen_extraversion_t`: NUL-terminated extra version string.
pub type XenExtraversion = [u8; 16];
/// Size of [`XenExtraversion`] in bytes.
pub const XEN_EXTRAVERSION_LEN: usize = size_of::<XenExtraversion>();

/// `xen_capabilities_info_t`: NUL-terminated, space-separated capability list.
pub type XenCapabilitiesInfo = [u8; 1024];
/// Size of [`XenCapabilitiesInfo`] in bytes.
pub const XEN_CAPABILITIES_INFO_LEN: usize = size_of::<XenCapabilitiesInfo>();

/// `xen_changeset_info_t`: NUL-terminated source changeset.
pub type XenChangesetInfo = [u8; 64];
/// Size of [`XenChangesetInfo`] in bytes.
pub const XEN_CHANGESET_INFO_LEN: usize = size_of::<XenChangesetInfo>();

/// `xen_commandline_t`: NUL-terminated hypervisor command line.
pub type XenCommandline = [u8; 1024];

/// `struct xen_compile_info`: argument of `XENVER_compile_info` (NUL-terminated strings).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XenCompileInfo {
    /// Compiler.
    pub compiler: [u8; 64],
    /// User who built Xen.
    pub compile_by: [u8; 16],
    /// Domain of the build host.
    pub compile_domain: [u8; 32],
    /// Build date.
    pub compile_date: [u8; 32],
}
const _: () = {
    assert!(size_of::<XenCompileInfo>() == 144 && align_of::<XenCompileInfo>() == 1);
    assert!(offset_of!(XenCompileInfo, compiler) == 0);
    assert!(offset_of!(XenCompileInfo, compile_by) == 64);
    assert!(offset_of!(XenCompileInfo, compile_domain) == 80);
    assert!(offset_of!(XenCompileInfo, compile_date) == 112);
};

impl Default for XenCompileInfo {
    fn default() -> Self {
        Self {
            compiler: [0; 64],
            compile_by: [0; 16],
            compile_domain: [0; 32],
            compile_date: [0; 32],
        }
    }
}

/// `struct xen_platform_parameters`: argument of `XENVER_platform_parameters`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenPlatformParameters {
    /// Start of the hypervisor's virtual-address hole (PV).
    pub virt_start: XenUlong,
}
const _: () = {
    assert!(size_of::<XenPlatformParameters>() == 8 && align_of::<XenPlatformParameters>() == 8);
    assert!(offset_of!(XenPlatformParameters, virt_start) == 0);
};

/// `struct xen_feature_info`: argument of `XENVER_get_features`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenFeatureInfo {
    /// IN: which 32-bit submap to return (feature `n` is in submap `n / 32`).
    pub submap_idx: u32,
    /// OUT: the submap, bit `n % 32` set when feature `n` is present.
    pub submap: u32,
}
const _: () = {
    assert!(size_of::<XenFeatureInfo>() == 8 && align_of::<XenFeatureInfo>() == 4);
    assert!(offset_of!(XenFeatureInfo, submap_idx) == 0);
    assert!(offset_of!(XenFeatureInfo, submap) == 4);
};

/// `struct xen_build_id`: header of the `XENVER_build_id` argument; the build id bytes follow
/// it in a buffer of `len` bytes (C flexible array member `buf`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenBuildId {
    /// IN: size of the buffer after this header.
    pub len: u32,
    /// OUT: the build id (flexible array; the bytes follow the struct).
    pub buf: [u8; 0],
}
const _: () = {
    assert!(size_of::<XenBuildId>() == 4 && align_of::<XenBuildId>() == 4);
    assert!(offset_of!(XenBuildId, len) == 0);
    assert!(offset_of!(XenBuildId, buf) == 4);
};
