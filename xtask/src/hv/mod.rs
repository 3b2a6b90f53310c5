//! Tier T2: the guest on `hv` under `qemu-system-x86_64 -accel tcg -cpu max`.
//!
//! - [`qemu`] boots `hv` with one PVH module, with a hard timeout: a guest ELF (its command
//!   line after `--` in hv's), or an archive of domain configs and kernels ([`config`]).
//! - [`serial`] reads `hv`'s serial output (its `hv:` log, each domain's `(d<id>) ` lines, the
//!   `COUNTER` lines) and judges the run: it passes only with QEMU exit 33 and a `RESULT`
//!   line that agrees with the `TEST` lines.
//!
//! `cargo xtask hv-test` boots nine times: `selftest=platform`; `selftest=boot
//! selftest-inject-fail=xen-version`, which counts as passed only if the failure was caught;
//! `selftest=boot` from an ELF32 copy of the guest ([`elf32`]: the same 64-bit code and PVH
//! note in an ELF32 container, as Xen boots), one `HOST hv-elf32 ok|FAIL` unit; [`probe`], a
//! tiny ELF32 kernel checking MSR and CR4 answers, one `HOST hv-msr-cr4` unit, and another
//! checking the instructions and exceptions hv keeps from the guest, `HOST hv-intercepts`;
//! `selftest=hostile-bounds` (issue 22's hostile calls, answered as Xen answers them), which
//! also needs hv's nested tables to have stayed inside the domain's paging pool;
//! `selftest=xs-quota`, a guest flooding xenstore past C xenstored's quotas (its lines
//! printed with an `xs-quota: ` prefix); `selftest=balloon`, a guest giving pages back and
//! taking them again (its lines prefixed `balloon: `, with `HOST hv-balloon-run` and `HOST
//! hv-balloon-teardown`: every frame back after the ballooning); then two boots of a domain archive written from
//! generated configs: two guests running the `platform` group side by side (`HOST
//! hv-two-domains`, each domain's `TEST` lines a unit of their own as `hv two-domains
//! <name>/<line>`), and the `platform` group beside a guest spinning 5 s with interrupts off
//! and a domain too big to build (`HOST hv-spinner`); then the `pair` group's two domains
//! ([`PAIR`]: `HOST hv-pair`, each side's `TEST` lines units of their own as `hv pair
//! <name>/<line>`); then the `blk` group on two disks (QEMU virtio-blk drives behind hv's
//! blkback, `HOST hv-blk`, `HOST hv-blk-images`). The first boot's lines and the pair's are
//! compared with stock Xen's platform boot, the `blk` boot's with the stock-Xen device boot
//! (`cargo xtask test`: `HOST same-<test>` for the ten `blk` tests).
//! Then [`linux`]'s boot: Debian's kernel with the shared initramfs beside the application
//! (`HOST hv-linux-boot`, `HOST hv-linux-blk`, `HOST hv-linux-net`).
//! Last, [`debug`]'s boots: `HOST gdb-attach` (gdb through QEMU's gdbstub, a breakpoint in
//! the guest), `HOST crash-symbols` and `HOST hv-exit-trace` (a guest's crash report
//! resolved, hv's trace of its last exits).
//! `cargo xtask hv-run --guest <elf> [--cmdline ...]` boots any PVH ELF and shows its lines;
//! `hv-run --config <xl.cfg> ...` boots the domains configs describe, side by side
//! ([`config`]).
pub mod config;
mod debug;
pub mod durable;
pub mod elf32;
pub mod front;
pub mod hostile;
pub mod linux;
pub mod net;
pub mod probe;
pub mod qemu;
pub mod resize;
pub mod run;
pub mod serial;
pub mod xl;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::build::{build_guest, build_hv, workspace_root};
use crate::gdb::Gdb;
use crate::tally::Tally;
use serial::{EXIT_CRASH, EXIT_POWEROFF, Expect, Line, QemuEnd};

/// The test the second boot makes fail on purpose.
const INJECTED_TEST: &str = "xen-version";
/// The guest command line of the test boot: the whole `platform` group (boot, events,
/// grants, services), as the stock-Xen boot runs it.
const TEST_CMDLINE: &str = "selftest=platform";
/// The guest command line of the injected-failure boot (before the injection option).
const INJECT_CMDLINE: &str = "selftest=boot";
/// The guest command line of the ELF32 boot.
const ELF32_CMDLINE: &str = "selftest=boot";
/// The guest command line of the hostile boot (not compared with stock Xen).
const HOSTILE_CMDLINE: &str = "selftest=hostile-bounds";
/// The guest command line of the quota boot.
const QUOTA_CMDLINE: &str = "selftest=xs-quota";
/// The guest command line of the ballooning boot.
const BALLOON_CMDLINE: &str = "selftest=balloon";
/// The guest command line of the local APIC boot (its FACTs match stock Xen's).
const LAPIC_CMDLINE: &str = "selftest=lapic";
/// `hv`'s options in the test boots (none: the defaults).
pub(crate) const HV_OPTIONS: &str = "";
/// Default hard timeouts per boot.
const TEST_TIMEOUT: Duration = Duration::from_secs(120);
const RUN_TIMEOUT: Duration = Duration::from_secs(600);
/// The gdb boot's hard timeout (QEMU waits for gdb, which may never come).
const GDB_BOOT_TIMEOUT: Duration = Duration::from_secs(60);

fn hard_timeout(default: Duration) -> Result<Duration> {
    match std::env::var("PVXEN_TIMEOUT") {
        Ok(s) if !s.is_empty() => {
            let secs: u64 = s.parse().with_context(|| format!("PVXEN_TIMEOUT={s:?}"))?;
            Ok(Duration::from_secs(secs))
        }
        _ => Ok(default),
    }
}

/// `cargo xtask soak`'s part on hv: `HOST hv-isolation` and `HOST hv-hostile` with
/// [`hostile::SOAK_CALLS`] hostile calls, then `HOST hv-blk-kv-durable` with
/// [`durable::SOAK_KILLS`] kills.
pub fn soak(tally: &mut Tally) -> Result<()> {
    let (hv, guest) = (build_hv()?, guest_elf()?);
    hostile::isolation(tally, &hv, &guest, hostile::SOAK_CALLS)?;
    durable::check(tally, &hv, &guest, durable::SOAK_KILLS)?;
    let slow = (crate::xen::blk::SOAK_SLOW_HEADS_SECS, None);
    net::app_boot(tally, &hv, &guest, crate::xen::blk::SOAK_REQUESTS, slow)
}

/// `cargo xtask hv-isolation`: only the soak's isolation boot (10^6 hostile calls beside a
/// victim and a spinner: [`hostile::isolation`]).
pub fn isolation_soak(tally: &mut Tally) -> Result<()> {
    hostile::isolation(tally, &build_hv()?, &guest_elf()?, hostile::SOAK_CALLS)
}

/// `cargo xtask hv-linux-test`: only the Linux boot ([`linux::linux_checks`]).
pub fn linux_test(tally: &mut Tally) -> Result<()> {
    linux::linux_checks(tally, &build_hv()?, &guest_elf()?)
}

