//! The console backend's kernel side: the ring page in host memory and the serial port
//! as [`crate::dom0::console`]'s ring and sink.

use crate::dom0::console::{ConsoleBackend, ConsoleRing, ConsoleSink};

use super::serial;

/// hv's console page for a domain (identity mapped, never freed).
struct HostPage(u64);

impl ConsoleRing for HostPage {
    fn load_u32(&self, off: usize) -> u32 {
        // SAFETY: `off` is an index field's offset inside the 4 KiB page hv allocated for
        // the console (the backend passes only xencons_interface offsets); the guest may write
        // it concurrently, so a volatile read yields some value, which the backend checks.
        unsafe { core::ptr::read_volatile((self.0 as *const u8).add(off & 0xffc).cast::<u32>()) }
    }

    fn store_u32(&mut self, off: usize, value: u32) {
        // SAFETY: as in load_u32, for the consumer index the backend owns.
        unsafe {
            core::ptr::write_volatile((self.0 as *mut u8).add(off & 0xffc).cast::<u32>(), value)
        };
    }

    fn load_u8(&self, off: usize) -> u8 {
        // SAFETY: as in load_u32; `off & 0xfff` stays inside the page.
        unsafe { core::ptr::read_volatile((self.0 as *const u8).add(off & 0xfff)) }
    }
}

/// COM1 as the console's sink.
struct Serial;

impl ConsoleSink for Serial {
    fn write(&mut self, bytes: &[u8]) {
        serial::write_bytes(bytes);
    }
}

/// A domain's console: its ring page and the backend state.
pub struct Console {
    page: HostPage,
    backend: ConsoleBackend,
}

impl Console {
    /// The console of domain `domid` whose ring is hv's page at host-physical `page`.
    pub fn new(page: u64, domid: u16) -> Self {
        Self {
            page: HostPage(page),
            backend: ConsoleBackend::new(domid),
        }
    }

    /// Copies what the guest produced to the serial port.
    pub fn drain(&mut self) {
        self.backend.drain(&mut self.page, &mut Serial);
    }

    /// Ends a partial last line.
    pub fn finish(&mut self) {
        self.backend.finish(&mut Serial);
    }

    /// Bytes drained so far.
    pub fn bytes(&self) -> u64 {
        self.backend.bytes
    }
}
