//! The import graph between a crate's top-level modules (the files and folders directly under
//! its `src/`), read from the `crate::` and `super::` paths in its code, and the cycles in it.
//!
//! Only code counts: comments (doc links included), strings and character literals are set
//! aside first. `use crate::{a, b::c}` names `a` and `b`; `super::` counts when it climbs to the
//! crate root (inline `mod name { ... }` blocks add a level). The crate roots (`lib.rs`,
//! `main.rs`) are not modules of the graph.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Where an arrow comes from: a file (relative to the scanned `src/`) and a line (from 1).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Site {
    /// The file, `/`-separated, relative to `src/`.
    pub file: String,
    /// The line.
    pub line: usize,
}

impl std::fmt::Display for Site {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// Arrows between top-level modules: `graph[a][b]` lists where module `a` names module `b`.
/// Every top-level module is a key, with or without arrows.
pub type Graph = BTreeMap<String, BTreeMap<String, Vec<Site>>>;

/// `text` with comments and the contents of string and character literals replaced by spaces;
/// newlines stay, so line numbers do too. Lifetimes are kept as they are.
pub fn code_only(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let n = chars.len();
    let at = |i: usize| chars.get(i).copied().unwrap_or('\0');
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < n {
        let c = chars[i];
        let prev_is_ident = i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_');
        if c == '/' && at(i + 1) == '/' {
            while i < n && chars[i] != '\n' {
                out.push(' ');
                i += 1;
            }
            continue;
        }
        if c == '/' && at(i + 1) == '*' {
            let mut depth = 0usize;
            while i < n {
                if chars[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if chars[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
            continue;
        }
        if !prev_is_ident && (c == 'r' || (c == 'b' && at(i + 1) == 'r')) {
            // A raw string: r"..", r#".."#, br#".."#.
            let mut j = if c == 'b' { i + 2 } else { i + 1 };
            let mut hashes = 0;
            while at(j) == '#' {
                hashes += 1;
                j += 1;
            }
            if at(j) == '"' {
                out.extend(std::iter::repeat_n(' ', j + 1 - i));
                i = j + 1;
                while i < n {
                    if chars[i] == '"' && (1..=hashes).all(|k| at(i + k) == '#') {
                        out.extend(std::iter::repeat_n(' ', hashes + 1));
                        i += hashes + 1;
                        break;
                    }
                    out.push(blank(chars[i]));
                    i += 1;
                }
                continue;
            }
        }
        if c == '"' {
            out.push(' ');
            i += 1;
            while i < n {
                match chars[i] {
                    '\\' => {
                        out.push(' ');
                        out.push(blank(at(i + 1)));
                        i += 2;
                    }
                    '"' => {
                        out.push(' ');
                        i += 1;
                        break;
                    }
                    other => {
                        out.push(blank(other));
                        i += 1;
                    }
                }
            }
            continue;
        }
        if c == '\'' && at(i + 1) == '\\' {
            // An escaped character literal: '\n', '\'', '\u{..}'.
            out.push_str("   ");
            i += 3;
            while i < n && chars[i] != '\'' {
                out.push(' ');
                i += 1;
            }
            if i < n {
                out.push(' ');
                i += 1;
            }
            continue;
        }
        if c == '\'' && at(i + 2) == '\'' {
            out.push_str("   ");
            i += 3;
            continue;
        }
        out.push(c);
        i += 1;
    }
    out
}

/// A token of code: a word (identifier, keyword or number), `::`, or one other character.
fn tokens(code: &str) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    for (line, text) in code.lines().enumerate() {
        let chars: Vec<char> = text.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if c.is_alphanumeric() || c == '_' {
                let start = i;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                out.push((chars[start..i].iter().collect(), line + 1));
            } else if c == ':' && chars.get(i + 1) == Some(&':') {
                out.push(("::".to_owned(), line + 1));
                i += 2;
            } else {
                if !c.is_whitespace() {
                    out.push((c.to_string(), line + 1));
                }
                i += 1;
            }
        }
    }
    out
}

fn is_word(token: &str) -> bool {
    token
        .chars()
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_')
}

/// The first segments of the paths that start at `toks[at]`, just after `crate::` (or a
/// `super::` chain that reaches the crate root): `x` for `x::..`, `a` and `b` for `{a, b::c}`.
fn root_segments(toks: &[(String, usize)], at: usize, out: &mut Vec<(String, usize)>) {
    let Some((first, line)) = toks.get(at) else {
        return;
    };
    if first == "{" {
        let mut depth = 0usize;
        let mut expect_item = true;
        for (tok, line) in &toks[at..] {
            match tok.as_str() {
                "{" => {
                    depth += 1;
                    expect_item = depth == 1;
                }
                "}" => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                "," if depth == 1 => expect_item = true,
                word if depth == 1 && expect_item => {
                    if is_word(word) && word != "self" {
                        out.push((word.to_owned(), *line));
                    }
                    expect_item = false;
                }
                _ => {}
            }
        }
    } else if is_word(first) && first != "self" && first != "super" {
        out.push((first.clone(), *line));
    }
}

/// The crate-root items (first path segments after the root) that the code of one file names,
/// with their lines. `depth` is how deep the file's module is: 1 for `src/kernel.rs` and
/// `src/xen/mod.rs`, 2 for `src/xen/events.rs`.
pub fn root_items_named(text: &str, depth: usize) -> Vec<(String, usize)> {
    let toks = tokens(&code_only(text));
    let tok = |i: usize| toks.get(i).map_or("", |(t, _)| t.as_str());
    let mut out = Vec::new();
    let mut braces = 0usize;
    // Brace depths at which inline `mod name {` blocks opened.
    let mut inline_mods: Vec<usize> = Vec::new();
    let mut mod_opens_next = false;
    let mut i = 0;
    while i < toks.len() {
        match tok(i) {
            "{" => {
                braces += 1;
                if mod_opens_next {
                    inline_mods.push(braces);
                    mod_opens_next = false;
                }
            }
            "}" => {
                if inline_mods.last() == Some(&braces) {
                    inline_mods.pop();
                }
                braces = braces.saturating_sub(1);
            }
            "mod" if is_word(tok(i + 1)) && tok(i + 2) == "{" => mod_opens_next = true,
            "crate" if tok(i + 1) == "::" => root_segments(&toks, i + 2, &mut out),
            "super" if tok(i.wrapping_sub(1)) != "::" => {
                let mut climbs = 0;
                let mut j = i;
                while tok(j) == "super" && tok(j + 1) == "::" {
                    climbs += 1;
                    j += 2;
                }
                if climbs > 0 && climbs == depth + inline_mods.len() {
                    root_segments(&toks, j, &mut out);
                }
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// Every `.rs` file under `dir`, sorted.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    Ok(())
}

/// The import graph of the crate whose sources are in `src`: its top-level modules are the
/// `.rs` files (but `lib.rs` and `main.rs`) and the folders directly under it.
pub fn crate_graph(src: &Path) -> std::io::Result<Graph> {
    let mut files = Vec::new();
    rust_files(src, &mut files)?;
    let mut owner_of = Vec::new();
    let mut graph = Graph::new();
    for file in &files {
        let rel: Vec<String> = file
            .strip_prefix(src)
            .unwrap_or(file)
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        let (Some(first), Some(last)) = (rel.first(), rel.last()) else {
            continue;
        };
        if rel.len() == 1 && (first == "lib.rs" || first == "main.rs") {
            continue;
        }
        let module = first.strip_suffix(".rs").unwrap_or(first).to_owned();
        let depth = if last == "mod.rs" {
            rel.len() - 1
        } else {
            rel.len()
        };
        graph.entry(module.clone()).or_default();
        owner_of.push((file, rel.join("/"), module, depth));
    }
    for (file, rel, module, depth) in owner_of {
        let text = std::fs::read_to_string(file)?;
        for (named, line) in root_items_named(&text, depth) {
            if named != module && graph.contains_key(&named) {
                let site = Site {
                    file: rel.clone(),
                    line,
                };
                let arrows = graph.entry(module.clone()).or_default();
                arrows.entry(named).or_default().push(site);
            }
        }
    }
    Ok(graph)
}

/// The graph's arrows without where they come from.
pub fn arrows(graph: &Graph) -> BTreeMap<String, BTreeSet<String>> {
    graph
        .iter()
        .map(|(from, to)| (from.clone(), to.keys().cloned().collect()))
        .collect()
}

/// One cycle in `arrows`, as the modules along it with the first repeated at the end
/// (`a -> b -> a` is `[a, b, a]`); `None` if there is none.
pub fn find_cycle(arrows: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    #[derive(PartialEq)]
    enum Mark {
        OnPath,
        Done,
    }
    fn visit<'a>(
        node: &'a str,
        arrows: &'a BTreeMap<String, BTreeSet<String>>,
        marks: &mut BTreeMap<&'a str, Mark>,
        path: &mut Vec<&'a str>,
    ) -> Option<Vec<String>> {
        marks.insert(node, Mark::OnPath);
        path.push(node);
        for next in arrows.get(node).into_iter().flatten() {
            match marks.get(next.as_str()) {
                Some(Mark::OnPath) => {
                    let start = path.iter().position(|n| n == next).unwrap_or(0);
                    let mut cycle: Vec<String> =
                        path[start..].iter().map(|n| n.to_string()).collect();
                    cycle.push(next.clone());
                    return Some(cycle);
                }
                Some(Mark::Done) => {}
                None => {
                    if let Some(cycle) = visit(next, arrows, marks, path) {
                        return Some(cycle);
                    }
                }
            }
        }
        path.pop();
        marks.insert(node, Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for node in arrows.keys() {
        if !marks.contains_key(node.as_str())
            && let Some(cycle) = visit(node, arrows, &mut marks, &mut Vec::new())
        {
            return Some(cycle);
        }
    }
    None
}

/// The graph as text, one module a line: `kernel -> arch, boot_info, xen`.
pub fn render(graph: &Graph) -> String {
    graph
        .iter()
        .map(|(from, to)| {
            let to: Vec<&str> = to.keys().map(String::as_str).collect();
            format!("{from} -> {}\n", to.join(", "))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(arrows: &[(&str, &str)]) -> BTreeMap<String, BTreeSet<String>> {
        let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (from, to) in arrows {
            out.entry((*from).to_owned())
                .or_default()
                .insert((*to).to_owned());
            out.entry((*to).to_owned()).or_default();
        }
        out
    }

    #[test]
    fn the_cycle_finder_names_a_planted_cycle() {
        // A layered graph: no cycle.
        let layered = [
            ("app", "service"),
            ("app", "kernel"),
            ("service", "kernel"),
            ("kernel", "xen"),
            ("xen", "arch"),
            ("kernel", "arch"),
        ];
        assert_eq!(find_cycle(&set(&layered)), None);
        // One arrow pointing up closes a circle of three.
        let mut planted = layered.to_vec();
        planted.push(("xen", "service"));
        assert_eq!(
            find_cycle(&set(&planted)).unwrap(),
            ["kernel", "xen", "service", "kernel"]
        );
        // Two modules naming each other, and a module naming itself.
        assert_eq!(
            find_cycle(&set(&[("a", "b"), ("b", "a")])).unwrap(),
            ["a", "b", "a"]
        );
        assert_eq!(find_cycle(&set(&[("a", "a")])).unwrap(), ["a", "a"]);
    }

    #[test]
    fn only_paths_in_code_are_read() {
        let text = r##"//! Docs naming [`crate::doc_link`].
use core::fmt;
use crate::kernel::{self, BootState};
use crate::{memory::global, proto, self};
use crate::xen::{console, hypercall::{self, Refused}};
/* crate::block_comment /* nested crate::nested */ crate::still_comment */
pub(crate) fn f<'a>(x: &'a str) -> char {
    let _ = "crate::in_string \" crate::escaped";
    let _ = r#"crate::raw "quoted" string"#;
    let _ = '"';
    let _ = crate::service::now(); // crate::trailing
    let _ = $crate::macro_path::x;
    '\''
}
mod inner {
    use super::super::up_two;
}
"##;
        let names: Vec<(String, usize)> = root_items_named(text, 1);
        let names: Vec<(&str, usize)> = names.iter().map(|(n, l)| (n.as_str(), *l)).collect();
        assert_eq!(
            names,
            [
                ("kernel", 3),
                ("memory", 4),
                ("proto", 4),
                ("xen", 5),
                ("service", 11),
                ("macro_path", 12),
                ("up_two", 16),
            ]
        );
        // `super::` climbs from the file's own depth.
        assert_eq!(root_items_named("use super::x;", 1), [("x".to_owned(), 1)]);
        assert!(root_items_named("use super::x;", 2).is_empty());
        assert_eq!(
            root_items_named("use super::super::{x, y::z};", 2),
            [("x".to_owned(), 1), ("y".to_owned(), 1)]
        );
        assert!(root_items_named("pub(super) fn f() {}\nuse super::*;", 1).is_empty());
    }

    #[test]
    fn the_graph_is_read_from_the_folders() {
        let src = std::env::temp_dir().join(format!("xtask-imports-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&src);
        std::fs::create_dir_all(src.join("xen")).unwrap();
        let write = |path: &str, text: &str| std::fs::write(src.join(path), text).unwrap();
        write(
            "lib.rs",
            "//! root\npub mod kernel;\nuse crate::kernel::x;\n",
        );
        write(
            "kernel.rs",
            "//! k\nuse crate::xen::console;\nuse crate::alloc_thing;\n",
        );
        write(
            "xen/mod.rs",
            "//! x\npub mod console;\nuse super::kernel;\n",
        );
        write(
            "xen/console.rs",
            "//! c\nuse super::super::kernel::y;\nuse crate::xen::z;\n",
        );
        let graph = crate_graph(&src).unwrap();
        std::fs::remove_dir_all(&src).unwrap();
        assert_eq!(render(&graph), "kernel -> xen\nxen -> kernel\n");
        let sites: Vec<String> = graph["xen"]["kernel"].iter().map(Site::to_string).collect();
        assert_eq!(sites, ["xen/console.rs:2", "xen/mod.rs:3"]);
        assert_eq!(
            find_cycle(&arrows(&graph)).unwrap(),
            ["kernel", "xen", "kernel"]
        );
    }
}
