//! The block device behind a back end.

/// Bytes in the unit of sector numbers and `sectors` on the wire (whatever the disk's logical
/// sector size).
pub const SECTOR: u64 = 512;

/// Why the device failed an operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiskError {
    /// The I/O failed (the front end gets `BLKIF_RSP_ERROR`).
    Io,
    /// The device cannot do this (a flush on a device without one: the front end gets
    /// `BLKIF_RSP_EOPNOTSUPP` and the feature is withdrawn, as Linux does).
    NotSupported,
}

/// A disk, in 512-byte sectors. Calls are synchronous: when one returns, it is done.
pub trait BlockDevice {
    /// Size in 512-byte sectors.
    fn sectors(&self) -> u64;
    /// Whether the device refuses writes (combined with the toolstack's `mode`).
    fn read_only(&self) -> bool;
    /// Logical sector size in bytes (a power of two, 512..=4096): requests must be aligned
    /// to it.
    fn sector_size(&self) -> u32 {
        512
    }
    /// Physical sector size in bytes.
    fn physical_sector_size(&self) -> u32 {
        self.sector_size()
    }
    /// Whether writes may sit in a volatile cache until a flush (Linux's `bdev_write_cache`):
    /// what `feature-flush-cache` and `feature-barrier` advertise.
    fn write_cache(&self) -> bool {
        true
    }
    /// Reads `buf.len()` bytes (whole sectors) from sector `sector` on.
    fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), DiskError>;
    /// Writes `data` (whole sectors) from sector `sector` on.
    fn write(&mut self, sector: u64, data: &[u8]) -> Result<(), DiskError>;
    /// Makes every completed write durable; returns only once it is.
    fn flush(&mut self) -> Result<(), DiskError>;
    /// Whether [`BlockDevice::discard`] may be offered (`feature-discard`).
    fn can_discard(&self) -> bool {
        !self.read_only()
    }
    /// `discard-granularity` in bytes: the unit a discard works in.
    fn discard_granularity(&self) -> u32 {
        self.physical_sector_size()
    }
    /// Discards `sectors` sectors from `sector` on (in range and whole logical sectors: the
    /// back end checked). What they read as afterwards is not promised to the front end. The
    /// default writes zeros over them (what a device without a discard command can do: hv's
    /// virtio-blk disks use it), so it is never a secure erase.
    fn discard(&mut self, sector: u64, sectors: u64) -> Result<(), DiskError> {
        const CHUNK_SECTORS: u64 = 128;
        const CHUNK_BYTES: usize = 128 * 512;
        let zeros = alloc::vec![0u8; CHUNK_BYTES];
        let mut at = sector;
        let end = sector.checked_add(sectors).ok_or(DiskError::Io)?;
        while at < end {
            let n = (end - at).min(CHUNK_SECTORS);
            let len = usize::try_from(n * SECTOR).map_err(|_| DiskError::Io)?;
            let bytes = zeros.get(..len).ok_or(DiskError::Io)?;
            self.write(at, bytes)?;
            at += n;
        }
        Ok(())
    }
}
