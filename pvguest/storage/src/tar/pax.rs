//! POSIX pax extended headers (`x`): records `"<len> <key>=<value>\n"`, of which `path` and
//! `size` change the next entry; other keys (times, owners, ...) are checked for form and
//! ignored.

use alloc::string::String;

/// What an extended header changes in the entry that follows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Overrides {
    /// The entry's path, replacing the header's.
    pub path: Option<String>,
    /// The entry's size, replacing the header's.
    pub size: Option<u64>,
}

/// A malformed extended header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadPax;

/// Parses an extended header's data.
pub fn parse(mut data: &[u8]) -> Result<Overrides, BadPax> {
    let mut out = Overrides::default();
    // Trailing NULs pad some writers' data.
    while let Some((&0, rest)) = data.split_last() {
        data = rest;
    }
    while !data.is_empty() {
        let space = data.iter().position(|&b| b == b' ').ok_or(BadPax)?;
        let len: usize = decimal(&data[..space])
            .and_then(|n| usize::try_from(n).ok())
            .ok_or(BadPax)?;
        if len <= space + 1 || len > data.len() || data[len - 1] != b'\n' {
            return Err(BadPax);
        }
        let record = &data[space + 1..len - 1];
        let eq = record.iter().position(|&b| b == b'=').ok_or(BadPax)?;
        let (key, value) = (&record[..eq], &record[eq + 1..]);
        match key {
            b"path" => {
                let path = core::str::from_utf8(value).map_err(|_| BadPax)?;
                if path.is_empty() || path.contains('\0') {
                    return Err(BadPax);
                }
                out.path = Some(String::from(path));
            }
            b"size" => out.size = Some(decimal(value).ok_or(BadPax)?),
            _ => {}
        }
        data = &data[len..];
    }
    Ok(out)
}

/// A non-empty run of decimal digits that fits a `u64`.
fn decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| {
        if d.is_ascii_digit() {
            n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn path_and_size_are_taken_others_ignored() {
        let data = b"30 mtime=1795803868.276118639\n18 path=a/b/c.txt\n12 size=123\n\0\0";
        assert_eq!(
            parse(data),
            Ok(Overrides {
                path: Some(String::from("a/b/c.txt")),
                size: Some(123)
            })
        );
    }

    #[test]
    fn malformed_records_are_refused() {
        for bad in [
            &b"99 path=x\n"[..],
            b"11 path=x\n",
            b"x path=abc\n",
            b"9 pathx\n\n",
            b"11 size=1a\n",
            b"8 path=\n",
        ] {
            assert_eq!(parse(bad), Err(BadPax), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn hostile_data_never_panics(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse(&data);
        }

        #[test]
        fn well_formed_paths_round_trip(path in "[a-z/._-]{1,200}") {
            let body = alloc::format!(" path={path}\n");
            // The length counts its own digits.
            let mut len = body.len() + 1;
            while alloc::format!("{len}").len() + body.len() != len {
                len += 1;
            }
            let record = alloc::format!("{len}{body}");
            prop_assert_eq!(parse(record.as_bytes()).map(|o| o.path), Ok(Some(path)));
        }
    }
}
