//! The crash reports of `selftest=fault` and `selftest=fault-stack` on stock Xen, and the
//! rule both platforms judge them by.
//!
//! On stock Xen each fault guest is steps added to the platform boot of `xen-test` (after the
//! `pair` steps; [`steps`]): a domain created with its `selftest=` group, waited for until it
//! shuts down (the monitoring `xl create` logs the reason code; 3 is a crash), its console
//! fetched as one percent-encoded result line (`pair.sh console`, which the platform boot
//! carries for the `pair` steps) and destroyed. Its `BACKTRACE` line is resolved from the
//! guest's ELF by [`crate::symbols`], and [`judge_report`] gives `HOST xen-<kind> ok|FAIL
//! <why>` with the rule of hv's `HOST <kind>` (`xtask/src/hv/debug.rs`).
//!
//! Two kinds ([`KINDS`]): a page fault ([`PAGE_FAULT`], `crash-symbols`) and a stack overflow
//! ([`STACK_OVERFLOW`], `crash-stack-overflow`), which must arrive as a double fault on its own
//! stack and be reported like any fault, never as a triple fault (Xen's reboot, reason 1, with
//! nothing printed).

use std::path::Path;

use super::console::Transcript;
use super::job::Step;
use super::pair::decode_console;
use super::xl_config;

/// One fault guest: what it runs, what its report must show, and the names of its checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kind {
    /// The guest's command line.
    pub cmdline: &'static str,
    /// The function the report must name first.
    pub function: &'static str,
    /// That function's file (a `file:line` prefix).
    pub file: &'static str,
    /// The vector the `EXCEPTION` line must give.
    pub vector: u64,
    /// The check's name on hv (`HOST <check>`); stock Xen's is `xen-<check>`.
    pub check: &'static str,
    /// The xl name on stock Xen (and config `<name>.cfg`).
    name: &'static str,
    /// The key of its dom0 steps (`<key>-create`, ...).
    key: &'static str,
}

/// `selftest=fault`: a read of an unmapped address, a page fault.
pub const PAGE_FAULT: Kind = Kind {
    cmdline: "selftest=fault",
    function: "pvguest::selftest::fault::read_unmapped",
    file: "pvguest/src/selftest/fault.rs:",
    vector: 14,
    check: "crash-symbols",
    name: "pvguest-fault",
    key: "fault",
};

/// `selftest=fault-stack`: a recursion into the boot stack's guard page, a double fault.
pub const STACK_OVERFLOW: Kind = Kind {
    cmdline: "selftest=fault-stack",
    function: "pvguest::selftest::fault::descend",
    file: "pvguest/src/selftest/fault.rs:",
    vector: 8,
    check: "crash-stack-overflow",
    name: "pvguest-fault-stack",
    key: "fault-stack",
};

/// Both kinds, in the order the steps run them.
pub const KINDS: [Kind; 2] = [PAGE_FAULT, STACK_OVERFLOW];

/// How long dom0 waits for a fault guest to shut down, in 0.2 s polls (60 s).
const WAIT_POLLS: u32 = 300;

/// The files the steps need in `/pvxen/`: each fault guest's config (`pair.sh` comes with the
/// `pair` steps' files).
pub fn files() -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let mut files = Vec::new();
    for kind in KINDS {
        files.extend(guest_config(kind.name, kind.cmdline)?);
    }
    Ok(files)
}

/// The config (`/pvxen/<name>.cfg`) of one more pvguest of the platform boot, named `name`
/// and started with `cmdline`, for [`guest_steps`].
pub(super) fn guest_config(name: &str, cmdline: &str) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let config =
        xl_config(cmdline, "")?.replacen("name = \"pvguest\"", &format!("name = \"{name}\""), 1);
    Ok(vec![(format!("{name}.cfg"), config.into_bytes())])
}

