//! What the toolstack tells a vif (`mac`, `mtu` in the frontend directory) and what the device
//! makes of it: the MTU in use and the frame and buffer sizes that follow.
//!
//! The `mtu` key is read, never assumed; netif.h makes 1500 the value when the key is absent.
//! Without `feature-sg` Linux's netback caps the vif at 1500 (`xenvif_change_mtu`) and Linux's
//! netfront does the same (`xennet_change_mtu`), so the MTU in use is the smaller of the key
//! and 1500: every frame then fits one tx slot inside one page. With `feature-sg` on both
//! sides ([`VifConfig::allow_sg`]) the key is honoured up to netif.h's
//! `XEN_NETIF_MAX_TX_SIZE` (a frame then takes several slots, at most netback's 18).

use crate::error::NetError;
use core::fmt;

/// Bytes of a page (one ring slot never crosses one).
pub const PAGE: usize = 4096;
/// An Ethernet header (no VLAN tag: a tagged frame counts against the MTU).
pub const ETHERNET_HEADER: usize = 14;
/// The MTU without `feature-sg`, and the default when `mtu` is absent.
pub const DEFAULT_MTU: u16 = 1500;
/// The smallest MTU an IPv4 host must accept (RFC 791).
pub const MIN_MTU: u16 = 68;

/// An Ethernet address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MacAddress(pub [u8; 6]);

impl MacAddress {
    /// Parses the xenstore form `aa:bb:cc:dd:ee:ff` (hex digits of either case); a multicast
    /// address is refused (it cannot be a station's).
    pub fn parse(text: &str) -> Option<Self> {
        let mut out = [0u8; 6];
        let mut parts = text.split(':');
        for byte in &mut out {
            let part = parts.next()?;
            if part.len() != 2 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            *byte = u8::from_str_radix(part, 16).ok()?;
        }
        if parts.next().is_some() || out[0] & 1 != 0 {
            return None;
        }
        Some(Self(out))
    }
}

impl fmt::Display for MacAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

/// The vif as configured: its MAC and MTU, and the sizes that follow from them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VifConfig {
    /// The MAC the toolstack gave the vif.
    pub mac: MacAddress,
    /// The `mtu` key as written (`None`: absent).
    pub mtu_key: Option<u16>,
    /// The MTU in use: the key (or 1500), capped at 1500 without `feature-sg`.
    pub mtu: u16,
}

impl VifConfig {
    /// Builds the configuration from the frontend directory's `mac` and `mtu` values.
    pub fn parse(mac: Option<&str>, mtu: Option<&str>) -> Result<Self, NetError> {
        let mac = mac
            .and_then(MacAddress::parse)
            .ok_or(NetError::BadValue("mac"))?;
        let mtu_key = match mtu {
            None => None,
            Some(text) => Some(
                text.trim_end_matches('\n')
                    .parse::<u16>()
                    .ok()
                    .filter(|&m| m >= MIN_MTU)
                    .ok_or(NetError::BadValue("mtu"))?,
            ),
        };
        let mtu = mtu_key.unwrap_or(DEFAULT_MTU).min(DEFAULT_MTU);
        Ok(Self { mac, mtu_key, mtu })
    }

    /// Both sides offer `feature-sg`: the `mtu` key (or 1500) is the MTU, up to
    /// `XEN_NETIF_MAX_TX_SIZE` less the Ethernet header, as Linux's netfront allows.
    pub fn allow_sg(&mut self) {
        let most = abi::io::netif::XEN_NETIF_MAX_TX_SIZE - 14;
        self.mtu = self.mtu_key.unwrap_or(DEFAULT_MTU).min(most);
    }

    /// The largest Ethernet frame (header included) sent or accepted.
    pub fn max_frame(&self) -> usize {
        usize::from(self.mtu) + ETHERNET_HEADER
    }

    /// Bytes of one tx buffer: the page split into equal power-of-two parts as small as still
    /// hold a frame, so a frame never crosses a page (a whole page when the frame is larger:
    /// it then takes several buffers, one slot each).
    pub fn tx_buffer_size(&self) -> usize {
        let mut size = PAGE;
        while size / 2 >= self.max_frame() {
            size /= 2;
        }
        size
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_parses_only_the_xenstore_form() {
        assert_eq!(
            MacAddress::parse("00:16:3e:0A:bc:ff"),
            Some(MacAddress([0, 0x16, 0x3e, 0x0a, 0xbc, 0xff]))
        );
        for bad in [
            "",
            "00:16:3e:0a:bc",
            "00:16:3e:0a:bc:ff:00",
            "0:16:3e:0a:bc:ff",
            "00:16:3e:0a:bc:fg",
            "01:16:3e:0a:bc:ff",
            "00-16-3e-0a-bc-ff",
            "+0:16:3e:0a:bc:ff",
        ] {
            assert_eq!(MacAddress::parse(bad), None, "{bad}");
        }
        assert_eq!(
            MacAddress([0, 0x16, 0x3e, 0x0a, 0xbc, 0xff]).to_string(),
            "00:16:3e:0a:bc:ff"
        );
    }

    #[test]
    fn mtu_is_read_and_capped_without_sg() {
        let mac = Some("00:16:3e:00:00:01");
        let c = VifConfig::parse(mac, Some("1400")).unwrap();
        assert_eq!((c.mtu_key, c.mtu, c.max_frame()), (Some(1400), 1400, 1414));
        assert_eq!(c.tx_buffer_size(), 2048);
        let c = VifConfig::parse(mac, Some("9000")).unwrap();
        assert_eq!((c.mtu_key, c.mtu), (Some(9000), 1500));
        let c = VifConfig::parse(mac, None).unwrap();
        assert_eq!((c.mtu_key, c.mtu), (None, 1500));
        let c = VifConfig::parse(mac, Some("576")).unwrap();
        assert_eq!((c.mtu, c.tx_buffer_size()), (576, 1024));
        let mut c = VifConfig::parse(mac, Some("9000")).unwrap();
        c.allow_sg();
        assert_eq!(
            (c.mtu, c.max_frame(), c.tx_buffer_size()),
            (9000, 9014, 4096)
        );
        let mut c = VifConfig::parse(mac, Some("65535")).unwrap();
        c.allow_sg();
        assert_eq!(c.max_frame(), 65535);
        for bad in ["", "67", "-1", "70000", "15x0"] {
            assert_eq!(
                VifConfig::parse(mac, Some(bad)),
                Err(NetError::BadValue("mtu")),
                "{bad}"
            );
        }
        assert_eq!(
            VifConfig::parse(None, Some("1500")),
            Err(NetError::BadValue("mac"))
        );
    }
}
