//! Self-test `vector-registers` (group `platform`, right after `boot`): a value this domain
//! leaves in xmm0..xmm15 and MXCSR is still there after it gave up the CPU, however many
//! times, for about [`DURATION_MS`] of Xen system time. Another domain running the same test
//! at the same time loads its own values (they carry the domain id, [`super::vector`]), so a
//! hypervisor that does not keep each domain's vector state apart is caught.
//!
//! Each round loads the round's values, sets MXCSR, gives up the CPU (even rounds
//! `SCHEDOP_yield`, odd rounds a 1 ms sleep, which blocks the vCPU until its singleshot
//! timer fires), then stores the registers back and compares. Nothing between the load and
//! the store touches these registers: the kernel is compiled soft-float.

use alloc::format;
use alloc::string::ToString;

use super::platform::TestResult;
use super::vector::{self, MXCSR_DEFAULT, REGISTERS};
use crate::arch::vector as regs;
use crate::xen::{hypercall, time, xenstore};
use xenbus::xenstore::TxId;
use xenbus::xenstore::payload::parse_decimal;

const _: () = assert!(REGISTERS == regs::XMM_COUNT);

/// How long the test keeps giving up the CPU, in Xen system time.
pub const DURATION_MS: u64 = 300;
/// How long an odd round sleeps.
const SLEEP_MS: u64 = 1;
/// The deadline of the xenstore read (generous: dom0 may be starved under emulation).
const XENSTORE_TIMEOUT_MS: u64 = 30_000;

/// This domain's id, from the `domid` key libxl (and hv) write in its xenstore home.
pub(super) fn own_domid() -> Result<u16, alloc::string::String> {
    let deadline = time::deadline_ms(XENSTORE_TIMEOUT_MS).map_err(|e| format!("clock: {e:?}"))?;
    let text = xenstore::with(|c| c.read(TxId::NONE, "domid", deadline))
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("read domid: {e:?}"))?;
    parse_decimal(&text)
        .and_then(|d| u16::try_from(d).ok())
        .filter(|&d| d != 0 && d < abi::xen::DOMID_FIRST_RESERVED)
        .ok_or_else(|| format!("domid {text:?} is not a domU's"))
}

/// The test.
pub fn vector_registers() -> TestResult {
    let domid = own_domid()?;
    let mxcsr = vector::mxcsr(domid);
    let result = rounds(domid, mxcsr);
    // Leave the registers as boot found them: zeroed values carry no domain's pattern.
    regs::load(&[0; REGISTERS]);
    regs::set_mxcsr(MXCSR_DEFAULT).map_err(|e| format!("restoring MXCSR: {e:?}"))?;
    let (rounds, yields, sleeps) = result?;
    log::info!(
        "vector-registers: domain {domid}, {rounds} rounds ({yields} yields, {sleeps} sleeps), \
         MXCSR {mxcsr:#x}: every value kept"
    );
    Ok(())
}

/// Runs the rounds until [`DURATION_MS`] has passed; `(rounds, yields, sleeps)`.
fn rounds(domid: u16, mxcsr: u32) -> Result<(u32, u32, u32), alloc::string::String> {
    let clock = |e| format!("clock: {e:?}");
    let end = time::deadline_ms(DURATION_MS).map_err(clock)?;
    let (mut yields, mut sleeps) = (0u32, 0u32);
    for round in 0..u32::MAX {
        let expected = vector::pattern(domid, round);
        regs::load(&expected);
        regs::set_mxcsr(mxcsr).map_err(|e| format!("MXCSR {mxcsr:#x}: {e:?}"))?;
        if round % 2 == 0 {
            hypercall::sched_yield().map_err(|e| format!("SCHEDOP_yield: {e}"))?;
            yields += 1;
        } else {
            time::sleep_ms(SLEEP_MS).map_err(|e| format!("sleep: {e}"))?;
            sleeps += 1;
        }
        let seen = regs::store();
        let seen_mxcsr = regs::mxcsr();
        let gave_up = if round % 2 == 0 { "a yield" } else { "a sleep" };
        if let Some(m) = vector::first_mismatch(&expected, &seen) {
            return Err(format!("round {round}, after {gave_up}: {m}"));
        }
        if seen_mxcsr != mxcsr {
            return Err(format!(
                "round {round}, after {gave_up}: MXCSR is {seen_mxcsr:#x}, expected {mxcsr:#x}"
            ));
        }
        if time::now().map_err(clock)? >= end {
            return Ok((round + 1, yields, sleeps));
        }
    }
    Err("ran out of rounds".into())
}
