//! Counting of test units (gates, cargo test cases, guest TEST/HOST lines) for the summary line.

/// Passed and failed units of one `cargo xtask` run; [`Tally::summary`] is the last line printed.
#[derive(Debug, Default)]
pub struct Tally {
    passed: u64,
    failed: u64,
    failures: Vec<String>,
}

impl Tally {
    /// An empty tally.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one passed unit.
    pub fn pass(&mut self) {
        self.passed += 1;
    }

    /// Counts one failed unit and remembers `what` for the closing list of failures.
    pub fn fail(&mut self, what: impl Into<String>) {
        self.failed += 1;
        self.failures.push(what.into());
    }

    /// Counts one unit, passed if `ok`.
    pub fn record(&mut self, ok: bool, what: impl Into<String>) {
        if ok { self.pass() } else { self.fail(what) }
    }

    /// Adds `passed` passed units and `failed` failed ones, the failures described by `what`.
    pub fn add_counts(&mut self, passed: u64, failed: u64, what: &str) {
        self.passed += passed;
        if failed > 0 {
            self.failed += failed;
            self.failures.push(format!("{what}: {failed} failed"));
        }
    }

    /// Number of failed units so far.
    pub fn failed(&self) -> u64 {
        self.failed
    }

    /// What failed, one entry per failure (or group of failures).
    pub fn failures(&self) -> &[String] {
        &self.failures
    }

    /// The closing line: `N passed, M failed`.
    pub fn summary(&self) -> String {
        format!("{} passed, {} failed", self.passed, self.failed)
    }
}

#[cfg(test)]
mod tests {
    use super::Tally;

    #[test]
    fn summary_counts_every_unit() {
        let mut t = Tally::new();
        t.pass();
        t.record(false, "gate x");
        t.add_counts(3, 2, "cargo test");
        assert_eq!(t.summary(), "4 passed, 3 failed");
        assert_eq!(t.failures(), ["gate x", "cargo test: 2 failed"]);
    }
}
