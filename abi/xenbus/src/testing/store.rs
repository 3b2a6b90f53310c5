//! The fake daemon's tree (until the `xenstored` crate replaces it): nodes with values and permissions, watches, transactions, and the
//! request handlers that answer the way C xenstored does.

use crate::xenstore::{Access, Perm, WatchEvent};
use abi::io::xs_wire::{
    XS_DIRECTORY, XS_GET_PERMS, XS_MKDIR, XS_READ, XS_RM, XS_TRANSACTION_END, XS_TRANSACTION_START,
    XS_UNWATCH, XS_WATCH, XS_WRITE,
};
use std::collections::{BTreeMap, BTreeSet};

/// One node.
#[derive(Clone, Debug)]
pub struct Node {
    /// The value.
    pub value: Vec<u8>,
    /// The permission list (owner first).
    pub perms: Vec<Perm>,
}

struct Watch {
    given: String,
    canonical: String,
    token: String,
}

/// The tree and the client connection's watches.
pub struct Store {
    /// The client's domain id (its home is `/local/domain/<domid>`).
    pub domid: u16,
    nodes: BTreeMap<String, Node>,
    watches: Vec<Watch>,
    next_tx: u32,
    txs: BTreeSet<u32>,
    /// Number of upcoming commits to answer with `EAGAIN`.
    pub commit_eagain: u32,
    /// Watch events waiting to be sent to the client.
    pub events: Vec<WatchEvent>,
}

type Reply = Result<Vec<u8>, &'static str>;

fn is_within(path: &str, dir: &str) -> bool {
    path == dir
        || dir == "/"
        || (path.starts_with(dir) && path.as_bytes().get(dir.len()) == Some(&b'/'))
}

fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) => "/",
        Some(i) => &path[..i],
        None => "/",
    }
}

fn access_of(perms: &[Perm], domid: u16) -> Access {
    match perms.first() {
        _ if domid == 0 => Access::Both,
        Some(owner) if owner.domid == domid => Access::Both,
        Some(owner) => perms[1..]
            .iter()
            .find(|p| p.domid == domid)
            .map_or(owner.access, |p| p.access),
        None => Access::None,
    }
}

impl Store {
    /// A tree with `/` and the home of client `domid`, owned by it.
    pub fn new(domid: u16) -> Self {
        let mut nodes = BTreeMap::new();
        nodes.insert(
            "/".to_string(),
            Node {
                value: Vec::new(),
                perms: vec![Perm {
                    domid: 0,
                    access: Access::None,
                }],
            },
        );
        let mut store = Self {
            domid,
            nodes,
            watches: Vec::new(),
            next_tx: 1,
            txs: BTreeSet::new(),
            commit_eagain: 0,
            events: Vec::new(),
        };
        // The toolstack gives the domain its home, owned by the domain.
        let home = store.home();
        store.set(&home, "");
        store.set_perms(
            &home,
            vec![Perm {
                domid,
                access: Access::None,
            }],
        );
        store
    }

    /// The client's home, `/local/domain/<domid>`.
    pub fn home(&self) -> String {
        format!("/local/domain/{}", self.domid)
    }

