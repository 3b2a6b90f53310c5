//! The device boot of the stock-Xen tier: pvguest with two file-backed disks served by Linux's
//! blkback, running its `blk` self-test group, and the harness's own checks from outside:
//!
//! - `HOST blk-pattern`: the guest read the read-only disk whole and printed its SHA-256
//!   (`BLK sha256 xvda <bytes> <hex>`); it must equal the digest of the pattern the harness
//!   wrote into the image before boot.
//! - `HOST blk-guest-write`: after shutdown the read-write image starts with the guest's
//!   pattern (`pvguest/src/selftest/blk.rs`: byte `i` is `(i % 251) ^ 0x5a`).
//! - `HOST blk-readonly`: the read-only image is byte for byte unchanged.
//! - `HOST blk-flush-counted`: blkback's flush counter (`statistics/f_req` of `vbd-<domid>-51728`)
//!   grew while the group ran (read with the guest paused before, preserved after).

use anyhow::Result;
use sha2::{Digest, Sha256};

use super::console::{self, Transcript};
use super::job::{Job, Step};
use super::{
    GUEST_NAME, TEST_GUEST_LIMIT, TEST_TIMEOUT, boot_job, explain_failure, guest_elf, hard_timeout,
    image, xl_config,
};
use crate::tally::Tally;

/// Size of the read-only disk (`xvda`), filled with [`harness_pattern`].
pub const XVDA_BYTES: usize = 1 << 20;
/// Size of the read-write disk (`xvdb`), zeros before boot.
pub const XVDB_BYTES: usize = 4 << 20;
/// Bytes of the guest's pattern at the start of `xvdb` (as in `pvguest/src/selftest/blk.rs`).
pub const GUEST_PATTERN_BYTES: usize = 256 * 1024;
/// The read-write disk's xenbus device id (`xvdb`: 202 << 8 | 1 << 4).
const XVDB_DEVID: u32 = 51728;

