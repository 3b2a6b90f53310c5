//! `cargo xtask bench` (and `--quick`, which `cargo xtask test` runs): pvguest on hv beside
//! pvguest and a Linux PVH domU ([`crate::linux_domu`]) on stock Xen 4.17, measured in one
//! invocation and compared as ratios
//! ([`report`]). Every timed figure is taken with both systems up, interleaved (hv, Xen, hv,
//! Xen, ...), once per round; `bench` runs [`FULL`]'s rounds (median, min, max of 3),
//! `--quick` one round with small sizes. Counts (VM exits, notifications, sizes) are exact.
//!
//! One round:
//! 1. two short hv boots of pvguest alone: `selftest=bench` with a disk (the guest's `BENCH`
//!    lines: hypercall and event round trips timed with the TSC, and its block figures; hv's
//!    blkback line for exits and notifications per request) and `selftest=boot` (hv's
//!    `COUNTER` lines of that boot: its VM exits and hypercalls);
//! 2. stock Xen in QEMU: dom0 runs the same `selftest=bench` guest with a disk (a `run` step,
//!    its console log read back), then the application as `cargo xtask run --on xen` does
//!    (archive and store disks, a vif on dom0's bridge, QEMU's `hostfwd` to it), then, once it
//!    serves, the Linux domU (its own vif and `hostfwd`, a disk for its `dd` figures);
//! 3. hv in QEMU with the application alone (its disks, its vif on hv's switch, `hostfwd`);
//! 4. the network rows from the host's one client ([`net`]), interleaved (hv, Xen, Linux);
//! 5. all stopped (hv: `shutdown 1 poweroff` on its control lines; Xen: QEMU quit), hv's
//!    netback line read for its exits and notifications per frame.
//!
//! The full run then searches the least `memory=` at which the demo serves: on hv from the
//! host, on stock Xen by dom0 in a boot of its own (pvguest and Linux).
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

pub mod features;
pub mod net;
pub mod report;

use report::{Kind, Report, Row, System};

use crate::build::workspace_root;
use crate::tally::Tally;

/// How much each run measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Rounds (each figure is taken once per round).
    pub rounds: usize,
    /// Bytes of the download and of the upload.
    pub bulk_bytes: usize,
    /// Requests of the one-connection row.
    pub requests_1: u64,
    /// Requests of the 16-connection row.
    pub requests_16: u64,
    /// Whether to search the least memory at which the demo answers.
    pub memory_search: bool,
    /// Whether to measure each front-end feature switched off ([`features`]).
    pub features: bool,
}

/// `cargo xtask bench`.
pub const FULL: Plan = Plan {
    rounds: 3,
    bulk_bytes: 16 << 20,
    requests_1: 500,
    requests_16: 2000,
    memory_search: true,
    features: true,
};

/// `cargo xtask bench --quick`.
pub const QUICK: Plan = Plan {
    rounds: 1,
    bulk_bytes: 2 << 20,
    requests_1: 50,
    requests_16: 200,
    memory_search: false,
    features: false,
};

const USAGE: &str = "\
cargo xtask bench [--quick | --memory-only | --features-only]

Measures pvguest on hv beside pvguest and a Linux PVH domU on stock Xen 4.17 (both inside
QEMU on this host), interleaved, and writes target/bench/report.md, report.json and ratios.svg (the table is
printed too). --quick: one round with small sizes and no memory search (what
`cargo xtask test` runs; it passes when every row produced a number). --memory-only: only
the least-memory search (the other rows stay empty). --features-only: only the stock-Xen
boot that measures pvguest with each front-end feature switched off in turn (the full run
ends with it).
";

/// The network rows' connections.
const CONNECTIONS: [u64; 2] = [1, 16];
/// The start of the row of pvguest's hashed upload (`POST /sink`; Linux has no such row).
const UPLOAD_HASHED_PREFIX: &str = "upload, SHA-256 in the guest, ";
/// How long a system may take from QEMU's start to answering.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(900);
/// How long one short hv boot may take.
const HV_SHORT_TIMEOUT: Duration = Duration::from_secs(120);
/// The application's line once it serves.
const SERVING: &str = "APP serving";

/// The block figures (the `BENCH` names of pvguest's bench mode and of the Linux domU's
/// init, the same) and their rows.
const BLOCK_ROWS: [(&str, &str); 4] = [
    (
        "blk-seq-read-qd1",
        "sequential read, 4 KiB requests, queue depth 1",
    ),
    (
        "blk-seq-write-qd1",
        "sequential write, 4 KiB requests, queue depth 1",
    ),
    (
        "blk-seq-read-full",
        "sequential read, large requests, full depth",
    ),
    (
        "blk-seq-write-full",
        "sequential write, large requests, full depth",
    ),
];
/// pvguest's random-read row.
const RAND_ROW: &str = "random read, 4 KiB requests, full depth";
/// MiB each block figure moves: `--quick`, full.
const BLOCK_MB: (u64, u64) = (8, 32);

/// The Linux domU's address on QEMU's user network (beside pvguest's 10.0.2.15).
const LINUX_IP: &str = "10.0.2.16";

/// `cargo xtask bench [--quick]`.
pub fn command(args: &[String]) -> Result<ExitCode> {
    let plan = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        [] => FULL,
        ["--quick"] => QUICK,
        ["--memory-only"] => Plan {
            rounds: 0,
            features: false,
            ..FULL
        },
        ["--features-only"] => Plan {
            rounds: 0,
            memory_search: false,
            ..FULL
        },
        ["--help" | "-h"] => {
            print!("{USAGE}");
            return Ok(ExitCode::SUCCESS);
        }
        _ => {
            eprint!("unknown arguments {args:?}\n\n{USAGE}");
            return Ok(ExitCode::from(2));
        }
    };
    let report = run(plan)?;
    let missing = report.incomplete();
    if missing.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        println!("bench: rows without a number: {}", missing.join(", "));
        Ok(ExitCode::FAILURE)
    }
}

/// `cargo xtask bench --quick` as `cargo xtask test`'s unit `bench --quick`: it passes when
/// the report was written with every row filled (no timing is judged).
pub fn quick_unit(tally: &mut Tally) {
    match run(QUICK) {
        Ok(r) if r.incomplete().is_empty() => {
            println!("HOST bench-quick ok ({} rows)", r.rows.len());
            tally.pass();
        }
        Ok(r) => {
            let line = format!(
                "HOST bench-quick FAIL rows without a number: {}",
                r.incomplete().join(", ")
            );
            println!("{line}");
            tally.fail(line);
        }
        Err(e) => {
            let line = format!("HOST bench-quick FAIL {e:#}");
            println!("{line}");
            tally.fail(line);
        }
    }
}

/// The report's rows, built up as figures come.
struct Rows(Vec<Row>);

impl Rows {
    /// Adds a sample to the row `name` (made with `make` the first time).
    fn add(&mut self, name: &str, make: impl FnOnce() -> Row, system: System, value: f64) {
        if let Some(row) = self.0.iter_mut().find(|r| r.name == name) {
            row.push(system, value);
        } else {
            let mut row = make();
            row.name = name.to_owned();
            row.push(system, value);
            self.0.push(row);
        }
    }

    /// Declares a row that must get a number from each of `systems` (a failed measurement
    /// then shows as missing).
    fn declare(&mut self, mut row: Row, systems: &[System]) {
        if !self.0.iter().any(|r| r.name == row.name) {
            row.cells = systems.iter().map(|s| (*s, Vec::new())).collect();
            self.0.push(row);
        }
    }
}

