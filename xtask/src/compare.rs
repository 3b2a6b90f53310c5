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
/// the negotiated features (`blk-indirect`, `blk-persistent`, `blk-discard`) with their facts
/// included: both back ends offer them and both boots use them.
pub const BLK_TESTS: [&str; 10] = [
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
];

/// The `net` group's tests, compared between the stock-Xen device boot and hv's net-group
/// boot (`xtask/src/hv/net.rs`).
pub const NET_TESTS: [&str; 4] = ["net-connect", "net-mac", "net-dhcp", "net-ping-gateway"];

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
/// `TEST` line, such as `events` and `grants`); one `(ok, HOST line)` per test.
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
        {
            names.push(name);
        }
    }
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
        assert_eq!(v.len(), BOOT_TESTS.len() + PAIR_TESTS.len());
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
        assert_eq!(v.len(), boot + PAIR_TESTS.len());
        assert!(v.iter().all(|(ok, _)| *ok), "{v:?}");
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
        let bad: Vec<&String> = v.iter().filter(|(ok, _)| !ok).map(|(_, l)| l).collect();
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
        assert_eq!(v.len(), 16);
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
        assert_eq!(v.len(), 17);
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
}
