//! The two facts the image build reads from ELF files: the shared libraries a program needs
//! (`DT_NEEDED`) and the modules a kernel module depends on (`depends=` in `.modinfo`).
use anyhow::{Context, Result, bail};

/// Section type of the dynamic section.
const SHT_DYNAMIC: u32 = 6;
/// Dynamic-section tag naming a needed library.
const DT_NEEDED: u64 = 1;

fn read_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn read_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn read_u64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}
fn to_usize(v: u64) -> Option<usize> {
    usize::try_from(v).ok()
}

/// The `DT_NEEDED` names of a little-endian ELF64 file, in order; empty for a static binary.
pub fn needed_libraries(elf: &[u8]) -> Result<Vec<String>> {
    needed(elf).context("malformed ELF64 file")
}

fn needed(elf: &[u8]) -> Result<Vec<String>> {
    if elf.get(..4) != Some(b"\x7fELF") || elf.get(4) != Some(&2) || elf.get(5) != Some(&1) {
        bail!("not a little-endian ELF64 file");
    }
    let short = || anyhow::anyhow!("truncated");
    let shoff = to_usize(read_u64(elf, 0x28).ok_or_else(short)?).ok_or_else(short)?;
    let shentsize = usize::from(read_u16(elf, 0x3a).ok_or_else(short)?);
    let shnum = usize::from(read_u16(elf, 0x3c).ok_or_else(short)?);
    let section = |i: usize| -> Result<(u32, usize, usize, u32)> {
        let at = shoff + i * shentsize;
        let kind = read_u32(elf, at + 4).ok_or_else(short)?;
        let offset = to_usize(read_u64(elf, at + 0x18).ok_or_else(short)?).ok_or_else(short)?;
        let size = to_usize(read_u64(elf, at + 0x20).ok_or_else(short)?).ok_or_else(short)?;
        let link = read_u32(elf, at + 0x28).ok_or_else(short)?;
        Ok((kind, offset, size, link))
    };
    let mut names = Vec::new();
    for i in 0..shnum {
        let (kind, offset, size, link) = section(i)?;
        if kind != SHT_DYNAMIC {
            continue;
        }
        let (_, str_offset, str_size, _) = section(link as usize)?;
        let strtab = elf
            .get(str_offset..str_offset + str_size)
            .ok_or_else(short)?;
        for entry in (offset..offset + size).step_by(16) {
            let tag = read_u64(elf, entry).ok_or_else(short)?;
            if tag == 0 {
                break;
            }
            if tag == DT_NEEDED {
                let at = to_usize(read_u64(elf, entry + 8).ok_or_else(short)?).ok_or_else(short)?;
                let rest = strtab.get(at..).ok_or_else(short)?;
                let end = rest.iter().position(|&c| c == 0).ok_or_else(short)?;
                names.push(String::from_utf8_lossy(&rest[..end]).into_owned());
            }
        }
    }
    Ok(names)
}

/// The modules named by the `depends=` entry of a kernel module's `.modinfo` strings.
pub fn module_depends(ko: &[u8]) -> Vec<String> {
    const KEY: &[u8] = b"\0depends=";
    let Some(start) = ko.windows(KEY.len()).position(|w| w == KEY) else {
        return Vec::new();
    };
    let value = &ko[start + KEY.len()..];
    let end = value.iter().position(|&c| c == 0).unwrap_or(value.len());
    String::from_utf8_lossy(&value[..end])
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{module_depends, needed_libraries};

    #[test]
    fn host_programs_need_libc() {
        // Any dynamically linked program of the host will do; cargo's test binary is one.
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let needed = needed_libraries(&exe).unwrap();
        assert!(
            needed.iter().any(|n| n.starts_with("libc.so")),
            "{needed:?}"
        );
    }

    #[test]
    fn rejects_non_elf() {
        assert!(needed_libraries(b"#!/bin/sh\n").is_err());
        assert!(needed_libraries(b"\x7fELF\x02\x01").is_err());
    }

    #[test]
    fn modinfo_depends() {
        let ko = b"\x7fELF...\0license=GPL\0depends=stp,llc\0intree=Y\0";
        assert_eq!(module_depends(ko), ["stp", "llc"]);
        assert!(module_depends(b"\0license=GPL\0depends=\0name=x\0").is_empty());
        assert!(module_depends(b"nothing here").is_empty());
    }
}
