//! Host tests of the guest page walk: hand-built tables, then property tests against a model.
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap,
    reason = "test fixtures: small known sizes and indexes, on 64-bit hosts only"
)]

use std::collections::HashMap;

use proptest::prelude::*;

use super::phys::{GuestPhys, PAGE_SIZE, PhysError};
use super::walk::*;

/// Guest-physical memory for tests: owned ranges with sparse contents (unwritten bytes follow
/// a fixed pattern of their address).
#[derive(Clone, Default)]
struct MapMem {
    owned: Vec<(u64, u64)>,
    pages: HashMap<u64, Vec<u8>>,
}

fn pattern(gpa: u64) -> u8 {
    (gpa.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 56) as u8
}

impl MapMem {
    fn own(&mut self, start: u64, len: u64) {
        self.owned.push((start, start + len));
    }
    fn check(&self, gpa: u64, len: usize) -> Result<(), PhysError> {
        assert!(
            len == 0 || gpa / PAGE_SIZE == (gpa + len as u64 - 1) / PAGE_SIZE,
            "access {gpa:#x}+{len} crosses a page"
        );
        let end = gpa + len as u64;
        if self.owned.iter().any(|&(s, e)| s <= gpa && end <= e) {
            Ok(())
        } else {
            Err(PhysError { gpa })
        }
    }
    fn byte(&self, gpa: u64) -> u8 {
        match self.pages.get(&(gpa / PAGE_SIZE)) {
            Some(p) => p[(gpa % PAGE_SIZE) as usize],
            None => pattern(gpa),
        }
    }
    fn set(&mut self, gpa: u64, b: u8) {
        let page = gpa / PAGE_SIZE;
        let p = self.pages.entry(page).or_insert_with(|| {
            (0..PAGE_SIZE)
                .map(|i| pattern(page * PAGE_SIZE + i))
                .collect()
        });
        p[(gpa % PAGE_SIZE) as usize] = b;
    }
    fn put_u64(&mut self, gpa: u64, v: u64) {
        for (i, b) in v.to_le_bytes().into_iter().enumerate() {
            self.set(gpa + i as u64, b);
        }
    }
}

impl GuestPhys for MapMem {
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), PhysError> {
        self.check(gpa, buf.len())?;
        for (i, b) in buf.iter_mut().enumerate() {
            *b = self.byte(gpa + i as u64);
        }
        Ok(())
    }
    fn write(&mut self, gpa: u64, data: &[u8]) -> Result<(), PhysError> {
        self.check(gpa, data.len())?;
        for (i, &b) in data.iter().enumerate() {
            self.set(gpa + i as u64, b);
        }
        Ok(())
    }
}

const P: u64 = 1;
const RW: u64 = 2;
const US: u64 = 4;
const PS: u64 = 1 << 7;

/// Page sizes by level: 1 = 4 KiB, 2 = 2 MiB, 3 = 1 GiB.
fn page_bytes(level: u8) -> u64 {
    1 << (12 + 9 * (u32::from(level) - 1))
}

/// Builds 4-level tables in a [`MapMem`]; tables come from 0x100000 upwards.
struct Tables {
    mem: MapMem,
    cr3: u64,
    next: u64,
}

