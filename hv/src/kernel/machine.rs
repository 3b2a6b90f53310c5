//! The machine: what hv's domains share (host frames, the xenstore tree, the clock, the
//! local APIC timer) and the run loop that schedules them on the one CPU.
//!
//! Each turn of the loop: wake the domains whose waits are over, let the scheduler
//! ([`crate::sched`]) choose, switch the CPU's extended state if the domain changes, arm the
//! APIC timer for the earliest of the slice's end and every domain's deadline, VMRUN, handle
//! the exit. A domain that ends is dealt with as its config's `on_poweroff`, `on_reboot` or
//! `on_crash` says, while the others run on; the run ends when no domain is left but
//! preserved ones, with QEMU exit 33 only if every domain built powered off, unless hv was
//! started with `keep`. Each turn also serves the control channel on COM2 (`cargo xtask
//! xl`: [`crate::dom0::control::Server`], for which the machine is the [`Domains`]): domains
//! are created, paused, shut down and destroyed while the others run.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

use xenstored::Store;

use crate::frames::FrameAllocator;
use crate::hvlog;
use crate::sched::{self, Choice, RunState, Scheduler};
use crate::svm::exit;
use crate::time::Clock;

use super::control::Control;
use super::domain::{Domain, DomainSpec, Ending};
use super::fpu::{self, Method};
use super::lapic::{self, Lapic};
use super::serial;
use super::tsc;
use crate::dom0::control::{After, Domains, Server};
use hvctl::{DomainInfo, HostInfo, Reason, Response};

/// What every domain shares.
pub struct Host {
    /// hv's frames (domains' RAM, tables, pages).
    pub frames: FrameAllocator,
    /// Domain 0's xenstore tree, with every domain's keys.
    pub store: Store,
    /// System time (the calibrated TSC since hv started).
    pub clock: Clock,
    /// The TSC's rate.
    pub tsc_khz: u32,
    /// The wall clock at system time 0 (from the CMOS RTC), if read.
    pub wallclock: Option<(u64, u32)>,
    /// How extended state is saved.
    pub fpu: Method,
    /// Frames of dead domains still mapped by others (given back with the last unmap).
    pub held: crate::held::HeldFrames,
    /// The virtio-blk disks and domain 0's back ends on them (`super::blk`).
    pub disks: super::blk::Disks,
    /// The vifs, the switch and the NIC (`super::net`).
    pub net: super::net::Net,
    /// Domain 0's watch events, routed to the back ends by token.
    pub dom0_events: crate::dom0::blk::Dom0Events,
}

/// How a domain's run ended, for the exit status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    PoweredOff,
    Other,
}

/// The machine and its domains.
pub struct Machine {
    host: Host,
    lapic: Option<Lapic>,
    specs: Vec<DomainSpec>,
    /// Domains by scheduler slot.
    domains: Vec<Option<alloc::boxed::Box<Domain>>>,
    sched: Scheduler,
    /// The slot whose extended state the CPU holds.
    fpu_owner: Option<usize>,
    /// The CPU's `TSC_AUX`.
    tsc_aux: u32,
    next_domid: u16,
    outcomes: Vec<Outcome>,
    /// Switches between domains and the TSC ticks they took (from the scheduler's choice to
    /// the VMRUN of the other domain: extended state saved and loaded, `TSC_AUX`, the
    /// upcall check and the timer armed).
    switches: u64,
    switch_ticks: u64,
    /// The host's control lines on COM1.
    control: Control,
    /// The control channel on COM2.
    server: Server,
    /// TSC ticks each slot's domain ran.
    cpu_ticks: Vec<u64>,
    /// Preserved domains that ended: id and whether it crashed.
    ended: Vec<(u16, bool)>,
    /// Kernels that came over the control channel, by spec (given back when their domain
    /// is destroyed for good).
    uploaded: Vec<(usize, *mut [u8])>,
}