/// Runs the plan and writes the report; `Err` only if nothing could be measured at all.
pub fn run(plan: Plan) -> Result<Report> {
    let started = Instant::now();
    let hv = crate::build::build_hv()?;
    let guest = crate::build::build_guest()?;
    let image = crate::xen::image::ensure_image()?;
    let linux = crate::linux_domu::build()
        .map_err(|e| println!("bench: the Linux domU could not be built: {e:#}"))
        .ok();
    let mut rows = Rows(Vec::new());
    declare_rows(&mut rows, plan);
    for round in 0..plan.rounds {
        println!("bench: round {} of {}", round + 1, plan.rounds);
        if let Err(e) = one_round(&mut rows, plan, &hv, &guest, &image, linux.as_ref()) {
            println!("bench: round {} failed: {e:#}", round + 1);
        }
    }
    size_rows(&mut rows, &hv, &guest, linux.as_ref())?;
    if plan.memory_search {
        let name = "least memory= at which the demo answers";
        let row = || {
            Row::new(
                "memory",
                "",
                "MiB",
                Kind::Count,
                "bisected: the domain answers GET / (hv: from the host through hostfwd; Xen: \
                 busybox wget from dom0 on the bridge)",
            )
        };
        let mut declared = row();
        declared.name = name.to_owned();
        rows.declare(declared, &System::ALL);
        match least_memory(&hv, &guest) {
            Ok(mib) => rows.add(name, row, System::PvguestHv, mib as f64),
            Err(e) => println!("bench: memory search on hv failed: {e:#}"),
        }
        match xen_least_memory(&guest, &image, linux.as_ref()) {
            Ok(found) => {
                for (system, mib) in found {
                    rows.add(name, row, system, mib as f64);
                }
            }
            Err(e) => println!("bench: memory search on Xen failed: {e:#}"),
        }
    }
    if plan.features {
        features::declare(&mut rows);
        if let Err(e) = features::measure(&mut rows, &hv, &guest, &image, linux.as_ref()) {
            println!("bench: the features boot failed: {e:#}");
        }
    }
    let report = Report {
        header: header(plan, started.elapsed()),
        rows: rows.0,
    };
    write_report(&report)?;
    Ok(report)
}

/// The rows every run with rounds must fill (none for `--memory-only` and `--features-only`,
/// which run no round: their rows are declared where they are measured, and an empty row of
/// the rounds would fail the run for nothing).
fn declare_rows(rows: &mut Rows, plan: Plan) {
    use System::{LinuxXen, PvguestHv, PvguestXen};
    if plan.rounds == 0 {
        return;
    }
    let mb = plan.bulk_bytes >> 20;
    let host = "host client (xtask's http.rs) through QEMU's hostfwd";
    let all: &[System] = &[PvguestHv, PvguestXen, LinuxXen];
    let pv: &[System] = &[PvguestHv, PvguestXen];
    for (name, unit, kind, note, systems) in [
        (
            "QEMU start → answering".to_owned(),
            "s",
            Kind::Lower,
            "host clock from QEMU's spawn to the first 200 of GET / (hv vs Xen + dom0)",
            pv,
        ),
        (
            "xl create → answering".to_owned(),
            "s",
            Kind::Lower,
            "dom0's `xl create` returning to the first 200 of GET / (host clock, serial time)",
            &[PvguestXen, LinuxXen][..],
        ),
        (
            "hypercall round trip (xen_version)".to_owned(),
            "TSC cycles",
            Kind::Lower,
            "guest's TSC over 2000 calls, selftest=bench (the host's TSC rate under TCG on both)",
            pv,
        ),
        (
            "hypercall round trip (unassigned, -ENOSYS)".to_owned(),
            "TSC cycles",
            Kind::Lower,
            "guest's TSC over 2000 calls; on hv the bare VMMCALL exit",
            pv,
        ),
        (
            "event delivery (EVTCHNOP_send to own port → handler)".to_owned(),
            "TSC cycles",
            Kind::Lower,
            "guest's TSC over 2000 round trips",
            pv,
        ),
        (
            format!("download {mb} MiB"),
            "MB/s",
            Kind::Higher,
            "GET /blob/N on a fresh connection",
            all,
        ),
        (
            format!("upload {mb} MiB"),
            "MB/s",
            Kind::Higher,
            "read and dropped by the server on a fresh connection: pvguest's POST /discard, \
             Linux's POST /sink (nginx)",
            all,
        ),
        (
            format!("{UPLOAD_HASHED_PREFIX}{mb} MiB"),
            "MB/s",
            Kind::Higher,
            "POST /sink on a fresh connection: pvguest hashes the body (SHA-256 in software) \
             and answers its digest, checked",
            pv,
        ),
    ] {
        let group = group_of(&name);
        rows.declare(
            Row::new(
                group,
                name,
                unit,
                kind,
                if group == "network" {
                    format!("{note}; {host}")
                } else {
                    note.to_owned()
                },
            ),
            systems,
        );
    }
    for c in CONNECTIONS {
        rows.declare(
            Row::new(
                "network",
                format!("requests/s, {c} keep-alive connection(s)"),
                "req/s",
                Kind::Higher,
                format!("GET /blob/1024; {host}"),
            ),
            all,
        );
    }
    for (_, name) in BLOCK_ROWS {
        rows.declare(
            Row::new(
                "block",
                name,
                "MB/s",
                Kind::Higher,
                "inside the guest: pvguest's bench mode (blkfront; large = its largest request, \
                 32 in flight), Linux's dd with O_DIRECT (large = bs=1M); Xen: a file on dom0's \
                 tmpfs by loop; hv: QEMU's virtio-blk on a host file",
            ),
            all,
        );
    }
    rows.declare(
        Row::new(
            "block",
            RAND_ROW,
            "IOPS",
            Kind::Higher,
            "pvguest's bench mode, 32 in flight; Linux: xtask's randread, 32 threads of O_DIRECT \
             4 KiB preads at random blocks",
        ),
        all,
    );
    for what in ["blkback's wake-ups (exits)", "notifications sent"] {
        rows.declare(
            Row::new(
                "block",
                format!("{what} per request (hv blkback)"),
                "per request",
                Kind::Count,
                "hv's blkback line for the bench disk, all of the bench's requests",
            ),
            &[PvguestHv],
        );
    }
}

/// The group of a declared row.
fn group_of(name: &str) -> &'static str {
    if name.contains("answering") {
        "boot"
    } else if name.contains("round trip") || name.contains("event") {
        "hypercalls"
    } else {
        "network"
    }
}

