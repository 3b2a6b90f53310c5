//! Hypercall dispatch: decodes the op and its guest-virtual arguments and answers as Xen
//! 4.17 answers a PVH domU, for the operations issue 13 covers; everything else answers
//! `-ENOSYS` and is reported as not implemented so it is counted.
//!
//! Every argument is a guest allegation: buffers are read and written only through
//! [`HypercallEnv`] (Xen's `copy_from_guest` / `copy_to_guest`, `-EFAULT` on failure), and
//! numbers are range-checked before use.

use abi::errno::{XEN_EFAULT, XEN_EINVAL, XEN_ENOSYS, XEN_EPERM, XEN_ESRCH};
use abi::xen as x;

use crate::evtchn::{EventChannels, EventWords};
use crate::grant::{GrantEnv, GrantTable};
use crate::time::Singleshot;

mod events;
mod grants;

/// `SCHEDOP_poll`'s limit on ports ("fairly arbitrary", Xen says).
pub const MAX_POLL_PORTS: usize = 128;

/// One memory-map entry as `XENMEM_memory_map` returns it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct E820 {
    /// First byte.
    pub addr: u64,
    /// Length.
    pub size: u64,
    /// Type (`XEN_HVM_MEMMAP_TYPE_*`).
    pub kind: u32,
}

/// What dispatch needs from the domain: guest memory, the event words of its shared_info
/// page ([`EventWords`]), its grant entries and RAM ([`GrantEnv`]), and the clock.
pub trait HypercallEnv: EventWords + GrantEnv {
    /// Xen's `copy_from_guest`: reads the guest-virtual buffer at `va`.
    fn read_guest(&self, va: u64, buf: &mut [u8]) -> Result<(), GuestFault>;
    /// Xen's `copy_to_guest`: writes the guest-virtual buffer at `va`.
    fn write_guest(&mut self, va: u64, data: &[u8]) -> Result<(), GuestFault>;
    /// Maps the domain's shared_info page at guest frame `gfn` (moving it if mapped
    /// elsewhere); a Xen errno (negative) on failure.
    fn map_shared_info(&mut self, gfn: u64) -> Result<(), i64>;
    /// The domain's memory map (the one its start info carries).
    fn e820(&self) -> &[E820];
    /// The guest notified its console port: drain the console ring.
    fn console_notify(&mut self);
    /// The guest notified its store port: serve the xenstore ring; whether domain 0's
    /// xenstored answers with a notification (it consumed or produced bytes).
    fn store_notify(&mut self) -> bool;
    /// System time now, in ns since the domain was built.
    fn now_ns(&self) -> u64;
    /// Whether an upcall would be delivered at once: `evtchn_upcall_pending` set, a
    /// callback vector configured and the guest's interrupts enabled (Xen's
    /// `local_events_need_delivery`).
    fn upcall_deliverable(&self) -> bool;
    /// Moves vCPU 0's `vcpu_info` to `offset` (checked: 8-aligned, the 64 bytes inside the
    /// page) in guest frame `gfn`, copying its contents there (Xen's `map_vcpu_info`);
    /// `-EINVAL` if `gfn` is not a writable page of the domain.
    fn map_vcpu_info(&mut self, gfn: u64, offset: u32) -> Result<(), i64>;
    /// Places grant-table frame `idx` at guest frame `gfn`, unmapping it from `old` (where
    /// it was); a Xen errno on failure.
    fn map_grant_frame(&mut self, idx: u32, gfn: u64, old: Option<u64>) -> Result<(), i64>;
}

/// The Xen state of a domain that hypercalls change: event channels, grant table, the
/// singleshot timer and the HVM parameters the guest may set.
pub struct XenState {
    /// Event channels.
    pub evtchn: EventChannels,
    /// Grant table.
    pub grants: GrantTable,
    /// vCPU 0's singleshot timer.
    pub timer: Singleshot,
    /// `HVM_PARAM_CALLBACK_IRQ` as the guest set it.
    pub callback_irq: u64,
    /// The console's port in this domain (domain 0 drains the ring when it is signalled).
    pub console_port: u32,
    /// The store's port in this domain (domain 0's xenstored serves the ring when it is
    /// signalled).
    pub store_port: u32,
    /// The ports of the last `SCHEDOP_poll` (the first `poll_nr`).
    pub poll_ports: [u32; MAX_POLL_PORTS],
    /// How many of `poll_ports` count.
    pub poll_nr: usize,
    /// vCPU 0's time running and blocked.
    pub runstate: crate::time::Runstate,
    /// Whether the guest registered vCPU 0's `vcpu_info` (once only, as in Xen).
    pub vcpu_info_registered: bool,
}

impl XenState {
    /// The state of a new domain `domid` with its store and console ports bound to
    /// domain 0 (as the toolstack and xenconsoled/xenstored leave them): ports 1 and 2.
    pub fn new(domid: u16) -> Self {
        let mut evtchn = EventChannels::new(domid);
        let mut bind = |dom0_port| {
            let p = evtchn.alloc_for_dom0().unwrap_or(0);
            let _ = evtchn.dom0_bind(p, dom0_port);
            p
        };
        let store_port = bind(DOM0_STORE_PORT);
        let console_port = bind(DOM0_CONSOLE_PORT);
        Self {
            evtchn,
            grants: GrantTable::new(domid),
            timer: Singleshot::default(),
            callback_irq: 0,
            console_port,
            store_port,
            poll_ports: [0; MAX_POLL_PORTS],
            poll_nr: 0,
            runstate: Default::default(),
            vcpu_info_registered: false,
        }
    }

    /// The IDT vector of the callback, if the guest set one of type vector.
    pub fn callback_vector(&self) -> Option<u8> {
        let kind = (self.callback_irq & abi::hvm::HVM_PARAM_CALLBACK_IRQ_TYPE_MASK)
            >> abi::hvm::HVM_PARAM_CALLBACK_TYPE_SHIFT;
        (kind == abi::hvm::HVM_PARAM_CALLBACK_TYPE_VECTOR)
            .then_some(self.callback_irq.to_le_bytes()[0])
    }
}

/// Domain 0's end of the store channel (its own port number; not visible to the guest
/// except through `EVTCHNOP_status`).
pub const DOM0_STORE_PORT: u32 = 1;
/// Domain 0's end of the console channel.
pub const DOM0_CONSOLE_PORT: u32 = 2;

/// A guest buffer could not be reached (answered `-EFAULT`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuestFault;

/// The fixed facts of a domain that hypercalls report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DomainParams {
    /// The domain's id (`DOMID_SELF` and this are "self").
    pub domid: u16,
    /// `HVM_PARAM_CONSOLE_PFN`.
    pub console_pfn: u64,
    /// `HVM_PARAM_CONSOLE_EVTCHN`.
    pub console_evtchn: u32,
    /// `HVM_PARAM_STORE_PFN`.
    pub store_pfn: u64,
    /// `HVM_PARAM_STORE_EVTCHN`.
    pub store_evtchn: u32,
}

