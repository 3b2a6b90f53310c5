//! The `xenbus` platform traits over this kernel: a clock, event notification and shared
//! pages, for the drivers (which see the platform only through these traits).

use alloc::vec::Vec;

use abi::errno::XEN_EINVAL;
use abi::page::AtomicPage;
use xenbus::grant::{GrantAccess, GrantError, GrantedPage};
use xenbus::xenstore::Wake;
use xenbus::{
    Clock, DomId, EventChannel, Gfn, Instant, Notify, NotifyError, Page, PageError, PageProvider,
    Port,
};

use super::events::{self, EventError};
use super::grant_table;
use super::hypercall::HypercallError;
use super::time;
use crate::arch::boot::IDENTITY_MAP_BYTES;
use crate::memory::frames::FRAME_SIZE;
use crate::memory::global;

/// pvclock time. Without a clock (never after boot) it answers the far future, so that every
/// deadline counts as passed rather than waited on forever.
#[derive(Clone, Copy, Debug, Default)]
pub struct KernelClock;

impl Clock for KernelClock {
    fn now(&self) -> Instant {
        time::now().unwrap_or(Instant::from_nanos(u64::MAX))
    }
}

/// `EVTCHNOP_send`.
#[derive(Clone, Copy, Debug, Default)]
pub struct KernelEvents;

/// Xen's errno for a failed event-channel operation (`-EINVAL` when Xen gave none).
fn errno(e: EventError) -> i32 {
    match e {
        EventError::Hypercall(HypercallError::Xen(errno)) => {
            i32::try_from(errno).unwrap_or(-XEN_EINVAL)
        }
        _ => -XEN_EINVAL,
    }
}

impl Notify for KernelEvents {
    fn notify(&mut self, port: Port) -> Result<(), NotifyError> {
        events::send(port).map_err(|e| NotifyError {
            port,
            errno: errno(e),
        })
    }
}

impl EventChannel for KernelEvents {
    fn alloc_unbound(&mut self, remote: DomId) -> Result<Port, NotifyError> {
        let port = events::alloc_unbound(remote.get()).map_err(|e| NotifyError {
            port: Port::ZERO,
            errno: errno(e),
        })?;
        // Ports start masked: a latch-only handler unmasks it for `wait`.
        if let Err(e) = events::bind_latch(port) {
            let _ = events::close(port);
            return Err(NotifyError {
                port,
                errno: errno(e),
            });
        }
        Ok(port)
    }

    fn wait(&mut self, port: Port, deadline: Instant) -> bool {
        matches!(events::wait_port(port, deadline), Ok(Wake::Ready))
    }

    fn close(&mut self, port: Port) {
        // Closing is best effort: a port Xen already closed needs nothing more.
        let _ = events::close(port);
    }
}

/// The kernel's grant table as [`GrantAccess`].
#[derive(Clone, Copy, Debug, Default)]
pub struct KernelGrants;

impl GrantAccess for KernelGrants {
    fn grant(
        &mut self,
        page: Page,
        domid: DomId,
        readonly: bool,
    ) -> Result<GrantedPage, (Page, GrantError)> {
        grant_table::with_value(page, |t, page| t.grant(page, domid, readonly))
            .unwrap_or_else(|page| Err((page, GrantError::NotReady)))
    }

    fn end(&mut self, granted: GrantedPage) -> Result<Page, (GrantedPage, GrantError)> {
        grant_table::with_value(granted, |t, granted| t.end(granted))
            .unwrap_or_else(|granted| Err((granted, GrantError::NotReady)))
    }

    fn grants_in_use(&self) -> u32 {
        grant_table::with(|t| t.refs().live()).unwrap_or(0)
    }
}

/// Pages from the frame allocator, reached through the identity map. Released pages are kept
/// for reuse (the frame allocator never frees) and zeroed again before they are handed out.
#[derive(Debug, Default)]
pub struct KernelPages {
    free: Vec<Page>,
}

impl KernelPages {
    /// A provider with no pages kept yet.
    pub const fn new() -> Self {
        Self { free: Vec::new() }
    }
}

impl PageProvider for KernelPages {
    fn alloc_zeroed(&mut self) -> Result<Page, PageError> {
        if let Some(page) = self.free.pop() {
            page.zero();
            return Ok(page);
        }
        let addr = global::allocate_frames(1).map_err(|_| PageError::Exhausted)?;
        if addr
            .checked_add(FRAME_SIZE)
            .is_none_or(|end| end > IDENTITY_MAP_BYTES)
        {
            return Err(PageError::Exhausted);
        }
        let gfn = Gfn::try_new(addr / FRAME_SIZE).map_err(|_| PageError::Exhausted)?;
        // SAFETY: `addr` is a page-aligned frame the frame allocator just handed out (it
        // never hands a frame out twice and never frees one), inside the identity map checked
        // above, so the page is valid for the rest of the program and nothing else refers to
        // it. `AtomicPage` is 4096 page-aligned atomic bytes, for which any content is valid.
        let memory: &'static AtomicPage = unsafe { &*(addr as *const AtomicPage) };
        memory.fill(0);
        Ok(Page::new(memory, gfn))
    }

    fn release(&mut self, page: Page) {
        self.free.push(page);
    }
}
