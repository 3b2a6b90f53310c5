//! A bounded frame-pointer backtrace for both kernels' crash reports (built with
//! `-C force-frame-pointers=yes`, `.cargo/config.toml`).
//!
//! Each frame is `[rbp] = the caller's rbp`, `[rbp + 8] = the return address`; pvh's entry stub
//! clears rbp before the Rust entry, so the chain ends with 0. A corrupt chain must not fault
//! the crash path: [`walk`] follows a frame only if it lies 8-aligned inside the stack's range,
//! above the previous one, and stops at [`DEPTH_MAX`] frames. The kernels print the result as
//! one line, `BACKTRACE <kind> <address>...` ([`write_line`]), which xtask resolves to
//! functions and lines from the ELF it built (the kernels carry no symbol tables of their own).

/// The most return addresses a backtrace holds.
pub const DEPTH_MAX: usize = 16;

/// Follows the frame-pointer chain from `rbp` inside the stack `[stack.0, stack.1)`, reading
/// 8-byte words with `read` (called only for addresses inside that range), and stores the
/// return addresses in `out`. Returns how many it stored.
pub fn walk(rbp: u64, stack: (u64, u64), read: impl Fn(u64) -> u64, out: &mut [u64]) -> usize {
    let (bottom, top) = stack;
    let mut fp = rbp;
    let mut n = 0;
    while n < out.len() {
        let Some(end) = fp.checked_add(16) else {
            break;
        };
        if !fp.is_multiple_of(8) || fp < bottom || end > top {
            break;
        }
        let ret = read(fp + 8);
        if ret == 0 {
            break;
        }
        out[n] = ret;
        n += 1;
        let next = read(fp);
        // The caller's frame lies above this one; anything else is a broken chain (or a loop).
        if next <= fp {
            break;
        }
        fp = next;
    }
    n
}

/// Writes `BACKTRACE <kind> 0x<pc> 0x<return address>...`: `kind` is `fault` when the first
/// address is the faulting instruction, `panic` when every address is a return address.
pub fn write_line(
    w: &mut impl core::fmt::Write,
    kind: &str,
    pc: Option<u64>,
    returns: &[u64],
) -> core::fmt::Result {
    write!(w, "BACKTRACE {kind}")?;
    for a in pc.iter().chain(returns) {
        write!(w, " {a:#x}")?;
    }
    writeln!(w)
}

/// The kernel's own boot stack: [`walk`] from `rbp` over it, reading it directly.
#[cfg(target_os = "none")]
pub fn walk_boot_stack(rbp: u64, out: &mut [u64]) -> usize {
    walk(
        rbp,
        crate::boot::stack_range(),
        // SAFETY: `walk` reads only 8-aligned words inside the boot stack, which is mapped
        // and written by this CPU alone.
        |a| unsafe { core::ptr::read_volatile(a as *const u64) },
        out,
    )
}

/// The current frame pointer (for a backtrace from a panic handler).
#[cfg(target_os = "none")]
#[inline(always)]
pub fn current_rbp() -> u64 {
    let rbp: u64;
    // SAFETY: reads a register; no memory or flags are touched.
    unsafe {
        core::arch::asm!("mov {}, rbp", out(reg) rbp, options(nomem, nostack, preserves_flags))
    };
    rbp
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn memory(words: &[(u64, u64)]) -> impl Fn(u64) -> u64 {
        let m: HashMap<u64, u64> = words.iter().copied().collect();
        move |a| {
            assert!(
                (0x1000..0x2000).contains(&a),
                "read outside the stack: {a:#x}"
            );
            m.get(&a).copied().unwrap_or(0)
        }
    }

    #[test]
    fn follows_a_chain_to_its_end() {
        // Three frames: 0x1100 -> 0x1200 -> 0x1300 -> 0 (the entry stub's cleared rbp).
        let mem = memory(&[
            (0x1100, 0x1200),
            (0x1108, 0xaaa),
            (0x1200, 0x1300),
            (0x1208, 0xbbb),
            (0x1300, 0),
            (0x1308, 0xccc),
        ]);
        let mut out = [0; DEPTH_MAX];
        let n = walk(0x1100, (0x1000, 0x2000), &mem, &mut out);
        assert_eq!(&out[..n], &[0xaaa, 0xbbb, 0xccc]);
    }

    #[test]
    fn stops_at_broken_chains_and_the_depth() {
        let mut out = [0; DEPTH_MAX];
        let stack = (0x1000, 0x2000);
        // Outside the stack, misaligned, or too close to its top: nothing read.
        for rbp in [0, 0xfff, 0x2000, 0x1ff8, 0x1104, u64::MAX - 7] {
            assert_eq!(walk(rbp, stack, memory(&[]), &mut out), 0, "{rbp:#x}");
        }
        // A loop (a frame pointing at itself) or downwards ends the walk after that frame.
        let looped = memory(&[(0x1100, 0x1100), (0x1108, 0xaaa)]);
        assert_eq!(walk(0x1100, stack, looped, &mut out), 1);
        let down = memory(&[(0x1100, 0x1080), (0x1108, 0xaaa), (0x1088, 0xbbb)]);
        assert_eq!(walk(0x1100, stack, down, &mut out), 1);
        // A chain leaving the stack ends there.
        let leaves = memory(&[(0x1100, 0x3000), (0x1108, 0xaaa)]);
        assert_eq!(walk(0x1100, stack, leaves, &mut out), 1);
        // A long chain is cut at the buffer's length.
        let long: Vec<(u64, u64)> = (0..64u64)
            .flat_map(|i| {
                [
                    (0x1000 + i * 16, 0x1010 + i * 16),
                    (0x1008 + i * 16, 0x500 + i),
                ]
            })
            .collect();
        let n = walk(0x1000, stack, memory(&long), &mut out);
        assert_eq!(n, DEPTH_MAX);
        assert_eq!(out[DEPTH_MAX - 1], 0x500 + DEPTH_MAX as u64 - 1);
    }

    #[test]
    fn the_line() {
        let mut s = String::new();
        write_line(&mut s, "fault", Some(0x10), &[0x20, 0x30]).unwrap();
        assert_eq!(s, "BACKTRACE fault 0x10 0x20 0x30\n");
        s.clear();
        write_line(&mut s, "panic", None, &[]).unwrap();
        assert_eq!(s, "BACKTRACE panic\n");
    }
}
