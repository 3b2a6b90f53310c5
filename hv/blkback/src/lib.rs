//! `blkback`: the Xen block back end (the `vbd` split driver), as Linux's
//! `drivers/block/xen-blkback` behaves, safe and host-tested.
//!
//! - [`disk`]: [`BlockDevice`], the disk behind the back end (hosts and `hv` supply their
//!   own): sector count, read-only, read, write, and a flush that returns only once the data
//!   is durable.
//! - [`request`]: every field of a request a front end wrote, checked as Linux's
//!   `dispatch_rw_block_io` and `xen_vbd_translate` check it, into an operation to serve or
//!   the status to answer (`BLKIF_RSP_ERROR`, `BLKIF_RSP_EOPNOTSUPP`).
//! - [`device`]: [`Blkback`], one vbd: the back-end xenbus states (`xenbus::backend`), the
//!   keys Linux writes, the ring served through `abi`'s [`abi::ring::BackRing`], segments
//!   reached only through [`xenbus::backend::GrantMapper`], responses echoing the request's
//!   id (ids are never assumed unique).
//!
//! Requests are served synchronously, in ring order, at most a ring's worth per
//! [`Blkback::poll`], so a front end that keeps the ring full cannot starve another device.
//! A front end whose producer index is impossible has its ring halted, as Linux does. Nothing
//! here panics on what a front end wrote.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod device;
pub mod disk;
pub mod request;

#[cfg(test)]
mod tests;

pub use device::{Blkback, BlkbackError, BlkbackStats, Features, MAX_PERSISTENT_GRANTS};
pub use disk::{BlockDevice, DiskError};
pub use request::{
    Checked, Indirect, Kind, MAX_INDIRECT_SEGMENTS, Segment, Verdict, check, check_indirect,
};
