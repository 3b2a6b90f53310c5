//! `cargo xtask xen-timer-storm [secs] [--linux]`: issue 28's triple fault sought on stock Xen.
//! pvguest runs its `timer-storm` group (`VCPUOP_set_singleshot_timer` armed over and over
//! with short deadlines while its own events arrive) for `secs` seconds (default 300), with,
//! given `--linux`, an idle Linux domU beside it (created first: the issue saw an idle Linux
//! domU triple-fault once too). Then dom0 reads `xl dmesg` for triple faults and the Linux
//! domU's state, and prints Xen's dump of a vCPU that triple-faulted with what its RIP and CS
//! say (Xen's own code: the host's state in the guest's, [`host_state_verdict`]). One unit: the
//! storm's `TEST` line passed, the guest powered off and Xen logged no triple fault.
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
        // The dead vCPU's whole saved context (the domain is preserved): its IDTR, GDTR and TR
        // too, which Xen's triple-fault dump leaves out.
        run(
            "hvmctx",
            "xen-hvmctx $($XL domid pvguest 2>/dev/null) 2>&1 | head -n 60 | tr -s ' \\n\\t' ' ' | grep . || echo none",
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
    for key in ["linux-create", "triple-faults", "hvmctx", "linux-state"] {
        if let Some(v) = t.result(key) {
            println!("xen-timer-storm: {key}: {v}");
        }
    }
    // Xen's dump of the vCPU that triple-faulted, and what its RIP and CS say.
    let dump = triple_fault_dump(&t.dmesg);
    for line in &dump {
        println!("xen-timer-storm: xen| {line}");
    }
    if let Some(why) = host_state_verdict(&dump) {
        println!("xen-timer-storm: {why}");
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

/// Xen's lines from its `Triple fault` line through the dump of the vCPU's registers (at most
/// 16 lines), from dom0's `xl dmesg` tail.
pub(crate) fn triple_fault_dump(dmesg: &[String]) -> Vec<String> {
    let Some(at) = dmesg.iter().position(|l| l.contains("Triple fault")) else {
        return Vec::new();
    };
    dmesg.iter().skip(at).take(16).cloned().collect()
}

/// Xen's own code selector: a vCPU whose CS is this runs Xen's code, not the guest's.
const XEN_CS: &str = "e008";
/// The start of Xen 4.17's text on x86_64 (`XEN_VIRT_START`'s high half).
const XEN_TEXT_PREFIX: &str = "ffff82d0";

/// If the dump's `RIP: <cs>:[<rip>]` is Xen's own code (CS `e008`, RIP in Xen's text), the
/// words saying so: the guest's saved state held the host's (the layer that emulates SVM
/// for Xen wrote it into the guest's VMCB), which no guest instruction can cause.
pub(crate) fn host_state_verdict(dump: &[String]) -> Option<String> {
    let rip_line = dump.iter().find(|l| l.contains("RIP:"))?;
    let rest = rip_line.split("RIP:").nth(1)?.trim();
    let (cs, rip) = rest.split_once(':')?;
    let rip = rip.trim_start_matches("[<").split('>').next()?;
    (cs == XEN_CS && rip.starts_with(XEN_TEXT_PREFIX)).then(|| {
        format!(
            "the dying vCPU held Xen's own state: CS {cs} (Xen's code selector, not in the \
             guest's GDT) and RIP {rip} (Xen's text): the host's state in the guest's saved \
             state, not a fault of the guest's"
        )
    })
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

    #[test]
    fn a_triple_fault_with_xen_s_rip_is_the_host_s_state() {
        let dmesg: Vec<String> = [
            "(XEN) Freed 656kB init memory",
            "(XEN) d2v0 Triple fault - invoking HVM shutdown action 1",
            "(XEN) *** Dumping Dom2 vcpu#0 state: ***",
            "(XEN) RIP:    e008:[<ffff82d0402044a5>]",
            "(XEN) rbp: 0000000000215a60   rsp: ffff83003ffd7f70   r8:  0000000000000000",
        ]
        .iter()
        .map(|l| (*l).to_owned())
        .collect();
        let dump = triple_fault_dump(&dmesg);
        assert_eq!(dump.len(), 4);
        let why = host_state_verdict(&dump).unwrap_or_default();
        assert!(why.contains("RIP ffff82d0402044a5"), "{why}");
        // A guest's own RIP and CS: no verdict.
        let guest = dump
            .iter()
            .map(|l| l.replace("e008:[<ffff82d0402044a5>]", "0008:[<0000000000136a2b>]"))
            .collect::<Vec<_>>();
        assert_eq!(host_state_verdict(&guest), None);
        assert!(triple_fault_dump(&dmesg[..1]).is_empty());
    }
}
