//! Core definitions of `xen/xen.h` and `xen/arch-x86/xen*.h`: hypercall numbers, domain ids and
//! the shared-info page (x86_64).

use core::mem::{align_of, offset_of, size_of};

// ---------------------------------------------------------------------------------------------
// Basic types
// ---------------------------------------------------------------------------------------------

/// `domid_t`: a domain id.
pub type Domid = u16;
/// `xen_pfn_t`: a guest (or machine) page frame number (`unsigned long` on x86_64).
pub type XenPfn = u64;
/// `xen_ulong_t`: Xen's register-sized unsigned integer (`unsigned long` on x86_64).
pub type XenUlong = u64;
/// `xen_domain_handle_t`: a domain's 16-byte handle (a UUID).
pub type XenDomainHandle = [u8; 16];

/// `xen_uuid_t`: a UUID as 16 bytes in big-endian (RFC 4122) order.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenUuid {
    /// The 16 bytes of the UUID.
    pub a: [u8; 16],
}
const _: () = assert!(size_of::<XenUuid>() == 16 && align_of::<XenUuid>() == 1);

// ---------------------------------------------------------------------------------------------
// Hypercall numbers (`__HYPERVISOR_*`); the hypercall page holds one 32-byte stub per number
// ---------------------------------------------------------------------------------------------

