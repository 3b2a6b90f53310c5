//! The crash report of `selftest=fault` on stock Xen, and the rule both platforms judge it by.
//!
//! On stock Xen the fault guest is steps added to the platform boot of `xen-test` (after the
//! `pair` steps; [`steps`]): a domain `pvguest-fault` created with `selftest=fault`, waited for
//! until it shuts down (the monitoring `xl create` logs the reason code; 3 is a crash), its
//! console fetched as one percent-encoded result line (`pair.sh console`, which the platform
//! boot carries for the `pair` steps) and destroyed. Its `BACKTRACE` line is resolved from the
//! guest's ELF by [`crate::symbols`], and [`judge_report`] gives `HOST xen-crash-symbols
//! ok|FAIL <why>` with the rule of hv's `HOST crash-symbols` (`xtask/src/hv/debug.rs`).

use std::path::Path;

use super::console::Transcript;
use super::job::Step;
use super::pair::decode_console;
use super::xl_config;

/// The fault guest's command line.
pub const CMDLINE: &str = "selftest=fault";
/// The function a fault report must name, and its file.
pub const FAULT_FUNCTION: &str = "pvguest::selftest::fault::read_unmapped";
/// The file of [`FAULT_FUNCTION`] (a `file:line` prefix).
pub const FAULT_FILE: &str = "pvguest/src/selftest/fault.rs:";
/// The fault guest's xl name (and config `pvguest-fault.cfg`).
const NAME: &str = "pvguest-fault";
/// How long dom0 waits for the fault guest to shut down, in 0.2 s polls (60 s).
const WAIT_POLLS: u32 = 300;

/// The file the steps need in `/pvxen/`: the fault guest's config (`pair.sh` comes with the
/// `pair` steps' files).
pub fn files() -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    guest_config(NAME, CMDLINE)
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

/// The steps, after the `pair` steps of the platform boot.
pub fn steps() -> Vec<Step> {
    guest_steps("fault", NAME, WAIT_POLLS)
}

/// What a crash report showed and how it was judged.
#[derive(Debug, PartialEq, Eq)]
pub struct Report {
    /// The `EXCEPTION` and `BACKTRACE` lines, then the resolved frames.
    pub shown: Vec<String>,
    /// Why the report fails the rule, or `None`.
    pub why: Option<String>,
}

/// The rule of `HOST crash-symbols` (hv) and `HOST xen-crash-symbols` (stock Xen): the domain
/// crashed (`crashed`: `Err` says how it ended instead), its console (`guest`) has an
/// `EXCEPTION` and a `BACKTRACE` line, and the backtrace resolved by `resolve` (from the
/// guest's ELF) names [`FAULT_FUNCTION`] in [`FAULT_FILE`], followed by at least one caller.
pub fn judge_report(
    guest: &[String],
    crashed: Result<(), String>,
    resolve: impl FnOnce(&str) -> Option<Vec<String>>,
) -> Report {
    let exception = guest.iter().find(|l| l.starts_with("EXCEPTION "));
    let backtrace = guest.iter().find(|l| l.starts_with("BACKTRACE "));
    let resolved = backtrace.and_then(|l| resolve(l)).unwrap_or_default();
    let named = resolved
        .iter()
        .position(|l| l.contains(FAULT_FUNCTION) && l.contains(FAULT_FILE));
    let why = if let Err(how) = crashed {
        Some(format!("the domain did not crash: {how}"))
    } else if exception.is_none() {
        Some("no EXCEPTION line".to_owned())
    } else if backtrace.is_none() {
        Some("no BACKTRACE line".to_owned())
    } else if named.is_none() {
        Some(format!(
            "the report does not name {FAULT_FUNCTION} in {FAULT_FILE}"
        ))
    } else if named.is_some_and(|i| i + 1 >= resolved.len()) {
        Some(format!("the report has no caller of {FAULT_FUNCTION}"))
    } else {
        None
    };
    let mut shown: Vec<String> = exception.into_iter().chain(backtrace).cloned().collect();
    shown.extend(resolved);
    Report { shown, why }
}

