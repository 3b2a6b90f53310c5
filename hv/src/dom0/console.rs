//! Domain 0's console backend: drains a domain's console ring (the `out` half of
//! `xencons_interface`) to an output, each line prefixed `(d<domid>) `, as Xen prints a
//! guest's console lines. Lines go out whole, so the lines of domains running side by side
//! never mix: a partial line waits in a buffer of [`LINE_MAX`] bytes until its newline (a
//! longer line is cut there and goes on in a new prefixed line, as Xen cuts a guest's long
//! lines), or until [`ConsoleBackend::finish`] at the domain's end.
//!
//! The ring page is shared with the guest, so its indexes are allegations: a producer more
//! than a ring ahead of the consumer is counted and skipped to, as xenconsoled does. The index
//! arithmetic is [`abi::byte_ring`]'s, as for the guest's side and the xenstore rings.

use core::mem::offset_of;
use core::sync::atomic::{Ordering, fence};

use abi::byte_ring::ByteRing;
use abi::io::console::{XENCONS_OUT_RING_SIZE, XenconsInterface};

const OUT_RING: ByteRing = match ByteRing::new(XENCONS_OUT_RING_SIZE) {
    Some(r) => r,
    None => panic!("XENCONS_OUT_RING_SIZE is a power of two"),
};

/// The shared console page, read and written with volatile accesses by the kernel.
pub trait ConsoleRing {
    /// Reads the u32 at byte offset `off` (an index field).
    fn load_u32(&self, off: usize) -> u32;
    /// Writes the u32 at byte offset `off` (the consumer index).
    fn store_u32(&mut self, off: usize, value: u32);
    /// Reads the byte at offset `off`.
    fn load_u8(&self, off: usize) -> u8;
}

/// Where the console text goes.
pub trait ConsoleSink {
    /// Writes `bytes`.
    fn write(&mut self, bytes: &[u8]);
}

/// The longest line printed at once, prefix included; a longer one is cut.
pub const LINE_MAX: usize = 256;

/// The backend state of one domain's console.
#[derive(Clone, Debug)]
pub struct ConsoleBackend {
    prefix: [u8; 10],
    prefix_len: usize,
    /// The line being gathered (prefix first), `len` bytes of it.
    line: [u8; LINE_MAX],
    len: usize,
    /// Bytes drained.
    pub bytes: u64,
    /// Times the guest's indexes were inconsistent (producer more than a ring ahead).
    pub corrupt: u64,
}

impl ConsoleBackend {
    /// The backend of domain `domid`'s console.
    pub fn new(domid: u16) -> Self {
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
            prefix,
            prefix_len: 4 + len,
            line: [0; LINE_MAX],
            len: 0,
            bytes: 0,
            corrupt: 0,
        }
    }

    fn emit(&mut self, b: u8, out: &mut impl ConsoleSink) {
        if self.len == 0 {
            self.line[..self.prefix_len].copy_from_slice(&self.prefix[..self.prefix_len]);
            self.len = self.prefix_len;
        }
        // Room is kept for the newline: prefix_len <= 9 < LINE_MAX - 1.
        self.line[self.len] = b;
        self.len += 1;
        if b == b'\n' {
            out.write(&self.line[..self.len]);
            self.len = 0;
        } else if self.len == LINE_MAX - 1 {
            self.line[self.len] = b'\n';
            out.write(&self.line[..LINE_MAX]);
            self.len = 0;
        }
    }

    /// Copies everything the guest produced to `out` and consumes it.
    pub fn drain(&mut self, ring: &mut impl ConsoleRing, out: &mut impl ConsoleSink) {
        let cons_off = offset_of!(XenconsInterface, out_cons);
        let prod_off = offset_of!(XenconsInterface, out_prod);
        let out_off = offset_of!(XenconsInterface, out);
        let prod = ring.load_u32(prod_off);
        fence(Ordering::Acquire);
        let cons = ring.load_u32(cons_off);
        let new_cons = match OUT_RING.consume(cons, prod, usize::MAX) {
            Ok(transfer) => {
                for slot in transfer.first.chain(transfer.second) {
                    let b = ring.load_u8(out_off + slot);
                    self.emit(b, out);
                    self.bytes += 1;
                }
                transfer.new_index
            }
            Err(_) => {
                self.corrupt += 1;
                prod
            }
        };
        fence(Ordering::Release);
        ring.store_u32(cons_off, new_cons);
    }

    /// Prints a partial last line, ended (at the domain's end).
    pub fn finish(&mut self, out: &mut impl ConsoleSink) {
        if self.len > 0 {
            self.line[self.len] = b'\n';
            out.write(&self.line[..=self.len]);
            self.len = 0;
        }
    }
}

