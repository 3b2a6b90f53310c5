//! `cargo xtask conformance`: runs the ABI conformance test (`abi/conformance`) and reads its
//! `CONFORMANCE-*` lines.
//!
//! The test prints, with `--nocapture`, one `CONFORMANCE-MISMATCH <item>: C=<v> Rust=<v>` line
//! per mismatch, then `CONFORMANCE-SUMMARY checked=N mismatches=M headers=<label>`; when it
//! cannot compare at all (missing headers, spec errors, a C side that does not build) it prints
//! `CONFORMANCE-ERROR <message>` lines instead.
use std::process::Command;

use anyhow::{Context, Result, anyhow, bail};

use crate::build::{cargo, workspace_root};
use crate::gates::{TestCounts, parse_test_output};

const MISMATCH: &str = "CONFORMANCE-MISMATCH ";
const SUMMARY: &str = "CONFORMANCE-SUMMARY ";
const ERROR: &str = "CONFORMANCE-ERROR ";

/// What one conformance run found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConformanceReport {
    /// Items compared (constants, sizes, alignments, field offsets and sizes, ring sizes).
    pub checked: usize,
    /// One line per mismatch, naming the spec line, the item and both values.
    pub mismatches: Vec<String>,
    /// `abi conformance: N items checked against Xen 4.17 headers, M mismatches`.
    pub summary_line: String,
    /// The test cases of the `abi-conformance` crate (the comparison and its own unit tests).
    pub tests: TestCounts,
}

/// Runs `cargo test --locked -p abi-conformance -- --nocapture` and reports what it found.
///
/// Mismatches are an `Ok` report with a non-empty `mismatches`; an error means the comparison
/// could not be made (missing headers, spec errors, a build failure, another test failing).
pub fn run() -> Result<ConformanceReport> {
    let output = Command::new(cargo())
        .current_dir(workspace_root())
        .args([
            "test",
            "--locked",
            "--color",
            "never",
            "-p",
            "abi-conformance",
        ])
        .args(["--", "--nocapture", "--color", "never"])
        .output()
        .context("running cargo test -p abi-conformance")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    parse(&stdout, &stderr, output.status.success())
}

/// The text after `marker` on each line that contains it (libtest may print other text before
/// it on the same line).
fn marked<'a>(text: &'a str, marker: &str) -> Vec<&'a str> {
    text.lines()
        .filter_map(|line| {
            line.find(marker)
                .map(|at| line[at + marker.len()..].trim_end())
        })
        .collect()
}

/// The last `limit` lines of the output that look like failures (rustc's errors with their
/// `-->` location and the generated table's line, which names its spec line), for messages.
fn failure_excerpt(stdout: &str, stderr: &str, limit: usize) -> String {
    let interesting = |line: &&str| {
        line.contains("error")
            || line.contains("panicked")
            || line.contains("FAILED")
            || line.contains("failed")
            || line.contains("-->")
            || line.contains(".spec:")
    };
    let lines: Vec<&str> = stderr
        .lines()
        .chain(stdout.lines())
        .filter(interesting)
        .collect();
    lines[lines.len().saturating_sub(limit)..].join("\n")
}

