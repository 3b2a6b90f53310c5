//! The node requests (C `xenstored_core.c`): read, write, mkdir, rm, directory, permissions.
//! Each takes the requesting domain and a [`View`], and answers with C xenstored's reply
//! payload or errno.

use crate::args;
use crate::path;
use crate::perms::{self, Rights, perm_for_conn};
use crate::quota::PERMS_PER_NODE;
use crate::tree::Node;
use crate::view::{Pending, View};
use crate::{Domid, XsdError};
use abi::io::xs_wire::{Perm, XENSTORE_PAYLOAD_MAX};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

/// The `OK` acknowledgement.
pub(crate) const OK: &[u8] = b"OK\0";

/// A path argument: UTF-8 (C would reject any other byte as an invalid character, or, after
/// `@`, accept it; only UTF-8 is kept here) made absolute for `conn`.
pub(crate) fn path_arg(conn: Domid, raw: Option<&[u8]>) -> Result<String, XsdError> {
    let text = raw.and_then(args::text).ok_or(XsdError::Einval)?;
    Ok(path::canonicalize(conn, text))
}

/// The rights of `conn` from the nearest existing ancestor of `name` (C `ask_parents`).
fn ask_parents(view: &mut View<'_>, conn: Domid, name: &str) -> Result<Rights, XsdError> {
    let mut name = name;
    loop {
        name = path::parent(name);
        if let Some(node) = view.read(name)? {
            return Ok(perm_for_conn(conn, &node.perms));
        }
        if name == "/" {
            return Ok(Rights::NONE);
        }
    }
}

/// The node at `name` if `conn` holds `want` on it (C `get_node`): `EINVAL` for an invalid
/// path; otherwise `ENOENT` (missing) or `EACCES` (not allowed), turned into `EACCES` when
/// the nearest existing ancestor grants none of `want`, so that a domain learns nothing about
/// nodes it may not see (C `errno_from_parents`).
pub(crate) fn get_node(
    view: &mut View<'_>,
    conn: Domid,
    name: &str,
    want: Rights,
) -> Result<Node, XsdError> {
    if !path::is_valid_nodename(name) {
        return Err(XsdError::Einval);
    }
    let err = match view.read(name)? {
        Some(node) if perm_for_conn(conn, &node.perms).contains(want) => return Ok(node),
        Some(_) => XsdError::Eacces,
        None => XsdError::Enoent,
    };
    if ask_parents(view, conn, name)?.intersects(want) {
        Err(err)
    } else {
        Err(XsdError::Eacces)
    }
}

/// Creates `name` and its missing ancestors (C `construct_node` + `create_node`): each new
/// node copies its parent's permissions, and an unprivileged creator becomes its owner. The
/// caller has checked write access on the nearest existing ancestor. The quotas of every
/// node are checked before any is stored (C stores bottom up and undoes on a refusal: the
/// same outcome).
fn create_node(
    view: &mut View<'_>,
    conn: Domid,
    name: &str,
    value: &[u8],
) -> Result<Node, XsdError> {
    // Walk up to the nearest existing node.
    let mut missing: Vec<&str> = Vec::new();
    let mut at = name;
    let mut parent = loop {
        missing.push(at);
        if at == "/" {
            // "/" always exists; C gives up the same way.
            return Err(XsdError::Enoent);
        }
        at = path::parent(at);
        if let Some(node) = view.read(at)? {
            break node;
        }
    };
    // Walk down building the missing nodes; each is written after its child (bottom up, as
    // C does), so keep them until the end.
    let mut parent_path = at;
    let mut built: Vec<(&str, Node)> = Vec::new();
    for &new in missing.iter().rev() {
        parent.children.push(String::from(path::basename(new)));
        let mut perms = parent.perms.clone();
        if !perms::is_privileged(conn)
            && let Some(owner) = perms.first_mut()
        {
            owner.domid = conn;
        }
        built.push((parent_path, parent));
        parent = Node::empty(perms);
        parent_path = new;
    }
    parent.value = value.to_vec();
    built.push((parent_path, parent));
    // Bottom up: the new node, its new ancestors, then the existing ancestor.
    let pending: Vec<Pending<'_>> = built
        .iter()
        .rev()
        .enumerate()
        .map(|(i, (path, node))| Pending {
            path,
            node,
            created: i + 1 < built.len(),
        })
        .collect();
    view.check_writes(&pending)?;
    drop(pending);
    let mut created = None;
    for (i, (path, node)) in built.into_iter().rev().enumerate() {
        if i == 0 {
            created = Some(node.clone());
        }
        if path != at {
            view.count_entry(node.owner(), 1, true);
        }
        view.store(path, node);
    }
    created.ok_or(XsdError::Enoent)
}

