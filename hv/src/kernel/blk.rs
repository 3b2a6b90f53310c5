//! Domain 0's block back ends inside hv: one [`blkback::Blkback`] per `disk` entry of a
//! domain's config, on the virtio-blk device paired with it ([`crate::dom0::blk::pair`]),
//! reaching the domU only through its grants and its event channel.
//!
//! The machine runs [`Disks::serve`] after every exit of a domain with disks: the back ends
//! follow their front ends' states (their watch events come through [`Dom0Link`]) and serve
//! their rings synchronously on the device, then notify. An event the front end sends
//! arrives as an exit (its `EVTCHNOP_send`), so nothing is missed; no device interrupt is
//! needed, as each device request is finished before `serve` returns.
//!
//! A back end reaches its domain through a lease: the machine hands the domain (out of its
//! table) to the back end's grant mapper and event channels for the round, and takes it
//! back afterwards.

use alloc::boxed::Box;
use alloc::format;
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::RefCell;

use abi::page::AtomicPage;
use blkback::{Blkback, BlockDevice, DiskError};
use xenbus::backend::{GrantMapError, GrantMapper, InterdomainEvents, MappedPage};
use xenbus::xenstore::XsClient;
use xenbus::{DomId, GrantRef, Instant, Notify, NotifyError, Port};
use xenstored::Store;

use crate::dom0::blk::{DiskPlan, Dom0Events, Dom0Link, FlushWatch, flush_line, pair};
use crate::dom0::ports::Service;
use crate::dom0::toolstack::{VbdInfo, remove_vbd, vbd_backend, write_vbd};
use crate::hvlog;

use super::domain::{DOM0_BACKEND_PORT_BASE, Domain};
use super::virtio::VirtioDisk;

/// How long a back end's xenstore operation may take (they are answered at once).
const XS_DEADLINE_NS: u64 = 1_000_000_000;
/// Rounds of one back end per [`Disks::serve`] (each at most a ring's worth of requests).
const ROUNDS: u32 = 4;

/// Persistent grants each back end keeps mapped (Linux keeps up to 1056 a ring).
const PERSISTENT_GRANTS_PER_DEVICE: usize = 64;

/// The domain a back end may reach this round, if the machine lent it.
type Lease = Rc<RefCell<Option<Box<Domain>>>>;

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

/// Domain 0's mappings of the leased domain's grants.
struct DomGrants {
    lease: Lease,
    domid: u16,
}

fn map_error(status: i16) -> GrantMapError {
    use abi::grant_table as g;
    match status {
        g::GNTST_BAD_GNTREF => GrantMapError::BadRef,
        g::GNTST_PERMISSION_DENIED => GrantMapError::PermissionDenied,
        g::GNTST_BAD_PAGE => GrantMapError::BadPage,
        g::GNTST_BAD_DOMAIN => GrantMapError::BadDomain,
        g::GNTST_NO_DEVICE_SPACE => GrantMapError::NoSpace,
        other => GrantMapError::Other(other),
    }
}

impl GrantMapper for DomGrants {
    fn map(
        &mut self,
        domid: DomId,
        gref: GrantRef,
        writable: bool,
    ) -> Result<MappedPage, GrantMapError> {
        if domid.get() != self.domid {
            return Err(GrantMapError::BadDomain);
        }
        let mut lease = self.lease.borrow_mut();
        let dom = lease.as_mut().ok_or(GrantMapError::BadDomain)?;
        let (hpa, handle) = dom.backend_map(gref.get(), writable).map_err(map_error)?;
        // SAFETY: `hpa` is a page-aligned page of the domain's RAM inside hv's identity map
        // (backend_map checked both), valid memory for the rest of hv's run (a torn-down
        // domain's frames go back to the allocator but stay RAM). `AtomicPage` is 4096
        // atomic bytes with alignment 1, so any byte the domain writes meanwhile is a valid
        // value, and hv's accesses are atomic: no data race with the guest's.
        let page: &'static AtomicPage = unsafe { &*(hpa as *const AtomicPage) };
        Ok(MappedPage::new(page, handle, domid, gref, writable))
    }

    fn unmap(&mut self, page: MappedPage) {
        if let Some(dom) = self.lease.borrow_mut().as_mut()
            && let Err(status) = dom.backend_unmap(page.handle())
        {
            hvlog!(
                "d{}: unmapping grant {}: status {status}",
                self.domid,
                page.gref()
            );
        }
    }
}

/// Domain 0's ends of the leased domain's event channels.
struct DomEvents {
    lease: Lease,
    domid: u16,
    devid: u32,
    /// The dom0 port this back end binds.
    dom0_port: u32,
    /// `(dom0 port, the domain's port)` while bound.
    bound: Option<(u32, u32)>,
    /// Notifications sent.
    sent: u64,
}

