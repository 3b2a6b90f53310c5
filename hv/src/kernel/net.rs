//! Domain 0's network inside hv: one [`netback::Netback`] per `vif` entry of a domain's
//! config, all joined by the software switch ([`crate::dom0::switch`]) with QEMU's virtio-net
//! NIC as its uplink ([`super::nic`]).
//!
//! The machine runs [`Net::serve`] after every exit of a domain with vifs: its back ends
//! follow their front ends' states and take the frames the guest sent, which the switch sends
//! to other vifs (their domains lent to their back ends for the copy and the notification,
//! as every other domain is in the machine's table meanwhile) or out of the NIC. The machine
//! also calls [`Net::poll_nic`] on every turn of its loop: frames from QEMU go through the
//! switch to the vifs; a batch's TCP segments for a vif whose front end takes GSO are merged
//! first ([`netback::gro`], as Linux's GRO on dom0's NIC). A back end reaches its domain
//! through a lease ([`super::lease`]).

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};

use netback::Netback;
use xenbus::Instant;
use xenbus::xenstore::XsClient;
use xenstored::Store;

use crate::dom0::blk::{Dom0Events, Dom0Link};
use crate::dom0::ports::Service;
use crate::dom0::switch::{Mac, PortId, Switch};
use crate::dom0::toolstack::{VifInfo, default_mac, mac_text, remove_vif, vif_backend, write_vif};
use crate::hvlog;

use super::domain::{DOM0_BACKEND_PORT_BASE, Domain};
use super::lease::{DomEvents, DomGrants, Lease, lease, lend};
use super::nic::Nic;

/// How long a back end's xenstore operation may take (they are answered at once).
const XS_DEADLINE_NS: u64 = 1_000_000_000;
/// Rounds of one back end per [`Net::serve`] (each at most a ring's worth of requests).
const ROUNDS: u32 = 4;
/// How often the idle machine polls the NIC while a reply may be on its way: for [`BUSY_NS`]
/// after a frame went out of it. QEMU's user network answers asynchronously (a TCP ACK some
/// tens of microseconds after the segment) and the domain waiting for it is halted, so with
/// the idle millisecond a sender whose window is small waited up to that long per round trip.
const BUSY_POLL_NS: u64 = 250_000;
/// How long after a frame went out of the NIC it is polled every [`BUSY_POLL_NS`].
const BUSY_NS: u64 = 2_000_000;
/// How often the NIC is polled otherwise.
const IDLE_POLL_NS: u64 = 1_000_000;
/// Where the vifs' domain-0 ports start in each domain's port table (the disks' start at
/// [`DOM0_BACKEND_PORT_BASE`]; a domain has fewer than 32 of them).
const DOM0_VIF_PORT_BASE: u32 = DOM0_BACKEND_PORT_BASE + 32;
/// Domain-0 ports per vif: a tx and an rx channel for each of netback's queues.
const DOM0_PORTS_PER_VIF: u32 = 2 * netback::MAX_QUEUES;

/// One `vif` entry of a config, as hv needs it.
#[derive(Clone, Debug)]
pub struct VifEntry {
    /// `devid=`, else the entry's index.
    pub devid: u32,
    /// `mac=`, else [`default_mac`].
    pub mac: Option<Mac>,
    /// `bridge=` (xl's default `xenbr0`; hv has one switch whatever it says).
    pub bridge: String,
    /// `mtu=` (1500).
    pub mtu: u32,
}

impl VifEntry {
    /// A config's `vif` entries, in its order.
    pub fn list_of(c: &xlcfg::Config) -> Vec<Self> {
        c.vifs
            .iter()
            .zip(0u32..)
            .map(|(v, index)| Self {
                devid: v.devid.unwrap_or(index),
                mac: v.mac,
                bridge: v.bridge.clone().unwrap_or_else(|| "xenbr0".into()),
                mtu: v.mtu.unwrap_or(crate::dom0::toolstack::DEFAULT_MTU),
            })
            .collect()
    }
}

/// Snapshots the host asked for (`netback-stats` on hv's control lines): domain and tag.
static STATS_ASKED: spin::Mutex<Vec<(u16, String)>> = spin::Mutex::new(Vec::new());

