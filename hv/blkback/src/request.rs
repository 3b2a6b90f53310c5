//! Checking a request a front end wrote, field by field, before anything is done for it.
//!
//! The order and the answers are Linux blkback's (`__do_block_io_op`, `dispatch_rw_block_io`,
//! `dispatch_discard_io`, `dispatch_other_io`, `xen_vbd_translate`):
//! - read, write, write barrier and flush go on; discard is checked against the disk
//!   (read-only, out of range or not whole logical sectors: `BLKIF_RSP_ERROR`) and then served
//!   if the back end offers `feature-discard`, else answered `BLKIF_RSP_EOPNOTSUPP`;
//!   indirect requests go on when offered (`feature-max-indirect-segments`), else get
//!   `BLKIF_RSP_EOPNOTSUPP`, as unknown operations do;
//! - `nr_segments` must be 1..=11, or 0 for a barrier or flush; an indirect request's
//!   `indirect_op` must be a read or a write (else `BLKIF_RSP_ERROR`) and its `nr_segments`
//!   1..=the offered maximum (Linux's `MAX_INDIRECT_SEGMENTS`, 256: one indirect page); its
//!   segments are read from the indirect pages ([`check_indirect`]) and checked as direct ones;
//! - each segment's `last_sect` must lie in the page (< 8: a segment may not cross a page)
//!   and not before `first_sect`;
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
    BLKIF_DISCARD_SECURE, BLKIF_MAX_SEGMENTS_PER_REQUEST, BLKIF_OP_DISCARD,
    BLKIF_OP_FLUSH_DISKCACHE, BLKIF_OP_INDIRECT, BLKIF_OP_READ, BLKIF_OP_WRITE,
    BLKIF_OP_WRITE_BARRIER, BLKIF_RSP_EOPNOTSUPP, BLKIF_RSP_ERROR,
    BLKIF_SEGMENTS_PER_INDIRECT_PAGE, BlkifRequest, BlkifRequestDiscard, BlkifRequestIndirect,
    BlkifRequestSegment,
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
    /// Segments an indirect request may carry (`feature-max-indirect-segments`; 0: indirect
    /// requests are not offered).
    pub max_indirect_segments: u32,
    /// Discards are served (`feature-discard` offered).
    pub discard: bool,
}

/// Linux blkback's `MAX_INDIRECT_SEGMENTS`: what it offers in
/// `feature-max-indirect-segments`.
pub const MAX_INDIRECT_SEGMENTS: u32 = 256;

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
    /// Discard (`BLKIF_OP_DISCARD`, offered): the sectors' contents are no longer needed.
    Discard {
        /// Sectors to discard (from [`Checked::sector`]).
        sectors: u64,
        /// `BLKIF_DISCARD_SECURE` was asked for.
        secure: bool,
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
    /// The segments, in disk order (1..=11, up to the indirect maximum for an indirect
    /// request, none for a flush or a discard).
    pub segments: Vec<Segment>,
}

/// An indirect request whose slot passed the checks: its segments are still to be read from
/// the indirect pages ([`check_indirect`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Indirect {
    /// The front end's id, echoed.
    pub id: u64,
    /// `indirect_op`, echoed in the response (Linux answers with the operation inside).
    pub operation: u8,
    /// Read or write.
    pub kind: Kind,
    /// First 512-byte sector.
    pub sector: u64,
    /// Segments listed in the pages.
    pub nr_segments: usize,
    /// The grants of the pages holding the segment lists (as many as the segments need).
    pub pages: Vec<GrantRef>,
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
    /// An indirect request: read its segment lists, then [`check_indirect`].
    Indirect(Indirect),
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
        BLKIF_OP_DISCARD => return check_discard(request, disk),
        BLKIF_OP_INDIRECT if disk.max_indirect_segments > 0 => {
            return check_indirect_slot(request, disk);
        }
        _ => return answer(BLKIF_RSP_EOPNOTSUPP),
    };
    let count = usize::from(request.nr_segments);
    let flush = matches!(kind, Kind::Flush { .. });
    if (count == 0 && !flush) || count > BLKIF_MAX_SEGMENTS_PER_REQUEST {
        return answer(BLKIF_RSP_ERROR);
    }
    let head = Head {
        id,
        operation,
        kind,
        sector: request.sector_number,
    };
    check_segments(head, request.seg.iter().take(count), disk)
}

/// What a request's slot said, for the checks of its segments.
#[derive(Clone, Copy)]
struct Head {
    id: u64,
    operation: u8,
    kind: Kind,
    sector: u64,
}