impl Tables {
    fn new() -> Self {
        let mut t = Self {
            mem: MapMem::default(),
            cr3: 0,
            next: 0x10_0000,
        };
        t.cr3 = t.table();
        t
    }
    fn table(&mut self) -> u64 {
        let gpa = self.next;
        self.next += PAGE_SIZE;
        self.mem.own(gpa, PAGE_SIZE);
        self.mem
            .pages
            .insert(gpa / PAGE_SIZE, vec![0; PAGE_SIZE as usize]);
        gpa
    }
    /// Maps `va` to `pa` with a page of `level`; new intermediate entries get `upper` flags.
    /// Returns the RW and US bits shared by every intermediate entry on the path (new or
    /// already there).
    fn map(&mut self, va: u64, pa: u64, level: u8, flags: u64, upper: u64) -> u64 {
        let mut table = self.cr3;
        let mut path = RW | US;
        for l in (level + 1..=4).rev() {
            let slot = table + ((va >> (12 + 9 * (u32::from(l) - 1))) & 0x1ff) * 8;
            let mut raw = [0; 8];
            self.mem.read(slot, &mut raw).unwrap();
            let mut e = u64::from_le_bytes(raw);
            if e & P == 0 {
                e = self.table() | upper;
                self.mem.put_u64(slot, e);
            }
            path &= e;
            table = e & 0x000f_ffff_ffff_f000;
        }
        let slot = table + ((va >> (12 + 9 * (u32::from(level) - 1))) & 0x1ff) * 8;
        let ps = if level > 1 { PS } else { 0 };
        self.mem.put_u64(slot, pa | flags | ps);
        path
    }
    fn state(&self) -> PagingState {
        PagingState {
            cr0: CR0_PG | CR0_PE | CR0_WP,
            cr3: self.cr3,
            cr4: CR4_PAE,
            efer: EFER_LME | EFER_LMA | EFER_NXE,
            cpl: 0,
        }
    }
}

#[test]
fn four_kib_two_mib_and_one_gib_pages() {
    let mut t = Tables::new();
    t.map(0x40_0000, 0x20_0000, 1, P | RW, P | RW);
    t.map(0x8000_0000, 0x4000_0000, 2, P | RW, P | RW);
    t.map(0x7f80_0000_0000, 0x8000_0000, 3, P, P | RW);
    let st = t.state();
    let m = &t.mem;
    assert_eq!(translate(m, &st, 0x40_0123, Access::Read), Ok(0x20_0123));
    assert_eq!(
        translate(m, &st, 0x801f_ffff, Access::Write),
        Ok(0x401f_ffff)
    );
    assert_eq!(
        translate(m, &st, 0x7f80_1234_5678, Access::Read),
        Ok(0x9234_5678)
    );
    assert_eq!(
        translate(m, &st, 0x7f80_1234_5678, Access::Write),
        Err(Fault::ReadOnly {
            va: 0x7f80_1234_5678
        })
    );
    assert_eq!(
        translate(m, &st, 0x40_1000, Access::Read),
        Err(Fault::NotPresent {
            va: 0x40_1000,
            level: 1
        })
    );
    assert_eq!(
        translate(m, &st, 0x1_0000_0000, Access::Read),
        Err(Fault::NotPresent {
            va: 0x1_0000_0000,
            level: 3
        })
    );
}

#[test]
fn permissions_at_upper_levels_count() {
    let mut t = Tables::new();
    t.map(0x1000, 0x5000, 1, P | RW | US, P); // read-only, supervisor directory
    let mut st = t.state();
    assert_eq!(
        translate(&t.mem, &st, 0x1000, Access::Write),
        Err(Fault::ReadOnly { va: 0x1000 })
    );
    st.cr0 &= !CR0_WP; // supervisor writes ignore RW without CR0.WP
    assert_eq!(translate(&t.mem, &st, 0x1000, Access::Write), Ok(0x5000));
    st.cpl = 3;
    assert_eq!(
        translate(&t.mem, &st, 0x1000, Access::Read),
        Err(Fault::User { va: 0x1000 })
    );
}

