//! hv's frame allocator: RAM from the memory map minus what is in use (low memory, hv's
//! image, the boot data, the guest ELF module), handed out from the top down, never freed.

use crate::boot_info::MemRange;

/// Page size.
pub const FRAME_SIZE: u64 = 4096;
/// Most free ranges tracked.
pub const MAX_RANGES: usize = 32;

/// A half-open physical range `[start, end)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Range {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
}

/// Errors of the allocator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// No free run of this many bytes at this alignment.
    OutOfMemory {
        /// Bytes asked for.
        bytes: u64,
    },
}

/// Free physical memory.
#[derive(Clone, Debug)]
pub struct Frames {
    free: [Range; MAX_RANGES],
    len: usize,
}

impl Frames {
    /// RAM (type 1) of `map` below `limit`, page-aligned, minus every range in `reserved`.
    pub fn new(map: &[MemRange], reserved: &[Range], limit: u64) -> Self {
        let mut f = Self {
            free: [Range::default(); MAX_RANGES],
            len: 0,
        };
        for r in map.iter().filter(|r| r.kind == 1) {
            let start = r.base.saturating_add(FRAME_SIZE - 1) & !(FRAME_SIZE - 1);
            let end = r.base.saturating_add(r.size).min(limit) & !(FRAME_SIZE - 1);
            if start < end {
                f.push(Range { start, end });
            }
        }
        for &res in reserved {
            f.remove(res);
        }
        f
    }

    fn push(&mut self, r: Range) {
        if self.len < MAX_RANGES {
            self.free[self.len] = r;
            self.len += 1;
        }
    }

    fn remove(&mut self, res: Range) {
        let res = Range {
            start: res.start & !(FRAME_SIZE - 1),
            end: res.end.saturating_add(FRAME_SIZE - 1) & !(FRAME_SIZE - 1),
        };
        let old = self.free;
        let n = self.len;
        self.len = 0;
        for r in &old[..n] {
            if res.end <= r.start || res.start >= r.end {
                self.push(*r);
                continue;
            }
            if r.start < res.start {
                self.push(Range {
                    start: r.start,
                    end: res.start,
                });
            }
            if res.end < r.end {
                self.push(Range {
                    start: res.end,
                    end: r.end,
                });
            }
        }
    }

    /// Takes `bytes` (rounded up to pages) aligned to `align` (a power of two, at least a
    /// page) from the top of the highest range that fits; the physical address.
    pub fn allocate(&mut self, bytes: u64, align: u64) -> Result<u64, FrameError> {
        let bytes = bytes.max(1).saturating_add(FRAME_SIZE - 1) & !(FRAME_SIZE - 1);
        let align = align.max(FRAME_SIZE);
        let mut best: Option<(usize, u64)> = None;
        for (i, r) in self.free[..self.len].iter().enumerate() {
            let Some(top) = r.end.checked_sub(bytes) else {
                continue;
            };
            let start = top & !(align - 1);
            if start >= r.start && best.is_none_or(|(_, b)| start > b) {
                best = Some((i, start));
            }
        }
        let (i, start) = best.ok_or(FrameError::OutOfMemory { bytes })?;
        let r = self.free[i];
        // The tail above the allocation (alignment slack) stays free.
        self.free[i].end = start;
        if start + bytes < r.end {
            self.push(Range {
                start: start + bytes,
                end: r.end,
            });
        }
        Ok(start)
    }

    /// Free bytes.
    pub fn free_bytes(&self) -> u64 {
        self.free[..self.len].iter().map(|r| r.end - r.start).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ram(base: u64, size: u64) -> MemRange {
        MemRange {
            base,
            size,
            kind: 1,
        }
    }

    #[test]
    fn reserves_and_allocates_from_the_top() {
        let map = [
            ram(0, 0x9f000),
            ram(0x100000, 0x1f00000),
            MemRange {
                base: 0x2000000,
                size: 0x1000,
                kind: 2,
            },
        ];
        let reserved = [
            Range {
                start: 0,
                end: 0x100000,
            },
            Range {
                start: 0x1f00000,
                end: 0x1f80001,
            },
        ];
        let mut f = Frames::new(&map, &reserved, 1 << 32);
        assert_eq!(f.free_bytes(), 0x1e00000 + (0x2000000 - 0x1f81000));
        let a = f.allocate(0x1000, 0x1000).unwrap();
        assert_eq!(a, 0x1fff000);
        let b = f.allocate(0x200000, 0x200000).unwrap();
        assert_eq!(b, 0x1c00000);
        assert!(!(0x1f00000..0x1f81000).contains(&b));
        assert_eq!(
            f.allocate(1 << 30, 0x1000),
            Err(FrameError::OutOfMemory { bytes: 1 << 30 })
        );
    }

    proptest::proptest! {
        #[test]
        fn allocations_never_overlap_reserved_or_each_other(
            sizes in proptest::collection::vec(1u64..0x300000, 1..20),
            res_start in 0u64..0x4000000, res_len in 0u64..0x1000000,
        ) {
            let map = [ram(0, 0x4000000)];
            let reserved = [Range { start: res_start, end: res_start + res_len }];
            let mut f = Frames::new(&map, &reserved, 1 << 32);
            let mut got: Vec<(u64, u64)> = Vec::new();
            for s in sizes {
                if let Ok(a) = f.allocate(s, 0x1000) {
                    let e = a + s;
                    proptest::prop_assert!(e <= res_start || a >= (res_start + res_len) || res_len == 0);
                    for &(x, y) in &got {
                        proptest::prop_assert!(e <= x || a >= y);
                    }
                    got.push((a, e));
                }
            }
        }
    }
}
