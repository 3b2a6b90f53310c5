//! Hypercalls: the hypercall page, the raw `hypercall0..5` calls (the only unsafe code for
//! hypercalls), and typed wrappers over them, one module per family (`version`, `hvm`,
//! `event_channel`, `sched`, `memory`, `vcpu`, `grant_table`), re-exported here.
//!
//! The page is filled by Xen when its guest-physical address is written to the MSR that CPUID
//! leaf base+2 names; stub `nr` sits at offset `nr * 32`. Arguments travel in rdi, rsi, rdx,
//! r10, r8; the result comes back in rax; Xen may clobber the argument registers.

use core::arch::asm;
use core::sync::atomic::{AtomicBool, Ordering};

use abi::op::{EvtchnArgumentOnly, GnttabSubop};
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

mod event_channel;
mod grant_table;
mod hostile;
mod hvm;
mod memory;
mod sched;
mod vcpu;
mod version;

pub use event_channel::*;
pub use grant_table::*;
pub use hostile::*;
pub use hvm::*;
pub use memory::*;
pub use sched::*;
pub use vcpu::*;
pub use version::*;

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
