//! The `hostile` group on hv (issue 23): [`boots`] runs it twice.
//!
//! 1. The compared boot: one domain with [`crate::xen::hostile::CMDLINE`], the command line
//!    stock Xen's platform boot runs it with; each `TEST` line a unit (`hv hostile: ...`),
//!    the run judged as `HOST hv-hostile-run`, and its `TEST`/`FACT` lines returned for `HOST
//!    same-hostile-<class>`.
//! 2. Isolation under attack: a domain archive of three domains, the attacker ([`ATTACKER`],
//!    the group with [`TEST_CALLS`] calls, or [`SOAK_CALLS`] in `soak`), a victim running
//!    `platform` between two runs of `canary` (a page filled, then checked every 100 ms for
//!    long enough to outlast the attack) and a guest spinning 5 s with interrupts off. hv logs
//!    the host frame behind the victim's canary at build; xtask learns it from a first boot
//!    of the same archive, killed once hv printed it (hv's allocation is deterministic for
//!    the same configs, hv and module: the attacker's command line carries the frame in a
//!    fixed width, so the archive keeps its size), and passes it to the attacker
//!    (`hostile-canary=`, `hostile-victim=`), which aims every frame-taking call at it.
//!    `HOST hv-isolation`: QEMU exit 33, every domain powered off with all its tests passed
//!    (the victim's `canary-intact` and the attacker's `hostile-canary-unread` among them),
//!    the canary at the same host frame as in the first boot, and the victim's last check
//!    after the attacker's end. `HOST hv-hostile`: the attacker's calls and calls per
//!    second.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::serial::{self, EXIT_POWEROFF, Expect, Line, QemuEnd};
use super::{Module, boot_with, config, explain_failure, qemu, record_prefixed, run_dir};
use crate::tally::Tally;

/// The attacker's calls in `cargo xtask test` (`hv-test`).
pub const TEST_CALLS: u64 = 100_000;
/// The attacker's calls in `cargo xtask soak`.
pub const SOAK_CALLS: u64 = 1_000_000;
/// The attacker's name (domain 1).
const ATTACKER: &str = "hostile";
/// The victim's name (domain 2).
const VICTIM: &str = "victim";
/// The victim's id: the second config.
const VICTIM_ID: u16 = 2;
/// The spinner's name (domain 3).
const SPINNER: &str = "hostile-spinner";
/// The victim's canary page: near the top of its 128 MiB, where its allocator never reaches.
const CANARY_GFN: u64 = 0x7e00;
/// The seed of the isolation boot's attacker.
const SEED: u64 = 23;
/// How many calls per second the victim's canary check allows the attacker (with two other
/// domains sharing the CPU), and the margin in seconds. The attacker made 10,700 calls/s on
/// a quiet machine and 3,495 on a loaded one: the soak's 10^6 calls allow half the floor
/// (about 8 minutes), so that a loaded machine does not end the victim's check before the
/// attack.
const CALLS_PER_SEC_FLOOR: u64 = 4_000;
const CANARY_MARGIN_SECS: u64 = 10;

/// Both boots; returns the compared boot's `TEST` and `FACT` lines. Harness errors count as
/// one failed unit each.
pub fn boots(tally: &mut Tally, hv: &Path, guest: &Path, timeout: Duration) -> Vec<String> {
    let lines = compared_boot(tally, hv, guest, timeout).unwrap_or_else(|e| {
        println!("hv-test: hostile boot: harness error: {e:#}");
        tally.fail("hv hostile boot");
        Vec::new()
    });
    if let Err(e) = isolation(tally, hv, guest, TEST_CALLS) {
        println!("hv-test: isolation boot: harness error: {e:#}");
        tally.fail("hv isolation boot");
    }
    lines
}

/// The compared boot (see the module docs).
fn compared_boot(
    tally: &mut Tally,
    hv: &Path,
    guest: &Path,
    timeout: Duration,
) -> Result<Vec<String>> {
    let options = format!(
        "{} {}",
        super::HV_OPTIONS,
        crate::xen::hostile::hv_options()
    );
    let booted = boot_with(
        "hv-test",
        hv,
        Module::Elf(guest, crate::xen::hostile::CMDLINE),
        "hv-hostile",
        timeout,
        (options.trim(), None),
        |_| {},
    )?;
    let mut verdict = serial::judge_selftest(&booted.transcript, &booted.end);
    for (_, line) in &mut verdict.host {
        *line = line.replacen("HOST hv-run", "HOST hv-hostile-run", 1);
    }
    record_prefixed(tally, "hostile", &verdict, &booted);
    Ok(verdict
        .shown
        .into_iter()
        .filter(|l| l.starts_with("TEST ") || l.starts_with("FACT "))
        .collect())
}

