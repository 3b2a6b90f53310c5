//! The VMCB (AMD64 APM vol. 2, appendix B): control area at 0x000, state-save area at 0x400,
//! with every field hv uses checked against the manual's offsets at compile time.

use core::mem::{offset_of, size_of};

/// One segment register in the state-save area. Attributes are packed as the VMCB stores
/// them: bits 7:0 type, S, DPL, P; bits 11:8 AVL, L, D/B, G. The limit is already scaled by G.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Segment {
    /// Selector.
    pub selector: u16,
    /// Attributes in SVM's packed form: descriptor bits 40..47 and 52..55.
    pub attrib: u16,
    /// Limit (expanded by granularity).
    pub limit: u32,
    /// Base.
    pub base: u64,
}

const _: () = assert!(size_of::<Segment>() == 16);

/// The control area (APM vol. 2 table B-1).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ControlArea {
    /// CR0..15 read intercepts (bits 0..15), writes (16..31).
    pub intercept_cr: u32,
    /// DR0..15 read intercepts (bits 0..15), writes (16..31).
    pub intercept_dr: u32,
    /// Exception intercepts, one bit per vector.
    pub intercept_exceptions: u32,
    /// Intercept vector 3 (INTR, VINTR, CPUID, HLT, IOIO_PROT, MSR_PROT, SHUTDOWN, ...).
    pub intercept_misc1: u32,
    /// Intercept vector 4 (VMRUN, VMMCALL, VMLOAD, VMSAVE, STGI, CLGI, SKINIT, XSETBV, ...).
    pub intercept_misc2: u32,
    /// Intercept vector 5.
    pub intercept_misc3: u32,
    reserved_018: [u8; 0x3c - 0x18],
    /// Pause filter threshold.
    pub pause_filter_threshold: u16,
    /// Pause filter count.
    pub pause_filter_count: u16,
    /// Physical address of the I/O permission map (12 KiB).
    pub iopm_base_pa: u64,
    /// Physical address of the MSR permission map (8 KiB).
    pub msrpm_base_pa: u64,
    /// Added to the TSC the guest reads.
    pub tsc_offset: u64,
    /// The guest's ASID.
    pub guest_asid: u32,
    /// TLB_CONTROL (1 = flush everything).
    pub tlb_control: u8,
    reserved_05d: [u8; 3],
    /// V_TPR, V_IRQ, V_INTR_PRIO, V_IGN_TPR, V_INTR_MASKING, V_INTR_VECTOR.
    pub vintr: u64,
    /// Interrupt shadow (bit 0).
    pub interrupt_shadow: u64,
    /// The exit code.
    pub exitcode: u64,
    /// EXITINFO1.
    pub exitinfo1: u64,
    /// EXITINFO2.
    pub exitinfo2: u64,
    /// EXITINTINFO: an event that was being delivered when the exit happened.
    pub exitintinfo: u64,
    /// Bit 0: nested paging.
    pub np_enable: u64,
    /// AVIC APIC BAR.
    pub avic_apic_bar: u64,
    /// Guest physical address of the GHCB.
    pub ghcb_pa: u64,
    /// EVENTINJ: an event to inject at the next VMRUN.
    pub event_inj: u64,
    /// Nested page table root (the host-physical PML4).
    pub n_cr3: u64,
    /// LBR virtualization enable.
    pub lbr_virtualization: u64,
    /// VMCB clean bits (QEMU ignores them; hv leaves them zero).
    pub vmcb_clean: u32,
    reserved_0c4: u32,
    /// Next sequential RIP (not saved by QEMU).
    pub next_rip: u64,
    /// Number of instruction bytes fetched (decode assists; not by QEMU).
    pub instruction_len: u8,
    /// Instruction bytes fetched.
    pub instruction_bytes: [u8; 15],
    reserved_0e0: [u8; 0x400 - 0xe0],
}

