//! Reading the serial transcript of a stock-Xen boot, and judging the guest's self-test.
//!
//! The serial port carries Xen's log, dom0's console and, forwarded by
//! `xtask/dom0/run-job.sh`, the guest's console. Lines that matter start at column 0:
//! `G|<guest console line>`, and `PVXEN <event>` from dom0's scripts (`ready`, `created`,
//! `end <how> <seconds>`, `console-lines <n>`, `xl: ...`, `dmesg: ...`, `dom0-failed ...`,
//! `done`). Everything here is pure: it takes lines and returns verdicts, so the host tests
//! below can feed it synthetic transcripts.

pub use crate::selftest::TestLine;
use crate::selftest::{injected_problems, read_lines};

/// The number of `FLOOD <i> 2000` lines the guest's `console-flood` test prints.
pub const FLOOD_TOTAL: u32 = 2000;

/// How the guest domain ended, as dom0 saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuestEnd {
    /// `SCHEDOP_shutdown(poweroff)`.
    Poweroff,
    /// Crashed: `SCHEDOP_shutdown(crash)` or a fault Xen could not deliver.
    Crash,
    /// Shut down for another reason (the Xen shutdown code: 1 reboot, 2 suspend, 4 watchdog).
    Shutdown(String),
    /// Still running when dom0's guest timeout expired; destroyed.
    Timeout,
    /// `xl create` failed: the guest never ran.
    CreateFailed,
    /// The domain disappeared without dom0 seeing its shutdown state.
    Vanished,
}

impl GuestEnd {
    fn parse(word: &str) -> Self {
        match word {
            "poweroff" => Self::Poweroff,
            "crash" => Self::Crash,
            "timeout" => Self::Timeout,
            "create-failed" => Self::CreateFailed,
            "vanished" => Self::Vanished,
            other => Self::Shutdown(other.trim_start_matches("shutdown-").to_owned()),
        }
    }

    /// Words for reports: "powered off", "crashed", ...
    pub fn describe(&self) -> String {
        match self {
            Self::Poweroff => "powered off".into(),
            Self::Crash => "crashed".into(),
            // Xen turns an HVM/PVH triple fault into a reboot.
            Self::Shutdown(code) if code == "1" => {
                "rebooted (reason code 1, which is how Xen reports a triple fault)".into()
            }
            Self::Shutdown(code) => format!("shut down with reason code {code}"),
            Self::Timeout => "still ran at dom0's guest timeout and was destroyed".into(),
            Self::CreateFailed => "was not created (xl create failed)".into(),
            Self::Vanished => "vanished without a shutdown state".into(),
        }
    }
}

/// Something a serial line told the boot loop.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// dom0's toolstack is up.
    Ready,
    /// `xl create` returned; the guest runs.
    Created,
    /// One line of the guest's console.
    Guest(String),
    /// The guest ended.
    Ended(GuestEnd),
    /// dom0 is finished; QEMU can be stopped.
    Done,
    /// Xen or dom0 died: nothing more will come.
    Fatal(String),
}

/// What the serial lines of one boot said, collected line by line.
#[derive(Debug, Default, Clone)]
pub struct Transcript {
    /// The guest's console lines, in order.
    pub guest: Vec<String>,
    /// How the guest ended and after how many seconds, once dom0 said so.
    pub end: Option<(GuestEnd, String)>,
    /// How many guest lines dom0 says it forwarded.
    pub forwarded: Option<usize>,
    /// Output of a failed `xl create`.
    pub xl_output: Vec<String>,
    /// Xen's log lines about the guest, sent by dom0 after a crash or timeout.
    pub dmesg: Vec<String>,
    /// Why dom0 or Xen failed, if they did.
    pub fatal: Option<String>,
    /// dom0's toolstack came up.
    pub ready: bool,
    /// dom0 said `done`.
    pub done: bool,
    /// What the job's `run` and `digest` steps gave: (key, value), in order.
    pub results: Vec<(String, String)>,
    /// What `wait-line` steps found: (seen, text).
    pub lines: Vec<(bool, String)>,
    /// Steps dom0 could not carry out.
    pub failed_steps: Vec<String>,
    /// For each `pause` step, how many guest lines had arrived when the guest was paused (and
    /// its console drained): the lines before it are all the guest printed until then.
    pub pauses: Vec<usize>,
    /// For each `xl create` that returned, how many guest lines had arrived before it: the
    /// lines from there on are that domain's and its successors'.
    pub creates: Vec<usize>,
}

