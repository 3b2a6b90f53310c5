//! The shared-info page: mapped over a kernel page with `XENMEM_add_to_physmap`, read with
//! volatile and atomic accessors only (Xen writes it at any time). Provides Xen system time
//! (vCPU 0's pvclock), the wall clock, and vCPU 0's 2-level event words
//! ([`Vcpu0Events`], the [`EventWords`] the upcall scans).

use core::mem::offset_of;
use core::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

use abi::xen::{SharedInfo, VcpuInfo, VcpuTimeInfo};

use super::hypercall::HypercallError;
use super::shared_page::{self, Plain};
use crate::proto::evtchn::{EventWords, Port, WORDS};
use crate::proto::pvclock::{
    self, UnixTime, VcpuTimeFields, VcpuTimeSource, WallClockFields, WallClockSource,
};
use xenbus::Instant;

static MAPPED: AtomicBool = AtomicBool::new(false);

const _: () = assert!(core::mem::size_of::<SharedInfo>() <= 4096);

/// A plain field of the page at `off` (a field offset of `SharedInfo`, inside the page and
/// aligned, so the read cannot fail; 0 if it did).
fn field<T: Plain + Default>(off: usize) -> T {
    shared_page::shared_info().read(off).unwrap_or_default()
}

/// Maps the shared-info page (at boot, and again after a resume in a new domain: the frame
/// came back as plain memory holding a copy of the old page).
pub fn map() -> Result<(), HypercallError> {
    shared_page::map_shared_info()?;
    MAPPED.store(true, Ordering::Release);
    Ok(())
}

/// Whether [`map`] succeeded.
pub fn mapped() -> bool {
    MAPPED.load(Ordering::Acquire)
}

/// An 8-byte word of the page at byte offset `off`, as an atomic.
fn atomic_word(off: usize) -> &'static AtomicU64 {
    // Event words are only accessed atomically, by us and by Xen's locked operations.
    shared_page::shared_info()
        .atomic_u64(off)
        .expect("event words are aligned and inside the shared-info page")
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
        // Xen sets it with a locked bit operation, we clear it with an atomic byte store.
        if let Some(b) = shared_page::shared_info()
            .atomic_u8(vcpu0_offset(offset_of!(VcpuInfo, evtchn_upcall_pending)))
        {
            b.store(0, Ordering::SeqCst);
        }
    }

    fn upcall_pending(&self) -> bool {
        shared_page::shared_info()
            .atomic_u8(vcpu0_offset(offset_of!(VcpuInfo, evtchn_upcall_pending)))
            .is_some_and(|b| b.load(Ordering::SeqCst) != 0)
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
    fn field<T: Plain + Default>(off: usize) -> T {
        field(offset_of!(SharedInfo, vcpu_info) + offset_of!(VcpuInfo, time) + off)
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

/// Nanoseconds the kernel's clock lags Xen's system time: the time the domain spent saved or
/// suspended (Xen's clock runs on, or on a new host starts elsewhere), so that the kernel's
/// clock neither jumps nor goes back across a suspend ([`note_suspended`]).
static SUSPENDED_NS: AtomicI64 = AtomicI64::new(0);

/// Xen's system time as vCPU 0's pvclock gives it now (ns).
fn xen_now() -> Result<u64, ClockError> {
    if !mapped() {
        return Err(ClockError::NotMapped);
    }
    let snap = pvclock::read_time_info(&Vcpu0Time, pvclock::DEFAULT_READ_ATTEMPTS)
        .map_err(|_| ClockError::Unstable)?;
    let tsc = crate::arch::read_tsc();
    Ok(snap.system_time_ns(tsc))
}

/// The kernel's clock (ns since boot, the suspended spans left out), from vCPU 0's pvclock.
pub fn now() -> Result<Instant, ClockError> {
    let lag = SUSPENDED_NS.load(Ordering::Relaxed);
    Ok(Instant::from_nanos(
        xen_now()?.saturating_add_signed(lag.saturating_neg()),
    ))
}

/// The kernel's time `at` in Xen's system time (what the singleshot timer and `SCHEDOP_poll`
/// take).
pub fn to_xen(at: Instant) -> Instant {
    let lag = SUSPENDED_NS.load(Ordering::Relaxed);
    Instant::from_nanos(at.as_nanos().saturating_add_signed(lag))
}

/// After a suspend: the kernel's clock stood at `before` when the domain suspended; from now
/// on it continues from there, whatever Xen's clock says on this host.
pub fn note_suspended(before: Instant) -> Result<(), ClockError> {
    let xen = xen_now()?;
    let lag = i64::try_from(xen)
        .unwrap_or(i64::MAX)
        .saturating_sub(i64::try_from(before.as_nanos()).unwrap_or(i64::MAX));
    SUSPENDED_NS.store(lag, Ordering::Relaxed);
    Ok(())
}

/// The wall-clock fields of the shared page, read with volatile loads.
struct SharedWallClock;

impl SharedWallClock {
    fn field(off: usize) -> u32 {
        field(off)
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
    // Xen's wall clock is at Xen's system time 0: the wall clock jumps across a suspend.
    Ok(base.at(xen_now()?))
}

/// Whether `port` is pending in `evtchn_pending` (for tests and diagnostics).
pub fn is_pending(port: Port) -> bool {
    mapped() && pending_word(port).load(Ordering::SeqCst) & port.bit() != 0
}
