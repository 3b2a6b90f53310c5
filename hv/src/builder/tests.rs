//! Host tests of the domain builder with ELF images made here, good and broken.
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap,
    reason = "test fixtures: small known sizes and indexes, on 64-bit hosts only"
)]

use proptest::prelude::*;

use super::elf::ElfError;
use super::layout::{CONSOLE_GFN, STORE_GFN};
use super::*;

/// A domain's RAM as one vector; accesses must stay in one page.
struct Ram(Vec<u8>);

impl GuestPhys for Ram {
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), PhysError> {
        let s = self.range(gpa, buf.len())?;
        buf.copy_from_slice(&self.0[s]);
        Ok(())
    }
    fn write(&mut self, gpa: u64, data: &[u8]) -> Result<(), PhysError> {
        let s = self.range(gpa, data.len())?;
        self.0[s].copy_from_slice(data);
        Ok(())
    }
}

impl Ram {
    fn new(mib: u64) -> Self {
        Self(vec![0xee; (mib << 20) as usize])
    }
    fn range(&self, gpa: u64, len: usize) -> Result<core::ops::Range<usize>, PhysError> {
        assert!(
            len == 0 || gpa / PAGE_SIZE == (gpa + len as u64 - 1) / PAGE_SIZE,
            "crosses a page"
        );
        let start = usize::try_from(gpa).map_err(|_| PhysError { gpa })?;
        let end = start + len;
        if end > self.0.len() {
            return Err(PhysError { gpa });
        }
        Ok(start..end)
    }
    /// The `T` the guest reads at `gpa`.
    fn read<T: abi::wire::Plain>(&self, gpa: u64) -> T {
        let g = gpa as usize;
        T::from_bytes(&self.0[g..g + core::mem::size_of::<T>()]).unwrap()
    }
}