/// `__HYPERVISOR_set_trap_table` (PV only).
pub const HYPERVISOR_SET_TRAP_TABLE: u32 = 0;
/// `__HYPERVISOR_mmu_update` (PV only).
pub const HYPERVISOR_MMU_UPDATE: u32 = 1;
/// `__HYPERVISOR_set_gdt` (PV only).
pub const HYPERVISOR_SET_GDT: u32 = 2;
/// `__HYPERVISOR_stack_switch` (PV only).
pub const HYPERVISOR_STACK_SWITCH: u32 = 3;
/// `__HYPERVISOR_set_callbacks` (PV only).
pub const HYPERVISOR_SET_CALLBACKS: u32 = 4;
/// `__HYPERVISOR_fpu_taskswitch` (PV only).
pub const HYPERVISOR_FPU_TASKSWITCH: u32 = 5;
/// `__HYPERVISOR_sched_op_compat`: the pre-3.0.2 scheduler hypercall.
pub const HYPERVISOR_SCHED_OP_COMPAT: u32 = 6;
/// `__HYPERVISOR_platform_op`: platform management (domain 0).
pub const HYPERVISOR_PLATFORM_OP: u32 = 7;
/// `__HYPERVISOR_set_debugreg` (PV only).
pub const HYPERVISOR_SET_DEBUGREG: u32 = 8;
/// `__HYPERVISOR_get_debugreg` (PV only).
pub const HYPERVISOR_GET_DEBUGREG: u32 = 9;
/// `__HYPERVISOR_update_descriptor` (PV only).
pub const HYPERVISOR_UPDATE_DESCRIPTOR: u32 = 10;
/// `__HYPERVISOR_memory_op`: `XENMEM_*` operations (see [`crate::memory`]).
pub const HYPERVISOR_MEMORY_OP: u32 = 12;
/// `__HYPERVISOR_multicall`: a batch of [`MulticallEntry`].
pub const HYPERVISOR_MULTICALL: u32 = 13;
/// `__HYPERVISOR_update_va_mapping` (PV only).
pub const HYPERVISOR_UPDATE_VA_MAPPING: u32 = 14;
/// `__HYPERVISOR_set_timer_op`: one-shot timer at an absolute system time (ns).
pub const HYPERVISOR_SET_TIMER_OP: u32 = 15;
/// `__HYPERVISOR_event_channel_op_compat`: the pre-3.2 event-channel hypercall.
pub const HYPERVISOR_EVENT_CHANNEL_OP_COMPAT: u32 = 16;
/// `__HYPERVISOR_xen_version`: `XENVER_*` queries (see [`crate::version`]).
pub const HYPERVISOR_XEN_VERSION: u32 = 17;
/// `__HYPERVISOR_console_io`: the hypervisor's emergency console (`CONSOLEIO_*`).
pub const HYPERVISOR_CONSOLE_IO: u32 = 18;
/// `__HYPERVISOR_physdev_op_compat`: the pre-3.2 physdev hypercall.
pub const HYPERVISOR_PHYSDEV_OP_COMPAT: u32 = 19;
/// `__HYPERVISOR_grant_table_op`: `GNTTABOP_*` (see [`crate::grant_table`]).
pub const HYPERVISOR_GRANT_TABLE_OP: u32 = 20;
/// `__HYPERVISOR_vm_assist`: enable or disable a `VMASST_TYPE_*` assist.
pub const HYPERVISOR_VM_ASSIST: u32 = 21;
/// `__HYPERVISOR_update_va_mapping_otherdomain` (PV only).
pub const HYPERVISOR_UPDATE_VA_MAPPING_OTHERDOMAIN: u32 = 22;
/// `__HYPERVISOR_iret` (x86 PV only).
pub const HYPERVISOR_IRET: u32 = 23;
/// `__HYPERVISOR_vcpu_op`: `VCPUOP_*` (see [`crate::vcpu`]).
pub const HYPERVISOR_VCPU_OP: u32 = 24;
/// `__HYPERVISOR_set_segment_base` (x86_64 PV only).
pub const HYPERVISOR_SET_SEGMENT_BASE: u32 = 25;
/// `__HYPERVISOR_mmuext_op`: extended MMU operations (`MMUEXT_*`, mostly PV).
pub const HYPERVISOR_MMUEXT_OP: u32 = 26;
/// `__HYPERVISOR_xsm_op`: security-module operations.
pub const HYPERVISOR_XSM_OP: u32 = 27;
/// `__HYPERVISOR_nmi_op`: NMI callback registration.
pub const HYPERVISOR_NMI_OP: u32 = 28;
/// `__HYPERVISOR_sched_op`: `SCHEDOP_*` (see [`crate::sched`]).
pub const HYPERVISOR_SCHED_OP: u32 = 29;
/// `__HYPERVISOR_callback_op`: callback registration (PV).
pub const HYPERVISOR_CALLBACK_OP: u32 = 30;
/// `__HYPERVISOR_xenoprof_op`: profiling.
pub const HYPERVISOR_XENOPROF_OP: u32 = 31;
/// `__HYPERVISOR_event_channel_op`: `EVTCHNOP_*` (see [`crate::event_channel`]).
pub const HYPERVISOR_EVENT_CHANNEL_OP: u32 = 32;
/// `__HYPERVISOR_physdev_op`: physical-device operations.
pub const HYPERVISOR_PHYSDEV_OP: u32 = 33;
/// `__HYPERVISOR_hvm_op`: `HVMOP_*` (see [`crate::hvm`]).
pub const HYPERVISOR_HVM_OP: u32 = 34;
/// `__HYPERVISOR_sysctl`: system control (toolstack).
pub const HYPERVISOR_SYSCTL: u32 = 35;
/// `__HYPERVISOR_domctl`: domain control (toolstack).
pub const HYPERVISOR_DOMCTL: u32 = 36;
/// `__HYPERVISOR_kexec_op`: kexec.
pub const HYPERVISOR_KEXEC_OP: u32 = 37;
/// `__HYPERVISOR_tmem_op`: transcendent memory (removed; always fails).
pub const HYPERVISOR_TMEM_OP: u32 = 38;
/// `__HYPERVISOR_argo_op`: Argo inter-domain messaging.
pub const HYPERVISOR_ARGO_OP: u32 = 39;
/// `__HYPERVISOR_xenpmu_op`: performance-monitoring unit.
pub const HYPERVISOR_XENPMU_OP: u32 = 40;
/// `__HYPERVISOR_dm_op`: device-model operations.
pub const HYPERVISOR_DM_OP: u32 = 41;
/// `__HYPERVISOR_hypfs_op`: hypervisor filesystem.
pub const HYPERVISOR_HYPFS_OP: u32 = 42;
/// `__HYPERVISOR_arch_0`: architecture-specific hypercall 0 (x86: `mca`).
pub const HYPERVISOR_ARCH_0: u32 = 48;
/// `__HYPERVISOR_arch_1`: architecture-specific hypercall 1 (x86: `paging_domctl_cont`).
pub const HYPERVISOR_ARCH_1: u32 = 49;
/// `__HYPERVISOR_arch_2`: architecture-specific hypercall 2.
pub const HYPERVISOR_ARCH_2: u32 = 50;
/// `__HYPERVISOR_arch_3`: architecture-specific hypercall 3.
pub const HYPERVISOR_ARCH_3: u32 = 51;
/// `__HYPERVISOR_arch_4`: architecture-specific hypercall 4.
pub const HYPERVISOR_ARCH_4: u32 = 52;
/// `__HYPERVISOR_arch_5`: architecture-specific hypercall 5.
pub const HYPERVISOR_ARCH_5: u32 = 53;
/// `__HYPERVISOR_arch_6`: architecture-specific hypercall 6.
pub const HYPERVISOR_ARCH_6: u32 = 54;
/// `__HYPERVISOR_arch_7`: architecture-specific hypercall 7.
pub const HYPERVISOR_ARCH_7: u32 = 55;

