//! Reading a request head (parsed with `httparse`) into what the service does with it.

use crate::entity::{ByteRange, parse_range};
use crate::path::{file_path, kv_key};
use crate::{MAX_BLOB, MAX_BODY, MAX_VALUE};
use alloc::string::String;

/// Most headers a request may carry.
pub const MAX_HEADERS: usize = 32;

/// What a request asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// `GET /`.
    Status,
    /// `GET /blob/<n>`.
    Blob(u64),
    /// `POST /sink`.
    Sink,
    /// `POST /discard`: an upload read and dropped unhashed (as a server that keeps nothing
    /// of it, nginx's sink in the bench's Linux domU, does its work).
    Discard,
    /// `GET /files/<path>`: the archive's file at this path (decoded, no leading `/`).
    File(String),
    /// `GET /kv/`: every key.
    KvKeys,
    /// `GET /kv/<key>`.
    KvGet(String),
    /// `PUT /kv/<key>` (the body, at most [`MAX_VALUE`] bytes, is the value).
    KvPut(String),
    /// `DELETE /kv/<key>`.
    KvDelete(String),
    /// No such path: `404`.
    NotFound,
    /// A known path, another method: `405` with this `Allow`.
    MethodNotAllowed(&'static str),
}

impl Route {
    /// Whether the service reads this request's body (rather than skipping it).
    pub fn reads_body(&self) -> bool {
        matches!(self, Self::Sink | Self::Discard | Self::KvPut(_))
    }
}

/// A request the service answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// What it asks for.
    pub route: Route,
    /// Whether the connection stays open after the answer.
    pub keep_alive: bool,
    /// Bytes of body that follow the head.
    pub body: u64,
    /// Whether the client sent `Expect: 100-continue` (it may wait for `100 Continue` before
    /// sending the body); ignored from an HTTP/1.0 client, as RFC 9110 asks.
    pub expect_continue: bool,
    /// `HEAD`: the answer's head only (the route is the `GET` one).
    pub head_only: bool,
    /// The one byte range asked for (`Range`), if one ([`parse_range`]).
    pub range: Option<ByteRange>,
    /// `If-None-Match`, as sent.
    pub if_none_match: Option<String>,
    /// `If-Range`, as sent.
    pub if_range: Option<String>,
}

/// A request refused as a whole: the answer's status and a short reason; the connection closes
/// after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// `400`, `411` or `413`.
    pub status: u16,
    /// Why (the response body).
    pub reason: &'static str,
}

impl Refusal {
    /// `400 Bad Request`.
    pub const fn bad(reason: &'static str) -> Self {
        Self {
            status: 400,
            reason,
        }
    }

    /// `413 Content Too Large`.
    pub const fn too_large(reason: &'static str) -> Self {
        Self {
            status: 413,
            reason,
        }
    }

    /// `411 Length Required`.
    pub const fn length_required(reason: &'static str) -> Self {
        Self {
            status: 411,
            reason,
        }
    }
}

const _: () = assert!(MAX_VALUE == 16 * 1024, "the refusal names the limit");

/// The `Allow` of the routes that take `GET` (and so `HEAD`).
const GET: &str = "GET, HEAD";

const fn bad(reason: &'static str) -> Refusal {
    Refusal::bad(reason)
}

const fn too_large(reason: &'static str) -> Refusal {
    Refusal::too_large(reason)
}

