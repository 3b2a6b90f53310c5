//! A grant table and guest memory on the host, with the backend's side of grants: mapping a
//! granted page with Xen's permission checks, as a fake backend needs.

use crate::grant::{ENTRIES_PER_FRAME, FrameAddFailed, GrantEntries};
use crate::page::{Page, PageError, PageProvider};
use crate::types::{DomId, Gfn, GrantRef};
use abi::grant_table::{GTF_PERMIT_ACCESS, GTF_READING, GTF_READONLY, GTF_WRITING};
use abi::page::AtomicPage;
use abi::xen::Domid;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

/// First frame number [`HostMemory`] hands out (any value works; this one looks like RAM).
const FIRST_GFN: u64 = 0x1000;

#[derive(Debug, Default)]
struct MemoryInner {
    pages: BTreeMap<u64, &'static AtomicPage>,
    free: Vec<u64>,
    next: u64,
    limit: Option<usize>,
    allocated: usize,
}

/// Guest memory on the host: a [`PageProvider`] whose pages a fake backend can look up by
/// frame number. Clones share the same memory. Pages are leaked (their memory must outlive
/// every ring built on them); tests allocate few.
#[derive(Clone, Debug, Default)]
pub struct HostMemory {
    inner: Rc<RefCell<MemoryInner>>,
}

impl HostMemory {
    /// Memory with no limit on pages.
    pub fn new() -> Self {
        Self::default()
    }

    /// At most `pages` pages allocated at once; more fail with [`PageError::Exhausted`].
    pub fn with_limit(pages: usize) -> Self {
        let m = Self::default();
        m.inner.borrow_mut().limit = Some(pages);
        m
    }

    /// The memory of frame `gfn`, if this memory ever handed it out.
    pub fn frame(&self, gfn: u64) -> Option<&'static AtomicPage> {
        self.inner.borrow().pages.get(&gfn).copied()
    }

    /// Pages currently allocated (not released).
    pub fn allocated(&self) -> usize {
        self.inner.borrow().allocated
    }
}

impl PageProvider for HostMemory {
    fn alloc_zeroed(&mut self) -> Result<Page, PageError> {
        let mut m = self.inner.borrow_mut();
        if m.limit.is_some_and(|limit| m.allocated >= limit) {
            return Err(PageError::Exhausted);
        }
        let gfn = match m.free.pop() {
            Some(gfn) => gfn,
            None => {
                let gfn = FIRST_GFN + m.next;
                m.next += 1;
                let memory: &'static AtomicPage = Box::leak(Box::new(AtomicPage::zeroed()));
                m.pages.insert(gfn, memory);
                gfn
            }
        };
        m.allocated += 1;
        let memory = m.pages[&gfn];
        memory.fill(0);
        let gfn = Gfn::try_new(gfn).map_err(|_| PageError::Exhausted)?;
        Ok(Page::new(memory, gfn))
    }

    fn release(&mut self, page: Page) {
        let mut m = self.inner.borrow_mut();
        page.zero();
        m.free.push(page.gfn().get());
        m.allocated -= 1;
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Entry {
    flags: u16,
    domid: Domid,
    frame: u32,
}

/// Why a fake backend could not map a grant (Xen answers `GNTST_*` for these).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    /// The reference is beyond the table (`GNTST_bad_gntref`).
    BadRef,
    /// The entry does not permit access to this domain, or not for writing
    /// (`GNTST_permission_denied`).
    PermissionDenied,
    /// The granted frame is not memory of the granting domain (`GNTST_bad_page`).
    BadPage,
}

/// The granting domain's grant-table entries on the host ([`GrantEntries`]), plus what Xen
/// does for the backend: [`FakeGrantEntries::map`] and [`FakeGrantEntries::unmap`] set and
/// clear `GTF_reading`/`GTF_writing` as Xen does while a grant is mapped.
#[derive(Debug, Default)]
pub struct FakeGrantEntries {
    entries: RefCell<Vec<Entry>>,
    /// When set, adding a frame fails.
    pub refuse_frames: bool,
    /// Frame indexes added, in order.
    pub added: Vec<u32>,
}

impl FakeGrantEntries {
    /// A table with `frames` frames already mapped.
    pub fn with_frames(frames: u32) -> Self {
        let t = Self::default();
        t.entries
            .borrow_mut()
            .resize((frames * ENTRIES_PER_FRAME) as usize, Entry::default());
        t
    }

    /// The raw `flags` of `gref` (0 beyond the table).
    pub fn flags(&self, gref: GrantRef) -> u16 {
        self.entry(gref.get()).map_or(0, |e| e.flags)
    }

    fn entry(&self, gref: u32) -> Option<Entry> {
        self.entries.borrow().get(gref as usize).copied()
    }

    /// Backend `domid` maps `gref` (for writing if `write`): Xen's checks, then the page.
    pub fn map(
        &self,
        memory: &HostMemory,
        gref: u32,
        domid: DomId,
        write: bool,
    ) -> Result<&'static AtomicPage, MapError> {
        let entry = self.entry(gref).ok_or(MapError::BadRef)?;
        if entry.flags & GTF_PERMIT_ACCESS == 0
            || entry.domid != domid.get()
            || (write && entry.flags & GTF_READONLY != 0)
        {
            return Err(MapError::PermissionDenied);
        }
        let page = memory
            .frame(u64::from(entry.frame))
            .ok_or(MapError::BadPage)?;
        let bits = if write {
            GTF_READING | GTF_WRITING
        } else {
            GTF_READING
        };
        self.entries.borrow_mut()[gref as usize].flags |= bits;
        Ok(page)
    }

    /// Backend unmaps `gref`: Xen clears the in-use bits.
    pub fn unmap(&self, gref: u32) {
        if let Some(e) = self.entries.borrow_mut().get_mut(gref as usize) {
            e.flags &= !(GTF_READING | GTF_WRITING);
        }
    }
}

impl GrantEntries for FakeGrantEntries {
    fn write_domid_frame(&self, gref: u32, domid: Domid, frame: u32) {
        if let Some(e) = self.entries.borrow_mut().get_mut(gref as usize) {
            e.domid = domid;
            e.frame = frame;
        }
    }

    fn write_flags(&self, gref: u32, flags: u16) {
        if let Some(e) = self.entries.borrow_mut().get_mut(gref as usize) {
            e.flags = flags;
        }
    }

    fn read_flags(&self, gref: u32) -> u16 {
        self.entry(gref).map_or(0, |e| e.flags)
    }

    fn compare_exchange_flags(&self, gref: u32, current: u16, new: u16) -> Result<u16, u16> {
        let mut entries = self.entries.borrow_mut();
        let Some(e) = entries.get_mut(gref as usize) else {
            return Err(0);
        };
        if e.flags == current {
            e.flags = new;
            Ok(current)
        } else {
            Err(e.flags)
        }
    }

    fn add_frame(&mut self, index: u32) -> Result<(), FrameAddFailed> {
        if self.refuse_frames {
            return Err(FrameAddFailed);
        }
        self.added.push(index);
        self.entries
            .borrow_mut()
            .resize(((index + 1) * ENTRIES_PER_FRAME) as usize, Entry::default());
        Ok(())
    }
}