#[test]
fn reserved_bits_and_modes() {
    let mut t = Tables::new();
    t.map(0x20_0000, 0x30_1000, 2, P | RW, P | RW); // 2 MiB page with low address bits set
    t.mem.put_u64(t.cr3 + 8 * 5, 0x4000_0000 | P | PS); // PS in a PML4 entry
    t.map(0x40_0000, 0x6000 | (1 << 63), 1, P, P | RW); // NX
    let mut st = t.state();
    assert!(matches!(
        translate(&t.mem, &st, 0x20_0000, Access::Read),
        Err(Fault::Reserved { level: 2, .. })
    ));
    assert!(matches!(
        translate(&t.mem, &st, 5 << 39, Access::Read),
        Err(Fault::Reserved { level: 4, .. })
    ));
    assert_eq!(translate(&t.mem, &st, 0x40_0000, Access::Read), Ok(0x6000));
    st.efer &= !EFER_NXE;
    assert!(matches!(
        translate(&t.mem, &st, 0x40_0000, Access::Read),
        Err(Fault::Reserved { level: 1, .. })
    ));
    assert_eq!(
        translate(&t.mem, &st, 0x8000_0000_0000, Access::Read),
        Err(Fault::NonCanonical {
            va: 0x8000_0000_0000
        })
    );
    st.efer &= !EFER_LMA;
    assert!(matches!(
        translate(&t.mem, &st, 0, Access::Read),
        Err(Fault::Unsupported { mode: "PAE paging" })
    ));
    st.cr0 &= !CR0_PG;
    assert_eq!(
        translate(&t.mem, &st, 0x1234_5678, Access::Write),
        Ok(0x1234_5678)
    );
    st = t.state();
    st.cr4 |= CR4_LA57;
    assert!(matches!(
        translate(&t.mem, &st, 0, Access::Read),
        Err(Fault::Unsupported { .. })
    ));
}

#[test]
fn tables_outside_owned_memory_fault() {
    let mut t = Tables::new();
    t.mem.put_u64(t.cr3, 0x7777_0000 | P | RW); // PML4[0] points at unowned memory
    let st = t.state();
    assert_eq!(
        translate(&t.mem, &st, 0x1000, Access::Read),
        Err(Fault::Phys {
            va: 0x1000,
            gpa: 0x7777_0000
        })
    );
    assert_eq!(Fault::Phys { va: 0, gpa: 0 }.errno(), -14);
}

#[test]
fn copies_cross_pages_and_large_pages() {
    let mut t = Tables::new();
    t.map(0x1000, 0x9000, 1, P | RW, P | RW);
    t.map(0x2000, 0x3000, 1, P | RW, P | RW); // not contiguous physically
    t.map(0x3000, 0xa000, 1, P, P | RW); // read-only
    t.mem.own(0x3000, PAGE_SIZE);
    t.mem.own(0x9000, 2 * PAGE_SIZE);
    let st = t.state();
    let data: Vec<u8> = (0..5000u32).map(|i| i as u8).collect();
    copy_to_guest(&mut t.mem, &st, 0x1800, &data[..4096]).unwrap();
    let mut back = vec![0; 4096];
    copy_from_guest(&t.mem, &st, 0x1800, &mut back).unwrap();
    assert_eq!(back, data[..4096]);
    let mut first = [0u8; 2];
    t.mem.read(0x9ffe, &mut first).unwrap();
    assert_eq!(first, [data[0x7fe], data[0x7ff]]);
    t.mem.read(0x3000, &mut first).unwrap();
    assert_eq!(first, [data[0x800], data[0x801]]);
    // Crossing into the read-only page: nothing is written.
    let before = t.mem.clone();
    assert_eq!(
        copy_to_guest(&mut t.mem, &st, 0x2800, &data[..4096]),
        Err(Fault::ReadOnly { va: 0x3000 })
    );
    assert_eq!(before.pages, t.mem.pages);
    // Reading across into an unmapped page fails; a zero-length copy never faults.
    let mut buf = vec![0; 4097];
    assert!(copy_from_guest(&t.mem, &st, 0x3000, &mut buf).is_err());
    assert_eq!(copy_from_guest(&t.mem, &st, 0xdead_0000, &mut []), Ok(()));
    // Running off the end of the address space.
    assert!(matches!(
        copy_from_guest(&t.mem, &st, u64::MAX - 1, &mut [0; 4]),
        Err(Fault::NonCanonical { .. })
    ));
}

