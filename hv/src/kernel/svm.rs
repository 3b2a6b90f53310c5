//! SVM on this CPU: enabling it (EFER.SVME, the host save area), the I/O and MSR permission
//! maps, and `run`, the only code that enters a guest (VMLOAD/VMRUN/VMSAVE).

use core::arch::{asm, global_asm};

use x86_64::registers::model_specific::Msr;

use crate::svm::emulate::{EFER_SVME, IOPM_BYTES, MSRPM_BYTES, fill_iopm, fill_msrpm};

/// `EFER`.
pub const MSR_EFER: u32 = 0xc000_0080;
/// `VM_CR`: bit 4 (SVMDIS) means the firmware disabled SVM.
const MSR_VM_CR: u32 = 0xc001_0114;
/// `VM_HSAVE_PA`: where VMRUN saves host state.
const MSR_VM_HSAVE_PA: u32 = 0xc001_0117;

/// The MSRs a guest reads and writes directly (VMLOAD/VMSAVE switch them): FS/GS/KERNEL_GS
/// base, STAR, LSTAR, CSTAR, SFMASK, SYSENTER_CS/ESP/EIP.
pub const PASSTHROUGH_MSRS: [u32; 10] = [
    0xc000_0100,
    0xc000_0101,
    0xc000_0102,
    0xc000_0081,
    0xc000_0082,
    0xc000_0083,
    0xc000_0084,
    0x174,
    0x175,
    0x176,
];

#[repr(C, align(4096))]
struct Page([u8; 4096]);

#[repr(C, align(4096))]
struct Iopm([u8; IOPM_BYTES]);

#[repr(C, align(4096))]
struct Msrpm([u8; MSRPM_BYTES]);

/// The host save area (VM_HSAVE_PA); only the CPU touches it.
static mut HOST_SAVE_AREA: Page = Page([0; 4096]);
/// Host state VMSAVE/VMLOAD switch (FS, GS, TR, LDTR, KERNEL_GS_BASE, STAR..., SYSENTER).
static mut HOST_VMCB: Page = Page([0; 4096]);
/// The I/O permission map: every bit set, every port intercepted. Written once by `enable`.
static mut IOPM: Iopm = Iopm([0; IOPM_BYTES]);
/// The MSR permission map: every bit set except the pass-through MSRs. Written by `enable`.
static mut MSRPM: Msrpm = Msrpm([0; MSRPM_BYTES]);

/// Why SVM could not be enabled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SvmError {
    /// CPUID 0x80000001 ECX bit 2 is clear.
    NotSupported,
    /// No nested paging (CPUID 0x8000000A EDX bit 0).
    NoNestedPaging,
    /// VM_CR.SVMDIS is set.
    DisabledByFirmware,
}

/// Enables SVM on this CPU and fills the permission maps.
pub fn enable() -> Result<(), SvmError> {
    let ext = core::arch::x86_64::__cpuid(0x8000_0001);
    if ext.ecx & (1 << 2) == 0 {
        return Err(SvmError::NotSupported);
    }
    let features = core::arch::x86_64::__cpuid(0x8000_000a);
    if features.edx & 1 == 0 {
        return Err(SvmError::NoNestedPaging);
    }
    // SAFETY: VM_CR exists on CPUs with SVM; reading it has no side effect.
    if unsafe { Msr::new(MSR_VM_CR).read() } & (1 << 4) != 0 {
        return Err(SvmError::DisabledByFirmware);
    }
    // SAFETY: single CPU, before any guest runs: the maps and save areas are not yet in use
    // by the CPU. Setting EFER.SVME only enables the SVM instructions; VM_HSAVE_PA gets a
    // page-aligned page owned by hv for good (statics are identity mapped: virtual ==
    // physical).
    unsafe {
        let iopm = &raw mut IOPM;
        fill_iopm(&mut (*iopm).0);
        let msrpm = &raw mut MSRPM;
        fill_msrpm(&mut (*msrpm).0, &PASSTHROUGH_MSRS);
        let mut efer = Msr::new(MSR_EFER);
        efer.write(efer.read() | EFER_SVME);
        Msr::new(MSR_VM_HSAVE_PA).write((&raw const HOST_SAVE_AREA) as u64);
    }
    Ok(())
}

/// Physical address of the I/O permission map.
pub fn iopm_pa() -> u64 {
    (&raw const IOPM) as u64
}

/// Physical address of the MSR permission map.
pub fn msrpm_pa() -> u64 {
    (&raw const MSRPM) as u64
}