/// `cargo xtask hv-net-test`: only the network boot ([`net::app_boot`]).
pub fn net_test(tally: &mut Tally, requests: u64) -> Result<()> {
    let (hv, guest) = (build_hv()?, guest_elf()?);
    net::app_boot(tally, &hv, &guest, requests, TEST_SLOW_HEADS)?;
    // The `net` group's boot too (its lines are compared with stock Xen's in `test`).
    for line in net::group_boot(tally, &hv, &guest, GROUP_BOOT_TIMEOUT)? {
        println!("hv net group| {line}");
    }
    Ok(())
}

/// The `net` group boot's timeout in `hv-net-test` (`hv-test` passes its own).
const GROUP_BOOT_TIMEOUT: Duration = Duration::from_secs(240);

/// The slow heads of `hv-test`'s network boot: [`crate::xen::blk::SLOW_HEADS_SECS`] against a
/// head deadline of [`crate::xen::blk::TEST_HEAD_MS`], as the stock-Xen device boot's. (One
/// timed `GET /` of a CI run once took 6.1 s: hv's netback had dropped its SYN for want of rx
/// buffers and slirp sent it again after about 6 s; the service now posts the whole ring.)
const TEST_SLOW_HEADS: (u64, Option<u64>) = (
    crate::xen::blk::SLOW_HEADS_SECS,
    Some(crate::xen::blk::TEST_HEAD_MS),
);

/// `cargo xtask hv-xl-test`: only the `HOST hv-xl-*` checks ([`xl::xl_test`]).
pub fn xl_unit(tally: &mut Tally) -> Result<()> {
    xl_record(tally, &build_hv()?, &guest_elf()?)
}

/// Runs the `HOST hv-xl-*` checks and records each line.
fn xl_record(tally: &mut Tally, hv: &Path, guest: &Path) -> Result<()> {
    for (ok, line) in xl::xl_test(hv, guest)? {
        println!("{line}");
        tally.record(ok, line);
    }
    Ok(())
}

/// The guest ELF: `PVXEN_GUEST` if set, else `pvguest` built now.
fn guest_elf() -> Result<PathBuf> {
    match std::env::var_os("PVXEN_GUEST").filter(|g| !g.is_empty()) {
        Some(path) => {
            let path = PathBuf::from(path);
            if !path.is_file() {
                bail!("PVXEN_GUEST={} is not a file", path.display());
            }
            Ok(path)
        }
        None => build_guest(),
    }
}

/// What a boot hands hv as its PVH module.
#[derive(Clone, Copy)]
pub(crate) enum Module<'a> {
    /// A guest ELF and its command line (QEMU with [`qemu::DEFAULT_MEMORY_MIB`]).
    Elf(&'a Path, &'a str),
    /// A domain archive ([`config::archive`]), QEMU's memory in MiB, the configs'
    /// disks, and hv's NIC with its host forwards if any config has a vif.
    Archive(
        &'a Path,
        u64,
        &'a [qemu::Drive],
        Option<&'a [qemu::HostFwd]>,
    ),
}

fn boot(
    who: &str,
    hv: &Path,
    module: Module<'_>,
    label: &str,
    timeout: Duration,
    on_line: impl FnMut(&Line),
) -> Result<qemu::Booted> {
    boot_with(who, hv, module, label, timeout, (HV_OPTIONS, None), on_line)
}

/// [`boot`] with these hv options, and with QEMU's gdbstub when `gdb` is given.
pub(crate) fn boot_with(
    who: &str,
    hv: &Path,
    module: Module<'_>,
    label: &str,
    timeout: Duration,
    options: (&str, Option<Gdb>),
    on_line: impl FnMut(&Line),
) -> Result<qemu::Booted> {
    boot_with_control(who, hv, module, label, timeout, options, None, on_line)
}

/// [`boot_with`], with the lines `control` sends written to hv's COM1 as control lines
/// ([`qemu::boot_controlled`]).
#[expect(
    clippy::too_many_arguments,
    reason = "boot_with's, and the control lines"
)]
pub(crate) fn boot_with_control(
    who: &str,
    hv: &Path,
    module: Module<'_>,
    label: &str,
    timeout: Duration,
    (hv_options, gdb): (&str, Option<Gdb>),
    control: Option<std::sync::mpsc::Receiver<qemu::Control>>,
    on_line: impl FnMut(&Line),
) -> Result<qemu::Booted> {
    let (guest, guest_cmdline, memory_mib, drives, net) = match module {
        Module::Elf(guest, cmdline) => {
            println!(
                "{who}: booting hv with {}, guest cmdline {cmdline:?} (timeout {} s)...",
                guest.display(),
                timeout.as_secs()
            );
            (
                guest,
                Some(cmdline),
                qemu::DEFAULT_MEMORY_MIB,
                &[][..],
                None,
            )
        }
        Module::Archive(archive, memory_mib, drives, net) => {
            println!(
                "{who}: booting hv with the domain archive {}, {memory_mib} MiB (timeout {} s)...",
                archive.display(),
                timeout.as_secs()
            );
            (archive, None, memory_mib, drives, net)
        }
    };
    let b = qemu::Boot {
        hv,
        guest,
        hv_options,
        guest_cmdline,
        memory_mib,
        drives,
        net,
        run_dir: run_dir(label),
        timeout,
        gdb,
        control_socket: xl::socket_for(label)?,
        qmp_socket: resize::qmp_socket_for(label)?,
    };
    let booted = match control {
        Some(c) => qemu::boot_controlled(&b, c, on_line)?,
        None => qemu::boot(&b, on_line)?,
    };
    println!(
        "{who}: {} after {:.1} s; serial log {}",
        booted.end.describe(),
        booted.wall.as_secs_f64(),
        booted.serial_log.display()
    );
    Ok(booted)
}

/// The directory of the boot labelled `label`: `target/pvxen/<label>`.
pub(crate) fn run_dir(label: &str) -> PathBuf {
    workspace_root().join("target").join("pvxen").join(label)
}

/// Prints what helps to understand a failed boot: hv's log and QEMU's complaints.
fn explain_failure(booted: &qemu::Booted) {
    let t = &booted.transcript;
    for line in t.hv.iter().rev().take(20).rev() {
        println!("hv| {line}");
    }
    for line in t.other.iter().rev().take(10).rev() {
        println!("hv| (serial) {line}");
    }
    for line in booted.stderr.lines() {
        println!("hv| (qemu stderr) {line}");
    }
}

