//! Build script: turns `spec/*.spec` into `$OUT_DIR/table.rs` (the items to check, the C
//! compiler to check them with, and the Rust expressions for their values).
//!
//! Nothing here fails the build: spec errors, a missing spec directory or a missing C compiler
//! are written into the table, and the conformance test fails with them. The Xen headers are
//! not touched at build time at all; the test compiles its C program when it runs.

use std::fs;
use std::path::{Path, PathBuf};

#[allow(dead_code)]
#[path = "src/spec.rs"]
mod spec;
#[allow(dead_code)]
#[path = "src/table.rs"]
mod table;

use spec::Spec;
use table::CompilerSpec;

/// The spec files in `dir`, sorted by name, or why there are none.
fn spec_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let entries = fs::read_dir(dir)
        .map_err(|e| format!("cannot read spec directory {}: {e}", dir.display()))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "spec"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(format!("no *.spec files in {}", dir.display()));
    }
    Ok(files)
}

/// The host C compiler as the `cc` crate sees it (honouring `CC`, `CFLAGS`, ...).
fn compiler() -> Result<CompilerSpec, String> {
    let tool = cc::Build::new()
        .cargo_metadata(false)
        .try_get_compiler()
        .map_err(|e| format!("no C compiler found by the cc crate: {e}"))?;
    Ok(CompilerSpec {
        path: tool.path().to_string_lossy().into_owned(),
        args: tool
            .args()
            .iter()
            .map(|arg| arg.to_string_lossy().into_owned())
            .collect(),
        env: tool
            .get_envs()
            .map(|(key, value)| {
                (
                    key.to_string_lossy().into_owned(),
                    value.to_string_lossy().into_owned(),
                )
            })
            .collect(),
    })
}

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default());
    let spec_dir = manifest_dir.join("spec");

    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=src/spec.rs");
    println!("cargo::rerun-if-changed=src/table.rs");
    println!("cargo::rerun-if-changed={}", spec_dir.display());

    let mut spec = Spec::default();
    let mut errors = Vec::new();
    match spec_files(&spec_dir) {
        Ok(files) => {
            for path in files {
                println!("cargo::rerun-if-changed={}", path.display());
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                match fs::read_to_string(&path) {
                    Ok(text) => errors.extend(
                        spec.parse_file(&name, &text)
                            .iter()
                            .map(ToString::to_string),
                    ),
                    Err(e) => errors.push(format!("{name}: cannot read: {e}")),
                }
            }
        }
        Err(e) => errors.push(e),
    }
    for error in &errors {
        println!("cargo::warning=abi conformance spec: {error}");
    }

    let source = table::generate(&spec, &errors, &compiler());
    let target = out_dir.join("table.rs");
    if let Err(e) = fs::write(&target, source) {
        // Without the table the test cannot even compile; say why loudly.
        panic!("cannot write {}: {e}", target.display());
    }
}
