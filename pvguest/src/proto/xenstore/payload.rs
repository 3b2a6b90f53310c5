//! Parsing the payloads of xenstored's replies: strings, NUL-separated lists, permissions and
//! watch events. Everything here is untrusted input: it is validated, never assumed.

use super::error::ProtocolError;
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

/// Access rights in a node's permission list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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

/// One entry of a node's permission list. The first entry names the owner and the access of
/// every domain not listed; later entries name a domain and its access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Perm {
    /// The domain.
    pub domid: u16,
    /// Its access.
    pub access: Access,
}

impl Perm {
    /// The wire form (`r5`, `b0`, ...).
    pub fn encode(&self) -> String {
        let letter = match self.access {
            Access::None => 'n',
            Access::Read => 'r',
            Access::Write => 'w',
            Access::Both => 'b',
        };
        alloc::format!("{letter}{}", self.domid)
    }

    /// Parses the wire form.
    pub fn parse(text: &str) -> Result<Self, ProtocolError> {
        let mut chars = text.chars();
        let access = match chars.next() {
            Some('n') => Access::None,
            Some('r') => Access::Read,
            Some('w') => Access::Write,
            Some('b') => Access::Both,
            _ => return Err(ProtocolError::MalformedPayload),
        };
        let domid = parse_decimal(chars.as_str())
            .and_then(|v| u16::try_from(v).ok())
            .ok_or(ProtocolError::MalformedPayload)?;
        Ok(Self { domid, access })
    }
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
    items.iter().map(|s| Perm::parse(s)).collect()
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