/// `cargo xtask hv-test`: builds `hv` and the guest, boots [`TEST_CMDLINE`] (one unit per
/// `TEST` line and per `HOST` line, `HOST hv-teardown` judged from the same log), then the injected-failure boot (one unit, passed only if
/// caught), an ELF32 copy of the guest, the MSR/CR4 probe and the intercepts probe (one unit
/// each), then
/// [`HOSTILE_CMDLINE`] (one unit per `TEST` line, `HOST hv-run` and `HOST hv-paging-pool`;
/// `HOST hv-run` is `HOST hv-run-hostile-bounds` there), then [`QUOTA_CMDLINE`] (one unit per
/// `TEST` and `HOST` line), then [`BALLOON_CMDLINE`] (one unit per `TEST` line, `HOST
/// hv-balloon-run` and `HOST hv-balloon-teardown`), then [`LAPIC_CMDLINE`] (one unit per
/// `TEST` line and `HOST hv-lapic-run`), then the two domain-archive boots
/// ([`TWO_DOMAINS`]: one unit per domain's `TEST` line and `HOST hv-two-domains`; [`SPINNER`]:
/// `HOST hv-spinner`), then the pair boot ([`PAIR`]: one unit per side's `TEST` line and
/// `HOST hv-pair`; a harness error there is one failed unit), then the `blk` group on hv's
/// disks ([`blk_boot`]), then the durability check (`HOST hv-blk-kv-durable`,
/// [`durable::check`]), then the debugging boots. Returns the guest's lines of the first
/// boot followed by both pair sides' `TEST` and `FACT` lines, and the `blk` boot's lines,
/// for the comparisons with stock Xen. With `gdb` (`hv-test --gdb`), the first boot gets QEMU's
/// gdbstub and a hard timeout of at least [`crate::gdb::BOOT_TIMEOUT`].
/// `Err` only for harness errors.
pub fn hv_test(tally: &mut Tally, gdb: Option<Gdb>) -> Result<(Vec<String>, Vec<String>)> {
    let hv = build_hv()?;
    let guest = guest_elf()?;
    let timeout = hard_timeout(TEST_TIMEOUT)?;

    if let Some(gdb) = &gdb {
        print_gdb(&hv, &[&guest], gdb)?;
    }
    let booted = boot_with(
        "hv-test",
        &hv,
        Module::Elf(&guest, TEST_CMDLINE),
        "hv-boot",
        gdb.map_or(timeout, |_| crate::gdb::boot_timeout(timeout)),
        (HV_OPTIONS, gdb),
        |_| {},
    )?;
    let mut verdict = serial::judge_selftest(&booted.transcript, &booted.end);
    for line in &booted.transcript.counters {
        println!("{line}");
    }
    if let Some(line) = booted
        .transcript
        .hv
        .iter()
        .rev()
        .find(|l| l.starts_with("hv: d1 teardown: "))
    {
        println!("{line}");
    }
    verdict
        .host
        .push(serial::judge_teardown(&booted.transcript));
    if !verdict.record(tally, "hv") {
        explain_failure(&booted);
    }
    let guest_lines = booted.transcript.guest.clone();

    let cmdline = format!("{INJECT_CMDLINE} selftest-inject-fail={INJECTED_TEST}");
    let label = format!("hv-inject-{INJECTED_TEST}");
    let booted = boot(
        "hv-test",
        &hv,
        Module::Elf(&guest, &cmdline),
        &label,
        timeout,
        |_| {},
    )?;
    let caught = serial::judge_injected(&booted.transcript, &booted.end, INJECTED_TEST);
    if !crate::xen::console::record_injected(
        tally,
        "hv",
        INJECTED_TEST,
        &booted.transcript.guest,
        caught,
    ) {
        explain_failure(&booted);
    }

    let run_dir = run_dir("hv-elf32");
    std::fs::create_dir_all(&run_dir).with_context(|| format!("creating {}", run_dir.display()))?;
    let elf32 = run_dir.join("guest-elf32.elf");
    let bytes = std::fs::read(&guest).with_context(|| format!("reading {}", guest.display()))?;
    let converted = elf32::to_elf32(&bytes).with_context(|| format!("{}", guest.display()))?;
    std::fs::write(&elf32, converted).with_context(|| format!("writing {}", elf32.display()))?;
    let booted = boot(
        "hv-test",
        &hv,
        Module::Elf(&elf32, ELF32_CMDLINE),
        "hv-elf32",
        timeout,
        |_| {},
    )?;
    let (ok, line) = serial::judge_selftest(&booted.transcript, &booted.end)
        .host
        .into_iter()
        .next()
        .context("no verdict")?;
    let line = line.replacen("HOST hv-run", "HOST hv-elf32", 1);
    println!("{line}");
    tally.record(ok, line);
    if !ok {
        explain_failure(&booted);
    }

    probe_unit(
        tally,
        &hv,
        &run_dir,
        "hv-msr-cr4",
        &probe::image(),
        timeout,
        |b| {
            if b.end == QemuEnd::Exited(Some(EXIT_POWEROFF)) {
                "HOST hv-msr-cr4 ok".to_owned()
            } else {
                format!(
                    "HOST hv-msr-cr4 FAIL {} (a #GP at the wrong stage, or none)",
                    b.end.describe()
                )
            }
        },
    )?;
    probe_unit(
        tally,
        &hv,
        &run_dir,
        "hv-intercepts",
        &probe::intercepts_image(),
        timeout,
        |b| intercepts_verdict(&b.end, &b.transcript.counters),
    )?;

    let booted = boot(
        "hv-test",
        &hv,
        Module::Elf(&guest, HOSTILE_CMDLINE),
        "hv-hostile-bounds",
        timeout,
        |_| {},
    )?;
    let mut verdict = serial::judge_selftest(&booted.transcript, &booted.end);
    // Named apart from the platform boot's `HOST hv-run`.
    for (_, line) in &mut verdict.host {
        *line = line.replacen("HOST hv-run", "HOST hv-run-hostile-bounds", 1);
    }
    if let Some(line) = booted
        .transcript
        .hv
        .iter()
        .rev()
        .find(|l| l.starts_with("hv: d1: paging pool "))
    {
        println!("{line}");
    }
    verdict
        .host
        .push(serial::judge_paging_pool(&booted.transcript));
    if !verdict.record(tally, "hv-hostile") {
        explain_failure(&booted);
    }

    let booted = boot(
        "hv-test",
        &hv,
        Module::Elf(&guest, QUOTA_CMDLINE),
        "hv-xs-quota",
        timeout,
        |_| {},
    )?;
    let verdict = serial::judge_selftest(&booted.transcript, &booted.end);
    record_prefixed(tally, "xs-quota", &verdict, &booted);

    let booted = boot(
        "hv-test",
        &hv,
        Module::Elf(&guest, BALLOON_CMDLINE),
        "hv-balloon",
        timeout,
        |_| {},
    )?;
    let mut verdict = serial::judge_selftest(&booted.transcript, &booted.end);
    if let Some(line) = booted
        .transcript
        .hv
        .iter()
        .rev()
        .find(|l| l.starts_with("hv: d1 teardown: "))
    {
        println!("balloon: {line}");
    }
    // Every frame back, the ballooned-out and populated ones included.
    verdict
        .host
        .push(serial::judge_teardown(&booted.transcript));
    for (_, line) in &mut verdict.host {
        *line = line.replacen("HOST hv-", "HOST hv-balloon-", 1);
    }
    record_prefixed(tally, "balloon", &verdict, &booted);

    // The emulated local APIC (issue 24, item 7): one unit per `TEST` line.
    let booted = boot(
        "hv-test",
        &hv,
        Module::Elf(&guest, LAPIC_CMDLINE),
        "hv-lapic",
        timeout,
        |_| {},
    )?;
    let mut verdict = serial::judge_selftest(&booted.transcript, &booted.end);
    for (_, line) in &mut verdict.host {
        *line = line.replacen("HOST hv-", "HOST hv-lapic-", 1);
    }
    record_prefixed(tally, "lapic", &verdict, &booted);

    let booted = boot_domains(&hv, &guest, "hv-two-domains", &TWO_DOMAINS, timeout)?;
    let expect: Vec<_> = TWO_DOMAINS
        .iter()
        .map(|d| (d.name, Expect::Passes))
        .collect();
    let verdict = serial::judge_domains(
        "hv-two-domains",
        &booted.transcript,
        &booted.end,
        &expect,
        EXIT_POWEROFF,
    );
    for (name, test) in &verdict.tests {
        let unit = format!("hv two-domains {name}/{}", test.line);
        println!("{unit}");
        tally.record(test.ok, unit);
    }
    record_domains(tally, &booted, &verdict);

    let booted = boot_domains(&hv, &guest, "hv-spinner", &SPINNER, timeout)?;
    let expect = [
        (SPINNER[0].name, Expect::Passes),
        (SPINNER[1].name, Expect::Passes),
        (SPINNER[2].name, Expect::NotBuilt),
    ];
    let mut verdict = serial::judge_domains(
        "hv-spinner",
        &booted.transcript,
        &booted.end,
        &expect,
        EXIT_CRASH,
    );
    // The platform group takes about a second on hv, the spinner five: the platform domain
    // ends first only if hv preempted the spinner for it.
    if let Some(why) = serial::ended_before(&booted.transcript, SPINNER[0].name, SPINNER[1].name) {
        verdict.host = if verdict.host.0 {
            (false, format!("HOST hv-spinner FAIL {why}"))
        } else {
            (false, format!("{}; {why}", verdict.host.1))
        };
    }
    for (name, test) in &verdict.tests {
        println!("hv-spinner: {name}/{}", test.line);
    }
    record_domains(tally, &booted, &verdict);

    let mut guest_lines = guest_lines;
    match pair_boot(tally, &hv, &guest, timeout) {
        Ok(lines) => guest_lines.extend(lines),
        Err(e) => {
            println!("hv-test: pair boot: harness error: {e:#}");
            tally.fail("hv pair boot");
        }
    }
    // The hostile group (issue 23): compared with stock Xen, then hv's isolation under attack.
    guest_lines.extend(hostile::boots(tally, &hv, &guest, timeout));
    let mut blk_lines = blk_boot(tally, &hv, &guest, timeout).unwrap_or_else(|e| {
        println!("hv-test: blk boot: harness error: {e:#}");
        tally.fail("hv blk boot");
        Vec::new()
    });
    // The put storm killed at seeded moments on the same disk (issue 25 item 4).
    if let Err(e) = durable::check(tally, &hv, &guest, durable::TEST_KILLS) {
        println!("hv-test: blk durability: harness error: {e:#}");
        tally.fail("hv blk durability");
    }
    match net::group_boot(tally, &hv, &guest, timeout) {
        Ok(lines) => blk_lines.extend(lines),
        Err(e) => {
            println!("hv-test: net group boot: harness error: {e:#}");
            tally.fail("hv net group boot");
        }
    }
    if let Err(e) = net::app_boot(
        tally,
        &hv,
        &guest,
        crate::xen::blk::LOAD_REQUESTS,
        TEST_SLOW_HEADS,
    ) {
        println!("hv-test: net boot: harness error: {e:#}");
        tally.fail("hv net boot");
    }
    // Debian's Linux as a PVH domU beside the application (issue 33).
    if let Err(e) = linux::linux_checks(tally, &hv, &guest) {
        println!("hv-test: linux boot: harness error: {e:#}");
        tally.fail("hv linux boot");
    }

    // Managing a running hv (issue 32): `cargo xtask xl` against hv --keep.
    xl_record(tally, &hv, &guest)?;

    // Debugging (issue 34): gdb through QEMU's gdbstub, a guest's crash report resolved.
    debug::gdb_attach(tally, &hv, &guest, timeout.min(GDB_BOOT_TIMEOUT))?;
    for kind in &crate::xen::fault::KINDS {
        debug::crash_symbols(tally, &hv, &guest, kind, timeout)?;
    }
    Ok((guest_lines, blk_lines))
}

