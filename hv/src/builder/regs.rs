//! The register state a PVH kernel starts with (Xen's `docs/misc/pvh.pandoc`, as libxenguest
//! sets it for a PVH domU in `vcpu_hvm`): 32-bit protected mode with paging off, `ebx` =
//! the start info, flat 4 GiB code and data segments, `TR` a busy 32-bit TSS, `CR0` = PE|ET,
//! `CR4` = 0, `EFLAGS` = 0x2 (IF, TF and VM clear). Selectors are 0 as in Xen (only the
//! hidden parts matter until the kernel loads its own GDT).

/// A segment register in the VMCB's form (the VMCB's own type: selector, attributes packed
/// as the VMCB stores them, limit scaled by G, base).
pub use crate::svm::vmcb::Segment;

/// Flat 32-bit code: execute/read, accessed, present, D/B, G (Xen's `cs_arbytes` 0xc9b).
pub const FLAT_CODE32: Segment = Segment {
    selector: 0,
    attrib: 0xc9b,
    limit: 0xffff_ffff,
    base: 0,
};
/// Flat 32-bit data: read/write, accessed, present, D/B, G (0xc93).
pub const FLAT_DATA32: Segment = Segment {
    selector: 0,
    attrib: 0xc93,
    limit: 0xffff_ffff,
    base: 0,
};
/// A busy 32-bit TSS at 0 with limit 0x67 (0x8b).
pub const BUSY_TSS32: Segment = Segment {
    selector: 0,
    attrib: 0x8b,
    limit: 0x67,
    base: 0,
};
/// An LDT that is not present (attributes 0: unusable).
pub const NULL_LDT: Segment = Segment {
    selector: 0,
    attrib: 0,
    limit: 0,
    base: 0,
};

/// CR0.PE | CR0.ET.
pub const CR0_PE_ET: u64 = 0x11;
/// EFLAGS with only the always-one bit 1.
pub const RFLAGS_MBS: u64 = 0x2;
/// DR6 at reset.
pub const DR6_DEFAULT: u64 = 0xffff_0ff0;
/// DR7 at reset.
pub const DR7_DEFAULT: u64 = 0x400;

/// The vCPU's first state; `hv` copies every field into the VMCB save area.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InitialRegisters {
    /// The PHYS32_ENTRY address.
    pub rip: u64,
    /// The start info's guest-physical address.
    pub rbx: u64,
    /// 0 (unspecified by the ABI).
    pub rsp: u64,
    /// [`RFLAGS_MBS`].
    pub rflags: u64,
    /// [`CR0_PE_ET`].
    pub cr0: u64,
    /// 0 (paging off).
    pub cr3: u64,
    /// 0.
    pub cr4: u64,
    /// 0 (the guest's view; `hv` keeps SVME set in the VMCB itself).
    pub efer: u64,
    /// [`DR6_DEFAULT`].
    pub dr6: u64,
    /// [`DR7_DEFAULT`].
    pub dr7: u64,
    /// [`FLAT_CODE32`].
    pub cs: Segment,
    /// [`FLAT_DATA32`] for ds, es, ss, fs and gs.
    pub ds: Segment,
    /// See `ds`.
    pub es: Segment,
    /// See `ds`.
    pub ss: Segment,
    /// See `ds`.
    pub fs: Segment,
    /// See `ds`.
    pub gs: Segment,
    /// [`BUSY_TSS32`].
    pub tr: Segment,
    /// [`NULL_LDT`].
    pub ldtr: Segment,
    /// GDTR base and limit: 0 (the kernel loads its own before reloading a selector).
    pub gdtr: (u64, u32),
    /// IDTR base and limit: 0.
    pub idtr: (u64, u32),
}

impl InitialRegisters {
    /// The PVH entry state for entry point `entry` and start info at `start_info`.
    pub const fn pvh(entry: u32, start_info: u64) -> Self {
        Self {
            rip: entry as u64,
            rbx: start_info,
            rsp: 0,
            rflags: RFLAGS_MBS,
            cr0: CR0_PE_ET,
            cr3: 0,
            cr4: 0,
            efer: 0,
            dr6: DR6_DEFAULT,
            dr7: DR7_DEFAULT,
            cs: FLAT_CODE32,
            ds: FLAT_DATA32,
            es: FLAT_DATA32,
            ss: FLAT_DATA32,
            fs: FLAT_DATA32,
            gs: FLAT_DATA32,
            tr: BUSY_TSS32,
            ldtr: NULL_LDT,
            gdtr: (0, 0),
            idtr: (0, 0),
        }
    }
}
