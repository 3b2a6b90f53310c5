//! hv's one name for a Xen errno as a hypercall answers it (abi's `XEN_E*` constants are the
//! positive numbers; `abi::io::xs_wire::XsdError` names the xenstore protocol's errors, a
//! different thing).

/// A Xen errno as a hypercall returns it in RAX: negative (`-XEN_EINVAL`, ...).
pub type XenErrno = i64;

/// `-errno`, the hypercall return value for abi's `XEN_E*` constant `errno`.
pub const fn xen_errno(errno: i32) -> XenErrno {
    -(errno as XenErrno)
}
