//! Xen's ELF notes as Xen 4.17's libelf reads them (`elf_xen_parse_notes`,
//! `elf_xen_parse_note`, `elf_xen_parse_features` in `xen/common/libelf/libelf-dominfo.c`):
//! the notes named "Xen" in a byte range of the image, 4-byte aligned whatever the segment's
//! `p_align`, every field read inside the image or as 0 (as `elf_access_unsigned` does), a
//! string up to its NUL anywhere in the image, a number of 1, 2, 4 or 8 bytes (any other
//! size reads as 0).

use abi::elfnote as n;
use abi::features::{
    XENFEAT_AUTO_TRANSLATED_PHYSMAP, XENFEAT_DOM0, XENFEAT_HVM_CALLBACK_VECTOR,
    XENFEAT_PAE_PGDIR_ABOVE_4GB, XENFEAT_SUPERVISOR_MODE_KERNEL, XENFEAT_WRITABLE_PAGE_TABLES,
};

/// libelf's `ELF_MAX_TOTAL_NOTE_COUNT`: notes read in one image at most.
pub const MAX_TOTAL_NOTES: u32 = 65536;
/// libelf's `ELF_MAX_STRING_LENGTH`.
const MAX_STRING: usize = 4096;
/// Xen's `UNSET_ADDR32`: `phys_entry` when no PHYS32_ENTRY note was read.
pub const UNSET_ADDR32: u32 = u32::MAX;

/// What the "Xen" notes said that the PVH path looks at (`struct elf_dom_parms`). An address
/// a note did not give is `None` (Xen's `UNSET_ADDR`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenParms {
    /// `XEN_ELFNOTE_PHYS32_ENTRY`, truncated to 32 bits as Xen stores it
    /// ([`UNSET_ADDR32`] counts as unset).
    pub phys_entry: Option<u32>,
    /// `XEN_ELFNOTE_VIRT_BASE`.
    pub virt_base: Option<u64>,
    /// `XEN_ELFNOTE_PADDR_OFFSET`.
    pub paddr_offset: Option<u64>,
    /// `XEN_ELFNOTE_INIT_P2M`.
    pub p2m_base: Option<u64>,
    /// `XEN_ELFNOTE_LOADER` starts with "generic".
    pub loader_generic: bool,
    /// `XEN_ELFNOTE_GUEST_OS` starts with "linux".
    pub guest_os_linux: bool,
    /// `XEN_ELFNOTE_XEN_VERSION` starts with "xen-3.0".
    pub xen_version_3: bool,
    /// `XEN_ELFNOTE_BSD_SYMTAB` is "yes" (Xen would load the symbol table after the
    /// kernel; hv does not, see the crate docs).
    pub bsd_symtab: bool,
    /// Features the kernel requires (`!name` in `XEN_ELFNOTE_FEATURES`), bit = XENFEAT_*.
    pub required: u32,
    /// Notes named "Xen" that were read.
    pub xen_notes: u32,
}

/// A "Xen" note that makes libelf give up on the image (`elf_xen_parse_note` returning -1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoteError {
    /// `XEN_ELFNOTE_FEATURES` requires (`!name`) a feature Xen does not know.
    UnknownRequiredFeature,
}

/// Xen's `elf_xen_feature_names`: the names a FEATURES note may use.
const FEATURE_NAMES: [(&[u8], u32); 7] = [
    (b"writable_page_tables", XENFEAT_WRITABLE_PAGE_TABLES),
    (b"writable_descriptor_tables", 1),
    (b"auto_translated_physmap", XENFEAT_AUTO_TRANSLATED_PHYSMAP),
    (b"supervisor_mode_kernel", XENFEAT_SUPERVISOR_MODE_KERNEL),
    (b"pae_pgdir_above_4gb", XENFEAT_PAE_PGDIR_ABOVE_4GB),
    (b"hvm_callback_vector", XENFEAT_HVM_CALLBACK_VECTOR),
    (b"dom0", XENFEAT_DOM0),
];

/// `elf_xen_parse_features`: `|`-separated names of at most 63 bytes each; a `!` marks a
/// required one. Returns the required bits, or an error for an unknown required name
/// (unknown supported names are ignored).
pub fn parse_features(features: &[u8]) -> Result<u32, NoteError> {
    let mut required = 0u32;
    let mut rest = features;
    while !rest.is_empty() {
        // Up to 63 bytes, ending at (and consuming) a '|'.
        let take = rest.iter().take(63).position(|&b| b == b'|');
        let (token, used) = match take {
            Some(i) => (&rest[..i], i + 1),
            None => {
                let n = rest.len().min(63);
                (&rest[..n], n)
            }
        };
        rest = &rest[used..];
        if let Some(name) = token.strip_prefix(b"!") {
            match FEATURE_NAMES.iter().find(|(n, _)| *n == name) {
                Some(&(_, bit)) => required |= 1 << bit,
                None => return Err(NoteError::UnknownRequiredFeature),
            }
        }
    }
    Ok(required)
}

/// Reads fields of the image with its byte order, each as 0 outside it.
#[derive(Clone, Copy)]
pub struct Reader<'a> {
    /// The whole image.
    pub image: &'a [u8],
    /// Big-endian (`EI_DATA` = 2).
    pub big_endian: bool,
}

