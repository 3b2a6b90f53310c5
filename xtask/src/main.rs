//! `cargo xtask`: the one entry point that builds, runs and tests the workspace.
mod bench;
mod build;
mod compare;
mod conformance;
mod elf_note;
mod gates;
mod gdb;
mod http;
mod hv;
mod linux_domu;
mod selftest;
mod symbols;
mod tally;
#[cfg(test)]
mod tidy;
mod xen;

use std::process::ExitCode;

use anyhow::Result;

use tally::Tally;

const HELP: &str = "\
cargo xtask <command>

Commands:
  test          run every gate (fmt, clippy host + kernel, docs, host tests, ABI conformance,
                the PVH ELF note, the self-tests on stock Xen, the boot self-tests on hv,
                hv's boot answers compared with stock Xen's, the device boot, the check
                of `run` and `bench --quick`) and end with `N passed, M failed`
  conformance   compare the abi crate with Xen's public headers (Debian libxen-dev)
  xen-test      boot pvguest as a PVH domU on stock Xen 4.17 inside QEMU and run its platform
                self-tests, the pair group and the crash reports of selftest=fault and
                selftest=fault-stack (HOST xen-crash-symbols, xen-crash-stack-overflow) in
                that boot, and the injected-failure run
  blk-test      the device boot: pvguest on stock Xen with two disks (Linux blkback) and a vif
                (Linux netback, a dom0 bridge with DHCP), its `blk` and `net` groups, three
                crashes of its key-value store, the application on the same disks, and the
                harness's HOST blk-*/net-* checks
  xen-save-test the application on stock Xen across xl save/restore, save -c and migrate
  xen-boots     <n> [parallel]: boot xen-test's platform guest alone n times (parallel QEMUs
                at once, n each), to measure a rare hang: one line per boot (its end, RESULT,
                halts skipped, dom0's nudge verdict after a timeout) and a summary
  xen-timer-storm [secs] [--linux]: pvguest's selftest=timer-storm (the singleshot timer
                armed over and over while events arrive, default 300 s) on stock Xen, with
                --linux an idle Linux domU beside it; HOST xen-timer-storm fails on a triple
                fault in `xl dmesg` (issue 28)
  soak          the device boot with the long forms of its checks (10,000 requests in the
                HTTP load check instead of 2,000, three xl save/restore cycles in a row with
                their grants and heap back to the level before the first), then hv's isolation
                under 10^6 hostile calls instead of 10^5, then hv's durability check with 20
                kills instead of 3
  hv-test       build hv and pvguest, boot them under QEMU: selftest=platform, selftest=boot
                with an injected failure that must be caught, an ELF32 copy of pvguest, a
                probe of MSR and CR4 answers, selftest=hostile-bounds, selftest=xs-quota
                (lines prefixed `xs-quota: `), selftest=balloon (lines prefixed `balloon: `),
                then two multi-domain boots; print TEST/FACT/RESULT/HOST and hv's COUNTER
                lines, end with `N passed, M failed`
  hv-isolation  only soak's isolation boot: 10^6 hostile calls beside a victim and a spinner
                (HOST hv-isolation, HOST hv-hostile with the calls per second)
  hv-linux-test only hv-test's Linux boot: Debian's kernel and the shared initramfs beside the
                application (HOST hv-linux-boot, hv-linux-blk, hv-linux-net)
  hv-net-test   only hv-test's network boot: the application on hv with its disks and a vif,
                the host's HOST hv-net-* checks through QEMU's forward, a net-peer guest
                fetching from it through hv's switch (HOST hv-domu-to-domu)
  hv-run        boot any PVH ELF (32- or 64-bit) on hv and print its lines; exit 0 only if
                the guest powered off (QEMU exit 33). Options: --guest <elf> (default: pvguest),
                --cmdline <guest command line>, or --config <xl.cfg file> (repeatable; every
                config is checked first, problems exit 2; `cargo xtask hv-run --help`);
                --gdb[=PORT] and --gdb-wait start QEMU's gdbstub (also on `run`, and for the
                first boot of `hv-test`, `xen-test` and `blk-test`)
  hv-xl-test    only hv-test's checks of `cargo xtask xl` (HOST hv-xl-<step>)
  xl            manage a running hv's domains as xl manages Xen's: list, info, create,
                console, pause, unpause, shutdown [-w], reboot, destroy, dmesg, shutdown-hv
                (`cargo xtask xl --help`); hv-run --keep / run --keep start an hv to manage
  run           the demo: pvguest's HTTP service (its site archive and durable key-value store)
                on hv in QEMU (--on xen: stock Xen 4.17 with a Linux dom0), forwarded to
                http://localhost:8080/ until Ctrl-C
                (`cargo xtask run --help`: --port, --site, --store)
  run-check     the check `test` makes of `run`: it must answer curl, keep a put value in its
                store image, and stop cleanly on SIGINT; on hv, `run --keep` outlives the
                application until `xl shutdown-hv` (HOST run-keep)
  run-keep-check  only run-check's HOST run-keep
  net-check     run the host's checks of the guest's HTTP service (files, kv, 16 MiB down and
                up, malformed requests, load, churn) against a running one, by default
                `run`'s at 127.0.0.1:8080 (`cargo xtask net-check --help`)
  bench         pvguest on hv beside pvguest and a Linux domU on stock Xen (boot, hypercalls,
                events, network, block, sizes, least memory), interleaved, as ratios in
                target/bench/report.{md,json} and ratios.svg; --quick: one small round
                (part of `test`)
  build         build the pvguest kernel for x86_64-unknown-none and print its path
  help          show this text

