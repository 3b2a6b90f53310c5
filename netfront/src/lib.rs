//! `netfront`: the Xen network front end (the `vif` split driver), safe and host-tested, as a
//! smoltcp `phy::Device`.
//!
//! - [`device`]: [`Netfront::connect`] does the handshake Linux's netback expects (reads `mac`
//!   and `mtu`; publishes per queue `tx-ring-ref`, `rx-ring-ref` and `event-channel`, or
//!   `event-channel-tx` and `-rx` with split channels, in `queue-N/` with several queues
//!   (`multi-queue-num-queues`); `request-rx-copy`, `feature-rx-notify`, and the
//!   [`Offloads`] in use: `feature-no-csum-offload`, `feature-sg`, `feature-gso-tcpv4`;
//!   xenbus states), and runs each queue's two rings with [`NetStats`] counters (per queue:
//!   [`QueueStats`]). A backend that closes, vanishes or corrupts a ring ends the device.
//! - [`flow`]: the tx queue of a frame, by a hash of its flow.
//! - [`tx`]: a pool of buffers in pages granted read-only once and reused; a frame is one
//!   slot, or several with scatter-gather (at most 18); responses checked by id before a
//!   buffer is reused.
//! - [`rx`]: buffers granted once and kept posted; every response checked (id, status,
//!   `offset + size`, flags, `more_data` chains, extra-info slots) before use, data copied
//!   out, bad packets dropped and counted.
//! - [`checksum`]: checksums per frame where smoltcp's per-device setting cannot follow the
//!   flags (offloaded tx frames, rx frames checked or trusted, `csum_blank` completed).
//! - [`config`]: `mac`, `mtu` and the sizes that follow. [`phy`]: the smoltcp device.
//!
//! The platform is reached only through `xenbus`'s traits ([`Platform`]): this crate contains
//! no unsafe code.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod checksum;
pub mod config;
pub mod device;
pub mod error;
pub mod flow;
pub mod phy;
pub mod rx;
pub mod tx;

#[cfg(test)]
mod tests;

pub use config::{MacAddress, VifConfig};
pub use device::{Config, MAX_QUEUES, NetStats, Netfront, Offloads, QueueStats};
pub use error::{BadResponse, NetError};
pub use xenbus::Platform;
