//! A writer for the `newc` cpio format, the one Linux unpacks as an initramfs.
//!
//! Linux unpacks several archives laid end to end, so the dom0 root (built once) and the
//! per-boot overlay (guest ELF, xl config, job) are written separately and concatenated.
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use anyhow::{Context, Result, bail};

/// File type bits of `c_mode`.
const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_IFLNK: u32 = 0o120_000;

/// Builds a `newc` archive in any writer; every entry is owned by root (uid and gid 0).
pub struct CpioWriter<W: Write> {
    out: W,
    written: u64,
    next_ino: u32,
}

impl<W: Write> CpioWriter<W> {
    /// Starts an archive written to `out`.
    pub fn new(out: W) -> Self {
        Self {
            out,
            written: 0,
            next_ino: 1,
        }
    }

    /// Adds a directory `name` (a path without a leading `/`, such as `usr/lib`).
    pub fn dir(&mut self, name: &str, perm: u32) -> io::Result<()> {
        self.entry(name, S_IFDIR | (perm & 0o7777), 2, &[])
    }

    /// Adds a regular file `name` holding `data`.
    pub fn file(&mut self, name: &str, perm: u32, data: &[u8]) -> io::Result<()> {
        self.entry(name, S_IFREG | (perm & 0o7777), 1, data)
    }

    /// Adds a symbolic link `name` pointing at `target`.
    pub fn symlink(&mut self, name: &str, target: &str) -> io::Result<()> {
        self.entry(name, S_IFLNK | 0o777, 1, target.as_bytes())
    }

    /// Adds everything below the host directory `root` (not `root` itself), sorted by name so
    /// the archive does not depend on the order the file system lists entries in.
    /// Hard links become separate copies; other file types are an error.
    pub fn tree(&mut self, root: &Path) -> Result<()> {
        self.tree_below(root, "")
    }

    fn tree_below(&mut self, dir: &Path, prefix: &str) -> Result<()> {
        let mut entries = fs::read_dir(dir)
            .with_context(|| format!("listing {}", dir.display()))?
            .collect::<io::Result<Vec<_>>>()
            .with_context(|| format!("listing {}", dir.display()))?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let path = entry.path();
            let Some(file_name) = entry.file_name().to_str().map(str::to_owned) else {
                bail!("{} is not a UTF-8 name", path.display());
            };
            let name = format!("{prefix}{file_name}");
            let meta = fs::symlink_metadata(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            let perm = meta.permissions().mode();
            let kind = meta.file_type();
            if kind.is_symlink() {
                let target = fs::read_link(&path)
                    .with_context(|| format!("reading link {}", path.display()))?;
                let Some(target) = target.to_str() else {
                    bail!("link target of {} is not UTF-8", path.display());
                };
                self.symlink(&name, target)?;
            } else if kind.is_dir() {
                self.dir(&name, perm)?;
                self.tree_below(&path, &format!("{name}/"))?;
            } else if kind.is_file() {
                let data =
                    fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
                self.file(&name, meta.mode(), &data)?;
            } else {
                bail!(
                    "{} is neither a file, a directory nor a symlink",
                    path.display()
                );
            }
        }
        Ok(())
    }

    /// Writes the `TRAILER!!!` entry and returns the writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.entry("TRAILER!!!", 0, 1, &[])?;
        self.out.flush()?;
        Ok(self.out)
    }

    fn entry(&mut self, name: &str, mode: u32, nlink: u32, data: &[u8]) -> io::Result<()> {
        let too_big = || io::Error::new(io::ErrorKind::InvalidInput, "cpio entry over 4 GiB");
        let size = u32::try_from(data.len()).map_err(|_| too_big())?;
        let name_size = u32::try_from(name.len() + 1).map_err(|_| too_big())?;
        let ino = if name == "TRAILER!!!" {
            0
        } else {
            self.next_ino
        };
        self.next_ino += 1;
        // magic, ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor,
        // rdevmajor, rdevminor, namesize, check: 13 fields of 8 hex digits.
        let header = format!(
            "070701{ino:08x}{mode:08x}{:08x}{:08x}{nlink:08x}{:08x}{size:08x}\
             {:08x}{:08x}{:08x}{:08x}{name_size:08x}{:08x}",
            0, 0, 0, 0, 0, 0, 0, 0
        );
        self.put(header.as_bytes())?;
        self.put(name.as_bytes())?;
        self.put(&[0])?;
        self.pad()?;
        self.put(data)?;
        self.pad()
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// Pads to the next multiple of 4 bytes, as `newc` requires after names and data.
    fn pad(&mut self) -> io::Result<()> {
        let n = (4 - self.written % 4) % 4;
        self.put(&[0u8; 3][..n as usize])
    }
}

#[cfg(test)]
mod tests {
    use super::CpioWriter;

    /// Reads back `(name, mode, data)` of each entry, checking the layout rules on the way.
    fn parse(mut bytes: &[u8]) -> Vec<(String, u32, Vec<u8>)> {
        let mut out = Vec::new();
        let mut offset = 0usize;
        loop {
            assert_eq!(offset % 4, 0);
            let header = std::str::from_utf8(&bytes[..110]).unwrap();
            assert_eq!(&header[..6], "070701");
            let field = |i: usize| u32::from_str_radix(&header[6 + 8 * i..14 + 8 * i], 16).unwrap();
            let (mode, size, name_size) = (field(1), field(6) as usize, field(11) as usize);
            let name = std::str::from_utf8(&bytes[110..110 + name_size - 1])
                .unwrap()
                .to_owned();
            let data_start = (110 + name_size).next_multiple_of(4);
            let data = bytes[data_start..data_start + size].to_vec();
            let next = (data_start + size).next_multiple_of(4);
            offset += next;
            bytes = &bytes[next..];
            if name == "TRAILER!!!" {
                assert!(bytes.is_empty());
                return out;
            }
            out.push((name, mode, data));
        }
    }

    #[test]
    fn entries_round_trip_with_padding() {
        let mut w = CpioWriter::new(Vec::new());
        w.dir("pvxen", 0o755).unwrap();
        w.file("pvxen/a", 0o644, b"hello").unwrap();
        w.file("pvxen/bb", 0o755, b"").unwrap();
        w.symlink("sh", "bash").unwrap();
        let bytes = w.finish().unwrap();
        assert_eq!(bytes.len() % 4, 0);
        let entries = parse(&bytes);
        assert_eq!(
            entries,
            [
                ("pvxen".to_owned(), 0o040_755, vec![]),
                ("pvxen/a".to_owned(), 0o100_644, b"hello".to_vec()),
                ("pvxen/bb".to_owned(), 0o100_755, vec![]),
                ("sh".to_owned(), 0o120_777, b"bash".to_vec()),
            ]
        );
    }

    #[test]
    fn tree_is_sorted_and_keeps_links() {
        let dir = std::env::temp_dir().join(format!("xtask-cpio-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("b")).unwrap();
        std::fs::write(dir.join("b/f"), b"x").unwrap();
        std::fs::write(dir.join("a"), b"yz").unwrap();
        std::os::unix::fs::symlink("a", dir.join("c")).unwrap();
        let mut w = CpioWriter::new(Vec::new());
        w.tree(&dir).unwrap();
        let entries = parse(&w.finish().unwrap());
        std::fs::remove_dir_all(&dir).unwrap();
        let names: Vec<_> = entries.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(names, ["a", "b", "b/f", "c"]);
        assert_eq!(entries[3].2, b"a");
    }
}
