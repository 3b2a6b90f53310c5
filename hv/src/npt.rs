//! Nested page tables: the guest-physical to host-physical map of a domain, in the
//! long-mode page-table format AMD's nested paging walks (4 levels; every entry user,
//! since nested walks treat all accesses as user accesses).
//!
//! The table memory is behind [`TableMemory`] so the logic runs on the host. Table pages come
//! from the domain's own [`TablePool`] (Xen's paging pool, sized by [`paging_pool_pages`]), and
//! a table left empty by an unmap (or by a map that failed half way) goes back to it, so no
//! sequence of guest remaps takes more than the pool.

use alloc::vec::Vec;

use crate::guest::phys::PAGE_SIZE;

/// Present.
pub const PRESENT: u64 = 1 << 0;
/// Writable.
pub const WRITABLE: u64 = 1 << 1;
/// User (required on every nested entry).
pub const USER: u64 = 1 << 2;
/// Page size: a 2 MiB leaf at level 2.
pub const HUGE: u64 = 1 << 7;
/// Address bits of an entry.
pub const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;

const HUGE_SIZE: u64 = 2 << 20;
/// Highest guest-physical address + 1 (4 levels, 48 bits).
pub const GPA_LIMIT: u64 = 1 << 48;

/// Host memory holding the tables.
pub trait TableMemory {
    /// Reads entry `index` of the table at host-physical `table`.
    fn read_entry(&self, table: u64, index: usize) -> u64;
    /// Writes entry `index` of the table at host-physical `table`.
    fn write_entry(&mut self, table: u64, index: usize, value: u64);
    /// A new zeroed, page-aligned table; its host-physical address.
    fn alloc_table(&mut self) -> Result<u64, NptError>;
    /// Gives back a table [`Self::alloc_table`] handed out, no longer referenced by any entry.
    fn free_table(&mut self, table: u64);
}

/// The paging pool of a domain with `memory_mib` MiB of RAM and `vcpus` vCPUs, in 4 KiB
/// pages: libxl 4.17's default `shadow_memory` for a HAP (PVH or HVM) domain,
/// `libxl__get_required_paging_memory`: 1 MiB (256 pages) per vCPU plus one page per MiB of
/// RAM for the p2m, which `XEN_DOMCTL_set_paging_mempool_size` then hands to
/// `hap_set_allocation`. 384 pages (1.5 MiB) for a 128 MiB, one-vCPU domain.
pub const fn paging_pool_pages(memory_mib: u64, vcpus: u64) -> u64 {
    256 * vcpus + memory_mib
}

/// A domain's pool of table pages: `pages` page-aligned pages from `base`, handed out and
/// taken back one at a time (Xen's `hap_alloc` / `hap_free` on the domain's free list).
#[derive(Debug)]
pub struct TablePool {
    base: u64,
    pages: u64,
    /// Pages never handed out yet are `[next, pages)`; pages given back are on `free`.
    next: u64,
    free: Vec<u64>,
    in_use: u64,
    peak: u64,
    refused: u64,
}

impl TablePool {
    /// A pool of the `pages` pages at host-physical `base` (page aligned, owned by the pool).
    pub fn new(base: u64, pages: u64) -> Self {
        Self {
            base,
            pages,
            next: 0,
            free: Vec::new(),
            in_use: 0,
            peak: 0,
            refused: 0,
        }
    }

    /// A page of the pool (not zeroed here), or `None` when every page is in use.
    pub fn take(&mut self) -> Option<u64> {
        let page = match self.free.pop() {
            Some(p) => p,
            None if self.next < self.pages => {
                self.next += 1;
                self.base + (self.next - 1) * PAGE_SIZE
            }
            None => {
                self.refused += 1;
                return None;
            }
        };
        self.in_use += 1;
        self.peak = self.peak.max(self.in_use);
        Some(page)
    }

    /// Takes back `page`, which [`Self::take`] handed out; anything else is ignored.
    pub fn give_back(&mut self, page: u64) {
        let inside = page
            .checked_sub(self.base)
            .is_some_and(|off| off % PAGE_SIZE == 0 && off / PAGE_SIZE < self.next);
        if inside && self.in_use > 0 {
            self.in_use -= 1;
            self.free.push(page);
        }
    }

    /// The pool's size in pages.
    pub fn pages(&self) -> u64 {
        self.pages
    }

    /// Pages handed out now.
    pub fn in_use(&self) -> u64 {
        self.in_use
    }