/// Whether [`STATS_ASKED`] has any (the per-exit check takes no lock).
static ANY_ASKED: AtomicBool = AtomicBool::new(false);

/// Asks for one line of counts per vif of domain `domid`, marked `tag`, at the next turn of
/// the back ends.
pub fn ask_stats(domid: u16, tag: &str) {
    STATS_ASKED.lock().push((domid, String::from(tag)));
    ANY_ASKED.store(true, Ordering::Release);
}

/// One vif served.
struct Instance {
    domid: u16,
    devid: u32,
    mac: Mac,
    port: PortId,
    token: String,
    lease: Lease,
    back: Netback<DomGrants, DomEvents>,
    /// Exits of the domain after which this back end ran.
    exits: u64,
    /// Of those, the ones after which it found frames to send.
    busy_exits: u64,
    /// Frames the switch sent it that its back end refused (not connected, too few
    /// buffers posted, a bad length or buffer; the back end counts each by reason).
    dropped: u64,
    /// Frames were delivered since its last `flush_rx`.
    unflushed: bool,
    /// The NIC's TCP segments for it, merged while a batch is switched when its front end
    /// takes GSO (empty between batches).
    gro: netback::gro::Gro,
}

/// The vifs, the switch and the NIC.
pub struct Net {
    nic: Option<Nic>,
    switch: Switch,
    /// Each config's vifs, by spec.
    vifs: Vec<Vec<VifEntry>>,
    instances: Vec<Instance>,
    /// Scratch: where the frame being switched goes.
    to: Vec<PortId>,
    /// When a frame last went out of the NIC (system time).
    last_uplink_ns: Option<u64>,
}

impl Net {
    /// The NIC found on the bus (if any) and each config's vifs (by spec).
    pub fn new(nic: Option<Nic>, vifs: Vec<Vec<VifEntry>>) -> Self {
        let any = vifs.iter().any(|v| !v.is_empty());
        if any && nic.is_none() {
            hvlog!("no virtio-net NIC: the vifs reach only each other");
        }
        Self {
            nic,
            switch: Switch::default(),
            vifs,
            instances: Vec::new(),
            to: Vec::new(),
            last_uplink_ns: None,
        }
    }

    /// Whether any vif is served (the machine then polls the NIC by [`Net::poll_deadline`]).
    pub fn active(&self) -> bool {
        !self.instances.is_empty()
    }

    /// When the idle machine should next poll the NIC, while any vif is served: soon after a
    /// frame went out of it (a reply is likely on its way), else within a millisecond.
    pub fn poll_deadline(&self, now: u64) -> Option<u64> {
        if !self.active() {
            return None;
        }
        let busy = self
            .last_uplink_ns
            .is_some_and(|t| now.saturating_sub(t) < BUSY_NS);
        Some(now.saturating_add(if busy { BUSY_POLL_NS } else { IDLE_POLL_NS }))
    }

    /// The vifs of spec `spec`, a domain created at run time (they join the switch when
    /// it is built, as the boot-time domains' do).
    pub fn add_spec(&mut self, spec: usize, vifs: Vec<VifEntry>) {
        if self.vifs.len() <= spec {
            self.vifs.resize_with(spec + 1, Vec::new);
        }
        self.vifs[spec] = vifs;
    }

