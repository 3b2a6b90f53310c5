//! Host tests of the nested tables over fake table memory.

use super::*;
use std::collections::HashMap;

/// Tables in a hash map, their addresses from a [`TablePool`] at 1 GiB (`limit` pages;
/// 0: a large pool).
struct FakeTables {
    pages: HashMap<u64, [u64; 512]>,
    pool: TablePool,
    limit: usize,
    /// Every entry written, in order.
    log: Vec<(u64, usize, u64)>,
}

impl Default for FakeTables {
    fn default() -> Self {
        Self::with_pool(1 << 20)
    }
}

impl FakeTables {
    fn with_pool(pages: u64) -> Self {
        Self {
            pages: HashMap::new(),
            pool: TablePool::new(0x4000_0000, pages),
            limit: 0,
            log: Vec::new(),
        }
    }
}

impl TableMemory for FakeTables {
    fn read_entry(&self, table: u64, index: usize) -> u64 {
        self.pages[&table][index]
    }
    fn write_entry(&mut self, table: u64, index: usize, value: u64) {
        self.pages.get_mut(&table).expect("table")[index] = value;
        self.log.push((table, index, value));
    }
    fn alloc_table(&mut self) -> Result<u64, NptError> {
        if self.limit != 0 && self.pages.len() >= self.limit {
            return Err(NptError::OutOfMemory);
        }
        let pa = self.pool.take().ok_or(NptError::OutOfMemory)?;
        assert!(
            self.pages.insert(pa, [0; 512]).is_none(),
            "handed out twice"
        );
        Ok(pa)
    }
    fn free_table(&mut self, table: u64) {
        assert!(self.pages.remove(&table).is_some(), "freed twice");
        self.pool.give_back(table);
    }
}

#[test]
fn maps_splits_and_translates() {
    let mut m = FakeTables::default();
    let npt = Npt::new(&mut m).unwrap();
    npt.map_2m(&mut m, 0, 0x1000_0000, true).unwrap();
    npt.map_2m(&mut m, 0x20_0000, 0x1020_0000, true).unwrap();
    assert_eq!(
        npt.translate(&m, 0x1234),
        Some(Translation {
            hpa: 0x1000_1234,
            writable: true
        })
    );
    // Replace one 4 KiB page inside the first 2 MiB (like shared_info over RAM).
    npt.map_4k(&mut m, 0x5000, 0x7777_0000, false).unwrap();
    assert_eq!(
        npt.translate(&m, 0x5008),
        Some(Translation {
            hpa: 0x7777_0008,
            writable: false
        })
    );
    assert_eq!(npt.translate(&m, 0x6008).unwrap().hpa, 0x1000_6008);
    assert_eq!(npt.translate(&m, 0x4008).unwrap().hpa, 0x1000_4008);
    assert_eq!(npt.translate(&m, 0x20_0010).unwrap().hpa, 0x1020_0010);
    assert_eq!(npt.translate(&m, 0x40_0000), None);
    assert_eq!(npt.translate(&m, u64::MAX), None);
    npt.map_4k(&mut m, 0xfefff000, 0x2000, true).unwrap();
    assert_eq!(npt.translate(&m, 0xfefff001).unwrap().hpa, 0x2001);
    assert_eq!(npt.translate(&m, 0xfeffe000), None);
    npt.unmap_4k(&mut m, 0x5000).unwrap();
    assert_eq!(npt.translate(&m, 0x5008), None);
    assert_eq!(npt.translate(&m, 0x6008).unwrap().hpa, 0x1000_6008);
    assert_eq!(
        npt.map_4k(&mut m, 0x1001, 0, true),
        Err(NptError::BadAddress(0x1001))
    );
    assert_eq!(
        npt.map_2m(&mut m, GPA_LIMIT, 0, true),
        Err(NptError::BadAddress(GPA_LIMIT))
    );
}

#[test]
fn out_of_table_memory_is_an_error() {
    let mut m = FakeTables {
        limit: 2,
        ..Default::default()
    };
    let npt = Npt::new(&mut m).unwrap();
    assert_eq!(npt.map_4k(&mut m, 0, 0, true), Err(NptError::OutOfMemory));
}

#[test]
fn the_pool_is_libxls_default_paging_memory() {
    // 4 * (256 * vcpus + maxmem_mib) KiB, in pages.
    assert_eq!(paging_pool_pages(128, 1), 384);
    assert_eq!(paging_pool_pages(1024, 2), 1536);
}

