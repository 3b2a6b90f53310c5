//! Domain 0's block back ends inside hv: one [`blkback::Blkback`] per `disk` entry of a
//! domain's config, on the virtio-blk device paired with it ([`crate::dom0::blk::pair`]),
//! reaching the domU only through its grants and its event channel.
//!
//! The machine runs [`Disks::serve`] after every exit of a domain with disks: the back ends
//! follow their front ends' states (their watch events come through [`Dom0Link`]) and serve
//! their rings synchronously on the device, then notify. An event the front end sends
//! arrives as an exit (its `EVTCHNOP_send`), so nothing is missed; no device interrupt is
//! needed, as each device request is finished before `serve` returns. After a round that
//! served requests, the device is asked whether its size changed
//! ([`VirtioDisk::check_resize`]); a back end announces a new size on its next poll.
//!
//! A back end reaches its domain through a lease ([`super::lease`]).

use alloc::boxed::Box;
use alloc::format;
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::sync::atomic::{AtomicBool, Ordering};

use blkback::{Blkback, BlockDevice, DiskError};
use xenbus::Instant;
use xenbus::xenstore::XsClient;
use xenstored::Store;

use crate::dom0::blk::{DiskPlan, Dom0Events, Dom0Link, FlushWatch, flush_line, pair, pair_spare};
use crate::dom0::ports::Service;
use crate::dom0::toolstack::{VbdInfo, remove_vbd, vbd_backend, write_vbd};
use crate::hvlog;

use super::domain::{DOM0_BACKEND_PORT_BASE, Domain};
use super::lease::{DomEvents, DomGrants, Lease, lease};
use super::virtio::VirtioDisk;

/// How long a back end's xenstore operation may take (they are answered at once).
const XS_DEADLINE_NS: u64 = 1_000_000_000;
/// Rounds of one back end per [`Disks::serve`] (each at most a ring's worth of requests).
const ROUNDS: u32 = 4;

/// Persistent grants each back end keeps mapped (Linux keeps up to 1056 a ring), shared by
/// its queues.
const PERSISTENT_GRANTS_PER_DEVICE: usize = 64;

/// Queues each back end offers (`multi-queue-max-queues`). Two: enough for a front end to
/// spread its requests and for each queue's rules to be exercised, while every queue costs a
/// domain-0 port of the domain's table (16 in all, shared with xenstored, the console and
/// the vifs) and its ring's mappings. hv serves every ring synchronously on one CPU, so more
/// queues would add no parallelism. Stock Xen's dom0 is given the same offer
/// (`xen_blkback.max_queues=2`), so both give identical answers.
const QUEUES_PER_DEVICE: u32 = 2;

/// Domain 0's ports of one back end's queues: [`QUEUES_PER_DEVICE`] [`DomEvents`], each
/// binding its own port, taken in turn as the back end binds its queues.
struct QueueEvents {
    queues: Vec<DomEvents>,
    /// The local port each queue's events bound, if bound.
    bound: Vec<Option<xenbus::Port>>,
}

impl xenbus::Notify for QueueEvents {
    fn notify(&mut self, port: xenbus::Port) -> Result<(), xenbus::NotifyError> {
        let at = self.bound.iter().position(|b| *b == Some(port));
        match at.and_then(|i| self.queues.get_mut(i)) {
            Some(q) => q.notify(port),
            None => Err(xenbus::NotifyError {
                port,
                errno: -abi::errno::XEN_EINVAL,
            }),
        }
    }
}

impl xenbus::backend::InterdomainEvents for QueueEvents {
    fn bind_interdomain(
        &mut self,
        remote: xenbus::DomId,
        remote_port: xenbus::Port,
    ) -> Result<xenbus::Port, xenbus::NotifyError> {
        let free = self.bound.iter().position(Option::is_none);
        let Some((q, b)) = free.and_then(|i| self.queues.get_mut(i).zip(self.bound.get_mut(i)))
        else {
            return Err(xenbus::NotifyError {
                port: remote_port,
                errno: -abi::errno::XEN_ENOSPC,
            });
        };
        let port = q.bind_interdomain(remote, remote_port)?;
        *b = Some(port);
        Ok(port)
    }

    fn unbind(&mut self, port: xenbus::Port) {
        for (q, b) in self.queues.iter_mut().zip(self.bound.iter_mut()) {
            if *b == Some(port) {
                q.unbind(port);
                *b = None;
            }
        }
    }
}

