//! The device as a smoltcp `phy::Device`.
//!
//! Receiving hands smoltcp a frame already copied out of the ring (see [`crate::rx`]);
//! transmitting lets smoltcp build the frame in a scratch buffer, then stages it
//! ([`Netfront::send`]). smoltcp does not say when a poll ends, so the event loop calls
//! [`Netfront::flush`] after each `Interface::poll`: everything staged during the poll then
//! leaves with at most one notification.

use crate::device::Netfront;
use alloc::vec::Vec;
use smoltcp::phy::{self, Checksum, DeviceCapabilities, Medium};
use smoltcp::time::Instant;
use xenbus::grant::GrantAccess;
use xenbus::{EventChannel, PageProvider};

/// A received frame.
#[derive(Debug)]
pub struct NetRxToken(Vec<u8>);

impl phy::RxToken for NetRxToken {
    fn consume<R, F>(self, f: F) -> R
    where
        F: FnOnce(&[u8]) -> R,
    {
        f(&self.0)
    }
}

/// Room to send one frame.
#[derive(Debug)]
pub struct NetTxToken<'a, P: PageProvider, G: GrantAccess, E: EventChannel> {
    device: &'a mut Netfront<P, G, E>,
}

impl<P: PageProvider, G: GrantAccess, E: EventChannel> phy::TxToken for NetTxToken<'_, P, G, E> {
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        // smoltcp writes the frame into the device's scratch buffer (reused: no allocation
        // per frame once it has grown to the largest frame), which is then copied into a tx
        // buffer page.
        let mut frame = self.device.take_scratch();
        frame.clear();
        frame.resize(len, 0);
        let result = f(&mut frame);
        // A refused frame (over the MTU, or no buffer after all) is counted in the stats;
        // smoltcp has no way to hear of it, as with a full hardware queue.
        let _ = self.device.send(&frame);
        self.device.put_scratch(frame);
        result
    }
}

impl<P: PageProvider, G: GrantAccess, E: EventChannel> phy::Device for Netfront<P, G, E> {
    type RxToken<'a>
        = NetRxToken
    where
        Self: 'a;
    type TxToken<'a>
        = NetTxToken<'a, P, G, E>
    where
        Self: 'a;

    fn receive(&mut self, _: Instant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        let frame = self.receive()?;
        Some((NetRxToken(frame), NetTxToken { device: self }))
    }

    fn transmit(&mut self, _: Instant) -> Option<Self::TxToken<'_>> {
        if self.can_send() {
            Some(NetTxToken { device: self })
        } else {
            None
        }
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = self.config().max_frame();
        if self.offloads().csum {
            // TCP checksums per frame, by netfront and netback ([`crate::checksum`]).
            caps.checksum.tcp = Checksum::None;
        }
        caps
    }
}
