//! Tests of the pvclock readers and scaling against a scripted fake shared page.
#![allow(clippy::arithmetic_side_effects)] // test arithmetic on small known values

use super::*;
use core::cell::Cell;
use proptest::prelude::*;

/// A fake record whose `version` reads follow a script (the last value repeats).
struct Scripted {
    versions: Vec<u32>,
    next: Cell<usize>,
    fields: VcpuTimeFields,
    wall: WallClockFields,
}

impl Scripted {
    fn new(versions: &[u32]) -> Self {
        Self {
            versions: versions.to_vec(),
            next: Cell::new(0),
            fields: VcpuTimeFields {
                tsc_timestamp: 1000,
                system_time: 5_000,
                tsc_to_system_mul: 0x8000_0000,
                tsc_shift: 0,
                flags: 0,
            },
            wall: WallClockFields {
                wc_sec: 5,
                wc_nsec: 600_000_000,
                wc_sec_hi: 1,
            },
        }
    }

    fn reads(&self) -> usize {
        self.next.get()
    }

    fn next_version(&self) -> u32 {
        let i = self.next.get();
        self.next.set(i + 1);
        self.versions[i.min(self.versions.len() - 1)]
    }
}

impl VcpuTimeSource for Scripted {
    fn version(&self) -> u32 {
        self.next_version()
    }
    fn fields(&self) -> VcpuTimeFields {
        self.fields
    }
}

impl WallClockSource for Scripted {
    fn wc_version(&self) -> u32 {
        self.next_version()
    }
    fn wc_fields(&self) -> WallClockFields {
        self.wall
    }
}

#[test]
fn stable_record_reads_once() {
    let s = Scripted::new(&[2]);
    let snap = read_time_info(&s, 3).unwrap();
    assert_eq!(snap.version, 2);
    assert_eq!(snap.fields, s.fields);
    assert_eq!(s.reads(), 2);
}

#[test]
fn odd_version_is_retried() {
    let s = Scripted::new(&[7, 8, 8]);
    assert_eq!(read_time_info(&s, 3).unwrap().version, 8);
    assert_eq!(s.reads(), 3);
}

#[test]
fn changed_version_is_retried() {
    let s = Scripted::new(&[2, 4, 4, 4]);
    assert_eq!(read_time_info(&s, 3).unwrap().version, 4);
    assert_eq!(s.reads(), 4);
}

#[test]
fn always_odd_gives_unstable_after_bounded_attempts() {
    let s = Scripted::new(&[1]);
    assert_eq!(read_time_info(&s, 5), Err(PvclockError::Unstable));
    assert_eq!(s.reads(), 5);
}

#[test]
fn always_changing_gives_unstable() {
    let versions: Vec<u32> = (0..100).map(|i| i * 2).collect();
    let s = Scripted::new(&versions);
    assert_eq!(read_time_info(&s, 10), Err(PvclockError::Unstable));
    assert_eq!(s.reads(), 20);
}

#[test]
fn zero_attempts_is_unstable() {
    let s = Scripted::new(&[2]);
    assert_eq!(read_time_info(&s, 0), Err(PvclockError::Unstable));
}

#[test]
fn scale_delta_known_values() {
    // 2 GHz: mul = 0.5 * 2^32.
    assert_eq!(scale_delta(1000, 0x8000_0000, 0), 500);
    assert_eq!(scale_delta(1000, 0x8000_0000, 1), 1000);
    assert_eq!(scale_delta(1000, 0x8000_0000, -1), 250);
    // 3 GHz as Xen encodes it: shift -1, mul = 2/3 * 2^32.
    assert_eq!(scale_delta(3_000_000_000, 0xAAAA_AAAA, -1), 999_999_999);
    // Full 96-bit product, no overflow.
    assert_eq!(scale_delta(u64::MAX, u32::MAX, 0), 0xFFFF_FFFE_FFFF_FFFF);
    // Shifts of 64 or more give 0 instead of undefined behaviour.
    assert_eq!(scale_delta(u64::MAX, u32::MAX, 64), 0);
    assert_eq!(scale_delta(u64::MAX, u32::MAX, -128), 0);
    assert_eq!(scale_delta(123, 0, 3), 0);
}

#[test]
fn system_time_adds_scaled_delta() {
    let s = Scripted::new(&[2]);
    let snap = read_time_info(&s, 1).unwrap();
    assert_eq!(snap.system_time_ns(1000), 5_000);
    assert_eq!(snap.system_time_ns(3000), 6_000);
    // Earlier than the timestamp: no time elapsed, never below system_time.
    assert_eq!(snap.system_time_ns(0), 5_000);
}

#[test]
fn wall_clock_combines_high_bits_and_system_time() {
    let s = Scripted::new(&[3, 4, 4]);
    let wc = read_wall_clock(&s, 2).unwrap();
    assert_eq!(
        wc,
        WallClock {
            sec: (1 << 32) + 5,
            nsec: 600_000_000
        }
    );
    let t = wc.at(2_500_000_000);
    assert_eq!(
        t,
        UnixTime {
            secs: (1 << 32) + 5 + 3,
            nanos: 100_000_000
        }
    );
}

#[test]
fn wall_clock_unstable() {
    let s = Scripted::new(&[5]);
    assert_eq!(read_wall_clock(&s, 4), Err(PvclockError::Unstable));
}

#[test]
fn wall_clock_tolerates_bad_nsec() {
    let wc = WallClock {
        sec: u64::MAX - 1,
        nsec: u32::MAX,
    };
    let t = wc.at(u64::MAX);
    assert!(t.nanos < 1_000_000_000);
    assert_eq!(t.secs, u64::MAX);
}

proptest! {
    #[test]
    fn system_time_is_monotonic(
        tsc_timestamp in 0u64..(1 << 60),
        system_time in 0u64..(1 << 60),
        mul in any::<u32>(),
        shift in -31i8..=4,
        a in 0u64..(1 << 58),
        b in 0u64..(1 << 58),
    ) {
        let snap = TimeSnapshot {
            version: 0,
            fields: VcpuTimeFields { tsc_timestamp, system_time, tsc_to_system_mul: mul, tsc_shift: shift, flags: 0 },
        };
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        let t_lo = snap.system_time_ns(tsc_timestamp.saturating_add(lo));
        let t_hi = snap.system_time_ns(tsc_timestamp.saturating_add(hi));
        prop_assert!(t_lo <= t_hi);
        prop_assert!(t_lo >= system_time);
    }

    #[test]
    fn wall_clock_nanos_in_range(sec in any::<u64>(), nsec in any::<u32>(), sys in any::<u64>()) {
        let t = WallClock { sec, nsec }.at(sys);
        prop_assert!(t.nanos < 1_000_000_000);
    }
}
