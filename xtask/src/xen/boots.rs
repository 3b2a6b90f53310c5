//! `cargo xtask xen-boots <n> [parallel]`: the platform guest alone, booted `n` times (by
//! `parallel` QEMUs at once, each `n` times), to measure how often a rare hang strikes and
//! whether a fix holds. Each boot is the first guest after Xen and dom0 came up, as in
//! `xen-test`'s platform boot; a hung guest gets dom0's timeout diagnostics and nudge
//! (`xtask/dom0/run-job.sh`). Prints one line per boot and a summary; every boot whose guest
//! did not pass counts as one failure.
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::console::GuestEnd;
use super::{GUEST_NAME, Limits, PLATFORM_CMDLINE_BYTES, boot_job_gdb, job, padded_cmdline};
use crate::tally::Tally;

/// How long dom0 lets one platform guest run (it takes a few seconds).
const GUEST_LIMIT: Duration = Duration::from_secs(40);
/// The hard timeout of one boot.
const BOOT_TIMEOUT: Duration = Duration::from_secs(240);

/// What one boot showed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct BootReport {
    /// How the guest ended, in words (`None` if dom0 never said).
    pub end: Option<String>,
    /// The guest powered off.
    pub powered_off: bool,
    /// The guest still ran at dom0's guest timeout.
    pub hung: bool,
    /// The guest's `RESULT` line.
    pub result: Option<String>,
    /// `halts_skipped` from the guest's platform statistics line.
    pub halts_skipped: Option<u64>,
    /// dom0's nudge verdict after a timeout.
    pub nudge: Option<String>,
}

impl BootReport {
    /// Reads the guest's lines and dom0's `dmesg:` lines of one boot.
    pub fn from_lines(end: Option<&GuestEnd>, guest: &[String], dmesg: &[String]) -> Self {
        let halts_skipped = guest.iter().find_map(|l| {
            let rest = l.split_once("halts_skipped: ")?.1;
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        });
        Self {
            end: end.map(GuestEnd::describe),
            powered_off: end == Some(&GuestEnd::Poweroff),
            hung: end == Some(&GuestEnd::Timeout),
            result: guest.iter().find(|l| l.starts_with("RESULT")).cloned(),
            halts_skipped,
            nudge: dmesg
                .iter()
                .find(|l| l.starts_with("nudge"))
                .map(|l| l.to_owned()),
        }
    }

    /// Whether the guest ran to a passing end.
    pub fn passed(&self) -> bool {
        self.powered_off
            && self
                .result
                .as_deref()
                .is_some_and(|r| r.ends_with(" 0 failed"))
    }
}

/// Parses `<n> [parallel]`.
fn parse_args(args: &[String]) -> Result<(usize, usize)> {
    let n = match args.first() {
        Some(n) => n.parse().with_context(|| format!("boot count {n:?}"))?,
        None => bail!("usage: cargo xtask xen-boots <n> [parallel]"),
    };
    let parallel = match args.get(1) {
        Some(p) => p.parse().with_context(|| format!("parallel {p:?}"))?,
        None => 1,
    };
    if n == 0 || parallel == 0 || args.len() > 2 {
        bail!("usage: cargo xtask xen-boots <n> [parallel] (both at least 1)");
    }
    Ok((n, parallel))
}

/// The command.
pub fn xen_boots(tally: &mut Tally, args: &[String]) -> Result<()> {
    let (n, parallel) = parse_args(args)?;
    let guest = super::guest_elf()?;
    let image = super::image::ensure_image()?;
    let cmdline = padded_cmdline("selftest=platform", PLATFORM_CMDLINE_BYTES);
    let job = job::Job::simple(super::xl_config(&cmdline, "")?);
    let limits = Limits {
        timeout: BOOT_TIMEOUT,
        guest_limit: GUEST_LIMIT,
    };
    println!("xen-boots: {n} boots of the `{GUEST_NAME}` platform guest, {parallel} at a time");
    let reports = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for worker in 0..parallel {
            let (image, guest, job, reports) = (&image, &guest, &job, &reports);
            s.spawn(move || {
                for i in 0..n {
                    let label = format!("boots-{worker}-{i}");
                    let report = match boot_job_gdb(image, guest, job, &label, limits, None, |_| {})
                    {
                        Ok(b) => BootReport::from_lines(
                            b.transcript.end.as_ref().map(|e| &e.0),
                            &b.transcript.guest,
                            &b.transcript.dmesg,
                        ),
                        Err(e) => {
                            println!("xen-boots: {label}: harness error: {e:#}");
                            BootReport::default()
                        }
                    };
                    println!(
                        "xen-boots: {label}: {}, {}, halts skipped {}{}",
                        report.end.as_deref().unwrap_or("no end"),
                        report.result.as_deref().unwrap_or("no RESULT"),
                        report
                            .halts_skipped
                            .map_or_else(|| "?".to_owned(), |h| h.to_string()),
                        report
                            .nudge
                            .as_deref()
                            .map(|n| format!("; {n}"))
                            .unwrap_or_default(),
                    );
                    if let Ok(mut r) = reports.lock() {
                        r.push((label, report));
                    }
                }
            });
        }
    });
    let reports = reports.into_inner().unwrap_or_default();
    let hung = reports.iter().filter(|(_, r)| r.hung).count();
    let skipped = reports
        .iter()
        .filter(|(_, r)| r.halts_skipped.is_some_and(|h| h > 0))
        .count();
    println!(
        "xen-boots: {} boots, {hung} hung (guest timeout), {skipped} with a skipped halt",
        reports.len()
    );
    for (label, report) in &reports {
        tally.record(report.passed(), format!("xen-boots {label}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_boot_report_reads_the_guest_and_dom0_lines() {
        let guest = [
            "[INFO ] platform: events EventStats { upcalls: 1 }, time TimeStats { timer_events: \
             2, halts: 3, late_wakes: 0, halts_skipped: 4 }, xenstore StoreStats { waits: 5 }"
                .to_owned(),
            "RESULT 25 passed, 0 failed".to_owned(),
        ];
        let r = BootReport::from_lines(Some(&GuestEnd::Poweroff), &guest, &[]);
        assert_eq!(r.halts_skipped, Some(4));
        assert!(r.passed());
        let hung = BootReport::from_lines(
            Some(&GuestEnd::Timeout),
            &guest[..1],
            &["nudged (console input on /dev/pts/0): guest continued".to_owned()],
        );
        assert!(!hung.passed());
        assert_eq!(
            hung.nudge.as_deref(),
            Some("nudged (console input on /dev/pts/0): guest continued")
        );
        assert!(parse_args(&["3".into(), "2".into()]).is_ok());
        assert!(parse_args(&[]).is_err() && parse_args(&["0".into()]).is_err());
    }
}
