//! `hv-run --config <file> ...`: domain configs in xl.cfg syntax (crate `xlcfg`), checked
//! before anything is built, what hv can run of them, and the archive that carries them to hv.
//!
//! Every problem is one line `<path>:<line>: <key>: <what is wrong>`, all of them reported
//! (files in the order given, each in line order); then `hv-run` exits 2. The configs that
//! pass become domains 1, 2, ... in the order given; [`archive()`] packs them with their
//! kernels into the [`xlcfg::archive`] hv reads from its PVH module.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use xlcfg::archive::{self, Kind};

use super::qemu::{DEFAULT_MEMORY_MIB, HV_MEMORY_MIB};

/// The smallest `memory` hv builds a domain with, in MiB.
pub const MIN_MEMORY_MIB: u64 = 4;
/// The largest `memory` hv builds a domain with, in MiB.
pub const MAX_MEMORY_MIB: u64 = 3072;
/// hv builds domain memory in steps of this many MiB (2 MiB nested pages).
pub const MEMORY_STEP_MIB: u64 = 2;

/// Where ballooning (`maxmem` above `memory`) on hv is tracked.
pub const BALLOONING_ISSUE: &str = "issue \"hv boots any PVH kernel Xen boots\"";
/// The address QEMU's user network's DHCP server hands out first (and the guest's usual
/// static one): a domain with a vif and no static `ip=` is forwarded to it.
pub const DHCP_FIRST_IP: std::net::Ipv4Addr = std::net::Ipv4Addr::new(10, 0, 2, 15);
/// The guest port a domain's host forward reaches (its HTTP service).
pub const GUEST_PORT: u16 = 80;
/// The first host port `hv-run` forwards (`127.0.0.1:<port>`), one more per domain with a
/// vif; `PVXEN_HV_PORT` chooses another.
pub const DEFAULT_HOST_PORT: u16 = 8080;

/// A config file as read.
#[derive(Debug, Clone)]
pub struct ConfigFile {
    /// Its path as given (used in messages).
    pub path: String,
    /// Its path made absolute: its name in the archive, and whose directory relative paths in
    /// it resolve against (as xl resolves them, and as hv will: [`xlcfg::dir_of`]).
    pub absolute: String,
    /// Its text.
    pub text: String,
}

/// One domain `hv-run` boots from a config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Boot {
    /// The domain's `name`.
    pub name: String,
    /// The config's absolute path (its archive entry's name).
    pub config: String,
    /// The config's text (its archive entry's data).
    pub text: String,
    /// The kernel ELF, exactly as [`xlcfg::parse`] resolved it (its archive entry's name).
    pub kernel: String,
    /// The ramdisk, exactly as [`xlcfg::parse`] resolved it (its archive entry's name).
    pub ramdisk: Option<String>,
    /// The guest command line.
    pub cmdline: String,
    /// `memory`, in MiB.
    pub memory_mib: u64,
    /// Its disks (targets resolved as xl resolves them), in the config's order.
    pub disks: Vec<super::qemu::Drive>,
    /// How many `vif` entries it has (hv joins them all to its switch).
    pub vifs: usize,
}

/// What hv cannot serve of vif `v`, if anything: it is served by domain 0 as a `vif` (not
/// an emulated NIC), without a rate limit or a script of its own.
fn vif_problem(v: &xlcfg::Vif) -> Option<String> {
    if let Some(b) = v
        .backend
        .as_deref()
        .filter(|b| !matches!(*b, "0" | "Domain-0"))
    {
        return Some(format!("backend {b}: hv's vifs are served by domain 0"));
    }
    if let Some(k) = v.kind.as_deref().filter(|k| *k != "vif") {
        return Some(format!("type {k}: hv serves PV vifs only"));
    }
    if v.rate.is_some() {
        return Some("rate: hv's switch has no rate limit".to_owned());
    }
    if v.mtu.is_some_and(|m| m != 1500) {
        return Some("mtu: hv's switch and NIC carry 1500-byte frames only".to_owned());
    }
    if v.mac.is_some_and(|m| m[0] & 1 != 0 || m == [0; 6]) {
        return Some("mac: a vif's MAC must be unicast and not all zeros".to_owned());
    }
    None
}

