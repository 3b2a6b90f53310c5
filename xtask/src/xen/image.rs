//! The stock-Xen test image, built from Debian packages only and cached outside `target/`.
//!
//! Layout of the cache (`$PVXEN_CACHE`, else `$XDG_CACHE_HOME/pvxen`, else `~/.cache/pvxen`):
//!
//! ```text
//! debs/<package>_<version>_<arch>.deb        downloaded once, shared by every image
//! images/<xen version>_<kernel>_<key>/       one directory per image key
//!     xen            the hypervisor (gunzipped /boot/xen-4.17-amd64.gz)
//!     vmlinux        the Debian kernel (ELF, taken out of its bzImage), booted as a PV dom0
//!     dom0.cpio      dom0's initramfs: toolstack, libraries, busybox, modules, xtask/dom0/*
//!     manifest.txt   the resolved package versions and everything else the key covers
//! ```
//!
//! The key is a hash of the candidate versions apt resolved, the module list, this recipe's
//! revision and the content of `xtask/dom0/*`, so a Debian point release or an edit of the
//! dom0 scripts builds a new image; an unchanged key reuses the directory as it is.
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::fs;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use super::cpio::CpioWriter;
use super::packages::{self, Package};
use super::{bzimage, rootfs};

/// Bump when the build below changes in a way the key would not otherwise see.
const RECIPE_REVISION: u32 = 2;
/// The Xen release line whose Debian packages are used.
pub const XEN_RELEASE: &str = "4.17";
const XEN_PACKAGE: &str = "xen-hypervisor-4.17-amd64";
/// Unpacked whole into the dom0 root: the toolstack and every library its programs need
/// (checked after unpacking: each `DT_NEEDED` must resolve inside the root).
const DOM0_PACKAGES: &[&str] = &[
    "xen-utils-4.17",
    "xen-utils-common",
    "xenstore-utils",
    "libxencall1",
    "libxendevicemodel1",
    "libxenevtchn1",
    "libxenforeignmemory1",
    "libxengnttab1",
    "libxenhypfs1",
    "libxenmisc4.17",
    "libxenstore4",
    "libxentoolcore1",
    "libxentoollog1",
    "libyajl2",
    "libc6",
    "libncurses6",
    "libtinfo6",
    "libgcc-s1",
    "zlib1g",
    "liblzma5",
    "libzstd1",
    "libbz2-1.0",
    "libuuid1",
    "libext2fs2",
    "libcom-err2",
    "libsmartcols1",
    "busybox-static",
    "bash",
    // `ab` (apache2-utils) for the HTTP load check, and what its programs need.
    "apache2-utils",
    "libapr1",
    "libaprutil1",
    "libcrypt1",
    "libssl3",
    "libdb5.3",
    "libexpat1",
    "libgdbm6",
    // `dmsetup` (the device boot's `net-stalled-disk` suspends the store's disk) and its
    // libraries.
    "dmsetup",
    "libdevmapper1.02.1",
    "libselinux1",
    "libpcre2-8-0",
    "libudev1",
];
/// Packages from which single programs are taken: `flock` (the hotplug scripts' locking;
/// busybox has none) and util-linux's `losetup` (the `block` script parses its output).
const HELPER_PROGRAMS: &[(&str, &[&str], &str)] = &[
    (
        "util-linux",
        &["usr/bin/flock", "bin/flock"],
        "usr/bin/flock",
    ),
    (
        "mount",
        &["sbin/losetup", "usr/sbin/losetup"],
        "sbin/losetup",
    ),
];
/// Kernel modules for dom0 (their dependencies are added): the Xen device files, and the
/// backends and plumbing for guests with a vif or disks.
const MODULES: &[&str] = &[
    "xenfs",
    "xen-evtchn",
    "xen-gntdev",
    "xen-gntalloc",
    "xen-privcmd",
    "xen-blkback",
    "xen-netback",
    "loop",
    // Device-mapper: a target the harness can suspend under a guest's disk.
    "dm-mod",
    "bridge",
    // `cargo xtask run`: QEMU's user network and the store image reach dom0 as virtio devices.
    "virtio_pci",
    "virtio_blk",
    "virtio_net",
];
/// The files of `xtask/dom0/`, placed into the root: (source name, content, path in dom0).
const DOM0_FILES: &[(&str, &[u8], &str)] = &[
    ("init", include_bytes!("../../dom0/init"), "init"),
    (
        "run-job.sh",
        include_bytes!("../../dom0/run-job.sh"),
        "usr/lib/pvxen/run-job.sh",
    ),
];

/// A built image: the three files QEMU boots.
#[derive(Debug, Clone)]
pub struct Image {
    /// The Xen hypervisor (multiboot ELF).
    pub xen: PathBuf,
    /// The dom0 kernel, an ELF file (decompressed from Debian's bzImage).
    pub vmlinux: PathBuf,
    /// The dom0 initramfs (uncompressed `newc` cpio).
    pub dom0_cpio: PathBuf,
}

/// The cache root (see the module documentation).
pub fn cache_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("PVXEN_CACHE").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("pvxen");
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    PathBuf::from(home).join(".cache").join("pvxen")
}

