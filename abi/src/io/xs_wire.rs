//! The xenstore wire protocol of `xen/io/xs_wire.h`: message header, message types, error
//! names, the shared ring page, and the encoding of the 16-byte header.
//!
//! A message is an [`XsdSockmsg`] header (four little-endian `u32`s) followed by `len` bytes of
//! payload (usually nul-terminated strings). [`XsdSockmsg::to_bytes`] and
//! [`XsdSockmsg::from_bytes`] are the framing; interpreting the payload is the client's job.
#![warn(clippy::arithmetic_side_effects)]

use core::fmt;
use core::mem::{align_of, offset_of, size_of};

// ---------------------------------------------------------------------------------------------
// Message types (`enum xsd_sockmsg_type`)
// ---------------------------------------------------------------------------------------------

/// `XS_CONTROL`: control commands for the daemon (also `XS_DEBUG`).
pub const XS_CONTROL: u32 = 0;
/// `XS_DEBUG`: the old name of [`XS_CONTROL`].
pub const XS_DEBUG: u32 = XS_CONTROL;
/// `XS_DIRECTORY`: list a node's children.
pub const XS_DIRECTORY: u32 = 1;
/// `XS_READ`: read a node's value.
pub const XS_READ: u32 = 2;
/// `XS_GET_PERMS`: read a node's permissions.
pub const XS_GET_PERMS: u32 = 3;
/// `XS_WATCH`: register a watch (path, token).
pub const XS_WATCH: u32 = 4;
/// `XS_UNWATCH`: remove a watch (path, token).
pub const XS_UNWATCH: u32 = 5;
/// `XS_TRANSACTION_START`: begin a transaction; the reply carries its id.
pub const XS_TRANSACTION_START: u32 = 6;
/// `XS_TRANSACTION_END`: commit (`"T"`) or abort (`"F"`) a transaction.
pub const XS_TRANSACTION_END: u32 = 7;
/// `XS_INTRODUCE`: introduce a domain to the daemon (privileged).
pub const XS_INTRODUCE: u32 = 8;
/// `XS_RELEASE`: release a domain (privileged).
pub const XS_RELEASE: u32 = 9;
/// `XS_GET_DOMAIN_PATH`: the home path of a domain (`/local/domain/<id>`).
pub const XS_GET_DOMAIN_PATH: u32 = 10;
/// `XS_WRITE`: write a node's value.
pub const XS_WRITE: u32 = 11;
/// `XS_MKDIR`: create a node.
pub const XS_MKDIR: u32 = 12;
/// `XS_RM`: remove a node and its children.
pub const XS_RM: u32 = 13;
/// `XS_SET_PERMS`: set a node's permissions.
pub const XS_SET_PERMS: u32 = 14;
/// `XS_WATCH_EVENT`: an asynchronous watch firing (path, token), sent by the daemon.
pub const XS_WATCH_EVENT: u32 = 15;
/// `XS_ERROR`: an error reply; the payload is an errno name from [`XSD_ERRORS`].
pub const XS_ERROR: u32 = 16;
/// `XS_IS_DOMAIN_INTRODUCED`: whether a domain is introduced (privileged).
pub const XS_IS_DOMAIN_INTRODUCED: u32 = 17;
/// `XS_RESUME`: clear a domain's shutdown flag (privileged).
pub const XS_RESUME: u32 = 18;
/// `XS_SET_TARGET`: let a domain act for another (privileged).
pub const XS_SET_TARGET: u32 = 19;
/// `XS_RESET_WATCHES`: remove all of the caller's watches (20, the removed `XS_RESTRICT`, is
/// skipped).
pub const XS_RESET_WATCHES: u32 = XS_SET_TARGET + 2;
/// `XS_DIRECTORY_PART`: list part of a large directory.
pub const XS_DIRECTORY_PART: u32 = 22;
/// `XS_TYPE_COUNT`: one more than the largest valid message type.
pub const XS_TYPE_COUNT: u32 = 23;
/// `XS_INVALID`: guaranteed to remain an invalid type.
pub const XS_INVALID: u32 = 0xffff;

// ---------------------------------------------------------------------------------------------
// Write modes, watch payload fields, errors
// ---------------------------------------------------------------------------------------------

/// `XS_WRITE_NONE` (a legacy write-mode string).
pub const XS_WRITE_NONE: &str = "NONE";
/// `XS_WRITE_CREATE` (a legacy write-mode string).
pub const XS_WRITE_CREATE: &str = "CREATE";
/// `XS_WRITE_CREATE_EXCL` (a legacy write-mode string).
pub const XS_WRITE_CREATE_EXCL: &str = "CREATE|EXCL";

