//! Tier T4: the guest's answers on `hv` compared with its answers on stock Xen, test by test.
//!
//! For each compared test, its `FACT <test>.<key> <value>` lines and its `TEST` line are taken
//! in order from both runs; they must be identical. One `HOST same-<test> ok|FAIL <first
//! difference>` line per test. Pure: it takes the guest's lines of each run.

use crate::selftest::{fact_test, parse_test};

/// The tests of the guest's `boot` group, compared in this order (more are compared if the
/// `hv` run printed more).
pub const BOOT_TESTS: [&str; 7] = [
    "xen-version",
    "xen-features",
    "start-info",
    "memory-map",
    "heap-alloc",
    "hypercall-enosys",
    "memory-outside-ram",
];

/// The tests of the guest's `pair` group, offer side then accept side: always compared, so
/// that a run of either platform that printed none of them fails each by name. Both runs'
/// lines include both domains' lines (the names carry the side).
pub const PAIR_TESTS: [&str; 9] = [
    "pair-offer-publish",
    "pair-offer-event",
    "pair-offer-reply",
    "pair-offer-peer-closed",
    "pair-offer-grants-ended",
    "pair-accept-connect",
    "pair-accept-copy",
    "pair-accept-map",
    "pair-accept-event",
];

/// The `blk` group's tests compared between the stock-Xen device boot and hv's `blk` boot,
/// the negotiated features (`blk-indirect`, `blk-persistent`, `blk-discard`,
/// `blk-multipage-ring`, `blk-multiqueue`) with their facts included: both back ends offer
/// them and both boots use them; last `blk-resize`, the read-write disk grown and shrunk back
/// under the guest by each harness.
pub const BLK_TESTS: [&str; 13] = [
    "blk-connect",
    "blk-geometry",
    "blk-read-write",
    "blk-flush",
    "blk-readonly-refused",
    "blk-tar",
    "blk-kv",
    "blk-indirect",
    "blk-persistent",
    "blk-discard",
    "blk-multipage-ring",
    "blk-multiqueue",
    "blk-resize",
];

/// The `net` group's tests, compared between the stock-Xen device boot and hv's net-group
/// boot (`xtask/src/hv/net.rs`); `net-sg` and `net-gso-rx` judge the bulk transfers each
/// harness runs while the guest serves (dom0's curl on stock Xen, the host's through QEMU's
/// forward on hv).
pub const NET_TESTS: [&str; 9] = [
    "net-connect",
    "net-mac",
    "net-dhcp",
    "net-ping-gateway",
    "net-csum-offload",
    "net-split-evtchn",
    "net-multiqueue",
    "net-sg",
    "net-gso-rx",
];

/// The classes of the `hostile` group, each compared on its own: its `FACT
/// hostile.<class>.calls`/`.errnos` lines and its `TEST hostile-<class>` line, as `HOST
/// same-hostile-<class>`; `canary-unread` is the group's last test.
pub const HOSTILE_CLASSES: [&str; 11] = [
    "ops",
    "ports",
    "grants",
    "frames",
    "domids",
    "buffers",
    "svm",
    "msrs",
    "cpl3",
    "xenstore",
    "canary-unread",
];

/// The `hostile` classes whose answers hv gives differently from stock Xen 4.17 (at most
/// three), each with the reason: their `errnos` digests are not compared (their call counts
/// and `TEST` lines still are). hv's crate docs (`hv/src/lib.rs`) list the same.
pub const HOSTILE_DIVERGENCES: &[(&str, &str)] = &[(
    "msrs",
    "hv #GPs RDMSR of the TSC (xen/arch/x86/hvm/hvm.c:3539) and of MSR_AMD_PATCHLEVEL \
         (xen/arch/x86/msr.c:131), and a PAT with reserved types, which Xen leaves to the \
         CPU (xen/arch/x86/hvm/svm/vmcb.c:164) and QEMU's TCG accepts",
)];

