//! One process, several domains: domain 0 runs netback devices over the shared fake
//! xenstored; each guest has its own xenstore connection, memory and grant table. A guest
//! waiting (on xenstore or on its port) lets domain 0 take a step; when nothing happens, time
//! moves on. Frames a device hands out collect in its outbox.

use crate::device::Netback;
use netfront::{Config, Netfront};
use std::cell::RefCell;
use std::format;
use std::rc::Rc;
use std::string::{String, ToString};
use std::vec::Vec;
use xenbus::testing::{
    FakeEvents, FakeGrantMapper, HostMemory, SharedGrantTable, SharedXenstored, XenstoredConn,
};
use xenbus::xenstore::{Access, Perm, XsClient};
use xenbus::{DomId, Instant, Platform};

pub type Dev = Netback<FakeGrantMapper, FakeEvents>;
pub type Front = Netfront<HostMemory, SharedGrantTable, FakeEvents>;

/// Domain 0's side: its xenstore client, its devices and the frames each handed out.
pub struct Dom0 {
    pub xs: XsClient<XenstoredConn>,
    pub devices: Vec<Dev>,
    pub outbox: Vec<Vec<Vec<u8>>>,
}

#[derive(Clone)]
pub struct Rig {
    pub hub: SharedXenstored,
    pub dom0: Rc<RefCell<Dom0>>,
}

/// A guest with one vif.
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

