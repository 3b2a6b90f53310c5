//! Two smoltcp interfaces joined by an in-memory Ethernet link.

use smoltcp::iface::{Config as IfaceConfig, Interface};
use smoltcp::phy::{self, DeviceCapabilities, Medium};
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr};
use std::collections::VecDeque;

/// One end's network card: frames in, frames out.
#[derive(Default)]
pub struct Port {
    pub inbound: VecDeque<Vec<u8>>,
    pub outbound: VecDeque<Vec<u8>>,
    /// At most this many frames wait to leave (a full transmit ring), if set.
    pub tx_limit: Option<usize>,
}

pub struct PortRx(Vec<u8>);
pub struct PortTx<'a>(&'a mut VecDeque<Vec<u8>>);

impl phy::RxToken for PortRx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl phy::TxToken for PortTx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut frame = vec![0u8; len];
        let r = f(&mut frame);
        self.0.push_back(frame);
        r
    }
}

impl phy::Device for Port {
    type RxToken<'a> = PortRx;
    type TxToken<'a> = PortTx<'a>;

    fn receive(&mut self, _: Instant) -> Option<(PortRx, PortTx<'_>)> {
        let frame = self.inbound.pop_front()?;
        Some((PortRx(frame), PortTx(&mut self.outbound)))
    }

    fn transmit(&mut self, _: Instant) -> Option<PortTx<'_>> {
        if self
            .tx_limit
            .is_some_and(|limit| self.outbound.len() >= limit)
        {
            return None;
        }
        Some(PortTx(&mut self.outbound))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = 1514;
        caps
    }
}

/// An interface with address `10.0.0.<host>/24`.
pub fn interface(host: u8, port: &mut Port) -> Interface {
    let config = IfaceConfig::new(HardwareAddress::Ethernet(EthernetAddress([
        2, 0, 0, 0, 0, host,
    ])));
    let mut iface = Interface::new(config, port, Instant::ZERO);
    iface.update_ip_addrs(|addrs| {
        addrs
            .push(IpCidr::new(IpAddress::v4(10, 0, 0, host), 24))
            .unwrap();
    });
    iface
}

/// Moves every frame across the link, both ways.
pub fn carry(a: &mut Port, b: &mut Port) {
    b.inbound.extend(a.outbound.drain(..));
    a.inbound.extend(b.outbound.drain(..));
}
