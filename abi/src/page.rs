//! A 4 KiB page of memory shared with another domain, reached only through atomic accesses.
//!
//! [`AtomicPage`] is how safe code holds a shared page: every byte is an `AtomicU8`, so the
//! peer (another domain, or a fake of one in a test) may write any byte at any time without a
//! data race, and nothing ever holds a plain reference to the bytes. Shared rings are built on
//! one with [`crate::ring::SharedRing::from_page`].

use core::fmt;
use core::mem::{align_of, size_of};
use core::sync::atomic::{AtomicU8, Ordering};

use crate::ring::XEN_PAGE_SIZE as PAGE_SIZE;

/// A page-aligned 4 KiB page whose bytes are atomics.
#[repr(C, align(4096))]
pub struct AtomicPage([AtomicU8; PAGE_SIZE]);
const _: () = {
    assert!(size_of::<AtomicPage>() == PAGE_SIZE);
    assert!(align_of::<AtomicPage>() == PAGE_SIZE);
};

/// An access that does not fit inside the page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutOfPage {
    /// The offset asked for.
    pub offset: usize,
    /// The length asked for.
    pub len: usize,
}

impl fmt::Display for OutOfPage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} bytes at offset {} do not fit in a {PAGE_SIZE}-byte page",
            self.len, self.offset
        )
    }
}

impl AtomicPage {
    /// A page of zeros.
    pub const fn zeroed() -> Self {
        Self([const { AtomicU8::new(0) }; PAGE_SIZE])
    }

    fn range(offset: usize, len: usize) -> Result<core::ops::Range<usize>, OutOfPage> {
        match offset.checked_add(len) {
            Some(end) if end <= PAGE_SIZE => Ok(offset..end),
            _ => Err(OutOfPage { offset, len }),
        }
    }

    /// Copies `buf.len()` bytes at `offset` into `buf` (relaxed loads: order them with a fence).
    pub fn read(&self, offset: usize, buf: &mut [u8]) -> Result<(), OutOfPage> {
        let range = Self::range(offset, buf.len())?;
        for (byte, cell) in buf.iter_mut().zip(&self.0[range]) {
            *byte = cell.load(Ordering::Relaxed);
        }
        Ok(())
    }

    /// Copies `data` into the page at `offset` (relaxed stores: order them with a fence).
    pub fn write(&self, offset: usize, data: &[u8]) -> Result<(), OutOfPage> {
        let range = Self::range(offset, data.len())?;
        for (cell, &byte) in self.0[range].iter().zip(data) {
            cell.store(byte, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Sets every byte to `value`.
    pub fn fill(&self, value: u8) {
        for cell in &self.0 {
            cell.store(value, Ordering::Relaxed);
        }
    }

    /// The page's address, for code that hands it to hardware or a hypercall.
    pub fn as_ptr(&self) -> *mut u8 {
        self.0.as_ptr().cast::<u8>().cast_mut()
    }
}

impl fmt::Debug for AtomicPage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AtomicPage")
            .field("addr", &self.as_ptr())
            .finish()
    }
}

impl Default for AtomicPage {
    fn default() -> Self {
        Self::zeroed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_writes_stay_inside_the_page() {
        let page = AtomicPage::zeroed();
        page.write(4090, b"abcdef").unwrap();
        let mut buf = [0u8; 6];
        page.read(4090, &mut buf).unwrap();
        assert_eq!(&buf, b"abcdef");
        assert_eq!(
            page.write(4091, b"abcdef"),
            Err(OutOfPage {
                offset: 4091,
                len: 6
            })
        );
        assert!(page.read(usize::MAX, &mut buf).is_err());
        assert!(page.write(PAGE_SIZE, &[]).is_ok());
        page.fill(0xaa);
        page.read(0, &mut buf).unwrap();
        assert_eq!(buf, [0xaa; 6]);
        assert!(page.as_ptr().addr().is_multiple_of(PAGE_SIZE));
    }
}