/// What the caller does after the hypercall.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Return `ret` to the guest and resume it.
    Resume,
    /// The domain shut down with this `SHUTDOWN_*` reason.
    Shutdown(u32),
    /// `SCHEDOP_block`: wait until an upcall can be delivered (or return at once).
    Block,
    /// `SCHEDOP_poll`: wait until one of [`XenState::poll_ports`] is pending, an upcall
    /// arrives, or system time reaches `timeout`.
    Poll {
        /// Absolute system time to give up at.
        timeout: Option<u64>,
    },
}

/// The outcome of one hypercall.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The value for the guest's RAX.
    pub ret: i64,
    /// What happens next.
    pub action: Action,
    /// False when hv answered `-ENOSYS` because it does not implement the operation yet.
    pub implemented: bool,
}

/// Xen 4.17's `XENVER_version` for `hv`: 4.17.
pub const XEN_VERSION: u32 = (4 << 16) | 17;

/// `XENVER_get_features` submap 0 that Xen 4.17 gives a PVH domU (read from a stock-Xen
/// boot: writable_page_tables, auto_translated_physmap, hvm_callback_vector,
/// hvm_safe_pvclock, memory_op_vnode_supported, not_direct_mapped).
pub const FEATURES_SUBMAP0: u32 = {
    use abi::features as f;
    (1 << f::XENFEAT_WRITABLE_PAGE_TABLES)
        | (1 << f::XENFEAT_AUTO_TRANSLATED_PHYSMAP)
        | (1 << f::XENFEAT_HVM_CALLBACK_VECTOR)
        | (1 << f::XENFEAT_HVM_SAFE_PVCLOCK)
        | (1 << f::XENFEAT_MEMORY_OP_VNODE_SUPPORTED)
        | (1 << f::XENFEAT_NOT_DIRECT_MAPPED)
};
const _: () = assert!(FEATURES_SUBMAP0 == 0x0001_2305);

const fn err(errno: i32) -> i64 {
    -(errno as i64)
}

fn done(ret: i64) -> Outcome {
    Outcome {
        ret,
        action: Action::Resume,
        implemented: true,
    }
}

fn not_implemented() -> Outcome {
    Outcome {
        ret: err(XEN_ENOSYS),
        action: Action::Resume,
        implemented: false,
    }
}

const EFAULT: i64 = err(XEN_EFAULT);

/// Writes an OUT field and answers 0, or `-EFAULT` if the guest's buffer is unreachable.
fn write_result(env: &mut impl HypercallEnv, va: u64, bytes: &[u8]) -> Outcome {
    match env.write_guest(va, bytes) {
        Ok(()) => done(0),
        Err(GuestFault) => done(EFAULT),
    }
}

fn read_u32(env: &impl HypercallEnv, va: u64) -> Result<u32, GuestFault> {
    let mut b = [0u8; 4];
    env.read_guest(va, &mut b)?;
    Ok(u32::from_le_bytes(b))
}

fn read_u64(env: &impl HypercallEnv, va: u64) -> Result<u64, GuestFault> {
    let mut b = [0u8; 8];
    env.read_guest(va, &mut b)?;
    Ok(u64::from_le_bytes(b))
}

/// Dispatches hypercall `op` with arguments `args` (rdi, rsi, rdx, r10, r8).
pub fn dispatch(
    env: &mut impl HypercallEnv,
    params: &DomainParams,
    st: &mut XenState,
    op: u64,
    args: [u64; 5],
) -> Outcome {
    let Ok(op) = u32::try_from(op) else {
        return done(err(XEN_ENOSYS));
    };
    match op {
        x::HYPERVISOR_XEN_VERSION => xen_version(env, args),
        x::HYPERVISOR_MEMORY_OP => memory_op(env, params, st, args),
        x::HYPERVISOR_HVM_OP => hvm_op(env, params, st, args),
        // A domU may not use Xen's console (release build's XSM dummy policy).
        x::HYPERVISOR_CONSOLE_IO => done(err(XEN_EPERM)),
        x::HYPERVISOR_SCHED_OP => sched_op(env, params, st, args),
        x::HYPERVISOR_EVENT_CHANNEL_OP => events::event_channel_op(env, st, args),
        x::HYPERVISOR_SET_TIMER_OP => events::set_timer_op(env, st, args[0]),
        x::HYPERVISOR_VCPU_OP => events::vcpu_op(env, st, args),
        x::HYPERVISOR_GRANT_TABLE_OP => grants::grant_table_op(env, st, args),
        // Ops Xen 4.17 offers an HVM guest that hv does not implement yet.
        x::HYPERVISOR_PHYSDEV_OP
        | x::HYPERVISOR_XSM_OP
        | x::HYPERVISOR_MMUEXT_OP
        | x::HYPERVISOR_MULTICALL
        | x::HYPERVISOR_VM_ASSIST
        | x::HYPERVISOR_SYSCTL
        | x::HYPERVISOR_DOMCTL
        | x::HYPERVISOR_ARGO_OP
        | x::HYPERVISOR_DM_OP
        | x::HYPERVISOR_HYPFS_OP => not_implemented(),
        // Not an HVM hypercall in Xen either.
        _ => done(err(XEN_ENOSYS)),
    }
}

fn xen_version(env: &mut impl HypercallEnv, args: [u64; 5]) -> Outcome {
    use abi::version as v;
    let (cmd, arg) = (args[0], args[1]);
    let Ok(cmd) = u32::try_from(cmd) else {
        return done(err(XEN_ENOSYS));
    };
    match cmd {
        v::XENVER_VERSION => done(i64::from(XEN_VERSION)),
        // Only with a NULL argument.
        v::XENVER_PAGESIZE if arg == 0 => done(4096),
        v::XENVER_PAGESIZE => done(err(XEN_EINVAL)),
        v::XENVER_CAPABILITIES => {
            // Xen copies the whole 1024-byte array: the string (ending in a space), then NULs.
            let mut info: v::XenCapabilitiesInfo = [0; v::XEN_CAPABILITIES_INFO_LEN];
            info[..CAPABILITIES.len()].copy_from_slice(CAPABILITIES);
            write_result(env, arg, &info)
        }
        // Denied to a domU (XSM_PRIV), which gets "<denied>" and 0.
        v::XENVER_COMMANDLINE => write_result(env, arg, DENIED),
        v::XENVER_GET_FEATURES => {
            let Ok(idx) = read_u32(env, arg) else {
                return done(EFAULT);
            };
            if idx >= abi::features::XENFEAT_NR_SUBMAPS {
                return done(err(XEN_EINVAL));
            }
            let map = if idx == 0 { FEATURES_SUBMAP0 } else { 0 };
            write_result(env, arg + 4, &map.to_le_bytes())
        }
        // Privileged in Xen's dummy XSM policy.
        v::XENVER_BUILD_ID => done(err(XEN_EPERM)),
        v::XENVER_EXTRAVERSION
        | v::XENVER_COMPILE_INFO
        | v::XENVER_CHANGESET
        | v::XENVER_PLATFORM_PARAMETERS => not_implemented(),
        // The domain's handle (xl puts the domain's UUID there); hv's domains have none.
        v::XENVER_GUEST_HANDLE => write_result(env, arg, &[0; 16]),
        _ => done(err(XEN_ENOSYS)),
    }
}

