//! Reading `hv`'s serial output and judging a boot of the guest on `hv` (tier T2).
//!
//! `hv` writes its own log as `hv: ...` lines, each line of domain `<id>`'s console prefixed
//! with `(d<id>) ` (as Xen prefixes them), and at each domain's end its counters as
//! `COUNTER exit.<reason> <n>` and `COUNTER hypercall.<op> <n>`. QEMU's exit status says how
//! the run ended: 33 every domain powered off, 35 otherwise (`isa-debug-exit`).
//!
//! With several domains (a domain archive), hv also logs each domain's life: `hv: domain <id>
//! is <name>` when built, `hv: domain <id> (<name>) could not be built: <why>`, and at its end
//! `hv: domain <id> (<name>) powered off`, `... crashed: <reason>` or `... shut down:
//! <reason>`, then `hv: d<id> teardown: ...` and its counters; near the end of the run one
//! `hv: sched: ...` line with the scheduler's numbers ([`DomainEvent`], [`judge_domains`]).
//! Everything here is pure, so host tests feed it transcripts.

use std::collections::BTreeMap;

use crate::selftest::{Lines, TestLine, injected_problems, read_lines};
pub use crate::xen::console::Verdict;

/// The start of hv's scheduler line.
pub const SCHED_PREFIX: &str = "hv: sched: ";
/// QEMU's exit status when the guest powered off (`isa-debug-exit` value 0x10).
pub const EXIT_POWEROFF: i32 = 33;
/// QEMU's exit status when the guest crashed (value 0x11).
pub const EXIT_CRASH: i32 = 35;

/// What the serial lines of one `hv` boot said.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Transcript {
    /// Domain 1's console lines without the prefix, in order (what the one-domain judges and
    /// the comparison with stock Xen read).
    pub guest: Vec<String>,
    /// Every domain's console lines by domain id (domain 1's too), prefix removed, in order.
    pub domains: BTreeMap<u16, Vec<String>>,
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
    /// A console line of the domain with this id (prefix removed).
    Guest(u16, String),
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
        if let Some((domain, g)) = console_line(line) {
            if domain == 1 {
                self.guest.push(g.to_owned());
            }
            self.domains.entry(domain).or_default().push(g.to_owned());
            Line::Guest(domain, g.to_owned())
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

/// A domain's console line `(d<id>) <text>`: the id and the text.
pub fn console_line(line: &str) -> Option<(u16, &str)> {
    let rest = line.strip_prefix("(d")?;
    let (id, text) = rest.split_once(") ")?;
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((id.parse().ok()?, text))
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

/// How a domain ended, as hv logged it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DomainEnd {
    /// `hv: domain <id> (<name>) powered off`.
    PoweredOff,
    /// `hv: domain <id> (<name>) crashed: <reason>`.
    Crashed(String),
    /// `hv: domain <id> (<name>) shut down: <reason>` (another shutdown reason).
    ShutDown(String),
}

/// One of hv's lines about a domain's life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DomainEvent {
    /// `hv: domain <id> is <name>`: built.
    Built {
        /// Its domain id.
        id: u16,
        /// Its config's `name`.
        name: String,
    },
    /// `hv: domain <id> (<name>) could not be built: <why>`.
    NotBuilt {
        /// The id it would have had.
        id: u16,
        /// Its config's `name`.
        name: String,
        /// hv's reason.
        why: String,
    },
    /// `hv: domain <id> (<name>) powered off|crashed: ...|shut down: ...`.
    Ended {
        /// Its domain id.
        id: u16,
        /// Its config's `name`.
        name: String,
        /// How.
        end: DomainEnd,
    },
}

