//! QEMU's virtio-net NIC (`-device virtio-net-pci` on a `-netdev user`), the switch's
//! uplink, driven by `virtio-drivers`' `VirtIONet`: found by the same PCI scan and BAR checks
//! as the disks (`virtio::find`, `virtio::transport`), its queues from the
//! same DMA pool (four pages: two queues of 64 entries, split into a driver and a device
//! area each; the pool's 64 frames hold them beside the disks' two pages each).
//!
//! Polled, no interrupt: the machine calls [`Nic::receive`] on every turn of its loop and
//! arms its timer at most 1 ms ahead while any vif exists, so a frame waits at most about a
//! millisecond. A send waits for the device to take the frame (QEMU's user network copies it
//! at once), as the disks' requests do. The receive buffers (64 of 2 KiB, enough for a
//! 1514-byte frame and the virtio-net header) are on hv's heap, which is identity mapped
//! like all of hv's memory.

use alloc::vec::Vec;

use pvh::frames::FrameAllocator;
use virtio_drivers::device::net::VirtIONet;
use virtio_drivers::transport::DeviceType;
use virtio_drivers::transport::pci::PciTransport;
use virtio_drivers::transport::pci::bus::{DeviceFunction, PciRoot};

use crate::hvlog;

use super::pci::PortCam;
use super::virtio::{KernelHal, find, init_dma, transport};

/// Entries of each queue (and receive buffers posted).
const QUEUE: usize = 64;
/// Bytes of each receive buffer.
const RX_BUFFER: usize = 2048;
/// Frames taken from the device per [`Nic::receive`] (the rest wait for the next turn).
const RX_BATCH: usize = 32;
/// The largest frame hv sends: an Ethernet frame of a 1500-byte MTU, without FCS.
const MAX_FRAME: usize = 1514;

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
    /// Frames the driver refused to send (too long, or a device error).
    pub tx_errors: u64,
    /// Receive errors (a buffer that could not be taken or posted again).
    pub rx_errors: u64,
}

/// The virtio-net device.
pub struct Nic {
    /// Where it sits on the bus.
    pub location: DeviceFunction,
    net: VirtIONet<KernelHal, PciTransport, QUEUE>,
    /// The device's MAC (QEMU's default 52:54:00:12:34:56); the switch does not use it.
    pub mac: [u8; 6],
    /// Counters.
    pub stats: NicStats,
}

impl Nic {
    /// Sends one frame; false if it was refused.
    pub fn send(&mut self, frame: &[u8]) -> bool {
        if frame.len() > MAX_FRAME || frame.is_empty() {
            self.stats.tx_errors += 1;
            return false;
        }
        let mut buf = self.net.new_tx_buffer(frame.len());
        buf.packet_mut().copy_from_slice(frame);
        match self.net.send(buf) {
            Ok(()) => {
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

    /// Whether a received frame is waiting.
    pub fn pending(&self) -> bool {
        self.net.can_recv()
    }

    /// Takes up to a batch of received frames, handing each to `f`, and posts their
    /// buffers again; the number taken.
    pub fn receive(&mut self, f: &mut dyn FnMut(&[u8])) -> usize {
        let mut n = 0;
        while n < RX_BATCH && self.net.can_recv() {
            let Ok(buf) = self.net.receive() else {
                self.stats.rx_errors += 1;
                break;
            };
            n += 1;
            self.stats.rx_frames += 1;
            self.stats.rx_bytes += buf.packet_len() as u64;
            f(buf.packet());
            if self.net.recycle_rx_buffer(buf).is_err() {
                self.stats.rx_errors += 1;
            }
        }
        n
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
    match VirtIONet::<KernelHal, _, QUEUE>::new(t, RX_BUFFER) {
        Ok(net) => {
            let mac = net.mac_address();
            hvlog!(
                "pci {df}: virtio-net, MAC {}, {QUEUE} receive buffers, polled",
                crate::dom0::toolstack::mac_text(&mac)
            );
            Some(Nic {
                location: df,
                net,
                mac,
                stats: NicStats::default(),
            })
        }
        Err(e) => {
            hvlog!("pci {df}: virtio-net refused: {e}");
            None
        }
    }
}
