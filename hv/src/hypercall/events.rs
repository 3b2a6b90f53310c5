//! `event_channel_op`, `sched_op` block/poll and the timer hypercalls (`set_timer_op`,
//! `vcpu_op`), decoded from guest memory and answered from the domain's [`XenState`].
#![allow(
    clippy::cast_possible_truncation,
    reason = "Xen's C structs take these as uint16_t/unsigned int: the low bits, as Xen reads them"
)]

use abi::errno::{XEN_EINVAL, XEN_ENOENT, XEN_ENOSYS};
use abi::event_channel as e;

use super::{
    Action, EFAULT, HypercallEnv, MAX_POLL_PORTS, Outcome, XenState, done, err, not_implemented,
    read_u32, read_u64,
};
use crate::evtchn::Notify;

/// `EVTCHNOP_*`.
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
        e::EVTCHNOP_ALLOC_UNBOUND => {
            let mut raw = [0u8; 8];
            if env.read_guest(arg, &mut raw).is_err() {
                return done(EFAULT);
            }
            let dom = u16::from_le_bytes([raw[0], raw[1]]);
            let remote = u16::from_le_bytes([raw[2], raw[3]]);
            match st.evtchn.alloc_unbound(dom, remote) {
                Ok(port) => {
                    raw[4..8].copy_from_slice(&port.to_le_bytes());
                    write_back(env, arg, &raw)
                }
                Err(x) => done(x),
            }
        }
        e::EVTCHNOP_BIND_INTERDOMAIN => {
            let mut raw = [0u8; 12];
            if env.read_guest(arg, &mut raw).is_err() {
                return done(EFAULT);
            }
            let dom = u16::from_le_bytes([raw[0], raw[1]]);
            let rport = u32::from_le_bytes([raw[4], raw[5], raw[6], raw[7]]);
            match st.evtchn.bind_interdomain(env, dom, rport) {
                Ok(port) => {
                    raw[8..12].copy_from_slice(&port.to_le_bytes());
                    write_back(env, arg, &raw)
                }
                Err(x) => done(x),
            }
        }
        e::EVTCHNOP_BIND_VIRQ => {
            let mut raw = [0u8; 12];
            if env.read_guest(arg, &mut raw).is_err() {
                return done(EFAULT);
            }
            let virq = u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]);
            let vcpu = u32::from_le_bytes([raw[4], raw[5], raw[6], raw[7]]);
            match st.evtchn.bind_virq(virq, vcpu) {
                Ok(port) => {
                    raw[8..12].copy_from_slice(&port.to_le_bytes());
                    write_back(env, arg, &raw)
                }
                Err(x) => done(x),
            }
        }
        e::EVTCHNOP_BIND_IPI => {
            let mut raw = [0u8; 8];
            if env.read_guest(arg, &mut raw).is_err() {
                return done(EFAULT);
            }
            let vcpu = u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]);
            match st.evtchn.bind_ipi(vcpu) {
                Ok(port) => {
                    raw[4..8].copy_from_slice(&port.to_le_bytes());
                    write_back(env, arg, &raw)
                }
                Err(x) => done(x),
            }
        }
        e::EVTCHNOP_CLOSE => {
            let Ok(port) = read_u32(env, arg) else {
                return done(EFAULT);
            };
            match st.evtchn.close(env, port) {
                Ok(_) => done(0),
                Err(x) => done(x),
            }
        }
        e::EVTCHNOP_SEND => {
            let Ok(port) = read_u32(env, arg) else {
                return done(EFAULT);
            };
            match st.evtchn.send(env, port) {
                Ok(Notify::Dom0(_)) => {
                    if port == st.console_port {
                        env.console_notify();
                        // xenconsoled answers on the port once it has read the ring.
                        st.evtchn.notify_from_dom0(env, port);
                    }
                    if port == st.store_port && env.store_notify() {
                        // xenstored answers on the port when it moved bytes.
                        st.evtchn.notify_from_dom0(env, port);
                    }
                    done(0)
                }
                Ok(Notify::None) => done(0),
                Err(x) => done(x),
            }
        }
        e::EVTCHNOP_STATUS => {
            let mut raw = [0u8; 24];
            if env.read_guest(arg, &mut raw).is_err() {
                return done(EFAULT);
            }
            let dom = u16::from_le_bytes([raw[0], raw[1]]);
            let port = u32::from_le_bytes([raw[4], raw[5], raw[6], raw[7]]);
            match st.evtchn.status(dom, port) {
                Ok(s) => {
                    raw[8..12].copy_from_slice(&s.status.to_le_bytes());
                    raw[12..16].copy_from_slice(&s.vcpu.to_le_bytes());
                    // The union (Xen fills only the members of the state; the rest is
                    // copied back as the guest passed it).
                    match s.status {
                        e::EVTCHNSTAT_UNBOUND => {
                            raw[16..18].copy_from_slice(&(s.a as u16).to_le_bytes());
                        }
                        e::EVTCHNSTAT_INTERDOMAIN => {
                            raw[16..18].copy_from_slice(&(s.a as u16).to_le_bytes());
                            raw[20..24].copy_from_slice(&s.b.to_le_bytes());
                        }
                        e::EVTCHNSTAT_VIRQ => raw[16..20].copy_from_slice(&s.a.to_le_bytes()),
                        _ => {}
                    }
                    write_back(env, arg, &raw)
                }
                Err(x) => done(x),
            }
        }
        e::EVTCHNOP_UNMASK => {
            let Ok(port) = read_u32(env, arg) else {
                return done(EFAULT);
            };
            match st.evtchn.unmask(env, port) {
                Ok(_) => done(0),
                Err(x) => done(x),
            }
        }
        e::EVTCHNOP_BIND_VCPU => {
            let mut raw = [0u8; 8];
            if env.read_guest(arg, &mut raw).is_err() {
                return done(EFAULT);
            }
            let port = u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]);
            let vcpu = u32::from_le_bytes([raw[4], raw[5], raw[6], raw[7]]);
            done(match st.evtchn.bind_vcpu(port, vcpu) {
                Ok(()) => 0,
                Err(x) => x,
            })
        }
        // The 2-level ABI has no priorities (evtchn_port_set_priority).
        e::EVTCHNOP_SET_PRIORITY => {
            if env.read_guest(arg, &mut [0u8; 8]).is_err() {
                return done(EFAULT);
            }
            done(err(XEN_ENOSYS))
        }
        // FIFO event channels, PIRQs and reset are not implemented.
        e::EVTCHNOP_BIND_PIRQ
        | e::EVTCHNOP_RESET
        | e::EVTCHNOP_INIT_CONTROL
        | e::EVTCHNOP_EXPAND_ARRAY => not_implemented(),
        _ => done(err(XEN_ENOSYS)),
    }
}

