//! Watches (C `xenstored_watch.c`): registration, which changes a watch sees, who may see
//! them, and the path an event reports.

use crate::perms::{Rights, perm_for_conn};
use crate::{Domid, path};
use abi::io::xs_wire::{Access, Perm};
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

/// A watch event for a connection: the changed path (relative when the watch was registered
/// relative) and the watch's token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchEvent {
    /// The path reported (`XS_WATCH_PATH`).
    pub path: String,
    /// The token given at registration (`XS_WATCH_TOKEN`).
    pub token: String,
}

impl WatchEvent {
    /// Its size on the wire: path and token, each nul-terminated.
    pub fn wire_len(&self) -> usize {
        self.path.len() + self.token.len() + 2
    }
}

/// One registered watch.
#[derive(Clone, Debug)]
pub(crate) struct Watch {
    /// The absolute path watched (or a special `@` name).
    pub node: String,
    /// The token.
    pub token: String,
    /// The home prefix stripped from reported paths when registered relative.
    pub relative: Option<String>,
}

impl Watch {
    /// The path an event for `name` reports (C `get_watch_path`).
    pub(crate) fn event_path<'a>(&self, name: &'a str) -> &'a str {
        match &self.relative {
            Some(prefix) => {
                let rest = name.get(prefix.len()..).unwrap_or("");
                rest.strip_prefix('/').unwrap_or(rest)
            }
            None => name,
        }
    }

    /// Whether a change of `name` reaches this watch (C `fire_watches`): exactly the watched
    /// node for an exact change, the watched node or anything below it otherwise.
    pub(crate) fn sees(&self, name: &str, exact: bool) -> bool {
        if exact {
            self.node == name
        } else {
            path::is_child(name, &self.node)
        }
    }
}

/// A change to announce, with what the permission check needs as it was when it happened.
#[derive(Clone, Debug)]
pub(crate) struct Fire {
    /// The changed node (or a special `@` name).
    pub path: String,
    /// Only watches on exactly this path fire (children of a removed node, special events).
    pub exact: bool,
    /// The node's permissions (`None`: gone).
    pub node_perms: Option<Vec<Perm>>,
    /// The parent's permissions (`None`: gone).
    pub parent_perms: Option<Vec<Perm>>,
    /// The permissions before the change (set-perms, or a transaction's first view).
    pub old_perms: Option<Vec<Perm>>,
}

/// Whether `conn` may see an event for this change (C `watch_permitted`): it could read the
/// node before the change, or can read the node, or can read its parent.
pub(crate) fn permitted(conn: Domid, fire: &Fire) -> bool {
    [&fire.old_perms, &fire.node_perms, &fire.parent_perms]
        .into_iter()
        .flatten()
        .any(|perms| perm_for_conn(conn, perms).contains(Rights::READ))
}

/// The permissions of the special watch names `@introduceDomain` and `@releaseDomain` (C
/// `dom_introduce_perms`, `dom_release_perms`), settable with `XS_SET_PERMS`.
#[derive(Clone, Debug)]
pub(crate) struct SpecialPerms {
    /// `@introduceDomain`.
    pub introduce: Vec<Perm>,
    /// `@releaseDomain`.
    pub release: Vec<Perm>,
}

/// `@introduceDomain`: fired when a domain is introduced.
pub(crate) const INTRODUCE_DOMAIN: &str = "@introduceDomain";
/// `@releaseDomain`: fired when a domain is released.
pub(crate) const RELEASE_DOMAIN: &str = "@releaseDomain";

impl SpecialPerms {
    /// Both owned by domain 0 with no access for others (C `set_dom_perms_default`).
    pub(crate) fn new() -> Self {
        let none0 = vec![Perm {
            domid: 0,
            access: Access::None,
        }];
        Self {
            introduce: none0.clone(),
            release: none0,
        }
    }

    /// The permissions of a special name (C `get_perms_special`).
    pub(crate) fn get(&self, name: &str) -> Option<&Vec<Perm>> {
        match name {
            INTRODUCE_DOMAIN => Some(&self.introduce),
            RELEASE_DOMAIN => Some(&self.release),
            _ => None,
        }
    }

    /// The permissions of a special name, to change.
    pub(crate) fn get_mut(&mut self, name: &str) -> Option<&mut Vec<Perm>> {
        match name {
            INTRODUCE_DOMAIN => Some(&mut self.introduce),
            RELEASE_DOMAIN => Some(&mut self.release),
            _ => None,
        }
    }

    /// Drops `domid` from both lists (C `remove_domid_from_perm`): as owner it becomes
    /// domain 0; its other entries go.
    pub(crate) fn forget(&mut self, domid: Domid) {
        for perms in [&mut self.introduce, &mut self.release] {
            if let Some(owner) = perms.first_mut()
                && owner.domid == domid
            {
                owner.domid = 0;
            }
            let mut first = true;
            perms.retain(|p| core::mem::take(&mut first) || p.domid != domid);
        }
    }
}
