//! Hypercall dispatch: decodes the op and its guest-virtual arguments and answers as Xen
//! 4.17 answers a PVH domU, for the operations issue 13 covers; everything else answers
//! `-ENOSYS` and is reported as not implemented so it is counted.
//!
//! Every argument is a guest allegation: buffers are read and written only through
//! [`HypercallEnv`] (Xen's `copy_from_guest` / `copy_to_guest`, `-EFAULT` on failure), and
//! numbers are range-checked before use.

use abi::errno::{XEN_EFAULT, XEN_EINVAL, XEN_ENOENT, XEN_ENOSYS, XEN_EPERM, XEN_ESRCH};
use abi::memory::E820Entry;
use abi::xen as x;

use crate::evtchn::{EventChannels, EventPeers, EventWords};
use crate::grant::{GrantEnv, GrantTable};
use crate::time::Singleshot;

mod args;
mod control;
mod events;
mod grants;
pub mod memory;
pub mod upcall_vector;

use args::{read_struct, write_field, write_struct};

/// `SCHEDOP_poll`'s limit on ports ("fairly arbitrary", Xen says).
pub const MAX_POLL_PORTS: usize = 128;

/// What dispatch needs from the domain: guest memory, the event words of its shared_info
/// page ([`EventWords`]), its grant entries and RAM ([`GrantEnv`]), and the clock.
pub trait HypercallEnv: EventWords + EventPeers + GrantEnv {
    /// Xen's `copy_from_guest`: reads the guest-virtual buffer at `va`.
    fn read_guest(&self, va: u64, buf: &mut [u8]) -> Result<(), GuestFault>;
    /// Xen's `copy_to_guest`: writes the guest-virtual buffer at `va`.
    fn write_guest(&mut self, va: u64, data: &[u8]) -> Result<(), GuestFault>;
    /// Maps the domain's shared_info page at guest frame `gfn` (moving it if mapped
    /// elsewhere); a Xen errno (negative) on failure.
    fn map_shared_info(&mut self, gfn: u64) -> Result<(), XenErrno>;
    /// The domain's memory map (the one its start info carries).
    fn e820(&self) -> &[E820Entry];
    /// The guest sent an event that reached domain 0's port `dom0_port`: domain 0's port
    /// table ([`crate::dom0::ports::PortTable`]) hands it to the service listening there.
    /// Whether that service answers with a notification back on the channel (the console
    /// backend always does once it read the ring; xenstored when it moved bytes).
    fn deliver_to_dom0(&mut self, dom0_port: u32) -> bool;
    /// System time now, in ns since the domain was built.
    fn now_ns(&self) -> u64;
    /// Whether an upcall would be delivered at once (Xen's `local_events_need_delivery`):
    /// the guest's interrupts enabled and either `evtchn_upcall_pending` set with a callback
    /// vector configured, or vCPU 0's own upcall vector pending in its local APIC or about
    /// to be ([`upcall_vector::UpcallGate`]).
    fn upcall_deliverable(&self) -> bool;
    /// Moves vCPU 0's `vcpu_info` to `offset` (checked: 8-aligned, the 64 bytes inside the
    /// page) in guest frame `gfn`, copying its contents there (Xen's `map_vcpu_info`);
    /// `-EINVAL` if `gfn` is not a writable page of the domain.
    fn map_vcpu_info(&mut self, gfn: u64, offset: u32) -> Result<(), XenErrno>;
    /// Places grant-table frame `idx` at guest frame `gfn`, unmapping it from `old` (where
    /// it was); a Xen errno on failure.
    fn map_grant_frame(&mut self, idx: u32, gfn: u64, old: Option<u64>) -> Result<(), XenErrno>;
    /// The domain's page count and ceiling (Xen's `domain_tot_pages` and `max_pages`).
    fn reservation(&self) -> memory::Reservation;
    /// Xen's `guest_remove_page`: removes guest frame `gfn` from the domain's physical map
    /// and gives its frame back to hv (the domain's page count drops) unless something still
    /// holds it (a special page, the page of a registered `vcpu_info`, a page another domain
    /// maps through a grant: unmapped only, as Xen's references keep the page).
    /// `-ENOENT` if nothing is mapped there, `-ENOMEM` if no table page was left to split a
    /// 2 MiB mapping.
    fn remove_page(&mut self, gfn: u64) -> Result<(), XenErrno>;
    /// Gives the domain `2^order` zeroed frames (the caller checked `max_pages`), all below
    /// host address `below`, and maps them from guest frame `gfn` if given (Xen's
    /// `alloc_domheap_pages` and `guest_physmap_add_page`). `-ENOMEM` if hv has no such
    /// frames (nothing changes); a mapping that fails (a frame beyond the guest-physical
    /// limit, no table page) answers its errno and the frames stay the domain's, counted,
    /// as in Xen.
    fn populate(&mut self, gfn: Option<u64>, order: u32, below: u64) -> Result<(), XenErrno>;
    /// Xen's `max_page`: one more than the host's highest RAM frame.
    fn max_ram_page(&self) -> u64;
    /// Maps another domain's frame, acquired for a grant mapping, at this domain's guest
    /// frame `gfn` (read-only if the mapping is), replacing what was there
    /// (`guest_physmap_add_entry`); `Err` with the `GNTST_*` status. Default: not possible.
    fn map_foreign(&mut self, _gfn: u64, _f: &crate::grant::Foreign) -> Result<(), i16> {
        Err(abi::grant_table::GNTST_GENERAL_ERROR)
    }
    /// Removes the mapping of `f`'s frame at `gfn`; `Err` if `gfn` does not map it
    /// (`replace_grant_p2m_mapping`'s check), leaving a hole otherwise.
    fn unmap_foreign(&mut self, _gfn: u64, _f: &crate::grant::Foreign) -> Result<(), i16> {
        Err(abi::grant_table::GNTST_GENERAL_ERROR)
    }
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
    /// vCPU 0's own upcall vector (`HVMOP_set_evtchn_upcall_vector`), if the guest set one.
    pub upcall_vector: Option<u8>,
    /// `HVMOP_set_evtchn_upcall_vector` succeeded: the kernel asserts the vector once in the
    /// local APIC (Xen's `hvm_assert_evtchn_irq` at the call) and clears this.
    pub upcall_vector_set: bool,
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
    /// The guest address `VCPUOP_register_runstate_memory_area` gave (0: none).
    pub runstate_area: u64,
    /// Whether the guest registered vCPU 0's `vcpu_info` (once only, as in Xen).
    pub vcpu_info_registered: bool,
    /// The domain's own id.
    pub domid: u16,
    /// The mappings this domain holds of other domains' grants.
    pub maptrack: crate::grant::Maptrack,
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
            upcall_vector: None,
            upcall_vector_set: false,
            console_port,
            store_port,
            poll_ports: [0; MAX_POLL_PORTS],
            poll_nr: 0,
            runstate: Default::default(),
            runstate_area: 0,
            vcpu_info_registered: false,
            domid,
            maptrack: Default::default(),
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
    /// The domain's handle (its UUID's bytes), `XENVER_guest_handle`'s answer.
    pub handle: [u8; 16],
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
    /// `SCHEDOP_yield`: give the CPU to another runnable domain, if there is one.
    Yield,
    /// `SCHEDOP_poll`: wait until one of [`XenState::poll_ports`] is pending, an upcall
    /// arrives, or system time reaches `timeout`.
    Poll {
        /// Absolute system time to give up at.
        timeout: Option<u64>,
    },
    /// Xen's `hypercall_create_continuation` for an HVM guest: the call stopped part way; put
    /// `args` in the argument registers, leave the op in RAX and RIP on the hypercall
    /// instruction, so the guest re-executes it where it stopped (after any event or timer
    /// that is due). `ret` is not used.
    Continue {
        /// The arguments to re-enter with (rdi, rsi, rdx, r10, r8).
        args: [u64; 5],
    },
}

/// The longest hv stays inside one hypercall before it yields to the guest's events and
/// timer (and, later, other domains): Xen yields as soon as a softirq or an event is
/// pending; hv also yields after this much time.
pub const HYPERCALL_SLICE_NS: u64 = 1_000_000;

/// Xen's `hypercall_preempt_check`: an upcall can be delivered, the guest's timer is due, or
/// the call has run [`HYPERCALL_SLICE_NS`] since `start_ns`.
pub fn preempt_due(env: &impl HypercallEnv, st: &XenState, start_ns: u64) -> bool {
    let now = env.now_ns();
    env.upcall_deliverable()
        || st.timer.deadline().is_some_and(|d| now >= d)
        || now.saturating_sub(start_ns) >= HYPERCALL_SLICE_NS
}

