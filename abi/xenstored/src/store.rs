//! The store: the committed tree, one connection per introduced domain (its watches, open
//! transactions and queued events), and the request dispatch (C `process_message`).

use crate::ops::{self, OK};
use crate::perms::{self, Rights, perm_for_conn};
use crate::quota::{self, Quotas, TRANSACTIONS_PER_DOMAIN, WATCHES_PER_DOMAIN};
use crate::transaction::Transaction;
use crate::tree::Tree;
use crate::view::View;
use crate::watch::{self, Fire, SpecialPerms, Watch, WatchEvent};
use crate::{Domid, XsdError, args, path};
use abi::io::xs_wire::{self as wire, Perm, XENSTORE_PAYLOAD_MAX, XENSTORE_REL_PATH_MAX};
use alloc::collections::{BTreeMap, VecDeque};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

/// `DOMID_SELF`, which `XS_IS_DOMAIN_INTRODUCED` always reports as introduced.
const DOMID_SELF: i32 = 0x7ff0;

/// One domain's connection.
#[derive(Clone, Debug, Default)]
struct Connection {
    watches: Vec<Watch>,
    transactions: Vec<Transaction>,
    /// The next transaction id to try (C `next_transaction_id`; 0 is skipped).
    next_tx: u32,
    events: VecDeque<WatchEvent>,
    event_bytes: usize,
    /// Watch events dropped beyond the memory quota.
    dropped: u64,
}

impl Connection {
    fn queue(&mut self, event: WatchEvent) {
        self.event_bytes += event.wire_len();
        self.events.push_back(event);
    }

    /// Bytes charged for the watches (path and token, C `add_watch`) and the queued events
    /// (payload and header, C `send_event`).
    fn memory(&self) -> usize {
        let watches: usize = self
            .watches
            .iter()
            .map(|w| w.node.len() + w.token.len())
            .sum();
        watches + self.event_bytes + self.events.len() * quota::MESSAGE_HEADER
    }

    /// Bytes charged outside the tree and the transaction in use: watches, events and the
    /// open transactions.
    fn extra_memory(&self) -> usize {
        self.memory()
            + self
                .transactions
                .iter()
                .map(Transaction::memory)
                .sum::<usize>()
    }
}

/// The xenstore server core. See the crate documentation.
#[derive(Clone, Debug)]
pub struct Store {
    tree: Tree,
    connections: BTreeMap<Domid, Connection>,
    special: SpecialPerms,
    quotas: Quotas,
}

impl Default for Store {
    fn default() -> Self {
        Self::new()
    }
}

impl Store {
    /// The tree C xenstored starts with (`/`, `/tool`, `/tool/xenstored`, owned by domain 0
    /// with no access for others) and a connection for domain 0.
    pub fn new() -> Self {
        Self::with_quotas(Quotas::default())
    }

    /// [`Store::new`] with `quotas` instead of C's defaults (as C xenstored started with
    /// `--entry-nb` and `--quota`).
    pub fn with_quotas(quotas: Quotas) -> Self {
        let mut connections = BTreeMap::new();
        connections.insert(0, Connection::default());
        Self {
            tree: Tree::new(),
            connections,
            special: SpecialPerms::new(),
            quotas,
        }
    }

    /// The quotas in force.
    pub fn quotas(&self) -> Quotas {
        self.quotas
    }

    /// Gives `domid` a connection (the store's half of `XS_INTRODUCE`; the connection layer
    /// maps the ring). Idempotent: a second call changes nothing. Introducing a domain other
    /// than 0 fires `@introduceDomain` (C `introduce_domain`).
    pub fn introduce(&mut self, domid: Domid) {
        if self.connections.contains_key(&domid) {
            return;
        }
        self.connections.insert(domid, Connection::default());
        if domid != 0 {
            self.fire_special(watch::INTRODUCE_DOMAIN);
        }
    }

