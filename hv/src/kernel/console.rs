//! The console backend's kernel side: the ring page in host memory and the serial port
//! as [`crate::dom0::console`]'s ring and sink.

use crate::dom0::console::{ConsoleBackend, ConsoleRing, ConsoleSink};

use super::host_frame::HostFrame;
use super::serial;

impl ConsoleRing for HostFrame {
    fn load_u32(&self, off: usize) -> u32 {
        HostFrame::load_u32(self, off)
    }

    fn store_u32(&mut self, off: usize, value: u32) {
        HostFrame::store_u32(self, off, value);
    }

    fn load_u8(&self, off: usize) -> u8 {
        HostFrame::load_u8(self, off)
    }
}

/// COM1 as the console's sink (and the tail `xl console` reads, [`super::control`]).
struct Serial(u16);

impl ConsoleSink for Serial {
    fn write(&mut self, bytes: &[u8]) {
        serial::write_bytes(bytes);
        super::control::console_tap(self.0, bytes);
    }
}

/// A domain's console: its ring page and the backend state.
pub struct Console {
    page: HostFrame,
    backend: ConsoleBackend,
    domid: u16,
}

impl Console {
    /// The console of domain `domid` whose ring is hv's page at host-physical `page`.
    ///
    /// # Safety
    /// As [`HostFrame::new`]: `page` is a page hv allocated for this console and keeps.
    pub unsafe fn new(page: u64, domid: u16) -> Self {
        Self {
            // SAFETY: the caller's contract is `HostFrame::new`'s.
            page: unsafe { HostFrame::new(page) },
            backend: ConsoleBackend::new(domid),
            domid,
        }
    }

    /// Copies what the guest produced to the serial port.
    pub fn drain(&mut self) {
        self.backend.drain(&mut self.page, &mut Serial(self.domid));
    }

    /// Ends a partial last line.
    pub fn finish(&mut self) {
        self.backend.finish(&mut Serial(self.domid));
    }

    /// Bytes drained so far.
    pub fn bytes(&self) -> u64 {
        self.backend.bytes
    }
}
