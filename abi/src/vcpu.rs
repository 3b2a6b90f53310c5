//! Per-vCPU operations: `xen/vcpu.h` (`HYPERVISOR_vcpu_op(cmd, vcpuid, arg)`).

use core::mem::{align_of, offset_of, size_of};

// ---------------------------------------------------------------------------------------------
// VCPUOP_* (first argument of HYPERVISOR_vcpu_op)
// ---------------------------------------------------------------------------------------------

/// Set a vCPU's initial context (PVH: `vcpu_hvm_context`, from `xen/hvm/hvm_vcpu.h`).
pub const VCPUOP_INITIALISE: u32 = 0;
/// Make an initialised vCPU runnable.
pub const VCPUOP_UP: u32 = 1;
/// Make a vCPU non-runnable.
pub const VCPUOP_DOWN: u32 = 2;
/// Returns 1 if the vCPU is up.
pub const VCPUOP_IS_UP: u32 = 3;
/// Copy the vCPU's runstate; argument [`VcpuRunstateInfo`].
pub const VCPUOP_GET_RUNSTATE_INFO: u32 = 4;
/// Have Xen keep a runstate copy in guest memory; argument [`VcpuRegisterRunstateMemoryArea`].
pub const VCPUOP_REGISTER_RUNSTATE_MEMORY_AREA: u32 = 5;
/// Start a periodic timer; argument [`VcpuSetPeriodicTimer`].
pub const VCPUOP_SET_PERIODIC_TIMER: u32 = 6;
/// Stop the periodic timer; argument NULL.
pub const VCPUOP_STOP_PERIODIC_TIMER: u32 = 7;
/// Arm the one-shot timer (fires `VIRQ_TIMER`); argument [`VcpuSetSingleshotTimer`].
pub const VCPUOP_SET_SINGLESHOT_TIMER: u32 = 8;
/// Disarm the one-shot timer; argument NULL.
pub const VCPUOP_STOP_SINGLESHOT_TIMER: u32 = 9;
/// Move the vCPU's `vcpu_info` into a guest page; argument [`VcpuRegisterVcpuInfo`].
pub const VCPUOP_REGISTER_VCPU_INFO: u32 = 10;
/// Send an NMI to the vCPU; argument NULL.
pub const VCPUOP_SEND_NMI: u32 = 11;
/// Physical CPU id of a vCPU (domain 0); argument [`VcpuGetPhysid`].
pub const VCPUOP_GET_PHYSID: u32 = 12;
/// Have Xen keep a `vcpu_time_info` copy in guest memory; argument
/// [`VcpuRegisterTimeMemoryArea`].
pub const VCPUOP_REGISTER_VCPU_TIME_MEMORY_AREA: u32 = 13;

// ---------------------------------------------------------------------------------------------
// Runstate
// ---------------------------------------------------------------------------------------------

/// The vCPU is running on a physical CPU.
pub const RUNSTATE_RUNNING: i32 = 0;
/// The vCPU is runnable but not scheduled.
pub const RUNSTATE_RUNNABLE: i32 = 1;
/// The vCPU is blocked (idle).
pub const RUNSTATE_BLOCKED: i32 = 2;
/// The vCPU is offline or preempted involuntarily.
pub const RUNSTATE_OFFLINE: i32 = 3;

/// `state_entry_time` bit set while Xen updates a guest-mapped runstate copy
/// (with `VMASST_TYPE_runstate_update_flag`).
pub const XEN_RUNSTATE_UPDATE: u64 = 1 << 63;

/// `struct vcpu_runstate_info`: a vCPU's scheduling state and time in each state.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuRunstateInfo {
    /// Current `RUNSTATE_*`.
    pub state: i32,
    /// System time (ns) the current state was entered.
    pub state_entry_time: u64,
    /// Time (ns) spent in each `RUNSTATE_*`.
    pub time: [u64; 4],
}
const _: () = {
    assert!(size_of::<VcpuRunstateInfo>() == 48 && align_of::<VcpuRunstateInfo>() == 8);
    assert!(offset_of!(VcpuRunstateInfo, state) == 0);
    assert!(offset_of!(VcpuRunstateInfo, state_entry_time) == 8);
    assert!(offset_of!(VcpuRunstateInfo, time) == 16);
};