/// dom0's steps for one more pvguest named `name`: `<key>-create`, `<key>-end` (the shutdown
/// reason code xl logged, or `timeout` after `wait_polls` polls of 0.2 s), `<key>-console`
/// (its console, as `pair.sh` encodes it) and `<key>-destroy`.
pub(super) fn guest_steps(key: &str, name: &str, wait_polls: u32) -> Vec<Step> {
    let log = format!("/var/log/xen/xl-{name}.log");
    let run = |step: &str, command: String| Step::Run {
        key: format!("{key}-{step}"),
        command,
    };
    vec![
        run(
            "create",
            format!(
                "rm -f {log}; if $XL create /pvxen/{name}.cfg >/tmp/{name}.log 2>&1; then echo ok; \
                 else echo \"xl create failed: $(grep -i error /tmp/{name}.log | head -n 1)\"; fi"
            ),
        ),
        run(
            "end",
            format!(
                "i=0; while [ $i -lt {wait_polls} ] && ! grep -q 'has shut down' {log} 2>/dev/null; \
                 do sleep 0.2; i=$((i + 1)); done; c=$(sed -n 's/.*has shut down, reason code \
                 \\([0-9]*\\).*/\\1/p' {log} 2>/dev/null | head -n 1); echo \"${{c:-timeout}}\""
            ),
        ),
        run("console", format!("sh /pvxen/pair.sh console {name}")),
        run(
            "destroy",
            format!("$XL destroy {name} >/dev/null 2>&1; echo ok"),
        ),
    ]
}

/// The steps of every fault guest, after the `pair` steps of the platform boot.
pub fn steps() -> Vec<Step> {
    KINDS
        .iter()
        .flat_map(|k| guest_steps(k.key, k.name, WAIT_POLLS))
        .collect()
}

/// What a crash report showed and how it was judged.
#[derive(Debug, PartialEq, Eq)]
pub struct Report {
    /// The `EXCEPTION` and `BACKTRACE` lines, then the resolved frames.
    pub shown: Vec<String>,
    /// Why the report fails the rule, or `None`.
    pub why: Option<String>,
}

/// The rule of `HOST <check>` (hv) and `HOST xen-<check>` (stock Xen) for a fault guest of
/// `kind`: the domain crashed (`crashed`: `Err` says how it ended instead), its console
/// (`guest`) has an `EXCEPTION` line with the kind's vector and a `BACKTRACE` line, and the
/// backtrace resolved by `resolve` (from the guest's ELF) names the kind's function in its
/// file, followed by at least one caller.
pub fn judge_report(
    kind: &Kind,
    guest: &[String],
    crashed: Result<(), String>,
    resolve: impl FnOnce(&str) -> Option<Vec<String>>,
) -> Report {
    let exception = guest.iter().find(|l| l.starts_with("EXCEPTION "));
    let backtrace = guest.iter().find(|l| l.starts_with("BACKTRACE "));
    let resolved = backtrace.and_then(|l| resolve(l)).unwrap_or_default();
    let named = resolved
        .iter()
        .position(|l| l.contains(kind.function) && l.contains(kind.file));
    let vector = format!("EXCEPTION vector={} ", kind.vector);
    let function = kind.function;
    let why = if let Err(how) = crashed {
        Some(format!("the domain did not crash: {how}"))
    } else if exception.is_none() {
        Some("no EXCEPTION line".to_owned())
    } else if exception.is_some_and(|l| !l.starts_with(&vector)) {
        Some(format!(
            "the EXCEPTION line is not vector {}: {}",
            kind.vector,
            exception.map_or("", String::as_str)
        ))
    } else if backtrace.is_none() {
        Some("no BACKTRACE line".to_owned())
    } else if named.is_none() {
        Some(format!(
            "the report does not name {function} in {}",
            kind.file
        ))
    } else if named.is_some_and(|i| i + 1 >= resolved.len()) {
        Some(format!("the report has no caller of {function}"))
    } else {
        None
    };
    let mut shown: Vec<String> = exception.into_iter().chain(backtrace).cloned().collect();
    shown.extend(resolved);
    Report { shown, why }
}

/// What one fault guest's steps showed: the guest's console and the verdict.
#[derive(Debug)]
pub struct FaultVerdict {
    /// The fault guest's console lines.
    pub console: Vec<String>,
    /// The report (what to print) and its verdict.
    pub report: Report,
    /// `HOST xen-<check> ok|FAIL <why>`.
    pub line: String,
}

