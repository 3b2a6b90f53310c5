//! Test `memory-outside-ram` of the `boot` group (issue 24, item 2): loads, stores, bit
//! tests, compares and logic operations on guest-physical memory that neither RAM nor a
//! special page backs (the page at 0xF0000000, mapped by the boot identity map). Xen 4.17
//! with no device model emulates the instruction: reads give all ones, writes are dropped.
//! Each probe is one instruction with its memory operand there; its result (the register,
//! or the flags the instruction defines) is a FACT, so hv's answers are compared with
//! stock Xen's line by line.

use alloc::format;
use alloc::string::{String, ToString};
use core::arch::asm;

use super::boot::Facts;
use crate::boot_info::RegionKind;
use crate::kernel;

/// A page in the hole below 4 GiB: no RAM, no special page, no emulated device on Xen or hv
/// (the local APIC is at 0xFEE00000, Xen's special pages just below 0xFF000000).
const UNBACKED: u64 = 0xf000_0000;

/// A register's value before a load, so that what the load leaves of it shows.
const BEFORE: u64 = 0x1122_3344_5566_7788;

/// RFLAGS: CF, PF, ZF, SF, OF (defined after `and`, `or`, `test` and `cmp`).
const FLAGS_DEFINED: u64 = 0x8c5;
/// RFLAGS: AF (defined after `cmp` only).
const FLAG_AF: u64 = 0x10;
/// RFLAGS: CF (the only flag `bt` defines).
const FLAG_CF: u64 = 0x1;

