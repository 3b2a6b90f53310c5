//! `HVMOP_set_evtchn_upcall_vector` (Xen 4.17's `hvmop_set_evtchn_upcall_vector` in
//! xen/arch/x86/hvm/hvm.c): a vCPU's own event upcall vector, which Xen offers with
//! `XEN_HVM_CPUID_UPCALL_VECTOR`. From then on an upcall of that vCPU is a fixed,
//! edge-triggered interrupt of its local APIC (`hvm_assert_evtchn_irq` →
//! `vlapic_set_irq(vlapic, vector, 0)`), asserted each time `evtchn_upcall_pending` goes from 0
//! to 1, which the guest EOIs (Linux's `sysvec_xen_hvm_callback` does when it took this path);
//! the domain's `HVM_PARAM_CALLBACK_IRQ` vector is not involved.
//!
//! The operation only records the vector ([`XenState::upcall_vector`]) and asks the caller to
//! assert it once ([`XenState::upcall_vector_set`]), as Xen asserts it at once whatever
//! `evtchn_upcall_pending` says; the local APIC is the kernel's. [`UpcallGate`] is what
//! [`super::HypercallEnv::upcall_deliverable`] answers from.

use abi::errno::{XEN_EINVAL, XEN_ENOENT};

use super::args::read_struct;
use super::{EFAULT, HypercallEnv, Outcome, XenState, done};
use crate::xen_errno::xen_errno as err;

/// The lowest vector Xen takes (the ones below are refused with `-EINVAL`).
pub const MIN_VECTOR: u8 = 0x10;

/// `HVMOP_set_evtchn_upcall_vector` with its argument at guest address `arg`, in Xen's
/// order: the copy (`-EFAULT`), the vector (`-EINVAL` below [`MIN_VECTOR`]), the vCPU
/// (`-ENOENT` unless it exists: hv's domains have vCPU 0 only, as a Xen domain with
/// `vcpus = 1`).
pub(super) fn set_evtchn_upcall_vector(
    env: &impl HypercallEnv,
    st: &mut XenState,
    arg: u64,
) -> Outcome {
    let Ok(abi::hvm::XenHvmEvtchnUpcallVector { vcpu, vector }) = read_struct(env, arg) else {
        return done(EFAULT);
    };
    if vector < MIN_VECTOR {
        return done(err(XEN_EINVAL));
    }
    if vcpu != 0 {
        return done(err(XEN_ENOENT));
    }
    st.upcall_vector = Some(vector);
    st.upcall_vector_set = true;
    done(0)
}

/// How an upcall would reach vCPU 0 right now (Xen's `hvm_local_events_need_delivery` for
/// the event upcall), as the kernel saw the vCPU when the hypercall came.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UpcallGate {
    /// The guest's IF is set and it is outside an interrupt shadow.
    pub open: bool,
    /// The domain set a callback vector (`HVM_PARAM_CALLBACK_IRQ` of type vector): it is
    /// injected while `evtchn_upcall_pending` is set.
    pub callback: bool,
    /// vCPU 0's own upcall vector is pending in its local APIC, which would deliver it.
    pub vector_pending: bool,
    /// vCPU 0 has its own upcall vector, its local APIC would deliver it, and
    /// `evtchn_upcall_pending` was clear when the guest last ran: if it is set now, hv raised
    /// it since, and the vector is asserted before the guest runs again.
    pub vector_on_raise: bool,
}

impl UpcallGate {
    /// Whether an upcall would be delivered at once, `evtchn_upcall_pending` being `pending`.
    pub fn deliverable(&self, pending: bool) -> bool {
        self.open
            && ((self.callback && pending)
                || self.vector_pending
                || (self.vector_on_raise && pending))
    }
}

#[cfg(test)]
mod tests {
    use abi::hvm::{HVMOP_SET_EVTCHN_UPCALL_VECTOR, XenHvmEvtchnUpcallVector};
    use abi::xen as x;

    use super::super::args::set_field;
    use super::super::tests::{Fake, call5};
    use super::*;

    const SIZE: usize = size_of::<XenHvmEvtchnUpcallVector>();