/// One program header to put in a test image.
#[derive(Clone)]
enum Seg {
    /// PT_LOAD at paddr with these file bytes and memory size.
    Load(u64, Vec<u8>, u64),
    /// PT_NOTE with p_align and these notes (name, type, desc).
    Notes(u64, Vec<(&'static [u8], u32, Vec<u8>)>),
}

struct Image {
    class64: bool,
    machine: u16,
    e_type: u16,
    segs: Vec<Seg>,
}

fn pad4(v: &mut Vec<u8>) {
    while !v.len().is_multiple_of(4) {
        v.push(0);
    }
}

fn note_bytes(notes: &[(&[u8], u32, Vec<u8>)]) -> Vec<u8> {
    let mut v = Vec::new();
    for (name, ty, desc) in notes {
        v.extend((name.len() as u32 + 1).to_le_bytes());
        v.extend((desc.len() as u32).to_le_bytes());
        v.extend(ty.to_le_bytes());
        v.extend(*name);
        v.push(0);
        pad4(&mut v);
        v.extend(desc);
        pad4(&mut v);
    }
    v
}

impl Image {
    fn pvh(entry: u64) -> Self {
        Self {
            class64: true,
            machine: 62,
            e_type: 2,
            segs: vec![
                Seg::Load(0x10_0000, (0..5000u32).map(|i| i as u8).collect(), 0x3000),
                Seg::Notes(4, vec![(b"Xen", 18, entry.to_le_bytes().to_vec())]),
                Seg::Load(0x10_4000, vec![0xab; 16], 0x1000),
            ],
        }
    }

    fn bytes(&self) -> Vec<u8> {
        if !self.class64 {
            // A minimal ELF32 header: class 1, little-endian, x86, no program headers.
            let mut h = vec![0x7f, b'E', b'L', b'F', 1, 1, 1];
            h.resize(16, 0);
            h.extend(2u16.to_le_bytes());
            h.extend(3u16.to_le_bytes());
            h.extend(1u32.to_le_bytes());
            h.resize(40, 0);
            h.extend(52u16.to_le_bytes());
            h.extend(32u16.to_le_bytes());
            h.resize(52, 0);
            return h;
        }
        let phoff = 64u64;
        let mut data_off = phoff + 56 * self.segs.len() as u64;
        let mut phdrs = Vec::new();
        let mut data = Vec::new();
        for s in &self.segs {
            let (ty, paddr, bytes, memsz, align) = match s {
                Seg::Load(p, b, m) => (1u32, *p, b.clone(), *m, 0x1000u64),
                Seg::Notes(a, n) => {
                    let b = note_bytes(n);
                    let len = b.len() as u64;
                    (4, 0, b, len, *a)
                }
            };
            phdrs.extend(ty.to_le_bytes());
            phdrs.extend(5u32.to_le_bytes());
            phdrs.extend(data_off.to_le_bytes());
            phdrs.extend(paddr.to_le_bytes());
            phdrs.extend(paddr.to_le_bytes());
            phdrs.extend((bytes.len() as u64).to_le_bytes());
            phdrs.extend(memsz.to_le_bytes());
            phdrs.extend(align.to_le_bytes());
            data_off += bytes.len() as u64;
            data.extend(bytes);
        }
        let mut h = vec![0x7f, b'E', b'L', b'F', 2, 1, 1];
        h.resize(16, 0);
        h.extend(self.e_type.to_le_bytes());
        h.extend(self.machine.to_le_bytes());
        h.extend(1u32.to_le_bytes());
        h.extend(0x10_0000u64.to_le_bytes()); // e_entry (ignored: PVH uses the note)
        h.extend(phoff.to_le_bytes());
        h.extend(0u64.to_le_bytes());
        h.extend(0u32.to_le_bytes());
        h.extend(64u16.to_le_bytes());
        h.extend(56u16.to_le_bytes());
        h.extend((self.segs.len() as u16).to_le_bytes());
        h.extend(64u16.to_le_bytes());
        h.extend(0u16.to_le_bytes());
        h.extend(0u16.to_le_bytes());
        assert_eq!(h.len(), 64);
        h.extend(phdrs);
        h.extend(data);
        h
    }
}

const CFG: DomainConfig<'static> = DomainConfig {
    memory_mib: 4,
    cmdline: b"selftest=boot",
};

fn build_image(img: &Image, cfg: &DomainConfig<'_>) -> Result<(Built, Ram), BuildError> {
    let mut ram = Ram::new(cfg.memory_mib.min(8));
    build(&mut ram, &img.bytes(), cfg).map(|b| (b, ram))
}

#[test]
fn loads_segments_and_writes_start_info() {
    let (b, ram) = build_image(&Image::pvh(0x10_0040), &CFG).unwrap();
    // Segment 1: 5000 file bytes then zeros to 0x3000; segment 2: 16 bytes then zeros.
    assert_eq!(ram.0[0x10_0000 + 4999], (4999u32 % 256) as u8);
    assert!(ram.0[0x10_0000 + 5000..0x10_3000].iter().all(|&b| b == 0));
    assert!(ram.0[0x10_4000..0x10_4010].iter().all(|&b| b == 0xab));
    assert!(ram.0[0x10_4010..0x10_5000].iter().all(|&b| b == 0));
    assert_eq!(
        ram.0[0x10_3000], 0xee,
        "the gap between segments is untouched"
    );
    assert_eq!(b.kernel, (0x10_0000, 0x10_5000));
    let si = b.start_info_gpa;
    assert_eq!(si, 0x10_5000);
    let info: abi::start_info::HvmStartInfo = ram.read(si);
    assert_eq!(info.magic, XEN_HVM_START_MAGIC_VALUE);
    assert_eq!(info.version, 1, "version");
    assert_eq!(info.flags, 0, "flags");
    assert_eq!(info.nr_modules, 0, "nr_modules");
    assert_eq!(info.rsdp_paddr, 0, "rsdp");
    let cmdline = info.cmdline_paddr;
    assert_eq!(cmdline, si + 56);
    assert_eq!(
        &ram.0[cmdline as usize..cmdline as usize + 14],
        b"selftest=boot\0"
    );
    let memmap = info.memmap_paddr;
    assert!(memmap.is_multiple_of(8));
    assert!(memmap >= cmdline + 14);
    assert_eq!(info.memmap_entries, 2);
    type Entry = abi::start_info::HvmMemmapTableEntry;
    let entry = |i: u64| ram.read::<Entry>(memmap + i * core::mem::size_of::<Entry>() as u64);
    assert_eq!(
        (entry(0).addr, entry(0).size, entry(0).type_),
        (0, 4 << 20, 1)
    );
    assert_eq!(
        (entry(1).addr, entry(1).size, entry(1).type_),
        (0xfeff_8000, 0x8000, 2)
    );
    assert!((0xfeff_8000..0xff00_0000).contains(&(CONSOLE_GFN << 12)));
    assert!((0xfeff_8000..0xff00_0000).contains(&(STORE_GFN << 12)));
    // The PVH entry state.
    let r = b.regs;
    assert_eq!((r.rip, r.rbx), (0x10_0040, si));
    assert_eq!((r.cr0, r.cr4, r.efer, r.rflags), (0x11, 0, 0, 2));
    assert_eq!((r.cs.attrib, r.cs.base, r.cs.limit), (0xc9b, 0, u32::MAX));
    for s in [r.ds, r.es, r.ss] {
        assert_eq!((s.attrib, s.base, s.limit), (0xc93, 0, u32::MAX));
    }
    assert_eq!(
        (r.tr.attrib & 0xf, r.tr.attrib & 0x80, r.tr.limit),
        (0xb, 0x80, 0x67)
    );
}

#[test]
fn a_position_independent_image_loads_at_its_physical_addresses() {
    let mut img = Image::pvh(0x10_0040);
    img.e_type = 3; // ET_DYN
    let (b, _) = build_image(&img, &CFG).unwrap();
    assert_eq!(b.kernel, (0x10_0000, 0x10_5000));
}

#[test]
fn empty_command_line_gives_none() {
    let cfg = DomainConfig {
        cmdline: b"",
        ..CFG
    };
    let (b, ram) = build_image(&Image::pvh(0x10_0000), &cfg).unwrap();
    let info: abi::start_info::HvmStartInfo = ram.read(b.start_info_gpa);
    assert_eq!(info.cmdline_paddr, 0);
}

#[test]
fn the_note_is_read_with_four_byte_alignment_as_xen_does() {
    let mut img = Image::pvh(0x10_0123);
    img.segs[1] = Seg::Notes(
        8,
        vec![
            (b"GNU", 3, vec![1, 2, 3, 4, 5]),
            (b"Xen", 18, 0x10_0123u32.to_le_bytes().to_vec()),
        ],
    );
    let (b, _) = build_image(&img, &CFG).unwrap();
    assert_eq!(b.regs.rip, 0x10_0123);
}

fn refusal(img: &Image, cfg: &DomainConfig<'_>) -> BuildError {
    match build_image(img, cfg) {
        Ok(_) => panic!("built"),
        Err(e) => e,
    }
}

#[test]
fn refuses_what_is_not_a_64_bit_pvh_kernel() {
    let e = |f: fn(&mut Image)| {
        let mut img = Image::pvh(0x10_0000);
        f(&mut img);
        refusal(&img, &CFG)
    };
    assert_eq!(
        e(|i| i.class64 = false),
        BuildError::Elf(ElfError::Not64Bit)
    );
    assert_eq!(
        e(|i| i.machine = 3),
        BuildError::Elf(ElfError::NotX86_64 { machine: 3 })
    );
    assert_eq!(
        e(|i| i.e_type = 1),
        BuildError::Elf(ElfError::NotExecutable { e_type: 1 })
    );
    assert_eq!(
        e(|i| {
            i.segs.remove(1);
        }),
        BuildError::Elf(ElfError::NoPvhNote)
    );
    assert_eq!(
        e(|i| i.segs[1] = Seg::Notes(4, vec![(b"Linux", 18, vec![0; 4])])),
        BuildError::Elf(ElfError::NoPvhNote)
    );
    assert_eq!(
        e(|i| i.segs[1] = Seg::Notes(4, vec![(b"Xen", 18, vec![0; 3])])),
        BuildError::Elf(ElfError::BadNoteSize { size: 3 })
    );
    assert_eq!(
        e(|i| i.segs[1] = Seg::Notes(4, vec![(b"Xen", 18, (1u64 << 32).to_le_bytes().to_vec())])),
        BuildError::Elf(ElfError::EntryOutOfRange { entry: 1 << 32 })
    );
    assert_eq!(
        e(|i| i.segs.retain(|s| matches!(s, Seg::Notes(..)))),
        BuildError::Elf(ElfError::NoLoadSegments)
    );
    assert_eq!(
        e(|i| i.segs[0] = Seg::Load(0x10_0000, vec![1; 64], 32)),
        BuildError::Elf(ElfError::BadSegment { index: 0 })
    );
    assert_eq!(
        e(|i| i.segs[0] = Seg::Load(0x3f_f000, vec![1; 64], 0x2000)),
        BuildError::SegmentOutsideRam {
            paddr: 0x3f_f000,
            memsz: 0x2000
        }
    );
    assert!(matches!(
        e(|i| i.segs[0] = Seg::Load(u64::MAX - 4, vec![], 0x10)),
        BuildError::Elf(ElfError::BadSegment { .. })
    ));
    // No room for the start info after a kernel that fills RAM.
    assert!(matches!(
        e(|i| i.segs[2] = Seg::Load(0x10_4000, vec![], 0x2f_c000)),
        BuildError::NoRoomForStartInfo { .. }
    ));
    let msg = BuildError::Elf(ElfError::NoPvhNote).to_string();
    assert!(msg.contains("not a PVH kernel"), "{msg}");
    assert!(
        BuildError::Elf(ElfError::Not64Bit)
            .to_string()
            .contains("64-bit")
    );
}

#[test]
fn refuses_garbage_files_and_bad_configs() {
    let mut ram = Ram::new(4);
    for junk in [
        &b""[..],
        b"MZ\x90\x00",
        &[0x7f, b'E', b'L', b'F', 2, 1, 1, 0],
    ] {
        assert!(matches!(
            build(&mut ram, junk, &CFG),
            Err(BuildError::Elf(ElfError::Malformed(_)))
        ));
    }
    // A segment whose file bytes lie past the end of the file.
    let mut bytes = Image::pvh(0x10_0000).bytes();
    let len = bytes.len();
    bytes.truncate(len - 8);
    assert!(matches!(
        build(&mut ram, &bytes, &CFG),
        Err(BuildError::Elf(ElfError::Malformed(_)))
    ));
    let img = Image::pvh(0x10_0000);
    let long = vec![b'x'; MAX_CMDLINE];
    let cfg = DomainConfig {
        cmdline: &long,
        ..CFG
    };
    assert_eq!(
        refusal(&img, &cfg),
        BuildError::CmdlineTooLong { len: MAX_CMDLINE }
    );
    let cfg = DomainConfig {
        cmdline: b"a\0b",
        ..CFG
    };
    assert_eq!(refusal(&img, &cfg), BuildError::CmdlineHasNul);
    for mib in [0, 3, 4033, u64::MAX] {
        let cfg = DomainConfig {
            memory_mib: mib,
            ..CFG
        };
        assert_eq!(refusal(&img, &cfg), BuildError::Memory { mib });
    }
    assert!(Layout::new(128).is_some());
    assert_eq!({ Layout::new(128).unwrap().memmap()[0].size }, 128 << 20);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Arbitrary corruption of a good image never panics; whatever builds stays in RAM (the
    /// `Ram` type fails every access outside it and the builder would report that).
    #[test]
    fn corrupted_images_never_panic(
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..16),
        truncate in any::<prop::sample::Index>(),
        cut in any::<bool>(),
    ) {
        let mut bytes = Image::pvh(0x10_0000).bytes();
        for (at, v) in flips {
            let i = at.index(bytes.len());
            bytes[i] = v;
        }
        if cut {
            let n = truncate.index(bytes.len());
            bytes.truncate(n);
        }
        let mut ram = Ram::new(4);
        if let Ok(b) = build(&mut ram, &bytes, &CFG) {
            prop_assert!(b.kernel.1 <= 4 << 20);
            prop_assert!(b.start_info_gpa < 4 << 20);
        }
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let mut ram = Ram::new(4);
        prop_assert!(build(&mut ram, &bytes, &CFG).is_err());
    }
}