/// `XS_WATCH_PATH`: index of the path in an `XS_WATCH_EVENT` payload (`enum xs_watch_type`).
pub const XS_WATCH_PATH: u32 = 0;
/// `XS_WATCH_TOKEN`: index of the token in an `XS_WATCH_EVENT` payload.
pub const XS_WATCH_TOKEN: u32 = 1;

/// The names of the header's `xsd_errors[]` table, in its order.
///
/// An `XS_ERROR` reply carries one of these names (nul-terminated) as its payload: xenstore
/// sends errors as strings for portability. The C table pairs each name with the *host's*
/// `errno` value (`XSD_ERROR(EINVAL)` is `{ EINVAL, "EINVAL" }` compiled against the host libc),
/// so the numbers are not part of the wire protocol and are not given here; map a name to your
/// own error type (Xen's errno values are in `crate::errno`). New names are only ever appended.
pub const XSD_ERRORS: &[&str] = &[
    "EINVAL",
    "EACCES",
    "EEXIST",
    "EISDIR",
    "ENOENT",
    "ENOMEM",
    "ENOSPC",
    "EIO",
    "ENOTEMPTY",
    "ENOSYS",
    "EROFS",
    "EBUSY",
    "EAGAIN",
    "EISCONN",
    "E2BIG",
    "EPERM",
];

/// One of the names of [`XSD_ERRORS`], by its index in that table: the one error type of
/// xenstore replies, which the server core (`xenstored`) answers with and the client (`xenbus`)
/// reads. Its names are [`XSD_ERRORS`]' entries, not a second table.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum XsdError {
    /// `EINVAL`: malformed request or path.
    Einval = 0,
    /// `EACCES`: permission denied.
    Eacces = 1,
    /// `EEXIST`: already exists (a node created exclusively, a duplicate watch).
    Eexist = 2,
    /// `EISDIR`: is a directory.
    Eisdir = 3,
    /// `ENOENT`: no such node, watch or transaction.
    Enoent = 4,
    /// `ENOMEM`: out of memory.
    Enomem = 5,
    /// `ENOSPC`: a quota is exhausted.
    Enospc = 6,
    /// `EIO`: internal inconsistency.
    Eio = 7,
    /// `ENOTEMPTY`: directory not empty.
    Enotempty = 8,
    /// `ENOSYS`: unknown or unsupported request type.
    Enosys = 9,
    /// `EROFS`: read-only (e.g. the daemon is restarting).
    Erofs = 10,
    /// `EBUSY`: busy (a transaction start inside a transaction).
    Ebusy = 11,
    /// `EAGAIN`: a transaction conflicted with another change; retry it.
    Eagain = 12,
    /// `EISCONN`: already connected.
    Eisconn = 13,
    /// `E2BIG`: the reply would exceed `XENSTORE_PAYLOAD_MAX`.
    E2big = 14,
    /// `EPERM`: operation not permitted (an unprivileged owner change).
    Eperm = 15,
}

impl XsdError {
    /// Every error, in the order of [`XSD_ERRORS`].
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

    /// The wire name (`"EINVAL"`, ...) from [`XSD_ERRORS`], as an `XS_ERROR` payload carries it
    /// (plus a nul).
    pub const fn name(self) -> &'static str {
        XSD_ERRORS[self as usize]
    }

    /// The error whose wire name is `name` (without its nul), if [`XSD_ERRORS`] has it.
    pub fn from_name(name: &[u8]) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.name().as_bytes() == name)
    }
}

impl core::fmt::Display for XsdError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

const _: () = assert!(XsdError::ALL.len() == XSD_ERRORS.len());

// ---------------------------------------------------------------------------------------------
// Permissions (the text form `XS_GET_PERMS` / `XS_SET_PERMS` carry)
// ---------------------------------------------------------------------------------------------

/// Access rights in a node's permission list: the letter in front of a domain id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    /// `n`: none.
    None,
    /// `r`: read.
    Read,
    /// `w`: write.
    Write,
    /// `b`: read and write.
    Both,
}

impl Access {
    /// The wire letter.
    pub const fn letter(self) -> char {
        match self {
            Self::None => 'n',
            Self::Read => 'r',
            Self::Write => 'w',
            Self::Both => 'b',
        }
    }

    /// Whether this access allows reading.
    pub const fn can_read(self) -> bool {
        matches!(self, Self::Read | Self::Both)
    }