/// One round: the short hv boots, both applications up, the network rows interleaved.
fn one_round(
    rows: &mut Rows,
    plan: Plan,
    hv: &Path,
    guest: &Path,
    image: &crate::xen::image::Image,
    linux: Option<&crate::linux_domu::LinuxDomU>,
) -> Result<()> {
    // 1. hv's short boots.
    let mb = if plan == QUICK {
        BLOCK_MB.0
    } else {
        BLOCK_MB.1
    };
    match hv_bench_boot(hv, guest, mb, "") {
        Ok((lines, log)) => {
            bench_lines(rows, System::PvguestHv, &lines);
            match blkback_per_request(&log) {
                Some((exits, notes)) => {
                    let row = || Row::new("block", "", "per request", Kind::Count, "");
                    rows.add(
                        "blkback's wake-ups (exits) per request (hv blkback)",
                        row,
                        System::PvguestHv,
                        exits,
                    );
                    rows.add(
                        "notifications sent per request (hv blkback)",
                        row,
                        System::PvguestHv,
                        notes,
                    );
                }
                None => println!("bench: hv printed no blkback line for the bench disk"),
            }
        }
        Err(e) => println!("bench: hv selftest=bench: {e:#}"),
    }
    match hv_short_boot(hv, guest, "selftest=boot", "bench-hv-boot") {
        Ok(booted) => {
            let sum = |kind: &str| -> u64 {
                booted
                    .transcript
                    .counters
                    .iter()
                    .filter_map(|l| l.strip_prefix(&format!("COUNTER {kind}.")))
                    .filter_map(|rest| rest.split_whitespace().nth(1)?.parse::<u64>().ok())
                    .sum()
            };
            for (kind, what) in [("exit", "VM exits"), ("hypercall", "hypercalls")] {
                rows.add(
                    &format!("{what} of pvguest's boot on hv"),
                    || {
                        Row::new(
                            "boot",
                            "",
                            "count",
                            Kind::Count,
                            "hv's COUNTER lines, selftest=boot to power-off",
                        )
                    },
                    System::PvguestHv,
                    sum(kind) as f64,
                );
            }
        }
        Err(e) => println!("bench: hv selftest=boot: {e:#}"),
    }
    // 2. and 3. both applications (and the Linux domU on Xen once pvguest serves there).
    let xen = XenApp::start(guest, image, linux, plan)?;
    let xen_up = xen.wait_answering();
    let linux_up = if linux.is_some() && xen_up.is_ok() {
        xen.wait_linux()
    } else {
        Err(anyhow::anyhow!("no Linux domU"))
    };
    let linux_blk = match (&linux_up, &xen.linux_addr) {
        (Ok(_), Some(addr)) => linux_blk_lines(addr),
        _ => Err(anyhow::anyhow!("the Linux domU did not answer")),
    };
    let hv_app = HvApp::start(hv, guest, 128, "bench-hv-app")?;
    let hv_up = hv_app.wait_answering();
    let boot_row = || Row::new("boot", "", "s", Kind::Lower, "");
    match &xen_up {
        Ok(up) => {
            rows.add(
                "QEMU start → answering",
                boot_row,
                System::PvguestXen,
                up.qemu_to_answer.as_secs_f64(),
            );
            if let Some(c) = up.create_to_answer {
                rows.add(
                    "xl create → answering",
                    boot_row,
                    System::PvguestXen,
                    c.as_secs_f64(),
                );
            }
        }
        Err(e) => println!("bench: stock Xen did not answer: {e:#}"),
    }
    match &hv_up {
        Ok(up) => rows.add(
            "QEMU start → answering",
            boot_row,
            System::PvguestHv,
            up.qemu_to_answer.as_secs_f64(),
        ),
        Err(e) => println!("bench: hv did not answer: {e:#}"),
    }
    // 4. the network rows, interleaved.
    let mut up: Vec<(System, String)> = Vec::new();
    if hv_up.is_ok() {
        up.push((System::PvguestHv, hv_app.addr.clone()));
    }
    if xen_up.is_ok() {
        up.push((System::PvguestXen, xen.addr.clone()));
    }
    match (&linux_up, &xen.linux_addr) {
        (Ok(_), Some(addr)) => up.push((System::LinuxXen, addr.clone())),
        (Err(e), _) => println!("bench: the Linux domU: {e:#}"),
        _ => {}
    }
    match &linux_blk {
        Ok(lines) => {
            for line in lines {
                let Some((key, rate)) = crate::linux_domu::dd_rate(line) else {
                    println!("bench: Linux dd: {line}");
                    continue;
                };
                if let Some((_, name)) = BLOCK_ROWS.iter().find(|(k, _)| *k == key) {
                    rows.add(
                        name,
                        || Row::new("block", "", "MB/s", Kind::Higher, ""),
                        System::LinuxXen,
                        rate,
                    );
                } else if key == "blk-rand-read-4k" {
                    // `randread`'s reads (in place of bytes) per second, in millions.
                    rows.add(
                        RAND_ROW,
                        || Row::new("block", "", "IOPS", Kind::Higher, ""),
                        System::LinuxXen,
                        rate * 1e6,
                    );
                }
            }
        }
        Err(e) => println!("bench: Linux dd: {e:#}"),
    }
    let mb = plan.bulk_bytes >> 20;
    type Measure<'a> = (String, Box<dyn Fn(&str, net::Server) -> Result<f64> + 'a>);
    let mut measures: Vec<Measure<'_>> = vec![
        (
            format!("download {mb} MiB"),
            Box::new(|a: &str, s| net::download(a, s, plan.bulk_bytes)),
        ),
        (
            format!("upload {mb} MiB"),
            Box::new(|a: &str, s| net::upload(a, s, plan.bulk_bytes)),
        ),
        (
            format!("{UPLOAD_HASHED_PREFIX}{mb} MiB"),
            Box::new(|a: &str, _| net::upload_hashed(a, plan.bulk_bytes)),
        ),
    ];
    for c in CONNECTIONS {
        let n = if c == 1 {
            plan.requests_1
        } else {
            plan.requests_16
        };
        measures.push((
            format!("requests/s, {c} keep-alive connection(s)"),
            Box::new(move |a: &str, _| net::requests_per_s(a, c, n)),
        ));
    }
    if hv_up.is_ok() {
        for c in CONNECTIONS {
            for what in ["VM exits", "notifications"] {
                let mut declared = snapshot_row();
                declared.name = snapshot_row_name(what, c);
                rows.declare(declared, &[System::PvguestHv]);
            }
        }
    }
    for (name, measure) in &measures {
        for (system, addr) in &up {
            // Only pvguest hashes an upload.
            if name.starts_with(UPLOAD_HASHED_PREFIX) && *system == System::LinuxXen {
                continue;
            }
            // hv's netback counts around its request rows (`netback-stats` on hv's control
            // lines; hv logs them at the domain's next exit, so the harness waits a moment).
            let tag = name
                .strip_prefix("requests/s, ")
                .and_then(|r| r.split_whitespace().next())
                .filter(|_| *system == System::PvguestHv);
            let snapshot = |when: &str| {
                if let Some(c) = tag {
                    let _ = hv_app.control.send(crate::hv::qemu::Control::Line(format!(
                        "netback-stats 1 {when}-{c}"
                    )));
                    std::thread::sleep(SNAPSHOT_WAIT);
                }
            };
            snapshot("before");
            let server = if *system == System::LinuxXen {
                net::Server::Linux
            } else {
                net::Server::Pvguest
            };
            let measured = measure(addr, server);
            snapshot("after");
            match measured {
                Ok(v) => {
                    println!("bench: {} {name}: {}", system.label(), report::num(v));
                    rows.add(
                        name,
                        || Row::new("network", "", "", Kind::Higher, ""),
                        *system,
                        v,
                    );
                }
                Err(e) => println!("bench: {} {name}: {e:#}", system.label()),
            }
        }
    }
    // 5. stop both.
    let hv_booted = hv_app.stop();
    let xen_booted = xen.stop();
    match hv_booted {
        Ok(log) => {
            for c in CONNECTIONS {
                let (Some(a), Some(b)) = (
                    netback_snapshot(&log, &format!("before-{c}")),
                    netback_snapshot(&log, &format!("after-{c}")),
                ) else {
                    println!("bench: hv logged no netback counts around {c} connection(s)");
                    continue;
                };
                let frames = b.frames.saturating_sub(a.frames);
                if frames == 0 {
                    continue;
                }
                for (what, n) in [
                    ("VM exits", b.exits.saturating_sub(a.exits)),
                    ("notifications", b.notes.saturating_sub(a.notes)),
                ] {
                    rows.add(
                        &snapshot_row_name(what, c),
                        snapshot_row,
                        System::PvguestHv,
                        n as f64 / frames as f64,
                    );
                }
            }
            if let Some((exits, notes)) = netback_per_frame(&log) {
                for (what, v) in [("VM exits", exits), ("notifications", notes)] {
                    rows.add(
                        &format!("{what} per frame (hv netback, whole run)"),
                        || {
                            Row::new(
                                "network",
                                "",
                                "per frame",
                                Kind::Count,
                                "hv's netback line for d1 at its end (all the round's traffic)",
                            )
                        },
                        System::PvguestHv,
                        v,
                    );
                }
            } else {
                println!("bench: hv printed no netback line for d1");
            }
        }
        Err(e) => println!("bench: hv's application boot: {e:#}"),
    }
    match xen_booted {
        Ok(booted) => {
            let log = std::fs::read_to_string(&booted.serial_log).unwrap_or_default();
            if let (Ok(answer), Some(created)) = (
                &linux_up,
                serial_time(&log, "PVXEN result linux-create created"),
            ) {
                let d = answer.as_secs_f64() - created;
                if d > 0.0 {
                    rows.add(
                        "xl create → answering",
                        || Row::new("boot", "", "s", Kind::Lower, ""),
                        System::LinuxXen,
                        d,
                    );
                }
            } else if linux_up.is_ok() {
                println!(
                    "bench: no `linux-create created` result in {}",
                    booted.serial_log.display()
                );
            }
            let bench = booted
                .transcript
                .results
                .iter()
                .find(|(k, _)| k == "bench")
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            let lines: Vec<String> = bench.split(';').map(str::to_owned).collect();
            if !lines.iter().any(|l| l.starts_with("BENCH ")) {
                println!("bench: stock Xen's selftest=bench printed no BENCH line ({bench:?})");
            }
            bench_lines(rows, System::PvguestXen, &lines);
        }
        Err(e) => println!("bench: stock Xen's boot: {e:#}"),
    }
    Ok(())
}

