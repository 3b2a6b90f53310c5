//! Building the kernels, `pvguest` and `hv`, for `x86_64-unknown-none`.
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// The workspace root (the parent of `xtask/`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The bare-metal target the kernels are built for.
pub const KERNEL_TARGET: &str = "x86_64-unknown-none";

/// Builds the `pvguest` kernel (release profile) and returns the path of its ELF.
pub fn build_guest() -> Result<PathBuf> {
    build_kernel("pvguest")
}

/// Builds the `hv` hypervisor (release profile) and returns the path of its ELF.
pub fn build_hv() -> Result<PathBuf> {
    build_kernel("hv")
}

/// Builds the binary of `package` for the kernel target and returns its path.
fn build_kernel(package: &str) -> Result<PathBuf> {
    let root = workspace_root();
    println!("build: cargo build -p {package} --release --target {KERNEL_TARGET}");
    let status = Command::new(cargo())
        .current_dir(&root)
        .args(["build", "--locked", "--quiet", "--release", "-p", package])
        .args(["--target", KERNEL_TARGET])
        .status()
        .with_context(|| format!("running cargo build for {package}"))?;
    if !status.success() {
        bail!("building {package} for {KERNEL_TARGET} failed ({status})");
    }
    let elf = root
        .join("target")
        .join(KERNEL_TARGET)
        .join("release")
        .join(package);
    if !elf.is_file() {
        bail!(
            "cargo reported success but {} does not exist",
            elf.display()
        );
    }
    Ok(elf)
}

/// The cargo binary that runs this xtask (so the pinned toolchain is used throughout).
pub fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
}
