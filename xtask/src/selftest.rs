//! The guest's self-test line protocol as the harnesses read it, whatever carried the lines
//! (stock Xen's console forwarding or `hv`'s serial port): `TEST <name> ok|FAIL <why>`,
//! `FACT <test>.<key> <value>` and one `RESULT <N> passed, <M> failed`. Pure functions over
//! the guest's lines, shared by [`crate::xen::console`] and [`crate::hv`].

/// One `TEST` line of the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestLine {
    /// The test's name.
    pub name: String,
    /// `ok` (true) or `FAIL` (false); a malformed line counts as failed.
    pub ok: bool,
    /// The line as the guest printed it.
    pub line: String,
}

/// Parses a `TEST` line (None for other lines).
pub fn parse_test(line: &str) -> Option<TestLine> {
    let rest = line.strip_prefix("TEST ")?;
    let mut words = rest.splitn(3, ' ');
    let name = words.next().unwrap_or("").to_owned();
    let status = words.next().unwrap_or("");
    let ok = status == "ok" && words.next().is_none() && !name.is_empty();
    Some(TestLine {
        name,
        ok,
        line: line.to_owned(),
    })
}

/// `RESULT <N> passed, <M> failed`.
pub fn parse_result(line: &str) -> Option<(u64, u64)> {
    let rest = line.strip_prefix("RESULT ")?;
    let (passed, rest) = rest.split_once(" passed, ")?;
    let failed = rest.strip_suffix(" failed")?;
    Some((passed.parse().ok()?, failed.parse().ok()?))
}

/// The test a `FACT <test>.<key> <value>` line belongs to.
pub fn fact_test(line: &str) -> Option<&str> {
    let rest = line.strip_prefix("FACT ")?;
    let (test, _) = rest.split_once('.')?;
    (!test.is_empty() && !test.contains(' ')).then_some(test)
}

/// What the guest's self-test lines say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lines {
    /// The `TEST`, `FACT` and `RESULT` lines, verbatim, in order (the output contract).
    pub shown: Vec<String>,
    /// The `TEST` lines, parsed.
    pub tests: Vec<TestLine>,
    /// `(passed, failed)` of the single well-formed `RESULT` line.
    pub result: Option<(u64, u64)>,
    /// What is wrong with the lines themselves: no, several or a malformed `RESULT`, one that
    /// disagrees with the `TEST` lines, no `TEST` line.
    pub problems: Vec<String>,
}

/// Reads the guest's lines.
pub fn read_lines(guest: &[String]) -> Lines {
    let mut shown = Vec::new();
    let mut tests = Vec::new();
    let mut results = Vec::new();
    let mut bad_results = Vec::new();
    for line in guest {
        if let Some(test) = parse_test(line) {
            shown.push(line.clone());
            tests.push(test);
        } else if line.starts_with("RESULT") {
            shown.push(line.clone());
            match parse_result(line) {
                Some(r) => results.push(r),
                None => bad_results.push(line.clone()),
            }
        } else if line.starts_with("FACT ") {
            shown.push(line.clone());
        }
    }
    let mut problems = Vec::new();
    let passed = tests.iter().filter(|t| t.ok).count() as u64;
    let failed = tests.len() as u64 - passed;
    let result = match (results.as_slice(), bad_results.first()) {
        ([r], None) => Some(*r),
        _ => None,
    };
    if let Some(bad) = bad_results.first() {
        problems.push(format!("malformed RESULT line {bad:?}"));
    } else if results.len() > 1 {
        problems.push(format!("{} RESULT lines", results.len()));
    } else if results.is_empty() {
        problems.push("no RESULT line".into());
    }
    if let Some((p, f)) = result
        && (p, f) != (passed, failed)
    {
        problems.push(format!(
            "RESULT says {p} passed, {f} failed but the TEST lines show {passed} ok, {failed} not ok"
        ));
    }
    if tests.is_empty() {
        problems.push("no TEST lines".into());
    }
    Lines {
        shown,
        tests,
        result,
        problems,
    }
}

/// Why the guest's lines do not show that `test` was made to fail on purpose: its `TEST` line
/// must say `FAIL`, and the single `RESULT` must count a failure. Empty if they do.
pub fn injected_problems(guest: &[String], test: &str) -> Vec<String> {
    let mut why = Vec::new();
    let tests: Vec<TestLine> = guest.iter().filter_map(|l| parse_test(l)).collect();
    match tests.iter().find(|l| l.name == test) {
        None => why.push(format!("no TEST {test} line")),
        Some(l) if l.ok => why.push(format!("TEST {test} passed")),
        Some(l) if !l.line.starts_with(&format!("TEST {test} FAIL")) => {
            why.push(format!("malformed line {:?}", l.line))
        }
        Some(_) => {}
    }
    let results: Vec<_> = guest.iter().filter(|l| l.starts_with("RESULT")).collect();
    match results.as_slice() {
        [one] => match parse_result(one) {
            Some((_, 0)) => why.push(format!("{one:?} counts no failure")),
            Some(_) => {}
            None => why.push(format!("malformed RESULT line {one:?}")),
        },
        [] => why.push("no RESULT line".into()),
        many => why.push(format!("{} RESULT lines", many.len())),
    }
    why
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(l: &[&str]) -> Vec<String> {
        l.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn facts_are_shown_in_order_and_counted_nowhere() {
        let l = read_lines(&lines(&[
            "boot banner",
            "FACT xen-version.version 4.17",
            "TEST xen-version ok",
            "FACTS are not facts",
            "RESULT 1 passed, 0 failed",
        ]));
        assert_eq!(
            l.shown,
            [
                "FACT xen-version.version 4.17",
                "TEST xen-version ok",
                "RESULT 1 passed, 0 failed"
            ]
        );
        assert_eq!(l.tests.len(), 1);
        assert_eq!(l.result, Some((1, 0)));
        assert!(l.problems.is_empty(), "{:?}", l.problems);
        assert_eq!(
            fact_test("FACT xen-version.cpuid.40000000 1"),
            Some("xen-version")
        );
        assert_eq!(fact_test("FACT nodot 1"), None);
        assert_eq!(fact_test("TEST a.b ok"), None);
    }

    #[test]
    fn result_problems() {
        let l = read_lines(&lines(&["TEST a ok", "RESULT 1 passed, 1 failed"]));
        assert_eq!(
            l.problems,
            ["RESULT says 1 passed, 1 failed but the TEST lines show 1 ok, 0 not ok"]
        );
        let l = read_lines(&lines(&[
            "RESULT 0 passed, 0 failed",
            "RESULT 0 passed, 0 failed",
        ]));
        assert_eq!(l.problems, ["2 RESULT lines", "no TEST lines"]);
        assert_eq!(
            read_lines(&[]).problems,
            ["no RESULT line", "no TEST lines"]
        );
    }
}
