//! The frames a domain owns and its page count, as Xen counts `tot_pages`: its RAM block
//! less the pages hv's allocator took back, and the runs it was given since
//! (`populate_physmap`, `increase_reservation`). Teardown gives back [`Ledger::runs`], each
//! frame once.

use alloc::collections::BTreeMap;
use alloc::vec;
use alloc::vec::Vec;

use crate::guest::phys::PAGE_SIZE;

/// The most runs of frames outside the RAM block a ledger keeps (bounds hv's heap per
/// domain; a populate that would need one more fails as Xen's does when it has no memory).
pub const MAX_EXTRA_RUNS: usize = 1024;

/// What [`Ledger::release`] did with a frame the guest removed from its physical map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Released {
    /// hv's allocator took it back; the domain's page count dropped.
    ToHost,
    /// The domain keeps it as a spare (hv's allocator had no room for it), reused by its next
    /// populate; the domain's page count dropped.
    Spare,
    /// Not a frame the domain owns (a special page hv keeps: console, xenstore, shared_info,
    /// grant frames), or no room to record it: nothing changes but the mapping.
    Kept,
}

/// The ledger of one domain.
#[derive(Debug)]
pub struct Ledger {
    ram_base: u64,
    ram_pages: u64,
    /// One bit per page of the RAM block: set once hv's allocator has the page back.
    holes: Vec<u64>,
    /// Runs outside the RAM block the domain owns: first frame -> pages. Runs never touch.
    extra: BTreeMap<u64, u64>,
    /// Owned frames the domain gave back that hv's allocator had no room for.
    spare: Vec<u64>,
    tot_pages: u64,
    max_pages: u64,
}

impl Ledger {
    /// A domain with `ram_pages` of RAM at host `ram_base`, `fixed_pages` more that count
    /// as its memory (Xen counts the console and xenstore pages, which hv allocates apart
    /// and frees at teardown), and at most `max_pages` in all.
    pub fn new(ram_base: u64, ram_pages: u64, fixed_pages: u64, max_pages: u64) -> Self {
        Self {
            ram_base,
            ram_pages,
            holes: vec![0; usize::try_from(ram_pages.div_ceil(64)).unwrap_or(0)],
            extra: BTreeMap::new(),
            spare: Vec::new(),
            tot_pages: ram_pages.saturating_add(fixed_pages),
            max_pages,
        }
    }

    /// Xen's `domain_tot_pages`.
    pub fn tot_pages(&self) -> u64 {
        self.tot_pages
    }

    /// Xen's `max_pages`.
    pub fn max_pages(&self) -> u64 {
        self.max_pages
    }

    /// The index of `hpa`'s frame in the RAM block, if inside it.
    fn ram_index(&self, hpa: u64) -> Option<u64> {
        let i = hpa.checked_sub(self.ram_base)? / PAGE_SIZE;
        (i < self.ram_pages).then_some(i)
    }

    fn is_hole(&self, i: u64) -> bool {
        usize::try_from(i / 64)
            .ok()
            .and_then(|w| self.holes.get(w))
            .is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    /// The extra run holding `hpa`'s frame: (first frame, pages).
    fn extra_run(&self, hpa: u64) -> Option<(u64, u64)> {
        let (&base, &pages) = self.extra.range(..=hpa).next_back()?;
        (hpa < base.saturating_add(pages.saturating_mul(PAGE_SIZE))).then_some((base, pages))
    }

    /// The guest removed frame `hpa` from its physical map (Xen's `guest_remove_page`) and
    /// nothing in hv holds it: `to_host` offers it to hv's allocator (true if taken). A frame
    /// the domain does not own is [`Released::Kept`].
    pub fn release(&mut self, hpa: u64, to_host: impl FnOnce(u64) -> bool) -> Released {
        let hpa = hpa & !(PAGE_SIZE - 1);
        // A hole of the block that hv's allocator handed out again is in an extra run.
        let split = if let Some(run) = self.extra_run(hpa) {
            Some(run)
        } else if self.ram_index(hpa).is_some_and(|i| !self.is_hole(i)) {
            None
        } else {
            return Released::Kept;
        };
        if self.spare.try_reserve(1).is_err() {
            return Released::Kept;
        }
        // Cutting a frame out of the middle of a run takes one more run.
        let room = split.is_none_or(|(base, pages)| {
            let last = base + (pages - 1) * PAGE_SIZE;
            hpa == base || hpa == last || self.extra.len() < MAX_EXTRA_RUNS
        });
        self.tot_pages = self.tot_pages.saturating_sub(1);
        if !room || !to_host(hpa) {
            self.spare.push(hpa);
            return Released::Spare;
        }
        match split {
            None => {
                if let Some(i) = self.ram_index(hpa)
                    && let Some(w) = usize::try_from(i / 64)
                        .ok()
                        .and_then(|w| self.holes.get_mut(w))
                {
                    *w |= 1 << (i % 64);
                }
            }
            Some((base, pages)) => {
                self.extra.remove(&base);
                let before = (hpa - base) / PAGE_SIZE;
                if before > 0 {
                    self.extra.insert(base, before);
                }
                let after = pages - before - 1;
                if after > 0 {
                    self.extra.insert(hpa + PAGE_SIZE, after);
                }
            }
        }
        Released::ToHost
    }

    /// How many frames the domain keeps as spares.
    pub fn spares(&self) -> usize {
        self.spare.len()
    }

    /// A spare frame for an order-0 populate, counted again; the caller zeroes and maps it.
    pub fn reuse_spare(&mut self) -> Option<u64> {
        let hpa = self.spare.pop()?;
        self.tot_pages = self.tot_pages.saturating_add(1);
        Some(hpa)
    }

    /// Records `pages` frames from `base` (fresh from hv's allocator) as the domain's, merged
    /// with a run they touch; `false` (nothing recorded) if that needs a run more than
    /// [`MAX_EXTRA_RUNS`].
    pub fn add(&mut self, base: u64, pages: u64) -> bool {
        let end = base.saturating_add(pages.saturating_mul(PAGE_SIZE));
        let below = self
            .extra
            .range(..base)
            .next_back()
            .map(|(&b, &p)| (b, p))
            .filter(|&(b, p)| b + p * PAGE_SIZE == base);
        let above = self.extra.get(&end).copied();
        let (start, mut total) = match below {
            Some((b, p)) => (b, p + pages),
            None => (base, pages),
        };
        if let Some(p) = above {
            self.extra.remove(&end);
            total += p;
        }
        if below.is_none() && above.is_none() && self.extra.len() >= MAX_EXTRA_RUNS {
            return false;
        }
        self.extra.insert(start, total);
        self.tot_pages = self.tot_pages.saturating_add(pages);
        true
    }

    /// Every run of frames the domain owns, `(start, bytes)`: the RAM block less its holes,
    /// then the extra runs (spare frames are among them). Each owned frame is in exactly one.
    pub fn runs(&self) -> Vec<(u64, u64)> {
        let mut runs = Vec::new();
        let mut start = None;
        for i in 0..=self.ram_pages {
            let owned = i < self.ram_pages && !self.is_hole(i);
            match (owned, start) {
                (true, None) => start = Some(i),
                (false, Some(s)) => {
                    runs.push((self.ram_base + s * PAGE_SIZE, (i - s) * PAGE_SIZE));
                    start = None;
                }
                _ => {}
            }
        }
        runs.extend(self.extra.iter().map(|(&b, &p)| (b, p * PAGE_SIZE)));
        runs
    }
}
