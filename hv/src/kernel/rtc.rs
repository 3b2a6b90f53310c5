//! The CMOS real-time clock (ports 0x70/0x71), read once for the domain's wall clock.

use x86_64::instructions::port::Port;

use crate::time::{from_bcd, unix_time};

fn read(reg: u8) -> u8 {
    let mut index = Port::<u8>::new(0x70);
    let mut data = Port::<u8>::new(0x71);
    // SAFETY: the CMOS index/data ports; selecting a register (NMI enable bit left clear)
    // and reading it has no effect beyond the read. No guest reaches these ports (IOPM).
    unsafe {
        index.write(reg & 0x7f);
        data.read()
    }
}

/// Seconds since the Unix epoch from the RTC, or `None` if it reads nonsense.
pub fn unix_seconds() -> Option<u64> {
    // Wait for the end of an update cycle (register A bit 7), bounded.
    for _ in 0..1_000_000 {
        if read(0x0a) & 0x80 == 0 {
            break;
        }
    }
    let b = read(0x0b);
    let binary = b & 0x04 != 0;
    let conv = |v: u8| {
        if binary {
            Some(u32::from(v))
        } else {
            from_bcd(v)
        }
    };
    let sec = conv(read(0x00))?;
    let min = conv(read(0x02))?;
    let hour_raw = read(0x04);
    let pm = b & 0x02 == 0 && hour_raw & 0x80 != 0;
    let mut hour = conv(hour_raw & 0x7f)?;
    if b & 0x02 == 0 {
        hour %= 12;
        if pm {
            hour += 12;
        }
    }
    let day = conv(read(0x07))?;
    let month = conv(read(0x08))?;
    let year = conv(read(0x09))?;
    let century = conv(read(0x32))
        .filter(|c| (19..=21).contains(c))
        .unwrap_or(20);
    unix_time(century * 100 + year, month, day, hour, min, sec)
}