    /// The absolute path for a client path, or EINVAL.
    pub fn canonical(&self, path: &str) -> Result<String, &'static str> {
        let abs = if path.starts_with('/') {
            path.to_string()
        } else {
            format!("{}/{}", self.home(), path)
        };
        if abs.len() > 1 && (abs.ends_with('/') || abs.contains("//")) {
            return Err("EINVAL");
        }
        Ok(abs)
    }

    // ---- privileged access for tests and fake backends (no permission checks) ----

    /// Writes `value` at absolute `path` as domain 0, creating parents; fires watches.
    pub fn set(&mut self, path: &str, value: &str) {
        self.create(path, value.as_bytes(), 0);
        self.fire(path, false);
    }

    /// Removes absolute `path` and its subtree; fires watches.
    pub fn remove(&mut self, path: &str) {
        self.nodes.retain(|p, _| !is_within(p, path));
        self.fire(path, true);
    }

    /// The value at absolute `path`.
    pub fn get(&self, path: &str) -> Option<String> {
        self.nodes
            .get(path)
            .map(|n| String::from_utf8_lossy(&n.value).into_owned())
    }

    /// Replaces the permissions of absolute `path`.
    pub fn set_perms(&mut self, path: &str, perms: Vec<Perm>) {
        if let Some(node) = self.nodes.get_mut(path) {
            node.perms = perms;
        }
    }

    /// Watches the client has registered.
    pub fn watch_count(&self) -> usize {
        self.watches.len()
    }

    // ---- the tree ----

    fn create(&mut self, path: &str, value: &[u8], creator: u16) {
        if !self.nodes.contains_key(path) {
            let up = parent(path).to_string();
            self.create(&up, b"", creator);
            let mut perms = self
                .nodes
                .get(&up)
                .map(|n| n.perms.clone())
                .unwrap_or_default();
            if creator != 0
                && let Some(owner) = perms.first_mut()
            {
                owner.domid = creator;
            }
            self.nodes.insert(
                path.to_string(),
                Node {
                    value: Vec::new(),
                    perms,
                },
            );
        }
        if let Some(node) = self.nodes.get_mut(path) {
            node.value = value.to_vec();
        }
    }

    fn fire(&mut self, changed: &str, recursive: bool) {
        let home_prefix = format!("{}/", self.home());
        for w in &self.watches {
            let hit_above = is_within(changed, &w.canonical);
            let hit_below = recursive && is_within(&w.canonical, changed);
            if !(hit_above || hit_below) {
                continue;
            }
            let reported = if !hit_above {
                w.given.clone()
            } else if w.given.starts_with('/') {
                changed.to_string()
            } else {
                changed
                    .strip_prefix(&home_prefix)
                    .unwrap_or(changed)
                    .to_string()
            };
            self.events.push(WatchEvent {
                path: reported,
                token: w.token.clone(),
            });
        }
    }

    fn can(&self, path: &str, write: bool) -> bool {
        let Some(node) = self.nodes.get(path) else {
            return false;
        };
        match access_of(&node.perms, self.domid) {
            Access::Both => true,
            Access::Read => !write,
            Access::Write => write,
            Access::None => false,
        }
    }

    fn nearest_existing(&self, path: &str) -> String {
        let mut p = path;
        while !self.nodes.contains_key(p) {
            p = parent(p);
        }
        p.to_string()
    }

    // ---- requests from the client ----

    /// Answers one request: `Ok(payload)` or `Err(error name)`.
    pub fn handle(&mut self, type_: u32, tx_id: u32, payload: &[u8]) -> Reply {
        if tx_id != 0 && !self.txs.contains(&tx_id) {
            return Err("ENOENT");
        }
        let args: Vec<&[u8]> = payload.split(|&b| b == 0).collect();
        let text = |i: usize| -> Result<&str, &'static str> {
            args.get(i)
                .and_then(|a| std::str::from_utf8(a).ok())
                .ok_or("EINVAL")
        };
        match type_ {
            XS_READ => {
                let path = self.canonical(text(0)?)?;
                let node = self.nodes.get(&path).ok_or("ENOENT")?;
                if !self.can(&path, false) {
                    return Err("EACCES");
                }
                Ok(node.value.clone())
            }
            XS_WRITE => {
                let path = self.canonical(text(0)?)?;
                let split = payload.iter().position(|&b| b == 0).ok_or("EINVAL")?;
                self.client_write(&path, &payload[split + 1..])?;
                Ok(b"OK\0".to_vec())
            }
            XS_MKDIR => {
                let path = self.canonical(text(0)?)?;
                if !self.nodes.contains_key(&path) {
                    self.client_write(&path, b"")?;
                }
                Ok(b"OK\0".to_vec())
            }
            XS_RM => {
                let path = self.canonical(text(0)?)?;
                if path == "/" {
                    return Err("EINVAL");
                }
                if !self.nodes.contains_key(&path) {
                    return Err("ENOENT");
                }
                if !self.can(&path, true) {
                    return Err("EACCES");
                }
                self.remove(&path);
                Ok(b"OK\0".to_vec())
            }
            XS_DIRECTORY => {
                let path = self.canonical(text(0)?)?;
                if !self.nodes.contains_key(&path) {
                    return Err("ENOENT");
                }
                if !self.can(&path, false) {
                    return Err("EACCES");
                }
                let mut out = Vec::new();
                for p in self.nodes.keys() {
                    if p != &path && parent(p) == path {
                        out.extend_from_slice(p.rsplit('/').next().unwrap_or("").as_bytes());
                        out.push(0);
                    }
                }
                Ok(out)
            }
            XS_GET_PERMS => {
                let path = self.canonical(text(0)?)?;
                let node = self.nodes.get(&path).ok_or("ENOENT")?;
                if !self.can(&path, false) {
                    return Err("EACCES");
                }
                let mut out = Vec::new();
                for p in &node.perms {
                    out.extend_from_slice(p.to_string().as_bytes());
                    out.push(0);
                }
                Ok(out)
            }
            XS_WATCH => {
                let (given, token) = (text(0)?.to_string(), text(1)?.to_string());
                let canonical = self.canonical(&given)?;
                if self
                    .watches
                    .iter()
                    .any(|w| w.given == given && w.token == token)
                {
                    return Err("EEXIST");
                }
                // xenstored fires a new watch once, up front.
                self.events.push(WatchEvent {
                    path: given.clone(),
                    token: token.clone(),
                });
                self.watches.push(Watch {
                    given,
                    canonical,
                    token,
                });
                Ok(b"OK\0".to_vec())
            }
            XS_UNWATCH => {
                let (given, token) = (text(0)?, text(1)?);
                let before = self.watches.len();
                self.watches
                    .retain(|w| !(w.given == given && w.token == token));
                if self.watches.len() == before {
                    return Err("ENOENT");
                }
                Ok(b"OK\0".to_vec())
            }
            XS_TRANSACTION_START => {
                let id = self.next_tx;
                self.next_tx += 1;
                self.txs.insert(id);
                Ok(format!("{id}\0").into_bytes())
            }
            XS_TRANSACTION_END => {
                if !self.txs.remove(&tx_id) {
                    return Err("ENOENT");
                }
                match text(0)? {
                    "T" if self.commit_eagain > 0 => {
                        self.commit_eagain -= 1;
                        Err("EAGAIN")
                    }
                    "T" | "F" => Ok(b"OK\0".to_vec()),
                    _ => Err("EINVAL"),
                }
            }
            _ => Err("EINVAL"),
        }
    }

    fn client_write(&mut self, path: &str, value: &[u8]) -> Result<(), &'static str> {
        let existing = self.nearest_existing(path);
        if !self.can(&existing, true) {
            return Err("EACCES");
        }
        self.create(path, value, self.domid);
        self.fire(path, false);
        Ok(())
    }
}