/// One probe: its FACT key, the instruction, what it gives and what Xen's emulator gives.
type Probe = (&'static str, fn() -> u64, u64);

const PROBES: &[Probe] = &[
    ("mov64", mov64, u64::MAX),
    ("mov32", mov32, 0xffff_ffff),
    ("mov16", mov16, 0x1122_3344_5566_ffff),
    ("mov8", mov8, 0x1122_3344_5566_77ff),
    ("mov8-high", mov8_high, 0x1122_3344_5566_ff88),
    ("movzx8", movzx8, 0xff),
    ("movzx16", movzx16, 0xffff),
    ("movsx8", movsx8, u64::MAX),
    ("bt-imm", bt_imm, FLAG_CF),
    ("bt-reg", bt_reg, FLAG_CF),
    ("store-then-load", store_then_load, 0xffff_ffff),
    ("store-imm-then-load", store_imm_then_load, 0xff),
    ("cmp-flags", cmp_flags, 0x44),
    ("test-flags", test_flags, 0x80),
    ("and-reg", and_reg, 0x5566_7788),
    ("or-reg-flags", or_reg_flags, 0x84),
];

/// The test: every probe's value as a FACT; fails on the first that differs from Xen's.
pub fn memory_outside_ram(facts: &mut Facts) -> Result<(), String> {
    let state = kernel::boot_state().ok_or_else(|| "boot state missing".to_string())?;
    if let Some(r) = state
        .memory_map()
        .iter()
        .find(|r| r.base <= UNBACKED && UNBACKED < r.end() && r.kind != RegionKind::Reserved)
    {
        return Err(format!("{UNBACKED:#x} lies in {r:?}"));
    }
    let mut first_wrong = None;
    for &(key, probe, want) in PROBES {
        let got = probe();
        facts.add(key, format!("{got:#x}"));
        if got != want && first_wrong.is_none() {
            first_wrong = Some(format!("{key}: {got:#x}, Xen gives {want:#x}"));
        }
    }
    first_wrong.map_or(Ok(()), Err)
}

fn mov64() -> u64 {
    let v: u64;
    // SAFETY: UNBACKED is mapped by the boot identity map (below 4 GiB) and backs nothing the
    // kernel uses; a read there has no effect on memory. The same holds for every probe.
    unsafe { asm!("mov {v}, qword ptr [{a}]", a = in(reg) UNBACKED, v = out(reg) v) };
    v
}

fn mov32() -> u64 {
    let mut v = BEFORE;
    // SAFETY: as in `mov64`.
    unsafe { asm!("mov eax, dword ptr [{a}]", a = in(reg) UNBACKED, inout("rax") v) };
    v
}

fn mov16() -> u64 {
    let mut v = BEFORE;
    // SAFETY: as in `mov64`.
    unsafe { asm!("mov ax, word ptr [{a}]", a = in(reg) UNBACKED, inout("rax") v) };
    v
}

fn mov8() -> u64 {
    let mut v = BEFORE;
    // SAFETY: as in `mov64`.
    unsafe { asm!("mov al, byte ptr [{a}]", a = in(reg) UNBACKED + 1, inout("rax") v) };
    v
}

fn mov8_high() -> u64 {
    let mut v = BEFORE;
    // SAFETY: as in `mov64`.
    unsafe { asm!("mov ah, byte ptr [{a}]", a = in(reg) UNBACKED + 2, inout("rax") v) };
    v
}

fn movzx8() -> u64 {
    let mut v = BEFORE;
    // SAFETY: as in `mov64`.
    unsafe { asm!("movzx ecx, byte ptr [{a}]", a = in(reg) UNBACKED + 3, inout("rcx") v) };
    v
}

fn movzx16() -> u64 {
    let mut v = BEFORE;
    // SAFETY: as in `mov64`.
    unsafe { asm!("movzx rcx, word ptr [{a}]", a = in(reg) UNBACKED + 4, inout("rcx") v) };
    v
}

fn movsx8() -> u64 {
    let mut v = BEFORE;
    // SAFETY: as in `mov64`.
    unsafe { asm!("movsx rcx, byte ptr [{a}]", a = in(reg) UNBACKED + 5, inout("rcx") v) };
    v
}

fn bt_imm() -> u64 {
    let flags: u64;
    // SAFETY: as in `mov64`; the flags are read back with pushf/pop on the stack.
    unsafe {
        asm!(
            "clc",
            "bt dword ptr [{a}], 5",
            "pushfq",
            "pop {f}",
            a = in(reg) UNBACKED + 8,
            f = out(reg) flags,
        );
    }
    flags & FLAG_CF
}

fn bt_reg() -> u64 {
    let flags: u64;
    // SAFETY: as in `bt_imm`.
    unsafe {
        asm!(
            "clc",
            "bt dword ptr [{a}], {b:e}",
            "pushfq",
            "pop {f}",
            a = in(reg) UNBACKED + 8,
            b = in(reg) 17u64,
            f = out(reg) flags,
        );
    }
    flags & FLAG_CF
}

fn store_then_load() -> u64 {
    let v: u64;
    // SAFETY: as in `mov64`; the write goes to the same unbacked page (dropped on Xen).
    unsafe {
        asm!(
            "mov dword ptr [{a}], {w:e}",
            "mov {v:e}, dword ptr [{a}]",
            a = in(reg) UNBACKED + 0x10,
            w = in(reg) 0x1234_5678u64,
            v = out(reg) v,
        );
    }
    v
}

fn store_imm_then_load() -> u64 {
    let v: u64;
    // SAFETY: as in `store_then_load`.
    unsafe {
        asm!(
            "mov byte ptr [{a}], 0x5a",
            "movzx {v:e}, byte ptr [{a}]",
            a = in(reg) UNBACKED + 0x18,
            v = out(reg) v,
        );
    }
    v
}

fn cmp_flags() -> u64 {
    let flags: u64;
    // SAFETY: as in `bt_imm`.
    unsafe {
        asm!(
            "cmp dword ptr [{a}], -1",
            "pushfq",
            "pop {f}",
            a = in(reg) UNBACKED + 0x20,
            f = out(reg) flags,
        );
    }
    flags & (FLAGS_DEFINED | FLAG_AF)
}

fn test_flags() -> u64 {
    let flags: u64;
    // SAFETY: as in `bt_imm`.
    unsafe {
        asm!(
            "test byte ptr [{a}], 0x80",
            "pushfq",
            "pop {f}",
            a = in(reg) UNBACKED + 0x21,
            f = out(reg) flags,
        );
    }
    flags & FLAGS_DEFINED
}

fn and_reg() -> u64 {
    let mut v = BEFORE;
    // SAFETY: as in `mov64`.
    unsafe { asm!("and eax, dword ptr [{a}]", a = in(reg) UNBACKED + 0x24, inout("rax") v) };
    v
}

fn or_reg_flags() -> u64 {
    let flags: u64;
    let mut v = BEFORE;
    // SAFETY: as in `bt_imm`.
    unsafe {
        asm!(
            "or ecx, dword ptr [{a}]",
            "pushfq",
            "pop {f}",
            a = in(reg) UNBACKED + 0x28,
            inout("rcx") v,
            f = out(reg) flags,
        );
    }
    if v == 0xffff_ffff {
        flags & FLAGS_DEFINED
    } else {
        v
    }
}