/// `XENVER_capabilities` of Xen 4.17 on x86_64 with HVM (as stock Xen answered pvguest).
pub const CAPABILITIES: &[u8] = b"xen-3.0-x86_64 hvm-3.0-x86_32 hvm-3.0-x86_32p hvm-3.0-x86_64 ";

/// What Xen 4.17 copies for a sub-op XSM denies but still answers (`xen_deny()`).
pub const DENIED: &[u8] = b"<denied>\0";

/// `MEMOP_CMD_MASK`: the low bits of a memory_op command name the operation.
const MEMOP_CMD_MASK: u64 = 0x3f;

/// Xen's domain lookup plus its XSM check for an operation on domain `domid` that a domU
/// may do only to itself: `DOMID_SELF` or its own id pass; domain 0 exists in Xen but the
/// policy refuses it (`-EPERM`); any other id names no domain (`-ESRCH`).
fn own_domain(params: &DomainParams, domid: u16) -> Result<(), i64> {
    if domid == x::DOMID_SELF || domid == params.domid {
        Ok(())
    } else if domid == 0 {
        Err(err(XEN_EPERM))
    } else {
        Err(err(XEN_ESRCH))
    }
}

fn memory_op(
    env: &mut impl HypercallEnv,
    params: &DomainParams,
    st: &mut XenState,
    args: [u64; 5],
) -> Outcome {
    use abi::memory as m;
    let (cmd, arg) = (args[0] & MEMOP_CMD_MASK, args[1]);
    #[allow(
        clippy::cast_possible_truncation,
        reason = "MEMOP_CMD_MASK keeps the low 6 bits"
    )]
    let cmd = cmd as u32;
    match cmd {
        m::XENMEM_MEMORY_MAP => {
            let Ok(nr) = read_u32(env, arg) else {
                return done(EFAULT);
            };
            let Ok(buffer) = read_u64(env, arg + 8) else {
                return done(EFAULT);
            };
            let map = env.e820();
            let n = (nr as usize).min(map.len());
            let mut bytes = [0u8; 20 * 16];
            let mut len = 0;
            for e in map.iter().take(n.min(16)) {
                bytes[len..len + 8].copy_from_slice(&e.addr.to_le_bytes());
                bytes[len + 8..len + 16].copy_from_slice(&e.size.to_le_bytes());
                bytes[len + 16..len + 20].copy_from_slice(&e.kind.to_le_bytes());
                len += 20;
            }
            const _: () = assert!(core::mem::size_of::<m::E820Entry>() == 20);
            if env.write_guest(buffer, &bytes[..len]).is_err() {
                return done(EFAULT);
            }
            let count = u32::try_from(len / 20).unwrap_or(u32::MAX);
            write_result(env, arg, &count.to_le_bytes())
        }
        m::XENMEM_ADD_TO_PHYSMAP => {
            let mut raw = [0u8; 24];
            if env.read_guest(arg, &mut raw).is_err() {
                return done(EFAULT);
            }
            let domid = u16::from_le_bytes([raw[0], raw[1]]);
            let space = u32::from_le_bytes([raw[4], raw[5], raw[6], raw[7]]);
            let mut idx = [0u8; 8];
            idx.copy_from_slice(&raw[8..16]);
            let idx = u64::from_le_bytes(idx);
            let mut gpfn = [0u8; 8];
            gpfn.copy_from_slice(&raw[16..24]);
            let gpfn = u64::from_le_bytes(gpfn);
            if let Err(e) = own_domain(params, domid) {
                return done(e);
            }
            match space {
                m::XENMAPSPACE_SHARED_INFO => {
                    if idx != 0 {
                        return done(err(XEN_EINVAL));
                    }
                    match env.map_shared_info(gpfn) {
                        Ok(()) => {
                            st.grants.frame_replaced(gpfn);
                            done(0)
                        }
                        Err(e) => done(e),
                    }
                }
                m::XENMAPSPACE_GRANT_TABLE => {
                    let gpa_ok = gpfn
                        .checked_mul(crate::guest::phys::PAGE_SIZE)
                        .is_some_and(|a| a < crate::npt::GPA_LIMIT);
                    if !gpa_ok {
                        return done(err(XEN_EINVAL));
                    }
                    match st.grants.place_frame(idx, gpfn) {
                        Ok((i, old)) => match env.map_grant_frame(i, gpfn, old) {
                            Ok(()) => done(0),
                            Err(e) => done(e),
                        },
                        Err(e) => done(e),
                    }
                }
                _ => not_implemented(),
            }
        }
        _ => not_implemented(),
    }
}

/// `HVM_PARAM_*` indices Xen 4.17 calls deprecated: setting them answers `-EINVAL`.
const DEPRECATED_PARAMS: [u32; 10] = [4, 13, 20, 21, 22, 23, 24, 25, 26, 30];

/// `HVMOP_set_param` (Xen's `hvmop_set_param` / `hvm_allow_set_param` / `hvm_set_param`).
fn hvm_set_param(
    env: &mut impl HypercallEnv,
    params: &DomainParams,
    st: &mut XenState,
    arg: u64,
) -> Outcome {
    use abi::hvm as h;
    let mut raw = [0u8; 16];
    if env.read_guest(arg, &mut raw).is_err() {
        return done(EFAULT);
    }
    let domid = u16::from_le_bytes([raw[0], raw[1]]);
    let index = u32::from_le_bytes([raw[4], raw[5], raw[6], raw[7]]);
    let mut b8 = [0u8; 8];
    b8.copy_from_slice(&raw[8..16]);
    let value = u64::from_le_bytes(b8);
    if index >= h::HVM_NR_PARAMS {
        return done(err(XEN_EINVAL));
    }
    if domid != x::DOMID_SELF && domid != params.domid {
        // Domain 0 exists but is not an HVM domain (-EINVAL); other ids name no domain.
        return done(err(if domid == 0 { XEN_EINVAL } else { XEN_ESRCH }));
    }
    match index {
        h::HVM_PARAM_CALLBACK_IRQ => {
            st.callback_irq = value;
            done(0)
        }
        // Settable by the guest, but not implemented by hv.
        h::HVM_PARAM_VM86_TSS
        | h::HVM_PARAM_VM86_TSS_SIZED
        | h::HVM_PARAM_ACPI_IOPORTS_LOCATION
        | h::HVM_PARAM_VM_GENERATION_ID_ADDR
        | h::HVM_PARAM_STORE_EVTCHN
        | h::HVM_PARAM_CONSOLE_EVTCHN
        | h::HVM_PARAM_X87_FIP_WIDTH => not_implemented(),
        i if DEPRECATED_PARAMS.contains(&i) => done(err(XEN_EINVAL)),
        _ => done(err(XEN_EPERM)),
    }
}