/// `dispatch_discard_io`: the range against the disk (as a write), whole logical sectors, then
/// served if offered (a secure discard only if offered too; else a plain one, as Linux).
fn check_discard(request: &BlkifRequest, disk: &Geometry) -> Verdict {
    let discard = BlkifRequestDiscard::from_request(request);
    let answer = |status| Verdict::Answer {
        id: discard.id,
        operation: BLKIF_OP_DISCARD,
        status,
    };
    let unit = u64::from(disk.sector_size / 512).max(1);
    let whole =
        discard.sector_number.is_multiple_of(unit) && discard.nr_sectors.is_multiple_of(unit);
    if disk.readonly || !in_disk(discard.sector_number, discard.nr_sectors, disk) || !whole {
        return answer(BLKIF_RSP_ERROR);
    }
    if !disk.discard {
        return answer(BLKIF_RSP_EOPNOTSUPP);
    }
    Verdict::Serve(Checked {
        id: discard.id,
        operation: BLKIF_OP_DISCARD,
        kind: Kind::Discard {
            sectors: discard.nr_sectors,
            secure: discard.flag & BLKIF_DISCARD_SECURE != 0,
        },
        sector: discard.sector_number,
        segments: Vec::new(),
    })
}

/// The slot of an indirect request (`dispatch_rw_block_io`): a read or a write of 1..=the
/// offered segments, in as many indirect pages as they fill, none of them a reserved grant.
fn check_indirect_slot(request: &BlkifRequest, disk: &Geometry) -> Verdict {
    let ind = BlkifRequestIndirect::from_request(request);
    // Linux answers an indirect request, even a refused one, with the operation inside.
    let answer = |status| Verdict::Answer {
        id: ind.id,
        operation: ind.indirect_op,
        status,
    };
    let kind = match ind.indirect_op {
        BLKIF_OP_READ => Kind::Read,
        BLKIF_OP_WRITE => Kind::Write,
        _ => return answer(BLKIF_RSP_ERROR),
    };
    let count = usize::from(ind.nr_segments);
    let max = usize::try_from(disk.max_indirect_segments).unwrap_or(usize::MAX);
    if count == 0 || count > max {
        return answer(BLKIF_RSP_ERROR);
    }
    let pages = count.div_ceil(BLKIF_SEGMENTS_PER_INDIRECT_PAGE);
    let mut grefs = Vec::with_capacity(pages);
    for gref in ind.indirect_grefs.iter().take(pages) {
        match GrantRef::try_new(*gref) {
            Ok(g) => grefs.push(g),
            Err(_) => return answer(BLKIF_RSP_ERROR),
        }
    }
    if grefs.len() != pages || (kind != Kind::Read && disk.readonly) {
        return answer(BLKIF_RSP_ERROR);
    }
    Verdict::Indirect(Indirect {
        id: ind.id,
        operation: ind.indirect_op,
        kind,
        sector: ind.sector_number,
        nr_segments: count,
        pages: grefs,
    })
}

/// `xen_blkbk_parse_indirect` and the rest of `dispatch_rw_block_io`: the segments an
/// indirect request listed (`lists`: the bytes of its indirect pages, in order), each checked
/// as a direct one's (a segment crossing its page, `last_sect` before `first_sect`, a reserved
/// grant: `BLKIF_RSP_ERROR`), then the range and alignment.
pub fn check_indirect(request: &Indirect, lists: &[u8], disk: &Geometry) -> Verdict {
    let entry = size_of::<BlkifRequestSegment>();
    let head = Head {
        id: request.id,
        operation: request.operation,
        kind: request.kind,
        sector: request.sector,
    };
    let wanted = request.nr_segments.saturating_mul(entry);
    let Some(bytes) = lists.get(..wanted) else {
        return Verdict::Answer {
            id: request.id,
            operation: request.operation,
            status: BLKIF_RSP_ERROR,
        };
    };
    let segments: Vec<BlkifRequestSegment> = bytes
        .chunks_exact(entry)
        .map(|b| {
            let word = |i: usize| b.get(i).copied().unwrap_or(0);
            BlkifRequestSegment {
                gref: u32::from_le_bytes([word(0), word(1), word(2), word(3)]),
                first_sect: word(4),
                last_sect: word(5),
                _pad0: [0; 2],
            }
        })
        .collect();
    check_segments(head, segments.iter(), disk)
}

/// The segments of a read, write or flush: each in its page, then the range and alignment.
fn check_segments<'a>(
    head: Head,
    segs: impl Iterator<Item = &'a BlkifRequestSegment>,
    disk: &Geometry,
) -> Verdict {
    let Head {
        id,
        operation,
        kind,
        sector,
    } = head;
    let answer = |status| Verdict::Answer {
        id,
        operation,
        status,
    };
    let mut segments = Vec::new();
    let mut sectors = 0u64;
    for seg in segs {
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
    if (kind != Kind::Read && disk.readonly) || !in_disk(sector, sectors, disk) {
        return answer(BLKIF_RSP_ERROR);
    }
    let unit = u64::from(disk.sector_size / 512).max(1);
    let misaligned = |n: u64| !n.is_multiple_of(unit);
    // Linux checks alignment per segment, so a flush without segments is never misaligned.
    if segments
        .iter()
        .any(|s| misaligned(sector) || misaligned(s.len as u64 / SECTOR))
    {
        return answer(BLKIF_RSP_ERROR);
    }
    Verdict::Serve(Checked {
        id,
        operation,
        kind,
        sector,
        segments,
    })
}