impl Transcript {
    /// The value of the job's result `key` (the last one if several).
    pub fn result(&self, key: &str) -> Option<&str> {
        self.results
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

impl Transcript {
    /// Takes one serial line (without its line end) and says what it means, if anything.
    pub fn push(&mut self, raw: &str) -> Option<Event> {
        let line = raw.trim_end_matches('\r');
        if let Some(guest) = line.strip_prefix("G|") {
            self.guest.push(guest.to_owned());
            return Some(Event::Guest(guest.to_owned()));
        }
        if let Some(event) = line.strip_prefix("PVXEN ") {
            let (word, rest) = event.split_once(' ').unwrap_or((event, ""));
            return match word {
                "ready" => {
                    self.ready = true;
                    Some(Event::Ready)
                }
                "created" => {
                    self.creates.push(self.guest.len());
                    Some(Event::Created)
                }
                "end" => {
                    let (how, secs) = rest.split_once(' ').unwrap_or((rest, ""));
                    let end = GuestEnd::parse(how);
                    self.end = Some((end.clone(), secs.to_owned()));
                    Some(Event::Ended(end))
                }
                "console-lines" => {
                    self.forwarded = rest.trim().parse().ok();
                    None
                }
                "result" => {
                    let (key, value) = rest.split_once(' ').unwrap_or((rest, "-"));
                    self.results.push((key.to_owned(), value.to_owned()));
                    None
                }
                "line" => {
                    let (what, text) = rest.split_once(' ').unwrap_or((rest, ""));
                    self.lines.push((what == "seen", text.to_owned()));
                    None
                }
                "step-failed" => {
                    self.failed_steps.push(rest.to_owned());
                    None
                }
                "paused" => {
                    self.pauses.push(self.guest.len());
                    None
                }
                "xl:" => {
                    self.xl_output.push(rest.to_owned());
                    None
                }
                "dmesg:" => {
                    self.dmesg.push(rest.to_owned());
                    None
                }
                "dom0-failed" => {
                    let why = format!("dom0 failed: {rest}");
                    self.fatal.get_or_insert(why.clone());
                    Some(Event::Fatal(why))
                }
                "done" => {
                    self.done = true;
                    Some(Event::Done)
                }
                _ => None,
            };
        }
        // Xen's own last words; with -no-reboot QEMU would idle or exit a few seconds later.
        for marker in [
            "Panic on CPU",
            "Hardware Dom0 crashed",
            "Hardware Dom0 halted",
        ] {
            if line.contains(marker) {
                let why = format!("Xen: {}", line.trim());
                self.fatal.get_or_insert(why.clone());
                return Some(Event::Fatal(why));
            }
        }
        None
    }
}

/// How the boot as a whole ended (the host's view).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootEnd {
    /// dom0 said `done`.
    Done,
    /// The host's hard timeout expired; QEMU was killed.
    Timeout {
        /// The timeout in seconds.
        secs: u64,
    },
    /// QEMU exited by itself before dom0 said `done`.
    QemuExited(String),
    /// Xen or dom0 reported a fatal error.
    Fatal(String),
    /// The caller asked the boot to stop (`cargo xtask run`'s Ctrl-C); QEMU was stopped.
    Stopped,
}

/// The verdict on one self-test boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The guest's `TEST`, `FACT` and `RESULT` lines, verbatim, in order.
    pub shown: Vec<String>,
    /// The `TEST` lines, parsed.
    pub tests: Vec<TestLine>,
    /// `(passed, failed)` of the (single, well-formed) `RESULT` line.
    pub result: Option<(u64, u64)>,
    /// The harness's own `HOST <name> ok|FAIL <why>` lines, each with whether it passed.
    pub host: Vec<(bool, String)>,
}

impl Verdict {
    /// Prints the guest's `TEST`/`RESULT` lines and the `HOST` lines, and records one unit per
    /// `TEST` and per `HOST` line, labelled with `tier`. Returns whether all of them passed.
    pub fn record(&self, tally: &mut crate::tally::Tally, tier: &str) -> bool {
        for line in &self.shown {
            println!("{line}");
        }
        let mut all_ok = true;
        for test in &self.tests {
            tally.record(test.ok, format!("{tier}: {}", test.line));
            all_ok &= test.ok;
        }
        for (ok, line) in &self.host {
            println!("{line}");
            tally.record(*ok, format!("{tier}: {line}"));
            all_ok &= ok;
        }
        all_ok
    }
}

