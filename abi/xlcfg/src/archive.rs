//! The archive xtask hands hv as its one PVH module: domain configs and the kernels they name.
//!
//! Layout (all integers little-endian, every entry header and every data start 8-aligned
//! relative to the archive's start):
//!
//! ```text
//! header  [u8; 8] MAGIC, u32 entry count, u32 zero
//! entry   u8 kind (1 config, 2 file), [u8; 3] zero, u32 name length, u64 data length,
//!         name (UTF-8, no NUL), zero padding to 8, data, zero padding to 8
//! ```
//!
//! xtask writes it ([`write()`]); hv reads it ([`Archive::parse`]), which checks every entry
//! before anything is used, so that a bad archive is one error and never a panic. A config
//! entry's name is the config file's absolute path (its directory is where relative paths in
//! it resolve: [`crate::dir_of`]); a file entry's name is exactly the `kernel` string
//! [`crate::parse`] returned for a config.

use alloc::vec::Vec;
use core::fmt;

/// The first 8 bytes of every archive.
pub const MAGIC: [u8; 8] = *b"PVXARC\0\x01";

/// The most entries an archive may hold.
pub const MAX_ENTRIES: u32 = 64;

/// The header's size: magic, count, zero.
const HEADER_LEN: usize = 16;
/// An entry header's size: kind, 3 zero bytes, name length, data length.
const ENTRY_HEADER_LEN: usize = 16;
/// The alignment of entry headers and data.
const ALIGN: usize = 8;

/// The kind byte of a config entry.
const KIND_CONFIG: u8 = 1;
/// The kind byte of a file entry.
const KIND_FILE: u8 = 2;

/// What an entry holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A domain config in xl.cfg syntax (kind byte 1).
    Config,
    /// A file a config names, such as a kernel (kind byte 2).
    File,
}

impl Kind {
    /// The kind byte written for it.
    fn byte(self) -> u8 {
        match self {
            Self::Config => KIND_CONFIG,
            Self::File => KIND_FILE,
        }
    }

    /// The kind a byte stands for.
    fn from_byte(b: u8) -> Option<Self> {
        match b {
            KIND_CONFIG => Some(Self::Config),
            KIND_FILE => Some(Self::File),
            _ => None,
        }
    }
}

/// One entry of a parsed archive, borrowing from its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry<'a> {
    /// What it holds.
    pub kind: Kind,
    /// Its name: a config's absolute path, or the path a config's `kernel` names.
    pub name: &'a str,
    /// Its contents.
    pub data: &'a [u8],
}

/// What is wrong with an archive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArchiveError {
    /// It does not start with [`MAGIC`].
    BadMagic,
    /// Its header counts more entries than [`MAX_ENTRIES`].
    TooManyEntries(u32),
    /// Entry `entry` (0-based; 0 also when the header itself is cut short) runs past the end.
    Truncated {
        /// The entry's index.
        entry: u32,
    },
    /// Entry `entry` has a kind byte that is neither config (1) nor file (2).
    BadKind {
        /// The entry's index.
        entry: u32,
        /// The kind byte found.
        kind: u8,
    },
    /// Entry `entry`'s name is not UTF-8.
    BadName {
        /// The entry's index.
        entry: u32,
    },
}

impl fmt::Display for ArchiveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadMagic => write!(f, "not a domain archive (no PVXARC magic)"),
            Self::TooManyEntries(n) => {
                write!(f, "the archive counts {n} entries, more than {MAX_ENTRIES}")
            }
            Self::Truncated { entry } => {
                write!(f, "entry {entry} runs past the end of the archive")
            }
            Self::BadKind { entry, kind } => write!(
                f,
                "entry {entry} has kind {kind}, neither config (1) nor file (2)"
            ),
            Self::BadName { entry } => write!(f, "entry {entry}'s name is not UTF-8"),
        }
    }
}

