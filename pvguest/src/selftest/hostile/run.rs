//! Running the `hostile` group: the context its calls derive their arguments from, each
//! class's loop, and its lines.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use abi::memory::XENMAPSPACE_SHARED_INFO;
use x86_64::instructions::interrupts;

use super::calls::{self, Ctx};
use super::digest::{ClassRecord, Prng};
use super::trap::{self, Insn, Outcome, Traps};
use crate::arch::user::{self, Probe};
use crate::boot_info::RegionKind;
use crate::cmdline::option;
use crate::memory::frames::FRAME_SIZE;
use crate::memory::global;
use crate::selftest::report::Reporter;
use crate::selftest::run::ConsoleOut;
use crate::xen::{hypercall, shared_page, time};

/// A class generated call by call.
type Generated = fn(&mut Ctx, &mut Prng, &mut ClassRecord);

/// The generated classes, in order.
const GENERATED: [(&str, Generated); 8] = [
    ("ops", calls::ops),
    ("ports", calls::ports),
    ("grants", calls::grants),
    ("frames", calls::frames),
    ("domids", calls::domids),
    ("buffers", calls::buffers),
    ("svm", svm),
    ("msrs", msrs),
];

/// An id far above any domain created, for calls naming another domain without a victim.
const FAR_DOMID: u16 = 0x7fe8;

fn number(cmdline: &str, key: &str) -> Option<u64> {
    let v = option(cmdline, key)?;
    match v.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => v.parse().ok(),
    }
}

/// `hostile-xs-quotas=<nodes>,<transaction nodes>,<memory>`: the xenstored quotas the run
/// set (smaller than C's defaults), which the `xenstore` class's floods must meet.
fn xs_quotas(cmdline: &str) -> Option<(usize, usize, usize)> {
    let mut it = option(cmdline, "hostile-xs-quotas")?
        .split(',')
        .map(|v| v.parse().ok());
    let q = (it.next()??, it.next()??, it.next()??);
    it.next().is_none().then_some(q)
}

/// Runs the group.
pub fn run(rep: &mut Reporter<'_, ConsoleOut>) {
    crate::kernel::ensure_platform();
    let cmdline = crate::kernel::boot_state().map_or("", |b| b.cmdline());
    let seed = number(cmdline, "hostile-seed").unwrap_or(1);
    let total = number(cmdline, "hostile-calls").unwrap_or(1000);
    let mut ctx = match context(cmdline) {
        Ok(c) => c,
        Err(e) => {
            let _ = rep.record("hostile-setup", Err(e));
            return;
        }
    };
    let per_class = total / GENERATED.len() as u64;
    let start = time::now();
    let mut made = 0u64;
    for (i, &(class, generate)) in GENERATED.iter().enumerate() {
        let mut rng = Prng::new(seed ^ ((i as u64 + 1) << 56));
        let mut rec = ClassRecord::default();
        for _ in 0..per_class {
            generate(&mut ctx, &mut rng, &mut rec);
        }
        made += rec.calls;
        report(rep, class, &rec, Ok(()));
    }
    let (rec, verdict) = cpl3();
    made += rec.calls;
    report(rep, "cpl3", &rec, verdict);
    if let Some((entries, nodes, memory)) = xs_quotas(cmdline) {
        crate::selftest::xs_quota::expect_quotas(entries, nodes, memory);
    }
    let (rec, verdict) = xenstore();
    made += rec.calls;
    report(rep, "xenstore", &rec, verdict);
    if let (Ok(s), Ok(e)) = (start, time::now()) {
        let ms = e.as_nanos().saturating_sub(s.as_nanos()) / 1_000_000;
        log::info!("hostile: {made} calls in {ms} ms");
    }
    let seen = if ctx.canary_seen {
        Err(format!("a copy brought frame {:#x}'s pattern", ctx.canary))
    } else {
        Ok(())
    };
    let _ = rep.record("hostile-canary-unread", seen);
}

