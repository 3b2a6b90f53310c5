//! The fake daemon's tree: the real server core (the `xenstored` crate) serving one client
//! domain, plus what a test needs on top: privileged set/get/remove as the toolstack or a
//! backend would do them, events injected by hand, and transaction commits that fail on
//! demand.

use crate::xenstore::{Perm, WatchEvent};
use abi::io::xs_wire::XS_TRANSACTION_END;

/// The tree served to client domain `domid` (its home is `/local/domain/<domid>`).
pub struct Store {
    /// The client's domain id.
    pub domid: u16,
    inner: xenstored::Store,
    /// Extra watch events to send the client (tests and flood fakes push here).
    pub events: Vec<WatchEvent>,
    /// Number of upcoming commits to answer with `EAGAIN` (the transaction is aborted).
    pub commit_eagain: u32,
}

impl Store {
    /// A tree with the client's home, owned by the client, as the toolstack leaves it.
    pub fn new(domid: u16) -> Self {
        let mut inner = xenstored::Store::new();
        inner.introduce(domid);
        let mut store = Self {
            domid,
            inner,
            events: Vec::new(),
            commit_eagain: 0,
        };
        let home = store.home();
        store.set(&home, "");
        store.set_perms(
            &home,
            vec![Perm {
                domid,
                access: crate::xenstore::Access::None,
            }],
        );
        store
    }

    /// The client's home, `/local/domain/<domid>`.
    pub fn home(&self) -> String {
        xenstored::Store::home(self.domid)
    }

    /// The absolute path for a client path, or the error name.
    pub fn canonical(&self, path: &str) -> Result<String, &'static str> {
        xenstored::Store::canonical(self.domid, path).map_err(|e| e.name())
    }

    /// Writes `value` at absolute `path` as domain 0, creating parents; fires watches.
    ///
    /// # Panics
    /// If the server refuses (an invalid path): a test bug.
    pub fn set(&mut self, path: &str, value: &str) {
        if let Err(e) = self.inner.write(path, value.as_bytes()) {
            panic!("fake xenstored: writing {path}: {}", e.name());
        }
    }

    /// Removes absolute `path` and its subtree as domain 0; fires watches.
    pub fn remove(&mut self, path: &str) {
        // A missing node is already removed.
        let _ = self.inner.rm(path);
    }

    /// The value at absolute `path`.
    pub fn get(&self, path: &str) -> Option<String> {
        self.inner
            .read(path)
            .map(|v| String::from_utf8_lossy(&v).into_owned())
    }

    /// Replaces the permissions of absolute `path` (as domain 0).
    pub fn set_perms(&mut self, path: &str, perms: Vec<Perm>) {
        if let Err(e) = self.inner.set_perms(path, perms) {
            panic!("fake xenstored: set_perms {path}: {}", e.name());
        }
    }

    /// What the toolstack writes for one split device, as xl does: the front-end directory
    /// `front` with `backend-id` (0), `backend`, `state` (Initialising) and `front_keys`, owned
    /// by the guest and readable by domain 0; the back-end directory `back` (under
    /// `/local/domain/0/backend`, readable by the guest) with `state` (InitWait) and
    /// `back_keys`.
    pub fn add_device(
        &mut self,
        front: &str,
        back: &str,
        front_keys: &[(&str, &str)],
        back_keys: &[(&str, &str)],
    ) {
        use crate::xenstore::Access;
        let guest_owns = vec![
            Perm {
                domid: self.domid,
                access: Access::None,
            },
            Perm {
                domid: 0,
                access: Access::Read,
            },
        ];
        let front_all = [("backend-id", "0"), ("backend", back), ("state", "1")];
        for (key, value) in front_all.iter().chain(front_keys) {
            self.set(&format!("{front}/{key}"), value);
        }
        self.set_perms(front, guest_owns.clone());
        for (key, _) in front_all.iter().chain(front_keys) {
            self.set_perms(&format!("{front}/{key}"), guest_owns.clone());
        }
        // The backend directory, readable by the guest; what is created below inherits that.
        self.set("/local/domain/0/backend", "");
        self.set_perms(
            "/local/domain/0/backend",
            vec![
                Perm {
                    domid: 0,
                    access: Access::None,
                },
                Perm {
                    domid: self.domid,
                    access: Access::Read,
                },
            ],
        );
        for (key, value) in [("state", "2")].iter().chain(back_keys) {
            self.set(&format!("{back}/{key}"), value);
        }
    }

    /// Watches the client has registered.
    pub fn watch_count(&self) -> usize {
        self.inner.watch_count(self.domid)
    }

    /// The server core, for what the helpers above do not cover.
    pub fn server(&mut self) -> &mut xenstored::Store {
        &mut self.inner
    }

    /// Watch events for the client: the server's, then the injected ones.
    pub fn take_events(&mut self) -> Vec<WatchEvent> {
        let mut events: Vec<WatchEvent> = self
            .inner
            .take_events(self.domid)
            .into_iter()
            .map(|e| WatchEvent {
                path: e.path,
                token: e.token,
            })
            .collect();
        events.append(&mut self.events);
        events
    }

    /// Answers one request from the client: `Ok(payload)` or `Err(error name)`.
    pub fn handle(
        &mut self,
        type_: u32,
        tx_id: u32,
        payload: &[u8],
    ) -> Result<Vec<u8>, &'static str> {
        if type_ == XS_TRANSACTION_END && payload.first() == Some(&b'T') && self.commit_eagain > 0 {
            self.commit_eagain -= 1;
            // The conflict C xenstored reports: the transaction is gone, nothing committed.
            self.inner
                .handle(self.domid, XS_TRANSACTION_END, tx_id, b"F\0")
                .map_err(|e| e.name())?;
            return Err("EAGAIN");
        }
        self.inner
            .handle(self.domid, type_, tx_id, payload)
            .map_err(|e| e.name())
    }
}