/// The static address a guest command line gives (`ip=a.b.c.d/len`), if any.
fn static_ip(cmdline: &str) -> Option<std::net::Ipv4Addr> {
    let ip = cmdline
        .split_whitespace()
        .find_map(|w| w.strip_prefix("ip="))?;
    ip.split('/').next()?.parse().ok()
}

/// The host forwards of a run of `boots` when any has a vif (`None`: no NIC): one per domain
/// with a vif, host ports from `base_port` on in config order, each to port [`GUEST_PORT`]
/// of the address its command line gives (`ip=a.b.c.d/len`), or of [`DHCP_FIRST_IP`] for
/// the first domain that asks QEMU's DHCP server (a later one gets whatever is next, first
/// come first served, so it gets no forward and a warning says so).
pub fn hostfwds(
    boots: &[Boot],
    base_port: u16,
) -> (Option<Vec<super::qemu::HostFwd>>, Vec<String>) {
    if boots.iter().all(|b| b.vifs == 0) {
        return (None, Vec::new());
    }
    let mut fwds = Vec::new();
    let mut warnings = Vec::new();
    let mut dhcp_taken = false;
    let mut port = base_port;
    for b in boots.iter().filter(|b| b.vifs > 0) {
        let ip = match static_ip(&b.cmdline) {
            Some(ip) => ip,
            None if !dhcp_taken => {
                dhcp_taken = true;
                DHCP_FIRST_IP
            }
            None => {
                warnings.push(format!(
                    "{}: no static ip= on its command line and another domain asks DHCP                      first: no host forward",
                    b.name
                ));
                continue;
            }
        };
        fwds.push(super::qemu::HostFwd {
            host_port: port,
            guest_ip: ip,
            guest_port: GUEST_PORT,
        });
        port = port.saturating_add(1);
    }
    (Some(fwds), warnings)
}

/// The first host port of `hv-run`'s forwards: `PVXEN_HV_PORT`, else [`DEFAULT_HOST_PORT`].
pub fn base_port() -> Result<u16> {
    match std::env::var("PVXEN_HV_PORT") {
        Ok(p) => p
            .parse()
            .with_context(|| format!("PVXEN_HV_PORT={p:?} is not a port")),
        Err(_) => Ok(DEFAULT_HOST_PORT),
    }
}

/// What hv cannot serve of disk `d` (a raw image file, read-write or read-only, served by
/// domain 0), if anything. `is_file` says whether its target exists.
fn disk_problem(d: &xlcfg::disk::Disk, is_file: impl Fn(&str) -> bool) -> Option<String> {
    let Some(target) = &d.target else {
        return Some("an empty drive: hv serves image files only".to_owned());
    };
    if d.cdrom {
        return Some("a cdrom: hv serves disks only".to_owned());
    }
    if d.format != xlcfg::disk::Format::Raw {
        return Some(format!("format {:?}: hv's disks are raw images", d.format));
    }
    if let Some(b) = d
        .backend
        .as_deref()
        .filter(|b| !matches!(*b, "0" | "Domain-0"))
    {
        return Some(format!("backend {b}: hv's disks are served by domain 0"));
    }
    if target.contains(',') {
        return Some(format!("{target}: a comma cannot travel in QEMU's -drive"));
    }
    if !is_file(target) {
        return Some(format!("{target}: not a file"));
    }
    None
}

/// Every disk of `boots`, in config order then each config's disk order: one virtio-blk drive
/// each, which hv pairs with the same disks in the same order.
pub fn drives(boots: &[Boot]) -> Vec<super::qemu::Drive> {
    boots.iter().flat_map(|b| b.disks.iter().cloned()).collect()
}