    /// Drops `domid`'s connection: its watches, transactions and queued events (the store's
    /// half of `XS_RELEASE`). As C's `destroy_domain` does, nodes the domain owns are removed
    /// (watches fire as for an `XS_RM` by domain 0), the domain leaves the permissions of the
    /// special watch names, and `@releaseDomain` fires. Domain 0 cannot be released (C answers
    /// `EINVAL`); an unknown domain is ignored.
    pub fn release(&mut self, domid: Domid) {
        if domid == 0 || self.connections.remove(&domid).is_none() {
            return;
        }
        self.remove_orphans(domid);
        self.special.forget(domid);
        self.fire_special(watch::RELEASE_DOMAIN);
    }

    /// Whether `domid` has a connection.
    pub fn is_introduced(&self, domid: Domid) -> bool {
        self.connections.contains_key(&domid)
    }

    /// The home of a domain, against which its relative paths resolve: `/local/domain/<domid>`.
    pub fn home(domid: Domid) -> String {
        path::home(domid)
    }

    /// The absolute form of a path `conn` sent: relative paths resolve against its home;
    /// `EINVAL` unless the result is a valid node path (C `is_valid_nodename`) or a special
    /// `@` name of at most `XENSTORE_REL_PATH_MAX` bytes (valid for watches only).
    pub fn canonical(conn: Domid, path: &str) -> Result<String, XsdError> {
        let abs = path::canonicalize(conn, path);
        let valid = if abs.starts_with('@') {
            abs.len() <= XENSTORE_REL_PATH_MAX as usize
        } else {
            path::is_valid_nodename(&abs)
        };
        if valid {
            Ok(abs)
        } else {
            Err(XsdError::Einval)
        }
    }

    /// One request from `conn`: `Ok(reply payload)`, exactly what C xenstored sends (for
    /// example `b"OK\0"`), or `Err(errno)` for an `XS_ERROR` reply. Watch events the request
    /// causes are queued (for `XS_WATCH`, the initial event, which C sends after the reply).
    ///
    /// As C's `process_message`: an unknown type is `ENOSYS`; a privileged type from a domain
    /// other than 0 is `EACCES`; a nonzero `tx_id` naming no open transaction of `conn` is
    /// `ENOENT` (`XS_WATCH` and `XS_UNWATCH` ignore `tx_id`); a reply longer than
    /// `XENSTORE_PAYLOAD_MAX` is `E2BIG`; a reply over 16 bytes that would bring an
    /// unprivileged domain to its hard memory quota is `ENOMEM` (see [`quota::MEMORY_HARD`]).
    /// A domain without a connection gets `EACCES`.
    ///
    /// Not handled here: `XS_INTRODUCE` and `XS_RELEASE` (the connection layer maps and unmaps
    /// the ring, then calls [`Store::introduce`] / [`Store::release`]), `XS_CONTROL` and
    /// `XS_SET_TARGET` (not implemented): domain 0 gets `ENOSYS` for them.
    pub fn handle(
        &mut self,
        conn: Domid,
        type_: u32,
        tx_id: u32,
        payload: &[u8],
    ) -> Result<Vec<u8>, XsdError> {
        let reply = self.dispatch(conn, type_, tx_id, payload)?;
        if reply.len() > XENSTORE_PAYLOAD_MAX as usize {
            return Err(XsdError::E2big);
        }
        // C `send_reply`: a reply longer than 16 bytes (only read-only requests have one) is
        // charged to the domain with a check, and `ENOMEM` when it would bring the domain to
        // its hard memory quota.
        if !perms::is_privileged(conn)
            && reply.len() > quota::REPLY_UNCHECKED
            && self.memory(conn) + reply.len() + quota::MESSAGE_HEADER >= self.quotas.memory_hard
        {
            return Err(XsdError::Enomem);
        }
        Ok(reply)
    }