/// A decimal number of at most 19 digits (no sign, no spaces).
fn decimal(text: &[u8]) -> Option<u64> {
    if text.is_empty() || text.len() > 19 || !text.iter().all(u8::is_ascii_digit) {
        return None;
    }
    text.iter().try_fold(0u64, |n, d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// Parses a complete head (ending with the empty line).
pub fn parse_head(head: &[u8]) -> Result<Request, Refusal> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(bad("incomplete request head")),
        Err(httparse::Error::TooManyHeaders) => return Err(too_large("too many headers")),
        Err(_) => return Err(bad("malformed request head")),
    }
    let (Some(method), Some(target), Some(version)) =
        (request.method, request.path, request.version)
    else {
        return Err(bad("malformed request line"));
    };
    let mut keep_alive = version == 1;
    let mut length: Option<u64> = None;
    let mut expect_continue = false;
    let mut range = None;
    let mut if_none_match = None;
    let mut if_range = None;
    let text = |value: &[u8]| String::from(String::from_utf8_lossy(value));
    for header in request.headers.iter() {
        if header.name.eq_ignore_ascii_case("range") {
            range = core::str::from_utf8(header.value)
                .ok()
                .and_then(parse_range);
        } else if header.name.eq_ignore_ascii_case("if-none-match") {
            if_none_match = Some(text(header.value));
        } else if header.name.eq_ignore_ascii_case("if-range") {
            if_range = Some(text(header.value));
        } else if header.name.eq_ignore_ascii_case("content-length") {
            let n = decimal(header.value).ok_or(bad("bad Content-Length"))?;
            if length.is_some_and(|l| l != n) {
                return Err(bad("conflicting Content-Length"));
            }
            length = Some(n);
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(bad(
                "Transfer-Encoding is not supported; send Content-Length",
            ));
        } else if header.name.eq_ignore_ascii_case("connection") {
            for token in header.value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    keep_alive = false;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    keep_alive = true;
                }
            }
        } else if header.name.eq_ignore_ascii_case("expect")
            && version == 1
            && header
                .value
                .trim_ascii()
                .eq_ignore_ascii_case(b"100-continue")
        {
            expect_continue = true;
        }
    }
    let body = length.unwrap_or(0);
    if body > MAX_BODY {
        return Err(too_large("body too large"));
    }
    // A query is not part of the path.
    let path = target.split_once('?').map_or(target, |(path, _)| path);
    let head_only = method == "HEAD";
    let route = route(if head_only { "GET" } else { method }, path, length)?;
    Ok(Request {
        route,
        keep_alive,
        body,
        expect_continue,
        head_only,
        range,
        if_none_match,
        if_range,
    })
}

