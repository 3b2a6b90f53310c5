//! `hv`, a tiny type-1 hypervisor speaking the Xen guest ABI.
//!
//! hv boots from QEMU's PVH loader, enables AMD SVM, builds one PVH domain (domid 1, one
//! vCPU, 128 MiB like `xl`'s `memory = 128`) from the ELF passed as the first PVH module,
//! and runs it with nested paging, answering its hypercalls as Xen 4.17 would. The guest's
//! console ring goes to the serial port, prefixed `(d1) `. It will later host the domain-0
//! services (xenstore, netback, blkback).
//!
//! Host-testable logic (builds and tests everywhere):
//! - [`guest`]: guest-physical access and the guest page walk (`copy_from_guest`).
//! - [`builder`]: the domain builder (PVH ELF, `hvm_start_info`, initial registers).
//! - [`cpuid`]: Xen's CPUID leaves from 0x40000000.
//! - [`hypercall`]: hypercall dispatch and Xen's answers.
//! - [`npt`]: the nested page tables.
//! - [`boot_info`], [`cmdline`], [`frames`]: what QEMU hands hv, its command line
//!   (`<hv options> -- <guest command line>`), hv's frame allocator.
//! - [`counters`], [`svm`]: exit and hypercall counters, the VMCB layout and exit codes.
//! - [`dom0`]: domain 0's services inside hv (the console backend).
//! - [`grant`]: the domain's grant table v1 (sizes, versions, copy checks, dom0 maps).
//! - [`time`]: TSC scale, `vcpu_time_info` versions, the singleshot timer, the RTC date.
//! - [`evtchn`]: the domain's two-level event channels (port table, pending/mask words).
//!
//! The kernel proper (`kernel`: boot, descriptor tables, serial, SVM, the domain's exit
//! loop, the console backend) builds only for `x86_64-unknown-none`.
//!
//! # Divergences from Xen
//! - Port I/O: every port is intercepted. `IN` reads all ones and `OUT` is dropped, as Xen
//!   answers a PVH domU without a device model; string I/O (`INS`/`OUTS`, e.g. pvguest's
//!   `rep outsb` mirror of its console to port 0xE9) is skipped whole (RIP moves past it,
//!   RSI/RCX stay as they were). Xen would print port 0xE9 bytes in its own log with
//!   `guest_loglvl=all`; hv drops them because the PV console carries the same text.
//! - A nested page fault outside the domain's memory crashes the domain (the run ends with
//!   QEMU exit 35) with a log line naming the address; Xen would emulate MMIO to its
//!   internal devices (HPET, LAPIC, IO-APIC, ...) or ignore the access.
//! - An intercepted MSR that hv does not emulate injects `#GP` for reads and writes; Xen
//!   4.17 answers a few more MSRs (e.g. PAT, APIC base, MTRRs) for a PVH domU.
//! - Hypercalls hv does not implement yet (event channels other than the console send,
//!   grants, timers, vcpu_op, `HVMOP_set_param`, `SCHEDOP_block`/`poll`) answer `-ENOSYS`
//!   and are counted as `COUNTER hypercall.enosys`.
//! - `XENVER_guest_handle` is all zeros (xl gives the domain's UUID); `XENVER_extraversion`,
//!   `compile_info`, `changeset` and `platform_parameters` answer `-ENOSYS` (build-specific
//!   strings hv does not invent).
//! - `HLT` with IF=1 returns at once (no interrupts to wait for yet); with IF=0 it powers
//!   the domain off, as in Xen.
//! - The memory map has RAM and the special pages but no ACPI tables (Xen's toolstack
//!   adds three ACPI ranges at 0xfc000000).
//! - The guest page walk behind `copy_from_guest`/`copy_to_guest` does not set Accessed/Dirty
//!   bits in the guest's page tables (Xen's does); 32-bit, PAE and 5-level guest paging
//!   answer `-EFAULT` (not implemented).
//! - No LAPIC, no timer interrupts, no event upcalls, no pvclock yet (later issues).
#![cfg_attr(target_os = "none", no_std)]

pub mod boot_info;
pub mod builder;
pub mod cmdline;
pub mod counters;
pub mod cpuid;
pub mod dom0;
pub mod evtchn;
pub mod frames;
pub mod grant;
pub mod guest;
pub mod hypercall;
pub mod layout;
pub mod npt;
pub mod svm;
pub mod time;

#[cfg(target_os = "none")]
pub mod kernel;