/// Byte `i` of the read-only disk: a multiplicative hash, so that misplaced sectors show.
pub fn harness_pattern(i: usize) -> u8 {
    ((i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 56) as u8
}

/// Byte `i` of the pattern the guest writes (the same formula as the guest's).
pub fn guest_pattern(i: usize) -> u8 {
    (i % 251) as u8 ^ 0x5a
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The guest's command line for the device boot.
pub fn cmdline() -> String {
    format!("selftest=blk blk-expect=xvda:{XVDA_BYTES}:r,xvdb:{XVDB_BYTES}:w")
}

/// The job: disk images prepared in dom0's /tmp, the guest created paused (to read the flush
/// counter before it runs), then run to its end, the counter read again, the images digested.
fn job(xvda: Vec<u8>) -> Result<Job> {
    let disks = "disk = [ 'format=raw, vdev=xvda, access=ro, target=/tmp/xvda.img',\n\
                 \x20        'format=raw, vdev=xvdb, access=rw, target=/tmp/xvdb.img' ]\n";
    let f_req = format!(
        "cat /sys/bus/xen-backend/devices/vbd-$($XL domid {GUEST_NAME})-{XVDB_DEVID}/statistics/f_req"
    );
    let run = |key: &str, command: &str| Step::Run {
        key: key.to_owned(),
        command: command.to_owned(),
    };
    Job::with_steps(
        xl_config(&cmdline(), disks)?,
        vec![
            run(
                "backend",
                "modprobe loop && modprobe xen-blkback && echo ok",
            ),
            run("prep-xvda", "cp /pvxen/xvda.img /tmp/xvda.img && echo ok"),
            run(
                "prep-xvdb",
                &format!(
                    "dd if=/dev/zero of=/tmp/xvdb.img bs=1048576 count={} 2>/dev/null && echo ok",
                    XVDB_BYTES >> 20
                ),
            ),
            Step::Create {
                config: "guest.cfg".into(),
                paused: true,
            },
            run("f_req-before", &f_req),
            Step::Unpause,
            Step::WaitEnd,
            run("f_req-after", &f_req),
            Step::Destroy,
            Step::Digest {
                key: "xvda-after".into(),
                path: "/tmp/xvda.img".into(),
                bytes: None,
            },
            Step::Digest {
                key: "xvdb-head".into(),
                path: "/tmp/xvdb.img".into(),
                bytes: Some(GUEST_PATTERN_BYTES as u64),
            },
        ],
        vec![("xvda.img".into(), xvda)],
    )
}

/// The `HOST blk-*` checks from what the boot left: (passed, line).
pub fn host_checks(t: &Transcript, xvda_sha: &str, guest_sha: &str) -> Vec<(bool, String)> {
    let check = |name: &str, verdict: Result<(), String>| match verdict {
        Ok(()) => (true, format!("HOST {name} ok")),
        Err(why) => (false, format!("HOST {name} FAIL {why}")),
    };
    let printed = t.guest.iter().find_map(|l| {
        let rest = l.strip_prefix("BLK sha256 xvda ")?;
        let (bytes, digest) = rest.split_once(' ')?;
        Some((bytes.to_owned(), digest.trim().to_owned()))
    });
    let pattern = match printed {
        None => Err("the guest printed no `BLK sha256 xvda` line".to_owned()),
        Some((bytes, _)) if bytes != XVDA_BYTES.to_string() => {
            Err(format!("the guest read {bytes} bytes of {XVDA_BYTES}"))
        }
        Some((_, digest)) if digest == xvda_sha => Ok(()),
        Some((_, digest)) => Err(format!("guest read sha256 {digest}, image has {xvda_sha}")),
    };
    let result = |key: &str| -> Result<&str, String> {
        match t.result(key) {
            None | Some("-") => Err(format!("dom0 gave no `{key}`")),
            Some(v) => Ok(v),
        }
    };
    let guest_write = result("xvdb-head").and_then(|d| {
        if d == guest_sha {
            Ok(())
        } else {
            Err(format!("first {GUEST_PATTERN_BYTES} bytes of xvdb have sha256 {d}, the guest pattern {guest_sha}"))
        }
    });
    let readonly = result("xvda-after").and_then(|d| {
        if d == xvda_sha {
            Ok(())
        } else {
            Err(format!("xvda changed: sha256 {d}, written {xvda_sha}"))
        }
    });
    let flush = result("f_req-before").and_then(|before| {
        let after = result("f_req-after")?;
        let parse = |v: &str| {
            v.trim()
                .parse::<u64>()
                .map_err(|_| format!("f_req {v:?} is not a number"))
        };
        let (b, a) = (parse(before)?, parse(after)?);
        if a > b {
            Ok(())
        } else {
            Err(format!(
                "blkback's f_req went from {b} to {a}: no flush reached it"
            ))
        }
    });
    vec![
        check("blk-pattern", pattern),
        check("blk-guest-write", guest_write),
        check("blk-readonly", readonly),
        check("blk-flush-counted", flush),
    ]
}

/// Boots the guest with its two disks and counts one unit per `TEST` line of the `blk` group
/// and per `HOST` line. `Err` only for harness errors.
pub fn blk_test(tally: &mut Tally) -> Result<()> {
    let guest = guest_elf()?;
    let image = image::ensure_image()?;
    let timeout = hard_timeout(TEST_TIMEOUT)?;
    let xvda: Vec<u8> = (0..XVDA_BYTES).map(harness_pattern).collect();
    let xvda_sha = hex(&Sha256::digest(&xvda));
    let guest_bytes: Vec<u8> = (0..GUEST_PATTERN_BYTES).map(guest_pattern).collect();
    let guest_sha = hex(&Sha256::digest(&guest_bytes));
    println!("xen: device boot, guest cmdline {:?}", cmdline());
    let booted = boot_job(
        &image,
        &guest,
        &job(xvda)?,
        "blk",
        timeout,
        TEST_GUEST_LIMIT,
        |_| {},
    )?;
    let t = &booted.transcript;
    let verdict = console::judge_selftest(t, &booted.end);
    for line in &verdict.shown {
        println!("{line}");
    }
    for line in t
        .guest
        .iter()
        .filter(|l| l.starts_with("BLK ") || l.contains("blk-read-write:"))
    {
        println!("xen| {line}");
    }
    let mut all_ok = true;
    for test in &verdict.tests {
        tally.record(test.ok, format!("stock Xen: {}", test.line));
        all_ok &= test.ok;
    }
    let host = verdict
        .host
        .iter()
        .map(|(ok, line)| (*ok, line.replacen("HOST xen-run", "HOST xen-run-blk", 1)))
        .chain(host_checks(t, &xvda_sha, &guest_sha));
    for (ok, line) in host {
        println!("{line}");
        tally.record(ok, format!("stock Xen: {line}"));
        all_ok &= ok;
    }
    if !all_ok {
        explain_failure(&booted);
    }
    Ok(())
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

    #[test]
    fn host_checks_pass_only_on_matching_evidence() {
        let good = transcript(&[
            "G|BLK sha256 xvda 1048576 aaaa",
            "PVXEN result f_req-before 0",
            "PVXEN result f_req-after 2",
            "PVXEN result xvda-after aaaa",
            "PVXEN result xvdb-head bbbb",
        ]);
        let checks = host_checks(&good, "aaaa", "bbbb");
        assert!(checks.iter().all(|(ok, _)| *ok), "{checks:?}");
        assert_eq!(checks.len(), 4);

        let bad = transcript(&[
            "G|BLK sha256 xvda 1048576 cccc",
            "PVXEN result f_req-before 3",
            "PVXEN result f_req-after 3",
            "PVXEN result xvda-after dddd",
        ]);
        let checks = host_checks(&bad, "aaaa", "bbbb");
        assert!(checks.iter().all(|(ok, _)| !ok), "{checks:?}");
        assert!(
            checks[0]
                .1
                .starts_with("HOST blk-pattern FAIL guest read sha256 cccc")
        );
        assert!(checks[1].1.contains("dom0 gave no `xvdb-head`"));
        assert!(checks[2].1.contains("xvda changed"));
        assert!(checks[3].1.contains("from 3 to 3"));
        let short = transcript(&["G|BLK sha256 xvda 512 aaaa"]);
        assert!(
            host_checks(&short, "aaaa", "b")[0]
                .1
                .contains("read 512 bytes")
        );
    }

    #[test]
    fn the_job_prepares_the_disks_and_reads_the_counter_around_the_run() {
        let job = job(vec![1, 2, 3]).unwrap();
        let steps = job.steps_text().unwrap();
        let order: Vec<String> = steps
            .lines()
            .map(|l| l.splitn(3, ' ').take(2).collect::<Vec<_>>().join(" "))
            .collect();
        assert_eq!(
            order,
            [
                "run backend",
                "run prep-xvda",
                "run prep-xvdb",
                "create guest.cfg",
                "run f_req-before",
                "unpause",
                "wait-end",
                "run f_req-after",
                "destroy",
                "digest xvda-after",
                "digest xvdb-head"
            ]
        );
        assert!(steps.contains("vbd-$($XL domid pvguest)-51728/statistics/f_req"));
        assert!(job.config.contains("access=ro, target=/tmp/xvda.img"));
        assert!(job.config.contains(&cmdline()));
        assert_eq!(job.files[0].0, "xvda.img");
    }

    #[test]
    fn patterns_tell_sectors_apart() {
        let sector = |n: usize| {
            (n * 512..(n + 1) * 512)
                .map(harness_pattern)
                .collect::<Vec<_>>()
        };
        assert_ne!(sector(0), sector(1));
        assert_ne!(sector(1), sector(2048));
        assert_eq!(
            (guest_pattern(0), guest_pattern(251), guest_pattern(250)),
            (0x5a, 0x5a, 250 ^ 0x5a)
        );
    }
}