/// Whether `bytes` start with the archive's [`MAGIC`] (nothing else is checked).
pub fn is_archive(bytes: &[u8]) -> bool {
    bytes.starts_with(&MAGIC)
}

/// A checked archive: every entry lies inside the bytes, has a known kind and a UTF-8 name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Archive<'a> {
    /// The entries, in archive order.
    entries: Vec<Entry<'a>>,
}

/// `n` rounded up to [`ALIGN`], or None on overflow.
fn align_up(n: usize) -> Option<usize> {
    n.checked_add(ALIGN - 1).map(|m| m & !(ALIGN - 1))
}

/// `bytes[at..at + N]` as an array, or None if it does not fit.
fn array<const N: usize>(bytes: &[u8], at: usize) -> Option<[u8; N]> {
    bytes.get(at..at.checked_add(N)?)?.try_into().ok()
}

impl<'a> Archive<'a> {
    /// Checks every entry of `bytes` (bounds, kinds, names, the count) and returns the
    /// archive, or the first thing wrong. Never panics, whatever the bytes.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, ArchiveError> {
        let mut entries = Vec::new();
        Self::walk(bytes, |e| entries.push(e))?;
        Ok(Self { entries })
    }

    /// The number of config entries in `bytes`, checked as [`Self::parse`] checks them but
    /// without allocating (hv sizes its heap by it before it has one).
    pub fn config_count(bytes: &'a [u8]) -> Result<u32, ArchiveError> {
        let mut configs = 0;
        Self::walk(bytes, |e| configs += u32::from(e.kind == Kind::Config))?;
        Ok(configs)
    }

    /// Checks the header and every entry in order, handing each to `each`; the first thing
    /// wrong stops the walk.
    fn walk(bytes: &'a [u8], mut each: impl FnMut(Entry<'a>)) -> Result<(), ArchiveError> {
        if !is_archive(bytes) {
            return Err(ArchiveError::BadMagic);
        }
        let count = array::<4>(bytes, MAGIC.len())
            .map(u32::from_le_bytes)
            .ok_or(ArchiveError::Truncated { entry: 0 })?;
        if count > MAX_ENTRIES {
            return Err(ArchiveError::TooManyEntries(count));
        }
        if bytes.len() < HEADER_LEN {
            return Err(ArchiveError::Truncated { entry: 0 });
        }
        let mut at = HEADER_LEN;
        for entry in 0..count {
            let (parsed, next) =
                Self::entry(bytes, at, entry)?.ok_or(ArchiveError::Truncated { entry })?;
            each(parsed);
            at = next;
        }
        Ok(())
    }

    /// Reads entry number `entry` at `at`: the entry and where the next one starts (None if
    /// it runs past the end, or past what a `usize` counts).
    fn entry(
        bytes: &'a [u8],
        at: usize,
        entry: u32,
    ) -> Result<Option<(Entry<'a>, usize)>, ArchiveError> {
        let Some(kind_byte) = bytes.get(at).copied() else {
            return Ok(None);
        };
        let (Some(name_len), Some(data_len)) = (
            array::<4>(bytes, at.saturating_add(4)).map(u32::from_le_bytes),
            array::<8>(bytes, at.saturating_add(8)).map(u64::from_le_bytes),
        ) else {
            return Ok(None);
        };
        let kind = Kind::from_byte(kind_byte).ok_or(ArchiveError::BadKind {
            entry,
            kind: kind_byte,
        })?;
        let span = || -> Option<(usize, usize, usize, usize)> {
            let name_start = at.checked_add(ENTRY_HEADER_LEN)?;
            let name_end = name_start.checked_add(usize::try_from(name_len).ok()?)?;
            let data_start = align_up(name_end)?;
            let data_end = data_start.checked_add(usize::try_from(data_len).ok()?)?;
            (data_end <= bytes.len()).then_some((name_start, name_end, data_start, data_end))
        };
        let Some((name_start, name_end, data_start, data_end)) = span() else {
            return Ok(None);
        };
        let (Some(name), Some(data)) = (
            bytes.get(name_start..name_end),
            bytes.get(data_start..data_end),
        ) else {
            return Ok(None);
        };
        let name = core::str::from_utf8(name).map_err(|_| ArchiveError::BadName { entry })?;
        // The padding after the last entry's data may be missing; a next entry then starts
        // past the end and is reported truncated.
        let Some(next) = align_up(data_end) else {
            return Ok(None);
        };
        Ok(Some((Entry { kind, name, data }, next)))
    }

    /// Every entry, in archive order.
    pub fn entries(&self) -> impl Iterator<Item = Entry<'a>> + '_ {
        self.entries.iter().copied()
    }

    /// The config entries, in archive order (domain ids follow it: 1, 2, ...).
    pub fn configs(&self) -> impl Iterator<Item = Entry<'a>> + '_ {
        self.entries().filter(|e| e.kind == Kind::Config)
    }

    /// The data of the first file entry named exactly `name`.
    pub fn file(&self, name: &str) -> Option<&'a [u8]> {
        self.entries()
            .find(|e| e.kind == Kind::File && e.name == name)
            .map(|e| e.data)
    }
}

