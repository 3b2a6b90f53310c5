//! Errors of the block front end.

use core::fmt;
use xenbus::frontend::XenbusError;
use xenbus::grant::GrantError;
use xenbus::xenstore::XsError;
use xenbus::{NotifyError, PageError};

/// A response the backend wrote that could not be trusted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadResponse {
    /// The id names no slot of the ring.
    IdOutOfRange(u64),
    /// The id names a slot with no request outstanding (a duplicate or invented response).
    NotOutstanding(u64),
    /// The operation differs from the request's.
    WrongOperation {
        /// The request's operation.
        expected: u8,
        /// The response's.
        got: u8,
    },
    /// The status is none of `BLKIF_RSP_OKAY`, `_ERROR`, `_EOPNOTSUPP`.
    UnknownStatus(i16),
}

/// Why a size the backend announced while connected (`sectors` written again with state
/// Connected, as Linux blkback's `xen_vbd_resize`) was refused; the disk keeps its size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResizeRefused {
    /// Not a decimal number of sectors (empty, signed, other characters, or beyond `u64`).
    Malformed,
    /// Zero sectors: no disk left to address.
    Zero,
    /// Not a whole number of logical sectors (`sector-size` over 512).
    NotWholeSectors(u64),
    /// So many sectors that their bytes overflow 64 bits.
    TooLarge(u64),
    /// Smaller than a request still in flight reaches: that request was accepted against the
    /// old size, and the backend may not take it away under it.
    BelowInFlight {
        /// The sectors announced.
        sectors: u64,
        /// The sector just past the highest one a request in flight reaches.
        in_flight_end: u64,
    },
}

impl fmt::Display for ResizeRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed => f.write_str("`sectors` is not a number of sectors"),
            Self::Zero => f.write_str("`sectors` is 0"),
            Self::NotWholeSectors(n) => {
                write!(f, "`sectors` {n} is not a whole number of logical sectors")
            }
            Self::TooLarge(n) => write!(f, "`sectors` {n} overflows 64-bit byte offsets"),
            Self::BelowInFlight {
                sectors,
                in_flight_end,
            } => write!(
                f,
                "`sectors` {sectors} cuts a request in flight that reaches sector {in_flight_end}"
            ),
        }
    }
}

/// Errors of the block front end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlkError {
    /// The xenbus handshake or a xenstore access failed.
    Xenbus(XenbusError),
    /// A backend key is missing or does not parse (names the key).
    BadBackendValue(&'static str),
    /// No page for the ring or for data.
    Pages(PageError),
    /// A grant could not be made or ended.
    Grant(GrantError),
    /// The event channel could not be allocated or notified.
    Event(NotifyError),
    /// The disk is read-only: writes are refused here, before reaching the backend.
    ReadOnly,
    /// The request is beyond the disk's end.
    OutOfRange {
        /// First sector (512-byte units).
        sector: u64,
        /// Sectors asked for.
        sectors: u64,
    },
    /// Length or position not a multiple of the disk's sector size, zero, or more than one
    /// request carries (11 pages, or the negotiated indirect segments' pages).
    BadLength(usize),
    /// Every ring slot holds a request in flight.
    RingFull,
    /// The backend answered `BLKIF_RSP_ERROR`.
    IoError,
    /// The backend answered `BLKIF_RSP_EOPNOTSUPP`.
    NotSupported,
    /// The backend wrote a response that fails validation; the request it named (if any)
    /// failed with this.
    BadResponse(BadResponse),
    /// The backend's producer index was impossible: the ring is dead, and every request failed.
    RingCorrupt,
    /// After answering, the backend still had a data page mapped: the page is kept away
    /// (never reused) and the data not trusted.
    GrantStillMapped,
    /// The backend went to Closing/Closed or vanished: the device has ended.
    BackendGone,
    /// The deadline passed (the request stays in flight; its completion is dropped).
    Timeout,
    /// No such request is in flight.
    UnknownRequest,
    /// The backend announced a new size that was refused (the size is unchanged).
    ResizeRefused(ResizeRefused),
}

impl fmt::Display for BlkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Xenbus(e) => write!(f, "xenbus: {e:?}"),
            Self::BadBackendValue(key) => write!(f, "backend key `{key}` missing or malformed"),
            Self::Pages(e) => write!(f, "pages: {e}"),
            Self::Grant(e) => write!(f, "grant: {e}"),
            Self::Event(e) => write!(f, "event channel {}: errno {}", e.port, e.errno),
            Self::ReadOnly => f.write_str("the disk is read-only"),
            Self::OutOfRange { sector, sectors } => {
                write!(f, "{sectors} sectors at {sector} are beyond the disk")
            }
            Self::BadLength(len) => write!(
                f,
                "length {len} is not a whole number of sectors that fits one request"
            ),
            Self::RingFull => f.write_str("every ring slot is in flight"),
            Self::IoError => f.write_str("the backend reported an I/O error"),
            Self::NotSupported => f.write_str("the backend does not support the operation"),
            Self::BadResponse(b) => write!(f, "bad response from the backend: {b:?}"),
            Self::RingCorrupt => f.write_str("the backend corrupted the ring"),
            Self::GrantStillMapped => {
                f.write_str("the backend kept a data page mapped after answering")
            }
            Self::BackendGone => f.write_str("the backend closed or vanished"),
            Self::Timeout => f.write_str("deadline passed"),
            Self::UnknownRequest => f.write_str("no such request in flight"),
            Self::ResizeRefused(why) => {
                write!(f, "the backend's new size was refused (size kept): {why}")
            }
        }
    }
}

impl From<XenbusError> for BlkError {
    fn from(e: XenbusError) -> Self {
        match e {
            XenbusError::BackendClosing(_) | XenbusError::BackendGone => Self::BackendGone,
            XenbusError::Timeout => Self::Timeout,
            e => Self::Xenbus(e),
        }
    }
}

impl From<XsError> for BlkError {
    fn from(e: XsError) -> Self {
        XenbusError::from(e).into()
    }
}

impl From<PageError> for BlkError {
    fn from(e: PageError) -> Self {
        Self::Pages(e)
    }
}

impl From<NotifyError> for BlkError {
    fn from(e: NotifyError) -> Self {
        Self::Event(e)
    }
}
