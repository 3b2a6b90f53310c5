//! HVM operations and parameters: `xen/hvm/hvm_op.h`, `xen/hvm/params.h` and
//! `xen/hvm/hvm_info_table.h` (x86).

use core::mem::{align_of, offset_of, size_of};

use crate::xen::Domid;

// ---------------------------------------------------------------------------------------------
// HVMOP_* (first argument of HYPERVISOR_hvm_op)
// ---------------------------------------------------------------------------------------------

/// Set an HVM parameter; argument [`XenHvmParam`].
pub const HVMOP_SET_PARAM: u32 = 0;
/// Get an HVM parameter; argument [`XenHvmParam`].
pub const HVMOP_GET_PARAM: u32 = 1;
/// Flush all vCPUs' TLBs; the argument must be NULL.
pub const HVMOP_FLUSH_TLBS: u32 = 5;
/// Hint that a page table is about to be destroyed; argument [`XenHvmPagetableDying`].
pub const HVMOP_PAGETABLE_DYING: u32 = 9;
/// Current Xen system time in ns since boot; argument [`XenHvmGetTime`].
pub const HVMOP_GET_TIME: u32 = 10;
/// Emit a trace record (`struct xen_hvm_xentrace`).
pub const HVMOP_XENTRACE: u32 = 11;
/// Memory type of a guest frame; argument [`XenHvmGetMemType`].
pub const HVMOP_GET_MEM_TYPE: u32 = 15;
/// Set a per-vCPU event-channel upcall vector; argument [`XenHvmEvtchnUpcallVector`].
pub const HVMOP_SET_EVTCHN_UPCALL_VECTOR: u32 = 23;
/// Send a guest-requested vm_event.
pub const HVMOP_GUEST_REQUEST_VM_EVENT: u32 = 24;
/// Alternate-p2m operations (`struct xen_hvm_altp2m_op`).
pub const HVMOP_ALTP2M: u32 = 25;
/// `xen_hvm_altp2m_op.version` this interface expects.
pub const HVMOP_ALTP2M_INTERFACE_VERSION: u32 = 0x0000_0001;

/// `struct xen_hvm_param`: argument of `HVMOP_{set,get}_param`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenHvmParam {
    /// IN: target domain (`DOMID_SELF` for oneself).
    pub domid: Domid,
    /// Padding.
    pub pad: u16,
    /// IN: parameter index (`HVM_PARAM_*`).
    pub index: u32,
    /// IN (set) / OUT (get): the parameter's value.
    pub value: u64,
}
const _: () = {
    assert!(size_of::<XenHvmParam>() == 16 && align_of::<XenHvmParam>() == 8);
    assert!(offset_of!(XenHvmParam, domid) == 0);
    assert!(offset_of!(XenHvmParam, pad) == 2);
    assert!(offset_of!(XenHvmParam, index) == 4);
    assert!(offset_of!(XenHvmParam, value) == 8);
};

/// `struct xen_hvm_pagetable_dying`: argument of `HVMOP_pagetable_dying`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenHvmPagetableDying {
    /// Domain whose page table is about to be destroyed.
    pub domid: Domid,
    /// Padding.
    pub pad: [u16; 3],
    /// Guest-physical address of the top-level page table.
    pub gpa: u64,
}
const _: () = {
    assert!(size_of::<XenHvmPagetableDying>() == 16 && align_of::<XenHvmPagetableDying>() == 8);
    assert!(offset_of!(XenHvmPagetableDying, domid) == 0);
    assert!(offset_of!(XenHvmPagetableDying, pad) == 2);
    assert!(offset_of!(XenHvmPagetableDying, gpa) == 8);
};

/// `struct xen_hvm_get_time`: argument of `HVMOP_get_time`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenHvmGetTime {
    /// OUT: Xen system time in ns since boot.
    pub now: u64,
}
const _: () = {
    assert!(size_of::<XenHvmGetTime>() == 8 && align_of::<XenHvmGetTime>() == 8);
    assert!(offset_of!(XenHvmGetTime, now) == 0);
};

