//! Event channels: `xen/event_channel.h` (`HYPERVISOR_event_channel_op`) and the `VIRQ_*`
//! numbers of `xen/xen.h`.

use core::fmt;
use core::mem::{align_of, offset_of, size_of};

use crate::xen::Domid;

/// `evtchn_port_t`: an event-channel port number.
pub type EvtchnPort = u32;

// ---------------------------------------------------------------------------------------------
// EVTCHNOP_* (first argument of HYPERVISOR_event_channel_op)
// ---------------------------------------------------------------------------------------------

/// Bind to an unbound port of another domain; argument [`EvtchnBindInterdomain`].
pub const EVTCHNOP_BIND_INTERDOMAIN: u32 = 0;
/// Bind a port to a virtual IRQ; argument [`EvtchnBindVirq`].
pub const EVTCHNOP_BIND_VIRQ: u32 = 1;
/// Bind a port to a physical IRQ (privileged); argument [`EvtchnBindPirq`].
pub const EVTCHNOP_BIND_PIRQ: u32 = 2;
/// Close a port; argument [`EvtchnClose`].
pub const EVTCHNOP_CLOSE: u32 = 3;
/// Notify the remote end of a port; argument [`EvtchnSend`].
pub const EVTCHNOP_SEND: u32 = 4;
/// Query a port's state; argument [`EvtchnStatus`].
pub const EVTCHNOP_STATUS: u32 = 5;
/// Allocate a port that a given remote domain may bind to; argument [`EvtchnAllocUnbound`].
pub const EVTCHNOP_ALLOC_UNBOUND: u32 = 6;
/// Allocate an inter-vCPU (IPI) port; argument [`EvtchnBindIpi`].
pub const EVTCHNOP_BIND_IPI: u32 = 7;
/// Choose the vCPU a port notifies; argument [`EvtchnBindVcpu`].
pub const EVTCHNOP_BIND_VCPU: u32 = 8;
/// Unmask a port, re-raising a pending event; argument [`EvtchnUnmask`].
pub const EVTCHNOP_UNMASK: u32 = 9;
/// Close all ports of a domain; argument [`EvtchnReset`].
pub const EVTCHNOP_RESET: u32 = 10;
/// Switch to FIFO event channels on a vCPU; argument [`EvtchnInitControl`].
pub const EVTCHNOP_INIT_CONTROL: u32 = 11;
/// Add a page to the FIFO event array; argument [`EvtchnExpandArray`].
pub const EVTCHNOP_EXPAND_ARRAY: u32 = 12;
/// Set a FIFO port's priority; argument [`EvtchnSetPriority`].
pub const EVTCHNOP_SET_PRIORITY: u32 = 13;

// ---------------------------------------------------------------------------------------------
// VIRQ_* (xen.h; evtchn_bind_virq.virq). V = per-vCPU, G = global
// ---------------------------------------------------------------------------------------------

/// V: timebase update and/or requested timeout.
pub const VIRQ_TIMER: u32 = 0;
/// V: request to dump debug info.
pub const VIRQ_DEBUG: u32 = 1;
/// G (domain 0): bytes received on the emergency console.
pub const VIRQ_CONSOLE: u32 = 2;
/// G (domain 0): exceptional event for some domain.
pub const VIRQ_DOM_EXC: u32 = 3;
/// G (domain 0): trace buffer has records.
pub const VIRQ_TBUF: u32 = 4;
/// G (domain 0): a domain paused for debugging.
pub const VIRQ_DEBUGGER: u32 = 6;
/// V: XenOprofile sample available.
pub const VIRQ_XENOPROF: u32 = 7;
/// G (domain 0): bytes received on the console ring.
pub const VIRQ_CON_RING: u32 = 8;
/// G (domain 0): physical CPU state changed.
pub const VIRQ_PCPU_STATE: u32 = 9;
/// G (domain 0): a memory event occurred.
pub const VIRQ_MEM_EVENT: u32 = 10;
/// G: Argo inter-domain message notification.
pub const VIRQ_ARGO: u32 = 11;
/// G (domain 0): Xen is low on heap memory.
pub const VIRQ_ENOMEM: u32 = 12;
/// V: performance-counter interrupt.
pub const VIRQ_XENPMU: u32 = 13;
/// Architecture-specific VIRQ 0.
pub const VIRQ_ARCH_0: u32 = 16;
/// Architecture-specific VIRQ 1.
pub const VIRQ_ARCH_1: u32 = 17;
/// Architecture-specific VIRQ 2.
pub const VIRQ_ARCH_2: u32 = 18;
/// Architecture-specific VIRQ 3.
pub const VIRQ_ARCH_3: u32 = 19;
/// Architecture-specific VIRQ 4.
pub const VIRQ_ARCH_4: u32 = 20;
/// Architecture-specific VIRQ 5.
pub const VIRQ_ARCH_5: u32 = 21;
/// Architecture-specific VIRQ 6.
pub const VIRQ_ARCH_6: u32 = 22;
/// Architecture-specific VIRQ 7.
pub const VIRQ_ARCH_7: u32 = 23;
/// Number of VIRQs (valid numbers are below it).
pub const NR_VIRQS: u32 = 24;

