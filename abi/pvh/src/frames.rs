//! Free physical ranges (RAM minus what is in use) and a contiguous frame allocator over them,
//! for both kernels.
//!
//! Pure logic over numbers: a kernel feeds it the memory map and the reserved ranges (kernel
//! image, start info, modules, command line, the low 1 MiB), tests feed it synthetic maps. The
//! map is the loader's and may be untidy (duplicate, nested or overlapping RAM entries,
//! reserved or ACPI entries inside RAM): each frame is handed out at most once, and never one
//! outside RAM or inside a reserved range or a non-RAM entry.
#![warn(clippy::arithmetic_side_effects)]

use crate::boot_info::{MemoryRegion, RegionKind};

/// Size of a frame (page) in bytes.
pub const FRAME_SIZE: u64 = 4096;
/// How many disjoint free ranges are tracked; further ones are dropped (and counted).
pub const MAX_RANGES: usize = 32;

/// A half-open physical range `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PhysRange {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
}

impl PhysRange {
    /// The range `[start, start + len)`, saturating.
    pub fn from_len(start: u64, len: u64) -> Self {
        Self {
            start,
            end: start.saturating_add(len),
        }
    }

    /// Length in bytes.
    pub fn len(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }

    /// Whether the range is empty.
    pub fn is_empty(&self) -> bool {
        self.end <= self.start
    }
}

/// The free ranges: page-aligned, disjoint, sorted, below the mapped limit.
#[derive(Clone, Debug)]
pub struct FreeRanges {
    ranges: [PhysRange; MAX_RANGES],
    len: usize,
    /// Ranges that did not fit in the table (their memory is left unused).
    pub dropped: usize,
}

impl FreeRanges {
    /// RAM regions of `map` below `limit`, minus `reserved`, shrunk to whole frames.
    ///
    /// The map is the toolstack's and may be untidy: a frame is free only if no reserved
    /// range, no non-RAM map entry and no earlier RAM entry covers any byte of it. So
    /// duplicate or overlapping RAM entries hand out each frame once, and a reserved (or ACPI,
    /// ...) entry inside RAM is never free. The result is disjoint.
    pub fn compute(map: &[MemoryRegion], reserved: &[PhysRange], limit: u64) -> Self {
        let mut out = Self {
            ranges: [PhysRange { start: 0, end: 0 }; MAX_RANGES],
            len: 0,
            dropped: 0,
        };
        for (index, r) in map.iter().enumerate() {
            if r.kind != RegionKind::Ram {
                continue;
            }
            let start = align_up(r.base).min(limit);
            let end = (r.end() & !(FRAME_SIZE - 1)).min(limit);
            if start < end {
                let holes = Holes {
                    map,
                    ram_index: index,
                    reserved,
                };
                out.subtract_and_push(PhysRange { start, end }, &holes);
            }
        }
        out.ranges[..out.len].sort_unstable_by_key(|r| r.start);
        out
    }

    /// Pushes the parts of `range` that no hole overlaps.
    fn subtract_and_push(&mut self, range: PhysRange, holes: &Holes<'_>) {
        // Find the first hole overlapping `range`; split around it and recurse on the pieces
        // (depth is bounded by the number of holes: each piece misses the hole just found).
        match holes.first_overlapping(range) {
            None => self.push(range),
            Some(r) => {
                let below = PhysRange {
                    start: range.start,
                    end: r.start & !(FRAME_SIZE - 1),
                };
                let above = PhysRange {
                    start: align_up(r.end),
                    end: range.end,
                };
                if below.start < below.end && below.end <= range.end {
                    self.subtract_and_push(below, holes);
                }
                if above.start < above.end && above.start >= range.start {
                    self.subtract_and_push(above, holes);
                }
            }
        }
    }

    /// Removes the empty ranges (keeps the order).
    fn drop_empty(&mut self) {
        let mut kept = 0;
        for i in 0..self.len {
            if !self.ranges[i].is_empty() {
                self.ranges[kept] = self.ranges[i];
                kept = kept.saturating_add(1); // kept <= i < len
            }
        }
        self.len = kept;
    }

    /// Removes range `index` (keeps the order).
    fn remove(&mut self, index: usize) {
        if index < self.len {
            self.ranges
                .copy_within(index.saturating_add(1)..self.len, index);
            self.len = self.len.saturating_sub(1); // index < len: len >= 1
        }
    }

    fn push(&mut self, r: PhysRange) {
        if self.len < MAX_RANGES {
            self.ranges[self.len] = r;
            self.len = self.len.saturating_add(1); // below MAX_RANGES (checked)
        } else {
            self.dropped = self.dropped.saturating_add(1);
        }
    }

    /// The ranges.
    pub fn as_slice(&self) -> &[PhysRange] {
        &self.ranges[..self.len]
    }

    /// Total free bytes.
    pub fn total(&self) -> u64 {
        self.as_slice().iter().map(PhysRange::len).sum()
    }
}

/// What RAM entry `ram_index` of `map` must not hand out: the reserved ranges, every non-RAM
/// entry, and every earlier RAM entry (already handed out).
struct Holes<'a> {
    map: &'a [MemoryRegion],
    ram_index: usize,
    reserved: &'a [PhysRange],
}

