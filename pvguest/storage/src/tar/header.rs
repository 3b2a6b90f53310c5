//! One 512-byte tar header block: checksum, octal (and GNU base-256) numbers, magic, path.
//!
//! Layout (POSIX ustar, with GNU's variant): name 0..100, mode 100..108, uid 108..116,
//! gid 116..124, size 124..136, mtime 136..148, chksum 148..156, typeflag 156, linkname
//! 157..257, magic 257..263 (`"ustar\0"`; GNU writes `"ustar "` then version `" \0"`),
//! version 263..265, uname, gname, devmajor, devminor, prefix 345..500 (ustar only: GNU keeps
//! other fields there).

use alloc::string::String;
use alloc::vec::Vec;

/// Bytes in a header block.
pub const BLOCK: usize = 512;

const NAME: core::ops::Range<usize> = 0..100;
const SIZE: core::ops::Range<usize> = 124..136;
const CHKSUM: core::ops::Range<usize> = 148..156;
const TYPEFLAG: usize = 156;
const MAGIC: core::ops::Range<usize> = 257..265;
const PREFIX: core::ops::Range<usize> = 345..500;

/// What is wrong with a header block (positioned by the caller).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderError {
    /// The stored checksum differs from the block's sum.
    BadChecksum {
        /// The checksum field's value.
        stored: u32,
        /// The sum of the block with the field as spaces.
        computed: u32,
    },
    /// A numeric field is not octal (or GNU base-256) or does not fit.
    BadNumber(&'static str),
    /// The magic is neither POSIX ustar nor GNU's.
    BadMagic,
    /// The path is empty, not UTF-8, or has a NUL inside.
    BadPath,
}

/// The archive format a header declares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Magic {
    /// POSIX ustar (`"ustar\0" "00"`): the prefix field extends the name.
    Ustar,
    /// GNU (`"ustar  \0"`): long names come in `L` entries, no prefix field.
    Gnu,
}

/// A header that passed its checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// The path as stored (prefix joined), not yet normalised.
    pub path: String,
    /// The type flag byte (`b'0'`/`0` file, `b'5'` directory, `b'L'` GNU long name, ...).
    pub typeflag: u8,
    /// Size of the data that follows, in bytes.
    pub size: u64,
    /// The format.
    pub magic: Magic,
}

/// Whether the block is all zeros (the end-of-archive marker).
pub fn is_zero(block: &[u8; BLOCK]) -> bool {
    block.iter().all(|&b| b == 0)
}

/// Parses a numeric field: octal digits, optionally led by spaces and ended by NUL or space
/// (and only those after), or GNU base-256 (first byte's top bit set, big-endian, positive).
/// An empty field is zero.
pub fn parse_number(field: &[u8], name: &'static str) -> Result<u64, HeaderError> {
    let bad = HeaderError::BadNumber(name);
    if let Some((&first, rest)) = field.split_first()
        && first & 0x80 != 0
    {
        // Base-256: 0x80 marks a positive number; 0xff (negative) is refused.
        if first != 0x80 {
            return Err(bad);
        }
        let mut value: u64 = 0;
        for &b in rest {
            value = value
                .checked_mul(256)
                .and_then(|v| v.checked_add(u64::from(b)))
                .ok_or(bad)?;
        }
        return Ok(value);
    }
    let mut i = 0;
    while i < field.len() && field[i] == b' ' {
        i += 1;
    }
    let mut value: u64 = 0;
    while i < field.len() && (b'0'..=b'7').contains(&field[i]) {
        value = value
            .checked_mul(8)
            .and_then(|v| v.checked_add(u64::from(field[i] - b'0')))
            .ok_or(bad)?;
        i += 1;
    }
    if field[i..].iter().all(|&b| b == 0 || b == b' ') {
        Ok(value)
    } else {
        Err(bad)
    }
}

/// The block's checksums with the checksum field as spaces: (unsigned, signed) sums (old tars
/// summed signed bytes; both are accepted, as GNU tar does).
pub fn checksums(block: &[u8; BLOCK]) -> (u32, u32) {
    let mut unsigned: u32 = 0;
    let mut signed: i32 = 0;
    for (i, &b) in block.iter().enumerate() {
        let b = if CHKSUM.contains(&i) { b' ' } else { b };
        unsigned += u32::from(b);
        signed += i32::from(b.cast_signed());
    }
    // Old tars summed signed bytes; the header field is compared as the same bits.
    (unsigned, signed.cast_unsigned())
}

/// Bytes of a NUL-terminated field up to its first NUL.
fn cstr(field: &[u8]) -> &[u8] {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    &field[..end]
}

/// Checks and parses a non-zero header block.
pub fn parse(block: &[u8; BLOCK]) -> Result<Header, HeaderError> {
    let stored = parse_number(&block[CHKSUM], "chksum")?;
    let (unsigned, signed) = checksums(block);
    if stored != u64::from(unsigned) && stored != u64::from(signed) {
        return Err(HeaderError::BadChecksum {
            stored: u32::try_from(stored).unwrap_or(u32::MAX),
            computed: unsigned,
        });
    }
    let magic = match &block[MAGIC] {
        b"ustar\x0000" => Magic::Ustar,
        b"ustar  \x00" => Magic::Gnu,
        _ => return Err(HeaderError::BadMagic),
    };
    let size = parse_number(&block[SIZE], "size")?;
    let name = cstr(&block[NAME]);
    let mut path = Vec::with_capacity(256);
    if magic == Magic::Ustar {
        let prefix = cstr(&block[PREFIX]);
        if !prefix.is_empty() {
            path.extend_from_slice(prefix);
            path.push(b'/');
        }
    }
    path.extend_from_slice(name);
    let path = path_from_bytes(path)?;
    Ok(Header {
        path,
        typeflag: block[TYPEFLAG],
        size,
        magic,
    })
}