/// Judges the steps of the fault guest of `kind` in a transcript, resolving the guest's
/// `BACKTRACE` with `resolve`.
pub fn judge(
    kind: &Kind,
    t: &Transcript,
    resolve: impl FnOnce(&str) -> Option<Vec<String>>,
) -> FaultVerdict {
    let result = |step: &str| t.result(&format!("{}-{step}", kind.key));
    let console = decode_console(result("console").unwrap_or("-"));
    let crashed = match (result("create"), result("end")) {
        (Some("ok"), Some("3")) => Ok(()),
        (Some("ok"), Some("0")) => Err("it powered off".to_owned()),
        (Some("ok"), Some("1")) => Err(
            "it shut down with reason code 1, a reboot: how Xen reports a triple fault".to_owned(),
        ),
        (Some("ok"), Some("timeout")) => Err("it did not shut down within 60 s".to_owned()),
        (Some("ok"), Some(code)) => Err(format!("it shut down with reason code {code}")),
        (Some("ok"), None) => Err("dom0 gave no result for its end".to_owned()),
        (Some(other), _) => Err(format!("creating it: {other}")),
        (None, _) => Err("dom0 gave no result for its creation".to_owned()),
    };
    let report = judge_report(kind, &console, crashed, resolve);
    let line = match &report.why {
        None => format!("HOST xen-{} ok", kind.check),
        Some(why) => format!("HOST xen-{} FAIL {why}", kind.check),
    };
    FaultVerdict {
        console,
        report,
        line,
    }
}

