//! Reading `hv`'s serial output and judging a boot of the guest on `hv` (tier T2).
//!
//! `hv` writes its own log as `hv: ...` lines, each line of domain 1's console prefixed with
//! `(d1) `, and at shutdown its counters as `COUNTER exit.<reason> <n>` and
//! `COUNTER hypercall.<op> <n>`. QEMU's exit status says how the guest ended: 33 poweroff,
//! 35 crash (`isa-debug-exit`). Everything here is pure, so host tests feed it transcripts.

use crate::selftest::{injected_problems, read_lines};
pub use crate::xen::console::Verdict;

/// The prefix of domain 1's console lines.
pub const GUEST_PREFIX: &str = "(d1) ";
/// QEMU's exit status when the guest powered off (`isa-debug-exit` value 0x10).
pub const EXIT_POWEROFF: i32 = 33;
/// QEMU's exit status when the guest crashed (value 0x11).
pub const EXIT_CRASH: i32 = 35;

/// What the serial lines of one `hv` boot said.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Transcript {
    /// Domain 1's console lines without the prefix, in order.
    pub guest: Vec<String>,
    /// `COUNTER <name> <n>` lines, verbatim.
    pub counters: Vec<String>,
    /// `hv: ...` lines.
    pub hv: Vec<String>,
    /// Every other line (firmware, QEMU, a guest line without its prefix).
    pub other: Vec<String>,
}

/// What one serial line is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// A guest console line (prefix removed).
    Guest(String),
    /// A counter line.
    Counter(String),
    /// One of `hv`'s log lines.
    Hv(String),
    /// Anything else.
    Other(String),
}

impl Transcript {
    /// Takes one serial line (without its line end) and says what it is.
    pub fn push(&mut self, raw: &str) -> Line {
        let line = raw.trim_end_matches('\r');
        if let Some(g) = line.strip_prefix(GUEST_PREFIX) {
            self.guest.push(g.to_owned());
            Line::Guest(g.to_owned())
        } else if is_counter(line) {
            self.counters.push(line.to_owned());
            Line::Counter(line.to_owned())
        } else if line.starts_with("hv: ") {
            self.hv.push(line.to_owned());
            Line::Hv(line.to_owned())
        } else {
            self.other.push(line.to_owned());
            Line::Other(line.to_owned())
        }
    }
}

/// `COUNTER exit.<reason> <n>` or `COUNTER hypercall.<op> <n>`.
pub fn is_counter(line: &str) -> bool {
    let Some(rest) = line.strip_prefix("COUNTER ") else {
        return false;
    };
    let mut words = rest.split(' ');
    let name = words.next().unwrap_or("");
    let value = words.next().unwrap_or("");
    (name.starts_with("exit.") || name.starts_with("hypercall."))
        && name.len() > name.find('.').unwrap_or(0) + 1
        && !value.is_empty()
        && value.bytes().all(|b| b.is_ascii_digit())
        && words.next().is_none()
}

/// How QEMU ended (the host's view).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QemuEnd {
    /// QEMU exited with this status code (None: killed by a signal).
    Exited(Option<i32>),
    /// The hard timeout expired; QEMU was killed.
    Timeout {
        /// The timeout in seconds.
        secs: u64,
    },
}

impl QemuEnd {
    /// Words for reports.
    pub fn describe(&self) -> String {
        match self {
            Self::Exited(Some(EXIT_POWEROFF)) => "QEMU exit 33 (guest powered off)".into(),
            Self::Exited(Some(EXIT_CRASH)) => "QEMU exit 35 (guest crashed)".into(),
            Self::Exited(Some(c)) => format!("QEMU exit {c}"),
            Self::Exited(None) => "QEMU killed by a signal".into(),
            Self::Timeout { secs } => format!("hard timeout after {secs} s, QEMU killed"),
        }
    }
}

/// Why the boot went wrong at the harness's level: not ended by the guest, no counters.
fn run_problems(t: &Transcript, end: &QemuEnd) -> Vec<String> {
    let mut problems = Vec::new();
    match end {
        QemuEnd::Exited(Some(EXIT_POWEROFF | EXIT_CRASH)) => {}
        other => problems.push(other.describe()),
    }
    let ended_by_guest = matches!(end, QemuEnd::Exited(Some(EXIT_POWEROFF | EXIT_CRASH)));
    if ended_by_guest {
        for kind in ["exit", "hypercall"] {
            let prefix = format!("COUNTER {kind}.");
            if !t.counters.iter().any(|c| c.starts_with(&prefix)) {
                problems.push(format!("hv printed no `COUNTER {kind}.<name> <n>` lines"));
            }
        }
    }
    problems
}

