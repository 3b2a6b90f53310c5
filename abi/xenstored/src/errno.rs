//! The error names xenstored answers with (`xsd_errors[]` of `xs_wire.h`).

use core::fmt;

/// An error reply: one of the names of [`abi::io::xs_wire::XSD_ERRORS`], sent as the payload of
/// an `XS_ERROR` message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Errno {
    /// `EINVAL`: malformed request or path.
    Einval,
    /// `EACCES`: permission denied.
    Eacces,
    /// `EEXIST`: already exists (a duplicate watch).
    Eexist,
    /// `EISDIR`: is a directory.
    Eisdir,
    /// `ENOENT`: no such node, watch or transaction.
    Enoent,
    /// `ENOMEM`: out of memory.
    Enomem,
    /// `ENOSPC`: a quota is exhausted.
    Enospc,
    /// `EIO`: internal inconsistency.
    Eio,
    /// `ENOTEMPTY`: directory not empty.
    Enotempty,
    /// `ENOSYS`: unknown or unsupported request type.
    Enosys,
    /// `EROFS`: read-only.
    Erofs,
    /// `EBUSY`: busy (a transaction start inside a transaction).
    Ebusy,
    /// `EAGAIN`: a transaction conflicted with another change; retry it.
    Eagain,
    /// `EISCONN`: already connected.
    Eisconn,
    /// `E2BIG`: the reply would exceed `XENSTORE_PAYLOAD_MAX`.
    E2big,
    /// `EPERM`: operation not permitted (an unprivileged owner change).
    Eperm,
}

impl Errno {
    /// Every error, in the order of `xsd_errors[]`.
    pub const ALL: [Self; 16] = [
        Self::Einval,
        Self::Eacces,
        Self::Eexist,
        Self::Eisdir,
        Self::Enoent,
        Self::Enomem,
        Self::Enospc,
        Self::Eio,
        Self::Enotempty,
        Self::Enosys,
        Self::Erofs,
        Self::Ebusy,
        Self::Eagain,
        Self::Eisconn,
        Self::E2big,
        Self::Eperm,
    ];

    /// The wire name (`"EINVAL"`, ...), as an `XS_ERROR` payload carries it (plus a nul).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Einval => "EINVAL",
            Self::Eacces => "EACCES",
            Self::Eexist => "EEXIST",
            Self::Eisdir => "EISDIR",
            Self::Enoent => "ENOENT",
            Self::Enomem => "ENOMEM",
            Self::Enospc => "ENOSPC",
            Self::Eio => "EIO",
            Self::Enotempty => "ENOTEMPTY",
            Self::Enosys => "ENOSYS",
            Self::Erofs => "EROFS",
            Self::Ebusy => "EBUSY",
            Self::Eagain => "EAGAIN",
            Self::Eisconn => "EISCONN",
            Self::E2big => "E2BIG",
            Self::Eperm => "EPERM",
        }
    }

    /// The error with this wire name, if any.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.name() == name)
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
