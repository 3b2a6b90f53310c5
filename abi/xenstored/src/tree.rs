//! The committed tree: nodes by absolute path, each with a value, permissions, an ordered
//! child list and a generation count (C's tdb records and the global `generation`).

use crate::Domid;
use crate::quota::{self, Usage};
use abi::io::xs_wire::{Access, Perm};
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

/// One node, as C xenstored stores it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Node {
    /// The value: any bytes.
    pub value: Vec<u8>,
    /// Permissions; the first entry is the owner and the default access.
    pub perms: Vec<Perm>,
    /// Child names in creation order (C keeps them in this order, and `XS_DIRECTORY` lists
    /// them so).
    pub children: Vec<String>,
    /// The generation count of the node's last change (C `node->generation`).
    pub generation: u64,
}

impl Node {
    /// An empty node with these permissions.
    pub(crate) fn empty(perms: Vec<Perm>) -> Self {
        Self {
            value: Vec::new(),
            perms,
            children: Vec::new(),
            generation: 0,
        }
    }

    /// The owner: the first permission entry's domain (the domain charged for the node).
    pub(crate) fn owner(&self) -> Domid {
        self.perms.first().map_or(0, |p| p.domid)
    }
}

/// The committed tree.
#[derive(Clone, Debug)]
pub(crate) struct Tree {
    nodes: BTreeMap<String, Node>,
    /// The global generation counter: bumped before each copy to a changed node.
    generation: u64,
    /// Nodes and bytes by owner (C `nbentry` and the node part of `memory`).
    usage: BTreeMap<Domid, Usage>,
}

impl Tree {
    /// What C xenstored's `setup_structure` creates: `/`, `/tool` and `/tool/xenstored`, all
    /// owned by domain 0 with no access for others.
    pub(crate) fn new() -> Self {
        let mut tree = Self {
            nodes: BTreeMap::new(),
            generation: 0,
            usage: BTreeMap::new(),
        };
        let none0 = || {
            vec![Perm {
                domid: 0,
                access: Access::None,
            }]
        };
        for (path, child) in [
            ("/", Some("tool")),
            ("/tool", Some("xenstored")),
            ("/tool/xenstored", None),
        ] {
            let mut node = Node::empty(none0());
            node.children.extend(child.map(String::from));
            tree.put(path, node);
        }
        tree
    }

    /// The node at `path`.
    pub(crate) fn get(&self, path: &str) -> Option<&Node> {
        self.nodes.get(path)
    }

    /// The current generation count.
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    /// A new generation count (C `++generation`).
    pub(crate) fn next_generation(&mut self) -> u64 {
        self.generation += 1;
        self.generation
    }

    /// Stores `node` at `path` with a new generation count.
    pub(crate) fn put(&mut self, path: &str, mut node: Node) {
        node.generation = self.next_generation();
        self.charge(path, &node, true);
        if let Some(old) = self.nodes.insert(String::from(path), node) {
            self.charge(path, &old, false);
        }
    }

    /// Removes the node at `path` (its children are the caller's business).
    pub(crate) fn remove(&mut self, path: &str) {
        if let Some(old) = self.nodes.remove(path) {
            self.charge(path, &old, false);
        }
    }

    /// Counts `node` at `path` for its owner (`add`) or no longer.
    fn charge(&mut self, path: &str, node: &Node, add: bool) {
        let bytes = quota::record_size(node) + path.len();
        let usage = self.usage.entry(node.owner()).or_default();
        if add {
            usage.entries += 1;
            usage.memory += bytes;
        } else {
            usage.entries = usage.entries.saturating_sub(1);
            usage.memory = usage.memory.saturating_sub(bytes);
        }
    }

    /// What `domid` owns in the committed tree.
    pub(crate) fn usage(&self, domid: Domid) -> Usage {
        self.usage.get(&domid).copied().unwrap_or_default()
    }

    /// Every node, by path.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&String, &Node)> {
        self.nodes.iter()
    }
}
