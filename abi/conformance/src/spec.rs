//! The conformance spec format (`spec/*.spec`): parsing, the naming rules, and expansion into items.
//!
//! This file is also compiled into the build script (`#[path]`), so it uses only `std`.
//! The format is described in the crate docs; in short, one directive per line:
//! `header`, `module`, `const`, `struct`, `union`, `type` and `ring`.

use std::collections::HashMap;
use std::fmt;

/// What one checked item compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The value of a constant, as a 64-bit pattern (signed values sign-extended).
    Const,
    /// `sizeof` of a struct, union or typedef.
    Size,
    /// `_Alignof` of a struct, union or typedef.
    Align,
    /// `offsetof` of a (possibly nested) field.
    FieldOffset,
    /// `sizeof` of a (possibly nested) field.
    FieldSize,
    /// `__CONST_RING_SIZE(name, 4096)`: the number of slots in a one-page shared ring.
    Ring,
}

/// One checked item, as the spec describes it: a C expression and the Rust expression that must
/// have the same value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    /// Where the item comes from: `file.spec:line`.
    pub loc: String,
    /// What is compared.
    pub kind: Kind,
    /// A human-readable name for reports, naming both the C and the Rust side.
    pub what: String,
    /// A C expression of integer type giving the value.
    pub c_expr: String,
    /// A Rust expression of type `u64` giving the value.
    pub rust_expr: String,
}

/// A header to `#include` on the C side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderLine {
    /// Where the header is named: `file.spec:line`.
    pub loc: String,
    /// The path under the include directory, e.g. `xen/memory.h`.
    pub path: String,
}

/// The parsed contents of one or more spec files.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Spec {
    /// Headers in the order they were named (duplicates removed).
    pub headers: Vec<HeaderLine>,
    /// Items in spec order.
    pub items: Vec<Item>,
}

/// A problem in a spec file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecError {
    /// The file name (without directory).
    pub file: String,
    /// The 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.message)
    }
}

/// The page size the ring items are evaluated for.
pub const RING_PAGE_SIZE: u32 = 4096;

/// Rust keywords (strict, reserved and edition-2024 ones): a C field with such a name gets a
/// trailing underscore in Rust.
const RUST_KEYWORDS: &[&str] = &[
    "abstract", "as", "async", "await", "become", "box", "break", "const", "continue", "crate",
    "do", "dyn", "else", "enum", "extern", "false", "final", "fn", "for", "gen", "if", "impl",
    "in", "let", "loop", "macro", "match", "mod", "move", "mut", "override", "priv", "pub", "ref",
    "return", "self", "Self", "static", "struct", "super", "trait", "true", "try", "type",
    "typeof", "unsafe", "unsized", "use", "virtual", "where", "while", "yield",
];

/// The Rust name of a C constant: leading underscores dropped, upper-cased
/// (`__HYPERVISOR_sched_op` -> `HYPERVISOR_SCHED_OP`).
pub fn rust_const_name(c_name: &str) -> String {
    c_name.trim_start_matches('_').to_ascii_uppercase()
}

