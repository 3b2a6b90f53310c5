//! The virtual block device protocol of `xen/io/blkif.h`: requests, segments, responses and
//! their constants, with x86_64 layouts.
//!
//! The ring's slots are [`BlkifRequest`] / [`BlkifResponse`] (32 slots in one page). Discard
//! and indirect requests occupy a request slot in their own layout ([`BlkifRequestDiscard`],
//! [`BlkifRequestIndirect`]); `to_request` / `from_request` convert the way C casts the slot.
//!
//! C leaves padding implicit (after `handle`, after `operation` in a response, at the ends);
//! here it is spelled out as `_pad*` fields, set to zero, so a request copied into shared memory
//! carries no uninitialised bytes. On i386 the C layouts differ (8-byte integers are 4-aligned
//! there); this module describes x86_64 only.

use core::mem::{align_of, offset_of, size_of};

use crate::grant_table::GrantRef;
use crate::ring::{RingEntry, cast_entry};

/// `blkif_vdev_t`: a virtual device number (a macro for `uint16_t` in C).
pub type BlkifVdev = u16;
/// `blkif_sector_t`: a sector index; sectors are always 512 bytes in this protocol.
pub type BlkifSector = u64;

/// `BLKIF_OP_READ`: read into the segments.
pub const BLKIF_OP_READ: u8 = 0;
/// `BLKIF_OP_WRITE`: write from the segments.
pub const BLKIF_OP_WRITE: u8 = 1;
/// `BLKIF_OP_WRITE_BARRIER`: a write ordered after all earlier ones (`feature-barrier`).
pub const BLKIF_OP_WRITE_BARRIER: u8 = 2;
/// `BLKIF_OP_FLUSH_DISKCACHE`: flush the disk's write cache (`feature-flush-cache`).
pub const BLKIF_OP_FLUSH_DISKCACHE: u8 = 3;
/// `BLKIF_OP_RESERVED_1`: used by an old vendor extension; never send it.
pub const BLKIF_OP_RESERVED_1: u8 = 4;
/// `BLKIF_OP_DISCARD`: discard sectors ([`BlkifRequestDiscard`], `feature-discard`).
pub const BLKIF_OP_DISCARD: u8 = 5;
/// `BLKIF_OP_INDIRECT`: a request whose segments lie in granted pages
/// ([`BlkifRequestIndirect`], `feature-max-indirect-segments`).
pub const BLKIF_OP_INDIRECT: u8 = 6;

/// `BLKIF_MAX_SEGMENTS_PER_REQUEST`: segments in a direct request.
pub const BLKIF_MAX_SEGMENTS_PER_REQUEST: usize = 11;
/// `BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST`: indirect segment pages per indirect request.
pub const BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST: usize = 8;
/// Segments one indirect page holds (4096 / 8; not a constant of the header, which describes
/// the pages as arrays of [`BlkifRequestSegment`]).
pub const BLKIF_SEGMENTS_PER_INDIRECT_PAGE: usize = 4096 / size_of::<BlkifRequestSegment>();

/// `BLKIF_DISCARD_SECURE`: flag of a discard: erase securely (`discard-secure`).
pub const BLKIF_DISCARD_SECURE: u8 = 1 << 0;

/// `BLKIF_RSP_EOPNOTSUPP`: operation not supported.
pub const BLKIF_RSP_EOPNOTSUPP: i16 = -2;
/// `BLKIF_RSP_ERROR`: the operation failed.
pub const BLKIF_RSP_ERROR: i16 = -1;
/// `BLKIF_RSP_OKAY`: the operation succeeded.
pub const BLKIF_RSP_OKAY: i16 = 0;

/// `VDISK_CDROM`: bit of the `info` node: the device is a CD-ROM.
pub const VDISK_CDROM: u32 = 0x1;
/// `VDISK_REMOVABLE`: bit of the `info` node: the media is removable.
pub const VDISK_REMOVABLE: u32 = 0x2;
/// `VDISK_READONLY`: bit of the `info` node: the device is read-only.
pub const VDISK_READONLY: u32 = 0x4;

/// `struct blkif_request_segment`: a granted page and the sectors of it to transfer.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlkifRequestSegment {
    /// Grant of the I/O buffer page.
    pub gref: GrantRef,
    /// First sector of the page to transfer (inclusive, 0..=7).
    pub first_sect: u8,
    /// Last sector of the page to transfer (inclusive, 0..=7).
    pub last_sect: u8,
    /// Padding (implicit in C); zero.
    pub _pad0: [u8; 2],
}
const _: () = {
    assert!(size_of::<BlkifRequestSegment>() == 8);
    assert!(align_of::<BlkifRequestSegment>() == 4);
    assert!(offset_of!(BlkifRequestSegment, gref) == 0);
    assert!(offset_of!(BlkifRequestSegment, first_sect) == 4);
    assert!(offset_of!(BlkifRequestSegment, last_sect) == 5);
    assert!(offset_of!(BlkifRequestSegment, _pad0) == 6);
};
// SAFETY: integers only; every byte is a named field (asserted above), so no padding.
unsafe impl RingEntry for BlkifRequestSegment {}

