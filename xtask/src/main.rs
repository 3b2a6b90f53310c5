//! `cargo xtask`: the one entry point that builds, runs and tests the workspace.
mod build;
mod gates;
mod tally;

use std::process::ExitCode;

use anyhow::Result;

use tally::Tally;

const HELP: &str = "\
cargo xtask <command>

Commands:
  test          run every gate (fmt, clippy host + kernel, docs, host tests, ABI conformance,
                the PVH ELF note, the self-tests on stock Xen) and end with `N passed, M failed`
  conformance   compare the abi crate with Xen's public headers (Debian libxen-dev)
  xen-test      boot pvguest as a PVH domU on stock Xen 4.17 inside QEMU and run its self-tests
  run           boot the most complete thing that works: today pvguest on stock Xen in QEMU,
                showing its console (hv cannot boot guests yet)
  build         build the pvguest kernel for x86_64-unknown-none and print its path
  help          show this text

Environment:
  PVXEN_CACHE   where the stock-Xen test image is cached (default ~/.cache/pvxen)
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = args.first().map(String::as_str).unwrap_or("help");
    let result = match command {
        "test" => test(),
        "build" => build::build_guest().map(|elf| {
            println!("{}", elf.display());
            ExitCode::SUCCESS
        }),
        "help" | "--help" | "-h" => {
            print!("{HELP}");
            Ok(ExitCode::SUCCESS)
        }
        other => {
            eprint!("unknown command `{other}`\n\n{HELP}");
            Ok(ExitCode::from(2))
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `cargo xtask test`: every gate, then the summary line.
fn test() -> Result<ExitCode> {
    let mut tally = Tally::new();
    gates::static_gates(&mut tally);
    if let Err(e) = gates::host_tests(&mut tally) {
        println!("host tests: FAILED: {e:#}");
        tally.fail("host tests");
    }
    finish(&tally)
}

/// Prints what failed and the summary line (always the last line), and picks the exit code.
fn finish(tally: &Tally) -> Result<ExitCode> {
    if tally.failed() > 0 {
        println!("failures:");
        for f in tally.failures() {
            println!("  {f}");
        }
    }
    println!("{}", tally.summary());
    Ok(if tally.failed() == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
