//! Events and time of one domain: the singleshot timer fired as `VIRQ_TIMER`, the upcall
//! injected on the guest's callback vector (or the VINTR window requested), the local
//! APIC's timer and its pending vector (injected after the upcall, as Xen's
//! `hvm_vcpu_has_pending_irq` ranks the callback vector before the LAPIC), and the waits
//! of `HLT`, `SCHEDOP_block` and `SCHEDOP_poll`.
//!
//! A vCPU with its own upcall vector (`HVMOP_set_evtchn_upcall_vector`) takes its upcalls
//! through the local APIC instead: Xen's `vcpu_mark_events_pending` asserts the vector each
//! time it raises `evtchn_upcall_pending` from 0 to 1. hv raises the flag in many places
//! (event channels, timers, other domains' sends), always while the guest is not running,
//! and the guest only clears it; so the flag found set before the guest runs again, where
//! the guest left it clear at its last exit, is exactly such a raise, and the vector is
//! asserted then ([`Domain::assert_upcall_vector`], before each entry and each look at a
//! wait).
//!
//! A wait is a state, not a loop: the exit that starts it records what the vCPU waits for,
//! and the machine's scheduler runs other domains meanwhile; before each choice it asks
//! every waiting domain whether its wait is over ([`Domain::wait_over`]: its timer fired,
//! an upcall is pending, a polled port is pending, the poll timed out) and arms hv's APIC
//! timer for the earliest deadline of any domain. A domain waiting with no deadline can be
//! woken only by an event another domain or domain 0's services send it; when no domain can
//! run and none has a deadline, nothing can wake them, and the machine crashes them with a
//! message saying so.

use crate::guest_log;
use crate::svm::inject::{self, Upcall};

use super::super::tsc;
use super::env::SharedInfoView;
use super::{Domain, Ending};

/// Event counters printed at the end.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct EventStats {
    pub(super) injected: u64,
    pub(super) windows: u64,
    pub(super) timer_events: u64,
    pub(super) waits: u64,
    pub(super) wait_ticks: u64,
}

/// What a wait is for.
pub(super) enum Wait {
    /// `HLT` with IF=1 or `SCHEDOP_block`: until an upcall is pending.
    Block,
    /// `SCHEDOP_poll`.
    Poll {
        /// Absolute system time to give up at.
        timeout: Option<u64>,
        /// An upcall was raised while it waited (that ends a poll too).
        raised: bool,
    },
}

impl Domain {
    /// The domain's event words (shared_info and vCPU 0's `vcpu_info`).
    pub(super) fn words(&self) -> SharedInfoView {
        SharedInfoView {
            shared: self.shared_info,
            vcpu: self.vcpu_info,
        }
    }

    /// Fires the singleshot timer if its deadline has passed; true if that raised the
    /// upcall.
    fn fire_timer(&mut self) -> bool {
        let now = self.clock.ns(tsc::now());
        if !self.xen.timer.expire(now) {
            return false;
        }
        self.stats.timer_events += 1;
        let mut w = self.words();
        self.xen
            .evtchn
            .raise_virq(&mut w, abi::event_channel::VIRQ_TIMER)
    }

    /// System time now (ns).
    pub(super) fn system_time(&self) -> u64 {
        self.clock.ns(tsc::now())
    }

    /// Fires the local APIC's timer if due; true if it did.
    fn fire_lapic_timer(&mut self) -> bool {
        let now = self.system_time();
        self.msrs.vlapic.fire_timer(now)
    }

    /// With vCPU 0's own upcall vector: if hv raised `evtchn_upcall_pending` since the guest
    /// last ran, the vector becomes pending in the local APIC (Xen's `hvm_assert_evtchn_irq`
    /// from `vcpu_mark_events_pending`), once per raise.
    fn assert_upcall_vector(&mut self) {
        let pending = self.words().upcall_pending();
        if let Some(v) = self.xen.upcall_vector
            && pending
            && !self.upcall_seen
        {
            self.msrs.vlapic.assert_edge(v);
        }
        self.upcall_seen = pending;
    }

    /// `HVMOP_set_evtchn_upcall_vector` set vCPU 0's vector (it was `before`): asserted at
    /// once whatever `evtchn_upcall_pending` says, as Xen's call does (the guest takes one
    /// upcall that may find nothing), and logged the first time (then when it changes).
    pub(super) fn upcall_vector_set(&mut self, before: Option<u8>) {
        let Some(v) = self.xen.upcall_vector else {
            return;
        };
        self.msrs.vlapic.assert_edge(v);
        let id = self.domid();
        if before.is_none() {
            // Once per domain (the vector is never unset): the hv-linux check looks for it.
            crate::hvlog!("d{id}: vcpu0 upcall vector {v:#x} (HVMOP_set_evtchn_upcall_vector)");
        } else if before != Some(v) {
            guest_log!(
                self.guest_log,
                "d{id}: vcpu0 upcall vector {v:#x} (HVMOP_set_evtchn_upcall_vector)"
            );
        }
    }

