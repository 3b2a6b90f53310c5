//! The kernel's xenstore connection: the ring page named by `HVM_PARAM_STORE_PFN` (reached
//! with volatile accesses), its event channel from `HVM_PARAM_STORE_EVTCHN`, and the
//! [`xenbus::xenstore::XsClient`] over them.
//!
//! Waiting for the daemon idles the vCPU until the store port fires
//! ([`super::events::wait_port`]).

use core::mem::offset_of;
use core::sync::atomic::{AtomicU64, Ordering};

use abi::io::xs_wire::{XENSTORE_RING_SIZE, XenstoreDomainInterface};
use spin::Mutex;

use super::hypercall::{self, HypercallError};
use super::shared_page::{self, SharedPage};
use super::{events, time};
use crate::memory::frames::FRAME_SIZE;
use crate::proto::evtchn::Port;
use xenbus::Instant;
use xenbus::xenstore::ring::{RingEvents, RingIndexes, RingTransport, XenstoreRing};
use xenbus::xenstore::{Wake, XsClient};

/// Errors setting up or reaching the xenstore connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreSetupError {
    /// `HVM_PARAM_STORE_*` could not be read.
    Param(HypercallError),
    /// The toolstack gave no store page.
    NoPage,
    /// The ring frame lies outside the identity map.
    PageOutsideMap(u64),
    /// The event channel number is invalid.
    BadPort(u64),
    /// Binding the store port failed.
    Bind(events::EventError),
    /// [`init`] has not run (or failed).
    NotReady,
}

impl core::fmt::Display for StoreSetupError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Param(e) => write!(f, "store parameters: {e}"),
            Self::NoPage => f.write_str("no xenstore page"),
            Self::PageOutsideMap(a) => write!(f, "xenstore page {a:#x} outside the identity map"),
            Self::BadPort(p) => write!(f, "xenstore event channel {p} invalid"),
            Self::Bind(e) => write!(f, "binding the xenstore port: {e}"),
            Self::NotReady => f.write_str("xenstore not initialised"),
        }
    }
}

/// The shared `xenstore_domain_interface` page (xenstored writes it at any time).
#[derive(Clone, Copy, Debug)]
pub struct StorePage {
    page: SharedPage,
}

impl StorePage {
    fn index(&self, off: usize) -> u32 {
        // A u32 index field of the interface (layout asserted in abi): the read cannot fail.
        self.page.read(off).unwrap_or(0)
    }

    fn set_index(&self, off: usize, value: u32) {
        // The fields written here (req_prod, rsp_cons) are ours.
        let _ = self.page.write(off, value);
    }
}

impl XenstoreRing for StorePage {
    fn req_cons(&self) -> u32 {
        self.index(offset_of!(XenstoreDomainInterface, req_cons))
    }
    fn req_prod(&self) -> u32 {
        self.index(offset_of!(XenstoreDomainInterface, req_prod))
    }
    fn set_req_prod(&self, value: u32) {
        self.set_index(offset_of!(XenstoreDomainInterface, req_prod), value);
    }
    fn rsp_cons(&self) -> u32 {
        self.index(offset_of!(XenstoreDomainInterface, rsp_cons))
    }
    fn set_rsp_cons(&self, value: u32) {
        self.set_index(offset_of!(XenstoreDomainInterface, rsp_cons), value);
    }
    fn rsp_prod(&self) -> u32 {
        self.index(offset_of!(XenstoreDomainInterface, rsp_prod))
    }
    fn write_req(&self, offset: usize, data: &[u8]) {
        // Within `req` only: offset + len <= XENSTORE_RING_SIZE (the trait's contract).
        let n = data.len().min(RING.saturating_sub(offset));
        let base = offset_of!(XenstoreDomainInterface, req);
        let _ = self.page.write_bytes(base + offset.min(RING), &data[..n]);
    }
    fn read_rsp(&self, offset: usize, buf: &mut [u8]) {
        let n = buf.len().min(RING.saturating_sub(offset));
        let base = offset_of!(XenstoreDomainInterface, rsp);
        let _ = self.page.read_bytes(base + offset.min(RING), &mut buf[..n]);
    }
}

const RING: usize = XENSTORE_RING_SIZE as usize;

/// The store event channel: notify with `EVTCHNOP_send`, wait by idling until it fires.
#[derive(Debug)]
pub struct StoreEvents {
    port: Port,
}

static WAITS: AtomicU64 = AtomicU64::new(0);
static TIMEOUTS: AtomicU64 = AtomicU64::new(0);
static TIMEOUTS_WITH_REPLY: AtomicU64 = AtomicU64::new(0);
static NOTIFY_FAILURES: AtomicU64 = AtomicU64::new(0);

/// Counters of the store connection's waits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreStats {
    /// Waits for the daemon.
    pub waits: u64,
    /// Waits that ended at their deadline.
    pub timeouts: u64,
    /// Of those, how many found response bytes waiting in the ring (a lost notification).
    pub timeouts_with_reply: u64,
    /// `EVTCHNOP_send` calls to xenstored that failed.
    pub notify_failures: u64,
    /// Notifications repeated because xenstored left written requests unread for a whole
    /// [`RENOTIFY_AFTER_MS`] slice.
    pub renotifies: u64,
}

