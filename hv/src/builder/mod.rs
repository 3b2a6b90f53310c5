//! The domain builder: loads a PVH kernel into a domain's RAM, writes `hvm_start_info` v1
//! with the memory map and the command line, and gives the initial registers.
//!
//! Placement follows Xen's toolstack (`xc_dom_build_image`, then `bootlate_hvm`): the kernel
//! (ELF32 or ELF64, see [`elf`]) at its `PT_LOAD` physical addresses, then on the next page
//! the ramdisk if any (xl's `ramdisk`, the one PVH module, without a command line of its
//! own), then on the next page the start info, the command line, the module list and the
//! memory map. The ACPI tables go to their own pages at 0xFC000000 ([`acpi`]), which the
//! caller maps before the build.

pub mod acpi;
pub mod elf;
pub mod layout;
pub mod regs;
pub mod xen_notes;

#[cfg(test)]
mod tests;

use abi::memory::E820Entry;
use abi::start_info::{
    HvmMemmapTableEntry, HvmModlistEntry, HvmStartInfo, XEN_HVM_START_MAGIC_VALUE,
};
use abi::wire::Unpadded;

use crate::guest::phys::{GuestPhys, PAGE_SIZE, PhysError, write_bytes};
use elf::{ElfError, PvhElf};
use layout::Layout;
use regs::InitialRegisters;

/// The longest command line Xen passes (`MAX_GUEST_CMDLINE`, with its NUL).
pub const MAX_CMDLINE: usize = 1024;

/// What the domain is given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DomainConfig<'a> {
    /// RAM in MiB (xl's `memory`).
    pub memory_mib: u64,
    /// The kernel's command line, without a NUL (empty: none).
    pub cmdline: &'a [u8],
    /// The ramdisk (xl's `ramdisk`), passed as the start info's one module.
    pub ramdisk: Option<&'a [u8]>,
}

/// What the builder made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Built {
    /// The vCPU's first registers.
    pub regs: InitialRegisters,
    /// The guest-physical layout.
    pub layout: Layout,
    /// Where the start info is.
    pub start_info_gpa: u64,
    /// The loaded kernel, `[start, end)`.
    pub kernel: (u64, u64),
    /// The loaded ramdisk, `[start, end)`, if any.
    pub ramdisk: Option<(u64, u64)>,
}

/// Why a domain could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BuildError {
    /// The image is not a PVH kernel `hv` can boot.
    Elf(ElfError),
    /// The memory size is out of range.
    Memory {
        /// The requested MiB.
        mib: u64,
    },
    /// A `PT_LOAD` segment lies outside the domain's RAM.
    SegmentOutsideRam {
        /// Its load address.
        paddr: u64,
        /// Its size in memory.
        memsz: u64,
    },
    /// The start info, command line and memory map do not fit after the kernel.
    NoRoomForStartInfo {
        /// Where they would start.
        at: u64,
    },
    /// The ramdisk does not fit in RAM after the kernel.
    NoRoomForRamdisk {
        /// Where it would start.
        at: u64,
        /// Its size in bytes.
        len: u64,
    },
    /// The command line is too long.
    CmdlineTooLong {
        /// Its length.
        len: usize,
    },
    /// The command line contains a NUL byte.
    CmdlineHasNul,
    /// Writing the domain's memory failed.
    Phys(PhysError),
}

impl From<ElfError> for BuildError {
    fn from(e: ElfError) -> Self {
        Self::Elf(e)
    }
}

impl From<PhysError> for BuildError {
    fn from(e: PhysError) -> Self {
        Self::Phys(e)
    }
}

impl core::fmt::Display for BuildError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            Self::Elf(e) => write!(f, "guest kernel refused: {e}"),
            Self::Memory { mib } => write!(
                f,
                "memory {mib} MiB out of range ({}..={} MiB)",
                layout::MIN_MEMORY_MIB,
                layout::LOW_RAM_LIMIT >> 20
            ),
            Self::SegmentOutsideRam { paddr, memsz } => write!(
                f,
                "guest kernel refused: segment at {paddr:#x} of {memsz:#x} bytes lies outside \
                 the domain's RAM"
            ),
            Self::NoRoomForStartInfo { at } => {
                write!(f, "no room for the start info at {at:#x} after the kernel")
            }
            Self::NoRoomForRamdisk { at, len } => write!(
                f,
                "no room for the ramdisk of {len:#x} bytes at {at:#x} after the kernel"
            ),
            Self::CmdlineTooLong { len } => write!(
                f,
                "command line of {len} bytes is longer than {} bytes",
                MAX_CMDLINE - 1
            ),
            Self::CmdlineHasNul => f.write_str("command line contains a NUL byte"),
            Self::Phys(PhysError { gpa }) => {
                write!(f, "cannot write guest-physical {gpa:#x}")
            }
        }
    }
}

const fn align_up(x: u64, align: u64) -> Option<u64> {
    match x.checked_add(align - 1) {
        Some(v) => Some(v & !(align - 1)),
        None => None,
    }
}

/// The start info's memory-map entry for `e` (`hvm_memmap_table_entry`: the E820 fields and
/// a reserved zero word).
pub const fn memmap_table_entry(e: &E820Entry) -> HvmMemmapTableEntry {
    HvmMemmapTableEntry {
        addr: e.addr,
        size: e.size,
        type_: e.type_,
        reserved: 0,
    }
}

