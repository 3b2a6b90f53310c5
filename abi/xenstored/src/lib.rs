//! The xenstore server core: the tree of nodes, per-domain permissions, transactions and
//! watches, answering requests the way Xen 4.17's C xenstored (`tools/xenstore/`) does.
//!
//! [`Store::handle`] takes one request (message type, transaction id, payload) from a
//! connection, named by its domain id, and returns the reply payload or an [`XsdError`]; watch
//! events it causes are queued per connection ([`Store::take_events`]). There is no ring or
//! socket here: `hv`'s connection layer frames messages and moves them over the shared page, and
//! `xenbus`'s test utilities wrap this crate as a fake xenstored.
//!
//! Deliberately different from C: paths, `@` names and watch tokens must be UTF-8 (other bytes
//! are `EINVAL`); permission entries take decimal domain ids up to 65535 only. Not modelled:
//! the hypervisor's domain list (C marks permission entries of domains that do not exist, or
//! died and had their id reused, as ignored, and answers `ENOENT` for such an owner), and
//! `XS_SET_TARGET`'s acting for another domain.
//!
//! `XS_INTRODUCE`, `XS_RELEASE`, `XS_CONTROL` and `XS_SET_TARGET` over the wire belong to
//! the connection layer and answer `ENOSYS` (see [`Store::handle`]).
//!
//! # Quotas
//!
//! C xenstored 4.17's quotas with its defaults and errnos ([`quota`] has each constant and
//! its C name). They bind every domain but domain 0:
//!
//! | quota | default | past it |
//! |---|---|---|
//! | nodes a domain owns | 1,000 | `ENOSPC` (a commit leaving 1,000 is `ENOSPC` too) |
//! | size of a node record | below 2,048 bytes | `ENOSPC` |
//! | entries of one `XS_SET_PERMS` | 5 | `ENOSPC` |
//! | watches of a domain | 128 (C's `>`: the 130th fails) | `E2BIG` |
//! | open transactions of a domain | 10 (C's `>`: the 12th fails) | `ENOSPC` |
//! | nodes one transaction touches | 1,024 | `ENOSPC`, and the commit `ENOMEM` |
//! | path length below a home, or of any other path | 2,048 bytes | `EINVAL` |
//! | memory charged to a domain (hard) | 2.5 MiB | a node write `EIO`; a watch, or a reply over 16 bytes, `ENOMEM`; a watch event dropped; the connection layer reads no request while at or above it |
//! | memory (soft) | 2 MiB | nothing (C logs) |
//! | requests outstanding | 20 | the connection layer's: no request is read |
//!
//! `XENSTORE_ABS_PATH_MAX` (3,072) is the protocol's bound; C 4.17 uses none beyond the path
//! lengths above (a path below a home is at most `/local/domain/65535/` and 2,048 bytes).
//!
//! **The accounting rule.** A node record is C's `write_node_raw` size: 24 bytes of header,
//! 8 per permission entry, the value, and each child name with its nul. A domain is charged
//! the record and the path of every committed node it owns (the first permission entry's
//! domain, whoever wrote it); for each of its open transactions, the key (`<generation>/`
//! and the path) of every node the transaction touched and the record of its copy; the path
//! and token of each of its watches; each watch event queued for it in the store (the
//! payload and a 16-byte header); and, for the check only, the reply being sent (C charges
//! replies and events until they are written to the ring; hv's connection layer bounds its
//! own queue instead). C charges the same, except the key of a touched node that
//! does not exist, which it leaves unaccounted and this crate charges. Every check runs
//! before the change is stored: a refused request leaves the store as it was, and what it
//! built on the way is at most a few times its payload and freed at once. Reads inside a
//! transaction are charged without a check, as in C, so a domain may pass its hard memory
//! quota by one request's reads; [`Store::memory_hard_exceeded`] tells the connection layer
//! to stop reading its requests (C `domain_can_read`), which bounds what it holds.
//!
//! What a domain can make the store hold at all its quotas, in Rust's collections, is
//! measured by `tests/heap_per_domain.rs`; [`quota::HEAP_PER_DOMAIN`] is twice the worst of
//! it, the figure a host sizes its heap by, one per domain.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;
#[cfg(test)]
extern crate std;

mod args;
mod ops;
mod path;
mod perms;
pub mod quota;
mod store;
mod transaction;
mod tree;
mod view;
mod watch;

#[cfg(test)]
mod tests;

pub use abi::io::xs_wire::{Access, Perm, XsdError};
pub use abi::xen::Domid;
pub use store::Store;
pub use watch::WatchEvent;
