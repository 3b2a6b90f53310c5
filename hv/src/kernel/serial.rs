//! The COM1 serial port (0x3f8), hv's log and the guests' console output, and the
//! `isa-debug-exit` device that ends the QEMU run.

use core::fmt;

use x86_64::instructions::port::Port;

const COM1: u16 = 0x3f8;

/// QEMU's `isa-debug-exit` port (`-device isa-debug-exit,iobase=0xf4,iosize=0x04`).
pub const DEBUG_EXIT_PORT: u16 = 0xf4;

/// The value for the guest's poweroff: QEMU exits `(0x10 << 1) | 1` = 33.
pub const EXIT_POWEROFF: u32 = 0x10;
/// The value for the guest's crash: QEMU exits 35.
pub const EXIT_CRASH: u32 = 0x11;
/// The value for a failure of hv itself (panic, exception, no SVM): QEMU exits 37.
pub const EXIT_HV_FAILURE: u32 = 0x12;

/// Programs COM1 for 115200 8N1, FIFOs on, no interrupts.
pub fn init() {
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
        // SAFETY: COM1's registers; programming the UART affects nothing but the UART.
        unsafe { Port::<u8>::new(COM1 + off).write(val) };
    }
}

/// Writes one byte, waiting for the transmitter.
pub fn write_byte(b: u8) {
    let mut lsr = Port::<u8>::new(COM1 + 5);
    let mut data = Port::<u8>::new(COM1);
    // SAFETY: reading the line status register and writing the data register of COM1 have
    // no effect beyond the UART.
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
    let mut lsr = Port::<u8>::new(COM1 + 5);
    let mut data = Port::<u8>::new(COM1);
    // SAFETY: reading COM1's line status register has no effect; reading its receive buffer
    // takes the byte the UART holds, which only this function consumes.
    unsafe { (lsr.read() & 0x01 != 0).then(|| data.read()) }
}