/// What `method` on `path` (query stripped) asks for; `length` is the `Content-Length`
/// (`HEAD` is routed as `GET`).
fn route(method: &str, path: &str, length: Option<u64>) -> Result<Route, Refusal> {
    let get_only = |route: Route| {
        if method == "GET" {
            route
        } else {
            Route::MethodNotAllowed(GET)
        }
    };
    Ok(match (method, path) {
        ("GET", "/") => Route::Status,
        (_, "/") => Route::MethodNotAllowed(GET),
        ("POST", "/sink") if length.is_none() => {
            return Err(bad("POST /sink needs Content-Length"));
        }
        ("POST", "/sink") => Route::Sink,
        (_, "/sink") => Route::MethodNotAllowed("POST"),
        ("POST", "/discard") if length.is_none() => {
            return Err(bad("POST /discard needs Content-Length"));
        }
        ("POST", "/discard") => Route::Discard,
        (_, "/discard") => Route::MethodNotAllowed("POST"),
        // Without the slash, the same (a user types `/files` or `/kv` as often).
        (_, "/kv/" | "/kv") => get_only(Route::KvKeys),
        (_, "/files") => get_only(Route::File(file_path("")?)),
        (_, path) if path.starts_with("/blob/") => {
            let size = decimal(&path.as_bytes()["/blob/".len()..])
                .filter(|&n| n <= MAX_BLOB)
                .ok_or(bad("bad blob size"))?;
            get_only(Route::Blob(size))
        }
        (_, path) if let Some(raw) = path.strip_prefix("/files/") => {
            get_only(Route::File(file_path(raw)?))
        }
        (method, path) if let Some(raw) = path.strip_prefix("/kv/") => {
            let key = kv_key(raw)?;
            match method {
                "GET" => Route::KvGet(key),
                "PUT" => match length {
                    None => {
                        return Err(Refusal::length_required(
                            "PUT /kv/<key> needs Content-Length",
                        ));
                    }
                    Some(n) if usize::try_from(n).map_or(true, |n| n > MAX_VALUE) => {
                        return Err(too_large("value too large: at most 16384 bytes"));
                    }
                    Some(_) => Route::KvPut(key),
                },
                "DELETE" => Route::KvDelete(key),
                _ => Route::MethodNotAllowed("GET, HEAD, PUT, DELETE"),
            }
        }
        _ => Route::NotFound,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Request, Refusal> {
        parse_head(text.as_bytes())
    }

    #[test]
    fn routes_methods_and_keep_alive() {
        let r = parse("GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        assert_eq!((r.route, r.keep_alive, r.body), (Route::Status, true, 0));
        let r = parse("GET /blob/123 HTTP/1.0\r\n\r\n").unwrap();
        assert_eq!((r.route, r.keep_alive), (Route::Blob(123), false));
        let r = parse("GET /blob/0 HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").unwrap();
        assert_eq!((r.route, r.keep_alive), (Route::Blob(0), true));
        let r = parse("POST /sink HTTP/1.1\r\nContent-Length: 10\r\nConnection: close\r\n\r\n")
            .unwrap();
        assert_eq!((r.route, r.keep_alive, r.body), (Route::Sink, false, 10));
        let r = parse("POST /discard HTTP/1.1\r\nContent-Length: 10\r\n\r\n").unwrap();
        assert_eq!((r.route, r.keep_alive, r.body), (Route::Discard, true, 10));
        assert!(Route::Discard.reads_body());
        assert!(parse("POST /discard HTTP/1.1\r\n\r\n").is_err());
        assert_eq!(
            parse("POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\n").map(|r| (r.route, r.body)),
            Ok((Route::MethodNotAllowed("GET, HEAD"), 3))
        );
        assert_eq!(
            parse("GET /sink HTTP/1.1\r\n\r\n").map(|r| r.route),
            Ok(Route::MethodNotAllowed("POST"))
        );
        assert_eq!(
            parse("DELETE /blob/5 HTTP/1.1\r\n\r\n").map(|r| r.route),
            Ok(Route::MethodNotAllowed("GET, HEAD"))
        );
        assert_eq!(
            parse("GET /nothing HTTP/1.1\r\n\r\n").map(|r| r.route),
            Ok(Route::NotFound)
        );
        let r = parse("HEAD /blob/9 HTTP/1.1\r\nRange: bytes=2-\r\nIf-None-Match: \"x\"\r\nIf-Range: \"y\"\r\n\r\n")
            .unwrap();
        assert_eq!((r.route, r.head_only), (Route::Blob(9), true));
        assert_eq!(
            r.range,
            Some(ByteRange::From {
                first: 2,
                last: None
            })
        );
        assert_eq!(r.if_none_match.as_deref(), Some("\"x\""));
        assert_eq!(r.if_range.as_deref(), Some("\"y\""));
        assert_eq!(
            parse("HEAD /sink HTTP/1.1\r\n\r\n").map(|r| r.route),
            Ok(Route::MethodNotAllowed("POST"))
        );
        assert_eq!(
            parse("HEAD /kv/a%41 HTTP/1.1\r\n\r\n").map(|r| r.route),
            Ok(Route::KvGet("aA".into()))
        );
    }

    #[test]
    fn malformed_and_oversized_requests_are_refused() {
        for text in [
            "GARBAGE\r\n\r\n",
            "GET / HTTP/9.9\r\n\r\n",
            "GET / HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
            "GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
            "GET / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
            "GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            "POST /sink HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST /sink HTTP/1.1\r\n\r\n",
            "GET /blob/12x HTTP/1.1\r\n\r\n",
            "GET /blob/ HTTP/1.1\r\n\r\n",
            "GET /blob/4294967297 HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nBad Header: x\r\n\r\n",
        ] {
            assert_eq!(parse(text).map_err(|r| r.status), Err(400), "{text:?}");
        }
        assert_eq!(
            parse("POST /sink HTTP/1.1\r\nContent-Length: 1073741825\r\n\r\n")
                .map_err(|r| r.status),
            Err(413)
        );
        let many: String = (0..40).map(|i| format!("X-{i}: y\r\n")).collect();
        assert_eq!(
            parse(&format!("GET / HTTP/1.1\r\n{many}\r\n")).map_err(|r| r.status),
            Err(413)
        );
        // The same length twice is fine.
        assert!(
            parse("POST /sink HTTP/1.1\r\nContent-Length: 2\r\ncontent-length: 2\r\n\r\n").is_ok()
        );
    }
}
