//! `hv`, a tiny type-1 hypervisor speaking the Xen guest ABI: not implemented yet.
//!
//! It will run PVH guests with AMD SVM and nested paging and host the domain-0 services
//! (xenstore, console, netback, blkback). Nothing here boots yet; `cargo xtask run` says so.
#![cfg_attr(target_os = "none", no_std)]
