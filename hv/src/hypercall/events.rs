//! `event_channel_op`, `sched_op` block/poll and the timer hypercalls (`set_timer_op`,
//! `vcpu_op`), decoded from guest memory and answered from the domain's [`XenState`].
#![allow(
    clippy::cast_possible_truncation,
    reason = "Xen's C structs take these as uint16_t/unsigned int: the low bits, as Xen reads them"
)]

use abi::errno::{XEN_EINVAL, XEN_ENOENT, XEN_ENOSYS, XEN_EOPNOTSUPP};
use abi::event_channel as e;
use abi::op::EvtchnSubop;
use abi::wire::Plain;
use core::mem::offset_of;

use super::args::{element_va, read_struct, set_field, write_field, write_struct};
use super::{
    Action, EFAULT, GuestFault, HypercallEnv, MAX_POLL_PORTS, Outcome, XenState, done, err,
    not_implemented, other_domain_refused, written,
};
use crate::evtchn::Notify;

/// `sizeof(evtchn_fifo_control_block_t)`: `ready`, a reserved word and 16 queue heads.
const FIFO_CONTROL_BLOCK_BYTES: u32 = 72;

/// `evtchn_fifo_init_control`'s refusals, in Xen's order: a vCPU the domain lacks
/// (`-ENOENT`; hv's domains have vCPU 0 only), a control block crossing its page or not
/// 8-byte aligned, a frame that is not a page of the domain (`-EINVAL`: hv counts RAM and
/// the special pages of its memory map).
fn fifo_init_control_check(
    env: &impl HypercallEnv,
    op: &e::EvtchnInitControl,
) -> Result<(), super::XenErrno> {
    if op.vcpu != 0 {
        return Err(err(XEN_ENOENT));
    }
    if op.offset > 4096 - FIFO_CONTROL_BLOCK_BYTES || !op.offset.is_multiple_of(8) {
        return Err(err(XEN_EINVAL));
    }
    let page = op.control_gfn.checked_mul(4096);
    let mapped = page.is_some_and(|gpa| {
        env.e820()
            .iter()
            .any(|r| gpa.checked_sub(r.addr).is_some_and(|o| o < { r.size }))
    });
    if !mapped {
        return Err(err(XEN_EINVAL));
    }
    Ok(())
}