/// The `blk` group's domain on hv: two disks of the sizes and contents the stock-Xen device
/// boot gives it (`xvda` read-only, the site archive; `xvdb` read-write, zeros), served by
/// hv's blkback on QEMU's virtio-blk drives, which offers indirect descriptors, persistent
/// grants and discard as Linux's does (the guest uses them all, as on stock Xen).
const BLK_DOMAIN: TestDomain = TestDomain {
    name: "blk",
    cmdline: BLK_CMDLINE,
    memory_mib: 128,
    disks: "disk = [ 'format=raw, vdev=xvda, access=ro, target=xvda.img',\n\
            \x20        'format=raw, vdev=xvdb, access=rw, target=xvdb.img' ]\n",
};

/// The `blk` domain's command line (`blk-expect` and `blk-resize` as on stock Xen:
/// [`crate::xen::blk`]).
const BLK_CMDLINE: &str =
    "selftest=blk blk-expect=xvda:1048576:r,xvdb:6291456:w blk-resize=7340032";

const _: () = assert!(
    crate::xen::blk::XVDA_BYTES == 1 << 20
        && crate::xen::blk::XVDB_BYTES == 6 << 20
        && crate::xen::blk::XVDB_RESIZED_BYTES == 7 << 20
);

/// `HOST hv-blk`: the `blk` group on hv ([`BLK_DOMAIN`]); each `TEST` line a unit
/// (`hv blk <line>`), and the read-only image unchanged, the read-write one starting with the
/// guest's pattern (`HOST hv-blk-images`); `xvdb` grown and shrunk back over QMP when the
/// guest asks (`blk-resize`, `HOST hv-blk-resize`: [`resize::Resizer`]). Returns the
/// domain's console lines.
fn blk_boot(tally: &mut Tally, hv: &Path, guest: &Path, timeout: Duration) -> Result<Vec<String>> {
    use crate::xen::blk::{
        GUEST_PATTERN_BYTES, XVDA_BYTES, XVDB_BYTES, guest_pattern, site_archive,
    };
    let label = "hv-blk";
    let dir = run_dir(label);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut xvda = site_archive(&workspace_root().join("pvguest/site"), true)?.tar;
    if xvda.len() > XVDA_BYTES {
        bail!(
            "the site archive has {} bytes, over xvda's {XVDA_BYTES}",
            xvda.len()
        );
    }
    xvda.resize(XVDA_BYTES, 0);
    std::fs::write(dir.join("xvda.img"), &xvda)?;
    std::fs::write(dir.join("xvdb.img"), vec![0u8; XVDB_BYTES])?;
    // QEMU's drives are d0, d1 in the config's disk order.
    let mut resizer = resize::Resizer::new(
        resize::qmp_socket_for(label)?,
        vec![("xvdb", "d1".to_owned())],
    );
    let booted = boot_domains_with(hv, guest, label, &[BLK_DOMAIN], timeout, |line| {
        resizer.on_line(line);
    })?;
    for (vdev, bytes, outcome) in &resizer.done {
        println!("hv-blk: block_resize {vdev} to {bytes}: {outcome:?}");
    }
    let resized = resizer.verdict();
    println!("{}", resized.1);
    tally.record(resized.0, resized.1);
    let verdict = serial::judge_domains(
        label,
        &booted.transcript,
        &booted.end,
        &[(BLK_DOMAIN.name, Expect::Passes)],
        EXIT_POWEROFF,
    );
    for (_, test) in &verdict.tests {
        let unit = format!("hv blk {}", test.line);
        println!("{unit}");
        tally.record(test.ok, unit);
    }
    for l in booted
        .transcript
        .hv
        .iter()
        .filter(|l| l.contains("blkback") && durable::flush_count(l).is_none())
    {
        println!("hv-blk: {l}");
    }
    let ok = record_domains(tally, &booted, &verdict);
    let after_a = std::fs::read(dir.join("xvda.img"))?;
    let after_b = std::fs::read(dir.join("xvdb.img"))?;
    let pattern_ok = after_b.len() == XVDB_BYTES
        && (0..GUEST_PATTERN_BYTES).all(|i| after_b[i] == guest_pattern(i));
    let images = match (after_a == xvda, pattern_ok) {
        (true, true) => "HOST hv-blk-images ok".to_owned(),
        (false, _) => "HOST hv-blk-images FAIL the read-only image changed".to_owned(),
        (true, false) => {
            "HOST hv-blk-images FAIL xvdb does not start with the guest's pattern".to_owned()
        }
    };
    println!("{images}");
    tally.record(images.ends_with(" ok"), images);
    if !ok {
        explain_failure(&booted);
    }
    let id = serial::domain_run(&booted.transcript, BLK_DOMAIN.name).id;
    Ok(id
        .and_then(|i| booted.transcript.domains.get(&i).cloned())
        .unwrap_or_default())
}

