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

/// Whether the toolchain at `sysroot` has the standard library of `target`.
fn target_installed(sysroot: &Path, target: &str) -> bool {
    sysroot
        .join("lib")
        .join("rustlib")
        .join(target)
        .join("lib")
        .is_dir()
}

/// Makes sure the pinned toolchain can build for [`KERNEL_TARGET`]: a toolchain installed
/// without it fails with "can't find crate for `core`", so the target is added with rustup
/// (run in the workspace, so it applies to the toolchain `rust-toolchain.toml` pins).
pub fn ensure_kernel_target() -> Result<()> {
    let root = workspace_root();
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let out = Command::new(&rustc)
        .current_dir(&root)
        .args(["--print", "sysroot"])
        .output()
        .with_context(|| format!("running {rustc} --print sysroot"))?;
    if !out.status.success() {
        bail!("{rustc} --print sysroot failed ({})", out.status);
    }
    let sysroot = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    if target_installed(&sysroot, KERNEL_TARGET) {
        return Ok(());
    }
    println!(
        "build: the toolchain at {} lacks {KERNEL_TARGET}; running rustup target add {KERNEL_TARGET}",
        sysroot.display()
    );
    let status = Command::new("rustup")
        .current_dir(&root)
        .args(["target", "add", KERNEL_TARGET])
        .status()
        .with_context(|| {
            format!(
                "the toolchain lacks the {KERNEL_TARGET} target and rustup could not be run \
                 to add it; install that target's standard library"
            )
        })?;
    if !status.success() || !target_installed(&sysroot, KERNEL_TARGET) {
        bail!("rustup target add {KERNEL_TARGET} failed ({status})");
    }
    Ok(())
}

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
    ensure_kernel_target()?;
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

#[cfg(test)]
mod tests {
    use super::{KERNEL_TARGET, target_installed};

    #[test]
    fn missing_kernel_target_is_detected() {
        let sysroot = std::env::temp_dir().join(format!("xtask-sysroot-{}", std::process::id()));
        let lib = sysroot.join("lib/rustlib").join(KERNEL_TARGET).join("lib");
        assert!(!target_installed(&sysroot, KERNEL_TARGET));
        std::fs::create_dir_all(&lib).unwrap();
        assert!(target_installed(&sysroot, KERNEL_TARGET));
        assert!(!target_installed(&sysroot, "x86_64-unknown-uefi"));
        std::fs::remove_dir_all(&sysroot).unwrap();
    }
}
