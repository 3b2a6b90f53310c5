//! What one request sees: the committed tree, or a transaction's view of it. Changes go to
//! the right place and watch events are collected (outside a transaction) or queued in the
//! transaction (C `fire_watches` → `queue_watches`).

use crate::path;
use crate::perms::is_privileged;
use crate::quota::{self, ENTRY_SIZE_MAX, Quotas};
use crate::transaction::Transaction;
use crate::tree::{Node, Tree};
use crate::watch::Fire;
use crate::{Domid, XsdError};
use abi::io::xs_wire::Perm;
use alloc::string::String;
use alloc::vec::Vec;

/// The tree as one request sees it.
pub(crate) struct View<'a> {
    tree: &'a mut Tree,
    tx: Option<&'a mut Transaction>,
    /// The requesting domain.
    conn: Domid,
    /// Bytes charged to `conn` outside the tree and `tx` (watches, queued events, other
    /// transactions).
    extra: usize,
    /// The store's quotas.
    quotas: Quotas,
    /// Watch events to deliver once the request is done (empty inside a transaction).
    pub fires: Vec<Fire>,
}

/// A node a request is about to store, for [`View::check_writes`].
pub(crate) struct Pending<'n> {
    /// Its path.
    pub path: &'n str,
    /// The node as it will be stored.
    pub node: &'n Node,
    /// Whether it is created (counts against the node quota).
    pub created: bool,
}

impl<'a> View<'a> {
    /// A view of `tree` for a request of `conn`, through `tx` when given; `extra` is what
    /// `conn` is charged outside the tree and `tx`; `quotas` are the store's.
    pub(crate) fn new(
        tree: &'a mut Tree,
        tx: Option<&'a mut Transaction>,
        conn: Domid,
        extra: usize,
        quotas: Quotas,
    ) -> Self {
        Self {
            tree,
            tx,
            conn,
            extra,
            quotas,
            fires: Vec::new(),
        }
    }

    /// The node at `path`, if it exists in this view; `ENOSPC` when a transaction may touch
    /// no further node.
    pub(crate) fn read(&mut self, path: &str) -> Result<Option<Node>, XsdError> {
        match &mut self.tx {
            Some(tx) => tx.read(self.tree, path),
            None => Ok(self.tree.get(path).cloned()),
        }
    }

    /// What `domid` is charged in this view, `conn`'s transaction and other charges
    /// included.
    fn memory_of(&self, domid: Domid) -> usize {
        let mut bytes = self.tree.usage(domid).memory;
        if domid == self.conn {
            bytes += self.extra + self.tx.as_ref().map_or(0, |tx| tx.memory());
        }
        bytes
    }

