//! Event channels in the kernel: the upcall (HVM callback vector), per-port handlers and
//! latches, and the `EVTCHNOP_*` operations (alloc, bind, send, mask/unmask, close, status).
//!
//! The scan itself is [`crate::proto::evtchn`]'s fair 2-level [`EventScanner`] over
//! [`Vcpu0Events`]. Every delivered port sets its bit in a latch array (so a waiter cannot
//! miss an event that arrived before it started waiting) and then runs the port's handler.
//!
//! Rules for handlers: they run in the upcall with interrupts disabled and must not block,
//! allocate, log or take a lock that code with interrupts enabled may hold (console, heap,
//! xenstore). Code that changes the handler table does so with interrupts disabled.

use alloc::boxed::Box;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use spin::Mutex;
use x86_64::instructions::interrupts;

use super::hypercall::{self, HypercallError};
use super::shared_info::{self, Vcpu0Events};
use super::time;
use crate::arch::upcall;
use crate::proto::evtchn::{self, EventScanner, EvtchnError, HandlerTable, Port, UnmaskAction};
use xenbus::Instant;
use xenbus::xenstore::Wake;

/// Scan rounds one upcall makes while Xen keeps setting `evtchn_upcall_pending`.
const MAX_SCAN_ROUNDS: u32 = 8;

/// A port's handler (see the module docs for what it may do).
pub type Handler = Box<dyn FnMut(Port) + Send>;

/// Errors of the event-channel layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventError {
    /// The shared-info page is not mapped, so there are no event words.
    NoSharedInfo,
    /// [`init`] has not run (or failed).
    NotReady,
    /// A hypercall failed.
    Hypercall(HypercallError),
    /// The handler table refused (port already bound, or not bound).
    Table(EvtchnError),
    /// Waiting failed (no clock, no timer, or the timer could not be armed).
    Wait(time::TimeError),
}

impl core::fmt::Display for EventError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NoSharedInfo => f.write_str("shared info not mapped"),
            Self::NotReady => f.write_str("event channels not initialised"),
            Self::Hypercall(e) => write!(f, "event channel hypercall: {e}"),
            Self::Table(e) => write!(f, "handler table: {e:?}"),
            Self::Wait(e) => write!(f, "wait: {e}"),
        }
    }
}

impl From<HypercallError> for EventError {
    fn from(e: HypercallError) -> Self {
        Self::Hypercall(e)
    }
}

static READY: AtomicBool = AtomicBool::new(false);
/// Touched only by the upcall (interrupts disabled), so never contended.
static SCANNER: Mutex<EventScanner> = Mutex::new(EventScanner::new());
/// Changed only with interrupts disabled; the upcall uses `try_lock`.
static HANDLERS: Mutex<HandlerTable<Handler>> = Mutex::new(HandlerTable::new());
/// One bit per port: set by the upcall for every delivered port, taken by waiters.
static LATCH: [AtomicU64; evtchn::WORDS] = [const { AtomicU64::new(0) }; evtchn::WORDS];

static UPCALLS: AtomicU64 = AtomicU64::new(0);
static DELIVERED: AtomicU64 = AtomicU64::new(0);
static UNHANDLED: AtomicU64 = AtomicU64::new(0);

/// Counters since [`init`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventStats {
    /// Upcalls taken.
    pub upcalls: u64,
    /// Ports delivered by the scans.
    pub delivered: u64,
    /// Delivered ports without a handler (latched only).
    pub unhandled: u64,
}

/// The counters.
pub fn stats() -> EventStats {
    EventStats {
        upcalls: UPCALLS.load(Ordering::Relaxed),
        delivered: DELIVERED.load(Ordering::Relaxed),
        unhandled: UNHANDLED.load(Ordering::Relaxed),
    }
}

/// Whether [`init`] succeeded (events are delivered through the upcall).
pub fn ready() -> bool {
    READY.load(Ordering::Acquire)
}

/// The Rust side of the upcall, called by the entry stub with interrupts disabled.
pub(crate) extern "C" fn upcall() {
    UPCALLS.fetch_add(1, Ordering::Relaxed);
    let Some(mut scanner) = SCANNER.try_lock() else {
        return; // cannot happen: only this handler takes it, and it does not nest
    };
    let mut handlers = HANDLERS.try_lock();
    scanner.upcall(&Vcpu0Events, MAX_SCAN_ROUNDS, |port| {
        DELIVERED.fetch_add(1, Ordering::Relaxed);
        LATCH[port.word()].fetch_or(port.bit(), Ordering::SeqCst);
        let ran = handlers
            .as_mut()
            .is_some_and(|table| table.dispatch(port, |h| h(port)).is_ok());
        if !ran {
            UNHANDLED.fetch_add(1, Ordering::Relaxed);
        }
    });
}

