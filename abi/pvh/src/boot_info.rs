//! The PVH start info (`hvm_start_info`, Xen's docs/misc/pvh.pandoc) and the memory map:
//! parsing and source selection, for both kernels (pvguest reads what Xen or hv's domain
//! builder wrote, hv what QEMU's PVH loader wrote).
//!
//! Host-testable: physical memory is reached only through [`PhysRead`], so tests feed synthetic
//! start-info blobs. A kernel implements [`PhysRead`] over its identity map. Every address
//! derived from a loader-supplied field is computed with checked arithmetic: a field near
//! 2^64 is [`BootInfoError::Unreadable`], never a wrap.
#![warn(clippy::arithmetic_side_effects)]

use core::mem::{offset_of, size_of};

use abi::start_info::{HvmMemmapTableEntry, HvmModlistEntry, HvmStartInfo};

/// Reads guest-physical memory; returns `None` when the range is not readable.
pub trait PhysRead {
    /// Copies `buf.len()` bytes starting at physical address `paddr` into `buf`.
    fn read(&self, paddr: u64, buf: &mut [u8]) -> Option<()>;

    /// Reads a little-endian `u32` at `paddr`.
    fn read_u32(&self, paddr: u64) -> Option<u32> {
        let mut b = [0u8; 4];
        self.read(paddr, &mut b)?;
        Some(u32::from_le_bytes(b))
    }

    /// Reads a little-endian `u64` at `paddr`.
    fn read_u64(&self, paddr: u64) -> Option<u64> {
        let mut b = [0u8; 8];
        self.read(paddr, &mut b)?;
        Some(u64::from_le_bytes(b))
    }
}

/// Errors found while reading the start info or the memory map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootInfoError {
    /// The start-info pointer or a table it names could not be read.
    Unreadable(u64),
    /// The magic field is not `XEN_HVM_START_MAGIC_VALUE`; carries what was found.
    BadMagic(u32),
    /// The command line has no terminating NUL within `max` bytes ([`CMDLINE_MAX`]).
    CmdlineTooLong {
        /// The limit that was exceeded.
        max: usize,
    },
    /// Neither the start info nor the fallback produced a memory map.
    NoMemoryMap,
    /// The memory map has more entries than the caller's buffer holds.
    TooManyRegions(u32),
    /// The caller's fallback map failed with this errno (pvguest's is the `XENMEM_memory_map`
    /// hypercall, whose errno is Xen's).
    FallbackFailed(i64),
    /// The start info lists fewer modules than the index asked for.
    NoSuchModule(u32),
}

impl core::fmt::Display for BootInfoError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Unreadable(at) => write!(f, "boot data at {at:#x} is not readable"),
            Self::BadMagic(m) => write!(
                f,
                "start info magic is {m:#x}, not XEN_HVM_START_MAGIC_VALUE"
            ),
            Self::CmdlineTooLong { max } => write!(
                f,
                "the command line is longer than {max} bytes, the most this kernel accepts (CMDLINE_MAX)"
            ),
            Self::NoMemoryMap => write!(f, "no memory map"),
            Self::TooManyRegions(n) => write!(f, "the memory map has {n} entries, too many"),
            Self::FallbackFailed(e) => write!(f, "the fallback memory map failed with errno {e}"),
            Self::NoSuchModule(i) => write!(f, "the start info has no module {i}"),
        }
    }
}

/// What a memory-map entry describes (the `XEN_HVM_MEMMAP_TYPE_*` / e820 type codes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegionKind {
    /// Usable RAM.
    Ram,
    /// Reserved.
    Reserved,
    /// ACPI tables (reclaimable).
    Acpi,
    /// ACPI non-volatile storage.
    Nvs,
    /// Unusable (bad) memory.
    Unusable,
    /// Disabled memory.
    Disabled,
    /// Persistent memory.
    Pmem,
    /// A type code this kernel does not know.
    Other(u32),
}

impl RegionKind {
    /// Maps a type code to a kind.
    pub fn from_code(code: u32) -> Self {
        use abi::start_info as s;
        match code {
            s::XEN_HVM_MEMMAP_TYPE_RAM => Self::Ram,
            s::XEN_HVM_MEMMAP_TYPE_RESERVED => Self::Reserved,
            s::XEN_HVM_MEMMAP_TYPE_ACPI => Self::Acpi,
            s::XEN_HVM_MEMMAP_TYPE_NVS => Self::Nvs,
            s::XEN_HVM_MEMMAP_TYPE_UNUSABLE => Self::Unusable,
            s::XEN_HVM_MEMMAP_TYPE_DISABLED => Self::Disabled,
            s::XEN_HVM_MEMMAP_TYPE_PMEM => Self::Pmem,
            other => Self::Other(other),
        }
    }

