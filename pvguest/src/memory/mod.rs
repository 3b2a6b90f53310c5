//! Physical memory: free-range computation and the frame allocator (host-testable), the
//! kernel's one allocator instance, and the kernel heap (kernel only).

pub mod addr;
pub mod frames;
pub mod global;
#[cfg(target_os = "none")]
pub mod heap;