impl Machine {
    /// A machine with `host`'s resources and `specs` to build.
    pub fn new(host: Host, lapic: Option<Lapic>, specs: Vec<DomainSpec>) -> Self {
        Self {
            host,
            lapic,
            specs,
            domains: Vec::new(),
            sched: Scheduler::new(),
            fpu_owner: None,
            tsc_aux: 0,
            next_domid: 1,
            outcomes: Vec::new(),
            switches: 0,
            switch_ticks: 0,
            control: Control::default(),
            server: Server::default(),
            cpu_ticks: Vec::new(),
            ended: Vec::new(),
            uploaded: Vec::new(),
        }
    }

    /// Builds spec `index` as the next domain id; logs it by name if it cannot be built.
    /// Its slot and id, if built.
    fn create(&mut self, index: usize) -> Option<(usize, u16)> {
        let domid = self.next_domid;
        self.next_domid = self.next_domid.saturating_add(1);
        let spec = self.specs.get(index)?;
        match Domain::build(&mut self.host, spec, index, domid) {
            Ok(d) => {
                let now = xenbus::Instant::from_nanos(self.host.clock.ns(tsc::now()));
                let h = &mut self.host;
                h.disks
                    .attach(&mut h.store, &mut h.dom0_events, index, domid, now);
                h.net
                    .attach(&mut h.store, &mut h.dom0_events, index, domid, now);
                let slot = self.sched.add();
                if self.domains.len() <= slot {
                    self.domains.resize_with(slot + 1, || None);
                }
                self.domains[slot] = Some(alloc::boxed::Box::new(d));
                if self.cpu_ticks.len() <= slot {
                    self.cpu_ticks.resize(slot + 1, 0);
                }
                self.cpu_ticks[slot] = 0;
                super::control::console_open(domid);
                Some((slot, domid))
            }
            Err(e) => {
                hvlog!("domain {domid} ({}) could not be built: {e}", spec.name);
                self.outcomes.push(Outcome::Other);
                None
            }
        }
    }

