//! Response heads and small bodies.

use crate::backend::BackendError;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

/// The reason phrase of a status this service sends.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        202 => "Accepted",
        206 => "Partial Content",
        304 => "Not Modified",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        416 => "Range Not Satisfiable",
        503 => "Service Unavailable",
        507 => "Insufficient Storage",
        _ => "Internal Server Error",
    }
}

/// A response head announcing `length` bytes of `content_type`, with `extra` header lines
/// (each ending with CRLF; empty for none).
pub fn head(
    status: u16,
    content_type: &str,
    length: u64,
    keep_alive: bool,
    extra: &str,
) -> Vec<u8> {
    let mut text = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {length}\r\n",
        reason(status)
    );
    text.push_str(extra);
    text.push_str(if keep_alive {
        "Connection: keep-alive\r\n\r\n"
    } else {
        "Connection: close\r\n\r\n"
    });
    text.into_bytes()
}

/// A complete response with a body of `body_type` (and `extra` header lines).
pub fn with_body(
    status: u16,
    body_type: &str,
    body: &str,
    keep_alive: bool,
    extra: &str,
) -> Vec<u8> {
    with_bytes(status, body_type, body.as_bytes(), keep_alive, extra)
}

/// A complete response with a body of `body_type`, any bytes.
pub fn with_bytes(
    status: u16,
    body_type: &str,
    body: &[u8],
    keep_alive: bool,
    extra: &str,
) -> Vec<u8> {
    let mut out = head(status, body_type, body.len() as u64, keep_alive, extra);
    out.extend_from_slice(body);
    out
}

/// The answer to a storage `error`: `404` with `not_found`, else `503`, `507` or `500` with
/// the error's text; returns the status and the response.
pub fn backend_error(error: &BackendError, not_found: &str, keep_alive: bool) -> (u16, Vec<u8>) {
    let (status, why) = match error {
        BackendError::NotFound => (404, not_found),
        BackendError::Unavailable(why) => (503, *why),
        BackendError::Full(why) => (507, why.as_str()),
        BackendError::Failed(why) => (500, why.as_str()),
        BackendError::Pending => (503, STORAGE_TIMEOUT),
    };
    (status, self::error(status, why, keep_alive, ""))
}

/// Why a request that waited on the storage past [`crate::Deadlines::storage`] gets `503`
/// (nothing of it was begun, and nothing will be).
pub const STORAGE_TIMEOUT: &str = "the storage did not answer in time";

/// Why a change already on its way to the disk when the storage deadline passed gets `202`
/// ([`crate::Backend::kv_change_on_its_way`]).
pub const ACCEPTED_ON_ITS_WAY: &str = "accepted, not done yet: the change is on its way to the \
    disk, which did not complete it in time; it is applied once the disk does (read the key \
    to see)";

/// A `304 Not Modified` (no body, so neither `Content-Length` nor `Content-Type`), with
/// `extra` header lines.
pub fn not_modified(keep_alive: bool, extra: &str) -> Vec<u8> {
    let mut text = format!("HTTP/1.1 304 {}\r\n{extra}", reason(304));
    text.push_str(if keep_alive {
        "Connection: keep-alive\r\n\r\n"
    } else {
        "Connection: close\r\n\r\n"
    });
    text.into_bytes()
}

/// The interim answer to `Expect: 100-continue`: go on, send the body.
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// `text` as a JSON string, quotes included: `"` and `\` escaped, control characters as
/// `\uXXXX`.
pub fn json_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\u{:04x}", u32::from(c)));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A plain-text error response (`<reason>\n`).
pub fn error(status: u16, why: &str, keep_alive: bool, extra: &str) -> Vec<u8> {
    let mut body = String::from(why);
    body.push('\n');
    with_body(status, "text/plain", &body, keep_alive, extra)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_are_escaped() {
        let mut out = String::new();
        json_string(&mut out, "a\"b\\c\n\u{1}\u{7f}é~");
        assert_eq!(out, "\"a\\\"b\\\\c\\u000a\\u0001\\u007fé~\"");
    }

    #[test]
    fn reason_phrases() {
        for (status, phrase) in [
            (100, "Continue"),
            (411, "Length Required"),
            (500, "Internal Server Error"),
            (503, "Service Unavailable"),
            (507, "Insufficient Storage"),
        ] {
            assert_eq!(reason(status), phrase);
        }
    }
}
