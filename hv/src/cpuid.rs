//! The CPUID a PVH domU sees. Xen's own leaves from 0x40000000, with the values Xen 4.17
//! gives a PVH domU (`cpuid_hypervisor_leaves` in `xen/arch/x86/traps.c`, reached from
//! `guest_cpuid`, which zeroes the result first). `hv` offers no Viridian interface, so the
//! leaves start at 0x40000000 and the range 0x40000100..=0x400001FF, which Xen also routes
//! to this function, answers zeros.
//!
//! The other leaves ([`policy_leaf`]) are the host's, filtered as Xen 4.17's default HVM
//! policy filters them: only the features `cpufeatureset.h` marks for an HVM guest (`A`,
//! `S`, `H`) pass, the leaves `recalculate_misc` empties stay empty, OSXSAVE follows the
//! guest's CR4. hv also hides what it does not virtualise although Xen offers it (see the
//! crate docs): TSC-deadline, PKU and XSAVES. The local APIC and x2APIC are offered
//! whatever the host has, as Xen's `calculate_hvm_max_policy` sets both (`crate::vlapic`).

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

/// Xen 4.17's default HVM featureset words (`cpufeatureset.h`, features annotated `A`, `S`
/// or `H`), by featureset word.
mod xen_hvm {
    /// Word 0: CPUID 1 EDX.
    pub const W0_1D: u32 = 0x1fcb_fbff;
    /// Word 1: CPUID 1 ECX.
    pub const W1_1C: u32 = 0xf7fa_3203;
    /// Word 2: CPUID 0x80000001 EDX.
    pub const W2_E1D: u32 = 0xee50_0800;
    /// Word 3: CPUID 0x80000001 ECX.
    pub const W3_E1C: u32 = 0x0421_09f3;
    /// Word 4: CPUID 0xD.1 EAX.
    pub const W4_DA1: u32 = 0xf;
    /// Word 5: CPUID 7.0 EBX.
    pub const W5_7B0: u32 = 0xfdbf_0fab;
    /// Word 6: CPUID 7.0 ECX.
    pub const W6_7C0: u32 = 0x0240_5f4f;
    /// Word 7: CPUID 0x80000007 EDX (nothing by default: ITSC is `a`).
    pub const W7_E7D: u32 = 0;
    /// Word 8: CPUID 0x80000008 EBX.
    pub const W8_E8B: u32 = 0x751f_d005;
    /// Word 9: CPUID 7.0 EDX.
    pub const W9_7D0: u32 = 0xbc00_441c;
    /// Word 10: CPUID 7.1 EAX.
    pub const W10_7A1: u32 = 0x1c30;
    /// Word 11: CPUID 0x80000021 EAX.
    pub const W11_E21A: u32 = 0x7800_0064;
    /// Word 13: CPUID 7.2 EDX.
    pub const W13_7D2: u32 = 0x37;
}

/// CPUID 1 EDX.APIC.
pub const APIC: u32 = 1 << 9;
/// CPUID 1 EDX.MTRR.
pub const MTRR: u32 = 1 << 12;
/// CPUID 1 ECX.MONITOR.
pub const MONITOR: u32 = 1 << 3;
/// CPUID 1 ECX.VMX.
pub const VMX: u32 = 1 << 5;
/// CPUID 1 ECX.x2APIC.
pub const X2APIC: u32 = 1 << 21;
/// CPUID 1 ECX.TSC-deadline.
pub const TSC_DEADLINE: u32 = 1 << 24;
/// CPUID 1 ECX.OSXSAVE.
pub const OSXSAVE: u32 = 1 << 27;
/// CPUID 1 ECX: running under a hypervisor.
pub const HYPERVISOR: u32 = 1 << 31;
/// CPUID 7.0 ECX.PKU.
pub const PKU: u32 = 1 << 3;
/// CPUID 7.0 ECX.OSPKE.
pub const OSPKE: u32 = 1 << 4;
/// CPUID 7.0 ECX.LA57.
pub const LA57: u32 = 1 << 16;
/// CPUID 0xD.1 EAX.XSAVES.
pub const XSAVES: u32 = 1 << 3;
/// CPUID 0x80000001 ECX.SVM.
pub const SVM: u32 = 1 << 2;
/// XCR0.PKRU.
const XSTATE_PKRU: u32 = 1 << 9;
/// CR4.OSXSAVE.
const CR4_OSXSAVE: u64 = 1 << 18;