/// Reads one of hv's lines about a domain's life (None for any other line).
pub fn domain_event(line: &str) -> Option<DomainEvent> {
    let rest = line.strip_prefix("hv: domain ")?;
    let (id, rest) = rest.split_once(' ')?;
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let id: u16 = id.parse().ok()?;
    if let Some(name) = rest.strip_prefix("is ") {
        return (!name.is_empty()).then(|| DomainEvent::Built {
            id,
            name: name.to_owned(),
        });
    }
    let rest = rest.strip_prefix('(')?;
    // The name ends at the first `) ` that a known ending follows (a reason may hold `) `).
    rest.match_indices(") ").find_map(|(at, _)| {
        let name = rest[..at].to_owned();
        let tail = &rest[at + 2..];
        if let Some(why) = tail.strip_prefix("could not be built: ") {
            Some(DomainEvent::NotBuilt {
                id,
                name,
                why: why.to_owned(),
            })
        } else {
            let end = if tail == "powered off" {
                DomainEnd::PoweredOff
            } else if let Some(r) = tail.strip_prefix("crashed: ") {
                DomainEnd::Crashed(r.to_owned())
            } else if let Some(r) = tail.strip_prefix("shut down: ") {
                DomainEnd::ShutDown(r.to_owned())
            } else {
                return None;
            };
            Some(DomainEvent::Ended { id, name, end })
        }
    })
}

/// What one run said about the domain named `name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainRun {
    /// Its id, from its `is` (or `could not be built`) line.
    pub id: Option<u16>,
    /// hv's reason if it could not be built.
    pub not_built: Option<String>,
    /// How it ended, if hv said.
    pub end: Option<DomainEnd>,
    /// Its self-test lines.
    pub lines: Lines,
}

/// Gathers what the transcript says about the domain named `name`.
pub fn domain_run(t: &Transcript, name: &str) -> DomainRun {
    let mut id = None;
    let mut not_built = None;
    let mut end = None;
    for event in t.hv.iter().filter_map(|l| domain_event(l)) {
        match event {
            DomainEvent::Built { id: i, name: n } if n == name => id = Some(i),
            DomainEvent::NotBuilt {
                id: i,
                name: n,
                why,
            } if n == name => {
                id = Some(i);
                not_built = Some(why);
            }
            DomainEvent::Ended {
                id: i,
                name: n,
                end: e,
            } if n == name && id == Some(i) => end = Some(e),
            _ => {}
        }
    }
    let console = id
        .and_then(|i| t.domains.get(&i))
        .map(Vec::as_slice)
        .unwrap_or_default();
    DomainRun {
        id,
        not_built,
        end,
        lines: read_lines(console),
    }
}

/// Whether domain `first` ended before domain `second` (by the order of hv's end lines):
/// `None` if so, else what was seen. The spinner boot needs it: a platform domain that
/// passes only after the spinner has stopped was starved, not preempted for.
pub fn ended_before(t: &Transcript, first: &str, second: &str) -> Option<String> {
    let at = |name: &str| {
        t.hv.iter().position(
            |l| matches!(domain_event(l), Some(DomainEvent::Ended { name: n, .. }) if n == name),
        )
    };
    match (at(first), at(second)) {
        (Some(a), Some(b)) if a < b => None,
        (Some(_), Some(_)) => Some(format!(
            "{first} ended only after {second}: it did not run while {second} spun"
        )),
        _ => Some(format!("{first} or {second} has no end line")),
    }
}

/// hv's scheduler line (`hv: sched: <n> context switches, ...`), the last one if several.
pub fn sched_line(t: &Transcript) -> Option<&str> {
    t.hv.iter()
        .rev()
        .find(|l| l.starts_with(SCHED_PREFIX))
        .map(String::as_str)
}

/// What a multi-domain boot expects of one domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Built, its tests all passed with a RESULT that agrees, and it powered off.
    Passes,
    /// Refused at build (`could not be built`), the others run on.
    NotBuilt,
    /// Built and powered off; its lines are not judged (an application, not a self-test).
    PowersOff,
}

/// The verdict on a boot of several domains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainsVerdict {
    /// Each `TEST` line of each expected-to-pass domain, with the domain's name.
    pub tests: Vec<(String, TestLine)>,
    /// The `HOST <unit> ok|FAIL <why>` line and whether it passed.
    pub host: (bool, String),
}

