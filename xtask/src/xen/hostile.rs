//! The `hostile` self-test group on stock Xen (issue 23): steps added to the platform boot
//! of `xen-test`, after the `fault` steps: a domain `pvguest-hostile` created with
//! [`CMDLINE`] from an xl config of hv's defaults (the platform guest's: no vif or disk, 128
//! MiB, one vCPU, xl's limits), waited for until it shuts down, its console fetched (`pair.sh
//! console`, which the platform boot carries for the `pair` steps) and destroyed.
//!
//! [`judge`] makes one unit per `TEST` line and `HOST xen-hostile ok|FAIL <why>`; the
//! group's `TEST` and `FACT` lines go to the comparison with hv's boot of the same command
//! line (`HOST same-hostile-<class>`, [`crate::compare::compare_hostile`]).

use super::console::Transcript;
use super::job::Step;
use super::pair::decode_console;
use crate::selftest::{Lines, read_lines};

/// The compared command line: both platforms run exactly this (the seed and the number of
/// calls fix every call; `hostile-xs-quotas=` names [`QUOTAS`], which each xenstore flood
/// must meet).
pub const CMDLINE: &str =
    "selftest=hostile hostile-seed=23 hostile-calls=2000 hostile-xs-quotas=100,100,229376";

/// The xenstored quotas of the compared run, smaller than C xenstored 4.17's defaults (1000
/// nodes per domain, 1024 nodes per transaction, 2.5 MiB per domain), so that the `xenstore`
/// class's floods reach and pass them in about a hundred requests each instead of a
/// thousand: each request costs stock Xen's xenstored about 18 ms under emulation (35 ms in
/// a transaction, 112 ms for a 3.3 KB write), so the floods took 140 s at the defaults. The
/// other quotas (watches, transactions, permissions, entry size) keep their defaults. The
/// memory quota (224 KiB) lies where each flood still meets the quota it is for: above what
/// `xs-quota-deep-write`'s 80-odd nodes of 2 KB paths take before the node quota refuses
/// them (about 170 KB), below what `xs-quota-memory`'s 3.3 KB writes would take before it
/// (about 260 KB); at 64 KiB both platforms answer the deep write `EIO`. Stock
/// Xen's dom0 starts xenstored with [`xenstored_args`] for the whole platform boot (no other
/// guest of that boot comes near them); hv's compared boot gets [`hv_options`].
pub const QUOTAS: XenstoredQuotas = XenstoredQuotas {
    entries_per_domain: 100,
    nodes_per_transaction: 100,
    memory: 229_376,
};

/// Quotas of C xenstored's command line (and hv's `xenstored-*` options).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XenstoredQuotas {
    /// `--entry-nb`.
    pub entries_per_domain: u32,
    /// `--quota transaction-nodes=`.
    pub nodes_per_transaction: u32,
    /// `--quota memory=` (bytes, the hard quota).
    pub memory: u32,
}

/// C xenstored's options for [`QUOTAS`] (dom0's `/pvxen/xenstored.args`).
pub fn xenstored_args() -> String {
    let q = QUOTAS;
    format!(
        "--entry-nb {} --quota transaction-nodes={} --quota memory={}",
        q.entries_per_domain, q.nodes_per_transaction, q.memory
    )
}

/// hv's options for [`QUOTAS`].
pub fn hv_options() -> String {
    let q = QUOTAS;
    format!(
        "xenstored-entry-nb={} xenstored-transaction-nodes={} xenstored-memory={}",
        q.entries_per_domain, q.nodes_per_transaction, q.memory
    )
}
/// The guest's xl name (and config `pvguest-hostile.cfg`).
const NAME: &str = "pvguest-hostile";
/// How long dom0 waits for it to shut down, in 0.2 s polls (120 s).
const WAIT_POLLS: u32 = 600;

/// The files the steps need in `/pvxen/`: the guest's config, and xenstored's quotas (which
/// dom0's `init` reads before it starts xenstored).
pub fn files() -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let mut files = super::fault::guest_config(NAME, CMDLINE)?;
    files.push((
        "xenstored.args".to_owned(),
        format!("{}\n", xenstored_args()).into_bytes(),
    ));
    Ok(files)
}

/// The steps, after the `fault` steps of the platform boot.
pub fn steps() -> Vec<Step> {
    super::fault::guest_steps("hostile", NAME, WAIT_POLLS)
}

/// What the hostile steps showed.
#[derive(Debug)]
pub struct HostileVerdict {
    /// The guest's console lines.
    pub console: Vec<String>,
    /// Its self-test lines.
    pub lines: Lines,
    /// `HOST xen-hostile ok|FAIL <why>` and whether it passed.
    pub host: (bool, String),
}

impl HostileVerdict {
    /// The `TEST` and `FACT` lines (for the comparison with hv).
    pub fn compared_lines(&self) -> Vec<String> {
        self.lines
            .shown
            .iter()
            .filter(|l| l.starts_with("TEST ") || l.starts_with("FACT "))
            .cloned()
            .collect()
    }
}