/// `(exits, notifications)` per request of hv's blkback line for d1's `xvda`: `N requests
/// (...), ..., M notifications sent, ...; requests found after K exits`.
pub fn blkback_per_request(serial: &str) -> Option<(f64, f64)> {
    let line = serial
        .lines()
        .rfind(|l| l.contains("hv: d1: blkback xvda:") && l.contains(" requests ("))?;
    let rest = line.split("blkback xvda: ").nth(1)?;
    let requests: f64 = rest.split_whitespace().next()?.parse().ok()?;
    let head = rest.split(" notifications sent").next()?;
    let notes: f64 = head.rsplit(' ').next()?.parse().ok()?;
    let exits: f64 = rest
        .split("requests found after ")
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    (requests > 0.0).then(|| (exits / requests, notes / requests))
}

/// pvguest's `selftest=bench` alone on hv, with a disk `xvda` of `mb` MiB + 1 for its block
/// figures: its console lines and hv's serial log.
pub(super) fn hv_bench_boot(
    hv: &Path,
    guest: &Path,
    mb: u64,
    switches: &str,
) -> Result<(Vec<String>, String)> {
    let label = "bench-hv-selftest";
    let dir = crate::hv::run_dir(label);
    std::fs::create_dir_all(&dir)?;
    let disk = std::fs::File::create(dir.join("xvda.img"))?;
    disk.set_len((mb + 1) << 20)?;
    drop(disk);
    let cmdline = format!("selftest=bench bench-disk=xvda bench-mb={mb} {switches}");
    let domain = [crate::hv::TestDomain {
        name: "bench",
        cmdline: cmdline.trim_end(),
        memory_mib: 128,
        disks: "disk = [ 'format=raw, vdev=xvda, access=rw, target=xvda.img' ]\n",
    }];
    let (archive, boots) = crate::hv::pack_domains(guest, label, &domain)?;
    let drives = crate::hv::config::drives(&boots);
    let booted = crate::hv::boot_with_control(
        "bench",
        hv,
        crate::hv::Module::Archive(&archive, crate::hv::qemu::DEFAULT_MEMORY_MIB, &drives, None),
        label,
        HV_SHORT_TIMEOUT,
        (crate::hv::HV_OPTIONS, None),
        None,
        |_| {},
    )?;
    let lines = booted
        .transcript
        .domains
        .get(&1)
        .cloned()
        .unwrap_or_default();
    if !lines.iter().any(|l| l.starts_with("RESULT ")) {
        bail!(
            "no RESULT line from the bench domain on hv ({})",
            booted.end.describe()
        );
    }
    let log = std::fs::read_to_string(&booted.serial_log)
        .with_context(|| format!("reading {}", booted.serial_log.display()))?;
    Ok((lines, log))
}

/// The `BENCH` lines of pvguest's bench mode as rows.
fn bench_lines(rows: &mut Rows, system: System, lines: &[String]) {
    bench_block_lines(rows, system, lines, "", "block");
    hypercall_lines(rows, system, lines);
}

/// The block figures of pvguest's `BENCH` lines as rows of `group`, each row's name followed
/// by `suffix`.
fn bench_block_lines(
    rows: &mut Rows,
    system: System,
    lines: &[String],
    suffix: &str,
    group: &'static str,
) {
    for line in lines {
        let mut words = line.split_whitespace();
        let (Some("BENCH"), Some(key), Some(a), Some(b), None) = (
            words.next(),
            words.next(),
            words.next().and_then(|w| w.parse::<f64>().ok()),
            words.next().and_then(|w| w.parse::<f64>().ok()),
            words.next(),
        ) else {
            continue;
        };
        if b <= 0.0 {
            continue;
        }
        if let Some((_, name)) = BLOCK_ROWS.iter().find(|(k, _)| *k == key) {
            let row = || Row::new(group, "", "MB/s", Kind::Higher, "");
            rows.add(&format!("{name}{suffix}"), row, system, a / 1e6 / (b / 1e9));
        } else if key == "blk-rand-read-4k" {
            let row = || Row::new(group, "", "IOPS", Kind::Higher, "");
            rows.add(&format!("{RAND_ROW}{suffix}"), row, system, a / (b / 1e9));
        }
    }
}

/// The hypercall and event figures of pvguest's `BENCH` lines as rows.
fn hypercall_lines(rows: &mut Rows, system: System, lines: &[String]) {
    for (key, name) in [
        (
            "hypercall-xen-version-cycles",
            "hypercall round trip (xen_version)",
        ),
        (
            "hypercall-unassigned-cycles",
            "hypercall round trip (unassigned, -ENOSYS)",
        ),
        (
            "event-loopback-cycles",
            "event delivery (EVTCHNOP_send to own port → handler)",
        ),
    ] {
        let value = lines.iter().find_map(|l| {
            let rest = l.trim().strip_prefix("BENCH ")?.strip_prefix(key)?;
            rest.trim().parse::<f64>().ok()
        });
        match value {
            Some(v) => rows.add(
                name,
                || Row::new("hypercalls", "", "TSC cycles", Kind::Lower, ""),
                system,
                v,
            ),
            None => println!("bench: {}: no `BENCH {key}` line", system.label()),
        }
    }
}

/// The row of hv's netback `what` (exits or notifications) per frame over the request row
/// with `c` connections.
fn snapshot_row_name(what: &str, c: u64) -> String {
    format!("{what} per frame, {c} keep-alive connection(s) (hv netback)")
}

/// The rows of [`snapshot_row_name`].
fn snapshot_row() -> Row {
    Row::new(
        "network",
        "",
        "per frame",
        Kind::Count,
        "hv's netback counts (`netback-stats` control line) before and after the request row \
         on hv, 0.3 s of rest on each side included",
    )
}

/// How long the bench waits after asking hv for its netback counts (hv answers at the
/// domain's next exit).
const SNAPSHOT_WAIT: Duration = Duration::from_millis(300);

/// hv's netback counts for domain 1's vif0 at one moment.
#[derive(Debug, PartialEq, Eq)]
pub struct NetbackSnapshot {
    /// Frames both ways.
    pub frames: u64,
    /// Exits of the domain after which the back end ran.
    pub exits: u64,
    /// Notifications sent both ways.
    pub notes: u64,
}

/// The `hv: d1: netback vif0 at <tag>: frames F exits E notifications N` line of `serial`.
pub fn netback_snapshot(serial: &str, tag: &str) -> Option<NetbackSnapshot> {
    let marker = format!("hv: d1: netback vif0 at {tag}: ");
    let line = serial.lines().find(|l| l.contains(&marker))?;
    let rest = line.split(&marker).nth(1)?;
    let w: Vec<&str> = rest.split_whitespace().collect();
    match w.as_slice() {
        ["frames", f, "exits", e, "notifications", n] => Some(NetbackSnapshot {
            frames: f.parse().ok()?,
            exits: e.parse().ok()?,
            notes: n.parse().ok()?,
        }),
        _ => None,
    }
}

/// `per frame: X exits, Y notifications` of hv's netback line for domain 1.
pub fn netback_per_frame(serial: &str) -> Option<(f64, f64)> {
    let line = serial
        .lines()
        .rfind(|l| l.contains("hv: d1: netback vif0"))?;
    let rest = line.split("per frame: ").nth(1)?;
    let mut words = rest.split_whitespace();
    let exits = words.next()?.parse().ok()?;
    let _ = words.next();
    let notes = words.next()?.parse().ok()?;
    Some((exits, notes))
}

/// A boot of pvguest alone on hv with `cmdline`; it must power off.
fn hv_short_boot(
    hv: &Path,
    guest: &Path,
    cmdline: &str,
    label: &str,
) -> Result<crate::hv::qemu::Booted> {
    let booted = crate::hv::boot_with_control(
        "bench",
        hv,
        crate::hv::Module::Elf(guest, cmdline),
        label,
        HV_SHORT_TIMEOUT,
        (crate::hv::HV_OPTIONS, None),
        None,
        |_| {},
    )?;
    if !booted
        .transcript
        .guest
        .iter()
        .any(|l| l.starts_with("RESULT "))
    {
        bail!(
            "no RESULT line from {cmdline:?} on hv ({})",
            booted.end.describe()
        );
    }
    Ok(booted)
}

