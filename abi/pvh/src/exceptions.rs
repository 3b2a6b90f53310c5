//! The IDT and the CPU exception stubs (vectors 0..31): entry stubs in assembly push a
//! uniform frame and call the kernel's fault handler, passed to [`init`] (pvguest prints the
//! fault on its emergency console and crashes its domain; hv prints it on the serial port and
//! stops QEMU). [`set_interrupt_gate`] installs the kernel's own interrupt stubs (pvguest's
//! event upcall, hv's IRQ and local APIC stubs).

use spin::Once;

use super::gdt;

/// Number of exception vectors handled.
pub const EXCEPTION_VECTORS: usize = 32;
/// Double fault vector.
pub const DOUBLE_FAULT: usize = 8;

/// What the stubs leave on the stack, lowest address first.
#[repr(C)]
#[derive(Debug)]
pub struct ExceptionFrame {
    /// General registers saved by the common stub.
    pub r15: u64,
    /// Saved r14.
    pub r14: u64,
    /// Saved r13.
    pub r13: u64,
    /// Saved r12.
    pub r12: u64,
    /// Saved r11.
    pub r11: u64,
    /// Saved r10.
    pub r10: u64,
    /// Saved r9.
    pub r9: u64,
    /// Saved r8.
    pub r8: u64,
    /// Saved rbp.
    pub rbp: u64,
    /// Saved rdi.
    pub rdi: u64,
    /// Saved rsi.
    pub rsi: u64,
    /// Saved rdx.
    pub rdx: u64,
    /// Saved rcx.
    pub rcx: u64,
    /// Saved rbx.
    pub rbx: u64,
    /// Saved rax.
    pub rax: u64,
    /// Vector number pushed by the stub.
    pub vector: u64,
    /// Error code (pushed by the CPU, or 0 by the stub).
    pub error_code: u64,
    /// Faulting or next instruction.
    pub rip: u64,
    /// Code segment.
    pub cs: u64,
    /// Flags.
    pub rflags: u64,
    /// Stack pointer at the time of the exception.
    pub rsp: u64,
    /// Stack segment.
    pub ss: u64,
}

const _: () = assert!(core::mem::size_of::<ExceptionFrame>() == 22 * 8);

core::arch::global_asm!(
    r#"
    .macro EXC_NOERR n
    .p2align 4
exc_stub_\n:
    push $0
    push $\n
    jmp exc_common
    .endm

    .macro EXC_ERR n
    .p2align 4
exc_stub_\n:
    push $\n
    jmp exc_common
    .endm

    .pushsection .text.exceptions, "ax"
    EXC_NOERR 0
    EXC_NOERR 1
    EXC_NOERR 2
    EXC_NOERR 3
    EXC_NOERR 4
    EXC_NOERR 5
    EXC_NOERR 6
    EXC_NOERR 7
    EXC_ERR   8
    EXC_NOERR 9
    EXC_ERR   10
    EXC_ERR   11
    EXC_ERR   12
    EXC_ERR   13
    EXC_ERR   14
    EXC_NOERR 15
    EXC_NOERR 16
    EXC_ERR   17
    EXC_NOERR 18
    EXC_NOERR 19
    EXC_NOERR 20
    EXC_ERR   21
    EXC_NOERR 22
    EXC_NOERR 23
    EXC_NOERR 24
    EXC_NOERR 25
    EXC_NOERR 26
    EXC_NOERR 27
    EXC_NOERR 28
    EXC_ERR   29
    EXC_ERR   30
    EXC_NOERR 31

exc_common:
    push %rax
    push %rbx
    push %rcx
    push %rdx
    push %rsi
    push %rdi
    push %rbp
    push %r8
    push %r9
    push %r10
    push %r11
    push %r12
    push %r13
    push %r14
    push %r15
    mov %rsp, %rdi
    cld
    call {handler}
1:  hlt
    jmp 1b
    .popsection

    .pushsection .rodata.exception_stubs, "a"
    .p2align 3
    .global exception_stub_table
exception_stub_table:
    .irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    .quad exc_stub_\n
    .endr
    .popsection
"#,
    handler = sym exception_entry,
    options(att_syntax)
);

unsafe extern "C" {
    /// Addresses of the 32 entry stubs.
    static exception_stub_table: [u64; EXCEPTION_VECTORS];
}

/// One 16-byte IDT gate.
#[repr(C)]
#[derive(Clone, Copy)]
struct Gate {
    offset_low: u16,
    selector: u16,
    ist: u8,
    type_attr: u8,
    offset_mid: u16,
    offset_high: u32,
    reserved: u32,
}

const _: () = assert!(core::mem::size_of::<Gate>() == 16);

impl Gate {
    const MISSING: Self = Self {
        offset_low: 0,
        selector: 0,
        ist: 0,
        type_attr: 0,
        offset_mid: 0,
        offset_high: 0,
        reserved: 0,
    };

    /// A present, DPL 0, 64-bit interrupt gate to `handler`.
    fn interrupt(handler: u64, selector: u16, ist: u8) -> Self {
        Self {
            offset_low: (handler & 0xffff) as u16,
            selector,
            ist,
            type_attr: 0x8e,
            offset_mid: ((handler >> 16) & 0xffff) as u16,
            offset_high: (handler >> 32) as u32,
            reserved: 0,
        }
    }
}