    /// The most pages handed out at once.
    pub fn peak(&self) -> u64 {
        self.peak
    }

    /// Requests refused because every page was in use.
    pub fn refused(&self) -> u64 {
        self.refused
    }

    /// The pool's block as `(base, bytes)`: what goes back to the frame allocator when the
    /// domain is torn down (with every table in it).
    pub fn block(&self) -> (u64, u64) {
        (self.base, self.pages * PAGE_SIZE)
    }

    /// Whether host-physical `pa` lies inside the pool.
    pub fn contains(&self, pa: u64) -> bool {
        pa.checked_sub(self.base)
            .is_some_and(|off| off < self.pages * PAGE_SIZE)
    }
}

/// Errors of the nested tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NptError {
    /// No memory for a table.
    OutOfMemory,
    /// The address is not aligned for the mapping size, or above 48 bits.
    BadAddress(u64),
}

/// A domain's nested page tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Npt {
    /// Host-physical address of the PML4 (the VMCB's N_CR3).
    pub root: u64,
}

fn index(gpa: u64, level: u32) -> usize {
    ((gpa >> (12 + 9 * (level - 1))) & 511) as usize
}

/// A guest-physical translation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Translation {
    /// Host-physical address of the byte.
    pub hpa: u64,
    /// Whether the guest may write it.
    pub writable: bool,
}

impl Npt {
    /// Empty tables.
    pub fn new(mem: &mut impl TableMemory) -> Result<Self, NptError> {
        Ok(Self {
            root: mem.alloc_table()?,
        })
    }

    /// The table at `level` - 1 under `table[idx]`, made (or split from a 2 MiB leaf) if
    /// needed.
    fn next(
        mem: &mut impl TableMemory,
        table: u64,
        idx: usize,
        level: u32,
    ) -> Result<u64, NptError> {
        let e = mem.read_entry(table, idx);
        if e & PRESENT != 0 && e & HUGE == 0 {
            return Ok(e & ADDR_MASK);
        }
        let new = mem.alloc_table()?;
        if e & PRESENT != 0 && level == 2 {
            // Split a 2 MiB leaf into 512 4 KiB pages with the same rights.
            let base = e & ADDR_MASK & !(HUGE_SIZE - 1);
            let flags = e & (PRESENT | WRITABLE | USER);
            for i in 0..512 {
                mem.write_entry(new, i, (base + i as u64 * PAGE_SIZE) | flags);
            }
        }
        mem.write_entry(table, idx, new | PRESENT | WRITABLE | USER);
        Ok(new)
    }

    fn check(gpa: u64, hpa: u64, size: u64) -> Result<(), NptError> {
        if !gpa.is_multiple_of(size) || gpa >= GPA_LIMIT {
            return Err(NptError::BadAddress(gpa));
        }
        if !hpa.is_multiple_of(size) || hpa & !ADDR_MASK != 0 {
            return Err(NptError::BadAddress(hpa));
        }
        Ok(())
    }

    /// The table at `level` (2 = page directory, 1 = page table) covering `gpa`, made on
    /// the way down if missing.
    fn table_at(&self, mem: &mut impl TableMemory, gpa: u64, level: u32) -> Result<u64, NptError> {
        let mut table = self.root;
        for l in (level + 1..=4).rev() {
            table = Self::next(mem, table, index(gpa, l), l)?;
        }
        Ok(table)
    }

    /// Maps the 2 MiB at `gpa` to `hpa` (both 2 MiB aligned), replacing what was there.
    pub fn map_2m(
        &self,
        mem: &mut impl TableMemory,
        gpa: u64,
        hpa: u64,
        writable: bool,
    ) -> Result<(), NptError> {
        self.map_leaf(mem, gpa, hpa, writable, 2)
    }

    /// Maps the 4 KiB page at `gpa` to `hpa`, splitting a 2 MiB mapping if one covers it.
    pub fn map_4k(
        &self,
        mem: &mut impl TableMemory,
        gpa: u64,
        hpa: u64,
        writable: bool,
    ) -> Result<(), NptError> {
        self.map_leaf(mem, gpa, hpa, writable, 1)
    }