/// Judges a boot of several domains as the unit `HOST <unit>`: QEMU must exit with `exit`,
/// hv must have printed its counters, and each domain in `expect` (by name) must have done
/// what is expected of it. Problems are listed in that order.
pub fn judge_domains(
    unit: &str,
    t: &Transcript,
    end: &QemuEnd,
    expect: &[(&str, Expect)],
    exit: i32,
) -> DomainsVerdict {
    let mut problems = Vec::new();
    if *end != QemuEnd::Exited(Some(exit)) {
        problems.push(format!("{} (expected exit {exit})", end.describe()));
    }
    if matches!(end, QemuEnd::Exited(Some(EXIT_POWEROFF | EXIT_CRASH))) {
        for kind in ["exit", "hypercall"] {
            let prefix = format!("COUNTER {kind}.");
            if !t.counters.iter().any(|c| c.starts_with(&prefix)) {
                problems.push(format!("hv printed no `COUNTER {kind}.<name> <n>` lines"));
            }
        }
    }
    let mut tests = Vec::new();
    for &(name, expect) in expect {
        let run = domain_run(t, name);
        match expect {
            Expect::Passes => {
                match (&run.id, &run.not_built) {
                    (_, Some(why)) => problems.push(format!("{name} could not be built: {why}")),
                    (None, None) => {
                        problems.push(format!("hv printed no `hv: domain <id> is {name}` line"))
                    }
                    (Some(_), None) => {}
                }
                if run.id.is_some() && run.not_built.is_none() {
                    problems.extend(run.lines.problems.iter().map(|p| format!("{name}: {p}")));
                    let failed: Vec<&str> = run
                        .lines
                        .tests
                        .iter()
                        .filter(|t| !t.ok)
                        .map(|t| t.name.as_str())
                        .collect();
                    if !failed.is_empty() {
                        problems.push(format!("{name}: failed {}", failed.join(", ")));
                    }
                    match &run.end {
                        Some(DomainEnd::PoweredOff) => {}
                        Some(DomainEnd::Crashed(why)) => {
                            problems.push(format!("{name} crashed: {why}"))
                        }
                        Some(DomainEnd::ShutDown(why)) => {
                            problems.push(format!("{name} shut down: {why}"))
                        }
                        None => problems.push(format!(
                            "hv printed no `hv: domain <id> ({name}) powered off` line"
                        )),
                    }
                }
                tests.extend(
                    run.lines
                        .tests
                        .into_iter()
                        .map(|test| (name.to_owned(), test)),
                );
            }
            Expect::PowersOff => match (&run.id, &run.not_built, &run.end) {
                (_, Some(why), _) => problems.push(format!("{name} could not be built: {why}")),
                (None, None, _) => {
                    problems.push(format!("hv printed no `hv: domain <id> is {name}` line"))
                }
                (Some(_), None, Some(DomainEnd::PoweredOff)) => {}
                (Some(_), None, Some(end)) => problems.push(format!("{name}: {end:?}")),
                (Some(_), None, None) => problems.push(format!(
                    "hv printed no `hv: domain <id> ({name}) powered off` line"
                )),
            },
            Expect::NotBuilt => match (run.id, run.not_built) {
                (_, Some(_)) => {}
                (Some(id), None) => problems.push(format!(
                    "{name} was built as domain {id}; hv should have refused it"
                )),
                (None, None) => problems.push(format!(
                    "hv printed no `hv: domain <id> ({name}) could not be built: ...` line"
                )),
            },
        }
    }
    let host = if problems.is_empty() {
        (true, format!("HOST {unit} ok"))
    } else {
        (false, format!("HOST {unit} FAIL {}", problems.join("; ")))
    };
    DomainsVerdict { tests, host }
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
    /// Two domains side by side, as hv prints them (lines interleaved, one end each).
    const TWO: &str = "\
hv: 1 CPU, SVM with nested paging; domain archive 4096 bytes
hv: domain 1 is two-a
hv: domain 2 is two-b
(d1) TEST boot ok
(d2) TEST boot ok
(d2) FACT boot.x 1
(d1) TEST events ok
(d2) TEST events ok
(d1) RESULT 2 passed, 0 failed
hv: domain 1 (two-a) powered off
hv: d1 teardown: 33155 frames back, free 1046000 -> 1012845 frames
COUNTER exit.vmmcall 120
COUNTER hypercall.xen_version 9
(d2) RESULT 2 passed, 0 failed\r
hv: domain 2 (two-b) powered off
hv: d2 teardown: 33155 frames back, free 1012845 -> 1046000 frames
COUNTER exit.vmmcall 121
COUNTER hypercall.xen_version 9
hv: sched: 812 context switches, 5400 ns each on average; 97 wake-ups, latency mean 40 us, max 900 us; slice 10 ms
";

    const TWO_EXPECT: [(&str, Expect); 2] = [("two-a", Expect::Passes), ("two-b", Expect::Passes)];

    /// The spinner boot: the platform group, a spinner, and a domain too big to build.
    const SPIN: &str = "\
hv: domain 1 is spin-platform
hv: domain 2 is spinner
hv: domain 3 (toobig) could not be built: 1024 MiB asked, 300 MiB free
(d1) TEST boot ok
(d1) RESULT 1 passed, 0 failed
hv: domain 1 (spin-platform) powered off
COUNTER exit.vmmcall 120
COUNTER hypercall.xen_version 9
(d2) TEST spin ok
(d2) RESULT 1 passed, 0 failed
hv: domain 2 (spinner) powered off
COUNTER exit.vmmcall 3
COUNTER hypercall.sched_op 1
hv: sched: 900 context switches, 5400 ns each on average; 97 wake-ups, latency mean 40 us, max 900 us; slice 10 ms
";

    const SPIN_EXPECT: [(&str, Expect); 3] = [
        ("spin-platform", Expect::Passes),
        ("spinner", Expect::Passes),
        ("toobig", Expect::NotBuilt),
    ];

    #[test]
    fn the_platform_domain_must_end_before_the_spinner() {
        assert_eq!(
            ended_before(&transcript(SPIN), "spin-platform", "spinner"),
            None
        );
        let starved = SPIN
            .replace("hv: domain 1 (spin-platform) powered off\n", "")
            .replace(
                "hv: domain 2 (spinner) powered off\n",
                "hv: domain 2 (spinner) powered off\nhv: domain 1 (spin-platform) powered off\n",
            );
        let why = ended_before(&transcript(&starved), "spin-platform", "spinner").unwrap();
        assert!(why.contains("ended only after spinner"), "{why}");
        let none = SPIN.replace("hv: domain 2 (spinner) powered off\n", "");
        assert!(ended_before(&transcript(&none), "spin-platform", "spinner").is_some());
    }

    fn judge_two(text: &str, exit: i32) -> (bool, String) {
        judge_domains(
            "hv-two-domains",
            &transcript(text),
            &QemuEnd::Exited(Some(exit)),
            &TWO_EXPECT,
            EXIT_POWEROFF,
        )
        .host
    }

    fn judge_spin(text: &str, exit: i32) -> (bool, String) {
        judge_domains(
            "hv-spinner",
            &transcript(text),
            &QemuEnd::Exited(Some(exit)),
            &SPIN_EXPECT,
            EXIT_CRASH,
        )
        .host
    }

    #[test]
    fn each_domains_lines_are_kept_apart() {
        let t = transcript(TWO);
        assert_eq!(
            t.guest,
            [
                "TEST boot ok",
                "TEST events ok",
                "RESULT 2 passed, 0 failed"
            ]
        );
        assert_eq!(t.domains[&1], t.guest);
        assert_eq!(
            t.domains[&2],
            [
                "TEST boot ok",
                "FACT boot.x 1",
                "TEST events ok",
                "RESULT 2 passed, 0 failed"
            ]
        );
        assert_eq!(t.counters.len(), 4);
        assert!(t.other.is_empty(), "{:?}", t.other);
        assert_eq!(
            transcript(RECORDED).domains.keys().collect::<Vec<_>>(),
            [&1]
        );
        assert_eq!(console_line("(d12) x"), Some((12, "x")));
        assert_eq!(console_line("(d1) "), Some((1, "")));
        for not in [
            "(d) x",
            "(dx) x",
            "(d1)x",
            "(d-1) x",
            "(d99999) x",
            " (d1) x",
        ] {
            assert_eq!(console_line(not), None, "{not}");
        }
        assert_eq!(
            sched_line(&t),
            Some(
                "hv: sched: 812 context switches, 5400 ns each on average; 97 wake-ups, \
                 latency mean 40 us, max 900 us; slice 10 ms"
            )
        );
        assert_eq!(sched_line(&transcript(RECORDED)), None);
    }

    #[test]
    fn hv_lines_about_domains_are_read() {
        let built = |id, name: &str| DomainEvent::Built {
            id,
            name: name.into(),
        };
        let ended = |id, name: &str, end| DomainEvent::Ended {
            id,
            name: name.into(),
            end,
        };
        assert_eq!(
            domain_event("hv: domain 2 is two-b"),
            Some(built(2, "two-b"))
        );
        assert_eq!(
            domain_event("hv: domain 3 (big) could not be built: no memory (1024 MiB)"),
            Some(DomainEvent::NotBuilt {
                id: 3,
                name: "big".into(),
                why: "no memory (1024 MiB)".into()
            })
        );
        assert_eq!(
            domain_event("hv: domain 1 (a) powered off"),
            Some(ended(1, "a", DomainEnd::PoweredOff))
        );
        assert_eq!(
            domain_event("hv: domain 1 (a (x)) crashed: triple fault (rip 0x10) here"),
            Some(ended(
                1,
                "a (x)",
                DomainEnd::Crashed("triple fault (rip 0x10) here".into())
            ))
        );
        assert_eq!(
            domain_event("hv: domain 4 (a) shut down: reboot"),
            Some(ended(4, "a", DomainEnd::ShutDown("reboot".into())))
        );
        for not in [
            "hv: domain x is a",
            "hv: domain 1 is ",
            "hv: domain 1 (a) paused",
            "hv: d1 teardown: 1 frames back, free 1 -> 1 frames",
            "hv: domain 1 a powered off",
        ] {
            assert_eq!(domain_event(not), None, "{not}");
        }
    }

    #[test]
    fn two_domains_pass_only_if_both_passed_and_powered_off() {
        assert_eq!(judge_two(TWO, 33), (true, "HOST hv-two-domains ok".into()));
        let v = judge_domains(
            "hv-two-domains",
            &transcript(TWO),
            &QemuEnd::Exited(Some(33)),
            &TWO_EXPECT,
            EXIT_POWEROFF,
        );
        let units: Vec<_> = v
            .tests
            .iter()
            .map(|(n, t)| format!("{n}/{}", t.line))
            .collect();
        assert_eq!(
            units,
            [
                "two-a/TEST boot ok",
                "two-a/TEST events ok",
                "two-b/TEST boot ok",
                "two-b/TEST events ok"
            ]
        );
        let fail = |text: &str, exit| {
            let (ok, line) = judge_two(text, exit);
            assert!(!ok, "{line}");
            line
        };
        assert_eq!(
            fail(TWO, 35),
            "HOST hv-two-domains FAIL QEMU exit 35 (guest crashed) (expected exit 33)"
        );
        assert_eq!(
            fail(
                &TWO.replace(
                    "hv: domain 2 (two-b) powered off",
                    "hv: domain 2 (two-b) crashed: #GP"
                ),
                35
            ),
            "HOST hv-two-domains FAIL QEMU exit 35 (guest crashed) (expected exit 33); \
             two-b crashed: #GP"
        );
        assert_eq!(
            fail(&TWO.replace("hv: domain 1 (two-a) powered off\n", ""), 33),
            "HOST hv-two-domains FAIL hv printed no `hv: domain <id> (two-a) powered off` line"
        );
        assert_eq!(
            fail(
                &TWO.replace("(d2) TEST events ok", "(d2) TEST events FAIL lost")
                    .replace(
                        "(d2) RESULT 2 passed, 0 failed",
                        "(d2) RESULT 1 passed, 1 failed"
                    ),
                33
            ),
            "HOST hv-two-domains FAIL two-b: failed events"
        );
        assert_eq!(
            fail(
                &TWO.replace("(d1) RESULT 2 passed", "(d1) RESULT 3 passed"),
                33
            ),
            "HOST hv-two-domains FAIL two-a: RESULT says 3 passed, 0 failed but the TEST \
             lines show 2 ok, 0 not ok"
        );
        assert_eq!(
            fail(&TWO.replace("(d2) RESULT 2 passed, 0 failed\r\n", ""), 33),
            "HOST hv-two-domains FAIL two-b: no RESULT line"
        );
        assert_eq!(
            fail(&TWO.replace("hv: domain 2 is two-b\n", ""), 33),
            "HOST hv-two-domains FAIL hv printed no `hv: domain <id> is two-b` line"
        );
        assert_eq!(
            fail(
                &TWO.replace(
                    "hv: domain 2 is two-b",
                    "hv: domain 2 (two-b) could not be built: out of memory"
                ),
                33
            ),
            "HOST hv-two-domains FAIL two-b could not be built: out of memory"
        );
        let no_counters: String = TWO
            .lines()
            .filter(|l| !l.starts_with("COUNTER"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(
            fail(&no_counters, 33),
            "HOST hv-two-domains FAIL hv printed no `COUNTER exit.<name> <n>` lines; \
             hv printed no `COUNTER hypercall.<name> <n>` lines"
        );
        let (ok, line) = judge_domains(
            "hv-two-domains",
            &transcript(""),
            &QemuEnd::Timeout { secs: 120 },
            &TWO_EXPECT,
            EXIT_POWEROFF,
        )
        .host;
        assert!(!ok);
        assert!(
            line.starts_with("HOST hv-two-domains FAIL hard timeout after 120 s"),
            "{line}"
        );
    }

    #[test]
    fn the_spinner_run_passes_only_as_agreed() {
        assert_eq!(judge_spin(SPIN, 35), (true, "HOST hv-spinner ok".into()));
        let fail = |text: &str, exit| {
            let (ok, line) = judge_spin(text, exit);
            assert!(!ok, "{line}");
            line
        };
        assert_eq!(
            fail(SPIN, 33),
            "HOST hv-spinner FAIL QEMU exit 33 (guest powered off) (expected exit 35)"
        );
        assert_eq!(
            fail(
                &SPIN.replace(
                    "hv: domain 3 (toobig) could not be built: 1024 MiB asked, 300 MiB free",
                    "hv: domain 3 is toobig"
                ),
                35
            ),
            "HOST hv-spinner FAIL toobig was built as domain 3; hv should have refused it"
        );
        assert_eq!(
            fail(
                &SPIN.replace(
                    "hv: domain 3 (toobig) could not be built: 1024 MiB asked, 300 MiB free\n",
                    ""
                ),
                35
            ),
            "HOST hv-spinner FAIL hv printed no `hv: domain <id> (toobig) could not be built: \
             ...` line"
        );
        assert_eq!(
            fail(
                &SPIN.replace("(d2) RESULT 1 passed", "(d2) RESULT 0 passed"),
                35
            ),
            "HOST hv-spinner FAIL spinner: RESULT says 0 passed, 0 failed but the TEST lines \
             show 1 ok, 0 not ok"
        );
        assert_eq!(
            fail(
                &SPIN.replace(
                    "hv: domain 2 (spinner) powered off",
                    "hv: domain 2 (spinner) crashed: watchdog"
                ),
                35
            ),
            "HOST hv-spinner FAIL spinner crashed: watchdog"
        );
        // The spinner starved the platform domain: it never finished.
        let starved = SPIN
            .replace("(d1) RESULT 1 passed, 0 failed\n", "")
            .replace("hv: domain 1 (spin-platform) powered off\n", "");
        assert_eq!(
            fail(&starved, 35),
            "HOST hv-spinner FAIL spin-platform: no RESULT line; hv printed no `hv: domain \
             <id> (spin-platform) powered off` line"
        );
        assert_eq!(
            fail(
                &SPIN.replace("(d2) TEST spin ok", "(d2) TEST spin FAIL late"),
                35
            ),
            "HOST hv-spinner FAIL spinner: RESULT says 1 passed, 0 failed but the TEST lines \
             show 0 ok, 1 not ok; spinner: failed spin"
        );
    }
}