    /// Before each VMRUN: the timers (fired if due), then the upcall (injected, or the
    /// window requested), else the local APIC's highest pending vector (injected and moved
    /// to in-service, or the window requested; vCPU 0's own upcall vector, asserted first if
    /// hv raised the upcall, among them). The machine arms its APIC timer for
    /// [`Self::timer_deadline`].
    pub fn before_entry(&mut self) {
        self.fire_timer();
        self.fire_lapic_timer();
        self.assert_upcall_vector();
        let pending = self.words().upcall_pending();
        let c = &mut self.vmcb.control;
        let mut decision = inject::upcall(
            pending,
            self.xen.callback_vector(),
            self.vmcb.save.rflags,
            c.interrupt_shadow,
            c.event_inj,
        );
        let mut lapic = None;
        if decision == Upcall::None
            && let Some(v) = self.msrs.vlapic.pending()
        {
            decision = inject::upcall(
                true,
                Some(v),
                self.vmcb.save.rflags,
                c.interrupt_shadow,
                c.event_inj,
            );
            lapic = Some(v);
        }
        match decision {
            Upcall::None => {}
            Upcall::Inject(ev) if lapic.is_some() => {
                if let Some(v) = lapic {
                    self.msrs.vlapic.ack(v);
                    if self.xen.upcall_vector == Some(v) {
                        self.stats.injected += 1;
                    }
                }
                c.event_inj = ev;
                c.vintr = inject::clear_window(c.vintr);
            }
            Upcall::Inject(ev) => {
                c.event_inj = ev;
                c.vintr = inject::clear_window(c.vintr);
                self.stats.injected += 1;
            }
            Upcall::Window => {
                if c.vintr & inject::V_IRQ == 0 {
                    self.stats.windows += 1;
                }
                c.vintr = inject::request_window(c.vintr);
            }
        }
    }

    /// The VINTR window opened: withdraw the request (the upcall goes in at the next entry).
    pub(super) fn window_open(&mut self) {
        self.vmcb.control.vintr = inject::clear_window(self.vmcb.control.vintr);
    }

    /// The vCPU's earliest timer deadline (system time): the singleshot timer's or the
    /// local APIC's, if armed.
    pub fn timer_deadline(&self) -> Option<u64> {
        earliest(self.xen.timer.deadline(), self.msrs.vlapic.timer_deadline())
    }

    /// Starts a wait (the exit that asked for it has been handled).
    pub(super) fn wait(&mut self, wait: Wait) -> Option<Ending> {
        self.stats.waits += 1;
        self.waiting = Some((wait, tsc::now()));
        None
    }

    /// Whether the vCPU waits.
    pub fn is_waiting(&self) -> bool {
        self.waiting.is_some()
    }

    /// When the wait ends by itself (its timer or its poll's timeout), if it waits.
    pub fn wait_deadline(&self) -> Option<u64> {
        let (wait, _) = self.waiting.as_ref()?;
        let poll = match wait {
            Wait::Poll { timeout, .. } => *timeout,
            Wait::Block => None,
        };
        earliest(self.timer_deadline(), poll)
    }

    /// Whether the wait is over at system time `now`: fires the timer if due (a timer event
    /// ends a poll as any new upcall does), then checks what the vCPU waits for. When it is
    /// over, the wait's time is accounted (runstate) and the vCPU's time refreshed, as Xen
    /// does when it runs a vCPU again; then `Some(when)`: the system time the wait ended at
    /// (the deadline that passed, or `now`), for the wake-up latency.
    pub fn wait_over(&mut self, now: u64) -> Option<u64> {
        let deadline = self.wait_deadline();
        let raised = self.fire_timer();
        self.fire_lapic_timer();
        self.assert_upcall_vector();
        // An interrupt the local APIC would deliver ends any wait (Xen's `vcpu_kick`).
        let lapic = self.msrs.vlapic.pending().is_some();
        let (wait, start) = self.waiting.as_mut()?;
        let w = SharedInfoView {
            shared: self.shared_info,
            vcpu: self.vcpu_info,
        };
        let over = lapic
            || match wait {
                Wait::Block => w.upcall_pending() && self.xen.callback_vector().is_some(),
                Wait::Poll { timeout, raised: r } => {
                    *r |= raised;
                    *r || timeout.is_some_and(|t| now >= t)
                        || self
                            .xen
                            .poll_ports
                            .iter()
                            .take(self.xen.poll_nr)
                            .any(|&p| self.xen.evtchn.is_pending(&w, p))
                }
            };
        if !over {
            return None;
        }
        let start = *start;
        self.waiting = None;
        let end = tsc::now();
        self.stats.wait_ticks += end.saturating_sub(start);
        self.xen
            .runstate
            .blocked(self.clock.ns(start), self.clock.ns(end));
        self.words().write_time(&self.clock, end);
        Some(deadline.filter(|&d| d <= now).unwrap_or(now))
    }

    /// Ends a wait nothing can end: the domain crashes.
    pub fn unwakeable(&mut self) -> Ending {
        self.waiting = None;
        Ending::Crashed(alloc::format!(
            "d{} waits for an event with no timer armed and no other domain can send one: \
             nothing can wake it",
            self.domid()
        ))
    }

    /// Serves the domain's xenstore connection for watch events queued by someone else's
    /// request, and notifies it on its store port (from domain 0) if bytes moved.
    pub fn notify_store(&mut self, store: &mut xenstored::Store) {
        if self.xenstore.deliver_events(store) {
            let mut w = self.words();
            let port = self.xen.store_port;
            self.xen.evtchn.notify_from_dom0(&mut w, port);
        }
    }

    /// Logs the event set-up once the guest has chosen its callback (for the run's log).
    pub(super) fn log_callback(&self) {
        if let Some(v) = self.xen.callback_vector() {
            guest_log!(
                self.guest_log,
                "d{}: event upcalls on vector {v:#x}",
                self.domid()
            );
        }
    }
}

/// The earlier of two optional deadlines.
fn earliest(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}