/// The [`PAIR`] boot: one unit per `TEST` line of each side (`hv pair <name>/<line>`) and
/// `HOST hv-pair`. Returns both sides' `TEST` and `FACT` lines, offer first.
fn pair_boot(tally: &mut Tally, hv: &Path, guest: &Path, timeout: Duration) -> Result<Vec<String>> {
    let booted = boot_domains(hv, guest, "hv-pair", &PAIR, timeout)?;
    let expect: Vec<_> = PAIR.iter().map(|d| (d.name, Expect::Passes)).collect();
    let verdict = serial::judge_domains(
        "hv-pair",
        &booted.transcript,
        &booted.end,
        &expect,
        EXIT_POWEROFF,
    );
    for (name, test) in &verdict.tests {
        let unit = format!("hv pair {name}/{}", test.line);
        println!("{unit}");
        tally.record(test.ok, unit);
    }
    record_domains(tally, &booted, &verdict);
    Ok(PAIR
        .iter()
        .flat_map(|d| serial::domain_run(&booted.transcript, d.name).lines.shown)
        .filter(|l| l.starts_with("TEST ") || l.starts_with("FACT "))
        .collect())
}

/// One domain of a multi-domain test boot, written as a config into the boot's directory.
pub(crate) struct TestDomain<'a> {
    /// Its `name` (and file name, `<name>.cfg`).
    pub(crate) name: &'static str,
    /// Its `cmdline`.
    pub(crate) cmdline: &'a str,
    /// Its `memory` in MiB.
    pub(crate) memory_mib: u64,
    /// Its `disk` line (empty: none).
    pub(crate) disks: &'static str,
}

/// `HOST hv-two-domains`: two guests running the `platform` group side by side.
const TWO_DOMAINS: [TestDomain; 2] = [
    TestDomain {
        name: "two-a",
        cmdline: TEST_CMDLINE,
        memory_mib: 128,
        disks: "",
    },
    TestDomain {
        name: "two-b",
        cmdline: TEST_CMDLINE,
        memory_mib: 128,
        disks: "",
    },
];

/// `HOST hv-spinner`: the `platform` group beside a guest spinning with interrupts off for
/// 5 s, and a domain too big for QEMU's 512 MiB, which hv must refuse while the others run.
const SPINNER: [TestDomain; 3] = [
    TestDomain {
        name: "spin-platform",
        cmdline: TEST_CMDLINE,
        memory_mib: 128,
        disks: "",
    },
    TestDomain {
        name: "spinner",
        cmdline: "selftest=spin",
        memory_mib: 128,
        disks: "",
    },
    TestDomain {
        name: "toobig",
        cmdline: TEST_CMDLINE,
        memory_mib: 1024,
        disks: "",
    },
];

/// `HOST hv-pair`: the `pair` group's two sides side by side (hv's builder writes each one's
/// `data/peer-domid`), as the stock-Xen platform boot runs them (`xen::pair`).
const PAIR: [TestDomain; 2] = [
    TestDomain {
        name: "pair-offer",
        cmdline: "selftest=pair pair=offer",
        memory_mib: 128,
        disks: "",
    },
    TestDomain {
        name: "pair-accept",
        cmdline: "selftest=pair pair=accept",
        memory_mib: 128,
        disks: "",
    },
];

/// Packs the domains ([`pack_domains`]) and boots them with QEMU's
/// [`qemu::DEFAULT_MEMORY_MIB`].
fn boot_domains(
    hv: &Path,
    guest: &Path,
    label: &str,
    domains: &[TestDomain],
    timeout: Duration,
) -> Result<qemu::Booted> {
    boot_domains_with(hv, guest, label, domains, timeout, |_| {})
}

/// [`boot_domains`], calling `on_line` for each serial line as it arrives.
fn boot_domains_with(
    hv: &Path,
    guest: &Path,
    label: &str,
    domains: &[TestDomain],
    timeout: Duration,
    on_line: impl FnMut(&Line),
) -> Result<qemu::Booted> {
    let (path, boots) = pack_domains(guest, label, domains)?;
    boot(
        "hv-test",
        hv,
        Module::Archive(
            &path,
            qemu::DEFAULT_MEMORY_MIB,
            &config::drives(&boots),
            None,
        ),
        label,
        timeout,
        on_line,
    )
}

/// Writes one config per domain into the boot's directory (kernel: `guest`'s absolute path),
/// checks them as `hv-run --config` does and packs them into a domain archive: its path and
/// the checked configs.
pub(crate) fn pack_domains(
    guest: &Path,
    label: &str,
    domains: &[TestDomain],
) -> Result<(PathBuf, Vec<config::Boot>)> {
    let dir = run_dir(label);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let kernel = std::path::absolute(guest)?;
    let kernel = kernel
        .to_str()
        .filter(|k| !k.contains(['"', '\\']))
        .with_context(|| format!("{}: cannot be written in a config", kernel.display()))?;
    let mut files = Vec::new();
    for d in domains {
        let text = format!(
            "# Written by `cargo xtask hv-test` ({label}).\nname = \"{}\"\ntype = \"pvh\"\n\
             kernel = \"{kernel}\"\ncmdline = \"{}\"\nmemory = {}\n{}",
            d.name, d.cmdline, d.memory_mib, d.disks
        );
        let path = dir.join(format!("{}.cfg", d.name));
        std::fs::write(&path, &text).with_context(|| format!("writing {}", path.display()))?;
        let path = path.display().to_string();
        files.push(config::ConfigFile {
            absolute: path.clone(),
            path,
            text,
        });
    }
    let boots = match config::check(&files, |k| Path::new(k).is_file()).0 {
        Ok(boots) => boots,
        Err(problems) => bail!("{label}: {}", problems.join("; ")),
    };
    let archive = config::archive(&boots, |k| Ok(std::fs::read(k)?))?;
    let path = config::archive_path(&dir);
    std::fs::write(&path, archive).with_context(|| format!("writing {}", path.display()))?;
    Ok((path, boots))
}

