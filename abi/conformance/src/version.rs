//! Naming the headers checked against: the Xen release of Debian's `libxen-dev` package, or the
//! headers' own interface version when `dpkg-query` cannot tell.

use std::process::Command;

/// `4.17.7+13-g2445b30a44-0+deb12u1` -> `4.17` (the Xen release a Debian version belongs to).
pub fn xen_release(debian_version: &str) -> Option<String> {
    let upstream = debian_version
        .split_once(':')
        .map_or(debian_version, |(_, rest)| rest);
    let mut parts = upstream.split(|c: char| !c.is_ascii_digit());
    let major = parts.next().filter(|p| !p.is_empty())?;
    let minor = parts.next().filter(|p| !p.is_empty())?;
    Some(format!("{major}.{minor}"))
}

/// The installed `libxen-dev` version as `dpkg-query` reports it, if it can.
fn dpkg_version() -> Option<String> {
    let output = Command::new("dpkg-query")
        .args(["-W", "-f=${Version}", "libxen-dev"])
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    Some(String::from_utf8_lossy(&output.stdout).trim().to_owned()).filter(|v| !v.is_empty())
}

/// How the summary names the headers: `Xen 4.17` from the package, else
/// `Xen (interface 0x00040e00)` from `__XEN_LATEST_INTERFACE_VERSION__`.
pub fn headers_label(latest_interface_version: u64) -> String {
    match dpkg_version().as_deref().and_then(xen_release) {
        Some(release) => format!("Xen {release}"),
        None => format!("Xen (interface {latest_interface_version:#010x})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debian_versions_give_the_xen_release() {
        assert_eq!(
            xen_release("4.17.7+13-g2445b30a44-0+deb12u1").as_deref(),
            Some("4.17")
        );
        assert_eq!(xen_release("1:4.20.0-2").as_deref(), Some("4.20"));
        assert_eq!(xen_release("garbage"), None);
        assert_eq!(xen_release(""), None);
    }
}
