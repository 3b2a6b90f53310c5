//! `HYPERVISOR_hvm_op`: HVM parameters of this domain, and the per-vCPU upcall vector's
//! refusals.

use super::*;

/// `HVMOP_get_param` for this domain.
pub fn hvm_get_param(index: u32) -> Result<u64, HypercallError> {
    let mut p = abi::hvm::XenHvmParam {
        domid: DOMID_SELF,
        pad: 0,
        index,
        value: 0,
    };
    // SAFETY: `p` is a live xen_hvm_param that Xen reads and writes during the call.
    check(unsafe {
        hypercall2(
            x::HYPERVISOR_HVM_OP,
            abi::hvm::HVMOP_GET_PARAM.into(),
            ptr_mut(&mut p),
        )
    }?)?;
    Ok(p.value)
}

/// `HVMOP_set_evtchn_upcall_vector` for vCPU `vcpu` and `vector`: Xen's raw answer.
///
/// # Safety
/// A call Xen takes makes `vector` vCPU `vcpu`'s upcall from then on, a local APIC
/// interrupt asserted at once: the caller passes arguments Xen refuses (a self-test's
/// probe), or has an IDT entry for `vector` that handles events and EOIs it.
pub unsafe fn hvm_set_evtchn_upcall_vector(vcpu: u32, vector: u8) -> Result<i64, HypercallError> {
    let mut arg = abi::hvm::XenHvmEvtchnUpcallVector { vcpu, vector };
    // SAFETY: `arg` is a live xen_hvm_evtchn_upcall_vector that Xen only reads (8 bytes, its
    // padding included); the caller vouches for the effect of a call Xen takes.
    unsafe {
        hypercall2(
            x::HYPERVISOR_HVM_OP,
            abi::hvm::HVMOP_SET_EVTCHN_UPCALL_VECTOR.into(),
            ptr_mut(&mut arg),
        )
    }
}

/// `HVMOP_set_param` for this domain.
///
/// # Safety
/// Setting a parameter can change how Xen delivers interrupts to this domain (e.g.
/// `HVM_PARAM_CALLBACK_IRQ`): the caller must have prepared whatever the new value points at
/// (an IDT entry for a callback vector).
pub unsafe fn hvm_set_param(index: u32, value: u64) -> Result<(), HypercallError> {
    let mut p = abi::hvm::XenHvmParam {
        domid: DOMID_SELF,
        pad: 0,
        index,
        value,
    };
    // SAFETY: `p` is a live xen_hvm_param that Xen only reads; the caller vouches for the
    // effect of the new value.
    check(unsafe {
        hypercall2(
            x::HYPERVISOR_HVM_OP,
            abi::hvm::HVMOP_SET_PARAM.into(),
            ptr_mut(&mut p),
        )
    }?)?;
    Ok(())
}