/// Prints the scheduler's line and a multi-domain boot's `HOST` line, records the `HOST` unit
/// and explains a failure. Returns whether it passed.
fn record_domains(
    tally: &mut Tally,
    booted: &qemu::Booted,
    verdict: &serial::DomainsVerdict,
) -> bool {
    match serial::sched_line(&booted.transcript) {
        Some(line) => println!("{line}"),
        None => println!("hv-test: hv printed no `{}...` line", serial::SCHED_PREFIX),
    }
    let (ok, line) = &verdict.host;
    println!("{line}");
    tally.record(*ok, line.clone());
    if !ok {
        explain_failure(booted);
    }
    *ok
}

/// Boots the probe kernel `image` (written as `<label>.elf` into `run_dir`) and records the
/// `HOST <label> ok|FAIL ...` line `judge` makes of the boot.
fn probe_unit(
    tally: &mut Tally,
    hv: &Path,
    run_dir: &Path,
    label: &str,
    image: &[u8],
    timeout: Duration,
    judge: impl FnOnce(&qemu::Booted) -> String,
) -> Result<()> {
    let probe = run_dir.join(format!("{label}.elf"));
    std::fs::write(&probe, image).with_context(|| format!("writing {}", probe.display()))?;
    let booted = boot(
        "hv-test",
        hv,
        Module::Elf(&probe, ""),
        label,
        timeout,
        |_| {},
    )?;
    let line = judge(&booted);
    let ok = line.ends_with(" ok");
    println!("{line}");
    tally.record(ok, line);
    if !ok {
        explain_failure(&booted);
    }
    Ok(())
}

/// Records a boot's verdict with its lines shown and named under `prefix` (`<prefix>: ...`
/// on the console, `hv <prefix>: ...` as units): every `TEST` line and every `HOST` line a
/// unit; hv's log explained if any failed.
fn record_prefixed(
    tally: &mut Tally,
    prefix: &str,
    verdict: &serial::Verdict,
    booted: &qemu::Booted,
) {
    let mut all_ok = true;
    for line in &verdict.shown {
        println!("{prefix}: {line}");
    }
    for test in &verdict.tests {
        tally.record(test.ok, format!("hv {prefix}: {}", test.line));
        all_ok &= test.ok;
    }
    for (ok, line) in &verdict.host {
        println!("{prefix}: {line}");
        tally.record(*ok, format!("hv {prefix}: {line}"));
        all_ok &= ok;
    }
    if !all_ok {
        explain_failure(booted);
    }
}

/// `cargo xtask hv-run --help`.
pub const RUN_HELP: &str = "\
cargo xtask hv-run [--guest <elf>] [--cmdline <text>] [--hv-options <text>] [--gdb[=PORT]]
                   [--gdb-wait]
cargo xtask hv-run --config <file> [--config <file> ...] [--hv-options <text>] [--gdb[=PORT]]
                   [--gdb-wait]

Boots hv under QEMU with its domains and prints their lines; exits 0 only if every domain
powered off (QEMU exit 33).

  --guest <elf>      one domain's kernel: any PVH ELF, 32- or 64-bit (default: pvguest,
                     built now); its lines are shown without hv's (d1) prefix
  --cmdline <text>   that guest's command line (default: empty)
  --hv-options <text>
                     hv's own options, space-separated (default: none; unknown ones are
                     logged and ignored):
                       npf=emulate  a domain's access to guest-physical memory outside its
                                    RAM and special pages reads all ones and its writes are
                                    dropped, as on Xen with no device model (the default)
                       npf=crash    such an access crashes the domain, with the address in
                                    hv's log (for debugging)
                       trace=dump   every domain's last 64 exits printed at its end (a
                                    crashed domain's are printed anyway)
  --keep             hv runs on when its domains end (with no --config and no --guest: with
                     no domain at all), until `cargo xtask xl shutdown-hv` or Ctrl-C; QEMU
                     gets 512 MiB more for the domains `cargo xtask xl create` adds
  --spare-disk <file>
                     a raw image QEMU gives hv as one more virtio-blk drive that no config
                     uses (give it once per drive): a domain `cargo xtask xl create` adds
                     with a `disk` gets the next spare drive, whatever its target says
  --config <file>    a domain config in xl.cfg(5) syntax (name, type = \"pvh\", kernel,
                     ramdisk, cmdline/extra, memory, maxmem, vcpus, on_poweroff, on_reboot,
                     on_crash, vif, disk); relative paths resolve against the file's directory.
                     Give it once per domain: the domains are numbered 1, 2, ... in the order
                     given and run side by side, and with several each console line keeps hv's
                     (d<id>) prefix. Every config is checked before anything is built; any
                     problem is reported as <path>:<line>: <key>: <what> and hv-run exits 2.
                     hv runs: memory of 4 to 3072 MiB in 2 MiB steps (QEMU gets 256 MiB more
                     than the domains' sum, at least 512), maxmem = memory; a ramdisk is
                     given as the PVH module after the kernel; each vif joins hv's switch,
                     which QEMU's user network joins too (each domain with a vif gets a host
                     forward from 127.0.0.1:<port> to its port 80, the port printed); each
                     disk a raw image file, rw or ro, which QEMU gives hv as a
                     virtio-blk drive (in config order). The configs and their kernels reach
                     hv as one archive, its PVH module. Not with --guest or --cmdline.
                     Example: --config hv/examples/pvguest.cfg --config hv/examples/pvguest-b.cfg
";

/// QEMU memory `--keep` adds for the domains `cargo xtask xl create` builds, MiB.
pub(super) const KEEP_ROOM_MIB: u64 = 512;

/// `hv-run --help`: [`RUN_HELP`] and the gdb options.
fn run_help() -> String {
    format!("{RUN_HELP}{}", crate::gdb::HELP)
}

/// The arguments of `hv-run`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RunArgs {
    /// `--guest <elf>` (default: pvguest, built now).
    pub guest: Option<PathBuf>,
    /// `--cmdline <text>` (default: empty).
    pub cmdline: String,
    /// `--config <file>`, each time given.
    pub configs: Vec<PathBuf>,
    /// `--hv-options <text>` (default: empty).
    pub hv_options: String,
    /// `--help`.
    pub help: bool,
    /// `--gdb[=PORT]`, `--gdb-wait`.
    pub gdb: Option<Gdb>,
    /// `--keep`: hv outlives its domains, for `cargo xtask xl` ([`xl`]).
    pub keep: bool,
    /// `--spare-disk <file>`, each time given: drives for domains created at run time.
    pub spare_disks: Vec<PathBuf>,
}