fn report(
    rep: &mut Reporter<'_, ConsoleOut>,
    class: &str,
    rec: &ClassRecord,
    verdict: Result<(), String>,
) {
    if let Ok(now) = time::now() {
        log::info!("hostile {class}: done at {} ms", now.as_nanos() / 1_000_000);
    }
    for line in rec.kinds.lines(6) {
        log::info!("hostile {class}: {line}");
    }
    let _ = rep.fact("hostile", &format!("{class}.calls"), rec.calls);
    let _ = rep.fact("hostile", &format!("{class}.errnos"), rec.digest.hex());
    let _ = rep.record(&format!("hostile-{class}"), verdict);
}

/// What the calls derive their arguments from, and their pages.
fn context(cmdline: &str) -> Result<Ctx, String> {
    let state = crate::kernel::boot_state().ok_or("no boot state")?;
    let ram_end = state
        .memory_map()
        .iter()
        .filter(|r| r.kind == RegionKind::Ram)
        .map(|r| r.end())
        .max()
        .ok_or("no RAM in the memory map")?;
    let ram_frames = ram_end.div_ceil(FRAME_SIZE);
    let (nr_frames, max_frames) =
        hypercall::gnttab_query_size().map_err(|e| format!("query_size: {e}"))?;
    let frames = |n| global::allocate_frames(n).map_err(|e| format!("frames: {e:?}"));
    let args = frames(1)?;
    let data = frames(1)?;
    let before_hole = frames(2)?;
    let two_pages = frames(2)?;
    punch_hole(before_hole / FRAME_SIZE + 1)?;
    let canary = match number(cmdline, "hostile-canary") {
        Some(c) if c >= ram_frames => c,
        Some(c) => {
            log::info!("hostile: canary {c:#x} lies in our own RAM: aiming past it instead");
            ram_frames + 0x1000
        }
        None => ram_frames + 0x1000,
    };
    let victim = number(cmdline, "hostile-victim").map_or(FAR_DOMID, |v| v as u16);
    let mut ctx = Ctx {
        ram_frames,
        grant_entries: u64::from(nr_frames) * (FRAME_SIZE / 8),
        max_grant_frames: max_frames,
        port_limit: 0,
        args,
        data,
        before_hole,
        two_pages,
        canary,
        victim,
        canary_seen: false,
    };
    ctx.port_limit = port_limit();
    log::info!(
        "hostile: {ram_frames:#x} RAM frames, {nr_frames}/{max_frames} grant frames, ports below {}, canary {canary:#x}, other domain {victim}",
        ctx.port_limit
    );
    Ok(ctx)
}

/// The first port `EVTCHNOP_status` calls invalid.
fn port_limit() -> u32 {
    for port in 0..4096u32 {
        let mut arg = [u32::from(abi::xen::DOMID_SELF), port, 0, 0, 0, 0];
        if hypercall::evtchn_op_raw(abi::event_channel::EVTCHNOP_STATUS, &mut arg) != Ok(0) {
            return port;
        }
    }
    4096
}

/// Turns guest frame `gfn` (the group's to lose) into a hole: shared_info moved over it and
/// back home, interrupts off meanwhile (the upcall reads shared_info at home).
fn punch_hole(gfn: u64) -> Result<(), String> {
    let home = shared_page::shared_info().addr() / FRAME_SIZE;
    interrupts::without_interrupts(|| {
        // SAFETY: `gfn` is the group's to lose; nothing touches shared_info's home frame
        // until it is back.
        let away = unsafe { hypercall::add_to_physmap_raw(XENMAPSPACE_SHARED_INFO, 0, gfn) };
        // SAFETY: `home` is the shared-info page's own frame.
        let back = unsafe { hypercall::add_to_physmap_raw(XENMAPSPACE_SHARED_INFO, 0, home) };
        match (away, back) {
            (Ok(0), Ok(0)) => Ok(()),
            other => Err(format!("moving shared_info away and back: {other:?}")),
        }
    })
}

/// An instruction's outcome as one answer: a vector as 1,000,000 + vector, else `value`.
fn outcome(o: Outcome, value: impl FnOnce(u64, u64, u64) -> i64) -> i64 {
    match o {
        Outcome::Raised(v) => 1_000_000 + v as i64,
        Outcome::Done(a, d, c) => value(a, d, c),
    }
}