Environment:
  PVXEN_CACHE   where the stock-Xen test image is cached (default $XDG_CACHE_HOME/pvxen,
                else ~/.cache/pvxen); images are keyed by the Debian versions resolved
  PVXEN_GUEST   boot this ELF instead of building pvguest (xen-test, hv-test, run)
  PVXEN_CMDLINE words added to the guest's command line by `run`
  PVXEN_TIMEOUT hard timeout per QEMU boot in seconds (default 300 on Xen, 120 on hv; `run`
                none, `hv-run` 600)
  PVXEN_SAVE_OPS, PVXEN_SAVE_CYCLES
                (xen-save-test, and the device boot's save steps) only these operations
                (comma-separated: migrate, checkpoint, save-restore, refuse, put-during,
                boot-suspend, missing-backend), and this many save/restore cycles in a row
                (as soak's)
  PVXEN_BENCH_VARIANTS  (bench --features-only) only these network variants (indices,
                comma-separated) and the Linux domU, no block variant
  PVXEN_BENCH_PROFILE   (bench --features-only) sample pvguest's RIP from dom0 during
                uploads and downloads with this network variant, printed by function
  PVXEN_PCAP    (hv) write every frame between QEMU's user network and hv's NIC to this
                pcap file (QEMU's filter-dump), for tcpdump -r or Wireshark
  PVXEN_LINUX_DIAG   (hv-linux-test) the Linux domU prints netfront's and TCP's counters
                (DIAG lines on its console) every this many seconds
  PVXEN_LINUX_SYSCTL (hv-linux-test) key=value,... the Linux domU's init sets (diagnosis)
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = args.first().map(String::as_str).unwrap_or("help");
    let result = match command {
        "test" => test(),
        "conformance" => conformance_command(),
        "xen-test" => test_command("xen-test", &args[1..], |gdb| {
            tier("xen-test", "stock-Xen harness", |t| {
                xen::xen_test(t, gdb).map(drop)
            })
        }),
        "soak" => tier(
            "soak",
            "soak (stock-Xen device boot, hv isolation and durability)",
            |t| {
                xen::blk::soak(t)?;
                hv::soak(t)
            },
        ),
        "blk-test" => test_command("blk-test", &args[1..], |gdb| {
            tier("blk-test", "stock-Xen device boot", |t| {
                xen::blk::blk_test(t, gdb).map(drop)
            })
        }),
        "xen-boots" => tier("xen-boots", "stock-Xen boot loop", |t| {
            xen::boots::xen_boots(t, &args[1..])
        }),
        "xen-timer-storm" => tier("xen-timer-storm", "stock-Xen timer storm", |t| {
            xen::timer_storm::xen_timer_storm(t, &args[1..])
        }),
        "xen-save-test" => tier("xen-save-test", "stock-Xen save and migration", |t| {
            xen::save::save_test(t)
        }),
        "hv-test" => test_command("hv-test", &args[1..], |gdb| {
            tier("hv-test", "hv harness", |t| hv::hv_test(t, gdb).map(drop))
        }),
        "hv-net-test" => tier("hv-net-test", "hv network boot", |t| {
            hv::net_test(t, crate::xen::blk::LOAD_REQUESTS)
        }),
        "hv-linux-test" => tier("hv-linux-test", "hv linux boot", hv::linux_test),
        "hv-isolation" => tier("hv-isolation", "hv isolation under attack", |t| {
            hv::isolation_soak(t)
        }),
        "bench" => bench::command(&args[1..]),
        "hv-run" => hv::hv_run(&args[1..]),
        "xl" => hv::xl::xl(&args[1..]),
        "hv-xl-test" => tier("hv-xl-test", "hv xl check", hv::xl_unit),
        "run" => xen::run::run(&args[1..]).map(|()| ExitCode::SUCCESS),
        "net-check" => hv::net::net_check(&args[1..]),
        "run-check" => tier("run-check", "run check", xen::run::run_check),
        "run-keep-check" => tier("run-keep-check", "run --keep check", hv::xl::run_keep_check),
        "build" => build::build_guest().map(|elf| {
            println!("{}", elf.display());
            ExitCode::SUCCESS
        }),
        "help" | "--help" | "-h" => {
            print!("{HELP}");
            Ok(ExitCode::SUCCESS)
        }
        other => {
            eprint!("unknown command `{other}`\n\n{HELP}");
            Ok(ExitCode::from(2))
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A test command's words ([`gdb::parse_test_args`]): `--help` prints its usage, anything but
/// the gdb flags is refused (exit 2), else `run` with the gdb flags.
fn test_command(
    command: &str,
    args: &[String],
    run: impl FnOnce(Option<gdb::Gdb>) -> Result<ExitCode>,
) -> Result<ExitCode> {
    match gdb::parse_test_args(command, args) {
        Ok(gdb::TestArgs::Run(gdb)) => run(gdb),
        Ok(gdb::TestArgs::Help) => {
            print!("{}", gdb::test_help(command));
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{e:#}");
            Ok(ExitCode::from(2))
        }
    }
}

/// One test tier as its own command: its units, a harness error counted as one failure
/// (`what`), then the summary line.
fn tier(command: &str, what: &str, run: impl FnOnce(&mut Tally) -> Result<()>) -> Result<ExitCode> {
    let mut tally = Tally::new();
    if let Err(e) = run(&mut tally) {
        println!("{command}: harness error: {e:#}");
        tally.fail(what);
    }
    finish(&tally)
}

/// `cargo xtask test`: every gate, then the summary line.
fn test() -> Result<ExitCode> {
    let mut tally = Tally::new();
    gates::static_gates(&mut tally);
    if let Err(e) = gates::host_tests(&mut tally) {
        println!("host tests: FAILED: {e:#}");
        tally.fail("host tests");
    }
    conformance_gate(&mut tally);
    elf_note_gate(&mut tally);
    let xen_lines = xen::xen_test(&mut tally, None).unwrap_or_else(|e| {
        println!("xen-test: harness error: {e:#}");
        tally.fail("stock-Xen harness");
        Vec::new()
    });
    let (hv_lines, hv_blk_lines) = hv::hv_test(&mut tally, None).unwrap_or_else(|e| {
        println!("hv-test: harness error: {e:#}");
        tally.fail("hv harness");
        (Vec::new(), Vec::new())
    });
    // T4: hv's boot tests against the boot tests of the stock-Xen platform boot above.
    for (ok, line) in compare::compare(&xen_lines, &hv_lines) {
        println!("{line}");
        tally.record(ok, line);
    }
    match xen::blk::blk_test(&mut tally, None) {
        // T4 for the `blk` group: hv's blk boot against the stock-Xen device boot.
        Ok(xen_blk_lines) => {
            let named = compare::BLK_TESTS.iter().chain(&compare::NET_TESTS);
            let names: Vec<&str> = named.copied().collect();
            for (ok, line) in compare::compare_named(&xen_blk_lines, &hv_blk_lines, &names) {
                println!("{line}");
                tally.record(ok, line);
            }
        }
        Err(e) => {
            println!("blk-test: harness error: {e:#}");
            tally.fail("stock-Xen device boot");
        }
    }
    if let Err(e) = xen::run::run_check(&mut tally) {
        println!("run-check: harness error: {e:#}");
        tally.fail("run check");
    }
    bench::quick_unit(&mut tally);
    finish(&tally)
}

/// The ABI conformance check as one gate: its summary line, and every mismatch on failure.
fn conformance_gate(tally: &mut Tally) {
    match conformance::run() {
        Ok(report) => {
            for m in &report.mismatches {
                println!("    {m}");
            }
            println!("{}", report.summary_line);
            let t = &report.tests;
            println!(
                "abi conformance tests: {} passed, {} failed",
                t.passed, t.failed
            );
            tally.add_counts(t.passed, t.failed, "abi conformance tests");
            tally.record(report.mismatches.is_empty(), "abi conformance");
        }
        Err(e) => {
            println!("abi conformance: FAILED: {e:#}");
            tally.fail("abi conformance");
        }
    }
}

/// `cargo xtask conformance`: the mismatches, then exactly one summary line.
fn conformance_command() -> Result<ExitCode> {
    let report = conformance::run()?;
    for m in &report.mismatches {
        println!("{m}");
    }
    println!("{}", report.summary_line);
    Ok(if report.mismatches.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The guest ELF carries the PVH entry note in the form Xen's and QEMU's loaders both read.
fn elf_note_gate(tally: &mut Tally) {
    let checked = build::build_guest().and_then(|elf| elf_note::check_pvh_note(&elf));
    match checked {
        Ok(entry) => {
            println!("gate pvh-elf-note: ok (PHYS32_ENTRY {entry:#x})");
            tally.pass();
        }
        Err(e) => {
            println!("gate pvh-elf-note: FAILED: {e:#}");
            tally.fail("gate pvh-elf-note");
        }
    }
}

/// Prints what failed and the summary line (always the last line), and picks the exit code.
fn finish(tally: &Tally) -> Result<ExitCode> {
    if tally.failed() > 0 {
        println!("failures:");
        for f in tally.failures() {
            println!("  {f}");
        }
    }
    println!("{}", tally.summary());
    Ok(if tally.failed() == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