/// Prints an injected-failure run's `TEST`/`RESULT` lines prefixed `inject: `, then its one
/// unit: `HOST inject-fail <test> caught` or why not. Returns whether it was caught.
pub fn record_injected(
    tally: &mut crate::tally::Tally,
    tier: &str,
    test: &str,
    guest: &[String],
    caught: Result<(), String>,
) -> bool {
    for line in guest
        .iter()
        .filter(|l| l.starts_with("TEST ") || l.starts_with("RESULT"))
    {
        println!("inject: {line}");
    }
    match caught {
        Ok(()) => {
            println!("HOST inject-fail {test} caught");
            tally.pass();
            true
        }
        Err(why) => {
            println!("HOST inject-fail {test} NOT caught: {why}");
            tally.fail(format!(
                "{tier}: injected failure of {test} not caught: {why}"
            ));
            false
        }
    }
}

/// Checks that `FLOOD <i> 2000` arrived for every i in 1..=2000, exactly once and in order.
/// Returns `Ok(())` or the reasons it did not.
pub fn check_flood(guest: &[String]) -> Result<(), String> {
    let total = FLOOD_TOTAL as usize;
    let mut seen = vec![0u32; total + 1];
    let mut problems = Vec::new();
    let mut malformed = Vec::new();
    let mut previous = 0u32;
    let mut disorder: Option<(u32, u32)> = None;
    for line in guest.iter().filter(|l| l.starts_with("FLOOD ")) {
        let mut words = line.split(' ').skip(1);
        let index = words.next().and_then(|w| w.parse::<u32>().ok());
        let of = words.next().and_then(|w| w.parse::<u32>().ok());
        match (index, of, words.next()) {
            (Some(i), Some(FLOOD_TOTAL), None) if (1..=FLOOD_TOTAL).contains(&i) => {
                seen[i as usize] += 1;
                if i <= previous && disorder.is_none() {
                    disorder = Some((i, previous));
                }
                previous = previous.max(i);
            }
            _ => malformed.push(line.clone()),
        }
    }
    let missing: Vec<usize> = (1..=total).filter(|&i| seen[i] == 0).collect();
    if let Some(first) = missing.first() {
        problems.push(format!(
            "{} of {total} lines missing, first missing {first}",
            missing.len()
        ));
    }
    let duplicated: Vec<usize> = (1..=total).filter(|&i| seen[i] > 1).collect();
    if let Some(first) = duplicated.first() {
        problems.push(format!(
            "{} lines repeated, first {first}",
            duplicated.len()
        ));
    }
    if let Some((i, after)) = disorder.filter(|(i, _)| seen[*i as usize] == 1) {
        problems.push(format!("out of order: {i} after {after}"));
    }
    if let Some(first) = malformed.first() {
        problems.push(format!("{} malformed, first {first:?}", malformed.len()));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// Reasons the boot or the guest's run went wrong at the harness's level (not a test's).
fn run_problems(t: &Transcript, boot: &BootEnd) -> Vec<String> {
    let mut problems = Vec::new();
    match boot {
        BootEnd::Done => {}
        BootEnd::Timeout { secs } => {
            let phase = if !t.ready {
                "before dom0's toolstack was ready"
            } else if t.end.is_none() {
                "while the guest ran"
            } else {
                "after the guest ended"
            };
            problems.push(format!("timeout: QEMU killed after {secs} s, {phase}"));
        }
        BootEnd::QemuExited(status) => {
            problems.push(format!("QEMU exited ({status}) before dom0 finished"));
        }
        BootEnd::Fatal(why) => problems.push(why.clone()),
        BootEnd::Stopped => problems.push("stopped on request before dom0 finished".to_owned()),
    }
    if let Some(fatal) = &t.fatal
        && !matches!(boot, BootEnd::Fatal(w) if w == fatal)
    {
        problems.push(fatal.clone());
    }
    match &t.end {
        None if matches!(boot, BootEnd::Done) => {
            problems.push("dom0 never reported the guest's end".into())
        }
        None => {}
        Some((GuestEnd::CreateFailed, _)) => {
            // The first error names the cause; the ones after it are libxl cleaning up.
            let cause = t
                .xl_output
                .iter()
                .find(|l| l.contains("error"))
                .or_else(|| t.xl_output.iter().rev().find(|l| !l.trim().is_empty()));
            problems.push(format!(
                "xl create failed: {}",
                cause.map_or("(no output)", String::as_str)
            ));
        }
        Some((GuestEnd::Timeout, secs)) => problems.push(format!(
            "guest timeout: still running after {secs} s, destroyed"
        )),
        Some(_) => {}
    }
    if t.done
        && let Some(sent) = t.forwarded
        && sent != t.guest.len()
    {
        problems.push(format!(
            "console transport lost lines: dom0 forwarded {sent}, the host received {}",
            t.guest.len()
        ));
    }
    problems
}

/// Judges a `selftest=...` boot: the guest's TEST lines, its RESULT, how it ended, and the
/// harness's own checks (`HOST console-flood`, `HOST xen-run`).
pub fn judge_selftest(t: &Transcript, boot: &BootEnd) -> Verdict {
    let lines = read_lines(&t.guest);
    let tests = lines.tests;
    let mut host = Vec::new();
    let flood_ran = tests.iter().any(|t| t.name == "console-flood")
        || t.guest.iter().any(|l| l.starts_with("FLOOD "));
    if flood_ran {
        host.push(match check_flood(&t.guest) {
            Ok(()) => (true, "HOST console-flood ok".to_owned()),
            Err(why) => (false, format!("HOST console-flood FAIL {why}")),
        });
    }

    let mut problems = run_problems(t, boot);
    // A guest that printed nothing because the run failed first needs no more reasons.
    let judge_output = problems.is_empty() || !t.guest.is_empty();
    if judge_output {
        problems.extend(lines.problems);
    }
    let failed = tests.iter().filter(|t| !t.ok).count();
    let result = lines.result;
    match t.end.as_ref().map(|e| &e.0) {
        Some(GuestEnd::Poweroff) if failed > 0 => {
            problems.push("guest powered off although tests failed (it should crash)".into())
        }
        Some(GuestEnd::Poweroff) | Some(GuestEnd::Timeout | GuestEnd::CreateFailed) | None => {}
        Some(GuestEnd::Crash) => problems.push(match result {
            Some((p, f)) => format!("guest crashed (after RESULT {p} passed, {f} failed)"),
            None => "guest crashed".into(),
        }),
        Some(other) => {
            // A triple fault whose dump shows Xen's own RIP and CS: say so (issue 28).
            let dump = super::timer_storm::triple_fault_dump(&t.dmesg);
            problems.push(match super::timer_storm::host_state_verdict(&dump) {
                Some(why) => format!("guest {}: {why}", other.describe()),
                None => format!("guest {}", other.describe()),
            })
        }
    }
    host.push(if problems.is_empty() {
        (true, "HOST xen-run ok".to_owned())
    } else {
        (false, format!("HOST xen-run FAIL {}", problems.join("; ")))
    });
    Verdict {
        shown: lines.shown,
        tests,
        result,
        host,
    }
}

/// Judges a boot with `selftest-inject-fail=<test>`: it counts as caught only if the guest
/// reported exactly that test failing, its RESULT counted the failure, and it crashed.
/// Returns `Ok(())` if caught, else why not.
pub fn judge_injected(t: &Transcript, boot: &BootEnd, test: &str) -> Result<(), String> {
    let mut why = run_problems(t, boot);
    if !why.is_empty() && t.guest.is_empty() {
        return Err(why.join("; "));
    }
    why.extend(injected_problems(&t.guest, test));
    match t.end.as_ref().map(|e| &e.0) {
        // Timeouts and failed creates are already among the run's problems.
        Some(GuestEnd::Crash | GuestEnd::Timeout | GuestEnd::CreateFailed) | None => {}
        Some(other) => why.push(format!("guest {} instead of crashing", other.describe())),
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

    fn transcript(lines: &[&str]) -> Transcript {
        let mut t = Transcript::default();
        for l in lines {
            t.push(l);
        }
        t
    }

    fn flood(range: impl Iterator<Item = u32>) -> Vec<String> {
        range.map(|i| format!("G|FLOOD {i} 2000\r")).collect()
    }

    /// A complete serial transcript of a guest that printed `guest` then ended as `end`.
    fn boot(guest: &[String], end: &str) -> Vec<String> {
        let mut lines = vec![
            "(XEN) Xen version 4.17.7".to_owned(),
            "PVXEN ready at 8.9".to_owned(),
            "PVXEN created at 9.6".to_owned(),
        ];
        lines.extend(guest.iter().cloned());
        lines.push(format!("PVXEN end {end} 1.20"));
        lines.push(format!("PVXEN console-lines {}", guest.len()));
        lines.push("PVXEN done".to_owned());
        lines
    }

    fn judge(lines: &[String], boot_end: BootEnd) -> Verdict {
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        judge_selftest(&transcript(&refs), &boot_end)
    }

    fn guest(lines: &[&str]) -> Vec<String> {
        lines.iter().map(|l| format!("G|{l}")).collect()
    }

    #[test]
    fn a_triple_fault_in_xen_s_own_state_is_named() {
        let g = guest(&["TEST a ok"]);
        let mut lines = boot(&g, "shutdown-1");
        let at = lines.len() - 1;
        for (i, d) in [
            "(XEN) d2v0 Triple fault - invoking HVM shutdown action 1",
            "(XEN) RIP:    e008:[<ffff82d0402044a5>]",
        ]
        .iter()
        .enumerate()
        {
            lines.insert(at + i, format!("PVXEN dmesg: {d}"));
        }
        let v = judge(&lines, BootEnd::Done);
        let line = &v.host[0].1;
        assert!(
            line.contains("triple fault)") && line.contains("Xen's own state"),
            "{line}"
        );
        // Without the dump, only the end.
        let v = judge(&boot(&g, "shutdown-1"), BootEnd::Done);
        assert!(!v.host[0].1.contains("Xen's own state"), "{:?}", v.host);
    }

    #[test]
    fn job_results_lines_and_failed_steps_are_kept() {
        let mut t = Transcript::default();
        assert_eq!(t.push("PVXEN result f_req-before 0"), None);
        assert_eq!(t.push("PVXEN result f_req-after 3"), None);
        assert_eq!(t.push("PVXEN result empty"), None);
        assert_eq!(t.push("PVXEN result f_req-after 4"), None);
        assert_eq!(t.push("PVXEN line seen blk: ready"), None);
        assert_eq!(t.push("PVXEN step-failed frobnicate x"), None);
        assert_eq!(t.push("G|before"), Some(Event::Guest("before".into())));
        assert_eq!(t.push("PVXEN paused at 12.5"), None);
        assert_eq!(t.pauses, [1]);
        assert_eq!(t.result("f_req-before"), Some("0"));
        assert_eq!(t.result("f_req-after"), Some("4"), "the last one wins");
        assert_eq!(t.result("empty"), Some("-"));
        assert_eq!(t.result("missing"), None);
        assert_eq!(t.lines, [(true, "blk: ready".to_owned())]);
        assert_eq!(t.failed_steps, ["frobnicate x"]);
    }

    #[test]
    fn events_from_serial_lines() {
        let mut t = Transcript::default();
        assert_eq!(t.push("PVXEN ready at 9.1"), Some(Event::Ready));
        assert_eq!(t.push("G|hello\r"), Some(Event::Guest("hello".into())));
        assert_eq!(t.push("(XEN) d1v0 something"), None);
        assert_eq!(
            t.push("PVXEN end crash 2.5"),
            Some(Event::Ended(GuestEnd::Crash))
        );
        assert_eq!(t.push("PVXEN done"), Some(Event::Done));
        assert!(matches!(
            t.push("(XEN) Panic on CPU 0:"),
            Some(Event::Fatal(_))
        ));
        assert_eq!(t.guest, ["hello"]);
        assert_eq!(t.end, Some((GuestEnd::Crash, "2.5".into())));
        assert!(t.ready && t.done);
        // Not at column 0: not ours.
        assert_eq!(t.push(" G|x"), None);
        assert_eq!(t.push("xG|PVXEN done"), None);
    }

    #[test]
    fn all_passing_with_flood() {
        let mut g = guest(&[
            "boot banner",
            "TEST hypercall-page ok",
            "TEST xen-version ok",
        ]);
        g.extend(flood(1..=2000));
        g.extend(guest(&[
            "TEST console-flood ok",
            "RESULT 3 passed, 0 failed",
        ]));
        let v = judge(&boot(&g, "poweroff"), BootEnd::Done);
        assert_eq!(v.tests.len(), 3);
        assert!(v.tests.iter().all(|t| t.ok));
        assert_eq!(v.result, Some((3, 0)));
        assert_eq!(
            v.shown.len(),
            4,
            "FLOOD and other lines are not shown: {:?}",
            v.shown
        );
        assert_eq!(v.shown[0], "TEST hypercall-page ok");
        assert_eq!(
            v.host,
            [
                (true, "HOST console-flood ok".to_owned()),
                (true, "HOST xen-run ok".to_owned())
            ]
        );
    }

    #[test]
    fn flood_loss_duplicates_and_order() {
        let g: Vec<String> = (1..=2000u32)
            .filter(|i| ![417, 418, 1999].contains(i))
            .map(|i| format!("FLOOD {i} 2000"))
            .collect();
        assert_eq!(
            check_flood(&g),
            Err("3 of 2000 lines missing, first missing 417".into())
        );
        let mut g: Vec<String> = (1..=2000u32).map(|i| format!("FLOOD {i} 2000")).collect();
        g.insert(10, "FLOOD 5 2000".into());
        let err = check_flood(&g).unwrap_err();
        assert!(err.contains("1 lines repeated, first 5"), "{err}");
        let mut g: Vec<String> = (1..=2000u32).map(|i| format!("FLOOD {i} 2000")).collect();
        g.swap(100, 101);
        assert_eq!(check_flood(&g), Err("out of order: 101 after 102".into()));
        let mut g: Vec<String> = (1..=2000u32).map(|i| format!("FLOOD {i} 2000")).collect();
        g[7] = "FLOOD 8 20".into();
        let err = check_flood(&g).unwrap_err();
        assert!(
            err.starts_with("1 of 2000 lines missing, first missing 8"),
            "{err}"
        );
        assert!(err.contains("1 malformed"), "{err}");
        assert!(
            check_flood(&[])
                .unwrap_err()
                .starts_with("2000 of 2000 lines missing, first missing 1")
        );
    }

    #[test]
    fn flood_test_without_lines_fails() {
        let g = guest(&["TEST console-flood ok", "RESULT 1 passed, 0 failed"]);
        let v = judge(&boot(&g, "poweroff"), BootEnd::Done);
        assert!(!v.host[0].0);
        assert!(
            v.host[0]
                .1
                .starts_with("HOST console-flood FAIL 2000 of 2000 lines missing")
        );
        assert!(v.host[1].0, "the run itself is fine: {:?}", v.host[1]);
    }

    #[test]
    fn failing_test_and_crash() {
        let g = guest(&[
            "TEST a ok",
            "TEST xen-version FAIL injected failure",
            "RESULT 1 passed, 1 failed",
        ]);
        let v = judge(&boot(&g, "crash"), BootEnd::Done);
        assert_eq!(v.tests.iter().filter(|t| !t.ok).count(), 1);
        assert_eq!(
            v.host,
            [(
                false,
                "HOST xen-run FAIL guest crashed (after RESULT 1 passed, 1 failed)".to_owned()
            )]
        );
        let refs: Vec<String> = boot(&g, "crash");
        let refs: Vec<&str> = refs.iter().map(String::as_str).collect();
        assert_eq!(
            judge_injected(&transcript(&refs), &BootEnd::Done, "xen-version"),
            Ok(())
        );
    }

    #[test]
    fn injected_failure_not_caught() {
        let check = |g: &[&str], end: &str, boot_end: BootEnd| {
            let lines = boot(&guest(g), end);
            let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
            judge_injected(&transcript(&refs), &boot_end, "xen-version").unwrap_err()
        };
        let why = check(
            &["TEST xen-version ok", "RESULT 1 passed, 0 failed"],
            "poweroff",
            BootEnd::Done,
        );
        assert!(why.contains("TEST xen-version passed"), "{why}");
        assert!(why.contains("counts no failure"), "{why}");
        assert!(why.contains("powered off instead of crashing"), "{why}");
        let why = check(
            &["TEST xen-version FAIL x", "RESULT 0 passed, 1 failed"],
            "poweroff",
            BootEnd::Done,
        );
        assert_eq!(why, "guest powered off instead of crashing");
        let why = check(&["TEST xen-version FAIL x"], "crash", BootEnd::Done);
        assert_eq!(why, "no RESULT line");
        let why = check(
            &["TEST other FAIL x", "RESULT 0 passed, 1 failed"],
            "crash",
            BootEnd::Done,
        );
        assert_eq!(why, "no TEST xen-version line");
    }

    #[test]
    fn missing_or_inconsistent_result() {
        let v = judge(&boot(&guest(&["TEST a ok"]), "poweroff"), BootEnd::Done);
        assert_eq!(
            v.host,
            [(false, "HOST xen-run FAIL no RESULT line".to_owned())]
        );
        let v = judge(
            &boot(
                &guest(&["TEST a ok", "RESULT 2 passed, 0 failed"]),
                "poweroff",
            ),
            BootEnd::Done,
        );
        assert_eq!(
            v.host[0].1,
            "HOST xen-run FAIL RESULT says 2 passed, 0 failed but the TEST lines show 1 ok, 0 not ok"
        );
        let v = judge(
            &boot(&guest(&["TEST a ok", "RESULT: all good"]), "poweroff"),
            BootEnd::Done,
        );
        assert_eq!(
            v.host[0].1,
            "HOST xen-run FAIL malformed RESULT line \"RESULT: all good\""
        );
        let v = judge(
            &boot(
                &guest(&["TEST a FAIL x", "RESULT 0 passed, 1 failed"]),
                "poweroff",
            ),
            BootEnd::Done,
        );
        assert!(
            v.host[0]
                .1
                .ends_with("guest powered off although tests failed (it should crash)")
        );
        let v = judge(
            &boot(
                &guest(&["TEST a maybe", "RESULT 0 passed, 1 failed"]),
                "crash",
            ),
            BootEnd::Done,
        );
        assert!(!v.tests[0].ok, "a malformed TEST line counts as failed");
    }

    #[test]
    fn timeouts_and_infrastructure_failures() {
        let lines = ["(XEN) Xen version 4.17.7".to_owned()];
        let v = judge(&lines, BootEnd::Timeout { secs: 300 });
        assert_eq!(
            v.host[0].1,
            "HOST xen-run FAIL timeout: QEMU killed after 300 s, before dom0's toolstack was ready"
        );
        let mut lines = boot(&guest(&["TEST a ok"]), "timeout");
        lines.truncate(lines.len() - 2);
        let v = judge(&lines, BootEnd::Timeout { secs: 300 });
        assert!(
            v.host[0].1.contains("after the guest ended"),
            "{}",
            v.host[0].1
        );
        assert!(
            v.host[0]
                .1
                .contains("guest timeout: still running after 1.20 s"),
            "{}",
            v.host[0].1
        );
        let lines: Vec<String> = [
            "PVXEN ready at 9",
            "PVXEN xl: Parsing config from /pvxen/guest.cfg",
            "PVXEN xl: xc: error: panic: no loader found",
            "PVXEN xl: libxl: error: Destruction of domain failed",
            "PVXEN end create-failed 0.4",
            "PVXEN console-lines 0",
            "PVXEN done",
        ]
        .map(String::from)
        .to_vec();
        let v = judge(&lines, BootEnd::Done);
        assert_eq!(
            v.host[0].1,
            "HOST xen-run FAIL xl create failed: xc: error: panic: no loader found"
        );
        let v = judge(
            &["(XEN) Panic on CPU 0:".to_owned()],
            BootEnd::Fatal("Xen: (XEN) Panic on CPU 0:".into()),
        );
        assert!(
            v.host[0]
                .1
                .ends_with("HOST xen-run FAIL Xen: (XEN) Panic on CPU 0:")
        );
    }

    #[test]
    fn lost_console_lines_are_reported() {
        let mut lines = boot(
            &guest(&["TEST a ok", "RESULT 1 passed, 0 failed"]),
            "poweroff",
        );
        lines.remove(3); // drop "G|TEST a ok" on the way
        let v = judge(&lines, BootEnd::Done);
        assert!(
            v.host[0]
                .1
                .contains("console transport lost lines: dom0 forwarded 2, the host received 1")
        );
    }
}