/// Parses every config and checks them together (distinct names, as xl refuses a second
/// domain with a name in use) and against what hv runs (a kernel and a command line in
/// [`MIN_MEMORY_MIB`] to [`MAX_MEMORY_MIB`] MiB in [`MEMORY_STEP_MIB`] steps; no ballooning,
/// each disk a raw image file, each vif a PV vif of domain 0). `is_file` says whether a kernel path exists. Returns the
/// domains to boot, in the order given, or every problem (and the warnings xl would print
/// either way).
pub fn check(
    files: &[ConfigFile],
    is_file: impl Fn(&str) -> bool,
) -> (Result<Vec<Boot>, Vec<String>>, Vec<String>) {
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    let mut parsed: Vec<(&ConfigFile, xlcfg::Config)> = Vec::new();
    for f in files {
        match xlcfg::parse(&f.text, xlcfg::dir_of(&f.absolute)) {
            Ok(c) => {
                warnings.extend(c.warnings.iter().map(|w| w.render(&f.path)));
                let at = |key: &str| c.line_of(key).unwrap_or(c.end_line);
                // This file's problems, put in line order below.
                let mut mine: Vec<(usize, String)> = Vec::new();
                if let Some((other, oc)) = parsed.iter().find(|(_, o)| o.name == c.name) {
                    mine.push((
                        at("name"),
                        format!(
                            "{}:{}: name: {:?} is already the name of the domain in {}:{} (two \
                         domains may not share a name, as xl refuses)",
                            f.path,
                            at("name"),
                            c.name,
                            other.path,
                            oc.line_of("name").unwrap_or(oc.end_line)
                        ),
                    ));
                }
                let mut unsupported = |key: &str, what: String| {
                    mine.push((at(key), format!("{}:{}: {key}: {what}", f.path, at(key))));
                };
                if !(MIN_MEMORY_MIB..=MAX_MEMORY_MIB).contains(&c.memory_mib)
                    || !c.memory_mib.is_multiple_of(MEMORY_STEP_MIB)
                {
                    unsupported(
                        "memory",
                        format!(
                            "{} MiB: hv builds domains of {MIN_MEMORY_MIB} to {MAX_MEMORY_MIB} \
                             MiB, in {MEMORY_STEP_MIB} MiB steps",
                            c.memory_mib,
                        ),
                    );
                }
                if c.maxmem_mib != c.memory_mib {
                    unsupported(
                        "maxmem",
                        format!(
                            "{} MiB: hv gives a domain exactly its memory; maxmem above it \
                             (ballooning) is not implemented yet ({BALLOONING_ISSUE})",
                            c.maxmem_mib
                        ),
                    );
                }
                if let Some(r) = c.ramdisk.as_deref().filter(|r| !is_file(r)) {
                    unsupported("ramdisk", format!("{r}: not a file"));
                }
                for (i, v) in c.vifs.iter().enumerate() {
                    if let Some(why) = vif_problem(v) {
                        unsupported("vif", format!("entry {i}: {why}"));
                    }
                }
                for d in &c.disks {
                    if let Some(why) = disk_problem(d, &is_file) {
                        unsupported("disk", format!("{}: {why}", d.vdev));
                    }
                }
                if !is_file(&c.kernel) {
                    unsupported(
                        "kernel",
                        format!(
                            "{}: not a file (pvguest's ELF is built by `cargo xtask build`)",
                            c.kernel
                        ),
                    );
                }
                mine.sort_by_key(|(line, _)| *line);
                problems.extend(mine.into_iter().map(|(_, p)| p));
                parsed.push((f, c));
            }
            Err(ps) => problems.extend(ps.iter().map(|p| p.render(&f.path))),
        }
    }
    let result = if !problems.is_empty() {
        Err(problems)
    } else if parsed.is_empty() {
        Err(vec!["hv-run: no config given".to_owned()])
    } else {
        Ok(parsed
            .into_iter()
            .map(|(f, c)| Boot {
                name: c.name,
                config: f.absolute.clone(),
                text: f.text.clone(),
                kernel: c.kernel,
                ramdisk: c.ramdisk,
                cmdline: c.cmdline,
                memory_mib: c.memory_mib,
                disks: c
                    .disks
                    .iter()
                    .map(|d| super::qemu::Drive {
                        file: PathBuf::from(d.target.clone().unwrap_or_default()),
                        read_only: d.access == xlcfg::disk::Access::ReadOnly,
                    })
                    .collect(),
                vifs: c.vifs.len(),
            })
            .collect())
    };
    (result, warnings)
}

