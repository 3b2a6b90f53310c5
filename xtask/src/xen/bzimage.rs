//! Taking the ELF kernel out of a Linux bzImage, so that Xen need not decompress it.
use std::fs;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

use super::image::run;

/// Writes the ELF kernel inside a bzImage to `out`. Xen would decompress it itself on every
/// boot, which takes seconds under TCG; decompressing it once here saves them.
pub fn unpack(bzimage: &[u8], scratch: &Path, out: &Path) -> Result<()> {
    let (offset, len) = bzimage_payload(bzimage).context("the kernel is not a bzImage")?;
    let payload = &bzimage[offset..offset + len];
    let (tool, args): (&str, &[&str]) = if payload.starts_with(b"\xfd7zXZ\0") {
        ("xz", &["-dc", "--single-stream"])
    } else if payload.starts_with(&[0x1f, 0x8b]) {
        ("gzip", &["-dc"])
    } else if payload.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        ("zstd", &["-dc"])
    } else {
        bail!("the kernel's payload uses a compression this build does not know");
    };
    let compressed = scratch.join("vmlinux.compressed");
    fs::write(&compressed, payload)?;
    let elf = fs::File::create(out).with_context(|| format!("creating {}", out.display()))?;
    run(
        Command::new(tool).args(args).arg(&compressed).stdout(elf),
        &format!("{tool} -dc"),
    )?;
    if fs::read(out)?.get(..4) != Some(b"\x7fELF") {
        bail!("the kernel's payload is not an ELF file");
    }
    Ok(())
}

/// Offset and length of a bzImage's compressed payload (Linux's x86 boot protocol: the
/// protected-mode code follows `setup_sects + 1` sectors; `payload_offset` and
/// `payload_length` are at 0x248 in the setup header, boot protocol 2.08 and later).
pub fn bzimage_payload(bzimage: &[u8]) -> Option<(usize, usize)> {
    if bzimage.get(0x202..0x206) != Some(b"HdrS") {
        return None;
    }
    let word = |at: usize| -> Option<usize> {
        let bytes: [u8; 4] = bzimage.get(at..at + 4)?.try_into().ok()?;
        usize::try_from(u32::from_le_bytes(bytes)).ok()
    };
    let setup_sects = match *bzimage.get(0x1f1)? {
        0 => 4,
        n => usize::from(n),
    };
    let offset = (setup_sects + 1) * 512 + word(0x248)?;
    let len = word(0x24c)?;
    (offset.checked_add(len)? <= bzimage.len()).then_some((offset, len))
}

#[cfg(test)]
mod tests {
    use super::bzimage_payload;

    #[test]
    fn bzimage_header() {
        let mut image = vec![0u8; 8192];
        image[0x1f1] = 3; // setup sectors: the payload region starts at 4 * 512
        image[0x202..0x206].copy_from_slice(b"HdrS");
        image[0x248..0x24c].copy_from_slice(&100u32.to_le_bytes());
        image[0x24c..0x250].copy_from_slice(&50u32.to_le_bytes());
        assert_eq!(bzimage_payload(&image), Some((2048 + 100, 50)));
        image[0x24c..0x250].copy_from_slice(&9000u32.to_le_bytes());
        assert_eq!(
            bzimage_payload(&image),
            None,
            "a payload past the end is refused"
        );
        assert_eq!(bzimage_payload(&[0u8; 100]), None);
    }
}
