//! Free physical ranges (RAM minus what is in use) and a contiguous frame allocator over them.
//!
//! Pure logic over numbers: the kernel feeds it the memory map and the reserved ranges (kernel
//! image, start info, modules, command line, the low 1 MiB), tests feed it synthetic maps.
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
}

/// A bump allocator of contiguous frames over [`FreeRanges`] (frames are never returned: the
/// kernel allocates its long-lived regions, such as the heap, once at boot).
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
    fn a0b_1_frames_disjoint_with_duplicate_ram() {
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
    fn a0b_1_reserved_map_entry_inside_ram_is_not_free() {
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

    proptest! {
        /// Free ranges are whole frames below the limit, pairwise disjoint, each inside one
        /// RAM entry, and outside every reserved range and every non-RAM map entry.
        #[test]
        fn a0b_1_free_ranges_disjoint_in_ram_outside_reserved(
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
    }
}