    /// Builds every domain, in config order, and runs them until none is left.
    pub fn run(mut self) -> ! {
        for i in 0..self.specs.len() {
            self.create(i);
        }
        self.introduce_pair();
        // @introduceDomain fired for each domain built: deliver it to whoever watches.
        self.deliver_store_events(usize::MAX);
        if self.lapic.is_none() && self.domains.iter().flatten().count() > 1 {
            hvlog!("no local APIC timer: a domain that never exits is never preempted");
        }
        serial::keep_log();
        if serial::com2_present() {
            let keep = super::control::keep();
            hvlog!(
                "control channel on COM2{}",
                if keep {
                    " (keep: hv outlives its domains)"
                } else {
                    ""
                }
            );
        }
        let mut last_slot: Option<usize> = None;
        loop {
            if self.control.poll(&mut self.host.store) {
                self.deliver_store_events(usize::MAX);
            }
            self.serve_channel();
            let now = self.host.clock.ns(tsc::now());
            // Frames from QEMU's NIC go to the vifs (whose domains may wake).
            self.host
                .net
                .poll_nic(&mut self.domains, xenbus::Instant::from_nanos(now));
            self.wake(now);
            match self.sched.pick(now) {
                Choice::Run { slot, until } => {
                    let chosen = tsc::now();
                    if last_slot != Some(slot) && last_slot.is_some() {
                        self.switches = self.switches.saturating_add(1);
                    }
                    let switched = last_slot != Some(slot);
                    last_slot = Some(slot);
                    if self.domains.get(slot).and_then(Option::as_ref).is_none() {
                        self.sched.remove(slot);
                        continue;
                    }
                    if self.fpu_owner != Some(slot) {
                        if let Some(prev) = self
                            .fpu_owner
                            .and_then(|o| self.domains.get_mut(o))
                            .and_then(Option::as_mut)
                        {
                            prev.ext.save(self.host.fpu);
                        }
                        let Some(dom) = self.domains.get_mut(slot).and_then(Option::as_mut) else {
                            continue;
                        };
                        dom.ext.restore(self.host.fpu);
                        self.fpu_owner = Some(slot);
                    }
                    let Some(dom) = self.domains.get_mut(slot).and_then(Option::as_mut) else {
                        continue;
                    };
                    if dom.msrs.tsc_aux != self.tsc_aux {
                        fpu::set_tsc_aux(dom.msrs.tsc_aux);
                        self.tsc_aux = dom.msrs.tsc_aux;
                    }
                    dom.before_entry();
                    // While any vif exists the NIC is polled at least every MAX_ARM_NS (a
                    // running domain's exits poll it too).
                    let poll = self
                        .host
                        .net
                        .active()
                        .then(|| now.saturating_add(MAX_ARM_NS));
                    let deadline = [
                        until,
                        dom.timer_deadline(),
                        self.sched.earliest_deadline(),
                        poll,
                    ]
                    .into_iter()
                    .flatten()
                    .min();
                    arm(self.lapic.as_ref(), &self.host.clock, deadline);
                    if switched {
                        self.switch_ticks = self
                            .switch_ticks
                            .saturating_add(tsc::now().saturating_sub(chosen));
                    }
                    let entered = tsc::now();
                    let code = dom.enter();
                    if let Some(t) = self.cpu_ticks.get_mut(slot) {
                        *t = t.saturating_add(tsc::now().saturating_sub(entered));
                    }
                    // The domain leaves its slot while its exit is handled, so that what it
                    // does to other domains reaches them through the rest of the table.
                    let Some(mut dom) = self.domains.get_mut(slot).and_then(Option::take) else {
                        continue;
                    };
                    let end = dom.handle_exit(code, &mut self.host, &mut self.domains);
                    let domid = dom.domid();
                    if let Some(d) = self.domains.get_mut(slot) {
                        *d = Some(dom);
                        // Domain 0's back ends of this domain's disks and vifs take their turn.
                        let now = xenbus::Instant::from_nanos(self.host.clock.ns(tsc::now()));
                        let h = &mut self.host;
                        h.disks.serve(&mut h.store, &mut h.dom0_events, d, now);
                        h.net.serve(
                            &mut h.store,
                            &mut h.dom0_events,
                            &mut self.domains,
                            domid,
                            now,
                        );
                    }
                    if let Some(end) = end {
                        self.end(slot, end);
                        continue;
                    }
                    let Some(dom) = self.domains.get_mut(slot).and_then(Option::as_mut) else {
                        continue;
                    };
                    if dom.is_waiting() {
                        let d = dom.wait_deadline();
                        self.sched.wait(slot, d);
                    } else if core::mem::take(&mut dom.yielded) {
                        self.sched.yield_now(slot);
                    }
                    if code == exit::VMMCALL {
                        self.deliver_store_events(slot);
                    }
                }
                Choice::Idle { until } => {
                    let keep = super::control::keep();
                    if !self.sched.any_live() && !keep {
                        self.finish();
                    }
                    // With `keep`, the control channel is served at least every MAX_ARM_NS.
                    let until = match until {
                        None if keep && self.sched.waiting().next().is_none() => {
                            Some(now + MAX_ARM_NS)
                        }
                        u => u,
                    };
                    // A frame half read: back soon for the rest.
                    let until = if self.server.busy() {
                        Some(until.map_or(now + CHANNEL_IDLE_NS, |u| u.min(now + CHANNEL_IDLE_NS)))
                    } else {
                        until
                    };
                    // A frame from the NIC may wake a domain: poll it by the network's
                    // deadline (at most MAX_ARM_NS ahead, sooner while a reply to a frame
                    // sent may be on its way) while any vif exists, even with no other
                    // deadline.
                    let until = match (until, self.host.net.poll_deadline(now)) {
                        (u, Some(p)) => Some(u.unwrap_or(u64::MAX).min(p)),
                        (u, None) => u,
                    };
                    match until {
                        Some(t) => self.idle_until(t),
                        None => self.nothing_can_wake(),
                    }
                }
            }
        }
    }

