//! Self-test `extended-state` (group `platform`, right after `vector-registers`): every
//! XSAVE component this domain enables (x87, SSE, AVX's upper ymm halves and, where offered,
//! AVX-512's opmask and zmm registers: [`super::xstate::tested_xcr0`]) and XCR0 itself keep
//! the values this domain left in them after it gave up the CPU, however many times, for
//! about [`DURATION_MS`] of Xen system time. Another domain running the same test at the
//! same time loads its own values ([`super::xstate`]: they carry the domain id), so a
//! hypervisor that does not switch extended state, or XCR0, between domains is caught.
//!
//! The test sets CR4.OSXSAVE and XCR0 itself, as Linux does. Each round `XRSTOR`s the round's
//! image, gives up the CPU (even rounds `SCHEDOP_yield`, odd rounds a 1 ms sleep), reads
//! XCR0 back, `XSAVE`s into a zeroed area and compares. At the end every component goes back
//! to its initial state and XCR0 and CR4.OSXSAVE to what the test found.

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;

use super::platform::TestResult;
use super::xstate::{self, Layout};
use crate::arch::xsave::{self, Area};
use crate::xen::{hypercall, time};

/// How long the test keeps giving up the CPU, in Xen system time: shorter than
/// `vector-registers`' (it follows it in the same boots; a switch that loses XCR0 or a
/// component shows in the first rounds), so that the `platform` group still ends while
/// hv-test's spinner spins.
pub const DURATION_MS: u64 = 100;
/// How long an odd round sleeps.
const SLEEP_MS: u64 = 1;

/// The test.
pub fn extended_state() -> TestResult {
    if !xsave::has_xsave() {
        log::info!("extended-state: no XSAVE (CPUID 1 ECX bit 26): nothing to check");
        return Ok(());
    }
    let domid = super::vector_registers::own_domid()?;
    let osxsave_was_on = xsave::enable_osxsave();
    let xcr0_before = xsave::xgetbv();
    let xcr0 = xstate::tested_xcr0(xsave::supported_xcr0());
    let layout = Layout::new(xcr0, Area::BYTES, xsave::component).map_err(|b| {
        format!(
            "CPUID 0xD.{}: component at {} of {} bytes does not fit a {}-byte area",
            b.bit,
            b.offset,
            b.size,
            Area::BYTES
        )
    })?;
    // SAFETY: CR4.OSXSAVE is set just above; `tested_xcr0` keeps to what CPUID 0xD.0 offers,
    // with x87 and SSE, AVX only with SSE, AVX-512 only whole and with AVX.
    unsafe { xsave::xsetbv(xcr0) };
    let result = rounds(domid, &layout);
    // Leave the state as boot found it: every component initial (a zeroed header), then
    // XCR0 and CR4.OSXSAVE back.
    let initial = Box::new(Area([0; Area::BYTES]));
    // SAFETY: OSXSAVE is set and `xcr0` is XCR0 unless a round found it changed, in which
    // case `xcr0_now` is what the CPU holds; a zeroed image (XSTATE_BV 0) is valid and
    // initialises every component of the mask.
    unsafe {
        let xcr0_now = xsave::xgetbv();
        xsave::xrstor(&initial, xcr0_now);
        // XCR0 as found: a value the CPU held, so a valid one.
        xsave::xsetbv(xcr0_before);
    }
    if !osxsave_was_on && xcr0_before == xstate::X87 {
        xsave::disable_osxsave();
    }
    let rounds = result?;
    log::info!(
        "extended-state: domain {domid}, XCR0 {xcr0:#x} (components above SSE: {}), {rounds} \
         rounds: every value kept",
        layout.count
    );
    Ok(())
}

/// Runs the rounds until [`DURATION_MS`] has passed; how many ran.
fn rounds(domid: u16, layout: &Layout) -> Result<u32, String> {
    let clock = |e| format!("clock: {e:?}");
    let end = time::deadline_ms(DURATION_MS).map_err(clock)?;
    let mut expected = Box::new(Area([0; Area::BYTES]));
    let mut seen = Box::new(Area([0; Area::BYTES]));
    for round in 0..u32::MAX {
        xstate::fill(&mut expected.0, layout, domid, round);
        // SAFETY: OSXSAVE is set and XCR0 is `layout.xcr0` (set by the caller, checked after
        // every round); `fill` wrote a valid image for it (XCOMP_BV and the reserved header
        // bytes zero, XSTATE_BV = XCR0, MXCSR from `vector::mxcsr`, which sets no reserved
        // bit).
        unsafe { xsave::xrstor(&expected, layout.xcr0) };
        let gave_up = if round % 2 == 0 {
            hypercall::sched_yield().map_err(|e| format!("SCHEDOP_yield: {e}"))?;
            "a yield"
        } else {
            time::sleep_ms(SLEEP_MS).map_err(|e| format!("sleep: {e}"))?;
            "a sleep"
        };
        let xcr0 = xsave::xgetbv();
        if xcr0 != layout.xcr0 {
            return Err(format!(
                "round {round}, after {gave_up}: XCR0 is {xcr0:#x}, expected {:#x}",
                layout.xcr0
            ));
        }
        seen.0.fill(0);
        // SAFETY: OSXSAVE is set; XCR0 is `layout.xcr0` (just checked), whose components
        // `Layout::new` found inside an area.
        unsafe { xsave::xsave(&mut seen, layout.xcr0) };
        if let Some(d) = xstate::first_difference(layout, &expected.0, &seen.0) {
            return Err(format!("round {round}, after {gave_up}: {d}"));
        }
        if time::now().map_err(clock)? >= end {
            return Ok(round + 1);
        }
    }
    Err("ran out of rounds".into())
}