/// The guest's general registers that VMRUN does not switch (RAX and RSP live in the VMCB).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct GuestRegs {
    /// RBX.
    pub rbx: u64,
    /// RCX.
    pub rcx: u64,
    /// RDX.
    pub rdx: u64,
    /// RSI.
    pub rsi: u64,
    /// RDI.
    pub rdi: u64,
    /// RBP.
    pub rbp: u64,
    /// R8.
    pub r8: u64,
    /// R9.
    pub r9: u64,
    /// R10.
    pub r10: u64,
    /// R11.
    pub r11: u64,
    /// R12.
    pub r12: u64,
    /// R13.
    pub r13: u64,
    /// R14.
    pub r14: u64,
    /// R15.
    pub r15: u64,
}

const _: () = assert!(core::mem::size_of::<GuestRegs>() == 14 * 8);

global_asm!(
    r#"
    .pushsection .text.svm_run, "ax"
    .global hv_svm_run
/* hv_svm_run(rdi = guest VMCB pa, rsi = host VMCB pa, rdx = &mut GuestRegs) */
hv_svm_run:
    push %rbx
    push %rbp
    push %r12
    push %r13
    push %r14
    push %r15
    push %rdx                   /* 16(%rsp): regs */
    push %rdi                   /*  8(%rsp): guest VMCB */
    push %rsi                   /*  0(%rsp): host VMCB */

    mov %rsi, %rax
    vmsave                      /* host FS/GS/TR/LDTR/... */
    mov %rdi, %rax
    vmload                      /* guest FS/GS/TR/LDTR/... */

    mov 0x00(%rdx), %rbx
    mov 0x08(%rdx), %rcx
    mov 0x18(%rdx), %rsi
    mov 0x20(%rdx), %rdi
    mov 0x28(%rdx), %rbp
    mov 0x30(%rdx), %r8
    mov 0x38(%rdx), %r9
    mov 0x40(%rdx), %r10
    mov 0x48(%rdx), %r11
    mov 0x50(%rdx), %r12
    mov 0x58(%rdx), %r13
    mov 0x60(%rdx), %r14
    mov 0x68(%rdx), %r15
    mov 0x10(%rdx), %rdx

    clgi
    sti                         /* host IF=1 under GIF=0: physical interrupts exit (INTR) */
    vmrun
    /* #VMEXIT: GIF=0, host RAX/RSP/RFLAGS/segments/CRs back; guest GPRs live */

    push %rax                   /* scratch; the frame moves by 8 */
    mov 24(%rsp), %rax          /* regs */
    mov %rbx, 0x00(%rax)
    mov %rcx, 0x08(%rax)
    mov %rdx, 0x10(%rax)
    mov %rsi, 0x18(%rax)
    mov %rdi, 0x20(%rax)
    mov %rbp, 0x28(%rax)
    mov %r8,  0x30(%rax)
    mov %r9,  0x38(%rax)
    mov %r10, 0x40(%rax)
    mov %r11, 0x48(%rax)
    mov %r12, 0x50(%rax)
    mov %r13, 0x58(%rax)
    mov %r14, 0x60(%rax)
    mov %r15, 0x68(%rax)
    pop %rax

    mov 8(%rsp), %rax
    vmsave                      /* guest FS/GS/TR/LDTR/... */
    mov 0(%rsp), %rax
    vmload                      /* host FS/GS/TR/LDTR/... */
    add $24, %rsp

    stgi                        /* a pending physical interrupt is taken here (IF=1) */
    cli

    pop %r15
    pop %r14
    pop %r13
    pop %r12
    pop %rbp
    pop %rbx
    ret
    .popsection
"#,
    options(att_syntax)
);

unsafe extern "C" {
    fn hv_svm_run(guest_vmcb: u64, host_vmcb: u64, regs: *mut GuestRegs);
}

/// Runs the guest until the next #VMEXIT.
///
/// # Safety
/// SVM must be enabled ([`enable`]); `vmcb_pa` must be the physical (= virtual) address of a
/// valid, page-aligned VMCB that nothing else uses, whose intercepts include VMRUN and whose
/// nested page tables map only memory the guest may own; hv's IF must be clear.
pub unsafe fn run(vmcb_pa: u64, regs: &mut GuestRegs) {
    // SAFETY: the caller guarantees the VMCB; HOST_VMCB is a page used only here; the stub
    // preserves every callee-saved register and the stack, and returns with IF=0, GIF=1.
    unsafe { hv_svm_run(vmcb_pa, (&raw const HOST_VMCB) as u64, regs) };
}

/// Executes XSETBV for the guest (XCR0 is not switched by VMRUN; hv itself uses no
/// extended state, being soft-float).
///
/// # Safety
/// `value` must be a valid XCR0 for this CPU (bit 0 set, only supported bits, AVX needs
/// SSE), or the instruction faults in hv.
pub unsafe fn xsetbv(value: u64) {
    // SAFETY: the caller checked the value; XCR0 affects only which state XSAVE manages.
    unsafe {
        asm!("xsetbv", in("ecx") 0u32, in("eax") value as u32, in("edx") (value >> 32) as u32,
             options(nostack, preserves_flags));
    }
}
