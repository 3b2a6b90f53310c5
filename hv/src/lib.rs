//! `hv`, a tiny type-1 hypervisor speaking the Xen guest ABI.
//!
//! It runs PVH guests with AMD SVM and nested paging and will host the domain-0 services
//! (xenstore, console, netback, blkback). The modules here build and test on the host; the
//! kernel-only runtime is compiled for `x86_64-unknown-none` only.
//!
//! - [`guest`]: guest-physical access and the guest page walk (`copy_from_guest`).
//! - [`builder`]: the domain builder (PVH ELF, `hvm_start_info`, initial registers).
//! - [`cpuid`]: Xen's CPUID leaves from 0x40000000.
#![cfg_attr(target_os = "none", no_std)]

pub mod builder;
pub mod cpuid;
pub mod guest;