/// The disks the host stalled (`stall-disk` on hv's control lines), by domain and `vdev`:
/// their back ends leave their rings alone until the host lets them go.
static STALLED: spin::Mutex<Vec<(u16, String)>> = spin::Mutex::new(Vec::new());

/// Whether [`STALLED`] has any (the check after every exit takes no lock).
static ANY_STALLED: AtomicBool = AtomicBool::new(false);

/// Stalls (or lets go) the back end of domain `domid`'s disk `vdev`.
pub fn set_stalled(domid: u16, vdev: &str, on: bool) {
    let mut s = STALLED.lock();
    s.retain(|(d, v)| !(*d == domid && v == vdev));
    if on {
        s.push((domid, String::from(vdev)));
    }
    ANY_STALLED.store(!s.is_empty(), Ordering::Release);
}

/// Whether the back end of domain `domid`'s disk `vdev` is stalled.
fn stalled(domid: u16, vdev: &str) -> bool {
    ANY_STALLED.load(Ordering::Acquire)
        && STALLED.lock().iter().any(|(d, v)| *d == domid && v == vdev)
}

/// A virtio-blk device shared between the table and the back end using it.
#[derive(Clone)]
struct SharedDisk(Rc<RefCell<VirtioDisk>>);

impl BlockDevice for SharedDisk {
    fn sectors(&self) -> u64 {
        self.0.borrow().sectors()
    }
    fn read_only(&self) -> bool {
        self.0.borrow().read_only()
    }
    fn write_cache(&self) -> bool {
        self.0.borrow().write_cache()
    }
    fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), DiskError> {
        self.0.borrow_mut().read(sector, buf)
    }
    fn write(&mut self, sector: u64, data: &[u8]) -> Result<(), DiskError> {
        self.0.borrow_mut().write(sector, data)
    }
    fn flush(&mut self) -> Result<(), DiskError> {
        self.0.borrow_mut().flush()
    }
}

/// One vbd served.
struct Instance {
    domid: u16,
    plan: DiskPlan,
    token: String,
    lease: Lease,
    back: Blkback<SharedDisk, DomGrants, QueueEvents>,
    /// Exits of the domain after which this back end found requests.
    busy_exits: u64,
    /// The device's flush count as last printed.
    flushes: FlushWatch,
}

/// One `disk` entry of a config, as hv needs it.
#[derive(Clone, Debug)]
pub struct DiskEntry {
    /// The vdev name.
    pub vdev: String,
    /// `access=ro`.
    pub read_only: bool,
    /// The target as the config names it (the back end's `params`).
    pub target: String,
}

impl DiskEntry {
    /// A config's `disk` entries, in its order.
    pub fn list_of(c: &xlcfg::Config) -> Vec<Self> {
        c.disks
            .iter()
            .map(|d| Self {
                vdev: d.vdev.clone(),
                read_only: d.access == xlcfg::disk::Access::ReadOnly,
                target: d.target.clone().unwrap_or_default(),
            })
            .collect()
    }
}

/// The disks: the devices found, their pairing with the configs' disks, the back ends.
#[derive(Default)]
pub struct Disks {
    devices: Vec<Rc<RefCell<VirtioDisk>>>,
    targets: Vec<String>,
    plans: Vec<DiskPlan>,
    instances: Vec<Instance>,
}

impl Disks {
    /// The devices found on the bus, in scan order.
    pub fn new(devices: Vec<VirtioDisk>) -> Self {
        Self {
            devices: devices
                .into_iter()
                .map(|d| Rc::new(RefCell::new(d)))
                .collect(),
            ..Self::default()
        }
    }

    /// Pairs the configs' disks (per spec, in config order) with the devices; a config
    /// whose disks cannot be paired stops hv (its domain would find none), saying why.
    pub fn plan(&mut self, disks: &[Vec<DiskEntry>]) -> Result<(), crate::dom0::blk::PairError> {
        let lists: Vec<Vec<(String, bool)>> = disks
            .iter()
            .map(|l| l.iter().map(|d| (d.vdev.clone(), d.read_only)).collect())
            .collect();
        self.plans = pair(&lists, self.devices.len())?;
        self.targets = disks.iter().flatten().map(|d| d.target.clone()).collect();
        for p in &self.plans {
            let at = self
                .devices
                .get(p.device)
                .map(|d| format!("{}", d.borrow().location))
                .unwrap_or_default();
            hvlog!(
                "disk {} ({}, {}) of config {} on virtio-blk {at}",
                p.vdev,
                p.devid,
                if p.read_only { "ro" } else { "rw" },
                p.spec
            );
        }
        if self.devices.len() > self.plans.len() {
            hvlog!(
                "{} virtio-blk device(s) beyond the configs' disks left unused",
                self.devices.len() - self.plans.len()
            );
        }
        Ok(())
    }

