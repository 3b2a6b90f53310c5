//! Transactions (C `xenstored_transaction.c`): a private view of the nodes a transaction
//! touched, the generation counts it saw, and the all-or-nothing commit.
//!
//! As in C xenstored 4.17, the first read of a node inside a transaction records the node's
//! generation count (or its absence) and copies the node; later reads and writes use the copy.
//! At commit every recorded generation is compared with the committed tree's: any difference
//! (a change, creation or deletion by someone else since) fails the commit with `EAGAIN` and
//! changes nothing. Otherwise the modified copies replace the committed nodes, each with a new
//! generation count, and the watch events queued for them fire.

use crate::path;
use crate::quota;
use crate::tree::{Node, Tree};
use crate::watch::Fire;
use crate::{Domid, XsdError};
use abi::io::xs_wire::Perm;
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

/// A node the transaction touched (C `struct accessed_node`).
#[derive(Clone, Debug)]
struct Accessed {
    path: String,
    /// The committed generation count at the first read (`None`: the node did not exist).
    observed: Option<u64>,
    /// Whether `observed` is checked at commit (the first access was a read).
    check_gen: bool,
    /// Whether the transaction wrote or deleted the node.
    modified: bool,
    /// The transaction's copy (`None`: absent in the transaction's view).
    local: Option<Node>,
    /// The permissions when first accessed, for the watch check at commit.
    old_perms: Option<Vec<Perm>>,
    /// A queued watch event: `Some(exact)`.
    fire: Option<bool>,
}

/// One open transaction of a connection.
#[derive(Clone, Debug)]
pub(crate) struct Transaction {
    /// The connection-local id (never 0).
    pub id: u32,
    accessed: Vec<Accessed>,
    index: BTreeMap<String, usize>,
    /// Set when a step could not be recorded; the commit then fails (C `trans->fail`).
    fail: bool,
    /// Whether the owner is privileged (domain 0): no quota applies.
    privileged: bool,
    /// Nodes it may touch (the store's [`quota::Quotas::nodes_per_transaction`]).
    max_nodes: usize,
    /// The bytes C puts before a path in a transaction's key (`<generation>/`).
    key_prefix: usize,
    /// Bytes charged to the owner: each accessed node's key, and its copy's record.
    memory: usize,
    /// Whether the transaction created a node (C `trans->node_created`).
    created: bool,
    /// The change of each domain's node count (C `changed_domains`).
    entries: BTreeMap<Domid, isize>,
}

impl Transaction {
    /// An empty transaction of a domain (`privileged`: domain 0) that may touch
    /// `max_nodes` nodes; `generation` is the tree's when it starts (C names the
    /// transaction's keys after it).
    pub(crate) fn new(id: u32, privileged: bool, generation: u64, max_nodes: usize) -> Self {
        let digits = alloc::format!("{generation}").len();
        Self {
            id,
            accessed: Vec::new(),
            index: BTreeMap::new(),
            fail: false,
            privileged,
            max_nodes,
            key_prefix: digits + 1,
            memory: 0,
            created: false,
            entries: BTreeMap::new(),
        }
    }

    /// Bytes charged to the owner for this transaction.
    pub(crate) fn memory(&self) -> usize {
        self.memory
    }

    /// What an accessed entry for `path` holding `local` is charged: its key (C
    /// `<generation>/<path>`) and the copy's record. C charges the key of an entry without a
    /// copy nowhere; it is charged here, so that the bookkeeping of absent nodes is bounded
    /// too.
    pub(crate) fn charge_of(&self, path: &str, local: Option<&Node>) -> usize {
        self.key_prefix + path.len() + local.map_or(0, quota::record_size)
    }

    /// What the entry of `path` is charged now (0 if the transaction has not touched it).
    pub(crate) fn charged(&self, path: &str) -> usize {
        match self.index.get(path).and_then(|&i| self.accessed.get(i)) {
            Some(a) => self.charge_of(path, a.local.as_ref()),
            None => 0,
        }
    }

    /// Whether `path` is new to the transaction and the transaction may not touch another
    /// node (C `access_node`: `ENOSPC`, and the transaction fails).
    pub(crate) fn check_new(&mut self, path: &str) -> Result<(), XsdError> {
        if self.privileged || self.index.contains_key(path) || self.accessed.len() < self.max_nodes
        {
            return Ok(());
        }
        self.fail = true;
        Err(XsdError::Enospc)
    }

    /// Marks the transaction failed: its commit answers `ENOMEM` (C `fail_transaction`).
    pub(crate) fn mark_failed(&mut self) {
        self.fail = true;
    }

    /// Counts a node created (`+1`) or removed (`-1`) for `owner` (C `transaction_entry_inc`
    /// / `_dec`).
    pub(crate) fn count_entry(&mut self, owner: Domid, delta: isize, created: bool) {
        *self.entries.entry(owner).or_default() += delta;
        self.created |= created;
    }