#[cfg(test)]
#[allow(
    clippy::cast_possible_truncation,
    reason = "test fixtures: small known sizes and indexes, on 64-bit hosts only"
)]
mod tests {
    use super::*;

    struct Page(Vec<u8>);

    impl ConsoleRing for Page {
        fn load_u32(&self, off: usize) -> u32 {
            u32::from_le_bytes(self.0[off..off + 4].try_into().unwrap())
        }
        fn store_u32(&mut self, off: usize, value: u32) {
            self.0[off..off + 4].copy_from_slice(&value.to_le_bytes());
        }
        fn load_u8(&self, off: usize) -> u8 {
            self.0[off]
        }
    }

    impl ConsoleSink for Vec<u8> {
        fn write(&mut self, bytes: &[u8]) {
            self.extend_from_slice(bytes);
        }
    }

    const OUT: usize = offset_of!(XenconsInterface, out);
    const CONS: usize = offset_of!(XenconsInterface, out_cons);
    const PROD: usize = offset_of!(XenconsInterface, out_prod);

    /// A page whose producer wrote `text` starting at index `start`.
    fn produced(start: u32, text: &[u8]) -> Page {
        let mut p = Page(vec![0; 4096]);
        for (i, &b) in text.iter().enumerate() {
            let idx = abi::io::console::mask_xencons_out_idx(start.wrapping_add(i as u32)) as usize;
            p.0[OUT + idx] = b;
        }
        p.store_u32(CONS, start);
        p.store_u32(PROD, start.wrapping_add(text.len() as u32));
        p
    }

    #[test]
    fn prefixes_each_line_and_consumes() {
        let mut be = ConsoleBackend::new(1);
        let mut page = produced(0, b"hello\nwor");
        let mut out = Vec::new();
        be.drain(&mut page, &mut out);
        // The partial line waits for its end.
        assert_eq!(out, b"(d1) hello\n");
        assert_eq!(page.load_u32(CONS), 9);
        let mut page2 = produced(9, b"ld\n");
        be.drain(&mut page2, &mut out);
        be.finish(&mut out);
        assert_eq!(out, b"(d1) hello\n(d1) world\n");
        let mut partial = produced(12, b"x");
        be.drain(&mut partial, &mut out);
        be.finish(&mut out);
        assert!(out.ends_with(b"(d1) x\n"));
        assert_eq!(be.bytes, 13);
        assert_eq!(ConsoleBackend::new(65535).prefix_len, 9);
        assert_eq!(&ConsoleBackend::new(0).prefix[..5], b"(d0) ");
    }

    #[test]
    fn lines_of_two_domains_never_mix_and_long_lines_are_cut() {
        let (mut a, mut b) = (ConsoleBackend::new(1), ConsoleBackend::new(2));
        let mut out = Vec::new();
        a.drain(&mut produced(0, b"one-"), &mut out);
        b.drain(&mut produced(0, b"two\n"), &mut out);
        a.drain(&mut produced(4, b"done\n"), &mut out);
        assert_eq!(out, b"(d2) two\n(d1) one-done\n");
        out.clear();
        let long = [b'x'; 300];
        a.drain(&mut produced(9, &long), &mut out);
        a.finish(&mut out);
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].len(), LINE_MAX - 1);
        assert!(lines.iter().all(|l| l.starts_with("(d1) x")));
        assert_eq!(text.matches('x').count(), 300);
    }

    #[test]
    fn indexes_wrap_and_lies_are_skipped() {
        let mut be = ConsoleBackend::new(12);
        let mut page = produced(u32::MAX - 1, b"ab\n");
        let mut out = Vec::new();
        be.drain(&mut page, &mut out);
        assert_eq!(out, b"(d12) ab\n");
        assert_eq!(page.load_u32(CONS), 1);
        // A producer far ahead: nothing is printed, the consumer catches up.
        let mut liar = Page(vec![0; 4096]);
        liar.store_u32(PROD, 100_000);
        out.clear();
        be.drain(&mut liar, &mut out);
        assert!(out.is_empty());
        assert_eq!(be.corrupt, 1);
        assert_eq!(liar.load_u32(CONS), 100_000);
    }

    proptest::proptest! {
        /// Whatever the guest wrote in the page, a drain prints at most one ring of bytes
        /// (plus prefixes) and leaves the consumer equal to the producer.
        #[test]
        fn any_page_drains_safely(bytes in proptest::collection::vec(proptest::num::u8::ANY, 4096)) {
            let mut page = Page(bytes);
            let mut be = ConsoleBackend::new(1);
            let mut out = Vec::new();
            be.drain(&mut page, &mut out);
            proptest::prop_assert!(be.bytes <= u64::from(XENCONS_OUT_RING_SIZE));
            proptest::prop_assert_eq!(page.load_u32(CONS), page.load_u32(PROD));
        }
    }
}