/// `svm`: every SVM instruction, VMMCALL with numbers past the table.
fn svm(_ctx: &mut Ctx, rng: &mut Prng, rec: &mut ClassRecord) {
    let traps = Traps::install();
    let (kind, op, rax) = match rng.below(8) {
        0 => ("vmrun", 0xd8, 0),
        1 => ("vmload", 0xda, 0),
        2 => ("vmsave", 0xdb, 0),
        3 => ("stgi", 0xdc, 0),
        4 => ("clgi", 0xdd, 0),
        5 => ("skinit", 0xde, 0),
        6 => ("invlpga", 0xdf, 0),
        _ => {
            let nr = match rng.below(4) {
                0 => 128 + rng.below(1 << 16),
                1 => (1 << 32) + rng.below(64),
                2 => 1 << 63,
                _ => u64::MAX,
            };
            ("vmmcall-bad", 0xd9, nr)
        }
    };
    let a = outcome(trap::execute(&traps, Insn::Svm(op, rax)), |rax, _, _| {
        rax as i64
    });
    rec.add(kind, a);
}

/// The MSRs read: name, number, and whether the value itself (else only zero or not) is
/// the answer.
const READ: [(&str, u32, bool); 16] = [
    ("tsc", 0x10, false),
    ("apic-base", 0x1b, true),
    ("feature-control", 0x3a, false),
    ("patch-level", 0x8b, false),
    ("mtrr-cap", 0xfe, true),
    ("misc-enable", 0x1a0, false),
    ("debugctl", 0x1d9, true),
    ("pat", 0x277, true),
    ("efer", 0xc000_0080, true),
    ("tsc-aux", 0xc000_0103, true),
    ("syscfg", 0xc001_0010, false),
    ("hwcr", 0xc001_0015, false),
    ("vm-cr", 0xc001_0114, false),
    ("vm-hsave", 0xc001_0117, false),
    ("kvm", 0x4b56_4d00, false),
    ("unknown", 0xdead_beef, false),
];

/// `msrs`: RDMSR and WRMSR, RDPMC, RDTSCP, MONITOR and MWAIT.
fn msrs(_ctx: &mut Ctx, rng: &mut Prng, rec: &mut ClassRecord) {
    let traps = Traps::install();
    let value = |a: u64, d: u64| (d << 32) | (a & 0xffff_ffff);
    let (kind, a): (&str, i64) = match rng.below(5) {
        0 | 1 => {
            let &(name, msr, exact) = rng.pick(&READ).unwrap_or(&READ[0]);
            let o = trap::execute(&traps, Insn::Rdmsr(msr));
            (
                name,
                outcome(o, |a, d, _| {
                    let v = value(a, d);
                    if exact { v as i64 } else { i64::from(v != 0) }
                }),
            )
        }
        2 => {
            let (name, msr, v) = match rng.below(6) {
                0 => ("write-unknown", 0xdead_beef, 0),
                1 => ("write-vm-hsave", 0xc001_0117, 0),
                2 => {
                    let efer = match trap::execute(&traps, Insn::Rdmsr(0xc000_0080)) {
                        Outcome::Done(a, d, _) => value(a, d),
                        Outcome::Raised(_) => 0xd01,
                    };
                    ("write-efer-no-lme", 0xc000_0080, efer & !0x100)
                }
                3 => ("write-pat-reserved", 0x277, 0x0202_0202_0202_0202),
                4 => ("write-tsc-aux", 0xc000_0103, 0x1234 + rng.below(16)),
                _ => ("write-tsc-aux-high", 0xc000_0103, 1 << 32),
            };
            (
                name,
                outcome(trap::execute(&traps, Insn::Wrmsr(msr, v)), |_, _, _| 0),
            )
        }
        3 => {
            let (name, insn) = match rng.below(4) {
                0 => ("rdpmc", Insn::Rdpmc(rng.below(4) as u32)),
                1 => ("rdpmc-bad", Insn::Rdpmc(0x4000_0000 + rng.below(64) as u32)),
                2 => ("monitor", Insn::Monitor),
                _ => ("mwait", Insn::Mwait),
            };
            (
                name,
                outcome(trap::execute(&traps, insn), |a, d, _| {
                    i64::from(value(a, d) != 0)
                }),
            )
        }
        _ => (
            "rdtscp",
            outcome(trap::execute(&traps, Insn::Rdtscp), |_, _, c| c as i64),
        ),
    };
    rec.add(kind, a);
}