/// `EVTCHNOP_*`, dispatched by `abi::op`'s pairs of argument struct and number.
pub(super) fn event_channel_op(
    env: &mut impl HypercallEnv,
    st: &mut XenState,
    args: [u64; 5],
) -> Outcome {
    let (cmd, arg) = (args[0], args[1]);
    let Ok(cmd) = u32::try_from(cmd) else {
        return done(err(XEN_ENOSYS));
    };
    match cmd {
        <e::EvtchnAllocUnbound as EvtchnSubop>::CMD => {
            let Ok(mut op) = read_struct::<e::EvtchnAllocUnbound>(env, arg) else {
                return done(EFAULT);
            };
            match st.evtchn.alloc_unbound(op.dom, op.remote_dom) {
                Ok(port) => {
                    op.port = port;
                    written(write_struct(env, arg, &op))
                }
                Err(x) => done(other_domain_refused(env, op.dom, x)),
            }
        }
        <e::EvtchnBindInterdomain as EvtchnSubop>::CMD => {
            let Ok(op) = read_struct::<e::EvtchnBindInterdomain>(env, arg) else {
                return done(EFAULT);
            };
            match st
                .evtchn
                .bind_interdomain(env, op.remote_dom, op.remote_port)
            {
                Ok(port) => written(write_field!(
                    env,
                    arg,
                    e::EvtchnBindInterdomain,
                    local_port,
                    port
                )),
                Err(x) => done(x),
            }
        }
        <e::EvtchnBindVirq as EvtchnSubop>::CMD => {
            let Ok(mut op) = read_struct::<e::EvtchnBindVirq>(env, arg) else {
                return done(EFAULT);
            };
            match st.evtchn.bind_virq(op.virq, op.vcpu) {
                Ok(port) => {
                    op.port = port;
                    written(write_struct(env, arg, &op))
                }
                Err(x) => done(x),
            }
        }
        <e::EvtchnBindIpi as EvtchnSubop>::CMD => {
            let Ok(mut op) = read_struct::<e::EvtchnBindIpi>(env, arg) else {
                return done(EFAULT);
            };
            match st.evtchn.bind_ipi(op.vcpu) {
                Ok(port) => {
                    op.port = port;
                    written(write_struct(env, arg, &op))
                }
                Err(x) => done(x),
            }
        }
        <e::EvtchnClose as EvtchnSubop>::CMD => {
            let Ok(e::EvtchnClose { port }) = read_struct(env, arg) else {
                return done(EFAULT);
            };
            match st.evtchn.close(env, port) {
                Ok(_) => done(0),
                Err(x) => done(x),
            }
        }
        <e::EvtchnSend as EvtchnSubop>::CMD => {
            let Ok(e::EvtchnSend { port }) = read_struct(env, arg) else {
                return done(EFAULT);
            };
            match st.evtchn.send(env, port) {
                Ok(Notify::Dom0(dom0_port)) => {
                    // Domain 0's port table routes the event; the service may answer.
                    if env.deliver_to_dom0(dom0_port) {
                        st.evtchn.notify_from_dom0(env, port);
                    }
                    done(0)
                }
                Ok(Notify::None) => done(0),
                Err(x) => done(x),
            }
        }
        <e::EvtchnStatus as EvtchnSubop>::CMD => {
            let Ok(op) = read_struct::<e::EvtchnStatus>(env, arg) else {
                return done(EFAULT);
            };
            match st.evtchn.status(op.dom, op.port) {
                Ok(s) => written(write_status(env, arg, &s)),
                Err(x) => done(other_domain_refused(env, op.dom, x)),
            }
        }
        <e::EvtchnUnmask as EvtchnSubop>::CMD => {
            let Ok(e::EvtchnUnmask { port }) = read_struct(env, arg) else {
                return done(EFAULT);
            };
            match st.evtchn.unmask(env, port) {
                Ok(_) => done(0),
                Err(x) => done(x),
            }
        }
        <e::EvtchnBindVcpu as EvtchnSubop>::CMD => {
            let Ok(e::EvtchnBindVcpu { port, vcpu }) = read_struct(env, arg) else {
                return done(EFAULT);
            };
            done(match st.evtchn.bind_vcpu(port, vcpu) {
                Ok(()) => 0,
                Err(x) => x,
            })
        }
        // The 2-level ABI has no priorities (evtchn_port_set_priority).
        <e::EvtchnSetPriority as EvtchnSubop>::CMD => {
            if read_struct::<e::EvtchnSetPriority>(env, arg).is_err() {
                return done(EFAULT);
            }
            done(err(XEN_ENOSYS))
        }
        // FIFO event channels: Xen's checks of evtchn_fifo_init_control; a request that
        // passes them is not implemented (the domain stays on the 2-level ABI).
        <e::EvtchnInitControl as EvtchnSubop>::CMD => {
            // Copied in whole (Xen's copy_from_guest), then its fields taken at their
            // `offset_of!`: abi gives the FIFO structs no `Plain` (hv never maps what they
            // name).
            let Ok(raw) = read_struct::<[u8; size_of::<e::EvtchnInitControl>()]>(env, arg) else {
                return done(EFAULT);
            };
            let field = |at: usize, len: usize| raw.get(at..at + len).unwrap_or(&[]);
            let gfn_at = offset_of!(e::EvtchnInitControl, control_gfn);
            let op = e::EvtchnInitControl {
                control_gfn: u64::from_bytes(field(gfn_at, 8)).unwrap_or(u64::MAX),
                offset: u32::from_bytes(field(offset_of!(e::EvtchnInitControl, offset), 4))
                    .unwrap_or(u32::MAX),
                vcpu: u32::from_bytes(field(offset_of!(e::EvtchnInitControl, vcpu), 4))
                    .unwrap_or(u32::MAX),
                link_bits: 0,
                _pad: [0; 7],
            };
            match fifo_init_control_check(env, &op) {
                Ok(()) => not_implemented(),
                Err(x) => done(x),
            }
        }
        // evtchn_fifo_expand_array before a successful init_control.
        <e::EvtchnExpandArray as EvtchnSubop>::CMD => {
            if read_struct::<[u8; size_of::<e::EvtchnExpandArray>()]>(env, arg).is_err() {
                return done(EFAULT);
            }
            done(err(XEN_EOPNOTSUPP))
        }
        // PIRQs and reset are not implemented.
        <e::EvtchnBindPirq as EvtchnSubop>::CMD | <e::EvtchnReset as EvtchnSubop>::CMD => {
            not_implemented()
        }
        _ => done(err(XEN_ENOSYS)),
    }
}

