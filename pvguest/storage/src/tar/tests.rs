//! Tests of the archive reader against archives made by GNU tar, and hostile ones.
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap,
    reason = "test fixtures: small known sizes and indexes, on 64-bit hosts only"
)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::string::{String, ToString};
use std::vec::Vec;
use std::{format, fs, vec};

use proptest::prelude::*;

use super::header::build::{fix_checksum, ustar};
use super::header::{BLOCK, HeaderError};
use super::{Archive, Kind, TarError};
use crate::fake::MemDisk;

/// A scratch directory under the system's temp dir, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Self {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("storage-tar-{tag}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("scratch dir");
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn content(seed: usize, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| ((i * 7 + seed * 13) % 251) as u8)
        .collect()
}

/// A tree of files (relative path, contents) exercising sizes around block edges, a long
/// name, nested directories.
fn tree() -> Vec<(String, Vec<u8>)> {
    let long = format!("deep/{}/{}.txt", "d".repeat(80), "n".repeat(90));
    [
        ("empty", 0),
        ("one", 1),
        ("a/511", 511),
        ("a/512", 512),
        ("a/b/513", 513),
        ("big.bin", 100_003),
        (long.as_str(), 777),
    ]
    .iter()
    .enumerate()
    .map(|(i, (p, n))| (p.to_string(), content(i, *n)))
    .collect()
}

/// Writes `files` under a fresh directory and archives it with GNU tar in `format`.
fn gnu_tar(format: &str, files: &[(String, Vec<u8>)]) -> (Scratch, Vec<u8>) {
    let scratch = Scratch::new(format);
    let root = scratch.0.join("root");
    for (path, data) in files {
        let p = root.join(path);
        fs::create_dir_all(p.parent().expect("has parent")).expect("mkdir");
        fs::write(&p, data).expect("write file");
    }
    std::os::unix::fs::symlink("one", root.join("link")).expect("symlink");
    let out = scratch.0.join("out.tar");
    let status = Command::new("tar")
        .arg(format!("--format={format}"))
        .arg("-cf")
        .arg(&out)
        .arg("-C")
        .arg(&root)
        .arg(".")
        .status()
        .expect("GNU tar must be installed to run these tests");
    assert!(status.success(), "tar failed");
    let image = fs::read(&out).expect("read archive");
    (scratch, image)
}

fn check_tree(format: &str) {
    let files = tree();
    let (_scratch, image) = gnu_tar(format, &files);
    let mut disk = MemDisk::from_image(image);
    let archive = Archive::index(&mut disk).expect("index");
    for (path, data) in &files {
        let entry = archive
            .lookup(path)
            .unwrap_or_else(|| panic!("{path} indexed"));
        assert_eq!(entry.kind, Kind::File);
        assert_eq!(archive.file_size::<()>(path), Ok(data.len() as u64));
        assert_eq!(
            &archive.read_file(&mut disk, path).expect("read"),
            data,
            "{path}"
        );
        // Unaligned pieces through read_at.
        let mut got = Vec::new();
        let mut pos = 0u64;
        let mut buf = vec![0u8; 333];
        loop {
            let n = archive
                .read_at(&mut disk, path, pos, &mut buf)
                .expect("read_at");
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
            pos += n as u64;
        }
        assert_eq!(&got, data, "{path} in pieces");
    }
    assert_eq!(
        archive.lookup("./a/").map(|e| e.kind),
        Some(Kind::Directory)
    );
    assert_eq!(
        archive.lookup("link").map(|e| e.kind),
        Some(Kind::Other(b'2'))
    );
    assert_eq!(
        archive.read_file(&mut disk, "a"),
        Err(TarError::NotAFile),
        "a directory is not read"
    );
    assert_eq!(
        archive.read_file(&mut disk, "nope"),
        Err(TarError::NotFound)
    );
    // 7 files + a, a/b, deep, deep/ddd.. directories + the link.
    assert_eq!(archive.len(), 12);
}

#[test]
fn gnu_format_archive_reads_back() {
    check_tree("gnu");
}

#[test]
fn ustar_format_archive_reads_back() {
    check_tree("ustar");
}

#[test]
fn index_reads_headers_only() {
    let files = tree();
    let (_s, image) = gnu_tar("gnu", &files);
    let mut disk = MemDisk::from_image(image);
    Archive::index(&mut disk).expect("index");
    // One read per header (12 entries and `./`), 2 for the long name (its `L` header and its
    // data) and the end marker; the 100 KB file's data is never read.
    assert_eq!(disk.reads, 13 + 2 + 1);
}

#[test]
fn pax_format_archive_reads_back() {
    // GNU tar writes an `x` header (times) before every entry, and `path` for the long name.
    check_tree("pax");
}

#[test]
fn pax_size_and_path_override_the_header() {
    let mut image = Vec::new();
    let record = b"12 size=600\n17 path=real.txt\n";
    image.extend_from_slice(&ustar(b"PaxHeaders/x", b'x', record.len() as u64));
    let mut data = record.to_vec();
    data.resize(BLOCK, 0);
    image.extend_from_slice(&data);
    // The ustar header says 0 bytes and another name; the pax record wins.
    image.extend_from_slice(&ustar(b"short", b'0', 0));
    image.extend_from_slice(&content(3, 600));
    image.resize(image.len().next_multiple_of(BLOCK), 0);
    image.extend_from_slice(&[0u8; 2 * BLOCK]);
    let mut disk = MemDisk::from_image(image);
    let archive = Archive::index(&mut disk).expect("index");
    assert!(archive.lookup("short").is_none());
    assert_eq!(
        archive.read_file(&mut disk, "real.txt"),
        Ok(content(3, 600))
    );
}

