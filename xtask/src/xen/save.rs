//! Save, restore and migration of the application on stock Xen (issue 31): steps of the device
//! boot's application run ([`steps`], judged by [`host_checks`]), each one of
//! `xtask/dom0/save-checks.sh` while a download from the guest's service, throttled so that it
//! spans the operation, runs across it:
//!
//! - `HOST xen-save-restore`: `xl save` to a file in dom0, then `xl restore`.
//! - `HOST xen-save-checkpoint`: `xl save -c` (the domain continues: a cancelled suspend).
//! - `HOST xen-migrate-localhost`: `xl migrate -s '' <domain> 'xl migrate-receive'` (xl runs the
//!   receiver itself, no ssh).
//!
//! Each passes when xl succeeded, the download's digest is the blob's, the service answers
//! after it with a larger uptime (the guest's clock continues), the key put before reads back,
//! its grants in use are not above their level before (blkback's persistent grants are granted
//! again as the disks are used) and its heap in use within [`HEAP_SLACK`] of it,
//! the domain id changed (restore, migration) or not (checkpoint), and the guest said how it
//! came back (`APP resumed in domain ...` or `APP suspend cancelled ...`). The line also gives
//! what the note reports: xl's times, the save file's size against the guest's memory, and the
//! longest wait of the client for the next piece of the download (the downtime it saw).
//!
//! Then the bad and partial cases ([`BAD_OPS`], judged by [`bad_verdict`], no download):
//!
//! - `HOST xen-save-refuse` (it waits out libxl's 60 s for an acknowledgement): the commit
//!   held for 14 s, past the guest's 10 s bound: the guest refuses (never acknowledges), libxl
//!   cancels ("guest didn't acknowledge suspend, cancelling request") and `xl save` fails; a
//!   later `xl save -c` works (the checkpoint's, next, when it runs); the put, whose writes
//!   were with the held disk at the service's storage deadline, was answered `202` (accepted,
//!   not done: it lands) and reads back.
//! - `HOST xen-save-put-during`: a put whose commit is held on the store's disk (its
//!   device-mapper target suspended for 3 s) while `xl save` asks: the guest defers the
//!   suspend until the commit is done, then suspends; the put answers 200 and reads back after
//!   `xl restore`.
//! - `HOST xen-save-boot-suspend`: `xl save` of a domain created paused, then unpaused: the
//!   guest sees the request at its first boot step, defers it until its service runs, then
//!   suspends; `xl restore` brings it back serving.
//! - `HOST xen-save-missing-backend`: `xl restore` with a config without `xvdb` (the restore
//!   of boot-suspend's save, when both run): the guest names the disk that did not come back,
//!   serves `/files/` from `xvda` and answers puts 503 with the reason; saved and restored with
//!   the whole config again, the store is back.
//!
//! # xl's monitor
//! In Xen 4.17, the `xl` process that monitors a domain (left behind by `xl create`,
//! `xl restore` or `xl migrate-receive`: it logs the shutdown reason that `run-job.sh` reads,
//! and builds the domain again on `xl reboot` with `on_reboot = "restart"`) exits at any
//! suspend, a cancelled one included: after `xl save -c` (checkpoint, and the refusal case's
//! later save) the same domain runs on with nobody to restart it (xl keeps monitoring only
//! from Xen 4.20). The steps therefore never end on one of [`UNMONITORED`]: a restore follows
//! (a new monitor), or [`steps`] adds `remonitor` (a save and restore for that alone); each
//! result line counts the monitors left, and the ops that make a new domain must leave one.
//!
//! Each result line gives the step's wall time (`step_ms`), printed with the total.
//!
//! The application runs with [`MEMORY_MIB`] of memory so that the save file and a second copy
//! (the migration's) fit beside dom0.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Result;
use sha2::{Digest, Sha256};

use super::blk::{self, GUEST_IP, harness_pattern, hex};
use super::console::Transcript;
use super::job::{Job, Step};
use crate::build::workspace_root;
use crate::tally::Tally;

/// The dom0 side of the checks.
pub const SAVE_CHECKS: &[u8] = include_bytes!("../../dom0/save-checks.sh");
/// The guest's memory in the application run, MiB.
pub const MEMORY_MIB: u64 = 32;
/// Bytes of the download (`save-checks.sh`'s `BLOB`): at its throttled 32 KiB/s it spans two
/// minutes of an operation (the verdict checks that it did, `spanned`).
pub const BLOB: usize = 4 << 20;
/// How far the heap in use may stand above its level before the operation, bytes: the new
/// xenstore connection and the devices' tables are allocated afresh (the old ones freed).
pub const HEAP_SLACK: u64 = 64 << 10;

/// What the steps add to the device boot's hard timeout (under TCG on a loaded host, `xl save`
/// and `xl restore` of 32 MiB took a minute each; the bad cases, 20-30 s each on a quiet host,
/// took up to 100 s each at a load of 13 on two cores).
pub const MARGIN: Duration = Duration::from_secs(900);

