//! 2-level event channels: port validation, the fair pending-event scan, and the unmask rule.
//!
//! The shared words (`evtchn_upcall_pending`, `evtchn_pending_sel` in `vcpu_info`;
//! `evtchn_pending[64]`, `evtchn_mask[64]` in `shared_info`) are reached only through
//! [`EventWords`], which the kernel implements with atomic operations on the shared pages.
//! [`EventScanner`] follows Linux's `evtchn_2l_handle_events`: it resumes after the last port
//! it served, so a busy low port cannot starve higher ones.
#![warn(clippy::arithmetic_side_effects)]

mod handlers;
#[cfg(test)]
mod tests;

pub use handlers::HandlerTable;

/// Bits in one event word (`xen_ulong_t` on x86_64).
pub const BITS_PER_WORD: u32 = u64::BITS;
/// Words in `evtchn_pending`/`evtchn_mask` and bits in `evtchn_pending_sel`.
pub const WORDS: usize = 64;
/// Number of 2-level event channels on x86_64 (`EVTCHN_2L_NR_CHANNELS`).
pub const NR_CHANNELS: u32 = abi::event_channel::EVTCHN_2L_NR_CHANNELS;
#[allow(clippy::cast_possible_truncation)] // WORDS is 64
const _: () = assert!(NR_CHANNELS == BITS_PER_WORD * WORDS as u32);

/// Errors of the event-channel logic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EvtchnError {
    /// A handler is already bound to the port.
    AlreadyBound(Port),
    /// No handler is bound to the port.
    NotBound(Port),
}

/// A validated 2-level event-channel port (`< 4096`): `xenbus`'s checked newtype.
pub use xenbus::Port;

/// Access to the 2-level event words of one vCPU (atomic operations in the kernel).
///
/// Word indexes passed to these methods are always `< 64` ([`WORDS`]).
pub trait EventWords {
    /// Writes 0 to `vcpu_info.evtchn_upcall_pending`.
    fn clear_upcall_pending(&self);
    /// Reads `vcpu_info.evtchn_upcall_pending` (non-zero is true).
    fn upcall_pending(&self) -> bool;
    /// Atomically exchanges `vcpu_info.evtchn_pending_sel` with 0, returning the old value.
    fn take_pending_sel(&self) -> u64;
    /// Reads `shared_info.evtchn_pending[word]`.
    fn pending(&self, word: usize) -> u64;
    /// Reads `shared_info.evtchn_mask[word]`.
    fn mask(&self, word: usize) -> u64;
    /// Atomically clears `bits` in `evtchn_pending[word]` (`lock and`).
    fn clear_pending(&self, word: usize, bits: u64);
    /// Atomically sets `bits` in `evtchn_mask[word]` (`lock or`).
    fn set_mask(&self, word: usize, bits: u64);
    /// Atomically clears `bits` in `evtchn_mask[word]` (`lock and`).
    fn clear_mask(&self, word: usize, bits: u64);
}

/// Keeps `bits` at positions `>= from` (Linux's `MASK_LSBS`); `from` is `< 64`.
fn bits_from(bits: u64, from: u32) -> u64 {
    bits & (u64::MAX << from)
}

/// The fair 2-level scan: remembers where the previous scan stopped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventScanner {
    next_word: u32,
    next_bit: u32,
}

impl EventScanner {
    /// A scanner that starts at port 0.
    pub const fn new() -> Self {
        Self {
            next_word: 0,
            next_bit: 0,
        }
    }

    /// Handles one upcall: clears `evtchn_upcall_pending`, scans, and repeats while Xen set
    /// it again, at most `max_rounds` times. Returns the number of ports delivered.
    pub fn upcall<W: EventWords + ?Sized>(
        &mut self,
        words: &W,
        max_rounds: u32,
        mut deliver: impl FnMut(Port),
    ) -> usize {
        let mut delivered: usize = 0;
        for _ in 0..max_rounds {
            words.clear_upcall_pending();
            delivered = delivered.saturating_add(self.scan(words, &mut deliver));
            if !words.upcall_pending() {
                break;
            }
        }
        delivered
    }

    /// Takes `evtchn_pending_sel` and delivers every pending, unmasked port in it, clearing
    /// each port's pending bit before delivering it. Starts after the last port delivered by
    /// the previous scan and wraps around. Masked pending ports stay pending. Returns the
    /// number of ports delivered.
    pub fn scan<W: EventWords + ?Sized>(
        &mut self,
        words: &W,
        mut deliver: impl FnMut(Port),
    ) -> usize {
        let mut pending_words = words.take_pending_sel();
        let start_word = self.next_word;
        let start_bit = self.next_bit;
        let mut word_idx = start_word;
        let mut first_pass = true;
        let mut delivered: usize = 0;

        while pending_words != 0 {
            let candidates = bits_from(pending_words, word_idx);
            if candidates == 0 {
                word_idx = 0;
                continue;
            }
            word_idx = candidates.trailing_zeros();
            let w = word_idx as usize;
            let active = words.pending(w) & !words.mask(w);
            // The starting word is scanned twice: from the saved bit first, whole the second time.
            let mut bit_idx = if word_idx == start_word && first_pass {
                start_bit
            } else {
                0
            };
            loop {
                let bits = bits_from(active, bit_idx);
                if bits == 0 {
                    break;
                }
                let bit = bits.trailing_zeros();
                // w < WORDS and bit < 64: always a port.
                let Some(port) = Port::from_word_bit(w, bit) else {
                    break;
                };
                words.clear_pending(w, port.bit());
                deliver(port);
                delivered = delivered.saturating_add(1);
                bit_idx = bit.wrapping_add(1) % BITS_PER_WORD; // bit < 64
                self.next_bit = bit_idx;
                self.next_word = if bit_idx != 0 {
                    word_idx
                } else {
                    word_idx.wrapping_add(1) % BITS_PER_WORD
                };
                if bit_idx == 0 {
                    break;
                }
            }
            if word_idx != start_word || !first_pass {
                pending_words &= !(1u64 << word_idx);
            }
            first_pass = false;
            word_idx = word_idx.wrapping_add(1) % BITS_PER_WORD;
        }
        delivered
    }
}

/// What the kernel must do after [`unmask`] returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum UnmaskAction {
    /// The port is unmasked and was not pending: nothing more to do.
    Done,
    /// The port was pending: it has been masked again and the kernel must call
    /// `EVTCHNOP_unmask`, which clears the mask and makes Xen raise the upcall for it.
    Hypercall,
}

/// Unmasks `port` the way Linux does for HVM/PVH guests (`evtchn_2l_unmask`).
///
/// Clears the mask bit, then checks pending. A pending event would otherwise be lost (Xen
/// raises the upcall only when an event is set while unmasked), and in an HVM/PVH guest only
/// Xen can inject the upcall vector, so the port is masked again and the caller must issue
/// `EVTCHNOP_unmask` ([`UnmaskAction::Hypercall`]). A port bound to another vCPU should always
/// use the hypercall; this function is for ports bound to the calling vCPU.
pub fn unmask<W: EventWords + ?Sized>(words: &W, port: Port) -> UnmaskAction {
    words.clear_mask(port.word(), port.bit());
    if words.pending(port.word()) & port.bit() != 0 {
        words.set_mask(port.word(), port.bit());
        UnmaskAction::Hypercall
    } else {
        UnmaskAction::Done
    }
}

/// Masks `port`.
pub fn mask<W: EventWords + ?Sized>(words: &W, port: Port) {
    words.set_mask(port.word(), port.bit());
}
