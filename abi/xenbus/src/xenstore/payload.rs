//! Parsing the payloads of xenstored's replies: strings, NUL-separated lists, permissions and
//! watch events. Everything here is untrusted input: it is validated, never assumed.
#![warn(clippy::arithmetic_side_effects)]

use super::error::ProtocolError;
use abi::io::xs_wire::Perm;
use alloc::string::String;
use alloc::vec::Vec;

/// A watch firing: the path that changed and the token given to `watch`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchEvent {
    /// The path that changed (relative if the watch was registered with a relative path).
    pub path: String,
    /// The token the watch was registered with.
    pub token: String,
}

/// Parses a plain decimal number (digits only, no sign, no spaces, at most `u32::MAX`).
pub fn parse_decimal(text: &str) -> Option<u32> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// The payload as UTF-8 text, unchanged (read replies carry no terminating NUL).
pub fn text(payload: &[u8]) -> Result<String, ProtocolError> {
    String::from_utf8(payload.to_vec()).map_err(|_| ProtocolError::InvalidUtf8)
}

/// A single NUL-terminated string (error names, transaction ids, `OK`): the terminating NUL
/// is optional, an inner NUL is malformed.
pub fn single(payload: &[u8]) -> Result<&str, ProtocolError> {
    let body = payload.strip_suffix(&[0]).unwrap_or(payload);
    if body.contains(&0) {
        return Err(ProtocolError::MalformedPayload);
    }
    core::str::from_utf8(body).map_err(|_| ProtocolError::InvalidUtf8)
}

/// Checks an `OK` acknowledgement.
pub fn ok(payload: &[u8]) -> Result<(), ProtocolError> {
    match single(payload)? {
        "OK" => Ok(()),
        _ => Err(ProtocolError::MalformedPayload),
    }
}

/// A list of NUL-terminated strings (directory listings, permissions, watch events). The last
/// terminator may be missing; an empty payload is an empty list; an empty entry is malformed.
pub fn list(payload: &[u8]) -> Result<Vec<String>, ProtocolError> {
    let body = payload.strip_suffix(&[0]).unwrap_or(payload);
    if body.is_empty() {
        return Ok(Vec::new());
    }
    body.split(|&b| b == 0)
        .map(|item| {
            if item.is_empty() {
                return Err(ProtocolError::MalformedPayload);
            }
            text(item)
        })
        .collect()
}

/// Parses a `get_perms` reply.
pub fn perms(payload: &[u8]) -> Result<Vec<Perm>, ProtocolError> {
    let items = list(payload)?;
    if items.is_empty() {
        return Err(ProtocolError::MalformedPayload);
    }
    items
        .iter()
        .map(|s| Perm::parse(s.as_bytes()).map_err(|_| ProtocolError::MalformedPayload))
        .collect()
}

/// Parses an `XS_WATCH_EVENT` payload: path and token (xenstored sends exactly these two).
pub fn watch_event(payload: &[u8]) -> Result<WatchEvent, ProtocolError> {
    let mut items = list(payload)?;
    if items.len() != 2 {
        return Err(ProtocolError::MalformedPayload);
    }
    let token = items.pop().ok_or(ProtocolError::MalformedPayload)?;
    let path = items.pop().ok_or(ProtocolError::MalformedPayload)?;
    Ok(WatchEvent { path, token })
}