/// The operations: (the script's word, the `HOST` check's name); [`steps`] gives their order.
///
/// The migration goes first: xenconsoled logs the migrated domain as `<name>--incoming`, which
/// the job does not follow; the restored domain of a later operation logs under its name again,
/// so that the application's last lines (`APP stopped`, judged by `HOST xen-xl-shutdown`) are
/// seen, and the bad cases' guest lines.
pub const OPS: [(&str, &str); 3] = [
    ("migrate", "xen-migrate-localhost"),
    ("save-restore", "xen-save-restore"),
    ("checkpoint", "xen-save-checkpoint"),
];

/// The bad and partial cases (issue 31's item 4): (the script's word, the `HOST` check's
/// name, whether it runs unless `PVXEN_SAVE_OPS` names it). Each ends with the application
/// serving under its name. [`steps`] orders them with [`OPS`]: migrate, save-restore,
/// refuse (it waits out libxl's 60 s for an acknowledgement), checkpoint (the refusal's later
/// `xl save -c`), put-during (its restore gives the domain a monitor again after the
/// checkpoint, module docs), boot-suspend (its restore is missing-backend's first, without
/// `xvdb`), missing-backend.
pub const BAD_OPS: [(&str, &str, bool); 4] = [
    ("refuse", "xen-save-refuse", true),
    ("put-during", "xen-save-put-during", true),
    ("boot-suspend", "xen-save-boot-suspend", true),
    ("missing-backend", "xen-save-missing-backend", true),
];

/// The operations after which the same domain runs on without xl's monitor (module docs):
/// the refusal only when it makes its later `xl save -c` itself (no checkpoint after it).
pub const UNMONITORED: [&str; 2] = ["checkpoint", "refuse"];

/// `config` (an xl config of [`super::xl_config`]) with [`MEMORY_MIB`] of memory.
pub fn small(config: &str) -> String {
    config.replace("memory = 128\n", &format!("memory = {MEMORY_MIB}\n"))
}

/// Save and restore cycles in a row in `cargo xtask soak` (one in `test`).
pub const SOAK_CYCLES: u32 = 3;

/// What each save and restore cycle beyond the first adds to the device boot's hard timeout.
pub const CYCLE_MARGIN: Duration = Duration::from_secs(200);

/// The dom0 step's key of operation `op`'s `cycle` (1: the first, `save-<op>`).
fn key(op: &str, cycle: u32) -> String {
    if cycle <= 1 {
        format!("save-{op}")
    } else {
        format!("save-{op}-{cycle}")
    }
}

/// The steps, one per operation, run while the application serves; the save and restore
/// `cycles` times in a row (the soak's leak check).
pub fn steps(cycles: u32) -> Vec<Step> {
    steps_of(cycles, &wanted_or)
}

/// [`steps`] with the operations `wanted(op, default)` chooses.
fn steps_of(cycles: u32, wanted: &dyn Fn(&str, bool) -> bool) -> Vec<Step> {
    let on = |op: &str| {
        let default = BAD_OPS
            .iter()
            .find(|(o, _, _)| *o == op)
            .is_none_or(|(_, _, d)| *d);
        wanted(op, default)
    };
    let step = |op: &str, cycle: u32, arg: &str| Step::Run {
        key: key(op, cycle),
        command: format!("bash /pvxen/save-checks.sh {GUEST_IP} {op}{arg}"),
    };
    let mut steps = Vec::new();
    if on("migrate") {
        steps.push(step("migrate", 1, ""));
    }
    if on("save-restore") {
        for cycle in 1..=cycles.max(1) {
            steps.push(step("save-restore", cycle, ""));
        }
    }
    // The refusal's later `xl save -c` is the checkpoint's, when both run (after a restore:
    // its guest lines are in the log under the domain's name, not a migration's).
    if on("refuse") {
        let later = if on("checkpoint") {
            " later=checkpoint"
        } else {
            ""
        };
        steps.push(step("refuse", 1, later));
    }
    if on("checkpoint") {
        steps.push(step("checkpoint", 1, ""));
    }
    if on("put-during") {
        steps.push(step("put-during", 1, ""));
    }
    // boot-suspend restores without xvdb for missing-backend, which goes on from there.
    if on("boot-suspend") {
        let arg = if on("missing-backend") {
            " no-xvdb"
        } else {
            ""
        };
        steps.push(step("boot-suspend", 1, arg));
    }
    if on("missing-backend") {
        steps.push(step("missing-backend", 1, ""));
    }
    // Never ends on a domain without xl's monitor (module docs).
    let last = steps.last().and_then(|s| match s {
        Step::Run { command, .. } => command.split_whitespace().nth(3),
        _ => None,
    });
    if last.is_some_and(|op| UNMONITORED.contains(&op)) {
        steps.push(Step::Run {
            key: REMONITOR.to_owned(),
            command: format!("bash /pvxen/save-checks.sh {GUEST_IP} remonitor"),
        });
    }
    steps
}

