//! Nested page tables: the guest-physical to host-physical map of a domain, in the
//! long-mode page-table format AMD's nested paging walks (4 levels; every entry user,
//! since nested walks treat all accesses as user accesses).
//!
//! The table memory is behind [`TableMemory`] so the logic runs on the host.

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
        let table = self.table_at(mem, gpa, level)?;
        let rw = if writable { WRITABLE } else { 0 };
        mem.write_entry(table, index(gpa, level), hpa | PRESENT | USER | leaf | rw);
        Ok(())
    }

    /// Removes the 4 KiB page at `gpa` (splitting a 2 MiB mapping that covers it).
    pub fn unmap_4k(&self, mem: &mut impl TableMemory, gpa: u64) -> Result<(), NptError> {
        Self::check(gpa, 0, PAGE_SIZE)?;
        let l1 = self.table_at(mem, gpa, 1)?;
        mem.write_entry(l1, index(gpa, 1), 0);
        Ok(())
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

    /// Tables in a hash map, allocated from a counter.
    #[derive(Default)]
    struct FakeTables {
        pages: HashMap<u64, [u64; 512]>,
        next: u64,
        limit: usize,
    }

    impl TableMemory for FakeTables {
        fn read_entry(&self, table: u64, index: usize) -> u64 {
            self.pages[&table][index]
        }
        fn write_entry(&mut self, table: u64, index: usize, value: u64) {
            self.pages.get_mut(&table).expect("table")[index] = value;
        }
        fn alloc_table(&mut self) -> Result<u64, NptError> {
            if self.limit != 0 && self.pages.len() >= self.limit {
                return Err(NptError::OutOfMemory);
            }
            self.next += PAGE_SIZE;
            let pa = 0x4000_0000 + self.next;
            self.pages.insert(pa, [0; 512]);
            Ok(pa)
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
