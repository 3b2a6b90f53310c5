//! The PVH entry-note gate: checks a kernel ELF for Xen's `XEN_ELFNOTE_PHYS32_ENTRY` note the
//! way both loaders need it (QEMU 7.2 reads an 8-byte value from an ELF64 note and aligns by
//! `p_align`; Xen's loader aligns notes to 4), by parsing the ELF64 program headers directly.

use std::path::Path;

use anyhow::{Context, Result, bail, ensure};

/// `PT_LOAD`.
const PT_LOAD: u32 = 1;
/// `PT_NOTE`.
const PT_NOTE: u32 = 4;
/// `XEN_ELFNOTE_PHYS32_ENTRY` (xen/include/public/elfnote.h).
const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;
/// The note name Xen's notes carry.
const XEN_NOTE_NAME: &[u8] = b"Xen\0";

/// Checks the PVH entry note of the ELF64 file `elf` and returns the entry address.
///
/// Requirements: a `PT_NOTE` segment with `p_align` 4 that holds exactly one note, named
/// `"Xen\0"`, of type 18, with an 8-byte descriptor (the 32-bit entry zero-extended); the
/// entry lies inside a `PT_LOAD` segment's physical range and below 4 GiB.
pub fn check_pvh_note(elf: &Path) -> Result<u64> {
    let bytes = std::fs::read(elf).with_context(|| format!("reading {}", elf.display()))?;
    check_pvh_note_bytes(&bytes).with_context(|| format!("PVH entry note of {}", elf.display()))
}

/// One program header, the fields this check needs.
#[derive(Clone, Copy, Debug)]
struct Phdr {
    p_type: u32,
    offset: u64,
    paddr: u64,
    filesz: u64,
    memsz: u64,
    align: u64,
}

/// One note: type, name and descriptor.
struct Note<'a> {
    n_type: u32,
    name: &'a [u8],
    desc: &'a [u8],
}

fn u16_at(b: &[u8], off: usize) -> Result<u16> {
    let s = b
        .get(off..off + 2)
        .with_context(|| format!("file too short for a u16 at {off:#x}"))?;
    Ok(u16::from_le_bytes([s[0], s[1]]))
}

fn u32_at(b: &[u8], off: usize) -> Result<u32> {
    let s = b
        .get(off..off + 4)
        .with_context(|| format!("file too short for a u32 at {off:#x}"))?;
    Ok(u32::from_le_bytes(s.try_into()?))
}

fn u64_at(b: &[u8], off: usize) -> Result<u64> {
    let s = b
        .get(off..off + 8)
        .with_context(|| format!("file too short for a u64 at {off:#x}"))?;
    Ok(u64::from_le_bytes(s.try_into()?))
}

fn program_headers(b: &[u8]) -> Result<Vec<Phdr>> {
    ensure!(b.get(..4) == Some(b"\x7fELF".as_slice()), "not an ELF file");
    ensure!(b.get(4) == Some(&2), "not ELF64 (EI_CLASS {:?})", b.get(4));
    ensure!(
        b.get(5) == Some(&1),
        "not little-endian (EI_DATA {:?})",
        b.get(5)
    );
    let phoff = usize::try_from(u64_at(b, 0x20)?)?;
    let phentsize = usize::from(u16_at(b, 0x36)?);
    let phnum = usize::from(u16_at(b, 0x38)?);
    ensure!(
        phentsize >= 56,
        "program header entries of {phentsize} bytes (need 56)"
    );
    (0..phnum)
        .map(|i| {
            let h = phoff + i * phentsize;
            Ok(Phdr {
                p_type: u32_at(b, h)?,
                offset: u64_at(b, h + 8)?,
                paddr: u64_at(b, h + 24)?,
                filesz: u64_at(b, h + 32)?,
                memsz: u64_at(b, h + 40)?,
                align: u64_at(b, h + 48)?,
            })
        })
        .collect()
}

fn align4(x: usize) -> usize {
    (x + 3) & !3
}

/// Splits a note segment into notes (4-byte aligned name and descriptor, as Xen reads them).
fn notes(seg: &[u8]) -> Result<Vec<Note<'_>>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < seg.len() {
        let namesz = u32_at(seg, at)? as usize;
        let descsz = u32_at(seg, at + 4)? as usize;
        let n_type = u32_at(seg, at + 8)?;
        let name_at = at + 12;
        let desc_at = name_at + align4(namesz);
        let name = seg
            .get(name_at..name_at + namesz)
            .context("note name runs past its segment")?;
        let desc = seg
            .get(desc_at..desc_at + descsz)
            .context("note descriptor runs past its segment")?;
        out.push(Note { n_type, name, desc });
        at = desc_at + align4(descsz);
    }
    Ok(out)
}