/// `XS_READ`.
pub(crate) fn read(view: &mut View<'_>, conn: Domid, payload: &[u8]) -> Result<Vec<u8>, XsdError> {
    let name = path_arg(conn, args::onearg(payload))?;
    Ok(get_node(view, conn, &name, Rights::READ)?.value)
}

/// `XS_WRITE`: path, nul, then the value (any bytes, nuls included).
pub(crate) fn write(view: &mut View<'_>, conn: Domid, payload: &[u8]) -> Result<Vec<u8>, XsdError> {
    let split = payload
        .iter()
        .position(|&b| b == 0)
        .ok_or(XsdError::Einval)?;
    let name = path_arg(conn, Some(&payload[..split]))?;
    let value = &payload[split + 1..];
    let node = match get_node(view, conn, &name, Rights::WRITE) {
        Ok(mut node) => {
            node.value = value.to_vec();
            view.write(&name, node.clone())?;
            node
        }
        Err(XsdError::Enoent) => create_node(view, conn, &name, value)?,
        Err(e) => return Err(e),
    };
    view.fire(&name, false, Some(node.perms), None);
    Ok(OK.to_vec())
}

/// `XS_MKDIR`: creates the node if missing (no event if it exists).
pub(crate) fn mkdir(view: &mut View<'_>, conn: Domid, payload: &[u8]) -> Result<Vec<u8>, XsdError> {
    let name = path_arg(conn, args::onearg(payload))?;
    match get_node(view, conn, &name, Rights::WRITE) {
        Ok(_) => {}
        Err(XsdError::Enoent) => {
            let node = create_node(view, conn, &name, b"")?;
            view.fire(&name, false, Some(node.perms), None);
        }
        Err(e) => return Err(e),
    }
    Ok(OK.to_vec())
}

/// `XS_RM` (C `do_rm`): a missing node whose parent exists is fine; removing `/` is
/// `EINVAL`.
pub(crate) fn rm(view: &mut View<'_>, conn: Domid, payload: &[u8]) -> Result<Vec<u8>, XsdError> {
    let name = path_arg(conn, args::onearg(payload))?;
    match get_node(view, conn, &name, Rights::WRITE) {
        Ok(_) if name == "/" => Err(XsdError::Einval),
        Ok(_) => {
            rm_node(view, &name)?;
            Ok(OK.to_vec())
        }
        Err(XsdError::Enoent) if view.read(path::parent(&name))?.is_some() => Ok(OK.to_vec()),
        Err(e) => Err(e),
    }
}

/// Removes `name` and everything below it (C `rm_node` + `delnode_sub`): nodes are read top
/// down and removed bottom up, each removal announcing itself to watches on exactly that node,
/// and `name`'s own removal to watches at or above it too. Iterative: the depth of a tree is
/// bounded only by path length.
pub(crate) fn rm_node(view: &mut View<'_>, name: &str) -> Result<(), XsdError> {
    let parent_path = path::parent(name);
    let Some(mut parent) = view.read(parent_path)? else {
        return Err(XsdError::Einval);
    };
    let Some(root) = view.read(name)? else {
        return Err(XsdError::Enoent);
    };
    let mut stack: Vec<(String, Node, usize)> = alloc::vec![(String::from(name), root, 0)];
    while let Some((at, node, next)) = stack.last_mut() {
        if let Some(child) = node.children.get(*next) {
            let child_path = path::child(at, child);
            *next += 1;
            // A listed child that is missing is C's "corrupt" case: skip it.
            if let Some(child_node) = view.read(&child_path)? {
                stack.push((child_path, child_node, 0));
            }
            continue;
        }
        let Some((at, node, _)) = stack.pop() else {
            break;
        };
        view.delete(&at);
        view.count_entry(node.owner(), -1, false);
        view.fire(&at, at != name, Some(node.perms), None);
    }
    let base = path::basename(name);
    if let Some(i) = parent.children.iter().position(|c| c == base) {
        parent.children.remove(i);
    }
    // The parent shrinks: no quota can refuse it (a transaction's new entry aside, which the
    // reads above already made).
    view.store(parent_path, parent);
    Ok(())
}

