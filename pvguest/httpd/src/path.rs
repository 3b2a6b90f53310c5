//! The paths of the storage routes: a `/files/` path and a `/kv/` key percent-decoded and
//! checked, and a file's `Content-Type` by its extension.

use crate::MAX_KEY;
use crate::request::Refusal;
use alloc::string::String;
use alloc::vec::Vec;

/// Why a `/files/` path is refused (`400`).
const BAD_ESCAPE: &str = "bad path: a `%` must be followed by two hex digits";
const NUL: &str = "bad path: it contains NUL";
const DOT_DOT: &str = "bad path: a `..` segment";
const NOT_UTF8: &str = "bad path: not UTF-8 once decoded";
const LEADING_SLASH: &str = "bad path: it starts with `/`";

/// The file a `GET /files/<raw>` asks for: `raw` (query already stripped) percent-decoded,
/// refused (`400`) for a bad escape, a NUL, a `..` segment, a leading `/` or text that is not
/// UTF-8; `index.html` appended to an empty path or one ending in `/`.
pub fn file_path(raw: &str) -> Result<String, Refusal> {
    let mut bytes = percent_decode(raw).ok_or(Refusal::bad(BAD_ESCAPE))?;
    if bytes.contains(&0) {
        return Err(Refusal::bad(NUL));
    }
    if bytes.split(|&b| b == b'/').any(|segment| segment == b"..") {
        return Err(Refusal::bad(DOT_DOT));
    }
    if bytes.first() == Some(&b'/') {
        return Err(Refusal::bad(LEADING_SLASH));
    }
    if bytes.is_empty() || bytes.last() == Some(&b'/') {
        bytes.extend_from_slice(b"index.html");
    }
    String::from_utf8(bytes).map_err(|_| Refusal::bad(NOT_UTF8))
}

