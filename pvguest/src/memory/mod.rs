//! Physical memory: free-range computation and the frame allocator (pvh's, host-testable),
//! the checked address conversions, the kernel's one allocator instance, and the kernel heap
//! (kernel only).

pub mod addr;
pub use pvh::frames;
pub mod global;

/// The kernel heap: pvh's locked heap as the `#[global_allocator]`, over one region the boot
/// sequence takes from the frame allocator.
#[cfg(target_os = "none")]
pub mod heap {
    use pvh::heap::LockedHeap;

    #[global_allocator]
    static HEAP: LockedHeap = LockedHeap::empty();

    /// Hands `[start, start + size)` to the heap. Called once at boot.
    ///
    /// # Safety
    /// As [`LockedHeap::init`]: the region is mapped, writable and the heap's alone for the
    /// rest of the kernel's life, and `init` was not called before.
    pub unsafe fn init(start: u64, size: usize) {
        // SAFETY: forwarded contract.
        unsafe { HEAP.init(start, size) }
    }

    /// Heap usage: `(size, used)` in bytes.
    pub fn stats() -> (usize, usize) {
        HEAP.stats()
    }
}