    /// Checks the quotas for storing `nodes` in this order (C's order: a new node bottom
    /// up, then its existing parent), each seeing the ones before it stored: the node quota
    /// for a created node (`ENOSPC`), the entry size (`ENOSPC`) and the memory of the domain
    /// charged (`EIO`, C `write_node_raw`). Inside a transaction a refused write fails the
    /// transaction (C `write_node`). Nothing is changed.
    pub(crate) fn check_writes(&mut self, nodes: &[Pending<'_>]) -> Result<(), XsdError> {
        let (errno, fails_tx) = match self.check_writes_inner(nodes) {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        if fails_tx && let Some(tx) = &mut self.tx {
            tx.mark_failed();
        }
        Err(errno)
    }

    /// [`View::check_writes`]; the error says whether it fails a transaction.
    fn check_writes_inner(&mut self, nodes: &[Pending<'_>]) -> Result<(), (XsdError, bool)> {
        if is_privileged(self.conn) && self.tx.is_some() {
            return Ok(());
        }
        // Charges so far, by domain (few: the request's domain and owners).
        let mut delta: Vec<(Domid, isize)> = Vec::new();
        let mut created = 0;
        for p in nodes {
            if p.created && !is_privileged(self.conn) {
                // C `domain_entry(conn)`: committed nodes, plus those this request created
                // outside a transaction.
                let own = self.tree.usage(self.conn).entries;
                if own + if self.tx.is_some() { 0 } else { created }
                    >= self.quotas.entries_per_domain
                {
                    // In a transaction the count is the committed one, so the first new node
                    // fails, before anything is written: not a failed transaction (C
                    // `create_node` undoes nothing then).
                    return Err((XsdError::Enospc, false));
                }
                created += 1;
            }
            let record = quota::record_size(p.node);
            if !is_privileged(self.conn) && record >= ENTRY_SIZE_MAX {
                return Err((XsdError::Enospc, true));
            }
            let (payer, old_payer, old, new) = match &self.tx {
                Some(tx) => (
                    self.conn,
                    self.conn,
                    tx.charged(p.path),
                    tx.charge_of(p.path, Some(p.node)),
                ),
                None => {
                    let old = self.tree.get(p.path);
                    (
                        p.node.owner(),
                        old.map_or(0, Node::owner),
                        old.map_or(0, |o| quota::record_size(o) + p.path.len()),
                        record + p.path.len(),
                    )
                }
            };
            add(&mut delta, old_payer, -(old.cast_signed()));
            add(&mut delta, payer, new.cast_signed());
            let pending = delta
                .iter()
                .find(|(d, _)| *d == payer)
                .map_or(0, |&(_, b)| b);
            let total = self.memory_of(payer).saturating_add_signed(pending);
            if !is_privileged(payer) && total >= self.quotas.memory_hard {
                return Err((XsdError::Eio, true));
            }
        }
        Ok(())
    }

    /// Stores `node` at `path` (with a new generation count) after checking its quotas
    /// ([`View::check_writes`], not created).
    pub(crate) fn write(&mut self, path: &str, node: Node) -> Result<(), XsdError> {
        if let Some(tx) = &mut self.tx {
            tx.check_new(path)?;
        }
        self.check_writes(&[Pending {
            path,
            node: &node,
            created: false,
        }])?;
        self.store(path, node);
        Ok(())
    }

    /// Stores `node` at `path` without a check: the caller checked.
    pub(crate) fn store(&mut self, path: &str, node: Node) {
        match &mut self.tx {
            Some(tx) => tx.write(self.tree, path, node),
            None => self.tree.put(path, node),
        }
    }

    /// Counts a node of `owner` created (`+1`) or removed (`-1`) inside a transaction (the
    /// committed tree counts its own).
    pub(crate) fn count_entry(&mut self, owner: Domid, delta: isize, created: bool) {
        if let Some(tx) = &mut self.tx {
            tx.count_entry(owner, delta, created);
        }
    }

    /// Removes the node at `path`.
    pub(crate) fn delete(&mut self, path: &str) {
        match &mut self.tx {
            Some(tx) => tx.delete(self.tree, path),
            None => {
                self.tree.next_generation();
                self.tree.remove(path);
            }
        }
    }

    /// Announces a change of `path` (C `fire_watches`); `node_perms` are the node's
    /// permissions as the change left them (or, for a removal, as they were).
    pub(crate) fn fire(
        &mut self,
        path: &str,
        exact: bool,
        node_perms: Option<Vec<Perm>>,
        old_perms: Option<Vec<Perm>>,
    ) {
        match &mut self.tx {
            Some(tx) => tx.queue_watch(path, exact),
            None => {
                let parent_perms = self.tree.get(path::parent(path)).map(|n| n.perms.clone());
                self.fires.push(Fire {
                    path: String::from(path),
                    exact,
                    node_perms,
                    parent_perms,
                    old_perms,
                });
            }
        }
    }
}

/// Adds `bytes` to `domid`'s entry of `delta`.
fn add(delta: &mut Vec<(Domid, isize)>, domid: Domid, bytes: isize) {
    match delta.iter_mut().find(|(d, _)| *d == domid) {
        Some((_, b)) => *b += bytes,
        None => delta.push((domid, bytes)),
    }
}