/// FNV-1a, 64 bits: a stable hash for cache keys (std's hasher may change between releases).
pub fn fnv1a64(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The text the image key is a hash of; it is also the head of `manifest.txt`.
fn key_text(xen: &Package, kernel: &Package, dom0: &[Package]) -> String {
    let mut text = format!("recipe-revision {RECIPE_REVISION}\n");
    for p in [xen, kernel].into_iter().chain(dom0) {
        let _ = writeln!(text, "package {} {} {}", p.name, p.version, p.arch);
    }
    let _ = writeln!(text, "modules {}", MODULES.join(" "));
    for (name, content, dest) in DOM0_FILES {
        let _ = writeln!(
            text,
            "dom0-file {name} -> /{dest} fnv1a64={:016x}",
            fnv1a64(content)
        );
    }
    text
}

/// The image directory name: readable versions plus the key hash.
fn image_dir_name(xen: &Package, kernel: &Package, key: &str) -> String {
    let kernel_abi = kernel.name.trim_start_matches("linux-image-");
    format!(
        "xen-{}_linux-{kernel_abi}_{:016x}",
        xen.version,
        fnv1a64(key.as_bytes())
    )
    .replace([':', '/', ' ', ','], "_")
}

/// Returns the image for the package versions apt resolves now, building it if it is not in
/// the cache yet. Prints a progress line for each long step.
pub fn ensure_image() -> Result<Image> {
    packages::ensure_host_tools()?;
    let cache = cache_root();
    println!("xen image: resolving Debian package versions...");
    let mut wanted: Vec<&str> = vec![XEN_PACKAGE];
    wanted.extend_from_slice(DOM0_PACKAGES);
    wanted.extend(HELPER_PROGRAMS.iter().map(|h| h.0));
    let (kernel, mut resolved) = packages::resolve(&wanted)?;
    let xen = resolved.remove(0);
    let key = key_text(&xen, &kernel, &resolved);
    let dir = cache
        .join("images")
        .join(image_dir_name(&xen, &kernel, &key));
    let image = Image {
        xen: dir.join("xen"),
        vmlinux: dir.join("vmlinux"),
        dom0_cpio: dir.join("dom0.cpio"),
    };
    if dir.join("manifest.txt").is_file() {
        // The manifest's time says when the image was last used (see `prune`).
        let _ = fs::OpenOptions::new()
            .append(true)
            .open(dir.join("manifest.txt"))
            .and_then(|f| f.set_modified(std::time::SystemTime::now()));
        println!("xen image: cached in {}", dir.display());
        return Ok(image);
    }
    let started = Instant::now();
    println!(
        "xen image: building for Xen {} and {} {} (key in {}/manifest.txt)",
        xen.version,
        kernel.name,
        kernel.version,
        dir.display()
    );
    let debs = cache.join("debs");
    fs::create_dir_all(&debs).with_context(|| format!("creating {}", debs.display()))?;
    let mut all = vec![xen.clone(), kernel.clone()];
    all.extend(resolved.iter().cloned());
    packages::download(&all, &debs)?;

    let images = cache.join("images");
    let work = images.join(format!(".build-{}", std::process::id()));
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let built = build(&work, &debs, &xen, &kernel, &resolved, &key);
    let result = built.and_then(|()| {
        match fs::rename(&work, &dir) {
            Ok(()) => Ok(()),
            // Another run built the same key meanwhile: use theirs.
            Err(_) if dir.join("manifest.txt").is_file() => Ok(()),
            Err(e) => Err(e).with_context(|| format!("renaming into {}", dir.display())),
        }
    });
    let _ = fs::remove_dir_all(&work);
    result?;
    println!(
        "xen image: built in {:.1} s: {}",
        started.elapsed().as_secs_f64(),
        dir.display()
    );
    prune(&images, KEEP_IMAGES);
    Ok(image)
}

/// How many image directories the cache keeps (the ones used last).
const KEEP_IMAGES: usize = 3;

/// Removes all but the `keep` images used last, and build directories of processes that are gone.
fn prune(images: &Path, keep: usize) {
    let Ok(entries) = fs::read_dir(images) else {
        return;
    };
    let mut built = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(pid) = name.strip_prefix(".build-") {
            if !Path::new("/proc").join(pid).exists() {
                let _ = fs::remove_dir_all(entry.path());
            }
        } else if let Ok(modified) =
            fs::metadata(entry.path().join("manifest.txt")).and_then(|m| m.modified())
        {
            built.push((modified, entry.path()));
        }
    }
    built.sort();
    let excess = built.len().saturating_sub(keep);
    for (_, old) in built.into_iter().take(excess) {
        println!("xen image: removing old image {}", old.display());
        let _ = fs::remove_dir_all(old);
    }
}