fn hvm_op(
    env: &mut impl HypercallEnv,
    params: &DomainParams,
    st: &mut XenState,
    args: [u64; 5],
) -> Outcome {
    use abi::hvm as h;
    let (op, arg) = (args[0], args[1]);
    if op == u64::from(h::HVMOP_SET_PARAM) {
        return hvm_set_param(env, params, st, arg);
    }
    if op != u64::from(h::HVMOP_GET_PARAM) {
        return not_implemented();
    }
    let mut raw = [0u8; 16];
    if env.read_guest(arg, &mut raw).is_err() {
        return done(EFAULT);
    }
    let domid = u16::from_le_bytes([raw[0], raw[1]]);
    let index = u32::from_le_bytes([raw[4], raw[5], raw[6], raw[7]]);
    // Xen's order: the index bound, the domain, then whether the guest may read it.
    if index >= h::HVM_NR_PARAMS {
        return done(err(XEN_EINVAL));
    }
    if let Err(e) = own_domain(params, domid) {
        return done(e);
    }
    let value = match index {
        h::HVM_PARAM_CONSOLE_PFN => params.console_pfn,
        h::HVM_PARAM_CONSOLE_EVTCHN => u64::from(params.console_evtchn),
        h::HVM_PARAM_STORE_PFN => params.store_pfn,
        h::HVM_PARAM_STORE_EVTCHN => u64::from(params.store_evtchn),
        h::HVM_PARAM_CALLBACK_IRQ => st.callback_irq,
        // Readable by the guest and left unset by xl for a PVH domU.
        h::HVM_PARAM_VM86_TSS
        | h::HVM_PARAM_VM86_TSS_SIZED
        | h::HVM_PARAM_ACPI_IOPORTS_LOCATION
        | h::HVM_PARAM_VM_GENERATION_ID_ADDR
        | h::HVM_PARAM_ALTP2M => 0,
        // Readable, but Xen's value depends on the host FPU: not implemented.
        h::HVM_PARAM_X87_FIP_WIDTH => return not_implemented(),
        // The toolstack's parameters: refused to the guest itself.
        _ => return done(err(XEN_EPERM)),
    };
    write_result(env, arg + 8, &value.to_le_bytes())
}

fn sched_op(
    env: &mut impl HypercallEnv,
    params: &DomainParams,
    st: &mut XenState,
    args: [u64; 5],
) -> Outcome {
    use abi::sched as s;
    let (cmd, arg) = (args[0], args[1]);
    match u32::try_from(cmd) {
        Ok(s::SCHEDOP_YIELD) => done(0),
        Ok(s::SCHEDOP_SHUTDOWN) => {
            let Ok(reason) = read_u32(env, arg) else {
                return done(EFAULT);
            };
            // Xen passes the reason on as a u8; the toolstack acts on the known ones.
            Outcome {
                ret: 0,
                action: Action::Shutdown(reason & 0xff),
                implemented: true,
            }
        }
        Ok(s::SCHEDOP_BLOCK) => {
            if env.upcall_deliverable() {
                done(0)
            } else {
                Outcome {
                    ret: 0,
                    action: Action::Block,
                    implemented: true,
                }
            }
        }
        Ok(s::SCHEDOP_POLL) => events::poll(env, st, arg),
        Ok(s::SCHEDOP_SHUTDOWN_CODE | s::SCHEDOP_WATCHDOG) => not_implemented(),
        Ok(s::SCHEDOP_REMOTE_SHUTDOWN) => {
            // struct sched_remote_shutdown { domid_t domain_id; unsigned int reason; }
            let mut raw = [0u8; 8];
            if env.read_guest(arg, &mut raw).is_err() {
                return done(EFAULT);
            }
            let domid = u16::from_le_bytes([raw[0], raw[1]]);
            // Only this domain exists, and a domU may not shut itself down this way (XSM).
            if domid == params.domid {
                done(err(XEN_EPERM))
            } else {
                done(err(XEN_ESRCH))
            }
        }
        _ => done(err(XEN_ENOSYS)),
    }
}

#[cfg(test)]
#[allow(
    clippy::cast_possible_truncation,
    reason = "test fixtures: small known sizes and indexes, on 64-bit hosts only"
)]
mod tests {
    use super::*;

    /// Guest memory where virtual = physical = an index into a Vec.
    struct Fake {
        mem: Vec<u8>,
        shared_info: Option<u64>,
        notified: u32,
        e820: Vec<E820>,
        words: crate::evtchn::tests::Words,
        st: Option<XenState>,
        now: u64,
        if_enabled: bool,
        grant_frames: Vec<(u32, u64)>,
        vcpu_info_at: Option<(u64, u32)>,
    }

    impl Fake {
        fn new() -> Self {
            Self {
                mem: vec![0; 0x10000],
                shared_info: None,
                notified: 0,
                words: Default::default(),
                st: Some(XenState::new(1)),
                now: 1000,
                if_enabled: true,
                grant_frames: Vec::new(),
                vcpu_info_at: None,
                e820: vec![
                    E820 {
                        addr: 0,
                        size: 128 << 20,
                        kind: 1,
                    },
                    E820 {
                        addr: 0xfeff8000,
                        size: 0x8000,
                        kind: 2,
                    },
                ],
            }
        }
        fn put(&mut self, va: u64, data: &[u8]) {
            self.mem[va as usize..va as usize + data.len()].copy_from_slice(data);
        }
        fn get(&self, va: u64, len: usize) -> &[u8] {
            &self.mem[va as usize..va as usize + len]
        }
    }