#[test]
fn the_pool_hands_out_each_page_once_and_reuses_pages_given_back() {
    let mut pool = TablePool::new(0x10_0000, 3);
    let a = pool.take().unwrap();
    let b = pool.take().unwrap();
    let c = pool.take().unwrap();
    assert_eq!([a, b, c], [0x10_0000, 0x10_1000, 0x10_2000]);
    assert_eq!(pool.take(), None);
    assert_eq!((pool.in_use(), pool.peak(), pool.refused()), (3, 3, 1));
    pool.give_back(b);
    pool.give_back(0x99_0000); // not the pool's: ignored
    pool.give_back(0x10_0800); // not a page boundary: ignored
    assert_eq!(pool.in_use(), 2);
    assert_eq!(pool.take(), Some(b));
    assert_eq!(pool.take(), None);
    assert!(pool.contains(c) && !pool.contains(0x10_3000));
}

/// A 128 MiB domain as hv builds it: RAM in 2 MiB pages, the console and store pages.
fn domain_tables(pool_pages: u64) -> (FakeTables, Npt) {
    let mut m = FakeTables::with_pool(pool_pages);
    let npt = Npt::new(&mut m).unwrap();
    for off in (0..64).map(|i| i * HUGE_SIZE) {
        npt.map_2m(&mut m, off, 0x1000_0000 + off, true).unwrap();
    }
    npt.map_4k(&mut m, 0xfefff000, 0x2000, true).unwrap();
    npt.map_4k(&mut m, 0xfeffc000, 0x3000, true).unwrap();
    (m, npt)
}

#[test]
fn a_flood_of_remaps_to_fresh_addresses_stays_within_the_pool() {
    let (mut m, npt) = domain_tables(paging_pool_pages(128, 1));
    let built = m.pool.in_use();
    let shared_info = 0x7000_0000;
    let mut at = None;
    // 10,000 moves, each to a 2 MiB region never used before (a new 1 GiB region every
    // 512): without freeing, every move would take one or two more table pages.
    for i in 0..10_000u64 {
        let gpa = (4 << 30) + i * HUGE_SIZE;
        npt.remap_4k(&mut m, at, gpa, shared_info, true).unwrap();
        at = Some(gpa);
        assert!(
            m.pool.in_use() <= built + 3,
            "move {i}: {}",
            m.pool.in_use()
        );
    }
    assert_eq!(npt.translate(&m, at.unwrap()).unwrap().hpa, shared_info);
    assert_eq!(npt.translate(&m, 4 << 30), None);
    assert!(m.pool.peak() <= built + 5, "peak {}", m.pool.peak());
    assert_eq!(m.pool.refused(), 0);
    // Back home: only the domain's own tables are left.
    npt.unmap_4k(&mut m, at.unwrap()).unwrap();
    assert_eq!(m.pool.in_use(), built);
    assert_eq!(m.pages.len() as u64, built);
}

#[test]
fn a_remap_maps_the_new_page_before_it_unmaps_the_old() {
    let (mut m, npt) = domain_tables(64);
    npt.map_4k(&mut m, 0x5000, 0x9000, true).unwrap();
    m.log.clear();
    npt.remap_4k(&mut m, Some(0x5000), 0x20_6000, 0x9000, true)
        .unwrap();
    let new = m
        .log
        .iter()
        .position(|&(_, i, v)| i == index(0x20_6000, 1) && v & ADDR_MASK == 0x9000)
        .expect("the new leaf");
    let old = m
        .log
        .iter()
        .position(|&(_, i, v)| i == index(0x5000, 1) && v == 0)
        .expect("the old leaf cleared");
    assert!(new < old, "new leaf written at {new}, old cleared at {old}");
    assert_eq!(npt.translate(&m, 0x5000), None);
    assert_eq!(npt.translate(&m, 0x20_6000).unwrap().hpa, 0x9000);
}