impl Reader<'_> {
    fn uint(&self, at: u64, size: usize) -> u64 {
        let Some(bytes) = usize::try_from(at)
            .ok()
            .and_then(|a| self.image.get(a..a.checked_add(size)?))
        else {
            return 0;
        };
        let mut b = [0u8; 8];
        if self.big_endian {
            b[8 - size..].copy_from_slice(bytes);
            u64::from_be_bytes(b)
        } else {
            b[..size].copy_from_slice(bytes);
            u64::from_le_bytes(b)
        }
    }

    fn u32(&self, at: u64) -> u32 {
        u32::try_from(self.uint(at, 4)).unwrap_or(0)
    }

    /// `elf_strval`: the bytes from `at` to the next NUL in the image; None if there is no
    /// NUL inside the image or within 4096 bytes.
    fn string(&self, at: u64) -> Option<&[u8]> {
        let tail = self.image.get(usize::try_from(at).ok()?..)?;
        let len = tail.iter().take(MAX_STRING + 1).position(|&b| b == 0)?;
        Some(&tail[..len])
    }
}

const fn align4(v: u64) -> u64 {
    (v + 3) & !3
}

/// Reads the notes in `[start, end)` of the image into `parms` (`elf_xen_parse_notes`),
/// counting every note in `total` (at most [`MAX_TOTAL_NOTES`] are read in one image).
pub fn parse_notes(
    r: &Reader<'_>,
    start: u64,
    end: u64,
    parms: &mut XenParms,
    total: &mut u32,
) -> Result<(), NoteError> {
    let mut at = start;
    // elf_note_next: a note outside the image ends the walk.
    while at < end && at < r.image.len() as u64 {
        if *total >= MAX_TOTAL_NOTES {
            break; // Xen marks the image broken and stops reading notes
        }
        *total += 1;
        let namesz = u64::from(r.u32(at));
        let descsz = u64::from(r.u32(at + 4));
        let note_type = r.u32(at + 8);
        let desc = at + 12 + align4(namesz);
        if r.string(at + 12) == Some(b"Xen") {
            parse_note(r, note_type, desc, descsz, parms)?;
            parms.xen_notes += 1;
        }
        at = desc + align4(descsz);
    }
    Ok(())
}

/// One "Xen" note (`elf_xen_parse_note`).
fn parse_note(
    r: &Reader<'_>,
    note_type: u32,
    desc: u64,
    descsz: u64,
    parms: &mut XenParms,
) -> Result<(), NoteError> {
    let numeric = || match descsz {
        1 => r.uint(desc, 1),
        2 => r.uint(desc, 2),
        4 => r.uint(desc, 4),
        8 => r.uint(desc, 8),
        _ => 0,
    };
    match note_type {
        n::XEN_ELFNOTE_PHYS32_ENTRY => {
            // Xen keeps it in a uint32_t; the all-ones value means unset.
            let entry = u32::try_from(numeric() & u64::from(u32::MAX)).unwrap_or(UNSET_ADDR32);
            parms.phys_entry = (entry != UNSET_ADDR32).then_some(entry);
        }
        n::XEN_ELFNOTE_VIRT_BASE => parms.virt_base = Some(numeric()),
        n::XEN_ELFNOTE_PADDR_OFFSET => parms.paddr_offset = Some(numeric()),
        n::XEN_ELFNOTE_INIT_P2M => parms.p2m_base = Some(numeric()),
        n::XEN_ELFNOTE_XEN_VERSION
        | n::XEN_ELFNOTE_GUEST_OS
        | n::XEN_ELFNOTE_GUEST_VERSION
        | n::XEN_ELFNOTE_LOADER
        | n::XEN_ELFNOTE_PAE_MODE
        | n::XEN_ELFNOTE_FEATURES
        | n::XEN_ELFNOTE_BSD_SYMTAB => {
            // A string note without its NUL is skipped (elf_strval fails).
            let Some(s) = r.string(desc) else {
                return Ok(());
            };
            match note_type {
                n::XEN_ELFNOTE_LOADER => parms.loader_generic = s.starts_with(b"generic"),
                n::XEN_ELFNOTE_GUEST_OS => parms.guest_os_linux = s.starts_with(b"linux"),
                n::XEN_ELFNOTE_XEN_VERSION => parms.xen_version_3 = s.starts_with(b"xen-3.0"),
                n::XEN_ELFNOTE_BSD_SYMTAB => parms.bsd_symtab |= s == b"yes",
                n::XEN_ELFNOTE_FEATURES => parms.required |= parse_features(s)?,
                _ => {}
            }
        }
        // ENTRY, HYPERCALL_PAGE, HV_START_LOW, SUSPEND_CANCEL, MOD_START_PFN and
        // SUPPORTED_FEATURES mean nothing to a PVH domU hv builds (no modules, every
        // supported feature offered); other types are unknown to Xen too.
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_as_xen_parses_them() {
        assert_eq!(parse_features(b""), Ok(0));
        assert_eq!(
            parse_features(b"writable_page_tables|!auto_translated_physmap|nonsense"),
            Ok(1 << XENFEAT_AUTO_TRANSLATED_PHYSMAP)
        );
        assert_eq!(parse_features(b"!dom0"), Ok(1 << XENFEAT_DOM0));
        assert_eq!(
            parse_features(b"hvm_callback_vector|!nonsense"),
            Err(NoteError::UnknownRequiredFeature)
        );
        assert_eq!(parse_features(b"!"), Err(NoteError::UnknownRequiredFeature));
    }

    #[test]
    fn notes_outside_the_image_read_as_zero() {
        let image = [12u8, 0, 0, 0];
        let r = Reader {
            image: &image,
            big_endian: false,
        };
        let mut parms = XenParms::default();
        let mut total = 0;
        assert_eq!(parse_notes(&r, 0, u64::MAX, &mut parms, &mut total), Ok(()));
        assert_eq!(parms, XenParms::default());
        assert!(total < 4, "the walk stops once outside the image");
    }
}