const _: () = {
    assert!(offset_of!(ControlArea, intercept_cr) == 0x000);
    assert!(offset_of!(ControlArea, intercept_dr) == 0x004);
    assert!(offset_of!(ControlArea, intercept_exceptions) == 0x008);
    assert!(offset_of!(ControlArea, intercept_misc1) == 0x00c);
    assert!(offset_of!(ControlArea, intercept_misc2) == 0x010);
    assert!(offset_of!(ControlArea, intercept_misc3) == 0x014);
    assert!(offset_of!(ControlArea, pause_filter_threshold) == 0x03c);
    assert!(offset_of!(ControlArea, pause_filter_count) == 0x03e);
    assert!(offset_of!(ControlArea, iopm_base_pa) == 0x040);
    assert!(offset_of!(ControlArea, msrpm_base_pa) == 0x048);
    assert!(offset_of!(ControlArea, tsc_offset) == 0x050);
    assert!(offset_of!(ControlArea, guest_asid) == 0x058);
    assert!(offset_of!(ControlArea, tlb_control) == 0x05c);
    assert!(offset_of!(ControlArea, vintr) == 0x060);
    assert!(offset_of!(ControlArea, interrupt_shadow) == 0x068);
    assert!(offset_of!(ControlArea, exitcode) == 0x070);
    assert!(offset_of!(ControlArea, exitinfo1) == 0x078);
    assert!(offset_of!(ControlArea, exitinfo2) == 0x080);
    assert!(offset_of!(ControlArea, exitintinfo) == 0x088);
    assert!(offset_of!(ControlArea, np_enable) == 0x090);
    assert!(offset_of!(ControlArea, event_inj) == 0x0a8);
    assert!(offset_of!(ControlArea, n_cr3) == 0x0b0);
    assert!(offset_of!(ControlArea, lbr_virtualization) == 0x0b8);
    assert!(offset_of!(ControlArea, vmcb_clean) == 0x0c0);
    assert!(offset_of!(ControlArea, next_rip) == 0x0c8);
    assert!(offset_of!(ControlArea, instruction_len) == 0x0d0);
    assert!(size_of::<ControlArea>() == 0x400);
};

/// The state-save area (APM vol. 2 table B-2), offsets relative to the VMCB.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SaveArea {
    /// ES.
    pub es: Segment,
    /// CS.
    pub cs: Segment,
    /// SS.
    pub ss: Segment,
    /// DS.
    pub ds: Segment,
    /// FS.
    pub fs: Segment,
    /// GS.
    pub gs: Segment,
    /// GDTR (base and limit only).
    pub gdtr: Segment,
    /// LDTR.
    pub ldtr: Segment,
    /// IDTR (base and limit only).
    pub idtr: Segment,
    /// TR.
    pub tr: Segment,
    reserved_4a0: [u8; 0x4cb - 0x4a0],
    /// Current privilege level.
    pub cpl: u8,
    reserved_4cc: u32,
    /// EFER (SVME must stay set for VMRUN).
    pub efer: u64,
    reserved_4d8: [u8; 0x548 - 0x4d8],
    /// CR4.
    pub cr4: u64,
    /// CR3.
    pub cr3: u64,
    /// CR0.
    pub cr0: u64,
    /// DR7.
    pub dr7: u64,
    /// DR6.
    pub dr6: u64,
    /// RFLAGS.
    pub rflags: u64,
    /// RIP.
    pub rip: u64,
    reserved_580: [u8; 0x5d8 - 0x580],
    /// RSP.
    pub rsp: u64,
    /// S_CET.
    pub s_cet: u64,
    /// SSP.
    pub ssp: u64,
    /// ISST_ADDR.
    pub isst_addr: u64,
    /// RAX.
    pub rax: u64,
    /// STAR.
    pub star: u64,
    /// LSTAR.
    pub lstar: u64,
    /// CSTAR.
    pub cstar: u64,
    /// SFMASK.
    pub sfmask: u64,
    /// KernelGSBase.
    pub kernel_gs_base: u64,
    /// SYSENTER_CS.
    pub sysenter_cs: u64,
    /// SYSENTER_ESP.
    pub sysenter_esp: u64,
    /// SYSENTER_EIP.
    pub sysenter_eip: u64,
    /// CR2.
    pub cr2: u64,
    reserved_648: [u8; 0x668 - 0x648],
    /// Guest PAT (used with nested paging).
    pub g_pat: u64,
    /// DBGCTL.
    pub dbgctl: u64,
    /// BR_FROM.
    pub br_from: u64,
    /// BR_TO.
    pub br_to: u64,
    /// LASTEXCPFROM.
    pub last_excp_from: u64,
    /// LASTEXCPTO.
    pub last_excp_to: u64,
    reserved_698: [u8; 0x1000 - 0x698],
}