    /// Domain `domid` was built from spec `spec`: its vifs' keys are written as the
    /// toolstack writes them, each gets a port on the switch, and a back end probes each
    /// (InitWait).
    pub fn attach(
        &mut self,
        store: &mut Store,
        events: &mut Dom0Events,
        spec: usize,
        domid: u16,
        now: Instant,
    ) {
        let mine = self.vifs.get(spec).cloned().unwrap_or_default();
        for (n, vif) in mine.into_iter().enumerate() {
            let mac = vif.mac.unwrap_or_else(|| default_mac(domid, vif.devid));
            let info = VifInfo {
                domid,
                devid: vif.devid,
                mac,
                bridge: &vif.bridge,
                mtu: vif.mtu,
            };
            if let Err(e) = write_vif(store, &info) {
                hvlog!("d{domid}: vif{} keys: {e}", vif.devid);
                continue;
            }
            let port = match self.switch.add_vif(mac) {
                Ok(p) => p,
                Err(e) => {
                    hvlog!("d{domid}: vif{} MAC {}: {e:?}", vif.devid, mac_text(&mac));
                    let _ = remove_vif(store, domid, vif.devid);
                    continue;
                }
            };
            let path = vif_backend(domid, vif.devid);
            let token = format!("xb-be-other:{path}");
            let lease = lease();
            let grants = DomGrants::new(lease.clone(), domid);
            let dom0_port = u32::try_from(n)
                .unwrap_or(0)
                .saturating_mul(DOM0_PORTS_PER_VIF)
                .saturating_add(DOM0_VIF_PORT_BASE);
            let ev = DomEvents::with_ports(
                lease.clone(),
                domid,
                Service::Netback(vif.devid),
                dom0_port,
                DOM0_PORTS_PER_VIF,
            );
            let deadline = Instant::from_nanos(now.as_nanos().saturating_add(XS_DEADLINE_NS));
            let mut xs = XsClient::new(Dom0Link::new(store, events, &token, now));
            match Netback::probe(&mut xs, path, grants, ev, deadline) {
                Ok(back) => {
                    hvlog!(
                        "d{domid}: vif{} MAC {} on the switch (port {})",
                        vif.devid,
                        mac_text(&mac),
                        port.0
                    );
                    self.instances.push(Instance {
                        domid,
                        devid: vif.devid,
                        mac,
                        port,
                        token,
                        lease,
                        back,
                        exits: 0,
                        busy_exits: 0,
                        dropped: 0,
                        unflushed: false,
                        gro: netback::gro::Gro::default(),
                    });
                }
                Err(e) => {
                    hvlog!("d{domid}: netback for vif{}: {e:?}", vif.devid);
                    self.switch.remove(port);
                }
            }
        }
    }

    /// Runs the back ends of domain `domid` (after its exit): each follows its front end
    /// and hands over the frames its guest sent, which are switched at once. `domains` is the
    /// machine's table, every domain in its slot.
    pub fn serve(
        &mut self,
        store: &mut Store,
        events: &mut Dom0Events,
        domains: &mut [Option<Box<Domain>>],
        domid: u16,
        now: Instant,
    ) {
        self.answer_stats();
        let deadline = Instant::from_nanos(now.as_nanos().saturating_add(XS_DEADLINE_NS));
        let mut sent: Vec<(PortId, Vec<u8>)> = Vec::new();
        for inst in self.instances.iter_mut().filter(|i| i.domid == domid) {
            let Some(slot) = slot_of(domains, domid) else {
                continue;
            };
            inst.exits += 1;
            let before = sent.len();
            let port = inst.port;
            let Instance {
                lease,
                back,
                token,
                devid,
                unflushed,
                ..
            } = inst;
            lend(lease, slot, || {
                // Frames that waited for rx buffers go first: the exit may have been the
                // front end's notification that it posted more.
                if back.drain_rx(now) > 0 {
                    *unflushed = true;
                }
                for _ in 0..ROUNDS {
                    let mut xs = XsClient::new(Dom0Link::new(store, events, token, now));
                    let mut out = |f: &[u8]| sent.push((port, f.to_vec()));
                    match back.poll(&mut xs, &mut out, deadline) {
                        Ok(true) => continue,
                        Ok(false) => break,
                        Err(e) => {
                            hvlog!("d{domid}: netback vif{devid}: {e:?}");
                            break;
                        }
                    }
                }
            });
            if sent.len() != before {
                inst.busy_exits += 1;
            }
        }
        for (from, frame) in sent {
            self.switch_frame(domains, from, &frame, now);
        }
        self.flush(domains);
    }