/// Appends zero bytes to `out` until its length is a multiple of [`ALIGN`].
fn pad(out: &mut Vec<u8>) {
    out.resize(out.len().next_multiple_of(ALIGN), 0);
}

/// Writes an archive of `entries` (kind, name, data), in that order. The caller keeps to
/// [`MAX_ENTRIES`]; [`Archive::parse`] refuses more.
pub fn write(entries: &[(Kind, &str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&MAGIC);
    let count = u32::try_from(entries.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    for (kind, name, data) in entries {
        out.push(kind.byte());
        out.extend_from_slice(&[0; 3]);
        let name_len = u32::try_from(name.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&name_len.to_le_bytes());
        let data_len = u64::try_from(data.len()).unwrap_or(u64::MAX);
        out.extend_from_slice(&data_len.to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        pad(&mut out);
        out.extend_from_slice(data);
        pad(&mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use alloc::vec;
    use proptest::prelude::*;

    fn sample() -> Vec<u8> {
        write(&[
            (Kind::Config, "/w/a.cfg", b"name = \"a\"\nkernel = \"k\"\n"),
            (Kind::File, "/w/k", b"\x7fELF...."),
            (Kind::Config, "/w/b.cfg", b"name = \"b\"\n"),
            (Kind::File, "/w/k", b"second"),
            (Kind::File, "", b""),
        ])
    }

    #[test]
    fn round_trip() {
        let bytes = sample();
        assert!(is_archive(&bytes));
        assert_eq!(bytes.len() % 8, 0);
        let a = Archive::parse(&bytes).unwrap();
        assert_eq!(a.entries().count(), 5);
        let configs: Vec<_> = a.configs().map(|e| e.name).collect();
        assert_eq!(configs, ["/w/a.cfg", "/w/b.cfg"]);
        assert_eq!(
            a.configs().next().unwrap().data,
            b"name = \"a\"\nkernel = \"k\"\n"
        );
        assert_eq!(a.file("/w/k"), Some(&b"\x7fELF...."[..]));
        assert_eq!(a.file(""), Some(&b""[..]));
        assert_eq!(a.file("/w/a.cfg"), None, "a config is not a file");
        assert_eq!(a.file("/w/x"), None);
        let last = a.entries().last().unwrap();
        assert_eq!(last.kind, Kind::File);
        assert_eq!(Archive::config_count(&bytes), Ok(2));
        assert_eq!(
            Archive::config_count(&bytes[..bytes.len() - 9]),
            Err(ArchiveError::Truncated { entry: 4 })
        );
        let empty = write(&[]);
        assert_eq!(empty.len(), 16);
        assert_eq!(Archive::parse(&empty).unwrap().entries().count(), 0);
    }

    #[test]
    fn the_layout_is_the_agreed_one() {
        let bytes = write(&[(Kind::File, "abc", b"0123456789")]);
        let mut want = Vec::new();
        want.extend_from_slice(b"PVXARC\0\x01");
        want.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0]);
        want.extend_from_slice(&[2, 0, 0, 0, 3, 0, 0, 0, 10, 0, 0, 0, 0, 0, 0, 0]);
        want.extend_from_slice(b"abc\0\0\0\0\0");
        want.extend_from_slice(b"0123456789\0\0\0\0\0\0");
        assert_eq!(bytes, want);
    }

    #[test]
    fn every_error() {
        let good = sample();
        assert_eq!(Archive::parse(b"PVXARC\0"), Err(ArchiveError::BadMagic));
        let mut bad = good.clone();
        bad[7] = 2;
        assert_eq!(Archive::parse(&bad), Err(ArchiveError::BadMagic));
        assert!(!is_archive(&bad));
        assert_eq!(
            Archive::parse(&good[..12]),
            Err(ArchiveError::Truncated { entry: 0 })
        );
        assert_eq!(
            Archive::parse(&good[..10]),
            Err(ArchiveError::Truncated { entry: 0 })
        );
        let mut many = good.clone();
        many[8..12].copy_from_slice(&65u32.to_le_bytes());
        assert_eq!(Archive::parse(&many), Err(ArchiveError::TooManyEntries(65)));
        let mut more = good.clone();
        more[8..12].copy_from_slice(&6u32.to_le_bytes());
        assert_eq!(
            Archive::parse(&more),
            Err(ArchiveError::Truncated { entry: 5 })
        );
        // Cut inside entry 1's data.
        let entry1_data = 16 + 16 + 8 + 24 + 16 + 8;
        assert_eq!(
            Archive::parse(&good[..entry1_data + 3]),
            Err(ArchiveError::Truncated { entry: 1 })
        );
        // A data length that wraps.
        let mut huge = good.clone();
        huge[16 + 8..16 + 16].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(
            Archive::parse(&huge),
            Err(ArchiveError::Truncated { entry: 0 })
        );
        let mut kind = good.clone();
        kind[16] = 3;
        assert_eq!(
            Archive::parse(&kind),
            Err(ArchiveError::BadKind { entry: 0, kind: 3 })
        );
        let mut name = good.clone();
        name[32] = 0xff;
        assert_eq!(
            Archive::parse(&name),
            Err(ArchiveError::BadName { entry: 0 })
        );
        for (e, words) in [
            (ArchiveError::BadMagic, "magic"),
            (ArchiveError::TooManyEntries(65), "65 entries, more than 64"),
            (ArchiveError::Truncated { entry: 2 }, "entry 2 runs past"),
            (ArchiveError::BadKind { entry: 1, kind: 9 }, "kind 9"),
            (
                ArchiveError::BadName { entry: 4 },
                "entry 4's name is not UTF-8",
            ),
        ] {
            assert!(e.to_string().contains(words), "{e}");
        }
    }

    proptest! {
        #[test]
        fn parse_never_panics_on_arbitrary_bytes(
            tail in proptest::collection::vec(any::<u8>(), 0..256),
            magic in any::<bool>(),
        ) {
            let mut bytes = if magic { MAGIC.to_vec() } else { vec![] };
            bytes.extend_from_slice(&tail);
            let _ = Archive::parse(&bytes);
        }

        #[test]
        fn parse_never_panics_on_a_damaged_archive(
            cut in 0usize..200,
            flips in proptest::collection::vec((0usize..200, 0u8..8), 0..4),
        ) {
            let mut bytes = sample();
            for (at, bit) in flips {
                let at = at % bytes.len();
                bytes[at] ^= 1 << bit;
            }
            bytes.truncate(cut.min(bytes.len()));
            if let Ok(a) = Archive::parse(&bytes) {
                for e in a.entries() {
                    prop_assert!(e.data.len() <= bytes.len());
                }
            }
        }
    }
}
