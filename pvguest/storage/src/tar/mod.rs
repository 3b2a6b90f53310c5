//! A read-only ustar archive on a block device, indexed header by header and read on demand.
//!
//! [`Archive::index`] walks the archive one 512-byte header at a time (data blocks are skipped,
//! never read), checking each header's checksum, magic and numbers, and that each entry's
//! data lies inside the disk; the index keeps only paths, kinds, sizes and data offsets.
//! [`Archive::read_at`] then reads any byte range of a file straight from the disk.
//!
//! Accepted: POSIX ustar (the prefix field joins the name), pax (`x` extended headers: their
//! `path` and `size` apply to the next entry, other keys are ignored; `g` global headers are
//! checked and ignored) and GNU tar's default format, including its `L` long-name entries (`K`
//! long link names are skipped). Refused with [`TarError::Unsupported`]: GNU sparse files
//! (`S`), multi-volume entries (`M`) and the other old GNU types (`N`, `V`), whose sizes or
//! names this reader would get wrong. The archive
//! ends at the first all-zero block; a disk that ends before one is [`TarError::Truncated`].
//! Later entries with the same path replace earlier ones, as `tar -x` does.
//!
//! Chosen over a crate: `tar-no-std` (the no_std tar reader) parses an archive held whole in a
//! `&[u8]`; the guest must not read the disk into memory, so this small reader works over
//! [`BlockDevice`] instead.
#![allow(
    clippy::cast_possible_truncation,
    reason = "sizes cast to usize are of buffers this crate allocates (at most MAX_TRANSFER, or a file read whole on request)"
)]

pub mod header;
pub mod pax;
#[cfg(test)]
mod tests;

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use crate::device::{BlockDevice, MAX_TRANSFER, SECTOR, round_up};
use header::{BLOCK, HeaderError};

/// Longest GNU long name accepted (bytes, including its NUL).
pub const MAX_LONG_NAME: u64 = 4096;

/// Largest pax extended header data accepted (bytes).
pub const MAX_PAX: u64 = 16 * 1024;

/// Most entries indexed (bounds the index's memory on a hostile archive).
pub const MAX_ENTRIES: usize = 65_536;

/// Errors of the archive reader; `offset` is the byte offset of the header concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TarError<E> {
    /// The device failed.
    Device(E),
    /// A header failed its checks.
    Header {
        /// Byte offset of the header on the disk.
        offset: u64,
        /// What is wrong.
        error: HeaderError,
    },
    /// An entry's data would pass the end of the disk.
    SizePastEnd {
        /// Byte offset of the header.
        offset: u64,
        /// The size it declares.
        size: u64,
    },
    /// The disk ends before the end-of-archive marker (or inside a long name's data).
    Truncated {
        /// Byte offset where the next header was due.
        offset: u64,
    },
    /// An entry type this reader does not handle (see the module docs).
    Unsupported {
        /// Byte offset of the header.
        offset: u64,
        /// Its type flag.
        typeflag: u8,
    },
    /// A GNU long name is longer than [`MAX_LONG_NAME`] or is not a valid path.
    BadLongName {
        /// Byte offset of the `L` header.
        offset: u64,
    },
    /// A pax extended header is malformed or larger than [`MAX_PAX`].
    BadPax {
        /// Byte offset of the `x` or `g` header.
        offset: u64,
    },
    /// More than [`MAX_ENTRIES`] entries.
    TooManyEntries,
    /// No entry has this path.
    NotFound,
    /// The entry is not a regular file.
    NotAFile,
}

impl<E: fmt::Debug> fmt::Display for TarError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Device(e) => write!(f, "device: {e:?}"),
            Self::Header { offset, error } => write!(f, "header at byte {offset}: {error:?}"),
            Self::SizePastEnd { offset, size } => write!(
                f,
                "entry at byte {offset} declares {size} bytes, past the end of the disk"
            ),
            Self::Truncated { offset } => write!(
                f,
                "the disk ends at byte {offset} before the end-of-archive marker"
            ),
            Self::Unsupported { offset, typeflag } => write!(
                f,
                "entry at byte {offset} has unsupported type {:?}",
                char::from(*typeflag)
            ),
            Self::BadLongName { offset } => write!(f, "GNU long name at byte {offset} is invalid"),
            Self::BadPax { offset } => write!(f, "pax header at byte {offset} is invalid"),
            Self::TooManyEntries => write!(f, "more than {MAX_ENTRIES} entries"),
            Self::NotFound => write!(f, "no such path in the archive"),
            Self::NotAFile => write!(f, "not a regular file"),
        }
    }
}

