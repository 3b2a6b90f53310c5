//! Self-test group `lapic` (not part of `platform`; issue 24, item 7): the local APIC Xen
//! emulates for a PVH domU, through its xAPIC page at 0xFEE00000. Reads the ID and version
//! (FACTs, with CPUID's APIC and x2APIC bits and `MSR_APIC_BASE`), then takes interrupts
//! from it: a one-shot timer (one interrupt, then none), a periodic timer (two more), and a
//! self-IPI through the ICR (pending in IRR while interrupts are off, taken once they are
//! on). Each interrupt's stub counts it and writes EOI. Then x2APIC mode through
//! `MSR_APIC_BASE.EXTD`: the ID, version and LDR MSRs (FACTs) and a self-IPI through the
//! `SELF_IPI` MSR, EOI by MSR; back to xAPIC mode through disabled (which resets the APIC).
//! The APIC is software-disabled again at the end.
//!
//! `cargo xtask hv-test` runs it on hv; stock Xen 4.17 (this QEMU, by hand with the
//! `xen-test` image) printed the same FACT lines and passed all five tests.

use alloc::format;
use alloc::string::String;
use core::sync::atomic::{AtomicU64, Ordering};

use x86_64::instructions::interrupts;

use super::report::Reporter;
use super::run::ConsoleOut;
use crate::arch::exceptions;
use crate::xen::time;

/// The xAPIC page (Xen's `APIC_DEFAULT_PHYS_BASE`), identity-mapped below 4 GiB.
const BASE: u64 = 0xfee0_0000;
const ID: u64 = 0x20;
const VERSION: u64 = 0x30;
const TPR: u64 = 0x80;
const SPIV: u64 = 0xf0;
const IRR: u64 = 0x200;
const ICR: u64 = 0x300;
const LVTT: u64 = 0x320;
const TMICT: u64 = 0x380;
const TMCCT: u64 = 0x390;
const TDCR: u64 = 0x3e0;
/// LVT mask bit; periodic timer mode.
const MASKED: u32 = 1 << 16;
const PERIODIC: u32 = 1 << 17;
/// ICR destination shorthand "self".
const SELF: u32 = 1 << 18;
/// The vectors: the timer's and the self-IPI's.
const TIMER_VECTOR: u8 = 0xe0;
const IPI_VECTOR: u8 = 0xe1;
const X2APIC_VECTOR: u8 = 0xe2;
/// `MSR_APIC_BASE` and its enable and x2APIC-mode bits.
const MSR_APIC_BASE: u32 = 0x1b;
const BASE_ENABLE: u64 = 1 << 11;
const BASE_EXTD: u64 = 1 << 10;
/// How long an interrupt may take to come.
const WAIT_MS: u64 = 2_000;

/// Interrupts taken on each vector (the stubs count them).
static TIMER_COUNT: AtomicU64 = AtomicU64::new(0);
static IPI_COUNT: AtomicU64 = AtomicU64::new(0);
static X2APIC_COUNT: AtomicU64 = AtomicU64::new(0);

core::arch::global_asm!(
    r#"
    .pushsection .text.lapic_test, "ax"
    .p2align 4
    .global pvguest_lapic_timer_entry
pvguest_lapic_timer_entry:
    lock incq {timer}(%rip)
    jmp 1f
    .p2align 4
    .global pvguest_lapic_ipi_entry
pvguest_lapic_ipi_entry:
    lock incq {ipi}(%rip)
1:
    /* EOI: a 32-bit store to the xAPIC page's EOI register. */
    push %rax
    movabs $0xfee000b0, %rax
    movl $0, (%rax)
    pop %rax
    iretq
    .p2align 4
    .global pvguest_lapic_x2apic_entry
pvguest_lapic_x2apic_entry:
    lock incq {x2apic}(%rip)
    /* EOI in x2APIC mode: WRMSR 0x80b = 0. */
    push %rax
    push %rcx
    push %rdx
    mov $0x80b, %ecx
    xor %eax, %eax
    xor %edx, %edx
    wrmsr
    pop %rdx
    pop %rcx
    pop %rax
    iretq
    .popsection
"#,
    timer = sym TIMER_COUNT,
    ipi = sym IPI_COUNT,
    x2apic = sym X2APIC_COUNT,
    options(att_syntax)
);

unsafe extern "C" {
    /// The stubs above (code addresses, never called from Rust).
    static pvguest_lapic_timer_entry: u8;
    static pvguest_lapic_ipi_entry: u8;
    static pvguest_lapic_x2apic_entry: u8;
}

fn rdmsr(msr: u32) -> u64 {
    // SAFETY: only MSRs Xen offers a domU whose CPUID has APIC and x2APIC are read (the
    // caller checks the mode first); RDMSR has no other effect.
    unsafe { x86_64::registers::model_specific::Msr::new(msr).read() }
}