/// The Rust name of a C struct, union or typedef: leading underscores and a trailing `_t`
/// dropped, split at `_`, each part capitalised (`grant_entry_v1` -> `GrantEntryV1`).
pub fn rust_type_name(c_name: &str) -> String {
    let name = c_name.trim_start_matches('_');
    let name = name.strip_suffix("_t").unwrap_or(name);
    name.split('_')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            match chars.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

/// The Rust path of a C field path: each component keeps its name, a Rust keyword gets a
/// trailing underscore (`source.u.ref` -> `source.u.ref_`).
pub fn rust_field_path(c_path: &str) -> String {
    c_path
        .split('.')
        .map(|part| {
            if RUST_KEYWORDS.contains(&part) {
                format!("{part}_")
            } else {
                part.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(".")
}

fn is_c_ident(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn is_rust_ident(s: &str) -> bool {
    let plain = s.strip_prefix("r#").unwrap_or(s);
    is_c_ident(plain) && plain != "_"
}

/// `a::b::C`: Rust identifiers separated by `::`.
fn is_rust_path(s: &str) -> bool {
    s.split("::").all(is_rust_ident)
}

fn is_c_field_path(s: &str) -> bool {
    s.split('.').all(is_c_ident)
}

fn is_rust_field_path(s: &str) -> bool {
    s.split('.').all(is_rust_ident)
}

/// Splits `c=rust` into its parts; without `=` the Rust part is `None`.
fn split_explicit(token: &str) -> Result<(&str, Option<&str>), String> {
    match token.split_once('=') {
        None => Ok((token, None)),
        Some((c, rust)) if !c.is_empty() && !rust.is_empty() => Ok((c, Some(rust))),
        Some(_) => Err(format!(
            "`{token}`: expected `c_name=RustName` with both sides given"
        )),
    }
}

/// An explicit Rust item name: relative to the current module, or to `abi::` when it has `::`.
fn rust_item_path(module: &str, name: &str) -> String {
    if name.contains("::") {
        format!("abi::{name}")
    } else {
        format!("abi::{module}::{name}")
    }
}

/// How a struct or union is spelled in C: a name ending in `_t` is a typedef (for anonymous
/// structs such as `xen_uuid_t`), anything else a tag.
fn c_aggregate(keyword: &str, name: &str) -> String {
    if name.ends_with("_t") {
        name.to_owned()
    } else {
        format!("{keyword} {name}")
    }
}

/// State while parsing one file.
struct Parser<'a> {
    file: &'a str,
    line: usize,
    module: Option<String>,
    spec: &'a mut Spec,
    errors: Vec<SpecError>,
    seen: &'a mut HashMap<String, String>,
    /// Items of the current line already listed: `(what, where first)`.
    duplicates: Vec<(String, String)>,
}

impl Parser<'_> {
    fn error(&mut self, message: impl Into<String>) {
        self.errors.push(SpecError {
            file: self.file.to_owned(),
            line: self.line,
            message: message.into(),
        });
    }

    fn loc(&self) -> String {
        format!("{}:{}", self.file, self.line)
    }

    fn push(&mut self, kind: Kind, what: String, c_expr: String, rust_expr: String) {
        let loc = self.loc();
        let key = format!("{c_expr} {rust_expr}");
        if let Some(first) = self.seen.get(&key) {
            self.duplicates.push((what, first.clone()));
            return;
        }
        self.seen.insert(key, loc.clone());
        self.spec.items.push(Item {
            loc,
            kind,
            what,
            c_expr,
            rust_expr,
        });
    }

    fn require_module(&mut self, directive: &str) -> Option<String> {
        if self.module.is_none() {
            self.error(format!("`{directive}` before any `module` directive"));
        }
        self.module.clone()
    }

    fn line(&mut self, text: &str) {
        let text = text.split('#').next().unwrap_or("");
        let mut tokens = text.split_whitespace();
        let Some(directive) = tokens.next() else {
            return;
        };
        let args: Vec<&str> = tokens.collect();
        match directive {
            "header" => self.header(&args),
            "module" => self.module_directive(&args),
            "const" => self.consts(&args),
            "struct" | "union" => self.aggregate(directive, &args),
            "type" => self.types(&args),
            "ring" => self.ring(&args),
            other => self.error(format!(
                "unknown directive `{other}` (expected header, module, const, struct, union, type or ring)"
            )),
        }
        // One error per line, however many items of a repeated struct are duplicates.
        let duplicates = std::mem::take(&mut self.duplicates);
        if let Some((what, first)) = duplicates.first() {
            let more = match duplicates.len() - 1 {
                0 => String::new(),
                n => format!(" (and {n} more items of this line)"),
            };
            self.error(format!(
                "duplicate item `{what}`, first listed at {first}{more}"
            ));
        }
    }

    fn header(&mut self, args: &[&str]) {
        if args.is_empty() {
            self.error("`header` needs a path, e.g. `header xen/memory.h`");
        }
        for path in args {
            let valid = !path.is_empty()
                && !path.starts_with('/')
                && path
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-./".contains(c));
            if !valid {
                self.error(format!(
                    "`{path}` is not a relative header path like xen/memory.h"
                ));
            } else if !self.spec.headers.iter().any(|h| h.path == *path) {
                let loc = self.loc();
                self.spec.headers.push(HeaderLine {
                    loc,
                    path: (*path).to_owned(),
                });
            }
        }
    }

    fn module_directive(&mut self, args: &[&str]) {
        match args {
            [path] if is_rust_path(path) => self.module = Some((*path).to_owned()),
            _ => self.error(
                "`module` needs one Rust module path under `abi::`, e.g. `module io::netif`",
            ),
        }
    }

    fn consts(&mut self, args: &[&str]) {
        if args.is_empty() {
            self.error("`const` needs a constant name");
        }
        let Some(module) = self.require_module("const") else {
            return;
        };
        for token in args {
            let (c, rust) = match split_explicit(token) {
                Ok(parts) => parts,
                Err(message) => {
                    self.error(message);
                    continue;
                }
            };
            let rust = rust.map_or_else(|| rust_const_name(c), str::to_owned);
            if !is_c_ident(c) || !is_rust_path(&rust) {
                self.error(format!(
                    "`{token}` is not a constant name (`C_NAME` or `C_NAME=RUST_NAME`)"
                ));
                continue;
            }
            let rust_path = rust_item_path(&module, &rust);
            self.push(
                Kind::Const,
                format!("const {c} ({rust_path})"),
                format!("(unsigned long long)({c})"),
                format!("({rust_path} as i128) as u64"),
            );
        }
    }

    /// The C spelling and Rust path of a `name[=Rust]` type token, or `None` after an error.
    fn type_token(
        &mut self,
        module: &str,
        token: &str,
        c_keyword: Option<&str>,
    ) -> Option<(String, String)> {
        let (c, rust) = match split_explicit(token) {
            Ok(parts) => parts,
            Err(message) => {
                self.error(message);
                return None;
            }
        };
        let rust = rust.map_or_else(|| rust_type_name(c), str::to_owned);
        if !is_c_ident(c) || !is_rust_path(&rust) {
            self.error(format!(
                "`{token}` is not a type name (`c_name` or `c_name=RustName`)"
            ));
            return None;
        }
        let c_spelling = match c_keyword {
            Some(keyword) => c_aggregate(keyword, c),
            None => c.to_owned(),
        };
        Some((c_spelling, rust_item_path(module, &rust)))
    }

    fn size_and_align(&mut self, c_type: &str, rust_type: &str) {
        self.push(
            Kind::Size,
            format!("size of {c_type} ({rust_type})"),
            format!("sizeof({c_type})"),
            format!("core::mem::size_of::<{rust_type}>() as u64"),
        );
        self.push(
            Kind::Align,
            format!("align of {c_type} ({rust_type})"),
            format!("_Alignof({c_type})"),
            format!("core::mem::align_of::<{rust_type}>() as u64"),
        );
    }

    fn aggregate(&mut self, keyword: &str, args: &[&str]) {
        let Some((name, fields)) = args.split_first() else {
            self.error(format!("`{keyword}` needs a name and its fields"));
            return;
        };
        if fields.is_empty() {
            self.error(format!(
                "`{keyword} {name}` lists no fields: every field of the C {keyword} must be listed"
            ));
            return;
        }
        let Some(module) = self.require_module(keyword) else {
            return;
        };
        let Some((c_type, rust_type)) = self.type_token(&module, name, Some(keyword)) else {
            return;
        };
        // Check every field first: a line with a bad field adds no items at all.
        let mut parsed = Vec::new();
        for token in fields {
            match split_explicit(token) {
                Ok((c_field, rust_field)) => {
                    let rust_field =
                        rust_field.map_or_else(|| rust_field_path(c_field), str::to_owned);
                    if is_c_field_path(c_field) && is_rust_field_path(&rust_field) {
                        parsed.push((c_field, rust_field));
                    } else {
                        self.error(format!(
                            "`{token}` is not a field path (`a.b` or `a.b=a.b_`)"
                        ));
                    }
                }
                Err(message) => self.error(message),
            }
        }
        if parsed.len() != fields.len() {
            return;
        }
        self.size_and_align(&c_type, &rust_type);
        for (c_field, rust_field) in parsed {
            self.push(
                Kind::FieldOffset,
                format!("offset of {c_type}.{c_field} ({rust_type}.{rust_field})"),
                format!("offsetof({c_type}, {c_field})"),
                format!("core::mem::offset_of!({rust_type}, {rust_field}) as u64"),
            );
            self.push(
                Kind::FieldSize,
                format!("size of {c_type}.{c_field} ({rust_type}.{rust_field})"),
                format!("sizeof((({c_type} *)0)->{c_field})"),
                format!("abi_conformance::field_size!({rust_type}, {rust_field})"),
            );
        }
    }

    fn types(&mut self, args: &[&str]) {
        if args.is_empty() {
            self.error("`type` needs a typedef name");
        }
        let Some(module) = self.require_module("type") else {
            return;
        };
        for token in args {
            if let Some((c_type, rust_type)) = self.type_token(&module, token, None) {
                self.size_and_align(&c_type, &rust_type);
            }
        }
    }

    fn ring(&mut self, args: &[&str]) {
        let [name, request, response] = args else {
            self.error("`ring` needs a ring name, a request type and a response type, e.g. `ring netif_tx NetifTxRequest NetifTxResponse`");
            return;
        };
        let Some(module) = self.require_module("ring") else {
            return;
        };
        if !is_c_ident(name) || !is_rust_path(request) || !is_rust_path(response) {
            self.error("`ring` needs a C ring name and two Rust type names");
            return;
        }
        let request = rust_item_path(&module, request);
        let response = rust_item_path(&module, response);
        self.push(
            Kind::Ring,
            format!("ring size {name} ({request}, {response})"),
            format!("__CONST_RING_SIZE({name}, {RING_PAGE_SIZE})"),
            format!("abi::ring::ring_size::<{request}, {response}>({RING_PAGE_SIZE}) as u64"),
        );
    }
}

impl Spec {
    /// Parses one spec file's text and appends its headers and items; `file` names it in
    /// locations and errors. Returns every problem found (parsing goes on after an error).
    pub fn parse_file(&mut self, file: &str, text: &str) -> Vec<SpecError> {
        let mut seen: HashMap<String, String> = self
            .items
            .iter()
            .map(|item| {
                (
                    format!("{} {}", item.c_expr, item.rust_expr),
                    item.loc.clone(),
                )
            })
            .collect();
        let mut parser = Parser {
            file,
            line: 0,
            module: None,
            spec: self,
            errors: Vec::new(),
            seen: &mut seen,
            duplicates: Vec::new(),
        };
        for (index, line) in text.lines().enumerate() {
            parser.line = index + 1;
            parser.line(line);
        }
        parser.errors
    }

    /// Parses one spec text on its own.
    pub fn parse(file: &str, text: &str) -> Result<Spec, Vec<SpecError>> {
        let mut spec = Spec::default();
        let errors = spec.parse_file(file, text);
        if errors.is_empty() {
            Ok(spec)
        } else {
            Err(errors)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    #[test]
    fn naming_rules() {
        assert_eq!(
            rust_const_name("__HYPERVISOR_sched_op"),
            "HYPERVISOR_SCHED_OP"
        );
        assert_eq!(
            rust_const_name("XENMEM_add_to_physmap"),
            "XENMEM_ADD_TO_PHYSMAP"
        );
        assert_eq!(rust_type_name("xen_add_to_physmap"), "XenAddToPhysmap");
        assert_eq!(rust_type_name("grant_entry_v1"), "GrantEntryV1");
        assert_eq!(rust_type_name("xsd_sockmsg"), "XsdSockmsg");
        assert_eq!(rust_type_name("xen_pfn_t"), "XenPfn");
        assert_eq!(rust_type_name("__guest_handle_t"), "GuestHandle");
        assert_eq!(rust_field_path("source.u.ref"), "source.u.ref_");
        assert_eq!(rust_field_path("type"), "type_");
        assert_eq!(rust_field_path("domid"), "domid");
    }

    #[test]
    fn a_small_spec_parses_into_items() {
        let spec = Spec::parse("sample.spec", &fixture("sample.spec")).unwrap();
        let headers: Vec<(&str, &str)> = spec
            .headers
            .iter()
            .map(|h| (h.loc.as_str(), h.path.as_str()))
            .collect();
        assert_eq!(
            headers,
            [
                ("sample.spec:2", "xen/grant_table.h"),
                ("sample.spec:13", "xen/io/netif.h")
            ]
        );

        let items: Vec<(&str, Kind, &str, &str)> = spec
            .items
            .iter()
            .map(|i| {
                (
                    i.loc.as_str(),
                    i.kind,
                    i.c_expr.as_str(),
                    i.rust_expr.as_str(),
                )
            })
            .collect();
        let copy = "abi::grant_table::GnttabCopy";
        let expected: Vec<(&str, Kind, String, String)> = vec![
            ("sample.spec:5", Kind::Const, "(unsigned long long)(GNTTABOP_copy)".into(), "(abi::grant_table::GNTTABOP_COPY as i128) as u64".into()),
            ("sample.spec:6", Kind::Const, "(unsigned long long)(__HYPERVISOR_grant_table_op)".into(), "(abi::xen::HYPERVISOR_GRANT_TABLE_OP as i128) as u64".into()),
            ("sample.spec:7", Kind::Size, "sizeof(struct gnttab_copy)".into(), format!("core::mem::size_of::<{copy}>() as u64")),
            ("sample.spec:7", Kind::Align, "_Alignof(struct gnttab_copy)".into(), format!("core::mem::align_of::<{copy}>() as u64")),
            ("sample.spec:7", Kind::FieldOffset, "offsetof(struct gnttab_copy, source.u.ref)".into(), format!("core::mem::offset_of!({copy}, source.u.ref_) as u64")),
            ("sample.spec:7", Kind::FieldSize, "sizeof(((struct gnttab_copy *)0)->source.u.ref)".into(), format!("abi_conformance::field_size!({copy}, source.u.ref_)")),
            ("sample.spec:7", Kind::FieldOffset, "offsetof(struct gnttab_copy, len)".into(), format!("core::mem::offset_of!({copy}, len) as u64")),
            ("sample.spec:7", Kind::FieldSize, "sizeof(((struct gnttab_copy *)0)->len)".into(), format!("abi_conformance::field_size!({copy}, len)")),
            ("sample.spec:8", Kind::Size, "sizeof(union xen_thing)".into(), "core::mem::size_of::<abi::grant_table::Thing>() as u64".into()),
            ("sample.spec:8", Kind::Align, "_Alignof(union xen_thing)".into(), "core::mem::align_of::<abi::grant_table::Thing>() as u64".into()),
            ("sample.spec:8", Kind::FieldOffset, "offsetof(union xen_thing, a)".into(), "core::mem::offset_of!(abi::grant_table::Thing, a) as u64".into()),
            ("sample.spec:8", Kind::FieldSize, "sizeof(((union xen_thing *)0)->a)".into(), "abi_conformance::field_size!(abi::grant_table::Thing, a)".into()),
            ("sample.spec:9", Kind::Size, "sizeof(grant_ref_t)".into(), "core::mem::size_of::<abi::grant_table::GrantRef>() as u64".into()),
            ("sample.spec:9", Kind::Align, "_Alignof(grant_ref_t)".into(), "core::mem::align_of::<abi::grant_table::GrantRef>() as u64".into()),
            ("sample.spec:10", Kind::Size, "sizeof(xen_uuid_t)".into(), "core::mem::size_of::<abi::grant_table::XenUuid>() as u64".into()),
            ("sample.spec:10", Kind::Align, "_Alignof(xen_uuid_t)".into(), "core::mem::align_of::<abi::grant_table::XenUuid>() as u64".into()),
            ("sample.spec:10", Kind::FieldOffset, "offsetof(xen_uuid_t, a)".into(), "core::mem::offset_of!(abi::grant_table::XenUuid, a) as u64".into()),
            ("sample.spec:10", Kind::FieldSize, "sizeof(((xen_uuid_t *)0)->a)".into(), "abi_conformance::field_size!(abi::grant_table::XenUuid, a)".into()),
            ("sample.spec:14", Kind::Ring, "__CONST_RING_SIZE(netif_tx, 4096)".into(), "abi::ring::ring_size::<abi::io::netif::NetifTxRequest, abi::io::netif::NetifTxResponse>(4096) as u64".into()),
        ];
        let expected: Vec<(&str, Kind, &str, &str)> = expected
            .iter()
            .map(|(l, k, c, r)| (*l, *k, c.as_str(), r.as_str()))
            .collect();
        assert_eq!(items, expected);
        assert_eq!(
            spec.items[4].what,
            "offset of struct gnttab_copy.source.u.ref (abi::grant_table::GnttabCopy.source.u.ref_)"
        );
    }

    #[test]
    fn spec_errors_name_file_and_line() {
        let errors = Spec::parse("bad.spec", &fixture("bad.spec")).unwrap_err();
        let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
        let at: Vec<usize> = errors.iter().map(|e| e.line).collect();
        assert_eq!(at, [2, 4, 5, 6, 7, 8, 10, 12], "{lines:#?}");
        assert!(
            lines[0].starts_with("bad.spec:2: `const` before any `module`"),
            "{}",
            lines[0]
        );
        assert!(
            lines[1].contains("unknown directive `frobnicate`"),
            "{}",
            lines[1]
        );
        assert!(
            lines[2].contains("every field of the C struct must be listed"),
            "{}",
            lines[2]
        );
        assert!(lines[3].contains("`A=`"), "{}", lines[3]);
        assert!(
            lines[4].contains("`a..b` is not a field path"),
            "{}",
            lines[4]
        );
        assert!(lines[5].contains("`ring` needs"), "{}", lines[5]);
        assert!(
            lines[6].contains(
                "duplicate item `const GOOD (abi::io::netif::GOOD)`, first listed at bad.spec:9"
            ),
            "{}",
            lines[6]
        );
        assert_eq!(
            lines[7],
            "bad.spec:12: duplicate item `size of struct s (abi::io::netif::S)`, first listed at bad.spec:11 (and 3 more items of this line)"
        );
    }
}
