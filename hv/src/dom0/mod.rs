//! Domain 0's services that live inside hv, as host-testable logic over small traits; the
//! kernel supplies the shared pages and the serial port.

pub mod blk;
pub mod console;
pub mod control;
pub mod ports;
pub mod switch;
pub mod toolstack;
pub mod xenstored;