/// `XS_DIRECTORY`: the child names, each nul-terminated.
pub(crate) fn directory(
    view: &mut View<'_>,
    conn: Domid,
    payload: &[u8],
) -> Result<Vec<u8>, XsdError> {
    let name = path_arg(conn, args::onearg(payload))?;
    Ok(child_list(&get_node(view, conn, &name, Rights::READ)?))
}

fn child_list(node: &Node) -> Vec<u8> {
    let mut out = Vec::new();
    for c in &node.children {
        out.extend_from_slice(c.as_bytes());
        out.push(0);
    }
    out
}

/// `XS_DIRECTORY_PART` (C `send_directory_part`): path and byte offset into the child list;
/// the reply is the node's generation count, then as many whole child names from the offset
/// as fit, then an empty string once the list's end is reached.
pub(crate) fn directory_part(
    view: &mut View<'_>,
    conn: Domid,
    payload: &[u8],
) -> Result<Vec<u8>, XsdError> {
    if args::count_strings(payload) != 2 {
        return Err(XsdError::Einval);
    }
    let strings = args::strings(payload);
    let name = path_arg(conn, strings.first().copied())?;
    let node = get_node(view, conn, &name, Rights::READ)?;
    // C: `off = atoi(..)` into an unsigned int.
    let off = args::atoi(strings.get(1).copied().unwrap_or(b"")).cast_unsigned() as usize;
    let children = child_list(&node);
    let mut out = format!("{}", node.generation).into_bytes();
    out.push(0);
    if off >= children.len() {
        out.push(0);
        return Ok(out);
    }
    let maxlen = XENSTORE_PAYLOAD_MAX as usize - out.len() - 1;
    let mut len = 0;
    loop {
        let rest = &children[off + len..];
        let name_len = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        if len + name_len >= maxlen {
            break;
        }
        // Every name in `children` ends in a nul, so this stays within the list.
        len += (name_len + 1).min(rest.len());
        if off + len >= children.len() {
            break;
        }
    }
    out.extend_from_slice(&children[off..off + len]);
    if off + len == children.len() {
        out.push(0);
    }
    Ok(out)
}

/// `XS_GET_PERMS`: the permission list, each entry nul-terminated.
pub(crate) fn get_perms(
    view: &mut View<'_>,
    conn: Domid,
    payload: &[u8],
) -> Result<Vec<u8>, XsdError> {
    let name = path_arg(conn, args::onearg(payload))?;
    let node = get_node(view, conn, &name, Rights::READ)?;
    Ok(perms::encode_list(&node.perms))
}

/// The parsed `XS_SET_PERMS` arguments: path and permission list (C `do_set_perms`).
pub(crate) fn set_perms_args(conn: Domid, payload: &[u8]) -> Result<(String, Vec<Perm>), XsdError> {
    let count = args::count_strings(payload);
    if count < 2 {
        return Err(XsdError::Einval);
    }
    // C checks the count before parsing anything.
    if !perms::is_privileged(conn) && count - 1 > PERMS_PER_NODE {
        return Err(XsdError::Enospc);
    }
    let strings = args::strings(payload);
    let list = perms::parse_list(strings.get(1..count).unwrap_or(&[]))?;
    let name = path_arg(conn, strings.first().copied())?;
    Ok((name, list))
}

/// `XS_SET_PERMS` on a node: only its owner or domain 0 may, and only domain 0 may give it
/// another owner (`EPERM`).
pub(crate) fn set_node_perms(
    view: &mut View<'_>,
    conn: Domid,
    name: &str,
    list: Vec<Perm>,
) -> Result<Vec<u8>, XsdError> {
    let mut node = get_node(view, conn, name, Rights::WRITE.union(Rights::OWNER))?;
    let owner = |perms: &[Perm]| perms.first().map(|p| p.domid);
    if !perms::is_privileged(conn) && owner(&list) != owner(&node.perms) {
        return Err(XsdError::Eperm);
    }
    let old = core::mem::replace(&mut node.perms, list);
    let new = node.perms.clone();
    let (old_owner, new_owner) = (owner(&old).unwrap_or(0), node.owner());
    view.write(name, node)?;
    view.count_entry(old_owner, -1, false);
    view.count_entry(new_owner, 1, false);
    view.fire(name, false, Some(new), Some(old));
    Ok(OK.to_vec())
}
