//! Reading a PVH kernel as Xen 4.17's toolstack does for `type = "pvh"`: an ELF32 or ELF64
//! image (either byte order, any machine) read by libelf (`xen/common/libelf/`), tried by
//! libxenguest's two loaders in turn (`tools/libs/guest/xg_dom_elfloader.c`,
//! `xg_dom_hvmloader.c`):
//! - the "ELF-generic" loader takes an image whose "Xen" notes parse (`elf_xen_parse` with
//!   `hvm`): PT_NOTE segments (those with `p_offset` 0 skipped), else SHT_NOTE sections; a
//!   `XEN_ELFNOTE_PHYS32_ENTRY` note gives the 32-bit entry, which must lie inside the
//!   loaded kernel; without one the image is refused ("not capable of booting inside a HVM
//!   container");
//! - the "HVM-generic" loader takes any other ELF32 image and enters it at `e_entry`.
//!
//! Segments are loaded by their physical addresses (`PT_LOAD` with one of R, W, X set, as
//! `elf_phdr_is_loadable`). The headers are parsed with the `elf` crate
//! (`default-features = false`: no_std, no alloc, zero-copy, every offset and size
//! bounds-checked, typed errors, widely used and maintained); the notes with
//! [`super::xen_notes`], which reads them as libelf does. `xmas-elf` would do too, but its
//! accessors panic on some malformed input, which a loader of untrusted images cannot have;
//! `goblin` needs alloc for what we use.

use elf::ElfBytes;
use elf::abi::{PT_LOAD, PT_NOTE, SHT_NOTE};
use elf::endian::AnyEndian;
use elf::file::Class;
use elf::segment::ProgramHeader;

use abi::features::XENFEAT_DOM0;

use super::xen_notes::{self, NoteError, Reader, XenParms};

/// `EM_386`.
const EM_386: u16 = 3;
/// `EM_X86_64`.
const EM_X86_64: u16 = 62;
/// `PF_X | PF_W | PF_R`: a `PT_LOAD` with none of them is not loaded.
const PF_RWX: u32 = 7;

/// Why Xen's toolstack would not boot an image as a PVH domU (or why hv cannot).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElfError {
    /// The ELF headers or tables do not parse (the reason from the parser).
    Malformed(&'static str),
    /// The "Xen" notes do not parse for a PVH domU (so the ELF-generic loader does not take
    /// the image), and the image is 64-bit (so the HVM-generic loader does not either).
    NotPvh(NotesError),
    /// The notes parse but give no PHYS32_ENTRY: a PV-only kernel.
    NoPhys32Entry,
    /// A FEATURES note requires `dom0`.
    RequiresDom0,
    /// No loadable `PT_LOAD` segment.
    NoLoadSegments,
    /// A `PT_LOAD` segment whose file size exceeds its memory size, or whose end overflows.
    BadSegment {
        /// Index of the program header.
        index: usize,
    },
}

/// Why `elf_xen_parse` refuses an image for a PVH domU (libelf's message in each doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotesError {
    /// "Not a Xen-ELF image: No ELF notes or '__xen_guest' section found" (an x86 image
    /// with no PT_NOTE segment or SHT_NOTE section).
    NoNotes,
    /// "Will only load images built for the generic loader or Linux images ... or with
    /// PHYS32_ENTRY set", or "Xen will only load images built for Xen v3.0".
    NotForXen,
    /// A FEATURES note requires a feature Xen does not know.
    UnknownRequiredFeature,
    /// "ELF_PADDR_OFFSET set, VIRT_BASE unset".
    PaddrOffsetWithoutVirtBase,
    /// "ELF start or entries are out of bounds": the entry lies outside the kernel.
    EntryOutOfBounds {
        /// The entry (PHYS32_ENTRY, else `e_entry`).
        entry: u64,
        /// The kernel's first loaded byte.
        start: u64,
        /// The kernel's end.
        end: u64,
    },
    /// "P->M table base is out of bounds": INIT_P2M inside the kernel.
    P2mInsideKernel,
}

