//! `storage`: what a unikernel appliance keeps on its disks, over a small block-device trait.
//!
//! - [`tar`]: a read-only ustar archive (the first disk), indexed by reading its 512-byte
//!   headers one at a time and read file by file on demand; never the whole archive in memory.
//! - [`kv`]: a durable key-value store (the second disk): a checksummed, chained log in one of
//!   two regions, compacted into the other when it fills; a put is acknowledged only after its
//!   records and commit record are written and a flush completed.
//!
//! - [`Slice`]: a byte range of a disk as a disk (the store can live past other data).
//!
//! Both reach the disk only through [`BlockDevice`] (byte offsets and lengths in 512-byte
//! sectors, at most [`MAX_TRANSFER`] bytes a call); the kernel implements it over `blkfront`,
//! host tests over the fakes in `fake` (feature `test-utils`), one of which loses every
//! write not covered by a completed flush and can tear the last sector at a power cut.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod device;
#[cfg(any(test, feature = "test-utils"))]
pub mod fake;
pub mod kv;
pub mod slice;
pub mod tar;

pub use device::{BlockDevice, MAX_TRANSFER, SECTOR};
pub use slice::Slice;