    impl HypercallEnv for Fake {
        fn read_guest(&self, va: u64, buf: &mut [u8]) -> Result<(), GuestFault> {
            let end = va.checked_add(buf.len() as u64).ok_or(GuestFault)?;
            if end > self.mem.len() as u64 {
                return Err(GuestFault);
            }
            buf.copy_from_slice(&self.mem[va as usize..end as usize]);
            Ok(())
        }
        fn write_guest(&mut self, va: u64, data: &[u8]) -> Result<(), GuestFault> {
            let end = va.checked_add(data.len() as u64).ok_or(GuestFault)?;
            if end > self.mem.len() as u64 {
                return Err(GuestFault);
            }
            self.put(va, data);
            Ok(())
        }
        fn map_shared_info(&mut self, gfn: u64) -> Result<(), i64> {
            self.shared_info = Some(gfn);
            Ok(())
        }
        fn e820(&self) -> &[E820] {
            &self.e820
        }
        fn console_notify(&mut self) {
            self.notified += 1;
        }
        fn store_notify(&mut self) -> bool {
            false
        }
        fn now_ns(&self) -> u64 {
            self.now
        }
        fn upcall_deliverable(&self) -> bool {
            let st = self.st.as_ref();
            self.words.upcall != 0
                && self.if_enabled
                && st.is_none_or(|s| s.callback_vector().is_some())
        }
        fn map_vcpu_info(&mut self, gfn: u64, offset: u32) -> Result<(), i64> {
            if gfn == 0x99 {
                return Err(-22);
            }
            self.vcpu_info_at = Some((gfn, offset));
            Ok(())
        }
        fn map_grant_frame(&mut self, idx: u32, gfn: u64, _old: Option<u64>) -> Result<(), i64> {
            self.grant_frames.push((idx, gfn));
            Ok(())
        }
    }

    impl EventWords for Fake {
        fn pending(&self, word: usize) -> u64 {
            self.words.pending(word)
        }
        fn set_pending_word(&mut self, word: usize, value: u64) {
            self.words.set_pending_word(word, value);
        }
        fn mask(&self, word: usize) -> u64 {
            self.words.mask(word)
        }
        fn set_mask_word(&mut self, word: usize, value: u64) {
            self.words.set_mask_word(word, value);
        }
        fn pending_sel(&self) -> u64 {
            self.words.pending_sel()
        }
        fn set_pending_sel(&mut self, value: u64) {
            self.words.set_pending_sel(value);
        }
        fn upcall_pending(&self) -> u8 {
            self.words.upcall_pending()
        }
        fn set_upcall_pending(&mut self, value: u8) {
            self.words.set_upcall_pending(value);
        }
    }

    /// Grant entries live at 0x8000.. of the fake memory; "RAM" frames are gfn 1..8
    /// (bytes 0x1000..0x9000 of the same memory).
    impl GrantEnv for Fake {
        fn entry(&self, gref: u32) -> (u16, u16, u32) {
            let o = 0x8000 + 8 * gref as usize;
            match self.mem.get(o..o + 8) {
                Some(b) => (
                    u16::from_le_bytes([b[0], b[1]]),
                    u16::from_le_bytes([b[2], b[3]]),
                    u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
                ),
                None => (0, 0, 0),
            }
        }
        fn set_flags(&mut self, gref: u32, flags: u16) {
            let o = 0x8000 + 8 * gref as usize;
            if let Some(b) = self.mem.get_mut(o..o + 2) {
                b.copy_from_slice(&flags.to_le_bytes());
            }
        }
        fn page_ok(&self, gfn: u64) -> bool {
            (1..8).contains(&gfn) && self.mem.len() >= 0x9000
        }
        fn copy(&mut self, src: u64, so: u16, dst: u64, d_o: u16, len: u16) {
            let s = src as usize * 4096 + so as usize;
            let d = dst as usize * 4096 + d_o as usize;
            self.mem.copy_within(s..s + len as usize, d);
        }
    }

    const P: DomainParams = DomainParams {
        domid: 1,
        console_pfn: 0xfefff,
        console_evtchn: 2,
        store_pfn: 0xfeffc,
        store_evtchn: 1,
    };

    fn call(f: &mut Fake, op: u32, a0: u64, a1: u64) -> Outcome {
        call5(f, u64::from(op), [a0, a1, 0, 0, 0])
    }

    fn call5(f: &mut Fake, op: u64, args: [u64; 5]) -> Outcome {
        let mut st = f.st.take().unwrap_or_else(|| XenState::new(1));
        let o = dispatch(f, &P, &mut st, op, args);
        f.st = Some(st);
        o
    }

    #[test]
    fn xen_version_and_features() {
        let mut f = Fake::new();
        assert_eq!(call(&mut f, x::HYPERVISOR_XEN_VERSION, 0, 0).ret, 0x40011);
        f.put(0x100, &0u32.to_le_bytes());
        assert_eq!(call(&mut f, x::HYPERVISOR_XEN_VERSION, 6, 0x100).ret, 0);
        assert_eq!(f.get(0x104, 4), &0x12305u32.to_le_bytes());
        f.put(0x100, &1u32.to_le_bytes());
        assert_eq!(call(&mut f, x::HYPERVISOR_XEN_VERSION, 6, 0x100).ret, -22);
        assert_eq!(call(&mut f, x::HYPERVISOR_XEN_VERSION, 6, 0xfffe).ret, -14);
        assert_eq!(call(&mut f, x::HYPERVISOR_XEN_VERSION, 10, 0x100).ret, -1);
        assert_eq!(call(&mut f, x::HYPERVISOR_XEN_VERSION, 9, 0x100).ret, 0);
        assert_eq!(f.get(0x100, 9), b"<denied>\0");
        assert_eq!(call(&mut f, x::HYPERVISOR_XEN_VERSION, 7, 0).ret, 4096);
        f.put(0x200, &[0xaa; 16]);
        assert_eq!(call(&mut f, x::HYPERVISOR_XEN_VERSION, 8, 0x200).ret, 0);
        assert_eq!(f.get(0x200, 16), &[0; 16]);
        assert_eq!(call(&mut f, x::HYPERVISOR_XEN_VERSION, 7, 0x100).ret, -22);
        assert_eq!(call(&mut f, x::HYPERVISOR_XEN_VERSION, 3, 0x1000).ret, 0);
        assert_eq!(f.get(0x1000, 15), b"xen-3.0-x86_64 ");
        assert_eq!(f.get(0x1000 + 1023, 1), &[0]);
        assert_eq!(call(&mut f, x::HYPERVISOR_XEN_VERSION, 3, 0xfd00).ret, -14);
        assert_eq!(call(&mut f, x::HYPERVISOR_XEN_VERSION, 99, 0).ret, -38);
        assert_eq!(
            call(&mut f, x::HYPERVISOR_XEN_VERSION, u64::MAX, 0).ret,
            -38
        );
    }