fn wrmsr(msr: u32, value: u64) {
    let mut m = x86_64::registers::model_specific::Msr::new(msr);
    // SAFETY: the callers write only APIC_BASE transitions Xen allows (xAPIC to x2APIC,
    // disabled, enabled) and x2APIC registers in x2APIC mode with no reserved bit; they
    // change only the emulated APIC.
    unsafe { m.write(value) }
}

fn read(offset: u64) -> u32 {
    // SAFETY: the xAPIC page is identity-mapped (below 4 GiB) and emulated by the
    // hypervisor; a 32-bit aligned read of a register has no effect on memory.
    unsafe { core::ptr::read_volatile((BASE + offset) as *const u32) }
}

fn write(offset: u64, value: u32) {
    // SAFETY: as in `read`; a register write changes only the emulated APIC's state.
    unsafe { core::ptr::write_volatile((BASE + offset) as *mut u32, value) }
}

/// Runs the group's tests.
pub fn run(rep: &mut Reporter<'_, ConsoleOut>) {
    let ready = crate::kernel::ensure_events();
    let result = registers(rep);
    let _ = rep.record("lapic-registers", result);
    if !ready {
        let _ = rep.record(
            "lapic-interrupts",
            Err("event channels and the clock are not up"),
        );
        return;
    }
    install();
    let _ = rep.record("lapic-one-shot", one_shot());
    let _ = rep.record("lapic-periodic", periodic());
    let result = self_ipi(rep);
    let _ = rep.record("lapic-self-ipi", result);
    let result = x2apic(rep);
    let _ = rep.record("lapic-x2apic", result);
    interrupts::without_interrupts(|| {
        write(TMICT, 0);
        write(LVTT, MASKED | u32::from(TIMER_VECTOR));
        write(SPIV, 0xff);
    });
}

/// ID, version, CPUID and `MSR_APIC_BASE` as FACTs; then the APIC software-enabled.
fn registers(rep: &mut Reporter<'_, ConsoleOut>) -> Result<(), String> {
    let leaf1 = core::arch::x86_64::__cpuid(1);
    let apic = leaf1.edx >> 9 & 1;
    let x2apic = leaf1.ecx >> 21 & 1;
    // SAFETY: MSR_APIC_BASE exists whenever CPUID says APIC (checked first); RDMSR only reads.
    let base =
        (apic == 1).then(|| unsafe { x86_64::registers::model_specific::Msr::new(0x1b).read() });
    let (id, version) = (read(ID), read(VERSION));
    let _ = rep.fact("lapic-registers", "cpuid-apic", apic);
    let _ = rep.fact("lapic-registers", "cpuid-x2apic", x2apic);
    let _ = rep.fact(
        "lapic-registers",
        "apic-base",
        format!("{:#x}", base.unwrap_or(0)),
    );
    let _ = rep.fact("lapic-registers", "id", format!("{id:#x}"));
    let _ = rep.fact("lapic-registers", "version", format!("{version:#x}"));
    let _ = rep.fact("lapic-registers", "spiv", format!("{:#x}", read(SPIV)));
    if apic != 1 {
        return Err("CPUID 1 EDX.APIC is clear".into());
    }
    write(SPIV, 0x1ff);
    write(TPR, 0);
    let spiv = read(SPIV);
    if spiv != 0x1ff || version & 0xff != 0x14 {
        return Err(format!(
            "SPIV {spiv:#x} after writing 0x1ff, version {version:#x}"
        ));
    }
    Ok(())
}

/// Points the two vectors at their stubs.
fn install() {
    interrupts::without_interrupts(|| {
        let timer = (&raw const pvguest_lapic_timer_entry) as u64;
        let ipi = (&raw const pvguest_lapic_ipi_entry) as u64;
        let x2apic = (&raw const pvguest_lapic_x2apic_entry) as u64;
        // SAFETY: all are the stubs above, which preserve every register (the ones they use
        // are pushed and popped; the flags come back with iretq) and end with iretq;
        // interrupts are off.
        unsafe {
            exceptions::set_interrupt_gate(TIMER_VECTOR, timer);
            exceptions::set_interrupt_gate(IPI_VECTOR, ipi);
            exceptions::set_interrupt_gate(X2APIC_VECTOR, x2apic);
        }
    });
}

/// Waits with interrupts on until `count` reaches `target`, for at most [`WAIT_MS`].
fn wait_for(count: &AtomicU64, target: u64, what: &str) -> Result<(), String> {
    let end = time::deadline_ms(WAIT_MS).map_err(|e| format!("clock: {e:?}"))?;
    interrupts::enable();
    while count.load(Ordering::Acquire) < target {
        if time::now().map_err(|e| format!("clock: {e:?}"))? >= end {
            return Err(format!(
                "{what}: {} interrupts, {target} expected within {WAIT_MS} ms",
                count.load(Ordering::Acquire)
            ));
        }
        core::hint::spin_loop();
    }
    Ok(())
}

