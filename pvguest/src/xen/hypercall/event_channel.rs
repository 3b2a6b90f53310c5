//! `HYPERVISOR_event_channel_op`: typed by `abi::op::EvtchnSubop`.

use super::*;

/// `EVTCHNOP_send`: notifies the other end of `port`.
pub fn evtchn_send(port: Port) -> Result<(), HypercallError> {
    let mut send = abi::event_channel::EvtchnSend { port: port.get() };
    evtchn_op(&mut send)
}

/// Issues the `EVTCHNOP_*` that `T` goes with ([`abi::op::EvtchnSubop::CMD`]) with `arg`, which Xen
/// reads and may write.
fn evtchn_op<T: EvtchnArgumentOnly>(arg: &mut T) -> Result<(), HypercallError> {
    // SAFETY: `T` is the evtchn_* struct `T::CMD` takes (the pairs are abi's, sealed;
    // repr(C), layout asserted there); it is live and writable for the call, and an
    // EvtchnArgumentOnly operation touches no guest memory besides it.
    check(unsafe { hypercall2(x::HYPERVISOR_EVENT_CHANNEL_OP, T::CMD.into(), ptr_mut(arg)) }?)?;
    Ok(())
}

fn port_from_xen(raw: u32) -> Result<Port, HypercallError> {
    // Xen never returns a port beyond the 2-level limit; if it did, say so as EINVAL.
    Port::try_new(raw).map_err(|_| HypercallError::Xen(-i64::from(abi::errno::XEN_EINVAL)))
}

/// `EVTCHNOP_alloc_unbound`: a new port in this domain that `remote` may bind to.
pub fn evtchn_alloc_unbound(remote: abi::xen::Domid) -> Result<Port, HypercallError> {
    let mut a = abi::event_channel::EvtchnAllocUnbound {
        dom: DOMID_SELF,
        remote_dom: remote,
        port: 0,
    };
    evtchn_op(&mut a)?;
    port_from_xen(a.port)
}

/// `EVTCHNOP_bind_interdomain`: connects a new local port to `remote_port` of `remote`
/// (Xen sets the new local port pending).
pub fn evtchn_bind_interdomain(
    remote: abi::xen::Domid,
    remote_port: Port,
) -> Result<Port, HypercallError> {
    let mut b = abi::event_channel::EvtchnBindInterdomain {
        remote_dom: remote,
        remote_port: remote_port.get(),
        local_port: 0,
    };
    evtchn_op(&mut b)?;
    port_from_xen(b.local_port)
}

/// `EVTCHNOP_bind_virq`: binds virtual IRQ `virq` on `vcpu` to a new port.
pub fn evtchn_bind_virq(virq: u32, vcpu: u32) -> Result<Port, HypercallError> {
    let mut b = abi::event_channel::EvtchnBindVirq {
        virq,
        vcpu,
        port: 0,
    };
    evtchn_op(&mut b)?;
    port_from_xen(b.port)
}

/// `EVTCHNOP_close`.
pub fn evtchn_close(port: Port) -> Result<(), HypercallError> {
    let mut c = abi::event_channel::EvtchnClose { port: port.get() };
    evtchn_op(&mut c)
}

/// `EVTCHNOP_unmask`: clears the mask bit and re-raises the upcall if the port is pending.
pub fn evtchn_unmask(port: Port) -> Result<(), HypercallError> {
    let mut u = abi::event_channel::EvtchnUnmask { port: port.get() };
    evtchn_op(&mut u)
}

/// `EVTCHNOP_status` of one of this domain's ports (the raw answer; the caller interprets
/// `status` and the union member it selects).
pub fn evtchn_status(port: Port) -> Result<abi::event_channel::EvtchnStatus, HypercallError> {
    let mut s = abi::event_channel::EvtchnStatus {
        dom: DOMID_SELF,
        port: port.get(),
        ..Default::default()
    };
    evtchn_op(&mut s)?;
    Ok(s)
}