// ---------------------------------------------------------------------------------------------
// Arguments
// ---------------------------------------------------------------------------------------------

/// `struct evtchn_alloc_unbound`: argument of `EVTCHNOP_alloc_unbound`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnAllocUnbound {
    /// IN: domain to allocate in (unprivileged callers: `DOMID_SELF`).
    pub dom: Domid,
    /// IN: domain allowed to bind (may be `DOMID_SELF`).
    pub remote_dom: Domid,
    /// OUT: the new port.
    pub port: EvtchnPort,
}
const _: () = {
    assert!(size_of::<EvtchnAllocUnbound>() == 8 && align_of::<EvtchnAllocUnbound>() == 4);
    assert!(offset_of!(EvtchnAllocUnbound, dom) == 0);
    assert!(offset_of!(EvtchnAllocUnbound, remote_dom) == 2);
    assert!(offset_of!(EvtchnAllocUnbound, port) == 4);
};

/// `struct evtchn_bind_interdomain`: argument of `EVTCHNOP_bind_interdomain` (the new local
/// port is always set pending).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnBindInterdomain {
    /// IN: the remote domain.
    pub remote_dom: Domid,
    /// IN: its unbound port.
    pub remote_port: EvtchnPort,
    /// OUT: the new local port.
    pub local_port: EvtchnPort,
}
const _: () = {
    assert!(size_of::<EvtchnBindInterdomain>() == 12);
    assert!(align_of::<EvtchnBindInterdomain>() == 4);
    assert!(offset_of!(EvtchnBindInterdomain, remote_dom) == 0);
    assert!(offset_of!(EvtchnBindInterdomain, remote_port) == 4);
    assert!(offset_of!(EvtchnBindInterdomain, local_port) == 8);
};

/// `struct evtchn_bind_virq`: argument of `EVTCHNOP_bind_virq`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnBindVirq {
    /// IN: `VIRQ_*`.
    pub virq: u32,
    /// IN: vCPU to bind on (global VIRQs: 0).
    pub vcpu: u32,
    /// OUT: the new port.
    pub port: EvtchnPort,
}
const _: () = {
    assert!(size_of::<EvtchnBindVirq>() == 12 && align_of::<EvtchnBindVirq>() == 4);
    assert!(offset_of!(EvtchnBindVirq, virq) == 0);
    assert!(offset_of!(EvtchnBindVirq, vcpu) == 4);
    assert!(offset_of!(EvtchnBindVirq, port) == 8);
};

/// `evtchn_bind_pirq.flags`: the PIRQ may be shared with other domains.
pub const BIND_PIRQ__WILL_SHARE: u32 = 1;

/// `struct evtchn_bind_pirq`: argument of `EVTCHNOP_bind_pirq`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnBindPirq {
    /// IN: physical IRQ.
    pub pirq: u32,
    /// IN: `BIND_PIRQ__*` flags.
    pub flags: u32,
    /// OUT: the new port.
    pub port: EvtchnPort,
}
const _: () = {
    assert!(size_of::<EvtchnBindPirq>() == 12 && align_of::<EvtchnBindPirq>() == 4);
    assert!(offset_of!(EvtchnBindPirq, pirq) == 0);
    assert!(offset_of!(EvtchnBindPirq, flags) == 4);
    assert!(offset_of!(EvtchnBindPirq, port) == 8);
};

