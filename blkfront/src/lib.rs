//! Xen block front end (the `vbd` split driver) for `pvguest`: not implemented yet.
//!
//! This crate will hold the xenbus handshake, the request ring, segments, completions and a
//! block-device API. It contains no code yet; nothing uses it.
#![no_std]
#![forbid(unsafe_code)]