    /// Pairs the disks of spec `spec`, a domain created at run time, with spare devices
    /// (ones no other spec's disk uses); nothing is taken if one cannot be had.
    pub fn add_spec(&mut self, spec: usize, disks: &[DiskEntry]) -> Result<(), String> {
        let list: Vec<(String, bool)> = disks
            .iter()
            .map(|d| (d.vdev.clone(), d.read_only))
            .collect();
        let new =
            pair_spare(&self.plans, spec, &list, self.devices.len()).map_err(|e| format!("{e}"))?;
        if self.targets.len() < self.devices.len() {
            self.targets.resize(self.devices.len(), String::new());
        }
        for (p, d) in new.iter().zip(disks) {
            if let Some(t) = self.targets.get_mut(p.device) {
                t.clone_from(&d.target);
            }
            let at = self
                .devices
                .get(p.device)
                .map(|d| format!("{}", d.borrow().location))
                .unwrap_or_default();
            hvlog!(
                "disk {} ({}, {}) of config {spec} (created at run time) on virtio-blk {at}",
                p.vdev,
                p.devid,
                if p.read_only { "ro" } else { "rw" },
            );
        }
        self.plans.extend(new);
        Ok(())
    }

    /// Whether disks `(vdev, read_only)` of a domain to create find spare devices; why not.
    pub fn check_spare(&self, disks: &[(String, bool)]) -> Result<(), String> {
        pair_spare(&self.plans, usize::MAX, disks, self.devices.len())
            .map(|_| ())
            .map_err(|e| format!("{e}"))
    }

    /// Spec `spec` will build no more domains: its devices are spare again.
    pub fn release_spec(&mut self, spec: usize) {
        self.plans.retain(|p| p.spec != spec);
    }

    /// Domain `domid` was built from spec `spec`: its vbds' keys are written as the
    /// toolstack writes them, and a back end probes each (InitWait).
    pub fn attach(
        &mut self,
        store: &mut Store,
        events: &mut Dom0Events,
        spec: usize,
        domid: u16,
        now: Instant,
    ) {
        let mine: Vec<DiskPlan> = self
            .plans
            .iter()
            .filter(|p| p.spec == spec)
            .cloned()
            .collect();
        for (n, plan) in mine.into_iter().enumerate() {
            let Some(device) = self.devices.get(plan.device).cloned() else {
                continue;
            };
            let params = self.targets.get(plan.device).cloned().unwrap_or_default();
            let info = VbdInfo {
                domid,
                devid: plan.devid,
                vdev: &plan.vdev,
                params: &params,
                read_only: plan.read_only,
            };
            if let Err(e) = write_vbd(store, &info) {
                hvlog!("d{domid}: vbd {} keys: {e}", plan.vdev);
                continue;
            }
            let path = vbd_backend(domid, plan.devid);
            let token = format!("xb-be-other:{path}");
            let lease = lease();
            let grants = DomGrants::new(lease.clone(), domid);
            // Disk `n`'s queues bind ports `n * QUEUES_PER_DEVICE ..` past the base (the
            // disks' 32 ports hold 16 disks).
            let queues = (0..QUEUES_PER_DEVICE)
                .map(|q| {
                    DomEvents::new(
                        lease.clone(),
                        domid,
                        Service::Blkback(plan.devid),
                        DOM0_BACKEND_PORT_BASE + n as u32 * QUEUES_PER_DEVICE + q,
                    )
                })
                .collect();
            let channel = QueueEvents {
                queues,
                bound: alloc::vec![None; QUEUES_PER_DEVICE as usize],
            };
            let deadline = Instant::from_nanos(now.as_nanos().saturating_add(XS_DEADLINE_NS));
            let mut xs = XsClient::new(Dom0Link::new(store, events, &token, now));
            // Linux's features, with fewer persistent grants kept: domain 0 holds at most
            // `MAX_MAPTRACK` mappings for every device and guest together.
            let features = blkback::Features {
                max_persistent_grants: PERSISTENT_GRANTS_PER_DEVICE / QUEUES_PER_DEVICE as usize,
                max_queues: QUEUES_PER_DEVICE,
                ..Default::default()
            };
            let (disk, d) = (SharedDisk(device), deadline);
            match Blkback::probe_with(&mut xs, path, disk, grants, channel, features, d) {
                Ok(back) => self.instances.push(Instance {
                    domid,
                    plan,
                    token,
                    lease,
                    back,
                    busy_exits: 0,
                    flushes: FlushWatch::default(),
                }),
                Err(e) => hvlog!("d{domid}: blkback for {}: {e:?}", plan.vdev),
            }
        }
    }

