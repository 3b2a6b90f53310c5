//! The exit trace: a fixed ring of a domain's last [`TRACE_LEN`] VM exits (exit code, guest
//! RIP, and for a hypercall its op and result), kept in the exit path at the cost of a few
//! stores per exit, and printed when the domain crashes, or at every domain's end with hv's
//! option `trace=dump`:
//!
//! ```text
//! hv: d1 exit trace: the last 3 of 113 exits, oldest first
//! hv: d1   #111 vmmcall rip=0x1234 event_channel_op -> 0
//! hv: d1   #112 ioio rip=0x1240
//! hv: d1   #113 vmmcall rip=0x1250 sched_op -> (no return)
//! ```

use core::cell::Cell;
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, Ordering};

use crate::counters::{HYPERCALL_SLOTS, hypercall_name};
use crate::svm::exit;

/// Exits kept per domain.
pub const TRACE_LEN: usize = 64;

/// hv's option `trace=dump`: print every domain's trace at its end.
static DUMP_ALWAYS: AtomicBool = AtomicBool::new(false);

/// Takes one of hv's options; `true` if it was `trace=dump` (which it then applies).
pub fn option(opt: &str) -> bool {
    if opt == "trace=dump" {
        DUMP_ALWAYS.store(true, Ordering::Relaxed);
        true
    } else {
        false
    }
}

/// What a traced hypercall returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The value put in RAX.
    Returned(i64),
    /// Preempted: the guest calls again (a continuation).
    Continued,
    /// No return: the call ended the domain or the vCPU waits (shutdown, block, poll, yield
    /// return later, or never).
    Pending,
}

/// A hypercall seen at an exit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hypercall {
    /// The op (RAX, any guest value).
    pub op: u64,
    /// What it returned.
    pub outcome: Outcome,
}

/// One exit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Record {
    /// The exit's number, counting from 1 for the domain's first exit.
    pub seq: u64,
    /// The exit code (`VMEXIT_*`).
    pub code: u64,
    /// The guest's RIP at the exit.
    pub rip: u64,
    /// The hypercall, for a VMMCALL exit that dispatched one.
    pub hypercall: Option<Hypercall>,
}

/// The ring of one domain's last exits.
#[derive(Debug)]
pub struct ExitTrace {
    ring: [Record; TRACE_LEN],
    /// Exits recorded so far (the next goes to `total % TRACE_LEN`).
    total: u64,
    /// The domain crashed (its trace is printed at its end).
    crashed: Cell<bool>,
}

impl Default for ExitTrace {
    fn default() -> Self {
        Self::new()
    }
}

impl ExitTrace {
    /// Empty.
    pub const fn new() -> Self {
        Self {
            ring: [Record {
                seq: 0,
                code: 0,
                rip: 0,
                hypercall: None,
            }; TRACE_LEN],
            total: 0,
            crashed: Cell::new(false),
        }
    }

    fn slot(n: u64) -> usize {
        // The remainder is below TRACE_LEN, which fits usize.
        usize::try_from(n % TRACE_LEN as u64).unwrap_or(0)
    }

    /// Records an exit with `code` at guest RIP `rip`.
    pub fn exit(&mut self, code: u64, rip: u64) {
        self.total = self.total.wrapping_add(1);
        self.ring[Self::slot(self.total.wrapping_sub(1))] = Record {
            seq: self.total,
            code,
            rip,
            hypercall: None,
        };
    }

    /// Records the hypercall `op` and its outcome at the latest exit.
    pub fn hypercall(&mut self, op: u64, outcome: Outcome) {
        if self.total == 0 {
            return;
        }
        self.ring[Self::slot(self.total.wrapping_sub(1))].hypercall =
            Some(Hypercall { op, outcome });
    }

    /// Marks the domain as crashed: its trace is printed at its end.
    pub fn mark_crashed(&self) {
        self.crashed.set(true);
    }

    /// Whether the trace is to be printed at the domain's end: it crashed, or `trace=dump`.
    pub fn wanted(&self) -> bool {
        self.crashed.get() || DUMP_ALWAYS.load(Ordering::Relaxed)
    }