// ---------------------------------------------------------------------------------------------
// Domain ids
// ---------------------------------------------------------------------------------------------

/// Ids at or above this cannot name ordinary domains.
pub const DOMID_FIRST_RESERVED: Domid = 0x7ff0;
/// The calling domain itself.
pub const DOMID_SELF: Domid = 0x7ff0;
/// Pseudo-domain owning I/O memory (privileged callers only).
pub const DOMID_IO: Domid = 0x7ff1;
/// Pseudo-domain owning Xen's own pages.
pub const DOMID_XEN: Domid = 0x7ff2;
/// Pseudo-domain owning shared copy-on-write pages.
pub const DOMID_COW: Domid = 0x7ff3;
/// Identifies pages with an unknown owner.
pub const DOMID_INVALID: Domid = 0x7ff4;
/// The idle domain.
pub const DOMID_IDLE: Domid = 0x7fff;
/// Mask of valid domain-id bits.
pub const DOMID_MASK: Domid = 0x7fff;

// ---------------------------------------------------------------------------------------------
// Limits
// ---------------------------------------------------------------------------------------------

/// Number of `vcpu_info` slots in the shared-info page (vCPUs beyond it register their own).
pub const XEN_LEGACY_MAX_VCPUS: usize = 32;
/// Xen x86's `MAX_VIRT_CPUS` (internal `asm/config.h`: 1024 MiB of GDT/LDT area at 128 KiB
/// per vCPU): the most vCPUs a domain can have. Not in the public headers.
pub const MAX_VIRT_CPUS: usize = 8192;

// ---------------------------------------------------------------------------------------------
// MMU updates and extended MMU operations (PV; listed for completeness)
// ---------------------------------------------------------------------------------------------

/// `mmu_update.ptr` low bits: checked `*ptr = val` (ptr is a machine address).
pub const MMU_NORMAL_PT_UPDATE: u64 = 0;
/// `mmu_update.ptr` low bits: update the machine-to-physical entry of frame `ptr`.
pub const MMU_MACHPHYS_UPDATE: u64 = 1;
/// `mmu_update.ptr` low bits: `*ptr = val | (*ptr & (A|D))` atomically.
pub const MMU_PT_UPDATE_PRESERVE_AD: u64 = 2;
/// `mmu_update.ptr` low bits: checked `*ptr = val`, `val` never translated.
pub const MMU_PT_UPDATE_NO_TRANSLATE: u64 = 3;

