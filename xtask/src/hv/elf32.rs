//! An ELF32 copy of an ELF64 PVH kernel, as `objcopy -O elf32-i386` makes one: the same
//! 64-bit code and the same `XEN_ELFNOTE_PHYS32_ENTRY` note in an ELF32 container (`EM_386`).
//! Xen's loader boots such kernels; the `hv-elf32` check boots one on hv.
//!
//! The file keeps its bytes and offsets: only the headers at its start are rewritten (an
//! ELF32 header and program headers fit where the ELF64 ones were); the section headers are
//! dropped.

use anyhow::{Context, Result, bail, ensure};

/// Size of the ELF64 file header.
const EHDR64: usize = 64;
/// Size of an ELF64 program header.
const PHDR64: usize = 56;
/// Size of the ELF32 file header.
const EHDR32: u16 = 52;
/// Size of an ELF32 program header.
const PHDR32: u16 = 32;
/// `EM_386`.
const EM_386: u16 = 3;

fn field(b: &[u8], off: usize, len: usize) -> Result<u64> {
    let s = b
        .get(off..off + len)
        .with_context(|| format!("file too short for {len} bytes at {off:#x}"))?;
    let mut v = [0u8; 8];
    v[..len].copy_from_slice(s);
    Ok(u64::from_le_bytes(v))
}

fn narrow(v: u64, what: &str) -> Result<[u8; 4]> {
    Ok(u32::try_from(v)
        .with_context(|| format!("{what} {v:#x} does not fit in ELF32"))?
        .to_le_bytes())
}

/// The ELF32 form of the little-endian ELF64 image `elf64`.
pub fn to_elf32(elf64: &[u8]) -> Result<Vec<u8>> {
    ensure!(
        elf64.get(..6) == Some(&[0x7f, b'E', b'L', b'F', 2, 1][..]),
        "not a little-endian ELF64 file"
    );
    let e_type = field(elf64, 16, 2)?;
    let e_entry = field(elf64, 24, 8)?;
    let phoff = usize::try_from(field(elf64, 32, 8)?)?;
    let phnum = usize::try_from(field(elf64, 56, 2)?)?;
    if phoff != EHDR64 {
        bail!("program headers at {phoff:#x}, not right after the header");
    }
    let mut out = elf64.to_vec();
    let mut h = vec![0x7f, b'E', b'L', b'F', 1, 1, 1];
    h.resize(16, 0);
    h.extend(u16::try_from(e_type)?.to_le_bytes());
    h.extend(EM_386.to_le_bytes());
    h.extend(1u32.to_le_bytes());
    h.extend(narrow(e_entry, "e_entry")?);
    h.extend(narrow(EHDR64 as u64, "e_phoff")?); // the ELF32 headers go where the ELF64 ones were
    h.extend(0u32.to_le_bytes()); // e_shoff: no sections
    h.extend(0u32.to_le_bytes()); // e_flags
    h.extend(EHDR32.to_le_bytes());
    h.extend(PHDR32.to_le_bytes());
    h.extend(u16::try_from(phnum)?.to_le_bytes());
    h.extend(40u16.to_le_bytes()); // e_shentsize
    h.extend(0u16.to_le_bytes()); // e_shnum
    h.extend(0u16.to_le_bytes()); // e_shstrndx
    ensure!(h.len() == usize::from(EHDR32));
    h.resize(EHDR64, 0);
    for i in 0..phnum {
        let p = EHDR64 + i * PHDR64;
        let f = |off: usize, len: usize| field(elf64, p + off, len);
        h.extend(u32::try_from(f(0, 4)?)?.to_le_bytes()); // p_type
        h.extend(narrow(f(8, 8)?, "p_offset")?);
        h.extend(narrow(f(16, 8)?, "p_vaddr")?);
        h.extend(narrow(f(24, 8)?, "p_paddr")?);
        h.extend(narrow(f(32, 8)?, "p_filesz")?);
        h.extend(narrow(f(40, 8)?, "p_memsz")?);
        h.extend(u32::try_from(f(4, 4)?)?.to_le_bytes()); // p_flags
        h.extend(narrow(f(48, 8)?, "p_align")?);
    }
    // What the ELF64 headers held beyond the ELF32 ones is zeroed.
    h.resize(EHDR64 + phnum * PHDR64, 0);
    out.get_mut(..h.len())
        .context("headers longer than the file")?
        .copy_from_slice(&h);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_rewritten_and_contents_kept() {
        // ELF64 header + one PT_NOTE header + 8 bytes of contents.
        let mut e = vec![0x7f, b'E', b'L', b'F', 2, 1, 1];
        e.resize(16, 0);
        e.extend(2u16.to_le_bytes());
        e.extend(62u16.to_le_bytes());
        e.extend(1u32.to_le_bytes());
        e.extend(0x10_0000u64.to_le_bytes());
        e.extend(64u64.to_le_bytes());
        e.resize(56, 0);
        e.extend(1u16.to_le_bytes());
        e.resize(64, 0);
        for v in [4u32, 4] {
            e.extend(v.to_le_bytes());
        }
        for v in [120u64, 0, 0, 8, 8, 4] {
            e.extend(v.to_le_bytes());
        }
        e.extend(*b"contents");
        let out = to_elf32(&e).unwrap();
        assert_eq!(out.len(), e.len());
        assert_eq!(out[4], 1, "ELFCLASS32");
        assert_eq!(field(&out, 18, 2).unwrap(), 3, "EM_386");
        assert_eq!(field(&out, 24, 4).unwrap(), 0x10_0000, "e_entry");
        assert_eq!(field(&out, 28, 4).unwrap(), 64, "e_phoff");
        let p = 64;
        assert_eq!(field(&out, p, 4).unwrap(), 4, "p_type");
        assert_eq!(field(&out, p + 4, 4).unwrap(), 120, "p_offset");
        assert_eq!(field(&out, p + 16, 4).unwrap(), 8, "p_filesz");
        assert_eq!(field(&out, p + 24, 4).unwrap(), 4, "p_flags");
        assert_eq!(field(&out, p + 28, 4).unwrap(), 4, "p_align");
        assert_eq!(&out[120..], b"contents");
        let mut big = e.clone();
        big[64 + 24..64 + 32].copy_from_slice(&(1u64 << 32).to_le_bytes());
        assert!(to_elf32(&big).is_err(), "a paddr above 4 GiB");
        assert!(to_elf32(b"\x7fELF\x01\x01").is_err());
    }
}
