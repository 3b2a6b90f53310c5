//! A byte range of a block device as a device of its own (a partition), so that the store
//! can live past data kept elsewhere on the same disk.

use crate::device::{BlockDevice, SECTOR};

/// Errors of a [`Slice`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SliceError<E> {
    /// The range is not sector-aligned or passes the end of the slice or the disk.
    OutOfRange,
    /// The device beneath failed.
    Device(E),
}

/// Bytes `start..start + len` of `D`.
#[derive(Debug)]
pub struct Slice<D> {
    inner: D,
    start: u64,
    len: u64,
}

impl<D: BlockDevice> Slice<D> {
    /// The slice of `inner` from byte `start` of `len` bytes (both sector multiples, inside
    /// the disk).
    pub fn new(inner: D, start: u64, len: u64) -> Result<Self, SliceError<D::Error>> {
        let sector = SECTOR as u64;
        match start.checked_add(len) {
            Some(end)
                if start.is_multiple_of(sector)
                    && len.is_multiple_of(sector)
                    && end <= inner.size() =>
            {
                Ok(Self { inner, start, len })
            }
            _ => Err(SliceError::OutOfRange),
        }
    }

    /// The device beneath.
    pub fn into_inner(self) -> D {
        self.inner
    }

    /// The device beneath, borrowed (to reach it other than through this slice, say with
    /// requests submitted to it directly at [`Slice::to_inner`] offsets).
    pub fn inner_mut(&mut self) -> &mut D {
        &mut self.inner
    }

    /// Where byte `offset` of the slice lies on the device beneath, if `len` bytes from it
    /// stay inside the slice.
    pub fn to_inner(&self, offset: u64, len: usize) -> Option<u64> {
        self.place(offset, len).ok()
    }

    fn place(&self, offset: u64, len: usize) -> Result<u64, SliceError<D::Error>> {
        match offset.checked_add(len as u64) {
            Some(end) if end <= self.len => Ok(self.start + offset),
            _ => Err(SliceError::OutOfRange),
        }
    }
}

impl<D: BlockDevice> BlockDevice for Slice<D> {
    type Error = SliceError<D::Error>;

    fn size(&self) -> u64 {
        self.len
    }

    fn read(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), Self::Error> {
        let at = self.place(offset, buf.len())?;
        self.inner.read(at, buf).map_err(SliceError::Device)
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), Self::Error> {
        let at = self.place(offset, data.len())?;
        self.inner.write(at, data).map_err(SliceError::Device)
    }

    fn flush(&mut self) -> Result<(), Self::Error> {
        self.inner.flush().map_err(SliceError::Device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::MemDisk;
    use crate::kv::Store;

    #[test]
    fn slice_bounds_and_offsets() {
        let disk = MemDisk::new(8192);
        assert!(matches!(
            Slice::new(MemDisk::new(8192), 100, 512),
            Err(SliceError::OutOfRange)
        ));
        assert!(matches!(
            Slice::new(MemDisk::new(8192), 4096, 8192),
            Err(SliceError::OutOfRange)
        ));
        let mut s = Slice::new(disk, 1024, 2048).expect("slice");
        assert_eq!(s.size(), 2048);
        s.write(512, &[7; 512]).expect("write");
        assert_eq!(s.write(2048, &[7; 512]), Err(SliceError::OutOfRange));
        let disk = s.into_inner();
        assert!(disk.image()[1536..2048].iter().all(|&b| b == 7));
        assert!(disk.image()[..1536].iter().all(|&b| b == 0));
    }

    #[test]
    fn store_in_a_slice_leaves_the_rest_alone() {
        let mut disk = MemDisk::new(1 << 20);
        disk.image_mut()[..4096].fill(0xaa);
        let slice = Slice::new(disk, 4096, (1 << 20) - 4096).expect("slice");
        let mut store = Store::open(slice).expect("format");
        store.put(b"k", b"v").expect("put");
        let disk = store.into_device().into_inner();
        assert!(disk.image()[..4096].iter().all(|&b| b == 0xaa));
        let slice = Slice::new(disk, 4096, (1 << 20) - 4096).expect("slice");
        let mut store = Store::open(slice).expect("reopen");
        assert_eq!(store.get(b"k"), Ok(Some(b"v".to_vec())));
    }
}