    /// Exits recorded so far.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The records kept, oldest first.
    pub fn records(&self) -> impl Iterator<Item = &Record> {
        let kept = self.total.min(TRACE_LEN as u64);
        let first = self.total - kept;
        (first..self.total).map(|n| &self.ring[Self::slot(n)])
    }

    /// Prints the trace of domain `domid` (`hv: d<id> ...` lines).
    pub fn print(&self, out: &mut impl Write, domid: u16) -> fmt::Result {
        let kept = self.total.min(TRACE_LEN as u64);
        writeln!(
            out,
            "hv: d{domid} exit trace: the last {kept} of {} exits, oldest first",
            self.total
        )?;
        for r in self.records() {
            write!(
                out,
                "hv: d{domid}   #{} {} rip={:#x}",
                r.seq,
                exit::name(r.code),
                r.rip
            )?;
            if r.code != exit::VMMCALL && exit::name(r.code) == "other" {
                write!(out, " (code {:#x})", r.code)?;
            }
            if let Some(h) = r.hypercall {
                match usize::try_from(h.op)
                    .ok()
                    .filter(|&o| o < HYPERCALL_SLOTS)
                    .and_then(hypercall_name)
                {
                    Some(name) => write!(out, " {name}")?,
                    None => write!(out, " op{}", h.op)?,
                }
                match h.outcome {
                    Outcome::Returned(v) => write!(out, " -> {v}")?,
                    Outcome::Continued => write!(out, " -> (continued)")?,
                    Outcome::Pending => write!(out, " -> (no return)")?,
                }
            }
            writeln!(out)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::String;

    #[test]
    fn keeps_the_last_exits_in_order() {
        let mut t = ExitTrace::new();
        assert_eq!(t.records().count(), 0);
        t.hypercall(1, Outcome::Returned(0)); // no exit yet: ignored
        for i in 0..100u64 {
            t.exit(exit::VMMCALL, 0x1000 + i);
            t.hypercall(32, Outcome::Returned(-22));
        }
        t.exit(exit::CPUID, 0x9999);
        assert_eq!(t.total(), 101);
        let r: alloc::vec::Vec<_> = t.records().collect();
        assert_eq!(r.len(), TRACE_LEN);
        assert_eq!(r[0].seq, 101 - TRACE_LEN as u64 + 1);
        assert_eq!(r[0].rip, 0x1000 + 101 - TRACE_LEN as u64);
        assert_eq!(r[TRACE_LEN - 1].seq, 101);
        assert_eq!(r[TRACE_LEN - 1].hypercall, None);
        assert_eq!(
            r[TRACE_LEN - 2].hypercall,
            Some(Hypercall {
                op: 32,
                outcome: Outcome::Returned(-22)
            })
        );
        assert!(r.windows(2).all(|w| w[0].seq + 1 == w[1].seq));
    }

    #[test]
    fn prints_names_and_outcomes() {
        let mut t = ExitTrace::new();
        t.exit(exit::IOIO, 0x10);
        t.exit(exit::VMMCALL, 0x20);
        t.hypercall(32, Outcome::Returned(0));
        t.exit(exit::VMMCALL, 0x30);
        t.hypercall(29, Outcome::Pending);
        t.exit(exit::VMMCALL, 0x40);
        t.hypercall(1000, Outcome::Continued);
        t.exit(0x4321, 0x50);
        let mut s = String::new();
        t.print(&mut s, 3).unwrap();
        assert_eq!(
            s,
            "hv: d3 exit trace: the last 5 of 5 exits, oldest first\n\
             hv: d3   #1 ioio rip=0x10\n\
             hv: d3   #2 vmmcall rip=0x20 event_channel_op -> 0\n\
             hv: d3   #3 vmmcall rip=0x30 sched_op -> (no return)\n\
             hv: d3   #4 vmmcall rip=0x40 op1000 -> (continued)\n\
             hv: d3   #5 other rip=0x50 (code 0x4321)\n"
        );
        assert!(!t.wanted());
        t.mark_crashed();
        assert!(t.wanted());
    }
}
