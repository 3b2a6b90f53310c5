//! The ABI conformance test: every item of `spec/*.spec`, evaluated on the `abi` crate and on
//! Xen's public headers, must agree. Prints `CONFORMANCE-*` lines for `cargo xtask conformance`.

// The generated table converts every checked value, of any integer type, to the C side's
// integers on purpose: the comparison itself is the check.
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap
)]

use std::path::PathBuf;
use std::sync::OnceLock;

use abi_conformance::{CSide, Kind, compare, report_lines, summary_line};

include!(concat!(env!("OUT_DIR"), "/table.rs"));

/// The C side, evaluated once per test binary (several tests use it).
fn c_side() -> &'static Result<CSide, String> {
    static C_SIDE: OnceLock<Result<CSide, String>> = OnceLock::new();
    C_SIDE.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("abi-conformance-{}", std::process::id()));
        let result = abi_conformance::evaluate(&TABLE, &dir).map_err(|e| e.to_string());
        // Best effort: a leftover work directory under target/tmp is harmless.
        let _ = std::fs::remove_dir_all(&dir);
        result
    })
}

/// The C side, or why the check cannot compare anything (spec errors, missing headers, ...).
fn checked_c_side() -> Result<&'static CSide, String> {
    if !TABLE.spec_errors.is_empty() {
        return Err(format!(
            "errors in abi/conformance/spec:\n{}",
            TABLE.spec_errors.join("\n")
        ));
    }
    if TABLE.entries.is_empty() {
        return Err("abi/conformance/spec lists no items".into());
    }
    c_side().as_ref().map_err(Clone::clone)
}

#[test]
fn abi_matches_xen_headers() {
    let c = checked_c_side().unwrap_or_else(|message| {
        // Only this test prints the marker lines `cargo xtask conformance` reads.
        for line in message.lines() {
            println!("CONFORMANCE-ERROR {line}");
        }
        panic!("{message}");
    });
    let outcome = compare(TABLE.entries, &rust_values(), c);
    let headers = abi_conformance::version::headers_label(c.latest_interface_version);
    for line in report_lines(&outcome, &headers) {
        println!("{line}");
    }
    println!("{}", summary_line(&outcome, &headers));
    assert!(
        outcome.mismatches.is_empty(),
        "{} mismatches:\n{}",
        outcome.mismatches.len(),
        outcome.mismatches.join("\n")
    );
}

#[test]
fn abi_and_checker_agree_on_the_interface_version() {
    assert_eq!(
        u64::from(abi::XEN_INTERFACE_VERSION),
        abi_conformance::c_side::INTERFACE_VERSION
    );
}

/// Feeds the real tables with one field offset and one constant changed on the Rust side (as a
/// broken `abi` would have them) and checks that exactly those two are reported in addition to
/// whatever the real comparison reports.
#[test]
fn a_wrong_offset_and_a_wrong_constant_are_caught() {
    let c = checked_c_side().unwrap();
    let mut rust = rust_values();
    let baseline = compare(TABLE.entries, &rust, c).mismatches;
    let agreeing = |kind: Kind| {
        (0..TABLE.entries.len())
            .find(|&i| {
                TABLE.entries[i].kind == kind && c.values[i].as_ref().is_ok_and(|v| *v == rust[i])
            })
            .unwrap_or_else(|| panic!("the spec has no agreeing {kind:?} item to break"))
    };
    let offset = agreeing(Kind::FieldOffset);
    let constant = agreeing(Kind::Const);
    rust[offset] += 4;
    rust[constant] ^= 1;

    let broken = compare(TABLE.entries, &rust, c).mismatches;
    let new: Vec<&String> = broken.iter().filter(|m| !baseline.contains(m)).collect();
    assert_eq!(
        new.len(),
        2,
        "expected exactly the two broken items, got {new:#?}"
    );
    let (offset_entry, constant_entry) = (TABLE.entries[offset], TABLE.entries[constant]);
    assert!(
        new.iter().any(|m| m.starts_with(&format!(
            "{} {}: C=",
            constant_entry.loc, constant_entry.what
        ))),
        "{new:#?}"
    );
    let c_offset = c.values[offset].as_ref().map_or(0, |v| *v);
    let expected = format!(
        "{} {}: C={} Rust={}",
        offset_entry.loc,
        offset_entry.what,
        c_offset,
        c_offset + 4
    );
    assert!(
        new.iter().any(|m| **m == expected),
        "{expected} not in {new:#?}"
    );
}

