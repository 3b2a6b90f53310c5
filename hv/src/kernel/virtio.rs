//! QEMU's virtio-blk disks through the `virtio-drivers` crate: the PCI scan (ports
//! 0xCF8/0xCFC, [`super::pci::PortCam`]), each device's memory BARs checked
//! ([`crate::dom0::blk::check_bar`]) and made uncached before the transport touches them, and
//! the [`Hal`] that gives the driver DMA memory from a pool of hv's frames (identity mapped:
//! physical == virtual).
//!
//! Requests are synchronous: the driver notifies the queue and polls the used ring until the
//! device answers (QEMU completes it on its own thread while the CPU spins). hv takes no
//! device interrupt: its one CPU runs the domains and the back end in the machine loop, which
//! already wakes on its APIC timer and on every exit; a request blkback hands the device is
//! done before the loop goes on, so an interrupt would tell it nothing new.
//!
//! A resized disk (QEMU's `block_resize`) raises the device's configuration-change
//! interrupt, whose bit stays set in the ISR status register until read: hv reads it
//! ([`VirtioDisk::check_resize`]) after a round in which the disk's back end served requests,
//! as Linux blkback looks at its device's size when its ring thread wakes, and only then
//! reads the capacity again. An idle disk costs no register read, and no change is lost: the
//! bit waits for the next request.

use alloc::vec::Vec;
use core::mem::ManuallyDrop;
use core::ptr::NonNull;

use pvh::boot::IDENTITY_MAP_BYTES;
use pvh::frames::FrameAllocator;
use spin::Mutex;
use virtio_drivers::device::blk::{SECTOR_SIZE, VirtIOBlk};
use virtio_drivers::transport::pci::PciTransport;
use virtio_drivers::transport::pci::bus::{Command, DeviceFunction, PciRoot};
use virtio_drivers::transport::pci::virtio_device_type;
use virtio_drivers::transport::{DeviceType, InterruptStatus, Transport};
use virtio_drivers::{BufferDirection, Hal, PhysAddr};

use crate::dom0::blk::{check_bar, check_capacity};
use crate::frames::FRAME_SIZE;
use crate::hvlog;

use super::pci::{PortCam, uncache};

/// Frames of the DMA pool (the virtqueues: a few pages per device).
const DMA_POOL_FRAMES: u64 = 64;

/// The DMA pool: a bump allocator over zeroed frames hv took for it at boot. Queues live
/// as long as hv, so nothing is given back.
struct DmaPool {
    next: u64,
    end: u64,
}

static DMA: Mutex<DmaPool> = Mutex::new(DmaPool { next: 0, end: 0 });

/// hv's side of `virtio-drivers`.
pub struct KernelHal;

// SAFETY: dma_alloc hands out zeroed, page-aligned frames of the pool, each once, identity
// mapped (phys == virt) and used by nothing else; mmio_phys_to_virt is called only for BARs
// scan() checked and mapped uncached in the identity map; share gives the physical address
// of a buffer in the identity map (all of hv's memory is), which the device may access until
// unshare.
unsafe impl Hal for KernelHal {
    fn dma_alloc(pages: usize, _direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        let mut pool = DMA.lock();
        let bytes = (pages as u64).saturating_mul(FRAME_SIZE);
        match pool.next.checked_add(bytes) {
            Some(end) if end <= pool.end && pages > 0 => {
                let pa = pool.next;
                pool.next = end;
                match NonNull::new(pa as *mut u8) {
                    Some(p) => (pa, p),
                    None => (0, NonNull::dangling()),
                }
            }
            // The driver sees physical address 0 as a failed allocation.
            _ => (0, NonNull::dangling()),
        }
    }

    unsafe fn dma_dealloc(_paddr: PhysAddr, _vaddr: NonNull<u8>, _pages: usize) -> i32 {
        // The pool is a bump allocator: frames of a dropped queue are not reused (devices
        // live as long as hv).
        0
    }