    fn dispatch(
        &mut self,
        conn: Domid,
        type_: u32,
        tx_id: u32,
        payload: &[u8],
    ) -> Result<Vec<u8>, XsdError> {
        if !self.connections.contains_key(&conn) {
            return Err(XsdError::Eacces);
        }
        let privileged_only = matches!(
            type_,
            wire::XS_CONTROL
                | wire::XS_INTRODUCE
                | wire::XS_RELEASE
                | wire::XS_IS_DOMAIN_INTRODUCED
                | wire::XS_RESUME
                | wire::XS_SET_TARGET
        );
        let known = type_ < wire::XS_TYPE_COUNT
            && !matches!(type_, wire::XS_WATCH_EVENT | wire::XS_ERROR | 20);
        if !known {
            return Err(XsdError::Enosys);
        }
        if privileged_only && !perms::is_privileged(conn) {
            return Err(XsdError::Eacces);
        }
        match type_ {
            wire::XS_WATCH => return self.watch(conn, payload),
            wire::XS_UNWATCH => return self.unwatch(conn, payload),
            _ => {}
        }
        // C `transaction_lookup`: the request runs inside the transaction, taken out of the
        // connection for the duration.
        let mut tx = match tx_id {
            0 => None,
            id => Some(self.take_transaction(conn, id).ok_or(XsdError::Enoent)?),
        };
        let result = self.dispatch_in(conn, type_, &mut tx, payload);
        if let Some(tx) = tx
            && let Some(c) = self.connections.get_mut(&conn)
        {
            c.transactions.push(tx);
        }
        result
    }

    fn dispatch_in(
        &mut self,
        conn: Domid,
        type_: u32,
        tx: &mut Option<Transaction>,
        payload: &[u8],
    ) -> Result<Vec<u8>, XsdError> {
        match type_ {
            wire::XS_TRANSACTION_START => self.transaction_start(conn, tx.is_some()),
            wire::XS_TRANSACTION_END => self.transaction_end(tx, payload),
            wire::XS_GET_DOMAIN_PATH => {
                let domid = args::onearg(payload).ok_or(XsdError::Einval)?;
                // C prints `atoi`'s int with "%u".
                let mut out =
                    format!("/local/domain/{}", args::atoi(domid).cast_unsigned()).into_bytes();
                out.push(0);
                Ok(out)
            }
            wire::XS_IS_DOMAIN_INTRODUCED => {
                let domid = args::atoi(args::onearg(payload).ok_or(XsdError::Einval)?);
                let known = domid == DOMID_SELF
                    || u16::try_from(domid).is_ok_and(|d| self.connections.contains_key(&d));
                Ok(if known { b"T\0" } else { b"F\0" }.to_vec())
            }
            wire::XS_RESUME => {
                // C `onearg_domain`; no shutdown flag is kept here, so nothing else to do.
                let domid = args::atoi(args::onearg(payload).ok_or(XsdError::Einval)?);
                if domid == 0 {
                    return Err(XsdError::Einval);
                }
                let known = u16::try_from(domid).is_ok_and(|d| self.connections.contains_key(&d));
                if known {
                    Ok(OK.to_vec())
                } else {
                    Err(XsdError::Enoent)
                }
            }
            wire::XS_RESET_WATCHES => {
                if let Some(c) = self.connections.get_mut(&conn) {
                    c.watches.clear();
                    c.transactions.clear();
                }
                // C `conn_delete_all_transactions` ends the one in use as well.
                *tx = None;
                Ok(OK.to_vec())
            }
            wire::XS_SET_PERMS => {
                let (name, list) = ops::set_perms_args(conn, payload)?;
                if name.starts_with('@') {
                    return self.set_special_perms(conn, &name, list);
                }
                self.run(conn, tx.as_mut(), |view| {
                    ops::set_node_perms(view, conn, &name, list)
                })
            }
            wire::XS_READ => self.run(conn, tx.as_mut(), |v| ops::read(v, conn, payload)),
            wire::XS_WRITE => self.run(conn, tx.as_mut(), |v| ops::write(v, conn, payload)),
            wire::XS_MKDIR => self.run(conn, tx.as_mut(), |v| ops::mkdir(v, conn, payload)),
            wire::XS_RM => self.run(conn, tx.as_mut(), |v| ops::rm(v, conn, payload)),
            wire::XS_DIRECTORY => self.run(conn, tx.as_mut(), |v| ops::directory(v, conn, payload)),
            wire::XS_DIRECTORY_PART => {
                self.run(conn, tx.as_mut(), |v| ops::directory_part(v, conn, payload))
            }
            wire::XS_GET_PERMS => self.run(conn, tx.as_mut(), |v| ops::get_perms(v, conn, payload)),
            // XS_CONTROL, XS_INTRODUCE, XS_RELEASE, XS_SET_TARGET: see `handle`.
            _ => Err(XsdError::Enosys),
        }
    }