/// `struct vcpu_register_runstate_memory_area`: argument of
/// `VCPUOP_register_runstate_memory_area`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuRegisterRunstateMemoryArea {
    /// Guest address of a [`VcpuRunstateInfo`] (C union of handle, pointer and `uint64_t`).
    pub addr: u64,
}
const _: () = {
    assert!(size_of::<VcpuRegisterRunstateMemoryArea>() == 8);
    assert!(align_of::<VcpuRegisterRunstateMemoryArea>() == 8);
    assert!(offset_of!(VcpuRegisterRunstateMemoryArea, addr) == 0);
};

// ---------------------------------------------------------------------------------------------
// Timers
// ---------------------------------------------------------------------------------------------

/// `struct vcpu_set_periodic_timer`: argument of `VCPUOP_set_periodic_timer`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuSetPeriodicTimer {
    /// Period in ns.
    pub period_ns: u64,
}
const _: () = {
    assert!(size_of::<VcpuSetPeriodicTimer>() == 8 && align_of::<VcpuSetPeriodicTimer>() == 8);
    assert!(offset_of!(VcpuSetPeriodicTimer, period_ns) == 0);
};

/// `vcpu_set_singleshot_timer.flags`: fail with `-ETIME` if the timeout has passed (Xen may
/// ignore it).
pub const VCPU_SSHOTTMR_FUTURE: u32 = 1 << 0;

/// `struct vcpu_set_singleshot_timer`: argument of `VCPUOP_set_singleshot_timer`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuSetSingleshotTimer {
    /// Absolute system time (ns since boot) to fire at.
    pub timeout_abs_ns: u64,
    /// `VCPU_SSHOTTMR_*`.
    pub flags: u32,
}
const _: () = {
    assert!(size_of::<VcpuSetSingleshotTimer>() == 16);
    assert!(align_of::<VcpuSetSingleshotTimer>() == 8);
    assert!(offset_of!(VcpuSetSingleshotTimer, timeout_abs_ns) == 0);
    assert!(offset_of!(VcpuSetSingleshotTimer, flags) == 8);
};

// ---------------------------------------------------------------------------------------------
// vcpu_info placement, physical ids, time area
// ---------------------------------------------------------------------------------------------

/// `struct vcpu_register_vcpu_info`: argument of `VCPUOP_register_vcpu_info`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuRegisterVcpuInfo {
    /// Guest frame of the page to hold the `vcpu_info`.
    pub mfn: u64,
    /// Byte offset in that page (the 64-byte `vcpu_info` must not cross the page).
    pub offset: u32,
    /// Unused.
    pub rsvd: u32,
}
const _: () = {
    assert!(size_of::<VcpuRegisterVcpuInfo>() == 16 && align_of::<VcpuRegisterVcpuInfo>() == 8);
    assert!(offset_of!(VcpuRegisterVcpuInfo, mfn) == 0);
    assert!(offset_of!(VcpuRegisterVcpuInfo, offset) == 8);
    assert!(offset_of!(VcpuRegisterVcpuInfo, rsvd) == 12);
};

/// `struct vcpu_get_physid`: argument of `VCPUOP_get_physid`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuGetPhysid {
    /// x86: APIC id in bits 31:0, ACPI id in bits 63:32.
    pub phys_id: u64,
}
const _: () = {
    assert!(size_of::<VcpuGetPhysid>() == 8 && align_of::<VcpuGetPhysid>() == 8);
    assert!(offset_of!(VcpuGetPhysid, phys_id) == 0);
};

/// `struct vcpu_register_time_memory_area`: argument of
/// `VCPUOP_register_vcpu_time_memory_area`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuRegisterTimeMemoryArea {
    /// Guest address of a `vcpu_time_info` (C union of handle, pointer and `uint64_t`).
    pub addr: u64,
}
const _: () = {
    assert!(size_of::<VcpuRegisterTimeMemoryArea>() == 8);
    assert!(align_of::<VcpuRegisterTimeMemoryArea>() == 8);
    assert!(offset_of!(VcpuRegisterTimeMemoryArea, addr) == 0);
};