/// Writes `EVTCHNOP_status`'s OUT fields: `status`, `vcpu` and the members of the union the
/// state fills (Xen fills only those; the rest stays as the guest passed it).
fn write_status(
    env: &mut impl HypercallEnv,
    arg: u64,
    s: &crate::evtchn::Status,
) -> Result<(), GuestFault> {
    write_field!(env, arg, e::EvtchnStatus, status, s.status)?;
    write_field!(env, arg, e::EvtchnStatus, vcpu, s.vcpu)?;
    match s.status {
        e::EVTCHNSTAT_UNBOUND => {
            write_field!(env, arg, e::EvtchnStatus, u.unbound.dom, s.a as u16)
        }
        e::EVTCHNSTAT_INTERDOMAIN => {
            write_field!(env, arg, e::EvtchnStatus, u.interdomain.dom, s.a as u16)?;
            write_field!(env, arg, e::EvtchnStatus, u.interdomain.port, s.b)
        }
        e::EVTCHNSTAT_VIRQ => write_field!(env, arg, e::EvtchnStatus, u.virq, s.a),
        _ => Ok(()),
    }
}

/// `SCHEDOP_poll`: answers at once when the upcall can be delivered or a port is pending;
/// otherwise asks the caller to wait (Xen's `do_poll`).
pub(super) fn poll(env: &mut impl HypercallEnv, st: &mut XenState, arg: u64) -> Outcome {
    let Ok(abi::sched::SchedPoll {
        ports: ports_va,
        nr_ports: nr,
        timeout,
    }) = read_struct(env, arg)
    else {
        return done(EFAULT);
    };
    if nr as usize > MAX_POLL_PORTS {
        return done(err(XEN_EINVAL));
    }
    if env.upcall_deliverable() {
        return done(0);
    }
    let mut ports = [0u32; MAX_POLL_PORTS];
    for (i, slot) in ports.iter_mut().enumerate().take(nr as usize) {
        let Ok(p) = element_va::<e::EvtchnPort>(ports_va, i as u64)
            .and_then(|va| read_struct::<e::EvtchnPort>(env, va))
        else {
            return done(EFAULT);
        };
        if p as usize >= crate::evtchn::EVTCHN_2L_PORTS {
            return done(err(XEN_EINVAL));
        }
        if st.evtchn.is_pending(env, p) {
            return done(0);
        }
        *slot = p;
    }
    st.poll_ports = ports;
    st.poll_nr = nr as usize;
    Outcome {
        ret: 0,
        action: Action::Poll {
            timeout: (timeout != 0).then_some(timeout),
        },
        implemented: true,
    }
}

/// `set_timer_op(timeout)` (x86_64: the s_time_t in the first argument).
pub(super) fn set_timer_op(
    env: &mut impl HypercallEnv,
    st: &mut XenState,
    timeout: u64,
) -> Outcome {
    st.timer.set_timer_op(timeout, env.now_ns());
    done(0)
}

/// `struct vcpu_runstate_info` as bytes, its padding zero (Xen copies its own zeroed copy).
fn runstate_image(
    i: &abi::vcpu::VcpuRunstateInfo,
) -> [u8; core::mem::size_of::<abi::vcpu::VcpuRunstateInfo>()] {
    use abi::vcpu as v;
    let mut image = [0u8; core::mem::size_of::<v::VcpuRunstateInfo>()];
    set_field!(image, v::VcpuRunstateInfo, state, i.state);
    set_field!(
        image,
        v::VcpuRunstateInfo,
        state_entry_time,
        i.state_entry_time
    );
    set_field!(image, v::VcpuRunstateInfo, time, i.time);
    image
}