    /// The type code (inverse of [`RegionKind::from_code`]).
    pub fn code(self) -> u32 {
        use abi::start_info as s;
        match self {
            Self::Ram => s::XEN_HVM_MEMMAP_TYPE_RAM,
            Self::Reserved => s::XEN_HVM_MEMMAP_TYPE_RESERVED,
            Self::Acpi => s::XEN_HVM_MEMMAP_TYPE_ACPI,
            Self::Nvs => s::XEN_HVM_MEMMAP_TYPE_NVS,
            Self::Unusable => s::XEN_HVM_MEMMAP_TYPE_UNUSABLE,
            Self::Disabled => s::XEN_HVM_MEMMAP_TYPE_DISABLED,
            Self::Pmem => s::XEN_HVM_MEMMAP_TYPE_PMEM,
            Self::Other(code) => code,
        }
    }
}

/// One memory-map entry, copied out and decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryRegion {
    /// Physical start address.
    pub base: u64,
    /// Length in bytes.
    pub size: u64,
    /// What the range is.
    pub kind: RegionKind,
}

impl MemoryRegion {
    /// An empty reserved region (a filler for fixed arrays).
    pub const EMPTY: Self = Self {
        base: 0,
        size: 0,
        kind: RegionKind::Reserved,
    };

    /// One past the last byte, saturating at `u64::MAX`.
    pub fn end(&self) -> u64 {
        self.base.saturating_add(self.size)
    }

    /// Whether `[start, end)` lies inside this region.
    pub fn contains_range(&self, start: u64, end: u64) -> bool {
        start >= self.base && end <= self.end() && start <= end
    }
}

/// Where the memory map came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemoryMapSource {
    /// `hvm_start_info` v1 `memmap_paddr`/`memmap_entries`.
    StartInfo,
    /// The caller's fallback (start info v0 or without a map); for pvguest the
    /// `XENMEM_memory_map` hypercall, hence the name (the guest reports it in a `FACT` line).
    Hypercall,
}

/// The `hvm_start_info`, copied out and checked: the magic is right, and for a version-0
/// start info the v1 fields (`memmap_paddr`, `memmap_entries`, `reserved`) were not read and
/// are zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StartInfo {
    /// Where the start info itself lies.
    pub paddr: u64,
    /// Its fields.
    pub raw: HvmStartInfo,
}

/// The longest command line accepted (bytes, without the NUL). A longer one stops the boot
/// with [`BootInfoError::CmdlineTooLong`], whose message names this limit.
pub const CMDLINE_MAX: usize = 4096;

/// The size of the start info for `version` (v0 ends before `memmap_paddr`).
pub fn start_info_size(version: u32) -> u64 {
    if version >= 1 {
        size_of::<HvmStartInfo>() as u64
    } else {
        offset_of!(HvmStartInfo, memmap_paddr) as u64
    }
}

/// `base + offset` for a toolstack-supplied `base`; past 2^64 it is unreadable.
fn field_address(base: u64, offset: usize) -> Result<u64, BootInfoError> {
    u64::try_from(offset)
        .ok()
        .and_then(|off| base.checked_add(off))
        .ok_or(BootInfoError::Unreadable(base))
}

/// The address of entry `index` of a table of `stride`-byte entries at toolstack-supplied
/// `base`; past 2^64 it is unreadable.
fn table_entry(base: u64, index: usize, stride: usize) -> Result<u64, BootInfoError> {
    index
        .checked_mul(stride)
        .ok_or(BootInfoError::Unreadable(base))
        .and_then(|off| field_address(base, off))
}