/// `struct xen_hvm_get_mem_type`: argument of `HVMOP_get_mem_type`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenHvmGetMemType {
    /// IN: domain to query.
    pub domid: Domid,
    /// OUT: the frame's `HVMMEM_*` type.
    pub mem_type: u16,
    /// Padding.
    pub pad: [u16; 2],
    /// IN: the guest frame number.
    pub pfn: u64,
}
const _: () = {
    assert!(size_of::<XenHvmGetMemType>() == 16 && align_of::<XenHvmGetMemType>() == 8);
    assert!(offset_of!(XenHvmGetMemType, domid) == 0);
    assert!(offset_of!(XenHvmGetMemType, mem_type) == 2);
    assert!(offset_of!(XenHvmGetMemType, pad) == 4);
    assert!(offset_of!(XenHvmGetMemType, pfn) == 8);
};

/// `struct xen_hvm_evtchn_upcall_vector`: argument of `HVMOP_set_evtchn_upcall_vector`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenHvmEvtchnUpcallVector {
    /// vCPU whose upcalls are delivered on `vector`.
    pub vcpu: u32,
    /// Local APIC vector of the upcall.
    pub vector: u8,
}
const _: () = {
    assert!(size_of::<XenHvmEvtchnUpcallVector>() == 8);
    assert!(align_of::<XenHvmEvtchnUpcallVector>() == 4);
    assert!(offset_of!(XenHvmEvtchnUpcallVector, vcpu) == 0);
    assert!(offset_of!(XenHvmEvtchnUpcallVector, vector) == 4);
};

// ---------------------------------------------------------------------------------------------
// hvmmem_type_t (HVMOP_get_mem_type results)
// ---------------------------------------------------------------------------------------------

/// Normal read/write guest RAM.
pub const HVMMEM_RAM_RW: u16 = 0;
/// Read-only RAM; writes are discarded.
pub const HVMMEM_RAM_RO: u16 = 1;
/// Reads and writes go to the device model.
pub const HVMMEM_MMIO_DM: u16 = 2;
/// Placeholder (was `HVMMEM_mmio_write_dm`); setting it fails.
pub const HVMMEM_UNUSED: u16 = 3;
/// Memory claimed by an ioreq server.
pub const HVMMEM_IOREQ_SERVER: u16 = 4;

// ---------------------------------------------------------------------------------------------
// HVM_PARAM_* (index of xen_hvm_param)
// ---------------------------------------------------------------------------------------------

