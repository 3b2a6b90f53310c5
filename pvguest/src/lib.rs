//! `pvguest`: a library OS for Xen PVH guests.
//!
//! Protocol logic lives in [`proto`] and builds and tests on the host; the kernel proper
//! (boot, memory, hypercalls, console) is compiled only for `x86_64-unknown-none`.
#![cfg_attr(target_os = "none", no_std)]

pub mod proto;