/// The three domains' command lines, the attacker's with `canary` (host frame) in a fixed
/// width.
fn cmdlines(calls: u64, canary: u64) -> [(&'static str, String); 3] {
    let floor = if calls > TEST_CALLS {
        CALLS_PER_SEC_FLOOR / 2
    } else {
        CALLS_PER_SEC_FLOOR
    };
    let canary_secs = calls / floor + CANARY_MARGIN_SECS;
    [
        (
            ATTACKER,
            format!(
                "selftest=hostile hostile-seed={SEED} hostile-calls={calls} \
                 hostile-canary={canary:#012x} hostile-victim={VICTIM_ID}"
            ),
        ),
        (
            VICTIM,
            format!(
                "selftest=canary,platform,canary canary-gfn={CANARY_GFN:#x} \
                 canary-secs={canary_secs}"
            ),
        ),
        (SPINNER, "selftest=spin spin-secs=5".to_owned()),
    ]
}

/// Writes the configs and the archive into `dir`; the archive's path.
fn write_archive(dir: &Path, guest: &Path, calls: u64, canary: u64) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let kernel = std::path::absolute(guest)?;
    let kernel = kernel
        .to_str()
        .filter(|k| !k.contains(['"', '\\']))
        .with_context(|| format!("{}: cannot be written in a config", kernel.display()))?
        .to_owned();
    let mut files = Vec::new();
    for (name, cmdline) in cmdlines(calls, canary) {
        let text = format!(
            "# Written by `cargo xtask hv-test` (isolation).\nname = \"{name}\"\n\
             type = \"pvh\"\nkernel = \"{kernel}\"\ncmdline = \"{cmdline}\"\nmemory = 128\n"
        );
        let path = dir.join(format!("{name}.cfg"));
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
        Err(problems) => bail!("isolation configs: {}", problems.join("; ")),
    };
    let archive = config::archive(&boots, |k| Ok(std::fs::read(k)?))?;
    let path = config::archive_path(dir);
    std::fs::write(&path, archive).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// hv's `hv: d<id> canary gfn <g> host frame <h>` line: (id, gfn, host frame).
pub fn canary_line(line: &str) -> Option<(u16, u64, u64)> {
    let rest = line.strip_prefix("hv: d")?;
    let (id, rest) = rest.split_once(" canary gfn ")?;
    let (gfn, frame) = rest.split_once(" host frame ")?;
    let hex = |s: &str| u64::from_str_radix(s.strip_prefix("0x")?, 16).ok();
    Some((id.parse().ok()?, hex(gfn)?, hex(frame.trim())?))
}

/// The attacker's `hostile: <n> calls in <ms> ms` line: (calls, ms).
pub fn rate_line(line: &str) -> Option<(u64, u64)> {
    let rest = line.split_once("hostile: ")?.1;
    let (calls, rest) = rest.split_once(" calls in ")?;
    let ms = rest.strip_suffix(" ms")?;
    Some((calls.parse().ok()?, ms.parse().ok()?))
}

fn hv_boot(
    hv: &Path,
    archive: &Path,
    label: &str,
    timeout: Duration,
    on_line: impl FnMut(&Line) -> Option<Instant>,
) -> Result<qemu::Booted> {
    let b = qemu::Boot {
        hv,
        guest: archive,
        hv_options: "",
        guest_cmdline: None,
        memory_mib: qemu::DEFAULT_MEMORY_MIB,
        drives: &[],
        net: None,
        control_socket: None,
        qmp_socket: None,
        run_dir: run_dir(label),
        timeout,
        gdb: None,
    };
    qemu::boot_killable(&b, on_line)
}

/// `HOST hv-isolation` and `HOST hv-hostile` with `calls` hostile calls (see the module docs).
pub fn isolation(tally: &mut Tally, hv: &Path, guest: &Path, calls: u64) -> Result<()> {
    let label = "hv-isolation";
    let dir = run_dir(label);
    // The first boot: the same archive with a placeholder of the same width, killed as soon
    // as hv has built the victim.
    let probe = write_archive(&dir, guest, calls, 0)?;
    let mut frame = None;
    println!("hv-test: isolation: a first boot for the victim's canary frame...");
    let first = hv_boot(
        hv,
        &probe,
        "hv-isolation-probe",
        Duration::from_secs(60),
        |l| match l {
            Line::Hv(h) => canary_line(h)
                .filter(|(id, g, _)| (*id, *g) == (VICTIM_ID, CANARY_GFN))
                .map(|(_, _, f)| {
                    frame = Some(f);
                    Instant::now()
                }),
            _ => None,
        },
    )?;
    let Some(frame) = frame else {
        let line = "HOST hv-isolation FAIL hv printed no canary line for the victim".to_owned();
        println!("{line}");
        tally.record(false, line);
        explain_failure(&first);
        return Ok(());
    };
    println!("hv-test: isolation: the victim's canary is host frame {frame:#x}");
    let archive = write_archive(&dir, guest, calls, frame)?;
    let timeout = Duration::from_secs(120 + calls / 1000);
    println!(
        "hv-test: isolation: {calls} hostile calls beside a victim and a spinner (timeout {} s)...",
        timeout.as_secs()
    );
    let booted = hv_boot(hv, &archive, label, timeout, |_| None)?;
    println!(
        "hv-test: isolation: {} after {:.1} s; serial log {}",
        booted.end.describe(),
        booted.wall.as_secs_f64(),
        booted.serial_log.display()
    );
    let (isolation, hostile) = judge(&booted.transcript, &booted.end, frame, calls);
    for (_, line) in [&isolation, &hostile] {
        println!("{line}");
    }
    let all_ok = isolation.0 && hostile.0;
    tally.record(isolation.0, isolation.1);
    tally.record(hostile.0, hostile.1);
    if !all_ok {
        explain_failure(&booted);
    }
    Ok(())
}

/// The isolation boot's two `HOST` lines (see the module docs).
pub fn judge(
    t: &serial::Transcript,
    end: &QemuEnd,
    frame: u64,
    calls: u64,
) -> ((bool, String), (bool, String)) {
    let expect = [
        (ATTACKER, Expect::Passes),
        (VICTIM, Expect::Passes),
        (SPINNER, Expect::Passes),
    ];
    let v = serial::judge_domains("hv-isolation", t, end, &expect, EXIT_POWEROFF);
    let mut problems = Vec::new();
    if !v.host.0 {
        problems.push(
            v.host
                .1
                .trim_start_matches("HOST hv-isolation FAIL ")
                .to_owned(),
        );
    }
    match t.hv.iter().find_map(|l| canary_line(l)) {
        Some((VICTIM_ID, CANARY_GFN, f)) if f == frame => {}
        Some((id, g, f)) => problems.push(format!(
            "the canary moved: d{id} gfn {g:#x} host frame {f:#x}, first boot {frame:#x}"
        )),
        None => problems.push("hv printed no canary line".to_owned()),
    }
    for name in ["canary-fill", "canary-intact", "hostile-canary-unread"] {
        if !v.tests.iter().any(|(_, t)| t.name == name) {
            problems.push(format!("no `TEST {name}` line"));
        }
    }
    if let Some(why) = serial::ended_before(t, ATTACKER, VICTIM) {
        problems.push(format!(
            "the victim's last canary check was not after the attack ({why})"
        ));
    }
    let isolation = if problems.is_empty() {
        (true, "HOST hv-isolation ok".to_owned())
    } else {
        (
            false,
            format!("HOST hv-isolation FAIL {}", problems.join("; ")),
        )
    };
    let attacker = serial::domain_run(t, ATTACKER);
    let rate = attacker
        .id
        .and_then(|id| t.domains.get(&id))
        .and_then(|lines| lines.iter().find_map(|l| rate_line(l)));
    let passed = attacker.lines.tests.iter().all(|t| t.ok) && !attacker.lines.tests.is_empty();
    let hostile = match rate {
        Some((made, ms)) if made >= calls && passed => {
            let per_sec = made.saturating_mul(1000) / ms.max(1);
            (
                true,
                format!("HOST hv-hostile ok {made} calls, {per_sec} calls/s"),
            )
        }
        Some((made, _)) if made < calls => (
            false,
            format!("HOST hv-hostile FAIL {made} calls made of {calls}"),
        ),
        Some((made, _)) => (
            false,
            format!("HOST hv-hostile FAIL the attacker's tests failed after {made} calls"),
        ),
        None => (
            false,
            "HOST hv-hostile FAIL the attacker never reported its calls".to_owned(),
        ),
    };
    (isolation, hostile)
}