impl Holes<'_> {
    /// The first hole overlapping `range`.
    fn first_overlapping(&self, range: PhysRange) -> Option<PhysRange> {
        let from_map = self
            .map
            .iter()
            .enumerate()
            .filter(|&(i, m)| m.kind != RegionKind::Ram || i < self.ram_index)
            .map(|(_, m)| PhysRange {
                start: m.base,
                end: m.end(),
            });
        self.reserved
            .iter()
            .copied()
            .chain(from_map)
            .find(|r| !r.is_empty() && r.start < range.end && r.end > range.start)
    }
}

/// Whether the sorted, disjoint `ranges` cover every byte of `[start, end)`.
fn covers(ranges: &[PhysRange], start: u64, end: u64) -> bool {
    let mut at = start;
    for r in ranges {
        if r.start <= at && at < r.end {
            at = r.end;
        }
        if at >= end {
            return true;
        }
    }
    at >= end
}

fn align_up(x: u64) -> u64 {
    x.saturating_add(FRAME_SIZE - 1) & !(FRAME_SIZE - 1)
}

/// Errors of the frame allocator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// No free range holds this many contiguous frames.
    OutOfMemory {
        /// Frames asked for.
        frames: u64,
    },
    /// Zero frames were asked for.
    ZeroSize,
    /// An alignment that is not a power of two.
    BadAlign(u64),
}

/// Why [`FrameAllocator::free`] refused a run (the free ranges are left as they were).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FreeError {
    /// An empty run.
    ZeroSize,
    /// The start or the length is not a whole number of frames.
    Misaligned {
        /// The run's start.
        start: u64,
        /// The run's length in bytes.
        bytes: u64,
    },
    /// Part of the run lies outside the ranges the allocator was built over.
    Outside {
        /// The run's start.
        start: u64,
        /// The run's length in bytes.
        bytes: u64,
    },
    /// Part of the run is free already (a double free).
    AlreadyFree {
        /// The run's start.
        start: u64,
        /// The run's length in bytes.
        bytes: u64,
    },
    /// The run touches no free range and the range table is full: the run stays out of the
    /// allocator for good and is counted in [`FrameAllocator::leaked_bytes`].
    TableFull {
        /// The run's start.
        start: u64,
        /// The run's length in bytes.
        bytes: u64,
    },
}

/// An allocator of contiguous frames over [`FreeRanges`]; [`FrameAllocator::free`] gives a run
/// back (hv, when a domain ends), merging it with its free neighbours.
///
/// Two policies over the same ranges: [`FrameAllocator::allocate`] bumps up from the bottom of
/// the first range that fits (pvguest), [`FrameAllocator::allocate_top`] takes an aligned run
/// from the top of the highest range that fits (hv: 2 MiB-aligned domain memory, leaving the
/// slack above it free).
#[derive(Clone, Debug)]
pub struct FrameAllocator {
    free: FreeRanges,
    /// The ranges the allocator was built over: only runs inside them may be given back.
    span: FreeRanges,
    /// Bytes given back that did not fit in the range table (see [`FreeError::TableFull`]).
    leaked: u64,
}

impl FrameAllocator {
    /// An allocator over `free`.
    pub fn new(free: FreeRanges) -> Self {
        Self {
            span: free.clone(),
            free,
            leaked: 0,
        }
    }

    /// Gives back the `bytes` at `start` (whole frames that this allocator handed out),
    /// merging them with the free ranges they touch.
    ///
    /// Refuses, leaving the free ranges as they were, a run that is empty, not whole frames,
    /// partly outside the ranges the allocator was built over, or partly free already (a
    /// double free). A run that touches no free range needs a range of its own: when the
    /// table ([`MAX_RANGES`]) is full, it is refused ([`FreeError::TableFull`]) and its bytes
    /// are counted in [`Self::leaked_bytes`], never written over another range.
    pub fn free(&mut self, start: u64, bytes: u64) -> Result<(), FreeError> {
        self.give_back(start, bytes, None)
    }

    /// As [`Self::free`], except that a run that needs a range of its own is refused
    /// ([`FreeError::TableFull`]) unless `keep` slots of the range table stay unused after
    /// it, and is then not counted leaked: the caller keeps it and may offer it again later
    /// (hv, for a page a domain balloons out while its neighbours are in use, leaving room
    /// for the runs other domains give back when they end). A run that merges is taken.
    pub fn free_if_room(&mut self, start: u64, bytes: u64, keep: usize) -> Result<(), FreeError> {
        self.give_back(start, bytes, Some(keep))
    }