impl RunArgs {
    /// Parses `--guest <elf>`, `--cmdline <text>`, `--config <file>`, `--hv-options <text>`,
    /// `--gdb[=PORT]`, `--gdb-wait` and `--help` (the words after `hv-run`).
    pub fn parse(args: &[String]) -> Result<Self> {
        let mut out = Self::default();
        let mut cmdline_given = false;
        let mut it = args.iter();
        while let Some(a) = it.next() {
            match a.as_str() {
                "--guest" => {
                    out.guest = Some(it.next().context("--guest needs a path")?.into());
                }
                "--cmdline" => {
                    out.cmdline = it.next().context("--cmdline needs a value")?.clone();
                    cmdline_given = true;
                }
                "--config" => {
                    out.configs
                        .push(it.next().context("--config needs a path")?.into());
                }
                "--hv-options" => {
                    out.hv_options = it.next().context("--hv-options needs a value")?.clone();
                }
                "--help" | "-h" => out.help = true,
                "--keep" => out.keep = true,
                "--spare-disk" => {
                    out.spare_disks
                        .push(it.next().context("--spare-disk needs a path")?.into());
                }
                other if crate::gdb::parse_arg(other, &mut out.gdb)? => {}
                other => {
                    bail!(
                        "hv-run: unknown argument {other:?} (--guest <elf>, --cmdline <text>, \
                         --config <file>, --hv-options <text>, --keep, --spare-disk <file>, \
                         --gdb[=PORT], --gdb-wait; see --help)"
                    )
                }
            }
        }
        if !out.spare_disks.is_empty() && (out.guest.is_some() || !out.keep) {
            bail!("hv-run: --spare-disk is for --keep, with --config or no domain at all");
        }
        if !out.configs.is_empty() && (out.guest.is_some() || cmdline_given) {
            bail!(
                "hv-run: --config takes the kernel and command line from the config; \
                 not with --guest or --cmdline"
            );
        }
        Ok(out)
    }
}

/// Reads and checks the `--config` files; prints every problem and returns exit code 2 if
/// there is any, else the domains to boot.
fn check_configs(paths: &[PathBuf]) -> std::result::Result<Vec<config::Boot>, ExitCode> {
    let mut files = Vec::new();
    let mut unreadable = Vec::new();
    for p in paths {
        let read = std::fs::read_to_string(p).and_then(|text| Ok((std::path::absolute(p)?, text)));
        match read {
            Ok((absolute, text)) => files.push(config::ConfigFile {
                path: p.display().to_string(),
                absolute: absolute.display().to_string(),
                text,
            }),
            Err(e) => unreadable.push(format!("{}: {e}", p.display())),
        }
    }
    let (result, warnings) = config::check(&files, |k| Path::new(k).is_file());
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    let problems = match result {
        Ok(boots) if unreadable.is_empty() => return Ok(boots),
        Ok(_) => unreadable,
        // Every config given was unreadable: say so, not that none was given.
        Err(_) if files.is_empty() && !unreadable.is_empty() => unreadable,
        Err(mut ps) => {
            unreadable.append(&mut ps);
            unreadable
        }
    };
    for p in &problems {
        eprintln!("{p}");
    }
    eprintln!(
        "hv-run: {} problem(s) in the config(s); nothing built",
        problems.len()
    );
    Err(ExitCode::from(2))
}

/// Resolves the `BACKTRACE` lines of a boot: hv's against hv's ELF, domain `id`'s against
/// the `id`-th kernel.
struct CrashSymbols {
    hv: crate::symbols::Symbols,
    domains: Vec<crate::symbols::Symbols>,
}

impl CrashSymbols {
    fn new(hv: &Path, kernels: &[PathBuf]) -> Self {
        Self {
            hv: crate::symbols::Symbols::new(hv),
            domains: kernels
                .iter()
                .map(|k| crate::symbols::Symbols::new(k))
                .collect(),
        }
    }

    /// The resolved frames of `line` if it is a `BACKTRACE` line, else nothing.
    fn resolve(&mut self, line: &Line) -> Vec<String> {
        let resolved = match line {
            Line::Hv(l) => l.strip_prefix("hv: ").and_then(|l| self.hv.resolve_line(l)),
            Line::Guest(id, l) => usize::from(*id)
                .checked_sub(1)
                .and_then(|i| self.domains.get_mut(i))
                .and_then(|s| s.resolve_line(l)),
            _ => None,
        };
        resolved.unwrap_or_default()
    }
}

/// Prints how to attach gdb to hv and to each distinct guest kernel.
fn print_gdb(hv: &Path, kernels: &[&Path], gdb: &Gdb) -> Result<()> {
    let mut distinct: Vec<&Path> = Vec::new();
    for k in kernels {
        if !distinct.contains(k) {
            distinct.push(k);
        }
    }
    for line in crate::gdb::hv_instructions(hv, &distinct, gdb)? {
        println!("{line}");
    }
    Ok(())
}

/// `cargo xtask hv-run`: boots `hv` with the guest, prints its lines as they arrive, and
/// succeeds only on QEMU exit 33 (every domain powered off). With `--guest` (or nothing) the
/// guest ELF is the module and its lines are printed without their `(d1) ` prefix; with
/// `--config`, every config is checked first ([`config::check`]; problems end it with exit
/// 2), then the configs and their kernels go to hv as a domain archive ([`config::archive`])
/// in QEMU with [`config::qemu_memory_mib`], and with several domains each console line keeps
/// its `(d<id>) ` prefix.
pub fn hv_run(args: &[String]) -> Result<ExitCode> {
    let args = RunArgs::parse(args)?;
    if args.help {
        print!("{}", run_help());
        return Ok(ExitCode::SUCCESS);
    }
    let boots = if args.configs.is_empty() && args.keep && args.guest.is_none() {
        // `--keep` alone: hv with no domain, waiting for `cargo xtask xl create`.
        Some(Vec::new())
    } else if args.configs.is_empty() {
        None
    } else {
        match check_configs(&args.configs) {
            Ok(boots) => Some(boots),
            Err(code) => return Ok(code),
        }
    };
    let hv = build_hv()?;
    let timeout = hard_timeout(RUN_TIMEOUT)?;
    let several = boots.as_ref().is_some_and(|b| b.len() > 1);
    let guest = match (&boots, args.guest) {
        (Some(_), _) => None,
        (None, Some(g)) if g.is_file() => Some(g),
        (None, Some(g)) => bail!("--guest {}: not a file", g.display()),
        (None, None) => Some(build_guest()?),
    };
    let kernels: Vec<PathBuf> = match (&boots, &guest) {
        (Some(boots), _) => boots.iter().map(|b| PathBuf::from(&b.kernel)).collect(),
        (None, g) => g.iter().cloned().collect(),
    };
    let mut symbols = CrashSymbols::new(&hv, &kernels);
    let options = if args.keep {
        format!("{} keep", args.hv_options)
    } else {
        args.hv_options.clone()
    };
    let hv_options = (options.as_str(), args.gdb);
    let show = |line: &Line| {
        match line {
            Line::Guest(id, l) if several => println!("(d{id}) {l}"),
            Line::Guest(_, l) | Line::Counter(l) | Line::Hv(l) | Line::Other(l) => println!("{l}"),
        }
        for resolved in symbols.resolve(line) {
            println!("{resolved}");
        }
    };
    let booted = match &boots {
        Some(boots) => {
            for (id, b) in (1..).zip(boots) {
                println!(
                    "hv-run: domain {id}: {} ({}, {} MiB, cmdline {:?})",
                    b.name, b.kernel, b.memory_mib, b.cmdline
                );
            }
            let dir = run_dir("hv-run");
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let archive = config::archive(boots, |k| Ok(std::fs::read(k)?))?;
            let path = config::archive_path(&dir);
            std::fs::write(&path, archive)
                .with_context(|| format!("writing {}", path.display()))?;
            let mut drives = config::drives(boots);
            for d in &args.spare_disks {
                if !d.is_file() {
                    bail!("--spare-disk {}: not a file", d.display());
                }
                drives.push(qemu::Drive {
                    file: std::path::absolute(d)?,
                    read_only: false,
                });
                println!(
                    "hv-run: spare disk {} (virtio-blk {}), for a domain `xl create` adds",
                    d.display(),
                    drives.len()
                );
            }
            let (fwds, warnings) = config::hostfwds(boots, config::base_port()?);
            for w in &warnings {
                println!("hv-run: {w}");
            }
            for f in fwds.iter().flatten() {
                println!(
                    "hv-run: http://127.0.0.1:{}/ forwards to {}:{}",
                    f.host_port, f.guest_ip, f.guest_port
                );
            }
            // With --keep, room for the domains `xl create` adds.
            let memory = config::qemu_memory_mib(boots) + if args.keep { KEEP_ROOM_MIB } else { 0 };
            if args.keep {
                println!(
                    "hv-run: --keep: hv runs on until `cargo xtask xl shutdown-hv` (or Ctrl-C); \
                     `cargo xtask xl --help` manages its domains"
                );
            }
            let module = Module::Archive(&path, memory, &drives, fwds.as_deref());
            if let Some(gdb) = &args.gdb {
                let kernels: Vec<&Path> = boots.iter().map(|b| Path::new(&b.kernel)).collect();
                print_gdb(&hv, &kernels, gdb)?;
            }
            boot_with("hv-run", &hv, module, "hv-run", timeout, hv_options, show)?
        }
        None => {
            let guest = guest.context("no guest")?;
            let module = Module::Elf(&guest, &args.cmdline);
            if let Some(gdb) = &args.gdb {
                print_gdb(&hv, &[&guest], gdb)?;
            }
            boot_with("hv-run", &hv, module, "hv-run", timeout, hv_options, show)?
        }
    };
    if booted.end == QemuEnd::Exited(Some(EXIT_POWEROFF)) {
        Ok(ExitCode::SUCCESS)
    } else {
        // Every serial line was shown as it came; only QEMU's own complaints are left.
        for line in booted.stderr.lines() {
            println!("hv-run: (qemu stderr) {line}");
        }
        println!("hv-run: FAILED: {}", booted.end.describe());
        Ok(ExitCode::FAILURE)
    }
}

