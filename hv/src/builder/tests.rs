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

/// A domain's RAM as one vector, and its ACPI pages as another; accesses must stay in one
/// page.
struct Ram(Vec<u8>, Vec<u8>);

impl GuestPhys for Ram {
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), PhysError> {
        if let Some(s) = Self::acpi_range(gpa, buf.len()) {
            buf.copy_from_slice(&self.1[s]);
            return Ok(());
        }
        let s = self.range(gpa, buf.len())?;
        buf.copy_from_slice(&self.0[s]);
        Ok(())
    }
    fn write(&mut self, gpa: u64, data: &[u8]) -> Result<(), PhysError> {
        if let Some(s) = Self::acpi_range(gpa, data.len()) {
            self.1[s].copy_from_slice(data);
            return Ok(());
        }
        let s = self.range(gpa, data.len())?;
        self.0[s].copy_from_slice(data);
        Ok(())
    }
}

impl Ram {
    fn new(mib: u64) -> Self {
        Self(
            vec![0xee; (mib << 20) as usize],
            vec![0xee; (acpi::ACPI_PAGES * PAGE_SIZE) as usize],
        )
    }
    /// Where `[gpa, gpa + len)` lies in the ACPI pages, if it does.
    fn acpi_range(gpa: u64, len: usize) -> Option<core::ops::Range<usize>> {
        let off = gpa.checked_sub(acpi::ACPI_INFO_GPA)?;
        (off + len as u64 <= acpi::ACPI_PAGES * PAGE_SIZE).then(|| off as usize..off as usize + len)
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
    /// PT_LOAD at paddr with these file bytes, memory size and p_flags.
    LoadFlags(u64, Vec<u8>, u64, u32),
    /// PT_NOTE with p_align and these notes (name, type, desc).
    Notes(u64, Vec<(&'static [u8], u32, Vec<u8>)>),
}

struct Image {
    class64: bool,
    machine: u16,
    e_type: u16,
    e_entry: u64,
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
            e_entry: 0x10_0000,
            segs: vec![
                Seg::Load(0x10_0000, (0..5000u32).map(|i| i as u8).collect(), 0x3000),
                Seg::Notes(4, vec![(b"Xen", 18, entry.to_le_bytes().to_vec())]),
                Seg::Load(0x10_4000, vec![0xab; 16], 0x1000),
            ],
        }
    }

    fn bytes(&self) -> Vec<u8> {
        // ELF64: 64-byte header, 56-byte program headers; ELF32: 52 and 32.
        let (ehsize, phsize) = if self.class64 {
            (64u64, 56u64)
        } else {
            (52, 32)
        };
        let word = |v: &mut Vec<u8>, x: u64| {
            if self.class64 {
                v.extend(x.to_le_bytes());
            } else {
                v.extend((x as u32).to_le_bytes());
            }
        };
        let mut data_off = ehsize + phsize * self.segs.len() as u64;
        let mut phdrs = Vec::new();
        let mut data = Vec::new();
        for s in &self.segs {
            let (ty, flags, paddr, bytes, memsz, align) = match s {
                Seg::Load(p, b, m) => (1u32, 5u32, *p, b.clone(), *m, 0x1000u64),
                Seg::LoadFlags(p, b, m, f) => (1u32, *f, *p, b.clone(), *m, 0x1000u64),
                Seg::Notes(a, n) => {
                    let b = note_bytes(n);
                    let len = b.len() as u64;
                    (4, 4, 0, b, len, *a)
                }
            };
            phdrs.extend(ty.to_le_bytes());
            if self.class64 {
                phdrs.extend(flags.to_le_bytes());
            }
            word(&mut phdrs, data_off);
            word(&mut phdrs, paddr);
            word(&mut phdrs, paddr);
            word(&mut phdrs, bytes.len() as u64);
            word(&mut phdrs, memsz);
            if !self.class64 {
                phdrs.extend(flags.to_le_bytes());
            }
            word(&mut phdrs, align);
            data_off += bytes.len() as u64;
            data.extend(bytes);
        }
        let class = if self.class64 { 2 } else { 1 };
        let mut h = vec![0x7f, b'E', b'L', b'F', class, 1, 1];
        h.resize(16, 0);
        h.extend(self.e_type.to_le_bytes());
        h.extend(self.machine.to_le_bytes());
        h.extend(1u32.to_le_bytes());
        word(&mut h, self.e_entry); // PVH uses the note; Xen's HVM loader e_entry
        word(&mut h, ehsize);
        word(&mut h, 0);
        h.extend(0u32.to_le_bytes());
        h.extend((ehsize as u16).to_le_bytes());
        h.extend((phsize as u16).to_le_bytes());
        h.extend((self.segs.len() as u16).to_le_bytes());
        h.extend((if self.class64 { 64u16 } else { 40 }).to_le_bytes());
        h.extend(0u16.to_le_bytes());
        h.extend(0u16.to_le_bytes());
        assert_eq!(h.len() as u64, ehsize);
        h.extend(phdrs);
        h.extend(data);
        h
    }
}

const CFG: DomainConfig<'static> = DomainConfig {
    memory_mib: 4,
    cmdline: b"selftest=boot",
    ramdisk: None,
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
    assert_eq!(info.rsdp_paddr, 0xfc00_2000, "rsdp");
    assert_eq!(&ram.1[0x2000..0x2008], b"RSD PTR ");
    let cmdline = info.cmdline_paddr;
    assert_eq!(cmdline, si + 56);
    assert_eq!(
        &ram.0[cmdline as usize..cmdline as usize + 14],
        b"selftest=boot\0"
    );
    let memmap = info.memmap_paddr;
    assert!(memmap.is_multiple_of(8));
    assert!(memmap >= cmdline + 14);
    assert_eq!(info.memmap_entries, 5);
    type Entry = abi::start_info::HvmMemmapTableEntry;
    let entry = |i: u64| ram.read::<Entry>(memmap + i * core::mem::size_of::<Entry>() as u64);
    assert_eq!(
        (entry(0).addr, entry(0).size, entry(0).type_),
        (0, 4 << 20, 1)
    );
    assert_eq!(
        [1, 2, 3].map(|i| (entry(i).addr, entry(i).size, entry(i).type_)),
        [
            (0xfc00_2000, 64, 3),
            (0xfc00_0000, 0x1000, 3),
            (0xfc00_1000, 0x1000, 3)
        ],
        "the ACPI regions in libxl's order"
    );
    assert_eq!(
        (entry(4).addr, entry(4).size, entry(4).type_),
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
fn a_ramdisk_is_the_one_module_after_the_kernel() {
    let rd: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
    let cfg = DomainConfig {
        ramdisk: Some(&rd),
        ..CFG
    };
    let (b, ram) = build_image(&Image::pvh(0x10_0040), &cfg).unwrap();
    assert_eq!(
        b.ramdisk,
        Some((0x10_5000, 0x10_5000 + 5000)),
        "on the page after the kernel"
    );
    assert_eq!(&ram.0[0x10_5000..0x10_5000 + 5000], &rd[..]);
    let si = b.start_info_gpa;
    assert_eq!(si, 0x10_7000, "on the page after the ramdisk");
    let info: abi::start_info::HvmStartInfo = ram.read(si);
    assert_eq!(info.nr_modules, 1);
    let modlist = info.modlist_paddr;
    assert!(modlist.is_multiple_of(8) && modlist >= info.cmdline_paddr + 14);
    let m: abi::start_info::HvmModlistEntry = ram.read(modlist);
    assert_eq!((m.paddr, m.size, m.cmdline_paddr), (0x10_5000, 5000, 0));
    assert!(info.memmap_paddr >= modlist + 32);
    assert_eq!(
        ram.read::<abi::start_info::HvmMemmapTableEntry>(info.memmap_paddr)
            .size,
        4 << 20
    );
    let huge = vec![0u8; 4 << 20];
    let cfg = DomainConfig {
        ramdisk: Some(&huge),
        ..CFG
    };
    assert_eq!(
        build_image(&Image::pvh(0x10_0040), &cfg).map(|_| ()),
        Err(BuildError::NoRoomForRamdisk {
            at: 0x10_5000,
            len: 4 << 20
        })
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

fn with(f: impl FnOnce(&mut Image)) -> Image {
    let mut img = Image::pvh(0x10_0000);
    f(&mut img);
    img
}

fn xen_note(ty: u32, desc: &[u8]) -> (&'static [u8], u32, Vec<u8>) {
    (b"Xen", ty, desc.to_vec())
}

fn with_notes(notes: Vec<(&'static [u8], u32, Vec<u8>)>) -> Image {
    with(|i| i.segs[1] = Seg::Notes(4, notes))
}

const ENTRY_NOTE: [u8; 4] = 0x10_0000u32.to_le_bytes();

#[test]
fn takes_elf32_and_any_machine_or_type_as_xen_does() {
    // An ELF32 PVH kernel: entered at its PHYS32_ENTRY.
    let img = with(|i| {
        i.class64 = false;
        i.segs[1] = Seg::Notes(4, vec![xen_note(18, &0x10_0040u32.to_le_bytes())]);
    });
    let (b, ram) = build_image(&img, &CFG).unwrap();
    assert_eq!((b.regs.rip, b.kernel), (0x10_0040, (0x10_0000, 0x10_5000)));
    assert_eq!(ram.0[0x10_4000], 0xab);
    let elf_bytes = img.bytes();
    let parsed = super::elf::PvhElf::parse(&elf_bytes).unwrap();
    assert_eq!(parsed.loader, super::elf::Loader::Pvh);
    // An ELF32 without Xen notes: Xen's HVM-generic loader enters it at e_entry.
    let img = with(|i| {
        i.class64 = false;
        i.e_entry = 0x10_4008;
        i.segs.remove(1);
    });
    let (b, _) = build_image(&img, &CFG).unwrap();
    assert_eq!(b.regs.rip, 0x10_4008);
    let elf_bytes = img.bytes();
    let parsed = super::elf::PvhElf::parse(&elf_bytes).unwrap();
    assert_eq!(parsed.loader, super::elf::Loader::Hvm);
    // Neither loader looks at e_machine or e_type.
    for img in [
        with(|i| i.machine = 3),
        with(|i| i.e_type = 1),
        with(|i| i.machine = 0),
    ] {
        assert_eq!(build_image(&img, &CFG).unwrap().0.regs.rip, 0x10_0000);
    }
    // The entry is a uint32_t in Xen: the high half of an 8-byte note is dropped.
    let img = with_notes(vec![xen_note(18, &0x1_0010_0010u64.to_le_bytes())]);
    assert_eq!(build_image(&img, &CFG).unwrap().0.regs.rip, 0x10_0010);
    // A PT_LOAD with none of R, W, X is not loaded.
    let img = with(|i| {
        i.segs
            .push(Seg::LoadFlags(0x20_0000, vec![0xcd; 16], 0x1000, 0))
    });
    let (b, ram) = build_image(&img, &CFG).unwrap();
    assert_eq!((b.kernel, ram.0[0x20_0000]), ((0x10_0000, 0x10_5000), 0xee));
    // Notes Xen reads but a PVH domU ignores, and the checks they pass.
    let img = with_notes(vec![
        xen_note(6, b"linux\0"),
        xen_note(10, b"writable_page_tables|!hvm_callback_vector|whatever\0"),
        xen_note(3, &0u64.to_le_bytes()),
        xen_note(4, &0u64.to_le_bytes()),
        xen_note(15, &0x40_0000u64.to_le_bytes()),
        xen_note(17, &[1, 0, 0, 0]),
        xen_note(18, &ENTRY_NOTE),
    ]);
    assert_eq!(build_image(&img, &CFG).unwrap().0.regs.rip, 0x10_0000);
}

#[test]
fn refuses_what_xen_refuses_for_a_pvh_domu() {
    use super::elf::NotesError as N;
    let e = |img: Image| refusal(&img, &CFG);
    let not_pvh = |n: N| BuildError::Elf(ElfError::NotPvh(n));
    let outside = |entry| {
        not_pvh(N::EntryOutOfBounds {
            entry,
            start: 0x10_0000,
            end: 0x10_5000,
        })
    };
    assert_eq!(
        e(with(|i| {
            i.segs.remove(1);
        })),
        not_pvh(N::NoNotes)
    );
    assert_eq!(
        e(with_notes(vec![(b"Linux", 18, vec![0; 4])])),
        not_pvh(N::NotForXen)
    );
    // All ones is Xen's "unset".
    assert_eq!(
        e(with_notes(vec![xen_note(18, &u32::MAX.to_le_bytes())])),
        not_pvh(N::NotForXen)
    );
    // A number of 3 bytes reads as 0, outside the kernel.
    assert_eq!(e(with_notes(vec![xen_note(18, &[0; 3])])), outside(0));
    assert_eq!(
        e(with_notes(vec![xen_note(18, &0x10_5001u32.to_le_bytes())])),
        outside(0x10_5001)
    );
    assert_eq!(
        e(with_notes(vec![
            xen_note(10, b"!no_such_feature\0"),
            xen_note(18, &ENTRY_NOTE)
        ])),
        not_pvh(N::UnknownRequiredFeature)
    );
    assert_eq!(
        e(with_notes(vec![
            xen_note(4, &0u64.to_le_bytes()),
            xen_note(18, &ENTRY_NOTE)
        ])),
        not_pvh(N::PaddrOffsetWithoutVirtBase)
    );
    assert_eq!(
        e(with_notes(vec![
            xen_note(15, &0x10_1000u64.to_le_bytes()),
            xen_note(18, &ENTRY_NOTE)
        ])),
        not_pvh(N::P2mInsideKernel)
    );
    // A PV-only kernel: its notes parse, but give no PHYS32_ENTRY.
    assert_eq!(
        e(with_notes(vec![
            xen_note(8, b"generic\0"),
            xen_note(5, b"xen-3.0\0")
        ])),
        BuildError::Elf(ElfError::NoPhys32Entry)
    );
    assert_eq!(
        e(with_notes(vec![
            xen_note(10, b"!dom0\0"),
            xen_note(18, &ENTRY_NOTE)
        ])),
        BuildError::Elf(ElfError::RequiresDom0)
    );
    // An ELF32 whose notes do not parse goes to the HVM loader, at e_entry.
    let img = with(|i| {
        i.class64 = false;
        i.e_entry = 0x10_0100;
        i.segs[1] = Seg::Notes(4, vec![xen_note(10, b"!no_such_feature\0")]);
    });
    assert_eq!(build_image(&img, &CFG).unwrap().0.regs.rip, 0x10_0100);
    let notes_only = |i: &mut Image| i.segs.retain(|s| matches!(s, Seg::Notes(..)));
    assert!(matches!(
        e(with(notes_only)),
        BuildError::Elf(ElfError::NotPvh(N::EntryOutOfBounds { .. }))
    ));
    assert_eq!(
        e(with(|i| {
            notes_only(i);
            i.class64 = false;
            i.segs.clear();
        })),
        BuildError::Elf(ElfError::NoLoadSegments)
    );
    assert_eq!(
        e(with(|i| i.segs[0] = Seg::Load(0x10_0000, vec![1; 64], 32))),
        BuildError::Elf(ElfError::BadSegment { index: 0 })
    );
    let mut img = Image::pvh(0x10_4000);
    img.segs[0] = Seg::Load(0x3f_f000, vec![1; 64], 0x2000);
    assert_eq!(
        e(img),
        BuildError::SegmentOutsideRam {
            paddr: 0x3f_f000,
            memsz: 0x2000
        }
    );
    assert!(matches!(
        e(with(|i| i.segs[0] = Seg::Load(u64::MAX - 4, vec![], 0x10))),
        BuildError::Elf(ElfError::BadSegment { .. })
    ));
    // No room for the start info after a kernel that fills RAM.
    assert!(matches!(
        e(with(|i| i.segs[2] = Seg::Load(0x10_4000, vec![], 0x2f_c000))),
        BuildError::NoRoomForStartInfo { .. }
    ));
    let msg = not_pvh(N::NoNotes).to_string();
    assert!(msg.contains("not a PVH kernel"), "{msg}");
    let msg = BuildError::Elf(ElfError::NoPhys32Entry).to_string();
    assert!(msg.contains("PHYS32_ENTRY"), "{msg}");
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
