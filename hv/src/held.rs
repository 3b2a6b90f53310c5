//! Frames of dead domains that other domains still map through grants: Xen keeps such a page
//! referenced until the last mapping of it is unmapped; hv keeps the frame out of its
//! allocator until then ([`HeldFrames`]), and a dying domain's teardown gives back its runs
//! of frames around the held ones ([`free_except`]).

use alloc::vec::Vec;

use crate::frames::{FRAME_SIZE, FrameAllocator, FreeError};

/// A dead domain's frame and the mappings still holding it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeldFrame {
    /// The dead granter.
    pub dom: u16,
    /// The host frame.
    pub frame: u64,
    /// Mappings still holding it.
    pub maps: u32,
}

/// Every held frame.
#[derive(Clone, Debug, Default)]
pub struct HeldFrames {
    frames: Vec<HeldFrame>,
}

impl HeldFrames {
    /// One more mapping holds `frame` of dead domain `dom`; whether the frame was not held
    /// before (the caller then keeps it out of the teardown).
    pub fn hold(&mut self, dom: u16, frame: u64) -> bool {
        match self
            .frames
            .iter_mut()
            .find(|h| h.dom == dom && h.frame == frame)
        {
            Some(h) => {
                h.maps = h.maps.saturating_add(1);
                false
            }
            None => {
                self.frames.push(HeldFrame {
                    dom,
                    frame,
                    maps: 1,
                });
                true
            }
        }
    }

    /// A mapping of `frame` of dead domain `dom` ended: with the last one, the frame goes
    /// back to `frames`. `Ok(true)` if it went back, `Ok(false)` if others still hold it or
    /// it was not held.
    pub fn release(
        &mut self,
        dom: u16,
        frame: u64,
        frames: &mut FrameAllocator,
    ) -> Result<bool, FreeError> {
        let Some(i) = self
            .frames
            .iter()
            .position(|h| h.dom == dom && h.frame == frame)
        else {
            return Ok(false);
        };
        self.frames[i].maps = self.frames[i].maps.saturating_sub(1);
        if self.frames[i].maps > 0 {
            return Ok(false);
        }
        let h = self.frames.swap_remove(i);
        frames.free(h.frame, FRAME_SIZE).map(|()| true)
    }

    /// How many frames are held.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }
}

/// Gives `[start, start + bytes)` back to `frames` except the frames in `held` (page
/// addresses), in the runs between them; the number of frames given back, or the first
/// refusal (the runs before it were given back).
pub fn free_except(
    frames: &mut FrameAllocator,
    start: u64,
    bytes: u64,
    held: &[u64],
) -> Result<u64, FreeError> {
    let end = start.saturating_add(bytes);
    let mut at = start;
    let mut back = 0u64;
    while at < end {
        let next = held
            .iter()
            .copied()
            .filter(|&h| h >= at && h < end)
            .min()
            .unwrap_or(end);
        if next > at {
            frames.free(at, next - at)?;
            back = back.saturating_add((next - at) / FRAME_SIZE);
        }
        at = next.saturating_add(FRAME_SIZE);
    }
    Ok(back)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pvh::frames::{FreeRanges, PhysRange};

    fn allocator() -> FrameAllocator {
        let ram = [pvh::boot_info::MemoryRegion {
            base: 0x10_0000,
            size: 0x100_0000,
            kind: pvh::boot_info::RegionKind::Ram,
        }];
        FrameAllocator::new(FreeRanges::compute(&ram, &[] as &[PhysRange], 1 << 32))
    }

    #[test]
    fn a_run_goes_back_around_held_frames_which_go_back_with_their_last_mapping() {
        let mut f = allocator();
        let free0 = f.free_bytes();
        let block = f.allocate_top(16 * FRAME_SIZE, FRAME_SIZE).unwrap();
        let (a, b) = (block + 3 * FRAME_SIZE, block + 15 * FRAME_SIZE);
        let mut held = HeldFrames::default();
        assert!(held.hold(2, a));
        assert!(!held.hold(2, a), "a second mapping of the same frame");
        assert!(held.hold(2, b));
        assert_eq!(free_except(&mut f, block, 16 * FRAME_SIZE, &[a, b]), Ok(14));
        assert_eq!(f.free_bytes(), free0 - 2 * FRAME_SIZE);
        // a: two mappings; b: one.
        assert_eq!(held.release(2, a, &mut f), Ok(false));
        assert_eq!(held.release(2, b, &mut f), Ok(true));
        assert_eq!(
            held.release(3, a, &mut f),
            Ok(false),
            "another domain's frame"
        );
        assert_eq!(held.release(2, a, &mut f), Ok(true));
        assert!(held.is_empty());
        assert_eq!(f.free_bytes(), free0, "every frame back");
        assert_eq!(held.release(2, a, &mut f), Ok(false), "not held any more");
    }

    #[test]
    fn nothing_held_gives_the_whole_run_back() {
        let mut f = allocator();
        let free0 = f.free_bytes();
        let block = f.allocate_top(8 * FRAME_SIZE, FRAME_SIZE).unwrap();
        // A held frame outside the run changes nothing.
        assert_eq!(free_except(&mut f, block, 8 * FRAME_SIZE, &[0x1000]), Ok(8));
        assert_eq!(f.free_bytes(), free0);
    }
}