/// Masks every port, installs the upcall vector, tells Xen to use it
/// (`HVM_PARAM_CALLBACK_IRQ`, type vector) and enables interrupts.
pub fn init() -> Result<(), EventError> {
    if !shared_info::mapped() {
        return Err(EventError::NoSharedInfo);
    }
    interrupts::disable();
    for word in 0..evtchn::WORDS {
        evtchn::EventWords::set_mask(&Vcpu0Events, word, u64::MAX);
    }
    upcall::install(upcall);
    let via = abi::hvm::callback_via_vector(upcall::UPCALL_VECTOR);
    // SAFETY: the IDT entry for UPCALL_VECTOR now points at the upcall stub.
    unsafe { hypercall::hvm_set_param(abi::hvm::HVM_PARAM_CALLBACK_IRQ, via) }?;
    READY.store(true, Ordering::Release);
    interrupts::enable();
    Ok(())
}

/// After a suspend: the upcall vector is given to Xen again (`HVM_PARAM_CALLBACK_IRQ` is not
/// carried in a save image, and Linux sets it again after a cancelled suspend too). After a
/// resume in a new domain (`cancelled` false) there are no event channels any more: every
/// port is masked, every handler and latch dropped; the owners bind their ports again.
/// Call with interrupts disabled; they stay disabled.
pub fn resume(cancelled: bool) -> Result<(), EventError> {
    if !ready() {
        return Err(EventError::NotReady);
    }
    let old = if cancelled {
        None
    } else {
        for word in 0..evtchn::WORDS {
            evtchn::EventWords::set_mask(&Vcpu0Events, word, u64::MAX);
        }
        for latch in &LATCH {
            latch.store(0, Ordering::SeqCst);
        }
        *SCANNER.lock() = EventScanner::new();
        Some(core::mem::take(&mut *HANDLERS.lock()))
    };
    let via = abi::hvm::callback_via_vector(upcall::UPCALL_VECTOR);
    // SAFETY: the IDT entry for UPCALL_VECTOR points at the upcall stub (installed by init,
    // which `ready` says ran; the IDT is kernel memory, carried across the save).
    let set = unsafe { hypercall::hvm_set_param(abi::hvm::HVM_PARAM_CALLBACK_IRQ, via) };
    // The old handlers (boxes) are dropped with interrupts disabled: the upcall, the only
    // other user of the heap here, cannot run.
    drop(old);
    Ok(set?)
}

/// Binds `handler` to `port` and unmasks the port.
pub fn bind(port: Port, handler: Handler) -> Result<(), EventError> {
    if !ready() {
        return Err(EventError::NotReady);
    }
    interrupts::without_interrupts(|| HANDLERS.lock().bind(port, handler))
        .map_err(EventError::Table)?;
    take_latched(port);
    unmask(port)
}

/// Binds a handler that does nothing: the port is only latched, for [`wait_port`].
pub fn bind_latch(port: Port) -> Result<(), EventError> {
    bind(port, Box::new(|_| {}))
}

/// Masks `port` and removes its handler (dropped here, with interrupts enabled).
pub fn unbind(port: Port) -> Result<(), EventError> {
    evtchn::mask(&Vcpu0Events, port);
    let handler = interrupts::without_interrupts(|| HANDLERS.lock().unbind(port))
        .map_err(EventError::Table)?;
    drop(handler);
    Ok(())
}

/// Masks `port`: its events stay pending in `evtchn_pending` until [`unmask`].
pub fn mask(port: Port) {
    evtchn::mask(&Vcpu0Events, port);
}

/// Unmasks `port`; if it was pending, `EVTCHNOP_unmask` makes Xen deliver it.
pub fn unmask(port: Port) -> Result<(), EventError> {
    match evtchn::unmask(&Vcpu0Events, port) {
        UnmaskAction::Done => Ok(()),
        UnmaskAction::Hypercall => Ok(hypercall::evtchn_unmask(port)?),
    }
}

/// Takes `port`'s latch: whether it was delivered since the last take.
pub fn take_latched(port: Port) -> bool {
    LATCH[port.word()].fetch_and(!port.bit(), Ordering::SeqCst) & port.bit() != 0
}

/// Waits until `port` is delivered (its latch is taken) or `deadline` passes, idling in
/// between. An event delivered before the call counts.
pub fn wait_port(port: Port, deadline: Instant) -> Result<Wake, EventError> {
    if !ready() {
        return Err(EventError::NotReady);
    }
    match time::wait_until(deadline, || take_latched(port)) {
        Ok(true) => Ok(Wake::Ready),
        Ok(false) => Ok(Wake::TimedOut),
        Err(e) => Err(EventError::Wait(e)),
    }
}