impl core::fmt::Display for NotesError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            Self::NoNotes => f.write_str("no ELF notes (no PT_NOTE segment or SHT_NOTE section)"),
            Self::NotForXen => f.write_str(
                "no XEN_ELFNOTE_PHYS32_ENTRY note (name \"Xen\", type 18), and the notes do not \
                 name the generic loader or Linux for Xen 3.0",
            ),
            Self::UnknownRequiredFeature => {
                f.write_str("a FEATURES note requires a feature Xen does not know")
            }
            Self::PaddrOffsetWithoutVirtBase => {
                f.write_str("a PADDR_OFFSET note without a VIRT_BASE note")
            }
            Self::EntryOutOfBounds { entry, start, end } => write!(
                f,
                "entry {entry:#x} lies outside the kernel [{start:#x}, {end:#x}]"
            ),
            Self::P2mInsideKernel => f.write_str("the INIT_P2M address lies inside the kernel"),
        }
    }
}

impl core::fmt::Display for ElfError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            Self::Malformed(why) => write!(f, "not a valid ELF image: {why}"),
            Self::NotPvh(why) => write!(
                f,
                "not a PVH kernel: {why}; and a 64-bit ELF, which Xen's HVM loader does not \
                 enter at e_entry"
            ),
            Self::NoPhys32Entry => f.write_str(
                "not a PVH kernel: its Xen notes give no XEN_ELFNOTE_PHYS32_ENTRY (a PV-only \
                 kernel: \"not capable of booting inside a HVM container\")",
            ),
            Self::RequiresDom0 => {
                f.write_str("the kernel does not support unprivileged (domU) operation")
            }
            Self::NoLoadSegments => f.write_str("no loadable PT_LOAD segment"),
            Self::BadSegment { index } => write!(
                f,
                "PT_LOAD segment {index}: file size exceeds memory size, or its end overflows"
            ),
        }
    }
}

fn malformed(e: &elf::ParseError) -> ElfError {
    use elf::ParseError as P;
    ElfError::Malformed(match e {
        P::BadMagic(_) => "bad magic (not an ELF file)",
        P::UnsupportedElfClass(_) => "unknown ELF class",
        P::UnsupportedElfEndianness(_) => "unknown byte order",
        P::UnsupportedVersion(_) => "unknown ELF version",
        P::BadOffset(_) | P::SliceReadError(_) => "a header or table lies outside the file",
        P::IntegerOverflow => "an offset or size overflows",
        _ => "malformed headers or tables",
    })
}

/// One `PT_LOAD` segment: `filesz` bytes from the file at `offset`, loaded at `paddr`,
/// followed by zeros up to `memsz`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadSegment {
    /// Guest-physical load address (`p_paddr`).
    pub paddr: u64,
    /// Offset of the bytes in the file.
    pub offset: u64,
    /// Bytes taken from the file.
    pub filesz: u64,
    /// Bytes in memory (the rest is zeroed).
    pub memsz: u64,
}

/// Which of libxenguest's loaders would take the image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loader {
    /// "ELF-generic": a PVH kernel, entered at its PHYS32_ENTRY.
    Pvh,
    /// "HVM-generic": an ELF32 image without usable Xen notes, entered at `e_entry`.
    Hvm,
}

/// A checked PVH kernel image.
pub struct PvhElf<'a> {
    file: ElfBytes<'a, AnyEndian>,
    /// The 32-bit entry point.
    pub entry: u32,
    /// The loader that took it.
    pub loader: Loader,
    /// What its "Xen" notes said.
    pub parms: XenParms,
    /// The loaded kernel, `[start, end)` (libelf's `pstart`, `pend`).
    pub kernel: (u64, u64),
}

impl<'a> PvhElf<'a> {
    /// Parses and checks `image`.
    pub fn parse(image: &'a [u8]) -> Result<Self, ElfError> {
        let file = ElfBytes::<AnyEndian>::minimal_parse(image).map_err(|e| malformed(&e))?;
        let mut elf = Self {
            file,
            entry: 0,
            loader: Loader::Pvh,
            parms: XenParms::default(),
            kernel: (u64::MAX, 0),
        };
        // elf_parse_binary: the loaded range.
        let mut kernel = (u64::MAX, 0u64);
        for (index, seg) in elf.load_segments().enumerate() {
            let seg = seg.map_err(|()| ElfError::BadSegment { index })?;
            let file_end = seg.offset.checked_add(seg.filesz);
            if file_end.is_none_or(|end| end > image.len() as u64) {
                return Err(ElfError::Malformed("a segment lies outside the file"));
            }
            kernel.0 = kernel.0.min(seg.paddr);
            kernel.1 = kernel.1.max(seg.paddr + seg.memsz);
        }
        elf.kernel = kernel;
        match elf.xen_parse(image) {
            Ok(parms) => {
                // xc_dom_parse_elf_kernel, then xc_dom_guest_type for an HVM container.
                elf.parms = parms;
                if parms.required & (1 << XENFEAT_DOM0) != 0 {
                    return Err(ElfError::RequiresDom0);
                }
                elf.entry = parms.phys_entry.ok_or(ElfError::NoPhys32Entry)?;
            }
            Err(why) => {
                // xc_dom_parse_hvm_kernel: any ELF32, entered at e_entry.
                if elf.file.ehdr.class != Class::ELF32 {
                    return Err(ElfError::NotPvh(why));
                }
                elf.loader = Loader::Hvm;
                // phys_entry is a uint32_t; an ELF32 e_entry fits.
                elf.entry = u32::try_from(elf.file.ehdr.e_entry & 0xffff_ffff).unwrap_or(0);
            }
        }
        if elf.kernel.0 > elf.kernel.1 {
            return Err(ElfError::NoLoadSegments);
        }
        Ok(elf)
    }