/// Judges a `selftest=...` boot on `hv`: it passes (`HOST hv-run ok`) only with QEMU exit 33,
/// a RESULT line that agrees with the TEST lines, no failed test, and hv's counters.
pub fn judge_selftest(t: &Transcript, end: &QemuEnd) -> Verdict {
    let lines = read_lines(&t.guest);
    let mut problems = run_problems(t, end);
    if problems.is_empty() || !t.guest.is_empty() {
        problems.extend(lines.problems);
    }
    let failed = lines.tests.iter().filter(|t| !t.ok).count();
    match end {
        QemuEnd::Exited(Some(EXIT_POWEROFF)) if failed > 0 => {
            problems.push("guest powered off although tests failed (it should crash)".into())
        }
        QemuEnd::Exited(Some(EXIT_CRASH)) => problems.push(match lines.result {
            Some((p, f)) => format!("guest crashed (after RESULT {p} passed, {f} failed)"),
            None => "guest crashed".into(),
        }),
        _ => {}
    }
    let host = vec![if problems.is_empty() {
        (true, "HOST hv-run ok".to_owned())
    } else {
        (false, format!("HOST hv-run FAIL {}", problems.join("; ")))
    }];
    Verdict {
        shown: lines.shown,
        tests: lines.tests,
        result: lines.result,
        host,
    }
}

/// hv's account of domain 1's paging pool at shutdown: `hv: d1: paging pool <pages> pages, at
/// most <peak> in use, <refused> refused`, as `(pages, peak, refused)`.
pub fn paging_pool(t: &Transcript) -> Option<(u64, u64, u64)> {
    t.hv.iter().rev().find_map(|line| {
        let rest = line.strip_prefix("hv: d1: paging pool ")?;
        let (pages, rest) = rest.split_once(" pages, at most ")?;
        let (peak, rest) = rest.split_once(" in use, ")?;
        let refused = rest.strip_suffix(" refused")?;
        Some((
            pages.parse().ok()?,
            peak.parse().ok()?,
            refused.parse().ok()?,
        ))
    })
}

/// The `HOST hv-paging-pool` line of a boot: passed only if hv reported its pool and its
/// nested tables stayed inside it with no page refused (the `hostile-bounds` boot moves
/// shared_info 10,000 times to fresh addresses).
pub fn judge_paging_pool(t: &Transcript) -> (bool, String) {
    match paging_pool(t) {
        Some((pages, peak, 0)) if peak <= pages => (true, "HOST hv-paging-pool ok".to_owned()),
        Some((pages, peak, refused)) => (
            false,
            format!(
                "HOST hv-paging-pool FAIL at most {peak} of {pages} pages in use, {refused} refused"
            ),
        ),
        None => (
            false,
            "HOST hv-paging-pool FAIL hv printed no `hv: d1: paging pool ...` line".to_owned(),
        ),
    }
}

/// hv's teardown of domain 1 at its end: `hv: d1 teardown: <n> frames back, free <before> ->
/// <after> frames`, as `(n, before, after)`.
pub fn teardown(t: &Transcript) -> Option<(u64, u64, u64)> {
    t.hv.iter().rev().find_map(|line| {
        let rest = line.strip_prefix("hv: d1 teardown: ")?;
        let (back, rest) = rest.split_once(" frames back, free ")?;
        let (before, rest) = rest.split_once(" -> ")?;
        let after = rest.strip_suffix(" frames")?;
        Some((
            back.parse().ok()?,
            before.parse().ok()?,
            after.parse().ok()?,
        ))
    })
}

/// The `HOST hv-teardown` line of a boot: passed only if hv tore domain 1 down and the free
/// frames afterwards are exactly those before the domain was built (nothing leaked).
pub fn judge_teardown(t: &Transcript) -> (bool, String) {
    match teardown(t) {
        Some((back, before, after)) if before == after && back > 0 => {
            (true, "HOST hv-teardown ok".to_owned())
        }
        Some((back, before, after)) => (
            false,
            format!(
                "HOST hv-teardown FAIL {back} frames back, free {before} frames before build, \
                 {after} after teardown"
            ),
        ),
        None => (
            false,
            "HOST hv-teardown FAIL hv printed no `hv: d1 teardown: ...` line".to_owned(),
        ),
    }
}