/// How vCPU 0's event-channel notifications are delivered (0 = not at all; else
/// `type << 56 | value`, see [`HVM_PARAM_CALLBACK_TYPE_VECTOR`]).
pub const HVM_PARAM_CALLBACK_IRQ: u32 = 0;
/// xenstore ring page (guest frame number).
pub const HVM_PARAM_STORE_PFN: u32 = 1;
/// xenstore event channel port.
pub const HVM_PARAM_STORE_EVTCHN: u32 = 2;
/// Synchronous ioreq page of the default device model (frame number).
pub const HVM_PARAM_IOREQ_PFN: u32 = 5;
/// Buffered ioreq page of the default device model (frame number).
pub const HVM_PARAM_BUFIOREQ_PFN: u32 = 6;
/// Viridian (Hyper-V) enlightenment feature mask (`HVMPV_*`).
pub const HVM_PARAM_VIRIDIAN: u32 = 9;
/// Virtual-timer mode (`HVMPTM_*`).
pub const HVM_PARAM_TIMER_MODE: u32 = 10;
/// Boolean: virtual HPET enabled.
pub const HVM_PARAM_HPET_ENABLED: u32 = 11;
/// Identity-map page directory used by Intel EPT when CR0.PG=0.
pub const HVM_PARAM_IDENT_PT: u32 = 12;
/// ACPI S state (S0 or S3).
pub const HVM_PARAM_ACPI_S_STATE: u32 = 14;
/// TSS used on Intel when CR0.PE=0.
pub const HVM_PARAM_VM86_TSS: u32 = 15;
/// Boolean: align periodic virtual timers to reduce interrupts.
pub const HVM_PARAM_VPT_ALIGN: u32 = 16;
/// PV console ring page (guest frame number).
pub const HVM_PARAM_CONSOLE_PFN: u32 = 17;
/// PV console event channel port.
pub const HVM_PARAM_CONSOLE_EVTCHN: u32 = 18;
/// Location of the ACPI PM1a/TMR blocks (0 = old, 1 = QEMU's).
pub const HVM_PARAM_ACPI_IOPORTS_LOCATION: u32 = 19;
/// Paging mem-event ring page.
pub const HVM_PARAM_PAGING_RING_PFN: u32 = 27;
/// Monitor mem-event ring page.
pub const HVM_PARAM_MONITOR_RING_PFN: u32 = 28;
/// Sharing mem-event ring page.
pub const HVM_PARAM_SHARING_RING_PFN: u32 = 29;
/// `SHUTDOWN_*` reason used on a triple fault.
pub const HVM_PARAM_TRIPLE_FAULT_REASON: u32 = 31;
/// First ioreq-server page.
pub const HVM_PARAM_IOREQ_SERVER_PFN: u32 = 32;
/// Number of ioreq-server pages.
pub const HVM_PARAM_NR_IOREQ_SERVER_PAGES: u32 = 33;
/// Guest-physical address of the VM generation id.
pub const HVM_PARAM_VM_GENERATION_ID_ADDR: u32 = 34;
/// altp2m mode (`XEN_ALTP2M_*`).
pub const HVM_PARAM_ALTP2M: u32 = 35;
/// Width of the x87 FIP/FDP registers Xen saves (0, 4 or 8 bytes).
pub const HVM_PARAM_X87_FIP_WIDTH: u32 = 36;
/// VM86 TSS address (low 32 bits) and size (high 32 bits).
pub const HVM_PARAM_VM86_TSS_SIZED: u32 = 37;
/// Machine-check capabilities (`XEN_HVM_MCA_CAP_*`).
pub const HVM_PARAM_MCA_CAP: u32 = 38;
/// Number of HVM parameters (valid indices are below it).
pub const HVM_NR_PARAMS: u32 = 39;

// ---------------------------------------------------------------------------------------------
// HVM_PARAM_CALLBACK_IRQ encoding: bits 63:56 = type, bits 55:0 = type-specific
// ---------------------------------------------------------------------------------------------

/// Mask of the callback type in `HVM_PARAM_CALLBACK_IRQ` (bits 63:56).
pub const HVM_PARAM_CALLBACK_IRQ_TYPE_MASK: u64 = 0xff00_0000_0000_0000;
/// Bit position of the callback type in `HVM_PARAM_CALLBACK_IRQ` (Rust-only name).
pub const HVM_PARAM_CALLBACK_TYPE_SHIFT: u32 = 56;
/// Callback type: value bits 55:0 is a GSI (GSI 0 cannot be used).
pub const HVM_PARAM_CALLBACK_TYPE_GSI: u64 = 0;
/// Callback type: value bits 55:0 is a PCI INTx line (domain 47:32, bus 31:16, devfn 15:8,
/// INTx 1:0).
pub const HVM_PARAM_CALLBACK_TYPE_PCI_INTX: u64 = 1;
/// Callback type (x86): value bits 7:0 is an IDT vector (needs `XENFEAT_hvm_callback_vector`).
pub const HVM_PARAM_CALLBACK_TYPE_VECTOR: u64 = 2;

/// `HVM_PARAM_CALLBACK_IRQ` value delivering events on IDT vector `vector`.
pub const fn callback_via_vector(vector: u8) -> u64 {
    (HVM_PARAM_CALLBACK_TYPE_VECTOR << HVM_PARAM_CALLBACK_TYPE_SHIFT) | vector as u64
}

