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
//! Not here yet: quotas (C xenstored's per-domain node, watch, transaction and memory limits,
//! with their errno values) come with `hv`'s several-domains work; `XS_INTRODUCE`,
//! `XS_RELEASE`, `XS_CONTROL` and `XS_SET_TARGET` over the wire belong to the connection layer
//! and answer `ENOSYS` (see [`Store::handle`]).
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;
#[cfg(test)]
extern crate std;

mod args;
mod ops;
mod path;
mod perms;
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
