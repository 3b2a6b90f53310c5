//! Node paths: validity (C `is_valid_nodename`), home-relative paths (C `canonicalize`), and
//! the parent/child relations the tree and the watches use.

use crate::Domid;
use abi::io::xs_wire::XENSTORE_REL_PATH_MAX;
use alloc::format;
use alloc::string::String;

/// The home of a domain, which relative paths are resolved against: `/local/domain/<domid>`.
pub(crate) fn home(domid: Domid) -> String {
    format!("/local/domain/{domid}")
}

/// The absolute form of a client path (C `canonicalize`): paths starting with `/` or `@` are
/// kept, others are taken relative to the connection's home. Validity is checked separately.
pub(crate) fn canonicalize(domid: Domid, path: &str) -> String {
    if path.starts_with('/') || path.starts_with('@') {
        String::from(path)
    } else {
        format!("{}/{path}", home(domid))
    }
}

/// Whether `path` names a node (C `is_valid_nodename`): absolute, no trailing `/` (except the
/// root), no `//`, only `[A-Za-z0-9-/_@]`, and at most `XENSTORE_REL_PATH_MAX` bytes beyond a
/// leading `/local/domain/<domid>/`.
///
/// C xenstored 4.17 limits the part after a domain's home to `XENSTORE_REL_PATH_MAX` (2048)
/// and every other path to the same 2048 bytes; `XENSTORE_ABS_PATH_MAX` (3072) is the
/// protocol's outer bound, which these limits never exceed.
pub(crate) fn is_valid_nodename(path: &str) -> bool {
    if !path.starts_with('/') {
        return false;
    }
    if path.ends_with('/') && path != "/" {
        return false;
    }
    if path.contains("//") {
        return false;
    }
    if path.len() > local_prefix_len(path) + XENSTORE_REL_PATH_MAX as usize {
        return false;
    }
    path.bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'/' | b'_' | b'@'))
}

/// The length of a leading `/local/domain/<domid>/`, as C's
/// `sscanf(node, "/local/domain/%5u/%n", ...)` finds it (at most five characters for the
/// number, sign included), or 0.
fn local_prefix_len(path: &str) -> usize {
    const PREFIX: &str = "/local/domain/";
    let Some(rest) = path.strip_prefix(PREFIX) else {
        return 0;
    };
    let bytes = rest.as_bytes();
    let sign = usize::from(matches!(bytes.first(), Some(b'-' | b'+')));
    let digits = bytes[sign..]
        .iter()
        .take(5 - sign)
        .take_while(|b| b.is_ascii_digit())
        .count();
    if digits == 0 || bytes.get(sign + digits) != Some(&b'/') {
        return 0;
    }
    PREFIX.len() + sign + digits + 1
}

/// The parent of a node (C `get_parent`): everything before the last `/` after the first
/// character, or `/`.
pub(crate) fn parent(path: &str) -> &str {
    match path.get(1..).and_then(|tail| tail.rfind('/')) {
        Some(i) => &path[..i + 1],
        None => "/",
    }
}

/// The last component of a path (C `basename`); the root's is empty.
pub(crate) fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or("")
}

/// The path of child `name` of `parent` (C `child_name`).
pub(crate) fn child(parent: &str, name: &str) -> String {
    if parent == "/" {
        format!("/{name}")
    } else {
        format!("{parent}/{name}")
    }
}

/// Whether `child` is `parent` or below it (C `is_child` in `xenstored_watch.c`); everything
/// is below `/`.
pub(crate) fn is_child(child: &str, parent: &str) -> bool {
    if parent == "/" {
        return true;
    }
    match child.strip_prefix(parent) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}