/// Judges every fault guest's steps with `guest`'s symbols, prints each report and `HOST`
/// line (and, on failure, that guest's console), and records the units. Returns whether all
/// passed.
pub fn check(t: &Transcript, guest: &Path, tally: &mut crate::tally::Tally) -> bool {
    let mut symbols = crate::symbols::Symbols::new(guest);
    let mut all = true;
    for kind in &KINDS {
        let v = judge(kind, t, |l| symbols.resolve_line(l));
        for line in &v.report.shown {
            println!("{line}");
        }
        println!("{}", v.line);
        let ok = v.report.why.is_none();
        tally.record(ok, format!("stock Xen: {}", v.line));
        if !ok {
            for line in &v.console {
                println!("xen| {}: {line}", kind.name);
            }
        }
        all &= ok;
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transcript(lines: &[String]) -> Transcript {
        let mut t = Transcript::default();
        for l in lines {
            t.push(l);
        }
        t
    }

    const CONSOLE: &str = "[INFO ] fault: reading 0x400000000000, which is not mapped%0A\
        EXCEPTION vector=14 (page fault) error=0x0 rip=0x13f07e cr2=0x400000000000%0A\
        BACKTRACE fault 0x13f07e 0x13f134%0A";

    fn good() -> Vec<String> {
        vec![
            "PVXEN result fault-create ok".into(),
            "PVXEN result fault-end 3".into(),
            format!("PVXEN result fault-console {CONSOLE}"),
            "PVXEN result fault-destroy ok".into(),
        ]
    }

    /// A resolver as `Symbols::resolve_line` answers for pvguest's ELF.
    fn resolved(line: &str) -> Option<Vec<String>> {
        assert_eq!(line, "BACKTRACE fault 0x13f07e 0x13f134");
        Some(vec![
            "    0x13f07e core::ptr::read_volatile /rustc/x/ptr/mod.rs:2091".into(),
            "    0x13f07e pvguest::selftest::fault::read_unmapped pvguest/src/selftest/fault.rs:22"
                .into(),
            "    0x13f134 pvguest::selftest::fault::run pvguest/src/selftest/fault.rs:12".into(),
        ])
    }

    #[test]
    fn a_resolved_fault_report_passes() {
        let v = judge(&PAGE_FAULT, &transcript(&good()), resolved);
        assert_eq!(v.line, "HOST xen-crash-symbols ok", "{v:?}");
        assert_eq!(v.report.shown.len(), 5);
        assert!(v.report.shown[0].starts_with("EXCEPTION vector=14"));
    }

    #[test]
    fn every_failure_is_named() {
        let with = |from: &str, to: &str| {
            let lines: Vec<String> = good().iter().map(|l| l.replace(from, to)).collect();
            judge(&PAGE_FAULT, &transcript(&lines), resolved).line
        };
        let why = with("fault-end 3", "fault-end 0");
        assert_eq!(
            why,
            "HOST xen-crash-symbols FAIL the domain did not crash: it powered off"
        );
        let why = with("fault-end 3", "fault-end timeout");
        assert!(why.contains("did not shut down within 60 s"), "{why}");
        let why = with("fault-create ok", "fault-create xl create failed: x");
        assert!(why.contains("creating it: xl create failed"), "{why}");
        let why = with("EXCEPTION", "EXCEPTIO");
        assert!(why.ends_with("FAIL no EXCEPTION line"), "{why}");
        let why = with("BACKTRACE", "BACKTRAC");
        assert!(why.ends_with("FAIL no BACKTRACE line"), "{why}");
        let v = judge(&PAGE_FAULT, &transcript(&good()), |_| {
            Some(vec![
                "    0x13f07e ?? ??".into(),
                "    0x13f134 ?? ??".into(),
            ])
        });
        assert!(
            v.line
                .contains("does not name pvguest::selftest::fault::read_unmapped")
        );
        let v = judge(&PAGE_FAULT, &transcript(&good()), |l| {
            resolved(l).map(|mut r| {
                r.pop();
                r
            })
        });
        assert!(
            v.line
                .ends_with("has no caller of pvguest::selftest::fault::read_unmapped")
        );
        let v = judge(&PAGE_FAULT, &Transcript::default(), resolved);
        assert!(v.line.contains("no result for its creation"), "{}", v.line);
    }

    #[test]
    fn a_stack_overflow_must_be_a_reported_double_fault() {
        let console = "EXCEPTION vector=8 (double fault) error=0x0 rip=0x140010%0A\
            BACKTRACE fault 0x140010 0x140044 0x140044%0A";
        let lines = |end: &str, console: &str| -> Vec<String> {
            vec![
                "PVXEN result fault-stack-create ok".into(),
                format!("PVXEN result fault-stack-end {end}"),
                format!("PVXEN result fault-stack-console {console}"),
            ]
        };
        let frames = |_: &str| {
            Some(vec![
                "    0x140010 pvguest::selftest::fault::descend pvguest/src/selftest/fault.rs:49"
                    .into(),
                "    0x140044 pvguest::selftest::fault::descend pvguest/src/selftest/fault.rs:53"
                    .into(),
            ])
        };
        let v = judge(&STACK_OVERFLOW, &transcript(&lines("3", console)), frames);
        assert_eq!(v.line, "HOST xen-crash-stack-overflow ok", "{v:?}");
        // The page fault's steps are not the stack overflow's.
        let v = judge(&PAGE_FAULT, &transcript(&lines("3", console)), frames);
        assert!(v.line.contains("no result for its creation"), "{}", v.line);
        // A triple fault: Xen reboots the domain, and it printed nothing.
        let v = judge(&STACK_OVERFLOW, &transcript(&lines("1", "-")), frames);
        assert!(v.line.contains("reason code 1, a reboot"), "{}", v.line);
        // A page fault where a double fault was due (the guard page missed, say).
        let pf = console.replace("vector=8 (double fault)", "vector=14 (page fault)");
        let v = judge(&STACK_OVERFLOW, &transcript(&lines("3", &pf)), frames);
        assert!(v.line.contains("is not vector 8"), "{}", v.line);
    }

    #[test]
    fn the_steps_create_wait_fetch_and_destroy_the_fault_guest() {
        let files = files().unwrap();
        assert_eq!(files.len(), 2);
        assert_eq!(files[1].0, "pvguest-fault-stack.cfg");
        assert_eq!(files[0].0, "pvguest-fault.cfg");
        let cfg = String::from_utf8(files[0].1.clone()).unwrap();
        assert!(cfg.contains("name = \"pvguest-fault\""), "{cfg}");
        assert!(cfg.contains("cmdline = \"selftest=fault\""));
        assert!(cfg.contains("on_crash = \"preserve\""));
        let lines: Vec<String> = steps().iter().map(|s| s.line().unwrap()).collect();
        assert!(lines[0].starts_with("run fault-create rm -f /var/log/xen/xl-pvguest-fault.log;"));
        assert!(lines[0].contains("$XL create /pvxen/pvguest-fault.cfg"));
        assert!(
            lines[1].contains("reason code \\([0-9]*\\).*/\\1/p'"),
            "{}",
            lines[1]
        );
        assert_eq!(
            lines[2],
            "run fault-console sh /pvxen/pair.sh console pvguest-fault"
        );
        assert!(lines[3].contains("$XL destroy pvguest-fault"));
    }
}
