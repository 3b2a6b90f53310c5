//! Stack high-water marks: the entry stub (`pvh_entry!`) paints the whole
//! boot stack with [`PAINT`] before its first call, and `gdt::init` paints the RSP0 stack; a
//! word the CPU or the kernel ever wrote no longer holds the paint, so the painted words left
//! at a stack's low end are what it never used, and the rest is its peak. The scan
//! ([`untouched_words`], [`untouched`]) is host-tested; the reads of the live stacks
//! (`boot_stack_use`) and the boot stack's repaint below a running frame
//! (`repaint_boot_stack`, to measure one phase's depth) are kernel only.
//!
//! The peak is exact to the word but for one case: a frame that reserved stack it never wrote
//! below the lowest word it did write (a large local buffer never filled at its low end)
//! leaves paint there, so the peak can fall short of the deepest reservation by that much.

/// The 8-byte paint (little-endian in memory). Not a value code or addresses are likely to
/// store: not canonical as an address, not a small integer, no zero byte.
pub const PAINT: u64 = 0x5EA1_57AC_CA75_0A11;

/// Words at the start of `words` (a stack's lowest addresses first) that still hold
/// [`PAINT`]; stops at the first that does not, and reads nothing past it.
pub fn untouched_words(words: impl IntoIterator<Item = u64>) -> usize {
    words.into_iter().take_while(|&w| w == PAINT).count()
}

/// Bytes at the start of `stack` (its lowest addresses) that still hold the paint, in whole
/// 8-byte words (a trailing part word never counts).
pub fn untouched(stack: &[u8]) -> usize {
    let words = stack.chunks_exact(8).map(|c| {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        u64::from_le_bytes(w)
    });
    untouched_words(words) * 8
}

/// A stack's size and the most of it ever used, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StackUse {
    /// The stack's size.
    pub size: usize,
    /// Bytes ever used: the size less the painted bytes left at its low end.
    pub peak: usize,
}

impl StackUse {
    /// The use of a stack of `stack.len()` bytes, lowest address first.
    pub fn of(stack: &[u8]) -> StackUse {
        StackUse::from_untouched(stack.len(), untouched(stack))
    }

    /// The use of a stack of `size` bytes of which `untouched` at its low end kept the paint.
    pub fn from_untouched(size: usize, untouched: usize) -> StackUse {
        StackUse {
            size,
            peak: size.saturating_sub(untouched),
        }
    }
}

/// Paints `[bottom, bottom + len)` with [`PAINT`] (whole words; `len` a multiple of 8).
///
/// # Safety
///
/// The range must be writable memory that nothing uses now or reads as anything but paint.
#[cfg(target_os = "none")]
pub unsafe fn paint(bottom: u64, len: usize) {
    for i in 0..len / 8 {
        // SAFETY: the caller's range, word by word; volatile so the writes happen even though
        // nothing in Rust reads them back.
        unsafe { core::ptr::write_volatile((bottom as *mut u64).add(i), PAINT) };
    }
}

/// Reads the painted words at the low end of `[bottom, bottom + len)`, stopping at the first
/// word that lost the paint.
///
/// # Safety
///
/// The range must be mapped, readable memory: a stack (live above its deepest use).
#[cfg(target_os = "none")]
pub unsafe fn scan(bottom: u64, len: usize) -> StackUse {
    let words = (0..len / 8).map(|i| {
        // SAFETY: inside the caller's mapped range; the scan stops at the first written
        // word, below every live frame (a frame writes at least its return address, which is
        // above the words it has not written), so it reads no live data (and a volatile read
        // of a stack word concurrently written by an interrupt gives one value or the other).
        unsafe { core::ptr::read_volatile((bottom as *const u64).add(i)) }
    });
    StackUse::from_untouched(len, untouched_words(words) * 8)
}

/// The boot stack's peak before the last [`repaint_boot_stack`] (0 before any).
#[cfg(target_os = "none")]
static PEAK_BEFORE_REPAINT: core::sync::atomic::AtomicUsize =
    core::sync::atomic::AtomicUsize::new(0);

/// The boot stack's size and peak since the last [`repaint_boot_stack`] (since boot before
/// any: the stack [`pvh_entry!`](crate::pvh_entry) painted).
#[cfg(target_os = "none")]
pub fn boot_stack_use_since_repaint() -> StackUse {
    let (bottom, top) = crate::boot::stack_range();
    let len = usize::try_from(top.saturating_sub(bottom)).unwrap_or(0);
    // SAFETY: the boot stack, mapped for the kernel's whole life (the guard page is below it).
    unsafe { scan(bottom, len) }
}