/// `mmuext_op.cmd`: pin an L1 page table.
pub const MMUEXT_PIN_L1_TABLE: u32 = 0;
/// `mmuext_op.cmd`: pin an L2 page table.
pub const MMUEXT_PIN_L2_TABLE: u32 = 1;
/// `mmuext_op.cmd`: pin an L3 page table.
pub const MMUEXT_PIN_L3_TABLE: u32 = 2;
/// `mmuext_op.cmd`: pin an L4 page table.
pub const MMUEXT_PIN_L4_TABLE: u32 = 3;
/// `mmuext_op.cmd`: unpin a page table.
pub const MMUEXT_UNPIN_TABLE: u32 = 4;
/// `mmuext_op.cmd`: switch to a new page-table base.
pub const MMUEXT_NEW_BASEPTR: u32 = 5;
/// `mmuext_op.cmd`: flush the local TLB.
pub const MMUEXT_TLB_FLUSH_LOCAL: u32 = 6;
/// `mmuext_op.cmd`: invalidate one local TLB entry.
pub const MMUEXT_INVLPG_LOCAL: u32 = 7;
/// `mmuext_op.cmd`: flush the TLBs of a set of vCPUs.
pub const MMUEXT_TLB_FLUSH_MULTI: u32 = 8;
/// `mmuext_op.cmd`: invalidate one TLB entry on a set of vCPUs.
pub const MMUEXT_INVLPG_MULTI: u32 = 9;
/// `mmuext_op.cmd`: flush all vCPUs' TLBs.
pub const MMUEXT_TLB_FLUSH_ALL: u32 = 10;
/// `mmuext_op.cmd`: invalidate one TLB entry on all vCPUs.
pub const MMUEXT_INVLPG_ALL: u32 = 11;
/// `mmuext_op.cmd`: write back and invalidate the local caches.
pub const MMUEXT_FLUSH_CACHE: u32 = 12;
/// `mmuext_op.cmd`: set the LDT.
pub const MMUEXT_SET_LDT: u32 = 13;
/// `mmuext_op.cmd`: set the user page-table base (x86_64).
pub const MMUEXT_NEW_USER_BASEPTR: u32 = 15;
/// `mmuext_op.cmd`: zero a page.
pub const MMUEXT_CLEAR_PAGE: u32 = 16;
/// `mmuext_op.cmd`: copy a page.
pub const MMUEXT_COPY_PAGE: u32 = 17;
/// `mmuext_op.cmd`: write back and invalidate all caches.
pub const MMUEXT_FLUSH_CACHE_GLOBAL: u32 = 18;
/// `mmuext_op.cmd`: mark a superpage.
pub const MMUEXT_MARK_SUPER: u32 = 19;
/// `mmuext_op.cmd`: unmark a superpage.
pub const MMUEXT_UNMARK_SUPER: u32 = 20;

/// `update_va_mapping` flags: no flushing at all.
pub const UVMF_NONE: u64 = 0;
/// `update_va_mapping` flags: flush the entire TLB(s).
pub const UVMF_TLB_FLUSH: u64 = 1;
/// `update_va_mapping` flags: flush only one entry.
pub const UVMF_INVLPG: u64 = 2;
/// `update_va_mapping` flags: mask of the flush type.
pub const UVMF_FLUSHTYPE_MASK: u64 = 3;
/// `update_va_mapping` flags: flush a subset of TLBs (OR in a CPU bitmap pointer).
pub const UVMF_MULTI: u64 = 0;
/// `update_va_mapping` flags: flush the local TLB.
pub const UVMF_LOCAL: u64 = 0;
/// `update_va_mapping` flags: flush all TLBs.
pub const UVMF_ALL: u64 = 1 << 2;

/// `struct mmu_update`: one request of `HYPERVISOR_mmu_update` (PV).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MmuUpdate {
    /// Machine address of the PTE, low two bits an `MMU_*` command.
    pub ptr: u64,
    /// New contents of the PTE.
    pub val: u64,
}
const _: () = {
    assert!(size_of::<MmuUpdate>() == 16 && align_of::<MmuUpdate>() == 8);
    assert!(offset_of!(MmuUpdate, ptr) == 0 && offset_of!(MmuUpdate, val) == 8);
};

// ---------------------------------------------------------------------------------------------
// Console, VM assists, multicalls
// ---------------------------------------------------------------------------------------------

/// `HYPERVISOR_console_io` command: write bytes to the hypervisor console.
pub const CONSOLEIO_WRITE: u32 = 0;
/// `HYPERVISOR_console_io` command: read bytes from the hypervisor console.
pub const CONSOLEIO_READ: u32 = 1;

