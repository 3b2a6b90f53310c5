//! The dom0 root file system: what the unpacked packages need to run as a system (busybox
//! applets, directories, users, kernel modules) and the check that every library is there.
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use super::elf;
use super::image::{XEN_RELEASE, run};
use super::packages;

/// Programs whose shared libraries must all be inside the root.
const CHECKED_PROGRAMS: &[&str] = &[
    "usr/lib/xen-4.17/bin/xl",
    "usr/lib/xen-4.17/bin/xenstored",
    "usr/lib/xen-4.17/bin/xenconsoled",
    "usr/lib/xen-4.17/bin/xen-init-dom0",
    "usr/lib/xen-4.17/bin/xenconsole",
    "bin/bash",
    "usr/bin/flock",
    "sbin/losetup",
    "sbin/dmsetup",
];
/// Trims the unpacked packages and adds what a running system would have: busybox applets,
/// directories, users, the toolstack's real binaries on `PATH`, and `xtask/dom0/*`.
pub fn finish(root: &Path, dom0_files: &[(&str, &[u8], &str)]) -> Result<()> {
    for dir in [
        "usr/share/doc",
        "usr/share/man",
        "usr/share/info",
        "usr/share/locale",
        "usr/lib/xen-4.17/lib/python",
        "usr/lib/x86_64-linux-gnu/gconv",
        "usr/lib/xen-4.17/boot",
    ] {
        let _ = fs::remove_dir_all(root.join(dir));
    }
    for dir in [
        "bin",
        "sbin",
        "usr/bin",
        "usr/sbin",
        "proc",
        "sys",
        "dev",
        "run",
        "tmp",
        "etc",
        "root",
        "var/log/xen/console",
        "var/lib/xen",
        "var/lib/xenstored",
        "var/lock",
        "usr/lib/pvxen",
    ] {
        fs::create_dir_all(root.join(dir))?;
    }
    let busybox = root.join("bin/busybox");
    let list = Command::new(&busybox)
        .arg("--list")
        .output()
        .context("running busybox --list")?;
    if !list.status.success() {
        bail!("busybox --list failed ({})", list.status);
    }
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        let exists = ["bin", "usr/bin", "sbin", "usr/sbin"]
            .iter()
            .any(|d| fs::symlink_metadata(root.join(d).join(applet)).is_ok());
        if !exists && !applet.is_empty() && !applet.contains('/') {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(applet))?;
        }
    }
    replace_symlink("bash", &root.join("bin/sh"))?;
    // Debian's /usr/sbin/xl etc. are version-dispatch wrappers; point at the real programs.
    for program in [
        "xl",
        "xenstored",
        "xenconsoled",
        "xen-init-dom0",
        "xenconsole",
    ] {
        replace_symlink(
            &format!("/usr/lib/xen-{XEN_RELEASE}/bin/{program}"),
            &root.join("usr/sbin").join(program),
        )?;
    }
    replace_symlink("/run", &root.join("var/run"))?;
    fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n")?;
    fs::write(root.join("etc/group"), "root:x:0:\n")?;
    for (name, content, dest) in dom0_files {
        let path = root.join(dest);
        fs::write(&path, content).with_context(|| format!("writing dom0 file {name}"))?;
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755))?;
    }
    Ok(())
}

/// Makes `link` a symlink to `target`, replacing whatever was there.
fn replace_symlink(target: &str, link: &Path) -> Result<()> {
    if fs::symlink_metadata(link).is_ok() {
        fs::remove_file(link).with_context(|| format!("removing {}", link.display()))?;
    }
    std::os::unix::fs::symlink(target, link).with_context(|| format!("linking {}", link.display()))
}

/// Copies `modules` and their dependencies into the root and runs `depmod` there.
pub fn copy_modules(kernel: &Path, kver: &str, root: &Path, modules: &[&str]) -> Result<usize> {
    let tree = kernel.join("lib/modules").join(kver);
    let mut by_name = BTreeMap::new();
    let mut stack = vec![tree.join("kernel")];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Some(name) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".ko"))
            {
                by_name.insert(name.replace('-', "_"), path.clone());
            }
        }
    }
    let mut done = BTreeSet::new();
    let mut want: Vec<String> = modules.iter().map(|m| m.replace('-', "_")).collect();
    while let Some(name) = want.pop() {
        if !done.insert(name.clone()) {
            continue;
        }
        let src = by_name.get(&name).with_context(|| {
            format!(
                "kernel module {name}.ko not found in {} (compressed modules?)",
                tree.display()
            )
        })?;
        let content = fs::read(src)?;
        want.extend(
            elf::module_depends(&content)
                .iter()
                .map(|d| d.replace('-', "_")),
        );
        let rel = src
            .strip_prefix(kernel)
            .context("module outside the kernel tree")?;
        let dest = root.join(rel);
        fs::create_dir_all(dest.parent().context("no parent")?)?;
        fs::write(&dest, content)?;
    }
    for entry in fs::read_dir(&tree)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("modules.builtin") || name == "modules.order" {
            fs::copy(
                entry.path(),
                root.join("lib/modules").join(kver).join(&*name),
            )?;
        }
    }
    let depmod = packages::find_program("depmod").context("depmod is missing")?;
    run(Command::new(depmod).arg("-b").arg(root).arg(kver), "depmod")?;
    Ok(done.len())
}

/// Fails unless every shared library of [`CHECKED_PROGRAMS`] (transitively) is in the root.
pub fn check_libraries(root: &Path) -> Result<()> {
    let lib_dirs = [
        "lib/x86_64-linux-gnu",
        "usr/lib/x86_64-linux-gnu",
        "usr/lib/xen-4.17/lib",
    ];
    let mut seen = BTreeSet::new();
    let mut queue: Vec<(PathBuf, String)> = CHECKED_PROGRAMS
        .iter()
        .map(|p| (root.join(p), (*p).to_owned()))
        .collect();
    let mut missing = Vec::new();
    while let Some((path, what)) = queue.pop() {
        let data = fs::read(&path).with_context(|| format!("reading {what} in the dom0 root"))?;
        for lib in elf::needed_libraries(&data).with_context(|| what.clone())? {
            if !seen.insert(lib.clone()) {
                continue;
            }
            match lib_dirs
                .iter()
                .map(|d| root.join(d).join(&lib))
                .find(|p| p.exists())
            {
                Some(found) => queue.push((found, lib)),
                None => missing.push(format!("{lib} (needed by {what})")),
            }
        }
    }
    if !missing.is_empty() {
        bail!(
            "the dom0 root lacks shared libraries: {}; add their packages to DOM0_PACKAGES",
            missing.join(", ")
        );
    }
    Ok(())
}