/// What the guest sees for a leaf outside Xen's range: the host's answer `host` filtered by
/// Xen's default HVM policy and what hv virtualises; `cr4` is the guest's CR4 (for OSXSAVE).
/// The vCPU is vCPU 0 (initial APIC id 0).
pub fn policy_leaf(leaf: u32, sub: u32, host: [u32; 4], cr4: u64) -> [u32; 4] {
    use xen_hvm as w;
    let [a, b, c, d] = host;
    match leaf {
        // The vendor and the leaf counts are the host's.
        0 | 0x8000_0000 => host,
        1 => {
            let osxsave = if cr4 & CR4_OSXSAVE != 0 { OSXSAVE } else { 0 };
            [
                a & 0x0fff_0fff,
                b & 0x00ff_ffff,
                (c & w::W1_1C & !TSC_DEADLINE) | X2APIC | osxsave | HYPERVISOR,
                (d & w::W0_1D) | APIC,
            ]
        }
        // recalculate_misc: cache and topology (AMD), MONITOR, thermal and power,
        // reserved, DCA, the performance monitor, x2APIC topology: empty.
        2 | 3 | 4 | 5 | 6 | 8 | 9 | 0xa | 0xb | 0xc => [0; 4],
        7 => match sub {
            0 => [
                a.min(2),
                b & w::W5_7B0,
                c & w::W6_7C0 & !(PKU | OSPKE | LA57),
                d & w::W9_7D0,
            ],
            1 => [a & w::W10_7A1, 0, 0, 0],
            2 => [0, 0, 0, d & w::W13_7D2],
            _ => [0; 4],
        },
        0xd => match sub {
            0 => [a & !XSTATE_PKRU, b, c, d],
            // No XSAVES, so no supervisor states (IA32_XSS is not virtualised).
            1 => [a & w::W4_DA1 & !XSAVES, b, 0, 0],
            9 => [0; 4], // PKRU
            11.. => [0; 4],
            _ => host,
        },
        0x8000_0001 => [a, b & 0xff00_ffff, c & w::W3_E1C, d & w::W2_E1D],
        0x8000_0007 => [0, 0, 0, d & w::W7_E7D],
        0x8000_0008 => [a & 0xffff, b & w::W8_E8B, c & 0x0003_f0ff, 0],
        // SVM (0x8000000A), the cache/TLB/IBS/LWP/topology/SEV/QoS leaves: empty.
        0x8000_0009..=0x8000_0018 | 0x8000_001b..=0x8000_0020 => [0; 4],
        0x8000_0021 => [a & w::W11_E21A, 0, c, 0],
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_hides_what_xen_and_hv_do_not_offer() {
        let ones = [u32::MAX; 4];
        let l1 = policy_leaf(1, 0, ones, 0);
        assert_eq!(l1[1] >> 24, 0, "initial APIC id of vCPU 0");
        for (bit, what) in [
            (MONITOR, "MONITOR"),
            (VMX, "VMX"),
            (TSC_DEADLINE, "TSC-deadline"),
            (OSXSAVE, "OSXSAVE with CR4.OSXSAVE clear"),
        ] {
            assert_eq!(l1[2] & bit, 0, "{what}");
        }
        assert_ne!(l1[2] & HYPERVISOR, 0);
        assert_ne!(l1[3] & APIC, 0, "the emulated local APIC");
        assert_ne!(
            policy_leaf(1, 0, [0; 4], 0)[2] & X2APIC,
            0,
            "x2APIC on any host"
        );
        assert_ne!(l1[3] & MTRR, 0, "MTRRs are virtualised");
        assert_ne!(policy_leaf(1, 0, ones, 1 << 18)[2] & OSXSAVE, 0);
        assert_eq!(policy_leaf(1, 0, [0; 4], 0)[2], HYPERVISOR | X2APIC);
        let l7 = policy_leaf(7, 0, ones, 0);
        assert_eq!(l7[2] & (PKU | OSPKE | LA57), 0);
        assert_eq!(l7[0], 2, "subleaves up to 2");
        assert_eq!(policy_leaf(5, 0, ones, 0), [0; 4], "MONITOR/MWAIT leaf");
        assert_eq!(policy_leaf(6, 0, ones, 0), [0; 4], "thermal and power");
        assert_eq!(policy_leaf(0xd, 1, ones, 0)[0] & XSAVES, 0);
        assert_eq!(policy_leaf(0xd, 0, ones, 0)[0] & XSTATE_PKRU, 0);
        assert_eq!(policy_leaf(0x8000_0001, 0, ones, 0)[2] & SVM, 0);
        assert_eq!(policy_leaf(0x8000_000a, 0, ones, 0), [0; 4]);
        assert_eq!(policy_leaf(0x8000_0007, 0, ones, 0), [0; 4]);
        assert_eq!(policy_leaf(0x8000_0008, 0, ones, 0)[0], 0xffff);
        // The vendor and leaf counts pass unchanged.
        let vendor = [0xd, 0x6874_7541, 0x444d_4163, 0x6974_6e65];
        assert_eq!(policy_leaf(0, 0, vendor, 0), vendor);
    }

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