/// Runs `cmd`, failing with `what` unless it succeeds.
pub(super) fn run(cmd: &mut Command, what: &str) -> Result<()> {
    let status = cmd.status().with_context(|| format!("running {what}"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}

/// Unpacks a `.deb` into `into` (created if missing).
pub(super) fn unpack(deb: &Path, into: &Path) -> Result<()> {
    fs::create_dir_all(into).with_context(|| format!("creating {}", into.display()))?;
    run(
        Command::new("dpkg-deb").arg("-x").arg(deb).arg(into),
        &format!("dpkg-deb -x {}", deb.display()),
    )
}

/// Builds the image's files into `work` (which becomes the image directory).
fn build(
    work: &Path,
    debs: &Path,
    xen: &Package,
    kernel: &Package,
    dom0: &[Package],
    key: &str,
) -> Result<()> {
    let scratch = work.join("scratch");
    println!("xen image: extracting hypervisor and kernel...");
    unpack(&debs.join(xen.deb_name()), &scratch.join("xen"))?;
    let xen_gz = scratch.join(format!("xen/boot/xen-{XEN_RELEASE}-amd64.gz"));
    let xen_elf = fs::File::create(work.join("xen")).context("creating xen")?;
    run(
        Command::new("gzip").arg("-dc").arg(&xen_gz).stdout(xen_elf),
        &format!("gzip -dc {}", xen_gz.display()),
    )?;
    let kscratch = scratch.join("kernel");
    unpack(&debs.join(kernel.deb_name()), &kscratch)?;
    let kver = kernel.name.trim_start_matches("linux-image-");
    let bzimage = fs::read(kscratch.join(format!("boot/vmlinuz-{kver}")))
        .with_context(|| format!("reading vmlinuz-{kver} out of {}", kernel.name))?;
    bzimage::unpack(&bzimage, &scratch, &work.join("vmlinux"))?;

    println!("xen image: building dom0 root ({} packages)...", dom0.len());
    let root = scratch.join("root");
    let helper_names: BTreeSet<&str> = HELPER_PROGRAMS.iter().map(|h| h.0).collect();
    for p in dom0
        .iter()
        .filter(|p| !helper_names.contains(p.name.as_str()))
    {
        unpack(&debs.join(p.deb_name()), &root)?;
    }
    for (package, candidates, dest) in HELPER_PROGRAMS {
        let p = dom0
            .iter()
            .find(|p| p.name == *package)
            .context("helper package not resolved")?;
        let tmp = scratch.join(package);
        unpack(&debs.join(p.deb_name()), &tmp)?;
        let src = candidates
            .iter()
            .map(|c| tmp.join(c))
            .find(|c| c.is_file())
            .with_context(|| format!("{package} has none of {candidates:?}"))?;
        let dest = root.join(dest);
        fs::create_dir_all(dest.parent().context("no parent")?)?;
        fs::copy(&src, &dest).with_context(|| format!("copying {}", src.display()))?;
    }
    rootfs::finish(&root, DOM0_FILES)?;
    let count = rootfs::copy_modules(&kscratch, kver, &root, MODULES)?;
    println!("xen image: {count} kernel modules; checking shared libraries...");
    rootfs::check_libraries(&root)?;

    println!("xen image: packing dom0 initramfs...");
    let out =
        BufWriter::new(fs::File::create(work.join("dom0.cpio")).context("creating dom0.cpio")?);
    let mut cpio = CpioWriter::new(out);
    cpio.tree(&root)?;
    cpio.finish().context("writing dom0.cpio")?;
    fs::remove_dir_all(&scratch).context("removing the build's scratch directory")?;

    let mut manifest = key.to_owned();
    for name in ["xen", "vmlinux", "dom0.cpio"] {
        let len = fs::metadata(work.join(name))?.len();
        let _ = writeln!(manifest, "file {name} {len} bytes");
    }
    fs::write(work.join("manifest.txt"), manifest).context("writing manifest.txt")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{Package, fnv1a64, image_dir_name, key_text};

    fn pkg(name: &str, version: &str) -> Package {
        Package {
            name: name.into(),
            version: version.into(),
            arch: "amd64".into(),
            size: 1,
        }
    }

    #[test]
    fn fnv_reference_values() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn key_follows_versions() {
        let xen = pkg(
            "xen-hypervisor-4.17-amd64",
            "4.17.7+13-g2445b30a44-0+deb12u1",
        );
        let k1 = pkg("linux-image-6.1.0-56-amd64", "6.1.192-2");
        let k2 = pkg("linux-image-6.1.0-56-amd64", "6.1.192-3");
        let a = key_text(&xen, &k1, &[pkg("libc6", "2.36-9+deb12u14")]);
        let b = key_text(&xen, &k2, &[pkg("libc6", "2.36-9+deb12u14")]);
        assert_ne!(a, b);
        assert!(a.contains("package libc6 2.36-9+deb12u14 amd64"));
        assert!(a.contains("dom0-file init -> /init"));
        let dir = image_dir_name(&xen, &k1, &a);
        assert!(dir.starts_with("xen-4.17.7+13-g2445b30a44-0+deb12u1_linux-6.1.0-56-amd64_"));
        assert_ne!(dir, image_dir_name(&xen, &k2, &b));
        assert!(!dir.contains([' ', ',', ':']));
    }
}
