//! Domain 0's console backend inside hv: drains a domain's console ring (the `out` half of
//! `xencons_interface`) to the serial port, each line prefixed `(d<domid>) `.

use core::sync::atomic::{Ordering, fence};

use abi::io::console::{XENCONS_OUT_RING_SIZE, XenconsInterface, mask_xencons_out_idx};
use core::mem::offset_of;

use super::serial;

/// The backend state of one console.
pub struct ConsoleBackend {
    /// Host-physical address of the ring page (hv's own page, mapped into the guest).
    page: u64,
    /// The line prefix, e.g. `(d1) `.
    prefix: [u8; 10],
    prefix_len: usize,
    at_line_start: bool,
    /// Bytes drained.
    pub bytes: u64,
    /// Times the guest's indexes were inconsistent (producer more than a ring ahead).
    pub corrupt: u64,
}

impl ConsoleBackend {
    /// The backend of domain `domid`'s ring at host-physical `page`.
    pub fn new(page: u64, domid: u16) -> Self {
        // "(d" + up to five digits + ") ": at most 9 bytes.
        let mut prefix = [0u8; 10];
        prefix[..2].copy_from_slice(b"(d");
        let mut digits = [0u8; 5];
        let mut n = domid;
        let mut len = 0;
        loop {
            digits[len] = b'0' + (n % 10) as u8;
            len += 1;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        for (i, d) in digits[..len].iter().rev().enumerate() {
            prefix[2 + i] = *d;
        }
        prefix[2 + len..4 + len].copy_from_slice(b") ");
        Self {
            page,
            prefix,
            prefix_len: 4 + len,
            at_line_start: true,
            bytes: 0,
            corrupt: 0,
        }
    }

    fn read_u32(&self, off: usize) -> u32 {
        // SAFETY: `page` is hv's 4 KiB console page (identity mapped, never freed); `off` is
        // the offset of an aligned u32 index in xencons_interface. The guest may write it
        // concurrently in principle; a volatile read yields some value, checked below.
        unsafe { core::ptr::read_volatile((self.page as *const u8).add(off).cast::<u32>()) }
    }

    fn emit(&mut self, b: u8) {
        if self.at_line_start {
            serial::write_bytes(&self.prefix[..self.prefix_len]);
        }
        serial::write_byte(b);
        self.at_line_start = b == b'\n';
    }

    /// Copies everything the guest produced to the serial port and consumes it.
    pub fn drain(&mut self) {
        let cons_off = offset_of!(XenconsInterface, out_cons);
        let prod_off = offset_of!(XenconsInterface, out_prod);
        let out_off = offset_of!(XenconsInterface, out);
        let prod = self.read_u32(prod_off);
        fence(Ordering::Acquire);
        let mut cons = self.read_u32(cons_off);
        let pending = prod.wrapping_sub(cons);
        if pending > XENCONS_OUT_RING_SIZE {
            // A producer more than a ring ahead: skip to it, as xenconsoled does.
            self.corrupt += 1;
            cons = prod;
        }
        while cons != prod {
            let idx = mask_xencons_out_idx(cons) as usize;
            // SAFETY: idx < XENCONS_OUT_RING_SIZE, so the byte lies in `out` inside the page.
            let b =
                unsafe { core::ptr::read_volatile((self.page as *const u8).add(out_off + idx)) };
            self.emit(b);
            self.bytes += 1;
            cons = cons.wrapping_add(1);
        }
        fence(Ordering::Release);
        // SAFETY: as in read_u32, for the u32 out_cons that the backend owns.
        unsafe {
            core::ptr::write_volatile((self.page as *mut u8).add(cons_off).cast::<u32>(), cons)
        };
    }

    /// Ends a partial last line (at shutdown).
    pub fn finish(&mut self) {
        if !self.at_line_start {
            serial::write_byte(b'\n');
            self.at_line_start = true;
        }
    }
}