/// `EVTCHNOP_send`.
pub fn send(port: Port) -> Result<(), EventError> {
    Ok(hypercall::evtchn_send(port)?)
}

/// Unbinds any handler and closes `port` (`EVTCHNOP_close`).
pub fn close(port: Port) -> Result<(), EventError> {
    // Not bound is fine: a port may be closed without ever having had a handler.
    let _ = unbind(port);
    hypercall::evtchn_close(port)?;
    take_latched(port);
    Ok(())
}

/// `EVTCHNOP_alloc_unbound` for `remote` (may be `DOMID_SELF`).
pub fn alloc_unbound(remote: abi::xen::Domid) -> Result<Port, EventError> {
    Ok(hypercall::evtchn_alloc_unbound(remote)?)
}

/// `EVTCHNOP_bind_interdomain` to `remote`'s `remote_port`.
pub fn bind_interdomain(remote: abi::xen::Domid, remote_port: Port) -> Result<Port, EventError> {
    Ok(hypercall::evtchn_bind_interdomain(remote, remote_port)?)
}

/// `EVTCHNOP_bind_virq` on vCPU 0.
pub fn bind_virq(virq: u32) -> Result<Port, EventError> {
    Ok(hypercall::evtchn_bind_virq(virq, 0)?)
}

/// A port's state as `EVTCHNOP_status` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortStatus {
    /// Not in use.
    Closed,
    /// Waiting for `remote` to bind.
    Unbound {
        /// The domain allowed to bind.
        remote: abi::xen::Domid,
    },
    /// Connected to `remote`'s `port`.
    Interdomain {
        /// The remote domain.
        remote: abi::xen::Domid,
        /// The remote port.
        port: u32,
    },
    /// Bound to a physical IRQ.
    Pirq(u32),
    /// Bound to a virtual IRQ.
    Virq(u32),
    /// Bound to an IPI.
    Ipi,
    /// A status code this kernel does not know.
    Unknown(u32),
}

/// `EVTCHNOP_status` of `port` in this domain.
pub fn status(port: Port) -> Result<PortStatus, EventError> {
    use abi::event_channel as ec;
    let s = hypercall::evtchn_status(port)?;
    // SAFETY (for each union read below): every member of evtchn_status.u is plain integer
    // data valid for any bit pattern; `status` says which one Xen filled in.
    Ok(match s.status {
        ec::EVTCHNSTAT_CLOSED => PortStatus::Closed,
        ec::EVTCHNSTAT_UNBOUND => PortStatus::Unbound {
            // SAFETY: see above.
            remote: unsafe { s.u.unbound }.dom,
        },
        ec::EVTCHNSTAT_INTERDOMAIN => {
            // SAFETY: see above.
            let i = unsafe { s.u.interdomain };
            PortStatus::Interdomain {
                remote: i.dom,
                port: i.port,
            }
        }
        // SAFETY: see above.
        ec::EVTCHNSTAT_PIRQ => PortStatus::Pirq(unsafe { s.u.pirq }),
        // SAFETY: see above.
        ec::EVTCHNSTAT_VIRQ => PortStatus::Virq(unsafe { s.u.virq }),
        ec::EVTCHNSTAT_IPI => PortStatus::Ipi,
        other => PortStatus::Unknown(other),
    })
}

/// Whether `port` is pending in the shared page (a masked port's held event shows here).
pub fn is_pending(port: Port) -> bool {
    shared_info::is_pending(port)
}

/// What the shared page and the latch say about one port (for diagnostics).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortState {
    /// Its bit in `evtchn_pending`.
    pub pending: bool,
    /// Its bit in `evtchn_mask`.
    pub masked: bool,
    /// vCPU 0's `evtchn_upcall_pending`.
    pub upcall_pending: bool,
    /// Its latch bit (delivered, not yet taken by a waiter).
    pub latched: bool,
}

/// Reads `port`'s state without changing it; `None` before the shared page is mapped.
pub fn port_state(port: Port) -> Option<PortState> {
    use evtchn::EventWords as _;
    if !shared_info::mapped() {
        return None;
    }
    Some(PortState {
        pending: Vcpu0Events.pending(port.word()) & port.bit() != 0,
        masked: Vcpu0Events.mask(port.word()) & port.bit() != 0,
        upcall_pending: Vcpu0Events.upcall_pending(),
        latched: LATCH[port.word()].load(Ordering::SeqCst) & port.bit() != 0,
    })
}
