//! What QEMU's PVH loader hands hv: `hvm_start_info`, its command line, the module list
//! (the guest ELF is module 0) and the memory map, read through [`GuestPhys`] so the parsing
//! runs on the host too.

use abi::start_info::{
    HVM_START_INFO_V0_SIZE, HvmMemmapTableEntry, HvmModlistEntry, HvmStartInfo,
    XEN_HVM_START_MAGIC_VALUE,
};

use crate::guest::phys::{GuestPhys, PhysError, read_bytes};

/// Longest command line hv accepts.
pub const CMDLINE_MAX: usize = 1024;
/// Most memory-map entries hv keeps.
pub const MAX_MEMMAP: usize = 32;

/// Why the start info was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootInfoError {
    /// A read failed.
    Read(PhysError),
    /// The magic value is wrong.
    BadMagic(u32),
    /// No module: the guest ELF is missing (`-initrd`).
    NoModule,
    /// The command line has no NUL within [`CMDLINE_MAX`] bytes.
    CmdlineTooLong,
    /// The memory map is missing (start info v0) or has no entries.
    NoMemoryMap,
}

fn read_u32(mem: &impl GuestPhys, pa: u64) -> Result<u32, PhysError> {
    let mut b = [0u8; 4];
    read_bytes(mem, pa, &mut b)?;
    Ok(u32::from_le_bytes(b))
}

fn read_u64(mem: &impl GuestPhys, pa: u64) -> Result<u64, PhysError> {
    let mut b = [0u8; 8];
    read_bytes(mem, pa, &mut b)?;
    Ok(u64::from_le_bytes(b))
}

impl From<PhysError> for BootInfoError {
    fn from(e: PhysError) -> Self {
        Self::Read(e)
    }
}

/// One RAM or reserved range of the memory map.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemRange {
    /// First byte.
    pub base: u64,
    /// Length in bytes.
    pub size: u64,
    /// E820 type (1 = RAM).
    pub kind: u32,
}

/// The parsed boot information.
#[derive(Clone, Debug)]
pub struct BootInfo {
    /// The raw start info.
    pub raw: HvmStartInfo,
    /// The command line bytes (without NUL).
    pub cmdline: [u8; CMDLINE_MAX],
    /// Length of `cmdline`.
    pub cmdline_len: usize,
    /// Module 0: `(physical address, size)`.
    pub module: (u64, u64),
    /// The memory map.
    pub memmap: [MemRange; MAX_MEMMAP],
    /// Entries used in `memmap`.
    pub memmap_len: usize,
}

