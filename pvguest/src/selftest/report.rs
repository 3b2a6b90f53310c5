//! The self-test line protocol: `TEST <name> ok`, `TEST <name> FAIL <why>`, then
//! `RESULT <N> passed, <M> failed`, and `FACT <test>.<key> <value>` lines before a test's
//! `TEST` line.
//!
//! Other tools parse these lines exactly; keep the format fixed.

use core::fmt::{self, Write};

/// Why an injected test fails.
pub const INJECTED: &str = "injected failure";

/// Whether every test passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// All tests passed (the guest powers off).
    AllPassed,
    /// At least one test failed (the guest crashes).
    SomeFailed,
}

/// Counts results and writes their lines to `out`.
pub struct Reporter<'a, W: Write> {
    out: W,
    inject_fail: Option<&'a str>,
    injected: bool,
    passed: u32,
    failed: u32,
}

impl<'a, W: Write> Reporter<'a, W> {
    /// A reporter writing to `out`; the test named `inject_fail` is reported as failed.
    pub fn new(out: W, inject_fail: Option<&'a str>) -> Self {
        Self {
            out,
            inject_fail,
            injected: false,
            passed: 0,
            failed: 0,
        }
    }

    /// Records one result and prints its line. `why` is flattened to one line.
    pub fn record(&mut self, name: &str, result: Result<(), impl fmt::Display>) -> fmt::Result {
        let injected = self.inject_fail == Some(name);
        self.injected |= injected;
        match (result, injected) {
            (Ok(()), false) => {
                self.passed += 1;
                writeln!(self.out, "TEST {name} ok")
            }
            (_, true) => {
                self.failed += 1;
                writeln!(self.out, "TEST {name} FAIL {INJECTED}")
            }
            (Err(why), false) => {
                self.failed += 1;
                write!(self.out, "TEST {name} FAIL ")?;
                write!(OneLine(&mut self.out, false), "{why}")?;
                writeln!(self.out)
            }
        }
    }

    /// Prints `FACT <test>.<key> <value>`: what the platform answered, for comparison across
    /// platforms. Spaces in `key` become `-`; `value` is flattened to one line.
    pub fn fact(&mut self, test: &str, key: &str, value: impl fmt::Display) -> fmt::Result {
        write!(self.out, "FACT {test}.")?;
        for c in key.chars() {
            self.out
                .write_char(if c.is_whitespace() { '-' } else { c })?;
        }
        self.out.write_char(' ')?;
        write!(OneLine(&mut self.out, false), "{value}")?;
        writeln!(self.out)
    }

    /// Prints the `RESULT` line and returns the outcome.
    ///
    /// A run that tested nothing (`selftest=` naming no group) and an injection naming no
    /// test that ran (a misspelt `selftest-inject-fail=`) are failures of their own, reported
    /// as `TEST selftest FAIL ...` and `TEST selftest-inject-fail FAIL ...`: neither may pass
    /// silently.
    pub fn finish(mut self) -> Result<Outcome, fmt::Error> {
        if let Some(name) = self.inject_fail.filter(|_| !self.injected) {
            self.failed += 1;
            writeln!(
                self.out,
                "TEST selftest-inject-fail FAIL selftest-inject-fail={name} names no test that ran"
            )?;
        }
        if self.passed + self.failed == 0 {
            self.failed += 1;
            writeln!(
                self.out,
                "TEST selftest FAIL no self-test ran (selftest= names no group)"
            )?;
        }
        writeln!(
            self.out,
            "RESULT {} passed, {} failed",
            self.passed, self.failed
        )?;
        Ok(if self.failed == 0 {
            Outcome::AllPassed
        } else {
            Outcome::SomeFailed
        })
    }

    /// The writer (for log lines between tests).
    pub fn out(&mut self) -> &mut W {
        &mut self.out
    }
}

/// Replaces line breaks with spaces; the flag remembers whether anything was written.
struct OneLine<'w, W: Write>(&'w mut W, bool);

impl<W: Write> Write for OneLine<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for (i, part) in s.split(['\n', '\r']).enumerate() {
            if i > 0 {
                self.0.write_char(' ')?;
            }
            self.0.write_str(part)?;
            self.1 = true;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_counts() {
        let mut s = String::new();
        let mut r = Reporter::new(&mut s, None);
        r.record("a", Ok::<(), &str>(())).unwrap();
        r.record("b", Err("bad\nthing")).unwrap();
        assert_eq!(r.finish().unwrap(), Outcome::SomeFailed);
        assert_eq!(
            s,
            "TEST a ok\nTEST b FAIL bad thing\nRESULT 1 passed, 1 failed\n"
        );
    }

    #[test]
    fn injection_turns_a_pass_into_a_fail() {
        let mut s = String::new();
        let mut r = Reporter::new(&mut s, Some("xen-version"));
        r.record("xen-version", Ok::<(), &str>(())).unwrap();
        r.record("heap-alloc", Ok::<(), &str>(())).unwrap();
        assert_eq!(r.finish().unwrap(), Outcome::SomeFailed);
        assert_eq!(
            s,
            "TEST xen-version FAIL injected failure\nTEST heap-alloc ok\nRESULT 1 passed, 1 failed\n"
        );
    }

    #[test]
    fn facts_are_one_line_each() {
        let mut s = String::new();
        let mut r = Reporter::new(&mut s, None);
        r.fact("xen-version", "version", "4.17").unwrap();
        r.fact("xen-version", "odd key", "a\nb").unwrap();
        r.record("xen-version", Ok::<(), &str>(())).unwrap();
        assert_eq!(r.finish().unwrap(), Outcome::AllPassed);
        assert_eq!(
            s,
            "FACT xen-version.version 4.17\nFACT xen-version.odd-key a b\n\
             TEST xen-version ok\nRESULT 1 passed, 0 failed\n"
        );
    }

    #[test]
    fn all_passed() {
        let mut s = String::new();
        let mut r = Reporter::new(&mut s, None);
        r.record("x", Ok::<(), &str>(())).unwrap();
        assert_eq!(r.finish().unwrap(), Outcome::AllPassed);
        assert!(s.ends_with("RESULT 1 passed, 0 failed\n"));
    }

    #[test]
    fn inject_fail_naming_no_test_that_ran_fails_the_run() {
        let mut s = String::new();
        let mut r = Reporter::new(&mut s, Some("no-such-test"));
        r.record("x", Ok::<(), &str>(())).unwrap();
        assert_eq!(r.finish().unwrap(), Outcome::SomeFailed);
        assert_eq!(
            s,
            "TEST x ok\n\
             TEST selftest-inject-fail FAIL selftest-inject-fail=no-such-test names no test that ran\n\
             RESULT 1 passed, 1 failed\n"
        );
    }

    #[test]
    fn a_run_without_tests_fails() {
        let mut s = String::new();
        let r = Reporter::new(&mut s, None);
        assert_eq!(r.finish().unwrap(), Outcome::SomeFailed);
        assert_eq!(
            s,
            "TEST selftest FAIL no self-test ran (selftest= names no group)\n\
             RESULT 0 passed, 1 failed\n"
        );
    }
}
