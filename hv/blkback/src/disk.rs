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
}
