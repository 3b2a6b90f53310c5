//! The `pair` self-test group on stock Xen: steps added to the platform boot of `xen-test`
//! (after its guest has ended), run by `xtask/dom0/pair.sh`: both domains created paused
//! (`pair-offer` with `selftest=pair pair=offer`, `pair-accept` with `pair=accept`), each
//! told the other's id in `data/peer-domid` (its home's `data` node and the new key must stay
//! the domain's own: permissions `n<id>`), unpaused together, waited for, their consoles
//! fetched (each as one percent-encoded result line) and destroyed.
//!
//! [`judge`] makes one unit per `TEST` line of each side and `HOST xen-pair ok|FAIL <why>`;
//! both sides' `TEST`/`FACT` lines go to the comparison with hv's `PAIR` boot.

use super::console::Transcript;
use super::job::Step;
use super::xl_config;
use crate::selftest::{Lines, read_lines};

/// The offer side's xl name (and config `pair-offer.cfg`).
pub const OFFER: &str = "pair-offer";
/// The accept side's.
pub const ACCEPT: &str = "pair-accept";
/// dom0's script for the steps.
const PAIR_SH: &[u8] = include_bytes!("../../dom0/pair.sh");

/// The files the steps need in `/pvxen/`: the script and both configs.
pub fn files() -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let mut files = vec![("pair.sh".to_owned(), PAIR_SH.to_vec())];
    for (name, side) in [(OFFER, "offer"), (ACCEPT, "accept")] {
        let config = xl_config(&format!("selftest=pair pair={side}"), "")?.replacen(
            "name = \"pvguest\"",
            &format!("name = \"{name}\""),
            1,
        );
        files.push((format!("{name}.cfg"), config.into_bytes()));
    }
    Ok(files)
}

/// The steps, after the platform guest's `destroy`.
pub fn steps() -> Vec<Step> {
    let run = |key: &str, args: &str| Step::Run {
        key: key.to_owned(),
        command: format!("sh /pvxen/pair.sh {args}"),
    };
    vec![
        run("pair-create", "create"),
        run("pair-peers", "peers"),
        run("pair-run", "run"),
        run("pair-console-offer", &format!("console {OFFER}")),
        run("pair-console-accept", &format!("console {ACCEPT}")),
        run("pair-destroy", "destroy"),
    ]
}

/// Decodes a `console` result: `%25` is `%`, `%0A` ends a line; `-` (nothing) is no line.
pub fn decode_console(value: &str) -> Vec<String> {
    if value == "-" {
        return Vec::new();
    }
    value
        .split_terminator("%0A")
        .map(|line| line.replace("%25", "%"))
        .collect()
}

