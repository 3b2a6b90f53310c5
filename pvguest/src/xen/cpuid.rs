//! Xen discovery through CPUID: the signature leaves from 0x40000000 in steps of 0x100.

use core::arch::x86_64::__cpuid;

use abi::cpuid as c;

/// What the Xen CPUID leaves report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XenCpuid {
    /// The base leaf (0x40000000 or a later multiple of 0x100).
    pub base: u32,
    /// The largest Xen leaf.
    pub max_leaf: u32,
    /// Xen version from leaf base+1: `(major, minor)`.
    pub version: (u16, u16),
    /// Number of hypercall pages (leaf base+2 EAX).
    pub hypercall_pages: u32,
    /// MSR that installs the hypercall page (leaf base+2 EBX).
    pub hypercall_msr: u32,
}

/// Scans for "XenVMMXenVMM"; `None` when not running on Xen (or an interface too old to
/// have leaf base+2).
pub fn discover() -> Option<XenCpuid> {
    (0..0x100u32)
        .map(|i| c::XEN_CPUID_FIRST_LEAF + i * 0x100)
        .find_map(|base| {
            let r = __cpuid(base);
            let signed = r.ebx == c::XEN_CPUID_SIGNATURE_EBX
                && r.ecx == c::XEN_CPUID_SIGNATURE_ECX
                && r.edx == c::XEN_CPUID_SIGNATURE_EDX;
            (signed && r.eax >= base + 2).then_some((base, r.eax))
        })
        .map(|(base, max_leaf)| {
            let v = __cpuid(base + 1);
            let hc = __cpuid(base + 2);
            XenCpuid {
                base,
                max_leaf,
                version: ((v.eax >> 16) as u16, (v.eax & 0xffff) as u16),
                hypercall_pages: hc.eax,
                hypercall_msr: hc.ebx,
            }
        })
}
