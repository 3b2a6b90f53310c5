//! Hypercalls: the hypercall page, the raw `hypercall0..5` calls (the only unsafe code for
//! hypercalls), and safe typed wrappers over them.
//!
//! The page is filled by Xen when its guest-physical address is written to the MSR that CPUID
//! leaf base+2 names; stub `nr` sits at offset `nr * 32`. Arguments travel in rdi, rsi, rdx,
//! r10, r8; the result comes back in rax; Xen may clobber the argument registers.

use core::arch::asm;
use core::sync::atomic::{AtomicBool, Ordering};

use abi::xen::{self as x, DOMID_SELF};
use x86_64::registers::model_specific::Msr;

use crate::proto::evtchn::Port;
use xenbus::Instant;

core::arch::global_asm!(
    r#"
    .pushsection .text.hypercall_page, "ax"
    .p2align 12
    .global hypercall_page
hypercall_page:
    .fill 4096, 1, 0xcc         /* int3 until Xen writes the stubs */
    .popsection
"#
);

unsafe extern "C" {
    static hypercall_page: [u8; 4096];
}

/// Number of 32-byte stubs in the hypercall page.
pub const HYPERCALL_SLOTS: u32 = 4096 / 32;

/// A hypercall number that Xen 4.17 does not assign (between `__HYPERVISOR_arch_7` = 55
/// and the end of the page): Xen answers it with `-ENOSYS`.
pub const UNASSIGNED_HYPERCALL: u32 = 63;

static READY: AtomicBool = AtomicBool::new(false);

/// Errors of the typed wrappers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HypercallError {
    /// The hypercall page is not installed yet.
    NoHypercallPage,
    /// Xen returned this negative errno value (e.g. -38 for `ENOSYS`).
    Xen(i64),
    /// A buffer is too large to describe to Xen.
    BufferTooLarge,
}

impl core::fmt::Display for HypercallError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NoHypercallPage => f.write_str("hypercall page not installed"),
            Self::Xen(e) => write!(f, "Xen error {e}"),
            Self::BufferTooLarge => f.write_str("buffer too large"),
        }
    }
}

/// Physical (= virtual) address of the hypercall page.
pub fn page_address() -> u64 {
    (&raw const hypercall_page) as u64
}

/// Asks Xen to fill the hypercall page by writing its address to `msr` (CPUID base+2 EBX).
pub fn install_page(msr: u32) {
    // SAFETY: `msr` is the hypercall-page MSR Xen advertised in CPUID; writing a page-aligned
    // guest-physical address of a page we own (in .text, so executable) makes Xen overwrite
    // exactly that page with hypercall stubs, and has no other effect.
    unsafe { Msr::new(msr).write(page_address()) };
    READY.store(true, Ordering::Release);
}

/// Whether [`install_page`] ran.
pub fn ready() -> bool {
    READY.load(Ordering::Acquire)
}

fn entry(nr: u32) -> Result<u64, HypercallError> {
    if !ready() {
        return Err(HypercallError::NoHypercallPage);
    }
    debug_assert!(nr < HYPERCALL_SLOTS);
    Ok(page_address() + u64::from(nr % HYPERCALL_SLOTS) * 32)
}

/// Calls hypercall `nr` with up to five arguments; returns rax.
///
/// # Safety
/// The hypercall page must be installed, and the arguments must be valid for hypercall `nr`:
/// every pointer argument must point to memory of the layout Xen expects for it, live and
/// writable where Xen writes, for the duration of the call, and the operation must not
/// change memory the kernel relies on (e.g. unmapping pages in use).
unsafe fn hypercall5(
    nr: u32,
    a1: u64,
    a2: u64,
    a3: u64,
    a4: u64,
    a5: u64,
) -> Result<i64, HypercallError> {
    let target = entry(nr)?;
    let ret: i64;
    // SAFETY: `target` is stub `nr` in the installed hypercall page (mov $nr,%eax; vmmcall;
    // ret). The stub uses the stack only for `call`/`ret` (the kernel target has no red zone);
    // the caller guarantees the arguments; all registers Xen may change are declared.
    unsafe {
        asm!(
            "call rax",
            inlateout("rax") target => ret,
            inlateout("rdi") a1 => _,
            inlateout("rsi") a2 => _,
            inlateout("rdx") a3 => _,
            inlateout("r10") a4 => _,
            inlateout("r8") a5 => _,
            lateout("rcx") _,
            lateout("r11") _,
        );
    }
    Ok(ret)
}