    /// Writes a leaf at `level` (2: a 2 MiB page, 1: a 4 KiB page).
    fn map_leaf(
        &self,
        mem: &mut impl TableMemory,
        gpa: u64,
        hpa: u64,
        writable: bool,
        level: u32,
    ) -> Result<(), NptError> {
        let (size, leaf) = if level == 2 {
            (HUGE_SIZE, HUGE)
        } else {
            (PAGE_SIZE, 0)
        };
        Self::check(gpa, hpa, size)?;
        let table = match self.table_at(mem, gpa, level) {
            Ok(t) => t,
            Err(e) => {
                // Tables made on the way down before the pool ran dry hold nothing.
                self.prune(mem, gpa);
                return Err(e);
            }
        };
        if level == 2 {
            // A 2 MiB leaf replaces whatever table was there: give it back.
            let old = mem.read_entry(table, index(gpa, 2));
            if old & PRESENT != 0 && old & HUGE == 0 {
                // A page table: its entries are leaves.
                mem.free_table(old & ADDR_MASK);
            }
        }
        let rw = if writable { WRITABLE } else { 0 };
        mem.write_entry(table, index(gpa, level), hpa | PRESENT | USER | leaf | rw);
        Ok(())
    }

    /// Removes the 4 KiB page at `gpa` (splitting a 2 MiB mapping that covers it); tables
    /// left empty go back to the pool. Nothing mapped there: nothing to do.
    pub fn unmap_4k(&self, mem: &mut impl TableMemory, gpa: u64) -> Result<(), NptError> {
        Self::check(gpa, 0, PAGE_SIZE)?;
        if self.translate(mem, gpa).is_none() {
            self.prune(mem, gpa);
            return Ok(());
        }
        let l1 = self.table_at(mem, gpa, 1)?;
        mem.write_entry(l1, index(gpa, 1), 0);
        self.prune(mem, gpa);
        Ok(())
    }

    /// Moves the 4 KiB page mapped at `old` (if any) to `new`, mapping `hpa` there: the new
    /// mapping is made first, so a failure (no table page left) leaves the old one in place;
    /// then the old is removed, its emptied tables going back to the pool.
    pub fn remap_4k(
        &self,
        mem: &mut impl TableMemory,
        old: Option<u64>,
        new: u64,
        hpa: u64,
        writable: bool,
    ) -> Result<(), NptError> {
        self.map_4k(mem, new, hpa, writable)?;
        match old {
            Some(o) if o != new => self.unmap_4k(mem, o),
            _ => Ok(()),
        }
    }

    /// Frees the tables on the path to `gpa` that hold no entry any more, deepest first
    /// (never the root), and clears the entries that pointed to them.
    fn prune(&self, mem: &mut impl TableMemory, gpa: u64) {
        // The path: (table, index of the entry in it) from the root down.
        let mut path = [(0u64, 0usize); 4];
        let mut depth = 0;
        let mut table = self.root;
        for level in (1..=4).rev() {
            path[depth] = (table, index(gpa, level));
            depth += 1;
            let e = mem.read_entry(table, index(gpa, level));
            if level == 1 || e & PRESENT == 0 || (level == 2 && e & HUGE != 0) {
                break;
            }
            table = e & ADDR_MASK;
        }
        // path[k + 1].0 is the table the entry path[k] points to.
        for k in (0..depth.saturating_sub(1)).rev() {
            let (parent, idx) = path[k];
            let child = path[k + 1].0;
            if (0..512).any(|i| mem.read_entry(child, i) != 0) {
                break;
            }
            mem.write_entry(parent, idx, 0);
            mem.free_table(child);
        }
    }

    /// Where guest-physical `gpa` lives, if mapped.
    pub fn translate(&self, mem: &impl TableMemory, gpa: u64) -> Option<Translation> {
        if gpa >= GPA_LIMIT {
            return None;
        }
        let mut table = self.root;
        let mut writable = true;
        for level in (1..=4).rev() {
            let e = mem.read_entry(table, index(gpa, level));
            if e & PRESENT == 0 {
                return None;
            }
            writable &= e & WRITABLE != 0;
            if level == 2 && e & HUGE != 0 {
                let base = e & ADDR_MASK & !(HUGE_SIZE - 1);
                return Some(Translation {
                    hpa: base + (gpa & (HUGE_SIZE - 1)),
                    writable,
                });
            }
            if level == 1 {
                return Some(Translation {
                    hpa: (e & ADDR_MASK) + (gpa & (PAGE_SIZE - 1)),
                    writable,
                });
            }
            table = e & ADDR_MASK;
        }
        None
    }
}

#[cfg(test)]
mod tests {
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
}
