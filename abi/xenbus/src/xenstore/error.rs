//! Errors of the xenstore client: the daemon's error names and the client's own failures.

use abi::io::xs_wire::XsdError;

/// An error name xenstored sent in an `XS_ERROR` reply: one of `xsd_errors[]`
/// ([`XsdError`], whose names are `abi`'s checked table), or a name later daemons added.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum XsErrno {
    /// A name of `xsd_errors[]`.
    Known(XsdError),
    /// `ECONNRESET`: the connection was reset (newer daemons; not in Xen 4.17's table).
    Econnreset,
    /// Any other name (e.g. `EQUOTA`); the text is not kept.
    Unknown,
}

/// The one name daemons newer than Xen 4.17 may send beyond `xsd_errors[]`.
const ECONNRESET: &str = "ECONNRESET";

impl XsErrno {
    /// Maps an error name (without its terminating NUL) to a variant.
    pub fn from_name(name: &[u8]) -> Self {
        match XsdError::from_name(name) {
            Some(known) => Self::Known(known),
            None if name == ECONNRESET.as_bytes() => Self::Econnreset,
            None => Self::Unknown,
        }
    }

    /// The error name as xenstored spells it (`"?"` for [`XsErrno::Unknown`]).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Known(known) => known.name(),
            Self::Econnreset => ECONNRESET,
            Self::Unknown => "?",
        }
    }
}

/// A violation of the xenstore protocol by the daemon (or whatever wrote the ring).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProtocolError {
    /// A header announced a payload over `XENSTORE_PAYLOAD_MAX`; framing is lost.
    OversizeReply {
        /// The announced length.
        len: u32,
    },
    /// A reply carried a request id no request is waiting for.
    UnexpectedReqId {
        /// The request id in the reply.
        req_id: u32,
    },
    /// The reply to our request had a type that is neither the request's nor `XS_ERROR`.
    WrongReplyType {
        /// The type we sent.
        expected: u32,
        /// The type that came back.
        got: u32,
    },
    /// A reply's payload was not valid UTF-8.
    InvalidUtf8,
    /// A reply's payload did not have the shape its type requires.
    MalformedPayload,
}

/// The server's ring indexes were impossible; the transport refuses to go on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportError {
    /// `prod - cons` exceeded the ring size on one of the two rings.
    BadRingIndexes,
    /// The transport is closed (the platform gave up on the connection).
    Closed,
}

/// Errors of the xenstore client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XsError {
    /// The daemon answered with `XS_ERROR`.
    Server(XsErrno),
    /// The request's payload would exceed `XENSTORE_PAYLOAD_MAX`; nothing was sent.
    PayloadTooLarge {
        /// The payload length that was refused.
        len: usize,
    },
    /// A path was empty, too long, or contained a NUL byte; nothing was sent.
    InvalidPath,
    /// A watch token or value contained a NUL byte where one is not allowed; nothing was sent.
    InvalidArgument,
    /// The deadline passed before the reply (or watch event) arrived.
    Timeout,
    /// Watch events were dropped because the daemon sent more than the client keeps
    /// queued (`MAX_QUEUED_EVENT_BYTES`): re-read whatever is watched.
    EventsLost,
    /// The daemon broke the protocol.
    Protocol(ProtocolError),
    /// The transport failed.
    Transport(TransportError),
    /// An earlier framing or transport error left the connection unusable.
    Broken,
    /// A transaction hit `EAGAIN` on every allowed attempt.
    TransactionRetriesExhausted,
}

impl From<ProtocolError> for XsError {
    fn from(e: ProtocolError) -> Self {
        Self::Protocol(e)
    }
}

impl From<TransportError> for XsError {
    fn from(e: TransportError) -> Self {
        Self::Transport(e)
    }
}