    /// The `pair` self-test's peers: when exactly two domains' command lines carry a
    /// `pair=` word, each gets `data/peer-domid` with the other's id, as xtask's stock-Xen
    /// run writes it between `xl create -p` and `xl unpause` (hv's toolstack has no other
    /// way to say who a domain's peer is).
    fn introduce_pair(&mut self) {
        let paired: Vec<u16> = self
            .domains
            .iter()
            .flatten()
            .filter(|d| {
                self.specs
                    .get(d.spec)
                    .is_some_and(|s| s.cmdline.split_whitespace().any(|w| w.starts_with("pair=")))
            })
            .map(|d| d.domid())
            .collect();
        if let [a, b] = paired[..] {
            for (id, peer) in [(a, b), (b, a)] {
                let key = alloc::format!("/local/domain/{id}/data/peer-domid");
                let value = alloc::format!("{peer}");
                if let Err(e) = self.host.store.write(&key, value.as_bytes()) {
                    hvlog!("d{id}: {key}: {e}");
                }
            }
            hvlog!("domains {a} and {b} are a pair (data/peer-domid)");
        }
    }

    /// Wakes every waiting domain whose wait is over at `now`.
    fn wake(&mut self, now: u64) {
        for slot in 0..self.domains.len() {
            if !matches!(self.sched.state(slot), Some(RunState::Waiting { .. })) {
                continue;
            }
            let Some(dom) = self.domains.get_mut(slot).and_then(Option::as_mut) else {
                continue;
            };
            if let Some(at) = dom.wait_over(now) {
                self.sched.wake(slot, at);
            }
        }
    }

    /// Another domain's request (or the toolstack) queued watch events for domains other
    /// than `slot`: their connections deliver them, and each is notified on its store port.
    fn deliver_store_events(&mut self, slot: usize) {
        for (i, dom) in self.domains.iter_mut().enumerate() {
            let Some(dom) = dom.as_mut() else { continue };
            if i != slot && dom.xenstore.events_waiting(&self.host.store) {
                dom.notify_store(&mut self.host.store);
            }
        }
    }

    /// No domain can run: halts until system time `t` (the APIC timer's interrupt), or spins
    /// on the TSC without a local APIC.
    fn idle_until(&self, t: u64) {
        let clock = &self.host.clock;
        let target = clock.boot_tsc.saturating_add(clock.scale.ticks_for(t));
        match &self.lapic {
            Some(l) => {
                let now = tsc::now();
                if now < target {
                    l.arm(clock.scale.scale(target - now).min(MAX_ARM_NS));
                    lapic::halt();
                }
            }
            None => {
                while tsc::now() < target {
                    core::hint::spin_loop();
                }
            }
        }
    }

    /// Every live domain waits with no deadline: crash each, as nothing can wake it.
    fn nothing_can_wake(&mut self) {
        for slot in 0..self.domains.len() {
            if !matches!(self.sched.state(slot), Some(RunState::Waiting { .. })) {
                continue;
            }
            if let Some(dom) = self.domains.get_mut(slot).and_then(Option::as_mut) {
                let end = dom.unwakeable();
                self.end(slot, end);
            }
        }
    }