/// `HOST same-hostile-<class>` for every class of [`HOSTILE_CLASSES`].
pub fn compare_hostile(xen: &[String], hv: &[String]) -> Vec<(bool, String)> {
    HOSTILE_CLASSES
        .iter()
        .map(|class| {
            let divergence = HOSTILE_DIVERGENCES
                .iter()
                .find(|(c, _)| c == class)
                .map(|(_, why)| *why);
            let of = |run: &[String], with_errnos: bool| -> Vec<String> {
                let fact = format!("FACT hostile.{class}.");
                let errnos = format!("FACT hostile.{class}.errnos ");
                let test = format!("hostile-{class}");
                run.iter()
                    .filter(|l| {
                        (l.starts_with(&fact) && (with_errnos || !l.starts_with(&errnos)))
                            || parse_test(l).is_some_and(|t| t.name == test)
                    })
                    .cloned()
                    .collect()
            };
            let diff = |with_errnos: bool| {
                let (x, h) = (of(xen, with_errnos), of(hv, with_errnos));
                let x: Vec<&str> = x.iter().map(String::as_str).collect();
                let h: Vec<&str> = h.iter().map(String::as_str).collect();
                first_difference(&x, &h)
            };
            match (diff(true), divergence) {
                (None, _) => (true, format!("HOST same-hostile-{class} ok")),
                (Some(_), Some(why)) if diff(false).is_none() => (
                    true,
                    format!("HOST same-hostile-{class} ok (errnos differ: {why})"),
                ),
                (Some(d), _) => (false, format!("HOST same-hostile-{class} FAIL {d}")),
            }
        })
        .collect()
}

/// Whether a test name (or FACT prefix) belongs to the `hostile` group.
fn is_hostile(name: &str) -> bool {
    name == "hostile"
        || name
            .strip_prefix("hostile-")
            .is_some_and(|c| HOSTILE_CLASSES.contains(&c))
}

/// Compares exactly the tests `names` of the two runs; one `(ok, HOST same-<test> ...)` per
/// test.
pub fn compare_named(xen: &[String], hv: &[String], names: &[&str]) -> Vec<(bool, String)> {
    names
        .iter()
        .map(
            |name| match first_difference(&lines_of(xen, name), &lines_of(hv, name)) {
                None => (true, format!("HOST same-{name} ok")),
                Some(diff) => (false, format!("HOST same-{name} FAIL {diff}")),
            },
        )
        .collect()
}

/// The lines of `test` in a run: its FACT lines and its TEST line, in order.
fn lines_of<'a>(guest: &'a [String], test: &str) -> Vec<&'a str> {
    guest
        .iter()
        .map(String::as_str)
        .filter(|l| fact_test(l) == Some(test) || parse_test(l).is_some_and(|t| t.name == test))
        .collect()
}

/// The first difference between the two runs' lines of `test`, if any.
fn first_difference(xen: &[&str], hv: &[&str]) -> Option<String> {
    if xen.is_empty() {
        return Some("stock Xen printed no lines for it".into());
    }
    if hv.is_empty() {
        return Some("hv's run printed no lines for it".into());
    }
    for i in 0..xen.len().max(hv.len()) {
        match (xen.get(i), hv.get(i)) {
            (Some(x), Some(h)) if x == h => {}
            (Some(x), Some(h)) => return Some(format!("stock Xen {x:?}, hv {h:?}")),
            (Some(x), None) => return Some(format!("hv lacks {x:?}")),
            (None, Some(h)) => return Some(format!("hv adds {h:?}")),
            (None, None) => {}
        }
    }
    None
}