impl BlkifRequestSegment {
    /// A segment with zero padding.
    pub const fn new(gref: GrantRef, first_sect: u8, last_sect: u8) -> Self {
        Self {
            gref,
            first_sect,
            last_sect,
            _pad0: [0; 2],
        }
    }
}

/// `struct blkif_request`: a read, write, barrier or flush request (a ring slot).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlkifRequest {
    /// `BLKIF_OP_*`.
    pub operation: u8,
    /// Number of segments used in `seg`.
    pub nr_segments: u8,
    /// The device (read/write only).
    pub handle: BlkifVdev,
    /// Padding (implicit in C); zero.
    pub _pad0: [u8; 4],
    /// Private front-end value, echoed in the response.
    pub id: u64,
    /// Start sector on the disk (read/write only).
    pub sector_number: BlkifSector,
    /// The data segments.
    pub seg: [BlkifRequestSegment; BLKIF_MAX_SEGMENTS_PER_REQUEST],
}
const _: () = {
    assert!(size_of::<BlkifRequest>() == 112);
    assert!(align_of::<BlkifRequest>() == 8);
    assert!(offset_of!(BlkifRequest, operation) == 0);
    assert!(offset_of!(BlkifRequest, nr_segments) == 1);
    assert!(offset_of!(BlkifRequest, handle) == 2);
    assert!(offset_of!(BlkifRequest, _pad0) == 4);
    assert!(offset_of!(BlkifRequest, id) == 8);
    assert!(offset_of!(BlkifRequest, sector_number) == 16);
    assert!(offset_of!(BlkifRequest, seg) == 24);
};
// SAFETY: integers and padding-free segments; every byte is a named field (asserted above).
unsafe impl RingEntry for BlkifRequest {}

/// `struct blkif_request_discard`: a discard request, in a request slot.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlkifRequestDiscard {
    /// `BLKIF_OP_DISCARD`.
    pub operation: u8,
    /// [`BLKIF_DISCARD_SECURE`] or zero.
    pub flag: u8,
    /// The device.
    pub handle: BlkifVdev,
    /// Padding (implicit in C); zero.
    pub _pad0: [u8; 4],
    /// Private front-end value, echoed in the response.
    pub id: u64,
    /// Start sector on the disk.
    pub sector_number: BlkifSector,
    /// Number of contiguous sectors to discard.
    pub nr_sectors: u64,
}
const _: () = {
    assert!(size_of::<BlkifRequestDiscard>() == 32);
    assert!(align_of::<BlkifRequestDiscard>() == 8);
    assert!(offset_of!(BlkifRequestDiscard, operation) == 0);
    assert!(offset_of!(BlkifRequestDiscard, flag) == 1);
    assert!(offset_of!(BlkifRequestDiscard, handle) == 2);
    assert!(offset_of!(BlkifRequestDiscard, _pad0) == 4);
    assert!(offset_of!(BlkifRequestDiscard, id) == 8);
    assert!(offset_of!(BlkifRequestDiscard, sector_number) == 16);
    assert!(offset_of!(BlkifRequestDiscard, nr_sectors) == 24);
};
// SAFETY: integers only; every byte is a named field (asserted above).
unsafe impl RingEntry for BlkifRequestDiscard {}

impl BlkifRequestDiscard {
    /// The request slot holding this discard (the remaining bytes zero).
    pub fn to_request(&self) -> BlkifRequest {
        cast_entry(self)
    }

    /// The discard held in a request slot.
    pub fn from_request(slot: &BlkifRequest) -> Self {
        cast_entry(slot)
    }
}