impl StartInfo {
    /// Reads and checks the start info at `paddr` (magic; v1 fields only when version ≥ 1).
    pub fn read(mem: &impl PhysRead, paddr: u64) -> Result<Self, BootInfoError> {
        let field32 = |off: usize| {
            let at = field_address(paddr, off)?;
            mem.read_u32(at).ok_or(BootInfoError::Unreadable(at))
        };
        let field64 = |off: usize| {
            let at = field_address(paddr, off)?;
            mem.read_u64(at).ok_or(BootInfoError::Unreadable(at))
        };
        let magic = field32(offset_of!(HvmStartInfo, magic))?;
        if magic != abi::start_info::XEN_HVM_START_MAGIC_VALUE {
            return Err(BootInfoError::BadMagic(magic));
        }
        let version = field32(offset_of!(HvmStartInfo, version))?;
        let (memmap_paddr, memmap_entries) = if version >= 1 {
            (
                field64(offset_of!(HvmStartInfo, memmap_paddr))?,
                field32(offset_of!(HvmStartInfo, memmap_entries))?,
            )
        } else {
            (0, 0)
        };
        let raw = HvmStartInfo {
            magic,
            version,
            flags: field32(offset_of!(HvmStartInfo, flags))?,
            nr_modules: field32(offset_of!(HvmStartInfo, nr_modules))?,
            modlist_paddr: field64(offset_of!(HvmStartInfo, modlist_paddr))?,
            cmdline_paddr: field64(offset_of!(HvmStartInfo, cmdline_paddr))?,
            rsdp_paddr: field64(offset_of!(HvmStartInfo, rsdp_paddr))?,
            memmap_paddr,
            memmap_entries,
            reserved: 0,
        };
        Ok(Self { paddr, raw })
    }

    /// Whether the start info carries its own memory map.
    pub fn has_memmap(&self) -> bool {
        self.raw.version >= 1 && self.raw.memmap_paddr != 0 && self.raw.memmap_entries != 0
    }

    /// Copies the NUL-terminated command line into `buf`; returns its length (0 if none).
    pub fn read_cmdline(
        &self,
        mem: &impl PhysRead,
        buf: &mut [u8; CMDLINE_MAX],
    ) -> Result<usize, BootInfoError> {
        if self.raw.cmdline_paddr == 0 {
            return Ok(0);
        }
        let mut len = 0;
        loop {
            let at = field_address(self.raw.cmdline_paddr, len)?;
            let mut b = [0u8];
            mem.read(at, &mut b).ok_or(BootInfoError::Unreadable(at))?;
            if b[0] == 0 {
                return Ok(len);
            }
            *buf.get_mut(len)
                .ok_or(BootInfoError::CmdlineTooLong { max: CMDLINE_MAX })? = b[0];
            len = len.saturating_add(1); // below CMDLINE_MAX: `buf` held the byte
        }
    }

    /// Reads module `index` (below `nr_modules`) as `(paddr, size, cmdline_paddr)`.
    pub fn module(
        &self,
        mem: &impl PhysRead,
        index: u32,
    ) -> Result<(u64, u64, u64), BootInfoError> {
        if index >= self.raw.nr_modules {
            return Err(BootInfoError::NoSuchModule(index));
        }
        let entry = table_entry(
            self.raw.modlist_paddr,
            index as usize,
            size_of::<HvmModlistEntry>(),
        )?;
        let at = |off: usize| {
            let at = field_address(entry, off)?;
            mem.read_u64(at).ok_or(BootInfoError::Unreadable(at))
        };
        Ok((
            at(offset_of!(HvmModlistEntry, paddr))?,
            at(offset_of!(HvmModlistEntry, size))?,
            at(offset_of!(HvmModlistEntry, cmdline_paddr))?,
        ))
    }

    /// Copies the start-info memory map into `out`; returns the entry count.
    pub fn read_memmap(
        &self,
        mem: &impl PhysRead,
        out: &mut [MemoryRegion],
    ) -> Result<usize, BootInfoError> {
        let n = self.raw.memmap_entries as usize;
        if n > out.len() {
            return Err(BootInfoError::TooManyRegions(self.raw.memmap_entries));
        }
        let stride = size_of::<HvmMemmapTableEntry>();
        for (i, slot) in out.iter_mut().take(n).enumerate() {
            let e = table_entry(self.raw.memmap_paddr, i, stride)?;
            let field = |off: usize| field_address(e, off);
            let addr = mem.read_u64(field(offset_of!(HvmMemmapTableEntry, addr))?);
            let size = mem.read_u64(field(offset_of!(HvmMemmapTableEntry, size))?);
            let ty = mem.read_u32(field(offset_of!(HvmMemmapTableEntry, type_))?);
            let (Some(base), Some(size), Some(ty)) = (addr, size, ty) else {
                return Err(BootInfoError::Unreadable(e));
            };
            *slot = MemoryRegion {
                base,
                size,
                kind: RegionKind::from_code(ty),
            };
        }
        Ok(n)
    }
}

