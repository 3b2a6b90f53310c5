//! The hv kernel (x86_64-unknown-none only): boot, descriptor tables, serial, SVM, the
//! domains and the machine's run loop that schedules them.
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "x86_64 register and descriptor code: the architecture takes the low bits (EAX, ECX, selectors), and usize is 64 bits"
)]

pub mod blk;
pub mod console;
pub mod control;
pub mod domain;
pub mod fpu;
pub mod host_frame;
pub mod irq;
pub mod lapic;
pub mod lease;
pub mod machine;
pub mod memory;
pub mod net;
pub mod nic;
pub mod pci;
pub mod rtc;
pub mod serial;
pub mod start;
pub mod svm;
pub mod tsc;
pub mod virtio;
pub mod xenstore;

pub use start::{HEAP, panic};
