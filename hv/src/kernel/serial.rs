//! The COM1 serial port (0x3f8), hv's log and the guests' console output; COM2 (0x2f8), the
//! control channel's port when QEMU has one (`cargo xtask xl`: [`super::control`]); the tail
//! of hv's log kept for `xl dmesg`; and the `isa-debug-exit` device that ends the QEMU run.

use core::fmt;

use x86_64::instructions::port::Port;

const COM1: u16 = 0x3f8;
const COM2: u16 = 0x2f8;

/// Whether COM2 answered the scratch-register probe at [`init`].
static COM2_PRESENT: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// The tail of hv's log (`xl dmesg`), once the heap exists ([`keep_log`]).
static LOG: spin::Mutex<Option<crate::dom0::control::OutputRing>> = spin::Mutex::new(None);

/// Bytes of hv's log kept for `xl dmesg`.
const LOG_KEPT: usize = 32 * 1024;

/// QEMU's `isa-debug-exit` port (`-device isa-debug-exit,iobase=0xf4,iosize=0x04`).
pub const DEBUG_EXIT_PORT: u16 = 0xf4;

/// The value for the guest's poweroff: QEMU exits `(0x10 << 1) | 1` = 33.
pub const EXIT_POWEROFF: u32 = 0x10;
/// The value for the guest's crash: QEMU exits 35.
pub const EXIT_CRASH: u32 = 0x11;
/// The value for a failure of hv itself (panic, exception, no SVM): QEMU exits 37.
pub const EXIT_HV_FAILURE: u32 = 0x12;

/// Programs COM1, and COM2 if QEMU has one, for 115200 8N1, FIFOs on, no interrupts.
pub fn init() {
    init_port(COM1);
    // An absent UART reads all ones: a scratch register that keeps what is written is a UART.
    let mut scratch = Port::<u8>::new(COM2 + 7);
    // SAFETY: COM2's scratch register; a UART keeps the value, nothing else is affected.
    let present = unsafe {
        scratch.write(0x5a);
        let a = scratch.read();
        scratch.write(0xa5);
        a == 0x5a && scratch.read() == 0xa5
    };
    if present {
        init_port(COM2);
    }
    COM2_PRESENT.store(present, core::sync::atomic::Ordering::Relaxed);
}

/// Whether the control channel's port exists.
pub fn com2_present() -> bool {
    COM2_PRESENT.load(core::sync::atomic::Ordering::Relaxed)
}

/// Starts keeping hv's log for `xl dmesg` (the heap must exist).
pub fn keep_log() {
    *LOG.lock() = Some(crate::dom0::control::OutputRing::new(LOG_KEPT));
}

/// Up to `max` bytes of hv's log from offset `from`.
pub fn read_log(from: u64, max: usize) -> hvctl::Response {
    match LOG.lock().as_ref() {
        Some(ring) => ring.read(from, max),
        None => hvctl::Response::Error("hv keeps no log".into()),
    }
}

fn init_port(base: u16) {
    let regs: [(u16, u8); 7] = [
        (1, 0x00), // no interrupts
        (3, 0x80), // DLAB
        (0, 0x01), // divisor 1: 115200
        (1, 0x00),
        (3, 0x03), // 8N1
        (2, 0xc7), // FIFO on, cleared, 14-byte threshold
        (4, 0x03), // DTR | RTS
    ];
    for (off, val) in regs {
        // SAFETY: the UART's registers; programming it affects nothing but the UART.
        unsafe { Port::<u8>::new(base + off).write(val) };
    }
}

/// Writes one byte, waiting for the transmitter.
pub fn write_byte(b: u8) {
    write_byte_to(COM1, b);
}

/// Writes `bytes` to the control channel's port (nothing if it is absent).
pub fn com2_write(bytes: &[u8]) {
    if com2_present() {
        for &b in bytes {
            write_byte_to(COM2, b);
        }
    }
}

/// One byte the control channel's client sent, if one is waiting.
pub fn com2_read_byte() -> Option<u8> {
    com2_present().then(|| read_byte_from(COM2)).flatten()
}

fn write_byte_to(base: u16, b: u8) {
    let mut lsr = Port::<u8>::new(base + 5);
    let mut data = Port::<u8>::new(base);
    // SAFETY: reading the line status register and writing the data register of a UART
    // have no effect beyond the UART.
    unsafe {
        for _ in 0..100_000 {
            if lsr.read() & 0x20 != 0 {
                break;
            }
        }
        data.write(b);
    }
}

/// Writes `bytes` as they are.
pub fn write_bytes(bytes: &[u8]) {
    for &b in bytes {
        write_byte(b);
    }
}

/// A `fmt::Write` over COM1.
pub struct Serial;

impl fmt::Write for Serial {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        write_bytes(s.as_bytes());
        // Never waits: a log line from a fault while the ring is held is only not kept.
        if let Some(mut log) = LOG.try_lock()
            && let Some(ring) = log.as_mut()
        {
            ring.push(s.as_bytes());
        }
        Ok(())
    }
}

/// Ends the QEMU run with status `(value << 1) | 1`; halts if the device is absent.
pub fn exit_qemu(value: u32) -> ! {
    // SAFETY: writing isa-debug-exit's port makes QEMU exit; without the device the write
    // goes nowhere.
    unsafe { Port::<u32>::new(DEBUG_EXIT_PORT).write(value) };
    loop {
        x86_64::instructions::interrupts::disable();
        x86_64::instructions::hlt();
    }
}

/// Prints an hv log line: `hv: <message>`.
#[macro_export]
macro_rules! hvlog {
    ($($arg:tt)*) => {{
        use core::fmt::Write as _;
        let _ = writeln!($crate::kernel::serial::Serial, "hv: {}", format_args!($($arg)*));
    }};
}

/// [`hvlog!`] for a line a domain's own doing causes: printed only while the domain's
/// `guest_log` budget ([`crate::counters::GuestLogBudget`]) lasts, counted after.
#[macro_export]
macro_rules! guest_log {
    ($budget:expr, $($arg:tt)*) => {{
        if $budget.allow() {
            $crate::hvlog!($($arg)*);
        }
    }};
}

/// One byte the host sent on COM1, if one is waiting (polled: hv takes no serial interrupt).
pub fn read_byte() -> Option<u8> {
    read_byte_from(COM1)
}

fn read_byte_from(base: u16) -> Option<u8> {
    let mut lsr = Port::<u8>::new(base + 5);
    let mut data = Port::<u8>::new(base);
    // SAFETY: reading a UART's line status register has no effect; reading its receive
    // buffer takes the byte the UART holds, which only this module consumes.
    unsafe { (lsr.read() & 0x01 != 0).then(|| data.read()) }
}
