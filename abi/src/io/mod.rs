//! The split-driver protocols of Xen's `public/io/` headers.

pub mod blkif;
pub mod console;
pub mod netif;
pub mod xenbus;
pub mod xs_wire;