/// `HVM_PARAM_CALLBACK_IRQ` value delivering events on GSI `gsi` (nonzero: a value of 0 means
/// "no callback").
pub const fn callback_via_gsi(gsi: u32) -> u64 {
    (HVM_PARAM_CALLBACK_TYPE_GSI << HVM_PARAM_CALLBACK_TYPE_SHIFT) | gsi as u64
}

/// `HVM_PARAM_CALLBACK_IRQ` value delivering events on a PCI INTx line
/// (`intx`: 0 = INTA .. 3 = INTD; only its low two bits are used).
pub const fn callback_via_pci_intx(segment: u16, bus: u8, devfn: u8, intx: u8) -> u64 {
    (HVM_PARAM_CALLBACK_TYPE_PCI_INTX << HVM_PARAM_CALLBACK_TYPE_SHIFT)
        | (segment as u64) << 32
        | (bus as u64) << 16
        | (devfn as u64) << 8
        | (intx & 3) as u64
}

// ---------------------------------------------------------------------------------------------
// Parameter values
// ---------------------------------------------------------------------------------------------

/// `HVM_PARAM_TIMER_MODE`: deliver missed ticks late, advancing vCPU time stepwise (default).
pub const HVMPTM_DELAY_FOR_MISSED_TICKS: u64 = 0;
/// `HVM_PARAM_TIMER_MODE`: deliver missed ticks; guest time tracks wallclock time.
pub const HVMPTM_NO_DELAY_FOR_MISSED_TICKS: u64 = 1;
/// `HVM_PARAM_TIMER_MODE`: hold no missed ticks pending.
pub const HVMPTM_NO_MISSED_TICKS_PENDING: u64 = 2;
/// `HVM_PARAM_TIMER_MODE`: collapse missed ticks into one late tick.
pub const HVMPTM_ONE_MISSED_TICK_PENDING: u64 = 3;

/// `HVM_PARAM_ALTP2M`: altp2m disabled (default).
pub const XEN_ALTP2M_DISABLED: u64 = 0;
/// `HVM_PARAM_ALTP2M`: all altp2m ops for the guest and external tools.
pub const XEN_ALTP2M_MIXED: u64 = 1;
/// `HVM_PARAM_ALTP2M`: altp2m ops for external privileged tools only.
pub const XEN_ALTP2M_EXTERNAL: u64 = 2;
/// `HVM_PARAM_ALTP2M`: the guest has limited access (VMFUNC and #VE).
pub const XEN_ALTP2M_LIMITED: u64 = 3;

/// `HVM_PARAM_MCA_CAP`: local machine-check exceptions (LMCE).
pub const XEN_HVM_MCA_CAP_LMCE: u64 = 1 << 0;
/// `HVM_PARAM_MCA_CAP`: mask of all defined capabilities.
pub const XEN_HVM_MCA_CAP_MASK: u64 = XEN_HVM_MCA_CAP_LMCE;

// ---------------------------------------------------------------------------------------------
// hvm_info_table.h
// ---------------------------------------------------------------------------------------------

/// Most vCPUs an HVM guest can have with the current vLAPIC id mapping.
pub const HVM_MAX_VCPUS: u32 = 128;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callback_vector_sets_type_two_and_vector() {
        assert_eq!(callback_via_vector(0xf3), 0x0200_0000_0000_00f3);
        assert_eq!(
            callback_via_vector(0xf3) & HVM_PARAM_CALLBACK_IRQ_TYPE_MASK,
            2 << 56
        );
    }

    #[test]
    fn callback_gsi_has_type_zero() {
        assert_eq!(callback_via_gsi(28), 28);
        assert_eq!(callback_via_gsi(28) & HVM_PARAM_CALLBACK_IRQ_TYPE_MASK, 0);
    }

    #[test]
    fn callback_pci_intx_packs_fields() {
        // Segment 0x1234, bus 0x56, device 3 function 0 (devfn 0x18), INTB.
        assert_eq!(
            callback_via_pci_intx(0x1234, 0x56, 0x18, 1),
            0x0100_1234_0056_1801
        );
        assert_eq!(callback_via_pci_intx(0, 0, 0, 7), 0x0100_0000_0000_0003);
    }
}
