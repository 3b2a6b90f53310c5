//! `disk` specs in xl's syntax (`docs/misc/xl-disk-configuration.txt`): comma-separated
//! `key=value` settings, flags and positional parameters (target, format, vdev, access, in
//! that order; an empty one takes its default); `target=` takes the rest of the spec, commas
//! and all. Each parameter may be given once. The deprecated `<format>:<target>` prefixes
//! are not read.

use alloc::borrow::ToOwned;
use alloc::format;
use alloc::string::String;

/// The image format (`format=`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Format {
    /// `raw` (the default).
    #[default]
    Raw,
    /// `qcow`.
    Qcow,
    /// `qcow2`.
    Qcow2,
    /// `vhd`.
    Vhd,
    /// `qed`.
    Qed,
}

/// Access (`access=`): `rw`/`w` (the default) or `ro`/`r`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Access {
    /// Read-write.
    #[default]
    ReadWrite,
    /// Read-only.
    ReadOnly,
}

/// One virtual disk, kept for the block backend.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Disk {
    /// The backing file or device, joined to the config's directory if relative (`None`:
    /// an empty CD-ROM drive).
    pub target: Option<String>,
    /// The image format.
    pub format: Format,
    /// The virtual device as the guest sees it (`xvda`, `hdc`, ...; required).
    pub vdev: String,
    /// Read-write or read-only.
    pub access: Access,
    /// `devtype=cdrom` or the `cdrom` flag.
    pub cdrom: bool,
    /// `backend=`: the backend domain.
    pub backend: Option<String>,
    /// `backendtype=` (`phy`, `qdisk`, `standalone`).
    pub backendtype: Option<String>,
    /// `script=`: the hotplug script.
    pub script: Option<String>,
}

fn format_of(s: &str) -> Result<Format, String> {
    Ok(match s {
        "raw" => Format::Raw,
        "qcow" => Format::Qcow,
        "qcow2" => Format::Qcow2,
        "vhd" => Format::Vhd,
        "qed" => Format::Qed,
        other => {
            return Err(format!(
                "format `{other}` is not raw, qcow, qcow2, vhd or qed"
            ));
        }
    })
}

fn access_of(s: &str) -> Result<Access, String> {
    match s {
        "rw" | "w" => Ok(Access::ReadWrite),
        "ro" | "r" => Ok(Access::ReadOnly),
        other => Err(format!("access `{other}` is not rw, w, ro or r")),
    }
}

/// Records positional parameter `i` (target, format, vdev, access).
fn set(
    given: &mut [bool; 4],
    i: usize,
    value: &str,
    d: &mut Disk,
    dir: &str,
) -> Result<(), String> {
    const NAMES: [&str; 4] = ["target", "format", "vdev", "access"];
    if given[i] {
        return Err(format!("`{}` given twice", NAMES[i]));
    }
    given[i] = true;
    match i {
        0 if !value.is_empty() => d.target = Some(crate::resolve(dir, value)),
        1 if !value.is_empty() => d.format = format_of(value)?,
        2 => d.vdev = value.to_owned(),
        3 if !value.is_empty() => d.access = access_of(value)?,
        _ => {}
    }
    Ok(())
}

/// Parses one disk spec; a relative target is joined to `dir`.
pub fn parse(spec: &str, dir: &str) -> Result<Disk, String> {
    let mut d = Disk::default();
    // Which of target, format, vdev, access have been given (positionally or by name).
    let mut given = [false; 4];
    let mut rest = spec;
    while !rest.is_empty() {
        let trimmed = rest.trim_start();
        if let Some(target) = trimmed.strip_prefix("target=") {
            set(&mut given, 0, target.trim(), &mut d, dir)?;
            break;
        }
        let (part, next) = rest.split_once(',').unwrap_or((rest, ""));
        rest = next;
        let part = part.trim();
        if let Some((key, value)) = part.split_once('=') {
            let (key, value) = (key.trim(), value.trim());
            match key {
                "format" => set(&mut given, 1, value, &mut d, dir)?,
                "vdev" => set(&mut given, 2, value, &mut d, dir)?,
                "access" => set(&mut given, 3, value, &mut d, dir)?,
                "devtype" => {
                    if value != "cdrom" {
                        return Err(format!("devtype `{value}` is not cdrom"));
                    }
                    d.cdrom = true;
                }
                "backend" => d.backend = Some(value.to_owned()),
                "backendtype" => {
                    if !["phy", "qdisk", "standalone"].contains(&value) {
                        return Err(format!(
                            "backendtype `{value}` is not phy, qdisk or standalone"
                        ));
                    }
                    d.backendtype = Some(value.to_owned());
                }
                "script" => d.script = Some(value.to_owned()),
                other => return Err(format!("unknown disk setting `{other}`")),
            }
        } else if part == "cdrom" {
            d.cdrom = true;
        } else {
            match given.iter().position(|g| !g) {
                Some(i) => set(&mut given, i, part, &mut d, dir)?,
                None => return Err(format!("`{part}`: too many positional parameters")),
            }
        }
    }
    if d.vdev.is_empty() {
        return Err("no vdev (the device name the guest sees, e.g. xvda)".to_owned());
    }
    if d.target.is_none() && !d.cdrom {
        return Err("no target (only a CD-ROM drive may be empty)".to_owned());
    }
    Ok(d)
}
