//! What one request sees: the committed tree, or a transaction's view of it. Changes go to
//! the right place and watch events are collected (outside a transaction) or queued in the
//! transaction (C `fire_watches` → `queue_watches`).

use crate::path;
use crate::transaction::Transaction;
use crate::tree::{Node, Tree};
use crate::watch::Fire;
use abi::io::xs_wire::Perm;
use alloc::string::String;
use alloc::vec::Vec;

/// The tree as one request sees it.
pub(crate) struct View<'a> {
    tree: &'a mut Tree,
    tx: Option<&'a mut Transaction>,
    /// Watch events to deliver once the request is done (empty inside a transaction).
    pub fires: Vec<Fire>,
}

impl<'a> View<'a> {
    /// A view of `tree`, through `tx` when given.
    pub(crate) fn new(tree: &'a mut Tree, tx: Option<&'a mut Transaction>) -> Self {
        Self {
            tree,
            tx,
            fires: Vec::new(),
        }
    }

    /// The node at `path`, if it exists in this view.
    pub(crate) fn read(&mut self, path: &str) -> Option<Node> {
        match &mut self.tx {
            Some(tx) => tx.read(self.tree, path),
            None => self.tree.get(path).cloned(),
        }
    }

    /// Stores `node` at `path` (with a new generation count).
    pub(crate) fn write(&mut self, path: &str, node: Node) {
        match &mut self.tx {
            Some(tx) => tx.write(self.tree, path, node),
            None => self.tree.put(path, node),
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
