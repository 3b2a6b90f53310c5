//! The grant-reference allocator: skips the reserved entries, reuses freed references, and
//! grows with the table.

use super::GrantError;
use crate::types::GrantRef;
use abi::grant_table::GNTTAB_NR_RESERVED_ENTRIES;
use alloc::vec::Vec;

/// Why a reference was refused, before it is attached to a [`GrantRef`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum RefError {
    Reserved,
    OutOfRange,
    NotAllocated,
}

impl RefError {
    pub(super) fn with_ref(self, gref: GrantRef) -> GrantError {
        match self {
            Self::Reserved => GrantError::Reserved(gref),
            Self::OutOfRange => GrantError::OutOfRange(gref),
            Self::NotAllocated => GrantError::NotAllocated(gref),
        }
    }
}

/// Hands out grant references in `[GNTTAB_NR_RESERVED_ENTRIES, capacity)`.
#[derive(Debug)]
pub struct RefAllocator {
    capacity: u32,
    next_fresh: u32,
    free: Vec<u32>,
    allocated: Vec<u64>,
    live: u32,
}

impl RefAllocator {
    /// An allocator over `capacity` entries (frames × 512).
    pub fn new(capacity: u32) -> Self {
        let mut a = Self {
            capacity: 0,
            next_fresh: GNTTAB_NR_RESERVED_ENTRIES,
            free: Vec::new(),
            allocated: Vec::new(),
            live: 0,
        };
        a.grow(capacity);
        a
    }

    /// Entries the table currently has (reserved ones included).
    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    /// References currently allocated.
    pub fn live(&self) -> u32 {
        self.live
    }

    /// Adds `entries` entries (a new frame).
    pub fn grow(&mut self, entries: u32) {
        self.capacity = self.capacity.saturating_add(entries);
        self.allocated
            .resize(self.capacity.div_ceil(64) as usize, 0);
    }

    /// Takes a free reference: a freed one first, else the lowest never-used one.
    pub fn alloc(&mut self) -> Option<GrantRef> {
        let gref = match self.free.pop() {
            Some(gref) => gref,
            None if self.next_fresh < self.capacity => {
                self.next_fresh += 1;
                self.next_fresh - 1
            }
            None => return None,
        };
        self.set_allocated(gref, true);
        self.live += 1;
        // Never below GNTTAB_NR_RESERVED_ENTRIES: `next_fresh` starts there and only freed
        // (so once handed out) references are reused.
        GrantRef::try_new(gref).ok()
    }

    /// Checks that `gref` is currently allocated.
    pub(super) fn check_allocated(&self, gref: u32) -> Result<(), RefError> {
        if gref < GNTTAB_NR_RESERVED_ENTRIES {
            Err(RefError::Reserved)
        } else if gref >= self.capacity {
            Err(RefError::OutOfRange)
        } else if !self.is_allocated(gref) {
            Err(RefError::NotAllocated)
        } else {
            Ok(())
        }
    }

    /// Returns `gref` for reuse.
    pub(super) fn free(&mut self, gref: u32) -> Result<(), RefError> {
        self.check_allocated(gref)?;
        self.set_allocated(gref, false);
        self.live -= 1;
        self.free.push(gref);
        Ok(())
    }

    /// Whether `gref` is allocated (false for anything out of range).
    pub fn is_allocated(&self, gref: u32) -> bool {
        self.allocated
            .get((gref / 64) as usize)
            .is_some_and(|word| word & (1 << (gref % 64)) != 0)
    }

    fn set_allocated(&mut self, gref: u32, on: bool) {
        if let Some(word) = self.allocated.get_mut((gref / 64) as usize) {
            if on {
                *word |= 1 << (gref % 64);
            } else {
                *word &= !(1 << (gref % 64));
            }
        }
    }
}