/// The MAC the toolstack gives vif `devid` of `domid`.
pub fn mac_of(domid: u16, devid: u32) -> String {
    format!("00:16:3e:00:{:02x}:{:02x}", domid & 0xff, devid & 0xff)
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
                outbox: Vec::new(),
            })),
        }
    }

    /// One round of domain 0: every device polled. Returns whether anything changed.
    pub fn step(&self) -> bool {
        let deadline = self.hub.now().add_millis(1_000);
        let mut dom0 = self.dom0.borrow_mut();
        let Dom0 {
            xs,
            devices,
            outbox,
        } = &mut *dom0;
        let mut changed = false;
        for (dev, out) in devices.iter_mut().zip(outbox.iter_mut()) {
            let before = (dev.stats(), dev.xenbus().state(), dev.is_removed());
            // Errors are xenstore failures, which the shared fake does not produce.
            let _ = dev.poll(xs, &mut |frame| out.push(frame.to_vec()), deadline);
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

    /// What libxl writes for vif `devid` of domain `domid` served by domain 0: the front-end
    /// directory (`backend`, `backend-id`, `state` Initialising, `handle`, `mac`), owned by
    /// the guest and readable by domain 0, and the backend directory (`frontend`,
    /// `frontend-id`, `online`, `state` Initialising, `mac`, `handle`, `type`), owned by
    /// domain 0 and readable by the guest. Returns both paths.
    pub fn add_vif(&self, domid: u16, devid: u32) -> (String, String) {
        let front = format!("/local/domain/{domid}/device/vif/{devid}");
        let back = format!("/local/domain/0/backend/vif/{domid}/{devid}");
        let guest_owns = std::vec![
            Perm {
                domid,
                access: Access::None,
            },
            Perm {
                domid: 0,
                access: Access::Read,
            },
        ];
        let dom0_owns = std::vec![
            Perm {
                domid: 0,
                access: Access::None,
            },
            Perm {
                domid,
                access: Access::Read,
            },
        ];
        let mac = mac_of(domid, devid);
        let handle = devid.to_string();
        let domid_text = domid.to_string();
        let front_keys = [
            ("backend", back.as_str()),
            ("backend-id", "0"),
            ("state", "1"),
            ("handle", handle.as_str()),
            ("mac", mac.as_str()),
        ];
        let back_keys = [
            ("frontend", front.as_str()),
            ("frontend-id", domid_text.as_str()),
            ("online", "1"),
            ("state", "1"),
            ("mac", mac.as_str()),
            ("handle", handle.as_str()),
            ("type", "vif"),
        ];
        self.hub.with_store(|s| {
            let mut set = |path: &str, value: &str, perms: &Vec<Perm>| {
                s.write(path, value.as_bytes())
                    .and_then(|()| s.set_perms(path, perms.clone()))
                    .unwrap_or_else(|e| panic!("shared xenstored: {path}: {}", e.name()));
            };
            set(&front, "", &guest_owns);
            for (key, value) in front_keys {
                set(&format!("{front}/{key}"), value, &guest_owns);
            }
            set(&back, "", &dom0_owns);
            for (key, value) in back_keys {
                set(&format!("{back}/{key}"), value, &dom0_owns);
            }
        });
        (front, back)
    }

    /// The toolstack adds vif `devid` of guest `domid`; domain 0 probes it (InitWait).
    pub fn add_guest(&self, domid: u16, devid: u32) -> Guest {
        let (front, back) = self.add_vif(domid, devid);
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
            let dev = Netback::probe(&mut dom0.xs, back.clone(), mapper, FakeEvents::new(), far())
                .unwrap();
            dom0.devices.push(dev);
            dom0.outbox.push(Vec::new());
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

    /// netfront connects the guest's vif (every offload it offers) with one queue and one
    /// event channel, the shape most tests look at ring by ring; [`Self::connect_with`]
    /// with `Config::default()` uses split channels and every queue offered.
    pub fn connect(&self, guest: &mut Guest) -> Front {
        let mut config = Config::default();
        config.offloads.split = false;
        config.offloads.multi_queue = false;
        self.connect_with(guest, config)
    }

    /// netfront connects the guest's vif with `config`.
    pub fn connect_with(&self, guest: &mut Guest, config: Config) -> Front {
        let platform = self.platform(guest);
        Netfront::connect(&mut guest.xs, guest.devid, config, platform, far()).unwrap()
    }

    /// Runs `f` on the guest's device in domain 0.
    pub fn dev<R>(&self, guest: &Guest, f: impl FnOnce(&mut Dev) -> R) -> R {
        f(&mut self.dom0.borrow_mut().devices[guest.dev])
    }

    /// Takes the frames the guest's device handed out so far.
    pub fn sent(&self, guest: &Guest) -> Vec<Vec<u8>> {
        core::mem::take(&mut self.dom0.borrow_mut().outbox[guest.dev])
    }

    /// Domain 0 delivers `frames` to the guest's device (at time 0), then flushes once.
    pub fn deliver(
        &self,
        guest: &Guest,
        frames: &[Vec<u8>],
    ) -> Vec<Result<crate::Delivered, crate::DeliverError>> {
        self.deliver_at(guest, frames, Instant::from_nanos(0))
    }

    /// [`Rig::deliver`] at `now`.
    pub fn deliver_at(
        &self,
        guest: &Guest,
        frames: &[Vec<u8>],
        now: Instant,
    ) -> Vec<Result<crate::Delivered, crate::DeliverError>> {
        self.dev(guest, |d| {
            let results = frames.iter().map(|f| d.deliver(f, now)).collect();
            d.flush_rx();
            results
        })
    }

    /// Domain 0 copies what waited for the guest's buffers (at `now`), then flushes once;
    /// how many were copied.
    pub fn drain(&self, guest: &Guest, now: Instant) -> usize {
        self.dev(guest, |d| {
            let n = d.drain_rx(now);
            d.flush_rx();
            n
        })
    }

    /// A key of the guest's backend directory.
    pub fn back_key(&self, guest: &Guest, key: &str) -> Option<String> {
        self.hub.read(&format!("{}/{key}", guest.back))
    }

    /// A key of the guest's front-end directory.
    pub fn front_key(&self, guest: &Guest, key: &str) -> Option<String> {
        self.hub.read(&format!("{}/{key}", guest.front))
    }
}

/// An Ethernet frame of `len` bytes numbered `n` from `src` (its bytes say where they belong).
pub fn frame(n: u8, len: usize) -> Vec<u8> {
    let mut f: Vec<u8> = (0..len).map(|i| n ^ (i as u8).wrapping_mul(7)).collect();
    if len >= 14 {
        // Broadcast destination, a local source, an experimental ethertype.
        f[..6].copy_from_slice(&[0xff; 6]);
        f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, n]);
        f[12..14].copy_from_slice(&[0x88, 0xb5]);
    }
    f
}
