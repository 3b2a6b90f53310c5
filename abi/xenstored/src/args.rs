//! Request payload splitting, as C xenstored's `onearg`, `get_strings`, `xs_count_strings`
//! and libc's `atoi` see a payload.

use alloc::vec::Vec;

/// The payload's only argument: it must hold exactly one nul, at its end (C `onearg`).
pub(crate) fn onearg(payload: &[u8]) -> Option<&[u8]> {
    let (&last, body) = payload.split_last()?;
    (last == 0 && !body.contains(&0)).then_some(body)
}

/// The nul-terminated strings of the payload, without their nuls; bytes after the last nul are
/// ignored (C `get_strings`).
pub(crate) fn strings(payload: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = payload;
    while let Some(end) = rest.iter().position(|&b| b == 0) {
        out.push(&rest[..end]);
        rest = &rest[end + 1..];
    }
    out
}

/// The number of nuls in the payload (C `xs_count_strings`).
pub(crate) fn count_strings(payload: &[u8]) -> usize {
    payload.iter().filter(|&&b| b == 0).count()
}

/// libc `atoi` on a C string: leading white space, an optional sign, decimal digits; stops at
/// the first other byte; 0 when there are no digits. Overflow wraps (glibc computes in `long`
/// and truncates to `int`).
pub(crate) fn atoi(text: &[u8]) -> i32 {
    let mut rest = text;
    while let Some((&b, tail)) = rest.split_first() {
        if !matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c) {
            break;
        }
        rest = tail;
    }
    let negative = match rest.first() {
        Some(b'-') => {
            rest = &rest[1..];
            true
        }
        Some(b'+') => {
            rest = &rest[1..];
            false
        }
        _ => false,
    };
    let mut value: i64 = 0;
    for &d in rest.iter().take_while(|d| d.is_ascii_digit()) {
        value = value.wrapping_mul(10).wrapping_add(i64::from(d - b'0'));
    }
    let value = if negative {
        value.wrapping_neg()
    } else {
        value
    };
    // C's atoi keeps the low 32 bits of what it parsed: so do we, on purpose.
    #[allow(clippy::cast_possible_truncation)]
    let low = value as i32;
    low
}

/// Text as UTF-8 (paths and tokens); `None` for other bytes.
pub(crate) fn text(bytes: &[u8]) -> Option<&str> {
    core::str::from_utf8(bytes).ok()
}
