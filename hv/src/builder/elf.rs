//! Reading a PVH kernel: a 64-bit little-endian x86-64 ELF executable whose `PT_NOTE`
//! segments hold Xen's `XEN_ELFNOTE_PHYS32_ENTRY` note, loaded by its `PT_LOAD` segments'
//! physical addresses, as Xen's libelf does (`elf_xen_parse_note`, `elf_load_binary`).
//!
//! The headers are parsed with the `elf` crate (`default-features = false`: no_std, no
//! alloc, zero-copy, every offset and size bounds-checked, typed errors, widely used and
//! maintained). `xmas-elf` would do too, but its accessors panic on some malformed input,
//! which a loader of untrusted images cannot have; `goblin` needs alloc for what we use.

use elf::ElfBytes;
use elf::abi::{EM_X86_64, ET_DYN, ET_EXEC, PT_LOAD, PT_NOTE};
use elf::endian::LittleEndian;
use elf::file::Class;
use elf::note::{Note, NoteIterator};
use elf::segment::ProgramHeader;

use abi::elfnote::XEN_ELFNOTE_PHYS32_ENTRY;

/// Why an image is not a PVH kernel `hv` can boot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElfError {
    /// The ELF headers or tables do not parse (the reason from the parser).
    Malformed(&'static str),
    /// An ELF32 image: `hv` boots 64-bit PVH kernels only.
    Not64Bit,
    /// `e_machine` is not x86-64.
    NotX86_64 {
        /// The image's `e_machine`.
        machine: u16,
    },
    /// `e_type` is neither `ET_EXEC` nor `ET_DYN` (a relocatable object or a core file).
    NotExecutable {
        /// The image's `e_type`.
        e_type: u16,
    },
    /// No `XEN_ELFNOTE_PHYS32_ENTRY` note named "Xen" in any `PT_NOTE` segment.
    NoPvhNote,
    /// The PHYS32_ENTRY note's value is not 1, 2, 4 or 8 bytes long.
    BadNoteSize {
        /// The descriptor size.
        size: usize,
    },
    /// The PHYS32_ENTRY value does not fit in 32 bits.
    EntryOutOfRange {
        /// The value.
        entry: u64,
    },
    /// No `PT_LOAD` segment.
    NoLoadSegments,
    /// A `PT_LOAD` segment whose file size exceeds its memory size, or whose end overflows.
    BadSegment {
        /// Index of the program header.
        index: usize,
    },
}

impl core::fmt::Display for ElfError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            Self::Malformed(why) => write!(f, "not a valid ELF image: {why}"),
            Self::Not64Bit => f.write_str("a 32-bit ELF: hv boots 64-bit PVH kernels only"),
            Self::NotX86_64 { machine } => {
                write!(f, "ELF machine {machine} is not x86-64 (62)")
            }
            Self::NotExecutable { e_type } => {
                write!(
                    f,
                    "ELF type {e_type} is not an executable (ET_EXEC or ET_DYN)"
                )
            }
            Self::NoPvhNote => f.write_str(
                "no XEN_ELFNOTE_PHYS32_ENTRY note (name \"Xen\", type 18) in a PT_NOTE segment: \
                 not a PVH kernel",
            ),
            Self::BadNoteSize { size } => {
                write!(
                    f,
                    "PHYS32_ENTRY note of {size} bytes (1, 2, 4 or 8 expected)"
                )
            }
            Self::EntryOutOfRange { entry } => {
                write!(f, "PHYS32_ENTRY {entry:#x} does not fit in 32 bits")
            }
            Self::NoLoadSegments => f.write_str("no PT_LOAD segment"),
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
        P::UnsupportedElfEndianness(_) => "not little-endian",
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

/// A checked PVH kernel image.
pub struct PvhElf<'a> {
    file: ElfBytes<'a, LittleEndian>,
    /// The 32-bit entry point from the PHYS32_ENTRY note.
    pub entry: u32,
}

impl<'a> PvhElf<'a> {
    /// Parses and checks `image`.
    pub fn parse(image: &'a [u8]) -> Result<Self, ElfError> {
        let file = ElfBytes::<LittleEndian>::minimal_parse(image).map_err(|e| malformed(&e))?;
        let h = &file.ehdr;
        if h.class != Class::ELF64 {
            return Err(ElfError::Not64Bit);
        }
        if h.e_machine != EM_X86_64 {
            return Err(ElfError::NotX86_64 {
                machine: h.e_machine,
            });
        }
        // Like Xen's libelf, a position-independent image is loaded at its physical
        // addresses too.
        if h.e_type != ET_EXEC && h.e_type != ET_DYN {
            return Err(ElfError::NotExecutable { e_type: h.e_type });
        }
        let mut elf = Self { file, entry: 0 };
        elf.entry = elf.phys32_entry()?;
        let mut loads = 0usize;
        for (index, seg) in elf.load_segments().enumerate() {
            let seg = seg.map_err(|_| ElfError::BadSegment { index })?;
            let file_end = seg.offset.checked_add(seg.filesz);
            if file_end.is_none_or(|end| end > image.len() as u64) {
                return Err(ElfError::Malformed("a segment lies outside the file"));
            }
            loads += 1;
        }
        if loads == 0 {
            return Err(ElfError::NoLoadSegments);
        }
        Ok(elf)
    }

    fn program_headers(&self) -> impl Iterator<Item = ProgramHeader> + '_ {
        self.file.segments().into_iter().flatten()
    }

    /// The value of the first "Xen" PHYS32_ENTRY note in a `PT_NOTE` segment. Like Xen's
    /// libelf, notes are read with 4-byte alignment whatever the segment's `p_align`, and the
    /// value is a little-endian number of 1, 2, 4 or 8 bytes.
    fn phys32_entry(&self) -> Result<u32, ElfError> {
        for ph in self.program_headers().filter(|p| p.p_type == PT_NOTE) {
            let data = self.file.segment_data(&ph).map_err(|e| malformed(&e))?;
            let notes = NoteIterator::new(LittleEndian, Class::ELF64, 4, data);
            for note in notes {
                let Note::Unknown(n) = note else { continue };
                // Xen compares the name with strcmp: up to its first NUL.
                let name = n.name.split(|&b| b == 0).next().unwrap_or(&[]);
                if name != b"Xen" || n.n_type != u64::from(XEN_ELFNOTE_PHYS32_ENTRY) {
                    continue;
                }
                let entry = match n.desc.len() {
                    1 | 2 | 4 | 8 => {
                        let mut b = [0u8; 8];
                        b[..n.desc.len()].copy_from_slice(n.desc);
                        u64::from_le_bytes(b)
                    }
                    size => return Err(ElfError::BadNoteSize { size }),
                };
                return u32::try_from(entry).map_err(|_| ElfError::EntryOutOfRange { entry });
            }
        }
        Err(ElfError::NoPvhNote)
    }

    /// The `PT_LOAD` segments, each checked for sizes that make sense.
    pub fn load_segments(&self) -> impl Iterator<Item = Result<LoadSegment, ()>> + '_ {
        self.program_headers()
            .filter(|p| p.p_type == PT_LOAD)
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
