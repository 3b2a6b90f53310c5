//! AMD SVM definitions: the VMCB layout and the exit codes.

pub mod exit;
pub mod vmcb;
