//! Comparing the two sides: every item whose C and Rust values differ, or whose C side does not
//! compile, is a mismatch; so is a header that does not compile.

use crate::c_side::CSide;
use crate::spec::Kind;
use crate::table::Entry;

/// The result of one comparison.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// How many items were compared (one per entry).
    pub checked: usize,
    /// One line per mismatch: `loc what: C=... Rust=...`, or why the C side has no value.
    pub mismatches: Vec<String>,
}

/// A value as reports show it: constants in decimal and hex, everything else in decimal.
fn show(kind: Kind, value: u64) -> String {
    match kind {
        Kind::Const => format!("{value} ({value:#x})"),
        _ => value.to_string(),
    }
}

/// Compares the Rust values (`rust`, in entry order) with the C side's.
///
/// # Panics
/// If `rust` or `c.values` do not have one value per entry: the table and its values were
/// generated together, so that is a bug in this crate.
pub fn compare(entries: &[Entry], rust: &[u64], c: &CSide) -> Outcome {
    assert_eq!(rust.len(), entries.len(), "one Rust value per entry");
    assert_eq!(c.values.len(), entries.len(), "one C value per entry");
    let mut mismatches = c.header_errors.clone();
    for ((entry, &rust), c_value) in entries.iter().zip(rust).zip(&c.values) {
        match c_value {
            Ok(c_value) if *c_value == rust => {}
            Ok(c_value) => mismatches.push(format!(
                "{} {}: C={} Rust={}",
                entry.loc,
                entry.what,
                show(entry.kind, *c_value),
                show(entry.kind, rust)
            )),
            Err(why) => mismatches.push(format!("{} {}: {why}", entry.loc, entry.what)),
        }
    }
    Outcome {
        checked: entries.len(),
        mismatches,
    }
}

/// The one-line summary `cargo xtask conformance` prints, e.g.
/// `abi conformance: 412 items checked against Xen 4.17 headers, 0 mismatches`.
pub fn summary_line(outcome: &Outcome, headers: &str) -> String {
    format!(
        "abi conformance: {} items checked against {headers} headers, {} mismatches",
        outcome.checked,
        outcome.mismatches.len()
    )
}

/// The machine-readable lines the test prints for `cargo xtask conformance`: one
/// `CONFORMANCE-MISMATCH <text>` per mismatch, then
/// `CONFORMANCE-SUMMARY checked=N mismatches=M headers=<label>`.
pub fn report_lines(outcome: &Outcome, headers: &str) -> Vec<String> {
    let mut lines: Vec<String> = outcome
        .mismatches
        .iter()
        .map(|m| format!("CONFORMANCE-MISMATCH {m}"))
        .collect();
    lines.push(format!(
        "CONFORMANCE-SUMMARY checked={} mismatches={} headers={headers}",
        outcome.checked,
        outcome.mismatches.len()
    ));
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENTRIES: &[Entry] = &[
        Entry {
            loc: "m.spec:2",
            kind: Kind::Const,
            what: "const A (abi::m::A)",
            c_expr: "(unsigned long long)(A)",
        },
        Entry {
            loc: "m.spec:3",
            kind: Kind::FieldOffset,
            what: "offset of struct s.f (abi::m::S.f)",
            c_expr: "offsetof(struct s, f)",
        },
        Entry {
            loc: "m.spec:3",
            kind: Kind::FieldSize,
            what: "size of struct s.f (abi::m::S.f)",
            c_expr: "sizeof(((struct s *)0)->f)",
        },
    ];

    fn c_side(values: Vec<Result<u64, String>>) -> CSide {
        CSide {
            values,
            header_errors: Vec::new(),
            latest_interface_version: 0x0004_0e00,
        }
    }

    #[test]
    fn equal_values_give_no_mismatch() {
        let outcome = compare(
            ENTRIES,
            &[u64::MAX - 21, 8, 4],
            &c_side(vec![Ok(u64::MAX - 21), Ok(8), Ok(4)]),
        );
        assert_eq!(
            outcome,
            Outcome {
                checked: 3,
                mismatches: vec![]
            }
        );
        assert_eq!(
            summary_line(&outcome, "Xen 4.17"),
            "abi conformance: 3 items checked against Xen 4.17 headers, 0 mismatches"
        );
    }

    #[test]
    fn differences_and_c_errors_are_mismatches() {
        let mut c = c_side(vec![
            Ok(0x10),
            Ok(8),
            Err("C side does not compile: no member named 'f'".into()),
        ]);
        c.header_errors
            .push("m.spec:1 header xen/nope.h: does not compile: fatal error".into());
        let outcome = compare(ENTRIES, &[0x11, 8, 4], &c);
        assert_eq!(
            outcome.mismatches,
            [
                "m.spec:1 header xen/nope.h: does not compile: fatal error",
                "m.spec:2 const A (abi::m::A): C=16 (0x10) Rust=17 (0x11)",
                "m.spec:3 size of struct s.f (abi::m::S.f): C side does not compile: no member named 'f'",
            ]
        );
        let lines = report_lines(&outcome, "Xen 4.17");
        assert_eq!(lines.len(), 4);
        assert_eq!(
            lines[3],
            "CONFORMANCE-SUMMARY checked=3 mismatches=3 headers=Xen 4.17"
        );
        assert!(lines[1].starts_with("CONFORMANCE-MISMATCH m.spec:2 const A"));
    }
}
