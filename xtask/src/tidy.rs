//! Tidy checks over the source tree, as plain `#[test]`s (rust-analyzer's habit): they run in
//! `cargo xtask test`'s host-test gate (`cargo test --workspace`).
//!
//! The checks are pure functions over file text, each tested on a planted violation, and one
//! test per invariant runs them over the whole tree.

use std::path::{Path, PathBuf};

pub mod imports;

/// Crates that must be `#![forbid(unsafe_code)]`: drivers and shared logic see the platform
/// only through small traits (ARCHITECTURE.md's invariants).
pub const FORBID_UNSAFE_CRATES: [&str; 10] = [
    "netfront",
    "blkfront",
    "hv/blkback",
    "hv/netback",
    "abi/xenbus",
    "abi/xenstored",
    "pvguest/httpd",
    "pvguest/storage",
    "abi/xlcfg",
    "abi/hvctl",
];

/// The crate folders whose codemap heading in ARCHITECTURE.md (`### \`<folder>/\` (...)`)
/// says `forbid(unsafe_code)`, in the order they appear.
pub fn codemap_forbid_unsafe_dirs(architecture: &str) -> Vec<String> {
    architecture
        .lines()
        .filter(|l| l.starts_with("### `") && l.contains("forbid(unsafe_code)"))
        .filter_map(|l| l.split('`').nth(1))
        .map(|dir| dir.trim_end_matches('/').to_string())
        .collect()
}

/// The crate names ARCHITECTURE.md's invariant "`a`, `b` and `c` contain no `unsafe`" lists.
pub fn invariant_no_unsafe_crates(architecture: &str) -> Vec<String> {
    architecture
        .lines()
        .find_map(|l| l.split_once("contain no `unsafe`").map(|(names, _)| names))
        .map(|names| {
            names
                .split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// The `name = "..."` of a manifest's `[package]`.
pub fn package_name(manifest: &str) -> Option<String> {
    let package = manifest.split("[package]").nth(1)?;
    package.lines().find_map(|l| {
        let (key, value) = l.split_once('=')?;
        (key.trim() == "name").then(|| value.trim().trim_matches('"').to_string())
    })
}

/// Files of `pvguest/src/xen/` that reach shared memory only through `shared_page.rs` and so
/// hold no `unsafe` of their own (ARCHITECTURE.md: unsafe lives in thin named layers).
pub const NO_UNSAFE_PLATFORM_FILES: [&str; 4] = [
    "pvguest/src/xen/shared_info.rs",
    "pvguest/src/xen/xenstore.rs",
    "pvguest/src/xen/console.rs",
    "pvguest/src/xen/grant_table.rs",
];

/// Modules that parse or index what a peer or the toolstack wrote: they deny silent
/// arithmetic (`clippy::arithmetic_side_effects`), so every `+`, `-`, `*` on such values is
/// checked, saturating, wrapping on purpose, or justified where it is allowed.
pub const ARITHMETIC_CHECKED_MODULES: [&str; 12] = [
    "abi/src/byte_ring.rs",
    "abi/src/ring.rs",
    "abi/src/io/xs_wire.rs",
    "abi/xenbus/src/xenstore/client.rs",
    "abi/xenbus/src/xenstore/codec.rs",
    "abi/xenbus/src/xenstore/payload.rs",
    "abi/xenbus/src/xenstore/ring.rs",
    "abi/pvh/src/boot_info.rs",
    "abi/pvh/src/frames.rs",
    "pvguest/src/memory/addr.rs",
    "pvguest/src/proto/evtchn.rs",
    "pvguest/src/proto/pvclock.rs",
];

/// Crates whose top-level modules must import one another in no cycle (floors point down
/// inside a crate too: in `pvguest` the platform never imports the boot sequence, and the boot
/// sequence imports neither the application nor the self-tests).
pub const ACYCLIC_CRATES: [&str; 2] = ["pvguest", "hv"];

/// The cast lints the workspace turns on for every crate.
pub const CAST_LINTS: [&str; 3] = [
    "cast_possible_truncation",
    "cast_sign_loss",
    "cast_possible_wrap",
];

/// Lines of `text` that use `unsafe` (outside `//` comments).
pub fn unsafe_lines(text: &str) -> Vec<usize> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| {
            let code = l.split("//").next().unwrap_or("");
            code.split(|c: char| !c.is_alphanumeric() && c != '_')
                .any(|w| w == "unsafe")
        })
        .map(|(i, _)| i + 1)
        .collect()
}

/// Whether a Rust source file starts with a `//!` line (its one-line description).
pub fn starts_with_doc_line(text: &str) -> bool {
    text.starts_with("//!")
}

/// Whether a crate root declares `#![forbid(unsafe_code)]` (outside comments).
pub fn forbids_unsafe(crate_root: &str) -> bool {
    crate_root.lines().any(|l| {
        let code = l.split("//").next().unwrap_or("");
        code.split_whitespace().collect::<String>() == "#![forbid(unsafe_code)]"
    })
}

/// The names a manifest depends on (normal, build and dev dependencies, target-specific ones
/// included, and `[workspace.dependencies]`).
pub fn dependency_names(manifest: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut in_deps = false;
    for line in manifest.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        if let Some(header) = line.strip_prefix('[') {
            let header = header.trim_start_matches('[').trim_end_matches(']').trim();
            // `[dependencies.foo]` names `foo` in its header.
            let parts: Vec<&str> = header.split('.').collect();
            match parts.iter().position(|p| p.ends_with("dependencies")) {
                Some(i) if i + 1 < parts.len() => {
                    names.push(parts[i + 1].trim_matches('"').to_owned());
                    in_deps = false;
                }
                Some(_) => in_deps = true,
                None => in_deps = false,
            }
            continue;
        }
        if in_deps && let Some((key, _)) = line.split_once('=') {
            let key = key.trim().trim_matches('"');
            // `foo.workspace = true` names `foo`.
            let name = key.split('.').next().unwrap_or(key);
            names.push(name.to_owned());
        }
    }
    names
}

