//! The PV console: the `out` ring of the page named by `HVM_PARAM_CONSOLE_PFN`, notified
//! through `HVM_PARAM_CONSOLE_EVTCHN`. Every byte also goes to port 0xE9.
//!
//! Index rules (Xen's io/console.h, arithmetic in [`abi::byte_ring`]): the guest owns
//! `out_prod`, the backend `out_cons`. Write the bytes, then a write barrier, then publish
//! `out_prod`; read `out_cons` before reusing slots. When the ring is full the writer notifies the backend and waits for the console
//! event channel in 100 ms slices, [`STALL_TIMEOUT_MS`] in all, so a dead backend ends in an
//! error, not a hang. Once event channels are up ([`use_events`]) and interrupts are enabled,
//! the writer idles until the port fires ([`super::events::wait_port`]); before that, and on
//! the exception and panic paths (interrupts disabled), it waits with `SCHEDOP_poll`.

use core::fmt::{self, Write};
use core::mem::offset_of;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering, fence};

use abi::byte_ring::ByteRing;
use abi::io::console::{XENCONS_OUT_RING_SIZE, XenconsInterface};
use spin::Mutex;

use super::events;
use super::hypercall::{self, HypercallError};
use super::shared_info;
use super::shared_page::{self, SharedPage};
use crate::arch::port::debugcon_write;
use crate::memory::frames::FRAME_SIZE;
use crate::proto::evtchn::Port;

/// The geometry of the `out` ring.
const OUT_RING: ByteRing = match ByteRing::new(XENCONS_OUT_RING_SIZE) {
    Some(ring) => ring,
    None => panic!("XENCONS_OUT_RING_SIZE is a power of two"),
};

/// How long a writer waits for a stalled backend before giving up.
pub const STALL_TIMEOUT_MS: u64 = 5000;
/// One `SCHEDOP_poll` slice.
pub const POLL_SLICE_MS: u64 = 100;

/// Console errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsoleError {
    /// No console ring (not initialised, or the toolstack gave none).
    NotPresent,
    /// The console lock is held (by the code that crashed).
    Busy,
    /// `HVM_PARAM_CONSOLE_*` could not be read.
    Param(HypercallError),
    /// The ring frame lies outside the identity map.
    RingOutsideMap(u64),
    /// The event channel number is invalid.
    BadPort(u64),
    /// The backend's index is impossible: `out_prod - out_cons` exceeds the ring.
    RingCorrupt(u32),
    /// The backend consumed nothing for [`STALL_TIMEOUT_MS`].
    BackendStalled,
    /// Xen's clock is unavailable, so waits cannot be bounded.
    NoClock,
    /// A notification or poll hypercall failed.
    Hypercall(HypercallError),
    /// Waiting on the event channel failed.
    Events(events::EventError),
}

impl fmt::Display for ConsoleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotPresent => f.write_str("no console ring"),
            Self::Busy => f.write_str("console busy"),
            Self::Param(e) => write!(f, "console parameters: {e}"),
            Self::RingOutsideMap(a) => write!(f, "console ring at {a:#x} outside the identity map"),
            Self::BadPort(p) => write!(f, "console event channel {p} invalid"),
            Self::RingCorrupt(used) => write!(f, "console ring corrupt: {used} bytes in use"),
            Self::BackendStalled => write!(f, "console backend stalled for {STALL_TIMEOUT_MS} ms"),
            Self::NoClock => f.write_str("no clock to bound a console wait"),
            Self::Hypercall(e) => write!(f, "console hypercall: {e}"),
            Self::Events(e) => write!(f, "console event wait: {e}"),
        }
    }
}

/// The guest end of the console ring.
struct Ring {
    /// The shared page (the backend writes `out_cons`).
    page: SharedPage,
    port: Port,
    /// Our producer index (the copy in the page is only ever written from this).
    prod: u32,
}

static CONSOLE: Mutex<Option<Ring>> = Mutex::new(None);

static FULL_WAITS: AtomicU64 = AtomicU64::new(0);
static POLLS: AtomicU64 = AtomicU64::new(0);
static EVENT_WAITS: AtomicU64 = AtomicU64::new(0);
static RENOTIFIES: AtomicU64 = AtomicU64::new(0);
static USE_EVENTS: AtomicBool = AtomicBool::new(false);

