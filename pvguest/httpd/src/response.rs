//! Response heads and small bodies.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

/// The reason phrase of a status this service sends.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Content Too Large",
        _ => "Internal Server Error",
    }
}

/// A response head announcing `length` bytes of `content_type`.
pub fn head(
    status: u16,
    content_type: &str,
    length: u64,
    keep_alive: bool,
    allow: Option<&str>,
) -> Vec<u8> {
    let mut text = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {length}\r\n",
        reason(status)
    );
    if let Some(allow) = allow {
        text.push_str(&format!("Allow: {allow}\r\n"));
    }
    text.push_str(if keep_alive {
        "Connection: keep-alive\r\n\r\n"
    } else {
        "Connection: close\r\n\r\n"
    });
    text.into_bytes()
}

/// A complete response with a body of `body_type`.
pub fn with_body(
    status: u16,
    body_type: &str,
    body: &str,
    keep_alive: bool,
    allow: Option<&str>,
) -> Vec<u8> {
    let mut out = head(status, body_type, body.len() as u64, keep_alive, allow);
    out.extend_from_slice(body.as_bytes());
    out
}

/// A plain-text error response (`<reason>\n`).
pub fn error(status: u16, why: &str, keep_alive: bool, allow: Option<&str>) -> Vec<u8> {
    let mut body = String::from(why);
    body.push('\n');
    with_body(status, "text/plain", &body, keep_alive, allow)
}