/// `HYPERVISOR_vm_assist` command: enable an assist.
pub const VMASST_CMD_ENABLE: u32 = 0;
/// `HYPERVISOR_vm_assist` command: disable an assist.
pub const VMASST_CMD_DISABLE: u32 = 1;
/// Assist (x86_32 PV): simulate full 4 GiB segment limits.
pub const VMASST_TYPE_4GB_SEGMENTS: u32 = 0;
/// Assist (x86_32 PV): trap whenever the 4 GiB segment assist is used.
pub const VMASST_TYPE_4GB_SEGMENTS_NOTIFY: u32 = 1;
/// Assist (PV): writable page tables.
pub const VMASST_TYPE_WRITABLE_PAGETABLES: u32 = 2;
/// Assist (x86 PAE PV): page directories above 4 GiB.
pub const VMASST_TYPE_PAE_EXTENDED_CR3: u32 = 3;
/// Assist (PV): architectural IOPL semantics.
pub const VMASST_TYPE_ARCHITECTURAL_IOPL: u32 = 4;
/// Assist: Xen sets `XEN_RUNSTATE_UPDATE` in `state_entry_time` while it updates runstate info.
pub const VMASST_TYPE_RUNSTATE_UPDATE_FLAG: u32 = 5;
/// Assist (x86_64 PV): strict machine-to-physical table.
pub const VMASST_TYPE_M2P_STRICT: u32 = 32;

/// `struct multicall_entry`: one call of `HYPERVISOR_multicall`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MulticallEntry {
    /// Hypercall number (`HYPERVISOR_*`).
    pub op: XenUlong,
    /// Return value, written by Xen.
    pub result: XenUlong,
    /// Up to six arguments.
    pub args: [XenUlong; 6],
}
const _: () = {
    assert!(size_of::<MulticallEntry>() == 64 && align_of::<MulticallEntry>() == 8);
    assert!(offset_of!(MulticallEntry, op) == 0);
    assert!(offset_of!(MulticallEntry, result) == 8);
    assert!(offset_of!(MulticallEntry, args) == 16);
};

// ---------------------------------------------------------------------------------------------
// Start-of-day flags (also used by `hvm_start_info.flags`)
// ---------------------------------------------------------------------------------------------

/// `SIF_*`: the domain is privileged.
pub const SIF_PRIVILEGED: u32 = 1 << 0;
/// `SIF_*`: the domain is the initial control domain.
pub const SIF_INITDOMAIN: u32 = 1 << 1;
/// `SIF_*`: `mod_start` is a multiboot module list.
pub const SIF_MULTIBOOT_MOD: u32 = 1 << 2;
/// `SIF_*`: `mod_start` is a PFN (PV).
pub const SIF_MOD_START_PFN: u32 = 1 << 3;
/// `SIF_*`: the toolstack understands a virtually mapped P2M list.
pub const SIF_VIRT_P2M_4TOOLS: u32 = 1 << 4;
/// `SIF_*`: mask of the byte reserved for power-management options.
pub const SIF_PM_MASK: u32 = 0xff << 8;

/// `struct xen_multiboot_mod_list`: one module when `SIF_MULTIBOOT_MOD` is set.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenMultibootModList {
    /// Address of the module's first byte.
    pub mod_start: u32,
    /// Address of the module's last byte (inclusive).
    pub mod_end: u32,
    /// Address of the module's zero-terminated command line.
    pub cmdline: u32,
    /// Unused, must be zero.
    pub pad: u32,
}
const _: () = {
    assert!(size_of::<XenMultibootModList>() == 16 && align_of::<XenMultibootModList>() == 4);
    assert!(offset_of!(XenMultibootModList, mod_start) == 0);
    assert!(offset_of!(XenMultibootModList, mod_end) == 4);
    assert!(offset_of!(XenMultibootModList, cmdline) == 8);
    assert!(offset_of!(XenMultibootModList, pad) == 12);
};

// ---------------------------------------------------------------------------------------------
// Time (pvclock)
// ---------------------------------------------------------------------------------------------

/// `vcpu_time_info.flags`: the TSC is stable across vCPUs (pvclock may be read on any vCPU).
pub const XEN_PVCLOCK_TSC_STABLE_BIT: u8 = 1 << 0;
/// `vcpu_time_info.flags`: the guest was stopped (e.g. paused); watchdogs should not fire.
pub const XEN_PVCLOCK_GUEST_STOPPED: u8 = 1 << 1;

