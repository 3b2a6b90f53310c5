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
/// The frame is given even when `inner` has no room to send (as a real device does): an
/// answer smoltcp writes then is dropped, as a full transmit queue drops it.
pub struct OneFrame<'a, D: Device + ?Sized> {
    /// The frame, until the interface takes it.
    pub frame: Option<&'a [u8]>,
    /// The real device.
    pub inner: &'a mut D,
    /// Where an answer is written when `inner` has no room (reused).
    pub scratch: &'a mut Vec<u8>,
}

/// The receive token of [`OneFrame`].
pub struct FrameRx<'a>(&'a [u8]);

impl phy::RxToken for FrameRx<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(self.0)
    }
}

/// The transmit token [`OneFrame`] gives with a frame: the device's, or a place to drop the
/// answer.
pub enum FrameTx<'a, T> {
    /// The device had room.
    Device(T),
    /// It had none: the answer is written here and dropped.
    Dropped(&'a mut Vec<u8>),
}

impl<T: phy::TxToken> phy::TxToken for FrameTx<'_, T> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        match self {
            Self::Device(token) => token.consume(len, f),
            Self::Dropped(buf) => {
                buf.clear();
                buf.resize(len, 0);
                f(buf)
            }
        }
    }
}

impl<D: Device + ?Sized> Device for OneFrame<'_, D> {
    type RxToken<'b>
        = FrameRx<'b>
    where
        Self: 'b;
    type TxToken<'b>
        = FrameTx<'b, D::TxToken<'b>>
    where
        Self: 'b;

    fn receive(&mut self, now: Instant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        let Self {
            frame,
            inner,
            scratch,
        } = self;
        let frame = frame.take()?;
        let tx = match inner.transmit(now) {
            Some(token) => FrameTx::Device(token),
            None => FrameTx::Dropped(scratch),
        };
        Some((FrameRx(frame), tx))
    }

    fn transmit(&mut self, now: Instant) -> Option<Self::TxToken<'_>> {
        self.inner.transmit(now).map(FrameTx::Device)
    }

    fn capabilities(&self) -> DeviceCapabilities {
        self.inner.capabilities()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use phy::{RxToken as _, TxToken as _};

    /// A device whose transmit queue is full.
    struct Full(Vec<Vec<u8>>);

    /// Its transmit token (never given).
    struct NoRoom;

    impl Device for Full {
        type RxToken<'a> = FrameRx<'a>;
        type TxToken<'a> = NoRoom;

        fn receive(&mut self, _: Instant) -> Option<(FrameRx<'_>, NoRoom)> {
            None
        }

        fn transmit(&mut self, _: Instant) -> Option<NoRoom> {
            None
        }

        fn capabilities(&self) -> DeviceCapabilities {
            DeviceCapabilities::default()
        }
    }

    impl phy::TxToken for NoRoom {
        fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
            f(&mut vec![0; len])
        }
    }

    #[test]
    fn a_frame_is_given_even_when_the_device_cannot_send() {
        let mut full = Full(Vec::new());
        let mut scratch = Vec::new();
        let frame = [1u8, 2, 3];
        let mut one = OneFrame {
            frame: Some(&frame),
            inner: &mut full,
            scratch: &mut scratch,
        };
        let (rx, tx) = one.receive(Instant::ZERO).expect("the frame");
        assert_eq!(rx.consume(<[u8]>::to_vec), [1, 2, 3]);
        assert_eq!(tx.consume(5, |buf| buf.len()), 5);
        assert!(one.receive(Instant::ZERO).is_none(), "given once");
        assert!(one.transmit(Instant::ZERO).is_none());
        assert!(full.0.is_empty());
    }
}