/// [`check_pvh_note`] on the bytes of an ELF file.
pub fn check_pvh_note_bytes(b: &[u8]) -> Result<u64> {
    let phdrs = program_headers(b)?;
    let mut found = Vec::new();
    for (i, ph) in phdrs
        .iter()
        .enumerate()
        .filter(|(_, p)| p.p_type == PT_NOTE)
    {
        let start = usize::try_from(ph.offset)?;
        let end = start
            .checked_add(usize::try_from(ph.filesz)?)
            .context("PT_NOTE size overflows")?;
        let seg = b
            .get(start..end)
            .with_context(|| format!("PT_NOTE {i} lies outside the file"))?;
        let notes = notes(seg).with_context(|| format!("PT_NOTE {i}"))?;
        if notes
            .iter()
            .any(|n| n.name == XEN_NOTE_NAME && n.n_type == XEN_ELFNOTE_PHYS32_ENTRY)
        {
            found.push((i, *ph, notes));
        }
    }
    let (i, ph, notes) = match found.len() {
        0 => bail!(
            "no \"Xen\" note of type {XEN_ELFNOTE_PHYS32_ENTRY} (XEN_ELFNOTE_PHYS32_ENTRY) in any PT_NOTE"
        ),
        1 => found.remove(0),
        n => bail!("{n} PT_NOTE segments hold a XEN_ELFNOTE_PHYS32_ENTRY note; expected one"),
    };
    ensure!(
        ph.align == 4,
        "the PT_NOTE holding XEN_ELFNOTE_PHYS32_ENTRY has p_align {} (must be 4)",
        ph.align
    );
    ensure!(
        notes.len() == 1,
        "PT_NOTE {i} holds {} notes; XEN_ELFNOTE_PHYS32_ENTRY must be alone in its segment",
        notes.len()
    );
    let desc = notes[0].desc;
    ensure!(
        desc.len() == 8,
        "XEN_ELFNOTE_PHYS32_ENTRY has a {}-byte descriptor (must be 8-byte: QEMU reads 8 from ELF64)",
        desc.len()
    );
    let entry = u64::from_le_bytes(desc.try_into()?);
    ensure!(entry < 1 << 32, "entry {entry:#x} is not a 32-bit address");
    let loaded = phdrs.iter().any(|p| {
        p.p_type == PT_LOAD && entry >= p.paddr && entry < p.paddr.saturating_add(p.memsz)
    });
    ensure!(
        loaded,
        "entry {entry:#x} is not inside any PT_LOAD segment's physical range"
    );
    Ok(entry)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds an ELF64 with one PT_LOAD (paddr 1 MiB, 64 KiB) and one PT_NOTE of `notes`.
    fn elf(note_align: u64, notes: &[(&[u8], u32, &[u8])]) -> Vec<u8> {
        let mut seg = Vec::new();
        for (name, ty, desc) in notes {
            let len = |b: &[u8]| u32::try_from(b.len()).expect("a short test note");
            seg.extend_from_slice(&len(name).to_le_bytes());
            seg.extend_from_slice(&len(desc).to_le_bytes());
            seg.extend_from_slice(&ty.to_le_bytes());
            seg.extend_from_slice(name);
            seg.resize(align4(seg.len()), 0);
            seg.extend_from_slice(desc);
            seg.resize(align4(seg.len()), 0);
        }
        let phoff = 64u64;
        let note_off = phoff + 2 * 56;
        let mut b = vec![0u8; 64];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2;
        b[5] = 1;
        b[6] = 1;
        b[0x20..0x28].copy_from_slice(&phoff.to_le_bytes());
        b[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        b[0x38..0x3a].copy_from_slice(&2u16.to_le_bytes());
        let phdr = |t: u32, off: u64, paddr: u64, filesz: u64, memsz: u64, align: u64| {
            let mut h = Vec::new();
            for v in [u64::from(t), off, paddr, paddr, filesz, memsz, align] {
                h.extend_from_slice(&v.to_le_bytes());
            }
            // p_type and p_flags share the first 8 bytes.
            h.splice(0..8, [t.to_le_bytes(), 5u32.to_le_bytes()].concat());
            h
        };
        b.extend(phdr(PT_LOAD, 0, 0x10_0000, 0x1_0000, 0x1_0000, 0x1000));
        b.extend(phdr(
            PT_NOTE,
            note_off,
            0,
            seg.len() as u64,
            seg.len() as u64,
            note_align,
        ));
        b.extend(seg);
        b
    }

    const ENTRY: [u8; 8] = 0x10_0040u64.to_le_bytes();

    #[test]
    fn good_note() {
        let b = elf(4, &[(b"Xen\0", 18, &ENTRY)]);
        assert_eq!(check_pvh_note_bytes(&b).unwrap(), 0x10_0040);
    }

    #[test]
    fn wrong_p_align() {
        let b = elf(8, &[(b"Xen\0", 18, &ENTRY)]);
        let e = check_pvh_note_bytes(&b).unwrap_err().to_string();
        assert!(e.contains("p_align 8"), "{e}");
    }

    #[test]
    fn four_byte_descriptor() {
        let b = elf(4, &[(b"Xen\0", 18, &0x10_0040u32.to_le_bytes())]);
        let e = check_pvh_note_bytes(&b).unwrap_err().to_string();
        assert!(e.contains("4-byte descriptor"), "{e}");
    }

    #[test]
    fn entry_outside_loaded_memory() {
        let b = elf(4, &[(b"Xen\0", 18, &0x20_0000u64.to_le_bytes())]);
        let e = check_pvh_note_bytes(&b).unwrap_err().to_string();
        assert!(e.contains("not inside any PT_LOAD"), "{e}");
    }

    #[test]
    fn missing_or_shared_note() {
        let b = elf(4, &[(b"Xen\0", 6, b"pvguest\0")]);
        let e = check_pvh_note_bytes(&b).unwrap_err().to_string();
        assert!(e.contains("no \"Xen\" note"), "{e}");
        let b = elf(4, &[(b"Xen\0", 6, b"pvguest\0"), (b"Xen\0", 18, &ENTRY)]);
        let e = check_pvh_note_bytes(&b).unwrap_err().to_string();
        assert!(e.contains("must be alone"), "{e}");
        let b = elf(4, &[(b"Xan\0", 18, &ENTRY)]);
        assert!(check_pvh_note_bytes(&b).is_err());
    }

    #[test]
    fn not_elf64() {
        let mut b = elf(4, &[(b"Xen\0", 18, &ENTRY)]);
        b[4] = 1;
        assert!(
            check_pvh_note_bytes(&b)
                .unwrap_err()
                .to_string()
                .contains("not ELF64")
        );
        assert!(check_pvh_note_bytes(b"MZ").is_err());
    }
}