/// The CPL-3 probes, by name.
const CPL3_PROBES: [(&str, Probe); 6] = [
    ("cs", Probe::Cs),
    ("alignment-check", Probe::AlignmentCheck),
    ("unaligned-no-check", Probe::UnalignedNoCheck),
    ("aligned-check", Probe::AlignedCheck),
    ("single-step", Probe::SingleStep),
    ("privileged", Probe::Privileged),
];

/// A CPL-3 probe's exit as one answer: vector * 10^6 + error code * 10^4 + offset * 100 +
/// what the probe reports (`cs`: the CPL it ran at; `single-step`: DR6.BS).
fn cpl3_answer(probe: Probe, exit: &user::Exit) -> i64 {
    let extra = match probe {
        Probe::Cs => exit.rax & 3,
        Probe::SingleStep => (exit.dr6 >> 14) & 1,
        _ => 0,
    };
    (exit.vector.min(255) * 1_000_000
        + exit.error_code.min(99) * 10_000
        + exit.offset.min(99) * 100
        + extra) as i64
}

/// What any x86 platform must answer for `probe` (`unaligned_end`, `step_end`: the offsets
/// after the unaligned load and after the first stepped instruction, from the probes' start).
fn cpl3_expected(probe: Probe, exit: &user::Exit, unaligned_end: u64, step_end: u64) -> bool {
    let (v, e, at) = (exit.vector, exit.error_code, exit.offset);
    match probe {
        Probe::Cs => v == 6 && exit.rax & 3 == 3,
        // #AC(0) at the load; a CPU that checks no alignment (QEMU's TCG) completes it.
        Probe::AlignmentCheck => (v, e, at) == (17, 0, 0) || (v, at) == (6, unaligned_end),
        Probe::UnalignedNoCheck => (v, at) == (6, unaligned_end),
        Probe::AlignedCheck => v == 6 && at > 0,
        Probe::SingleStep => v == 1 && at == step_end && exit.dr6 & (1 << 14) != 0,
        Probe::Privileged => (v, e, at) == (13, 0, 0),
    }
}

/// `cpl3`: a few instructions at CPL 3 (`arch::user`), twice each: the CPL they run at, an
/// unaligned load with alignment checks on (`#AC`, which hv and Xen intercept against
/// XSA-156 and reflect), with them off, an aligned load with them on, a single step
/// (`#DB`, also intercepted and reflected) and a privileged instruction (`#GP`).
fn cpl3() -> (ClassRecord, Result<(), String>) {
    let mut rec = ClassRecord::default();
    let mut wrong = Vec::new();
    let (unaligned_end, step_end) = user::landmarks();
    for _ in 0..2 {
        for &(name, probe) in &CPL3_PROBES {
            match user::run(probe) {
                Ok(exit) => {
                    rec.add(name, cpl3_answer(probe, &exit));
                    if !cpl3_expected(probe, &exit, unaligned_end, step_end) {
                        wrong.push(format!("{name}: {exit:?}"));
                    }
                }
                Err(e) => {
                    rec.add(name, -1);
                    wrong.push(format!("{name}: {e:?}"));
                }
            }
        }
    }
    if wrong.is_empty() {
        (rec, Ok(()))
    } else {
        (rec, Err(wrong.join("; ")))
    }
}

/// `xenstore`: the `xs-quota` group's tests, each one call (0: answered as C xenstored
/// answers); each test's time is logged.
fn xenstore() -> (ClassRecord, Result<(), String>) {
    let mut rec = ClassRecord::default();
    let mut failed = Vec::new();
    for &(name, test) in crate::selftest::xs_quota::TESTS {
        let began = time::now();
        let r = test();
        if let (Ok(s), Ok(e)) = (began, time::now()) {
            let ms = e.as_nanos().saturating_sub(s.as_nanos()) / 1_000_000;
            log::info!("hostile xenstore: {name} took {ms} ms");
        }
        if let Err(e) = &r {
            log::info!("hostile xenstore: {name}: {e}");
            failed.push(name);
        }
        rec.add(name, i64::from(r.is_err()));
    }
    let verdict = if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("failed {}", failed.join(", ")))
    };
    (rec, verdict)
}