#[test]
fn a_remap_that_finds_no_table_page_leaves_the_old_mapping_in_place() {
    let (mut m, npt) = domain_tables(paging_pool_pages(128, 1));
    npt.map_4k(&mut m, 0x5000, 0x9000, true).unwrap();
    // Use up the pool but one page; a new 1 GiB region needs two (a directory and a
    // table).
    let mut hoard = Vec::new();
    while m.pool.pages() - m.pool.in_use() > 1 {
        hoard.push(m.alloc_table().unwrap());
    }
    let before = m.pool.in_use();
    assert_eq!(
        npt.remap_4k(&mut m, Some(0x5000), 5 << 30, 0x9000, true),
        Err(NptError::OutOfMemory)
    );
    assert_eq!(npt.translate(&m, 0x5000).unwrap().hpa, 0x9000);
    assert_eq!(npt.translate(&m, 5 << 30), None);
    // The directory made on the way down went back to the pool.
    assert_eq!(m.pool.in_use(), before);
    for t in hoard {
        m.free_table(t);
    }
    npt.remap_4k(&mut m, Some(0x5000), 5 << 30, 0x9000, true)
        .unwrap();
    assert_eq!(npt.translate(&m, 0x5000), None);
}

#[test]
fn a_2m_mapping_gives_back_the_table_it_replaces() {
    let (mut m, npt) = domain_tables(64);
    npt.map_4k(&mut m, 0x5000, 0x9000, true).unwrap();
    let split = m.pool.in_use();
    npt.map_2m(&mut m, 0, 0x1000_0000, true).unwrap();
    assert_eq!(m.pool.in_use(), split - 1);
    assert_eq!(npt.translate(&m, 0x5000).unwrap().hpa, 0x1000_5000);
}

proptest::proptest! {
    #[test]
    fn every_mapped_page_translates_back(pages in proptest::collection::vec((0u64..1 << 36, 0u64..1 << 28), 1..40)) {
        let mut m = FakeTables::default();
        let npt = Npt::new(&mut m).unwrap();
        let mut want = HashMap::new();
        for (gpa, hpa) in pages {
            let (g, h) = (gpa & !0xfff, hpa & !0xfff);
            npt.map_4k(&mut m, g, h, true).unwrap();
            want.insert(g, h);
        }
        for (g, h) in want {
            proptest::prop_assert_eq!(npt.translate(&m, g + 5).map(|t| t.hpa), Some(h + 5));
        }
    }
}

#[test]
fn leaves_and_tables_are_listed_as_mapped() {
    let mut m = FakeTables::default();
    let npt = Npt::new(&mut m).unwrap();
    npt.map_2m(&mut m, 0, 0x1000_0000, true).unwrap();
    npt.map_4k(&mut m, 0x5000, 0x7777_0000, false).unwrap();
    npt.map_4k(&mut m, 1 << 39, 0x2000, true).unwrap();
    let mut leaves = Vec::new();
    npt.for_each_leaf(&m, |l| leaves.push(l));
    assert_eq!(leaves.len(), 512 + 1);
    let leaf = |gpa, hpa, writable| Leaf {
        gpa,
        hpa,
        size: PAGE_SIZE,
        writable,
    };
    assert_eq!(leaves[0], leaf(0, 0x1000_0000, true));
    assert_eq!(leaves[5], leaf(0x5000, 0x7777_0000, false));
    assert_eq!(leaves[511], leaf(0x1f_f000, 0x101f_f000, true));
    assert_eq!(leaves[512], leaf(1 << 39, 0x2000, true));
    let mut tables = Vec::new();
    npt.for_each_table(&m, |t| tables.push(t));
    assert_eq!(tables[0], npt.root);
    // Root, then two paths of three tables below it (directory pointer, directory, table).
    assert_eq!(tables.len(), 7);
    let mut all: Vec<u64> = m.pages.keys().copied().collect();
    all.sort_unstable();
    tables.sort_unstable();
    assert_eq!(tables, all);

    let mut huge = FakeTables::default();
    let npt = Npt::new(&mut huge).unwrap();
    npt.map_2m(&mut huge, 0x20_0000, 0x4000_0000, true).unwrap();
    let mut leaves = Vec::new();
    npt.for_each_leaf(&huge, |l| leaves.push(l));
    let l = leaves[0];
    assert_eq!(leaves.len(), 1);
    assert_eq!(
        (l.gpa, l.hpa, l.size, l.writable),
        (0x20_0000, 0x4000_0000, HUGE_SIZE, true)
    );
    assert_eq!(l.frames().count(), 512);
    assert_eq!(l.frames().last(), Some(0x401f_f000));
}