    #[test]
    fn memory_map_and_shared_info() {
        let mut f = Fake::new();
        f.put(0x200, &8u32.to_le_bytes());
        f.put(0x208, &0x300u64.to_le_bytes());
        assert_eq!(call(&mut f, x::HYPERVISOR_MEMORY_OP, 9, 0x200).ret, 0);
        assert_eq!(f.get(0x200, 4), &2u32.to_le_bytes());
        assert_eq!(f.get(0x300 + 8, 8), &(128u64 << 20).to_le_bytes());
        assert_eq!(f.get(0x300 + 36, 4), &2u32.to_le_bytes());
        // A buffer outside memory.
        f.put(0x208, &0xfff0u64.to_le_bytes());
        assert_eq!(call(&mut f, x::HYPERVISOR_MEMORY_OP, 9, 0x200).ret, -14);
        // add_to_physmap(shared_info, idx 0, gpfn 0x1234)
        let mut a = Vec::new();
        a.extend_from_slice(&x::DOMID_SELF.to_le_bytes());
        a.extend_from_slice(&0u16.to_le_bytes());
        a.extend_from_slice(&0u32.to_le_bytes());
        a.extend_from_slice(&0u64.to_le_bytes());
        a.extend_from_slice(&0x1234u64.to_le_bytes());
        f.put(0x400, &a);
        assert_eq!(call(&mut f, x::HYPERVISOR_MEMORY_OP, 7, 0x400).ret, 0);
        assert_eq!(f.shared_info, Some(0x1234));
        f.put(0x400, &7u16.to_le_bytes());
        assert_eq!(call(&mut f, x::HYPERVISOR_MEMORY_OP, 7, 0x400).ret, -3);
        let o = call(&mut f, x::HYPERVISOR_MEMORY_OP, 1, 0x400);
        assert!(!o.implemented && o.ret == -38);
    }

    #[test]
    fn params_console_sched() {
        let mut f = Fake::new();
        let mut p = Vec::new();
        p.extend_from_slice(&x::DOMID_SELF.to_le_bytes());
        p.extend_from_slice(&0u16.to_le_bytes());
        p.extend_from_slice(&abi::hvm::HVM_PARAM_CONSOLE_PFN.to_le_bytes());
        p.extend_from_slice(&0u64.to_le_bytes());
        f.put(0x500, &p);
        assert_eq!(call(&mut f, x::HYPERVISOR_HVM_OP, 1, 0x500).ret, 0);
        assert_eq!(f.get(0x508, 8), &0xfefff_u64.to_le_bytes());
        f.put(0x504, &1000u32.to_le_bytes());
        assert_eq!(call(&mut f, x::HYPERVISOR_HVM_OP, 1, 0x500).ret, -22);
        f.put(0x504, &abi::hvm::HVM_PARAM_IDENT_PT.to_le_bytes());
        assert_eq!(call(&mut f, x::HYPERVISOR_HVM_OP, 1, 0x500).ret, -1);
        f.put(0x504, &abi::hvm::HVM_PARAM_STORE_EVTCHN.to_le_bytes());
        assert_eq!(call(&mut f, x::HYPERVISOR_HVM_OP, 1, 0x500).ret, 0);
        assert_eq!(f.get(0x508, 8), &1u64.to_le_bytes());
        f.put(0x500, &0u16.to_le_bytes());
        assert_eq!(call(&mut f, x::HYPERVISOR_HVM_OP, 1, 0x500).ret, -1);
        f.put(0x500, &5u16.to_le_bytes());
        assert_eq!(call(&mut f, x::HYPERVISOR_HVM_OP, 1, 0x500).ret, -3);
        assert_eq!(call(&mut f, x::HYPERVISOR_CONSOLE_IO, 0, 0).ret, -1);
        f.put(0x600, &2u32.to_le_bytes());
        assert_eq!(
            call(&mut f, x::HYPERVISOR_EVENT_CHANNEL_OP, 4, 0x600).ret,
            0
        );
        assert_eq!(f.notified, 1);
        f.put(0x600, &0u32.to_le_bytes());
        let o = call(&mut f, x::HYPERVISOR_SCHED_OP, 2, 0x600);
        assert_eq!(o.action, Action::Shutdown(0));
        assert_eq!(
            call(&mut f, x::HYPERVISOR_SCHED_OP, 0, 0x600).action,
            Action::Resume
        );
        assert_eq!(call5(&mut f, 63, [0; 5]).ret, -38);
        assert_eq!(call5(&mut f, u64::MAX, [0; 5]).ret, -38);
    }

    fn u32_at(f: &Fake, va: u64) -> u32 {
        u32::from_le_bytes(f.get(va, 4).try_into().unwrap())
    }

    #[test]
    fn event_channel_ops_through_guest_memory() {
        let mut f = Fake::new();
        // alloc_unbound(DOMID_SELF, DOMID_SELF) -> port 3 (1 and 2 are store and console).
        f.put(0x700, &[0xf0, 0x7f, 0xf0, 0x7f, 0xee, 0xee, 0xee, 0xee]);
        assert_eq!(
            call(&mut f, x::HYPERVISOR_EVENT_CHANNEL_OP, 6, 0x700).ret,
            0
        );
        assert_eq!(u32_at(&f, 0x704), 3);
        // status: unbound, remote = our own id (Xen rewrote DOMID_SELF).
        let mut st = [0u8; 24];
        st[..2].copy_from_slice(&x::DOMID_SELF.to_le_bytes());
        st[4..8].copy_from_slice(&3u32.to_le_bytes());
        f.put(0x800, &st);
        assert_eq!(
            call(&mut f, x::HYPERVISOR_EVENT_CHANNEL_OP, 5, 0x800).ret,
            0
        );
        assert_eq!(u32_at(&f, 0x808), 1);
        assert_eq!(f.get(0x810, 2), &1u16.to_le_bytes());
        // The console port is interdomain with domain 0.
        f.put(0x804, &2u32.to_le_bytes());
        assert_eq!(
            call(&mut f, x::HYPERVISOR_EVENT_CHANNEL_OP, 5, 0x800).ret,
            0
        );
        assert_eq!(u32_at(&f, 0x808), 2);
        assert_eq!(f.get(0x810, 2), &0u16.to_le_bytes());
        // bind_interdomain(DOMID_SELF, 3) -> 4, set pending.
        let mut b = [0u8; 12];
        b[..2].copy_from_slice(&x::DOMID_SELF.to_le_bytes());
        b[4..8].copy_from_slice(&3u32.to_le_bytes());
        f.put(0x900, &b);
        assert_eq!(
            call(&mut f, x::HYPERVISOR_EVENT_CHANNEL_OP, 0, 0x900).ret,
            0
        );
        assert_eq!(u32_at(&f, 0x908), 4);
        assert_eq!(f.words.pending[0], 1 << 4);
        assert_eq!(f.words.upcall, 1);
        // send on 4 sets 3; a bad port is -EINVAL; a buffer out of reach -EFAULT.
        f.put(0xa00, &4u32.to_le_bytes());
        assert_eq!(
            call(&mut f, x::HYPERVISOR_EVENT_CHANNEL_OP, 4, 0xa00).ret,
            0
        );
        assert_eq!(f.words.pending[0], (1 << 4) | (1 << 3));
        f.put(0xa00, &5000u32.to_le_bytes());
        assert_eq!(
            call(&mut f, x::HYPERVISOR_EVENT_CHANNEL_OP, 4, 0xa00).ret,
            -22
        );
        assert_eq!(
            call(&mut f, x::HYPERVISOR_EVENT_CHANNEL_OP, 4, 0xfffe).ret,
            -14
        );
        // bind_virq(VIRQ_TIMER, vcpu 0) -> 5; again -EEXIST.
        f.put(0xb00, &[0; 12]);
        assert_eq!(
            call(&mut f, x::HYPERVISOR_EVENT_CHANNEL_OP, 1, 0xb00).ret,
            0
        );
        assert_eq!(u32_at(&f, 0xb08), 5);
        assert_eq!(
            call(&mut f, x::HYPERVISOR_EVENT_CHANNEL_OP, 1, 0xb00).ret,
            -17
        );
        // close 4, unmask 3, FIFO init not implemented.
        f.put(0xa00, &4u32.to_le_bytes());
        assert_eq!(
            call(&mut f, x::HYPERVISOR_EVENT_CHANNEL_OP, 3, 0xa00).ret,
            0
        );
        assert_eq!(
            call(&mut f, x::HYPERVISOR_EVENT_CHANNEL_OP, 9, 0xa00).ret,
            0
        );
        let o = call(&mut f, x::HYPERVISOR_EVENT_CHANNEL_OP, 11, 0xa00);
        assert!(!o.implemented && o.ret == -38);
        // Sending on the console port drains the console and signals the port back.
        f.words = Default::default();
        f.put(0xa00, &2u32.to_le_bytes());
        assert_eq!(
            call(&mut f, x::HYPERVISOR_EVENT_CHANNEL_OP, 4, 0xa00).ret,
            0
        );
        assert_eq!(f.notified, 1);
        assert_eq!(f.words.pending[0], 1 << 2);
    }

