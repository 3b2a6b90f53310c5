//! The kernel's one frame allocator: the frames left after boot, handed over once by the boot
//! sequence and drawn on by the platform (grant-table frames, pages for shared rings) and the
//! self-tests. It lives here, below both, so that neither reaches up into the boot sequence.

use spin::Mutex;

use super::frames::{FrameAllocator, FrameError};

/// The allocator, once the boot sequence has handed it over.
static FRAMES: Mutex<Option<FrameAllocator>> = Mutex::new(None);

/// [`install`] was called before: the allocator handed over first stays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AlreadyInstalled;

/// Hands the frames left after boot over to the kernel, once; a later call changes nothing.
pub fn install(frames: FrameAllocator) -> Result<(), AlreadyInstalled> {
    let mut slot = FRAMES.lock();
    if slot.is_some() {
        return Err(AlreadyInstalled);
    }
    *slot = Some(frames);
    Ok(())
}

/// Allocates `frames` contiguous free frames (never returned); their physical address. Before
/// [`install`] there is nothing to allocate from ([`FrameError::OutOfMemory`]).
pub fn allocate_frames(frames: u64) -> Result<u64, FrameError> {
    FRAMES
        .lock()
        .as_mut()
        .ok_or(FrameError::OutOfMemory { frames })?
        .allocate(frames)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot_info::{MemoryRegion, RegionKind};
    use crate::memory::frames::{FRAME_SIZE, FreeRanges};

    fn allocator_at(base: u64) -> FrameAllocator {
        let ram = MemoryRegion {
            base,
            size: 4 * FRAME_SIZE,
            kind: RegionKind::Ram,
        };
        FrameAllocator::new(FreeRanges::compute(&[ram], &[], u64::MAX))
    }

    // The only test of the process-wide allocator: it checks the whole life cycle in order.
    #[test]
    fn frames_come_only_from_the_allocator_installed_first() {
        assert_eq!(
            allocate_frames(1),
            Err(FrameError::OutOfMemory { frames: 1 })
        );
        assert!(install(allocator_at(1 << 20)).is_ok());
        assert_eq!(install(allocator_at(2 << 20)), Err(AlreadyInstalled));
        assert_eq!(allocate_frames(2), Ok(1 << 20));
        assert_eq!(allocate_frames(1), Ok((1 << 20) + 2 * FRAME_SIZE));
        assert_eq!(
            allocate_frames(2),
            Err(FrameError::OutOfMemory { frames: 2 })
        );
    }
}