    /// Domain `slot` ended: log it, then do what its config says.
    fn end(&mut self, slot: usize, end: Ending) {
        let Some(dom) = self.domains.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        dom.close_console();
        let (id, name) = (dom.domid(), dom.name.clone());
        let Some(spec) = self.specs.get(dom.spec) else {
            return;
        };
        use abi::sched as s;
        let (action, key, outcome) = match &end {
            Ending::Shutdown(s::SHUTDOWN_POWEROFF) => {
                hvlog!("domain {id} ({name}) powered off");
                (spec.on_poweroff, "on_poweroff", Outcome::PoweredOff)
            }
            Ending::Shutdown(s::SHUTDOWN_REBOOT) => {
                hvlog!("domain {id} ({name}) rebooted");
                (spec.on_reboot, "on_reboot", Outcome::Other)
            }
            Ending::Shutdown(s::SHUTDOWN_CRASH) => {
                hvlog!("domain {id} ({name}) crashed: the guest said so (SHUTDOWN_crash)");
                (spec.on_crash, "on_crash", Outcome::Other)
            }
            Ending::Shutdown(r) => {
                let what = match *r {
                    s::SHUTDOWN_SUSPEND => "suspend",
                    s::SHUTDOWN_WATCHDOG => "watchdog",
                    s::SHUTDOWN_SOFT_RESET => "soft_reset",
                    _ => "unknown reason",
                };
                hvlog!("domain {id} ({name}) shut down: {what} ({r}); hv destroys it");
                (xlcfg::Action::Destroy, "", Outcome::Other)
            }
            Ending::Crashed(why) => {
                hvlog!("domain {id} ({name}) crashed: {why}");
                (spec.on_crash, "on_crash", Outcome::Other)
            }
        };
        match action {
            xlcfg::Action::Preserve => {
                hvlog!("domain {id} ({name}) preserved, paused ({key} = \"preserve\")");
                self.sched.pause(slot);
                self.ended.push((id, outcome != Outcome::PoweredOff));
                self.outcomes.push(Outcome::Other);
            }
            xlcfg::Action::Destroy => {
                let spec = dom.spec;
                self.destroy(slot);
                self.release_spec(spec);
                self.outcomes.push(outcome);
            }
            xlcfg::Action::Restart => {
                let spec = dom.spec;
                self.destroy(slot);
                hvlog!(
                    "domain {id} ({name}) restarts as domain {} ({key} = \"restart\")",
                    self.next_domid
                );
                self.create(spec);
            }
        }
    }

    /// Tears domain `slot` down: its frames back, its store nodes and connection gone, its
    /// scheduler slot free; its counters printed.
    fn destroy(&mut self, slot: usize) {
        self.sched.remove(slot);
        if self.fpu_owner == Some(slot) {
            // Its state stays in the CPU until another domain's is loaded: nothing reads it.
            self.fpu_owner = None;
        }
        let Some(mut dom) = self.domains.get_mut(slot).and_then(Option::take) else {
            return;
        };
        let id = dom.domid();
        super::control::console_close(id);
        self.ended.retain(|(d, _)| *d != id);
        // Xen's evtchn_destroy: every port connected to another domain is closed, which
        // leaves the peer's port unbound for this domain.
        for (port, rdom, rport) in dom.foreign_ports() {
            if let Some(peer) = self
                .domains
                .iter_mut()
                .flatten()
                .find(|d| d.domid() == rdom)
            {
                peer.peer_closed(rport, id, port);
            }
        }
        // Its mappings of other domains' grants are released (Xen's gnttab_release_mappings):
        // a live granter's pins end, a dead granter's held frame goes back with its last one.
        for m in dom.take_mappings() {
            match self
                .domains
                .iter_mut()
                .flatten()
                .find(|d| d.domid() == m.foreign.dom)
            {
                Some(granter) => granter.release_grant(&m.foreign),
                None => {
                    let f = &m.foreign;
                    if let Err(e) = self
                        .host
                        .held
                        .release(f.dom, f.frame, &mut self.host.frames)
                    {
                        hvlog!(
                            "d{}: held frame {:#x} not given back: {e:?}",
                            f.dom,
                            f.frame
                        );
                    }
                }
            }
        }
        // Its frames other domains map stay held until their last unmap, as Xen keeps a
        // dead domain's page referenced.
        let mut held = Vec::new();
        for other in self.domains.iter().flatten() {
            for frame in other.mapped_frames_of(id) {
                if self.host.held.hold(id, frame) {
                    held.push(frame);
                }
            }
        }
        if !held.is_empty() {
            hvlog!(
                "d{id}: {} frame(s) still mapped by other domains, held until unmapped",
                held.len()
            );
        }
        self.host.disks.detach(&mut self.host.store, id);
        self.host.net.detach(&mut self.host.store, id);
        super::xenstore::destroy(&mut self.host.store, id, &dom.uuid);
        let t = dom.teardown(&mut self.host.frames, &held);
        hvlog!(
            "d{id} teardown: {} frames back, free {} -> {} frames",
            t.frames_back,
            dom.free_before_build,
            t.free_after
        );
        dom.report();
        drop(dom);
        // The release fired @releaseDomain and the removals fired watches: deliver them.
        self.deliver_store_events(usize::MAX);
    }