/// Reads the test's output; `success` is cargo's exit status.
fn parse(stdout: &str, stderr: &str, success: bool) -> Result<ConformanceReport> {
    let errors = marked(stdout, ERROR);
    if !errors.is_empty() {
        bail!("abi conformance could not run:\n{}", errors.join("\n"));
    }
    let summaries = marked(stdout, SUMMARY);
    let [summary] = summaries.as_slice() else {
        bail!(
            "cargo test -p abi-conformance printed {} conformance summaries (expected one); {}:\n{}",
            summaries.len(),
            if success { "it passed" } else { "it failed" },
            failure_excerpt(stdout, stderr, 40)
        );
    };
    let field = |name: &str| {
        summary
            .split(' ')
            .find_map(|part| part.strip_prefix(name)?.strip_prefix('='))
            .ok_or_else(|| anyhow!("no `{name}=` in the conformance summary `{summary}`"))
    };
    let checked: usize = field("checked")?
        .parse()
        .context("checked= in the conformance summary")?;
    let mismatch_count: usize = field("mismatches")?
        .parse()
        .context("mismatches= in the conformance summary")?;
    let headers = summary
        .split_once("headers=")
        .map(|(_, label)| label.trim())
        .ok_or_else(|| anyhow!("no `headers=` in the conformance summary `{summary}`"))?;
    let mismatches: Vec<String> = marked(stdout, MISMATCH)
        .into_iter()
        .map(str::to_owned)
        .collect();
    if mismatches.len() != mismatch_count {
        bail!(
            "the conformance summary counts {mismatch_count} mismatches but {} were printed",
            mismatches.len()
        );
    }
    if !success && mismatches.is_empty() {
        bail!(
            "cargo test -p abi-conformance failed although the comparison found no mismatch:\n{}",
            failure_excerpt(stdout, stderr, 40)
        );
    }
    let summary_line = format!(
        "abi conformance: {checked} items checked against {headers} headers, {} mismatches",
        mismatches.len()
    );
    Ok(ConformanceReport {
        checked,
        mismatches,
        summary_line,
        tests: parse_test_output(stdout),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clean_run_gives_the_summary_line() {
        let stdout = "running 3 tests\n\
                      test a ... ok\n\
                      CONFORMANCE-SUMMARY checked=412 mismatches=0 headers=Xen 4.17\n\
                      abi conformance: 412 items checked against Xen 4.17 headers, 0 mismatches\n\
                      test abi_matches_xen_headers ... ok\n";
        let report = parse(stdout, "", true).unwrap();
        assert_eq!(report.checked, 412);
        assert!(report.mismatches.is_empty());
        assert_eq!(
            report.summary_line,
            "abi conformance: 412 items checked against Xen 4.17 headers, 0 mismatches"
        );
    }

    #[test]
    fn mismatches_are_reported_even_when_interleaved() {
        let stdout = "test x ... CONFORMANCE-MISMATCH memory.spec:7 offset of struct a.b (abi::memory::A.b): C=8 Rust=12\n\
                      CONFORMANCE-MISMATCH xen.spec:3 const X (abi::xen::X): C=1 (0x1) Rust=2 (0x2)\n\
                      CONFORMANCE-SUMMARY checked=300 mismatches=2 headers=Xen 4.17\n";
        let report = parse(stdout, "", false).unwrap();
        assert_eq!(
            report.mismatches,
            [
                "memory.spec:7 offset of struct a.b (abi::memory::A.b): C=8 Rust=12",
                "xen.spec:3 const X (abi::xen::X): C=1 (0x1) Rust=2 (0x2)"
            ]
        );
        assert!(
            report
                .summary_line
                .ends_with("300 items checked against Xen 4.17 headers, 2 mismatches")
        );
    }

    #[test]
    fn missing_headers_and_build_failures_are_errors() {
        let missing =
            "CONFORMANCE-ERROR Xen public headers not found: run apt-get install libxen-dev\n";
        let e = parse(missing, "", false).unwrap_err().to_string();
        assert!(e.contains("apt-get install libxen-dev"), "{e}");

        let e = parse(
            "",
            "error[E0425]: cannot find value `X` in module `abi::xen`\n",
            false,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("0 conformance summaries") && e.contains("E0425"),
            "{e}"
        );

        let other = "CONFORMANCE-SUMMARY checked=3 mismatches=0 headers=Xen 4.17\n\
                     test spec::tests::x ... FAILED\n";
        let e = parse(other, "", false).unwrap_err().to_string();
        assert!(e.contains("no mismatch") && e.contains("FAILED"), "{e}");

        let inconsistent = "CONFORMANCE-SUMMARY checked=3 mismatches=1 headers=Xen 4.17\n";
        assert!(parse(inconsistent, "", false).is_err());
    }
}