/// `struct evtchn_bind_ipi`: argument of `EVTCHNOP_bind_ipi`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnBindIpi {
    /// IN: vCPU the port notifies (fixed).
    pub vcpu: u32,
    /// OUT: the new port.
    pub port: EvtchnPort,
}
const _: () = {
    assert!(size_of::<EvtchnBindIpi>() == 8 && align_of::<EvtchnBindIpi>() == 4);
    assert!(offset_of!(EvtchnBindIpi, vcpu) == 0);
    assert!(offset_of!(EvtchnBindIpi, port) == 4);
};

/// `struct evtchn_close`: argument of `EVTCHNOP_close`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnClose {
    /// IN: local port to close.
    pub port: EvtchnPort,
}
const _: () = {
    assert!(size_of::<EvtchnClose>() == 4 && align_of::<EvtchnClose>() == 4);
    assert!(offset_of!(EvtchnClose, port) == 0);
};

/// `struct evtchn_send`: argument of `EVTCHNOP_send`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnSend {
    /// IN: local port whose remote end is notified.
    pub port: EvtchnPort,
}
const _: () = {
    assert!(size_of::<EvtchnSend>() == 4 && align_of::<EvtchnSend>() == 4);
    assert!(offset_of!(EvtchnSend, port) == 0);
};

// ---------------------------------------------------------------------------------------------
// EVTCHNOP_status
// ---------------------------------------------------------------------------------------------

/// Status: the channel is not in use.
pub const EVTCHNSTAT_CLOSED: u32 = 0;
/// Status: waiting for an interdomain connection.
pub const EVTCHNSTAT_UNBOUND: u32 = 1;
/// Status: connected to a remote domain.
pub const EVTCHNSTAT_INTERDOMAIN: u32 = 2;
/// Status: bound to a physical IRQ.
pub const EVTCHNSTAT_PIRQ: u32 = 3;
/// Status: bound to a virtual IRQ.
pub const EVTCHNSTAT_VIRQ: u32 = 4;
/// Status: bound to a virtual IPI.
pub const EVTCHNSTAT_IPI: u32 = 5;

/// `evtchn_status.u.unbound`: state of an unbound port.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnStatusUnbound {
    /// Domain allowed to bind.
    pub dom: Domid,
}
const _: () = {
    assert!(size_of::<EvtchnStatusUnbound>() == 2 && align_of::<EvtchnStatusUnbound>() == 2);
    assert!(offset_of!(EvtchnStatusUnbound, dom) == 0);
};

/// `evtchn_status.u.interdomain`: state of a connected interdomain port.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnStatusInterdomain {
    /// Remote domain.
    pub dom: Domid,
    /// Remote port.
    pub port: EvtchnPort,
}
const _: () = {
    assert!(size_of::<EvtchnStatusInterdomain>() == 8);
    assert!(align_of::<EvtchnStatusInterdomain>() == 4);
    assert!(offset_of!(EvtchnStatusInterdomain, dom) == 0);
    assert!(offset_of!(EvtchnStatusInterdomain, port) == 4);
};

/// `evtchn_status.u`: status-specific details (which member is valid follows `status`).
#[repr(C)]
#[derive(Clone, Copy)]
pub union EvtchnStatusU {
    /// `EVTCHNSTAT_unbound`.
    pub unbound: EvtchnStatusUnbound,
    /// `EVTCHNSTAT_interdomain`.
    pub interdomain: EvtchnStatusInterdomain,
    /// `EVTCHNSTAT_pirq`: the physical IRQ.
    pub pirq: u32,
    /// `EVTCHNSTAT_virq`: the `VIRQ_*`.
    pub virq: u32,
}
const _: () = assert!(size_of::<EvtchnStatusU>() == 8 && align_of::<EvtchnStatusU>() == 4);

impl Default for EvtchnStatusU {
    fn default() -> Self {
        Self {
            interdomain: EvtchnStatusInterdomain::default(),
        }
    }
}

impl fmt::Debug for EvtchnStatusU {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EvtchnStatusU").finish_non_exhaustive()
    }
}

/// `struct evtchn_status`: argument of `EVTCHNOP_status`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct EvtchnStatus {
    /// IN: domain owning the port (may be `DOMID_SELF`).
    pub dom: Domid,
    /// IN: the port.
    pub port: EvtchnPort,
    /// OUT: `EVTCHNSTAT_*`.
    pub status: u32,
    /// OUT: vCPU the port notifies.
    pub vcpu: u32,
    /// OUT: status-specific details.
    pub u: EvtchnStatusU,
}
const _: () = {
    assert!(size_of::<EvtchnStatus>() == 24 && align_of::<EvtchnStatus>() == 4);
    assert!(offset_of!(EvtchnStatus, dom) == 0);
    assert!(offset_of!(EvtchnStatus, port) == 4);
    assert!(offset_of!(EvtchnStatus, status) == 8);
    assert!(offset_of!(EvtchnStatus, vcpu) == 12);
    assert!(offset_of!(EvtchnStatus, u) == 16);
};