/// A one-shot timer of 10 ms (divide by 1, 1,000,000 counts of Xen's 100 MHz bus): its
/// count runs down, one interrupt comes, and no other in the next 30 ms.
fn one_shot() -> Result<(), String> {
    let before = TIMER_COUNT.load(Ordering::Acquire);
    interrupts::without_interrupts(|| {
        write(LVTT, u32::from(TIMER_VECTOR));
        write(TDCR, 0xb);
        write(TMICT, 1_000_000);
    });
    let current = read(TMCCT);
    if current == 0 || current > 1_000_000 {
        return Err(format!(
            "current count {current} right after an initial 1000000"
        ));
    }
    wait_for(&TIMER_COUNT, before + 1, "one-shot")?;
    time::sleep_ms(30).map_err(|e| format!("sleep: {e:?}"))?;
    let after = TIMER_COUNT.load(Ordering::Acquire);
    if after != before + 1 || read(TMCCT) != 0 {
        return Err(format!(
            "{} interrupts from a one-shot timer, current count {}",
            after - before,
            read(TMCCT)
        ));
    }
    Ok(())
}

/// A periodic timer of 5 ms: two interrupts, then stopped by an initial count of 0.
fn periodic() -> Result<(), String> {
    let before = TIMER_COUNT.load(Ordering::Acquire);
    interrupts::without_interrupts(|| {
        write(LVTT, PERIODIC | u32::from(TIMER_VECTOR));
        write(TMICT, 500_000);
    });
    let waited = wait_for(&TIMER_COUNT, before + 2, "periodic");
    write(TMICT, 0);
    waited
}

/// A self-IPI with interrupts off: pending in IRR, taken once they are on.
fn self_ipi(rep: &mut Reporter<'_, ConsoleOut>) -> Result<(), String> {
    let before = IPI_COUNT.load(Ordering::Acquire);
    let irr_word = IRR + 0x10 * u64::from(IPI_VECTOR / 32);
    let bit = 1u32 << (IPI_VECTOR % 32);
    let pending = interrupts::without_interrupts(|| {
        write(ICR, SELF | u32::from(IPI_VECTOR));
        read(irr_word) & bit != 0
    });
    let _ = rep.fact("lapic-self-ipi", "pending-while-off", pending);
    wait_for(&IPI_COUNT, before + 1, "self-IPI")?;
    if !pending || read(irr_word) & bit != 0 {
        return Err(format!(
            "IRR bit {pending} before, {:#x} after",
            read(irr_word)
        ));
    }
    Ok(())
}

/// x2APIC mode: the registers by MSR, a self-IPI through `SELF_IPI` (0x83f) pending in IRR
/// (0x827) while interrupts are off and taken once they are on; then back to xAPIC mode
/// through disabled, which resets the APIC (SPIV 0xff again, read through the page).
fn x2apic(rep: &mut Reporter<'_, ConsoleOut>) -> Result<(), String> {
    if core::arch::x86_64::__cpuid(1).ecx & (1 << 21) == 0 {
        return Err("CPUID 1 ECX.x2APIC is clear".into());
    }
    let base = rdmsr(MSR_APIC_BASE);
    let before = X2APIC_COUNT.load(Ordering::Acquire);
    let bit = 1u64 << (X2APIC_VECTOR % 32);
    let (id, version, ldr, spiv, pending) = interrupts::without_interrupts(|| {
        wrmsr(MSR_APIC_BASE, base | BASE_EXTD);
        let regs = (rdmsr(0x802), rdmsr(0x803), rdmsr(0x80d), rdmsr(0x80f));
        wrmsr(0x80f, 0x1ff);
        wrmsr(0x83f, u64::from(X2APIC_VECTOR));
        let pending = rdmsr(0x820 + u32::from(X2APIC_VECTOR / 32)) & bit != 0;
        (regs.0, regs.1, regs.2, regs.3, pending)
    });
    let _ = rep.fact("lapic-x2apic", "id", format!("{id:#x}"));
    let _ = rep.fact("lapic-x2apic", "version", format!("{version:#x}"));
    let _ = rep.fact("lapic-x2apic", "ldr", format!("{ldr:#x}"));
    let _ = rep.fact("lapic-x2apic", "spiv", format!("{spiv:#x}"));
    let _ = rep.fact("lapic-x2apic", "pending-while-off", pending);
    let waited = wait_for(&X2APIC_COUNT, before + 1, "x2APIC self-IPI");
    let (isr, spiv_after) = interrupts::without_interrupts(|| {
        let isr = rdmsr(0x810 + u32::from(X2APIC_VECTOR / 32));
        wrmsr(MSR_APIC_BASE, base & !(BASE_ENABLE | BASE_EXTD));
        wrmsr(MSR_APIC_BASE, base);
        (isr, read(SPIV))
    });
    let _ = rep.fact(
        "lapic-x2apic",
        "xapic-spiv-after",
        format!("{spiv_after:#x}"),
    );
    waited?;
    if !pending || isr & bit != 0 || spiv_after != 0xff {
        return Err(format!(
            "IRR bit {pending} before, ISR {isr:#x} after EOI, SPIV {spiv_after:#x} after the reset"
        ));
    }
    Ok(())
}
