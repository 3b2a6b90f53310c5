//! Checking a request a front end wrote, field by field, before anything is done for it.
//!
//! The order and the answers are Linux blkback's (`__do_block_io_op`, `dispatch_rw_block_io`,
//! `dispatch_discard_io`, `dispatch_other_io`, `xen_vbd_translate`):
//! - read, write, write barrier and flush go on; discard is checked against the disk
//!   (read-only or out of range: `BLKIF_RSP_ERROR`) and then answered
//!   `BLKIF_RSP_EOPNOTSUPP` (no device here discards; we write `feature-discard` = 0);
//!   indirect requests (never offered: no `feature-max-indirect-segments`) and unknown
//!   operations get `BLKIF_RSP_EOPNOTSUPP`;
//! - `nr_segments` must be 1..=11, or 0 for a barrier or flush;
//! - each segment's `last_sect` must lie in the page (< 8) and not before `first_sect`;
//! - anything but a read is refused on a read-only disk; the sectors must lie inside the disk
//!   (`sector_number + sectors` without overflow, at most the size);
//! - the start and every segment's length must be whole logical sectors;
//! - grant references must not be reserved entries (below `GNTTAB_NR_RESERVED_ENTRIES`):
//!   stricter than Linux, which leaves that to the map; whether a grant maps is decided
//!   later, by the platform's map.
//!
//! `handle` is not checked (Linux ignores it too). The response always echoes the request's
//! `id`: ids are the front end's business and are never assumed unique.

use crate::disk::SECTOR;
use abi::io::blkif::{
    BLKIF_MAX_SEGMENTS_PER_REQUEST, BLKIF_OP_DISCARD, BLKIF_OP_FLUSH_DISKCACHE, BLKIF_OP_READ,
    BLKIF_OP_WRITE, BLKIF_OP_WRITE_BARRIER, BLKIF_RSP_EOPNOTSUPP, BLKIF_RSP_ERROR, BlkifRequest,
    BlkifRequestDiscard,
};
use alloc::vec::Vec;
use xenbus::GrantRef;

/// Sectors of a page (`XEN_PAGE_SIZE >> 9`).
const SECTORS_PER_PAGE: u8 = 8;
/// Bytes of a sector, as a `usize`.
const SECTOR_BYTES: usize = 512;

/// What the disk looks like to the checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Size in 512-byte sectors.
    pub sectors: u64,
    /// Writes (and flushes, which Linux issues as writes) are refused.
    pub readonly: bool,
    /// Logical sector size in bytes.
    pub sector_size: u32,
}

/// What a checked request does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Read the sectors into the segments.
    Read,
    /// Write the segments to the sectors.
    Write,
    /// Flush the disk's cache, then write the segments if there are any
    /// (`BLKIF_OP_FLUSH_DISKCACHE`, or `BLKIF_OP_WRITE_BARRIER` with `drain`: requests
    /// before it complete first, which the synchronous server guarantees anyway).
    Flush {
        /// A write barrier.
        drain: bool,
    },
}

/// One segment: a granted page and the bytes of it to transfer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// The page's grant.
    pub gref: GrantRef,
    /// First byte in the page (`first_sect * 512`).
    pub offset: usize,
    /// Bytes (`(last_sect - first_sect + 1) * 512`).
    pub len: usize,
}

/// A request that passed every check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checked {
    /// The front end's id, echoed.
    pub id: u64,
    /// The operation, echoed.
    pub operation: u8,
    /// What to do.
    pub kind: Kind,
    /// First 512-byte sector.
    pub sector: u64,
    /// The segments, in disk order (1..=11, or none for a flush).
    pub segments: Vec<Segment>,
}

impl Checked {
    /// Bytes the segments carry.
    pub fn bytes(&self) -> usize {
        self.segments.iter().map(|s| s.len).sum()
    }
}

/// The outcome of the checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Serve it.
    Serve(Checked),
    /// Answer at once with `status`, doing nothing.
    Answer {
        /// The request's id, echoed.
        id: u64,
        /// The request's operation, echoed.
        operation: u8,
        /// `BLKIF_RSP_ERROR` or `BLKIF_RSP_EOPNOTSUPP`.
        status: i16,
    },
}

/// Whether `sectors` 512-byte sectors from `sector` lie inside the disk (`xen_vbd_translate`;
/// an empty range always does).
fn in_disk(sector: u64, sectors: u64, disk: &Geometry) -> bool {
    sectors == 0
        || sector
            .checked_add(sectors)
            .is_some_and(|end| end <= disk.sectors)
}

/// Checks `request` against `disk`.
pub fn check(request: &BlkifRequest, disk: &Geometry) -> Verdict {
    let (id, operation) = (request.id, request.operation);
    let answer = |status| Verdict::Answer {
        id,
        operation,
        status,
    };
    let kind = match operation {
        BLKIF_OP_READ => Kind::Read,
        BLKIF_OP_WRITE => Kind::Write,
        BLKIF_OP_WRITE_BARRIER => Kind::Flush { drain: true },
        BLKIF_OP_FLUSH_DISKCACHE => Kind::Flush { drain: false },
        BLKIF_OP_DISCARD => {
            let discard = BlkifRequestDiscard::from_request(request);
            let allowed =
                !disk.readonly && in_disk(discard.sector_number, discard.nr_sectors, disk);
            return answer(if allowed {
                BLKIF_RSP_EOPNOTSUPP
            } else {
                BLKIF_RSP_ERROR
            });
        }
        _ => return answer(BLKIF_RSP_EOPNOTSUPP),
    };
    let count = usize::from(request.nr_segments);
    let flush = matches!(kind, Kind::Flush { .. });
    if (count == 0 && !flush) || count > BLKIF_MAX_SEGMENTS_PER_REQUEST {
        return answer(BLKIF_RSP_ERROR);
    }
    let mut segments = Vec::with_capacity(count);
    let mut sectors = 0u64;
    for seg in request.seg.iter().take(count) {
        if seg.last_sect >= SECTORS_PER_PAGE || seg.last_sect < seg.first_sect {
            return answer(BLKIF_RSP_ERROR);
        }
        let nsec = seg.last_sect - seg.first_sect + 1;
        sectors += u64::from(nsec);
        let Ok(gref) = GrantRef::try_new(seg.gref) else {
            return answer(BLKIF_RSP_ERROR);
        };
        segments.push(Segment {
            gref,
            offset: usize::from(seg.first_sect) * SECTOR_BYTES,
            len: usize::from(nsec) * SECTOR_BYTES,
        });
    }
    if (kind != Kind::Read && disk.readonly) || !in_disk(request.sector_number, sectors, disk) {
        return answer(BLKIF_RSP_ERROR);
    }
    let unit = u64::from(disk.sector_size / 512).max(1);
    let misaligned = |n: u64| !n.is_multiple_of(unit);
    // Linux checks alignment per segment, so a flush without segments is never misaligned.
    if segments
        .iter()
        .any(|s| misaligned(request.sector_number) || misaligned(s.len as u64 / SECTOR))
    {
        return answer(BLKIF_RSP_ERROR);
    }
    Verdict::Serve(Checked {
        id,
        operation,
        kind,
        sector: request.sector_number,
        segments,
    })
}