/// The step that gives the domain a monitor again when the last operation left it without
/// one: its result is printed, not judged (`HOST xen-xl-reboot` after it would fail).
const REMONITOR: &str = "save-remonitor";

/// Whether `op` runs: all unless `PVXEN_SAVE_OPS` lists some (comma-separated, for running
/// one alone).
fn wanted(op: &str) -> bool {
    wanted_or(op, true)
}

/// Whether `op` runs: as `PVXEN_SAVE_OPS` lists, else `default`.
fn wanted_or(op: &str, default: bool) -> bool {
    match std::env::var("PVXEN_SAVE_OPS") {
        Ok(list) if !list.is_empty() => list.split(',').any(|o| o == op),
        _ => default,
    }
}

/// `xen-save-test`'s save and restore cycles: `PVXEN_SAVE_CYCLES` (as the soak's, to run its
/// leak check alone), else 1.
fn test_cycles() -> u32 {
    std::env::var("PVXEN_SAVE_CYCLES")
        .ok()
        .and_then(|c| c.parse().ok())
        .filter(|&c| (1..=10).contains(&c))
        .unwrap_or(1)
}

/// The files the steps need in `/pvxen/`.
pub fn files() -> Vec<(String, Vec<u8>)> {
    vec![("save-checks.sh".to_owned(), SAVE_CHECKS.to_vec())]
}

/// The words of a result line (`name=value`).
fn words(line: &str) -> BTreeMap<&str, &str> {
    line.split_whitespace()
        .filter_map(|w| w.split_once('='))
        .collect()
}

