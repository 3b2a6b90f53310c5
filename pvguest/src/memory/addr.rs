//! Checked conversions of toolstack- and peer-supplied numbers into physical addresses.
//!
//! A frame number from an HVM parameter or an offset from the start info is an allegation:
//! every multiplication and addition that turns one into an address is checked here, so a
//! value near 2^52 (or 2^64) is refused instead of wrapping in a release build.
#![warn(clippy::arithmetic_side_effects)]

use super::frames::FRAME_SIZE;

/// The address of frame `pfn`, if the whole frame lies below `limit`.
pub fn page_address(pfn: u64, limit: u64) -> Option<u64> {
    let start = pfn.checked_mul(FRAME_SIZE)?;
    let end = start.checked_add(FRAME_SIZE)?;
    (end <= limit).then_some(start)
}

/// `base + offset`, or `None` if that passes the end of the address space.
pub fn offset(base: u64, offset: u64) -> Option<u64> {
    base.checked_add(offset)
}

/// Whether a `size`-byte value at `offset` lies inside a `page`-byte page and is aligned to
/// `align` (a power of two): the check of every shared-page access (`xen::shared_page`).
pub fn fits_in_page(offset: usize, size: usize, align: usize, page: usize) -> bool {
    offset.checked_add(size).is_some_and(|end| end <= page) && offset.is_multiple_of(align)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FOUR_GIB: u64 = 4 << 30;

    #[test]
    fn frame_addresses_past_the_limit_or_2_pow_64_are_none() {
        assert_eq!(page_address(0, FOUR_GIB), Some(0));
        let last = FOUR_GIB / FRAME_SIZE - 1;
        assert_eq!(page_address(last, FOUR_GIB), Some(FOUR_GIB - FRAME_SIZE));
        assert_eq!(page_address(last + 1, FOUR_GIB), None);
        // The last frame of the 64-bit space: its end is 2^64, which does not fit.
        assert_eq!(page_address(u64::MAX / FRAME_SIZE, u64::MAX), None);
        assert_eq!(
            page_address(u64::MAX / FRAME_SIZE - 1, u64::MAX),
            Some(u64::MAX - 2 * FRAME_SIZE + 1)
        );
        // Frame numbers near 2^52 and beyond.
        assert_eq!(page_address((1 << 52) - 1, FOUR_GIB), None);
        assert_eq!(page_address(1 << 52, u64::MAX), None);
        assert_eq!(page_address(u64::MAX, u64::MAX), None);
    }

    #[test]
    fn accesses_past_the_page_misaligned_or_overflowing_do_not_fit() {
        assert!(fits_in_page(0, 8, 8, 4096));
        assert!(fits_in_page(4088, 8, 8, 4096));
        assert!(!fits_in_page(4089, 8, 1, 4096), "past the end");
        assert!(!fits_in_page(4090, 4, 4, 4096), "misaligned");
        assert!(!fits_in_page(usize::MAX, 1, 1, 4096), "overflowing offset");
        assert!(fits_in_page(4096, 0, 1, 4096));
        assert!(!fits_in_page(4097, 0, 1, 4096));
    }
}