/// `struct vcpu_time_info`: per-vCPU system time (pvclock).
///
/// Xen increments `version` before and after each update (odd = update in progress). Time in ns
/// since boot: `system_time + ((((tsc - tsc_timestamp) << tsc_shift) * tsc_to_system_mul) >> 32)`
/// (a negative `tsc_shift` shifts right).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuTimeInfo {
    /// Update counter; odd while Xen is updating.
    pub version: u32,
    /// Padding.
    pub pad0: u32,
    /// TSC at the last update of the time values.
    pub tsc_timestamp: u64,
    /// System time at `tsc_timestamp`, in ns since boot.
    pub system_time: u64,
    /// TSC-to-ns multiplier (32.32 fixed point, after the shift).
    pub tsc_to_system_mul: u32,
    /// Shift applied to a TSC delta before multiplying (negative shifts right).
    pub tsc_shift: i8,
    /// `XEN_PVCLOCK_*` flags.
    pub flags: u8,
    /// Padding.
    pub pad1: [u8; 2],
}
const _: () = {
    assert!(size_of::<VcpuTimeInfo>() == 32 && align_of::<VcpuTimeInfo>() == 8);
    assert!(offset_of!(VcpuTimeInfo, version) == 0);
    assert!(offset_of!(VcpuTimeInfo, pad0) == 4);
    assert!(offset_of!(VcpuTimeInfo, tsc_timestamp) == 8);
    assert!(offset_of!(VcpuTimeInfo, system_time) == 16);
    assert!(offset_of!(VcpuTimeInfo, tsc_to_system_mul) == 24);
    assert!(offset_of!(VcpuTimeInfo, tsc_shift) == 28);
    assert!(offset_of!(VcpuTimeInfo, flags) == 29);
    assert!(offset_of!(VcpuTimeInfo, pad1) == 30);
};

// ---------------------------------------------------------------------------------------------
// vcpu_info and shared_info
// ---------------------------------------------------------------------------------------------

/// `struct arch_vcpu_info` (x86_64).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ArchVcpuInfo {
    /// Faulting address of the last page fault (PV).
    pub cr2: u64,
    /// Padding (keeps `vcpu_info` at 64 bytes).
    pub pad: u64,
}
const _: () = {
    assert!(size_of::<ArchVcpuInfo>() == 16 && align_of::<ArchVcpuInfo>() == 8);
    assert!(offset_of!(ArchVcpuInfo, cr2) == 0 && offset_of!(ArchVcpuInfo, pad) == 8);
};

/// `struct vcpu_info`: per-vCPU event and time state, in the shared-info page or registered
/// with `VCPUOP_register_vcpu_info`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuInfo {
    /// Non-zero when Xen has an event upcall pending for this vCPU; the guest clears it.
    pub evtchn_upcall_pending: u8,
    /// Non-zero masks event upcalls to this vCPU (PV guests; HVM/PVH upcalls are masked with the
    /// interrupt flag instead).
    pub evtchn_upcall_mask: u8,
    /// One bit per `xen_ulong_t` word of `shared_info.evtchn_pending` with pending events.
    pub evtchn_pending_sel: XenUlong,
    /// Architecture-specific state.
    pub arch: ArchVcpuInfo,
    /// System time of this vCPU.
    pub time: VcpuTimeInfo,
}
const _: () = {
    assert!(size_of::<VcpuInfo>() == 64 && align_of::<VcpuInfo>() == 8);
    assert!(offset_of!(VcpuInfo, evtchn_upcall_pending) == 0);
    assert!(offset_of!(VcpuInfo, evtchn_upcall_mask) == 1);
    assert!(offset_of!(VcpuInfo, evtchn_pending_sel) == 8);
    assert!(offset_of!(VcpuInfo, arch) == 16);
    assert!(offset_of!(VcpuInfo, time) == 32);
};