#[test]
fn a_range_maps_2m_leaves_where_aligned_and_4k_leaves_elsewhere() {
    let mut m = FakeTables::default();
    let npt = Npt::new(&mut m).unwrap();
    // 5 MiB + 8 KiB at a gpa 4 KiB below a 2 MiB boundary, host 2 MiB aligned minus 4 KiB.
    let (gpa, hpa, bytes) = (0x1f_f000, 0x3f_f000, (5 << 20) + 0x2000);
    npt.map_range(&mut m, gpa, hpa, bytes, true).unwrap();
    let mut leaves = Vec::new();
    npt.for_each_leaf(&m, |l| leaves.push(l));
    let mapped: u64 = leaves.iter().map(|l| l.size).sum();
    assert_eq!(mapped, bytes);
    assert_eq!(leaves.iter().filter(|l| l.size == HUGE_SIZE).count(), 2);
    for l in &leaves {
        assert_eq!(l.hpa - hpa, l.gpa - gpa);
    }
    assert_eq!(npt.translate(&m, gpa + bytes), None);
    assert_eq!(npt.translate(&m, gpa - 1), None);
    assert_eq!(
        npt.map_range(&mut m, 0, 0, 100, true),
        Err(NptError::BadAddress(100))
    );
    assert_eq!(
        npt.map_range(&mut m, GPA_LIMIT - PAGE_SIZE, 0, 2 * PAGE_SIZE, true),
        Err(NptError::BadAddress(GPA_LIMIT - PAGE_SIZE))
    );
}

mod isolation {
    //! Two domains built from one frame allocator as hv's kernel builds them
    //! (`kernel::domain::build`, `kernel::memory`): their nested tables never share a host
    //! frame, and tearing one down gives back exactly what it took.

    use super::*;
    use crate::frames::{FRAME_SIZE, FrameAllocator, FreeRanges, PhysRange};
    use pvh::boot_info::{MemoryRegion, RegionKind};
    use std::collections::{BTreeSet, HashMap};

    /// The console and store pages' frames (hv's `layout`), as the toolstack places them.
    const CONSOLE_GFN: u64 = 0xfefff;
    const STORE_GFN: u64 = 0xfeffc;
    const MIB: u64 = 1 << 20;

    /// The host: its frames, and the table pages in use by any domain (host-physical page →
    /// entries), shared as host memory is.
    struct Host {
        frames: FrameAllocator,
        tables: HashMap<u64, [u64; 512]>,
    }

    impl Host {
        /// A QEMU-like map: 640 KiB low, RAM from 1 MiB, hv's image (2 MiB) reserved.
        fn new(ram_mib: u64) -> Self {
            let ram = |base, size| MemoryRegion {
                base,
                size,
                kind: RegionKind::Ram,
            };
            let map = [ram(0, 0xa_0000), ram(MIB, (ram_mib - 1) * MIB)];
            let reserved = [
                PhysRange::from_len(0, MIB),
                PhysRange::from_len(MIB, 2 * MIB),
            ];
            Self {
                frames: FrameAllocator::new(FreeRanges::compute(&map, &reserved, u64::MAX)),
                tables: HashMap::new(),
            }
        }

        fn free_frames(&self) -> u64 {
            self.frames.free_bytes() / FRAME_SIZE
        }
    }