/// A table of a few items, two of them wrong on the C side, and a header that does not exist.
fn broken_table() -> abi_conformance::Table {
    use abi_conformance::{Entry, Header};
    static HEADERS: &[Header] = &[
        Header {
            loc: "t.spec:1",
            path: "xen/io/ring.h",
        },
        Header {
            loc: "t.spec:2",
            path: "xen/no_such_header.h",
        },
    ];
    static ENTRIES: &[Entry] = &[
        Entry {
            loc: "t.spec:3",
            kind: Kind::Size,
            what: "size of uint32_t",
            c_expr: "sizeof(uint32_t)",
        },
        Entry {
            loc: "t.spec:4",
            kind: Kind::FieldOffset,
            what: "offset of struct vcpu_time_info.no_such_field",
            c_expr: "offsetof(struct vcpu_time_info, no_such_field)",
        },
        Entry {
            loc: "t.spec:5",
            kind: Kind::Const,
            what: "const XEN_NO_SUCH_CONSTANT",
            c_expr: "(unsigned long long)(XEN_NO_SUCH_CONSTANT)",
        },
        Entry {
            loc: "t.spec:7",
            kind: Kind::Ring,
            what: "ring size no_such_ring",
            c_expr: "__CONST_RING_SIZE(no_such_ring, 4096)",
        },
        Entry {
            loc: "t.spec:6",
            kind: Kind::FieldOffset,
            what: "offset of struct vcpu_time_info.system_time",
            c_expr: "offsetof(struct vcpu_time_info, system_time)",
        },
    ];
    abi_conformance::Table {
        spec_errors: &[],
        compiler: TABLE.compiler,
        headers: HEADERS,
        entries: ENTRIES,
        covered: &[],
    }
}

/// A spec line naming something the headers lack, and a header that does not exist, are each
/// reported with the compiler's message, and the other items are still checked.
#[test]
fn c_compile_errors_are_pinned_to_their_items() {
    checked_c_side().unwrap(); // fails first, with the real reason, if the headers are missing
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("abi-conformance-broken-{}", std::process::id()));
    let c = abi_conformance::evaluate(&broken_table(), &dir).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(c.values[0], Ok(4));
    assert_eq!(c.values[4], Ok(16));
    let ring = c.values[3].as_ref().unwrap_err();
    assert!(ring.contains("no_such_ring"), "{ring}");
    let field = c.values[1].as_ref().unwrap_err();
    assert!(field.contains("no_such_field"), "{field}");
    let constant = c.values[2].as_ref().unwrap_err();
    assert!(constant.contains("XEN_NO_SUCH_CONSTANT"), "{constant}");
    assert_eq!(c.header_errors.len(), 1, "{:?}", c.header_errors);
    assert!(
        c.header_errors[0].starts_with("t.spec:2 header xen/no_such_header.h: does not compile:")
    );
    assert!(
        c.header_errors[0].contains("no_such_header.h"),
        "{}",
        c.header_errors[0]
    );

    let outcome = compare(broken_table().entries, &[4, 0, 0, 0, 16], &c);
    assert_eq!(outcome.checked, 5);
    assert_eq!(outcome.mismatches.len(), 4, "{:#?}", outcome.mismatches);
}

/// Without the headers the check fails, telling how to install them; it never skips.
#[test]
fn missing_headers_fail_with_the_install_command() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("abi-conformance-never-created");
    let missing = std::path::Path::new("/nonexistent/xen/xen.h");
    let error = abi_conformance::c_side::evaluate_with(&TABLE, &dir, missing).unwrap_err();
    assert!(matches!(error, abi_conformance::CError::HeadersMissing));
    assert_eq!(
        error.to_string(),
        "Xen public headers not found: run apt-get install libxen-dev"
    );
}

/// Every public constant, `#[repr(C)]` struct or union and type alias of `abi` is checked by a
/// spec line or explained in `unchecked.txt`; no explanation there is stale.
#[test]
fn every_abi_item_is_checked_or_explained() {
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let items = abi_conformance::coverage::abi_items(&manifest.join("../src")).unwrap();
    let unchecked = std::fs::read_to_string(manifest.join("unchecked.txt")).unwrap();
    let unchecked = abi_conformance::coverage::parse_unchecked(&unchecked).unwrap();
    let problems = abi_conformance::coverage::problems(&items, TABLE.covered, &unchecked);
    assert!(
        problems.is_empty(),
        "{} coverage problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// `xsd_errors[]` is a table of strings, which the C probe (integers only) cannot compare: read
/// its `XSD_ERROR(<name>)` lines from the installed header instead, in order.
#[test]
fn xsd_errors_match_the_header() {
    let path = "/usr/include/xen/io/xs_wire.h";
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| {
        panic!("{path}: {e}: install Xen's headers: apt-get install libxen-dev")
    });
    let names: Vec<&str> = text
        .lines()
        .filter_map(|line| line.trim().strip_prefix("XSD_ERROR("))
        .filter_map(|rest| rest.split_once(')').map(|(name, _)| name))
        .collect();
    assert!(!names.is_empty(), "{path}: no XSD_ERROR(...) lines");
    assert_eq!(
        names,
        abi::io::xs_wire::XSD_ERRORS,
        "abi's XSD_ERRORS differs from {path}"
    );
}