    unsafe fn mmio_phys_to_virt(paddr: PhysAddr, _size: usize) -> NonNull<u8> {
        // Identity map: the BAR was checked to lie inside it (scan) before the transport was
        // made; a null address never reaches here (the transport refuses BAR 0).
        NonNull::new(paddr as *mut u8).unwrap_or(NonNull::dangling())
    }

    unsafe fn share(buffer: NonNull<[u8]>, _direction: BufferDirection) -> PhysAddr {
        // Identity map, and no IOMMU or bounce buffers: the device sees hv's addresses.
        buffer.cast::<u8>().as_ptr() as u64
    }

    unsafe fn unshare(_paddr: PhysAddr, _buffer: NonNull<[u8]>, _direction: BufferDirection) {}
}

/// Takes the DMA pool's frames from `frames` (once, at boot: a second call, for the NIC after
/// the disks, finds the pool made).
pub(super) fn init_dma(frames: &mut FrameAllocator) -> Result<(), crate::frames::FrameError> {
    if DMA.lock().end != 0 {
        return Ok(());
    }
    let bytes = DMA_POOL_FRAMES * FRAME_SIZE;
    let pa = super::memory::alloc_zeroed(frames, bytes, FRAME_SIZE)?;
    let mut pool = DMA.lock();
    pool.next = pa;
    pool.end = pa + bytes;
    Ok(())
}

/// One virtio-blk disk.
pub struct VirtioDisk {
    /// Where it sits on the bus.
    pub location: DeviceFunction,
    blk: VirtIOBlk<KernelHal, PciTransport>,
    /// A second transport on the same device, for what `VirtIOBlk` does not expose: the ISR
    /// status (its configuration-change bit) and the capacity read again. Never dropped:
    /// dropping a transport resets the device under the driver.
    config: ManuallyDrop<PciTransport>,
    /// The configuration-change bit was seen and the capacity not read yet.
    config_changed: bool,
    sectors: u64,
    read_only: bool,
    /// Whether the device offered `VIRTIO_BLK_F_FLUSH` (a volatile write cache that
    /// `VIRTIO_BLK_T_FLUSH` empties); the driver negotiates it whenever offered.
    flush: bool,
    /// Requests sent to the device (reads, writes, flushes).
    pub requests: u64,
    /// `VIRTIO_BLK_T_FLUSH` requests the device completed.
    pub flushes: u64,
    /// Capacity changes taken (the device's configuration-change interrupt, then a new
    /// capacity that passed [`check_capacity`]).
    pub resizes: u64,
}

impl core::fmt::Debug for VirtioDisk {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "VirtioDisk({}, {} sectors)", self.location, self.sectors)
    }
}

impl VirtioDisk {
    /// Size in 512-byte sectors (checked: 1..=2 TiB).
    pub fn sectors(&self) -> u64 {
        self.sectors
    }

    /// Whether the device is read-only (`VIRTIO_BLK_F_RO`).
    pub fn read_only(&self) -> bool {
        self.read_only
    }

