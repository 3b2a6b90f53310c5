//! QEMU's virtio-net NIC (`-device virtio-net-pci` on a `-netdev user`), the switch's
//! uplink, driven by `virtio-drivers`' `VirtIONetRaw`: found by the same PCI scan and BAR checks
//! as the disks (`virtio::find`, `virtio::transport`), its queues from the
//! same DMA pool (four pages: two queues of 64 entries, split into a driver and a device
//! area each; the pool's 64 frames hold them beside the disks' two pages each).
//!
//! Polled, no interrupt: the machine calls [`Nic::receive`] on every turn of its loop and
//! arms its timer at most 1 ms ahead while any vif exists, so a frame waits at most about a
//! millisecond. A send does not wait for the device: the frame goes on the transmit queue
//! (up to `QUEUE`, 64, in flight) and its buffer is taken back once the device has used it, at
//! a later send or receive. QEMU's virtio-net suppresses notifications (event index) while it
//! has not yet drained the queue, so a burst of frames (a GSO packet cut into segments) costs
//! about one notification, not one notification and one wait for QEMU's main loop per
//! frame; only a full queue is waited for. The buffers (64 receive buffers of 2 KiB, enough
//! for a 1514-byte frame and the virtio-net header, and the frames in flight) are on hv's
//! heap, which is identity mapped like all of hv's memory.

use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;
use core::hint::spin_loop;

use pvh::frames::FrameAllocator;
use virtio_drivers::device::net::VirtIONetRaw;
use virtio_drivers::transport::DeviceType;
use virtio_drivers::transport::pci::PciTransport;
use virtio_drivers::transport::pci::bus::{DeviceFunction, PciRoot};

use crate::hvlog;

use super::pci::PortCam;
use super::virtio::{KernelHal, find, init_dma, transport};

/// Entries of each queue (receive buffers posted, frames in flight at most).
const QUEUE: usize = 64;
/// Bytes of each receive buffer.
const RX_BUFFER: usize = 2048;
/// Frames taken from the device per [`Nic::receive`] (the rest wait for the next turn).
const RX_BATCH: usize = 32;
/// The largest frame hv sends: an Ethernet frame of a 1500-byte MTU, without FCS.
const MAX_FRAME: usize = 1514;
/// The largest virtio-net header (`virtio_net_hdr_v1`, 12 bytes).
const MAX_HEADER: usize = 12;
/// Polls of the used ring a send waits, the queue full, before it gives its frame up.
const FULL_SPINS: u64 = 100_000_000;

/// What the NIC did, counted.
#[derive(Clone, Copy, Debug, Default)]
pub struct NicStats {
    /// Frames received from QEMU.
    pub rx_frames: u64,
    /// Their bytes.
    pub rx_bytes: u64,
    /// Frames sent.
    pub tx_frames: u64,
    /// Their bytes.
    pub tx_bytes: u64,
    /// Frames the driver refused to send (too long, a full queue that did not drain, or a
    /// device error).
    pub tx_errors: u64,
    /// Sends that found the transmit queue full and waited for the device.
    pub tx_full_waits: u64,
    /// Receive errors (a buffer that could not be taken or posted again).
    pub rx_errors: u64,
}

/// The virtio-net device.
pub struct Nic {
    /// Where it sits on the bus.
    pub location: DeviceFunction,
    net: VirtIONetRaw<KernelHal, PciTransport, QUEUE>,
    /// The posted receive buffers, by token (descriptor index).
    rx: Vec<Option<Box<[u8]>>>,
    /// The frames the device has not used yet (header and frame), by token.
    tx: Vec<Option<Vec<u8>>>,
    /// The device's MAC (QEMU's default 52:54:00:12:34:56); the switch does not use it.
    pub mac: [u8; 6],
    /// Counters.
    pub stats: NicStats,
}

impl Nic {
    /// Queues one frame for the device; false if it was refused.
    pub fn send(&mut self, frame: &[u8]) -> bool {
        if frame.len() > MAX_FRAME || frame.is_empty() {
            self.stats.tx_errors += 1;
            return false;
        }
        self.reap_tx();
        if !self.net.can_send() {
            self.stats.tx_full_waits += 1;
            let mut spins = 0u64;
            while self.net.poll_transmit().is_none() {
                spins += 1;
                if spins >= FULL_SPINS {
                    self.stats.tx_errors += 1;
                    return false;
                }
                spin_loop();
            }
            self.reap_tx();
        }
        let mut buf = vec![0u8; MAX_HEADER + frame.len()];
        let Ok(header) = self.net.fill_buffer_header(&mut buf) else {
            self.stats.tx_errors += 1;
            return false;
        };
        buf.truncate(header + frame.len());
        buf[header..].copy_from_slice(frame);
        // SAFETY: `buf`'s heap storage is kept in `self.tx` under the token, neither moved
        // (moving a `Vec` leaves its storage where it is) nor touched, until `reap_tx` hands
        // it back to `transmit_complete` once the device has used it; a buffer whose token
        // has no free slot is leaked, never freed under the device.
        match unsafe { self.net.transmit_begin(&buf) } {
            Ok(token) => {
                match self.tx.get_mut(usize::from(token)) {
                    Some(slot @ None) => *slot = Some(buf),
                    _ => {
                        self.stats.tx_errors += 1;
                        core::mem::forget(buf);
                    }
                }
                self.stats.tx_frames += 1;
                self.stats.tx_bytes += frame.len() as u64;
                true
            }
            Err(_) => {
                self.stats.tx_errors += 1;
                false
            }
        }
    }