/// Hypercall with no arguments.
///
/// # Safety
/// As for `hypercall5`.
unsafe fn hypercall0(nr: u32) -> Result<i64, HypercallError> {
    // SAFETY: forwarded contract; unused argument registers are zero.
    unsafe { hypercall5(nr, 0, 0, 0, 0, 0) }
}

/// Hypercall with two arguments.
///
/// # Safety
/// As for `hypercall5`.
unsafe fn hypercall2(nr: u32, a1: u64, a2: u64) -> Result<i64, HypercallError> {
    // SAFETY: forwarded contract.
    unsafe { hypercall5(nr, a1, a2, 0, 0, 0) }
}

fn check(ret: i64) -> Result<i64, HypercallError> {
    if ret < 0 {
        Err(HypercallError::Xen(ret))
    } else {
        Ok(ret)
    }
}

fn ptr<T>(p: &T) -> u64 {
    p as *const T as u64
}

fn ptr_mut<T>(p: &mut T) -> u64 {
    p as *mut T as u64
}

// ---- xen_version ----------------------------------------------------------------------------

/// `XENVER_version`: `(major, minor)`.
pub fn xen_version() -> Result<(u16, u16), HypercallError> {
    // SAFETY: XENVER_version takes a NULL argument and writes nothing.
    let v = check(unsafe {
        hypercall2(
            x::HYPERVISOR_XEN_VERSION,
            abi::version::XENVER_VERSION.into(),
            0,
        )
    }?)?;
    Ok(((v >> 16) as u16, v as u16))
}

/// `XENVER_get_features`: feature submap `index` (features `32*index .. 32*index+31`).
pub fn get_features(index: u32) -> Result<u32, HypercallError> {
    let mut fi = abi::version::XenFeatureInfo {
        submap_idx: index,
        submap: 0,
    };
    // SAFETY: `fi` is a live xen_feature_info that Xen reads and writes during the call.
    check(unsafe {
        hypercall2(
            x::HYPERVISOR_XEN_VERSION,
            abi::version::XENVER_GET_FEATURES.into(),
            ptr_mut(&mut fi),
        )
    }?)?;
    Ok(fi.submap)
}

// ---- hvm_op ---------------------------------------------------------------------------------

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

// ---- event_channel_op -----------------------------------------------------------------------

/// `EVTCHNOP_send`: notifies the other end of `port`.
pub fn evtchn_send(port: Port) -> Result<(), HypercallError> {
    let send = abi::event_channel::EvtchnSend { port: port.get() };
    // SAFETY: `send` is a live evtchn_send that Xen only reads.
    check(unsafe {
        hypercall2(
            x::HYPERVISOR_EVENT_CHANNEL_OP,
            abi::event_channel::EVTCHNOP_SEND.into(),
            ptr(&send),
        )
    }?)?;
    Ok(())
}

// ---- sched_op -------------------------------------------------------------------------------

/// `SCHEDOP_yield`.
pub fn sched_yield() -> Result<(), HypercallError> {
    // SAFETY: SCHEDOP_yield takes a NULL argument.
    check(unsafe { hypercall2(x::HYPERVISOR_SCHED_OP, abi::sched::SCHEDOP_YIELD.into(), 0) }?)?;
    Ok(())
}

/// `SCHEDOP_poll` on one port: blocks until `port` is pending or system time reaches
/// `deadline`. Returns at once if the port is already pending.
pub fn sched_poll(port: Port, deadline: Instant) -> Result<(), HypercallError> {
    let ports = [port.get()];
    // A deadline of 0 means "no timeout" to Xen: use 1 ns instead (already expired).
    let timeout = deadline.as_nanos().max(1);
    let poll = abi::sched::SchedPoll {
        ports: ports.as_ptr() as u64,
        nr_ports: 1,
        timeout,
    };
    // SAFETY: `poll` and the one-element `ports` array it points to are live for the call;
    // Xen only reads them.
    check(unsafe {
        hypercall2(
            x::HYPERVISOR_SCHED_OP,
            abi::sched::SCHEDOP_POLL.into(),
            ptr(&poll),
        )
    }?)?;
    Ok(())
}

/// Why the domain shuts down (`SHUTDOWN_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShutdownReason {
    /// Clean power-off.
    Poweroff,
    /// Restart.
    Reboot,
    /// The guest crashed.
    Crash,
}