/// `struct arch_shared_info` (x86_64): PV P2M bookkeeping and the NMI reason.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ArchSharedInfo {
    /// Number of valid P2M entries (PV).
    pub max_pfn: u64,
    /// Frame of the P2M frame-list list (PV); 0 unset, `!0` invalid.
    pub pfn_to_mfn_frame_list_list: XenPfn,
    /// NMI reason bits (PV).
    pub nmi_reason: u64,
    /// CR3 of the address space holding the linear P2M list (PV).
    pub p2m_cr3: u64,
    /// Virtual address of the linear P2M list (PV).
    pub p2m_vaddr: u64,
    /// P2M mapping generation count, odd during an update (PV).
    pub p2m_generation: u64,
}
const _: () = {
    assert!(size_of::<ArchSharedInfo>() == 48 && align_of::<ArchSharedInfo>() == 8);
    assert!(offset_of!(ArchSharedInfo, max_pfn) == 0);
    assert!(offset_of!(ArchSharedInfo, pfn_to_mfn_frame_list_list) == 8);
    assert!(offset_of!(ArchSharedInfo, nmi_reason) == 16);
    assert!(offset_of!(ArchSharedInfo, p2m_cr3) == 24);
    assert!(offset_of!(ArchSharedInfo, p2m_vaddr) == 32);
    assert!(offset_of!(ArchSharedInfo, p2m_generation) == 40);
};

/// Number of `xen_ulong_t` words in `shared_info.evtchn_pending` / `evtchn_mask`
/// (`sizeof(xen_ulong_t) * 8`): 64 words of 64 bits, 4096 two-level event channels.
pub const EVTCHN_WORDS: usize = XenUlong::BITS as usize;

/// `struct shared_info`: the page Xen shares with every domain (mapped with
/// `XENMEM_add_to_physmap` / `XENMAPSPACE_shared_info` on HVM).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SharedInfo {
    /// Event and time state of vCPUs 0..32 (unless they registered their own).
    pub vcpu_info: [VcpuInfo; XEN_LEGACY_MAX_VCPUS],
    /// Two-level event channels: one pending bit per port.
    pub evtchn_pending: [XenUlong; EVTCHN_WORDS],
    /// Two-level event channels: one mask bit per port (guest-owned).
    pub evtchn_mask: [XenUlong; EVTCHN_WORDS],
    /// Wallclock update counter (same protocol as `vcpu_time_info.version`).
    pub wc_version: u32,
    /// Wallclock at system time 0: seconds since the Unix epoch, low 32 bits.
    pub wc_sec: u32,
    /// Wallclock at system time 0: nanoseconds.
    pub wc_nsec: u32,
    /// Wallclock at system time 0: seconds, high 32 bits.
    pub wc_sec_hi: u32,
    /// Architecture-specific state.
    pub arch: ArchSharedInfo,
}
const _: () = {
    assert!(size_of::<SharedInfo>() == 3136 && align_of::<SharedInfo>() == 8);
    assert!(offset_of!(SharedInfo, vcpu_info) == 0);
    assert!(offset_of!(SharedInfo, evtchn_pending) == 2048);
    assert!(offset_of!(SharedInfo, evtchn_mask) == 2560);
    assert!(offset_of!(SharedInfo, wc_version) == 3072);
    assert!(offset_of!(SharedInfo, wc_sec) == 3076);
    assert!(offset_of!(SharedInfo, wc_nsec) == 3080);
    assert!(offset_of!(SharedInfo, wc_sec_hi) == 3084);
    assert!(offset_of!(SharedInfo, arch) == 3088);
};

impl Default for SharedInfo {
    fn default() -> Self {
        Self {
            vcpu_info: [VcpuInfo::default(); XEN_LEGACY_MAX_VCPUS],
            evtchn_pending: [0; EVTCHN_WORDS],
            evtchn_mask: [0; EVTCHN_WORDS],
            wc_version: 0,
            wc_sec: 0,
            wc_nsec: 0,
            wc_sec_hi: 0,
            arch: ArchSharedInfo::default(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// x86 HVM extras
// ---------------------------------------------------------------------------------------------

/// I/O port of the HVM debug console (bytes written appear on Xen's console; QEMU `debugcon`).
pub const XEN_HVM_DEBUGCONS_IOPORT: u16 = 0xe9;
