//! The shared-info page: mapped over a kernel page with `XENMEM_add_to_physmap`, read with
//! volatile and atomic accessors only (Xen writes it at any time). Provides Xen system time
//! (vCPU 0's pvclock) and the event-channel pending bits the console waits on.

use core::mem::offset_of;
use core::ptr::read_volatile;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use abi::xen::{SharedInfo, VcpuInfo, VcpuTimeInfo};

use super::hypercall::{self, HypercallError};
use crate::proto::evtchn::Port;
use crate::proto::pvclock::{self, VcpuTimeFields, VcpuTimeSource};
use crate::proto::time::Instant;

#[repr(C, align(4096))]
struct Page([u8; 4096]);

/// The frame Xen replaces with the shared-info page; never accessed as Rust data.
static mut SHARED_INFO_PAGE: Page = Page([0; 4096]);

static MAPPED: AtomicBool = AtomicBool::new(false);

const _: () = assert!(core::mem::size_of::<SharedInfo>() <= 4096);

fn base() -> *mut u8 {
    (&raw mut SHARED_INFO_PAGE).cast()
}

/// Maps the shared-info page (once, at boot).
pub fn map() -> Result<(), HypercallError> {
    let gpfn = base() as u64 >> 12;
    // SAFETY: SHARED_INFO_PAGE is a page-aligned kernel page used for nothing else; after
    // this call it is only accessed through the volatile/atomic accessors below.
    unsafe { hypercall::map_shared_info(gpfn) }?;
    MAPPED.store(true, Ordering::Release);
    Ok(())
}

/// Whether [`map`] succeeded.
pub fn mapped() -> bool {
    MAPPED.load(Ordering::Acquire)
}

/// The `evtchn_pending` word holding `port`, as an atomic.
fn pending_word(port: Port) -> &'static AtomicU64 {
    let off = offset_of!(SharedInfo, evtchn_pending) + port.word() * 8;
    // SAFETY: the offset is inside the 4 KiB page (word < 64), 8-byte aligned; the page lives
    // forever and this word is only accessed atomically (by us and by Xen's locked ops).
    unsafe { AtomicU64::from_ptr(base().add(off).cast()) }
}

/// Clears the pending bit of `port` (so a later `SCHEDOP_poll` waits for a new event).
pub fn clear_pending(port: Port) {
    if mapped() {
        pending_word(port).fetch_and(!port.bit(), Ordering::SeqCst);
    }
}

/// vCPU 0's `vcpu_time_info`, read with volatile loads.
struct Vcpu0Time;

impl Vcpu0Time {
    fn field<T: Copy>(off: usize) -> T {
        let at = offset_of!(SharedInfo, vcpu_info) + offset_of!(VcpuInfo, time) + off;
        // SAFETY: `at` is a field offset inside vcpu_info[0].time within the mapped page,
        // aligned for T (repr(C) layout asserted in abi); a volatile read of plain data.
        unsafe { read_volatile(base().add(at).cast::<T>()) }
    }
}

impl VcpuTimeSource for Vcpu0Time {
    fn version(&self) -> u32 {
        Self::field(offset_of!(VcpuTimeInfo, version))
    }

    fn fields(&self) -> VcpuTimeFields {
        VcpuTimeFields {
            tsc_timestamp: Self::field(offset_of!(VcpuTimeInfo, tsc_timestamp)),
            system_time: Self::field(offset_of!(VcpuTimeInfo, system_time)),
            tsc_to_system_mul: Self::field(offset_of!(VcpuTimeInfo, tsc_to_system_mul)),
            tsc_shift: Self::field(offset_of!(VcpuTimeInfo, tsc_shift)),
            flags: Self::field(offset_of!(VcpuTimeInfo, flags)),
        }
    }
}

/// Errors reading the clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClockError {
    /// The shared-info page is not mapped.
    NotMapped,
    /// Xen kept updating the record.
    Unstable,
}

/// Current Xen system time (ns since the domain's time base), from vCPU 0's pvclock.
pub fn now() -> Result<Instant, ClockError> {
    if !mapped() {
        return Err(ClockError::NotMapped);
    }
    let snap = pvclock::read_time_info(&Vcpu0Time, pvclock::DEFAULT_READ_ATTEMPTS)
        .map_err(|_| ClockError::Unstable)?;
    // SAFETY: RDTSC has no memory effects; the domain runs with tsc_mode native or emulated
    // TSC, either way readable at CPL 0.
    let tsc = unsafe { core::arch::x86_64::_rdtsc() };
    Ok(Instant::from_nanos(snap.system_time_ns(tsc)))
}