/// QEMU's memory for a run of `boots`, in MiB: [`HV_MEMORY_MIB`] for hv beside the domains'
/// own, and never below the [`DEFAULT_MEMORY_MIB`] of the one-domain boots.
pub fn qemu_memory_mib(boots: &[Boot]) -> u64 {
    let domains: u64 = boots.iter().map(|b| b.memory_mib).sum();
    domains
        .saturating_add(HV_MEMORY_MIB)
        .max(DEFAULT_MEMORY_MIB)
}

/// The archive hv reads from its PVH module: one config entry per boot (named by its
/// absolute path), then one file entry per distinct kernel or ramdisk (named exactly as the
/// config's `kernel` or `ramdisk` resolved), its bytes from `read`.
pub fn archive(boots: &[Boot], read: impl Fn(&str) -> Result<Vec<u8>>) -> Result<Vec<u8>> {
    let mut kernels: Vec<(&str, Vec<u8>)> = Vec::new();
    for file in boots
        .iter()
        .flat_map(|b| core::iter::once(&b.kernel).chain(b.ramdisk.as_ref()))
    {
        if !kernels.iter().any(|(k, _)| *k == file) {
            let bytes = read(file).with_context(|| format!("reading {file}"))?;
            kernels.push((file, bytes));
        }
    }
    let mut entries: Vec<(Kind, &str, &[u8])> = boots
        .iter()
        .map(|b| (Kind::Config, b.config.as_str(), b.text.as_bytes()))
        .collect();
    entries.extend(
        kernels
            .iter()
            .map(|(k, bytes)| (Kind::File, *k, bytes.as_slice())),
    );
    if entries.len() > archive::MAX_ENTRIES as usize {
        bail!(
            "{} configs and kernels: hv's archive holds at most {}",
            entries.len(),
            archive::MAX_ENTRIES
        );
    }
    Ok(archive::write(&entries))
}

