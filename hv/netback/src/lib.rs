//! `netback`: the Xen network back end (the `vif` split driver), as Linux's
//! `drivers/net/xen-netback` behaves, safe and host-tested.
//!
//! - [`device`]: [`Netback`], one vif: the back-end xenbus states (`xenbus::backend`), the
//!   keys Linux writes ([`FEATURE_KEYS`]: `feature-rx-copy` 1, `feature-rx-flip` 0,
//!   `feature-sg` 1, `feature-gso-tcpv4`/`-tcpv6` 1, `feature-split-event-channels` 1,
//!   `multi-queue-max-queues` [`MAX_QUEUES`]), each queue's tx ring with Linux's slot rules (a malformed request
//!   disables the vif, [`FatalError`]; a refused one is answered `NETIF_RSP_ERROR`), the rx
//!   ring filled by copy, per-vif counters ([`NetbackStats`]). Both rings are `abi`'s
//!   [`abi::ring::BackRing`]; data is reached only through
//!   [`xenbus::backend::GrantMapper`], mapped for the copy and unmapped at once (the effect
//!   of Linux's grant copies).
//! - [`checksum`]: completing the TCP/UDP checksum of a frame sent `NETTXF_csum_blank`
//!   before it leaves the vif.
//! - [`gso`]: cutting a TCP packet sent with a GSO extra into segments.
//! - [`gro`]: merging TCP/IPv4 segments that arrive together into one packet for a front end
//!   that takes GSO ([`Netback::deliver_gso`]).
//!
//! Frames are handled synchronously: [`Netback::poll`] takes at most a ring's worth of tx
//! requests (whole packets) and hands each frame to the caller; [`Netback::deliver`] copies
//! one frame to the front end (or queues it while too few buffers are posted, as Linux's
//! netback does; [`Netback::drain_rx`] copies it later) and [`Netback::flush_rx`] publishes
//! the responses with at most one notification. Nothing here panics on what a front end wrote.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod checksum;
pub mod device;
pub mod gro;
pub mod gso;

#[cfg(test)]
mod tests;

pub use checksum::{ChecksumError, complete_checksum};
pub use device::{
    DeliverError, Delivered, FEATURE_KEYS, FatalError, MAX_QUEUES, Netback, NetbackError,
    NetbackStats, RX_DRAIN_TIMEOUT_NS, RX_QUEUE_BYTES,
};
