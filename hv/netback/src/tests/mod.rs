//! Host tests: netfront against netback in one process (the real ring layout, the fake
//! grant table with Xen's checks, one xenstored for every domain), a hand-written front end
//! that breaks every tx rule while another guest's netfront keeps working, and property tests
//! of every tx request field a front end controls and of the checksum completion.
#![allow(
    clippy::unwrap_used,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap,
    reason = "test fixtures: small known sizes, on 64-bit hosts only"
)]

mod checksum;
mod gro;
mod gso;
mod hostile;
mod interop;
mod props;
mod raw;
mod rig;
