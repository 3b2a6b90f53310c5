//! Debian packages for the stock-Xen image: host tools, resolving candidate versions with
//! `apt-cache`, and downloading `.deb` files with `apt-get download`.
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// One resolved package: what `apt-cache show` says apt would download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    /// The package name.
    pub name: String,
    /// The candidate version, epoch included (`1:1.35.0-4+b3`).
    pub version: String,
    /// `amd64` or `all`.
    pub arch: String,
    /// The archive's size in bytes.
    pub size: u64,
}

impl Package {
    /// The file name this package has in the cache's `debs/` directory.
    pub fn deb_name(&self) -> String {
        // ':' (the epoch) is not welcome in paths handed to QEMU or shells; apt uses %3a.
        format!(
            "{}_{}_{}.deb",
            self.name,
            self.version.replace(':', "%3a"),
            self.arch
        )
    }
}

/// Whether this process runs as root (read from `/proc/self/status`).
pub fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|v| v.split_whitespace().next().map(|uid| uid == "0"))
        })
        .unwrap_or(false)
}

/// The full path of `program` if it is on `PATH` or in an `sbin` directory.
pub fn find_program(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// Host programs the harness runs, and the Debian package providing each.
const HOST_TOOLS: &[(&str, &str)] = &[
    ("apt-get", "apt"),
    ("apt-cache", "apt"),
    ("dpkg-deb", "dpkg"),
    ("gzip", "gzip"),
    ("xz", "xz-utils"),
    ("depmod", "kmod"),
    ("qemu-system-x86_64", "qemu-system-x86"),
    // The site archive (`tar --format=ustar --sort=name`).
    ("tar", "tar"),
];

/// Makes sure every host tool exists: installs the missing ones with apt-get when running as
/// root (as on CI), otherwise fails naming the command to run.
pub fn ensure_host_tools() -> Result<()> {
    ensure_tools(HOST_TOOLS)
}

/// Makes sure each `(program, Debian package)` of `tools` exists, as [`ensure_host_tools`] does.
pub fn ensure_tools(tools: &[(&str, &str)]) -> Result<()> {
    let mut missing: Vec<&str> = tools
        .iter()
        .filter(|(p, _)| find_program(p).is_none())
        .map(|(_, pkg)| *pkg)
        .collect();
    missing.dedup();
    if missing.is_empty() {
        return Ok(());
    }
    let list = missing.join(" ");
    if !is_root() {
        bail!(
            "missing host tools; install them with: \
             sudo apt-get install --no-install-recommends {list}"
        );
    }
    println!("xen image: installing host tools: {list}");
    run(
        Command::new("apt-get").args(["update", "-q"]),
        "apt-get update",
    )?;
    run(
        Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(&missing),
        "apt-get install",
    )?;
    if let Some((p, _)) = tools.iter().find(|(p, _)| find_program(p).is_none()) {
        bail!("{p} is still missing after apt-get install {list}");
    }
    Ok(())
}

fn run(cmd: &mut Command, what: &str) -> Result<()> {
    let status = cmd.status().with_context(|| format!("running {what}"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}

/// Parses `apt-cache show` output into one field map per stanza (continuation lines dropped).
pub fn parse_stanzas(text: &str) -> Vec<BTreeMap<String, String>> {
    let mut stanzas = Vec::new();
    let mut current = BTreeMap::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            if !current.is_empty() {
                stanzas.push(std::mem::take(&mut current));
            }
        } else if !line.starts_with([' ', '\t'])
            && let Some((key, value)) = line.split_once(':')
        {
            current.insert(key.to_owned(), value.trim().to_owned());
        }
    }
    if !current.is_empty() {
        stanzas.push(current);
    }
    stanzas
}

/// The `linux-image-<abi>-amd64` package a `Depends` field of `linux-image-amd64` names.
pub fn kernel_from_depends(depends: &str) -> Option<String> {
    depends
        .split([',', '|'])
        .filter_map(|d| d.split_whitespace().next())
        .find(|name| {
            name.strip_prefix("linux-image-")
                .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
        })
        .map(str::to_owned)
}

/// Picks, for each wanted name, its first `amd64` or `all` stanza.
pub fn select_packages(
    stanzas: &[BTreeMap<String, String>],
    names: &[&str],
) -> Result<Vec<Package>> {
    names
        .iter()
        .map(|name| {
            let stanza = stanzas
                .iter()
                .find(|s| {
                    s.get("Package").map(String::as_str) == Some(*name)
                        && matches!(
                            s.get("Architecture").map(String::as_str),
                            Some("amd64" | "all")
                        )
                })
                .with_context(|| format!("apt-cache knows no amd64 candidate of {name}"))?;
            let field = |key: &str| {
                stanza
                    .get(key)
                    .cloned()
                    .with_context(|| format!("{name}: no {key} field"))
            };
            Ok(Package {
                name: (*name).to_owned(),
                version: field("Version")?,
                arch: field("Architecture")?,
                size: field("Size")?
                    .parse()
                    .with_context(|| format!("{name}: bad Size"))?,
            })
        })
        .collect()
}

fn apt_cache_show(names: &[&str]) -> Result<Option<String>> {
    let out = Command::new("apt-cache")
        .args(["show", "--no-all-versions"])
        .args(names)
        .output()
        .context("running apt-cache show")?;
    if out.status.success() {
        Ok(Some(String::from_utf8_lossy(&out.stdout).into_owned()))
    } else {
        Ok(None)
    }
}

/// Resolves the candidate versions of `names` plus the kernel that `linux-image-amd64` depends
/// on (returned first). Runs `apt-get update` once if the package lists lack them (root only).
pub fn resolve(names: &[&str]) -> Result<(Package, Vec<Package>)> {
    let mut all: Vec<&str> = vec!["linux-image-amd64"];
    all.extend_from_slice(names);
    let text = match apt_cache_show(&all)? {
        Some(text) => text,
        None if is_root() => {
            println!("xen image: apt lists lack some packages; running apt-get update");
            run(
                Command::new("apt-get").args(["update", "-q"]),
                "apt-get update",
            )?;
            apt_cache_show(&all)?.with_context(|| {
                format!(
                    "apt-cache show {} fails even after apt-get update",
                    all.join(" ")
                )
            })?
        }
        None => bail!(
            "apt-cache does not know all of {}: run `sudo apt-get update` (Debian 12 main)",
            all.join(" ")
        ),
    };
    let stanzas = parse_stanzas(&text);
    let meta = stanzas
        .iter()
        .find(|s| s.get("Package").map(String::as_str) == Some("linux-image-amd64"))
        .context("apt-cache show printed nothing for linux-image-amd64")?;
    let depends = meta.get("Depends").map(String::as_str).unwrap_or("");
    let kernel_name = kernel_from_depends(depends)
        .with_context(|| format!("linux-image-amd64 depends on no kernel: {depends:?}"))?;
    let kernel_text = apt_cache_show(&[&kernel_name])?
        .with_context(|| format!("apt-cache show {kernel_name} failed"))?;
    let kernel = select_packages(&parse_stanzas(&kernel_text), &[&kernel_name])?.remove(0);
    Ok((kernel, select_packages(&stanzas, names)?))
}

/// Downloads the packages missing from `debs` with `apt-get download name=version`.
pub fn download(packages: &[Package], debs: &Path) -> Result<()> {
    let missing: Vec<&Package> = packages
        .iter()
        .filter(|p| !debs.join(p.deb_name()).is_file())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let bytes: u64 = missing.iter().map(|p| p.size).sum();
    println!(
        "xen image: downloading {} packages ({:.1} MB) into {}...",
        missing.len(),
        bytes as f64 / 1e6,
        debs.display()
    );
    let partial = debs.join(format!(".partial-{}", std::process::id()));
    fs::create_dir_all(&partial).with_context(|| format!("creating {}", partial.display()))?;
    let mut cmd = Command::new("apt-get");
    cmd.current_dir(&partial).args(["download", "-qq"]);
    if is_root() {
        // As root apt drops to the _apt user, which cannot write below /root.
        cmd.args(["-o", "APT::Sandbox::User=root"]);
    }
    cmd.args(missing.iter().map(|p| format!("{}={}", p.name, p.version)));
    let result = run(&mut cmd, "apt-get download");
    let moved = result.and_then(|()| {
        for p in &missing {
            let prefix = format!("{}_", p.name);
            let file = fs::read_dir(&partial)?
                .filter_map(|e| e.ok())
                .find(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                .with_context(|| format!("apt-get download left no {prefix}*.deb"))?;
            fs::rename(file.path(), debs.join(p.deb_name()))?;
        }
        Ok(())
    });
    let _ = fs::remove_dir_all(&partial);
    moved
}

#[cfg(test)]
mod tests {
    use super::{Package, kernel_from_depends, parse_stanzas, select_packages};

    const SHOW: &str = "\
Package: linux-image-amd64
Source: linux-signed-amd64 (6.1.192+2)
Version: 6.1.192-2
Architecture: amd64
Depends: linux-image-6.1.0-56-amd64 (= 6.1.192-2)
Size: 1484

Package: busybox-static
Version: 1:1.35.0-4+deb12u1+b1
Architecture: i386
Size: 1

Package: busybox-static
Version: 1:1.35.0-4+deb12u1+b1
Architecture: amd64
Size: 928188
Description: Standalone rescue shell
 with tons of builtin utilities
";

    #[test]
    fn stanzas_and_selection() {
        let stanzas = parse_stanzas(SHOW);
        assert_eq!(stanzas.len(), 3);
        assert_eq!(
            kernel_from_depends(&stanzas[0]["Depends"]).unwrap(),
            "linux-image-6.1.0-56-amd64"
        );
        let picked = select_packages(&stanzas, &["busybox-static"]).unwrap();
        assert_eq!(
            picked,
            [Package {
                name: "busybox-static".into(),
                version: "1:1.35.0-4+deb12u1+b1".into(),
                arch: "amd64".into(),
                size: 928_188
            }]
        );
        assert_eq!(
            picked[0].deb_name(),
            "busybox-static_1%3a1.35.0-4+deb12u1+b1_amd64.deb"
        );
        assert!(select_packages(&stanzas, &["xen-utils-4.17"]).is_err());
    }

    #[test]
    fn kernel_dependency_skips_other_packages() {
        assert_eq!(
            kernel_from_depends("linux-base, linux-image-6.1.0-9-amd64 (= 6.1.27-1)").unwrap(),
            "linux-image-6.1.0-9-amd64"
        );
        assert_eq!(
            kernel_from_depends("linux-image-amd64-signed-template"),
            None
        );
    }
}