    /// One domain's tables: entries in the host's memory, pages from the domain's pool (as
    /// the kernel's `HostTables`).
    struct PoolTables<'a> {
        tables: &'a mut HashMap<u64, [u64; 512]>,
        pool: &'a mut TablePool,
    }

    impl TableMemory for PoolTables<'_> {
        fn read_entry(&self, table: u64, index: usize) -> u64 {
            self.tables[&table][index]
        }
        fn write_entry(&mut self, table: u64, index: usize, value: u64) {
            self.tables.get_mut(&table).expect("a table in use")[index] = value;
        }
        fn alloc_table(&mut self) -> Result<u64, NptError> {
            let page = self.pool.take().ok_or(NptError::OutOfMemory)?;
            assert!(
                self.tables.insert(page, [0; 512]).is_none(),
                "{page:#x}: a table of another tree"
            );
            Ok(page)
        }
        fn free_table(&mut self, table: u64) {
            assert!(self.tables.remove(&table).is_some(), "freed twice");
            self.pool.give_back(table);
        }
    }

    /// The host's tables read-only (for the walks).
    struct Reader<'a>(&'a HashMap<u64, [u64; 512]>);

    impl TableMemory for Reader<'_> {
        fn read_entry(&self, table: u64, index: usize) -> u64 {
            self.0[&table][index]
        }
        fn write_entry(&mut self, _: u64, _: usize, _: u64) {
            unreachable!("read only")
        }
        fn alloc_table(&mut self) -> Result<u64, NptError> {
            unreachable!("read only")
        }
        fn free_table(&mut self, _: u64) {
            unreachable!("read only")
        }
    }

    /// What the kernel holds of a domain's memory (`Owned`, the pool, the grant frames).
    struct Dom {
        ram: (u64, u64),
        pages: [u64; 3],
        pool: TablePool,
        grants: Vec<u64>,
        npt: Npt,
        /// Where shared_info and each grant frame are placed now.
        shared_info_gfn: Option<u64>,
        grant_gfns: Vec<Option<u64>>,
    }

    impl Dom {
        /// Builds a domain of `memory_mib` MiB as `Domain::build` does: RAM 2 MiB aligned,
        /// the console, store and shared_info pages, the paging pool, then the tables (RAM,
        /// console and store pages).
        fn build(host: &mut Host, memory_mib: u64) -> Self {
            let f = &mut host.frames;
            let ram_bytes = memory_mib * MIB;
            let ram = f.allocate_top(ram_bytes, HUGE_SIZE).unwrap();
            let pages = [(); 3].map(|()| f.allocate_top(FRAME_SIZE, FRAME_SIZE).unwrap());
            let pool_pages = paging_pool_pages(memory_mib, 1);
            let base = f.allocate_top(pool_pages * FRAME_SIZE, FRAME_SIZE).unwrap();
            let mut pool = TablePool::new(base, pool_pages);
            let mut t = PoolTables {
                tables: &mut host.tables,
                pool: &mut pool,
            };
            let npt = Npt::new(&mut t).unwrap();
            npt.map_range(&mut t, 0, ram, ram_bytes, true).unwrap();
            npt.map_4k(&mut t, CONSOLE_GFN * PAGE_SIZE, pages[0], true)
                .unwrap();
            npt.map_4k(&mut t, STORE_GFN * PAGE_SIZE, pages[1], true)
                .unwrap();
            Self {
                ram: (ram, ram_bytes),
                pages,
                pool,
                grants: Vec::new(),
                npt,
                shared_info_gfn: None,
                grant_gfns: Vec::new(),
            }
        }

        /// `XENMEM_add_to_physmap` of shared_info at `gfn` (a move if placed already).
        fn place_shared_info(&mut self, host: &mut Host, gfn: u64) {
            let mut t = PoolTables {
                tables: &mut host.tables,
                pool: &mut self.pool,
            };
            let old = self.shared_info_gfn.map(|g| g * PAGE_SIZE);
            self.npt
                .remap_4k(&mut t, old, gfn * PAGE_SIZE, self.pages[2], true)
                .unwrap();
            self.shared_info_gfn = Some(gfn);
        }

        /// `XENMEM_add_to_physmap` of grant frame `idx` at `gfn`: the frame is allocated
        /// when first placed, as hv does.
        fn place_grant_frame(&mut self, host: &mut Host, idx: usize, gfn: u64) {
            while self.grants.len() <= idx {
                let frame = host.frames.allocate_top(FRAME_SIZE, FRAME_SIZE).unwrap();
                self.grants.push(frame);
                self.grant_gfns.push(None);
            }
            let mut t = PoolTables {
                tables: &mut host.tables,
                pool: &mut self.pool,
            };
            let old = self.grant_gfns[idx].map(|g| g * PAGE_SIZE);
            self.npt
                .remap_4k(&mut t, old, gfn * PAGE_SIZE, self.grants[idx], true)
                .unwrap();
            self.grant_gfns[idx] = Some(gfn);
        }

        /// Every host frame the domain was given, as `Domain::teardown` gives them back.
        fn runs(&self) -> Vec<(u64, u64)> {
            let mut runs = vec![self.ram];
            runs.extend(self.pages.iter().map(|&p| (p, FRAME_SIZE)));
            runs.push(self.pool.block());
            runs.extend(self.grants.iter().map(|&g| (g, FRAME_SIZE)));
            runs
        }

        fn owned_frames(&self) -> BTreeSet<u64> {
            self.runs()
                .into_iter()
                .flat_map(|(start, bytes)| {
                    (0..bytes / FRAME_SIZE).map(move |i| start + i * FRAME_SIZE)
                })
                .collect()
        }

        /// The host frames its leaves map and its table pages.
        fn mapped(&self, host: &Host) -> (BTreeSet<u64>, BTreeSet<u64>) {
            let mut leaves = BTreeSet::new();
            self.npt
                .for_each_leaf(&Reader(&host.tables), |l| leaves.extend(l.frames()));
            let mut tables = BTreeSet::new();
            self.npt.for_each_table(&Reader(&host.tables), |t| {
                assert!(tables.insert(t), "{t:#x}: a table twice in one tree");
            });
            (leaves, tables)
        }

        /// Gives everything back as `Domain::teardown` does: RAM, the three pages, the pool
        /// block (with every table in it), the grant frames.
        fn teardown(self, host: &mut Host) {
            let mut tables = Vec::new();
            self.npt
                .for_each_table(&Reader(&host.tables), |t| tables.push(t));
            for t in tables {
                host.tables.remove(&t);
            }
            for (start, bytes) in self.runs() {
                host.frames.free(start, bytes).unwrap();
            }
        }
    }

    /// The checks: no host frame in both domains' leaves or tables, no table page a leaf of
    /// either, each domain's leaves inside what was allocated for it and its tables inside
    /// its pool, every pool page in use in the tree.
    fn check_isolated(host: &Host, doms: &[&Dom]) {
        let mapped: Vec<_> = doms.iter().map(|d| d.mapped(host)).collect();
        let all_tables: BTreeSet<u64> =
            mapped.iter().flat_map(|(_, t)| t.iter().copied()).collect();
        for (i, (d, (leaves, tables))) in doms.iter().zip(&mapped).enumerate() {
            let owned = d.owned_frames();
            let outside: Vec<_> = leaves.difference(&owned).take(3).collect();
            assert!(
                outside.is_empty(),
                "domain {i}: leaves outside its frames: {outside:x?}"
            );
            assert!(
                tables.iter().all(|&t| d.pool.contains(t)),
                "domain {i}: a table outside its pool"
            );
            assert_eq!(
                tables.len() as u64,
                d.pool.in_use(),
                "domain {i}: pool pages in use"
            );
            let shared: Vec<_> = leaves.intersection(&all_tables).take(3).collect();
            assert!(
                shared.is_empty(),
                "domain {i}: table pages mapped as leaves: {shared:x?}"
            );
            for (j, (other_leaves, other_tables)) in mapped.iter().enumerate().skip(i + 1) {
                let both: Vec<_> = leaves
                    .union(tables)
                    .filter(|f| other_leaves.contains(f) || other_tables.contains(f))
                    .take(3)
                    .collect();
                assert!(
                    both.is_empty(),
                    "domains {i} and {j} share frames {both:x?}"
                );
            }
        }
    }

    #[test]
    fn two_domains_tables_never_share_a_frame() {
        let mut host = Host::new(512);
        let mut one = Dom::build(&mut host, 128);
        let mut two = Dom::build(&mut host, 64);
        one.place_shared_info(&mut host, 0x7_0000);
        two.place_shared_info(&mut host, 0x10); // over its own RAM
        two.place_grant_frame(&mut host, 0, 0xf_0000);
        two.place_grant_frame(&mut host, 1, 0x11);
        one.place_grant_frame(&mut host, 0, 0x20);
        check_isolated(&host, &[&one, &two]);
        // What the guests see: their own pages at the same gfns.
        let r = Reader(&host.tables);
        for (d, gfn, hpa) in [
            (&one, CONSOLE_GFN, one.pages[0]),
            (&two, CONSOLE_GFN, two.pages[0]),
            (&two, 0x10, two.pages[2]),
            (&two, 0x11, two.grants[1]),
            (&one, 0x10, one.ram.0 + 0x10 * PAGE_SIZE),
        ] {
            assert_eq!(d.npt.translate(&r, gfn * PAGE_SIZE).unwrap().hpa, hpa);
        }
    }

    #[test]
    fn a_domain_that_uses_up_its_pool_stays_inside_it() {
        let mut host = Host::new(64);
        let one = Dom::build(&mut host, 2);
        let mut two = Dom::build(&mut host, 2);
        // Domain 2 maps its first RAM page in one fresh 1 GiB region after another, each
        // taking two more table pages, then in fresh 2 MiB regions of the first (one more
        // each), until its pool is used up.
        let mut t = PoolTables {
            tables: &mut host.tables,
            pool: &mut two.pool,
        };
        let mut placed = 0u64;
        for step in [30, 21] {
            let mut at = 0;
            let refused = loop {
                at += 1;
                let gpa = (2 << 30) + ((at - 1) << step);
                match two.npt.map_4k(&mut t, gpa, two.ram.0, true) {
                    Ok(()) => placed += 1,
                    Err(e) => break e,
                }
            };
            assert_eq!(refused, NptError::OutOfMemory);
        }
        assert_eq!(two.pool.in_use(), two.pool.pages());
        assert!(placed > 100, "{placed}");
        check_isolated(&host, &[&one, &two]);
    }

    #[test]
    fn tearing_down_a_domain_gives_back_exactly_its_frames() {
        let mut host = Host::new(400);
        let before_one = host.free_frames();
        let mut one = Dom::build(&mut host, 128);
        one.place_shared_info(&mut host, 0x7_0000);
        one.place_grant_frame(&mut host, 0, 0x20);
        let one_frames = one.owned_frames();
        assert_eq!(before_one - host.free_frames(), one_frames.len() as u64);
        let before_two = host.free_frames();
        let mut two = Dom::build(&mut host, 66);
        two.place_shared_info(&mut host, 0x10);
        for (idx, gfn) in [(0, 0xf_0000), (1, 0x11), (3, 0x12)] {
            two.place_grant_frame(&mut host, idx, gfn);
        }
        check_isolated(&host, &[&one, &two]);
        let (one_leaves, _) = one.mapped(&host);
        two.teardown(&mut host);
        assert_eq!(host.free_frames(), before_two);
        assert_eq!(host.frames.leaked_bytes(), 0);
        // Domain 1 is untouched, and nothing handed out from now on is one of its frames.
        assert_eq!(one.mapped(&host).0, one_leaves);
        check_isolated(&host, &[&one]);
        let mut handed = 0u64;
        while let Ok(f) = host.frames.allocate(1) {
            assert!(
                !one_frames.contains(&f),
                "{f:#x} of domain 1 handed out again"
            );
            handed += 1;
        }
        assert_eq!(handed, before_two);
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(32))]

        /// Any RAM sizes (odd MiB too), any moves of shared_info and grant frames: the two
        /// domains stay apart, and tearing down the second gives back exactly what it took.
        #[test]
        fn any_sizes_and_remaps_keep_domains_apart(
            mib in (1u64..48, 1u64..48),
            moves in proptest::collection::vec(
                (0usize..2, 0usize..3, 0u64..(1 << 24)),
                0..24,
            ),
        ) {
            let mut host = Host::new(256);
            let mut one = Dom::build(&mut host, mib.0);
            let before_two = host.free_frames();
            let one_before = one.owned_frames().len() as u64;
            let mut two = Dom::build(&mut host, mib.1);
            for (dom, what, gfn) in moves {
                // Below the special pages, or anywhere up to 64 GiB.
                let gfn = if gfn % 2 == 0 { gfn % 0x1000 } else { gfn };
                if gfn == CONSOLE_GFN || gfn == STORE_GFN {
                    continue;
                }
                let d = if dom == 0 { &mut one } else { &mut two };
                match what {
                    0 => d.place_shared_info(&mut host, gfn),
                    idx => d.place_grant_frame(&mut host, idx - 1, gfn),
                }
            }
            check_isolated(&host, &[&one, &two]);
            let one_frames = one.owned_frames();
            two.teardown(&mut host);
            // Grant frames domain 1 took meanwhile stay taken.
            let one_since = one_frames.len() as u64 - one_before;
            proptest::prop_assert_eq!(host.free_frames(), before_two - one_since);
            // Built again, domain 2 gets none of domain 1's frames.
            let again = Dom::build(&mut host, mib.1);
            proptest::prop_assert!(again.owned_frames().is_disjoint(&one_frames));
            check_isolated(&host, &[&one, &again]);
        }
    }
}