    /// Reads whole sectors from `sector` on into `buf`.
    pub fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), blkback::DiskError> {
        self.check(sector, buf.len())?;
        self.requests += 1;
        self.blk
            .read_blocks(sector as usize, buf)
            .map_err(|_| blkback::DiskError::Io)
    }

    /// Writes whole sectors from `sector` on.
    pub fn write(&mut self, sector: u64, data: &[u8]) -> Result<(), blkback::DiskError> {
        self.check(sector, data.len())?;
        if self.read_only {
            return Err(blkback::DiskError::Io);
        }
        self.requests += 1;
        self.blk
            .write_blocks(sector as usize, data)
            .map_err(|_| blkback::DiskError::Io)
    }

    /// Makes completed writes durable (`VIRTIO_BLK_T_FLUSH`; a device without
    /// `VIRTIO_BLK_F_FLUSH` has no volatile cache, and the driver answers at once).
    pub fn flush(&mut self) -> Result<(), blkback::DiskError> {
        self.requests += 1;
        self.blk.flush().map_err(|_| blkback::DiskError::Io)?;
        if self.flush {
            self.flushes += 1;
        }
        Ok(())
    }

    /// Whether writes may sit in the device's volatile cache until a flush
    /// (`VIRTIO_BLK_F_FLUSH` negotiated).
    pub fn write_cache(&self) -> bool {
        self.flush
    }

    /// Whether the device changed its configuration since the last look (the ISR status's
    /// configuration-change bit, cleared by reading it, so remembered until the capacity is
    /// read); if so, the capacity is read again (whole, under one configuration generation)
    /// and taken if it passes [`check_capacity`]. Returns the old and new sizes of a change
    /// taken; a refused one is logged and the size kept.
    pub fn check_resize(&mut self) -> Option<(u64, u64)> {
        let isr = self.config.ack_interrupt();
        self.config_changed |= isr.contains(InterruptStatus::DEVICE_CONFIGURATION_INTERRUPT);
        if !self.config_changed {
            return None;
        }
        let Some(capacity) = read_capacity(&self.config) else {
            hvlog!(
                "pci {}: virtio-blk capacity unreadable, tried again on the next look",
                self.location
            );
            return None;
        };
        self.config_changed = false;
        match check_capacity(capacity) {
            Ok(sectors) if sectors != self.sectors => {
                let old = self.sectors;
                self.sectors = sectors;
                self.resizes += 1;
                Some((old, sectors))
            }
            Ok(_) => None,
            Err(e) => {
                hvlog!(
                    "pci {}: virtio-blk capacity {capacity} refused ({e:?}), {} sectors kept",
                    self.location,
                    self.sectors
                );
                None
            }
        }
    }

    /// The driver asserts on these; blkback never asks for them, but hv does not panic on a
    /// caller's mistake either.
    fn check(&self, sector: u64, len: usize) -> Result<(), blkback::DiskError> {
        let sectors = (len / SECTOR_SIZE) as u64;
        if len == 0
            || !len.is_multiple_of(SECTOR_SIZE)
            || sector.saturating_add(sectors) > self.sectors
        {
            return Err(blkback::DiskError::Io);
        }
        Ok(())
    }
}

impl blkback::BlockDevice for VirtioDisk {
    fn sectors(&self) -> u64 {
        self.sectors
    }
    fn read_only(&self) -> bool {
        self.read_only
    }
    fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), blkback::DiskError> {
        VirtioDisk::read(self, sector, buf)
    }
    fn write(&mut self, sector: u64, data: &[u8]) -> Result<(), blkback::DiskError> {
        VirtioDisk::write(self, sector, data)
    }
    fn write_cache(&self) -> bool {
        VirtioDisk::write_cache(self)
    }
    fn flush(&mut self) -> Result<(), blkback::DiskError> {
        VirtioDisk::flush(self)
    }
}

/// Attempts at reading the capacity's two halves under one configuration generation.
const CONFIG_READ_ATTEMPTS: u32 = 8;

/// The capacity in the device's configuration (`capacity` of `virtio_blk_config`: two 32-bit
/// halves at offsets 0 and 4), read whole: the configuration generation must be the same
/// before and after (the device may change it meanwhile; after [`CONFIG_READ_ATTEMPTS`]
/// tries, none, where `virtio-drivers`' own `read_consistent` would loop for ever).
fn read_capacity(config: &PciTransport) -> Option<u64> {
    for _ in 0..CONFIG_READ_ATTEMPTS {
        let before = config.read_config_generation();
        let low: u32 = config.read_config_space(0).ok()?;
        let high: u32 = config.read_config_space(4).ok()?;
        if config.read_config_generation() == before {
            return Some(u64::from(low) | (u64::from(high) << 32));
        }
    }
    None
}

