//! Pages a front end shares with a backend, and the provider they come from.
//!
//! A [`Page`] is a 4 KiB frame reached only through [`AtomicPage`]'s atomic accesses, so a
//! backend writing it at any time is never a data race, and `#![forbid(unsafe_code)]` drivers
//! can hold, read, write and build rings on one. Pages come zeroed from a [`PageProvider`], so
//! no stale data reaches a backend. Once granted (see [`crate::grant::GrantAccess`]) a page
//! lives inside a [`crate::grant::GrantedPage`], and is handed back as a plain [`Page`] only
//! when its grant has ended, i.e. when the backend can no longer touch it.

use crate::types::Gfn;
use abi::page::{AtomicPage, OutOfPage};
use abi::ring::{FrontRing, RingEntry, RingError, SharedRing};
use alloc::vec::Vec;
use core::fmt;

/// Errors of pages and their provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageError {
    /// The provider has no free page.
    Exhausted,
    /// An access outside the page.
    OutOfPage(OutOfPage),
    /// A ring could not be laid out on the page.
    Ring(RingError),
}

impl fmt::Display for PageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exhausted => f.write_str("no free page"),
            Self::OutOfPage(e) => e.fmt(f),
            Self::Ring(e) => write!(f, "ring on a page: {e}"),
        }
    }
}

impl From<OutOfPage> for PageError {
    fn from(e: OutOfPage) -> Self {
        Self::OutOfPage(e)
    }
}

/// A 4 KiB page of this domain's memory that may be shared with another domain.
///
/// Not `Clone`: one owner at a time. Its memory lives for the rest of the program (the
/// provider's promise), so a page or ring outliving its use is a logic error, never a dangling
/// access.
#[derive(Debug)]
pub struct Page {
    memory: &'static AtomicPage,
    gfn: Gfn,
}

impl Page {
    /// A page over `memory`, which is guest frame `gfn`.
    ///
    /// For [`PageProvider`] implementations: `memory` must be the frame `gfn` names (what is
    /// granted by frame number is what the driver writes through `memory`).
    pub fn new(memory: &'static AtomicPage, gfn: Gfn) -> Self {
        Self { memory, gfn }
    }

    /// The page's guest frame number (what a grant names).
    pub fn gfn(&self) -> Gfn {
        self.gfn
    }

    /// Copies bytes out of the page.
    pub fn read(&self, offset: usize, buf: &mut [u8]) -> Result<(), PageError> {
        Ok(self.memory.read(offset, buf)?)
    }

    /// Copies bytes into the page.
    pub fn write(&self, offset: usize, data: &[u8]) -> Result<(), PageError> {
        Ok(self.memory.write(offset, data)?)
    }

    /// Zeroes the page.
    pub fn zero(&self) {
        self.memory.fill(0);
    }

    /// A shared ring of `Req`/`Rsp` slots over the whole page.
    pub(crate) fn shared_ring<Req: RingEntry, Rsp: RingEntry>(
        &self,
    ) -> Result<SharedRing<Req, Rsp>, PageError> {
        SharedRing::from_page(self.memory).map_err(PageError::Ring)
    }

    /// Initialises a front ring on the page (`SHARED_RING_INIT` + `FRONT_RING_INIT`).
    pub fn init_front_ring<Req: RingEntry, Rsp: RingEntry>(
        &self,
    ) -> Result<FrontRing<Req, Rsp>, PageError> {
        Ok(FrontRing::init(self.shared_ring()?))
    }

    /// Initialises a front ring laid over `pages` end to end (a multi-page ring: the header
    /// in the first, `2^ring-page-order` pages granted as `ring-ref0`, `ring-ref1`, ... in
    /// this order); one page is [`Page::init_front_ring`]'s ring.
    pub fn init_front_ring_on<Req: RingEntry, Rsp: RingEntry>(
        pages: &[Page],
    ) -> Result<FrontRing<Req, Rsp>, PageError> {
        let memory: Vec<&'static AtomicPage> = pages.iter().map(|p| p.memory).collect();
        let shared = SharedRing::from_pages(&memory).map_err(PageError::Ring)?;
        Ok(FrontRing::init(shared))
    }

    /// The memory, for the platform and the fakes (a backend reaching a granted page).
    pub fn memory(&self) -> &'static AtomicPage {
        self.memory
    }
}

/// Where a driver's shared pages come from.
pub trait PageProvider {
    /// A zeroed page.
    fn alloc_zeroed(&mut self) -> Result<Page, PageError>;
    /// Gives a page back (it is zeroed again before anyone gets it).
    fn release(&mut self, page: Page);
}