/// What an entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A regular file (type `0` or NUL, or `7` contiguous).
    File,
    /// A directory (type `5`).
    Directory,
    /// Anything else (links, devices, FIFOs): listed, with no data.
    Other(u8),
}

/// An indexed entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// What it is.
    pub kind: Kind,
    /// Size of its data in bytes (0 unless a file).
    pub size: u64,
    /// Byte offset of its data on the disk.
    pub data_offset: u64,
}

/// The index of an archive on a disk.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Archive {
    entries: BTreeMap<String, Entry>,
    end: u64,
}

impl Archive {
    /// Indexes the archive on `dev`, reading its headers one block at a time.
    pub fn index<D: BlockDevice>(dev: &mut D) -> Result<Self, TarError<D::Error>> {
        let disk = dev.size();
        let mut entries = BTreeMap::new();
        let mut offset: u64 = 0;
        let mut long_name: Option<String> = None;
        let mut pax = pax::Overrides::default();
        let mut block = [0u8; BLOCK];
        loop {
            if offset + BLOCK as u64 > disk {
                return Err(TarError::Truncated { offset });
            }
            dev.read(offset, &mut block).map_err(TarError::Device)?;
            if header::is_zero(&block) {
                break;
            }
            let h = header::parse(&block).map_err(|error| TarError::Header { offset, error })?;
            let data_offset = offset + BLOCK as u64;
            // A pax `size` applies to the entry after the extended header, not to headers
            // that carry metadata for the next entry themselves.
            let size = match (h.typeflag, pax.size) {
                (b'x' | b'g' | b'L' | b'K', _) | (_, None) => h.size,
                (_, Some(size)) => size,
            };
            let data_end = data_offset
                .checked_add(round_up(size))
                .filter(|&end| end <= disk && size <= u64::MAX - SECTOR as u64)
                .ok_or(TarError::SizePastEnd { offset, size })?;
            let kind = match h.typeflag {
                b'0' | 0 | b'7' => Kind::File,
                b'5' => Kind::Directory,
                b'L' => {
                    long_name = Some(read_long_name(dev, offset, h.size)?);
                    offset = data_end;
                    continue;
                }
                b'K' => {
                    offset = data_end;
                    continue;
                }
                b'x' | b'g' => {
                    let data = read_extended(dev, offset, h.size)?;
                    let parsed = pax::parse(&data).map_err(|_| TarError::BadPax { offset })?;
                    if h.typeflag == b'x' {
                        pax = parsed;
                    }
                    offset = data_end;
                    continue;
                }
                b'S' | b'M' | b'N' | b'V' => {
                    return Err(TarError::Unsupported {
                        offset,
                        typeflag: h.typeflag,
                    });
                }
                other => Kind::Other(other),
            };
            let pax = core::mem::take(&mut pax);
            let path = pax.path.or(long_name.take()).unwrap_or(h.path);
            let size = if kind == Kind::File { size } else { 0 };
            let name = header::normalise(&path);
            if !name.is_empty() {
                if entries.len() >= MAX_ENTRIES && !entries.contains_key(name) {
                    return Err(TarError::TooManyEntries);
                }
                entries.insert(
                    String::from(name),
                    Entry {
                        kind,
                        size,
                        data_offset,
                    },
                );
            }
            // Links and directories carry no data blocks even if their size field is set
            // (POSIX); GNU tar writes 0 there. Files' (and unknown types') data is skipped.
            offset = if matches!(kind, Kind::Directory) || matches!(h.typeflag, b'1' | b'2') {
                data_offset
            } else {
                data_end
            };
        }
        Ok(Self {
            entries,
            end: offset,
        })
    }

