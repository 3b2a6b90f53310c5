//! hv's heap (`#[global_allocator]`), for domain 0's xenstore tree and connection queues:
//! `linked_list_allocator`'s first-fit `Heap` over one region from the frame allocator,
//! behind a `spin::Mutex`. The same few lines as pvguest's `memory/heap.rs` (a dozen lines of
//! glue around the crate; not worth a shared crate between the two kernels).

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::{NonNull, null_mut};

use linked_list_allocator::Heap;
use spin::Mutex;

/// Bytes of hv's heap.
pub const HEAP_BYTES: u64 = 4 << 20;

/// The global allocator.
pub struct HvHeap(Mutex<Heap>);

#[global_allocator]
static HEAP: HvHeap = HvHeap(Mutex::new(Heap::empty()));

// SAFETY: allocation and deallocation go to `linked_list_allocator::Heap`, which returns
// blocks of at least `layout.size()` bytes aligned to `layout.align()` that do not overlap
// live blocks; the mutex serialises access.
unsafe impl GlobalAlloc for HvHeap {
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

/// Hands `[start, start + size)` to the heap. Called once at boot.
///
/// # Safety
/// The region must be mapped, writable, unused by anything else for the rest of hv's life,
/// and `init` must not have been called before.
pub unsafe fn init(start: u64, size: usize) {
    // SAFETY: forwarded contract.
    unsafe { HEAP.0.lock().init(start as *mut u8, size) }
}

/// Heap usage: `(size, used)` in bytes.
pub fn stats() -> (usize, usize) {
    let h = HEAP.0.lock();
    (h.size(), h.used())
}