/// Where the archive of a run goes: `<run dir>/domains.pvxarc`.
pub fn archive_path(run_dir: &std::path::Path) -> PathBuf {
    run_dir.join("domains.pvxarc")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A config read from `path` (made absolute under `/w` if relative).
    fn file(path: &str, text: &str) -> ConfigFile {
        ConfigFile {
            path: path.to_owned(),
            absolute: if path.starts_with('/') {
                path.to_owned()
            } else {
                format!("/w/{path}")
            },
            text: text.to_owned(),
        }
    }

    const ONE: &str = "name = \"one\"\ntype = \"pvh\"\nkernel = \"../k\"\nmemory = 128\n\
                       cmdline = \"selftest=boot\"\n";
    const TWO: &str = "name = \"two\"\ntype = \"pvh\"\nkernel = \"/k2\"\nmemory = 3072\n";

    #[test]
    fn supported_configs_boot_in_order() {
        let (r, w) = check(&[file("cfg/a.cfg", ONE), file("/c/b.cfg", TWO)], |k| {
            k == "/w/cfg/../k" || k == "/k2"
        });
        assert_eq!(
            r,
            Ok(vec![
                Boot {
                    name: "one".to_owned(),
                    config: "/w/cfg/a.cfg".to_owned(),
                    text: ONE.to_owned(),
                    kernel: "/w/cfg/../k".to_owned(),
                    ramdisk: None,
                    cmdline: "selftest=boot".to_owned(),
                    memory_mib: 128,
                    disks: vec![],
                    vifs: 0,
                },
                Boot {
                    name: "two".to_owned(),
                    config: "/c/b.cfg".to_owned(),
                    text: TWO.to_owned(),
                    kernel: "/k2".to_owned(),
                    ramdisk: None,
                    cmdline: String::new(),
                    memory_mib: 3072,
                    disks: vec![],
                    vifs: 0,
                },
            ])
        );
        assert!(w.is_empty());
        let (r, _) = check(&[], |_| true);
        assert_eq!(r, Err(vec!["hv-run: no config given".to_owned()]));
    }

    #[test]
    fn disks_become_drives_and_what_hv_cannot_serve_is_refused() {
        let text = "name = \"d\"\ntype = \"pvh\"\nkernel = \"/k\"\nmemory = 64\n\
                    disk = [ 'a.img,,xvda', 'format=raw,vdev=xvdb,access=ro,target=/i/b.img' ]\n";
        let (r, _) = check(&[file("d.cfg", text)], |_| true);
        let boots = r.unwrap();
        assert_eq!(
            drives(&boots),
            vec![
                super::super::qemu::Drive {
                    file: PathBuf::from("/w/a.img"),
                    read_only: false
                },
                super::super::qemu::Drive {
                    file: PathBuf::from("/i/b.img"),
                    read_only: true
                },
            ]
        );
        let bad = "name = \"d\"\ntype = \"pvh\"\nkernel = \"/k\"\nmemory = 64\n\
                   disk = [ 'a.img,qcow2,xvda', ',,xvdb,,cdrom', 'vdev=xvdc,target=x,y.img', \
                   'missing.img,,xvdd', 'b.img,,xvde,backend=drv' ]\n";
        let (r, _) = check(&[file("e.cfg", bad)], |f| f != "/w/missing.img");
        assert_eq!(
            r,
            Err(vec![
                "e.cfg:5: disk: xvda: format Qcow2: hv's disks are raw images".to_owned(),
                "e.cfg:5: disk: xvdb: an empty drive: hv serves image files only".to_owned(),
                "e.cfg:5: disk: xvdc: /w/x,y.img: a comma cannot travel in QEMU's -drive"
                    .to_owned(),
                "e.cfg:5: disk: xvdd: /w/missing.img: not a file".to_owned(),
                "e.cfg:5: disk: xvde: backend drv: hv's disks are served by domain 0".to_owned(),
            ])
        );
    }

    #[test]
    fn every_problem_of_every_file_in_order() {
        let bad = "name = \"bad\"\ntype = \"pvh\"\nkernel = \"/k\"\nbogus = 1\n";
        let devices = "name = \"two\"\ntype = \"pvh\"\nkernel = \"/k\"\nmemory = 64\n\
                       vif = [ '', 'type=ioemu' ]\ndisk = [ 'd.img,,xvda' ]\nmaxmem = 128\n";
        let (r, _) = check(
            &[
                file("a.cfg", ONE),
                file("b.cfg", bad),
                file("c.cfg", devices),
                file("d.cfg", ONE),
            ],
            |_| true,
        );
        assert_eq!(
            r,
            Err(vec![
                "b.cfg:4: bogus: unknown key".to_owned(),
                "c.cfg:5: vif: entry 1: type ioemu: hv serves PV vifs only".to_owned(),
                format!(
                    "c.cfg:7: maxmem: 128 MiB: hv gives a domain exactly its memory; maxmem \
                     above it (ballooning) is not implemented yet ({BALLOONING_ISSUE})"
                ),
                "d.cfg:1: name: \"one\" is already the name of the domain in a.cfg:1 (two \
                 domains may not share a name, as xl refuses)"
                    .to_owned(),
            ])
        );
    }

    #[test]
    fn vifs_hv_serves_pass_and_the_rest_are_refused_each_with_its_reason() {
        let with =
            |v: &str| format!("name = \"v\"\ntype = \"pvh\"\nkernel = \"/k\"\nvif = [ {v} ]\n");
        for good in [
            "''",
            "'mac=00:16:3e:00:00:01'",
            "'mac=00:16:3e:00:00:01,bridge=xenbr0,type=vif,backend=0'",
            "'mtu=1500', 'devid=3'",
        ] {
            let (r, _) = check(&[file("v.cfg", &with(good))], |_| true);
            assert!(r.is_ok(), "{good}: {r:?}");
        }
        for (bad, why) in [
            (
                "'backend=dd'",
                "backend dd: hv's vifs are served by domain 0",
            ),
            ("'type=ioemu'", "type ioemu: hv serves PV vifs only"),
            ("'rate=10Mb/s'", "rate: hv's switch has no rate limit"),
            (
                "'mtu=9000'",
                "mtu: hv's switch and NIC carry 1500-byte frames only",
            ),
            (
                "'mac=01:16:3e:00:00:01'",
                "mac: a vif's MAC must be unicast and not all zeros",
            ),
            (
                "'mac=00:00:00:00:00:00'",
                "mac: a vif's MAC must be unicast and not all zeros",
            ),
        ] {
            let (r, _) = check(&[file("v.cfg", &with(bad))], |_| true);
            assert_eq!(
                r,
                Err(vec![format!("v.cfg:4: vif: entry 0: {why}")]),
                "{bad}"
            );
        }
    }

    #[test]
    fn each_domain_with_a_vif_gets_a_host_forward_to_its_address() {
        let boot = |name: &str, cmdline: &str, vifs| Boot {
            name: name.to_owned(),
            config: String::new(),
            text: String::new(),
            kernel: String::new(),
            ramdisk: None,
            cmdline: cmdline.to_owned(),
            memory_mib: 128,
            disks: vec![],
            vifs,
        };
        let fwd = |host_port, ip: [u8; 4]| super::super::qemu::HostFwd {
            host_port,
            guest_ip: ip.into(),
            guest_port: 80,
        };
        assert_eq!(hostfwds(&[boot("a", "ip=dhcp", 0)], 8080), (None, vec![]));
        assert_eq!(
            hostfwds(&[boot("a", "selftest=net ip=dhcp", 1)], 8080),
            (Some(vec![fwd(8080, [10, 0, 2, 15])]), vec![])
        );
        let boots = [
            boot("none", "", 0),
            boot("a", "ip=10.0.2.20/24 gw=10.0.2.2", 1),
            boot("b", "", 2),
            boot("c", "ip=dhcp", 1),
            boot("d", "x ip=10.0.2.21/24", 1),
        ];
        let (fwds, warnings) = hostfwds(&boots, 9000);
        assert_eq!(
            fwds,
            Some(vec![
                fwd(9000, [10, 0, 2, 20]),
                fwd(9001, [10, 0, 2, 15]),
                fwd(9002, [10, 0, 2, 21]),
            ])
        );
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].starts_with("c: "), "{warnings:?}");
    }

    #[test]
    fn memory_from_4_to_3072_mib_in_2_mib_steps() {
        let with = |m: &str| format!("name = \"m\"\ntype = \"pvh\"\nkernel = \"/k\"\n{m}");
        for good in ["memory = 4\n", "memory = 3072\n", "memory = 130\n", ""] {
            let (r, _) = check(&[file("m.cfg", &with(good))], |_| true);
            assert!(r.is_ok(), "{good:?}: {r:?}");
        }
        for (bad, mib) in [
            ("memory = 2\n", 2),
            ("memory = 3074\n", 3074),
            ("memory = 129\n", 129),
            ("memory = 1\n", 1),
        ] {
            let (r, _) = check(&[file("m.cfg", &with(bad))], |_| true);
            assert_eq!(
                r,
                Err(vec![format!(
                    "m.cfg:4: memory: {mib} MiB: hv builds domains of 4 to 3072 MiB, in 2 MiB \
                     steps"
                )]),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn missing_kernel_file_and_ramdisk() {
        let text = "name = \"x\"\ntype = \"pvh\"\nkernel = \"k\"\nramdisk = \"r\"\n";
        let (r, _) = check(&[file("/c/x.cfg", text)], |_| false);
        assert_eq!(
            r,
            Err(vec![
                "/c/x.cfg:3: kernel: /c/k: not a file (pvguest's ELF is built by `cargo xtask \
                 build`)"
                    .to_owned(),
                "/c/x.cfg:4: ramdisk: /c/r: not a file".to_owned(),
            ])
        );
    }

    #[test]
    fn warnings_kept() {
        let text = format!("{ONE}extra = \"ignored\"\n");
        let (r, w) = check(&[file("a.cfg", &text)], |_| true);
        assert!(r.is_ok());
        assert_eq!(
            w,
            ["a.cfg:6: extra: ignored in favour of cmdline (as xl ignores root= and extra=)"]
        );
    }

    #[test]
    fn qemu_memory_leaves_room_for_hv() {
        let boot = |m| Boot {
            name: String::new(),
            config: String::new(),
            text: String::new(),
            kernel: String::new(),
            ramdisk: None,
            cmdline: String::new(),
            memory_mib: m,
            disks: vec![],
            vifs: 0,
        };
        assert_eq!(qemu_memory_mib(&[boot(128)]), 512);
        assert_eq!(qemu_memory_mib(&[boot(128), boot(128)]), 512);
        assert_eq!(qemu_memory_mib(&[boot(128), boot(256)]), 640);
        assert_eq!(qemu_memory_mib(&[boot(3072), boot(3072)]), 6400);
    }

    #[test]
    fn the_archive_holds_configs_then_each_kernel_once() {
        let texts = [
            ("a.cfg", ONE),
            ("b.cfg", &ONE.replace("\"one\"", "\"b\"")),
            ("/c/t.cfg", TWO),
        ];
        let files: Vec<_> = texts.iter().map(|(p, t)| file(p, t)).collect();
        let (r, _) = check(&files, |_| true);
        let boots = r.unwrap();
        let bytes = archive(&boots, |k| Ok(format!("ELF of {k}").into_bytes())).unwrap();
        let a = archive::Archive::parse(&bytes).unwrap();
        let entries: Vec<_> = a.entries().map(|e| (e.kind, e.name)).collect();
        assert_eq!(
            entries,
            [
                (Kind::Config, "/w/a.cfg"),
                (Kind::Config, "/w/b.cfg"),
                (Kind::Config, "/c/t.cfg"),
                (Kind::File, "/w/../k"),
                (Kind::File, "/k2"),
            ]
        );
        // What hv does with it finds every kernel.
        for c in a.configs() {
            let text = std::str::from_utf8(c.data).unwrap();
            let config = xlcfg::parse(text, xlcfg::dir_of(c.name)).unwrap();
            let kernel = a.file(&config.kernel).unwrap();
            assert_eq!(kernel, format!("ELF of {}", config.kernel).as_bytes());
        }
        assert!(archive(&boots, |_| bail!("gone")).is_err());
        let many: Vec<Boot> = (0..33)
            .map(|i| Boot {
                kernel: format!("/k{i}"),
                ramdisk: None,
                ..boots[0].clone()
            })
            .collect();
        assert!(archive(&many, |_| Ok(vec![])).is_err());
    }

    /// The README's examples: `pvguest.cfg` and `pvguest-b.cfg` boot together, naming the ELF
    /// `cargo xtask build` writes; `pvguest-devices.cfg` is refused for its missing disk
    /// images (its vif passes); `pvguest-net.cfg` passes.
    #[test]
    fn the_example_configs_do_what_the_readme_says() {
        let root = crate::build::workspace_root();
        let example = |name: &str| {
            let path = root.join("hv/examples").join(name);
            ConfigFile {
                path: format!("hv/examples/{name}"),
                absolute: path.display().to_string(),
                text: std::fs::read_to_string(&path).unwrap(),
            }
        };
        let built = root.join("target/x86_64-unknown-none/release/pvguest");
        // The ELF need not be built for this test: the path must be the one a build writes.
        let lexical = |k: &str| {
            let mut out = PathBuf::new();
            for c in std::path::Path::new(k).components() {
                match c {
                    std::path::Component::ParentDir => {
                        out.pop();
                    }
                    other => out.push(other),
                }
            }
            out
        };
        let (r, w) = check(&[example("pvguest.cfg"), example("pvguest-b.cfg")], |k| {
            lexical(k) == built
        });
        assert!(w.is_empty(), "{w:?}");
        let boots = r.unwrap();
        let names: Vec<_> = boots.iter().map(|b| b.name.as_str()).collect();
        assert_eq!(names, ["pvguest", "pvguest-b"]);
        assert_eq!(boots[1].cmdline, "selftest=platform");
        let (r, _) = check(&[example("pvguest-devices.cfg")], |_| true);
        assert!(r.is_ok(), "{r:?}");
        let (r, _) = check(&[example("pvguest-devices.cfg")], |k| lexical(k) == built);
        let problems = r.unwrap_err();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems
                .iter()
                .all(|p| p.contains("disk") && p.contains("not a file"))
        );
        let (r, w) = check(&[example("pvguest-net.cfg")], |k| lexical(k) == built);
        assert!(w.is_empty(), "{w:?}");
        let boots = r.unwrap();
        assert_eq!(boots[0].vifs, 1);
        assert_eq!(hostfwds(&boots, 8080).0.unwrap()[0].guest_ip, DHCP_FIRST_IP);
    }
}
