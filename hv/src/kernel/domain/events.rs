//! Events and time in the run loop: the singleshot timer fired as `VIRQ_TIMER`, the upcall
//! injected on the guest's callback vector (or the VINTR window requested), and the waits
//! of `HLT`, `SCHEDOP_block` and `SCHEDOP_poll`.
//!
//! hv has one domain and no device interrupts for it: while it waits, only its timer can
//! wake it, so a wait halts hv until the local APIC timer, armed for the timer's (or the
//! poll's) deadline, interrupts (or spins on the TSC without a usable local APIC). While the
//! guest runs, the APIC timer is armed for its singleshot deadline, so the guest exits
//! (`INTR`) and gets `VIRQ_TIMER` on time even if it never exits by itself. A wait with no
//! deadline could never end: hv then crashes the domain with a message saying so.

use crate::guest_log;
use crate::layout;
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
    },
}

impl Domain {
    fn words(&self) -> SharedInfoView {
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

    /// Before each VMRUN: the timer (fired if due, else hv's APIC timer armed for it), then
    /// the upcall (injected, or the window requested).
    pub(super) fn before_entry(&mut self) {
        self.fire_timer();
        if let Some(l) = &self.lapic {
            match self.xen.timer.deadline() {
                Some(d) => l.arm(d.saturating_sub(self.clock.ns(tsc::now()))),
                None => l.disarm(),
            }
        }
        let pending = self.words().upcall_pending();
        let c = &mut self.vmcb.control;
        match inject::upcall(
            pending,
            self.xen.callback_vector(),
            self.vmcb.save.rflags,
            c.interrupt_shadow,
            c.event_inj,
        ) {
            Upcall::None => {}
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

    /// Whether the wait is over.
    fn woken(&self, wait: &Wait, raised: bool) -> bool {
        let w = self.words();
        match wait {
            Wait::Block => w.upcall_pending() && self.xen.callback_vector().is_some(),
            Wait::Poll { .. } => {
                raised
                    || self
                        .xen
                        .poll_ports
                        .iter()
                        .take(self.xen.poll_nr)
                        .any(|&p| self.xen.evtchn.is_pending(&w, p))
            }
        }
    }

    /// Waits as `wait` asks; `Some` if the domain can never wake.
    pub(super) fn wait(&mut self, wait: Wait) -> Option<Ending> {
        self.stats.waits += 1;
        let start = tsc::now();
        let mut raised = false;
        loop {
            raised |= self.fire_timer();
            if self.woken(&wait, raised) {
                break;
            }
            let now_ns = self.clock.ns(tsc::now());
            let poll_timeout = match &wait {
                Wait::Poll { timeout, .. } => *timeout,
                Wait::Block => None,
            };
            if poll_timeout.is_some_and(|t| now_ns >= t) {
                break;
            }
            let deadline = match (self.xen.timer.deadline(), poll_timeout) {
                (Some(a), Some(b)) => a.min(b),
                (Some(a), None) | (None, Some(a)) => a,
                (None, None) => {
                    return self.crash(format_args!(
                        "d{} waits for an event with no timer armed: nothing can wake it",
                        layout::DOMID
                    ));
                }
            };
            let target = self
                .clock
                .boot_tsc
                .saturating_add(self.clock.scale.ticks_for(deadline));
            match &self.lapic {
                Some(l) => {
                    let now = tsc::now();
                    if now < target {
                        l.arm(self.clock.scale.scale(target - now));
                        super::super::lapic::halt();
                    }
                }
                None => {
                    while tsc::now() < target {
                        core::hint::spin_loop();
                    }
                }
            }
        }
        let end = tsc::now();
        self.stats.wait_ticks += end.saturating_sub(start);
        self.xen
            .runstate
            .blocked(self.clock.ns(start), self.clock.ns(end));
        // Xen refreshes the vCPU's time when it runs again.
        self.words().write_time(&self.clock, tsc::now());
        None
    }

    /// Logs the event set-up once the guest has chosen its callback (for the run's log).
    pub(super) fn log_callback(&self) {
        if let Some(v) = self.xen.callback_vector() {
            guest_log!(
                self.guest_log,
                "d{}: event upcalls on vector {v:#x}",
                layout::DOMID
            );
        }
    }
}