    /// No domain is left to run (only preserved ones, if any): the scheduler's numbers, then
    /// QEMU stops, with 33 only if every domain powered off.
    fn finish(&mut self) -> ! {
        let st = self.sched.stats;
        let scale = &self.host.clock.scale;
        let per_switch = scale
            .scale(self.switch_ticks)
            .checked_div(self.switches)
            .unwrap_or(0);
        let mean_wake = st.wake_latency_sum.checked_div(st.wakeups).unwrap_or(0);
        let _ = writeln!(
            serial::Serial,
            "hv: sched: {} context switches, {per_switch} ns each on average; {} wake-ups, \
             latency mean {} us, max {} us; slice {} ms",
            self.switches,
            st.wakeups,
            mean_wake / 1000,
            st.wake_latency_max / 1000,
            sched::SLICE_NS / 1_000_000
        );
        let preserved = self.domains.iter().flatten().count();
        let all_off = preserved == 0
            && !self.outcomes.is_empty()
            && self.outcomes.iter().all(|o| *o == Outcome::PoweredOff);
        let mut line = String::new();
        let _ = write!(
            line,
            "all domains ended: {} powered off, {} otherwise",
            self.outcomes
                .iter()
                .filter(|o| **o == Outcome::PoweredOff)
                .count(),
            self.outcomes
                .iter()
                .filter(|o| **o != Outcome::PoweredOff)
                .count()
        );
        if preserved > 0 {
            let _ = write!(line, " ({preserved} preserved)");
        }
        hvlog!("{line}");
        serial::exit_qemu(if all_off {
            serial::EXIT_POWEROFF
        } else {
            serial::EXIT_CRASH
        })
    }
}

/// How long hv halts at most while a frame is half read and no domain runs, ns: QEMU moves
/// the socket's bytes into the UART while the CPU halts (spinning on the UART starves it).
const CHANNEL_IDLE_NS: u64 = 50_000;

impl Machine {
    /// Serves the control channel: reads what COM2 holds, answers each finished request.
    fn serve_channel(&mut self) {
        if !serial::com2_present() {
            return;
        }
        let mut server = core::mem::take(&mut self.server);
        let clock = self.host.clock;
        while let Some(b) = serial::com2_read_byte() {
            let now = clock.ns(tsc::now());
            if let Some((frame, after)) = server.push(b, now, self) {
                serial::com2_write(&frame);
                if after == After::EndHv {
                    self.end_hv();
                }
            }
        }
        if server.expire(clock.ns(tsc::now())) {
            hvlog!("control: a client went quiet mid-request; what it sent is dropped");
        }
        self.server = server;
    }

    /// `shutdown-hv`: every domain destroyed, then QEMU exits 33.
    fn end_hv(&mut self) -> ! {
        hvlog!("control: shutdown-hv: destroying every domain");
        for slot in 0..self.domains.len() {
            if self.domains.get(slot).is_some_and(Option::is_some) {
                self.destroy(slot);
            }
        }
        hvlog!("control: shutdown-hv: hv ends");
        serial::exit_qemu(serial::EXIT_POWEROFF)
    }

    /// The slot of domain `domid`.
    fn slot_of(&self, domid: u16) -> Option<usize> {
        self.domains
            .iter()
            .position(|d| d.as_ref().is_some_and(|d| d.domid() == domid))
    }

    /// Gives spec `spec`'s kernel back if it came over the control channel and no domain
    /// runs it any more.
    fn release_spec(&mut self, spec: usize) {
        if self.domains.iter().flatten().any(|d| d.spec == spec) {
            return;
        }
        let Some(i) = self.uploaded.iter().position(|(s, _)| *s == spec) else {
            return;
        };
        let (_, raw) = self.uploaded.swap_remove(i);
        if let Some(s) = self.specs.get_mut(spec) {
            s.image = &[];
            s.ramdisk = None;
        }
        // Its disks' devices are spare again, its vifs forgotten.
        self.host.disks.release_spec(spec);
        self.host.net.add_spec(spec, Vec::new());
        // SAFETY: `raw` came from `Box::into_raw` in `create` below and is given back once
        // (removed from `uploaded` above); the only reference made from it, the spec's
        // image, was replaced just now, and no domain's build borrows it any more.
        drop(unsafe { alloc::boxed::Box::from_raw(raw) });
    }
}