/// Counters of the ring's flow control.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConsoleStats {
    /// Times a writer found the ring full and waited for the backend.
    pub full_waits: u64,
    /// `SCHEDOP_poll` calls made while waiting.
    pub polls: u64,
    /// Event-driven waits (idle until the console port fires) made while waiting.
    pub event_waits: u64,
    /// Notifications repeated because a wait slice passed with nothing consumed.
    pub renotifies: u64,
}

/// The flow-control counters since boot.
pub fn stats() -> ConsoleStats {
    ConsoleStats {
        full_waits: FULL_WAITS.load(Ordering::Relaxed),
        polls: POLLS.load(Ordering::Relaxed),
        event_waits: EVENT_WAITS.load(Ordering::Relaxed),
        renotifies: RENOTIFIES.load(Ordering::Relaxed),
    }
}

impl Ring {
    fn out_cons(&self) -> u32 {
        // A field of the page (size asserted in abi): the read cannot fail.
        self.page
            .read(offset_of!(XenconsInterface, out_cons))
            .unwrap_or(self.prod)
    }

    fn publish_prod(&mut self) {
        // out_prod is only written by the guest.
        let _ = self
            .page
            .write(offset_of!(XenconsInterface, out_prod), self.prod);
    }

    /// Bytes in flight, checked against the ring size.
    fn used(&self) -> Result<u32, ConsoleError> {
        OUT_RING
            .used(self.consumer(), self.prod)
            .map_err(|e| ConsoleError::RingCorrupt(e.used))
    }

    /// The backend's `out_cons`, read before any slot it frees is reused.
    fn consumer(&self) -> u32 {
        let cons = self.out_cons();
        fence(Ordering::Acquire); // read out_cons before reusing the slots it frees
        cons
    }

    fn notify(&self) -> Result<(), ConsoleError> {
        hypercall::evtchn_send(self.port).map_err(ConsoleError::Hypercall)
    }

    /// Waits until `done(used)` holds, on the event channel (events or polling); bounded.
    ///
    /// A slice that passes with nothing consumed repeats the notification: under QEMU's
    /// software emulation xenconsoled was seen (as xenstored was, see `xen::xenstore`) leaving
    /// a notified ring unread until the guest was destroyed. A notification only makes the
    /// backend look at the indexes again, so repeating it is harmless.
    fn wait(&self, done: impl Fn(u32) -> bool) -> Result<(), ConsoleError> {
        let now = || shared_info::now().map_err(|_| ConsoleError::NoClock);
        let deadline = now()?.add_millis(STALL_TIMEOUT_MS);
        let by_events =
            USE_EVENTS.load(Ordering::Acquire) && x86_64::instructions::interrupts::are_enabled();
        let mut last_used = None;
        loop {
            // Forget earlier notifications first: one arriving after the check below is kept.
            if by_events {
                events::take_latched(self.port);
            } else {
                shared_info::clear_pending(self.port);
            }
            let used = self.used()?;
            if done(used) {
                return Ok(());
            }
            if last_used == Some(used) {
                RENOTIFIES.fetch_add(1, Ordering::Relaxed);
                self.notify()?;
            }
            last_used = Some(used);
            let t = now()?;
            if t >= deadline {
                return Err(ConsoleError::BackendStalled);
            }
            let slice = t.add_millis(POLL_SLICE_MS).min(deadline);
            if by_events {
                EVENT_WAITS.fetch_add(1, Ordering::Relaxed);
                events::wait_port(self.port, slice).map_err(ConsoleError::Events)?;
            } else {
                POLLS.fetch_add(1, Ordering::Relaxed);
                hypercall::sched_poll(self.port, shared_info::to_xen(slice))
                    .map_err(ConsoleError::Hypercall)?;
            }
        }
    }