/// Fills `out` with the memory map: from the start info when it has one, otherwise from
/// `fallback` (pvguest passes `XENMEM_memory_map`, hv a closure answering `Ok(0)`; it returns
/// the entry count or an errno).
pub fn select_memory_map(
    info: &StartInfo,
    mem: &impl PhysRead,
    fallback: impl FnOnce(&mut [MemoryRegion]) -> Result<usize, i64>,
    out: &mut [MemoryRegion],
) -> Result<(usize, MemoryMapSource), BootInfoError> {
    if info.has_memmap() {
        let n = info.read_memmap(mem, out)?;
        return Ok((n, MemoryMapSource::StartInfo));
    }
    let n = fallback(out).map_err(BootInfoError::FallbackFailed)?;
    if n == 0 {
        return Err(BootInfoError::NoMemoryMap);
    }
    Ok((n, MemoryMapSource::Hypercall))
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)] // test arithmetic on small known values
mod tests {
    use super::*;
    use abi::start_info::{
        XEN_HVM_MEMMAP_TYPE_RAM, XEN_HVM_MEMMAP_TYPE_RESERVED, XEN_HVM_START_MAGIC_VALUE,
    };

    /// A flat fake of physical memory starting at `base`.
    struct Fake {
        base: u64,
        bytes: Vec<u8>,
    }

    impl PhysRead for Fake {
        fn read(&self, paddr: u64, buf: &mut [u8]) -> Option<()> {
            let start = usize::try_from(paddr.checked_sub(self.base)?).ok()?;
            let src = self.bytes.get(start..start.checked_add(buf.len())?)?;
            buf.copy_from_slice(src);
            Some(())
        }
    }

    impl Fake {
        fn put32(&mut self, off: usize, v: u32) {
            self.bytes[off..off + 4].copy_from_slice(&v.to_le_bytes());
        }
        fn put64(&mut self, off: usize, v: u64) {
            self.bytes[off..off + 8].copy_from_slice(&v.to_le_bytes());
        }
    }

    const BASE: u64 = 0x1000;

    /// A start info at BASE (version `v`), cmdline at +0x100, memmap (2 entries) at +0x200.
    fn blob(version: u32) -> Fake {
        let mut f = Fake {
            base: BASE,
            bytes: vec![0; 0x400],
        };
        f.put32(offset_of!(HvmStartInfo, magic), XEN_HVM_START_MAGIC_VALUE);
        f.put32(offset_of!(HvmStartInfo, version), version);
        f.put64(offset_of!(HvmStartInfo, cmdline_paddr), BASE + 0x100);
        f.bytes[0x100..0x100 + 18].copy_from_slice(b"selftest=platform\0");
        if version >= 1 {
            f.put64(offset_of!(HvmStartInfo, memmap_paddr), BASE + 0x200);
            f.put32(offset_of!(HvmStartInfo, memmap_entries), 2);
            let s = size_of::<HvmMemmapTableEntry>();
            let e0 = 0x200;
            f.put64(e0 + offset_of!(HvmMemmapTableEntry, addr), 0);
            f.put64(e0 + offset_of!(HvmMemmapTableEntry, size), 0x200_0000);
            f.put32(
                e0 + offset_of!(HvmMemmapTableEntry, type_),
                XEN_HVM_MEMMAP_TYPE_RAM,
            );
            let e1 = 0x200 + s;
            f.put64(e1 + offset_of!(HvmMemmapTableEntry, addr), 0xfc00_0000);
            f.put64(e1 + offset_of!(HvmMemmapTableEntry, size), 0x400_0000);
            f.put32(
                e1 + offset_of!(HvmMemmapTableEntry, type_),
                XEN_HVM_MEMMAP_TYPE_RESERVED,
            );
        }
        f
    }

    fn fallback_map(out: &mut [MemoryRegion]) -> Result<usize, i64> {
        out[0] = MemoryRegion {
            base: 0,
            size: 0x100_0000,
            kind: RegionKind::Ram,
        };
        Ok(1)
    }

    #[test]
    fn v1_uses_start_info_map() {
        let f = blob(1);
        let info = StartInfo::read(&f, BASE).unwrap();
        assert!(info.has_memmap());
        let mut out = [MemoryRegion::EMPTY; 8];
        let (n, src) = select_memory_map(&info, &f, fallback_map, &mut out).unwrap();
        assert_eq!((n, src), (2, MemoryMapSource::StartInfo));
        assert_eq!(
            out[0],
            MemoryRegion {
                base: 0,
                size: 0x200_0000,
                kind: RegionKind::Ram
            }
        );
        assert_eq!(out[1].kind, RegionKind::Reserved);
    }

