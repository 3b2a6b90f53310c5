//! The shared-info page: mapped over a kernel page with `XENMEM_add_to_physmap`, read with
//! volatile and atomic accessors only (Xen writes it at any time). Provides Xen system time
//! (vCPU 0's pvclock), the wall clock, and vCPU 0's 2-level event words
//! ([`Vcpu0Events`], the [`EventWords`] the upcall scans).

use core::mem::offset_of;
use core::ptr::read_volatile;
use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};

use abi::xen::{SharedInfo, VcpuInfo, VcpuTimeInfo};

use super::hypercall::{self, HypercallError};
use crate::proto::evtchn::{EventWords, Port, WORDS};
use crate::proto::pvclock::{
    self, UnixTime, VcpuTimeFields, VcpuTimeSource, WallClockFields, WallClockSource,
};
use xenbus::Instant;

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

/// An 8-byte word of the page at byte offset `off`, as an atomic.
fn atomic_word(off: usize) -> &'static AtomicU64 {
    assert!(off.is_multiple_of(8) && off + 8 <= 4096);
    // SAFETY: the offset is inside the 4 KiB page and 8-byte aligned (checked); the page
    // lives forever and the words reached through here (event words) are only accessed
    // atomically, by us and by Xen's locked operations.
    unsafe { AtomicU64::from_ptr(base().add(off).cast()) }
}

/// The `evtchn_pending` word holding `port`, as an atomic.
fn pending_word(port: Port) -> &'static AtomicU64 {
    atomic_word(offset_of!(SharedInfo, evtchn_pending) + port.word() * 8)
}

/// vCPU 0's event words: `vcpu_info[0]` and the shared pending/mask arrays, atomically.
///
/// Only meaningful once [`map`] succeeded (before, these are plain kernel memory).
#[derive(Clone, Copy, Debug, Default)]
pub struct Vcpu0Events;

fn vcpu0_offset(field: usize) -> usize {
    offset_of!(SharedInfo, vcpu_info) + field
}

fn array_word(array: usize, word: usize) -> &'static AtomicU64 {
    atomic_word(array + (word % WORDS) * 8)
}

impl EventWords for Vcpu0Events {
    fn clear_upcall_pending(&self) {
        let at = vcpu0_offset(offset_of!(VcpuInfo, evtchn_upcall_pending));
        // SAFETY: a byte of vcpu_info[0] inside the mapped page; Xen sets it with a locked
        // bit operation, we clear it with an atomic byte store.
        unsafe { AtomicU8::from_ptr(base().add(at)) }.store(0, Ordering::SeqCst);
    }

    fn upcall_pending(&self) -> bool {
        let at = vcpu0_offset(offset_of!(VcpuInfo, evtchn_upcall_pending));
        // SAFETY: as in clear_upcall_pending.
        unsafe { AtomicU8::from_ptr(base().add(at)) }.load(Ordering::SeqCst) != 0
    }

    fn take_pending_sel(&self) -> u64 {
        atomic_word(vcpu0_offset(offset_of!(VcpuInfo, evtchn_pending_sel)))
            .swap(0, Ordering::SeqCst)
    }

    fn pending(&self, word: usize) -> u64 {
        array_word(offset_of!(SharedInfo, evtchn_pending), word).load(Ordering::SeqCst)
    }

    fn mask(&self, word: usize) -> u64 {
        array_word(offset_of!(SharedInfo, evtchn_mask), word).load(Ordering::SeqCst)
    }

    fn clear_pending(&self, word: usize, bits: u64) {
        array_word(offset_of!(SharedInfo, evtchn_pending), word).fetch_and(!bits, Ordering::SeqCst);
    }

    fn set_mask(&self, word: usize, bits: u64) {
        array_word(offset_of!(SharedInfo, evtchn_mask), word).fetch_or(bits, Ordering::SeqCst);
    }

    fn clear_mask(&self, word: usize, bits: u64) {
        array_word(offset_of!(SharedInfo, evtchn_mask), word).fetch_and(!bits, Ordering::SeqCst);
    }
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

/// The wall-clock fields of the shared page, read with volatile loads.
struct SharedWallClock;

impl SharedWallClock {
    fn field(off: usize) -> u32 {
        // SAFETY: `off` is the offset of a u32 wall-clock field inside the mapped page
        // (aligned, repr(C) layout asserted in abi); a volatile read of plain data.
        unsafe { read_volatile(base().add(off).cast::<u32>()) }
    }
}

impl WallClockSource for SharedWallClock {
    fn wc_version(&self) -> u32 {
        Self::field(offset_of!(SharedInfo, wc_version))
    }

    fn wc_fields(&self) -> WallClockFields {
        WallClockFields {
            wc_sec: Self::field(offset_of!(SharedInfo, wc_sec)),
            wc_nsec: Self::field(offset_of!(SharedInfo, wc_nsec)),
            wc_sec_hi: Self::field(offset_of!(SharedInfo, wc_sec_hi)),
        }
    }
}

/// The current wall-clock time: Xen's wall clock at system time 0 plus [`now`].
pub fn wall_clock() -> Result<UnixTime, ClockError> {
    if !mapped() {
        return Err(ClockError::NotMapped);
    }
    let base = pvclock::read_wall_clock(&SharedWallClock, pvclock::DEFAULT_READ_ATTEMPTS)
        .map_err(|_| ClockError::Unstable)?;
    Ok(base.at(now()?.as_nanos()))
}

/// Whether `port` is pending in `evtchn_pending` (for tests and diagnostics).
pub fn is_pending(port: Port) -> bool {
    mapped() && pending_word(port).load(Ordering::SeqCst) & port.bit() != 0
}
