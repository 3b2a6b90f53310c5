//! The canary page: a victim fills one of its pages with a pattern (`selftest=canary` before
//! its other groups, `canary-gfn=<frame>` on its command line; hv logs that frame's host
//! frame) and checks it after them (`canary` again, re-checked every 100 ms for
//! `canary-secs=` seconds, so that the check outlasts an attack beside it); the attacker
//! looks for the pattern in whatever a call copied to it.

use alloc::format;
use alloc::string::String;
use core::sync::atomic::{AtomicBool, Ordering};

use crate::cmdline::option;
use crate::memory::frames::FRAME_SIZE;
use crate::xen::time;

/// The pattern's word `i` of the page.
pub fn pattern(i: u64) -> u64 {
    0x6361_6e61_7279_0000 ^ (i.wrapping_mul(0x9e37_79b9) & 0xffff)
}

/// Words of a page.
const WORDS: u64 = FRAME_SIZE / 8;

/// Whether the page at `addr` (one of the caller's) holds any word of the pattern at its
/// place.
pub fn holds_pattern(addr: u64) -> bool {
    (0..WORDS).any(|i| {
        // SAFETY: `addr` is a page of the caller's (identity mapped); aligned u64 reads.
        let w = unsafe { core::ptr::read_volatile((addr + i * 8) as *const u64) };
        w == pattern(i)
    })
}

static FILLED: AtomicBool = AtomicBool::new(false);

/// The canary's frame from `canary-gfn=` (hex with `0x`, or decimal).
fn canary_gfn(cmdline: &str) -> Result<u64, String> {
    let v = option(cmdline, "canary-gfn").ok_or("no canary-gfn= on the command line")?;
    let n = match v.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16),
        None => v.parse(),
    };
    n.map_err(|_| format!("canary-gfn={v}: not a number"))
}

/// The first run fills the page (`canary-fill`), the next checks it (`canary-intact`).
pub fn run(rep: &mut super::super::report::Reporter<'_, super::super::run::ConsoleOut>) {
    let cmdline = crate::kernel::boot_state().map_or("", |b| b.cmdline());
    let gfn = canary_gfn(cmdline);
    if !FILLED.swap(true, Ordering::SeqCst) {
        let r = gfn.map(|g| {
            let addr = g * FRAME_SIZE;
            for i in 0..WORDS {
                // SAFETY: the harness names a frame of this domain's RAM that the kernel's
                // allocator does not reach (near the top of RAM); identity mapped.
                unsafe { core::ptr::write_volatile((addr + i * 8) as *mut u64, pattern(i)) };
            }
            log::info!("canary: frame {g:#x} filled");
        });
        let _ = rep.record("canary-fill", r);
        return;
    }
    let secs: u64 = option(cmdline, "canary-secs")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let r = gfn.and_then(|g| check(g * FRAME_SIZE, secs));
    let _ = rep.record("canary-intact", r);
}

/// Checks the page now and every 100 ms for `secs` seconds.
fn check(addr: u64, secs: u64) -> Result<(), String> {
    let deadline = time::deadline_ms(secs * 1000).map_err(|e| format!("clock: {e:?}"))?;
    let mut checks = 0u64;
    loop {
        checks += 1;
        for i in 0..WORDS {
            // SAFETY: the page filled by the first run; identity mapped, aligned.
            let w = unsafe { core::ptr::read_volatile((addr + i * 8) as *const u64) };
            if w != pattern(i) {
                return Err(format!("word {i} is {w:#x} (check {checks})"));
            }
        }
        match time::now() {
            Ok(now) if now < deadline => {
                let _ = time::sleep_ms(100);
            }
            _ => break,
        }
    }
    log::info!("canary: intact after {checks} checks");
    Ok(())
}