// ---------------------------------------------------------------------------------------------
// More arguments
// ---------------------------------------------------------------------------------------------

/// `struct evtchn_bind_vcpu`: argument of `EVTCHNOP_bind_vcpu`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnBindVcpu {
    /// IN: the port.
    pub port: EvtchnPort,
    /// IN: vCPU to notify.
    pub vcpu: u32,
}
const _: () = {
    assert!(size_of::<EvtchnBindVcpu>() == 8 && align_of::<EvtchnBindVcpu>() == 4);
    assert!(offset_of!(EvtchnBindVcpu, port) == 0);
    assert!(offset_of!(EvtchnBindVcpu, vcpu) == 4);
};

/// `struct evtchn_unmask`: argument of `EVTCHNOP_unmask`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnUnmask {
    /// IN: the port.
    pub port: EvtchnPort,
}
const _: () = {
    assert!(size_of::<EvtchnUnmask>() == 4 && align_of::<EvtchnUnmask>() == 4);
    assert!(offset_of!(EvtchnUnmask, port) == 0);
};

/// `struct evtchn_reset`: argument of `EVTCHNOP_reset`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnReset {
    /// IN: the domain (may be `DOMID_SELF`).
    pub dom: Domid,
}
const _: () = {
    assert!(size_of::<EvtchnReset>() == 2 && align_of::<EvtchnReset>() == 2);
    assert!(offset_of!(EvtchnReset, dom) == 0);
};

/// `struct evtchn_init_control`: argument of `EVTCHNOP_init_control`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnInitControl {
    /// IN: guest frame holding the control block.
    pub control_gfn: u64,
    /// IN: offset of the control block in that frame.
    pub offset: u32,
    /// IN: the vCPU.
    pub vcpu: u32,
    /// OUT: number of link bits in an event word.
    pub link_bits: u8,
    /// Padding.
    pub _pad: [u8; 7],
}
const _: () = {
    assert!(size_of::<EvtchnInitControl>() == 24 && align_of::<EvtchnInitControl>() == 8);
    assert!(offset_of!(EvtchnInitControl, control_gfn) == 0);
    assert!(offset_of!(EvtchnInitControl, offset) == 8);
    assert!(offset_of!(EvtchnInitControl, vcpu) == 12);
    assert!(offset_of!(EvtchnInitControl, link_bits) == 16);
    assert!(offset_of!(EvtchnInitControl, _pad) == 17);
};

/// `struct evtchn_expand_array`: argument of `EVTCHNOP_expand_array`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnExpandArray {
    /// IN: guest frame to add to the event array.
    pub array_gfn: u64,
}
const _: () = {
    assert!(size_of::<EvtchnExpandArray>() == 8 && align_of::<EvtchnExpandArray>() == 8);
    assert!(offset_of!(EvtchnExpandArray, array_gfn) == 0);
};

/// `struct evtchn_set_priority`: argument of `EVTCHNOP_set_priority`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnSetPriority {
    /// IN: the port.
    pub port: EvtchnPort,
    /// IN: priority, `EVTCHN_FIFO_PRIORITY_MAX` (0) ..= `EVTCHN_FIFO_PRIORITY_MIN` (15).
    pub priority: u32,
}
const _: () = {
    assert!(size_of::<EvtchnSetPriority>() == 8 && align_of::<EvtchnSetPriority>() == 4);
    assert!(offset_of!(EvtchnSetPriority, port) == 0);
    assert!(offset_of!(EvtchnSetPriority, priority) == 4);
};

// ---------------------------------------------------------------------------------------------
// The compat wrapper (HYPERVISOR_event_channel_op_compat)
// ---------------------------------------------------------------------------------------------