/// What the fault steps showed: the guest's console and the verdict.
#[derive(Debug)]
pub struct FaultVerdict {
    /// The fault guest's console lines.
    pub console: Vec<String>,
    /// The report (what to print) and its verdict.
    pub report: Report,
    /// `HOST xen-crash-symbols ok|FAIL <why>`.
    pub line: String,
}

/// Judges the fault steps of a transcript, resolving the guest's `BACKTRACE` with `resolve`.
pub fn judge(t: &Transcript, resolve: impl FnOnce(&str) -> Option<Vec<String>>) -> FaultVerdict {
    let console = decode_console(t.result("fault-console").unwrap_or("-"));
    let crashed = match (t.result("fault-create"), t.result("fault-end")) {
        (Some("ok"), Some("3")) => Ok(()),
        (Some("ok"), Some("0")) => Err("it powered off".to_owned()),
        (Some("ok"), Some("timeout")) => Err("it did not shut down within 60 s".to_owned()),
        (Some("ok"), Some(code)) => Err(format!("it shut down with reason code {code}")),
        (Some("ok"), None) => Err("dom0 gave no result for its end".to_owned()),
        (Some(other), _) => Err(format!("creating it: {other}")),
        (None, _) => Err("dom0 gave no result for its creation".to_owned()),
    };
    let report = judge_report(&console, crashed, resolve);
    let line = match &report.why {
        None => "HOST xen-crash-symbols ok".to_owned(),
        Some(why) => format!("HOST xen-crash-symbols FAIL {why}"),
    };
    FaultVerdict {
        console,
        report,
        line,
    }
}

/// Judges the fault steps with `guest`'s symbols, prints the report and the `HOST` line
/// (and, on failure, the fault guest's console), and records the unit. Returns whether it
/// passed.
pub fn check(t: &Transcript, guest: &Path, tally: &mut crate::tally::Tally) -> bool {
    let mut symbols = crate::symbols::Symbols::new(guest);
    let v = judge(t, |l| symbols.resolve_line(l));
    for line in &v.report.shown {
        println!("{line}");
    }
    println!("{}", v.line);
    let ok = v.report.why.is_none();
    tally.record(ok, format!("stock Xen: {}", v.line));
    if !ok {
        for line in &v.console {
            println!("xen| {NAME}: {line}");
        }
    }
    ok
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
        let v = judge(&transcript(&good()), resolved);
        assert_eq!(v.line, "HOST xen-crash-symbols ok", "{v:?}");
        assert_eq!(v.report.shown.len(), 5);
        assert!(v.report.shown[0].starts_with("EXCEPTION vector=14"));
    }

    #[test]
    fn every_failure_is_named() {
        let with = |from: &str, to: &str| {
            let lines: Vec<String> = good().iter().map(|l| l.replace(from, to)).collect();
            judge(&transcript(&lines), resolved).line
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
        let v = judge(&transcript(&good()), |_| {
            Some(vec![
                "    0x13f07e ?? ??".into(),
                "    0x13f134 ?? ??".into(),
            ])
        });
        assert!(
            v.line
                .contains("does not name pvguest::selftest::fault::read_unmapped")
        );
        let v = judge(&transcript(&good()), |l| {
            resolved(l).map(|mut r| {
                r.pop();
                r
            })
        });
        assert!(
            v.line
                .ends_with("has no caller of pvguest::selftest::fault::read_unmapped")
        );
        let v = judge(&Transcript::default(), resolved);
        assert!(v.line.contains("no result for its creation"), "{}", v.line);
    }

    #[test]
    fn the_steps_create_wait_fetch_and_destroy_the_fault_guest() {
        let files = files().unwrap();
        assert_eq!(files.len(), 1);
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