impl Domains for Machine {
    fn list(&self) -> Vec<DomainInfo> {
        let scale = &self.host.clock.scale;
        let mut used = 0u64;
        let mut rows = Vec::new();
        for (slot, dom) in self.domains.iter().enumerate() {
            let Some(dom) = dom else { continue };
            let ticks = self.cpu_ticks.get(slot).copied().unwrap_or(0);
            used = used.saturating_add(ticks);
            let state = self.sched.state(slot);
            let ended = self.ended.iter().find(|(d, _)| *d == dom.domid());
            rows.push(DomainInfo {
                name: dom.name.clone(),
                domid: dom.domid(),
                mem_mib: self.specs.get(dom.spec).map_or(0, |s| s.memory_mib),
                vcpus: 1,
                running: state == Some(RunState::Runnable),
                blocked: matches!(state, Some(RunState::Waiting { .. })),
                paused: state == Some(RunState::Paused),
                shutdown: ended.is_some_and(|(_, crashed)| !crashed),
                crashed: ended.is_some_and(|(_, crashed)| *crashed),
                dying: false,
                cpu_ns: scale.scale(ticks),
            });
        }
        rows.sort_by_key(|r| r.domid);
        let now = self.host.clock.ns(tsc::now());
        let dom0 = DomainInfo {
            name: "Domain-0".into(),
            domid: 0,
            mem_mib: 0,
            vcpus: 1,
            running: true,
            cpu_ns: now.saturating_sub(scale.scale(used)),
            ..DomainInfo::default()
        };
        rows.insert(0, dom0);
        rows
    }

    fn info(&self) -> HostInfo {
        let free = self.host.frames.free_bytes();
        let used: u64 = self
            .domains
            .iter()
            .flatten()
            .filter_map(|d| self.specs.get(d.spec))
            .map(|s| s.memory_mib << 20)
            .sum();
        let keep = super::control::keep();
        HostInfo {
            hv_version: String::from(env!("CARGO_PKG_VERSION")),
            xen_version: String::from("4.17"),
            commandline: String::from(if keep { "keep" } else { "" }),
            total_mib: free.saturating_add(used) >> 20,
            free_mib: free >> 20,
            tsc_khz: self.host.tsc_khz,
            domains: u32::try_from(self.domains.iter().flatten().count()).unwrap_or(u32::MAX),
            uptime_ns: self.host.clock.ns(tsc::now()),
            keep,
        }
    }

    fn check_devices(&self, config: &xlcfg::Config) -> Result<(), String> {
        let list: Vec<(String, bool)> = super::blk::DiskEntry::list_of(config)
            .into_iter()
            .map(|d| (d.vdev, d.read_only))
            .collect();
        self.host.disks.check_spare(&list)
    }