/// Scans bus 0 for virtio-blk devices, in slot order, and brings up each whose BARs pass the
/// checks; a refused device is logged and skipped. `ram` is the memory map's RAM. The DMA
/// pool is taken from `frames` only if there is a device.
pub fn scan(frames: &mut FrameAllocator, ram: &[(u64, u64)]) -> Vec<VirtioDisk> {
    let mut root = PciRoot::new(PortCam);
    let found = find(&mut root, DeviceType::Block);
    let mut disks = Vec::new();
    if found.is_empty() {
        return disks;
    }
    if let Err(e) = init_dma(frames) {
        hvlog!("no memory for the virtio DMA pool ({e:?}): no disks");
        return disks;
    }
    for df in found {
        match bring_up(&mut root, df, ram) {
            Ok(d) => {
                hvlog!(
                    "pci {df}: virtio-blk, {} sectors ({} KiB){}{}",
                    d.sectors,
                    d.sectors / 2,
                    if d.read_only { ", read-only" } else { "" },
                    if d.flush {
                        ", write cache (flush)"
                    } else {
                        ", write-through (no flush)"
                    }
                );
                disks.push(d);
            }
            Err(why) => hvlog!("pci {df}: virtio-blk refused: {why}"),
        }
    }
    disks
}

/// The virtio devices of type `kind` on bus 0, in slot order.
pub(super) fn find(root: &mut PciRoot<PortCam>, kind: DeviceType) -> Vec<DeviceFunction> {
    root.enumerate_bus(0)
        .filter(|(_, info)| virtio_device_type(info) == Some(kind))
        .map(|(df, _)| df)
        .collect()
}

/// Checks and maps `df`'s memory BARs (uncached), turns on its memory decoding and bus
/// mastering, and makes the virtio-pci transport.
pub(super) fn transport(
    root: &mut PciRoot<PortCam>,
    df: DeviceFunction,
    ram: &[(u64, u64)],
) -> Result<PciTransport, alloc::string::String> {
    use alloc::format;
    let bars = root.bars(df).map_err(|e| format!("reading BARs: {e:?}"))?;
    for (i, bar) in bars.iter().enumerate() {
        let Some((addr, size)) = bar.as_ref().and_then(|b| b.memory_address_size()) else {
            continue;
        };
        let window = check_bar(addr, size, IDENTITY_MAP_BYTES, ram)
            .map_err(|e| format!("BAR{i} at {addr:#x} ({size:#x} bytes) {e}"))?;
        uncache(&window).map_err(|e| format!("BAR{i} at {addr:#x}: {e:?}"))?;
        hvlog!("pci {df}: BAR{i} {addr:#x}+{size:#x} mapped uncached");
    }
    let (_, command) = root.get_status_command(df);
    root.set_command(df, command | Command::MEMORY_SPACE | Command::BUS_MASTER);
    PciTransport::new::<KernelHal, _>(root, df).map_err(|e| format!("virtio-pci transport: {e}"))
}

/// Makes the transport of `df`, then the block driver.
fn bring_up(
    root: &mut PciRoot<PortCam>,
    df: DeviceFunction,
    ram: &[(u64, u64)],
) -> Result<VirtioDisk, alloc::string::String> {
    use alloc::format;
    let mut transport = transport(root, df, ram)?;
    if transport.device_type() != DeviceType::Block {
        return Err(format!("not a block device: {:?}", transport.device_type()));
    }
    // The driver negotiates VIRTIO_BLK_F_FLUSH (bit 9) whenever the device offers it.
    let flush = transport.read_device_features() & (1 << 9) != 0;
    let blk = VirtIOBlk::<KernelHal, _>::new(transport).map_err(|e| format!("virtio-blk: {e}"))?;
    // Made after the driver's: a failure here drops the driver, which resets the device.
    let config = ManuallyDrop::new(
        PciTransport::new::<KernelHal, _>(root, df)
            .map_err(|e| format!("virtio-pci transport for the configuration: {e}"))?,
    );
    let sectors = check_capacity(blk.capacity()).map_err(|e| format!("capacity: {e:?}"))?;
    let read_only = blk.readonly();
    Ok(VirtioDisk {
        location: df,
        blk,
        config,
        config_changed: false,
        sectors,
        read_only,
        flush,
        requests: 0,
        flushes: 0,
        resizes: 0,
    })
}
