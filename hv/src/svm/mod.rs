//! AMD SVM definitions and host-testable emulation: the VMCB layout, the exit codes, and
//! what hv emulates for a guest (permission maps, EFER, XCR0, port I/O, hypercall page),
//! the MSRs Xen virtualises (`msr`),
//! the upcall injection decisions (`inject`), and the one x86 instruction decoder (`decode`)
//! that gives every completed instruction its length.

pub mod decode;
pub mod emulate;
pub mod exit;
pub mod inject;
pub mod msr;
pub mod vmcb;
