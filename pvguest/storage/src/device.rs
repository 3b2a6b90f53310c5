//! The block device the storage code runs on, and chunked access helpers.

use core::fmt::Debug;

/// Bytes in a sector: offsets and lengths given to a [`BlockDevice`] are multiples of it.
pub const SECTOR: usize = 512;

/// The most bytes this crate passes to one [`BlockDevice::read`] or [`BlockDevice::write`]
/// (32 KiB: one `blkfront` request carries up to 44 KiB, so an implementation over it needs
/// no splitting).
pub const MAX_TRANSFER: usize = 32 * 1024;

/// A disk addressed in bytes, accessed in whole 512-byte sectors.
///
/// Callers in this crate always pass offsets and lengths that are multiples of [`SECTOR`],
/// lengths of at most [`MAX_TRANSFER`], and ranges inside [`BlockDevice::size`].
/// Durability: a write may reach the medium in any order and any part of it (a sector may even
/// be torn) until a later [`BlockDevice::flush`] has returned `Ok`; after that it is durable.
pub trait BlockDevice {
    /// What the device reports when a request fails.
    type Error: Copy + Debug;

    /// Size of the disk in bytes (a multiple of [`SECTOR`]; a trailing partial sector is not
    /// counted).
    fn size(&self) -> u64;

    /// Reads `buf.len()` bytes at byte `offset`.
    fn read(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), Self::Error>;

    /// Writes `data` at byte `offset`.
    fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), Self::Error>;

    /// Makes every write that completed before this call durable.
    fn flush(&mut self) -> Result<(), Self::Error>;
}

/// A borrowed device is a device (the caller keeps ownership, e.g. to inspect a fake).
impl<T: BlockDevice + ?Sized> BlockDevice for &mut T {
    type Error = T::Error;

    fn size(&self) -> u64 {
        (**self).size()
    }

    fn read(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), Self::Error> {
        (**self).read(offset, buf)
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), Self::Error> {
        (**self).write(offset, data)
    }

    fn flush(&mut self) -> Result<(), Self::Error> {
        (**self).flush()
    }
}

/// Reads `buf` (sector multiple) at `offset` (sector multiple) in [`MAX_TRANSFER`] pieces.
pub(crate) fn read_chunked<D: BlockDevice>(
    dev: &mut D,
    offset: u64,
    buf: &mut [u8],
) -> Result<(), D::Error> {
    let mut at = offset;
    for piece in buf.chunks_mut(MAX_TRANSFER) {
        dev.read(at, piece)?;
        at += piece.len() as u64;
    }
    Ok(())
}

/// Writes `data` (sector multiple) at `offset` (sector multiple) in [`MAX_TRANSFER`] pieces.
pub(crate) fn write_chunked<D: BlockDevice>(
    dev: &mut D,
    offset: u64,
    data: &[u8],
) -> Result<(), D::Error> {
    let mut at = offset;
    for piece in data.chunks(MAX_TRANSFER) {
        dev.write(at, piece)?;
        at += piece.len() as u64;
    }
    Ok(())
}

/// `n` rounded up to a multiple of [`SECTOR`] (saturating).
pub(crate) fn round_up(n: u64) -> u64 {
    n.div_ceil(SECTOR as u64).saturating_mul(SECTOR as u64)
}