    #[test]
    fn callback_timers_and_blocking() {
        let mut f = Fake::new();
        let mut p = [0u8; 16];
        p[..2].copy_from_slice(&x::DOMID_SELF.to_le_bytes());
        p[8..16].copy_from_slice(&abi::hvm::callback_via_vector(0xf3).to_le_bytes());
        f.put(0x500, &p);
        assert_eq!(call(&mut f, x::HYPERVISOR_HVM_OP, 0, 0x500).ret, 0);
        assert_eq!(f.st.as_ref().unwrap().callback_vector(), Some(0xf3));
        // get_param reads it back.
        f.put(0x508, &[0; 8]);
        assert_eq!(call(&mut f, x::HYPERVISOR_HVM_OP, 1, 0x500).ret, 0);
        assert_eq!(
            f.get(0x508, 8),
            &abi::hvm::callback_via_vector(0xf3).to_le_bytes()
        );
        // Toolstack parameters are refused, deprecated ones -EINVAL, domain 0 -EINVAL.
        f.put(0x504, &abi::hvm::HVM_PARAM_STORE_PFN.to_le_bytes());
        assert_eq!(call(&mut f, x::HYPERVISOR_HVM_OP, 0, 0x500).ret, -1);
        f.put(0x504, &4u32.to_le_bytes());
        assert_eq!(call(&mut f, x::HYPERVISOR_HVM_OP, 0, 0x500).ret, -22);
        f.put(0x500, &0u16.to_le_bytes());
        assert_eq!(call(&mut f, x::HYPERVISOR_HVM_OP, 0, 0x500).ret, -22);
        // Singleshot timer: the future flag refuses a past deadline with -ETIME.
        f.put(0x600, &500u64.to_le_bytes());
        f.put(0x608, &1u32.to_le_bytes());
        assert_eq!(call5(&mut f, 24, [8, 0, 0x600, 0, 0]).ret, -62);
        f.put(0x608, &0u32.to_le_bytes());
        assert_eq!(call5(&mut f, 24, [8, 0, 0x600, 0, 0]).ret, 0);
        assert_eq!(f.st.as_ref().unwrap().timer.deadline(), Some(500));
        assert_eq!(call5(&mut f, 24, [8, 1, 0x600, 0, 0]).ret, -2);
        assert_eq!(call5(&mut f, 24, [9, 0, 0, 0, 0]).ret, 0);
        assert_eq!(f.st.as_ref().unwrap().timer.deadline(), None);
        assert_eq!(call5(&mut f, 24, [3, 0, 0, 0, 0]).ret, 1);
        // get_runstate_info: running, all of the 1000 ns so far running.
        assert_eq!(call5(&mut f, 24, [4, 0, 0x700, 0, 0]).ret, 0);
        assert_eq!(f.get(0x700, 4), &0u32.to_le_bytes());
        assert_eq!(f.get(0x710, 8), &1000u64.to_le_bytes());
        assert_eq!(call5(&mut f, 24, [4, 0, 0xfffe, 0, 0]).ret, -14);
        // register_vcpu_info: offset checks (-ENXIO), a bad frame (-EINVAL), then once only;
        // everything marked pending afterwards.
        let reg = |f: &mut Fake, gfn: u64, offset: u32| {
            let mut r = [0u8; 16];
            r[..8].copy_from_slice(&gfn.to_le_bytes());
            r[8..12].copy_from_slice(&offset.to_le_bytes());
            f.put(0x720, &r);
            call5(f, 24, [10, 0, 0x720, 0, 0]).ret
        };
        assert_eq!(reg(&mut f, 5, 4096 - 63), -6);
        assert_eq!(reg(&mut f, 5, 12), -6);
        assert_eq!(reg(&mut f, 0x99, 64), -22);
        f.words = Default::default();
        assert_eq!(reg(&mut f, 5, 64), 0);
        assert_eq!(f.vcpu_info_at, Some((5, 64)));
        assert_eq!((f.words.sel, f.words.upcall), (u64::MAX, 1));
        assert_eq!(reg(&mut f, 6, 0), -22);
        f.words = Default::default();
        // set_timer_op.
        assert_eq!(call5(&mut f, 15, [5000, 0, 0, 0, 0]).ret, 0);
        assert_eq!(f.st.as_ref().unwrap().timer.deadline(), Some(5000));
        // Block with nothing pending waits; with a deliverable upcall returns at once.
        assert_eq!(
            call(&mut f, x::HYPERVISOR_SCHED_OP, 1, 0).action,
            Action::Block
        );
        f.words.upcall = 1;
        assert_eq!(
            call(&mut f, x::HYPERVISOR_SCHED_OP, 1, 0).action,
            Action::Resume
        );
        f.words.upcall = 0;
        // Poll: a pending port answers at once; too many ports -EINVAL; a bad port -EINVAL.
        let mut sp = [0u8; 24];
        sp[..8].copy_from_slice(&0x680u64.to_le_bytes());
        sp[8..12].copy_from_slice(&1u32.to_le_bytes());
        sp[16..24].copy_from_slice(&9000u64.to_le_bytes());
        f.put(0x640, &sp);
        f.put(0x680, &2u32.to_le_bytes());
        assert_eq!(
            call(&mut f, x::HYPERVISOR_SCHED_OP, 3, 0x640).action,
            Action::Poll {
                timeout: Some(9000)
            }
        );
        f.words.pending[0] = 1 << 2;
        assert_eq!(
            call(&mut f, x::HYPERVISOR_SCHED_OP, 3, 0x640).action,
            Action::Resume
        );
        f.put(0x680, &4096u32.to_le_bytes());
        f.words.pending[0] = 0;
        assert_eq!(call(&mut f, x::HYPERVISOR_SCHED_OP, 3, 0x640).ret, -22);
        f.put(0x648, &129u32.to_le_bytes());
        assert_eq!(call(&mut f, x::HYPERVISOR_SCHED_OP, 3, 0x640).ret, -22);
    }

