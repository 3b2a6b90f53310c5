//! `blkfront`: the Xen block front end (the `vbd` split driver), safe and host-tested.
//!
//! [`Blkfront::connect`] performs the handshake Linux's blkback expects (ring page, event
//! channel, `protocol`, the xenbus states) and reads the disk's keys ([`DiskInfo`]); requests
//! go on the shared ring up to its 32 slots (with the backend's `max-ring-page-order`, a ring
//! of up to [`FRONT_MAX_RING_PAGE_ORDER`]'s 4 pages and 128 slots, `ring-ref0`..`ring-ref3`)
//! with 11 page segments each (or, with
//! `feature-max-indirect-segments`, up to [`FRONT_MAX_INDIRECT_SEGMENTS`] listed in an indirect
//! page: [`Features`] says which optional features may be used), notifications only when
//! the ring rules ask; every response is validated (id in range and outstanding, operation,
//! status) before it completes anything, and a bad one is counted and fails its request. Data
//! pages are granted per request and their grants ended on completion, or with
//! `feature-persistent` taken from a pool granted once and kept while connected ([`BlkStats`]
//! counts what is in place and what each feature did). `feature-discard` allows
//! [`Blkfront::submit_discard`]. Each feature is used only when both the backend offers it and
//! [`Features`] allows it, so either end may lack it. A backend that closes or vanishes ends
//! the device with an error to every waiting caller.
//!
//! The platform is reached only through `xenbus`'s traits ([`Platform`]): this crate contains
//! no unsafe code. Sizes and offsets are bytes; the wire counts 512-byte sectors (as Linux
//! does, whatever `sector-size` says).
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod device;
pub mod error;
pub mod features;
mod inflight;
pub mod info;

#[cfg(test)]
mod tests;

pub use device::{BlkStats, Blkfront, Completion, MAX_REQUEST_BYTES, RequestId};
pub use error::{BadResponse, BlkError, ResizeRefused};
pub use features::{
    FRONT_MAX_INDIRECT_SEGMENTS, FRONT_MAX_QUEUES, FRONT_MAX_RING_PAGE_ORDER, Features,
};
pub use info::{Discard, DiskInfo, FlushMode};
pub use xenbus::Platform;
