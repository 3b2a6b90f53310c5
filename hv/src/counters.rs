//! Counters of VM exits by reason and hypercalls by op, printed at shutdown as
//! `COUNTER exit.<reason> <n>` and `COUNTER hypercall.<op> <n>`.

use core::cell::Cell;
use core::fmt::{self, Write};

use crate::svm::exit;

/// Hypercall numbers below this are counted one by one; higher ones as `other`.
pub const HYPERCALL_SLOTS: usize = 64;

/// How many lines a domain may make hv log through what it does (a refused hypercall page,
/// an instruction that does not decode, a new callback vector, ...) before further ones are
/// only counted.
pub const GUEST_LOG_LINES: u32 = 32;

/// The budget of a domain's guest-triggered log lines: the first [`GUEST_LOG_LINES`] are
/// printed, the rest counted, so a guest that repeats such a thing in a loop cannot flood hv's
/// serial port (each byte an emulated port write) and slow hv for everyone.
#[derive(Debug, Default)]
pub struct GuestLogBudget {
    printed: Cell<u32>,
    suppressed: Cell<u64>,
}

impl GuestLogBudget {
    /// Whether the next guest-triggered line may be printed (else it is counted).
    pub fn allow(&self) -> bool {
        let printed = self.printed.get();
        if printed < GUEST_LOG_LINES {
            self.printed.set(printed + 1); // below GUEST_LOG_LINES: no overflow
            true
        } else {
            self.suppressed.set(self.suppressed.get().saturating_add(1));
            false
        }
    }

    /// Lines counted instead of printed.
    pub fn suppressed(&self) -> u64 {
        self.suppressed.get()
    }
}

/// The counters of one run.
#[derive(Clone, Debug)]
pub struct Counters {
    exits: [u64; exit::COUNTED.len() + 1],
    hypercalls: [u64; HYPERCALL_SLOTS + 1],
    /// Hypercalls answered `-ENOSYS` (not implemented, or unknown to Xen too).
    pub enosys: u64,
}

impl Default for Counters {
    fn default() -> Self {
        Self::new()
    }
}

impl Counters {
    /// All zero.
    pub const fn new() -> Self {
        Self {
            exits: [0; exit::COUNTED.len() + 1],
            hypercalls: [0; HYPERCALL_SLOTS + 1],
            enosys: 0,
        }
    }

    /// Counts one exit with `code`.
    pub fn exit(&mut self, code: u64) {
        let s = exit::slot(code);
        self.exits[s] = self.exits[s].saturating_add(1);
    }

    /// Counts one hypercall `op` (any guest value).
    pub fn hypercall(&mut self, op: u64) {
        let s = usize::try_from(op).map_or(HYPERCALL_SLOTS, |o| o.min(HYPERCALL_SLOTS));
        self.hypercalls[s] = self.hypercalls[s].saturating_add(1);
    }

    /// Total exits.
    pub fn total_exits(&self) -> u64 {
        self.exits.iter().sum()
    }

    /// Total hypercalls.
    pub fn total_hypercalls(&self) -> u64 {
        self.hypercalls.iter().sum()
    }

    /// Writes the non-zero counters, one `COUNTER` line each.
    pub fn print(&self, out: &mut impl Write) -> fmt::Result {
        for (i, &n) in self.exits.iter().enumerate() {
            if n > 0 {
                let name = exit::COUNTED.get(i).map_or("other", |&(_, n)| n);
                writeln!(out, "COUNTER exit.{name} {n}")?;
            }
        }
        for (op, &n) in self.hypercalls.iter().enumerate() {
            if n > 0 {
                match hypercall_name(op) {
                    Some(name) => writeln!(out, "COUNTER hypercall.{name} {n}")?,
                    None => writeln!(out, "COUNTER hypercall.op{op} {n}")?,
                }
            }
        }
        writeln!(out, "COUNTER hypercall.enosys {}", self.enosys)
    }
}