#[test]
fn data_in_unowned_memory_faults_without_partial_write() {
    let mut t = Tables::new();
    t.map(0x1000, 0x9000, 1, P | RW, P | RW);
    t.map(0x2000, 0xf000_0000, 1, P | RW, P | RW); // mapped, but not the domain's
    t.mem.own(0x9000, PAGE_SIZE);
    let st = t.state();
    let before = t.mem.clone();
    assert_eq!(
        copy_to_guest(&mut t.mem, &st, 0x1ff0, &[1; 32]),
        Err(Fault::Phys {
            va: 0x2000,
            gpa: 0xf000_0000
        })
    );
    assert_eq!(before.pages, t.mem.pages);
}

/// One mapping of the model: `level` page at `va` to `pa`.
#[derive(Clone, Debug)]
struct Mapping {
    va: u64,
    pa: u64,
    level: u8,
    rw: bool,
    us: bool,
    /// Flags of the intermediate entries this mapping creates.
    upper_rw: bool,
    upper_us: bool,
}

impl Mapping {
    fn contains(&self, va: u64) -> bool {
        (self.va..self.va + page_bytes(self.level)).contains(&va)
    }
    fn overlaps(&self, o: &Mapping) -> bool {
        self.va < o.va + page_bytes(o.level) && o.va < self.va + page_bytes(self.level)
    }
}

fn mapping() -> impl Strategy<Value = Mapping> {
    // Virtual addresses in a few 512 GiB slots, both halves of the address space.
    (
        1u8..=3,
        0u64..4,
        0u64..8,
        0u64..8,
        0u64..8,
        (any::<bool>(), any::<bool>()),
        (prop::bool::weighted(0.8), prop::bool::weighted(0.8)),
        0u64..64,
    )
        .prop_map(
            |(level, top, l3, l2, l1, (rw, us), (upper_rw, upper_us), pa_slot)| {
                let top = [0u64, 1, 255, 511][top as usize];
                let mut va = (top << 39) | (l3 << 30) | (l2 << 21) | (l1 << 12);
                if top >= 256 {
                    va |= 0xffff_0000_0000_0000;
                }
                let size = page_bytes(level);
                let va = va & !(size - 1);
                let pa = 0x1_0000_0000 + pa_slot * size;
                Mapping {
                    va,
                    pa,
                    level,
                    rw,
                    us,
                    upper_rw,
                    upper_us,
                }
            },
        )
}

fn build(mappings: &[Mapping]) -> (Tables, Vec<Mapping>) {
    let mut t = Tables::new();
    let mut kept: Vec<Mapping> = Vec::new();
    for m in mappings {
        if kept.iter().any(|k| k.overlaps(m) || k.pa == m.pa) {
            continue;
        }
        let bits = |rw: bool, us: bool| P | if rw { RW } else { 0 } | if us { US } else { 0 };
        let path = t.map(
            m.va,
            m.pa,
            m.level,
            bits(m.rw, m.us),
            bits(m.upper_rw, m.upper_us),
        );
        t.mem.own(m.pa, page_bytes(m.level));
        // The permission is the AND over every level of the path.
        kept.push(Mapping {
            rw: m.rw && path & RW != 0,
            us: m.us && path & US != 0,
            ..m.clone()
        });
    }
    (t, kept)
}

/// What the model says `translate` answers.
fn model(kept: &[Mapping], st: &PagingState, va: u64, access: Access) -> Option<u64> {
    let m = kept.iter().find(|m| m.contains(va))?;
    let user = st.cpl == 3;
    if access == Access::Write && !m.rw && (user || st.cr0 & CR0_WP != 0) {
        return None;
    }
    if user && !m.us {
        return None;
    }
    Some(m.pa + (va - m.va))
}