/// Writes `len` zero bytes at `gpa`.
fn zero(mem: &mut impl GuestPhys, gpa: u64, len: u64) -> Result<(), PhysError> {
    const _: () = assert!(PAGE_SIZE == 4096);
    const ZEROS: [u8; 4096] = [0; 4096];
    let mut done = 0u64;
    while done < len {
        let n = (len - done).min(PAGE_SIZE);
        write_bytes(mem, gpa + done, &ZEROS[..n as usize])?;
        done += n;
    }
    Ok(())
}

/// Builds the domain: checks `image`, loads it into `mem`, writes the start info and returns
/// the registers to start it with. On error the domain's memory may be partly written; the
/// caller discards the domain.
pub fn build(
    mem: &mut impl GuestPhys,
    image: &[u8],
    cfg: &DomainConfig<'_>,
) -> Result<Built, BuildError> {
    let layout = Layout::new(cfg.memory_mib).ok_or(BuildError::Memory {
        mib: cfg.memory_mib,
    })?;
    if cfg.cmdline.len() >= MAX_CMDLINE {
        return Err(BuildError::CmdlineTooLong {
            len: cfg.cmdline.len(),
        });
    }
    if cfg.cmdline.contains(&0) {
        return Err(BuildError::CmdlineHasNul);
    }
    let elf = PvhElf::parse(image)?;

    for (index, seg) in elf.load_segments().enumerate() {
        let seg = seg.map_err(|()| ElfError::BadSegment { index })?;
        if !layout.is_ram(seg.paddr, seg.memsz) {
            return Err(BuildError::SegmentOutsideRam {
                paddr: seg.paddr,
                memsz: seg.memsz,
            });
        }
        // PvhElf::parse checked that the file bytes lie inside the image.
        let bytes = usize::try_from(seg.offset)
            .ok()
            .zip(usize::try_from(seg.filesz).ok())
            .and_then(|(off, len)| image.get(off..off.checked_add(len)?))
            .ok_or(ElfError::Malformed("a segment lies outside the file"))?;
        write_bytes(mem, seg.paddr, bytes)?;
        zero(mem, seg.paddr + seg.filesz, seg.memsz - seg.filesz)?;
    }
    let kernel = elf.kernel;

    let page_after =
        |end: u64| align_up(end, PAGE_SIZE).ok_or(BuildError::NoRoomForStartInfo { at: end });
    let mut next = page_after(kernel.1)?;
    let ramdisk = match cfg.ramdisk {
        Some(bytes) => {
            let len = bytes.len() as u64;
            if !layout.is_ram(next, len) {
                return Err(BuildError::NoRoomForRamdisk { at: next, len });
            }
            write_bytes(mem, next, bytes)?;
            let loaded = (next, next + len);
            next = page_after(loaded.1)?;
            Some(loaded)
        }
        None => None,
    };

    let info_gpa = next;
    let info_size = size_of::<HvmStartInfo>() as u64;
    let cmdline_gpa = info_gpa + info_size;
    let cmdline_size = if cfg.cmdline.is_empty() {
        0
    } else {
        cfg.cmdline.len() as u64 + 1
    };
    let modlist_gpa = align_up(cmdline_gpa + cmdline_size, 8).unwrap_or(u64::MAX);
    let modlist_size = if ramdisk.is_some() {
        size_of::<HvmModlistEntry>() as u64
    } else {
        0
    };
    let memmap = layout.memmap();
    let memmap_gpa = modlist_gpa.saturating_add(modlist_size);
    let memmap_size = (memmap.len() * size_of::<HvmMemmapTableEntry>()) as u64;
    if !layout.is_ram(info_gpa, memmap_gpa.saturating_sub(info_gpa) + memmap_size) {
        return Err(BuildError::NoRoomForStartInfo { at: info_gpa });
    }
    let info = HvmStartInfo {
        magic: XEN_HVM_START_MAGIC_VALUE,
        version: 1,
        flags: 0,
        nr_modules: u32::from(ramdisk.is_some()),
        modlist_paddr: if ramdisk.is_some() { modlist_gpa } else { 0 },
        cmdline_paddr: if cmdline_size == 0 { 0 } else { cmdline_gpa },
        rsdp_paddr: acpi::RSDP_GPA,
        memmap_paddr: memmap_gpa,
        // A handful of entries (RAM and the special pages).
        memmap_entries: u32::try_from(memmap.len()).unwrap_or(u32::MAX),
        reserved: 0,
    };
    zero(mem, info_gpa, memmap_gpa + memmap_size - info_gpa)?;
    write_bytes(mem, info_gpa, info.as_bytes())?;
    if cmdline_size != 0 {
        write_bytes(mem, cmdline_gpa, cfg.cmdline)?; // the NUL is already there
    }
    if let Some((start, end)) = ramdisk {
        let entry = HvmModlistEntry {
            paddr: start,
            size: end - start,
            cmdline_paddr: 0,
            reserved: 0,
        };
        write_bytes(mem, modlist_gpa, entry.as_bytes())?;
    }
    for (i, e) in memmap.iter().enumerate() {
        let at = memmap_gpa + (i * size_of::<HvmMemmapTableEntry>()) as u64;
        write_bytes(mem, at, memmap_table_entry(e).as_bytes())?;
    }
    let tables = acpi::build();
    write_bytes(mem, acpi::ACPI_INFO_GPA, &tables.info)?;
    write_bytes(mem, acpi::TABLES_GPA, &tables.tables)?;
    write_bytes(mem, acpi::RSDP_GPA, &tables.rsdp)?;
    Ok(Built {
        regs: InitialRegisters::pvh(elf.entry, info_gpa),
        layout,
        start_info_gpa: info_gpa,
        kernel,
        ramdisk,
    })
}
