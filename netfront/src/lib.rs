//! Xen network front end (the `vif` split driver) for `pvguest`: not implemented yet.
//!
//! This crate will hold the xenbus handshake, the tx/rx rings and the grant bookkeeping of a
//! netfront, exposed as a smoltcp `phy::Device`. It contains no code yet; nothing uses it.
#![no_std]
#![forbid(unsafe_code)]
