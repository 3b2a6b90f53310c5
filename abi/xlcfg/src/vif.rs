//! `vif` specs in xl's syntax (`docs/misc/xl-network-configuration.markdown`): a
//! comma-separated list of `key=value` settings, each optional (`''` is a vif with every
//! default).

use alloc::borrow::ToOwned;
use alloc::format;
use alloc::string::String;

/// One virtual network interface, kept for the network backend.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Vif {
    /// `mac=`: the guest's MAC address (default: xl picks one in 00:16:3e).
    pub mac: Option<[u8; 6]>,
    /// `bridge=`: the bridge the backend's interface joins (xl's default `xenbr0`).
    pub bridge: Option<String>,
    /// `gatewaydev=`.
    pub gatewaydev: Option<String>,
    /// `type=` (`vif` or `ioemu`).
    pub kind: Option<String>,
    /// `model=` (emulated NICs only).
    pub model: Option<String>,
    /// `vifname=`: the backend interface's name.
    pub vifname: Option<String>,
    /// `script=`: the hotplug script.
    pub script: Option<String>,
    /// `ip=`: the guest's address(es), space-separated.
    pub ip: Option<String>,
    /// `backend=`: the backend domain.
    pub backend: Option<String>,
    /// `rate=`: the bandwidth limit, e.g. `10Mb/s`.
    pub rate: Option<String>,
    /// `mtu=`.
    pub mtu: Option<u32>,
    /// `devid=`: the device number.
    pub devid: Option<u32>,
}

/// Parses `aa:bb:cc:dd:ee:ff` (hex octets, `:` or `-` between them).
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = s.split([':', '-']);
    for b in &mut out {
        let p = parts.next()?;
        if p.len() != 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

/// Parses one vif spec.
pub fn parse(spec: &str) -> Result<Vif, String> {
    let mut v = Vif::default();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((key, value)) = part.split_once('=') else {
            return Err(format!("`{part}` is not key=value"));
        };
        let (key, value) = (key.trim(), value.trim());
        let text = || Some(value.to_owned());
        let slot = match key {
            "mac" => {
                v.mac = Some(parse_mac(value).ok_or_else(|| format!("mac={value}: not a MAC"))?);
                continue;
            }
            "mtu" | "devid" => {
                let n = crate::parse_number(value)
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(|| format!("{key}={value}: not a number"))?;
                if key == "mtu" {
                    v.mtu = Some(n);
                } else {
                    v.devid = Some(n);
                }
                continue;
            }
            "bridge" => &mut v.bridge,
            "gatewaydev" => &mut v.gatewaydev,
            "type" => {
                if value != "vif" && value != "ioemu" {
                    return Err(format!("type={value}: not vif or ioemu"));
                }
                &mut v.kind
            }
            "model" => &mut v.model,
            "vifname" => &mut v.vifname,
            "script" => &mut v.script,
            "ip" => &mut v.ip,
            "backend" => &mut v.backend,
            "rate" => &mut v.rate,
            other => return Err(format!("unknown vif setting `{other}`")),
        };
        if slot.is_some() {
            return Err(format!("`{key}` given twice"));
        }
        *slot = text();
    }
    Ok(v)
}
