//! Frames handed to the interface one at a time, each looked at first: whether it opens a
//! TCP connection (a SYN without ACK) to a port, so that a slot can be made to listen before
//! smoltcp would refuse it.

use alloc::vec::Vec;
use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::time::Instant;
use smoltcp::wire::{
    EthernetFrame, EthernetProtocol, IpAddress, IpEndpoint, IpProtocol, Ipv4Packet, TcpPacket,
};

/// Copies the next received frame of `device` into `frame`; false if none is waiting.
pub fn take<D: Device + ?Sized>(device: &mut D, now: Instant, frame: &mut Vec<u8>) -> bool {
    let Some((rx, _)) = device.receive(now) else {
        return false;
    };
    phy::RxToken::consume(rx, |bytes| {
        frame.clear();
        frame.extend_from_slice(bytes);
    });
    true
}

/// The peer of a connection `frame` opens to `port` (a TCP SYN without ACK over IPv4), if it
/// is one; `medium` says whether frames start with an Ethernet header.
pub fn syn_to(frame: &[u8], medium: Medium, port: u16) -> Option<IpEndpoint> {
    let ip = match medium {
        Medium::Ethernet => {
            let eth = EthernetFrame::new_checked(frame).ok()?;
            if eth.ethertype() != EthernetProtocol::Ipv4 {
                return None;
            }
            eth.payload()
        }
        #[allow(unreachable_patterns, reason = "other media exist with other features")]
        _ => frame,
    };
    let ip = Ipv4Packet::new_checked(ip).ok()?;
    if ip.next_header() != IpProtocol::Tcp {
        return None;
    }
    let tcp = TcpPacket::new_checked(ip.payload()).ok()?;
    (tcp.syn() && !tcp.ack() && !tcp.rst() && tcp.dst_port() == port)
        .then(|| IpEndpoint::new(IpAddress::Ipv4(ip.src_addr()), tcp.src_port()))
}

/// A device that gives the interface one frame already taken, and sends through `inner`.
pub struct OneFrame<'a, D: Device + ?Sized> {
    /// The frame, until the interface takes it.
    pub frame: Option<&'a [u8]>,
    /// The real device.
    pub inner: &'a mut D,
}

/// The receive token of [`OneFrame`].
pub struct FrameRx<'a>(&'a [u8]);

impl phy::RxToken for FrameRx<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(self.0)
    }
}

impl<D: Device + ?Sized> Device for OneFrame<'_, D> {
    type RxToken<'b>
        = FrameRx<'b>
    where
        Self: 'b;
    type TxToken<'b>
        = D::TxToken<'b>
    where
        Self: 'b;

    fn receive(&mut self, now: Instant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        let tx = self.inner.transmit(now)?;
        let frame = self.frame.take()?;
        Some((FrameRx(frame), tx))
    }

    fn transmit(&mut self, now: Instant) -> Option<Self::TxToken<'_>> {
        self.inner.transmit(now)
    }

    fn capabilities(&self) -> DeviceCapabilities {
        self.inner.capabilities()
    }
}