/// The counters.
pub fn stats() -> StoreStats {
    StoreStats {
        waits: WAITS.load(Ordering::Relaxed),
        timeouts: TIMEOUTS.load(Ordering::Relaxed),
        timeouts_with_reply: TIMEOUTS_WITH_REPLY.load(Ordering::Relaxed),
        notify_failures: NOTIFY_FAILURES.load(Ordering::Relaxed),
        renotifies: RENOTIFIES.load(Ordering::Relaxed),
    }
}

/// How long a written request may sit unread by xenstored before it is notified again.
///
/// Under QEMU's software emulation, stock xenstored was seen (about 1 boot in 7 under load)
/// leaving a request unread for the whole 30 s deadline, with nothing wrong on our side: the
/// request fully written and notified, no event pending or masked here. A notification only
/// makes xenstored look at the ring indices again, so repeating it is harmless, and it
/// recovers a wake-up lost anywhere between us and xenstored.
pub const RENOTIFY_AFTER_MS: u64 = 250;

static RENOTIFIES: AtomicU64 = AtomicU64::new(0);

/// Whether xenstored has left bytes we wrote in the request ring unread.
fn requests_unread() -> bool {
    XENSTORE_PAGE
        .get()
        .is_some_and(|ring| ring.req_cons() != ring.req_prod())
}

impl RingEvents for StoreEvents {
    fn now(&mut self) -> Instant {
        // Without a clock, the far future: the client then gives up at once instead of
        // waiting on a deadline it cannot measure.
        time::now().unwrap_or(Instant::from_nanos(u64::MAX))
    }

    fn notify(&mut self) {
        // A failed notification shows up as a timeout of the request (and is counted).
        if events::send(self.port).is_err() {
            NOTIFY_FAILURES.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn wait(&mut self, deadline: Instant) -> Wake {
        WAITS.fetch_add(1, Ordering::Relaxed);
        let wake = loop {
            // Without a clock the wait cannot be bounded: report a timeout rather than spin.
            let Ok(now) = time::now() else {
                break Wake::TimedOut;
            };
            let slice_end = now.add_millis(RENOTIFY_AFTER_MS).min(deadline);
            let wake = events::wait_port(self.port, slice_end).unwrap_or(Wake::TimedOut);
            if wake == Wake::Ready || slice_end >= deadline {
                break wake;
            }
            if requests_unread() {
                RENOTIFIES.fetch_add(1, Ordering::Relaxed);
                self.notify();
            }
        };
        if wake == Wake::TimedOut {
            TIMEOUTS.fetch_add(1, Ordering::Relaxed);
            if let Some(ring) = XENSTORE_PAGE.get()
                && ring.rsp_prod() != ring.rsp_cons()
            {
                TIMEOUTS_WITH_REPLY.fetch_add(1, Ordering::Relaxed);
            }
        }
        wake
    }

    fn request_timed_out(&mut self, ix: RingIndexes, type_: u32, req_id: u32, inbox: usize) {
        // One line that tells where a reply got stuck: req_cons != req_prod means xenstored
        // has not taken the request; rsp_prod != rsp_cons means a reply sits unread; the port
        // state tells a lost or undelivered event; a console backlog (our last lines, written
        // and notified before the wait, still unread by xenconsoled) means dom0 as a whole
        // did not run, not just xenstored.
        let backlog = super::console::backlog();
        log::warn!(
            "xenstore: no reply to type {type_} req {req_id} by its deadline: req cons {:#x} \
             prod {:#x}, rsp cons {:#x} prod {:#x}, {inbox} partial bytes; port {}: {:?}; \
             {} failed notifications; console backlog {backlog:?}",
            ix.req_cons,
            ix.req_prod,
            ix.rsp_cons,
            ix.rsp_prod,
            self.port.get(),
            events::port_state(self.port),
            NOTIFY_FAILURES.load(Ordering::Relaxed),
        );
    }
}

/// The kernel's xenstore client type.
pub type Client = XsClient<RingTransport<StorePage, StoreEvents>>;

static XENSTORE: Mutex<Option<Client>> = Mutex::new(None);
/// The store page, for diagnostics.
static XENSTORE_PAGE: spin::Once<StorePage> = spin::Once::new();

/// Finds the store ring and port, binds the port and creates the client. Needs events.
pub fn init() -> Result<Port, StoreSetupError> {
    let pfn =
        hypercall::hvm_get_param(abi::hvm::HVM_PARAM_STORE_PFN).map_err(StoreSetupError::Param)?;
    let evtchn = hypercall::hvm_get_param(abi::hvm::HVM_PARAM_STORE_EVTCHN)
        .map_err(StoreSetupError::Param)?;
    if pfn == 0 {
        return Err(StoreSetupError::NoPage);
    }
    let page = StorePage {
        page: shared_page::hvm_param_page(pfn).ok_or(StoreSetupError::PageOutsideMap(
            pfn.saturating_mul(FRAME_SIZE),
        ))?,
    };
    let port = u32::try_from(evtchn)
        .ok()
        .and_then(|p| Port::try_new(p).ok())
        .ok_or(StoreSetupError::BadPort(evtchn))?;
    events::bind_latch(port).map_err(StoreSetupError::Bind)?;
    XENSTORE_PAGE.call_once(|| page);
    let transport = RingTransport::new(page, StoreEvents { port });
    *XENSTORE.lock() = Some(XsClient::new(transport));
    Ok(port)
}

/// Runs `f` with the client (one user at a time).
pub fn with<R>(f: impl FnOnce(&mut Client) -> R) -> Result<R, StoreSetupError> {
    XENSTORE
        .lock()
        .as_mut()
        .map(f)
        .ok_or(StoreSetupError::NotReady)
}