/// What the pair steps showed.
#[derive(Debug)]
pub struct PairVerdict {
    /// Each side's console lines, offer first.
    pub consoles: [(&'static str, Vec<String>); 2],
    /// Each side's self-test lines, offer first.
    pub lines: [(&'static str, Lines); 2],
    /// `HOST xen-pair ok|FAIL <why>` and whether it passed.
    pub host: (bool, String),
    /// Seconds from unpausing both to both down, as dom0 measured them.
    pub secs: Option<String>,
}

impl PairVerdict {
    /// Both sides' `TEST` and `FACT` lines, offer first (for the comparison with hv).
    pub fn compared_lines(&self) -> Vec<String> {
        self.lines
            .iter()
            .flat_map(|(_, l)| l.shown.iter())
            .filter(|l| l.starts_with("TEST ") || l.starts_with("FACT "))
            .cloned()
            .collect()
    }
}

/// Judges the pair steps of a transcript.
pub fn judge(t: &Transcript) -> PairVerdict {
    let mut problems = Vec::new();
    for (key, what) in [
        ("pair-create", "creating both paused"),
        ("pair-peers", "writing data/peer-domid"),
        ("pair-destroy", "destroying both"),
    ] {
        match t.result(key) {
            Some("ok") => {}
            Some(other) => problems.push(format!("{what}: {other}")),
            None => problems.push(format!("{what}: dom0 gave no result")),
        }
    }
    let run = t.result("pair-run").unwrap_or("-");
    let word = |name: &str| {
        run.split(' ')
            .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
    };
    for side in ["offer", "accept"] {
        match word(side) {
            Some("poweroff") => {}
            Some(how) => problems.push(format!("pair-{side} ended: {how}")),
            None => problems.push(format!("pair-{side}: no end in `{run}`")),
        }
    }
    let console = |key: &str| decode_console(t.result(key).unwrap_or("-"));
    let consoles = [
        (OFFER, console("pair-console-offer")),
        (ACCEPT, console("pair-console-accept")),
    ];
    let lines = consoles.clone().map(|(name, c)| (name, read_lines(&c)));
    for (name, l) in &lines {
        problems.extend(l.problems.iter().map(|p| format!("{name}: {p}")));
        let failed: Vec<&str> = l
            .tests
            .iter()
            .filter(|t| !t.ok)
            .map(|t| t.name.as_str())
            .collect();
        if !failed.is_empty() {
            problems.push(format!("{name}: failed {}", failed.join(", ")));
        }
    }
    let host = if problems.is_empty() {
        (true, "HOST xen-pair ok".to_owned())
    } else {
        (false, format!("HOST xen-pair FAIL {}", problems.join("; ")))
    };
    PairVerdict {
        consoles,
        lines,
        host,
        secs: word("secs").map(str::to_owned),
    }
}

/// Prints both sides' `TEST`/`FACT`/`RESULT` lines and the `HOST` line, records one unit per
/// `TEST` line and one for the `HOST` line; on failure prints both consoles. Returns whether
/// all passed.
pub fn record(v: &PairVerdict, tally: &mut crate::tally::Tally) -> bool {
    let mut all_ok = true;
    for (name, l) in &v.lines {
        for line in &l.shown {
            println!("{line}");
        }
        for test in &l.tests {
            tally.record(test.ok, format!("stock Xen {name}: {}", test.line));
            all_ok &= test.ok;
        }
    }
    if let Some(secs) = &v.secs {
        println!("xen: the pair group ran {secs} s (both unpaused until both down)");
    }
    let (ok, line) = &v.host;
    println!("{line}");
    tally.record(*ok, format!("stock Xen: {line}"));
    all_ok &= ok;
    if !all_ok {
        for (name, console) in &v.consoles {
            for line in console {
                println!("xen| {name}: {line}");
            }
        }
    }
    all_ok
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

    const OFFER_CONSOLE: &str = "[INFO ] pvguest: 100%25 up%0AFACT pair-offer-publish.bind-own-port -22%0ATEST pair-offer-publish ok%0ATEST pair-offer-event ok%0ARESULT 2 passed, 0 failed%0A";
    const ACCEPT_CONSOLE: &str = "TEST pair-accept-connect ok%0AFACT pair-accept-copy.copy-unused-gref -1%0ATEST pair-accept-copy ok%0ARESULT 2 passed, 0 failed%0A";

    fn good() -> Vec<String> {
        vec![
            "PVXEN result pair-create ok".into(),
            "PVXEN result pair-peers ok".into(),
            "PVXEN result pair-run offer=poweroff accept=poweroff secs=4.20".into(),
            format!("PVXEN result pair-console-offer {OFFER_CONSOLE}"),
            format!("PVXEN result pair-console-accept {ACCEPT_CONSOLE}"),
            "PVXEN result pair-destroy ok".into(),
        ]
    }

    #[test]
    fn consoles_decode_line_by_line() {
        assert_eq!(decode_console("a%25b%0A%0Ac%2525%0A"), ["a%b", "", "c%25"]);
        assert_eq!(decode_console("-"), Vec::<String>::new());
        assert_eq!(decode_console("unterminated"), ["unterminated"]);
    }

    #[test]
    fn a_good_pair_run_passes_and_gives_both_sides_lines() {
        let lines = good();
        let t = transcript(&lines.iter().map(String::as_str).collect::<Vec<_>>());
        let v = judge(&t);
        assert_eq!(v.host, (true, "HOST xen-pair ok".to_owned()), "{v:?}");
        assert_eq!(v.secs.as_deref(), Some("4.20"));
        assert_eq!(v.consoles[0].1[0], "[INFO ] pvguest: 100% up");
        assert_eq!(
            v.compared_lines(),
            [
                "FACT pair-offer-publish.bind-own-port -22",
                "TEST pair-offer-publish ok",
                "TEST pair-offer-event ok",
                "TEST pair-accept-connect ok",
                "FACT pair-accept-copy.copy-unused-gref -1",
                "TEST pair-accept-copy ok",
            ]
        );
        let mut tally = crate::tally::Tally::new();
        assert!(record(&v, &mut tally));
    }

    #[test]
    fn every_problem_is_named() {
        let bad = |from: &str, to: &str| {
            let lines: Vec<String> = good().iter().map(|l| l.replace(from, to)).collect();
            let t = transcript(&lines.iter().map(String::as_str).collect::<Vec<_>>());
            let v = judge(&t);
            assert!(!v.host.0, "{from} -> {to}: {v:?}");
            v.host.1
        };
        let why = bad(
            "pair-peers ok",
            "pair-peers not owned by the domain alone: x (r0)",
        );
        assert!(
            why.contains("writing data/peer-domid: not owned by the domain alone"),
            "{why}"
        );
        let why = bad(
            "pair-create ok",
            "pair-create xl create -p pair-offer failed",
        );
        assert!(why.contains("creating both paused: xl create"), "{why}");
        let why = bad("accept=poweroff", "accept=crash");
        assert!(why.contains("pair-accept ended: crash"), "{why}");
        let why = bad("offer=poweroff ", "");
        assert!(why.contains("pair-offer: no end in"), "{why}");
        let why = bad(
            "TEST pair-accept-copy ok",
            "TEST pair-accept-copy FAIL bytes",
        );
        assert!(
            why.contains("pair-accept: failed pair-accept-copy"),
            "{why}"
        );
        let why = bad("copy ok%0ARESULT 2 passed, 0 failed%0A", "copy ok%0A");
        assert!(why.contains("pair-accept: no RESULT line"), "{why}");
        let v = judge(&Transcript::default());
        assert!(v.host.1.contains("dom0 gave no result"), "{}", v.host.1);
        assert!(v.compared_lines().is_empty());
    }

    #[test]
    fn the_steps_use_both_configs_and_the_script() {
        let files = files().unwrap();
        let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["pair.sh", "pair-offer.cfg", "pair-accept.cfg"]);
        let offer = String::from_utf8(files[1].1.clone()).unwrap();
        assert!(offer.contains("name = \"pair-offer\""), "{offer}");
        assert!(offer.contains("cmdline = \"selftest=pair pair=offer\""));
        assert!(offer.contains("on_poweroff = \"preserve\""));
        let accept = String::from_utf8(files[2].1.clone()).unwrap();
        assert!(accept.contains("name = \"pair-accept\"") && accept.contains("pair=accept"));
        let script = String::from_utf8(files[0].1.clone()).unwrap();
        for step in steps() {
            let line = step.line().unwrap();
            let cmd = line.split(' ').nth(4).unwrap();
            assert!(
                script.contains(&format!("\n{cmd})")),
                "pair.sh has no `{cmd})` case for {line}"
            );
        }
    }
}
