//! The device boot's `net` run with every negotiated feature off (issue 30): a fresh domain
//! with the vif alone and `net-offloads=off` (checksum offload, scatter-gather, GSO both
//! ways, split event channels and multiple queues all off), its `net` group run against Linux
//! netback while dom0 downloads and uploads 16 MiB, so that the plain paths (one slot per
//! frame, checksums computed in the guest, one channel, one queue) stay tested as the
//! negotiated ones are. Its `TEST` lines are units of their own (`stock Xen net features off:
//! TEST ...`); `HOST xen-run-net-off` judges the run (one `RESULT` agreeing with them, powered
//! off, every feature `FACT` saying the feature was off and its counters still), and `HOST
//! net-off-download` / `HOST net-off-upload` the transfers' digests.

use super::super::job::Step;
use super::{DOM0_IP, GUEST_IP, GUEST_MAC};
use crate::selftest::Lines;

/// The run's xl config in `/pvxen/`.
pub const CONFIG: &str = "guest-net-off.cfg";
/// What the run adds to the device boot's hard timeout: a boot, DHCP, the group's tests and
/// two 16 MiB transfers at the plain paths' speed take well under a minute; a loaded host
/// stretches it.
pub const MARGIN: std::time::Duration = std::time::Duration::from_secs(90);
/// How long the guest serves at most (the harness ends it sooner with `data/net-done`).
const SERVE_MS: u64 = 120_000;

/// The feature `FACT`s of the `net` group (`pvguest/src/selftest/net.rs`) and what each must
/// say with every feature off: not in use, its counters still.
pub const OFF_FACTS: &[(&str, &str)] = &[
    ("net-sg.in-use", "no"),
    ("net-sg.tx-multi-slot", "still"),
    ("net-sg.rx-multi-slot", "still"),
    ("net-gso-rx.in-use", "no"),
    ("net-gso-rx.received", "still"),
];

/// The run's command line: the `net` group alone, as the device boot's but without disks,
/// with every feature off.
pub fn cmdline() -> String {
    format!(
        "selftest=net ip=dhcp net-expect-mac={GUEST_MAC} net-expect-ip={GUEST_IP}/24 \
         net-expect-gw={DOM0_IP} net-serve-ms={SERVE_MS} net-offloads=off"
    )
}

/// The run's xl config: the vif on dom0's bridge, no disks.
pub fn config() -> anyhow::Result<String> {
    super::xl_config(
        &cmdline(),
        &format!("vif = [ 'mac={GUEST_MAC},bridge=xenbr0' ]\n"),
    )
}

/// The console log dom0 keeps for the guest's name (every domain of the name appends to it).
const LOG: &str = "/var/log/xen/console/guest-$NAME.log";

/// dom0's steps: the earlier domains' `NET serving` lines counted, the domain created, its
/// own `NET serving` awaited, the transfers, `data/net-done`, its end (the reason code the
/// monitoring xl logged: the device boot's last domain overwrites dom0's `end` line) and
/// destroy.
pub fn steps() -> Vec<Step> {
    let run = |key: &str, command: String| Step::Run {
        key: key.to_owned(),
        command,
    };
    vec![
        run(
            "net-off-mark",
            format!("grep -c 'NET serving' {LOG} > /tmp/net-off-mark; echo ok"),
        ),
        Step::Create {
            config: CONFIG.into(),
            paused: false,
        },
        run(
            "net-off-serving",
            format!(
                "n=$(cat /tmp/net-off-mark); i=0; \
                 while [ \"$(grep -c 'NET serving' {LOG})\" -le \"$n\" ] && [ $i -lt 600 ]; \
                 do sleep 0.2; i=$((i + 1)); done; \
                 if [ $i -lt 600 ]; then echo serving; else echo not-serving; fi"
            ),
        ),
        run(
            "net-off-download",
            format!("sh /pvxen/net-checks.sh {GUEST_IP} download"),
        ),
        run(
            "net-off-upload",
            format!("sh /pvxen/net-checks.sh {GUEST_IP} upload"),
        ),
        run(
            "net-off-done",
            "xenstore-write /local/domain/$($XL domid $NAME)/data/net-done 1 && echo ok".into(),
        ),
        Step::WaitEnd,
        run(
            "net-off-end",
            "sed -n 's/.*has shut down, reason code \\([0-9]*\\).*/\\1/p' \
             /var/log/xen/xl-$NAME.log | head -n 1"
                .into(),
        ),
        Step::Destroy,
    ]
}