impl BootInfo {
    /// Reads and checks the start info at `paddr`.
    pub fn read(mem: &impl GuestPhys, paddr: u64) -> Result<Self, BootInfoError> {
        let mut raw_bytes = [0u8; core::mem::size_of::<HvmStartInfo>()];
        read_bytes(mem, paddr, &mut raw_bytes[..HVM_START_INFO_V0_SIZE])?;
        let magic = read_u32(mem, paddr)?;
        if magic != XEN_HVM_START_MAGIC_VALUE {
            return Err(BootInfoError::BadMagic(magic));
        }
        let version = read_u32(mem, paddr + 4)?;
        if version >= 1 {
            read_bytes(mem, paddr, &mut raw_bytes)?;
        }
        let u32_at = |o: usize| {
            let mut b = [0u8; 4];
            b.copy_from_slice(&raw_bytes[o..o + 4]);
            u32::from_le_bytes(b)
        };
        let u64_at = |o: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&raw_bytes[o..o + 8]);
            u64::from_le_bytes(b)
        };
        let raw = HvmStartInfo {
            magic,
            version,
            flags: u32_at(8),
            nr_modules: u32_at(12),
            modlist_paddr: u64_at(16),
            cmdline_paddr: u64_at(24),
            rsdp_paddr: u64_at(32),
            memmap_paddr: u64_at(40),
            memmap_entries: u32_at(48),
            reserved: u32_at(52),
        };
        let mut cmdline = [0u8; CMDLINE_MAX];
        let mut cmdline_len = 0;
        if raw.cmdline_paddr != 0 {
            cmdline_len = CMDLINE_MAX;
            for (i, slot) in cmdline.iter_mut().enumerate() {
                let mut b = [0u8];
                read_bytes(mem, raw.cmdline_paddr + i as u64, &mut b)?;
                if b[0] == 0 {
                    cmdline_len = i;
                    break;
                }
                *slot = b[0];
            }
            if cmdline_len == CMDLINE_MAX {
                return Err(BootInfoError::CmdlineTooLong);
            }
        }
        if raw.nr_modules == 0 {
            return Err(BootInfoError::NoModule);
        }
        let m = read_u64(mem, raw.modlist_paddr)?;
        let s = read_u64(mem, raw.modlist_paddr + 8)?;
        const _: () = assert!(core::mem::size_of::<HvmModlistEntry>() == 32);
        if version < 1 || raw.memmap_entries == 0 {
            return Err(BootInfoError::NoMemoryMap);
        }
        let mut memmap = [MemRange::default(); MAX_MEMMAP];
        let n = (raw.memmap_entries as usize).min(MAX_MEMMAP);
        let entry = core::mem::size_of::<HvmMemmapTableEntry>() as u64;
        for (i, slot) in memmap.iter_mut().enumerate().take(n) {
            let at = raw.memmap_paddr + i as u64 * entry;
            *slot = MemRange {
                base: read_u64(mem, at)?,
                size: read_u64(mem, at + 8)?,
                kind: read_u32(mem, at + 16)?,
            };
        }
        Ok(Self {
            raw,
            cmdline,
            cmdline_len,
            module: (m, s),
            memmap,
            memmap_len: n,
        })
    }

    /// The command line (empty if not UTF-8).
    pub fn cmdline(&self) -> &str {
        core::str::from_utf8(&self.cmdline[..self.cmdline_len]).unwrap_or("")
    }

    /// The memory map.
    pub fn memmap(&self) -> &[MemRange] {
        &self.memmap[..self.memmap_len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guest::phys::write_bytes;

    /// Flat memory from guest-physical 0.
    struct VecPhys(Vec<u8>);

    impl VecPhys {
        fn new(_base: u64, len: usize) -> Self {
            Self(vec![0; len])
        }
        fn write_phys(&mut self, gpa: u64, data: &[u8]) -> Result<(), PhysError> {
            write_bytes(self, gpa, data)
        }
    }

    impl GuestPhys for VecPhys {
        fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), PhysError> {
            let s = usize::try_from(gpa).map_err(|_| PhysError { gpa })?;
            let src = self.0.get(s..s + buf.len()).ok_or(PhysError { gpa })?;
            buf.copy_from_slice(src);
            Ok(())
        }
        fn write(&mut self, gpa: u64, data: &[u8]) -> Result<(), PhysError> {
            let s = usize::try_from(gpa).map_err(|_| PhysError { gpa })?;
            self.0
                .get_mut(s..s + data.len())
                .ok_or(PhysError { gpa })?
                .copy_from_slice(data);
            Ok(())
        }
    }

    fn image() -> VecPhys {
        let mut m = VecPhys::new(0, 0x10000);
        let mut si = Vec::new();
        si.extend_from_slice(&XEN_HVM_START_MAGIC_VALUE.to_le_bytes());
        si.extend_from_slice(&1u32.to_le_bytes()); // version
        si.extend_from_slice(&0u32.to_le_bytes()); // flags
        si.extend_from_slice(&1u32.to_le_bytes()); // nr_modules
        si.extend_from_slice(&0x2000u64.to_le_bytes()); // modlist
        si.extend_from_slice(&0x3000u64.to_le_bytes()); // cmdline
        si.extend_from_slice(&0u64.to_le_bytes()); // rsdp
        si.extend_from_slice(&0x4000u64.to_le_bytes()); // memmap
        si.extend_from_slice(&1u32.to_le_bytes());
        si.extend_from_slice(&0u32.to_le_bytes());
        m.write_phys(0x1000, &si).unwrap();
        m.write_phys(0x2000, &0x8000u64.to_le_bytes()).unwrap();
        m.write_phys(0x2008, &0x100u64.to_le_bytes()).unwrap();
        m.write_phys(0x3000, b"a -- b\0").unwrap();
        m.write_phys(0x4000, &0u64.to_le_bytes()).unwrap();
        m.write_phys(0x4008, &0x10000u64.to_le_bytes()).unwrap();
        m.write_phys(0x4010, &1u32.to_le_bytes()).unwrap();
        m
    }

    #[test]
    fn reads_start_info() {
        let m = image();
        let b = BootInfo::read(&m, 0x1000).unwrap();
        assert_eq!(b.cmdline(), "a -- b");
        assert_eq!(b.module, (0x8000, 0x100));
        assert_eq!(
            b.memmap(),
            &[MemRange {
                base: 0,
                size: 0x10000,
                kind: 1
            }]
        );
    }

    #[test]
    fn refuses_bad_input() {
        let mut m = image();
        assert!(matches!(
            BootInfo::read(&m, 0x1001),
            Err(BootInfoError::BadMagic(_))
        ));
        m.write_phys(0x3000, &[b'x'; 0x1000]).unwrap();
        assert_eq!(
            BootInfo::read(&m, 0x1000).unwrap_err(),
            BootInfoError::CmdlineTooLong
        );
        let mut m = image();
        m.write_phys(0x1000 + 12, &0u32.to_le_bytes()).unwrap();
        assert_eq!(
            BootInfo::read(&m, 0x1000).unwrap_err(),
            BootInfoError::NoModule
        );
        let mut m = image();
        m.write_phys(0x1000 + 16, &0xfffcu64.to_le_bytes()).unwrap();
        assert!(matches!(
            BootInfo::read(&m, 0x1000),
            Err(BootInfoError::Read(_))
        ));
    }
}
