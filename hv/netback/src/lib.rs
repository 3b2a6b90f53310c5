//! `netback`: the Xen network back end (the `vif` split driver), as Linux's
//! `drivers/net/xen-netback` behaves, safe and host-tested.
//!
//! - [`device`]: [`Netback`], one vif: the back-end xenbus states (`xenbus::backend`), the
//!   keys Linux writes, the two rings served through `abi`'s [`abi::ring::BackRing`], data
//!   reached only through [`xenbus::backend::GrantMapper`] (map, copy, unmap at once: the
//!   effect of Linux's grant copies), per-vif counters ([`NetbackStats`]).
//!
//! Nothing here panics on what a front end wrote.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod device;

pub use device::{DeliverError, Netback, NetbackError, NetbackStats};
