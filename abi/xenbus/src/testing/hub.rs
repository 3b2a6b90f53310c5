//! One xenstored serving several domains at once (the `xenstored` crate, as `hv` runs it),
//! each domain through its own [`XenstoredConn`]: a backend in domain 0 and its front ends
//! can all run in one test process, each with its own [`crate::xenstore::XsClient`].
//!
//! Time is shared. A connection's `wait` first runs its `on_wait` hook (the test's stand-in
//! for the other domains running), then, if that produced nothing for it, moves time on by
//! `tick_nanos`, so a peer that never answers ends in a timeout rather than a hang.

use crate::time::Instant;
use crate::xenstore::{Access, Perm, TransportError, Wake, XsTransport};
use abi::io::xs_wire::{XS_ERROR, XS_WATCH_EVENT, XsdSockmsg};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

#[derive(Debug)]
struct Hub {
    store: xenstored::Store,
    now: Instant,
}

/// The daemon: one store, shared clock. Clones share them.
#[derive(Clone, Debug)]
pub struct SharedXenstored {
    hub: Rc<RefCell<Hub>>,
}

impl Default for SharedXenstored {
    fn default() -> Self {
        Self::new()
    }
}

/// What a connection's wait runs: returns whether anything happened.
pub type WaitHook = Box<dyn FnMut() -> bool>;

impl SharedXenstored {
    /// A store as C xenstored starts, domain 0 connected, time 0.
    pub fn new() -> Self {
        Self {
            hub: Rc::new(RefCell::new(Hub {
                store: xenstored::Store::new(),
                now: Instant::from_nanos(0),
            })),
        }
    }

    /// A connection for domain `domid` (introduced if new; its home created and owned by it,
    /// as the toolstack leaves it).
    pub fn connect(&self, domid: u16) -> XenstoredConn {
        {
            let mut hub = self.hub.borrow_mut();
            if domid != 0 && !hub.store.is_introduced(domid) {
                hub.store.introduce(domid);
                let home = xenstored::Store::home(domid);
                let owned = vec![Perm {
                    domid,
                    access: Access::None,
                }];
                hub.store
                    .write(&home, b"")
                    .and_then(|()| hub.store.set_perms(&home, owned))
                    .unwrap_or_else(|e| panic!("shared xenstored: home of {domid}: {}", e.name()));
            }
        }
        XenstoredConn {
            hub: self.hub.clone(),
            domid,
            from_client: Vec::new(),
            to_client: VecDeque::new(),
            on_wait: None,
            tick_nanos: 1_000_000,
        }
    }

    /// Runs `f` on the store (as domain 0, without a connection: the toolstack or a test).
    pub fn with_store<R>(&self, f: impl FnOnce(&mut xenstored::Store) -> R) -> R {
        f(&mut self.hub.borrow_mut().store)
    }

    /// The value at absolute `path`.
    pub fn read(&self, path: &str) -> Option<String> {
        self.with_store(|s| s.read(path))
            .map(|v| String::from_utf8_lossy(&v).into_owned())
    }

    /// Writes `value` at absolute `path` as domain 0; fires watches.
    ///
    /// # Panics
    /// If the store refuses (an invalid path): a test bug.
    pub fn write(&self, path: &str, value: &str) {
        self.with_store(|s| s.write(path, value.as_bytes()))
            .unwrap_or_else(|e| panic!("shared xenstored: writing {path}: {}", e.name()));
    }

    /// Removes absolute `path` and its subtree as domain 0; fires watches.
    pub fn remove(&self, path: &str) {
        // A missing node is already removed.
        let _ = self.with_store(|s| s.rm(path));
    }

    /// Now.
    pub fn now(&self) -> Instant {
        self.hub.borrow().now
    }

    /// Moves time on by `nanos`.
    pub fn advance(&self, nanos: u64) {
        let mut hub = self.hub.borrow_mut();
        hub.now = hub.now.add_nanos(nanos);
    }