/// Judges a boot with `selftest-inject-fail=<test>`: caught only if the guest reported that
/// test failing, its RESULT counted it, and the guest crashed (QEMU exit 35).
pub fn judge_injected(t: &Transcript, end: &QemuEnd, test: &str) -> Result<(), String> {
    let mut why = run_problems(t, end);
    if !why.is_empty() && t.guest.is_empty() {
        return Err(why.join("; "));
    }
    why.extend(injected_problems(&t.guest, test));
    if *end == QemuEnd::Exited(Some(EXIT_POWEROFF)) {
        why.push("guest powered off instead of crashing".into());
    }
    if why.is_empty() {
        Ok(())
    } else {
        Err(why.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A recorded transcript of hv booting the guest with `selftest=boot` (shape of hv's
    /// output as agreed: hv's log, `(d1) ` guest lines, counters at shutdown).
    const RECORDED: &str = "\
SeaBIOS (version 1.16.2-debian-1.16.2-1)
hv: 1 CPU, SVM with nested paging; guest ELF 2304512 bytes
hv: d1: 128 MiB, entry 0x100040, start info 0x15e000
(d1) pvguest: long mode
(d1) [INFO ] pvguest: Xen 4.17 (CPUID base 0x40000000, hypercall MSR 0x40000000)
(d1) FACT xen-version.version 4.17
(d1) TEST xen-version ok
(d1) FACT heap-alloc.leaked-bytes 0\r
(d1) TEST heap-alloc ok
(d1) RESULT 2 passed, 0 failed
hv: d1: SCHEDOP_shutdown poweroff
COUNTER exit.vmmcall 120
COUNTER exit.cpuid 14
COUNTER hypercall.xen_version 9
";

    fn transcript(text: &str) -> Transcript {
        let mut t = Transcript::default();
        for l in text.lines() {
            t.push(l);
        }
        t
    }

    #[test]
    fn lines_are_sorted_by_kind() {
        let t = transcript(RECORDED);
        assert_eq!(t.guest.len(), 7);
        assert_eq!(t.guest[3], "TEST xen-version ok");
        assert_eq!(t.guest[4], "FACT heap-alloc.leaked-bytes 0");
        assert_eq!(t.counters.len(), 3);
        assert_eq!(t.hv.len(), 3);
        assert_eq!(t.other, ["SeaBIOS (version 1.16.2-debian-1.16.2-1)"]);
        assert!(!is_counter("COUNTER exit.vmmcall"));
        assert!(!is_counter("COUNTER other.x 1"));
        assert!(!is_counter("COUNTER exit. 1"));
        assert!(!is_counter(" COUNTER exit.hlt 1"));
        assert!(!is_counter("COUNTER exit.hlt 1x"));
    }

    #[test]
    fn a_good_run_passes() {
        let v = judge_selftest(&transcript(RECORDED), &QemuEnd::Exited(Some(33)));
        assert_eq!(v.host, [(true, "HOST hv-run ok".to_owned())]);
        assert_eq!(v.shown.len(), 5);
        assert_eq!(v.result, Some((2, 0)));
    }

    #[test]
    fn exit_status_result_and_counters_are_required() {
        let t = transcript(RECORDED);
        let v = judge_selftest(&t, &QemuEnd::Exited(Some(1)));
        assert_eq!(v.host[0].1, "HOST hv-run FAIL QEMU exit 1");
        let v = judge_selftest(&t, &QemuEnd::Timeout { secs: 120 });
        assert_eq!(
            v.host[0].1,
            "HOST hv-run FAIL hard timeout after 120 s, QEMU killed"
        );
        let v = judge_selftest(&t, &QemuEnd::Exited(Some(35)));
        assert_eq!(
            v.host[0].1,
            "HOST hv-run FAIL guest crashed (after RESULT 2 passed, 0 failed)"
        );
        let no_counters = RECORDED
            .lines()
            .filter(|l| !l.starts_with("COUNTER"))
            .collect::<Vec<_>>()
            .join("\n");
        let v = judge_selftest(&transcript(&no_counters), &QemuEnd::Exited(Some(33)));
        assert_eq!(
            v.host[0].1,
            "HOST hv-run FAIL hv printed no `COUNTER exit.<name> <n>` lines; \
             hv printed no `COUNTER hypercall.<name> <n>` lines"
        );
        let no_hypercalls = RECORDED.replace("COUNTER hypercall.xen_version 9\n", "");
        let v = judge_selftest(&transcript(&no_hypercalls), &QemuEnd::Exited(Some(33)));
        assert_eq!(
            v.host[0].1,
            "HOST hv-run FAIL hv printed no `COUNTER hypercall.<name> <n>` lines"
        );
        let lying = RECORDED.replace("RESULT 2 passed", "RESULT 3 passed");
        let v = judge_selftest(&transcript(&lying), &QemuEnd::Exited(Some(33)));
        assert!(
            v.host[0].1.contains("RESULT says 3 passed"),
            "{}",
            v.host[0].1
        );
        let failing = RECORDED
            .replace("TEST heap-alloc ok", "TEST heap-alloc FAIL leak")
            .replace("2 passed, 0 failed", "1 passed, 1 failed");
        let v = judge_selftest(&transcript(&failing), &QemuEnd::Exited(Some(33)));
        assert!(
            v.host[0]
                .1
                .ends_with("guest powered off although tests failed (it should crash)"),
            "{}",
            v.host[0].1
        );
        // hv died before the guest printed anything: one reason, not a list.
        let v = judge_selftest(&transcript("hv: panic"), &QemuEnd::Exited(Some(1)));
        assert_eq!(v.host[0].1, "HOST hv-run FAIL QEMU exit 1");
    }

    #[test]
    fn the_paging_pool_line_is_read_and_judged() {
        let line = "hv: d1: paging pool 384 pages, at most 11 in use, 0 refused";
        let t = transcript(&format!("{RECORDED}{line}\n"));
        assert_eq!(paging_pool(&t), Some((384, 11, 0)));
        assert_eq!(
            judge_paging_pool(&t),
            (true, "HOST hv-paging-pool ok".into())
        );
        let refused = transcript(&format!(
            "{RECORDED}hv: d1: paging pool 384 pages, at most 384 in use, 7 refused\n"
        ));
        assert_eq!(
            judge_paging_pool(&refused).1,
            "HOST hv-paging-pool FAIL at most 384 of 384 pages in use, 7 refused"
        );
        let (ok, why) = judge_paging_pool(&transcript(RECORDED));
        assert!(!ok && why.contains("no `hv: d1: paging pool"), "{why}");
    }

    #[test]
    fn the_teardown_line_is_read_and_judged() {
        let line = "hv: d1 teardown: 33155 frames back, free 1046000 -> 1046000 frames";
        let t = transcript(&format!("{RECORDED}{line}\n"));
        assert_eq!(teardown(&t), Some((33155, 1_046_000, 1_046_000)));
        assert_eq!(judge_teardown(&t), (true, "HOST hv-teardown ok".into()));
        let leaked = transcript(&format!(
            "{RECORDED}hv: d1 teardown: 32771 frames back, free 1046000 -> 1045616 frames\n"
        ));
        assert_eq!(
            judge_teardown(&leaked).1,
            "HOST hv-teardown FAIL 32771 frames back, free 1046000 frames before build, \
             1045616 after teardown"
        );
        let (ok, why) = judge_teardown(&transcript(RECORDED));
        assert!(!ok && why.contains("no `hv: d1 teardown"), "{why}");
    }

    #[test]
    fn injected_failure_is_caught_only_if_it_crashed_the_guest() {
        let injected = RECORDED
            .replace(
                "TEST xen-version ok",
                "TEST xen-version FAIL injected failure",
            )
            .replace("2 passed, 0 failed", "1 passed, 1 failed");
        let t = transcript(&injected);
        assert_eq!(
            judge_injected(&t, &QemuEnd::Exited(Some(35)), "xen-version"),
            Ok(())
        );
        assert_eq!(
            judge_injected(&t, &QemuEnd::Exited(Some(33)), "xen-version"),
            Err("guest powered off instead of crashing".into())
        );
        let why = judge_injected(
            &transcript(RECORDED),
            &QemuEnd::Exited(Some(35)),
            "xen-version",
        )
        .unwrap_err();
        assert!(why.contains("TEST xen-version passed"), "{why}");
        assert!(why.contains("counts no failure"), "{why}");
        assert_eq!(
            judge_injected(&transcript(""), &QemuEnd::Timeout { secs: 9 }, "x"),
            Err("hard timeout after 9 s, QEMU killed".into())
        );
    }
}