/// Copies an OUT struct back; `-EFAULT` if unreachable (the operation stays done, as in Xen).
fn write_back(env: &mut impl HypercallEnv, va: u64, bytes: &[u8]) -> Outcome {
    match env.write_guest(va, bytes) {
        Ok(()) => done(0),
        Err(_) => done(EFAULT),
    }
}

/// `SCHEDOP_poll`: answers at once when the upcall can be delivered or a port is pending;
/// otherwise asks the caller to wait (Xen's `do_poll`).
pub(super) fn poll(env: &mut impl HypercallEnv, st: &mut XenState, arg: u64) -> Outcome {
    let mut raw = [0u8; 24];
    if env.read_guest(arg, &mut raw).is_err() {
        return done(EFAULT);
    }
    let mut b8 = [0u8; 8];
    b8.copy_from_slice(&raw[0..8]);
    let ports_va = u64::from_le_bytes(b8);
    let nr = u32::from_le_bytes([raw[8], raw[9], raw[10], raw[11]]);
    b8.copy_from_slice(&raw[16..24]);
    let timeout = u64::from_le_bytes(b8);
    if nr as usize > MAX_POLL_PORTS {
        return done(err(XEN_EINVAL));
    }
    if env.upcall_deliverable() {
        return done(0);
    }
    let mut ports = [0u32; MAX_POLL_PORTS];
    for (i, slot) in ports.iter_mut().enumerate().take(nr as usize) {
        let Ok(p) = read_u32(env, ports_va.wrapping_add(4 * i as u64)) else {
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
            let i = st.runstate.info(env.now_ns());
            let mut raw = [0u8; 48];
            raw[0..4].copy_from_slice(&i.state.to_le_bytes());
            raw[8..16].copy_from_slice(&i.state_entry_time.to_le_bytes());
            for (k, t) in i.time.iter().enumerate() {
                raw[16 + 8 * k..24 + 8 * k].copy_from_slice(&t.to_le_bytes());
            }
            write_back(env, arg, &raw)
        }
        v::VCPUOP_SET_SINGLESHOT_TIMER => {
            let Ok(timeout) = read_u64(env, arg) else {
                return done(EFAULT);
            };
            let Ok(flags) = read_u32(env, arg.wrapping_add(8)) else {
                return done(EFAULT);
            };
            match st.timer.set_singleshot(timeout, flags, env.now_ns()) {
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
            let Ok(period) = read_u64(env, arg) else {
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
            let mut raw = [0u8; 16];
            if env.read_guest(arg, &mut raw).is_err() {
                return done(EFAULT);
            }
            let mut b8 = [0u8; 8];
            b8.copy_from_slice(&raw[..8]);
            let gfn = u64::from_le_bytes(b8);
            let offset = u32::from_le_bytes([raw[8], raw[9], raw[10], raw[11]]);
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
        | v::VCPUOP_REGISTER_RUNSTATE_MEMORY_AREA
        | v::VCPUOP_SEND_NMI
        | v::VCPUOP_GET_PHYSID
        | v::VCPUOP_REGISTER_VCPU_TIME_MEMORY_AREA => not_implemented(),
        _ => done(err(XEN_ENOSYS)),
    }
}