/// `evtchn_op.u`: the argument of the command in `evtchn_op.cmd`.
#[repr(C)]
#[derive(Clone, Copy)]
pub union EvtchnOpU {
    /// `EVTCHNOP_alloc_unbound`.
    pub alloc_unbound: EvtchnAllocUnbound,
    /// `EVTCHNOP_bind_interdomain`.
    pub bind_interdomain: EvtchnBindInterdomain,
    /// `EVTCHNOP_bind_virq`.
    pub bind_virq: EvtchnBindVirq,
    /// `EVTCHNOP_bind_pirq`.
    pub bind_pirq: EvtchnBindPirq,
    /// `EVTCHNOP_bind_ipi`.
    pub bind_ipi: EvtchnBindIpi,
    /// `EVTCHNOP_close`.
    pub close: EvtchnClose,
    /// `EVTCHNOP_send`.
    pub send: EvtchnSend,
    /// `EVTCHNOP_status`.
    pub status: EvtchnStatus,
    /// `EVTCHNOP_bind_vcpu`.
    pub bind_vcpu: EvtchnBindVcpu,
    /// `EVTCHNOP_unmask`.
    pub unmask: EvtchnUnmask,
}
const _: () = assert!(size_of::<EvtchnOpU>() == 24 && align_of::<EvtchnOpU>() == 4);

impl Default for EvtchnOpU {
    fn default() -> Self {
        Self {
            status: EvtchnStatus::default(),
        }
    }
}

impl fmt::Debug for EvtchnOpU {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EvtchnOpU").finish_non_exhaustive()
    }
}

/// `struct evtchn_op`: argument of the legacy `HYPERVISOR_event_channel_op_compat`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct EvtchnOp {
    /// `EVTCHNOP_*`.
    pub cmd: u32,
    /// The command's argument.
    pub u: EvtchnOpU,
}
const _: () = {
    assert!(size_of::<EvtchnOp>() == 28 && align_of::<EvtchnOp>() == 4);
    assert!(offset_of!(EvtchnOp, cmd) == 0);
    assert!(offset_of!(EvtchnOp, u) == 4);
};

// ---------------------------------------------------------------------------------------------
// Two-level and FIFO ABIs
// ---------------------------------------------------------------------------------------------

/// Ports of the two-level ABI (`sizeof(xen_ulong_t)^2 * 64` = 4096 on x86_64).
pub const EVTCHN_2L_NR_CHANNELS: u32 = 4096;

/// FIFO priority: highest.
pub const EVTCHN_FIFO_PRIORITY_MAX: u32 = 0;
/// FIFO priority: default.
pub const EVTCHN_FIFO_PRIORITY_DEFAULT: u32 = 7;
/// FIFO priority: lowest.
pub const EVTCHN_FIFO_PRIORITY_MIN: u32 = 15;
/// Number of FIFO queues (one per priority).
pub const EVTCHN_FIFO_MAX_QUEUES: u32 = EVTCHN_FIFO_PRIORITY_MIN + 1;

/// `event_word_t`: one port's word of the FIFO event array.
pub type EventWord = u32;

/// Event-word bit: pending.
pub const EVTCHN_FIFO_PENDING: u32 = 31;
/// Event-word bit: masked.
pub const EVTCHN_FIFO_MASKED: u32 = 30;
/// Event-word bit: linked into a queue.
pub const EVTCHN_FIFO_LINKED: u32 = 29;
/// Event-word bit: busy (being unlinked).
pub const EVTCHN_FIFO_BUSY: u32 = 28;
/// Width of the link field of an event word.
pub const EVTCHN_FIFO_LINK_BITS: u32 = 17;
/// Mask of the link field of an event word.
pub const EVTCHN_FIFO_LINK_MASK: u32 = (1 << EVTCHN_FIFO_LINK_BITS) - 1;
/// Ports of the FIFO ABI.
pub const EVTCHN_FIFO_NR_CHANNELS: u32 = 1 << EVTCHN_FIFO_LINK_BITS;

/// `struct evtchn_fifo_control_block`: a vCPU's FIFO control block.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnFifoControlBlock {
    /// One bit per queue with events ready.
    pub ready: u32,
    /// Reserved.
    pub _rsvd: u32,
    /// Head port of each priority queue.
    pub head: [u32; EVTCHN_FIFO_MAX_QUEUES as usize],
}
const _: () = {
    assert!(size_of::<EvtchnFifoControlBlock>() == 72);
    assert!(align_of::<EvtchnFifoControlBlock>() == 4);
    assert!(offset_of!(EvtchnFifoControlBlock, ready) == 0);
    assert!(offset_of!(EvtchnFifoControlBlock, _rsvd) == 4);
    assert!(offset_of!(EvtchnFifoControlBlock, head) == 8);
};
