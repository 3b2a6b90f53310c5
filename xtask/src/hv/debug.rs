//! hv-test's debugging checks: `HOST gdb-attach` (QEMU's gdbstub, a breakpoint in the guest
//! hit through hv), `HOST crash-symbols` (a guest's crash report resolved by xtask) and
//! `HOST hv-exit-trace` (hv's trace of the crashed domain's last exits).
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::serial::{EXIT_CRASH, EXIT_POWEROFF, QemuEnd};
use super::{Module, boot, boot_with, explain_failure};
use crate::gdb::{Gdb, free_port, symbol_address};
use crate::tally::Tally;

/// The guest's command line in the gdb boot: the shortest group.
const GDB_CMDLINE: &str = "selftest=boot";
/// The guest's Rust entry (called by pvh's entry stub), where gdb breaks.
const GUEST_ENTRY: &str = "pvguest::kernel_start";
/// How long gdb may take to connect, hit the breakpoint and detach.
const GDB_TIMEOUT: Duration = Duration::from_secs(30);

/// `HOST gdb-attach ok|FAIL <why>`: boots `guest` (pvguest) on hv with `--gdb-wait` on a free
/// port, runs `gdb -batch` on the guest's ELF with a breakpoint on its Rust entry taken only
/// outside hv (CR3 not hv's), continues, and checks that the breakpoint was hit with the
/// guest's CR3; gdb then detaches and the guest must run to its poweroff.
pub(super) fn gdb_attach(
    tally: &mut Tally,
    hv: &Path,
    guest: &Path,
    timeout: Duration,
) -> Result<()> {
    crate::xen::packages::ensure_tools(&[("gdb", "gdb")])?;
    let port = free_port()?;
    let hv_cr3 = symbol_address(hv, "boot_pml4")?;
    let guest_cr3 = symbol_address(guest, "boot_pml4")?;
    let gdb = Gdb { port, wait: true };
    let (hv_path, guest_path) = (hv.to_owned(), guest.to_owned());
    // QEMU lives on this thread (its parent-death signal follows the thread that started it).
    let qemu = std::thread::spawn(move || {
        boot_with(
            "hv-test",
            &hv_path,
            Module::Elf(&guest_path, GDB_CMDLINE),
            "hv-gdb-attach",
            timeout,
            ("", Some(gdb)),
            |_| {},
        )
    });
    let started = Instant::now();
    let mut child = Command::new("gdb")
        .args(["-batch", "-nx", "-q"])
        .arg(guest)
        .args(["-ex", "set tcp connect-timeout 20"])
        .args(["-ex", &format!("target remote 127.0.0.1:{port}")])
        .args([
            "-ex",
            &format!("break {GUEST_ENTRY} if $cr3 != {hv_cr3:#x}"),
        ])
        .args(["-ex", "continue"])
        .args(["-ex", "printf \"GDB-CR3 %#x\\n\", $cr3"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting gdb (Debian's `gdb` package)")?;
    let mut timed_out = false;
    while child.try_wait()?.is_none() {
        if started.elapsed() > GDB_TIMEOUT {
            let _ = child.kill();
            timed_out = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output()?;
    let booted = qemu
        .join()
        .map_err(|_| anyhow::anyhow!("the QEMU thread panicked"))??;
    let text = String::from_utf8_lossy(&out.stdout);
    let why = if timed_out {
        Some(format!(
            "gdb did not finish within {} s",
            GDB_TIMEOUT.as_secs()
        ))
    } else if !text.contains(&format!("Breakpoint 1, {GUEST_ENTRY}")) {
        Some(format!("the breakpoint on {GUEST_ENTRY} was not hit"))
    } else if !text.contains(&format!("GDB-CR3 {guest_cr3:#x}")) {
        Some(format!(
            "the breakpoint was hit, but not with the guest's CR3 {guest_cr3:#x}"
        ))
    } else if booted.end != QemuEnd::Exited(Some(EXIT_POWEROFF)) {
        Some(format!(
            "the guest did not run on after gdb detached: {}",
            booted.end.describe()
        ))
    } else {
        None
    };
    let line = match &why {
        None => "HOST gdb-attach ok".to_owned(),
        Some(why) => format!("HOST gdb-attach FAIL {why}"),
    };
    println!("{line}");
    tally.record(why.is_none(), line);
    if why.is_some() {
        for l in text
            .lines()
            .chain(String::from_utf8_lossy(&out.stderr).lines())
        {
            println!("gdb| {l}");
        }
        explain_failure(&booted);
    }
    Ok(())
}

/// `HOST <kind.check> ok|FAIL <why>`: boots `guest` with the fault guest's command line
/// (`selftest=fault`, a read of an unmapped address; `selftest=fault-stack`, a stack overflow),
/// which must crash the domain (QEMU exit 35) after printing `EXCEPTION` and
/// `BACKTRACE fault ...`; the report resolved from the guest's ELF is judged by
/// [`crate::xen::fault::judge_report`], the rule `HOST xen-<kind.check>` shares on stock Xen
/// (the vector, the faulting function named in its file, and its callers after it).
pub(super) fn crash_symbols(
    tally: &mut Tally,
    hv: &Path,
    guest: &Path,
    kind: &crate::xen::fault::Kind,
    timeout: Duration,
) -> Result<()> {
    let label = format!("hv-{}", kind.check);
    let booted = boot(
        "hv-test",
        hv,
        Module::Elf(guest, kind.cmdline),
        &label,
        timeout,
        |_| {},
    )?;
    let crashed = if booted.end == QemuEnd::Exited(Some(EXIT_CRASH)) {
        Ok(())
    } else {
        Err(booted.end.describe())
    };
    let mut symbols = crate::symbols::Symbols::new(guest);
    let report = crate::xen::fault::judge_report(kind, &booted.transcript.guest, crashed, |l| {
        symbols.resolve_line(l)
    });
    for line in &report.shown {
        println!("{line}");
    }
    let why = report.why;
    let line = match &why {
        None => format!("HOST {} ok", kind.check),
        Some(why) => format!("HOST {} FAIL {why}", kind.check),
    };
    println!("{line}");
    tally.record(why.is_none(), line);
    // The exit trace is judged once, after the page fault.
    let trace = if *kind == crate::xen::fault::PAGE_FAULT {
        let trace = judge_exit_trace(&booted.transcript.hv);
        println!("{}", trace.1);
        tally.record(trace.0, trace.1.clone());
        trace.0
    } else {
        true
    };
    if why.is_some() || !trace {
        explain_failure(&booted);
    }
    Ok(())
}

/// `HOST hv-exit-trace ok|FAIL <why>`: after a guest's crash, hv printed domain 1's exit trace
/// (`hv: d1 exit trace: the last <n> of <m> exits`, then `n` records, 1 to 64), and its last
/// record is the guest's `SCHEDOP_shutdown`, which never returns.
fn judge_exit_trace(hv: &[String]) -> (bool, String) {
    let fail = |why: &str| (false, format!("HOST hv-exit-trace FAIL {why}"));
    let Some(start) = hv
        .iter()
        .position(|l| l.starts_with("hv: d1 exit trace: the last "))
    else {
        return fail("hv printed no exit trace for the crashed domain");
    };
    let records: Vec<&String> = hv[start + 1..]
        .iter()
        .take_while(|l| l.starts_with("hv: d1   #"))
        .collect();
    if records.is_empty() || records.len() > 64 {
        return fail(&format!("{} records (expected 1 to 64)", records.len()));
    }
    match records.last() {
        Some(l) if l.contains(" vmmcall ") && l.ends_with(" sched_op -> (no return)") => {
            (true, "HOST hv-exit-trace ok".to_owned())
        }
        Some(l) => fail(&format!("the last record is not the shutdown: {l:?}")),
        None => fail("no records"),
    }
}

#[cfg(test)]
mod tests {
    use super::judge_exit_trace;

    fn lines(s: &[&str]) -> Vec<String> {
        s.iter().map(|l| l.to_string()).collect()
    }

    #[test]
    fn exit_trace_verdicts() {
        let good = lines(&[
            "hv: domain 1 (pvguest) crashed: the guest said so (SHUTDOWN_crash)",
            "hv: d1 exit trace: the last 2 of 113 exits, oldest first",
            "hv: d1   #112 vmmcall rip=0x1 event_channel_op -> 0",
            "hv: d1   #113 vmmcall rip=0x2 sched_op -> (no return)",
            "hv: 113 exits, 55 hypercalls, 634 console bytes",
        ]);
        assert_eq!(
            judge_exit_trace(&good),
            (true, "HOST hv-exit-trace ok".into())
        );
        assert!(!judge_exit_trace(&good[..1]).0);
        assert!(!judge_exit_trace(&good[..3]).0);
        assert!(!judge_exit_trace(&good[..2]).0);
    }
}