/// `SCHEDOP_shutdown`: returns only if Xen refused.
pub fn sched_shutdown(reason: ShutdownReason) -> HypercallError {
    let reason = match reason {
        ShutdownReason::Poweroff => abi::sched::SHUTDOWN_POWEROFF,
        ShutdownReason::Reboot => abi::sched::SHUTDOWN_REBOOT,
        ShutdownReason::Crash => abi::sched::SHUTDOWN_CRASH,
    };
    let arg = abi::sched::SchedShutdown { reason };
    // SAFETY: `arg` is a live sched_shutdown that Xen only reads.
    match unsafe {
        hypercall2(
            x::HYPERVISOR_SCHED_OP,
            abi::sched::SCHEDOP_SHUTDOWN.into(),
            ptr(&arg),
        )
    } {
        Ok(ret) => HypercallError::Xen(ret),
        Err(e) => e,
    }
}

// ---- memory_op ------------------------------------------------------------------------------

/// `XENMEM_memory_map`: fills `buf` with this domain's E820 map; returns the entry count.
pub fn memory_map(buf: &mut [abi::memory::E820Entry]) -> Result<usize, HypercallError> {
    let nr_entries = u32::try_from(buf.len()).map_err(|_| HypercallError::BufferTooLarge)?;
    let mut map = abi::memory::XenMemoryMap {
        nr_entries,
        buffer: buf.as_mut_ptr() as u64,
    };
    // SAFETY: `map` is live and points to `buf`, which has room for `nr_entries` entries of
    // the packed 20-byte layout Xen writes; Xen writes at most that many.
    check(unsafe {
        hypercall2(
            x::HYPERVISOR_MEMORY_OP,
            abi::memory::XENMEM_MEMORY_MAP.into(),
            ptr_mut(&mut map),
        )
    }?)?;
    Ok((map.nr_entries as usize).min(buf.len()))
}

/// `XENMEM_add_to_physmap` with `XENMAPSPACE_shared_info`: puts the shared-info page at
/// guest frame `gpfn`.
///
/// # Safety
/// The page at `gpfn` must be a page the kernel owns and uses for nothing else: Xen replaces
/// it, and its former contents are gone.
pub unsafe fn map_shared_info(gpfn: u64) -> Result<(), HypercallError> {
    // SAFETY: forwarded from this function's contract.
    unsafe { add_to_physmap(abi::memory::XENMAPSPACE_SHARED_INFO, 0, gpfn) }
}

// ---- hvm_op: set_param ----------------------------------------------------------------------

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

// ---- event_channel_op: the rest ------------------------------------------------------------

/// Issues `EVTCHNOP_<cmd>` with `arg`, which Xen reads and may write.
fn evtchn_op<T>(cmd: u32, arg: &mut T) -> Result<(), HypercallError> {
    // SAFETY: every caller passes the evtchn_* struct that `cmd` takes (repr(C), layout
    // asserted in abi); it is live and writable for the call, and none of these operations
    // touches other guest memory.
    check(unsafe { hypercall2(x::HYPERVISOR_EVENT_CHANNEL_OP, cmd.into(), ptr_mut(arg)) }?)?;
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
    evtchn_op(abi::event_channel::EVTCHNOP_ALLOC_UNBOUND, &mut a)?;
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
    evtchn_op(abi::event_channel::EVTCHNOP_BIND_INTERDOMAIN, &mut b)?;
    port_from_xen(b.local_port)
}

/// `EVTCHNOP_bind_virq`: binds virtual IRQ `virq` on `vcpu` to a new port.
pub fn evtchn_bind_virq(virq: u32, vcpu: u32) -> Result<Port, HypercallError> {
    let mut b = abi::event_channel::EvtchnBindVirq {
        virq,
        vcpu,
        port: 0,
    };
    evtchn_op(abi::event_channel::EVTCHNOP_BIND_VIRQ, &mut b)?;
    port_from_xen(b.port)
}

/// `EVTCHNOP_close`.
pub fn evtchn_close(port: Port) -> Result<(), HypercallError> {
    let mut c = abi::event_channel::EvtchnClose { port: port.get() };
    evtchn_op(abi::event_channel::EVTCHNOP_CLOSE, &mut c)
}

/// `EVTCHNOP_unmask`: clears the mask bit and re-raises the upcall if the port is pending.
pub fn evtchn_unmask(port: Port) -> Result<(), HypercallError> {
    let mut u = abi::event_channel::EvtchnUnmask { port: port.get() };
    evtchn_op(abi::event_channel::EVTCHNOP_UNMASK, &mut u)
}

