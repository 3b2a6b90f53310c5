//! One process, several domains: domain 0 runs blkback devices over the shared fake xenstored;
//! each guest has its own xenstore connection, memory and grant table. A guest waiting (on
//! xenstore or on its port) lets domain 0 take a step; when nothing happens, time moves on.

use super::disk::MemDisk;
use crate::device::{Blkback, Features};
use blkfront::Blkfront;
use std::cell::RefCell;
use std::format;
use std::rc::Rc;
use std::string::String;
use std::vec::Vec;
use xenbus::testing::{
    FakeEvents, FakeGrantMapper, HostMemory, SharedGrantTable, SharedXenstored, XenstoredConn,
};
use xenbus::xenstore::XsClient;
use xenbus::{DomId, Instant, Platform};

pub type Dev = Blkback<MemDisk, FakeGrantMapper, FakeEvents>;
pub type Front = Blkfront<HostMemory, SharedGrantTable, FakeEvents>;

/// Domain 0's side: its xenstore client and its devices.
pub struct Dom0 {
    pub xs: XsClient<XenstoredConn>,
    pub devices: Vec<Dev>,
}

#[derive(Clone)]
pub struct Rig {
    pub hub: SharedXenstored,
    pub dom0: Rc<RefCell<Dom0>>,
}

/// A guest with one vbd.
pub struct Guest {
    pub devid: u32,
    pub xs: XsClient<XenstoredConn>,
    pub memory: HostMemory,
    pub grants: SharedGrantTable,
    pub front: String,
    pub back: String,
    /// The index of its device in `Dom0::devices`.
    pub dev: usize,
}

pub fn far() -> Instant {
    Instant::from_nanos(1_000_000_000_000)
}

impl Rig {
    pub fn new() -> Self {
        let hub = SharedXenstored::new();
        let xs = XsClient::new(hub.connect(0));
        Self {
            hub,
            dom0: Rc::new(RefCell::new(Dom0 {
                xs,
                devices: Vec::new(),
            })),
        }
    }

    /// One round of domain 0: every device polled. Returns whether anything changed.
    pub fn step(&self) -> bool {
        let deadline = self.hub.now().add_millis(1_000);
        let mut dom0 = self.dom0.borrow_mut();
        let Dom0 { xs, devices } = &mut *dom0;
        let mut changed = false;
        for dev in devices.iter_mut() {
            let before = (dev.stats(), dev.xenbus().state(), dev.is_removed());
            // Errors are xenstore failures, which the shared fake does not produce.
            let _ = dev.poll(xs, deadline);
            changed |= before != (dev.stats(), dev.xenbus().state(), dev.is_removed());
        }
        changed
    }

    /// Steps until nothing changes (bounded).
    pub fn settle(&self) {
        for _ in 0..1_000 {
            if !self.step() {
                return;
            }
        }
        panic!("domain 0 never settles");
    }

    /// The toolstack adds vbd `devid` of guest `domid` with `disk` (`mode` `w` or `r`);
    /// domain 0 probes it (InitWait) offering no optional feature (the plain protocol).
    pub fn add_guest(&self, domid: u16, devid: u32, disk: MemDisk, mode: &str) -> Guest {
        self.add_guest_with(domid, devid, disk, mode, Features::NONE)
    }

    /// [`Rig::add_guest`] with blkback offering `features`.
    pub fn add_guest_with(
        &self,
        domid: u16,
        devid: u32,
        disk: MemDisk,
        mode: &str,
        features: Features,
    ) -> Guest {
        let (front, back) = self.hub.add_vbd(domid, devid, mode);
        let memory = HostMemory::new();
        let grants = SharedGrantTable::new(1, 4);
        let mut mapper = FakeGrantMapper::new(DomId::ZERO);
        mapper.add_domain(
            DomId::try_new(u32::from(domid)).unwrap(),
            memory.clone(),
            grants.clone(),
        );
        let dev = {
            let mut dom0 = self.dom0.borrow_mut();
            let dev = Blkback::probe_with(
                &mut dom0.xs,
                back.clone(),
                disk,
                mapper,
                FakeEvents::new(),
                features,
                far(),
            )
            .unwrap();
            dom0.devices.push(dev);
            dom0.devices.len() - 1
        };
        let mut conn = self.hub.connect(domid);
        let rig = self.clone();
        conn.on_wait = Some(std::boxed::Box::new(move || rig.step()));
        Guest {
            devid,
            xs: XsClient::new(conn),
            memory,
            grants,
            front,
            back,
            dev,
        }
    }

    /// The guest's platform for a front end: its memory and grants, event channels whose
    /// waits let domain 0 run.
    pub fn platform(&self, guest: &Guest) -> Platform<HostMemory, SharedGrantTable, FakeEvents> {
        let mut events = FakeEvents::new();
        let rig = self.clone();
        events.on_wait = Some(std::boxed::Box::new(move |_, _| {
            let changed = rig.step();
            if !changed {
                rig.hub.advance(1_000_000);
            }
            changed
        }));
        Platform {
            pages: guest.memory.clone(),
            grants: guest.grants.clone(),
            events,
        }
    }

    /// blkfront connects the guest's vbd.
    pub fn connect(&self, guest: &mut Guest) -> Front {
        let platform = self.platform(guest);
        Blkfront::connect(&mut guest.xs, guest.devid, platform, far()).unwrap()
    }

    /// blkfront connects the guest's vbd using only `features`.
    pub fn connect_with(&self, guest: &mut Guest, features: blkfront::Features) -> Front {
        let platform = self.platform(guest);
        Blkfront::connect_with(&mut guest.xs, guest.devid, platform, features, far()).unwrap()
    }

    /// Runs `f` on the guest's device in domain 0.
    pub fn dev<R>(&self, guest: &Guest, f: impl FnOnce(&mut Dev) -> R) -> R {
        f(&mut self.dom0.borrow_mut().devices[guest.dev])
    }

    /// A key of the guest's backend directory.
    pub fn back_key(&self, guest: &Guest, key: &str) -> Option<String> {
        self.hub.read(&format!("{}/{key}", guest.back))
    }
}
