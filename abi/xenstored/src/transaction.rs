//! Transactions (C `xenstored_transaction.c`): a private view of the nodes a transaction
//! touched, the generation counts it saw, and the all-or-nothing commit.
//!
//! As in C xenstored 4.17, the first read of a node inside a transaction records the node's
//! generation count (or its absence) and copies the node; later reads and writes use the copy.
//! At commit every recorded generation is compared with the committed tree's: any difference
//! (a change, creation or deletion by someone else since) fails the commit with `EAGAIN` and
//! changes nothing. Otherwise the modified copies replace the committed nodes, each with a new
//! generation count, and the watch events queued for them fire.

use crate::XsdError;
use crate::path;
use crate::tree::{Node, Tree};
use crate::watch::Fire;
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
}

impl Transaction {
    /// An empty transaction.
    pub(crate) fn new(id: u32) -> Self {
        Self {
            id,
            accessed: Vec::new(),
            index: BTreeMap::new(),
            fail: false,
        }
    }

    fn entry(&mut self, path: &str) -> Option<&mut Accessed> {
        let i = *self.index.get(path)?;
        self.accessed.get_mut(i)
    }

    fn push(&mut self, entry: Accessed) {
        self.index.insert(entry.path.clone(), self.accessed.len());
        self.accessed.push(entry);
    }

    /// Reads `path` in the transaction's view (C `read_node` + `access_node(READ)`).
    pub(crate) fn read(&mut self, tree: &Tree, path: &str) -> Option<Node> {
        if let Some(entry) = self.entry(path) {
            return entry.local.clone();
        }
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
        committed.cloned()
    }

    /// Writes `node` at `path` in the transaction's view (C `access_node(WRITE)`).
    pub(crate) fn write(&mut self, tree: &mut Tree, path: &str, mut node: Node) {
        node.generation = tree.next_generation();
        if let Some(entry) = self.entry(path) {
            entry.local = Some(node);
            entry.modified = true;
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
        if let Some(entry) = self.entry(path) {
            entry.local = None;
            entry.modified = true;
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
    /// nodes were first accessed.
    pub(crate) fn commit(self, tree: &mut Tree) -> Result<Vec<Fire>, XsdError> {
        if self.fail {
            return Err(XsdError::Enomem);
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