    #[test]
    fn grant_table_ops() {
        let mut f = Fake::new();
        // query_size(DOMID_SELF): 1 of 64, status 0.
        let mut q = [0u8; 16];
        q[..2].copy_from_slice(&x::DOMID_SELF.to_le_bytes());
        f.put(0x300, &q);
        assert_eq!(call5(&mut f, 20, [6, 0x300, 1, 0, 0]).ret, 0);
        assert_eq!((u32_at(&f, 0x304), u32_at(&f, 0x308)), (1, 64));
        assert_eq!(f.get(0x30c, 2), &0i16.to_le_bytes());
        assert_eq!(call5(&mut f, 20, [6, 0x300, 2, 0, 0]).ret, -22);
        assert_eq!(call5(&mut f, 20, [6, 0x300, 1 << 31, 0, 0]).ret, -22);
        assert_eq!(call5(&mut f, 20, [6 | (1 << 12), 0x300, 1, 0, 0]).ret, -22);
        // set_version(2): -ENOSYS, version 1 written back; get_version 1.
        f.put(0x310, &2u32.to_le_bytes());
        assert_eq!(call5(&mut f, 20, [8, 0x310, 1, 0, 0]).ret, -38);
        assert_eq!(u32_at(&f, 0x310), 1);
        f.put(0x320, &[0xf0, 0x7f, 0, 0, 9, 9, 9, 9]);
        assert_eq!(call5(&mut f, 20, [10, 0x320, 1, 0, 0]).ret, 0);
        assert_eq!(u32_at(&f, 0x324), 1);
        // add_to_physmap(grant_table, idx 0, gfn 0x55).
        let mut a = Vec::new();
        a.extend_from_slice(&x::DOMID_SELF.to_le_bytes());
        a.extend_from_slice(&0u16.to_le_bytes());
        a.extend_from_slice(&1u32.to_le_bytes());
        a.extend_from_slice(&0u64.to_le_bytes());
        a.extend_from_slice(&0x55u64.to_le_bytes());
        f.put(0x400, &a);
        assert_eq!(call(&mut f, x::HYPERVISOR_MEMORY_OP, 7, 0x400).ret, 0);
        assert_eq!(f.grant_frames, vec![(0, 0x55)]);
        f.put(0x408, &64u64.to_le_bytes());
        assert_eq!(call(&mut f, x::HYPERVISOR_MEMORY_OP, 7, 0x400).ret, -22);
        // setup_table(1 frame) writes the gfn.
        let mut t = [0u8; 24];
        t[..2].copy_from_slice(&x::DOMID_SELF.to_le_bytes());
        t[4..8].copy_from_slice(&1u32.to_le_bytes());
        t[16..24].copy_from_slice(&0x340u64.to_le_bytes());
        f.put(0x328, &t);
        assert_eq!(call5(&mut f, 20, [2, 0x328, 1, 0, 0]).ret, 0);
        assert_eq!(f.get(0x340, 8), &0x55u64.to_le_bytes());
        // copy through grant 3 (ours, read-only, frame 2) into frame 3.
        f.put(0x8000 + 24, &[5, 0, 1, 0, 2, 0, 0, 0]);
        f.put(0x2000, &[0xab; 4096]);
        let mut c = [0u8; 40];
        c[..8].copy_from_slice(&3u64.to_le_bytes());
        c[8..10].copy_from_slice(&x::DOMID_SELF.to_le_bytes());
        c[16..24].copy_from_slice(&3u64.to_le_bytes());
        c[24..26].copy_from_slice(&x::DOMID_SELF.to_le_bytes());
        c[32..34].copy_from_slice(&4096u16.to_le_bytes());
        c[34..36].copy_from_slice(&1u16.to_le_bytes());
        c[36..38].copy_from_slice(&0x7777u16.to_le_bytes());
        f.put(0x380, &c);
        assert_eq!(call5(&mut f, 20, [5, 0x380, 1, 0, 0]).ret, 0);
        assert_eq!(f.get(0x380 + 36, 2), &0i16.to_le_bytes());
        assert_eq!(f.get(0x3000, 4096), &[0xab; 4096][..]);
        // The same grant to domain 0: GNTST_general_error.
        f.put(0x8000 + 24, &[5, 0, 0, 0, 2, 0, 0, 0]);
        assert_eq!(call5(&mut f, 20, [5, 0x380, 1, 0, 0]).ret, 0);
        assert_eq!(f.get(0x380 + 36, 2), &(-1i16).to_le_bytes());
        // Map is not implemented (counted).
        let o = call5(&mut f, 20, [0, 0x380, 1, 0, 0]);
        assert!(!o.implemented && o.ret == -38);
    }

    proptest::proptest! {
        /// Any op, any arguments, any memory contents: dispatch answers without panicking,
        /// and an unimplemented answer is always -ENOSYS.
        #[test]
        fn no_guest_value_panics(
            op in proptest::prop_oneof![0u64..70, proptest::num::u64::ANY],
            args in proptest::array::uniform5(proptest::prop_oneof![
                0u64..0x3400, 0u64..16, proptest::num::u64::ANY
            ]),
            bytes in proptest::collection::vec(proptest::num::u8::ANY, 0x3000),
        ) {
            let mut f = Fake::new();
            f.mem = bytes;
            let o = call5(&mut f, op, args);
            if !o.implemented {
                proptest::prop_assert_eq!(o.ret, -38);
            }
            proptest::prop_assert!(o.ret <= 0x4_0011);
        }
    }
}
