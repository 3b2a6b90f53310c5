//! `cargo xtask xen-timer-storm [secs] [--linux]`: issue 28's triple fault sought on stock Xen.
//! pvguest runs its `timer-storm` group (`VCPUOP_set_singleshot_timer` armed over and over
//! with short deadlines while its own events arrive) for `secs` seconds (default 300), with,
//! given `--linux`, an idle Linux domU beside it (created first: the issue saw an idle Linux
//! domU triple-fault once too). Then dom0 reads `xl dmesg` for triple faults and the Linux
//! domU's state. One unit: the storm's `TEST` line passed, the guest powered off and Xen logged
//! no triple fault.
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::job::{Job, Step};
use super::{Limits, boot_job_gdb, xl_config};
use crate::tally::Tally;

/// The storm's length without an argument, seconds.
const DEFAULT_SECS: u64 = 300;
/// What the boot needs besides the storm: Xen, dom0, the domains' creation, the reading.
const MARGIN: Duration = Duration::from_secs(420);

/// Parses `[secs] [--linux]`.
fn parse_args(args: &[String]) -> Result<(u64, bool)> {
    let mut secs = DEFAULT_SECS;
    let mut linux = false;
    for a in args {
        if a == "--linux" {
            linux = true;
        } else {
            secs = a
                .parse()
                .with_context(|| format!("seconds {a:?}"))
                .and_then(|s: u64| {
                    if (1..=3600).contains(&s) {
                        Ok(s)
                    } else {
                        bail!("seconds from 1 to 3600")
                    }
                })?;
        }
    }
    Ok((secs, linux))
}

/// The job: the Linux domU (with `linux`), then the storm until it ends, then what Xen logged.
fn job(secs: u64, linux: Option<&crate::linux_domu::LinuxDomU>) -> Result<Job> {
    let cmdline = format!("selftest=timer-storm spin-secs={secs}");
    let run = |key: &str, command: &str| Step::Run {
        key: key.to_owned(),
        command: command.to_owned(),
    };
    let mut steps = Vec::new();
    let mut files = Vec::new();
    if let Some(domu) = linux {
        let config = crate::linux_domu::Config {
            ip: "10.0.9.2/24".into(),
            gateway: "10.0.9.1".into(),
            port: 80,
            blobs: Vec::new(),
            blk_bench: None,
        };
        let cfg = crate::linux_domu::xl_config(
            "linux",
            "/pvxen/linux.vmlinuz",
            "/pvxen/linux.cpio",
            &config,
            256,
            "",
        );
        files.push(("linux.cfg".to_owned(), cfg.into_bytes()));
        files.push((
            "linux.vmlinuz".to_owned(),
            std::fs::read(&domu.kernel)
                .with_context(|| format!("reading {}", domu.kernel.display()))?,
        ));
        files.push(("linux.cpio".to_owned(), domu.initramfs.clone()));
        steps.push(run(
            "linux-create",
            "$XL create /pvxen/linux.cfg >/tmp/linux-create.log 2>&1 && sleep 20 && echo ok",
        ));
    }
    steps.extend([
        Step::Create {
            config: "guest.cfg".into(),
            paused: false,
        },
        Step::WaitEnd,
        run(
            "triple-faults",
            "echo \"$($XL dmesg | grep -ci 'triple fault') $($XL dmesg | grep -i 'triple fault\\|crash' | tail -n 4 | tr ' \\n' '_|')\"",
        ),
        run(
            "linux-state",
            "$XL list linux 2>/dev/null | awk 'NR == 2 { print $5 }' | grep . || echo none",
        ),
        Step::Destroy,
    ]);
    Job::with_steps(xl_config(&cmdline, "")?, steps, files)
}

/// The command.
pub fn xen_timer_storm(tally: &mut Tally, args: &[String]) -> Result<()> {
    let (secs, with_linux) = parse_args(args)?;
    let guest = super::guest_elf()?;
    let image = super::image::ensure_image()?;
    let linux = if with_linux {
        Some(crate::linux_domu::build()?)
    } else {
        None
    };
    let job = job(secs, linux.as_ref())?;
    let limits = Limits {
        timeout: Duration::from_secs(secs) + MARGIN,
        guest_limit: Duration::from_secs(secs) + MARGIN / 2,
    };
    println!(
        "xen-timer-storm: {secs} s of selftest=timer-storm{}",
        if with_linux {
            " beside an idle Linux domU"
        } else {
            ""
        }
    );
    let booted = boot_job_gdb(&image, &guest, &job, "timer-storm", limits, None, |_| {})?;
    let t = &booted.transcript;
    for line in t.guest.iter().filter(|l| {
        l.contains("timer-storm") || l.starts_with("EXCEPTION") || l.starts_with("STACK")
    }) {
        println!("xen-timer-storm| {line}");
    }
    for key in ["linux-create", "triple-faults", "linux-state"] {
        if let Some(v) = t.result(key) {
            println!("xen-timer-storm: {key}: {v}");
        }
    }
    let end = t.end.as_ref().map(|(e, _)| e.describe());
    println!(
        "xen-timer-storm: guest end: {}",
        end.as_deref().unwrap_or("none")
    );
    let passed_test = t.guest.iter().any(|l| l.starts_with("TEST timer-storm ok"));
    let triples = t
        .result("triple-faults")
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse::<u64>().ok());
    let powered_off = t
        .end
        .as_ref()
        .is_some_and(|(e, _)| matches!(e, super::console::GuestEnd::Poweroff));
    let ok = passed_test && powered_off && triples == Some(0);
    let line = format!(
        "HOST xen-timer-storm {} (TEST line {passed_test}, powered off {powered_off}, \
         triple faults {triples:?})",
        if ok { "ok" } else { "FAIL" }
    );
    println!("{line}");
    tally.record(ok, line);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_job_creates_linux_first_and_reads_xen_s_log_last() {
        assert_eq!(parse_args(&[]).ok(), Some((DEFAULT_SECS, false)));
        assert_eq!(
            parse_args(&["60".into(), "--linux".into()]).ok(),
            Some((60, true))
        );
        assert!(parse_args(&["0".into()]).is_err() && parse_args(&["x".into()]).is_err());
        let job = job(60, None).expect("job");
        let text = job.steps_text().unwrap_or_default();
        assert!(text.starts_with("create guest.cfg\nwait-end\nrun triple-faults "));
        assert!(job.config.contains("selftest=timer-storm spin-secs=60"));
    }
}