impl Notify for DomEvents {
    fn notify(&mut self, port: Port) -> Result<(), NotifyError> {
        let einval = NotifyError {
            port,
            errno: -abi::errno::XEN_EINVAL,
        };
        let (_, remote) = self.bound.filter(|(p, _)| *p == port.get()).ok_or(einval)?;
        let mut lease = self.lease.borrow_mut();
        let dom = lease.as_mut().ok_or(einval)?;
        dom.backend_notify(remote);
        self.sent += 1;
        Ok(())
    }
}

impl InterdomainEvents for DomEvents {
    fn bind_interdomain(&mut self, remote: DomId, remote_port: Port) -> Result<Port, NotifyError> {
        let fail = |errno| NotifyError {
            port: remote_port,
            errno,
        };
        let local = Port::try_new(self.dom0_port).map_err(|_| fail(-abi::errno::XEN_EINVAL))?;
        if remote.get() != self.domid {
            return Err(fail(-abi::errno::XEN_ESRCH));
        }
        if let Some((p, _)) = self.bound.take()
            && let Some(dom) = self.lease.borrow_mut().as_mut()
        {
            dom.backend_unbind(p);
        }
        let mut lease = self.lease.borrow_mut();
        let dom = lease.as_mut().ok_or(fail(-abi::errno::XEN_ESRCH))?;
        dom.backend_bind(
            remote_port.get(),
            self.dom0_port,
            Service::Blkback(self.devid),
        )
        .map_err(fail)?;
        self.bound = Some((self.dom0_port, remote_port.get()));
        Ok(local)
    }

    fn unbind(&mut self, port: Port) {
        if self.bound.is_some_and(|(p, _)| p == port.get()) {
            self.bound = None;
            if let Some(dom) = self.lease.borrow_mut().as_mut() {
                dom.backend_unbind(port.get());
            }
        }
    }
}

/// One vbd served.
struct Instance {
    domid: u16,
    plan: DiskPlan,
    token: String,
    lease: Lease,
    back: Blkback<SharedDisk, DomGrants, DomEvents>,
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

/// The disks: the devices found, their pairing with the configs' disks, the back ends.
#[derive(Default)]
pub struct Disks {
    devices: Vec<Rc<RefCell<VirtioDisk>>>,
    targets: Vec<String>,
    plans: Vec<DiskPlan>,
    instances: Vec<Instance>,
    events: Dom0Events,
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

    /// Domain `domid` was built from spec `spec`: its vbds' keys are written as the
    /// toolstack writes them, and a back end probes each (InitWait).
    pub fn attach(&mut self, store: &mut Store, spec: usize, domid: u16, now: Instant) {
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
            let lease: Lease = Rc::new(RefCell::new(None));
            let grants = DomGrants {
                lease: lease.clone(),
                domid,
            };
            let events = DomEvents {
                lease: lease.clone(),
                domid,
                devid: plan.devid,
                dom0_port: DOM0_BACKEND_PORT_BASE + n as u32,
                bound: None,
                sent: 0,
            };
            let deadline = Instant::from_nanos(now.as_nanos().saturating_add(XS_DEADLINE_NS));
            let mut xs = XsClient::new(Dom0Link::new(store, &mut self.events, &token, now));
            // Linux's features, with fewer persistent grants kept: domain 0 holds at most
            // `MAX_MAPTRACK` mappings for every device and guest together.
            let features = blkback::Features {
                max_persistent_grants: PERSISTENT_GRANTS_PER_DEVICE,
                ..Default::default()
            };
            let (disk, d) = (SharedDisk(device), deadline);
            match Blkback::probe_with(&mut xs, path, disk, grants, events, features, d) {
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
    pub fn serve(&mut self, store: &mut Store, slot: &mut Option<Box<Domain>>, now: Instant) {
        let Some(domid) = slot.as_ref().map(|d| d.domid()) else {
            return;
        };
        let deadline = Instant::from_nanos(now.as_nanos().saturating_add(XS_DEADLINE_NS));
        for inst in self.instances.iter_mut().filter(|i| i.domid == domid) {
            *inst.lease.borrow_mut() = slot.take();
            let before = inst.back.stats().requests;
            for _ in 0..ROUNDS {
                let mut xs =
                    XsClient::new(Dom0Link::new(store, &mut self.events, &inst.token, now));
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
        for inst in gone {
            let s = inst.back.stats();
            let (device, device_flushes) = {
                let d = inst.back.device().0.borrow();
                (d.requests, d.flushes)
            };
            hvlog!(
                "d{domid}: blkback {}: {} requests ({} reads, {} writes, {} flushes; {} sectors \
                 read, {} written), {} errors, {} unsupported, {} notifications sent, {} \
                 connects; {} virtio-blk requests ({} flushes); requests found after {} exits",
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
                device,
                device_flushes,
                inst.busy_exits
            );
            if let Err(e) = remove_vbd(store, domid, inst.plan.devid) {
                hvlog!("d{domid}: removing vbd {}: {e}", inst.plan.vdev);
            }
        }
    }
}