/// A path from raw bytes: non-empty UTF-8 without NUL.
pub fn path_from_bytes(bytes: Vec<u8>) -> Result<String, HeaderError> {
    if bytes.is_empty() || bytes.contains(&0) {
        return Err(HeaderError::BadPath);
    }
    String::from_utf8(bytes).map_err(|_| HeaderError::BadPath)
}

/// The canonical form of a path for lookups: leading `./` and `/` and trailing `/` removed.
pub fn normalise(path: &str) -> &str {
    let mut p = path;
    loop {
        if let Some(rest) = p.strip_prefix("./") {
            p = rest;
        } else if let Some(rest) = p.strip_prefix('/') {
            p = rest;
        } else {
            break;
        }
    }
    let p = p.trim_end_matches('/');
    if p == "." { "" } else { p }
}

#[cfg(test)]
pub(crate) mod build {
    //! Builds header blocks for tests.
    use super::*;

    /// A ustar header for `name` (at most 100 bytes) of `typeflag` and `size`, checksum set.
    pub fn ustar(name: &[u8], typeflag: u8, size: u64) -> [u8; BLOCK] {
        let mut b = [0u8; BLOCK];
        b[..name.len()].copy_from_slice(name);
        b[100..107].copy_from_slice(b"0000644");
        let s = alloc::format!("{size:011o}");
        b[SIZE.start..SIZE.start + 11].copy_from_slice(s.as_bytes());
        b[TYPEFLAG] = typeflag;
        b[MAGIC].copy_from_slice(b"ustar\x0000");
        fix_checksum(&mut b);
        b
    }

    /// Sets the checksum field to the block's sum.
    pub fn fix_checksum(b: &mut [u8; BLOCK]) {
        let (sum, _) = checksums(b);
        let s = alloc::format!("{sum:06o}\0 ");
        b[CHKSUM].copy_from_slice(s.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::build::*;
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn numbers() {
        assert_eq!(parse_number(b"00000000017\0", "size"), Ok(15));
        assert_eq!(parse_number(b"   17 \0\0", "size"), Ok(15));
        assert_eq!(parse_number(b"\0\0\0", "size"), Ok(0));
        assert_eq!(
            parse_number(b"0000008\0", "size"),
            Err(HeaderError::BadNumber("size"))
        );
        assert_eq!(
            parse_number(b"12 3\0", "size"),
            Err(HeaderError::BadNumber("size"))
        );
        assert_eq!(
            parse_number(&[0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0], "size"),
            Ok(256)
        );
        assert_eq!(
            parse_number(&[0xff; 12], "size"),
            Err(HeaderError::BadNumber("size"))
        );
        assert_eq!(
            parse_number(
                &[
                    0x80, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3
                ],
                "size"
            ),
            Err(HeaderError::BadNumber("size"))
        );
    }

    #[test]
    fn good_header_parses_and_prefix_joins() {
        let mut b = ustar(b"file.txt", b'0', 1234);
        b[PREFIX.start..PREFIX.start + 3].copy_from_slice(b"dir");
        fix_checksum(&mut b);
        let h = parse(&b).expect("valid");
        assert_eq!(h.path, "dir/file.txt");
        assert_eq!(h.size, 1234);
        assert_eq!(h.typeflag, b'0');
    }

    #[test]
    fn bad_magic_and_path() {
        let mut b = ustar(b"x", b'0', 0);
        b[257] = b'X';
        fix_checksum(&mut b);
        assert_eq!(parse(&b), Err(HeaderError::BadMagic));
        let b = ustar(b"", b'0', 0);
        assert_eq!(parse(&b), Err(HeaderError::BadPath));
        let b = ustar(&[0xc3, 0x28], b'0', 0);
        assert_eq!(parse(&b), Err(HeaderError::BadPath));
    }

    #[test]
    fn normalising() {
        assert_eq!(normalise("./a/b/"), "a/b");
        assert_eq!(normalise("/./a"), "a");
        assert_eq!(normalise("./"), "");
        assert_eq!(normalise("."), "");
    }

    proptest! {
        #[test]
        fn octal_round_trips(v in 0u64..(1 << 33)) {
            let s = alloc::format!("{v:011o}\0");
            prop_assert_eq!(parse_number(s.as_bytes(), "size"), Ok(v));
        }

        #[test]
        fn any_block_parses_or_errors(bytes in proptest::collection::vec(any::<u8>(), BLOCK)) {
            let mut b = [0u8; BLOCK];
            b.copy_from_slice(&bytes);
            let _ = parse(&b);
            // With a fixed-up checksum the rest of the parser sees hostile fields too.
            fix_checksum(&mut b);
            match parse(&b) {
                Ok(h) => prop_assert!(!h.path.is_empty()),
                Err(e) => {
                    let checksum = matches!(e, HeaderError::BadChecksum { .. });
                    prop_assert!(!checksum);
                }
            }
        }

        #[test]
        fn any_single_byte_change_is_detected(
            at in 0usize..BLOCK, new in any::<u8>(), size in 0u64..1_000_000
        ) {
            prop_assume!(!CHKSUM.contains(&at));
            let mut b = ustar(b"some/file", b'0', size);
            prop_assume!(b[at] != new);
            b[at] = new;
            let detected = matches!(parse(&b), Err(HeaderError::BadChecksum { .. }));
            prop_assert!(detected);
        }
    }
}