    #[test]
    fn v0_falls_back_to_hypercall_and_ignores_v1_fields() {
        let mut f = blob(0);
        // Garbage where v1 would keep its map: a v0 reader must not look at it.
        f.put64(offset_of!(HvmStartInfo, memmap_paddr), 0xdead_0000);
        f.put32(offset_of!(HvmStartInfo, memmap_entries), 99);
        let info = StartInfo::read(&f, BASE).unwrap();
        assert_eq!(
            (
                info.raw.version,
                info.raw.memmap_paddr,
                info.raw.memmap_entries
            ),
            (0, 0, 0)
        );
        assert!(!info.has_memmap());
        let mut out = [MemoryRegion::EMPTY; 8];
        let (n, src) = select_memory_map(&info, &f, fallback_map, &mut out).unwrap();
        assert_eq!((n, src), (1, MemoryMapSource::Hypercall));
        assert_eq!(out[0].size, 0x100_0000);
    }

    #[test]
    fn v1_without_map_falls_back() {
        let mut f = blob(1);
        f.put32(offset_of!(HvmStartInfo, memmap_entries), 0);
        let info = StartInfo::read(&f, BASE).unwrap();
        let mut out = [MemoryRegion::EMPTY; 8];
        let (_, src) = select_memory_map(&info, &f, fallback_map, &mut out).unwrap();
        assert_eq!(src, MemoryMapSource::Hypercall);
    }

    #[test]
    fn fallback_errors_are_reported() {
        let info = StartInfo::read(&blob(0), BASE).unwrap();
        let mut out = [MemoryRegion::EMPTY; 8];
        let r = select_memory_map(&info, &blob(0), |_| Err(-38), &mut out);
        assert_eq!(r, Err(BootInfoError::FallbackFailed(-38)));
        let r = select_memory_map(&info, &blob(0), |_| Ok(0), &mut out);
        assert_eq!(r, Err(BootInfoError::NoMemoryMap));
    }

    #[test]
    fn bad_magic_and_unreadable() {
        let mut f = blob(1);
        f.put32(0, 0x1234_5678);
        assert_eq!(
            StartInfo::read(&f, BASE),
            Err(BootInfoError::BadMagic(0x1234_5678))
        );
        assert!(matches!(
            StartInfo::read(&f, 0x10_0000),
            Err(BootInfoError::Unreadable(_))
        ));
    }

    #[test]
    fn map_too_big_for_buffer() {
        let f = blob(1);
        let info = StartInfo::read(&f, BASE).unwrap();
        let mut out = [MemoryRegion::EMPTY; 1];
        assert_eq!(
            info.read_memmap(&f, &mut out),
            Err(BootInfoError::TooManyRegions(2))
        );
    }

    #[test]
    fn cmdline_is_read_up_to_nul() {
        let f = blob(0);
        let info = StartInfo::read(&f, BASE).unwrap();
        let mut buf = [0u8; CMDLINE_MAX];
        let n = info.read_cmdline(&f, &mut buf).unwrap();
        assert_eq!(&buf[..n], b"selftest=platform");
    }

    /// hv's case: QEMU's start info with the guest ELF as module 0 (moved from hv's own
    /// reader): the module is read, and one past `nr_modules` is refused, not read.
    #[test]
    fn modules_are_read_up_to_nr_modules() {
        let mut f = blob(1);
        f.put32(offset_of!(HvmStartInfo, nr_modules), 1);
        f.put64(offset_of!(HvmStartInfo, modlist_paddr), BASE + 0x300);
        f.put64(0x300 + offset_of!(HvmModlistEntry, paddr), 0x8000);
        f.put64(0x300 + offset_of!(HvmModlistEntry, size), 0x100);
        f.put64(0x300 + offset_of!(HvmModlistEntry, cmdline_paddr), 0);
        let info = StartInfo::read(&f, BASE).unwrap();
        assert_eq!(info.module(&f, 0), Ok((0x8000, 0x100, 0)));
        assert_eq!(info.module(&f, 1), Err(BootInfoError::NoSuchModule(1)));
        f.put32(offset_of!(HvmStartInfo, nr_modules), 0);
        let info = StartInfo::read(&f, BASE).unwrap();
        assert_eq!(info.module(&f, 0), Err(BootInfoError::NoSuchModule(0)));
    }

    #[test]
    fn region_kind_codes_round_trip() {
        for code in 0..12 {
            assert_eq!(RegionKind::from_code(code).code(), code);
        }
        assert_eq!(
            RegionKind::from_code(XEN_HVM_MEMMAP_TYPE_RAM),
            RegionKind::Ram
        );
    }