/// The run's verdict from its guest lines `off` and the reason code dom0 read (`end`):
/// its `TEST`/`FACT`/`RESULT` lines, and `HOST xen-run-net-off` (a single `RESULT` agreeing
/// with the `TEST` lines, powered off, and every [`OFF_FACTS`] line as it must be).
pub fn judge(off: &[String], end: Option<&str>) -> (Lines, (bool, String)) {
    let mut lines = crate::selftest::read_lines(off);
    if off.is_empty() {
        lines.problems = vec!["the net features-off run was not created or printed nothing".into()];
    } else {
        match end {
            Some("0") => {}
            Some(code) if !code.is_empty() && code != "-" => lines
                .problems
                .push(format!("the guest shut down with reason code {code}")),
            _ => lines
                .problems
                .push("dom0 read no shutdown reason (the guest did not end)".into()),
        }
        for (name, want) in OFF_FACTS {
            let prefix = format!("FACT {name} ");
            let got = lines
                .shown
                .iter()
                .find_map(|l| l.strip_prefix(&prefix))
                .map(str::trim);
            match got {
                Some(v) if v == *want => {}
                Some(v) => lines.problems.push(format!(
                    "FACT {name} says {v}, every feature off says {want}"
                )),
                None => lines.problems.push(format!("no FACT {name}")),
            }
        }
    }
    let host = if lines.problems.is_empty() {
        (true, "HOST xen-run-net-off ok".to_owned())
    } else {
        (
            false,
            format!("HOST xen-run-net-off FAIL {}", lines.problems.join("; ")),
        )
    };
    (lines, host)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> Vec<String> {
        let mut lines: Vec<String> = ["TEST net-connect ok", "TEST net-sg ok"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        lines.extend(OFF_FACTS.iter().map(|(n, v)| format!("FACT {n} {v}")));
        lines.push("RESULT 2 passed, 0 failed".into());
        lines
    }

    #[test]
    fn a_run_passes_only_powered_off_with_every_feature_off() {
        let (judged, (ok, host)) = judge(&good(), Some("0"));
        assert!(ok, "{host}");
        assert_eq!(judged.tests.len(), 2);
        let (_, (ok, host)) = judge(&good(), Some("3"));
        assert!(!ok && host.contains("reason code 3"), "{host}");
        let (_, (ok, host)) = judge(&good(), None);
        assert!(!ok && host.contains("did not end"), "{host}");
        let on: Vec<String> = good()
            .into_iter()
            .map(|l| l.replace("net-gso-rx.received still", "net-gso-rx.received moved"))
            .collect();
        let (_, (ok, host)) = judge(&on, Some("0"));
        assert!(
            !ok && host.contains("FACT net-gso-rx.received says moved"),
            "{host}"
        );
        let missing: Vec<String> = good()
            .into_iter()
            .filter(|l| !l.contains("net-sg.in-use"))
            .collect();
        let (_, (ok, host)) = judge(&missing, Some("0"));
        assert!(!ok && host.contains("no FACT net-sg.in-use"), "{host}");
        let (_, (ok, host)) = judge(&[], Some("0"));
        assert!(!ok && host.contains("not created"), "{host}");
    }

    #[test]
    fn the_run_switches_every_feature_off_without_disks() {
        let config = config().unwrap();
        assert!(config.contains("net-offloads=off"));
        assert!(config.contains("selftest=net "));
        assert!(config.contains("bridge=xenbr0") && !config.contains("disk"));
        let steps = steps();
        assert!(steps.iter().all(|s| s.line().is_ok()));
        assert!(steps.contains(&Step::Create {
            config: CONFIG.into(),
            paused: false
        }));
    }
}