    /// Whether this access allows writing.
    pub const fn can_write(self) -> bool {
        matches!(self, Self::Write | Self::Both)
    }
}

/// A permission text that is not `<n|r|w|b><decimal domid below 65536>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadPerm;

/// One entry of a node's permission list, in its text form `<letter><domid>` (`r5`, `b0`).
///
/// The first entry of a list names the node's owner and the access of every domain not listed
/// after it; later entries name a domain and its access.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Perm {
    /// The domain.
    pub domid: u16,
    /// Its access.
    pub access: Access,
}

impl Perm {
    /// Parses the text form: one letter of `nrwb`, then a decimal domain id (digits only,
    /// at most 65535). Anything else is [`BadPerm`].
    pub fn parse(text: &[u8]) -> Result<Self, BadPerm> {
        let (&letter, digits) = text.split_first().ok_or(BadPerm)?;
        let access = match letter {
            b'n' => Access::None,
            b'r' => Access::Read,
            b'w' => Access::Write,
            b'b' => Access::Both,
            _ => return Err(BadPerm),
        };
        if digits.is_empty() || digits.len() > 5 {
            return Err(BadPerm);
        }
        let mut domid: u32 = 0;
        for &d in digits {
            if !d.is_ascii_digit() {
                return Err(BadPerm);
            }
            // At most 5 digits (checked above): below 100000, no overflow.
            domid = domid
                .saturating_mul(10)
                .saturating_add(u32::from(d.wrapping_sub(b'0')));
        }
        let domid = u16::try_from(domid).map_err(|_| BadPerm)?;
        Ok(Self { domid, access })
    }
}

impl fmt::Display for Perm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.access.letter(), self.domid)
    }
}

// ---------------------------------------------------------------------------------------------
// The message header
// ---------------------------------------------------------------------------------------------

/// `struct xsd_sockmsg`: the header in front of every xenstore message.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct XsdSockmsg {
    /// `type`: one of the `XS_*` message types.
    pub type_: u32,
    /// Request identifier, echoed in the daemon's response.
    pub req_id: u32,
    /// Transaction id (0 if not related to a transaction).
    pub tx_id: u32,
    /// Length of the payload that follows the header.
    pub len: u32,
}
const _: () = {
    assert!(size_of::<XsdSockmsg>() == 16);
    assert!(align_of::<XsdSockmsg>() == 4);
    assert!(offset_of!(XsdSockmsg, type_) == 0);
    assert!(offset_of!(XsdSockmsg, req_id) == 4);
    assert!(offset_of!(XsdSockmsg, tx_id) == 8);
    assert!(offset_of!(XsdSockmsg, len) == 12);
};

/// Why a 16-byte xenstore header was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XsWireError {
    /// The header announces a payload longer than [`XENSTORE_PAYLOAD_MAX`].
    PayloadTooLong {
        /// The announced payload length.
        len: u32,
    },
}

impl fmt::Display for XsWireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::PayloadTooLong { len } => write!(
                f,
                "xenstore payload of {len} bytes exceeds the maximum of {XENSTORE_PAYLOAD_MAX}"
            ),
        }
    }
}

impl XsdSockmsg {
    /// Size of the encoded header in bytes.
    pub const SIZE: usize = 16;

    /// Encodes the header as it travels on the ring: four little-endian `u32`s
    /// (`type`, `req_id`, `tx_id`, `len`).
    ///
    /// No check is made here; a writer limits `len` to [`XENSTORE_PAYLOAD_MAX`] itself.
    #[allow(clippy::arithmetic_side_effects)] // loop indexes below 16
    pub const fn to_bytes(&self) -> [u8; Self::SIZE] {
        let mut out = [0u8; Self::SIZE];
        let words = [self.type_, self.req_id, self.tx_id, self.len];
        let mut i = 0;
        while i < 4 {
            let bytes = words[i].to_le_bytes();
            let mut j = 0;
            while j < 4 {
                out[i * 4 + j] = bytes[j];
                j += 1;
            }
            i += 1;
        }
        out
    }

    /// Decodes a header read from the ring.
    ///
    /// The message type is not checked (a reader answers an unknown type itself); a payload
    /// length over [`XENSTORE_PAYLOAD_MAX`] is rejected, since the protocol forbids it.
    pub const fn from_bytes(bytes: &[u8; Self::SIZE]) -> Result<Self, XsWireError> {
        let msg = Self {
            type_: le_word(bytes, 0),
            req_id: le_word(bytes, 4),
            tx_id: le_word(bytes, 8),
            len: le_word(bytes, 12),
        };
        if msg.len > XENSTORE_PAYLOAD_MAX {
            return Err(XsWireError::PayloadTooLong { len: msg.len });
        }
        Ok(msg)
    }
}

