//! The static gates of `cargo xtask test`: formatting, clippy, docs and the host test suites.
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result};

use crate::build::{KERNEL_TARGET, cargo, workspace_root};
use crate::tally::Tally;

/// Crates that are built for the bare-metal kernel target too.
const KERNEL_TARGET_CRATES: [&str; 13] = [
    "abi",
    "xenbus",
    "xenstored",
    "pvh",
    "pvguest",
    "httpd",
    "storage",
    "netfront",
    "blkfront",
    "blkback",
    "xlcfg",
    "hvctl",
    "hv",
];

/// What a finished command left behind.
struct Finished {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// Runs `cargo <args>` in the workspace root with `envs`, capturing its output.
fn run_cargo(args: &[&str], envs: &[(&str, &str)]) -> Result<Finished> {
    let mut cmd = Command::new(cargo());
    cmd.current_dir(workspace_root())
        .args(args)
        .stdin(Stdio::null());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd
        .output()
        .with_context(|| format!("running cargo {}", args.join(" ")))?;
    Ok(Finished {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// Runs one gate: a cargo command that must succeed. One tally unit; on failure the command's
/// output is shown so the reason is visible in CI's log.
fn gate(tally: &mut Tally, name: &str, args: &[&str], envs: &[(&str, &str)]) {
    let start = Instant::now();
    match run_cargo(args, envs) {
        Ok(f) if f.ok => {
            println!("gate {name}: ok ({:.1} s)", start.elapsed().as_secs_f64());
            tally.pass();
        }
        Ok(f) => {
            println!("gate {name}: FAILED (cargo {})", args.join(" "));
            print_indented(&f.stdout);
            print_indented(&f.stderr);
            tally.fail(format!("gate {name}"));
        }
        Err(e) => {
            println!("gate {name}: FAILED: {e:#}");
            tally.fail(format!("gate {name}"));
        }
    }
}

fn print_indented(text: &str) {
    for line in text.lines() {
        println!("    {line}");
    }
}

/// Formatting, clippy on the host and for the kernel target, and documentation.
pub fn static_gates(tally: &mut Tally) {
    gate(tally, "fmt", &["fmt", "--all", "--", "--check"], &[]);
    gate(
        tally,
        "clippy-host",
        &[
            "clippy",
            "--locked",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
        &[],
    );
    if let Err(e) = crate::build::ensure_kernel_target() {
        println!("clippy-kernel: {e:#}");
    }
    let mut kernel_args = vec!["clippy", "--locked", "--target", KERNEL_TARGET];
    for krate in KERNEL_TARGET_CRATES {
        kernel_args.extend(["-p", krate]);
    }
    kernel_args.extend(["--", "-D", "warnings"]);
    gate(tally, "clippy-kernel", &kernel_args, &[]);
    gate(
        tally,
        "doc",
        &[
            "doc",
            "--locked",
            "--workspace",
            "--no-deps",
            "--document-private-items",
        ],
        &[("RUSTDOCFLAGS", "-D warnings")],
    );
    // The kernel-only modules exist only for the kernel target: document them there too.
    let mut doc_kernel = vec!["doc", "--locked", "--no-deps", "--document-private-items"];
    doc_kernel.extend(["--target", KERNEL_TARGET]);
    for krate in KERNEL_TARGET_CRATES {
        doc_kernel.extend(["-p", krate]);
    }
    gate(
        tally,
        "doc-kernel",
        &doc_kernel,
        &[("RUSTDOCFLAGS", "-D warnings")],
    );
}

/// Counts of one `cargo test` run, read from its `test result:` lines.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TestCounts {
    /// Test cases that passed.
    pub passed: u64,
    /// Test cases that failed.
    pub failed: u64,
    /// Names of the failed test cases.
    pub failed_names: Vec<String>,
}

/// Reads libtest's output: `test result: ok. 3 passed; 1 failed; ...` lines are summed, and
/// `test NAME ... FAILED` lines name the failures.
pub fn parse_test_output(stdout: &str) -> TestCounts {
    let mut counts = TestCounts::default();
    for line in stdout.lines() {
        if let Some(rest) = line.strip_prefix("test result: ") {
            for part in rest.split(';') {
                let words: Vec<&str> = part.split_whitespace().collect();
                let number = |w: &[&str]| w.iter().rev().nth(1).and_then(|n| n.parse::<u64>().ok());
                match words.last() {
                    Some(&"passed") => counts.passed += number(&words).unwrap_or(0),
                    Some(&"failed") => counts.failed += number(&words).unwrap_or(0),
                    _ => {}
                }
            }
        } else if let Some(name) = line
            .strip_prefix("test ")
            .and_then(|l| l.strip_suffix(" ... FAILED"))
        {
            counts.failed_names.push(name.to_owned());
        }
    }
    counts
}

/// The host test suites of every crate but `abi-conformance`, whose tests the conformance gate
/// runs (once, with their output read for the mismatch lines): one tally unit per test case.
pub fn host_tests(tally: &mut Tally) -> Result<()> {
    let start = Instant::now();
    let f = run_cargo(
        &[
            "test",
            "--locked",
            "--workspace",
            "--exclude",
            "abi-conformance",
            "--no-fail-fast",
        ],
        &[],
    )?;
    let counts = parse_test_output(&f.stdout);
    println!(
        "host tests: {} passed, {} failed ({:.1} s)",
        counts.passed,
        counts.failed,
        start.elapsed().as_secs_f64()
    );
    for name in &counts.failed_names {
        println!("    FAILED {name}");
    }
    tally.add_counts(counts.passed, counts.failed, "host tests");
    if !f.ok && counts.failed == 0 {
        // Nothing failed by count, yet cargo failed: a build error. Show it and count it.
        print_indented(&f.stderr);
        tally.fail("host tests: cargo test did not run to completion");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_test_output;

    #[test]
    fn sums_result_lines_and_names_failures() {
        let out = "running 2 tests\ntest a::b ... ok\ntest a::c ... FAILED\n\
            test result: FAILED. 1 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s\n\
            test result: ok. 5 passed; 0 failed; 2 ignored; 0 measured; 0 filtered out; finished in 0.01s\n";
        let c = parse_test_output(out);
        assert_eq!((c.passed, c.failed), (6, 1));
        assert_eq!(c.failed_names, ["a::c"]);
    }

    #[test]
    fn ignores_unrelated_lines() {
        let c = parse_test_output("test result\nresult: 3 passed\n");
        assert_eq!((c.passed, c.failed), (0, 0));
    }
}