/// The boot stack's size and peak since boot (across repaints).
#[cfg(target_os = "none")]
pub fn boot_stack_use() -> StackUse {
    let now = boot_stack_use_since_repaint();
    let before = PEAK_BEFORE_REPAINT.load(core::sync::atomic::Ordering::Relaxed);
    StackUse {
        size: now.size,
        peak: now.peak.max(before),
    }
}

/// The boot stack's depth (bytes above the stack pointer) where [`repaint_boot_stack`] last
/// ran (0 before any).
#[cfg(target_os = "none")]
static REPAINT_DEPTH: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);

/// The boot stack's depth where [`repaint_boot_stack`] last ran (0 before any): what the
/// callers of the repainting phase held; the phase's own depth is the peak since less this.
#[cfg(target_os = "none")]
pub fn repaint_depth() -> usize {
    REPAINT_DEPTH.load(core::sync::atomic::Ordering::Relaxed)
}

/// Bytes below the stack pointer that [`repaint_boot_stack`] leaves alone.
#[cfg(target_os = "none")]
const REPAINT_MARGIN: u64 = 64;

/// Paints the boot stack again below the caller (all but `REPAINT_MARGIN` bytes under the
/// stack pointer), so that [`boot_stack_use_since_repaint`] measures from here on (e.g. the
/// service's own depth, without the boot's and the self-tests'); [`boot_stack_use`] keeps the
/// peak since boot. Must run on the boot stack.
#[cfg(target_os = "none")]
pub fn repaint_boot_stack() {
    let before = boot_stack_use().peak;
    PEAK_BEFORE_REPAINT.fetch_max(before, core::sync::atomic::Ordering::Relaxed);
    let (bottom, top) = crate::boot::stack_range();
    x86_64::instructions::interrupts::without_interrupts(|| {
        let rsp: u64;
        // SAFETY: reads the stack pointer only.
        unsafe { core::arch::asm!("mov {}, rsp", out(reg) rsp, options(nomem, nostack)) };
        if rsp <= bottom || rsp > top {
            return; // not on the boot stack
        }
        let depth = usize::try_from(top - rsp).unwrap_or(0);
        REPAINT_DEPTH.store(depth, core::sync::atomic::Ordering::Relaxed);
        let end = rsp.saturating_sub(REPAINT_MARGIN) & !7;
        let words = end.saturating_sub(bottom) / 8;
        // SAFETY: [bottom, end) lies below the stack pointer less a margin, with interrupts
        // off: no frame is live there (nothing runs below this one but this instruction,
        // which uses no stack), so it holds only dead data, which the paint replaces.
        unsafe {
            core::arch::asm!(
                "rep stosq",
                inout("rdi") bottom => _,
                inout("rcx") words => _,
                in("rax") PAINT,
                options(nostack, preserves_flags)
            );
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn painted(len: usize) -> Vec<u8> {
        PAINT
            .to_le_bytes()
            .iter()
            .copied()
            .cycle()
            .take(len)
            .collect()
    }

    #[test]
    fn an_unused_stack_has_no_peak() {
        let s = painted(4096);
        assert_eq!(untouched(&s), 4096);
        assert_eq!(
            StackUse::of(&s),
            StackUse {
                size: 4096,
                peak: 0
            }
        );
    }

    #[test]
    fn the_lowest_written_byte_sets_the_peak() {
        let mut s = painted(4096);
        // A push at the top, then a deeper frame that wrote one byte at 1000.
        s[4088..].fill(0);
        s[1000] = 0x42;
        // The word holding byte 1000 (bytes 1000..1008) counts as used.
        assert_eq!(untouched(&s), 1000);
        assert_eq!(StackUse::of(&s).peak, 4096 - 1000);
        // Unwritten words above the lowest written one still count as used.
        s[2000..3000].copy_from_slice(&painted(1000));
        assert_eq!(StackUse::of(&s).peak, 4096 - 1000);
    }

    #[test]
    fn a_fully_used_stack_and_odd_lengths() {
        let mut s = painted(64);
        s[0] ^= 1;
        assert_eq!(StackUse::of(&s), StackUse { size: 64, peak: 64 });
        // A trailing part word never counts as untouched.
        let s = painted(20);
        assert_eq!(untouched(&s), 16);
        assert_eq!(StackUse::of(&[]), StackUse { size: 0, peak: 0 });
    }

    #[test]
    fn the_scan_stops_at_the_first_written_word() {
        let mut reads = 0;
        let words = [PAINT, PAINT, 7, PAINT].into_iter().inspect(|_| reads += 1);
        assert_eq!(untouched_words(words), 2);
        assert_eq!(reads, 3);
    }

    #[test]
    fn the_paint_is_not_zero_memory() {
        assert_eq!(untouched(&[0; 64]), 0);
        assert!(!PAINT.to_le_bytes().contains(&0));
    }
}