    /// Copies `bytes` into the ring, waiting for the backend whenever the ring is full; does
    /// not notify after the last byte.
    fn push(&mut self, mut bytes: &[u8]) -> Result<(), ConsoleError> {
        while !bytes.is_empty() {
            let t = OUT_RING
                .produce(self.consumer(), self.prod, bytes.len())
                .map_err(|e| ConsoleError::RingCorrupt(e.used))?;
            if t.len == 0 {
                FULL_WAITS.fetch_add(1, Ordering::Relaxed);
                self.notify()?;
                self.wait(|used| used < XENCONS_OUT_RING_SIZE)?;
                continue;
            }
            let out = offset_of!(XenconsInterface, out);
            // The slots are below XENCONS_OUT_RING_SIZE, so inside `out`; the backend does
            // not read slots beyond out_prod.
            let (head, tail) = bytes[..t.len].split_at(t.first.len());
            let _ = self.page.write_bytes(out + t.first.start, head);
            let _ = self.page.write_bytes(out + t.second.start, tail);
            self.prod = t.new_index;
            fence(Ordering::Release); // data before the index
            self.publish_prod();
            bytes = &bytes[t.len..];
        }
        Ok(())
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), ConsoleError> {
        self.push(bytes)?;
        self.notify()
    }

    fn flush(&mut self) -> Result<(), ConsoleError> {
        self.notify()?;
        self.wait(|used| used == 0)
    }
}

/// Finds the console ring through the HVM parameters. Until this succeeds, output goes to
/// port 0xE9 only.
pub fn init() -> Result<(), ConsoleError> {
    let pfn =
        hypercall::hvm_get_param(abi::hvm::HVM_PARAM_CONSOLE_PFN).map_err(ConsoleError::Param)?;
    let evtchn = hypercall::hvm_get_param(abi::hvm::HVM_PARAM_CONSOLE_EVTCHN)
        .map_err(ConsoleError::Param)?;
    if pfn == 0 {
        return Err(ConsoleError::NotPresent);
    }
    let page = shared_page::hvm_param_page(pfn)
        .ok_or(ConsoleError::RingOutsideMap(pfn.saturating_mul(FRAME_SIZE)))?;
    let port = u32::try_from(evtchn)
        .ok()
        .and_then(|p| Port::try_new(p).ok())
        .ok_or(ConsoleError::BadPort(evtchn))?;
    // Resume where an earlier writer (e.g. a boot loader) stopped.
    let prod = page
        .read(offset_of!(XenconsInterface, out_prod))
        .unwrap_or(0);
    *CONSOLE.lock() = Some(Ring { page, port, prod });
    Ok(())
}

/// Switches ring-full waits from `SCHEDOP_poll` to event delivery: binds the console port
/// (latch only). Call once [`events::init`] succeeded.
pub fn use_events() -> Result<(), ConsoleError> {
    let port = port().ok_or(ConsoleError::NotPresent)?;
    events::bind_latch(port).map_err(ConsoleError::Events)?;
    USE_EVENTS.store(true, Ordering::Release);
    Ok(())
}

/// The console ring's event channel, if the console is up.
pub fn port() -> Option<Port> {
    CONSOLE.lock().as_ref().map(|r| r.port)
}

/// Writes `bytes` to port 0xE9 and the ring.
pub fn write(bytes: &[u8]) -> Result<(), ConsoleError> {
    debugcon_write(bytes);
    CONSOLE
        .lock()
        .as_mut()
        .ok_or(ConsoleError::NotPresent)?
        .write(bytes)
}

/// Formats `args` as one unit (the lock is held for the whole text) and notifies the
/// backend once at the end.
pub fn print(args: fmt::Arguments<'_>) -> Result<(), ConsoleError> {
    print_with(args, true)
}

/// Like [`print`] but without the final notification: the backend hears only when the ring
/// fills (or at the next [`print`]/[`flush`]). For bulk output.
pub fn print_batched(args: fmt::Arguments<'_>) -> Result<(), ConsoleError> {
    print_with(args, false)
}