/// `EVTCHNOP_status` of one of this domain's ports (the raw answer; the caller interprets
/// `status` and the union member it selects).
pub fn evtchn_status(port: Port) -> Result<abi::event_channel::EvtchnStatus, HypercallError> {
    let mut s = abi::event_channel::EvtchnStatus {
        dom: DOMID_SELF,
        port: port.get(),
        ..Default::default()
    };
    evtchn_op(abi::event_channel::EVTCHNOP_STATUS, &mut s)?;
    Ok(s)
}

// ---- vcpu_op --------------------------------------------------------------------------------

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

// ---- grant_table_op -------------------------------------------------------------------------

/// `GNTTABOP_query_size` for this domain: `(current frames, maximum frames)`.
pub fn gnttab_query_size() -> Result<(u32, u32), HypercallError> {
    let mut q = abi::grant_table::GnttabQuerySize {
        dom: DOMID_SELF,
        ..Default::default()
    };
    // SAFETY: one live gnttab_query_size (count 1) that Xen reads and writes.
    check(unsafe {
        hypercall5(
            x::HYPERVISOR_GRANT_TABLE_OP,
            abi::grant_table::GNTTABOP_QUERY_SIZE.into(),
            ptr_mut(&mut q),
            1,
            0,
            0,
        )
    }?)?;
    if q.status != abi::grant_table::GNTST_OKAY {
        return Err(HypercallError::Xen(q.status.into()));
    }
    Ok((q.nr_frames, q.max_nr_frames))
}

/// `GNTTABOP_copy` with one request; Xen's per-request answer is left in `op.status`.
///
/// # Safety
/// Xen writes `op.len` bytes at the destination: a frame of this domain (by `gmfn` or a
/// grant of it) that the caller owns and expects to change, with no Rust reference to it.
pub unsafe fn gnttab_copy(op: &mut abi::grant_table::GnttabCopy) -> Result<(), HypercallError> {
    // SAFETY: one live gnttab_copy (count 1) that Xen reads and writes; the caller vouches
    // for the destination.
    check(unsafe {
        hypercall5(
            x::HYPERVISOR_GRANT_TABLE_OP,
            abi::grant_table::GNTTABOP_COPY.into(),
            ptr_mut(op),
            1,
            0,
            0,
        )
    }?)?;
    Ok(())
}

/// `XENMEM_add_to_physmap` with `XENMAPSPACE_grant_table`: puts grant-table frame `index`
/// at guest frame `gpfn` (Xen grows the table to `index + 1` frames if needed).
///
/// # Safety
/// The page at `gpfn` must be a page the kernel owns and uses for nothing else: Xen replaces
/// it with the grant-table frame, and its former contents are gone.
pub unsafe fn map_grant_frame(index: u32, gpfn: u64) -> Result<(), HypercallError> {
    // SAFETY: forwarded from this function's contract.
    unsafe { add_to_physmap(abi::memory::XENMAPSPACE_GRANT_TABLE, index.into(), gpfn) }
}

/// `XENMEM_add_to_physmap` for this domain: puts page `idx` of `space` at guest frame `gpfn`.
///
/// # Safety
/// The page at `gpfn` must be a page the kernel owns and uses for nothing else: Xen replaces
/// it, and its former contents are gone.
unsafe fn add_to_physmap(space: u32, idx: u64, gpfn: u64) -> Result<(), HypercallError> {
    let xatp = abi::memory::XenAddToPhysmap {
        domid: DOMID_SELF,
        size: 0,
        space,
        idx,
        gpfn,
    };
    // SAFETY: `xatp` is live and only read by Xen; the caller guarantees the target frame is
    // free for Xen to replace.
    check(unsafe {
        hypercall2(
            x::HYPERVISOR_MEMORY_OP,
            abi::memory::XENMEM_ADD_TO_PHYSMAP.into(),
            ptr(&xatp),
        )
    }?)?;
    Ok(())
}

// ---- tests ----------------------------------------------------------------------------------

/// Calls [`UNASSIGNED_HYPERCALL`] with no arguments and returns Xen's raw answer.
pub fn unassigned() -> Result<i64, HypercallError> {
    // SAFETY: hypercall 63 is unassigned in Xen 4.17: Xen does nothing and returns -ENOSYS.
    unsafe { hypercall0(UNASSIGNED_HYPERCALL) }
}

// ---- probes of the boot self-tests ------------------------------------------------------------

/// A buffer large enough for any `xen_version` sub-op's answer (`xen_capabilities_info_t`,
/// `xen_commandline_t`: 1024 bytes).
pub type XenVersionBuf = [u8; 1024];

