//! Coverage: every public constant, `#[repr(C)]` struct or union and type alias of the `abi`
//! crate is either checked by some spec line or listed in `unchecked.txt` with the reason it has
//! no C counterpart. This keeps "every struct and constant in `abi`" true as `abi` grows.
//!
//! `abi`'s sources are scanned as text: top-level items (rustfmt puts them at column 0) of every
//! file, up to its `#[cfg(test)]` module.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

/// The module path of a source file below `src/` (`io/netif.rs` -> `io::netif`, `lib.rs` -> ``).
fn module_path(relative: &Path) -> String {
    let mut parts: Vec<String> = relative
        .iter()
        .map(|part| part.to_string_lossy().trim_end_matches(".rs").to_owned())
        .collect();
    if matches!(parts.last().map(String::as_str), Some("lib" | "mod")) {
        parts.pop();
    }
    parts.join("::")
}

/// The public items of one source file that must be covered, as paths below `abi::`.
pub fn file_items(module: &str, source: &str) -> Vec<String> {
    let mut items = Vec::new();
    let mut repr_c = false;
    for line in source.lines() {
        if line.starts_with("#[cfg(test)]") {
            break;
        }
        let name = if let Some(rest) = line.strip_prefix("pub const ") {
            (!rest.starts_with("fn "))
                .then(|| rest.split([':', ' ']).next())
                .flatten()
        } else if let Some(rest) = line.strip_prefix("pub type ") {
            rest.split([' ', '=', '<']).next()
        } else if let Some(rest) = line
            .strip_prefix("pub struct ")
            .or_else(|| line.strip_prefix("pub union "))
        {
            repr_c
                .then(|| rest.split([' ', '{', '(', '<', ';']).next())
                .flatten()
        } else {
            None
        };
        if let Some(name) = name.filter(|name| !name.is_empty()) {
            items.push(if module.is_empty() {
                name.to_owned()
            } else {
                format!("{module}::{name}")
            });
        }
        // Attributes and docs run up to the item they belong to.
        if line.starts_with("#[repr(C") {
            repr_c = true;
        } else if !(line.starts_with("#[") || line.starts_with("///")) {
            repr_c = false;
        }
    }
    items
}

/// The public items of every `.rs` file below `src_dir` (sorted).
pub fn abi_items(src_dir: &Path) -> std::io::Result<BTreeSet<String>> {
    let mut items = BTreeSet::new();
    let mut dirs = vec![src_dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                let relative = path.strip_prefix(src_dir).unwrap_or(&path);
                let source = fs::read_to_string(&path)?;
                items.extend(file_items(&module_path(relative), &source));
            }
        }
    }
    Ok(items)
}

/// Parses `unchecked.txt`: one `abi` path per line, then the reason; `#` starts a comment.
/// Returns `(path, reason)` pairs, or the first line without a reason.
pub fn parse_unchecked(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut entries = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        match line.split_once(char::is_whitespace) {
            Some((path, reason)) if !reason.trim().is_empty() => {
                entries.push((path.to_owned(), reason.trim().to_owned()));
            }
            _ => {
                return Err(format!(
                    "unchecked.txt:{}: `{line}` gives no reason",
                    index + 1
                ));
            }
        }
    }
    Ok(entries)
}

/// The coverage problems: items neither checked nor explained, and explanations that are stale
/// (the item is checked after all, or no longer exists).
pub fn problems(
    abi_items: &BTreeSet<String>,
    covered: &[&str],
    unchecked: &[(String, String)],
) -> Vec<String> {
    let covered: BTreeSet<&str> = covered.iter().copied().collect();
    let explained: BTreeSet<&str> = unchecked.iter().map(|(path, _)| path.as_str()).collect();
    let mut problems = Vec::new();
    for item in abi_items {
        if !covered.contains(item.as_str()) && !explained.contains(item.as_str()) {
            problems.push(format!(
                "abi::{item} is not checked: add it to a spec file, or to abi/conformance/unchecked.txt with the reason it has no C counterpart"
            ));
        }
    }
    for (path, _) in unchecked {
        if covered.contains(path.as_str()) {
            problems.push(format!(
                "abi::{path} is listed in unchecked.txt but a spec checks it"
            ));
        } else if !abi_items.contains(path) {
            problems.push(format!(
                "abi::{path} is listed in unchecked.txt but abi has no such item"
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOURCE: &str = "\
//! A module.
/// Doc.
pub const A: u32 = 1;
pub const fn helper() -> u32 { 2 }
/// `struct c`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Wire {
    pub const_field: u32,
}
pub struct Logic;
#[repr(C)]
pub union U { a: u8 }
pub type Alias = u16;
impl Wire {
    pub const ASSOCIATED: u32 = 3;
}
#[cfg(test)]
pub const IN_TESTS: u32 = 4;
";

    #[test]
    fn public_wire_items_are_found() {
        assert_eq!(
            file_items("io::netif", SOURCE),
            [
                "io::netif::A",
                "io::netif::Wire",
                "io::netif::U",
                "io::netif::Alias"
            ]
        );
        assert_eq!(module_path(Path::new("io/mod.rs")), "io");
        assert_eq!(module_path(Path::new("lib.rs")), "");
        assert_eq!(module_path(Path::new("io/netif.rs")), "io::netif");
    }

    #[test]
    fn unchecked_and_stale_items_are_problems() {
        let items: BTreeSet<String> = ["m::A", "m::B", "m::C"].map(String::from).into();
        let unchecked =
            parse_unchecked("m::B  no C counterpart\nm::C  stale\nm::D  gone # note\n").unwrap();
        let found = problems(&items, &["m::C"], &unchecked);
        assert_eq!(found.len(), 3, "{found:#?}");
        assert!(found[0].starts_with("abi::m::A is not checked"));
        assert!(found[1].contains("abi::m::C is listed in unchecked.txt but a spec checks it"));
        assert!(found[2].contains("abi::m::D is listed in unchecked.txt but abi has no such item"));
        assert!(problems(&items, &["m::A", "m::C"], &unchecked[..1]).is_empty());
        assert_eq!(
            parse_unchecked("m::A\n"),
            Err("unchecked.txt:1: `m::A` gives no reason".into())
        );
    }
}
