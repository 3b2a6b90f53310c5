//! Permission checks (C `perm_for_conn`) and the permission list's wire form.

use crate::{Domid, XsdError};
use abi::io::xs_wire::{Access, Perm};
use alloc::vec::Vec;

/// What a connection may do with a node: a set of `XS_PERM_*` bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Rights(u8);

impl Rights {
    /// `XS_PERM_NONE`.
    pub(crate) const NONE: Self = Self(0);
    /// `XS_PERM_READ`.
    pub(crate) const READ: Self = Self(1);
    /// `XS_PERM_WRITE`.
    pub(crate) const WRITE: Self = Self(2);
    /// `XS_PERM_OWNER`: may change the permissions.
    pub(crate) const OWNER: Self = Self(8);
    /// Read, write and owner: what domain 0 and a node's owner hold.
    pub(crate) const ALL: Self = Self(1 | 2 | 8);

    /// Both sets together.
    pub(crate) const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// Whether every right of `other` is in `self`.
    pub(crate) const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether `self` and `other` share a right.
    pub(crate) const fn intersects(self, other: Self) -> bool {
        self.0 & other.0 != 0
    }

    fn of(access: Access) -> Self {
        match access {
            Access::None => Self::NONE,
            Access::Read => Self::READ,
            Access::Write => Self::WRITE,
            Access::Both => Self::READ.union(Self::WRITE),
        }
    }
}

/// Whether `domid` is privileged: domain 0 (C `domid_is_unprivileged` with the default
/// `priv_domid` of 0).
pub(crate) const fn is_privileged(domid: Domid) -> bool {
    domid == 0
}

/// The rights of connection `conn` on a node with permissions `perms` (C `perm_for_conn`):
/// domain 0 and the owner (the first entry's domain) hold everything; otherwise the first
/// later entry naming `conn` decides, else the first entry's access (the default).
pub(crate) fn perm_for_conn(conn: Domid, perms: &[Perm]) -> Rights {
    let Some(owner) = perms.first() else {
        return if is_privileged(conn) {
            Rights::ALL
        } else {
            Rights::NONE
        };
    };
    if is_privileged(conn) || owner.domid == conn {
        return Rights::ALL;
    }
    perms[1..]
        .iter()
        .find(|p| p.domid == conn)
        .map_or(Rights::of(owner.access), |p| Rights::of(p.access))
}

/// Parses `XS_SET_PERMS`'s permission strings (C `xs_strings_to_perms`): each is a letter of
/// `nrwb` and a domain id. Unlike C's `strtol(.., 0)`, only decimal ids up to 65535 are taken
/// (`Perm::parse`); hexadecimal or octal ids are `EINVAL` here.
pub(crate) fn parse_list(strings: &[&[u8]]) -> Result<Vec<Perm>, XsdError> {
    strings
        .iter()
        .map(|s| Perm::parse(s).map_err(|_| XsdError::Einval))
        .collect()
}

/// The `XS_GET_PERMS` reply: each entry's text form, nul-terminated.
pub(crate) fn encode_list(perms: &[Perm]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in perms {
        out.extend_from_slice(alloc::format!("{p}").as_bytes());
        out.push(0);
    }
    out
}
