//! Framing of xenstore messages on the byte stream: encoding requests and reassembling
//! incoming messages from arbitrary chunks.
#![warn(clippy::arithmetic_side_effects)]

use super::error::{ProtocolError, XsError};
use abi::io::xs_wire::{XENSTORE_PAYLOAD_MAX, XsWireError, XsdSockmsg};
use alloc::vec::Vec;

/// One complete incoming message: its header and payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// The header (its `len` equals `payload.len()`).
    pub header: XsdSockmsg,
    /// The payload bytes.
    pub payload: Vec<u8>,
}

/// Encodes a request whose payload is the concatenation of `parts`.
///
/// Refuses (with [`XsError::PayloadTooLarge`]) a payload over `XENSTORE_PAYLOAD_MAX`: a daemon
/// that receives one drops the connection.
pub fn encode_request(
    type_: u32,
    req_id: u32,
    tx_id: u32,
    parts: &[&[u8]],
) -> Result<Vec<u8>, XsError> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let len32 = u32::try_from(len)
        .ok()
        .filter(|&l| l <= XENSTORE_PAYLOAD_MAX)
        .ok_or(XsError::PayloadTooLarge { len })?;
    let header = XsdSockmsg {
        type_,
        req_id,
        tx_id,
        len: len32,
    };
    let mut out = Vec::with_capacity(XsdSockmsg::SIZE.saturating_add(len));
    out.extend_from_slice(&header.to_bytes());
    for part in parts {
        out.extend_from_slice(part);
    }
    Ok(out)
}

/// Reassembles messages from the bytes the transport hands over.
#[derive(Debug, Default)]
pub struct Inbox {
    buffer: Vec<u8>,
}

impl Inbox {
    /// An empty inbox.
    pub const fn new() -> Self {
        Self { buffer: Vec::new() }
    }

    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// Number of buffered bytes not yet forming a complete message.
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

    /// Takes the next complete message, if one is buffered.
    ///
    /// An oversize header is an error after which the stream cannot be resynchronised.
    pub fn pop(&mut self) -> Result<Option<Message>, ProtocolError> {
        let Some(raw) = self.buffer.first_chunk::<{ XsdSockmsg::SIZE }>() else {
            return Ok(None);
        };
        let header = XsdSockmsg::from_bytes(raw).map_err(|e| match e {
            XsWireError::PayloadTooLong { len } => ProtocolError::OversizeReply { len },
        })?;
        // len <= XENSTORE_PAYLOAD_MAX, so it fits in usize.
        // header.len <= XENSTORE_PAYLOAD_MAX (from_bytes checked it).
        let end = XsdSockmsg::SIZE.saturating_add(header.len as usize);
        if self.buffer.len() < end {
            return Ok(None);
        }
        let payload = self.buffer[XsdSockmsg::SIZE..end].to_vec();
        self.buffer.drain(..end);
        Ok(Some(Message { header, payload }))
    }
}
