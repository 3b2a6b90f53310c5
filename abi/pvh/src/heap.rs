//! The kernel heap type: `linked_list_allocator`'s first-fit `Heap` over one contiguous
//! physical region from the frame allocator, behind a `spin::Mutex`. Each kernel makes one its
//! `#[global_allocator]` and hands it its region once at boot:
//!
//! ```ignore
//! #[global_allocator]
//! static HEAP: pvh::heap::LockedHeap = pvh::heap::LockedHeap::empty();
//! ```

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::{NonNull, null_mut};

use linked_list_allocator::Heap;
use spin::Mutex;

/// A locked first-fit heap, empty until [`LockedHeap::init`].
pub struct LockedHeap(Mutex<Heap>);

impl LockedHeap {
    /// A heap with no memory (every allocation fails until [`LockedHeap::init`]).
    pub const fn empty() -> Self {
        Self(Mutex::new(Heap::empty()))
    }

    /// Hands `[start, start + size)` to the heap. Called once at boot.
    ///
    /// # Safety
    /// The region must be mapped, writable, unused by anything else for the rest of the
    /// kernel's life, and `init` must not have been called before on this heap.
    pub unsafe fn init(&self, start: u64, size: usize) {
        // SAFETY: forwarded contract.
        unsafe { self.0.lock().init(start as *mut u8, size) }
    }

    /// Heap usage: `(size, used)` in bytes.
    pub fn stats(&self) -> (usize, usize) {
        let h = self.0.lock();
        (h.size(), h.used())
    }
}

// SAFETY: allocation and deallocation go to `linked_list_allocator::Heap`, which returns
// blocks of at least `layout.size()` bytes aligned to `layout.align()` that do not overlap
// live blocks; the mutex serialises access.
unsafe impl GlobalAlloc for LockedHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.0
            .lock()
            .allocate_first_fit(layout)
            .map_or(null_mut(), NonNull::as_ptr)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if let Some(p) = NonNull::new(ptr) {
            // SAFETY: the GlobalAlloc contract: `ptr` came from `alloc` with this `layout`.
            unsafe { self.0.lock().deallocate(p, layout) }
        }
    }
}
