//! Where this domain maps other domains' grants: a fixed window of guest-physical frames
//! outside its RAM and the toolstack's special pages, as Linux maps grants for a PVH domU (at
//! frames it does not use as RAM), and the bookkeeping of its slots.
//!
//! The window is [`WINDOW_FIRST_GFN`] (address 0xf000_0000) and the [`WINDOW_FRAMES`] frames
//! after it: below 4 GiB (inside the kernel's identity map), above the RAM of any domain this
//! kernel is run as (the harnesses give 128 MiB; stock Xen's `xl` puts RAM from 0 up to the
//! low-memory hole, hv the same below its 0xfc00_0000 limit), and below the ACPI tables
//! (0xfc00_0000) and the special pages (0xfeff_8000..0xff00_0000) on both platforms. A
//! domain whose memory map reaches into the window refuses to map there ([`window_clear_of`]).

use crate::memory::frames::FRAME_SIZE;

/// The first frame of the window (guest-physical address 0xf000_0000).
pub const WINDOW_FIRST_GFN: u64 = 0xf0000;
/// Frames in the window: how many grants can be mapped at once.
pub const WINDOW_FRAMES: u32 = 16;

/// The window's byte range `[start, end)`.
pub const fn window_range() -> (u64, u64) {
    (
        WINDOW_FIRST_GFN * FRAME_SIZE,
        (WINDOW_FIRST_GFN + WINDOW_FRAMES as u64) * FRAME_SIZE,
    )
}

/// The first memory-map region `(base, size)` that overlaps the window, if any (a region
/// whose end overflows counts as reaching it).
pub fn window_clear_of(regions: impl IntoIterator<Item = (u64, u64)>) -> Result<(), (u64, u64)> {
    let (start, end) = window_range();
    for (base, size) in regions {
        let region_end = base.saturating_add(size);
        if size != 0 && base < end && region_end > start {
            return Err((base, size));
        }
    }
    Ok(())
}

/// A window slot this domain maps one grant at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slot(u32);

impl Slot {
    /// The slot's frame.
    pub const fn gfn(self) -> u64 {
        WINDOW_FIRST_GFN + self.0 as u64
    }

    /// The slot's guest-physical (and, identity mapped, virtual) address.
    pub const fn addr(self) -> u64 {
        self.gfn() * FRAME_SIZE
    }
}

/// Errors of the slot bookkeeping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotError {
    /// Every slot holds a mapping.
    Full,
    /// The slot was not taken.
    NotTaken(Slot),
}

/// Which window slots hold a mapping.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Slots {
    taken: u32,
}

const _: () = assert!(WINDOW_FRAMES <= u32::BITS);

impl Slots {
    /// No slot taken.
    pub const fn new() -> Self {
        Self { taken: 0 }
    }

    /// Takes the lowest free slot.
    pub fn take(&mut self) -> Result<Slot, SlotError> {
        let free = (0..WINDOW_FRAMES)
            .find(|i| self.taken & (1 << i) == 0)
            .ok_or(SlotError::Full)?;
        self.taken |= 1 << free;
        Ok(Slot(free))
    }

    /// Gives a slot back (its mapping is gone).
    pub fn give(&mut self, slot: Slot) -> Result<(), SlotError> {
        let bit = 1u32
            .checked_shl(slot.0)
            .filter(|b| self.taken & b != 0)
            .ok_or(SlotError::NotTaken(slot))?;
        self.taken &= !bit;
        Ok(())
    }

    /// How many slots are taken.
    pub fn taken(&self) -> u32 {
        self.taken.count_ones()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_lies_between_ram_and_the_special_pages() {
        let (start, end) = window_range();
        assert_eq!((start, end), (0xf000_0000, 0xf001_0000));
        // Below the ACPI tables and special pages (so inside the 4 GiB identity map).
        assert!(end <= 0xfc00_0000);
        // A 128 MiB domain's RAM and reserved ranges, the special pages: clear.
        let map = [
            (0, 0x800_0000),
            (0xfc00_0000, 0x1000),
            (0xfeff_8000, 0x8000),
        ];
        assert_eq!(window_clear_of(map), Ok(()));
        // Ending exactly at the window or starting exactly at its end is clear.
        assert_eq!(window_clear_of([(0, start), (end, 0x1000)]), Ok(()));
        assert_eq!(window_clear_of([(start, 0)]), Ok(()), "empty region");
    }

    #[test]
    fn memory_reaching_into_the_window_is_named() {
        let (start, end) = window_range();
        assert_eq!(
            window_clear_of([(0, 0x1000), (0, start + 1)]),
            Err((0, start + 1))
        );
        assert_eq!(window_clear_of([(end - 1, 1)]), Err((end - 1, 1)));
        assert_eq!(
            window_clear_of([(0xe000_0000, 0x1000_1000)]),
            Err((0xe000_0000, 0x1000_1000))
        );
        // A region whose end overflows reaches everything above its base.
        assert_eq!(window_clear_of([(1, u64::MAX)]), Err((1, u64::MAX)));
    }

    #[test]
    fn slots_are_taken_lowest_first_and_given_back_once() {
        let mut slots = Slots::new();
        let a = slots.take().unwrap();
        let b = slots.take().unwrap();
        assert_eq!((a.gfn(), b.gfn()), (0xf0000, 0xf0001));
        assert_eq!(b.addr(), 0xf000_1000);
        assert_eq!(slots.taken(), 2);
        slots.give(a).unwrap();
        assert_eq!(slots.give(a), Err(SlotError::NotTaken(a)));
        assert_eq!(slots.take(), Ok(a), "the freed slot is reused");
        for _ in 2..WINDOW_FRAMES {
            slots.take().unwrap();
        }
        assert_eq!(slots.take(), Err(SlotError::Full));
        assert_eq!(slots.give(Slot(40)), Err(SlotError::NotTaken(Slot(40))));
        assert_eq!(slots.give(Slot(WINDOW_FRAMES - 1)), Ok(()));
        assert_eq!(slots.taken(), WINDOW_FRAMES - 1);
    }
}
