//! `HYPERVISOR_vcpu_op`: the single-shot timer.

use super::*;

/// `VCPUOP_set_singleshot_timer` on `vcpu`: `VIRQ_TIMER` fires once when system time reaches
/// `deadline` (at once if it already has: no `VCPU_SSHOTTMR_future`).
pub fn set_singleshot_timer(vcpu: u32, deadline: Instant) -> Result<(), HypercallError> {
    let t = abi::vcpu::VcpuSetSingleshotTimer {
        timeout_abs_ns: deadline.as_nanos(),
        flags: 0,
    };
    // SAFETY: `t` is a live vcpu_set_singleshot_timer that Xen only reads.
    check(unsafe {
        hypercall5(
            x::HYPERVISOR_VCPU_OP,
            abi::vcpu::VCPUOP_SET_SINGLESHOT_TIMER.into(),
            vcpu.into(),
            ptr(&t),
            0,
            0,
        )
    }?)?;
    Ok(())
}

/// `VCPUOP_stop_singleshot_timer` on `vcpu`.
pub fn stop_singleshot_timer(vcpu: u32) -> Result<(), HypercallError> {
    // SAFETY: the operation takes a NULL argument.
    check(unsafe {
        hypercall5(
            x::HYPERVISOR_VCPU_OP,
            abi::vcpu::VCPUOP_STOP_SINGLESHOT_TIMER.into(),
            vcpu.into(),
            0,
            0,
            0,
        )
    }?)?;
    Ok(())
}
