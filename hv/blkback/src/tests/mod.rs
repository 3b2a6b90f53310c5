//! Host tests: blkfront against blkback in one process (the real ring layout, the fake
//! grant table with Xen's checks, one xenstored for every domain), a front end that
//! misbehaves in every way the protocol allows while another keeps working, and property
//! tests of the request checks and the ring indices.
#![allow(
    clippy::unwrap_used,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "test fixtures: small known sizes, on 64-bit hosts only"
)]

mod disk;
mod features;
mod hostile;
mod interop;
mod multiqueue;
mod props;
mod raw;
mod rig;