#[test]
fn sparse_entries_are_refused_clearly() {
    let mut image = small_archive();
    image[..BLOCK].copy_from_slice(&ustar(b"f", b'S', 600));
    assert_eq!(
        Archive::index(&mut MemDisk::from_image(image)),
        Err(TarError::Unsupported {
            offset: 0,
            typeflag: b'S'
        })
    );
}

fn small_archive() -> Vec<u8> {
    let mut image = Vec::new();
    image.extend_from_slice(&ustar(b"f", b'0', 600));
    image.extend_from_slice(&content(1, 600));
    image.resize(image.len().next_multiple_of(BLOCK), 0);
    image.extend_from_slice(&[0u8; 2 * BLOCK]);
    image
}

#[test]
fn truncated_archive_is_an_error() {
    let mut image = small_archive();
    assert!(Archive::index(&mut MemDisk::from_image(image.clone())).is_ok());
    image.truncate(3 * BLOCK); // header + data, no end marker
    assert_eq!(
        Archive::index(&mut MemDisk::from_image(image)),
        Err(TarError::Truncated {
            offset: 3 * BLOCK as u64
        })
    );
}

#[test]
fn size_past_end_is_an_error() {
    let mut image = small_archive();
    image[..BLOCK].copy_from_slice(&ustar(b"f", b'0', 10_000));
    assert_eq!(
        Archive::index(&mut MemDisk::from_image(image)),
        Err(TarError::SizePastEnd {
            offset: 0,
            size: 10_000
        })
    );
}

#[test]
fn bad_checksum_and_bad_octal_are_errors() {
    let mut image = small_archive();
    image[0] = b'g';
    assert!(matches!(
        Archive::index(&mut MemDisk::from_image(image.clone())),
        Err(TarError::Header {
            offset: 0,
            error: HeaderError::BadChecksum { .. }
        })
    ));
    let mut block = [0u8; BLOCK];
    block.copy_from_slice(&small_archive()[..BLOCK]);
    block[124 + 3] = b'9';
    fix_checksum(&mut block);
    image[..BLOCK].copy_from_slice(&block);
    assert_eq!(
        Archive::index(&mut MemDisk::from_image(image)),
        Err(TarError::Header {
            offset: 0,
            error: HeaderError::BadNumber("size")
        })
    );
}

#[test]
fn long_name_too_long_is_an_error() {
    let mut image = Vec::new();
    image.extend_from_slice(&{
        let mut h = ustar(b"././@LongLink", b'L', 5000);
        h[257..265].copy_from_slice(b"ustar  \0");
        fix_checksum(&mut h);
        h
    });
    image.resize(image.len() + 5120 + 2 * BLOCK, 0);
    assert_eq!(
        Archive::index(&mut MemDisk::from_image(image)),
        Err(TarError::BadLongName { offset: 0 })
    );
}

fn archive_on_disk(dir: &Path) -> Vec<u8> {
    fs::read(dir.join("out.tar")).expect("archive")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any corruption of a GNU tar archive gives an index or a typed error, never a panic;
    /// whatever is indexed reads within the disk.
    #[test]
    fn hostile_bytes_in_a_real_archive(
        edits in proptest::collection::vec((0usize..16_384, any::<u8>()), 1..8),
        fix in any::<bool>(),
    ) {
        let files = tree();
        let (scratch, _) = gnu_tar("gnu", &files[..5]);
        let mut image = archive_on_disk(&scratch.0);
        let headers = [0usize, 512, 1024, 1536, 2048];
        for (at, byte) in &edits {
            let at = at % image.len();
            image[at] = *byte;
            if fix {
                // Keep the checksum right so the fields themselves are attacked.
                let start = at - at % BLOCK;
                if headers.contains(&start) {
                    let mut b = [0u8; BLOCK];
                    b.copy_from_slice(&image[start..start + BLOCK]);
                    fix_checksum(&mut b);
                    image[start..start + BLOCK].copy_from_slice(&b);
                }
            }
        }
        let mut disk = MemDisk::from_image(image);
        if let Ok(archive) = Archive::index(&mut disk) {
            let paths: Vec<String> = archive.entries().map(|(p, _)| p.to_string()).collect();
            for p in paths {
                let r = archive.read_file(&mut disk, &p);
                prop_assert!(matches!(r, Ok(_) | Err(TarError::NotAFile)), "{r:?}");
            }
        }
    }

    /// Random header blocks with valid checksums, as the whole archive.
    #[test]
    fn hostile_headers(blocks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), BLOCK), 1..6)) {
        let mut image = Vec::new();
        for b in blocks {
            let mut block = [0u8; BLOCK];
            block.copy_from_slice(&b);
            block[257..265].copy_from_slice(if b[0] % 2 == 0 { b"ustar\x0000" } else { b"ustar  \0" });
            fix_checksum(&mut block);
            image.extend_from_slice(&block);
        }
        let _ = Archive::index(&mut MemDisk::from_image(image));
    }
}