/// The little-endian `u32` at `at` in a header.
#[allow(clippy::arithmetic_side_effects)] // `at` is 0, 4, 8 or 12: indexes below 16
const fn le_word(bytes: &[u8; XsdSockmsg::SIZE], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

// ---------------------------------------------------------------------------------------------
// The shared ring page
// ---------------------------------------------------------------------------------------------

/// `XENSTORE_RING_SIZE`: size in bytes of each of the two byte rings.
pub const XENSTORE_RING_SIZE: u32 = 1024;

/// `XENSTORE_RING_IDX`: a free-running xenstore ring index.
pub type XenstoreRingIdx = u32;

/// `MASK_XENSTORE_IDX(idx)`: the slot of the free-running index `idx` in either ring.
pub const fn mask_xenstore_idx(idx: XenstoreRingIdx) -> u32 {
    idx & (XENSTORE_RING_SIZE - 1)
}

/// `struct xenstore_domain_interface`: the xenstore page shared between a domain and the
/// daemon.
///
/// Shared with the other side: access it only through raw pointers with volatile or atomic
/// accesses, never through a reference.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XenstoreDomainInterface {
    /// Requests to the xenstore daemon.
    pub req: [u8; XENSTORE_RING_SIZE as usize],
    /// Replies and asynchronous watch events.
    pub rsp: [u8; XENSTORE_RING_SIZE as usize],
    /// Daemon's consumer index of `req`.
    pub req_cons: XenstoreRingIdx,
    /// Guest's producer index of `req`.
    pub req_prod: XenstoreRingIdx,
    /// Guest's consumer index of `rsp`.
    pub rsp_cons: XenstoreRingIdx,
    /// Daemon's producer index of `rsp`.
    pub rsp_prod: XenstoreRingIdx,
    /// Bitmap of features the server supports (`XENSTORE_SERVER_FEATURE_*`).
    pub server_features: u32,
    /// Connection state (`XENSTORE_CONNECTED` or `XENSTORE_RECONNECT`).
    pub connection: u32,
    /// Error the server detected (`XENSTORE_ERROR_*`).
    pub error: u32,
}
const _: () = {
    assert!(size_of::<XenstoreDomainInterface>() == 2076);
    assert!(align_of::<XenstoreDomainInterface>() == 4);
    assert!(offset_of!(XenstoreDomainInterface, req) == 0);
    assert!(offset_of!(XenstoreDomainInterface, rsp) == 1024);
    assert!(offset_of!(XenstoreDomainInterface, req_cons) == 2048);
    assert!(offset_of!(XenstoreDomainInterface, req_prod) == 2052);
    assert!(offset_of!(XenstoreDomainInterface, rsp_cons) == 2056);
    assert!(offset_of!(XenstoreDomainInterface, rsp_prod) == 2060);
    assert!(offset_of!(XenstoreDomainInterface, server_features) == 2064);
    assert!(offset_of!(XenstoreDomainInterface, connection) == 2068);
    assert!(offset_of!(XenstoreDomainInterface, error) == 2072);
};

/// `XENSTORE_PAYLOAD_MAX`: the largest payload a message may carry.
pub const XENSTORE_PAYLOAD_MAX: u32 = 4096;
/// `XENSTORE_ABS_PATH_MAX`: the longest absolute path the daemon accepts.
pub const XENSTORE_ABS_PATH_MAX: u32 = 3072;
/// `XENSTORE_REL_PATH_MAX`: the longest relative path the daemon accepts.
pub const XENSTORE_REL_PATH_MAX: u32 = 2048;

/// `XENSTORE_SERVER_FEATURE_RECONNECTION`: the server can reconnect the ring.
pub const XENSTORE_SERVER_FEATURE_RECONNECTION: u32 = 1;
/// `XENSTORE_SERVER_FEATURE_ERROR`: the page's `error` field is valid.
pub const XENSTORE_SERVER_FEATURE_ERROR: u32 = 2;

/// `XENSTORE_CONNECTED`: the steady state of `connection`.
pub const XENSTORE_CONNECTED: u32 = 0;
/// `XENSTORE_RECONNECT`: a reconnection is in progress.
pub const XENSTORE_RECONNECT: u32 = 1;