    fn set_local(&mut self, i: usize, local: Option<Node>) {
        let Some(entry) = self.accessed.get(i) else {
            return;
        };
        let old =
            self.key_prefix + entry.path.len() + entry.local.as_ref().map_or(0, quota::record_size);
        let new = self.key_prefix + entry.path.len() + local.as_ref().map_or(0, quota::record_size);
        self.memory = self.memory.saturating_sub(old) + new;
        if let Some(entry) = self.accessed.get_mut(i) {
            entry.local = local;
            entry.modified = true;
        }
    }

    fn entry(&mut self, path: &str) -> Option<&mut Accessed> {
        let i = *self.index.get(path)?;
        self.accessed.get_mut(i)
    }

    fn push(&mut self, entry: Accessed) {
        self.memory += self.charge_of(&entry.path, entry.local.as_ref());
        self.index.insert(entry.path.clone(), self.accessed.len());
        self.accessed.push(entry);
    }

    /// Reads `path` in the transaction's view (C `read_node` + `access_node(READ)`): `ENOSPC`
    /// if it would be one node too many. The copy is charged without a check, as in C.
    pub(crate) fn read(&mut self, tree: &Tree, path: &str) -> Result<Option<Node>, XsdError> {
        if let Some(entry) = self.entry(path) {
            return Ok(entry.local.clone());
        }
        self.check_new(path)?;
        let committed = tree.get(path);
        self.push(Accessed {
            path: String::from(path),
            observed: committed.map(|n| n.generation),
            check_gen: true,
            modified: false,
            local: committed.cloned(),
            old_perms: committed.map(|n| n.perms.clone()),
            fire: None,
        });
        Ok(committed.cloned())
    }

    /// Writes `node` at `path` in the transaction's view (C `access_node(WRITE)`); the
    /// caller checked the quotas.
    pub(crate) fn write(&mut self, tree: &mut Tree, path: &str, mut node: Node) {
        node.generation = tree.next_generation();
        if let Some(&i) = self.index.get(path) {
            self.set_local(i, Some(node));
            return;
        }
        self.push(Accessed {
            path: String::from(path),
            observed: None,
            check_gen: false,
            modified: true,
            old_perms: Some(node.perms.clone()),
            local: Some(node),
            fire: None,
        });
    }

    /// Deletes `path` in the transaction's view (C `access_node(DELETE)`).
    pub(crate) fn delete(&mut self, tree: &mut Tree, path: &str) {
        tree.next_generation();
        if let Some(&i) = self.index.get(path) {
            self.set_local(i, None);
            return;
        }
        self.push(Accessed {
            path: String::from(path),
            observed: None,
            check_gen: false,
            modified: true,
            local: None,
            old_perms: None,
            fire: None,
        });
    }

    /// Queues a watch event for `path`, fired at commit (C `queue_watches`): a recursive event
    /// replaces an exact one, not the other way round.
    pub(crate) fn queue_watch(&mut self, path: &str, exact: bool) {
        let Some(entry) = self.entry(path) else {
            self.fail = true;
            return;
        };
        entry.fire = Some(match entry.fire {
            None => exact,
            Some(was) => was && exact,
        });
    }

    /// Commits into `tree` (C `finalize_transaction`): `EAGAIN` and no change if a node the
    /// transaction read changed since; otherwise the watch events to fire, in the order the
    /// nodes were first accessed. `max_entries` is the store's node quota.
    pub(crate) fn commit(self, tree: &mut Tree, max_entries: usize) -> Result<Vec<Fire>, XsdError> {
        if self.fail {
            return Err(XsdError::Enomem);
        }
        // C `transaction_fix_domains`: the node counts the commit would leave.
        if self.created && !self.privileged {
            for (&domid, &delta) in &self.entries {
                let count = tree.usage(domid).entries.saturating_add_signed(delta);
                if !crate::perms::is_privileged(domid) && count >= max_entries {
                    return Err(XsdError::Enospc);
                }
            }
        }
        let conflict = self
            .accessed
            .iter()
            .any(|a| a.check_gen && tree.get(&a.path).map(|n| n.generation) != a.observed);
        if conflict {
            return Err(XsdError::Eagain);
        }
        let mut fires = Vec::new();
        for entry in self.accessed.into_iter().filter(|a| a.modified) {
            match entry.local {
                Some(node) => tree.put(&entry.path, node),
                None => tree.remove(&entry.path),
            }
            if let Some(exact) = entry.fire {
                // C fires with `node == NULL`: the watcher's check reads the committed tree.
                let node_perms = tree.get(&entry.path).map(|n| n.perms.clone());
                let parent_perms = tree.get(path::parent(&entry.path)).map(|n| n.perms.clone());
                fires.push(Fire {
                    path: entry.path,
                    exact,
                    node_perms,
                    parent_perms,
                    old_perms: entry.old_perms,
                });
            }
        }
        Ok(fires)
    }
}
