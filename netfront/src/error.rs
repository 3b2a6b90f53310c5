//! Errors of the network front end, and what a response can do wrong.

use core::fmt;
use xenbus::frontend::XenbusError;
use xenbus::grant::GrantError;
use xenbus::xenstore::XsError;
use xenbus::{NotifyError, PageError};

/// A response the backend wrote that could not be trusted. The slot is consumed, nothing in it
/// is used, and the packet it belonged to (if any) is dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadResponse {
    /// The id names no buffer (tx: beyond the pool; rx: not the id posted in that slot).
    IdMismatch {
        /// The id the slot had to carry (rx) or the number of buffers (tx).
        expected: u16,
        /// The id the backend wrote.
        got: u16,
    },
    /// The id names a buffer with no request outstanding (a duplicate or invented response).
    NotOutstanding(u16),
    /// The status is no `NETIF_RSP_*` value this direction allows.
    UnknownStatus(i16),
    /// `offset + size` runs past the end of the buffer page.
    OutsidePage {
        /// The offset written.
        offset: u16,
        /// The size (status) written.
        size: u16,
    },
    /// Flags outside `NETRXF_*`, or `extra_info` on a slot that does not start a packet.
    BadFlags(u16),
    /// An extra-info slot of an unknown type.
    BadExtra(u8),
    /// A packet of more slots than any backend may send.
    TooManySlots,
    /// A packet longer than the largest frame this device accepts.
    TooLong,
}

/// Errors of the network front end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetError {
    /// The xenbus handshake or a xenstore access failed.
    Xenbus(XenbusError),
    /// A key is missing or does not parse (names the key).
    BadValue(&'static str),
    /// The backend does not offer `feature-rx-copy` (Linux refuses such a backend too).
    NoRxCopy,
    /// No page for a ring or a buffer.
    Pages(PageError),
    /// A grant could not be made.
    Grant(GrantError),
    /// The event channel could not be allocated or notified.
    Event(NotifyError),
    /// The frame is larger than the MTU allows (or empty): refused, nothing sent.
    FrameSize(usize),
    /// Every tx buffer is in flight.
    TxFull,
    /// The backend's producer index was impossible: the device has stopped for good.
    RingCorrupt,
    /// The backend went to Closing/Closed or vanished: the device has ended.
    BackendGone,
    /// The deadline passed.
    Timeout,
}

impl fmt::Display for NetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Xenbus(e) => write!(f, "xenbus: {e:?}"),
            Self::BadValue(key) => write!(f, "key `{key}` missing or malformed"),
            Self::NoRxCopy => f.write_str("the backend does not offer feature-rx-copy"),
            Self::Pages(e) => write!(f, "pages: {e}"),
            Self::Grant(e) => write!(f, "grant: {e}"),
            Self::Event(e) => write!(f, "event channel {}: errno {}", e.port, e.errno),
            Self::FrameSize(len) => write!(f, "a {len}-byte frame does not fit the MTU"),
            Self::TxFull => f.write_str("every tx buffer is in flight"),
            Self::RingCorrupt => f.write_str("the backend corrupted a ring"),
            Self::BackendGone => f.write_str("the backend closed or vanished"),
            Self::Timeout => f.write_str("deadline passed"),
        }
    }
}

impl From<XenbusError> for NetError {
    fn from(e: XenbusError) -> Self {
        match e {
            XenbusError::BackendClosing(_) | XenbusError::BackendGone => Self::BackendGone,
            XenbusError::Timeout => Self::Timeout,
            e => Self::Xenbus(e),
        }
    }
}

impl From<XsError> for NetError {
    fn from(e: XsError) -> Self {
        XenbusError::from(e).into()
    }
}

impl From<PageError> for NetError {
    fn from(e: PageError) -> Self {
        Self::Pages(e)
    }
}

impl From<GrantError> for NetError {
    fn from(e: GrantError) -> Self {
        Self::Grant(e)
    }
}

impl From<NotifyError> for NetError {
    fn from(e: NotifyError) -> Self {
        Self::Event(e)
    }
}
