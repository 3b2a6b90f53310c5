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

/// An allocator of contiguous frames over [`FreeRanges`]; frames are never returned (the
/// kernels allocate long-lived regions: the heap, hv's domain memory and tables).
///
/// Two policies over the same ranges: [`FrameAllocator::allocate`] bumps up from the bottom of
/// the first range that fits (pvguest), [`FrameAllocator::allocate_top`] takes an aligned run
/// from the top of the highest range that fits (hv: 2 MiB-aligned domain memory, leaving the
/// slack above it free).
#[derive(Clone, Debug)]
pub struct FrameAllocator {
    free: FreeRanges,
}

impl FrameAllocator {
    /// An allocator over `free`.
    pub fn new(free: FreeRanges) -> Self {
        Self { free }
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
#[allow(clippy::arithmetic_side_effects)] // test arithmetic on small known values
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
    }
}