fn print_with(args: fmt::Arguments<'_>, notify: bool) -> Result<(), ConsoleError> {
    let mut guard = CONSOLE.lock();
    let mut w = Writer {
        ring: guard.as_mut(),
        error: None,
        buf: [0; WRITER_BUFFER],
        len: 0,
    };
    let _ = w.write_fmt(args);
    w.drain();
    let Writer { ring, error, .. } = w;
    match (error, ring) {
        (Some(e), _) => Err(e),
        (None, Some(ring)) if notify => ring.notify(),
        (None, Some(_)) => Ok(()),
        (None, None) => Err(ConsoleError::NotPresent),
    }
}

/// Bytes written to the ring that the backend (xenconsoled in dom0) has not consumed yet;
/// `None` without a ring, while another user holds it, or if the backend's index is impossible. For diagnostics: output that stays
/// unconsumed long after a notification means the backend's domain is not running.
pub fn backlog() -> Option<u32> {
    let guard = CONSOLE.try_lock()?;
    let ring = guard.as_ref()?;
    ring.used().ok()
}

/// Waits (bounded) until the backend has consumed everything written.
pub fn flush() -> Result<(), ConsoleError> {
    CONSOLE
        .lock()
        .as_mut()
        .ok_or(ConsoleError::NotPresent)?
        .flush()
}

/// Notifies the backend (after [`print_batched`] output).
pub fn notify() -> Result<(), ConsoleError> {
    CONSOLE
        .lock()
        .as_ref()
        .ok_or(ConsoleError::NotPresent)?
        .notify()
}

/// Flushes if the console lock is free (for the crash path, which may interrupt a writer).
pub fn try_flush() -> Result<(), ConsoleError> {
    CONSOLE
        .try_lock()
        .ok_or(ConsoleError::NotPresent)?
        .as_mut()
        .ok_or(ConsoleError::NotPresent)?
        .flush()
}

/// Bytes a [`print`] collects before passing them on (one port write and one ring copy per
/// chunk instead of one per formatting piece).
const WRITER_BUFFER: usize = 256;

struct Writer<'a> {
    ring: Option<&'a mut Ring>,
    error: Option<ConsoleError>,
    buf: [u8; WRITER_BUFFER],
    len: usize,
}

impl Writer<'_> {
    /// Sends the collected bytes to port 0xE9 and the ring (unless a write already failed).
    fn drain(&mut self) {
        let bytes = &self.buf[..self.len];
        debugcon_write(bytes);
        if let (Some(ring), None) = (self.ring.as_mut(), self.error)
            && let Err(e) = ring.push(bytes)
        {
            self.error = Some(e);
        }
        self.len = 0;
    }
}

impl Write for Writer<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            if self.len == WRITER_BUFFER {
                self.drain();
            }
            self.buf[self.len] = b;
            self.len += 1;
        }
        Ok(())
    }
}

/// A writer for the exception and panic paths: port 0xE9 always, the ring only if its lock is
/// free (the failing code may hold it); errors are ignored.
pub struct EmergencyWriter;

impl Write for EmergencyWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        debugcon_write(s.as_bytes());
        if let Some(mut guard) = CONSOLE.try_lock()
            && let Some(ring) = guard.as_mut()
        {
            let _ = ring.write(s.as_bytes());
        }
        Ok(())
    }
}

/// `print!` to the console, returning `Result<(), ConsoleError>`.
#[macro_export]
macro_rules! console_print {
    ($($arg:tt)*) => { $crate::xen::console::print(format_args!($($arg)*)) };
}

/// `println!` to the console, returning `Result<(), ConsoleError>`.
#[macro_export]
macro_rules! console_println {
    ($($arg:tt)*) => { $crate::xen::console::print(format_args!("{}\n", format_args!($($arg)*))) };
}

/// The `log` backend: `[LEVEL] message` lines on the console (never starting with `TEST `,
/// `RESULT ` or `HOST `).
pub struct ConsoleLogger;

impl log::Log for ConsoleLogger {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        let _ = print(format_args!("[{:<5}] {}\n", record.level(), record.args()));
    }

    fn flush(&self) {
        let _ = flush();
    }
}

static LOGGER: ConsoleLogger = ConsoleLogger;

/// Installs [`ConsoleLogger`] as the `log` backend (Info level and up).
pub fn init_logger() {
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(log::LevelFilter::Info);
    }
}