const _: () = {
    const B: usize = 0x400;
    assert!(B + offset_of!(SaveArea, es) == 0x400);
    assert!(B + offset_of!(SaveArea, cs) == 0x410);
    assert!(B + offset_of!(SaveArea, ss) == 0x420);
    assert!(B + offset_of!(SaveArea, ds) == 0x430);
    assert!(B + offset_of!(SaveArea, fs) == 0x440);
    assert!(B + offset_of!(SaveArea, gs) == 0x450);
    assert!(B + offset_of!(SaveArea, gdtr) == 0x460);
    assert!(B + offset_of!(SaveArea, ldtr) == 0x470);
    assert!(B + offset_of!(SaveArea, idtr) == 0x480);
    assert!(B + offset_of!(SaveArea, tr) == 0x490);
    assert!(B + offset_of!(SaveArea, cpl) == 0x4cb);
    assert!(B + offset_of!(SaveArea, efer) == 0x4d0);
    assert!(B + offset_of!(SaveArea, cr4) == 0x548);
    assert!(B + offset_of!(SaveArea, cr3) == 0x550);
    assert!(B + offset_of!(SaveArea, cr0) == 0x558);
    assert!(B + offset_of!(SaveArea, dr7) == 0x560);
    assert!(B + offset_of!(SaveArea, dr6) == 0x568);
    assert!(B + offset_of!(SaveArea, rflags) == 0x570);
    assert!(B + offset_of!(SaveArea, rip) == 0x578);
    assert!(B + offset_of!(SaveArea, rsp) == 0x5d8);
    assert!(B + offset_of!(SaveArea, rax) == 0x5f8);
    assert!(B + offset_of!(SaveArea, star) == 0x600);
    assert!(B + offset_of!(SaveArea, lstar) == 0x608);
    assert!(B + offset_of!(SaveArea, cstar) == 0x610);
    assert!(B + offset_of!(SaveArea, sfmask) == 0x618);
    assert!(B + offset_of!(SaveArea, kernel_gs_base) == 0x620);
    assert!(B + offset_of!(SaveArea, sysenter_cs) == 0x628);
    assert!(B + offset_of!(SaveArea, sysenter_esp) == 0x630);
    assert!(B + offset_of!(SaveArea, sysenter_eip) == 0x638);
    assert!(B + offset_of!(SaveArea, cr2) == 0x640);
    assert!(B + offset_of!(SaveArea, g_pat) == 0x668);
    assert!(B + offset_of!(SaveArea, dbgctl) == 0x670);
    assert!(size_of::<SaveArea>() == 0x1000 - 0x400);
};

/// A whole VMCB: one 4 KiB page.
#[repr(C, align(4096))]
#[derive(Clone, Copy, Debug)]
pub struct Vmcb {
    /// The control area.
    pub control: ControlArea,
    /// The state-save area.
    pub save: SaveArea,
}

const _: () = assert!(size_of::<Vmcb>() == 4096 && offset_of!(Vmcb, save) == 0x400);

/// Intercept vector 3 bits (`intercept_misc1`).
pub mod misc1 {
    /// Physical interrupt.
    pub const INTR: u32 = 1 << 0;
    /// NMI.
    pub const NMI: u32 = 1 << 1;
    /// Virtual interrupt (the guest became able to take V_IRQ).
    pub const VINTR: u32 = 1 << 4;
    /// CPUID.
    pub const CPUID: u32 = 1 << 18;
    /// INVD.
    pub const INVD: u32 = 1 << 22;
    /// HLT.
    pub const HLT: u32 = 1 << 24;
    /// INVLPGA.
    pub const INVLPGA: u32 = 1 << 26;
    /// I/O through the I/O permission map.
    pub const IOIO_PROT: u32 = 1 << 27;
    /// MSR accesses through the MSR permission map.
    pub const MSR_PROT: u32 = 1 << 28;
    /// Shutdown (triple fault).
    pub const SHUTDOWN: u32 = 1 << 31;
}

/// Intercept vector 4 bits (`intercept_misc2`).
pub mod misc2 {
    /// VMRUN (must be set or VMRUN fails).
    pub const VMRUN: u32 = 1 << 0;
    /// VMMCALL.
    pub const VMMCALL: u32 = 1 << 1;
    /// VMLOAD.
    pub const VMLOAD: u32 = 1 << 2;
    /// VMSAVE.
    pub const VMSAVE: u32 = 1 << 3;
    /// STGI.
    pub const STGI: u32 = 1 << 4;
    /// CLGI.
    pub const CLGI: u32 = 1 << 5;
    /// SKINIT.
    pub const SKINIT: u32 = 1 << 6;
    /// WBINVD.
    pub const WBINVD: u32 = 1 << 9;
    /// MONITOR.
    pub const MONITOR: u32 = 1 << 10;
    /// MWAIT (unconditional).
    pub const MWAIT: u32 = 1 << 11;
    /// XSETBV.
    pub const XSETBV: u32 = 1 << 13;
}

/// The exception intercepts (`intercept_exceptions`): `#DB` (1) and `#AC` (17), which hv
/// reflects to the guest ([`crate::svm::emulate::answer`]).
pub const EXCEPTIONS_REFLECTED: u32 = (1 << 1) | (1 << 17);

/// V_INTR_MASKING in `vintr`: the guest's IF masks only virtual interrupts; physical ones
/// follow the host's IF.
pub const V_INTR_MASKING: u64 = 1 << 24;

/// TLB_CONTROL: flush the whole TLB on VMRUN (QEMU has no flush-by-ASID).
pub const TLB_CONTROL_FLUSH_ALL: u8 = 1;