    /// Byte offset of the end-of-archive marker.
    pub fn end(&self) -> u64 {
        self.end
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the archive has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Entries in path order (paths normalised: no leading `./`, no trailing `/`).
    pub fn entries(&self) -> impl Iterator<Item = (&str, &Entry)> {
        self.entries.iter().map(|(p, e)| (p.as_str(), e))
    }

    /// The entry at `path` (normalised the same way).
    pub fn lookup(&self, path: &str) -> Option<&Entry> {
        self.entries.get(header::normalise(path))
    }

    /// The size of the file at `path`.
    pub fn file_size<E>(&self, path: &str) -> Result<u64, TarError<E>> {
        self.file(path).map(|e| e.size)
    }

    fn file<E>(&self, path: &str) -> Result<&Entry, TarError<E>> {
        let entry = self.lookup(path).ok_or(TarError::NotFound)?;
        if entry.kind == Kind::File {
            Ok(entry)
        } else {
            Err(TarError::NotAFile)
        }
    }

    /// Reads from the file at `path`, starting `pos` bytes in, into `buf`; returns the bytes
    /// read (fewer than `buf.len()` only at the file's end, 0 at or past it).
    pub fn read_at<D: BlockDevice>(
        &self,
        dev: &mut D,
        path: &str,
        pos: u64,
        buf: &mut [u8],
    ) -> Result<usize, TarError<D::Error>> {
        let entry = *self.file(path)?;
        read_entry(dev, &entry, pos, buf)
    }

    /// Reads the whole file at `path` (for small files; large ones are read with
    /// [`Archive::read_at`] piece by piece).
    pub fn read_file<D: BlockDevice>(
        &self,
        dev: &mut D,
        path: &str,
    ) -> Result<Vec<u8>, TarError<D::Error>> {
        let entry = *self.file(path)?;
        let len = usize::try_from(entry.size).map_err(|_| TarError::SizePastEnd {
            offset: entry.data_offset - BLOCK as u64,
            size: entry.size,
        })?;
        let mut data = vec![0; len];
        let n = read_entry(dev, &entry, 0, &mut data)?;
        data.truncate(n);
        Ok(data)
    }
}

/// Reads part of an entry's data through a sector-aligned bounce buffer.
fn read_entry<D: BlockDevice>(
    dev: &mut D,
    entry: &Entry,
    pos: u64,
    buf: &mut [u8],
) -> Result<usize, TarError<D::Error>> {
    if pos >= entry.size {
        return Ok(0);
    }
    let want = usize::try_from((entry.size - pos).min(buf.len() as u64)).unwrap_or(buf.len());
    let mut scratch = vec![0u8; MAX_TRANSFER.min(round_up(want as u64 + SECTOR as u64) as usize)];
    let mut done = 0;
    while done < want {
        let at = entry.data_offset + pos + done as u64;
        let aligned = at - at % SECTOR as u64;
        let skip = (at - aligned) as usize;
        let span = round_up((skip + want - done) as u64).min(scratch.len() as u64) as usize;
        dev.read(aligned, &mut scratch[..span])
            .map_err(TarError::Device)?;
        let n = (span - skip).min(want - done);
        buf[done..done + n].copy_from_slice(&scratch[skip..skip + n]);
        done += n;
    }
    Ok(done)
}

/// Reads a pax extended header's data (the `x` or `g` entry at `offset`).
fn read_extended<D: BlockDevice>(
    dev: &mut D,
    offset: u64,
    size: u64,
) -> Result<Vec<u8>, TarError<D::Error>> {
    if size > MAX_PAX {
        return Err(TarError::BadPax { offset });
    }
    let mut data = vec![0u8; round_up(size) as usize];
    if !data.is_empty() {
        crate::device::read_chunked(dev, offset + BLOCK as u64, &mut data)
            .map_err(TarError::Device)?;
    }
    data.truncate(size as usize);
    Ok(data)
}

/// Reads a GNU long name (the data of an `L` entry at `offset`).
fn read_long_name<D: BlockDevice>(
    dev: &mut D,
    offset: u64,
    size: u64,
) -> Result<String, TarError<D::Error>> {
    if size == 0 || size > MAX_LONG_NAME {
        return Err(TarError::BadLongName { offset });
    }
    let mut data = vec![0u8; round_up(size) as usize];
    dev.read(offset + BLOCK as u64, &mut data)
        .map_err(TarError::Device)?;
    data.truncate(size as usize);
    while data.last() == Some(&0) {
        data.pop();
    }
    header::path_from_bytes(data).map_err(|_| TarError::BadLongName { offset })
}
