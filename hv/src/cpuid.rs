//! Xen's CPUID leaves from 0x40000000, with the values Xen 4.17 gives a PVH domU
//! (`cpuid_hypervisor_leaves` in `xen/arch/x86/traps.c`, reached from `guest_cpuid`, which
//! zeroes the result first). `hv` offers no Viridian interface, so the leaves start at
//! 0x40000000 and the range 0x40000100..=0x400001FF, which Xen also routes to this function,
//! answers zeros.

use abi::cpuid as c;

/// The MSR that installs the hypercall page (leaf +2 EBX; Xen's base without Viridian).
pub const HYPERCALL_MSR: u32 = 0x4000_0000;

/// Xen 4.17 reports this version in leaf +1 (and in `XENVER_version`).
pub const XEN_VERSION: (u16, u16) = (4, 17);

/// `XEN_CPUID_TSC_MODE_NEVER_EMULATE`: the TSC mode of a guest that runs `RDTSC` natively,
/// as `hv` (which never intercepts `RDTSC`) and xl's `tsc_mode = "native"` do.
pub const TSC_MODE_NEVER_EMULATE: u32 = 2;

/// What the leaves depend on: the domain, the vCPU and the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuidContext {
    /// The domain id (leaf +4 ECX).
    pub domid: u16,
    /// The vCPU id (leaf +4 EBX).
    pub vcpu_id: u32,
    /// The host has a reliable (invariant) TSC: leaf +3 sub-leaf 0 EAX bit 1. Host CPUID
    /// 0x80000007 EDX bit 8; QEMU's TCG has none.
    pub host_tsc_reliable: bool,
    /// The host has `RDTSCP` (host CPUID 0x80000001 EDX bit 27): leaf +3 sub-leaf 0 EAX bit 2.
    pub host_rdtscp: bool,
    /// The guest's TSC frequency in kHz (leaf +3 sub-leaf 0 ECX), as `hv` calibrated it.
    pub tsc_khz: u32,
}

/// The last leaf Xen 4.17 reports (`XEN_CPUID_MAX_NUM_LEAVES`; the toolstack sets no limit).
const LIMIT: u32 = c::XEN_CPUID_MAX_NUM_LEAVES;

/// The answer for `leaf`/`subleaf` as `[eax, ebx, ecx, edx]`, or `None` if the leaf is not in
/// Xen's hypervisor range 0x40000000..=0x400001FF (the caller answers those).
pub fn xen_leaf(leaf: u32, subleaf: u32, ctx: &CpuidContext) -> Option<[u32; 4]> {
    if !(c::XEN_CPUID_FIRST_LEAF..=c::XEN_CPUID_FIRST_LEAF + 0x1ff).contains(&leaf) {
        return None;
    }
    let idx = leaf - c::XEN_CPUID_FIRST_LEAF;
    let mut r = [0u32; 4];
    if idx > LIMIT {
        return Some(r);
    }
    match idx {
        0 => {
            r = [
                c::XEN_CPUID_FIRST_LEAF + LIMIT,
                c::XEN_CPUID_SIGNATURE_EBX,
                c::XEN_CPUID_SIGNATURE_ECX,
                c::XEN_CPUID_SIGNATURE_EDX,
            ]
        }
        1 => r[0] = (u32::from(XEN_VERSION.0) << 16) | u32::from(XEN_VERSION.1),
        2 => {
            r[0] = 1; // one hypercall page
            r[1] = HYPERCALL_MSR;
            // ECX: XEN_CPUID_FEAT1_MMU_PT_UPDATE_PRESERVE_AD is for PV guests only.
        }
        3 if subleaf == 0 => {
            // vtsc (bit 0) is clear: the TSC is not emulated.
            r[0] = (u32::from(ctx.host_tsc_reliable) << 1) | (u32::from(ctx.host_rdtscp) << 2);
            r[1] = TSC_MODE_NEVER_EMULATE;
            r[2] = ctx.tsc_khz;
            // Incarnation: Xen 4.17 answers 1 for a domain that was never migrated (seen
            // in the boot self-test's FACT lines on stock Xen).
            r[3] = 1;
        }
        // Sub-leaf 1 (TSC offset and scale) and 2 (host kHz) are not implemented: zeros.
        3 => {}
        4 if subleaf == 0 => {
            // On SVM Xen sets neither APIC_ACCESS_VIRT nor X2APIC_VIRT (VMX features).
            r[0] = c::XEN_HVM_CPUID_IOMMU_MAPPINGS
                | c::XEN_HVM_CPUID_VCPU_ID_PRESENT
                | c::XEN_HVM_CPUID_DOMID_PRESENT
                | c::XEN_HVM_CPUID_UPCALL_VECTOR;
            r[1] = ctx.vcpu_id;
            r[2] = u32::from(ctx.domid);
        }
        // Leaf +5 (PV parameters) is for PV guests only: zeros for HVM/PVH.
        _ => {}
    }
    Some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CTX: CpuidContext = CpuidContext {
        domid: 1,
        vcpu_id: 0,
        host_tsc_reliable: false,
        host_rdtscp: true,
        tsc_khz: 2_000_000,
    };

    #[test]
    fn signature_version_and_hypercall_page() {
        let l0 = xen_leaf(0x4000_0000, 0, &CTX).unwrap();
        assert_eq!(l0[0], 0x4000_0005);
        let mut sig = Vec::new();
        for w in &l0[1..] {
            sig.extend_from_slice(&w.to_le_bytes());
        }
        assert_eq!(sig, b"XenVMMXenVMM");
        assert_eq!(xen_leaf(0x4000_0001, 0, &CTX), Some([0x0004_0011, 0, 0, 0]));
        assert_eq!(xen_leaf(0x4000_0002, 0, &CTX), Some([1, 0x4000_0000, 0, 0]));
    }

    #[test]
    fn time_and_hvm_leaves() {
        assert_eq!(
            xen_leaf(0x4000_0003, 0, &CTX),
            Some([0b100, 2, 2_000_000, 1])
        );
        let reliable = CpuidContext {
            host_tsc_reliable: true,
            host_rdtscp: false,
            ..CTX
        };
        assert_eq!(xen_leaf(0x4000_0003, 0, &reliable).unwrap()[0], 0b010);
        assert_eq!(xen_leaf(0x4000_0003, 1, &CTX), Some([0; 4]));
        assert_eq!(xen_leaf(0x4000_0004, 0, &CTX), Some([0x5c, 0, 1, 0]));
        let d7 = CpuidContext {
            domid: 7,
            vcpu_id: 3,
            ..CTX
        };
        assert_eq!(xen_leaf(0x4000_0004, 0, &d7), Some([0x5c, 3, 7, 0]));
        assert_eq!(xen_leaf(0x4000_0004, 1, &CTX), Some([0; 4]));
        assert_eq!(xen_leaf(0x4000_0005, 0, &CTX), Some([0; 4]));
    }

    #[test]
    fn beyond_the_limit_and_outside_the_range() {
        for leaf in [0x4000_0006, 0x4000_00ff, 0x4000_0100, 0x4000_01ff] {
            assert_eq!(xen_leaf(leaf, 0, &CTX), Some([0; 4]), "{leaf:#x}");
        }
        for leaf in [0, 1, 0x3fff_ffff, 0x4000_0200, 0x8000_0000, u32::MAX] {
            assert_eq!(xen_leaf(leaf, 0, &CTX), None, "{leaf:#x}");
        }
    }
}