    /// Gives a run back; `keep`: `None` counts a run the table cannot hold as leaked,
    /// `Some(k)` refuses a new range that would leave fewer than `k` slots.
    fn give_back(&mut self, start: u64, bytes: u64, keep: Option<usize>) -> Result<(), FreeError> {
        if bytes == 0 {
            return Err(FreeError::ZeroSize);
        }
        if !start.is_multiple_of(FRAME_SIZE) || !bytes.is_multiple_of(FRAME_SIZE) {
            return Err(FreeError::Misaligned { start, bytes });
        }
        let outside = FreeError::Outside { start, bytes };
        let end = start.checked_add(bytes).ok_or(outside)?;
        if !covers(self.span.as_slice(), start, end) {
            return Err(outside);
        }
        // Ranges emptied by allocations hold no memory: drop them (they would take a slot).
        self.free.drop_empty();
        let free = self.free.as_slice();
        if free.iter().any(|r| r.start < end && r.end > start) {
            return Err(FreeError::AlreadyFree { start, bytes });
        }
        let below = free.iter().position(|r| r.end == start);
        let above = free.iter().position(|r| r.start == end);
        match (below, above) {
            (Some(b), Some(a)) => {
                self.free.ranges[b].end = self.free.ranges[a].end;
                self.free.remove(a);
            }
            (Some(b), None) => self.free.ranges[b].end = end,
            (None, Some(a)) => self.free.ranges[a].start = start,
            (None, None) => {
                let limit = MAX_RANGES.saturating_sub(keep.unwrap_or(0));
                if self.free.len >= limit {
                    if keep.is_none() {
                        self.leaked = self.leaked.saturating_add(bytes);
                    }
                    return Err(FreeError::TableFull { start, bytes });
                }
                self.free.push(PhysRange { start, end });
                self.free.ranges[..self.free.len].sort_unstable_by_key(|r| r.start);
            }
        }
        Ok(())
    }

    /// Bytes given back that did not fit in the range table and are lost for good.
    pub fn leaked_bytes(&self) -> u64 {
        self.leaked
    }

    /// Ranges dropped because the table was full (at compute, or a tail of
    /// [`Self::allocate_top`]); their memory is never handed out.
    pub fn dropped_ranges(&self) -> usize {
        self.free.dropped
    }

    /// Allocates `frames` contiguous frames; returns the physical address of the first.
    pub fn allocate(&mut self, frames: u64) -> Result<u64, FrameError> {
        if frames == 0 {
            return Err(FrameError::ZeroSize);
        }
        let bytes = frames
            .checked_mul(FRAME_SIZE)
            .ok_or(FrameError::OutOfMemory { frames })?;
        let len = self.free.len;
        let range = self.free.ranges[..len]
            .iter_mut()
            .find(|r| r.len() >= bytes)
            .ok_or(FrameError::OutOfMemory { frames })?;
        let at = range.start;
        range.start = range.start.saturating_add(bytes); // range.len() >= bytes: stays <= end
        Ok(at)
    }

    /// Takes `bytes` (rounded up to whole frames) aligned to `align` (a power of two; less
    /// than a frame means a frame) from the top of the highest free range that holds it;
    /// returns the physical address. What lies above the run in that range stays free (if the
    /// range table is full, that tail is dropped and counted in [`FreeRanges::dropped`]).
    pub fn allocate_top(&mut self, bytes: u64, align: u64) -> Result<u64, FrameError> {
        if bytes == 0 {
            return Err(FrameError::ZeroSize);
        }
        if !align.is_power_of_two() {
            return Err(FrameError::BadAlign(align));
        }
        let frames = bytes.div_ceil(FRAME_SIZE);
        let oom = FrameError::OutOfMemory { frames };
        let bytes = frames.checked_mul(FRAME_SIZE).ok_or(oom)?;
        let mask = !align.max(FRAME_SIZE).wrapping_sub(1); // a power of two: no wrap
        let len = self.free.len;
        let (index, start) = self.free.ranges[..len]
            .iter()
            .enumerate()
            .filter_map(|(i, r)| {
                let start = r.end.checked_sub(bytes)? & mask;
                (start >= r.start).then_some((i, start))
            })
            .max_by_key(|&(_, start)| start)
            .ok_or(oom)?;
        let range = self.free.ranges[index];
        self.free.ranges[index].end = start;
        // start + bytes <= range.end: `start` was rounded down from `range.end - bytes`.
        let tail = PhysRange {
            start: start.saturating_add(bytes),
            end: range.end,
        };
        if !tail.is_empty() {
            self.free.push(tail);
        }
        self.free.ranges[..self.free.len].sort_unstable_by_key(|r| r.start);
        Ok(start)
    }

    /// The largest contiguous free run in bytes.
    pub fn largest_free(&self) -> u64 {
        self.free
            .as_slice()
            .iter()
            .map(PhysRange::len)
            .max()
            .unwrap_or(0)
    }