    fn create(
        &mut self,
        config: xlcfg::Config,
        images: Vec<u8>,
        ramdisk_len: u32,
        paused: bool,
    ) -> Result<u16, String> {
        let live = self.domains.iter().flatten().count();
        if u64::try_from(live).unwrap_or(u64::MAX) >= super::start::DOMAINS_MAX {
            return Err(alloc::format!(
                "hv runs at most {} domains",
                super::start::DOMAINS_MAX
            ));
        }
        let index = self.specs.len();
        // The disks first: nothing is taken if they cannot be had.
        self.host
            .disks
            .add_spec(index, &super::blk::DiskEntry::list_of(&config))?;
        self.host
            .net
            .add_spec(index, super::net::VifEntry::list_of(&config));
        let raw = alloc::boxed::Box::into_raw(images.into_boxed_slice());
        // SAFETY: `raw` is the heap copy of the images just leaked; it stays valid until
        // `release_spec` gives it back, which first replaces these references.
        let images: &'static [u8] = unsafe { &*raw };
        let split = images.len().saturating_sub(ramdisk_len as usize);
        let (image, ramdisk) = images.split_at(split);
        hvlog!(
            "control: create {} ({} bytes of kernel, {} of ramdisk, {} MiB)",
            config.name,
            image.len(),
            ramdisk.len(),
            config.memory_mib
        );
        self.specs.push(DomainSpec {
            name: config.name.clone(),
            image,
            cmdline: config.cmdline,
            ramdisk: (!ramdisk.is_empty()).then_some(ramdisk),
            memory_mib: config.memory_mib,
            on_poweroff: config.on_poweroff,
            on_reboot: config.on_reboot,
            on_crash: config.on_crash,
        });
        self.uploaded.push((index, raw));
        match Machine::create(self, index) {
            Some((slot, domid)) => {
                // @introduceDomain and the back ends' keys: to whoever watches.
                self.deliver_store_events(usize::MAX);
                if paused {
                    self.sched.pause(slot);
                }
                Ok(domid)
            }
            None => {
                // The failed build counted as an outcome; a refused create is none.
                self.outcomes.pop();
                self.release_spec(index);
                Err(alloc::format!(
                    "libxl: error: domain {} could not be built (hv's log says why)",
                    config.name
                ))
            }
        }
    }

    fn pause(&mut self, domid: u16, pause: bool) -> Result<(), String> {
        let slot = self.slot_of(domid).ok_or("no such domain")?;
        if self.ended.iter().any(|(d, _)| *d == domid) {
            return Err(alloc::format!("domain {domid} has ended (preserved)"));
        }
        if pause {
            self.sched.pause(slot);
            hvlog!("control: d{domid} paused");
        } else {
            let state = match self.domains.get(slot).and_then(Option::as_ref) {
                Some(d) if d.is_waiting() => RunState::Waiting {
                    deadline: d.wait_deadline(),
                },
                _ => RunState::Runnable,
            };
            self.sched.unpause(slot, state);
            hvlog!("control: d{domid} unpaused");
        }
        Ok(())
    }

    fn shutdown(&mut self, domid: u16, reason: Reason) -> Result<(), String> {
        let path = alloc::format!("/local/domain/{domid}/control/shutdown");
        self.host
            .store
            .write(&path, reason.word().as_bytes())
            .map_err(|e| alloc::format!("writing {path}: {e}"))?;
        hvlog!("control: d{domid}: {path} = {}", reason.word());
        self.deliver_store_events(usize::MAX);
        Ok(())
    }

    fn destroy(&mut self, domid: u16) -> Result<(), String> {
        let slot = self.slot_of(domid).ok_or("no such domain")?;
        let spec = self
            .domains
            .get(slot)
            .and_then(Option::as_ref)
            .map(|d| d.spec);
        hvlog!("control: destroying d{domid}");
        Machine::destroy(self, slot);
        if let Some(spec) = spec {
            self.release_spec(spec);
        }
        self.outcomes.push(Outcome::Other);
        Ok(())
    }

    fn console(&self, domid: u16, from: u64, max: usize) -> Response {
        super::control::console_read(domid, from, max)
    }

    fn dmesg(&self, from: u64, max: usize) -> Response {
        serial::read_log(from, max)
    }
}

/// The longest hv arms its APIC timer for at once. The timer's rate is measured against
/// the TSC at boot, and under QEMU's TCG that measurement can come out high (1.0 to 1.5
/// GHz for QEMU's 1 GHz timer on a loaded host), which would make the timer fire late by
/// the same factor; armed for at most 1 ms, it fires at most about half a millisecond late,
/// and the run loop, which reads the TSC, re-arms it until the deadline has passed. The
/// price is one exit per millisecond of a domain that never exits by itself.
const MAX_ARM_NS: u64 = 1_000_000;

/// Arms the APIC timer for `deadline` (system time), or stops it.
fn arm(lapic: Option<&Lapic>, clock: &Clock, deadline: Option<u64>) {
    if let Some(l) = lapic {
        match deadline {
            Some(d) => l.arm(d.saturating_sub(clock.ns(tsc::now())).min(MAX_ARM_NS)),
            None => l.disarm(),
        }
    }
}
