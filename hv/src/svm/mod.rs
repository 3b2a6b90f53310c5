//! AMD SVM definitions and host-testable emulation: the VMCB layout, the exit codes, and
//! what hv emulates for a guest (permission maps, EFER, XCR0, port I/O, hypercall page),
//! and the upcall injection decisions (`inject`).

pub mod emulate;
pub mod exit;
pub mod inject;
pub mod vmcb;