    /// The argument as the guest lays it out (its padding zero).
    fn image(vcpu: u32, vector: u8) -> [u8; SIZE] {
        let mut image = [0u8; SIZE];
        set_field!(image, XenHvmEvtchnUpcallVector, vcpu, vcpu);
        set_field!(image, XenHvmEvtchnUpcallVector, vector, vector);
        image
    }

    /// The op with its argument at `va`; the answer.
    fn set(f: &mut Fake, va: u64) -> i64 {
        let o = call5(
            f,
            u64::from(x::HYPERVISOR_HVM_OP),
            [u64::from(HVMOP_SET_EVTCHN_UPCALL_VECTOR), va, 0, 0, 0],
        );
        assert!(o.implemented);
        o.ret
    }

    fn state(f: &Fake) -> (Option<u8>, bool) {
        let st = f.st().unwrap();
        (st.upcall_vector, st.upcall_vector_set)
    }

    #[test]
    fn the_vector_and_the_vcpu_are_checked_as_xen_checks_them() {
        let mut f = Fake::new();
        // Below 0x10: -EINVAL, whatever the vCPU (Xen checks the vector first).
        for (vcpu, vector) in [(0, 0x0f), (0, 0), (4096, 0x0f)] {
            f.put(0x500, &image(vcpu, vector));
            assert_eq!(set(&mut f, 0x500), -22, "vcpu {vcpu} vector {vector:#x}");
        }
        // A vCPU the domain does not have: -ENOENT.
        for vcpu in [1, 4096, u32::MAX] {
            f.put(0x500, &image(vcpu, 0xf3));
            assert_eq!(set(&mut f, 0x500), -2, "vcpu {vcpu}");
        }
        assert_eq!(state(&f), (None, false), "a refused call changes nothing");
        // vCPU 0 and the lowest vector Xen takes.
        f.put(0x500, &image(0, 0x10));
        assert_eq!(set(&mut f, 0x500), 0);
        assert_eq!(state(&f), (Some(0x10), true));
        f.st_mut().unwrap().upcall_vector_set = false;
        f.put(0x500, &image(0, 0xf3));
        assert_eq!(set(&mut f, 0x500), 0);
        assert_eq!(state(&f), (Some(0xf3), true), "set again: asserted again");
    }

    #[test]
    fn an_argument_out_of_reach_is_efault() {
        let mut f = Fake::new();
        // The fake's memory ends at 0x10000: Xen copies the whole struct, its padding too,
        // so all 8 bytes must be there.
        f.put(0x10000 - SIZE as u64, &image(0, 0xf3));
        assert_eq!(
            set(&mut f, 0x10000 - SIZE as u64),
            0,
            "the last 8 bytes of memory"
        );
        f.st_mut().unwrap().upcall_vector = None;
        for va in [0xfff9, 0xfffc, 0x10000, u64::MAX - 3, u64::MAX] {
            assert_eq!(set(&mut f, va), -14, "{va:#x}");
        }
        assert_eq!(f.st().unwrap().upcall_vector, None);
    }

    #[test]
    fn an_upcall_is_deliverable_as_xen_would_deliver_it() {
        let open = UpcallGate {
            open: true,
            ..UpcallGate::default()
        };
        // No callback and no vector: never.
        assert!(!open.deliverable(true));
        let callback = UpcallGate {
            callback: true,
            ..open
        };
        assert!(callback.deliverable(true) && !callback.deliverable(false));
        let vector = UpcallGate {
            vector_on_raise: true,
            ..open
        };
        assert!(vector.deliverable(true) && !vector.deliverable(false));
        // Pending in the APIC: deliverable whatever the flag says now.
        let asserted = UpcallGate {
            vector_pending: true,
            ..open
        };
        assert!(asserted.deliverable(false));
        // The guest saw the flag set and EOIed without clearing it: no new assertion.
        assert!(!open.deliverable(true));
        // Interrupts off or in a shadow: nothing is delivered at once.
        for g in [callback, vector, asserted] {
            let closed = UpcallGate { open: false, ..g };
            assert!(!closed.deliverable(true));
        }
    }
}