fn probe(kept: &[Mapping]) -> impl Strategy<Value = u64> + use<> {
    let bases: Vec<u64> = kept.iter().map(|m| m.va).collect();
    let sizes: Vec<u64> = kept.iter().map(|m| page_bytes(m.level)).collect();
    (0..bases.len().max(1), any::<u64>(), any::<bool>()).prop_map(move |(i, r, inside)| {
        if inside && !bases.is_empty() {
            bases[i] + r % (sizes[i] + PAGE_SIZE) // also just past the end
        } else {
            r
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn translate_agrees_with_the_model(
        (maps, probes) in prop::collection::vec(mapping(), 1..12).prop_flat_map(|maps| {
            let (_, kept) = build(&maps);
            (Just(maps), prop::collection::vec(probe(&kept), 1..16))
        }),
        cpl in prop::sample::select(vec![0u8, 3]),
        wp in any::<bool>(),
    ) {
        let (t, kept) = build(&maps);
        let mut st = t.state();
        st.cpl = cpl;
        if !wp { st.cr0 &= !CR0_WP; }
        for va in probes {
            for access in [Access::Read, Access::Write] {
                let got = translate(&t.mem, &st, va, access);
                let want = model(&kept, &st, va, access);
                prop_assert_eq!(got.ok(), want, "va {:#x} {:?}", va, access);
            }
        }
    }

    #[test]
    fn copies_agree_with_the_model(
        (maps, probes) in prop::collection::vec(mapping(), 1..8).prop_flat_map(|maps| {
            let (_, kept) = build(&maps);
            (Just(maps), prop::collection::vec((probe(&kept), 0usize..9000), 1..6))
        }),
    ) {
        let (mut t, kept) = build(&maps);
        let st = t.state();
        for (va, len) in probes {
            let whole: Option<Vec<u64>> = (0..len as u64)
                .map(|i| va.checked_add(i).and_then(|a| model(&kept, &st, a, Access::Write)))
                .collect();
            let mut buf = vec![0u8; len];
            let read = copy_from_guest(&t.mem, &st, va, &mut buf);
            match &whole {
                Some(gpas) => {
                    prop_assert!(read.is_ok(), "{:?}", read);
                    for (b, &gpa) in buf.iter().zip(gpas) {
                        prop_assert_eq!(*b, t.mem.byte(gpa));
                    }
                }
                None => {
                    let readable: Option<Vec<u64>> = (0..len as u64)
                        .map(|i| va.checked_add(i).and_then(|a| model(&kept, &st, a, Access::Read)))
                        .collect();
                    prop_assert_eq!(read.is_ok(), readable.is_some());
                }
            }
            let data: Vec<u8> = (0..len).map(|i| (i * 31 + 7) as u8).collect();
            let before = t.mem.pages.clone();
            let wrote = copy_to_guest(&mut t.mem, &st, va, &data);
            prop_assert_eq!(wrote.is_ok(), whole.is_some());
            match whole {
                Some(gpas) => {
                    for (&b, gpa) in data.iter().zip(gpas) {
                        prop_assert_eq!(t.mem.byte(gpa), b);
                    }
                }
                None => prop_assert!(before == t.mem.pages, "a failed copy wrote"),
            }
        }
    }

    #[test]
    fn garbage_tables_never_panic(
        words in prop::collection::vec(any::<u64>(), 512 * 3),
        cr3_page in 0u64..4,
        va in any::<u64>(),
        cr0 in any::<u64>(),
        cr4 in any::<u64>(),
        efer in any::<u64>(),
        cpl in 0u8..=255,
        len in 0usize..10_000,
    ) {
        let mut mem = MapMem::default();
        mem.own(0, 3 * PAGE_SIZE);
        for (i, w) in words.iter().enumerate() {
            mem.put_u64(i as u64 * 8, *w);
        }
        let st = PagingState { cr0, cr3: cr3_page * PAGE_SIZE, cr4, efer, cpl };
        if let Ok(gpa) = translate(&mem, &st, va, Access::Read) {
            prop_assert_eq!(gpa % PAGE_SIZE, va % PAGE_SIZE);
        }
        let mut buf = vec![0; len];
        let _ = copy_from_guest(&mem, &st, va, &mut buf);
        let _ = copy_to_guest(&mut mem, &st, va, &buf);
    }
}