    /// Free bytes left.
    pub fn free_bytes(&self) -> u64 {
        self.free.total()
    }
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects, clippy::cast_possible_truncation)] // test arithmetic and indices on small known values
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MIB: u64 = 1 << 20;

    fn ram(base: u64, size: u64) -> MemoryRegion {
        MemoryRegion {
            base,
            size,
            kind: RegionKind::Ram,
        }
    }

    #[test]
    fn subtracts_low_mib_kernel_and_start_info() {
        let map = [
            ram(0, 32 * MIB),
            MemoryRegion {
                base: 0xfc00_0000,
                size: 64 * MIB,
                kind: RegionKind::Reserved,
            },
        ];
        let reserved = [
            PhysRange::from_len(0, MIB),
            PhysRange::from_len(MIB, 0x4_2345), // kernel image, unaligned end
            PhysRange::from_len(0x1f0_0000 + 0x10, 0x38), // start info inside a page
        ];
        let f = FreeRanges::compute(&map, &reserved, 4 << 30);
        assert_eq!(
            f.as_slice(),
            [
                PhysRange {
                    start: 0x14_3000,
                    end: 0x1f0_0000
                },
                PhysRange {
                    start: 0x1f0_1000,
                    end: 32 * MIB
                },
            ]
        );
    }

    #[test]
    fn unaligned_ram_is_shrunk_and_limit_applies() {
        let map = [ram(0x10_0800, 0x3000), ram(3 << 30, 2 << 30)];
        let f = FreeRanges::compute(&map, &[], 4 << 30);
        assert_eq!(
            f.as_slice(),
            [
                PhysRange {
                    start: 0x10_1000,
                    end: 0x10_3000
                },
                PhysRange {
                    start: 3 << 30,
                    end: 4 << 30
                },
            ]
        );
    }

    #[test]
    fn allocator_bumps_and_reports_exhaustion() {
        let f = FreeRanges::compute(
            &[ram(MIB, 3 * FRAME_SIZE), ram(4 * MIB, 8 * FRAME_SIZE)],
            &[],
            u64::MAX,
        );
        let mut a = FrameAllocator::new(f);
        assert_eq!(a.allocate(2), Ok(MIB));
        assert_eq!(
            a.allocate(2),
            Ok(4 * MIB),
            "the first range has one frame left"
        );
        assert_eq!(a.allocate(1), Ok(MIB + 2 * FRAME_SIZE));
        assert_eq!(a.allocate(7), Err(FrameError::OutOfMemory { frames: 7 }));
        assert_eq!(a.allocate(6), Ok(4 * MIB + 2 * FRAME_SIZE));
        assert_eq!(a.allocate(0), Err(FrameError::ZeroSize));
        assert_eq!(a.free_bytes(), 0);
    }

    #[test]
    fn duplicate_and_overlapping_ram_frames_handed_out_once() {
        let map = [ram(MIB, 4 * MIB), ram(MIB, 4 * MIB), ram(3 * MIB, 4 * MIB)];
        let f = FreeRanges::compute(&map, &[], 4 << 30);
        assert_eq!(f.total(), 6 * MIB, "{:?}", f.as_slice());
        let mut a = FrameAllocator::new(f);
        let mut seen = std::collections::BTreeSet::new();
        while let Ok(at) = a.allocate(1) {
            assert!(seen.insert(at), "frame {at:#x} handed out twice");
        }
        assert_eq!(seen.len() as u64, 6 * MIB / FRAME_SIZE);
    }

    #[test]
    fn reserved_and_acpi_entries_inside_ram_are_not_free() {
        let map = [
            ram(0, 32 * MIB),
            MemoryRegion {
                base: 8 * MIB + 0x800,
                size: 0x1000,
                kind: RegionKind::Reserved,
            },
            MemoryRegion {
                base: 16 * MIB,
                size: MIB,
                kind: RegionKind::Acpi,
            },
        ];
        let f = FreeRanges::compute(&map, &[], 4 << 30);
        assert_eq!(
            f.as_slice(),
            [
                PhysRange {
                    start: 0,
                    end: 8 * MIB
                },
                PhysRange {
                    start: 8 * MIB + 0x2000,
                    end: 16 * MIB
                },
                PhysRange {
                    start: 17 * MIB,
                    end: 32 * MIB
                },
            ]
        );
    }

    /// hv's use (moved from hv's own allocator): low memory and a reserved run subtracted,
    /// aligned runs from the top, the slack above an aligned run left free.
    #[test]
    fn allocate_top_takes_aligned_runs_from_the_top() {
        let map = [
            ram(0, 0x9f000),
            ram(0x10_0000, 0x1f0_0000),
            MemoryRegion {
                base: 0x200_0000,
                size: 0x1000,
                kind: RegionKind::Reserved,
            },
        ];
        let reserved = [
            PhysRange::from_len(0, 0x10_0000),
            PhysRange {
                start: 0x1f0_0000,
                end: 0x1f8_0001,
            },
        ];
        let mut a = FrameAllocator::new(FreeRanges::compute(&map, &reserved, 1 << 32));
        assert_eq!(a.free_bytes(), 0x1e0_0000 + (0x200_0000 - 0x1f8_1000));
        assert_eq!(a.allocate_top(0x1000, 0x1000), Ok(0x1ff_f000));
        assert_eq!(a.allocate_top(0x20_0000, 0x20_0000), Ok(0x1c0_0000));
        // The slack between the aligned run and the reserved run is still free.
        assert_eq!(a.allocate_top(0x10_0000, 0x10_0000), Ok(0x1e0_0000));
        assert_eq!(
            a.allocate_top(1 << 30, 0x1000),
            Err(FrameError::OutOfMemory {
                frames: (1 << 30) / FRAME_SIZE
            })
        );
        assert_eq!(a.allocate_top(0, 0x1000), Err(FrameError::ZeroSize));
        assert_eq!(a.allocate_top(1, 0x3000), Err(FrameError::BadAlign(0x3000)));
        assert_eq!(a.allocate_top(1, 0), Err(FrameError::BadAlign(0)));
    }

    #[test]
    fn free_merges_neighbours_and_refuses_bad_runs() {
        let mut a = FrameAllocator::new(FreeRanges::compute(
            &[ram(MIB, 8 * FRAME_SIZE)],
            &[],
            u64::MAX,
        ));
        let all = a.free_bytes();
        let x = a.allocate(2).unwrap();
        let y = a.allocate(2).unwrap();
        let z = a.allocate(2).unwrap();
        assert_eq!(a.free(y, 2 * FRAME_SIZE), Ok(()), "a hole of its own");
        assert_eq!(a.free.as_slice().len(), 2);
        assert_eq!(
            a.free(y + FRAME_SIZE, 2 * FRAME_SIZE),
            Err(FreeError::AlreadyFree {
                start: y + FRAME_SIZE,
                bytes: 2 * FRAME_SIZE
            })
        );
        assert_eq!(
            a.free(x - FRAME_SIZE, 2 * FRAME_SIZE),
            Err(FreeError::Outside {
                start: x - FRAME_SIZE,
                bytes: 2 * FRAME_SIZE
            })
        );
        assert_eq!(
            a.free(x + 1, FRAME_SIZE),
            Err(FreeError::Misaligned {
                start: x + 1,
                bytes: FRAME_SIZE
            })
        );
        assert_eq!(a.free(x, 0), Err(FreeError::ZeroSize));
        assert_eq!(
            a.free(!(FRAME_SIZE - 1), 2 * FRAME_SIZE)
                .map_err(|e| matches!(e, FreeError::Outside { .. })),
            Err(true)
        );
        assert_eq!(a.free(z, 2 * FRAME_SIZE), Ok(()), "merges below and above");
        assert_eq!(a.free.as_slice().len(), 1);
        assert_eq!(a.free(x, 2 * FRAME_SIZE), Ok(()), "merges above");
        assert_eq!(
            a.free.as_slice(),
            [PhysRange::from_len(MIB, 8 * FRAME_SIZE)]
        );
        assert_eq!(a.free_bytes(), all);
        assert_eq!(a.leaked_bytes(), 0);
    }

    /// A free that needs one range more than the table holds is refused and counted as
    /// leaked; the table is left as it was.
    #[test]
    fn free_into_a_full_table_is_refused_and_counted() {
        let frames = 2 * MAX_RANGES as u64 + 2;
        let mut a = FrameAllocator::new(FreeRanges::compute(
            &[ram(MIB, frames * FRAME_SIZE)],
            &[],
            u64::MAX,
        ));
        let base = a.allocate(frames).unwrap();
        // Every other frame back: MAX_RANGES disjoint ranges.
        for i in 0..MAX_RANGES as u64 {
            assert_eq!(a.free(base + 2 * i * FRAME_SIZE, FRAME_SIZE), Ok(()));
        }
        let before = a.free.as_slice().to_vec();
        let lone = base + 2 * MAX_RANGES as u64 * FRAME_SIZE + FRAME_SIZE;
        assert_eq!(
            a.free(lone, FRAME_SIZE),
            Err(FreeError::TableFull {
                start: lone,
                bytes: FRAME_SIZE
            })
        );
        assert_eq!(a.free.as_slice(), before.as_slice());
        assert_eq!(a.leaked_bytes(), FRAME_SIZE);
        // A run touching a free range still merges.
        assert_eq!(a.free(base + FRAME_SIZE, FRAME_SIZE), Ok(()));
        assert_eq!(a.free.as_slice().len(), MAX_RANGES - 1);
    }

    /// `free_if_room` refuses what `free` refuses, but a full table leaks nothing: the caller
    /// keeps the run and can give it back once it touches a free range; slots asked to stay
    /// unused stay unused, though a run that merges is still taken.
    #[test]
    fn free_if_room_into_a_full_table_is_refused_and_not_counted() {
        let frames = 2 * MAX_RANGES as u64 + 2;
        let mut a = FrameAllocator::new(FreeRanges::compute(
            &[ram(MIB, frames * FRAME_SIZE)],
            &[],
            u64::MAX,
        ));
        let base = a.allocate(frames).unwrap();
        for i in 0..MAX_RANGES as u64 {
            assert_eq!(
                a.free_if_room(base + 2 * i * FRAME_SIZE, FRAME_SIZE, 0),
                Ok(())
            );
        }
        let lone = base + 2 * MAX_RANGES as u64 * FRAME_SIZE + FRAME_SIZE;
        let free_before = a.free_bytes();
        assert_eq!(
            a.free_if_room(lone, FRAME_SIZE, 0),
            Err(FreeError::TableFull {
                start: lone,
                bytes: FRAME_SIZE
            })
        );
        assert_eq!((a.free_bytes(), a.leaked_bytes()), (free_before, 0));
        assert_eq!(
            a.free_if_room(base, FRAME_SIZE, 0),
            Err(FreeError::AlreadyFree {
                start: base,
                bytes: FRAME_SIZE
            })
        );
        assert_eq!(a.free_if_room(base + FRAME_SIZE, FRAME_SIZE, 0), Ok(()));
        assert_eq!(a.free_bytes(), free_before + FRAME_SIZE);

        let mut a = FrameAllocator::new(FreeRanges::compute(
            &[ram(MIB, frames * FRAME_SIZE)],
            &[],
            u64::MAX,
        ));
        let base = a.allocate(frames).unwrap();
        for i in 0..MAX_RANGES as u64 - 4 {
            assert_eq!(
                a.free_if_room(base + 2 * i * FRAME_SIZE, FRAME_SIZE, 4),
                Ok(())
            );
        }
        let next = base + 2 * (MAX_RANGES as u64 - 4) * FRAME_SIZE;
        assert_eq!(
            a.free_if_room(next, FRAME_SIZE, 4),
            Err(FreeError::TableFull {
                start: next,
                bytes: FRAME_SIZE
            })
        );
        assert_eq!(a.free_if_room(base + FRAME_SIZE, FRAME_SIZE, 4), Ok(()));
        assert_eq!(a.free(next, FRAME_SIZE), Ok(()));
        assert_eq!(a.leaked_bytes(), 0);
    }

    /// A frame's state in the allocate/free model.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Frame {
        /// Not in the ranges the allocator was built over.
        Unmanaged,
        Free,
        Allocated,
    }

    /// The model's answer to a free of frames `[first, first + count)`.
    fn model_free_run(model: &[Frame], first: u64, count: u64) -> Result<(), &'static str> {
        let run = (first..first + count)
            .map(|f| model.get(f as usize).copied().unwrap_or(Frame::Unmanaged));
        if run.clone().any(|f| f == Frame::Unmanaged) {
            Err("outside")
        } else if run.clone().any(|f| f == Frame::Free) {
            Err("double free")
        } else {
            Ok(())
        }
    }

    /// The allocator's free frames, as the model's states.
    fn allocator_frames(a: &FrameAllocator, n: usize) -> Vec<bool> {
        let mut free = vec![false; n];
        for r in a.free.as_slice() {
            for f in r.start / FRAME_SIZE..r.end / FRAME_SIZE {
                free[f as usize] = true;
            }
        }
        free
    }

    /// Bytes of the address space the untidy maps below live in.
    const SPACE: u64 = 16 * MIB;
    const SPACE_FRAMES: u64 = SPACE / FRAME_SIZE;

    /// How an untidy map is made: some RAM entries, then extras placed relative to one of
    /// them (by index, modulo the count) and inserted at any position, so a duplicate or a
    /// nested entry may come before the one it copies.
    #[derive(Clone, Debug)]
    struct Untidy {
        ram: Vec<(u64, u64)>,
        extras: Vec<(u8, usize, u64, u64, usize)>,
        aligned: bool,
    }

    fn untidy() -> impl Strategy<Value = Untidy> {
        (
            proptest::collection::vec((0..SPACE, 0..SPACE / 2), 1..4),
            proptest::collection::vec(
                (
                    0u8..6,
                    any::<usize>(),
                    any::<u64>(),
                    any::<u64>(),
                    any::<usize>(),
                ),
                0..8,
            ),
            any::<bool>(),
        )
            .prop_map(|(ram, extras, aligned)| Untidy {
                ram,
                extras,
                aligned,
            })
    }

    impl Untidy {
        /// The map: extras of kind 0 duplicate an entry, 1 nest a RAM entry inside it, 2 and 3
        /// put a reserved or ACPI entry inside it, 4 a reserved entry over its end, 5 a RAM
        /// entry overlapping its end. With `aligned`, RAM entries are whole frames.
        fn map(&self) -> Vec<MemoryRegion> {
            let frame = |x: u64| {
                if self.aligned {
                    x & !(FRAME_SIZE - 1)
                } else {
                    x
                }
            };
            let mut map: Vec<_> = self
                .ram
                .iter()
                .map(|&(b, s)| ram(frame(b), frame(s)))
                .collect();
            for &(kind, index, off, len, pos) in &self.extras {
                let of = map[index % map.len()];
                let size = of.size.max(1);
                let off = off % size;
                let len = len % (size - off) + 1;
                let (base, size, kind) = match kind {
                    0 => (of.base, of.size, of.kind),
                    1 => (of.base + off, len, RegionKind::Ram),
                    2 => (of.base + off, len, RegionKind::Reserved),
                    3 => (of.base + off, len, RegionKind::Acpi),
                    4 => (of.end().saturating_sub(len), 2 * len, RegionKind::Reserved),
                    _ => (of.end().saturating_sub(len), 2 * len, RegionKind::Ram),
                };
                let (base, size) = if kind == RegionKind::Ram {
                    (frame(base), frame(size))
                } else {
                    (base, size)
                };
                map.insert(pos % (map.len() + 1), MemoryRegion { base, size, kind });
            }
            map
        }
    }

    /// The model: frame `f` is free iff it lies below `limit`, one RAM entry holds all of it,
    /// and no reserved range or non-RAM entry touches it.
    fn model_free(map: &[MemoryRegion], reserved: &[PhysRange], limit: u64) -> Vec<bool> {
        (0..SPACE_FRAMES * 2)
            .map(|f| {
                let (start, end) = (f * FRAME_SIZE, (f + 1) * FRAME_SIZE);
                let touches = |b: u64, e: u64| b < e && b < end && e > start;
                end <= limit
                    && map
                        .iter()
                        .any(|m| m.kind == RegionKind::Ram && m.contains_range(start, end))
                    && !map
                        .iter()
                        .any(|m| m.kind != RegionKind::Ram && touches(m.base, m.end()))
                    && !reserved.iter().any(|r| touches(r.start, r.end))
            })
            .collect()
    }

    /// Marks the frames of `[at, at + bytes)` handed out; fails on a frame handed out twice or
    /// one the model does not call free.
    fn hand_out(
        at: u64,
        bytes: u64,
        model: &[bool],
        seen: &mut [bool],
    ) -> Result<(), TestCaseError> {
        prop_assert!(
            at.is_multiple_of(FRAME_SIZE) && bytes.is_multiple_of(FRAME_SIZE),
            "{at:#x}+{bytes:#x} not whole frames"
        );
        for f in at / FRAME_SIZE..(at + bytes) / FRAME_SIZE {
            let f = usize::try_from(f).unwrap();
            prop_assert!(
                f < model.len() && model[f],
                "frame {:#x} is not free RAM",
                f as u64 * FRAME_SIZE
            );
            prop_assert!(
                !seen[f],
                "frame {:#x} handed out twice",
                f as u64 * FRAME_SIZE
            );
            seen[f] = true;
        }
        Ok(())
    }

    proptest! {
        /// Free ranges are whole frames below the limit, pairwise disjoint, each inside one
        /// RAM entry, and outside every reserved range and every non-RAM map entry.
        #[test]
        fn free_ranges_disjoint_in_ram_outside_reserved(
            regions in proptest::collection::vec(
                (0u64..1 << 32, 0u64..1 << 28, prop_oneof![Just(RegionKind::Ram), Just(RegionKind::Reserved), Just(RegionKind::Acpi)]),
                0..8,
            ),
            duplicate in any::<bool>(),
            reserved in proptest::collection::vec((0u64..1 << 32, 0u64..1 << 26), 0..6),
        ) {
            let mut map: Vec<_> = regions.iter().map(|&(base, size, kind)| MemoryRegion {
                base, size, kind,
            }).collect();
            if duplicate && let Some(&first) = map.first() {
                map.push(first);
            }
            let res: Vec<_> = reserved.iter().map(|&(b, s)| PhysRange::from_len(b, s)).collect();
            let f = FreeRanges::compute(&map, &res, 1 << 32);
            let free = f.as_slice();
            for (i, r) in free.iter().enumerate() {
                prop_assert!(r.start < r.end && r.start % FRAME_SIZE == 0 && r.end % FRAME_SIZE == 0);
                prop_assert!(r.end <= 1 << 32);
                prop_assert!(map.iter().any(|m| m.kind == RegionKind::Ram && m.contains_range(r.start, r.end)));
                for x in &res {
                    prop_assert!(x.is_empty() || x.end <= r.start || x.start >= r.end, "{r:?} overlaps {x:?}");
                }
                for m in map.iter().filter(|m| m.kind != RegionKind::Ram && m.size > 0) {
                    prop_assert!(m.end() <= r.start || m.base >= r.end, "{r:?} overlaps {m:?}");
                }
                for other in &free[i + 1..] {
                    prop_assert!(other.end <= r.start || other.start >= r.end, "{r:?} overlaps {other:?}");
                }
            }
        }

        /// With duplicate, nested and overlapping RAM entries and reserved or ACPI entries
        /// inside RAM, the free ranges are whole frames below the limit, disjoint, and free by
        /// the model; with frame-aligned RAM they are exactly the model's free frames.
        #[test]
        fn untidy_maps_free_ranges_match_the_model(
            u in untidy(),
            reserved in proptest::collection::vec((0..SPACE, 0..SPACE / 8), 0..4),
            limit_frames in SPACE_FRAMES / 2..=SPACE_FRAMES * 2,
        ) {
            let map = u.map();
            let res: Vec<_> = reserved.iter().map(|&(b, s)| PhysRange::from_len(b, s)).collect();
            let limit = limit_frames * FRAME_SIZE;
            let model = model_free(&map, &res, limit);
            let f = FreeRanges::compute(&map, &res, limit);
            let mut seen = vec![false; model.len()];
            for (i, r) in f.as_slice().iter().enumerate() {
                prop_assert!(!r.is_empty() && r.end <= limit);
                for other in &f.as_slice()[i + 1..] {
                    prop_assert!(other.end <= r.start || other.start >= r.end, "{r:?} overlaps {other:?}");
                }
                hand_out(r.start, r.len(), &model, &mut seen)?;
            }
            if u.aligned && f.dropped == 0 {
                prop_assert_eq!(seen, model, "free frames differ from the model for {:?}", map);
            }
        }

        /// Allocation over untidy maps, mixing both policies and then draining frame by
        /// frame: no frame is handed out twice, none outside RAM, none in a reserved range or
        /// a non-RAM entry; with frame-aligned RAM every free frame is handed out in the end.
        #[test]
        fn untidy_maps_allocations_once_in_ram_outside_holes(
            u in untidy(),
            reserved in proptest::collection::vec((0..SPACE, 0..SPACE / 8), 0..4),
            ops in proptest::collection::vec((any::<bool>(), 1u64..64, 0u32..10), 0..24),
        ) {
            let map = u.map();
            let res: Vec<_> = reserved.iter().map(|&(b, s)| PhysRange::from_len(b, s)).collect();
            let model = model_free(&map, &res, SPACE * 2);
            let mut a = FrameAllocator::new(FreeRanges::compute(&map, &res, SPACE * 2));
            let mut seen = vec![false; model.len()];
            for (top, frames, align_log) in ops {
                if top {
                    let bytes = frames * FRAME_SIZE - 1; // rounded up to `frames`
                    if let Ok(at) = a.allocate_top(bytes, FRAME_SIZE << align_log) {
                        prop_assert!(at.is_multiple_of(FRAME_SIZE << align_log), "{at:#x} misaligned");
                        hand_out(at, frames * FRAME_SIZE, &model, &mut seen)?;
                    }
                } else if let Ok(at) = a.allocate(frames) {
                    hand_out(at, frames * FRAME_SIZE, &model, &mut seen)?;
                }
            }
            while let Ok(at) = a.allocate(1) {
                hand_out(at, FRAME_SIZE, &model, &mut seen)?;
            }
            prop_assert_eq!(a.free_bytes(), 0);
            if u.aligned && a.free.dropped == 0 {
                prop_assert_eq!(seen, model, "frames never handed out for {:?}", map);
            }
        }
        /// Random allocations (both policies) and frees (of whole allocations, of parts, of
        /// arbitrary runs) against a frame-level model: a free is refused exactly when part
        /// of the run is outside the allocator's ranges or free already; after each step the
        /// free frames are the model's; after giving everything back the free bytes are
        /// those at the start.
        #[test]
        fn allocate_and_free_match_a_frame_model(
            u in untidy(),
            reserved in proptest::collection::vec((0..SPACE, 0..SPACE / 8), 0..4),
            ops in proptest::collection::vec(
                (0u8..5, 1u64..64, 0u32..6, any::<usize>(), 0..SPACE_FRAMES * 2),
                0..40,
            ),
        ) {
            let u = Untidy { aligned: true, ..u };
            let map = u.map();
            let res: Vec<_> = reserved.iter().map(|&(b, s)| PhysRange::from_len(b, s)).collect();
            let mut a = FrameAllocator::new(FreeRanges::compute(&map, &res, SPACE * 2));
            let start_bytes = a.free_bytes();
            let n = (SPACE_FRAMES * 2) as usize;
            let mut model: Vec<Frame> = allocator_frames(&a, n)
                .into_iter()
                .map(|f| if f { Frame::Free } else { Frame::Unmanaged })
                .collect();
            let mut live: Vec<(u64, u64)> = Vec::new();
            let mut freed: Vec<(u64, u64)> = Vec::new();
            for (op, frames, align_log, pick, first) in ops {
                let run = match op {
                    0 | 1 => {
                        let got = if op == 0 {
                            a.allocate(frames)
                        } else {
                            a.allocate_top(frames * FRAME_SIZE, FRAME_SIZE << align_log)
                        };
                        if let Ok(at) = got {
                            for f in at / FRAME_SIZE..at / FRAME_SIZE + frames {
                                prop_assert_eq!(model[f as usize], Frame::Free, "frame {} handed out", f);
                                model[f as usize] = Frame::Allocated;
                            }
                            live.push((at / FRAME_SIZE, frames));
                        }
                        None
                    }
                    2 if !live.is_empty() => Some(live.swap_remove(pick % live.len())),
                    3 if !freed.is_empty() => Some(freed[pick % freed.len()]),
                    _ => Some((first, frames)),
                };
                if let Some((first, count)) = run {
                    let want = model_free_run(&model, first, count);
                    let got = a.free(first * FRAME_SIZE, count * FRAME_SIZE);
                    match (want, got) {
                        (Ok(()), Ok(())) => {
                            for f in first..first + count {
                                model[f as usize] = Frame::Free;
                            }
                            freed.push((first, count));
                        }
                        (Ok(()), Err(FreeError::TableFull { .. })) => {
                            for f in first..first + count {
                                model[f as usize] = Frame::Unmanaged; // leaked
                            }
                        }
                        (Err("outside"), Err(FreeError::Outside { .. })) => {}
                        (Err("double free"), Err(FreeError::AlreadyFree { .. })) => {}
                        (want, got) => prop_assert!(false, "free of frames {first}+{count}: model {want:?}, allocator {got:?}"),
                    }
                }
                if a.dropped_ranges() == 0 {
                    let free: Vec<bool> = model.iter().map(|&f| f == Frame::Free).collect();
                    prop_assert_eq!(allocator_frames(&a, n), free);
                }
            }
            // Give back everything still allocated, run by run.
            let mut f = 0;
            while f < n {
                if model[f] != Frame::Allocated {
                    f += 1;
                    continue;
                }
                let first = f;
                while f < n && model[f] == Frame::Allocated {
                    f += 1;
                }
                let got = a.free(first as u64 * FRAME_SIZE, (f - first) as u64 * FRAME_SIZE);
                prop_assert!(matches!(got, Ok(()) | Err(FreeError::TableFull { .. })), "{got:?}");
            }
            if a.dropped_ranges() == 0 {
                prop_assert_eq!(a.free_bytes() + a.leaked_bytes(), start_bytes);
                if a.leaked_bytes() == 0 {
                    prop_assert_eq!(a.free_bytes(), start_bytes);
                }
            }
        }
    }
}