/// Xen's name of hypercall `op` (`other` above the counted range; None for ops without a
/// name here, printed as `op<N>`).
pub fn hypercall_name(op: usize) -> Option<&'static str> {
    use abi::xen as x;
    const NAMES: [(u32, &str); 50] = [
        (x::HYPERVISOR_SET_TRAP_TABLE, "set_trap_table"),
        (x::HYPERVISOR_MMU_UPDATE, "mmu_update"),
        (x::HYPERVISOR_SET_GDT, "set_gdt"),
        (x::HYPERVISOR_STACK_SWITCH, "stack_switch"),
        (x::HYPERVISOR_SET_CALLBACKS, "set_callbacks"),
        (x::HYPERVISOR_FPU_TASKSWITCH, "fpu_taskswitch"),
        (x::HYPERVISOR_SCHED_OP_COMPAT, "sched_op_compat"),
        (x::HYPERVISOR_PLATFORM_OP, "platform_op"),
        (x::HYPERVISOR_SET_DEBUGREG, "set_debugreg"),
        (x::HYPERVISOR_GET_DEBUGREG, "get_debugreg"),
        (x::HYPERVISOR_UPDATE_DESCRIPTOR, "update_descriptor"),
        (x::HYPERVISOR_MEMORY_OP, "memory_op"),
        (x::HYPERVISOR_MULTICALL, "multicall"),
        (x::HYPERVISOR_UPDATE_VA_MAPPING, "update_va_mapping"),
        (x::HYPERVISOR_SET_TIMER_OP, "set_timer_op"),
        (
            x::HYPERVISOR_EVENT_CHANNEL_OP_COMPAT,
            "event_channel_op_compat",
        ),
        (x::HYPERVISOR_XEN_VERSION, "xen_version"),
        (x::HYPERVISOR_CONSOLE_IO, "console_io"),
        (x::HYPERVISOR_PHYSDEV_OP_COMPAT, "physdev_op_compat"),
        (x::HYPERVISOR_GRANT_TABLE_OP, "grant_table_op"),
        (x::HYPERVISOR_VM_ASSIST, "vm_assist"),
        (
            x::HYPERVISOR_UPDATE_VA_MAPPING_OTHERDOMAIN,
            "update_va_mapping_otherdomain",
        ),
        (x::HYPERVISOR_IRET, "iret"),
        (x::HYPERVISOR_VCPU_OP, "vcpu_op"),
        (x::HYPERVISOR_SET_SEGMENT_BASE, "set_segment_base"),
        (x::HYPERVISOR_MMUEXT_OP, "mmuext_op"),
        (x::HYPERVISOR_XSM_OP, "xsm_op"),
        (x::HYPERVISOR_NMI_OP, "nmi_op"),
        (x::HYPERVISOR_SCHED_OP, "sched_op"),
        (x::HYPERVISOR_CALLBACK_OP, "callback_op"),
        (x::HYPERVISOR_XENOPROF_OP, "xenoprof_op"),
        (x::HYPERVISOR_EVENT_CHANNEL_OP, "event_channel_op"),
        (x::HYPERVISOR_PHYSDEV_OP, "physdev_op"),
        (x::HYPERVISOR_HVM_OP, "hvm_op"),
        (x::HYPERVISOR_SYSCTL, "sysctl"),
        (x::HYPERVISOR_DOMCTL, "domctl"),
        (x::HYPERVISOR_KEXEC_OP, "kexec_op"),
        (x::HYPERVISOR_TMEM_OP, "tmem_op"),
        (x::HYPERVISOR_ARGO_OP, "argo_op"),
        (x::HYPERVISOR_XENPMU_OP, "xenpmu_op"),
        (x::HYPERVISOR_DM_OP, "dm_op"),
        (x::HYPERVISOR_HYPFS_OP, "hypfs_op"),
        (x::HYPERVISOR_ARCH_0, "arch_0"),
        (x::HYPERVISOR_ARCH_1, "arch_1"),
        (x::HYPERVISOR_ARCH_2, "arch_2"),
        (x::HYPERVISOR_ARCH_3, "arch_3"),
        (x::HYPERVISOR_ARCH_4, "arch_4"),
        (x::HYPERVISOR_ARCH_5, "arch_5"),
        (x::HYPERVISOR_ARCH_6, "arch_6"),
        (x::HYPERVISOR_ARCH_7, "arch_7"),
    ];
    if op >= HYPERCALL_SLOTS {
        return Some("other");
    }
    NAMES
        .iter()
        .find(|&&(n, _)| n as usize == op)
        .map(|&(_, s)| s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_log_lines_past_the_budget_are_counted_not_printed() {
        let budget = GuestLogBudget::default();
        for _ in 0..GUEST_LOG_LINES {
            assert!(budget.allow());
        }
        assert_eq!(budget.suppressed(), 0);
        for _ in 0..1000 {
            assert!(!budget.allow());
        }
        assert_eq!(budget.suppressed(), 1000);
    }

    #[test]
    fn prints_nonzero_counters() {
        let mut c = Counters::new();
        c.exit(exit::VMMCALL);
        c.exit(exit::VMMCALL);
        c.exit(0xdead);
        c.hypercall(17);
        c.hypercall(u64::MAX);
        let mut s = String::new();
        c.print(&mut s).unwrap();
        assert_eq!(
            s,
            "COUNTER exit.vmmcall 2\nCOUNTER exit.other 1\nCOUNTER hypercall.xen_version 1\n\
             COUNTER hypercall.other 1\nCOUNTER hypercall.enosys 0\n"
        );
        assert_eq!(c.total_exits(), 3);
        assert_eq!(c.total_hypercalls(), 2);
    }
}