    #[test]
    fn overlong_cmdline_is_an_error() {
        let mut f = blob(0);
        f.bytes.resize(0x100 + CMDLINE_MAX + 8, b'x');
        f.bytes[0x100..].fill(b'x');
        let info = StartInfo::read(&f, BASE).unwrap();
        let mut buf = [0u8; CMDLINE_MAX];
        assert_eq!(
            info.read_cmdline(&f, &mut buf),
            Err(BootInfoError::CmdlineTooLong { max: CMDLINE_MAX })
        );
        *f.bytes.last_mut().unwrap() = 0;
        let n = 0x100 + CMDLINE_MAX + 7 - 0x100;
        assert!(n > CMDLINE_MAX);
        f.bytes[0x100 + CMDLINE_MAX] = 0;
        assert_eq!(info.read_cmdline(&f, &mut buf), Ok(CMDLINE_MAX));
    }

    /// A start info whose command line is `len` bytes of `x` then a NUL.
    fn blob_with_cmdline(len: usize) -> Fake {
        let mut f = blob(0);
        f.bytes.resize(0x100 + len + 1, 0);
        f.bytes[0x100..0x100 + len].fill(b'x');
        f.bytes[0x100 + len] = 0;
        f
    }

    #[test]
    fn cmdline_of_4_kib_is_read() {
        let f = blob_with_cmdline(4096);
        let info = StartInfo::read(&f, BASE).unwrap();
        let mut buf = [0u8; CMDLINE_MAX];
        assert_eq!(info.read_cmdline(&f, &mut buf), Ok(4096));
        assert!(buf[..4096].iter().all(|&b| b == b'x'));
    }

    #[test]
    fn overlong_cmdline_error_names_the_limit() {
        let f = blob_with_cmdline(CMDLINE_MAX + 1);
        let info = StartInfo::read(&f, BASE).unwrap();
        let mut buf = [0u8; CMDLINE_MAX];
        let err = info.read_cmdline(&f, &mut buf).unwrap_err();
        assert_eq!(err, BootInfoError::CmdlineTooLong { max: CMDLINE_MAX });
        let text = err.to_string();
        assert!(text.contains("4096 bytes"), "{text}");
        assert!(text.contains("command line"), "{text}");
    }

    /// Memory in the last 4 KiB of the 64-bit space, so that `base + offset` overflows.
    fn top_blob() -> Fake {
        Fake {
            base: u64::MAX - 0xfff,
            bytes: vec![0; 0x1000],
        }
    }

    #[test]
    fn start_info_at_the_top_is_unreadable_not_a_wrap() {
        let mut f = top_blob();
        // A v1 start info 20 bytes below 2^64: its v1 fields (read right after the version)
        // lie past the end of the space.
        f.put32(0x1000 - 21, XEN_HVM_START_MAGIC_VALUE);
        f.put32(0x1000 - 17, 1);
        for paddr in [u64::MAX, u64::MAX - 2, u64::MAX - 20] {
            assert!(matches!(
                StartInfo::read(&f, paddr),
                Err(BootInfoError::Unreadable(_))
            ));
        }
    }

    #[test]
    fn loader_offsets_near_the_top_are_errors() {
        let mut f = top_blob();
        f.bytes.fill(b'x');
        let mut info = StartInfo::read(&blob(1), BASE).unwrap();
        // A command line running into the end of the address space.
        info.raw.cmdline_paddr = u64::MAX - 2;
        let mut buf = [0u8; CMDLINE_MAX];
        assert!(matches!(
            info.read_cmdline(&f, &mut buf),
            Err(BootInfoError::Unreadable(_))
        ));
        // A module list whose entry `index` lies past 2^64.
        info.raw.modlist_paddr = u64::MAX - 0x20;
        info.raw.nr_modules = 4;
        assert!(matches!(
            info.module(&f, 3),
            Err(BootInfoError::Unreadable(_))
        ));
        // A memory map whose entries run past 2^64.
        info.raw.memmap_paddr = u64::MAX - 0x30;
        info.raw.memmap_entries = 3;
        let mut out = [MemoryRegion::EMPTY; 4];
        assert!(matches!(
            info.read_memmap(&f, &mut out),
            Err(BootInfoError::Unreadable(_))
        ));
    }

    #[test]
    fn sizes_by_version() {
        assert_eq!(start_info_size(0), 40);
        assert_eq!(start_info_size(1), 56);
    }
}
