//! Xen's CPUID leaves: `xen/arch-x86/cpuid.h`.
//!
//! The leaves start at [`XEN_CPUID_FIRST_LEAF`] or, when Xen also offers another hypervisor's
//! interface (e.g. Viridian), at a later multiple of 0x100; a guest scans for the signature.
//! Leaf i (1-based in Xen's comments) is `base + i - 1`:
//! - base + 0: EAX = largest Xen leaf; EBX:ECX:EDX = "XenVMMXenVMM".
//! - base + 1: EAX = Xen version, major in bits 31:16, minor in bits 15:0.
//! - base + 2: EAX = number of hypercall pages; EBX = MSR that installs the hypercall page
//!   (write the page's guest-physical address); ECX = features 1 (`XEN_CPUID_FEAT1_*`).
//! - base + 3: TSC information (sub-leaves 0..2).
//! - base + 4: HVM features in EAX (`XEN_HVM_CPUID_*`), vCPU id in EBX, domain id in ECX.
//! - base + 5: PV parameters; EBX bits 7:0 = machine address width.

// ---------------------------------------------------------------------------------------------
// Leaves and signature
// ---------------------------------------------------------------------------------------------

/// The first Xen CPUID leaf (when no other hypervisor interface comes first).
pub const XEN_CPUID_FIRST_LEAF: u32 = 0x4000_0000;

/// `XEN_CPUID_LEAF(i)`: the i-th Xen leaf counted from 0 at [`XEN_CPUID_FIRST_LEAF`].
pub const fn xen_cpuid_leaf(i: u32) -> u32 {
    XEN_CPUID_FIRST_LEAF + i
}

/// EBX of the first leaf: "XenV".
pub const XEN_CPUID_SIGNATURE_EBX: u32 = 0x566e_6558;
/// ECX of the first leaf: "MMXe".
pub const XEN_CPUID_SIGNATURE_ECX: u32 = 0x6558_4d4d;
/// EDX of the first leaf: "nVMM".
pub const XEN_CPUID_SIGNATURE_EDX: u32 = 0x4d4d_566e;

/// Offset of the last leaf this header describes (base + 5); Xen reports base + this in EAX of
/// the first leaf.
pub const XEN_CPUID_MAX_NUM_LEAVES: u32 = 5;

// ---------------------------------------------------------------------------------------------
// Leaf base + 2: features 1 (ECX)
// ---------------------------------------------------------------------------------------------

/// Features 1: the host supports `MMU_PT_UPDATE_PRESERVE_AD` for this guest.
pub const XEN_CPUID_FEAT1_MMU_PT_UPDATE_PRESERVE_AD: u32 = 1 << 0;

// ---------------------------------------------------------------------------------------------
// Leaf base + 4: HVM features (EAX)
// ---------------------------------------------------------------------------------------------

/// HVM feature: APIC register accesses are virtualized.
pub const XEN_HVM_CPUID_APIC_ACCESS_VIRT: u32 = 1 << 0;
/// HVM feature: x2APIC accesses are virtualized.
pub const XEN_HVM_CPUID_X2APIC_VIRT: u32 = 1 << 1;
/// HVM feature: memory mapped from other domains has valid IOMMU entries.
pub const XEN_HVM_CPUID_IOMMU_MAPPINGS: u32 = 1 << 2;
/// HVM feature: EBX holds this vCPU's id.
pub const XEN_HVM_CPUID_VCPU_ID_PRESENT: u32 = 1 << 3;
/// HVM feature: ECX holds the domain id.
pub const XEN_HVM_CPUID_DOMID_PRESENT: u32 = 1 << 4;
/// HVM feature: 15-bit extended destination ids in IO-APIC RTEs and MSI addresses.
pub const XEN_HVM_CPUID_EXT_DEST_ID: u32 = 1 << 5;
/// HVM feature: per-vCPU upcall vectors work with physical IRQs bound to event channels.
pub const XEN_HVM_CPUID_UPCALL_VECTOR: u32 = 1 << 6;

// ---------------------------------------------------------------------------------------------
// Leaf base + 5: PV parameters (EBX)
// ---------------------------------------------------------------------------------------------

/// Maximum machine address width in bits, memory hotplug included.
pub const XEN_CPUID_MACHINE_ADDRESS_WIDTH_MASK: u32 = 0xff;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_spells_xenvmmxenvmm() {
        let mut sig = [0u8; 12];
        sig[0..4].copy_from_slice(&XEN_CPUID_SIGNATURE_EBX.to_le_bytes());
        sig[4..8].copy_from_slice(&XEN_CPUID_SIGNATURE_ECX.to_le_bytes());
        sig[8..12].copy_from_slice(&XEN_CPUID_SIGNATURE_EDX.to_le_bytes());
        assert_eq!(&sig, b"XenVMMXenVMM");
    }

    #[test]
    fn leaf_offsets_from_first() {
        assert_eq!(xen_cpuid_leaf(2), 0x4000_0002);
    }
}