/// The call continues later with `args`.
fn continuation(args: [u64; 5]) -> Outcome {
    Outcome {
        ret: 0,
        action: Action::Continue { args },
        implemented: true,
    }
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

use crate::xen_errno::{XenErrno, xen_errno as err};

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

const EFAULT: XenErrno = err(XEN_EFAULT);

/// Answers 0 if an OUT copy reached the guest, else `-EFAULT` (the operation stays done, as
/// in Xen).
fn written(copy: Result<(), GuestFault>) -> Outcome {
    match copy {
        Ok(()) => done(0),
        Err(GuestFault) => done(EFAULT),
    }
}

/// Writes an OUT buffer of plain bytes and answers 0, or `-EFAULT`.
fn write_result(env: &mut impl HypercallEnv, va: u64, bytes: &[u8]) -> Outcome {
    written(args::in_reach(va, bytes.len()).and_then(|va| env.write_guest(va, bytes)))
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
        x::HYPERVISOR_XEN_VERSION => xen_version(env, params, args),
        x::HYPERVISOR_MEMORY_OP => memory_op(env, params, st, args),
        x::HYPERVISOR_HVM_OP => hvm_op(env, params, st, args),
        // A domU may not use Xen's console (release build's XSM dummy policy).
        x::HYPERVISOR_CONSOLE_IO => done(err(XEN_EPERM)),
        x::HYPERVISOR_SCHED_OP => sched_op(env, params, st, args),
        x::HYPERVISOR_EVENT_CHANNEL_OP => events::event_channel_op(env, st, args),
        x::HYPERVISOR_SET_TIMER_OP => events::set_timer_op(env, st, args[0]),
        x::HYPERVISOR_VCPU_OP => events::vcpu_op(env, st, args),
        x::HYPERVISOR_GRANT_TABLE_OP => grants::grant_table_op(env, st, args),
        x::HYPERVISOR_SYSCTL => control::sysctl(env, args[0]),
        x::HYPERVISOR_DOMCTL => control::domctl(env, params, args[0]),
        // Ops Xen 4.17 offers an HVM guest that hv does not implement yet.
        x::HYPERVISOR_PHYSDEV_OP
        | x::HYPERVISOR_XSM_OP
        | x::HYPERVISOR_MMUEXT_OP
        | x::HYPERVISOR_MULTICALL
        | x::HYPERVISOR_VM_ASSIST
        | x::HYPERVISOR_ARGO_OP
        | x::HYPERVISOR_DM_OP
        | x::HYPERVISOR_HYPFS_OP => not_implemented(),
        // Not an HVM hypercall in Xen either.
        _ => done(err(XEN_ENOSYS)),
    }
}

fn xen_version(env: &mut impl HypercallEnv, params: &DomainParams, args: [u64; 5]) -> Outcome {
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
            let Ok(mut info) = read_struct::<v::XenFeatureInfo>(env, arg) else {
                return done(EFAULT);
            };
            if info.submap_idx >= abi::features::XENFEAT_NR_SUBMAPS {
                return done(err(XEN_EINVAL));
            }
            info.submap = if info.submap_idx == 0 {
                FEATURES_SUBMAP0
            } else {
                0
            };
            written(write_struct(env, arg, &info))
        }
        // Privileged in Xen's dummy XSM policy.
        v::XENVER_BUILD_ID => done(err(XEN_EPERM)),
        // Open to every guest (XSM_HOOK); the strings are hv's own.
        v::XENVER_EXTRAVERSION => {
            let mut s: v::XenExtraversion = [0; v::XEN_EXTRAVERSION_LEN];
            s[..EXTRAVERSION.len()].copy_from_slice(EXTRAVERSION);
            write_result(env, arg, &s)
        }
        v::XENVER_COMPILE_INFO => {
            // The four NUL-padded strings at their offsets in `xen_compile_info`.
            let mut info = [0u8; size_of::<v::XenCompileInfo>()];
            use core::mem::offset_of;
            for (at, s) in [
                (offset_of!(v::XenCompileInfo, compiler), COMPILER),
                (offset_of!(v::XenCompileInfo, compile_by), COMPILE_BY),
                (
                    offset_of!(v::XenCompileInfo, compile_domain),
                    COMPILE_DOMAIN,
                ),
                (offset_of!(v::XenCompileInfo, compile_date), COMPILE_DATE),
            ] {
                info[at..at + s.len()].copy_from_slice(s);
            }
            write_result(env, arg, &info)
        }
        v::XENVER_CHANGESET => {
            let mut s: v::XenChangesetInfo = [0; v::XEN_CHANGESET_INFO_LEN];
            s[..CHANGESET.len()].copy_from_slice(CHANGESET);
            write_result(env, arg, &s)
        }
        // The answer depends on the caller's mode (a compat guest gets its own hole).
        v::XENVER_PLATFORM_PARAMETERS => not_implemented(),
        // The domain's handle: its UUID, as xl sets it.
        v::XENVER_GUEST_HANDLE => write_result(env, arg, &params.handle),
        _ => done(err(XEN_ENOSYS)),
    }
}

/// `XENVER_extraversion`: hv's (Xen's is its point release, e.g. ".7").
pub const EXTRAVERSION: &[u8] = b"-hv";
/// `XENVER_compile_info.compiler`: hv's own, independent of the build.
pub const COMPILER: &[u8] = b"rustc (hv)";
/// `XENVER_compile_info.compile_by`.
pub const COMPILE_BY: &[u8] = b"hv";
/// `XENVER_compile_info.compile_domain`.
pub const COMPILE_DOMAIN: &[u8] = b"hv";
/// `XENVER_compile_info.compile_date`: none (no value that depends on the build).
pub const COMPILE_DATE: &[u8] = b"unknown";
/// `XENVER_changeset`: hv's name and version.
pub const CHANGESET: &[u8] = concat!("hv ", env!("CARGO_PKG_VERSION")).as_bytes();

/// `XENVER_capabilities` of Xen 4.17 on x86_64 with HVM (as stock Xen answered pvguest).
pub const CAPABILITIES: &[u8] = b"xen-3.0-x86_64 hvm-3.0-x86_32 hvm-3.0-x86_32p hvm-3.0-x86_64 ";

/// What Xen 4.17 copies for a sub-op XSM denies but still answers (`xen_deny()`).
pub const DENIED: &[u8] = b"<denied>\0";

/// The most memory-map entries `XENMEM_memory_map` returns (hv's maps have fewer).
const MAX_MEMORY_MAP_ENTRIES: usize = 16;
/// Bytes of [`MAX_MEMORY_MAP_ENTRIES`] entries.
const MEMORY_MAP_BYTES: usize = MAX_MEMORY_MAP_ENTRIES * core::mem::size_of::<E820Entry>();

/// `MEMOP_CMD_MASK`: the low bits of a memory_op command name the operation.
const MEMOP_CMD_MASK: u64 = 0x3f;

/// Xen's domain lookup plus its XSM check for an operation on domain `domid` that a domU
/// may do only to itself: `DOMID_SELF` or its own id pass; domain 0 exists in Xen but the
/// policy refuses it (`-EPERM`); any other id names no domain (`-ESRCH`).
fn own_domain(params: &DomainParams, domid: u16) -> Result<(), XenErrno> {
    if domid == x::DOMID_SELF || domid == params.domid {
        Ok(())
    } else if domid == 0 {
        Err(err(XEN_EPERM))
    } else {
        Err(err(XEN_ESRCH))
    }
}