    /// Runs a node operation of `conn` in a view and delivers the watch events it caused.
    fn run(
        &mut self,
        conn: Domid,
        tx: Option<&mut Transaction>,
        op: impl FnOnce(&mut View<'_>) -> Result<Vec<u8>, XsdError>,
    ) -> Result<Vec<u8>, XsdError> {
        let extra = self
            .connections
            .get(&conn)
            .map_or(0, Connection::extra_memory);
        let mut view = View::new(&mut self.tree, tx, conn, extra, self.quotas);
        let result = op(&mut view);
        let fires = core::mem::take(&mut view.fires);
        self.deliver(&fires);
        result
    }

    fn take_transaction(&mut self, conn: Domid, id: u32) -> Option<Transaction> {
        let c = self.connections.get_mut(&conn)?;
        let i = c.transactions.iter().position(|t| t.id == id)?;
        Some(c.transactions.swap_remove(i))
    }

    /// `XS_TRANSACTION_START` (C `do_transaction_start`): `EBUSY` inside a transaction,
    /// `ENOSPC` for an unprivileged domain with more than
    /// [`quota::TRANSACTIONS_PER_DOMAIN`] open; the reply is the new id in decimal,
    /// nul-terminated.
    fn transaction_start(&mut self, conn: Domid, nested: bool) -> Result<Vec<u8>, XsdError> {
        if nested {
            return Err(XsdError::Ebusy);
        }
        let generation = self.tree.generation();
        let c = self.connections.get_mut(&conn).ok_or(XsdError::Eacces)?;
        let privileged = perms::is_privileged(conn);
        if !privileged && c.transactions.len() > TRANSACTIONS_PER_DOMAIN {
            return Err(XsdError::Enospc);
        }
        let id = loop {
            let id = c.next_tx;
            c.next_tx = c.next_tx.wrapping_add(1);
            if id != 0 && !c.transactions.iter().any(|t| t.id == id) {
                break id;
            }
        };
        c.transactions.push(Transaction::new(
            id,
            privileged,
            generation,
            self.quotas.nodes_per_transaction,
        ));
        let mut out = format!("{id}").into_bytes();
        out.push(0);
        Ok(out)
    }

    /// `XS_TRANSACTION_END` (C `do_transaction_end`): `"T"` commits, `"F"` aborts; the
    /// transaction ends either way, also when the commit fails with `EAGAIN`.
    fn transaction_end(
        &mut self,
        tx: &mut Option<Transaction>,
        payload: &[u8],
    ) -> Result<Vec<u8>, XsdError> {
        let commit = match args::onearg(payload) {
            Some(b"T") => true,
            Some(b"F") => false,
            _ => return Err(XsdError::Einval),
        };
        let tx = tx.take().ok_or(XsdError::Enoent)?;
        if commit {
            let fires = tx.commit(&mut self.tree, self.quotas.entries_per_domain)?;
            self.deliver(&fires);
        }
        Ok(OK.to_vec())
    }

    /// `XS_WATCH` (C `do_watch`): path and token; `EEXIST` for the same path and token again;
    /// for an unprivileged domain, `E2BIG` when it holds more than
    /// [`quota::WATCHES_PER_DOMAIN`] watches and `ENOMEM` when the watch's path and token would
    /// bring its charge to [`quota::MEMORY_HARD`]. The watch fires once at once (an event
    /// beyond the memory quota is dropped, as all are).
    fn watch(&mut self, conn: Domid, payload: &[u8]) -> Result<Vec<u8>, XsdError> {
        let strings = args::strings(payload);
        let [raw_path, raw_token] = strings[..] else {
            return Err(XsdError::Einval);
        };
        let given = args::text(raw_path).ok_or(XsdError::Einval)?;
        let token = args::text(raw_token).ok_or(XsdError::Einval)?;
        // C `check_watch_path`.
        let node = Self::canonical(conn, given)?;
        let relative = !given.starts_with('/') && !given.starts_with('@');
        let c = self.connections.get_mut(&conn).ok_or(XsdError::Eacces)?;
        if c.watches.iter().any(|w| w.node == node && w.token == token) {
            return Err(XsdError::Eexist);
        }
        if !perms::is_privileged(conn) {
            if c.watches.len() > WATCHES_PER_DOMAIN {
                return Err(XsdError::E2big);
            }
            let charged = self.tree.usage(conn).memory + c.extra_memory();
            if charged + node.len() + token.len() >= self.quotas.memory_hard {
                return Err(XsdError::Enomem);
            }
        }
        let watch = Watch {
            node,
            token: String::from(token),
            relative: relative.then(|| path::home(conn)),
        };
        let event = WatchEvent {
            path: String::from(watch.event_path(&watch.node)),
            token: watch.token.clone(),
        };
        c.watches.push(watch);
        self.queue_event(conn, event);
        Ok(OK.to_vec())
    }

    /// `XS_UNWATCH` (C `do_unwatch`): `ENOENT` for no such watch.
    fn unwatch(&mut self, conn: Domid, payload: &[u8]) -> Result<Vec<u8>, XsdError> {
        let strings = args::strings(payload);
        let [raw_path, raw_token] = strings[..] else {
            return Err(XsdError::Einval);
        };
        let node = ops::path_arg(conn, Some(raw_path))?;
        let c = self.connections.get_mut(&conn).ok_or(XsdError::Eacces)?;
        let i = c
            .watches
            .iter()
            .position(|w| w.node == node && w.token.as_bytes() == raw_token)
            .ok_or(XsdError::Enoent)?;
        c.watches.remove(i);
        Ok(OK.to_vec())
    }

    /// `XS_SET_PERMS` on `@introduceDomain` / `@releaseDomain` (C `set_perms_special`):
    /// `EINVAL` for another `@` name, `EACCES` unless `conn` owns it (or is domain 0).
    fn set_special_perms(
        &mut self,
        conn: Domid,
        name: &str,
        list: Vec<Perm>,
    ) -> Result<Vec<u8>, XsdError> {
        let perms = self.special.get_mut(name).ok_or(XsdError::Einval)?;
        let need = Rights::WRITE.union(Rights::OWNER);
        if !perm_for_conn(conn, perms).contains(need) {
            return Err(XsdError::Eacces);
        }
        *perms = list;
        Ok(OK.to_vec())
    }

    /// Fires a special watch name (exact match; seen by connections that may read it).
    fn fire_special(&mut self, name: &str) {
        self.deliver(&[Fire {
            path: String::from(name),
            exact: true,
            node_perms: None,
            parent_perms: None,
            old_perms: None,
        }]);
    }

    /// Queues the events of `fires` for every connection allowed to see them (C
    /// `fire_watches`).
    fn deliver(&mut self, fires: &[Fire]) {
        for fire in fires {
            for (&domid, c) in self.connections.iter_mut() {
                let allowed = if fire.path.starts_with('@') {
                    // C `check_perms_special`.
                    self.special
                        .get(&fire.path)
                        .is_some_and(|p| perm_for_conn(domid, p).contains(Rights::READ))
                } else {
                    watch::permitted(domid, fire)
                };
                if !allowed {
                    continue;
                }
                for w in c.watches.iter().filter(|w| w.sees(&fire.path, fire.exact)) {
                    let path = w.event_path(&fire.path);
                    let charged = self.tree.usage(domid).memory + c.extra_memory();
                    let len = path.len() + w.token.len() + 2 + quota::MESSAGE_HEADER;
                    if !perms::is_privileged(domid) && charged + len >= self.quotas.memory_hard {
                        // C `send_event`: beyond the quota, the event is dropped.
                        c.dropped += 1;
                        continue;
                    }
                    let event = WatchEvent {
                        path: String::from(path),
                        token: w.token.clone(),
                    };
                    c.event_bytes += event.wire_len();
                    c.events.push_back(event);
                }
            }
        }
    }

    /// Queues `event` for `conn` unless it is beyond `conn`'s memory quota (then dropped).
    fn queue_event(&mut self, conn: Domid, event: WatchEvent) {
        let used = self.tree.usage(conn).memory;
        let Some(c) = self.connections.get_mut(&conn) else {
            return;
        };
        let len = event.wire_len() + quota::MESSAGE_HEADER;
        if !perms::is_privileged(conn) && used + c.extra_memory() + len >= self.quotas.memory_hard {
            c.dropped += 1;
            return;
        }
        c.queue(event);
    }

    /// Removes the nodes `domid` owns (C `domain_tree_remove` without `keep_orphans`): top
    /// down, each owned node with everything below it.
    fn remove_orphans(&mut self, domid: Domid) {
        let mut owned: Vec<String> = Vec::new();
        for (p, node) in self.tree.iter() {
            let covered = owned
                .last()
                .is_some_and(|o| path::is_child(p, o) && o != "/");
            if !covered && p != "/" && node.perms.first().is_some_and(|o| o.domid == domid) {
                owned.push(p.clone());
            }
        }
        for p in owned {
            let mut view = View::new(&mut self.tree, None, 0, 0, self.quotas);
            // A node already gone with an earlier subtree is fine to skip.
            let _ = ops::rm_node(&mut view, &p);
            let fires = core::mem::take(&mut view.fires);
            self.deliver(&fires);
        }
    }

    /// Watch events queued for `conn`, oldest first, removed from the queue.
    pub fn take_events(&mut self, conn: Domid) -> Vec<WatchEvent> {
        match self.connections.get_mut(&conn) {
            Some(c) => {
                c.event_bytes = 0;
                c.events.drain(..).collect()
            }
            None => Vec::new(),
        }
    }

    /// Bytes of the events queued for `conn` (path and token, each nul-terminated), for the
    /// caller's bounds.
    pub fn queued_event_bytes(&self, conn: Domid) -> usize {
        self.connections.get(&conn).map_or(0, |c| c.event_bytes)
    }

    /// The bytes charged to `domid` (C `domain->memory` without the connection layer's
    /// queues): the records and paths of the nodes it owns, its transactions' keys and
    /// copies, its watches and its queued watch events.
    pub fn memory(&self, domid: Domid) -> usize {
        let tree = self.tree.usage(domid).memory;
        tree + self
            .connections
            .get(&domid)
            .map_or(0, Connection::extra_memory)
    }

    /// The number of committed nodes `domid` owns (C `nbentry`).
    pub fn entries(&self, domid: Domid) -> usize {
        self.tree.usage(domid).entries
    }

    /// Whether an unprivileged `domid` is charged [`quota::MEMORY_HARD`] or more: the
    /// connection layer then reads no request of it until it is below again (C
    /// `domain_can_read`). Reads inside a transaction are charged without a check, as in C,
    /// so a domain can get there.
    pub fn memory_hard_exceeded(&self, domid: Domid) -> bool {
        !perms::is_privileged(domid) && self.memory(domid) >= self.quotas.memory_hard
    }

    /// Whether an unprivileged `domid` is charged [`quota::MEMORY_SOFT`] or more (C only
    /// logs it).
    pub fn memory_soft_exceeded(&self, domid: Domid) -> bool {
        !perms::is_privileged(domid) && self.memory(domid) >= quota::MEMORY_SOFT
    }

    /// Watch events dropped for `domid` because of its memory quota.
    pub fn events_dropped(&self, domid: Domid) -> u64 {
        self.connections.get(&domid).map_or(0, |c| c.dropped)
    }

    /// The number of watches `conn` holds.
    pub fn watch_count(&self, conn: Domid) -> usize {
        self.connections.get(&conn).map_or(0, |c| c.watches.len())
    }

    /// The number of open transactions of `conn`.
    pub fn transaction_count(&self, conn: Domid) -> usize {
        self.connections
            .get(&conn)
            .map_or(0, |c| c.transactions.len())
    }

    /// Writes `value` at absolute `path` as domain 0 would (`XS_WRITE` outside a
    /// transaction): creates missing parents and fires watches.
    pub fn write(&mut self, path: &str, value: &[u8]) -> Result<(), XsdError> {
        let mut payload = Self::absolute(path)?.into_bytes();
        payload.push(0);
        payload.extend_from_slice(value);
        self.handle(0, wire::XS_WRITE, 0, &payload).map(drop)
    }

    /// Creates `path` (absolute) as domain 0 would (`XS_MKDIR`).
    pub fn mkdir(&mut self, path: &str) -> Result<(), XsdError> {
        let payload = Self::one_path(path)?;
        self.handle(0, wire::XS_MKDIR, 0, &payload).map(drop)
    }

    /// The committed value at absolute `path`, without permission checks.
    pub fn read(&self, path: &str) -> Option<Vec<u8>> {
        self.tree.get(path).map(|n| n.value.clone())
    }

    /// The committed child names of absolute `path`, in C xenstored's order (creation order).
    pub fn directory(&self, path: &str) -> Option<Vec<String>> {
        self.tree.get(path).map(|n| n.children.clone())
    }

    /// Removes absolute `path` and everything below it as domain 0 would (`XS_RM`): a missing
    /// node whose parent exists is fine; `/` is `EINVAL`.
    pub fn rm(&mut self, path: &str) -> Result<(), XsdError> {
        let payload = Self::one_path(path)?;
        self.handle(0, wire::XS_RM, 0, &payload).map(drop)
    }

    /// Sets the permissions of absolute `path` (or of a special `@` name) as domain 0 would
    /// (`XS_SET_PERMS`); an empty list is `EINVAL`.
    pub fn set_perms(&mut self, path: &str, perms: Vec<Perm>) -> Result<(), XsdError> {
        if !path.starts_with('@') {
            Self::absolute(path)?;
        }
        let mut payload = String::from(path).into_bytes();
        payload.push(0);
        for p in &perms {
            payload.extend_from_slice(format!("{p}").as_bytes());
            payload.push(0);
        }
        self.handle(0, wire::XS_SET_PERMS, 0, &payload).map(drop)
    }

    /// The committed permissions of absolute `path` (or of a special `@` name).
    pub fn perms(&self, path: &str) -> Option<Vec<Perm>> {
        match self.special.get(path) {
            Some(p) => Some(p.clone()),
            None => self.tree.get(path).map(|n| n.perms.clone()),
        }
    }

    fn absolute(path: &str) -> Result<String, XsdError> {
        if path.starts_with('/') && path::is_valid_nodename(path) {
            Ok(String::from(path))
        } else {
            Err(XsdError::Einval)
        }
    }

    fn one_path(path: &str) -> Result<Vec<u8>, XsdError> {
        let mut payload = Self::absolute(path)?.into_bytes();
        payload.push(0);
        Ok(payload)
    }

    /// Every committed node's path, for tests and debugging dumps.
    pub fn paths(&self) -> Vec<String> {
        self.tree.iter().map(|(p, _)| p.clone()).collect()
    }
}
