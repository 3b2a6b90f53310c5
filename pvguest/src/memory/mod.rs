//! Physical memory: free-range computation and the frame allocator (host-testable), and the
//! kernel heap (kernel only).

pub mod addr;
pub mod frames;
#[cfg(target_os = "none")]
pub mod heap;
