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

/// One leaf of a domain's nested tables: what [`Npt::for_each_leaf`] reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Leaf {
    /// Guest-physical address of the first byte mapped.
    pub gpa: u64,
    /// Host-physical address it maps to.
    pub hpa: u64,
    /// Bytes mapped: 4 KiB or 2 MiB.
    pub size: u64,
    /// Whether the guest may write it (every entry on the way down is writable).
    pub writable: bool,
}

impl Leaf {
    /// The host frames (4 KiB) the leaf maps, as host-physical addresses.
    pub fn frames(&self) -> impl Iterator<Item = u64> + use<> {
        let hpa = self.hpa;
        (0..self.size / PAGE_SIZE).map(move |i| hpa + i * PAGE_SIZE)
    }
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

    /// Maps the `bytes` at `gpa` to the `bytes` at `hpa` (all page aligned): 2 MiB leaves
    /// where both addresses are 2 MiB aligned and a whole 2 MiB is left, 4 KiB leaves
    /// elsewhere, so nothing beyond `[hpa, hpa + bytes)` is mapped (a domain's RAM of an odd
    /// number of MiB ends in 4 KiB leaves, as Xen falls back from superpages). On an error
    /// (no table page left), what was mapped before it stays mapped.
    pub fn map_range(
        &self,
        mem: &mut impl TableMemory,
        gpa: u64,
        hpa: u64,
        bytes: u64,
        writable: bool,
    ) -> Result<(), NptError> {
        Self::check(gpa, hpa, PAGE_SIZE)?;
        if !bytes.is_multiple_of(PAGE_SIZE) {
            return Err(NptError::BadAddress(bytes));
        }
        let end = gpa
            .checked_add(bytes)
            .filter(|&e| e <= GPA_LIMIT)
            .ok_or(NptError::BadAddress(gpa))?;
        let mut off = 0;
        while gpa + off < end {
            let (g, h) = (gpa + off, hpa + off);
            let huge =
                g.is_multiple_of(HUGE_SIZE) && h.is_multiple_of(HUGE_SIZE) && end - g >= HUGE_SIZE;
            if huge {
                self.map_2m(mem, g, h, writable)?;
                off += HUGE_SIZE;
            } else {
                self.map_4k(mem, g, h, writable)?;
                off += PAGE_SIZE;
            }
        }
        Ok(())
    }

    /// Calls `f` with every leaf, in guest-physical order: each present 2 MiB entry of a
    /// page directory and each present entry of a page table. An entry's `HUGE` bit is a
    /// leaf only at level 2, as in [`Self::translate`] (hv never writes 1 GiB leaves).
    pub fn for_each_leaf(&self, mem: &impl TableMemory, mut f: impl FnMut(Leaf)) {
        Self::walk(mem, self.root, 4, 0, true, &mut |_| {}, &mut f);
    }

    /// Calls `f` with the host-physical address of every table page the tree uses, the
    /// root first, then each table before the tables below it: the pages of the domain's
    /// paging pool in use, which no leaf may map.
    pub fn for_each_table(&self, mem: &impl TableMemory, mut f: impl FnMut(u64)) {
        Self::walk(mem, self.root, 4, 0, true, &mut f, &mut |_| {});
    }

    /// Visits `table` at `level`, which maps guest-physical addresses from `base`.
    fn walk(
        mem: &impl TableMemory,
        table: u64,
        level: u32,
        base: u64,
        writable: bool,
        on_table: &mut dyn FnMut(u64),
        on_leaf: &mut dyn FnMut(Leaf),
    ) {
        on_table(table);
        let span = PAGE_SIZE << (9 * (level - 1));
        for (i, gpa) in (0..512).zip((0..512u64).map(|k| base + k * span)) {
            let e = mem.read_entry(table, i);
            if e & PRESENT == 0 {
                continue;
            }
            let writable = writable && e & WRITABLE != 0;
            if level == 1 || (level == 2 && e & HUGE != 0) {
                let mask = if level == 2 { !(HUGE_SIZE - 1) } else { !0 };
                on_leaf(Leaf {
                    gpa,
                    hpa: e & ADDR_MASK & mask,
                    size: span,
                    writable,
                });
            } else {
                Self::walk(
                    mem,
                    e & ADDR_MASK,
                    level - 1,
                    gpa,
                    writable,
                    on_table,
                    on_leaf,
                );
            }
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
mod tests;
