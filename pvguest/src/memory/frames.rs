//! Free physical ranges (RAM minus what is in use) and a contiguous frame allocator over them.
//!
//! Pure logic over numbers: the kernel feeds it the memory map and the reserved ranges (kernel
//! image, start info, modules, command line, the low 1 MiB), tests feed it synthetic maps.

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
    pub fn compute(map: &[MemoryRegion], reserved: &[PhysRange], limit: u64) -> Self {
        let mut out = Self {
            ranges: [PhysRange { start: 0, end: 0 }; MAX_RANGES],
            len: 0,
            dropped: 0,
        };
        for r in map.iter().filter(|r| r.kind == RegionKind::Ram) {
            let start = align_up(r.base).min(limit);
            let end = (r.end() & !(FRAME_SIZE - 1)).min(limit);
            if start < end {
                out.subtract_and_push(PhysRange { start, end }, reserved);
            }
        }
        out.ranges[..out.len].sort_unstable_by_key(|r| r.start);
        out
    }

    /// Pushes the parts of `range` that no reserved range overlaps.
    fn subtract_and_push(&mut self, range: PhysRange, reserved: &[PhysRange]) {
        // Find the first reserved range overlapping `range`; split around it and recurse on
        // the pieces (depth is bounded by the number of reserved ranges).
        let hit = reserved
            .iter()
            .find(|r| !r.is_empty() && r.start < range.end && r.end > range.start);
        match hit {
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
                    self.subtract_and_push(below, reserved);
                }
                if above.start < above.end && above.start >= range.start {
                    self.subtract_and_push(above, reserved);
                }
            }
        }
    }

    fn push(&mut self, r: PhysRange) {
        if self.len < MAX_RANGES {
            self.ranges[self.len] = r;
            self.len += 1;
        } else {
            self.dropped += 1;
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
        range.start += bytes;
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

    proptest! {
        #[test]
        fn free_ranges_avoid_reserved_and_stay_in_ram(
            regions in proptest::collection::vec((0u64..1 << 32, 0u64..1 << 28, any::<bool>()), 0..6),
            reserved in proptest::collection::vec((0u64..1 << 32, 0u64..1 << 26), 0..6),
        ) {
            let map: Vec<_> = regions.iter().map(|&(b, s, is_ram)| MemoryRegion {
                base: b, size: s, kind: if is_ram { RegionKind::Ram } else { RegionKind::Reserved },
            }).collect();
            let res: Vec<_> = reserved.iter().map(|&(b, s)| PhysRange::from_len(b, s)).collect();
            let f = FreeRanges::compute(&map, &res, 1 << 32);
            for r in f.as_slice() {
                prop_assert!(r.start < r.end && r.start % FRAME_SIZE == 0 && r.end % FRAME_SIZE == 0);
                prop_assert!(r.end <= 1 << 32);
                prop_assert!(map.iter().any(|m| m.kind == RegionKind::Ram && m.contains_range(r.start, r.end)));
                for x in &res {
                    prop_assert!(x.is_empty() || x.end <= r.start || x.start >= r.end, "{r:?} overlaps {x:?}");
                }
            }
        }
    }
}
