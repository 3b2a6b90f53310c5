//! `hv`, a tiny type-1 hypervisor speaking the Xen guest ABI.
//!
//! hv boots from QEMU's PVH loader, enables AMD SVM, builds one PVH domain (domid 1, one
//! vCPU, 128 MiB like `xl`'s `memory = 128`) from the ELF passed as the first PVH module,
//! and runs it with nested paging, answering its hypercalls as Xen 4.17 would. The guest's
//! console ring goes to the serial port, prefixed `(d1) `.
//!
//! The host-testable logic ([`cmdline`], [`boot_info`], [`frames`], [`counters`],
//! [`guest_memory`], [`layout`], [`svm::vmcb`], [`hypercall`]) builds everywhere; the kernel
//! proper ([`kernel`]) only for `x86_64-unknown-none`.
//!
//! # Divergences from Xen
//! - Port I/O: every port is intercepted. `IN` reads all ones and `OUT` is dropped, as Xen
//!   answers a PVH domU without a device model; string I/O (`INS`/`OUTS`, e.g. pvguest's
//!   `rep outsb` mirror of its console to port 0xE9) is skipped whole without touching
//!   memory or registers other than RIP. Xen would print port 0xE9 bytes in its own log with
//!   `guest_loglvl=all`; hv drops them because the PV console carries the same text.
//! - A nested page fault outside the domain's memory crashes the domain (the run ends with
//!   QEMU exit 35) with a log line naming the address; Xen would emulate MMIO to its
//!   internal devices (HPET, LAPIC, IO-APIC, ...) or ignore the access.
//! - An intercepted MSR that hv does not emulate injects `#GP` for both reads and writes;
//!   Xen 4.17 answers a few more MSRs (e.g. PAT, APIC base, MTRRs) for a PVH domU.
//! - Hypercalls hv does not implement yet (events, grants, timers, vcpu_op, ...) answer
//!   `-ENOSYS` and are counted as `COUNTER hypercall.enosys`.
//! - No LAPIC, no timer interrupts, no event upcalls yet (later issues).
#![cfg_attr(target_os = "none", no_std)]

pub mod boot_info;
pub mod cmdline;
pub mod counters;
pub mod frames;
pub mod guest_memory;
pub mod hypercall;
pub mod layout;
pub mod npt;
pub mod svm;

#[cfg(target_os = "none")]
pub mod kernel;