    /// Logs the lines [`ask_stats`] asked for: per vif, its frames both ways, the exits of its
    /// domain after which it ran, and the notifications it sent both ways, so far.
    fn answer_stats(&self) {
        if !ANY_ASKED.swap(false, Ordering::Acquire) {
            return;
        }
        let asked = core::mem::take(&mut *STATS_ASKED.lock());
        for (domid, tag) in asked {
            let mut any = false;
            for inst in self.instances.iter().filter(|i| i.domid == domid) {
                any = true;
                let s = inst.back.stats();
                hvlog!(
                    "d{domid}: netback vif{} at {tag}: frames {} exits {} notifications {}",
                    inst.devid,
                    s.tx_frames + s.rx_frames,
                    inst.exits,
                    s.tx_notifications + s.rx_notifications
                );
                hvlog!(
                    "d{domid}: netback vif{} at {tag} in detail: tx {} frames {} slots {} \
                     notifications, rx {} frames {} slots {} notifications {} waited {} \
                     dropped, {} busy exits",
                    inst.devid,
                    s.tx_frames,
                    s.tx_slots,
                    s.tx_notifications,
                    s.rx_frames,
                    s.rx_slots,
                    s.rx_notifications,
                    s.rx_queued,
                    s.rx_dropped,
                    inst.busy_exits
                );
            }
            if !any {
                hvlog!("control: d{domid} has no vif (netback-stats {tag})");
            }
        }
    }

    /// Takes what QEMU's NIC received and switches it to the vifs.
    pub fn poll_nic(&mut self, domains: &mut [Option<Box<Domain>>], now: Instant) {
        if self.instances.is_empty() {
            return;
        }
        let Some(nic) = self.nic.as_mut() else {
            return;
        };
        if !nic.pending() {
            return;
        }
        let mut frames: Vec<Vec<u8>> = Vec::new();
        nic.receive(&mut |f| frames.push(f.to_vec()));
        for f in frames {
            self.switch_frame(domains, PortId::UPLINK, &f, now);
        }
        // What the batch left merging goes now.
        for inst in self.instances.iter_mut().filter(|i| !i.gro.is_empty()) {
            let Some(slot) = slot_of(domains, inst.domid) else {
                continue;
            };
            let Instance {
                lease,
                back,
                gro,
                dropped,
                unflushed,
                ..
            } = inst;
            lend(lease, slot, || {
                gro.flush(&mut |f, gso| deliver(back, f, gso, now, dropped, unflushed));
            });
        }
        self.flush(domains);
    }

    /// Switches one frame from `from`: out of the NIC, or copied to each vif it goes to.
    fn switch_frame(
        &mut self,
        domains: &mut [Option<Box<Domain>>],
        from: PortId,
        frame: &[u8],
        now: Instant,
    ) {
        let mut to = core::mem::take(&mut self.to);
        self.switch.forward(from, frame, now.as_nanos(), &mut to);
        for &port in &to {
            if port == PortId::UPLINK {
                if let Some(nic) = self.nic.as_mut() {
                    nic.send(frame);
                    self.last_uplink_ns = Some(now.as_nanos());
                }
                continue;
            }
            let Some(inst) = self.instances.iter_mut().find(|i| i.port == port) else {
                continue;
            };
            let Some(slot) = slot_of(domains, inst.domid) else {
                continue;
            };
            let Instance {
                lease,
                back,
                gro,
                dropped,
                unflushed,
                ..
            } = inst;
            lend(lease, slot, || {
                // The NIC's segments merge for a front end that takes GSO (Linux's GRO on
                // dom0's NIC); `poll_nic` hands on what is left after the batch.
                let merge = from == PortId::UPLINK && back.rx_gso();
                let mut out = |f: &[u8], gso| deliver(back, f, gso, now, dropped, unflushed);
                if merge {
                    gro.push(frame, &mut out);
                } else {
                    out(frame, None);
                }
            });
        }
        self.to = to;
    }

    /// Pushes the rx responses of every vif that got frames and notifies where the ring
    /// rules ask.
    fn flush(&mut self, domains: &mut [Option<Box<Domain>>]) {
        for inst in self.instances.iter_mut().filter(|i| i.unflushed) {
            inst.unflushed = false;
            let Some(slot) = slot_of(domains, inst.domid) else {
                continue;
            };
            let back = &mut inst.back;
            lend(&inst.lease, slot, || back.flush_rx());
        }
    }