/// `xen_version` sub-op `cmd` with `buf` as its argument; Xen's raw answer (a value, or a
/// negative errno when it refuses).
pub fn xen_version_raw(cmd: u32, buf: &mut XenVersionBuf) -> Result<i64, HypercallError> {
    // SAFETY: every xen_version sub-op writes at most 1024 bytes to its argument (the string
    // sub-ops) or reads a length first (XENVER_build_id: 0 here, so Xen answers -ENOBUFS
    // without writing); `buf` is live and writable for the call.
    unsafe { hypercall2(x::HYPERVISOR_XEN_VERSION, cmd.into(), ptr_mut(buf)) }
}

/// `xen_version` sub-op `cmd` with a NULL argument (`XENVER_pagesize` insists on one);
/// Xen's raw answer.
pub fn xen_version_null(cmd: u32) -> Result<i64, HypercallError> {
    // SAFETY: with a NULL argument Xen writes nothing: the sub-ops that would write answer
    // -EFAULT (the identity map's page 0 holds nothing the kernel uses), the others return a
    // value or refuse.
    unsafe { hypercall2(x::HYPERVISOR_XEN_VERSION, cmd.into(), 0) }
}

/// `CONSOLEIO_write` of `bytes` to the hypervisor's console; Xen's raw answer (Xen 4.17
/// refuses it to a domU with `-EPERM`).
pub fn console_io_write(bytes: &[u8]) -> Result<i64, HypercallError> {
    // SAFETY: CONSOLEIO_write only reads `count` bytes from the buffer, which is live.
    unsafe {
        hypercall5(
            x::HYPERVISOR_CONSOLE_IO,
            x::CONSOLEIO_WRITE.into(),
            bytes.len() as u64,
            bytes.as_ptr() as u64,
            0,
            0,
        )
    }
}

/// Hypercalls and sub-ops a PVH domU of Xen 4.17 is refused, with null or zero arguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// `mmu_update` (PV only) with no requests.
    MmuUpdate,
    /// `memory_op` with the unused command 63.
    MemoryOp63,
    /// `hvm_op` with the unused op 255.
    HvmOp255,
    /// `sched_op` with the unused command 255.
    SchedOp255,
    /// `event_channel_op` with the unused command 255.
    EventChannelOp255,
}

/// Calls the refused operation; Xen's raw answer.
pub fn refused(op: Refused) -> Result<i64, HypercallError> {
    let (nr, cmd) = match op {
        Refused::MmuUpdate => (x::HYPERVISOR_MMU_UPDATE, 0),
        Refused::MemoryOp63 => (x::HYPERVISOR_MEMORY_OP, 63),
        Refused::HvmOp255 => (x::HYPERVISOR_HVM_OP, 255),
        Refused::SchedOp255 => (x::HYPERVISOR_SCHED_OP, 255),
        Refused::EventChannelOp255 => (x::HYPERVISOR_EVENT_CHANNEL_OP, 255),
    };
    // SAFETY: all arguments but the command are zero: `mmu_update` with a count of 0 touches
    // no memory even where it exists (PV), and the unused commands are refused before any
    // argument is read.
    unsafe { hypercall5(nr, cmd, 0, 0, 0, 0) }
}

/// `event_channel_op(cmd)` on a raw argument block of 24 bytes (the largest `EVTCHNOP_*`
/// argument): Xen's raw answer, for self-tests that record what Xen refuses.
pub fn evtchn_op_raw(cmd: u32, arg: &mut [u32; 6]) -> Result<i64, HypercallError> {
    // SAFETY: `arg` is 24 live, writable bytes: every EVTCHNOP argument fits, and Xen reads
    // and writes only the command's struct.
    unsafe { hypercall2(x::HYPERVISOR_EVENT_CHANNEL_OP, cmd.into(), ptr_mut(arg)) }
}

/// `GNTTABOP_set_version(version)`: Xen's raw answer and the version it wrote back.
pub fn gnttab_set_version(version: u32) -> Result<(i64, u32), HypercallError> {
    let mut v = abi::grant_table::GnttabSetVersion { version };
    // SAFETY: `v` is a live gnttab_set_version that Xen reads and writes back, count 1.
    let ret = unsafe {
        hypercall5(
            x::HYPERVISOR_GRANT_TABLE_OP,
            abi::grant_table::GNTTABOP_SET_VERSION.into(),
            ptr_mut(&mut v),
            1,
            0,
            0,
        )
    }?;
    Ok((ret, v.version))
}