/// Compares the runs for every boot test, then every `pair` test (and any other test the
/// `hv` run printed, and any group whose `FACT <group>.<key>` lines it printed without a
/// `TEST` line, such as `events` and `grants`), then each `hostile` class
/// ([`compare_hostile`]); one `(ok, HOST line)` per test.
pub fn compare(xen: &[String], hv: &[String]) -> Vec<(bool, String)> {
    let mut names: Vec<String> = BOOT_TESTS
        .iter()
        .chain(&PAIR_TESTS)
        .map(|s| s.to_string())
        .collect();
    for l in hv {
        let name = parse_test(l)
            .map(|t| t.name)
            .or_else(|| fact_test(l).map(str::to_owned));
        if let Some(name) = name
            && !names.contains(&name)
            && !is_hostile(&name)
        {
            names.push(name);
        }
    }
    let mut v: Vec<(bool, String)> = names
        .iter()
        .map(
            |name| match first_difference(&lines_of(xen, name), &lines_of(hv, name)) {
                None => (true, format!("HOST same-{name} ok")),
                Some(diff) => (false, format!("HOST same-{name} FAIL {diff}")),
            },
        )
        .collect();
    v.extend(compare_hostile(xen, hv));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(str::to_owned).collect()
    }

    /// The boot part of a recorded stock-Xen platform run (then more platform tests).
    const XEN: &str = "\
[INFO ] pvguest: Xen 4.17 (CPUID base 0x40000000, hypercall MSR 0x40000000)
FACT xen-version.version 4.17
FACT xen-version.cpuid.40000000 40000005 566e6558 65584d4d 4d4d566e
TEST xen-version ok
FACT xen-features.submap0 0x00012305
FACT xen-features.submap1 errno -22
TEST xen-features ok
FACT start-info.version 1
TEST start-info ok
FACT memory-map.ram-kib 131072
TEST memory-map ok
FACT heap-alloc.leaked-bytes 0
TEST heap-alloc ok
FACT hypercall-enosys.hypercall-63 -38
TEST hypercall-enosys ok
FACT memory-outside-ram.mov32 0xffffffff
TEST memory-outside-ram ok
TEST console-flood ok
TEST clock-monotonic ok
RESULT 9 passed, 0 failed";

    fn boot_part() -> String {
        // The same tests on hv: only the boot group, a different RESULT and log lines.
        XEN.lines()
            .filter(|l| !l.contains("console-flood") && !l.contains("clock-monotonic"))
            .map(|l| l.replace("RESULT 9 passed", "RESULT 7 passed"))
            .chain(["[INFO ] heap: 16384 KiB at 0x200000".to_owned()])
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn named_tests_are_compared_and_nothing_else() {
        let xen = lines("TEST blk-connect ok\nTEST blk-geometry ok\nFACT blk-indirect.segments 32");
        let hv = lines(
            "TEST blk-connect ok\nTEST blk-geometry FAIL sectors 1 != 2\nFACT blk-indirect.segments 0",
        );
        let v = compare_named(&xen, &hv, &["blk-connect", "blk-geometry", "blk-tar"]);
        assert_eq!(v.len(), 3);
        assert_eq!(v[0], (true, "HOST same-blk-connect ok".to_owned()));
        assert!(!v[1].0 && v[1].1.starts_with("HOST same-blk-geometry FAIL stock Xen"));
        assert_eq!(
            v[2],
            (
                false,
                "HOST same-blk-tar FAIL stock Xen printed no lines for it".to_owned()
            )
        );
    }

    #[test]
    fn identical_boot_tests_compare_ok() {
        let v = compare(&lines(XEN), &lines(&boot_part()));
        assert_eq!(
            v.len(),
            BOOT_TESTS.len() + PAIR_TESTS.len() + HOSTILE_CLASSES.len()
        );
        assert!(v[..7].iter().all(|(ok, _)| *ok), "{v:?}");
        assert_eq!(v[0].1, "HOST same-xen-version ok");
        assert_eq!(v[5].1, "HOST same-hypercall-enosys ok");
        assert_eq!(v[6].1, "HOST same-memory-outside-ram ok");
    }

    #[test]
    fn the_first_difference_is_named() {
        let hv = boot_part().replace("submap0 0x00012305", "submap0 0x00000305");
        let v = compare(&lines(XEN), &lines(&hv));
        assert_eq!(
            v[1],
            (
                false,
                "HOST same-xen-features FAIL stock Xen \"FACT xen-features.submap0 0x00012305\", \
                 hv \"FACT xen-features.submap0 0x00000305\""
                    .to_owned()
            )
        );
        assert!(v[..6].iter().filter(|(ok, _)| !ok).count() == 1);

        let hv = boot_part().replace("FACT start-info.version 1\n", "");
        let v = compare(&lines(XEN), &lines(&hv));
        assert_eq!(
            v[2].1,
            "HOST same-start-info FAIL stock Xen \"FACT start-info.version 1\", hv \"TEST start-info ok\""
        );
        let hv = boot_part().replace("TEST heap-alloc ok", "TEST heap-alloc FAIL leak");
        let v = compare(&lines(XEN), &lines(&hv));
        assert!(
            v[4].1.contains("hv \"TEST heap-alloc FAIL leak\""),
            "{}",
            v[4].1
        );
        let hv = boot_part().replace(
            "TEST memory-map ok",
            "FACT memory-map.extra 1\nTEST memory-map ok",
        );
        let v = compare(&lines(XEN), &lines(&hv));
        assert!(
            v[3].1.contains("hv \"FACT memory-map.extra 1\""),
            "{}",
            v[3].1
        );
    }

    /// Both sides' lines, as each platform's run hands them over (after its own lines).
    const PAIR: &str = "\
FACT pair-offer-publish.bind-own-port -22
TEST pair-offer-publish ok
TEST pair-offer-event ok
TEST pair-offer-reply ok
TEST pair-offer-peer-closed ok
TEST pair-offer-grants-ended ok
TEST pair-accept-connect ok
FACT pair-accept-copy.copy-third-domain-grant -1
FACT pair-accept-copy.copy-unused-gref -1
TEST pair-accept-copy ok
FACT pair-accept-map.map-readonly-grant-writable -1
TEST pair-accept-map ok
TEST pair-accept-event ok";

    #[test]
    fn pair_tests_are_compared_whoever_printed_them() {
        let xen = lines(&format!("{XEN}\n{PAIR}"));
        let hv = lines(&format!("{}\n{PAIR}", boot_part()));
        let v = compare(&xen, &hv);
        let boot = BOOT_TESTS.len();
        assert_eq!(v.len(), boot + PAIR_TESTS.len() + HOSTILE_CLASSES.len());
        assert!(
            v[..boot + PAIR_TESTS.len()].iter().all(|(ok, _)| *ok),
            "{v:?}"
        );
        assert_eq!(v[boot].1, "HOST same-pair-offer-publish ok");
        assert_eq!(v[boot + 8].1, "HOST same-pair-accept-event ok");
        // hv's pair boot printed nothing (hv's half missing): each pair test fails by name.
        let v = compare(&xen, &lines(&boot_part()));
        assert!(v[..boot].iter().all(|(ok, _)| *ok), "{v:?}");
        for (i, name) in PAIR_TESTS.iter().enumerate() {
            assert_eq!(
                v[boot + i],
                (
                    false,
                    format!("HOST same-{name} FAIL hv's run printed no lines for it")
                )
            );
        }
        // A refusal answered differently.
        let hv = lines(&format!(
            "{}\n{}",
            boot_part(),
            PAIR.replace("writable -1", "writable -8")
        ));
        let v = compare(&xen, &hv);
        let bad: Vec<&String> = v
            .iter()
            .filter(|(ok, l)| !ok && !l.starts_with("HOST same-hostile-"))
            .map(|(_, l)| l)
            .collect();
        assert_eq!(
            bad,
            [
                "HOST same-pair-accept-map FAIL stock Xen \"FACT pair-accept-map.map-readonly-grant-writable -1\", \
              hv \"FACT pair-accept-map.map-readonly-grant-writable -8\""
            ]
        );
    }

    /// Tidy: the compared pair tests are the guest's `pair` group's, offer side first.
    #[test]
    fn pair_tests_are_the_guest_pair_group() {
        let path = crate::build::workspace_root().join("pvguest/src/selftest/pair.rs");
        let src = std::fs::read_to_string(&path).unwrap();
        let list = |name: &str| -> Vec<String> {
            src.split_once(&format!("pub const {name}: &[&str] = &["))
                .and_then(|(_, rest)| rest.split_once("];"))
                .map(|(list, _)| list)
                .unwrap_or_else(|| panic!("{name} list in pair.rs"))
                .split('"')
                .skip(1)
                .step_by(2)
                .map(str::to_owned)
                .collect()
        };
        let mut names = list("TESTS_OFFER");
        names.extend(list("TESTS_ACCEPT"));
        assert_eq!(names, PAIR_TESTS);
    }

    /// Tidy: the compared list is the guest's `boot` group, in its order.
    #[test]
    fn boot_tests_are_the_guest_boot_group() {
        let path = crate::build::workspace_root().join("pvguest/src/selftest/boot.rs");
        let src = std::fs::read_to_string(&path).unwrap();
        let list = src
            .split_once("pub const TESTS: &[Test] = &[")
            .and_then(|(_, rest)| rest.split_once("];"))
            .map(|(list, _)| list)
            .expect("TESTS list in boot.rs");
        let names: Vec<&str> = list
            .split("(\"")
            .skip(1)
            .filter_map(|s| s.split_once('"').map(|(name, _)| name))
            .collect();
        assert_eq!(names, BOOT_TESTS);
    }

    /// A group's FACT lines without a TEST line of that name are compared as one unit.
    #[test]
    fn fact_only_groups_are_compared() {
        let xen =
            lines("FACT events.max-port 1023\nFACT events.bad-port-errno -22\nTEST timer-sleep ok");
        let same = compare(&xen, &xen);
        assert!(
            same.iter().any(|(ok, l)| *ok && l == "HOST same-events ok"),
            "{same:?}"
        );
        let hv =
            lines("FACT events.max-port 4095\nFACT events.bad-port-errno -22\nTEST timer-sleep ok");
        let v = compare(&xen, &hv);
        let events = v
            .iter()
            .find(|(_, l)| l.starts_with("HOST same-events"))
            .unwrap();
        assert!(
            !events.0 && events.1.contains("max-port 4095"),
            "{events:?}"
        );
    }

    #[test]
    fn missing_runs_and_extra_tests() {
        let v = compare(&lines(XEN), &[]);
        assert_eq!(v.len(), 16 + HOSTILE_CLASSES.len());
        assert_eq!(
            v[0].1,
            "HOST same-xen-version FAIL hv's run printed no lines for it"
        );
        let v = compare(&[], &lines(&boot_part()));
        assert!(
            v.iter()
                .all(|(ok, l)| !ok && l.ends_with("stock Xen printed no lines for it"))
        );
        let hv = format!("{}\nTEST new-test ok", boot_part());
        let v = compare(&lines(XEN), &lines(&hv));
        assert_eq!(v.len(), 17 + HOSTILE_CLASSES.len());
        assert_eq!(
            v[16].1,
            "HOST same-new-test FAIL stock Xen printed no lines for it"
        );
        // A test whose TEST line went missing on hv.
        let hv = boot_part().replace("TEST start-info ok\n", "");
        let v = compare(&lines(XEN), &lines(&hv));
        assert_eq!(
            v[2].1,
            "HOST same-start-info FAIL hv lacks \"TEST start-info ok\""
        );
    }

    /// One run of the `hostile` group: every class's lines, `ports` answered with `digest`.
    fn hostile_run(ports_digest: &str, ops_calls: u64) -> Vec<String> {
        let mut out = Vec::new();
        for class in HOSTILE_CLASSES {
            if class == "canary-unread" {
                out.push("TEST hostile-canary-unread ok".to_owned());
                continue;
            }
            let (calls, digest) = match class {
                "ports" => (500, ports_digest),
                "ops" => (ops_calls, "00000000000000aa"),
                _ => (500, "00000000000000bb"),
            };
            out.push(format!("FACT hostile.{class}.calls {calls}"));
            out.push(format!("FACT hostile.{class}.errnos {digest}"));
            out.push(format!("TEST hostile-{class} ok"));
        }
        out
    }

    #[test]
    fn hostile_classes_are_compared_one_by_one() {
        let xen = hostile_run("00000000000000cc", 500);
        let v = compare_hostile(&xen, &xen);
        assert_eq!(v.len(), HOSTILE_CLASSES.len());
        assert!(v.iter().all(|(ok, _)| *ok), "{v:?}");
        assert_eq!(v[1].1, "HOST same-hostile-ports ok");
        let v = compare_hostile(&xen, &hostile_run("00000000000000dd", 500));
        let bad: Vec<&(bool, String)> = v.iter().filter(|(ok, _)| !ok).collect();
        let known = HOSTILE_DIVERGENCES.iter().any(|(c, _)| *c == "ports");
        if known {
            assert!(bad.is_empty(), "{v:?}");
            assert!(
                v[1].1
                    .starts_with("HOST same-hostile-ports ok (errnos differ: ")
            );
        } else {
            assert_eq!(bad.len(), 1, "{v:?}");
            assert!(bad[0].1.starts_with("HOST same-hostile-ports FAIL stock Xen \"FACT hostile.ports.errnos 00000000000000cc\""), "{v:?}");
        }
        // A different number of calls fails even a class with a known divergence.
        let v = compare_hostile(&xen, &hostile_run("00000000000000cc", 499));
        assert!(!v[0].0 && v[0].1.contains("ops.calls 499"), "{v:?}");
        // A run without the group fails every class by name; compare() leaves them to here.
        let v = compare_hostile(&xen, &[]);
        assert!(
            v.iter()
                .all(|(ok, l)| !ok && l.ends_with("hv's run printed no lines for it"))
        );
        let v = compare(&xen, &xen);
        assert_eq!(
            v.len(),
            BOOT_TESTS.len() + PAIR_TESTS.len() + HOSTILE_CLASSES.len()
        );
    }

    /// At most three classes may differ, each a class of the group, each named in hv's docs.
    #[test]
    fn hostile_divergences_are_few_and_documented() {
        assert!(HOSTILE_DIVERGENCES.len() <= 3);
        let docs =
            std::fs::read_to_string(crate::build::workspace_root().join("hv/src/lib.rs")).unwrap();
        for (class, why) in HOSTILE_DIVERGENCES {
            assert!(HOSTILE_CLASSES.contains(class), "{class}");
            assert!(why.contains("xen/"), "{class}: cite Xen's source: {why}");
            assert!(
                docs.contains(&format!("`hostile.{class}`")),
                "{class} not in hv/src/lib.rs"
            );
        }
    }
}