    fn program_headers(&self) -> impl Iterator<Item = ProgramHeader> + '_ {
        self.file.segments().into_iter().flatten()
    }

    /// `elf_xen_parse(elf, parms, hvm = true)`: the notes, `elf_xen_note_check` and
    /// `elf_xen_addr_calc_check` for a PVH domU.
    fn xen_parse(&self, image: &[u8]) -> Result<XenParms, NotesError> {
        let r = Reader {
            image,
            big_endian: self.file.ehdr.endianness == AnyEndian::Big,
        };
        let mut parms = XenParms::default();
        let mut total = 0u32;
        let mut any_notes = false;
        let invalid = |_: NoteError| NotesError::UnknownRequiredFeature;
        for ph in self.program_headers().filter(|p| p.p_type == PT_NOTE) {
            // "Some versions of binutils do not correctly set p_offset for note segments."
            if ph.p_offset == 0 {
                continue;
            }
            any_notes = true;
            let end = ph.p_offset.saturating_add(ph.p_filesz);
            xen_notes::parse_notes(&r, ph.p_offset, end, &mut parms, &mut total)
                .map_err(invalid)?;
        }
        // Then SHT_NOTE sections, if no segment held a "Xen" note.
        if parms.xen_notes == 0 {
            let sections = self.file.section_headers().into_iter().flatten().skip(1);
            for sh in sections.filter(|s| s.sh_type == SHT_NOTE) {
                any_notes = true;
                let end = sh.sh_offset.saturating_add(sh.sh_size);
                xen_notes::parse_notes(&r, sh.sh_offset, end, &mut parms, &mut total)
                    .map_err(invalid)?;
            }
        }
        // elf_xen_note_check.
        let machine = self.file.ehdr.e_machine;
        if !any_notes && (machine == EM_386 || machine == EM_X86_64) {
            return Err(NotesError::NoNotes);
        }
        if any_notes
            && parms.phys_entry.is_none()
            && (!(parms.loader_generic || parms.guest_os_linux) || !parms.xen_version_3)
        {
            return Err(NotesError::NotForXen);
        }
        // elf_xen_addr_calc_check: for PVH the virtual base and the physical offset are 0,
        // so the kernel's virtual range is its physical one.
        if parms.paddr_offset.is_some() && parms.virt_base.is_none() {
            return Err(NotesError::PaddrOffsetWithoutVirtBase);
        }
        let (start, end) = self.kernel;
        let entry = parms.phys_entry.map_or(self.file.ehdr.e_entry, u64::from);
        if start > end || entry < start || entry > end {
            return Err(NotesError::EntryOutOfBounds { entry, start, end });
        }
        if parms.p2m_base.is_some_and(|p| (start..end).contains(&p)) {
            return Err(NotesError::P2mInsideKernel);
        }
        Ok(parms)
    }

    /// The loadable `PT_LOAD` segments (one of R, W, X set, as Xen's
    /// `elf_phdr_is_loadable`), each checked for sizes that make sense.
    pub fn load_segments(&self) -> impl Iterator<Item = Result<LoadSegment, ()>> + '_ {
        self.program_headers()
            .filter(|p| p.p_type == PT_LOAD && p.p_flags & PF_RWX != 0)
            .map(|p| {
                let ok = p.p_filesz <= p.p_memsz && p.p_paddr.checked_add(p.p_memsz).is_some();
                ok.then_some(LoadSegment {
                    paddr: p.p_paddr,
                    offset: p.p_offset,
                    filesz: p.p_filesz,
                    memsz: p.p_memsz,
                })
                .ok_or(())
            })
    }
}
