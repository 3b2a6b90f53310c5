//! The guest's address: from the command line (`ip=10.0.0.2/24 gw=10.0.0.1`) or from DHCP
//! (`ip=dhcp`, with smoltcp's DHCPv4 client), applied to the smoltcp interface.

use core::fmt;
use smoltcp::iface::{Interface, SocketHandle, SocketSet};
use smoltcp::socket::dhcpv4;
use smoltcp::wire::{IpCidr, Ipv4Address, Ipv4Cidr};

/// How the guest gets its address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddressMode {
    /// A fixed address, and a default gateway if given.
    Static {
        /// Address and prefix length.
        address: Ipv4Cidr,
        /// The default gateway.
        gateway: Option<Ipv4Address>,
    },
    /// DHCPv4.
    Dhcp,
}

/// Why the command line's address words are refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddressError {
    /// No `ip=` word.
    Missing,
    /// `ip=` is neither `dhcp` nor `a.b.c.d/len` (len 1 to 32, not a network or broadcast
    /// address of its prefix when len < 31).
    BadAddress,
    /// `gw=` is not an address, is outside the prefix, or comes with `ip=dhcp`.
    BadGateway,
    /// A word appears twice.
    Repeated,
}

impl fmt::Display for AddressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Missing => "no ip= on the command line",
            Self::BadAddress => "ip= must be dhcp or a.b.c.d/len",
            Self::BadGateway => "gw= must be an address inside ip='s prefix, without ip=dhcp",
            Self::Repeated => "ip= or gw= given twice",
        })
    }
}

fn ipv4(text: &str) -> Option<Ipv4Address> {
    let mut octets = [0u8; 4];
    let mut parts = text.split('.');
    for o in &mut octets {
        let part = parts.next()?;
        if part.is_empty() || part.len() > 3 || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        *o = part.parse().ok()?;
    }
    if parts.next().is_some() {
        return None;
    }
    Some(Ipv4Address::from_octets(octets))
}

impl AddressMode {
    /// Reads `ip=` and `gw=` among the command line's space-separated words (others are
    /// ignored).
    pub fn from_cmdline(cmdline: &str) -> Result<Self, AddressError> {
        let (mut ip, mut gw) = (None, None);
        for word in cmdline.split_ascii_whitespace() {
            if let Some(v) = word.strip_prefix("ip=") {
                if ip.replace(v).is_some() {
                    return Err(AddressError::Repeated);
                }
            } else if let Some(v) = word.strip_prefix("gw=")
                && gw.replace(v).is_some()
            {
                return Err(AddressError::Repeated);
            }
        }
        let ip = ip.ok_or(AddressError::Missing)?;
        if ip == "dhcp" {
            return match gw {
                None => Ok(Self::Dhcp),
                Some(_) => Err(AddressError::BadGateway),
            };
        }
        let (addr, len) = ip.split_once('/').ok_or(AddressError::BadAddress)?;
        let addr = ipv4(addr).ok_or(AddressError::BadAddress)?;
        let len: u8 = len
            .parse()
            .ok()
            .filter(|l| (1..=32).contains(l) && len.bytes().all(|b| b.is_ascii_digit()))
            .ok_or(AddressError::BadAddress)?;
        let address = Ipv4Cidr::new(addr, len);
        if len < 31 && (Some(addr) == address.broadcast() || addr == address.network().address()) {
            return Err(AddressError::BadAddress);
        }
        let gateway = match gw {
            None => None,
            Some(g) => {
                let g = ipv4(g).ok_or(AddressError::BadGateway)?;
                if !address.contains_addr(&g) || g == addr {
                    return Err(AddressError::BadGateway);
                }
                Some(g)
            }
        };
        Ok(Self::Static { address, gateway })
    }
}

/// A change of address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddressEvent {
    /// Configured (again): the address and gateway now in use.
    Configured {
        /// Address and prefix.
        address: Ipv4Cidr,
        /// Default gateway.
        gateway: Option<Ipv4Address>,
    },
    /// The lease was lost: no address until the next one.
    Lost,
}

/// The address in use and, with DHCP, the client keeping it.
#[derive(Debug)]
pub struct Addressing {
    dhcp: Option<SocketHandle>,
    current: Option<(Ipv4Cidr, Option<Ipv4Address>)>,
}