    /// Domain `domid` goes: its back ends are dropped (their mappings die with the domain)
    /// after printing what they did, their switch ports removed and their back-end keys
    /// removed.
    pub fn detach(&mut self, store: &mut Store, domid: u16) {
        let (gone, kept): (Vec<Instance>, Vec<Instance>) = core::mem::take(&mut self.instances)
            .into_iter()
            .partition(|i| i.domid == domid);
        self.instances = kept;
        for inst in gone {
            self.switch.remove(inst.port);
            let s = inst.back.stats();
            let frames = s.tx_frames + s.rx_frames;
            let per = |n: u64| match frames {
                0 => String::from("-"),
                f => format!("{}.{:02}", n / f, (n % f) * 100 / f),
            };
            hvlog!(
                "d{domid}: netback vif{} ({}): tx {} frames {} bytes {} slots ({} csum \
                 completed, {} errors, {} fatal), rx {} frames {} bytes {} slots ({} waited \
                 for buffers, {} dropped of which {} waited too long, {} errors, {} dropped \
                 by the switch), {} notifications ({} tx, {} rx), {} \
                 connects{}; {} exits after which it ran, {} with frames to send; per frame: \
                 {} exits, {} notifications",
                inst.devid,
                mac_text(&inst.mac),
                s.tx_frames,
                s.tx_bytes,
                s.tx_slots,
                s.tx_csum_completed,
                s.tx_errors,
                s.fatal_errors,
                s.rx_frames,
                s.rx_bytes,
                s.rx_slots,
                s.rx_queued,
                s.rx_dropped,
                s.rx_expired,
                s.rx_errors,
                inst.dropped,
                inst.back.events().sent(),
                s.tx_notifications,
                s.rx_notifications,
                s.connects,
                if inst.back.is_disabled() {
                    ", disabled"
                } else {
                    ""
                },
                inst.exits,
                inst.busy_exits,
                per(inst.exits),
                per(s.tx_notifications + s.rx_notifications),
            );
            hvlog!(
                "d{domid}: netback vif{} queues: {} split-channel connects of {}, tx frames \
                 per queue {:?}, rx frames per queue {:?}",
                inst.devid,
                s.split_connects,
                s.connects,
                s.tx_frames_per_queue,
                s.rx_frames_per_queue
            );
            let g = inst.gro.stats();
            hvlog!(
                "d{domid}: netback vif{}: rx {} GSO frames, merged from the NIC's {} segments \
                 ({} frames passed as they came)",
                inst.devid,
                s.rx_gso,
                g.merged_segments,
                g.passed
            );
            if let Err(e) = remove_vif(store, domid, inst.devid) {
                hvlog!("d{domid}: removing vif{}: {e}", inst.devid);
            }
        }
        if self.instances.is_empty() {
            // The last frames out of the NIC reach QEMU before hv goes on (or ends).
            if let Some(nic) = self.nic.as_mut()
                && !nic.drain_tx()
            {
                hvlog!("NIC: frames still in flight after the last vif went");
            }
            let st = self.switch.stats();
            let nic = self.nic.as_ref().map(|n| n.stats).unwrap_or_default();
            hvlog!(
                "switch: {} frames ({} flooded, {} unicast, {} to unknown MACs, {} dropped, \
                 {} runts), {} MACs learned, {} moved, {} evicted, {} conflicts; NIC: rx {} \
                 frames {} bytes, tx {} frames {} bytes, {} errors, {} sends waited for a full queue",
                st.frames,
                st.floods,
                st.unicast,
                st.unknown_unicast,
                st.dropped,
                st.runts,
                st.learned,
                st.moved,
                st.evicted,
                st.conflicts,
                nic.rx_frames,
                nic.rx_bytes,
                nic.tx_frames,
                nic.tx_bytes,
                nic.tx_errors + nic.rx_errors,
                nic.tx_full_waits
            );
        }
    }
}

/// Hands one frame (a GSO packet of segments of `gso` bytes if given) to a back end,
/// counting what it refused.
fn deliver(
    back: &mut Netback<DomGrants, DomEvents>,
    frame: &[u8],
    gso: Option<u16>,
    now: Instant,
    dropped: &mut u64,
    unflushed: &mut bool,
) {
    match back.deliver_gso(frame, gso, now) {
        Ok(netback::Delivered::Copied) => *unflushed = true,
        Ok(netback::Delivered::Queued) => {}
        Err(_) => *dropped += 1,
    }
}

/// The slot of domain `domid` in the machine's table, if it is there.
fn slot_of(domains: &mut [Option<Box<Domain>>], domid: u16) -> Option<&mut Option<Box<Domain>>> {
    domains
        .iter_mut()
        .find(|d| d.as_ref().is_some_and(|d| d.domid() == domid))
}