    /// Runs the back ends of the domain in `slot` (lent to them for the round).
    pub fn serve(
        &mut self,
        store: &mut Store,
        events: &mut Dom0Events,
        slot: &mut Option<Box<Domain>>,
        now: Instant,
    ) {
        let Some(domid) = slot.as_ref().map(|d| d.domid()) else {
            return;
        };
        let deadline = Instant::from_nanos(now.as_nanos().saturating_add(XS_DEADLINE_NS));
        for inst in self.instances.iter_mut().filter(|i| i.domid == domid) {
            if stalled(domid, &inst.plan.vdev) {
                continue;
            }
            *inst.lease.borrow_mut() = slot.take();
            let before = inst.back.stats().requests;
            for _ in 0..ROUNDS {
                let mut xs = XsClient::new(Dom0Link::new(store, events, &inst.token, now));
                match inst.back.poll(&mut xs, deadline) {
                    Ok(true) => continue,
                    Ok(false) => break,
                    Err(e) => {
                        hvlog!("d{domid}: blkback {}: {e:?}", inst.plan.vdev);
                        break;
                    }
                }
            }
            *slot = inst.lease.borrow_mut().take();
            if inst.back.stats().requests != before {
                inst.busy_exits += 1;
                // The front end is using the disk: has it changed size meanwhile? (blkback
                // announces a new size on its next poll.)
                let resized = inst.back.device().0.borrow_mut().check_resize();
                if let Some((old, new)) = resized {
                    hvlog!(
                        "d{domid}: blkback {}: virtio-blk resized from {old} to {new} sectors",
                        inst.plan.vdev
                    );
                }
            }
            // Before the front end can see the answers of this round: a line a harness
            // reads even if the machine is killed right after the guest acknowledges.
            let device = inst.back.device().0.borrow().flushes;
            if let Some(n) = inst.flushes.update(device) {
                hvlog!("{}", flush_line(domid, &inst.plan.vdev, n));
            }
        }
    }

    /// Domain `domid` goes: its back ends are dropped (their mappings die with the domain)
    /// after printing what they did, and their back-end keys removed.
    pub fn detach(&mut self, store: &mut Store, domid: u16) {
        let (gone, kept): (Vec<Instance>, Vec<Instance>) = core::mem::take(&mut self.instances)
            .into_iter()
            .partition(|i| i.domid == domid);
        self.instances = kept;
        let mut stalled = STALLED.lock();
        stalled.retain(|(d, _)| *d != domid);
        ANY_STALLED.store(!stalled.is_empty(), Ordering::Release);
        drop(stalled);
        for inst in gone {
            let s = inst.back.stats();
            let (device, device_flushes, device_resizes) = {
                let d = inst.back.device().0.borrow();
                (d.requests, d.flushes, d.resizes)
            };
            hvlog!(
                "d{domid}: blkback {}: {} requests ({} reads, {} writes, {} flushes; {} sectors \
                 read, {} written), {} errors, {} unsupported, {} notifications sent, {} \
                 connects ({} queues of {} pages, requests by queue {:?}), {} resizes \
                 announced; {} virtio-blk requests ({} flushes, {} resizes); requests found \
                 after {} exits",
                inst.plan.vdev,
                s.requests,
                s.reads,
                s.writes,
                s.flushes,
                s.read_sectors,
                s.written_sectors,
                s.errors,
                s.unsupported,
                s.notifications,
                s.connects,
                s.queues,
                s.ring_pages,
                s.queue_requests,
                s.resizes,
                device,
                device_flushes,
                device_resizes,
                inst.busy_exits
            );
            if let Err(e) = remove_vbd(store, domid, inst.plan.devid) {
                hvlog!("d{domid}: removing vbd {}: {e}", inst.plan.vdev);
            }
        }
    }
}