/// `struct blkif_request_indirect`: a request whose segments are listed in granted pages, in a
/// request slot.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlkifRequestIndirect {
    /// `BLKIF_OP_INDIRECT`.
    pub operation: u8,
    /// The real operation: `BLKIF_OP_READ` or `BLKIF_OP_WRITE`.
    pub indirect_op: u8,
    /// Number of segments in the indirect pages.
    pub nr_segments: u16,
    /// Padding (implicit in C); zero.
    pub _pad0: [u8; 4],
    /// Private front-end value, echoed in the response.
    pub id: u64,
    /// Start sector on the disk.
    pub sector_number: BlkifSector,
    /// The device.
    pub handle: BlkifVdev,
    /// Padding (implicit in C); zero.
    pub _pad1: [u8; 2],
    /// Grants of the pages holding the [`BlkifRequestSegment`] arrays.
    pub indirect_grefs: [GrantRef; BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST],
    /// Padding (implicit in C on x86_64); zero.
    pub _pad2: [u8; 4],
}
const _: () = {
    assert!(size_of::<BlkifRequestIndirect>() == 64);
    assert!(align_of::<BlkifRequestIndirect>() == 8);
    assert!(offset_of!(BlkifRequestIndirect, operation) == 0);
    assert!(offset_of!(BlkifRequestIndirect, indirect_op) == 1);
    assert!(offset_of!(BlkifRequestIndirect, nr_segments) == 2);
    assert!(offset_of!(BlkifRequestIndirect, _pad0) == 4);
    assert!(offset_of!(BlkifRequestIndirect, id) == 8);
    assert!(offset_of!(BlkifRequestIndirect, sector_number) == 16);
    assert!(offset_of!(BlkifRequestIndirect, handle) == 24);
    assert!(offset_of!(BlkifRequestIndirect, _pad1) == 26);
    assert!(offset_of!(BlkifRequestIndirect, indirect_grefs) == 28);
    assert!(offset_of!(BlkifRequestIndirect, _pad2) == 60);
};
// SAFETY: integers only; every byte is a named field (asserted above).
unsafe impl RingEntry for BlkifRequestIndirect {}

impl BlkifRequestIndirect {
    /// The request slot holding this indirect request (the remaining bytes zero).
    pub fn to_request(&self) -> BlkifRequest {
        cast_entry(self)
    }

    /// The indirect request held in a request slot.
    pub fn from_request(slot: &BlkifRequest) -> Self {
        cast_entry(slot)
    }
}

/// `struct blkif_response`: the completion of a request (a ring slot).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlkifResponse {
    /// The request's `id`.
    pub id: u64,
    /// The request's `operation`.
    pub operation: u8,
    /// Padding (implicit in C); zero.
    pub _pad0: u8,
    /// `BLKIF_RSP_*`.
    pub status: i16,
    /// Padding (implicit in C); zero.
    pub _pad1: [u8; 4],
}
const _: () = {
    assert!(size_of::<BlkifResponse>() == 16);
    assert!(align_of::<BlkifResponse>() == 8);
    assert!(offset_of!(BlkifResponse, id) == 0);
    assert!(offset_of!(BlkifResponse, operation) == 8);
    assert!(offset_of!(BlkifResponse, _pad0) == 9);
    assert!(offset_of!(BlkifResponse, status) == 10);
    assert!(offset_of!(BlkifResponse, _pad1) == 12);
};
// SAFETY: integers only; every byte is a named field (asserted above).
unsafe impl RingEntry for BlkifResponse {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ring::ring_size;

    #[test]
    fn one_page_ring_has_32_slots() {
        assert_eq!(ring_size::<BlkifRequest, BlkifResponse>(4096), 32);
        assert_eq!(BLKIF_SEGMENTS_PER_INDIRECT_PAGE, 512);
    }

    #[test]
    fn discard_and_indirect_share_the_request_slot() {
        let discard = BlkifRequestDiscard {
            operation: BLKIF_OP_DISCARD,
            flag: BLKIF_DISCARD_SECURE,
            handle: 0x0300,
            id: 42,
            sector_number: 1 << 40,
            nr_sectors: 0x1122_3344_5566_7788,
            ..Default::default()
        };
        let slot = discard.to_request();
        assert_eq!(
            (slot.operation, slot.nr_segments, slot.handle, slot.id),
            (BLKIF_OP_DISCARD, 1, 0x0300, 42)
        );
        // nr_sectors overlays the first segment, little-endian.
        assert_eq!(slot.seg[0].gref, 0x5566_7788);
        assert_eq!(
            (slot.seg[0].first_sect, slot.seg[0].last_sect),
            (0x44, 0x33)
        );
        assert_eq!(slot.seg[1], BlkifRequestSegment::default());
        assert_eq!(BlkifRequestDiscard::from_request(&slot), discard);

        let mut indirect = BlkifRequestIndirect {
            operation: BLKIF_OP_INDIRECT,
            indirect_op: BLKIF_OP_WRITE,
            nr_segments: 600,
            id: 7,
            sector_number: 8,
            handle: 0x0301,
            ..Default::default()
        };
        indirect.indirect_grefs[1] = 0xabcd;
        let slot = indirect.to_request();
        assert_eq!(slot.nr_segments, BLKIF_OP_WRITE);
        assert_eq!(slot.handle, 600);
        assert_eq!(slot.seg[0].gref, 0x0301);
        assert_eq!(BlkifRequestIndirect::from_request(&slot), indirect);
    }
}