impl Addressing {
    /// Applies a static address now, or adds a DHCP client to `sockets`.
    pub fn new(mode: AddressMode, iface: &mut Interface, sockets: &mut SocketSet<'_>) -> Self {
        match mode {
            AddressMode::Static { address, gateway } => {
                apply(iface, Some((address, gateway)));
                Self {
                    dhcp: None,
                    current: Some((address, gateway)),
                }
            }
            AddressMode::Dhcp => Self {
                dhcp: Some(sockets.add(dhcpv4::Socket::new())),
                current: None,
            },
        }
    }

    /// The address and gateway in use.
    pub fn current(&self) -> Option<(Ipv4Cidr, Option<Ipv4Address>)> {
        self.current
    }

    /// Takes the DHCP client's news (after the interface has polled) and applies it.
    pub fn poll(
        &mut self,
        iface: &mut Interface,
        sockets: &mut SocketSet<'_>,
    ) -> Option<AddressEvent> {
        let handle = self.dhcp?;
        let event = match sockets.get_mut::<dhcpv4::Socket>(handle).poll()? {
            dhcpv4::Event::Configured(config) => {
                self.current = Some((config.address, config.router));
                AddressEvent::Configured {
                    address: config.address,
                    gateway: config.router,
                }
            }
            // smoltcp reports this once at start too: only a lease held is lost.
            dhcpv4::Event::Deconfigured if self.current.is_none() => return None,
            dhcpv4::Event::Deconfigured => {
                self.current = None;
                AddressEvent::Lost
            }
        };
        apply(iface, self.current);
        Some(event)
    }
}

fn apply(iface: &mut Interface, config: Option<(Ipv4Cidr, Option<Ipv4Address>)>) {
    iface.update_ip_addrs(|addrs| {
        addrs.clear();
        if let Some((address, _)) = config {
            // One address always fits.
            let _ = addrs.push(IpCidr::Ipv4(address));
        }
    });
    let routes = iface.routes_mut();
    match config.and_then(|(_, gateway)| gateway) {
        // The table holds the default route at least.
        Some(gateway) => {
            let _ = routes.add_default_ipv4_route(gateway);
        }
        None => {
            routes.remove_default_ipv4_route();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_words() {
        let a = Ipv4Address::new(10, 0, 0, 2);
        let g = Ipv4Address::new(10, 0, 0, 1);
        assert_eq!(
            AddressMode::from_cmdline("selftest=net ip=10.0.0.2/24 gw=10.0.0.1 x"),
            Ok(AddressMode::Static {
                address: Ipv4Cidr::new(a, 24),
                gateway: Some(g)
            })
        );
        assert_eq!(
            AddressMode::from_cmdline("ip=10.0.0.2/24"),
            Ok(AddressMode::Static {
                address: Ipv4Cidr::new(a, 24),
                gateway: None
            })
        );
        assert_eq!(AddressMode::from_cmdline("ip=dhcp"), Ok(AddressMode::Dhcp));
        for (line, err) in [
            ("", AddressError::Missing),
            ("gw=10.0.0.1", AddressError::Missing),
            ("ip=dhcp gw=10.0.0.1", AddressError::BadGateway),
            ("ip=10.0.0.2", AddressError::BadAddress),
            ("ip=10.0.0.2/33", AddressError::BadAddress),
            ("ip=10.0.0.2/0", AddressError::BadAddress),
            ("ip=10.0.0.2/+8", AddressError::BadAddress),
            ("ip=10.0.0.256/24", AddressError::BadAddress),
            ("ip=10.0.0/24", AddressError::BadAddress),
            ("ip=10.0.0.0/24", AddressError::BadAddress),
            ("ip=10.0.0.255/24", AddressError::BadAddress),
            ("ip=10.0.0.2/24 gw=10.0.1.1", AddressError::BadGateway),
            ("ip=10.0.0.2/24 gw=10.0.0.2", AddressError::BadGateway),
            ("ip=10.0.0.2/24 gw=x", AddressError::BadGateway),
            ("ip=dhcp ip=dhcp", AddressError::Repeated),
        ] {
            assert_eq!(AddressMode::from_cmdline(line), Err(err), "{line}");
        }
    }
}