    /// What libxl writes for vbd `devid` of domain `domid` served by domain 0: the front-end
    /// directory (`backend`, `backend-id`, `state` Initialising, `virtual-device`,
    /// `device-type`), owned by the guest and readable by domain 0, and the backend
    /// directory (`frontend`, `frontend-id`, `online`, `state` Initialising, `mode`, `type`,
    /// `device-type`), owned by domain 0 and readable by the guest. Returns both paths.
    pub fn add_vbd(&self, domid: u16, devid: u32, mode: &str) -> (String, String) {
        let front = format!("/local/domain/{domid}/device/vbd/{devid}");
        let back = format!("/local/domain/0/backend/vbd/{domid}/{devid}");
        let guest_owns = vec![
            Perm {
                domid,
                access: Access::None,
            },
            Perm {
                domid: 0,
                access: Access::Read,
            },
        ];
        let dom0_owns = vec![
            Perm {
                domid: 0,
                access: Access::None,
            },
            Perm {
                domid,
                access: Access::Read,
            },
        ];
        let devid_text = devid.to_string();
        let front_keys = [
            ("backend", back.as_str()),
            ("backend-id", "0"),
            ("state", "1"),
            ("virtual-device", devid_text.as_str()),
            ("device-type", "disk"),
        ];
        let domid_text = domid.to_string();
        let back_keys = [
            ("frontend", front.as_str()),
            ("frontend-id", domid_text.as_str()),
            ("online", "1"),
            ("state", "1"),
            ("mode", mode),
            ("type", "phy"),
            ("device-type", "disk"),
        ];
        self.with_store(|s| {
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
}

/// One domain's connection; implements [`XsTransport`].
pub struct XenstoredConn {
    hub: Rc<RefCell<Hub>>,
    domid: u16,
    from_client: Vec<u8>,
    to_client: VecDeque<u8>,
    /// Run by `wait` before time moves: the other domains take a step. Returns whether
    /// anything happened.
    pub on_wait: Option<WaitHook>,
    /// Time a `wait` that found nothing moves on.
    pub tick_nanos: u64,
}

impl core::fmt::Debug for XenstoredConn {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("XenstoredConn")
            .field("domid", &self.domid)
            .finish_non_exhaustive()
    }
}

impl XenstoredConn {
    /// The connection's domain.
    pub fn domid(&self) -> u16 {
        self.domid
    }

    fn message(&mut self, type_: u32, req_id: u32, tx_id: u32, payload: &[u8]) {
        super::xenstored::push_message(&mut self.to_client, type_, req_id, tx_id, payload);
    }

    fn pull_events(&mut self) {
        let events = self.hub.borrow_mut().store.take_events(self.domid);
        for e in events {
            let payload = format!("{}\0{}\0", e.path, e.token);
            self.message(XS_WATCH_EVENT, 0, 0, payload.as_bytes());
        }
    }

    fn process(&mut self) {
        while let Some(raw) = self.from_client.first_chunk::<16>() {
            let Ok(header) = XsdSockmsg::from_bytes(raw) else {
                panic!(
                    "shared xenstored: domain {} sent an oversize request",
                    self.domid
                );
            };
            let end = 16 + header.len as usize;
            if self.from_client.len() < end {
                return;
            }
            let payload: Vec<u8> = self.from_client[16..end].to_vec();
            self.from_client.drain(..end);
            let result = self.hub.borrow_mut().store.handle(
                self.domid,
                header.type_,
                header.tx_id,
                &payload,
            );
            match result {
                Ok(body) => self.message(header.type_, header.req_id, header.tx_id, &body),
                Err(e) => {
                    let body = format!("{}\0", e.name());
                    self.message(XS_ERROR, header.req_id, header.tx_id, body.as_bytes());
                }
            }
            self.pull_events();
        }
    }
}

impl XsTransport for XenstoredConn {
    fn send(&mut self, data: &[u8]) -> Result<usize, TransportError> {
        self.from_client.extend_from_slice(data);
        self.process();
        Ok(data.len())
    }

    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, TransportError> {
        self.pull_events();
        let n = buf.len().min(self.to_client.len());
        for (slot, byte) in buf.iter_mut().zip(self.to_client.drain(..n)) {
            *slot = byte;
        }
        Ok(n)
    }

    fn now(&mut self) -> Instant {
        self.hub.borrow().now
    }

    fn wait(&mut self, deadline: Instant) -> Result<Wake, TransportError> {
        self.pull_events();
        if !self.to_client.is_empty() {
            return Ok(Wake::Ready);
        }
        if let Some(mut hook) = self.on_wait.take() {
            let progressed = hook();
            self.on_wait = Some(hook);
            self.pull_events();
            if progressed || !self.to_client.is_empty() {
                return Ok(Wake::Ready);
            }
        }
        let mut hub = self.hub.borrow_mut();
        hub.now = hub
            .now
            .add_nanos(self.tick_nanos)
            .min(deadline.max(hub.now));
        if hub.now >= deadline {
            Ok(Wake::TimedOut)
        } else {
            Ok(Wake::Ready)
        }
    }
}