/// `raw` percent-decoded (RFC 3986 §2.1: `%` and two hex digits, either case, stand for one
/// byte); None if a `%` is not followed by two hex digits.
pub fn percent_decode(raw: &str) -> Option<Vec<u8>> {
    let raw = raw.as_bytes();
    let mut bytes = Vec::with_capacity(raw.len() + "index.html".len());
    let mut i = 0;
    while let Some(&b) = raw.get(i) {
        if b == b'%' {
            let high = raw.get(i + 1).and_then(|&h| hex_digit(h))?;
            let low = raw.get(i + 2).and_then(|&l| hex_digit(l))?;
            bytes.push((high << 4) | low);
            i += 3;
        } else {
            bytes.push(b);
            i += 1;
        }
    }
    Some(bytes)
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// What a key must be (the `400` reason).
pub const KEY_RULE: &str =
    "bad key: 1 to 128 bytes of A-Z a-z 0-9 - . _ ~ once percent-decoded (no `/`)";
const KEY_ESCAPE: &str = "bad key: a `%` must be followed by two hex digits";
const KEY_TOO_LONG: &str = "key too long: at most 128 bytes";
const _: () = assert!(MAX_KEY == 128, "the key messages name the limit");

/// A `/kv/<key>` key: `raw` percent-decoded (RFC 3986), then 1..=[`MAX_KEY`] bytes of
/// `A-Z a-z 0-9 - . _ ~`; longer is refused with `413`, anything else (a bad escape
/// included) with `400`.
pub fn kv_key(raw: &str) -> Result<String, Refusal> {
    let key = percent_decode(raw).ok_or(Refusal::bad(KEY_ESCAPE))?;
    if key.len() > MAX_KEY {
        return Err(Refusal::too_large(KEY_TOO_LONG));
    }
    let allowed = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~');
    if key.is_empty() || !key.iter().all(allowed) {
        return Err(Refusal::bad(KEY_RULE));
    }
    // ASCII only, by the rule just checked.
    String::from_utf8(key).map_err(|_| Refusal::bad(KEY_RULE))
}

/// The `Content-Type` of a file, by the extension of its last segment (case-insensitive).
pub fn content_type(path: &str) -> &'static str {
    let name = path.rsplit('/').next().unwrap_or(path);
    let Some((_, extension)) = name.rsplit_once('.') else {
        return "application/octet-stream";
    };
    let is = |e: &str| extension.eq_ignore_ascii_case(e);
    if is("html") || is("htm") {
        "text/html; charset=utf-8"
    } else if is("css") {
        "text/css; charset=utf-8"
    } else if is("js") {
        "text/javascript; charset=utf-8"
    } else if is("json") {
        "application/json"
    } else if is("txt") || is("md") || is("sha256") {
        "text/plain; charset=utf-8"
    } else if is("svg") {
        "image/svg+xml"
    } else if is("png") {
        "image/png"
    } else if is("jpg") || is("jpeg") {
        "image/jpeg"
    } else if is("gif") {
        "image/gif"
    } else if is("ico") {
        "image/vnd.microsoft.icon"
    } else if is("wasm") {
        "application/wasm"
    } else if is("pdf") {
        "application/pdf"
    } else if is("xml") {
        "application/xml"
    } else {
        "application/octet-stream"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn status(r: Result<impl Sized, Refusal>) -> Result<(), u16> {
        r.map(|_| ()).map_err(|r| r.status)
    }

    #[test]
    fn file_paths_are_decoded_and_checked() {
        assert_eq!(file_path("a/b.txt").as_deref(), Ok("a/b.txt"));
        assert_eq!(file_path("").as_deref(), Ok("index.html"));
        assert_eq!(file_path("docs/").as_deref(), Ok("docs/index.html"));
        assert_eq!(file_path("docs%2F").as_deref(), Ok("docs/index.html"));
        assert_eq!(file_path("a%20b%2fc%7E").as_deref(), Ok("a b/c~"));
        assert_eq!(file_path("%C3%A9t%c3%a9").as_deref(), Ok("été"));
        assert_eq!(file_path("a..b/..c/d..").as_deref(), Ok("a..b/..c/d.."));
        assert_eq!(file_path("./x").as_deref(), Ok("./x"));
        for (raw, reason) in [
            ("%", BAD_ESCAPE),
            ("a%2", BAD_ESCAPE),
            ("a%zz", BAD_ESCAPE),
            ("a%+1b", BAD_ESCAPE),
            ("a%00b", NUL),
            ("..", DOT_DOT),
            ("a/../b", DOT_DOT),
            ("a/..", DOT_DOT),
            ("%2e%2E/etc", DOT_DOT),
            ("a/%2e.", DOT_DOT),
            ("/etc/passwd", LEADING_SLASH),
            ("%2Fetc", LEADING_SLASH),
            ("%ff", NOT_UTF8),
        ] {
            let refusal = file_path(raw).expect_err(raw);
            assert_eq!((refusal.status, refusal.reason), (400, reason), "{raw:?}");
        }
    }

    #[test]
    fn keys_are_decoded_then_follow_the_rule() {
        assert_eq!(kv_key("Az09-._~").as_deref(), Ok("Az09-._~"));
        assert_eq!(kv_key("a%41%7e%2D").as_deref(), Ok("aA~-"));
        let longest = "k".repeat(MAX_KEY);
        assert_eq!(status(kv_key(&longest)), Ok(()));
        assert_eq!(status(kv_key(&"%6B".repeat(MAX_KEY))), Ok(()));
        assert_eq!(status(kv_key(&"k".repeat(MAX_KEY + 1))), Err(413));
        assert_eq!(status(kv_key(&"%6b".repeat(MAX_KEY + 1))), Err(413));
        for bad in [
            "", "a/b", "a%2Fb", "a%20b", "a b", "a+b", "é", "%C3%A9", "a:b", "a\0", "a%00",
        ] {
            let refusal = kv_key(bad).expect_err(bad);
            assert_eq!((refusal.status, refusal.reason), (400, KEY_RULE), "{bad:?}");
        }
        for bad in ["%", "a%4", "a%zz"] {
            let refusal = kv_key(bad).expect_err(bad);
            assert_eq!(
                (refusal.status, refusal.reason),
                (400, KEY_ESCAPE),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn content_types_by_extension() {
        for (path, expected) in [
            ("index.html", "text/html; charset=utf-8"),
            ("a/B.HTM", "text/html; charset=utf-8"),
            ("s.css", "text/css; charset=utf-8"),
            ("app.js", "text/javascript; charset=utf-8"),
            ("d.json", "application/json"),
            ("r.txt", "text/plain; charset=utf-8"),
            ("README.md", "text/plain; charset=utf-8"),
            ("x.tar.sha256", "text/plain; charset=utf-8"),
            ("i.svg", "image/svg+xml"),
            ("i.png", "image/png"),
            ("i.jpg", "image/jpeg"),
            ("i.jpeg", "image/jpeg"),
            ("i.gif", "image/gif"),
            ("favicon.ico", "image/vnd.microsoft.icon"),
            ("m.wasm", "application/wasm"),
            ("p.pdf", "application/pdf"),
            ("f.xml", "application/xml"),
            ("x.tar", "application/octet-stream"),
            ("Makefile", "application/octet-stream"),
            ("dir.html/file", "application/octet-stream"),
        ] {
            assert_eq!(content_type(path), expected, "{path}");
        }
    }

    proptest! {
        /// Whatever the client writes, a path that is accepted holds no NUL, no `..` segment
        /// and no leading `/`, and does not end in `/`.
        #[test]
        fn accepted_paths_are_safe(raw in "(/|[.]|[.][.]|%2[eEfF]|%00|%|%4|a|b|%zz){0,12}") {
            if let Ok(path) = file_path(&raw) {
                prop_assert!(!path.contains('\0'));
                prop_assert!(!path.split('/').any(|segment| segment == ".."));
                prop_assert!(!path.starts_with('/'));
                prop_assert!(!path.ends_with('/') && !path.is_empty());
            }
        }

        /// Percent-encoding every byte of a path decodes back to it.
        #[test]
        fn escapes_decode(path in "[a-z0-9é _.-]{1,20}(/[a-z0-9é _.-]{1,20}){0,3}") {
            prop_assume!(!path.split('/').any(|segment| segment == ".."));
            let encoded: String = path.bytes().map(|b| alloc::format!("%{b:02X}")).collect();
            prop_assert_eq!(file_path(&encoded), Ok(path));
        }
    }
}