    /// Takes back the buffers of the frames the device has used.
    fn reap_tx(&mut self) {
        while let Some(token) = self.net.poll_transmit() {
            let Some(buf) = self.tx.get_mut(usize::from(token)).and_then(Option::take) else {
                self.stats.tx_errors += 1;
                return;
            };
            // SAFETY: `buf` is the buffer `transmit_begin` was given under `token`.
            if unsafe { self.net.transmit_complete(token, &buf) }.is_err() {
                self.stats.tx_errors += 1;
                if let Some(slot) = self.tx.get_mut(usize::from(token)) {
                    *slot = Some(buf);
                }
                return;
            }
        }
    }

    /// Waits (bounded) until the device has used every frame in flight, and takes their
    /// buffers back; false if some are still in flight.
    pub fn drain_tx(&mut self) -> bool {
        let mut spins = 0u64;
        loop {
            self.reap_tx();
            if self.tx.iter().all(Option::is_none) {
                return true;
            }
            spins += 1;
            if spins >= FULL_SPINS {
                return false;
            }
            spin_loop();
        }
    }

    /// Whether a received frame is waiting.
    pub fn pending(&self) -> bool {
        self.net.poll_receive().is_some()
    }

    /// Takes up to a batch of received frames, handing each to `f`, and posts their
    /// buffers again; the number taken.
    pub fn receive(&mut self, f: &mut dyn FnMut(&[u8])) -> usize {
        self.reap_tx();
        let mut n = 0;
        while n < RX_BATCH {
            let Some(token) = self.net.poll_receive() else {
                break;
            };
            let Some(mut buf) = self.rx.get_mut(usize::from(token)).and_then(Option::take) else {
                self.stats.rx_errors += 1;
                break;
            };
            // SAFETY: `buf` is the buffer `receive_begin` was given under `token`.
            let Ok((header, len)) = (unsafe { self.net.receive_complete(token, &mut buf) }) else {
                self.stats.rx_errors += 1;
                if let Some(slot) = self.rx.get_mut(usize::from(token)) {
                    *slot = Some(buf);
                }
                break;
            };
            n += 1;
            self.stats.rx_frames += 1;
            self.stats.rx_bytes += len as u64;
            if let Some(frame) = buf.get(header..header.saturating_add(len)) {
                f(frame);
            } else {
                self.stats.rx_errors += 1;
            }
            if !self.post_rx(buf) {
                self.stats.rx_errors += 1;
            }
        }
        n
    }

    /// Posts receive buffer `buf`; false if the device refused it (it is dropped).
    fn post_rx(&mut self, mut buf: Box<[u8]>) -> bool {
        // SAFETY: `buf`'s storage is kept in `self.rx` under the token, neither moved nor
        // touched, until `receive` hands it back to `receive_complete`; a buffer whose token
        // has no free slot is leaked, never freed under the device.
        match unsafe { self.net.receive_begin(&mut buf) } {
            Ok(token) => match self.rx.get_mut(usize::from(token)) {
                Some(slot @ None) => {
                    *slot = Some(buf);
                    true
                }
                _ => {
                    core::mem::forget(buf);
                    false
                }
            },
            Err(_) => false,
        }
    }
}

/// Finds the first virtio-net device on bus 0 and brings it up (the DMA pool taken from
/// `frames` if the disks did not take it); `None` if there is none or it is refused (logged).
pub fn scan(frames: &mut FrameAllocator, ram: &[(u64, u64)]) -> Option<Nic> {
    let mut root = PciRoot::new(PortCam);
    let found: Vec<DeviceFunction> = find(&mut root, DeviceType::Network);
    let df = *found.first()?;
    if found.len() > 1 {
        hvlog!("{} virtio-net devices: only {df} is used", found.len());
    }
    if let Err(e) = init_dma(frames) {
        hvlog!("no memory for the virtio DMA pool ({e:?}): no NIC");
        return None;
    }
    let t = match transport(&mut root, df, ram) {
        Ok(t) => t,
        Err(why) => {
            hvlog!("pci {df}: virtio-net refused: {why}");
            return None;
        }
    };
    match VirtIONetRaw::<KernelHal, _, QUEUE>::new(t) {
        Ok(net) => {
            let mac = net.mac_address();
            let mut nic = Nic {
                location: df,
                net,
                rx: (0..QUEUE).map(|_| None).collect(),
                tx: (0..QUEUE).map(|_| None).collect(),
                mac,
                stats: NicStats::default(),
            };
            let posted = (0..QUEUE)
                .filter(|_| nic.post_rx(vec![0u8; RX_BUFFER].into_boxed_slice()))
                .count();
            hvlog!(
                "pci {df}: virtio-net, MAC {}, {posted} receive buffers, {QUEUE} frames in \
                 flight at most, polled",
                crate::dom0::toolstack::mac_text(&mac)
            );
            Some(nic)
        }
        Err(e) => {
            hvlog!("pci {df}: virtio-net refused: {e}");
            None
        }
    }
}