/// `XENSTORE_ERROR_NONE`: no error.
pub const XENSTORE_ERROR_NONE: u32 = 0;
/// `XENSTORE_ERROR_COMM`: communication problem.
pub const XENSTORE_ERROR_COMM: u32 = 1;
/// `XENSTORE_ERROR_RINGIDX`: invalid ring index.
pub const XENSTORE_ERROR_RINGIDX: u32 = 2;
/// `XENSTORE_ERROR_PROTO`: protocol violation (payload too long).
pub const XENSTORE_ERROR_PROTO: u32 = 3;

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)] // test arithmetic on small known values
mod tests {
    use super::*;

    /// A fixed buffer `Display` writes into (the crate has no `alloc`).
    struct Shown<'a>(&'a mut [u8], usize);

    impl core::fmt::Write for Shown<'_> {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            let end = self.1 + s.len();
            self.0
                .get_mut(self.1..end)
                .ok_or(core::fmt::Error)?
                .copy_from_slice(s.as_bytes());
            self.1 = end;
            Ok(())
        }
    }

    #[test]
    fn xsd_error_names_are_the_table_in_its_order() {
        for (i, e) in XsdError::ALL.into_iter().enumerate() {
            assert_eq!(e as usize, i);
            assert_eq!(e.name(), XSD_ERRORS[i]);
            assert_eq!(XsdError::from_name(XSD_ERRORS[i].as_bytes()), Some(e));
            let mut shown = [0u8; 16];
            let mut w = Shown(&mut shown, 0);
            core::fmt::write(&mut w, format_args!("{e}")).unwrap();
            let len = w.1;
            assert_eq!(&shown[..len], XSD_ERRORS[i].as_bytes());
        }
        assert_eq!(XsdError::from_name(b"enoent"), None);
        assert_eq!(XsdError::from_name(b"ECONNRESET"), None);
        assert_eq!(XsdError::from_name(b""), None);
    }

    #[test]
    fn header_encodes_little_endian() {
        let msg = XsdSockmsg {
            type_: XS_READ,
            req_id: 0x0403_0201,
            tx_id: 7,
            len: 0x1000,
        };
        assert_eq!(
            msg.to_bytes(),
            [2, 0, 0, 0, 1, 2, 3, 4, 7, 0, 0, 0, 0, 0x10, 0, 0]
        );
        assert_eq!(XsdSockmsg::from_bytes(&msg.to_bytes()), Ok(msg));
    }

    #[test]
    fn payload_limit_is_inclusive() {
        let mut bytes = [0u8; 16];
        bytes[12..].copy_from_slice(&4096u32.to_le_bytes());
        assert_eq!(XsdSockmsg::from_bytes(&bytes).map(|m| m.len), Ok(4096));
        bytes[12..].copy_from_slice(&4097u32.to_le_bytes());
        assert_eq!(
            XsdSockmsg::from_bytes(&bytes),
            Err(XsWireError::PayloadTooLong { len: 4097 })
        );
    }

    #[test]
    fn type_numbering_skips_removed_restrict() {
        assert_eq!(XS_SET_TARGET, 19);
        assert_eq!(XS_RESET_WATCHES, 21);
        assert_eq!(XS_DIRECTORY_PART, XS_RESET_WATCHES + 1);
        assert_eq!(XS_TYPE_COUNT, XS_DIRECTORY_PART + 1);
    }

    #[test]
    fn masks_wrap() {
        assert_eq!(mask_xenstore_idx(1024), 0);
        assert_eq!(mask_xenstore_idx(u32::MAX), 1023);
    }

    #[test]
    fn error_table_order() {
        assert_eq!(XSD_ERRORS.len(), 16);
        assert_eq!(XSD_ERRORS[0], "EINVAL");
        assert_eq!(XSD_ERRORS[15], "EPERM");
    }

    #[test]
    fn perms_round_trip_and_reject_garbage() {
        extern crate std;
        use std::string::ToString;
        for text in ["n0", "r5", "w65535", "b1"] {
            let perm = Perm::parse(text.as_bytes()).unwrap();
            assert_eq!(perm.to_string(), text);
        }
        assert_eq!(
            Perm::parse(b"r12"),
            Ok(Perm {
                domid: 12,
                access: Access::Read
            })
        );
        for bad in [
            &b""[..],
            b"r",
            b"x1",
            b"r65536",
            b"r-1",
            b"r 1",
            b"r1a",
            b"r000001",
        ] {
            assert_eq!(Perm::parse(bad), Err(BadPerm), "{bad:?}");
        }
        assert!(Access::Both.can_read() && Access::Both.can_write());
        assert!(Access::Read.can_read() && !Access::Read.can_write());
        assert!(!Access::None.can_read() && !Access::Write.can_read());
    }
}
