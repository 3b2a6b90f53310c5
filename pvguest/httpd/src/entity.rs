//! What the answers of `/files` and `/blob` say about their bytes: one byte range (RFC 9110
//! §14; a request for several ranges is answered whole), the strong ETag of a file, and the
//! conditions `If-None-Match` and `If-Range`.

use alloc::format;
use alloc::string::String;

/// One range of `Range: bytes=...`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ByteRange {
    /// `first-last` or `first-`.
    From {
        /// The first byte.
        first: u64,
        /// The last byte (inclusive), or to the end.
        last: Option<u64>,
    },
    /// `-n`: the last `n` bytes.
    Suffix(u64),
}

/// A decimal number of at most 19 digits.
fn decimal(text: &str) -> Option<u64> {
    if text.is_empty() || text.len() > 19 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// The one byte range a `Range` header value asks for; None if it is anything else (another
/// unit, several ranges, a malformed one): the header is then ignored and the whole
/// representation answered, as RFC 9110 §14.2 allows.
pub fn parse_range(value: &str) -> Option<ByteRange> {
    let (unit, spec) = value.trim().split_once('=')?;
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return None;
    }
    let spec = spec.trim();
    if spec.contains(',') {
        return None;
    }
    let (first, last) = spec.split_once('-')?;
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        return decimal(last).map(ByteRange::Suffix);
    }
    let first = decimal(first)?;
    let last = if last.is_empty() {
        None
    } else {
        Some(decimal(last).filter(|&l| l >= first)?)
    };
    Some(ByteRange::From { first, last })
}

impl ByteRange {
    /// The bytes `start..end` it selects of a `size`-byte representation; None if none
    /// (`416 Range Not Satisfiable`).
    pub fn resolve(self, size: u64) -> Option<(u64, u64)> {
        match self {
            Self::From { first, .. } if first >= size => None,
            Self::From { first, last } => {
                Some((first, last.map_or(size, |l| l.saturating_add(1).min(size))))
            }
            Self::Suffix(0) => None,
            Self::Suffix(_) if size == 0 => None,
            Self::Suffix(n) => Some((size - n.min(size), size)),
        }
    }
}

/// FNV-1a, 64 bits.
fn fnv1a(hash: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(hash, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The strong ETag of the archive's file at `path`, `size` bytes, `version` from
/// [`crate::Backend::file_version`]: `"<size in hex>-<FNV-1a 64 of path, size and version, in
/// hex>"`. Cheap (no byte of the file is read) and strong as long as the backend's version
/// changes whenever the file's bytes may have.
pub fn file_etag(path: &str, size: u64, version: u64) -> String {
    let mut hash = fnv1a(0xcbf2_9ce4_8422_2325, path.as_bytes());
    hash = fnv1a(hash, &[0]);
    hash = fnv1a(hash, &size.to_le_bytes());
    hash = fnv1a(hash, &version.to_le_bytes());
    format!("\"{size:x}-{hash:016x}\"")
}

/// Whether an `If-None-Match` value matches `etag`: `*`, or any tag of the list by the weak
/// comparison (RFC 9110 §13.1.2: a `W/` prefix is ignored).
pub fn none_match(value: &str, etag: &str) -> bool {
    let value = value.trim();
    value == "*"
        || value.split(',').any(|tag| {
            let tag = tag.trim();
            tag.strip_prefix("W/").unwrap_or(tag) == etag
        })
}

/// Whether an `If-Range` value lets a range be answered: it must be this strong `etag`
/// exactly (a date never matches: the service sends no `Last-Modified`).
pub fn if_range_holds(value: &str, etag: Option<&str>) -> bool {
    etag.is_some_and(|etag| value.trim() == etag)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ranges_parse_and_resolve() {
        let from = |first, last| Some(ByteRange::From { first, last });
        assert_eq!(parse_range("bytes=0-99"), from(0, Some(99)));
        assert_eq!(parse_range(" Bytes = 5- "), from(5, None));
        assert_eq!(parse_range("bytes=-10"), Some(ByteRange::Suffix(10)));
        for ignored in [
            "bytes=0-1,4-5",
            "bytes=5-4",
            "bytes=a-",
            "bytes=-",
            "bytes=1",
            "items=0-1",
            "bytes 0-1",
            "bytes=99999999999999999999-",
        ] {
            assert_eq!(parse_range(ignored), None, "{ignored}");
        }
        let r = |text| parse_range(text).unwrap().resolve(100);
        assert_eq!(r("bytes=0-99"), Some((0, 100)));
        assert_eq!(r("bytes=0-1000"), Some((0, 100)));
        assert_eq!(r("bytes=99-"), Some((99, 100)));
        assert_eq!(r("bytes=100-"), None);
        assert_eq!(r("bytes=-1"), Some((99, 100)));
        assert_eq!(r("bytes=-500"), Some((0, 100)));
        assert_eq!(r("bytes=-0"), None);
        assert_eq!(parse_range("bytes=-5").unwrap().resolve(0), None);
        assert_eq!(parse_range("bytes=0-").unwrap().resolve(0), None);
        assert_eq!(r("bytes=0-9999999999999999999"), Some((0, 100)));
    }

    #[test]
    fn etags_and_conditions() {
        let tag = file_etag("a/b.txt", 300, 7);
        assert!(
            tag.starts_with("\"12c-") && tag.ends_with('"') && tag.len() == 22,
            "{tag}"
        );
        assert_ne!(tag, file_etag("a/b.txt", 300, 8));
        assert_ne!(tag, file_etag("a/b.txu", 300, 7));
        assert_ne!(tag, file_etag("a/b.txt", 301, 7));
        assert!(none_match(&tag, &tag));
        assert!(none_match("*", &tag));
        assert!(none_match(&format!("\"x\", W/{tag}"), &tag));
        assert!(!none_match("\"x\"", &tag));
        assert!(if_range_holds(&tag, Some(&tag)));
        assert!(!if_range_holds(&format!("W/{tag}"), Some(&tag)));
        assert!(!if_range_holds("Sun, 06 Nov 1994 08:49:37 GMT", Some(&tag)));
        assert!(!if_range_holds(&tag, None));
    }

    proptest! {
        /// Whatever the header says, a resolved range lies inside the representation and is
        /// not empty.
        #[test]
        fn resolved_ranges_are_inside(value in "(bytes|BYTES|x)=[0-9]{0,3}-[0-9]{0,3}(,[0-9]-)?", size in 0u64..2000) {
            if let Some((start, end)) = parse_range(&value).and_then(|r| r.resolve(size)) {
                prop_assert!(start < end && end <= size);
            }
        }
    }
}