/// Judges the hostile steps of a transcript.
pub fn judge(t: &Transcript) -> HostileVerdict {
    let console = decode_console(t.result("hostile-console").unwrap_or("-"));
    let lines = read_lines(&console);
    let mut problems = Vec::new();
    match (t.result("hostile-create"), t.result("hostile-end")) {
        (Some("ok"), Some("0")) => {}
        (Some("ok"), Some("timeout")) => problems.push("it did not shut down within 120 s".into()),
        (Some("ok"), Some(code)) => problems.push(format!("it shut down with reason code {code}")),
        (Some("ok"), None) => problems.push("dom0 gave no result for its end".into()),
        (Some(other), _) => problems.push(format!("creating it: {other}")),
        (None, _) => problems.push("dom0 gave no result for its creation".into()),
    }
    problems.extend(lines.problems.iter().cloned());
    let failed: Vec<&str> = lines
        .tests
        .iter()
        .filter(|t| !t.ok)
        .map(|t| t.name.as_str())
        .collect();
    if !failed.is_empty() {
        problems.push(format!("failed {}", failed.join(", ")));
    }
    let host = if problems.is_empty() {
        (true, "HOST xen-hostile ok".to_owned())
    } else {
        (
            false,
            format!("HOST xen-hostile FAIL {}", problems.join("; ")),
        )
    };
    HostileVerdict {
        console,
        lines,
        host,
    }
}

/// Prints the lines and the `HOST` line, records one unit per `TEST` line and one for the
/// `HOST` line; on failure prints the guest's console. Returns whether all passed.
pub fn record(v: &HostileVerdict, tally: &mut crate::tally::Tally) -> bool {
    let mut all_ok = true;
    for line in &v.lines.shown {
        println!("{line}");
    }
    for test in &v.lines.tests {
        tally.record(test.ok, format!("stock Xen {NAME}: {}", test.line));
        all_ok &= test.ok;
    }
    let (ok, line) = &v.host;
    println!("{line}");
    tally.record(*ok, format!("stock Xen: {line}"));
    all_ok &= ok;
    if !all_ok {
        for line in &v.console {
            println!("xen| {NAME}: {line}");
        }
    }
    all_ok
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

    const CONSOLE: &str = "[INFO ] hostile ops: unassigned=-38%0AFACT hostile.ops.calls 500%0A\
        FACT hostile.ops.errnos 00000000000000aa%0ATEST hostile-ops ok%0A\
        TEST hostile-canary-unread ok%0ARESULT 2 passed, 0 failed%0A";

    fn good() -> Vec<String> {
        vec![
            "PVXEN result hostile-create ok".into(),
            "PVXEN result hostile-end 0".into(),
            format!("PVXEN result hostile-console {CONSOLE}"),
            "PVXEN result hostile-destroy ok".into(),
        ]
    }

    #[test]
    fn a_good_run_passes_and_gives_its_lines() {
        let v = judge(&transcript(&good()));
        assert_eq!(v.host, (true, "HOST xen-hostile ok".to_owned()), "{v:?}");
        assert_eq!(
            v.compared_lines(),
            [
                "FACT hostile.ops.calls 500",
                "FACT hostile.ops.errnos 00000000000000aa",
                "TEST hostile-ops ok",
                "TEST hostile-canary-unread ok",
            ]
        );
        let mut tally = crate::tally::Tally::new();
        assert!(record(&v, &mut tally));
    }

    #[test]
    fn every_failure_is_named() {
        let with = |from: &str, to: &str| {
            let lines: Vec<String> = good().iter().map(|l| l.replace(from, to)).collect();
            judge(&transcript(&lines)).host
        };
        let (ok, why) = with("hostile-end 0", "hostile-end 3");
        assert!(!ok && why.contains("reason code 3"), "{why}");
        let (ok, why) = with("hostile-end 0", "hostile-end timeout");
        assert!(!ok && why.contains("within 120 s"), "{why}");
        let (ok, why) = with("TEST hostile-ops ok", "TEST hostile-ops FAIL x");
        assert!(!ok && why.contains("failed hostile-ops"), "{why}");
        let (ok, why) = with("hostile-create ok", "hostile-create xl create failed: e");
        assert!(
            !ok && why.contains("creating it: xl create failed"),
            "{why}"
        );
        let (ok, why) = judge(&Transcript::default()).host;
        assert!(!ok && why.contains("no result for its creation"), "{why}");
    }

    #[test]
    fn the_steps_run_the_compared_command_line_with_the_default_config() {
        let files = files().unwrap();
        let cfg = String::from_utf8(files[0].1.clone()).unwrap();
        assert_eq!(files[0].0, "pvguest-hostile.cfg");
        assert_eq!(files[1].0, "xenstored.args");
        assert_eq!(
            String::from_utf8(files[1].1.clone()).unwrap(),
            "--entry-nb 100 --quota transaction-nodes=100 --quota memory=229376\n"
        );
        let q = QUOTAS;
        let named = format!(
            "hostile-xs-quotas={},{},{}",
            q.entries_per_domain, q.nodes_per_transaction, q.memory
        );
        assert!(CMDLINE.ends_with(&named), "{CMDLINE}");
        assert_eq!(
            hv_options(),
            "xenstored-entry-nb=100 xenstored-transaction-nodes=100 xenstored-memory=229376"
        );
        assert!(cfg.contains("name = \"pvguest-hostile\""), "{cfg}");
        assert!(cfg.contains(&format!("cmdline = \"{CMDLINE}\"")));
        assert!(cfg.contains("memory = 128") && !cfg.contains("vif") && !cfg.contains("disk"));
        let lines: Vec<String> = steps().iter().map(|s| s.line().unwrap()).collect();
        assert!(lines[0].contains("$XL create /pvxen/pvguest-hostile.cfg"));
        assert_eq!(
            lines[2],
            "run hostile-console sh /pvxen/pair.sh console pvguest-hostile"
        );
        assert!(lines[3].contains("$XL destroy pvguest-hostile"));
    }
}