/// [`own_domain`] where another domU exists: Xen's `rcu_lock_domain_by_any_id` finds it and
/// the dummy policy's `XSM_TARGET` check refuses it (`-EPERM`, e.g.
/// `xsm_memory_stat_reservation` in xen/common/memory.c), where an id no domain has is
/// `-ESRCH`. `refusal` is what the caller's own check answered.
fn other_domain_refused(env: &impl HypercallEnv, domid: u16, refusal: XenErrno) -> XenErrno {
    if refusal == err(XEN_ESRCH) && env.peer_exists(domid) {
        err(XEN_EPERM)
    } else {
        refusal
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
        m::XENMEM_INCREASE_RESERVATION
        | m::XENMEM_DECREASE_RESERVATION
        | m::XENMEM_POPULATE_PHYSMAP => memory::reservation_op(env, params, st, cmd, args),
        m::XENMEM_CURRENT_RESERVATION | m::XENMEM_MAXIMUM_RESERVATION => {
            memory::reservation_query(env, params, cmd, args)
        }
        m::XENMEM_MAXIMUM_RAM_PAGE => memory::maximum_ram_page(env, args),
        m::XENMEM_GET_POD_TARGET | m::XENMEM_SET_POD_TARGET => {
            memory::pod_target(env, params, args)
        }
        m::XENMEM_MEMORY_MAP => {
            let Ok(arg_map) = read_struct::<m::XenMemoryMap>(env, arg) else {
                return done(EFAULT);
            };
            let map = env.e820();
            let n = (arg_map.nr_entries as usize)
                .min(map.len())
                .min(MAX_MEMORY_MAP_ENTRIES);
            // One copy of the first `n` entries, as Xen's copy_to_guest of the array.
            let mut bytes = [0u8; MEMORY_MAP_BYTES];
            let entry_size = core::mem::size_of::<E820Entry>();
            for (slot, e) in bytes.chunks_exact_mut(entry_size).zip(&map[..n]) {
                slot.copy_from_slice(abi::wire::Unpadded::as_bytes(e));
            }
            let out = &bytes[..n * entry_size];
            if args::in_reach(arg_map.buffer, out.len())
                .and_then(|va| env.write_guest(va, out))
                .is_err()
            {
                return done(EFAULT);
            }
            let count = u32::try_from(n).unwrap_or(u32::MAX);
            written(write_field!(env, arg, m::XenMemoryMap, nr_entries, count))
        }
        m::XENMEM_ADD_TO_PHYSMAP => {
            let Ok(m::XenAddToPhysmap {
                domid,
                space,
                idx,
                gpfn,
                ..
            }) = read_struct::<m::XenAddToPhysmap>(env, arg)
            else {
                return done(EFAULT);
            };
            if let Err(e) = own_domain(params, domid) {
                return done(other_domain_refused(env, domid, e));
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
                            Ok(()) => {
                                st.grants.frame_placed(i, gpfn);
                                done(0)
                            }
                            Err(e) => done(e),
                        },
                        Err(e) => done(e),
                    }
                }
                // Spaces x86 Xen does not know (`XENMAPSPACE_dev_mmio` and past it) leave
                // `xenmem_add_to_physmap_one` without a frame: -EINVAL
                // (xen/arch/x86/mm/p2m.c:2478 in 4.17).
                space if space > m::XENMAPSPACE_GMFN_FOREIGN => done(err(XEN_EINVAL)),
                _ => not_implemented(),
            }
        }
        // Xen's checks and its answer for a frame with nothing behind it
        // (xen/common/memory.c:1614-1646 in 4.17); removing a page that is there is not
        // implemented yet.
        m::XENMEM_REMOVE_FROM_PHYSMAP => {
            if args[0] >> memory::MEMOP_EXTENT_SHIFT != 0 {
                return done(err(XEN_EINVAL));
            }
            let Ok(m::XenRemoveFromPhysmap { domid, gpfn }) = read_struct(env, arg) else {
                return done(EFAULT);
            };
            if let Err(e) = own_domain(params, domid) {
                return done(other_domain_refused(env, domid, e));
            }
            if env.page_ok(gpfn) {
                not_implemented()
            } else {
                done(err(XEN_ENOENT))
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
    let Ok(h::XenHvmParam {
        domid,
        index,
        value,
        ..
    }) = read_struct::<h::XenHvmParam>(env, arg)
    else {
        return done(EFAULT);
    };
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
    if op == u64::from(h::HVMOP_SET_EVTCHN_UPCALL_VECTOR) {
        return upcall_vector::set_evtchn_upcall_vector(env, st, arg);
    }
    if op != u64::from(h::HVMOP_GET_PARAM) {
        return not_implemented();
    }
    let Ok(h::XenHvmParam { domid, index, .. }) = read_struct::<h::XenHvmParam>(env, arg) else {
        return done(EFAULT);
    };
    // Xen's order: the index bound, the domain, then whether the guest may read it.
    if index >= h::HVM_NR_PARAMS {
        return done(err(XEN_EINVAL));
    }
    if let Err(e) = own_domain(params, domid) {
        return done(other_domain_refused(env, domid, e));
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
    written(write_field!(env, arg, h::XenHvmParam, value, value))
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
        Ok(s::SCHEDOP_YIELD) => Outcome {
            ret: 0,
            action: Action::Yield,
            implemented: true,
        },
        Ok(s::SCHEDOP_SHUTDOWN) => {
            let Ok(s::SchedShutdown { reason }) = read_struct(env, arg) else {
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
            let Ok(s::SchedRemoteShutdown {
                domain_id: domid, ..
            }) = read_struct(env, arg)
            else {
                return done(EFAULT);
            };
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
    use abi::event_channel as e;
    use abi::grant_table as g;
    use abi::memory as m;
    use abi::wire::{Plain, Unpadded};
    use args::set_field;
    use core::mem::size_of;

    /// Guest memory where virtual = physical = an index into a Vec.
    pub(super) struct Fake {
        mem: Vec<u8>,
        shared_info: Option<u64>,
        notified: u32,
        e820: Vec<E820Entry>,
        words: crate::evtchn::tests::Words,
        st: Option<XenState>,
        now: u64,
        /// Added to the clock at every `now_ns` (time passing inside a hypercall).
        pub(super) step: u64,
        elapsed: core::cell::Cell<u64>,
        /// A guest that maps the top page of its address space (bytes 0xe000.. of `mem`) as
        /// well as page 0, and whose accesses wrap from one to the other as a CPU's do.
        wraps: bool,
        /// `map_grant_frame` answers -ENOMEM (the pool ran dry).
        fail_grant_map: bool,
        if_enabled: bool,
        grant_frames: Vec<(u32, u64)>,
        vcpu_info_at: Option<(u64, u32)>,
        /// The domain's physical map and page counts.
        pub(super) physmap: memory::tests::FakePhysmap,
        /// Another domU that exists.
        peer: Option<u16>,
    }

    impl Fake {
        pub(super) fn new() -> Self {
            Self {
                mem: vec![0; 0x10000],
                shared_info: None,
                notified: 0,
                words: Default::default(),
                st: Some(XenState::new(1)),
                now: 1000,
                step: 0,
                elapsed: core::cell::Cell::new(0),
                wraps: false,
                fail_grant_map: false,
                if_enabled: true,
                grant_frames: Vec::new(),
                vcpu_info_at: None,
                physmap: memory::tests::FakePhysmap::new(),
                peer: None,
                e820: vec![
                    E820Entry {
                        addr: 0,
                        size: 128 << 20,
                        type_: 1,
                    },
                    E820Entry {
                        addr: 0xfeff8000,
                        size: 0x8000,
                        type_: 2,
                    },
                ],
            }
        }
        pub(super) fn put(&mut self, va: u64, data: &[u8]) {
            self.mem[va as usize..va as usize + data.len()].copy_from_slice(data);
        }
        pub(super) fn get(&self, va: u64, len: usize) -> &[u8] {
            &self.mem[va as usize..va as usize + len]
        }
        /// Places a padding-free `abi` struct at `va`.
        pub(super) fn put_struct<T: Unpadded>(&mut self, va: u64, value: &T) {
            self.put(va, value.as_bytes());
        }
        /// The `abi` struct at `va`, read back typed.
        fn get_struct<T: Plain>(&self, va: u64) -> T {
            T::from_bytes(self.get(va, size_of::<T>())).unwrap()
        }
        /// Where the fake's grant entry `gref` lives.
        fn entry_va(gref: u32) -> u64 {
            args::element_va::<g::GrantEntryV1>(0x8000, u64::from(gref)).unwrap()
        }
    }

    impl Fake {
        /// The domain's Xen state between calls.
        pub(super) fn st(&self) -> Option<&XenState> {
            self.st.as_ref()
        }
        /// The domain's Xen state between calls, to change.
        pub(super) fn st_mut(&mut self) -> Option<&mut XenState> {
            self.st.as_mut()
        }
    }

    /// The top page of the guest's address space, when [`Fake::wraps`].
    const TOP_PAGE: u64 = 0u64.wrapping_sub(0x1000);

    impl Fake {
        /// Where guest address `a` lives in `mem`.
        fn index(&self, a: u64) -> Option<usize> {
            if a < self.mem.len() as u64 {
                Some(a as usize)
            } else if self.wraps && a >= TOP_PAGE {
                Some(0xe000 + (a - TOP_PAGE) as usize)
            } else {
                None
            }
        }
    }

    impl HypercallEnv for Fake {
        fn read_guest(&self, va: u64, buf: &mut [u8]) -> Result<(), GuestFault> {
            if self.wraps {
                for (k, b) in buf.iter_mut().enumerate() {
                    *b = self.mem[self.index(va.wrapping_add(k as u64)).ok_or(GuestFault)?];
                }
                return Ok(());
            }
            let end = va.checked_add(buf.len() as u64).ok_or(GuestFault)?;
            if end > self.mem.len() as u64 {
                return Err(GuestFault);
            }
            buf.copy_from_slice(&self.mem[va as usize..end as usize]);
            Ok(())
        }
        fn write_guest(&mut self, va: u64, data: &[u8]) -> Result<(), GuestFault> {
            if self.wraps {
                let at: Option<Vec<usize>> = (0..data.len())
                    .map(|k| self.index(va.wrapping_add(k as u64)))
                    .collect();
                for (i, b) in at.ok_or(GuestFault)?.into_iter().zip(data) {
                    self.mem[i] = *b;
                }
                return Ok(());
            }
            let end = va.checked_add(data.len() as u64).ok_or(GuestFault)?;
            if end > self.mem.len() as u64 {
                return Err(GuestFault);
            }
            self.put(va, data);
            Ok(())
        }
        fn map_shared_info(&mut self, gfn: u64) -> Result<(), XenErrno> {
            self.shared_info = Some(gfn);
            Ok(())
        }
        fn e820(&self) -> &[E820Entry] {
            &self.e820
        }
        /// Domain 0's console is behind its port 2 and answers; its store port 1 stays
        /// silent.
        fn deliver_to_dom0(&mut self, dom0_port: u32) -> bool {
            if dom0_port == DOM0_CONSOLE_PORT {
                self.notified += 1;
                true
            } else {
                false
            }
        }
        fn now_ns(&self) -> u64 {
            let t = self.elapsed.get();
            self.elapsed.set(t + self.step);
            self.now + t
        }
        fn upcall_deliverable(&self) -> bool {
            let st = self.st.as_ref();
            self.words.upcall != 0
                && self.if_enabled
                && st.is_none_or(|s| s.callback_vector().is_some())
        }
        fn map_vcpu_info(&mut self, gfn: u64, offset: u32) -> Result<(), XenErrno> {
            if gfn == 0x99 {
                return Err(-22);
            }
            self.vcpu_info_at = Some((gfn, offset));
            Ok(())
        }
        fn map_grant_frame(
            &mut self,
            idx: u32,
            gfn: u64,
            _old: Option<u64>,
        ) -> Result<(), XenErrno> {
            if self.fail_grant_map {
                return Err(-12);
            }
            self.grant_frames.push((idx, gfn));
            Ok(())
        }
        fn reservation(&self) -> memory::Reservation {
            self.physmap.reservation()
        }
        fn remove_page(&mut self, gfn: u64) -> Result<(), XenErrno> {
            self.physmap.remove(gfn)
        }
        fn populate(&mut self, gfn: Option<u64>, order: u32, below: u64) -> Result<(), XenErrno> {
            self.physmap.populate(gfn, order, below)
        }
        fn max_ram_page(&self) -> u64 {
            memory::tests::HOST_MAX_PAGE
        }
    }

    /// No other domU exists in these tests.
    impl EventPeers for Fake {
        fn peer_exists(&self, dom: u16) -> bool {
            self.peer == Some(dom)
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
        fn entry(&self, gref: u32) -> g::GrantEntryV1 {
            let o = Self::entry_va(gref) as usize;
            self.mem
                .get(o..o + size_of::<g::GrantEntryV1>())
                .and_then(g::GrantEntryV1::from_bytes)
                .unwrap_or_default()
        }
        fn set_flags(&mut self, gref: u32, flags: u16) {
            let mut entry = self.entry(gref);
            entry.flags = flags;
            let o = Self::entry_va(gref) as usize;
            if let Some(b) = self.mem.get_mut(o..o + size_of::<g::GrantEntryV1>()) {
                b.copy_from_slice(entry.as_bytes());
            }
        }
        fn page_ok(&self, gfn: u64) -> bool {
            (1..8).contains(&gfn) && self.mem.len() >= 0x9000
        }
        fn copy(
            &mut self,
            src: crate::grant::Frame,
            so: u16,
            dst: crate::grant::Frame,
            d_o: u16,
            len: u16,
        ) {
            use crate::grant::Frame;
            let (Frame::Own(src), Frame::Own(dst)) = (src, dst) else {
                return;
            };
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
        handle: *b"hv\0\0\0\0\x80\0\x80\0\0\0\0\0\0\x01",
    };

    fn call(f: &mut Fake, op: u32, a0: u64, a1: u64) -> Outcome {
        call5(f, u64::from(op), [a0, a1, 0, 0, 0])
    }

    pub(super) fn call5(f: &mut Fake, op: u64, args: [u64; 5]) -> Outcome {
        let mut st = f.st.take().unwrap_or_else(|| XenState::new(1));
        let o = dispatch(f, &P, &mut st, op, args);
        f.st = Some(st);
        o
    }

    #[test]
    fn xen_version_and_features() {
        use abi::version::XenFeatureInfo;
        let mut f = Fake::new();
        assert_eq!(call(&mut f, x::HYPERVISOR_XEN_VERSION, 0, 0).ret, 0x40011);
        let features = |submap_idx| XenFeatureInfo {
            submap_idx,
            submap: 0,
        };
        f.put_struct(0x100, &features(0));
        assert_eq!(call(&mut f, x::HYPERVISOR_XEN_VERSION, 6, 0x100).ret, 0);
        assert_eq!(f.get_struct::<XenFeatureInfo>(0x100).submap, 0x12305);
        f.put_struct(0x100, &features(1));
        assert_eq!(call(&mut f, x::HYPERVISOR_XEN_VERSION, 6, 0x100).ret, -22);
        assert_eq!(call(&mut f, x::HYPERVISOR_XEN_VERSION, 6, 0xfffe).ret, -14);
        assert_eq!(call(&mut f, x::HYPERVISOR_XEN_VERSION, 10, 0x100).ret, -1);
        assert_eq!(call(&mut f, x::HYPERVISOR_XEN_VERSION, 9, 0x100).ret, 0);
        assert_eq!(f.get(0x100, 9), b"<denied>\0");
        assert_eq!(call(&mut f, x::HYPERVISOR_XEN_VERSION, 7, 0).ret, 4096);
        f.put(0x200, &[0xaa; 16]);
        // XENVER_guest_handle: the domain's UUID.
        assert_eq!(call(&mut f, x::HYPERVISOR_XEN_VERSION, 8, 0x200).ret, 0);
        assert_eq!(f.get(0x200, 16), &P.handle);
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
    fn version_strings_fifo_and_toolstack_ops_as_xen_answers_a_domu() {
        let mut f = Fake::new();
        let ver = |f: &mut Fake, cmd, va| call(f, x::HYPERVISOR_XEN_VERSION, cmd, va).ret;
        // XENVER_extraversion, compile_info, changeset: NUL-padded strings, -EFAULT unmapped.
        f.put(0x100, &[0xaa; 200]);
        assert_eq!(ver(&mut f, 1, 0x100), 0);
        assert_eq!(f.get(0x100, 4), b"-hv\0");
        assert_eq!(f.get(0x100 + 15, 2), &[0, 0xaa]);
        assert_eq!(ver(&mut f, 2, 0x100), 0);
        assert_eq!(f.get(0x100, 11), b"rustc (hv)\0");
        assert_eq!(f.get(0x100 + 64, 3), b"hv\0");
        assert_eq!(f.get(0x100 + 112, 8), b"unknown\0");
        assert_eq!(f.get(0x100 + 143, 2), &[0, 0xaa]);
        assert_eq!(ver(&mut f, 4, 0x100), 0);
        assert!(f.get(0x100, 64).starts_with(b"hv "));
        assert_eq!(f.get(0x100 + 63, 1), &[0]);
        for cmd in [1, 2, 4] {
            assert_eq!(ver(&mut f, cmd, 0xfffa), -14);
        }
        // EVTCHNOP_init_control: Xen's refusals in order; a good request is not implemented.
        let init = |f: &mut Fake, gfn: u64, offset: u32, vcpu: u32| {
            let mut raw = [0u8; 24];
            raw[..8].copy_from_slice(&gfn.to_le_bytes());
            raw[8..12].copy_from_slice(&offset.to_le_bytes());
            raw[12..16].copy_from_slice(&vcpu.to_le_bytes());
            f.put(0x300, &raw);
            call(f, x::HYPERVISOR_EVENT_CHANNEL_OP, 11, 0x300)
        };
        assert_eq!(init(&mut f, 0x10, 0, 1).ret, -2);
        assert_eq!(init(&mut f, 0x10, 4096 - 64, 0).ret, -22);
        assert_eq!(init(&mut f, 0x10, 4, 0).ret, -22);
        assert_eq!(
            init(&mut f, 0x10_0000, 0, 0).ret,
            -22,
            "a frame outside the domain"
        );
        assert_eq!(init(&mut f, u64::MAX, 0, 0).ret, -22);
        let ok = init(&mut f, 0x10, 4096 - 72, 0);
        assert_eq!((ok.ret, ok.implemented), (-38, false));
        assert_eq!(init(&mut f, 0xfeffc, 0, 0).ret, -38, "a special page");
        assert_eq!(
            call(&mut f, x::HYPERVISOR_EVENT_CHANNEL_OP, 11, 0xfff0).ret,
            -14
        );
        // EVTCHNOP_expand_array without FIFO: -EOPNOTSUPP.
        assert_eq!(
            call(&mut f, x::HYPERVISOR_EVENT_CHANNEL_OP, 12, 0x300).ret,
            -95
        );
        assert_eq!(
            call(&mut f, x::HYPERVISOR_EVENT_CHANNEL_OP, 12, 0xfffc).ret,
            -14
        );
        // sysctl and domctl: -EFAULT, -EACCES for another interface, -ESRCH, then -EPERM.
        let ctl = |f: &mut Fake, op, cmd: u32, version: u32, domain: u16| {
            let mut raw = [0u8; 144];
            raw[..4].copy_from_slice(&cmd.to_le_bytes());
            raw[4..8].copy_from_slice(&version.to_le_bytes());
            raw[8..10].copy_from_slice(&domain.to_le_bytes());
            f.put(0x400, &raw);
            let o = call(f, op, 0x400, 0);
            assert!(o.implemented);
            o.ret
        };
        let (sys, dom) = (x::HYPERVISOR_SYSCTL, x::HYPERVISOR_DOMCTL);
        assert_eq!(ctl(&mut f, sys, 1, 0x15, 0), -1);
        assert_eq!(ctl(&mut f, sys, 1, 0x14, 0), -13);
        assert_eq!(call(&mut f, sys, 0xff80, 0).ret, -14);
        assert_eq!(ctl(&mut f, dom, 2, 0x15, 1), -1, "pausedomain of itself");
        assert_eq!(ctl(&mut f, dom, 2, 0x15, 0), -1);
        assert_eq!(ctl(&mut f, dom, 2, 0x15, 7), -3);
        assert_eq!(ctl(&mut f, dom, 2, 0x14, 7), -13);
        assert_eq!(ctl(&mut f, dom, 1, 0x15, 0x7ff4), -1, "createdomain");
        assert_eq!(ctl(&mut f, dom, 5, 0x15, 0), -1, "getdomaininfo");
        assert_eq!(ctl(&mut f, dom, 5, 0x15, 9), -3);
        assert_eq!(ctl(&mut f, dom, 5, 0x15, 0x7ff0), -22);
        assert_eq!(
            ctl(&mut f, dom, 37, 0x15, 0x7ff4),
            -3,
            "assign_device to no domain"
        );
        assert_eq!(ctl(&mut f, dom, 45, 0x15, 0x7ff4), -1);
        assert_eq!(call(&mut f, dom, 0xff80, 0).ret, -14);
    }

    /// `xen_memory_map` (C padding after `nr_entries`) as the guest lays it out.
    fn memory_map(nr_entries: u32, buffer: u64) -> [u8; size_of::<m::XenMemoryMap>()] {
        let mut image = [0u8; size_of::<m::XenMemoryMap>()];
        set_field!(image, m::XenMemoryMap, nr_entries, nr_entries);
        set_field!(image, m::XenMemoryMap, buffer, buffer);
        image
    }

    fn add_to_physmap(domid: u16, space: u32, idx: u64, gpfn: u64) -> m::XenAddToPhysmap {
        m::XenAddToPhysmap {
            domid,
            size: 0,
            space,
            idx,
            gpfn,
        }
    }

    #[test]
    fn memory_map_and_shared_info() {
        let mut f = Fake::new();
        f.put(0x200, &memory_map(8, 0x300));
        assert_eq!(call(&mut f, x::HYPERVISOR_MEMORY_OP, 9, 0x200).ret, 0);
        assert_eq!(f.get_struct::<m::XenMemoryMap>(0x200).nr_entries, 2);
        let entry = |f: &Fake, i| {
            f.get_struct::<E820Entry>(args::element_va::<E820Entry>(0x300, i).unwrap())
        };
        assert_eq!({ entry(&f, 0).size }, 128 << 20);
        assert_eq!({ entry(&f, 1).type_ }, 2);
        // A buffer outside memory.
        f.put(0x200, &memory_map(8, 0xfff0));
        assert_eq!(call(&mut f, x::HYPERVISOR_MEMORY_OP, 9, 0x200).ret, -14);
        let shared_info = m::XENMAPSPACE_SHARED_INFO;
        f.put_struct(
            0x400,
            &add_to_physmap(x::DOMID_SELF, shared_info, 0, 0x1234),
        );
        assert_eq!(call(&mut f, x::HYPERVISOR_MEMORY_OP, 7, 0x400).ret, 0);
        assert_eq!(f.shared_info, Some(0x1234));
        f.put_struct(0x400, &add_to_physmap(7, shared_info, 0, 0x1234));
        assert_eq!(call(&mut f, x::HYPERVISOR_MEMORY_OP, 7, 0x400).ret, -3);
        // A space x86 Xen does not know: -EINVAL, as Xen answers (not "not implemented").
        for space in [m::XENMAPSPACE_DEV_MMIO, 6, 255, u32::MAX] {
            f.put_struct(0x400, &add_to_physmap(x::DOMID_SELF, space, 0, 0x1234));
            let o = call(&mut f, x::HYPERVISOR_MEMORY_OP, 7, 0x400);
            assert!(o.implemented && o.ret == -22, "space {space}");
        }
        // XENMEM_remove_from_physmap: nothing behind the frame is -ENOENT (Xen's answer);
        // a continuation, another domain, a bad argument as Xen; a page there is not
        // implemented yet.
        let remove = |f: &mut Fake, domid, gpfn, cmd: u64| {
            let mut image = [0u8; size_of::<m::XenRemoveFromPhysmap>()];
            set_field!(image, m::XenRemoveFromPhysmap, domid, domid);
            set_field!(image, m::XenRemoveFromPhysmap, gpfn, gpfn);
            f.put(0x400, &image);
            call5(f, u64::from(x::HYPERVISOR_MEMORY_OP), [cmd, 0x400, 0, 0, 0])
        };
        let o = remove(&mut f, x::DOMID_SELF, 1 << 40, 15);
        assert!(o.implemented && o.ret == -2, "{}", o.ret);
        assert_eq!(remove(&mut f, 9, 1 << 40, 15).ret, -3);
        assert_eq!(
            remove(&mut f, x::DOMID_SELF, 1 << 40, 15 | (1 << 6)).ret,
            -22
        );
        assert_eq!(
            call5(
                &mut f,
                u64::from(x::HYPERVISOR_MEMORY_OP),
                [15, 0xfff8, 0, 0, 0]
            )
            .ret,
            -14
        );
        let o = remove(&mut f, x::DOMID_SELF, 1, 15);
        assert!(!o.implemented && o.ret == -38);
        // XENMEM_exchange is not implemented.
        let o = call(&mut f, x::HYPERVISOR_MEMORY_OP, 11, 0x400);
        assert!(!o.implemented && o.ret == -38);
    }

    /// Another domU named where only the caller may be: `-EPERM` (Xen finds it and its
    /// XSM_TARGET check refuses it), where an id no domain has is `-ESRCH`.
    #[test]
    fn another_existing_domain_is_refused_with_eperm() {
        let mut f = Fake::new();
        f.peer = Some(2);
        for (dom, want) in [(2u16, -1), (3, -3), (x::DOMID_IO, -3)] {
            f.put_struct(0x400, &m::XenMemoryDomain { domid: dom });
            let r = call(&mut f, x::HYPERVISOR_MEMORY_OP, 3, 0x400).ret;
            assert_eq!(r, want, "current_reservation of {dom}");
            f.put_struct(
                0x400,
                &add_to_physmap(dom, m::XENMAPSPACE_SHARED_INFO, 0, 0x1234),
            );
            assert_eq!(call(&mut f, x::HYPERVISOR_MEMORY_OP, 7, 0x400).ret, want);
            f.put_struct(0x500, &hvm_param(dom, abi::hvm::HVM_PARAM_STORE_PFN, 0));
            assert_eq!(call(&mut f, x::HYPERVISOR_HVM_OP, 1, 0x500).ret, want);
            // evtchn_status: `dom` at 0, `port` at 4 (the rest is written back).
            let mut status = [0u8; 24];
            status[..2].copy_from_slice(&dom.to_le_bytes());
            status[4..8].copy_from_slice(&1u32.to_le_bytes());
            f.put(0x600, &status);
            assert_eq!(
                call(&mut f, x::HYPERVISOR_EVENT_CHANNEL_OP, 5, 0x600).ret,
                want
            );
            f.put_struct(
                0x600,
                &abi::event_channel::EvtchnAllocUnbound {
                    dom,
                    remote_dom: 0,
                    port: 0,
                },
            );
            assert_eq!(
                call(&mut f, x::HYPERVISOR_EVENT_CHANNEL_OP, 6, 0x600).ret,
                want
            );
        }
    }

    fn hvm_param(domid: u16, index: u32, value: u64) -> abi::hvm::XenHvmParam {
        abi::hvm::XenHvmParam {
            domid,
            pad: 0,
            index,
            value,
        }
    }

    #[test]
    fn params_console_sched() {
        use abi::hvm as h;
        let mut f = Fake::new();
        let param = |f: &mut Fake, domid, index| f.put_struct(0x500, &hvm_param(domid, index, 0));
        param(&mut f, x::DOMID_SELF, h::HVM_PARAM_CONSOLE_PFN);
        assert_eq!(call(&mut f, x::HYPERVISOR_HVM_OP, 1, 0x500).ret, 0);
        assert_eq!(f.get_struct::<h::XenHvmParam>(0x500).value, 0xfefff);
        param(&mut f, x::DOMID_SELF, 1000);
        assert_eq!(call(&mut f, x::HYPERVISOR_HVM_OP, 1, 0x500).ret, -22);
        param(&mut f, x::DOMID_SELF, h::HVM_PARAM_IDENT_PT);
        assert_eq!(call(&mut f, x::HYPERVISOR_HVM_OP, 1, 0x500).ret, -1);
        param(&mut f, x::DOMID_SELF, h::HVM_PARAM_STORE_EVTCHN);
        assert_eq!(call(&mut f, x::HYPERVISOR_HVM_OP, 1, 0x500).ret, 0);
        assert_eq!(f.get_struct::<h::XenHvmParam>(0x500).value, 1);
        param(&mut f, 0, h::HVM_PARAM_STORE_EVTCHN);
        assert_eq!(call(&mut f, x::HYPERVISOR_HVM_OP, 1, 0x500).ret, -1);
        param(&mut f, 5, h::HVM_PARAM_STORE_EVTCHN);
        assert_eq!(call(&mut f, x::HYPERVISOR_HVM_OP, 1, 0x500).ret, -3);
        assert_eq!(call(&mut f, x::HYPERVISOR_CONSOLE_IO, 0, 0).ret, -1);
        f.put_struct(0x600, &e::EvtchnSend { port: 2 });
        assert_eq!(
            call(&mut f, x::HYPERVISOR_EVENT_CHANNEL_OP, 4, 0x600).ret,
            0
        );
        assert_eq!(f.notified, 1);
        f.put_struct(0x600, &abi::sched::SchedShutdown { reason: 0 });
        let o = call(&mut f, x::HYPERVISOR_SCHED_OP, 2, 0x600);
        assert_eq!(o.action, Action::Shutdown(0));
        // SCHEDOP_yield answers 0 and gives the CPU away.
        let o = call(&mut f, x::HYPERVISOR_SCHED_OP, 0, 0x600);
        assert_eq!((o.ret, o.action), (0, Action::Yield));
        assert_eq!(call5(&mut f, 63, [0; 5]).ret, -38);
        assert_eq!(call5(&mut f, u64::MAX, [0; 5]).ret, -38);
    }

    /// `evtchn_status`'s IN fields (C padding after `dom`) as the guest lays them out.
    fn evtchn_status(dom: u16, port: u32) -> [u8; size_of::<e::EvtchnStatus>()] {
        let mut image = [0u8; size_of::<e::EvtchnStatus>()];
        set_field!(image, e::EvtchnStatus, dom, dom);
        set_field!(image, e::EvtchnStatus, port, port);
        image
    }

    /// The guest's `evtchn_status` at `va`, and its whole image (for the union's members).
    fn status_at(f: &Fake, va: u64) -> (e::EvtchnStatus, [u8; size_of::<e::EvtchnStatus>()]) {
        let image = f.get(va, size_of::<e::EvtchnStatus>()).try_into().unwrap();
        (f.get_struct(va), image)
    }

    #[test]
    fn event_channel_ops_through_guest_memory() {
        let mut f = Fake::new();
        // alloc_unbound(DOMID_SELF, DOMID_SELF) -> port 3 (1 and 2 are store and console).
        let alloc = e::EvtchnAllocUnbound {
            dom: x::DOMID_SELF,
            remote_dom: x::DOMID_SELF,
            port: 0xeeee_eeee,
        };
        f.put_struct(0x700, &alloc);
        assert_eq!(
            call(&mut f, x::HYPERVISOR_EVENT_CHANNEL_OP, 6, 0x700).ret,
            0
        );
        assert_eq!(
            f.get_struct::<e::EvtchnAllocUnbound>(0x700),
            e::EvtchnAllocUnbound { port: 3, ..alloc }
        );
        // status: unbound, remote = our own id (Xen rewrote DOMID_SELF).
        f.put(0x800, &evtchn_status(x::DOMID_SELF, 3));
        assert_eq!(
            call(&mut f, x::HYPERVISOR_EVENT_CHANNEL_OP, 5, 0x800).ret,
            0
        );
        let (status, image) = status_at(&f, 0x800);
        assert_eq!(status.status, e::EVTCHNSTAT_UNBOUND);
        assert_eq!(args::get_field!(image, e::EvtchnStatus, u.unbound.dom), 1);
        // The console port is interdomain with domain 0.
        f.put(0x800, &evtchn_status(x::DOMID_SELF, 2));
        assert_eq!(
            call(&mut f, x::HYPERVISOR_EVENT_CHANNEL_OP, 5, 0x800).ret,
            0
        );
        let (status, image) = status_at(&f, 0x800);
        assert_eq!(status.status, e::EVTCHNSTAT_INTERDOMAIN);
        assert_eq!(
            args::get_field!(image, e::EvtchnStatus, u.interdomain.dom),
            0
        );
        // bind_interdomain(DOMID_SELF, 3) -> 4, set pending.
        let mut bind = [0u8; size_of::<e::EvtchnBindInterdomain>()];
        set_field!(bind, e::EvtchnBindInterdomain, remote_dom, x::DOMID_SELF);
        set_field!(bind, e::EvtchnBindInterdomain, remote_port, 3);
        f.put(0x900, &bind);
        assert_eq!(
            call(&mut f, x::HYPERVISOR_EVENT_CHANNEL_OP, 0, 0x900).ret,
            0
        );
        assert_eq!(
            f.get_struct::<e::EvtchnBindInterdomain>(0x900).local_port,
            4
        );
        assert_eq!(f.words.pending[0], 1 << 4);
        assert_eq!(f.words.upcall, 1);
        // send on 4 sets 3; a bad port is -EINVAL; a buffer out of reach -EFAULT.
        f.put_struct(0xa00, &e::EvtchnSend { port: 4 });
        assert_eq!(
            call(&mut f, x::HYPERVISOR_EVENT_CHANNEL_OP, 4, 0xa00).ret,
            0
        );
        assert_eq!(f.words.pending[0], (1 << 4) | (1 << 3));
        f.put_struct(0xa00, &e::EvtchnSend { port: 5000 });
        assert_eq!(
            call(&mut f, x::HYPERVISOR_EVENT_CHANNEL_OP, 4, 0xa00).ret,
            -22
        );
        assert_eq!(
            call(&mut f, x::HYPERVISOR_EVENT_CHANNEL_OP, 4, 0xfffe).ret,
            -14
        );
        // bind_virq(VIRQ_TIMER, vcpu 0) -> 5; again -EEXIST.
        let virq = e::EvtchnBindVirq {
            virq: e::VIRQ_TIMER,
            vcpu: 0,
            port: 0,
        };
        f.put_struct(0xb00, &virq);
        assert_eq!(
            call(&mut f, x::HYPERVISOR_EVENT_CHANNEL_OP, 1, 0xb00).ret,
            0
        );
        assert_eq!(f.get_struct::<e::EvtchnBindVirq>(0xb00).port, 5);
        assert_eq!(
            call(&mut f, x::HYPERVISOR_EVENT_CHANNEL_OP, 1, 0xb00).ret,
            -17
        );
        // close 4, unmask 4, FIFO init not implemented.
        f.put_struct(0xa00, &e::EvtchnClose { port: 4 });
        assert_eq!(
            call(&mut f, x::HYPERVISOR_EVENT_CHANNEL_OP, 3, 0xa00).ret,
            0
        );
        f.put_struct(0xa00, &e::EvtchnUnmask { port: 4 });
        assert_eq!(
            call(&mut f, x::HYPERVISOR_EVENT_CHANNEL_OP, 9, 0xa00).ret,
            0
        );
        let o = call(&mut f, x::HYPERVISOR_EVENT_CHANNEL_OP, 11, 0xa00);
        assert!(!o.implemented && o.ret == -38);
        // Sending on the console port reaches domain 0's console, which signals back.
        f.words = Default::default();
        f.put_struct(0xa00, &e::EvtchnSend { port: 2 });
        assert_eq!(
            call(&mut f, x::HYPERVISOR_EVENT_CHANNEL_OP, 4, 0xa00).ret,
            0
        );
        assert_eq!(f.notified, 1);
        assert_eq!(f.words.pending[0], 1 << 2);
        // Sending on the store port reaches domain 0's port 1, which stays silent here.
        f.words = Default::default();
        f.put_struct(0xa00, &e::EvtchnSend { port: 1 });
        assert_eq!(
            call(&mut f, x::HYPERVISOR_EVENT_CHANNEL_OP, 4, 0xa00).ret,
            0
        );
        assert_eq!((f.notified, f.words.pending[0]), (1, 0));
    }

    /// `vcpu_set_singleshot_timer` (C padding after `flags`) as the guest lays it out.
    fn singleshot(
        timeout: u64,
        flags: u32,
    ) -> [u8; size_of::<abi::vcpu::VcpuSetSingleshotTimer>()] {
        use abi::vcpu::VcpuSetSingleshotTimer as T;
        let mut image = [0u8; size_of::<T>()];
        set_field!(image, T, timeout_abs_ns, timeout);
        set_field!(image, T, flags, flags);
        image
    }

    /// `sched_poll` (C padding after `nr_ports`) as the guest lays it out.
    fn sched_poll(
        ports: u64,
        nr_ports: u32,
        timeout: u64,
    ) -> [u8; size_of::<abi::sched::SchedPoll>()] {
        use abi::sched::SchedPoll as T;
        let mut image = [0u8; size_of::<T>()];
        set_field!(image, T, ports, ports);
        set_field!(image, T, nr_ports, nr_ports);
        set_field!(image, T, timeout, timeout);
        image
    }

    #[test]
    fn callback_timers_and_blocking() {
        use abi::hvm as h;
        let mut f = Fake::new();
        let vector = h::callback_via_vector(0xf3);
        f.put_struct(
            0x500,
            &hvm_param(x::DOMID_SELF, h::HVM_PARAM_CALLBACK_IRQ, vector),
        );
        assert_eq!(call(&mut f, x::HYPERVISOR_HVM_OP, 0, 0x500).ret, 0);
        assert_eq!(f.st.as_ref().unwrap().callback_vector(), Some(0xf3));
        // get_param reads it back.
        f.put_struct(
            0x500,
            &hvm_param(x::DOMID_SELF, h::HVM_PARAM_CALLBACK_IRQ, 0),
        );
        assert_eq!(call(&mut f, x::HYPERVISOR_HVM_OP, 1, 0x500).ret, 0);
        assert_eq!(f.get_struct::<h::XenHvmParam>(0x500).value, vector);
        // Toolstack parameters are refused, deprecated ones -EINVAL, domain 0 -EINVAL.
        f.put_struct(
            0x500,
            &hvm_param(x::DOMID_SELF, h::HVM_PARAM_STORE_PFN, vector),
        );
        assert_eq!(call(&mut f, x::HYPERVISOR_HVM_OP, 0, 0x500).ret, -1);
        f.put_struct(0x500, &hvm_param(x::DOMID_SELF, 4, vector));
        assert_eq!(call(&mut f, x::HYPERVISOR_HVM_OP, 0, 0x500).ret, -22);
        f.put_struct(0x500, &hvm_param(0, 4, vector));
        assert_eq!(call(&mut f, x::HYPERVISOR_HVM_OP, 0, 0x500).ret, -22);
        // Singleshot timer: the future flag refuses a past deadline with -ETIME.
        f.put(0x600, &singleshot(500, abi::vcpu::VCPU_SSHOTTMR_FUTURE));
        assert_eq!(call5(&mut f, 24, [8, 0, 0x600, 0, 0]).ret, -62);
        f.put(0x600, &singleshot(500, 0));
        assert_eq!(call5(&mut f, 24, [8, 0, 0x600, 0, 0]).ret, 0);
        assert_eq!(f.st.as_ref().unwrap().timer.deadline(), Some(500));
        assert_eq!(call5(&mut f, 24, [8, 1, 0x600, 0, 0]).ret, -2);
        assert_eq!(call5(&mut f, 24, [9, 0, 0, 0, 0]).ret, 0);
        assert_eq!(f.st.as_ref().unwrap().timer.deadline(), None);
        assert_eq!(call5(&mut f, 24, [3, 0, 0, 0, 0]).ret, 1);
        // get_runstate_info: running, all of the 1000 ns so far running.
        assert_eq!(call5(&mut f, 24, [4, 0, 0x700, 0, 0]).ret, 0);
        let runstate = f.get_struct::<abi::vcpu::VcpuRunstateInfo>(0x700);
        assert_eq!((runstate.state, runstate.time[0]), (0, 1000));
        assert_eq!(call5(&mut f, 24, [4, 0, 0xfffe, 0, 0]).ret, -14);
        // register_runstate_memory_area: the runstate is copied there at once; an address
        // that cannot be written is taken all the same (Xen drops the copy's result).
        f.put(0x780, &0x800u64.to_le_bytes());
        assert_eq!(call5(&mut f, 24, [5, 0, 0x780, 0, 0]).ret, 0);
        let area = f.get_struct::<abi::vcpu::VcpuRunstateInfo>(0x800);
        assert_eq!((area.state, area.time[0]), (0, 1000));
        assert_eq!(f.st.as_ref().unwrap().runstate_area, 0x800);
        f.put(0x780, &0xfffeu64.to_le_bytes());
        assert_eq!(call5(&mut f, 24, [5, 0, 0x780, 0, 0]).ret, 0);
        assert_eq!(call5(&mut f, 24, [5, 0, 0xfffe, 0, 0]).ret, -14);
        // register_vcpu_info: offset checks (-ENXIO), a bad frame (-EINVAL), then once only;
        // everything marked pending afterwards.
        let reg = |f: &mut Fake, mfn: u64, offset: u32| {
            let info = abi::vcpu::VcpuRegisterVcpuInfo {
                mfn,
                offset,
                rsvd: 0,
            };
            f.put_struct(0x720, &info);
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
        f.put(0x640, &sched_poll(0x680, 1, 9000));
        f.put_struct::<e::EvtchnPort>(0x680, &2);
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
        f.put_struct::<e::EvtchnPort>(0x680, &4096);
        f.words.pending[0] = 0;
        assert_eq!(call(&mut f, x::HYPERVISOR_SCHED_OP, 3, 0x640).ret, -22);
        f.put(0x640, &sched_poll(0x680, 129, 9000));
        assert_eq!(call(&mut f, x::HYPERVISOR_SCHED_OP, 3, 0x640).ret, -22);
    }

    #[test]
    fn grant_table_ops() {
        let mut f = Fake::new();
        // query_size(DOMID_SELF): 1 of 64, status 0.
        let mut q = [0u8; size_of::<g::GnttabQuerySize>()];
        set_field!(q, g::GnttabQuerySize, dom, x::DOMID_SELF);
        f.put(0x300, &q);
        assert_eq!(call5(&mut f, 20, [6, 0x300, 1, 0, 0]).ret, 0);
        let size = f.get_struct::<g::GnttabQuerySize>(0x300);
        assert_eq!(
            (size.nr_frames, size.max_nr_frames, size.status),
            (1, 64, 0)
        );
        assert_eq!(call5(&mut f, 20, [6, 0x300, 2, 0, 0]).ret, -22);
        assert_eq!(call5(&mut f, 20, [6, 0x300, 1 << 31, 0, 0]).ret, -22);
        assert_eq!(call5(&mut f, 20, [6 | (1 << 12), 0x300, 1, 0, 0]).ret, -22);
        // set_version(2): -ENOSYS, version 1 written back; get_version 1.
        f.put_struct(0x310, &g::GnttabSetVersion { version: 2 });
        assert_eq!(call5(&mut f, 20, [8, 0x310, 1, 0, 0]).ret, -38);
        assert_eq!(f.get_struct::<g::GnttabSetVersion>(0x310).version, 1);
        let get_version = g::GnttabGetVersion {
            dom: x::DOMID_SELF,
            pad: 0,
            version: 0x0909_0909,
        };
        f.put_struct(0x320, &get_version);
        assert_eq!(call5(&mut f, 20, [10, 0x320, 1, 0, 0]).ret, 0);
        assert_eq!(f.get_struct::<g::GnttabGetVersion>(0x320).version, 1);
        // add_to_physmap(grant_table, idx 0, gfn 0x55).
        let grant_table = m::XENMAPSPACE_GRANT_TABLE;
        f.put_struct(0x400, &add_to_physmap(x::DOMID_SELF, grant_table, 0, 0x55));
        assert_eq!(call(&mut f, x::HYPERVISOR_MEMORY_OP, 7, 0x400).ret, 0);
        assert_eq!(f.grant_frames, vec![(0, 0x55)]);
        f.put_struct(0x400, &add_to_physmap(x::DOMID_SELF, grant_table, 64, 0x55));
        assert_eq!(call(&mut f, x::HYPERVISOR_MEMORY_OP, 7, 0x400).ret, -22);
        // setup_table(1 frame) writes the gfn.
        let mut t = [0u8; size_of::<g::GnttabSetupTable>()];
        set_field!(t, g::GnttabSetupTable, dom, x::DOMID_SELF);
        set_field!(t, g::GnttabSetupTable, nr_frames, 1);
        set_field!(t, g::GnttabSetupTable, frame_list, 0x340);
        f.put(0x328, &t);
        assert_eq!(call5(&mut f, 20, [2, 0x328, 1, 0, 0]).ret, 0);
        assert_eq!(f.get_struct::<x::XenPfn>(0x340), 0x55);
        // copy through grant 3 (ours, read-only, frame 2) into frame 3.
        let entry = |domid| g::GrantEntryV1 {
            flags: g::GTF_PERMIT_ACCESS | g::GTF_READONLY,
            domid,
            frame: 2,
        };
        f.put_struct(Fake::entry_va(3), &entry(1));
        f.put(0x2000, &[0xab; 4096]);
        let mut c = [0u8; size_of::<g::GnttabCopy>()];
        set_field!(c, g::GnttabCopy, source.u.ref_, 3);
        set_field!(c, g::GnttabCopy, source.domid, x::DOMID_SELF);
        set_field!(c, g::GnttabCopy, dest.u.gmfn, 3);
        set_field!(c, g::GnttabCopy, dest.domid, x::DOMID_SELF);
        set_field!(c, g::GnttabCopy, len, 4096);
        set_field!(c, g::GnttabCopy, flags, g::GNTCOPY_SOURCE_GREF);
        set_field!(c, g::GnttabCopy, status, 0x7777);
        f.put(0x380, &c);
        assert_eq!(call5(&mut f, 20, [5, 0x380, 1, 0, 0]).ret, 0);
        assert_eq!(f.get_struct::<g::GnttabCopy>(0x380).status, g::GNTST_OKAY);
        assert_eq!(f.get(0x3000, 4096), &[0xab; 4096][..]);
        // The same grant to domain 0: GNTST_general_error.
        f.put_struct(Fake::entry_va(3), &entry(0));
        assert_eq!(call5(&mut f, 20, [5, 0x380, 1, 0, 0]).ret, 0);
        assert_eq!(
            f.get_struct::<g::GnttabCopy>(0x380).status,
            g::GNTST_GENERAL_ERROR
        );
        // map_grant_ref's refusals, in Xen's order, each written back as the status with
        // handle 0; the call itself answers 0.
        let map = |f: &mut Fake, flags: u32, dom: u16| {
            f.put_struct(
                0x500,
                &g::GnttabMapGrantRef {
                    host_addr: 0xf000_0000,
                    flags,
                    ref_: 3,
                    dom,
                    status: 99,
                    handle: 77,
                    dev_bus_addr: 5,
                },
            );
            let o = call5(f, 20, [0, 0x500, 1, 0, 0]);
            assert!(o.implemented && o.ret == 0);
            let back = f.get_struct::<g::GnttabMapGrantRef>(0x500);
            assert_eq!((back.handle, back.dev_bus_addr), (0, 0));
            back.status
        };
        assert_eq!(
            map(&mut f, 0, 5),
            g::GNTST_BAD_GNTREF,
            "neither host nor device map"
        );
        assert_eq!(
            map(&mut f, g::GNTMAP_HOST_MAP | g::GNTMAP_DEVICE_MAP, 5),
            g::GNTST_GENERAL_ERROR,
            "no device mapping in an HVM domain"
        );
        assert_eq!(map(&mut f, g::GNTMAP_HOST_MAP, 5), g::GNTST_BAD_DOMAIN);
        assert_eq!(map(&mut f, g::GNTMAP_HOST_MAP, 1), g::GNTST_GENERAL_ERROR);
        // unmap_grant_ref of a handle never handed out.
        // host_addr, dev_bus_addr, handle 3, status, padding.
        let mut unmap = [0u8; 24];
        unmap[..8].copy_from_slice(&0xf000_0000u64.to_le_bytes());
        unmap[16..20].copy_from_slice(&3u32.to_le_bytes());
        f.put(0x500, &unmap);
        assert_eq!(call5(&mut f, 20, [1, 0x500, 1, 0, 0]).ret, 0);
        assert_eq!(
            f.get_struct::<g::GnttabUnmapGrantRef>(0x500).status,
            g::GNTST_BAD_HANDLE
        );
    }

    #[test]
    fn an_argument_that_would_cross_2_64_is_efault_and_nothing_is_written() {
        let mut f = Fake::new();
        f.wraps = true;
        // xen_memory_map at 2^64 - 8: nr_entries in the top page, the buffer pointer
        // wrapped to address 0 (pointing at 0x300). Before: hv read the pointer there and
        // wrote the map to 0x300.
        f.put(0xeff8, &memory_map(8, 0)[..8]);
        f.put(0, &0x300u64.to_le_bytes());
        let before = f.mem.clone();
        assert_eq!(
            call(&mut f, x::HYPERVISOR_MEMORY_OP, 9, 0u64.wrapping_sub(8)).ret,
            -14
        );
        assert!(
            f.mem == before,
            "memory_map wrote through a wrapped argument"
        );
        // A buffer that would cross 2^64: -EFAULT, nothing written.
        f.put(0x200, &memory_map(8, 0u64.wrapping_sub(16)));
        let before = f.mem.clone();
        assert_eq!(call(&mut f, x::HYPERVISOR_MEMORY_OP, 9, 0x200).ret, -14);
        assert!(f.mem == before);
        // A struct wholly in the top page is an ordinary argument.
        f.put(0xef00, &memory_map(8, 0x300));
        assert_eq!(
            call(&mut f, x::HYPERVISOR_MEMORY_OP, 9, 0u64.wrapping_sub(0x100)).ret,
            0
        );
        // GNTTABOP_copy's array running past 2^64: the element that would cross faults.
        f.mem[0xe000..0xf000].fill(0);
        let uop = 0u64.wrapping_sub(size_of::<g::GnttabCopy>() as u64 + 8);
        let before = f.mem[..0x1000].to_vec();
        assert_eq!(call5(&mut f, 20, [5, uop, 2, 0, 0]).ret, -14);
        assert_eq!(f.mem[..0x1000], before[..]);
    }

    #[test]
    fn a_grant_frame_is_placed_only_once_mapped_and_its_index_truncated_as_xen_does() {
        let mut f = Fake::new();
        let grant_table = m::XENMAPSPACE_GRANT_TABLE;
        f.put_struct(0x400, &add_to_physmap(x::DOMID_SELF, grant_table, 0, 0x55));
        assert_eq!(call(&mut f, x::HYPERVISOR_MEMORY_OP, 7, 0x400).ret, 0);
        // Stock Xen 4.17 answers 0 for index 2^32 and moves frame 0.
        f.put_struct(
            0x400,
            &add_to_physmap(x::DOMID_SELF, grant_table, 1 << 32, 0x66),
        );
        assert_eq!(call(&mut f, x::HYPERVISOR_MEMORY_OP, 7, 0x400).ret, 0);
        assert_eq!(f.grant_frames, vec![(0, 0x55), (0, 0x66)]);
        assert_eq!(f.st.as_ref().unwrap().grants.frame_gfn(0), 0x66);
        // A map that fails leaves the frame recorded where it still is.
        f.fail_grant_map = true;
        f.put_struct(0x400, &add_to_physmap(x::DOMID_SELF, grant_table, 0, 0x77));
        assert_eq!(call(&mut f, x::HYPERVISOR_MEMORY_OP, 7, 0x400).ret, -12);
        assert_eq!(f.st.as_ref().unwrap().grants.frame_gfn(0), 0x66);
    }

    /// Zeroed `gnttab_copy`s (domain 0's frame by number: refused at once) at 0x1000..; the
    /// memory ends after `0xf000 / 24` of them.
    fn copy_flood(f: &mut Fake, count: u64) -> (Vec<[u64; 5]>, Outcome) {
        let mut conts = Vec::new();
        let mut a = [5, 0x1000, count, 0, 0];
        loop {
            let o = call5(f, u64::from(x::HYPERVISOR_GRANT_TABLE_OP), a);
            match o.action {
                Action::Continue { args } => {
                    conts.push(args);
                    a = args;
                }
                _ => return (conts, o),
            }
            assert!(conts.len() < 10_000, "no end");
        }
    }

    #[test]
    fn a_long_grant_copy_yields_with_xens_continuation() {
        let size = size_of::<g::GnttabCopy>() as u64;
        let fits = (0x10000 - 0x1000) / size;
        // 100 us pass per clock read: the 1 ms slice ends every ten operations or so.
        let mut f = Fake::new();
        f.step = 100_000;
        let (conts, o) = copy_flood(&mut f, (1 << 31) - 1);
        assert_eq!(o.ret, -14, "ends where the guest's memory ends");
        assert!(conts.len() > 10, "{} continuations", conts.len());
        for c in conts.windows(2) {
            let done = (c[1][1] - c[0][1]) / size;
            assert!(done >= 1, "every entry makes progress");
            assert_eq!(c[0][2] - c[1][2], done, "count and handle move together");
            assert_eq!(c[1][0], 5);
        }
        let status = |f: &Fake, i: u64| f.get_struct::<g::GnttabCopy>(0x1000 + i * size).status;
        assert_eq!(status(&f, 0), g::GNTST_PERMISSION_DENIED);
        assert_eq!(status(&f, fits - 1), g::GNTST_PERMISSION_DENIED);
        // With no time passing and nothing due, a call runs to its end in one go.
        let mut f = Fake::new();
        let (conts, o) = copy_flood(&mut f, 100);
        assert_eq!((conts.len(), o.ret), (0, 0));
        // A timer that is due makes the call yield after one operation.
        let mut f = Fake::new();
        f.st.as_mut().unwrap().timer.set_timer_op(500, 1000);
        let o = call5(&mut f, 20, [5, 0x1000, 100, 0, 0]);
        assert_eq!(
            o.action,
            Action::Continue {
                args: [5, 0x1000 + size, 99, 0, 0]
            }
        );
        // So does an upcall the guest can take.
        let mut f = Fake::new();
        f.words.upcall = 1;
        let o = call5(&mut f, 20, [5, 0x1000, 3, 0, 0]);
        assert_eq!(
            o.action,
            Action::Continue {
                args: [5, 0x1000 + size, 2, 0, 0]
            }
        );
        // A count whose signed value is negative: -EINVAL at once, nothing touched.
        let mut f = Fake::new();
        let before = f.mem.clone();
        let o = call5(&mut f, 20, [5, 0x1000, 1 << 31, 0, 0]);
        assert_eq!((o.ret, o.action), (-22, Action::Resume));
        assert!(f.mem == before);
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
            // The reservation operations return the continuation's start extent when it is
            // at or past `nr_extents` (as Xen's `do_memory_op`), which the guest chose.
            let reservation = op == 12 && matches!(args[0] & 0x3f, 0 | 1 | 6);
            if !(reservation && o.ret == (args[0] >> 6).cast_signed()) {
                proptest::prop_assert!(o.ret <= 0x4_0011);
            }
        }

        /// Any op with its argument (or its sub-op's) in the last 64 bytes below 2^64, in a
        /// guest whose accesses would wrap to page 0: page 0 stays as it was.
        #[test]
        fn nothing_is_written_through_a_wrapped_argument(
            op in 0u64..40,
            sub in 0u64..16,
            back in 1u64..=64,
            count in 0u64..4,
        ) {
            let mut f = Fake::new();
            f.wraps = true;
            // Pointers read from the top page are all ones.
            f.mem[0xe000..0xf000].fill(0xff);
            let before = f.mem[..0x1000].to_vec();
            let arg = 0u64.wrapping_sub(back);
            let _ = call5(&mut f, op, [sub, arg, count, 0, 0]);
            let _ = call5(&mut f, op, [arg, arg, count, 0, 0]);
            proptest::prop_assert!(f.mem[..0x1000] == before[..]);
        }
    }
}