/// The `HOST hv-intercepts` line: the probe powered off from its last stage and hv took the
/// exits (INVD and WBINVD three in all, as QEMU may report INVD as WBINVD; MONITOR, MWAIT
/// and `#DB` at least once each).
fn intercepts_verdict(end: &QemuEnd, counters: &[String]) -> String {
    let count = |name: &str| -> u64 {
        counters
            .iter()
            .filter_map(|l| {
                l.strip_prefix("COUNTER exit.")?
                    .strip_prefix(name)?
                    .strip_prefix(' ')
            })
            .filter_map(|n| n.trim().parse::<u64>().ok())
            .sum()
    };
    let mut why = Vec::new();
    if *end != QemuEnd::Exited(Some(EXIT_POWEROFF)) {
        why.push(format!(
            "{} (a stage without its exception)",
            end.describe()
        ));
    }
    let caches = count("invd") + count("wbinvd");
    if caches != 3 {
        why.push(format!("{caches} INVD/WBINVD exits, not 3"));
    }
    for name in ["monitor", "mwait", "excp_db"] {
        if count(name) == 0 {
            why.push(format!("no {name} exit"));
        }
    }
    if why.is_empty() {
        "HOST hv-intercepts ok".to_owned()
    } else {
        format!("HOST hv-intercepts FAIL {}", why.join(", "))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_intercepts_verdict_wants_every_exit() {
        use super::{EXIT_POWEROFF, QemuEnd, intercepts_verdict};
        let off = QemuEnd::Exited(Some(EXIT_POWEROFF));
        let all: Vec<String> = [
            "COUNTER exit.wbinvd 3",
            "COUNTER exit.monitor 1",
            "COUNTER exit.mwait 1",
            "COUNTER exit.excp_db 1",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(intercepts_verdict(&off, &all), "HOST hv-intercepts ok");
        for (i, why) in [
            "0 INVD/WBINVD exits",
            "no monitor exit",
            "no mwait exit",
            "no excp_db exit",
        ]
        .iter()
        .enumerate()
        {
            let mut fewer = all.clone();
            fewer.remove(i);
            assert!(intercepts_verdict(&off, &fewer).contains(why), "{why}");
        }
        let crashed = QemuEnd::Exited(Some(35));
        assert!(intercepts_verdict(&crashed, &all).starts_with("HOST hv-intercepts FAIL"));
    }

    use super::RunArgs;
    use std::path::PathBuf;

    fn words(s: &[&str]) -> Vec<String> {
        s.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn run_arguments() {
        let a =
            RunArgs::parse(&words(&["--guest", "/x.elf", "--cmdline", "selftest=boot"])).unwrap();
        assert_eq!(a.guest.as_deref(), Some(std::path::Path::new("/x.elf")));
        assert_eq!(a.cmdline, "selftest=boot");
        assert_eq!(RunArgs::parse(&[]).unwrap(), RunArgs::default());
        assert!(RunArgs::parse(&words(&["--guest"])).is_err());
        let o = RunArgs::parse(&words(&["--hv-options", "npf=crash"])).unwrap();
        assert_eq!(o.hv_options, "npf=crash");
        assert!(RunArgs::parse(&words(&["--hv-options"])).is_err());
        assert!(RunArgs::parse(&words(&["--verbose"])).is_err());
        let a = RunArgs::parse(&words(&["--hv-options", "trace=dump", "--gdb-wait"])).unwrap();
        assert_eq!(a.hv_options, "trace=dump");
        assert_eq!(a.gdb.map(|g| g.wait), Some(true));
        assert!(RunArgs::parse(&words(&["--hv-options"])).is_err());
    }

    #[test]
    fn config_arguments() {
        let a = RunArgs::parse(&words(&["--config", "a.cfg", "--config", "b.cfg"])).unwrap();
        assert_eq!(a.configs, [PathBuf::from("a.cfg"), PathBuf::from("b.cfg")]);
        assert_eq!((a.guest, a.cmdline.as_str(), a.help), (None, "", false));
        assert!(RunArgs::parse(&words(&["--config"])).is_err());
        assert!(RunArgs::parse(&words(&["--config", "a.cfg", "--guest", "/x.elf"])).is_err());
        assert!(RunArgs::parse(&words(&["--cmdline", "", "--config", "a.cfg"])).is_err());
        assert!(RunArgs::parse(&words(&["--help"])).unwrap().help);
        let a = RunArgs::parse(&words(&["--keep", "--spare-disk", "s.img"])).unwrap();
        assert_eq!(a.spare_disks, [PathBuf::from("s.img")]);
        assert!(RunArgs::parse(&words(&["--spare-disk", "s.img"])).is_err());
        assert!(RunArgs::parse(&words(&["--keep", "--spare-disk"])).is_err());
        assert!(super::RUN_HELP.contains("--config <file>"));
    }
}