#[repr(C, align(16))]
struct Idt([Gate; 256]);

/// The IDT limit (its size minus one): 256 gates of 16 bytes.
#[allow(clippy::cast_possible_truncation)] // 4095, asserted below
const IDT_LIMIT: u16 = (core::mem::size_of::<Idt>() - 1) as u16;
const _: () = assert!(IDT_LIMIT == 4095);

/// The IDT: written once by [`init`] before it is loaded, read only by the CPU afterwards.
static mut IDT: Idt = Idt([Gate::MISSING; 256]);

/// What the common stub found: the saved frame and CR2 (the faulting address of a page fault).
#[derive(Debug)]
pub struct Fault<'a> {
    /// The frame the stubs pushed.
    pub frame: &'a ExceptionFrame,
    /// CR2 when the handler ran.
    pub cr2: u64,
}

/// `vector=14 (page fault) error=0x2 rip=0x... cr2=0x... rsp=0x... cs=0x8 rflags=0x...`: the
/// text both kernels print after their own prefix.
impl core::fmt::Display for Fault<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let frame = self.frame;
        write!(
            f,
            "vector={} ({}) error={:#x} rip={:#x} cr2={:#x} rsp={:#x} cs={:#x} rflags={:#x}",
            frame.vector,
            vector_name(frame.vector),
            frame.error_code,
            frame.rip,
            self.cr2,
            frame.rsp,
            frame.cs,
            frame.rflags
        )
    }
}

/// The kernel's fault handler: reports the fault and stops (an exception is never resumed).
pub type FaultHandler = fn(&Fault<'_>) -> !;

/// The handler [`init`] was given.
static HANDLER: Once<FaultHandler> = Once::new();

/// Fills and loads the IDT (exception vectors 0..31), each fault going to `handler`. Call
/// once, after [`gdt::init`], with interrupts disabled.
pub fn init(handler: FaultHandler) {
    HANDLER.call_once(|| handler);
    let selector = gdt::code_selector();
    // SAFETY: single-threaded boot: nothing else references IDT or has loaded it yet; the
    // stub table is a read-only array of 32 addresses emitted by the assembly above.
    unsafe {
        let idt = &raw mut IDT;
        let stubs = &raw const exception_stub_table;
        for v in 0..EXCEPTION_VECTORS {
            let ist = if v == DOUBLE_FAULT {
                gdt::DOUBLE_FAULT_IST
            } else {
                0
            };
            (*idt).0[v] = Gate::interrupt((*stubs)[v], selector, ist);
        }
        let ptr = x86_64::structures::DescriptorTablePointer {
            limit: IDT_LIMIT,
            base: x86_64::VirtAddr::new(idt as u64),
        };
        x86_64::instructions::tables::lidt(&ptr);
    }
}

/// Points IDT entry `vector` (32..=255: an external-interrupt vector) at `handler`, a
/// present DPL 0 interrupt gate (the CPU clears IF on entry).
///
/// # Safety
/// `handler` must be the address of an entry stub that preserves every register the
/// interrupted code relies on and ends with `iretq`; the caller must run with interrupts
/// disabled, so the CPU never reads a half-written gate.
pub unsafe fn set_interrupt_gate(vector: u8, handler: u64) {
    debug_assert!(usize::from(vector) >= EXCEPTION_VECTORS);
    let gate = Gate::interrupt(handler, gdt::code_selector(), 0);
    // SAFETY: one CPU, interrupts off (caller), and vectors >= 32 are never raised by the CPU
    // itself; the IDT static lives forever, so a write of one 16-byte entry is seen whole by
    // the next delivery on this vector.
    unsafe {
        let idt = &raw mut IDT;
        core::ptr::write_volatile(&raw mut (*idt).0[usize::from(vector)], gate);
    }
}

/// The name of an exception vector.
pub fn vector_name(vector: u64) -> &'static str {
    match vector {
        0 => "divide error",
        1 => "debug",
        2 => "NMI",
        3 => "breakpoint",
        4 => "overflow",
        5 => "bound range",
        6 => "invalid opcode",
        7 => "device not available",
        8 => "double fault",
        10 => "invalid TSS",
        11 => "segment not present",
        12 => "stack fault",
        13 => "general protection",
        14 => "page fault",
        16 => "x87 floating point",
        17 => "alignment check",
        18 => "machine check",
        19 => "SIMD floating point",
        21 => "control protection",
        _ => "reserved",
    }
}

/// Called by the common stub with the saved frame; hands the fault to the kernel's handler
/// (halts for good if there is none yet: [`init`] sets it before loading the IDT).
extern "C" fn exception_entry(frame: &ExceptionFrame) -> ! {
    let cr2 = x86_64::registers::control::Cr2::read_raw();
    if let Some(handler) = HANDLER.get() {
        handler(&Fault { frame, cr2 });
    }
    loop {
        x86_64::instructions::interrupts::disable();
        x86_64::instructions::hlt();
    }
}