/// The names in `[dependencies]`-like sections that are not dev-dependencies.
pub fn non_dev_dependency_names(manifest: &str) -> Vec<String> {
    let without_dev: String = {
        let mut keep = true;
        let mut out = String::new();
        for line in manifest.lines() {
            let t = line.trim();
            if t.starts_with('[') {
                keep = !t.contains("dev-dependencies");
            }
            if keep {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    };
    dependency_names(&without_dev)
}

/// The workspace root (the parent of `xtask/`).
fn root() -> PathBuf {
    crate::build::workspace_root()
}

/// Every file under `dir` whose name ends with `suffix`, skipping `target/` and hidden
/// directories.
fn files_under(dir: &Path, suffix: &str, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if path.is_dir() {
            if name != "target" && !name.starts_with('.') {
                files_under(&path, suffix, out);
            }
        } else if name.ends_with(suffix) {
            out.push(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(path: &Path) -> String {
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    #[test]
    fn architecture_claims_are_read_from_planted_text() {
        let text = "### `a/b/` (crate `b`: no_std, `forbid(unsafe_code)`)\n\
                    ### `c/` (kernel)\n\
                    - `x`, `y` and `z` contain no `unsafe`\n  (`#![forbid(unsafe_code)]`)\n";
        assert_eq!(codemap_forbid_unsafe_dirs(text), ["a/b"]);
        assert_eq!(invariant_no_unsafe_crates(text), ["x", "y", "z"]);
        assert_eq!(
            invariant_no_unsafe_crates("nothing here"),
            Vec::<String>::new()
        );
        assert_eq!(
            package_name("[package]\nname = \"pvh\"\n[dependencies]\nname = \"no\"\n"),
            Some("pvh".to_string())
        );
    }

    #[test]
    fn checks_catch_planted_violations() {
        assert!(starts_with_doc_line("//! A module.\n"));
        assert!(!starts_with_doc_line("// A module.\n"));
        assert!(!starts_with_doc_line("\n//! late\n"));

        assert!(forbids_unsafe(
            "//! x\n#![no_std]\n#![forbid(unsafe_code)]\n"
        ));
        assert!(!forbids_unsafe("//! x\n// #![forbid(unsafe_code)]\n"));
        assert!(!forbids_unsafe("//! x\n#![deny(unsafe_code)]\n"));

        let manifest = "[package]\nname = \"netfront\"\n\n[dependencies]\nabi.workspace = true\n\
                        pvguest = { path = \"../pvguest\" }\n\n[dev-dependencies]\nproptest = \"1\"\n\
                        \n[target.'cfg(unix)'.dependencies.\"libc\"]\nversion = \"0.2\"\n";
        assert_eq!(
            dependency_names(manifest),
            ["abi", "pvguest", "proptest", "libc"]
        );
        assert_eq!(
            non_dev_dependency_names(manifest),
            ["abi", "pvguest", "libc"]
        );
        assert!(
            non_dev_dependency_names("[dependencies]\n\n[dev-dependencies]\nx = \"1\"\n")
                .is_empty()
        );
    }

    #[test]
    fn cast_and_arithmetic_lints_are_on() {
        let manifest = read(&root().join("Cargo.toml"));
        let clippy = manifest
            .split("[workspace.lints.clippy]")
            .nth(1)
            .and_then(|rest| rest.split("\n[").next())
            .unwrap_or("");
        for lint in CAST_LINTS {
            assert!(
                clippy
                    .lines()
                    .any(|l| l.trim().starts_with(&format!("{lint} = \"warn\""))
                        || l.trim().starts_with(&format!("{lint} = \"deny\""))),
                "[workspace.lints.clippy] lacks {lint}"
            );
        }
        for module in ARITHMETIC_CHECKED_MODULES {
            let text = read(&root().join(module));
            assert!(
                text.lines()
                    .any(|l| l.trim() == "#![warn(clippy::arithmetic_side_effects)]"),
                "{module} does not warn on clippy::arithmetic_side_effects"
            );
        }
    }

    #[test]
    fn platform_files_hold_no_unsafe() {
        assert_eq!(
            unsafe_lines("// unsafe in a comment\nfn f() {}\n"),
            Vec::<usize>::new()
        );
        assert_eq!(unsafe_lines("fn f() {\n    unsafe { g() }\n}\n"), [2]);
        let bad: Vec<_> = NO_UNSAFE_PLATFORM_FILES
            .iter()
            .map(|f| (f, unsafe_lines(&read(&root().join(f)))))
            .filter(|(_, lines)| !lines.is_empty())
            .collect();
        assert!(
            bad.is_empty(),
            "unsafe outside shared_page.rs and the hypercall layer: {bad:?}"
        );
    }

    #[test]
    fn every_rs_file_starts_with_a_doc_line() {
        let mut files = Vec::new();
        files_under(&root(), ".rs", &mut files);
        assert!(
            files.len() > 50,
            "the walk found only {} files",
            files.len()
        );
        let bad: Vec<_> = files
            .iter()
            .filter(|f| !starts_with_doc_line(&read(f)))
            .map(|f| f.strip_prefix(root()).unwrap_or(f).display().to_string())
            .collect();
        assert!(bad.is_empty(), "files not starting with `//!`: {bad:?}");
    }

    #[test]
    fn abi_has_no_dependencies() {
        let deps = non_dev_dependency_names(&read(&root().join("abi").join("Cargo.toml")));
        assert!(
            deps.is_empty(),
            "abi depends on {deps:?}; it must depend on nothing"
        );
    }

    #[test]
    fn no_crate_depends_on_pvguest_or_hv() {
        let mut manifests = Vec::new();
        files_under(&root(), "Cargo.toml", &mut manifests);
        assert!(
            manifests.len() >= 8,
            "found only {} manifests",
            manifests.len()
        );
        let bad: Vec<_> = manifests
            .iter()
            .filter(|m| {
                dependency_names(&read(m))
                    .iter()
                    .any(|d| d == "pvguest" || d == "hv")
            })
            .map(|m| m.strip_prefix(root()).unwrap_or(m).display().to_string())
            .collect();
        assert!(bad.is_empty(), "these depend on pvguest or hv: {bad:?}");
    }

    /// ARCHITECTURE.md's codemap and its invariant name the same crates as forbidding unsafe,
    /// and each of them does: the document and the tree cannot drift apart.
    #[test]
    fn every_crate_architecture_md_says_forbids_unsafe_does() {
        let architecture = read(&root().join("ARCHITECTURE.md"));
        let mut dirs = codemap_forbid_unsafe_dirs(&architecture);
        dirs.sort();
        let mut expected: Vec<String> =
            FORBID_UNSAFE_CRATES.iter().map(|d| d.to_string()).collect();
        expected.sort();
        assert_eq!(
            dirs, expected,
            "the codemap's `forbid(unsafe_code)` headings and FORBID_UNSAFE_CRATES differ"
        );
        let mut names: Vec<String> = dirs
            .iter()
            .map(|d| {
                package_name(&read(&root().join(d).join("Cargo.toml")))
                    .unwrap_or_else(|| panic!("{d}/Cargo.toml has no package name"))
            })
            .collect();
        names.sort();
        let mut claimed = invariant_no_unsafe_crates(&architecture);
        claimed.sort();
        assert_eq!(
            claimed, names,
            "ARCHITECTURE.md's invariant lists other crates than its codemap headings"
        );
        for dir in &dirs {
            assert!(
                forbids_unsafe(&read(&root().join(dir).join("src").join("lib.rs"))),
                "{dir}/src/lib.rs does not declare #![forbid(unsafe_code)]"
            );
        }
    }

    /// hv's host-testable modules (everything outside `kernel/`, which builds only for the
    /// kernel target) hold no `unsafe`, as ARCHITECTURE.md says.
    #[test]
    fn hv_host_testable_modules_hold_no_unsafe() {
        let mut files = Vec::new();
        files_under(&root().join("hv").join("src"), ".rs", &mut files);
        let kernel = root().join("hv").join("src").join("kernel");
        let main = root().join("hv").join("src").join("main.rs");
        let bad: Vec<String> = files
            .iter()
            .filter(|f| !f.starts_with(&kernel) && **f != main)
            .flat_map(|f| {
                unsafe_lines(&read(f)).into_iter().map(move |line| {
                    format!("{}:{line}", f.strip_prefix(root()).unwrap_or(f).display())
                })
            })
            .collect();
        assert!(
            files.len() >= 20,
            "found only {} files under hv/src",
            files.len()
        );
        assert!(
            bad.is_empty(),
            "unsafe in hv's host-testable modules: {bad:?}"
        );
    }

    #[test]
    fn top_level_modules_import_in_no_cycle() {
        for krate in ACYCLIC_CRATES {
            let src = root().join(krate).join("src");
            let graph =
                imports::crate_graph(&src).unwrap_or_else(|e| panic!("{}: {e}", src.display()));
            assert!(
                graph.len() >= 5,
                "{krate}: only {} top-level modules found",
                graph.len()
            );
            if let Some(cycle) = imports::find_cycle(&imports::arrows(&graph)) {
                let mut why = String::new();
                for pair in cycle.windows(2) {
                    let sites: Vec<String> = graph[&pair[0]][&pair[1]]
                        .iter()
                        .map(ToString::to_string)
                        .collect();
                    why.push_str(&format!(
                        "\n  {} -> {}: {}",
                        pair[0],
                        pair[1],
                        sites.join(", ")
                    ));
                }
                panic!(
                    "{krate}: import cycle {}{why}\n\nall arrows:\n{}",
                    cycle.join(" -> "),
                    imports::render(&graph)
                );
            }
        }
    }

    /// hv decodes hypercall arguments as `abi`'s types (`hv/src/hypercall/args.rs`), never by
    /// byte offset: no `from_le_bytes` in the decoders or their tests.
    #[test]
    fn hv_hypercall_decoders_use_no_byte_offsets() {
        let uses_from_le_bytes = |text: &str| {
            text.lines()
                .enumerate()
                .filter(|(_, l)| l.split("//").next().unwrap_or("").contains("from_le_bytes"))
                .map(|(i, _)| i + 1)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            uses_from_le_bytes("let a = u32::from_le_bytes(b);\n// from_le_bytes\n"),
            [1]
        );
        let hv = root().join("hv").join("src");
        let mut files = vec![hv.join("hypercall.rs")];
        files_under(&hv.join("hypercall"), ".rs", &mut files);
        assert!(files.len() >= 3, "found only {files:?}");
        let bad: Vec<_> = files
            .iter()
            .map(|f| (f, uses_from_le_bytes(&read(f))))
            .filter(|(_, lines)| !lines.is_empty())
            .map(|(f, lines)| {
                format!(
                    "{}: lines {lines:?}",
                    f.strip_prefix(root()).unwrap_or(f).display()
                )
            })
            .collect();
        assert!(
            bad.is_empty(),
            "decode hypercall arguments as abi types (hypercall/args.rs), not bytes: {bad:?}"
        );
    }
}