/// When a system answered.
struct Up {
    /// From QEMU's start.
    qemu_to_answer: Duration,
    /// From `xl create` returning (stock Xen only).
    create_to_answer: Option<Duration>,
}

/// A free port on the host's loopback.
fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Waits for `serving` (the boot's start instant, sent when the application printed that it
/// serves), then for `GET /` to answer; fails early if the boot ended first.
fn wait_up<T>(
    serving: &mpsc::Receiver<Instant>,
    boot: &JoinHandle<T>,
    addr: &str,
) -> Result<(Instant, Instant)> {
    let until = Instant::now() + ANSWER_TIMEOUT;
    let start = loop {
        match serving.recv_timeout(Duration::from_millis(500)) {
            Ok(start) => break start,
            Err(mpsc::RecvTimeoutError::Timeout) if boot.is_finished() => {
                bail!("the boot ended before the application served")
            }
            Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() > until => {
                bail!("no `{SERVING}` within {} s", ANSWER_TIMEOUT.as_secs())
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                bail!("the boot ended before the application served")
            }
        }
    };
    let answered = net::wait_answering(addr, Duration::from_secs(120))?;
    Ok((start, answered))
}

/// The application on hv, running in a thread.
struct HvApp {
    addr: String,
    serving: mpsc::Receiver<Instant>,
    control: mpsc::Sender<crate::hv::qemu::Control>,
    boot: JoinHandle<Result<String>>,
}

impl HvApp {
    /// Boots hv with the application (`memory_mib` for its domain) and its disks and vif.
    fn start(hv: &Path, guest: &Path, memory_mib: u64, label: &'static str) -> Result<Self> {
        let dir = crate::hv::run_dir(label);
        std::fs::create_dir_all(&dir)?;
        let site = crate::xen::blk::site_archive(&workspace_root().join("pvguest/site"), false)?;
        let mut xvda = site.tar;
        xvda.resize(xvda.len().div_ceil(1 << 20) * (1 << 20), 0);
        std::fs::write(dir.join("xvda.img"), &xvda)?;
        let store = std::fs::File::create(dir.join("xvdb.img"))?;
        store.set_len(16 << 20)?;
        drop(store);
        let domain = [crate::hv::TestDomain {
            name: "bench-app",
            cmdline: "ip=10.0.2.15/24 gw=10.0.2.2",
            memory_mib,
            disks: "disk = [ 'format=raw, vdev=xvda, access=ro, target=xvda.img',\n\
                    \x20        'format=raw, vdev=xvdb, access=rw, target=xvdb.img' ]\n\
                    vif = [ 'mac=00:16:3e:00:00:03' ]\n",
        }];
        let (archive, boots) = crate::hv::pack_domains(guest, label, &domain)?;
        let drives = crate::hv::config::drives(&boots);
        let port = free_port()?;
        let addr = format!("127.0.0.1:{port}");
        let (serving_tx, serving) = mpsc::channel();
        let (control, control_rx) = mpsc::channel();
        let hv = hv.to_owned();
        let boot = std::thread::spawn(move || -> Result<String> {
            let fwds = [crate::hv::qemu::HostFwd {
                host_port: port,
                guest_ip: std::net::Ipv4Addr::new(10, 0, 2, 15),
                guest_port: 80,
            }];
            let start = Instant::now();
            let mut sent = false;
            let booted = crate::hv::boot_with_control(
                "bench",
                &hv,
                crate::hv::Module::Archive(
                    &archive,
                    crate::hv::qemu::DEFAULT_MEMORY_MIB,
                    &drives,
                    Some(&fwds),
                ),
                label,
                ANSWER_TIMEOUT,
                (crate::hv::HV_OPTIONS, None),
                Some(control_rx),
                |line| {
                    if let crate::hv::serial::Line::Guest(1, text) = line
                        && text.starts_with(SERVING)
                        && !sent
                    {
                        sent = true;
                        let _ = serving_tx.send(start);
                    }
                },
            )?;
            std::fs::read_to_string(&booted.serial_log)
                .with_context(|| format!("reading {}", booted.serial_log.display()))
        });
        Ok(Self {
            addr,
            serving,
            control,
            boot,
        })
    }

    fn wait_answering(&self) -> Result<Up> {
        let (start, answered) = wait_up(&self.serving, &self.boot, &self.addr)?;
        Ok(Up {
            qemu_to_answer: answered - start,
            create_to_answer: None,
        })
    }

    /// Powers the application off and waits for hv's end: its serial log.
    fn stop(self) -> Result<String> {
        let _ = self
            .control
            .send(crate::hv::qemu::Control::Line("shutdown 1 poweroff".into()));
        let log = self
            .boot
            .join()
            .map_err(|_| anyhow::anyhow!("hv's boot thread panicked"))??;
        Ok(log)
    }
}

/// The application on stock Xen, running in a thread; dom0 runs `selftest=bench` first, and
/// the Linux domU once the application serves.
struct XenApp {
    addr: String,
    /// The Linux domU's forwarded address, when it was started.
    linux_addr: Option<String>,
    serving: mpsc::Receiver<Instant>,
    created: Arc<Mutex<Option<Duration>>>,
    stop: Arc<AtomicBool>,
    /// The boot's start (set by the thread before QEMU starts).
    started: Arc<Mutex<Option<Instant>>>,
    boot: JoinHandle<Result<crate::xen::qemu::Booted>>,
}

/// dom0's step that runs the `selftest=bench` guest (named `bench`) to its end and gives its
/// `BENCH` lines as one result, `;`-separated.
const XEN_BENCH_STEP: &str = "dd if=/dev/zero of=/tmp/bench-disk.img bs=1M count=0 seek=64 2>/dev/null; \
     $XL create /pvxen/bench.cfg >/dev/null 2>&1 || { echo create-failed; exit 0; }; \
     i=0; while [ $i -lt 900 ] && ! grep -q 'reason code' /var/log/xen/xl-bench.log 2>/dev/null; \
     do sleep 0.2; i=$((i+1)); done; sleep 1; $XL destroy bench >/dev/null 2>&1; \
     grep -a '^BENCH ' /var/log/xen/console/guest-bench.log | tr -d '\\r' | tr '\\n' ';'";

/// dom0's step that creates the Linux domU (its result line's serial time is when
/// `xl create` returned).
const XEN_LINUX_STEP: &str = "dd if=/dev/zero of=/tmp/linux-disk.img bs=1M count=0 seek=64 2>/dev/null; \
     if $XL create /pvxen/linux.cfg >/tmp/linux-create.log 2>&1; then echo created; \
     else tail -n 3 /tmp/linux-create.log | tr '\\n' ' '; fi";

impl XenApp {
    fn start(
        guest: &Path,
        image: &crate::xen::image::Image,
        linux: Option<&crate::linux_domu::LinuxDomU>,
        plan: Plan,
    ) -> Result<Self> {
        use crate::xen::job::Step;
        use crate::xen::run as xrun;
        let dir = workspace_root().join("target").join("bench");
        std::fs::create_dir_all(&dir)?;
        let store = dir.join("xen-store.img");
        let _ = std::fs::remove_file(&store);
        xrun::prepare_store(&store)?;
        let store = xrun::drive_path(&store)?;
        let site = crate::xen::blk::site_archive(&workspace_root().join("pvguest/site"), false)?;
        let mut archive = site.tar;
        archive.resize(
            archive.len().div_ceil(xrun::ARCHIVE_ROUND) * xrun::ARCHIVE_ROUND,
            0,
        );
        let cmdline = format!("ip={}/24 gw={}", xrun::GUEST_IP, xrun::GATEWAY);
        let mut job = xrun::job(archive, &cmdline)?;
        let mb = if plan == QUICK {
            BLOCK_MB.0
        } else {
            BLOCK_MB.1
        };
        let bench_cfg = crate::xen::xl_config(
            &format!("selftest=bench bench-disk=xvda bench-mb={mb}"),
            "disk = [ 'format=raw, vdev=xvda, access=rw, target=/tmp/bench-disk.img' ]\n",
        )?
        .replace("name = \"pvguest\"", "name = \"bench\"");
        job.files.push(("bench.cfg".into(), bench_cfg.into_bytes()));
        let at = job
            .steps
            .iter()
            .position(|s| matches!(s, Step::Create { .. }))
            .context("run's job has no create step")?;
        job.steps.insert(
            at,
            Step::Run {
                key: "bench".into(),
                command: XEN_BENCH_STEP.into(),
            },
        );
        if let Some(linux) = linux {
            let config = crate::linux_domu::Config {
                ip: format!("{LINUX_IP}/24"),
                gateway: xrun::GATEWAY.into(),
                port: 80,
                blobs: vec![plan.bulk_bytes],
                blk_bench: Some(("xvda".into(), u32::try_from(mb)?)),
            };
            add_linux(
                &mut job,
                linux,
                &config,
                "disk = [ 'format=raw, vdev=xvda, access=rw, target=/tmp/linux-disk.img' ]\n",
            )?;
            // After the application's create: wait until it serves, then start Linux.
            let wait = job
                .steps
                .iter()
                .position(|s| matches!(s, Step::WaitEnd))
                .context("run's job has no wait-end step")?;
            job.steps.insert(wait, Step::WaitLine(SERVING.into()));
            job.steps.insert(
                wait + 1,
                Step::Run {
                    key: "linux-create".into(),
                    command: XEN_LINUX_STEP.into(),
                },
            );
        }
        let port = free_port()?;
        let addr = format!("127.0.0.1:{port}");
        let mut netdev = format!(
            "user,id=net0,hostfwd=tcp:127.0.0.1:{port}-{}:{}",
            xrun::GUEST_IP,
            xrun::GUEST_PORT
        );
        let linux_addr = if linux.is_some() {
            let lport = free_port()?;
            netdev.push_str(&format!(",hostfwd=tcp:127.0.0.1:{lport}-{LINUX_IP}:80"));
            Some(format!("127.0.0.1:{lport}"))
        } else {
            None
        };
        let devices = xrun::qemu_devices(netdev, &store);
        let timeout = ANSWER_TIMEOUT * 2;
        let overlay = crate::xen::overlay(
            guest,
            &job,
            timeout.saturating_sub(crate::xen::GUEST_MARGIN),
        )?;
        let image = image.clone();
        let (serving_tx, serving) = mpsc::channel();
        let created = Arc::new(Mutex::new(None));
        let started = Arc::new(Mutex::new(None));
        let stop = Arc::new(AtomicBool::new(false));
        let (created2, stop2, started2) = (created.clone(), stop.clone(), started.clone());
        let boot = std::thread::spawn(move || {
            let boot = crate::xen::qemu::Boot {
                image: &image,
                overlay,
                run_dir: workspace_root()
                    .join("target")
                    .join("pvxen")
                    .join("bench-xen"),
                timeout,
                devices,
                stop: Some(&stop2),
            };
            println!("bench: booting stock Xen + dom0 (selftest=bench, the application, Linux)");
            let start = Instant::now();
            *started2.lock().unwrap_or_else(|p| p.into_inner()) = Some(start);
            let mut sent = false;
            crate::xen::qemu::boot(&boot, |event, at| match event {
                crate::xen::console::Event::Created => {
                    *created2.lock().unwrap_or_else(|p| p.into_inner()) = Some(at);
                }
                crate::xen::console::Event::Guest(line) if line.starts_with(SERVING) && !sent => {
                    sent = true;
                    let _ = serving_tx.send(start);
                }
                _ => {}
            })
        });
        Ok(Self {
            addr,
            linux_addr,
            serving,
            created,
            stop,
            started,
            boot,
        })
    }

    fn wait_answering(&self) -> Result<Up> {
        let (start, answered) = wait_up(&self.serving, &self.boot, &self.addr)?;
        let created = *self.created.lock().unwrap_or_else(|p| p.into_inner());
        Ok(Up {
            qemu_to_answer: answered - start,
            create_to_answer: created.and_then(|c| (answered - start).checked_sub(c)),
        })
    }

    /// Waits until the Linux domU answers `GET /`: the time since the boot's start.
    fn wait_linux(&self) -> Result<Duration> {
        let addr = self
            .linux_addr
            .as_deref()
            .context("no Linux domU in this boot")?;
        let answered = net::wait_answering(addr, Duration::from_secs(600))?;
        let start = self
            .started
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .context("the boot has not started")?;
        Ok(answered - start)
    }

    fn stop(self) -> Result<crate::xen::qemu::Booted> {
        self.stop.store(true, Ordering::SeqCst);
        self.boot
            .join()
            .map_err(|_| anyhow::anyhow!("Xen's boot thread panicked"))?
    }
}

/// The serial time (seconds since the boot's start) of the first line holding `needle`
/// (`[   6.55] PVXEN result ...`).
pub fn serial_time(log: &str, needle: &str) -> Option<f64> {
    let line = log.lines().find(|l| l.contains(needle))?;
    line.strip_prefix('[')?
        .split(']')
        .next()?
        .trim()
        .parse()
        .ok()
}

/// Fetches the Linux domU's `dd` figures (`/blob/blkbench.txt`, there once all ran).
fn linux_blk_lines(addr: &str) -> Result<Vec<String>> {
    let until = Instant::now() + Duration::from_secs(600);
    loop {
        if let Ok(r) = crate::http::once(addr, "GET", "/blob/blkbench.txt", None)
            && r.status == 200
        {
            return Ok(r.text().lines().map(str::to_owned).collect());
        }
        if Instant::now() > until {
            bail!("the Linux domU served no /blob/blkbench.txt within 600 s");
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Lines of hv's core: every `.rs` file under `hv/src` but the domain-0 services (`dom0/`)
/// and the tests (`tests.rs` files, and each file from its `#[cfg(test)]` line on), without
/// blank and comment-only lines.
pub fn core_lines(root: &Path) -> Result<u64> {
    fn walk(dir: &Path, total: &mut u64) -> Result<()> {
        for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
            let path = entry?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if path.is_dir() {
                if name != "dom0" {
                    walk(&path, total)?;
                }
            } else if name.ends_with(".rs") && name != "tests.rs" {
                *total += count_code(&std::fs::read_to_string(&path)?);
            }
        }
        Ok(())
    }
    let mut total = 0;
    walk(root, &mut total)?;
    Ok(total)
}

/// Code lines of one file: up to its `#[cfg(test)]`, neither blank nor only a comment.
fn count_code(text: &str) -> u64 {
    text.lines()
        .map(str::trim)
        .take_while(|l| *l != "#[cfg(test)]")
        .filter(|l| !l.is_empty() && !l.starts_with("//"))
        .count() as u64
}

/// The size rows: hv's ELF, pvguest's ELF stripped, hv's core lines.
fn size_rows(
    rows: &mut Rows,
    hv: &Path,
    guest: &Path,
    linux: Option<&crate::linux_domu::LinuxDomU>,
) -> Result<()> {
    let stripped = workspace_root()
        .join("target")
        .join("bench")
        .join("pvguest.stripped");
    std::fs::create_dir_all(stripped.parent().context("no parent")?)?;
    let status = std::process::Command::new("strip")
        .arg("-o")
        .arg(&stripped)
        .arg(guest)
        .status()
        .context("running strip (binutils)")?;
    if !status.success() {
        bail!("strip {}: {status}", guest.display());
    }
    let len = |p: &Path| -> Result<f64> { Ok(std::fs::metadata(p)?.len() as f64) };
    let size = || Row::new("size", "", "bytes", Kind::Count, "file size");
    rows.add("hv ELF", size, System::PvguestHv, len(hv)?);
    let pv = len(&stripped)?;
    let image_row = "guest image (pvguest: stripped ELF; Linux: bzImage + initramfs)";
    for sys in [System::PvguestHv, System::PvguestXen] {
        rows.add(image_row, size, sys, pv);
    }
    if let Some(l) = linux {
        rows.add(
            image_row,
            size,
            System::LinuxXen,
            len(&l.kernel)? + l.initramfs.len() as f64,
        );
    }
    rows.add(
        "hv core lines of code",
        || {
            Row::new(
                "size",
                "",
                "lines",
                Kind::Count,
                "hv/src without dom0/ and tests, no blank or comment lines",
            )
        },
        System::PvguestHv,
        core_lines(&workspace_root().join("hv").join("src"))? as f64,
    );
    Ok(())
}

/// hv's smallest domain (`hv/src/builder/layout.rs`'s floor, checked by `hv-run --config`).
const HV_MIN_MEMORY_MIB: u64 = super::hv::config::MIN_MEMORY_MIB;

/// The least `memory=` (MiB) of the application's domain on hv at which it still answers
/// `GET /`, bisected between 1 and 128 in hv's 2 MiB steps ([`HV_MIN_MEMORY_MIB`] means: at hv's smallest).
fn least_memory(hv: &Path, guest: &Path) -> Result<u64> {
    let answers = |mib: u64| -> bool {
        if mib < HV_MIN_MEMORY_MIB {
            println!("bench: memory={mib}: below hv's smallest domain ({HV_MIN_MEMORY_MIB} MiB)");
            return false;
        }
        let app = match HvApp::start(hv, guest, mib, "bench-hv-memory") {
            Ok(app) => app,
            Err(e) => {
                println!("bench: memory={mib}: not booted: {e:#}");
                return false;
            }
        };
        let ok = app.wait_answering().is_ok();
        let _ = app.stop();
        println!(
            "bench: memory={mib}: {}",
            if ok { "answers" } else { "does not answer" }
        );
        ok
    };
    let (mut lo, mut hi) = (1u64, 128u64);
    if !answers(hi) {
        bail!("the application does not answer with memory={hi}");
    }
    while hi - lo > 2 {
        // hv builds domains in 2 MiB steps.
        let mid = (lo + (hi - lo) / 2) & !1;
        if answers(mid) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Ok(hi)
}

/// dom0's address in the memory search: on `xenbr0` beside QEMU's user network, in a subnet
/// of its own, so dom0's own `wget` reaches the domain over its vif (QEMU's 10.0.2.0/24 is
/// left to the user network).
const SEARCH_DOM0_IP: &str = "10.0.9.1";
/// pvguest's address in the memory search.
const SEARCH_PVGUEST_IP: &str = "10.0.9.2";
/// The Linux domU's address in the memory search.
const SEARCH_LINUX_IP: &str = "10.0.9.3";

/// dom0's bisection: `search <cfg> <name> <ip> <lo> <hi>` prints the least MiB in `(lo, hi]`
/// at which the domain of `/pvxen/<cfg>` (its `memory = ` line replaced) answers `GET /` at
/// `<ip>` (busybox `wget` from dom0's [`SEARCH_DOM0_IP`]) within about two minutes, or `none`.
/// A domain that has shut down or crashed is given up on at once; each try prints a line on
/// dom0's console (in the boot's serial log).
const XEN_MEMORY_SEARCH: &str = "try() { sed \"s/^memory = .*/memory = $1/\" /pvxen/$cfg > /tmp/try.cfg; \
     if ! $XL create /tmp/try.cfg >/tmp/create.log 2>&1; then \
     echo \"bench memory search: $name at $1 MiB: xl create failed: $(grep -m 2 -i error /tmp/create.log)\" \
     > /dev/console; return 1; fi; ok=1; i=0; \
     while [ $i -lt 45 ]; do \
     if timeout 3 wget -q -O /dev/null http://$ip/ 2>/dev/null; then ok=0; break; fi; \
     st=$($XL list $name 2>/dev/null | awk 'NR==2{print $5}'); \
     case \"$st\" in ''|*s*|*c*) break;; esac; sleep 1; i=$((i+1)); done; \
     if [ $ok = 0 ]; then v=answers; else v=\"no answer (state '$st', ping: \
     $(ping -c 1 -W 1 $ip >/dev/null 2>&1 && echo yes || echo no); console: \
     $(tail -n 1 /var/log/xen/console/guest-$name.log 2>/dev/null))\"; fi; \
     echo \"bench memory search: $name at $1 MiB: $v\" > /dev/console; \
     $XL destroy $name >/dev/null 2>&1; sleep 1; return $ok; }; \
     search() { cfg=$1; name=$2; ip=$3; lo=$4; hi=$5; try $hi || { echo none; return; }; \
     while [ $((hi - lo)) -gt 1 ]; do mid=$(((lo + hi) / 2)); \
     if try $mid; then hi=$mid; else lo=$mid; fi; done; echo $hi; }";

/// A stock-Xen boot of the bench's own, driven by dom0 over `xenbr0`: `cargo xtask run`'s job
/// up to its create (the back ends, the archive in dom0's /tmp, the bridge), with pvguest's
/// `guest.cfg` for `cmdline`, and QEMU's devices (its user network, a fresh store disk named
/// `store_name` under `target/bench`).
pub(super) struct Dom0Boot {
    /// The job, to which the caller adds its steps and files.
    pub(super) job: crate::xen::job::Job,
    /// QEMU's device arguments.
    pub(super) devices: Vec<String>,
}

/// [`Dom0Boot`] for `cmdline`, with a fresh store `store_name`.
pub(super) fn dom0_boot(store_name: &str, cmdline: &str) -> Result<Dom0Boot> {
    use crate::xen::job::Step;
    use crate::xen::run as xrun;
    let dir = workspace_root().join("target").join("bench");
    std::fs::create_dir_all(&dir)?;
    let store = dir.join(store_name);
    let _ = std::fs::remove_file(&store);
    xrun::prepare_store(&store)?;
    let store = xrun::drive_path(&store)?;
    let site = crate::xen::blk::site_archive(&workspace_root().join("pvguest/site"), false)?;
    let mut archive = site.tar;
    archive.resize(
        archive.len().div_ceil(xrun::ARCHIVE_ROUND) * xrun::ARCHIVE_ROUND,
        0,
    );
    let mut job = xrun::job(archive, cmdline)?;
    let at = job
        .steps
        .iter()
        .position(|s| matches!(s, Step::Create { .. }))
        .context("run's job has no create step")?;
    job.steps.truncate(at);
    let devices = xrun::qemu_devices("user,id=net0".to_owned(), &store);
    Ok(Dom0Boot { job, devices })
}

/// Adds the Linux domU to `job`: `linux.cfg` (256 MiB, a vif on `xenbr0`, then the config
/// lines `more`) for `config`, its kernel and initramfs.
pub(super) fn add_linux(
    job: &mut crate::xen::job::Job,
    linux: &crate::linux_domu::LinuxDomU,
    config: &crate::linux_domu::Config,
    more: &str,
) -> Result<()> {
    let cfg = crate::linux_domu::xl_config(
        "linux",
        "/pvxen/linux.vmlinuz",
        "/pvxen/linux.cpio",
        config,
        256,
        &format!("vif = [ 'mac=00:16:3e:00:00:07,bridge=xenbr0' ]\n{more}"),
    );
    job.files.push(("linux.cfg".into(), cfg.into_bytes()));
    job.files.push((
        "linux.vmlinuz".into(),
        std::fs::read(&linux.kernel)
            .with_context(|| format!("reading {}", linux.kernel.display()))?,
    ));
    job.files
        .push(("linux.cpio".into(), linux.initramfs.clone()));
    Ok(())
}

/// The least `memory=` at which pvguest's application and the Linux domU answer on stock Xen,
/// bisected by dom0 in one boot of its own.
fn xen_least_memory(
    guest: &Path,
    image: &crate::xen::image::Image,
    linux: Option<&crate::linux_domu::LinuxDomU>,
) -> Result<Vec<(System, u64)>> {
    use crate::xen::job::Step;
    let Dom0Boot { mut job, devices } = dom0_boot(
        "xen-memory-store.img",
        &format!("ip={SEARCH_PVGUEST_IP}/24 gw={SEARCH_DOM0_IP}"),
    )?;
    let run = |key: &str, command: String| Step::Run {
        key: key.to_owned(),
        command,
    };
    job.steps.push(run(
        "memory-dom0-address",
        format!("ip addr add {SEARCH_DOM0_IP}/24 dev xenbr0 && echo ok"),
    ));
    job.steps.push(run(
        "memory-pvguest",
        format!("{XEN_MEMORY_SEARCH}; search guest.cfg pvguest {SEARCH_PVGUEST_IP} 1 128"),
    ));
    if let Some(linux) = linux {
        let config = crate::linux_domu::Config {
            ip: format!("{SEARCH_LINUX_IP}/24"),
            gateway: SEARCH_DOM0_IP.into(),
            port: 80,
            blobs: Vec::new(),
            blk_bench: None,
        };
        add_linux(&mut job, linux, &config, "")?;
        job.steps.push(run(
            "memory-linux",
            format!("{XEN_MEMORY_SEARCH}; search linux.cfg linux {SEARCH_LINUX_IP} 16 256"),
        ));
    }
    let timeout = Duration::from_secs(3600);
    let boot = crate::xen::qemu::Boot {
        image,
        overlay: crate::xen::overlay(guest, &job, timeout)?,
        run_dir: workspace_root()
            .join("target")
            .join("pvxen")
            .join("bench-xen-memory"),
        timeout,
        devices,
        stop: None,
    };
    println!("bench: stock Xen: dom0 bisects memory= for pvguest and Linux");
    let booted = crate::xen::qemu::boot(&boot, |_, _| {})?;
    let mut found = Vec::new();
    for (key, system) in [
        ("memory-pvguest", System::PvguestXen),
        ("memory-linux", System::LinuxXen),
    ] {
        let value = booted
            .transcript
            .results
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.trim().to_owned());
        match value.as_deref().map(str::parse::<u64>) {
            Some(Ok(mib)) => found.push((system, mib)),
            other => println!("bench: {key}: {other:?}"),
        }
    }
    Ok(found)
}

/// What the report says about where it ran.
fn header(plan: Plan, took: Duration) -> Vec<String> {
    let first = |cmd: &str, args: &[&str]| -> String {
        std::process::Command::new(cmd)
            .args(args)
            .output()
            .ok()
            .and_then(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .next()
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| format!("{cmd} did not answer"))
    };
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    vec![
        format!(
            "mode: {} ({} round(s), bulk {} MiB, {} + {} requests); took {:.0} s",
            if plan == QUICK { "--quick" } else { "full" },
            plan.rounds,
            plan.bulk_bytes >> 20,
            plan.requests_1,
            plan.requests_16,
            took.as_secs_f64()
        ),
        format!(
            "host: {cpu}, {cores} core(s) shared; {}",
            first("uname", &["-sr"])
        ),
        format!(
            "QEMU: {} with TCG (software emulation); hv: -cpu max -smp 1 -m 512; stock Xen 4.17 + Debian dom0: -cpu max -smp 2 -m 1024",
            first("qemu-system-x86_64", &["--version"])
        ),
        "client: xtask's http.rs on the host for every network row, through QEMU's user \
         network hostfwd (hv: into hv's switch; Xen: into dom0's bridge); no row is measured \
         from inside dom0"
            .to_owned(),
        "figures: median (min–max, n) of interleaved runs (hv, Xen, hv, Xen, ...); counts \
         exact; ratios of medians"
            .to_owned(),
    ]
}

/// Writes `target/bench/report.{md,json}` and `ratios.svg` and prints the table.
fn write_report(report: &Report) -> Result<PathBuf> {
    let dir = workspace_root().join("target").join("bench");
    std::fs::create_dir_all(&dir)?;
    let md = report.markdown();
    std::fs::write(dir.join("report.md"), &md)?;
    std::fs::write(dir.join("report.json"), report.json())?;
    std::fs::write(dir.join("ratios.svg"), report.svg())?;
    println!("{md}");
    println!(
        "bench: wrote {0}/report.md, {0}/report.json, {0}/ratios.svg",
        dir.display()
    );
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netback_snapshots_are_read_by_tag() {
        let log = "[ 3.1] hv: d1: netback vif0 at before-16: frames 100 exits 40 notifications 9\n\
                   [ 4.2] hv: d1: netback vif0 at after-16: frames 1100 exits 140 notifications 29\n";
        assert_eq!(
            netback_snapshot(log, "after-16"),
            Some(NetbackSnapshot {
                frames: 1100,
                exits: 140,
                notes: 29
            })
        );
        assert_eq!(
            netback_snapshot(log, "before-16").map(|s| s.frames),
            Some(100)
        );
        assert_eq!(netback_snapshot(log, "before-1"), None);
        assert_eq!(
            netback_snapshot("hv: d1: netback vif0 at x: frames y", "x"),
            None
        );
    }

    #[test]
    fn netback_lines_give_exits_and_notifications_per_frame() {
        let log = "[ 1.1] hv: d2: netback vif0 (x): ...; per frame: 0.48 exits, 0.16 notifications\n\
                   [ 15.17] hv: d1: netback vif0 (00:16:3e:00:00:03): tx 17462 frames ...; \
                   per frame: 0.16 exits, 0.14 notifications\n";
        assert_eq!(netback_per_frame(log), Some((0.16, 0.14)));
        assert_eq!(netback_per_frame("hv: d1: blkback"), None);
    }

    #[test]
    fn blkback_lines_give_exits_and_notifications_per_request() {
        let log = "[ 15.17] hv: d1: blkback xvda: 10 requests (10 reads, 0 writes, 0 flushes; \
                   10 sectors read, 0 written), 0 errors, 0 unsupported, 5 notifications sent, \
                   1 connects; 11 virtio-blk requests (0 flushes); requests found after 20 exits\n";
        assert_eq!(blkback_per_request(log), Some((2.0, 0.5)));
        assert_eq!(blkback_per_request("hv: d1: blkback xvda: flushes 1"), None);
    }

    #[test]
    fn code_lines_skip_blanks_comments_and_tests() {
        let text = "//! doc\nfn a() {}\n\n    // note\nlet x = 1;\n#[cfg(test)]\nmod tests {}\n";
        assert_eq!(count_code(text), 2);
    }

    #[test]
    fn runs_without_rounds_declare_none_of_their_rows() {
        for plan in [
            Plan { rounds: 0, ..FULL },
            Plan {
                rounds: 0,
                memory_search: false,
                ..FULL
            },
        ] {
            let mut rows = Rows(Vec::new());
            declare_rows(&mut rows, plan);
            assert!(rows.0.is_empty(), "{plan:?}");
        }
        let mut rows = Rows(Vec::new());
        declare_rows(&mut rows, QUICK);
        assert!(rows.0.iter().any(|r| r.name == "upload 2 MiB"));
    }

    #[test]
    fn bench_lines_fill_the_hypercall_rows() {
        let mut rows = Rows(Vec::new());
        declare_rows(&mut rows, QUICK);
        let lines: Vec<String> = [
            "BENCH blk-seq-read-qd1 8388608 1000000000",
            "BENCH blk-rand-read-4k 2048 500000000",
            "BENCH hypercall-xen-version-cycles 350",
            "BENCH hypercall-xen-version-ns 900",
            "BENCH hypercall-unassigned-cycles 300",
            "BENCH event-loopback-cycles 1200",
        ]
        .map(String::from)
        .to_vec();
        bench_lines(&mut rows, System::PvguestHv, &lines);
        let row = |name: &str| rows.0.iter().find(|r| r.name == name).unwrap().clone();
        assert_eq!(
            row("hypercall round trip (xen_version)")
                .summary(System::PvguestHv)
                .unwrap()
                .median,
            350.0
        );
        assert_eq!(
            row("event delivery (EVTCHNOP_send to own port → handler)")
                .summary(System::PvguestHv)
                .unwrap()
                .median,
            1200.0
        );
        assert_eq!(
            row("sequential read, 4 KiB requests, queue depth 1")
                .summary(System::PvguestHv)
                .unwrap()
                .median,
            8.388608
        );
        assert_eq!(
            row(RAND_ROW).summary(System::PvguestHv).unwrap().median,
            4096.0
        );
        // Declared rows without a number show as missing.
        assert!(!row("upload 2 MiB").complete());
    }

    #[test]
    fn the_xen_bench_step_is_one_job_line() {
        let step = crate::xen::job::Step::Run {
            key: "bench".into(),
            command: XEN_BENCH_STEP.into(),
        };
        let line = step.line().unwrap();
        assert!(
            !line.contains('\n') && line.contains("guest-bench.log"),
            "{line}"
        );
        for command in [
            XEN_LINUX_STEP.to_owned(),
            format!("{XEN_MEMORY_SEARCH}; search a b c 1 2"),
        ] {
            let step = crate::xen::job::Step::Run {
                key: "k".into(),
                command,
            };
            assert!(!step.line().unwrap().contains('\n'));
        }
    }
}