/// `a/b` as two numbers.
fn pair(v: Option<&&str>) -> Option<(u64, u64)> {
    let (a, b) = v?.split_once('/')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// The verdict on one operation's result line.
pub fn verdict(op: &str, line: &str, blob_sha: &str) -> Result<(), String> {
    let w = words(line);
    let get = |k: &str| w.get(k).copied().unwrap_or("");
    let mut wrong = Vec::new();
    if get("rc") != "0" {
        wrong.push(format!("xl answered {} ({})", get("rc"), get("xl")));
    }
    // The download was still under way when xl was done: it spanned the operation.
    let spanned = get("spanned").parse::<usize>().ok();
    if !spanned.is_some_and(|n| n > 0 && n < BLOB) {
        wrong.push(format!(
            "the download did not span the operation: {} of {BLOB} bytes when xl was done",
            get("spanned")
        ));
    }
    if get("dl") != blob_sha || get("bytes") != BLOB.to_string() {
        wrong.push(format!(
            "the download gave {} bytes with sha256 {}, not the blob's {BLOB} with {blob_sha}",
            get("bytes"),
            get("dl")
        ));
    }
    match pair(w.get("uptime")) {
        Some((before, after)) if after > before => {}
        _ => wrong.push(format!("uptime before/after {}", get("uptime"))),
    }
    // Not more than before: a grant of the old connection left behind would show here (the
    // persistent-grant pool of a disk may hold fewer after the resume, until it fills again).
    match pair(w.get("grants")) {
        Some((before, after)) if after <= before => {}
        _ => wrong.push(format!("grants in use before/after {}", get("grants"))),
    }
    match pair(w.get("heap")) {
        Some((before, after)) if after <= before + HEAP_SLACK => {}
        _ => wrong.push(format!("heap in use before/after {}", get("heap"))),
    }
    let kept = format!("kept-across-{op}");
    if get("put") != "200" || get("kv") != kept {
        wrong.push(format!(
            "put {} then read back {:?}, expected 200 and {kept:?}",
            get("put"),
            get("kv")
        ));
    }
    if op != "checkpoint" {
        monitored(&w, &mut wrong);
    }
    let (before, after) = get("domid").split_once('/').unwrap_or(("", "?"));
    let resumed = get("resumed");
    if op == "checkpoint" {
        if before != after || !resumed.starts_with("APP_suspend_cancelled") {
            wrong.push(format!(
                "a checkpoint continues the same domain: domid {before}/{after}, guest said {resumed}"
            ));
        }
    } else if before == after || before.is_empty() || !resumed.starts_with("APP_resumed") {
        wrong.push(format!(
            "a new domain expected: domid {before}/{after}, guest said {resumed}"
        ));
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(format!("{}: {line}", wrong.join("; ")))
    }
}

/// A new domain has xl's monitor (module docs): `monitors` is at least 1.
fn monitored(w: &BTreeMap<&str, &str>, wrong: &mut Vec<String>) {
    let n = w.get("monitors").and_then(|n| n.parse::<u32>().ok());
    if n.is_none_or(|n| n < 1) {
        wrong.push(format!(
            "no xl monitor left for the new domain (monitors={})",
            w.get("monitors").copied().unwrap_or("")
        ));
    }
}

/// Whether `lines` (the guest's, `|`-joined, spaces as `_`) hold lines starting with each of
/// `wanted`, in this order.
fn in_order(lines: &str, wanted: &[&str]) -> Result<(), String> {
    let mut rest = lines.split('|');
    for w in wanted {
        if !rest.any(|l| l.starts_with(w)) {
            return Err(format!(
                "the guest did not say {w:?} (in this order: {wanted:?})"
            ));
        }
    }
    Ok(())
}

/// The verdict on a bad or partial case's result line ([`BAD_OPS`]); for the refusal,
/// `later` is the checkpoint's line when that is its later save (judged with `blob_sha`).
pub fn bad_verdict(
    op: &str,
    line: &str,
    later: Option<&str>,
    blob_sha: &str,
) -> Result<(), String> {
    let w = words(line);
    let get = |k: &str| w.get(k).copied().unwrap_or("");
    let guest = get("guest");
    let mut wrong = Vec::new();
    let mut want = |ok: bool, what: String| {
        if !ok {
            wrong.push(what);
        }
    };
    let deferred_then_done = |why: &str| {
        [
            format!("APP_suspend_deferred:_{why}"),
            "APP_suspend_going_ahead_after_".to_owned(),
            "APP_suspending_".to_owned(),
            "APP_resumed_in_domain_".to_owned(),
        ]
    };
    let check = |wanted: &[String]| {
        let wanted: Vec<&str> = wanted.iter().map(String::as_str).collect();
        in_order(guest, &wanted)
    };
    match op {
        "boot-suspend" => {
            want(get("rc") == "0", format!("xl save answered {}", get("rc")));
            want(
                get("rc2") == "0",
                format!("xl restore answered {}", get("rc2")),
            );
            let mut lines = deferred_then_done("booting").to_vec();
            lines.insert(1, "APP_serving".to_owned());
            if let Err(e) = check(&lines) {
                want(false, e);
            }
        }
        "put-during" => {
            want(get("rc") == "0", format!("xl save answered {}", get("rc")));
            want(
                get("rc2") == "0",
                format!("xl restore answered {}", get("rc2")),
            );
            want(
                get("put") == "200" && get("kv") == "held-across-put-during",
                format!("put {} then read back {:?}", get("put"), get("kv")),
            );
            if let Err(e) = check(&deferred_then_done("a_store_write_in_flight")) {
                want(false, e);
            }
        }
        "refuse" => {
            // The later `xl save -c`: its own (rc2, and the guest's lines after the refusal),
            // or the checkpoint's next (`rc2=next`): a checkpoint that passes on its own.
            let own = get("rc2") != "next";
            want(
                get("rc") != "0" && get("xl").contains("didn't_acknowledge_suspend"),
                format!(
                    "xl save should fail with libxl's cancel: rc {} xl {}",
                    get("rc"),
                    get("xl")
                ),
            );
            if own {
                want(
                    get("rc2") == "0",
                    format!("the later xl save -c answered {}", get("rc2")),
                );
            } else {
                let checkpoint = later.map(|l| verdict("checkpoint", l, blob_sha));
                want(
                    matches!(checkpoint, Some(Ok(()))),
                    format!("the later xl save -c (the checkpoint's): {checkpoint:?}"),
                );
            }
            // Its writes were with the held disk at the storage deadline: accepted (202),
            // not refused (503), and it lands.
            want(
                get("put") == "202" && get("kv") == "held-across-refuse",
                format!(
                    "the held put answered {} (202 expected) and read back {:?}",
                    get("put"),
                    get("kv")
                ),
            );
            let mut lines = vec![
                "APP_suspend_deferred:_a_store_write_in_flight".to_owned(),
                "APP_suspend_refused_after_".to_owned(),
            ];
            if own {
                lines.extend([
                    "APP_suspending_".to_owned(),
                    "APP_suspend_cancelled_after_".to_owned(),
                ]);
            }
            if let Err(e) = check(&lines) {
                want(false, e);
            }
        }
        "missing-backend" => {
            want(
                get("rc") == "0",
                format!("xl save/restore answered {}", get("rc")),
            );
            want(
                get("rc2") == "0",
                format!("the save/restore with xvdb again answered {}", get("rc2")),
            );
            want(
                get("files").parse::<u64>().is_ok_and(|n| n > 0),
                format!("GET /files/index.html gave {} bytes", get("files")),
            );
            want(
                get("put") == "503/200" && get("why").contains("xvdb"),
                format!(
                    "puts without xvdb then with it: {} (why {:?}), expected 503/200",
                    get("put"),
                    get("why")
                ),
            );
            want(
                get("kv") == "after-xvdb-came-back",
                format!("read back {:?}", get("kv")),
            );
            let lines = [
                "APP_warning_resume:_xvdb_(the_store)_did_not_come_back",
                "APP_resumed_in_domain_",
                "APP_resumed_in_domain_",
            ];
            if let Err(e) = in_order(guest, &lines) {
                want(false, e);
            }
            want(
                guest.contains("xvdb_error") && guest.contains("xvdb_ok"),
                "the resumed lines should say xvdb error, then xvdb ok".to_owned(),
            );
        }
        other => want(false, format!("no verdict for {other}")),
    }
    want(
        get("serving") == "ok",
        "the service did not answer after it".to_owned(),
    );
    if op != "refuse" {
        monitored(&w, &mut wrong);
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(format!("{}: {line}", wrong.join("; ")))
    }
}

/// One `HOST` line per operation: (passed, line); and what the note reports, printed. With
/// `cycles` save and restore cycles, one line for each beyond the first
/// (`xen-save-restore-<n>`) and `xen-save-restore-cycles`: grants and heap after the last
/// not above their level before the first (the leak a single cycle's slack could hide).
pub fn host_checks(t: &Transcript, cycles: u32) -> Vec<(bool, String)> {
    print_times(t, cycles);
    if let Some(line) = t.result(REMONITOR) {
        println!("xen: save remonitor: {line}");
    }
    let blob: Vec<u8> = (0..BLOB).map(harness_pattern).collect();
    let blob_sha = hex(&Sha256::digest(&blob));
    let mut runs: Vec<(&str, u32, String)> = OPS
        .iter()
        .filter(|(op, _)| wanted(op))
        .map(|(op, name)| (*op, 1, (*name).to_owned()))
        .collect();
    if wanted("save-restore") {
        for cycle in 2..=cycles {
            runs.push(("save-restore", cycle, format!("xen-save-restore-{cycle}")));
        }
    }
    let mut checks: Vec<(bool, String)> = runs
        .iter()
        .map(|(op, cycle, name)| {
            let result = t.result(&key(op, *cycle));
            if let Some(line) = result {
                println!("xen: save {op}: {line}");
                let w = words(line);
                if let Some(size) = w.get("size").and_then(|s| s.parse::<u64>().ok()) {
                    println!(
                        "xen: save {op}: save file {size} bytes for {MEMORY_MIB} MiB of memory ({:.2}x)",
                        size as f64 / (MEMORY_MIB << 20) as f64
                    );
                }
            }
            let v = match result {
                Some(line) => verdict(op, line, &blob_sha),
                None => Err(format!("dom0 gave no `{}`", key(op, *cycle))),
            };
            match v {
                Ok(()) => (true, format!("HOST {name} ok")),
                Err(why) => (false, format!("HOST {name} FAIL {why}")),
            }
        })
        .collect();
    for (op, name, default) in BAD_OPS {
        if !wanted_or(op, default) {
            continue;
        }
        let result = t.result(&key(op, 1));
        if let Some(line) = result {
            println!("xen: save {op}: {line}");
        }
        let later = t.result(&key("checkpoint", 1));
        let v = match result {
            Some(line) => bad_verdict(op, line, later, &blob_sha),
            None => Err(format!("dom0 gave no `{}`", key(op, 1))),
        };
        checks.push(match v {
            Ok(()) => (true, format!("HOST {name} ok")),
            Err(why) => (false, format!("HOST {name} FAIL {why}")),
        });
    }
    if cycles > 1 && wanted("save-restore") {
        let lines: Vec<Option<&str>> = (1..=cycles)
            .map(|c| t.result(&key("save-restore", c)))
            .collect();
        let v = cycles_verdict(&lines);
        checks.push(match v {
            Ok(()) => (true, "HOST xen-save-restore-cycles ok".to_owned()),
            Err(why) => (false, format!("HOST xen-save-restore-cycles FAIL {why}")),
        });
    }
    checks
}

/// Each save step's wall time in dom0 (`step_ms` of its result line) and their sum, printed:
/// what the save part adds to the device boot.
fn print_times(t: &Transcript, cycles: u32) {
    let mut total = 0;
    let mut each = Vec::new();
    for step in steps(cycles) {
        let Step::Run { key, .. } = step else {
            continue;
        };
        let ms = t
            .result(&key)
            .and_then(|line| words(line).get("step_ms")?.parse::<u64>().ok());
        match ms {
            Some(ms) => {
                total += ms;
                each.push(format!(
                    "{} {:.1} s",
                    key.trim_start_matches("save-"),
                    ms as f64 / 1000.0
                ));
            }
            None => each.push(format!("{} ?", key.trim_start_matches("save-"))),
        }
    }
    println!(
        "xen: save steps took {:.1} s: {}",
        total as f64 / 1000.0,
        each.join(", ")
    );
}

/// The save and restore cycles in a row, each its result line: grants in use after the last
/// not above their level before the first, the heap in use within [`HEAP_SLACK`] of it.
fn cycles_verdict(lines: &[Option<&str>]) -> Result<(), String> {
    let (Some(Some(first)), Some(Some(last))) = (lines.first(), lines.last()) else {
        return Err(format!("{} cycles, not all gave a result", lines.len()));
    };
    let (first, last) = (words(first), words(last));
    let grants = (pair(first.get("grants")), pair(last.get("grants")));
    let heap = (pair(first.get("heap")), pair(last.get("heap")));
    match (grants, heap) {
        ((Some((g0, _)), Some((_, g1))), (Some((h0, _)), Some((_, h1))))
            if g1 <= g0 && h1 <= h0 + HEAP_SLACK =>
        {
            Ok(())
        }
        _ => Err(format!(
            "after {} cycles: grants in use {:?} -> {:?}, heap {:?} -> {:?} (before the first, \
             after the last)",
            lines.len(),
            grants.0,
            grants.1,
            heap.0,
            heap.1
        )),
    }
}

/// `cargo xtask xen-save-test`: the application alone on stock Xen with its disks and vif,
/// [`steps`] while it serves, then `xl shutdown` (the device boot runs the same steps in its
/// application run; this is the quick way to run them alone).
pub fn save_test(tally: &mut Tally) -> Result<()> {
    let guest = super::guest_elf()?;
    let image = super::image::ensure_image()?;
    let site = blk::site_archive(&workspace_root().join("pvguest").join("site"), true)?;
    let mut xvda = site.tar;
    xvda.resize(blk::XVDA_BYTES, 0);
    let run = |key: &str, command: &str| Step::Run {
        key: key.to_owned(),
        command: command.to_owned(),
    };
    let mut steps = blk::disk_prep_steps();
    steps.extend([
        run("net", &blk::net_setup()),
        // As in the device boot, the disks are block devices (loop devices, so that the block
        // hotplug script has no file to set up), the store's through a device-mapper target
        // (`pvstore`) that the put-during and refuse cases suspend to hold a commit.
        run(
            "loops",
            "losetup /dev/loop5 /tmp/xvda.img && losetup /dev/loop6 /tmp/xvdb.img && \
             modprobe dm-mod && dmsetup create pvstore --noudevsync --verifyudev \
             --table \"0 $(blockdev --getsz /dev/loop6) linear /dev/loop6 0\" && echo ok",
        ),
        Step::Create {
            config: "guest.cfg".into(),
            paused: false,
        },
        Step::WaitLine("APP serving".into()),
        // What the device boot's network checks do before its save steps: the service's
        // first requests allocate what it keeps (buffers, the store's index), so that the
        // first operation's heap before is the level it serves at (a migration first right
        // after the boot otherwise stood 66 KB above it, past HEAP_SLACK).
        run(
            "warm",
            &format!(
                "wget -q -O /dev/null http://{ip}/blob/1048576 && wget -q -O /dev/null \
                 http://{ip}/files/index.html && printf 'PUT /kv/warm HTTP/1.0\\r\\n\
                 Content-Length: 4\\r\\n\\r\\nwarm' | nc -w 10 {ip} 80 | head -n 1",
                ip = GUEST_IP
            ),
        ),
    ]);
    let cycles = test_cycles();
    steps.extend(self::steps(cycles));
    steps.push(run(
        "app-shutdown",
        "$XL shutdown $NAME >/dev/null 2>&1 && echo ok",
    ));
    steps.push(Step::WaitEnd);
    steps.push(Step::Destroy);
    let devices = format!(
        "disk = [ 'format=raw, vdev=xvda, access=ro, target=/dev/loop5',\n\
         \x20        'format=raw, vdev=xvdb, access=rw, target=/dev/mapper/pvstore' ]\n\
         vif = [ 'mac={},bridge=xenbr0' ]\n",
        blk::GUEST_MAC
    );
    let config = small(&super::xl_config(&blk::app_cmdline(), &devices)?);
    let mut files = files();
    files.push(("xvda.img".to_owned(), xvda));
    let job = Job::with_steps(config, steps, files)?;
    let timeout = super::hard_timeout(Duration::from_secs(1200) + CYCLE_MARGIN * (cycles - 1))?;
    let booted = super::boot_job(
        &image,
        &guest,
        &job,
        "save",
        timeout,
        Duration::from_secs(300),
        |_| {},
    )?;
    let t = &booted.transcript;
    for line in t.guest.iter().filter(|l| l.starts_with("APP ")) {
        println!("xen| {line}");
    }
    let mut all_ok = true;
    for (ok, line) in host_checks(t, cycles) {
        println!("{line}");
        tally.record(ok, line);
        all_ok &= ok;
    }
    if !all_ok {
        super::explain_failure(&booted);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(op: &str, domid: &str, resumed: &str) -> String {
        format!(
            "op={op} rc=0 op_ms=4000 restore_ms=3000 size=34000000 dl=abc bytes={BLOB} \
             gap_ms=5000 dl_ms=30000 uptime=1000/9000 grants=300/300 heap=50000/50100 \
             put=200 kv=kept-across-{op} domid={domid} resumed={resumed} xl=- spanned=600000 \
             monitors=1 \
             step_ms=30000"
        )
    }

    #[test]
    fn each_operation_is_judged_on_its_evidence() {
        let ok = line("save-restore", "3/4", "APP_resumed_in_domain_4");
        assert_eq!(verdict("save-restore", &ok, "abc"), Ok(()));
        assert!(verdict("save-restore", &ok, "abd").is_err(), "digest");
        let same = line("save-restore", "3/3", "APP_resumed_in_domain_3");
        assert!(
            verdict("save-restore", &same, "abc").is_err(),
            "same domain"
        );
        let cp = line("checkpoint", "3/3", "APP_suspend_cancelled_after_9_ms");
        assert_eq!(verdict("checkpoint", &cp, "abc"), Ok(()));
        let moved = line("checkpoint", "3/4", "APP_suspend_cancelled_after_9_ms");
        assert!(verdict("checkpoint", &moved, "abc").is_err());
        for (from, to) in [
            ("grants=300/300", "grants=300/301"),
            ("uptime=1000/9000", "uptime=9000/1000"),
            ("heap=50000/50100", "heap=50000/200000"),
            ("kv=kept-across-migrate", "kv="),
            ("rc=0", "rc=1"),
            ("monitors=1", "monitors=0"),
            ("spanned=600000", &format!("spanned={BLOB}")),
            ("spanned=600000", "spanned=-"),
        ] {
            let bad = line("migrate", "3/4", "APP_resumed").replace(from, to);
            assert!(verdict("migrate", &bad, "abc").is_err(), "{to}");
        }
        assert_eq!(
            verdict("migrate", &line("migrate", "3/4", "APP_resumed"), "abc"),
            Ok(())
        );
    }

    /// A slow leak that each cycle's slack lets pass is caught across the cycles.
    #[test]
    fn cycles_in_a_row_keep_their_level() {
        let cycle = |heap: &str| {
            line("save-restore", "3/4", "APP_resumed").replace("heap=50000/50100", heap)
        };
        let (a, b, c) = (
            cycle("heap=50000/90000"),
            cycle("heap=90000/130000"),
            cycle("heap=130000/170000"),
        );
        for l in [&a, &b, &c] {
            assert_eq!(
                verdict("save-restore", l, "abc"),
                Ok(()),
                "each alone passes"
            );
        }
        assert!(cycles_verdict(&[Some(&a), Some(&b), Some(&c)]).is_err());
        let flat = cycle("heap=50000/50100");
        assert_eq!(
            cycles_verdict(&[Some(&flat), Some(&flat), Some(&flat)]),
            Ok(())
        );
        assert!(cycles_verdict(&[Some(&flat), None, Some(&flat)]).is_ok());
        assert!(cycles_verdict(&[Some(&flat), Some(&flat), None]).is_err());
        let grants = flat.replace("grants=300/300", "grants=300/301");
        assert!(cycles_verdict(&[Some(&flat), Some(&grants)]).is_err());
        assert_eq!(key("save-restore", 1), "save-save-restore");
        assert_eq!(key("save-restore", 3), "save-save-restore-3");
        let keys: Vec<String> = steps(3)
            .into_iter()
            .filter_map(|s| match s {
                Step::Run { key, .. } => Some(key),
                _ => None,
            })
            .collect();
        assert_eq!(
            keys,
            [
                "save-migrate",
                "save-save-restore",
                "save-save-restore-2",
                "save-save-restore-3",
                "save-refuse",
                "save-checkpoint",
                "save-put-during",
                "save-boot-suspend",
                "save-missing-backend"
            ]
        );
    }

    /// The default steps never end on an operation that leaves the domain without xl's
    /// monitor, and boot-suspend hands missing-backend its restore without xvdb.
    #[test]
    fn the_steps_end_on_a_monitored_domain() {
        let commands: Vec<String> = steps(1)
            .into_iter()
            .filter_map(|s| match s {
                Step::Run { command, .. } => Some(command),
                _ => None,
            })
            .collect();
        let op = |c: &String| c.split_whitespace().nth(3).unwrap_or("").to_owned();
        let last = commands.last().map(op).unwrap_or_default();
        assert!(!UNMONITORED.contains(&last.as_str()), "{last}");
        // The refusal's later save is the checkpoint's, next; put-during's restore follows it.
        let refuse = commands.iter().position(|c| op(c) == "refuse").unwrap();
        assert!(commands[refuse].ends_with("refuse later=checkpoint"));
        assert_eq!(op(&commands[refuse + 1]), "checkpoint");
        assert_eq!(op(&commands[refuse + 2]), "put-during");
        assert!(commands.iter().any(|c| c.ends_with("boot-suspend no-xvdb")));
        // Chosen alone, either leaves the domain unmonitored: remonitor follows. And
        // boot-suspend without missing-backend restores with the whole config.
        for alone in UNMONITORED {
            let steps = steps_of(1, &|op, _| op == alone);
            let keys: Vec<String> = steps
                .iter()
                .filter_map(|s| match s {
                    Step::Run { key, command } => {
                        assert!(!command.contains("no-xvdb"));
                        Some(key.clone())
                    }
                    _ => None,
                })
                .collect();
            assert_eq!(keys, [key(alone, 1), REMONITOR.to_owned()]);
        }
        let boot = steps_of(1, &|op, _| op == "boot-suspend");
        assert!(
            matches!(&boot[..], [Step::Run { command, .. }] if command.ends_with("boot-suspend"))
        );
    }

    #[test]
    fn each_bad_case_is_judged_on_both_sides() {
        let boot = "op=boot-suspend rc=0 rc2=0 op_ms=9000 put=- kv=- serving=ok \
                    guest=APP_suspend_deferred:_booting_(connecting_the_vif)|APP_serving_x|\
                    APP_suspend_going_ahead_after_700_ms_deferred|APP_suspending_0|\
                    APP_resumed_in_domain_5_after_3_ms xl=- monitors=1";
        assert_eq!(bad_verdict("boot-suspend", boot, None, "abc"), Ok(()));
        // Not deferred (suspended before serving), or never resumed: fails.
        let early = boot.replace("APP_serving_x|", "");
        assert!(bad_verdict("boot-suspend", &early, None, "abc").is_err());
        assert!(bad_verdict("boot-suspend", &boot.replace("rc2=0", "rc2=1"), None, "abc").is_err());
        let put = "op=put-during rc=0 rc2=0 op_ms=9000 put=200 kv=held-across-put-during \
                   serving=ok guest=APP_suspend_deferred:_a_store_write_in_flight|\
                   APP_suspend_going_ahead_after_2000_ms_deferred|APP_suspending_0|\
                   APP_resumed_in_domain_6 xl=- monitors=1";
        assert_eq!(bad_verdict("put-during", put, None, "abc"), Ok(()));
        assert!(
            bad_verdict(
                "put-during",
                &put.replace("kv=held", "kv=lost"),
                None,
                "abc"
            )
            .is_err()
        );
        let undeferred = put.replace("APP_suspend_deferred:_a_store_write_in_flight|", "");
        assert!(bad_verdict("put-during", &undeferred, None, "abc").is_err());
        let unmonitored = put.replace("monitors=1", "monitors=0");
        assert!(bad_verdict("put-during", &unmonitored, None, "abc").is_err());
        let refuse = "op=refuse rc=1 rc2=0 op_ms=61000 put=202 kv=held-across-refuse \
                      serving=ok guest=APP_suspend_deferred:_a_store_write_in_flight|\
                      APP_suspend_refused_after_10000_ms|APP_suspending_0|\
                      APP_suspend_cancelled_after_9_ms \
                      xl=libxl:_error:_guest_didn't_acknowledge_suspend,_cancelling_request|";
        assert_eq!(bad_verdict("refuse", refuse, None, "abc"), Ok(()));
        assert!(bad_verdict("refuse", &refuse.replace("rc=1", "rc=0"), None, "abc").is_err());
        assert!(
            bad_verdict(
                "refuse",
                &refuse.replace("didn't_acknowledge", "x"),
                None,
                "abc"
            )
            .is_err()
        );
        assert!(bad_verdict("refuse", &refuse.replace("put=202", "put=503"), None, "abc").is_err());
        // Its later save the checkpoint's, next: judged by the checkpoint's line.
        let shared = refuse
            .replace("rc2=0", "rc2=next")
            .replace("|APP_suspending_0|APP_suspend_cancelled_after_9_ms", "");
        let cp = line("checkpoint", "3/3", "APP_suspend_cancelled_after_9_ms");
        assert_eq!(bad_verdict("refuse", &shared, Some(&cp), "abc"), Ok(()));
        assert!(bad_verdict("refuse", &shared, None, "abc").is_err());
        let failed = cp.replace("rc=0", "rc=1");
        assert!(bad_verdict("refuse", &shared, Some(&failed), "abc").is_err());
        let missing = "op=missing-backend rc=0 rc2=0 op_ms=7000 put=503/200 files=900 \
                       why=the_store's_disk_(xvdb)_is_missing kv=after-xvdb-came-back \
                       serving=ok guest=APP_suspending_0|APP_warning_resume:_xvdb_(the_store)\
                       _did_not_come_back:_x|APP_resumed_in_domain_7:_vif_ok,_xvdb_error|\
                       APP_suspending_0|APP_resumed_in_domain_8:_vif_ok,_xvdb_ok xl=- monitors=1";
        assert_eq!(bad_verdict("missing-backend", missing, None, "abc"), Ok(()));
        assert!(
            bad_verdict(
                "missing-backend",
                &missing.replace("503/200", "200/200"),
                None,
                "abc"
            )
            .is_err()
        );
        assert!(
            bad_verdict(
                "missing-backend",
                &missing.replace("files=900", "files=0"),
                None,
                "abc"
            )
            .is_err()
        );
        assert!(
            bad_verdict(
                "missing-backend",
                &missing.replace("serving=ok", "serving=none"),
                None,
                "abc"
            )
            .is_err()
        );
    }

    #[test]
    fn the_guest_is_made_small() {
        let config = super::super::xl_config("ip=dhcp", "").unwrap();
        assert!(small(&config).contains(&format!("memory = {MEMORY_MIB}\n")));
    }
}