/// `vcpu_op(cmd, vcpuid, arg)`.
pub(super) fn vcpu_op(env: &mut impl HypercallEnv, st: &mut XenState, args: [u64; 5]) -> Outcome {
    use abi::vcpu as v;
    let (cmd, vcpu, arg) = (args[0], args[1], args[2]);
    // domain_vcpu(): the domain has vCPU 0 only.
    if vcpu as u32 != 0 {
        return done(err(XEN_ENOENT));
    }
    let Ok(cmd) = u32::try_from(cmd) else {
        return done(err(XEN_ENOSYS));
    };
    match cmd {
        v::VCPUOP_IS_UP => done(1),
        v::VCPUOP_GET_RUNSTATE_INFO => {
            let image = runstate_image(&st.runstate.info(env.now_ns()));
            written(
                super::args::in_reach(arg, image.len()).and_then(|va| env.write_guest(va, &image)),
            )
        }
        v::VCPUOP_REGISTER_RUNSTATE_MEMORY_AREA => {
            let Ok(v::VcpuRegisterRunstateMemoryArea { addr }) = read_struct(env, arg) else {
                return done(EFAULT);
            };
            // guest_handle_okay holds for any address of a PVH domU (paging_mode_external);
            // the first copy's failure is not reported (`__copy_to_guest`'s result is
            // dropped), and a null address only stops the updates.
            st.runstate_area = addr;
            if addr != 0 {
                let image = runstate_image(&st.runstate.info(env.now_ns()));
                if let Ok(va) = super::args::in_reach(addr, image.len()) {
                    let _ = env.write_guest(va, &image);
                }
            }
            done(0)
        }
        v::VCPUOP_SET_SINGLESHOT_TIMER => {
            let Ok(v::VcpuSetSingleshotTimer {
                timeout_abs_ns,
                flags,
            }) = read_struct(env, arg)
            else {
                return done(EFAULT);
            };
            match st.timer.set_singleshot(timeout_abs_ns, flags, env.now_ns()) {
                Ok(()) => done(0),
                Err(x) => done(x),
            }
        }
        v::VCPUOP_STOP_SINGLESHOT_TIMER => {
            st.timer.stop();
            done(0)
        }
        // There is never a periodic timer to stop.
        v::VCPUOP_STOP_PERIODIC_TIMER => done(0),
        v::VCPUOP_SET_PERIODIC_TIMER => {
            let Ok(v::VcpuSetPeriodicTimer { period_ns: period }) = read_struct(env, arg) else {
                return done(EFAULT);
            };
            // Xen's checks (1 ms .. STIME_DELTA_MAX); the periodic timer itself is not
            // implemented.
            if !(1_000_000..=(1u64 << 62)).contains(&period) {
                return done(err(XEN_EINVAL));
            }
            not_implemented()
        }
        v::VCPUOP_REGISTER_VCPU_INFO => {
            let Ok(v::VcpuRegisterVcpuInfo {
                mfn: gfn, offset, ..
            }) = read_struct(env, arg)
            else {
                return done(EFAULT);
            };
            // Xen's map_vcpu_info: inside the page and aligned (-ENXIO), once (-EINVAL).
            if offset > 4096 - 64 || offset % 8 != 0 {
                return done(err(abi::errno::XEN_ENXIO));
            }
            if st.vcpu_info_registered {
                return done(err(XEN_EINVAL));
            }
            if let Err(x) = env.map_vcpu_info(gfn, offset) {
                return done(x);
            }
            st.vcpu_info_registered = true;
            // "Mark everything as being pending just to make sure nothing gets lost."
            env.set_pending_sel(u64::MAX);
            if env.upcall_pending() == 0 {
                env.set_upcall_pending(1);
            }
            done(0)
        }
        v::VCPUOP_INITIALISE
        | v::VCPUOP_UP
        | v::VCPUOP_DOWN
        | v::VCPUOP_SEND_NMI
        | v::VCPUOP_GET_PHYSID
        | v::VCPUOP_REGISTER_VCPU_TIME_MEMORY_AREA => not_implemented(),
        _ => done(err(XEN_ENOSYS)),
    }
}
