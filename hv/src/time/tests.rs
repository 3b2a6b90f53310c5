//! Host tests of the time arithmetic.
#![allow(
    clippy::cast_possible_truncation,
    reason = "test fixtures: small known sizes and indexes, on 64-bit hosts only"
)]

use super::*;

#[test]
fn scale_as_xen() {
    // 1 GHz: shifted into (1e9, 2e9] gives 2e9 (shift 1), mul 0.5.
    let s = TimeScale::new(1_000_000_000).unwrap();
    assert_eq!((s.mul_frac, s.shift), (0x8000_0000, 1));
    assert_eq!(s.scale(1_000_000_000), 1_000_000_000);
    // 3 GHz: shift -1 to 1.5e9, mul = 2/3.
    let s = TimeScale::new(3_000_000_000).unwrap();
    assert_eq!(s.shift, -1);
    assert_eq!(
        s.mul_frac,
        ((1_000_000_000u64 << 32) / 1_500_000_000) as u32
    );
    let one_sec = s.scale(3_000_000_000);
    assert!(
        (999_999_990..=1_000_000_000).contains(&one_sec),
        "{one_sec}"
    );
    // A slow counter (1 MHz) shifts left.
    let s = TimeScale::new(1_000_000).unwrap();
    assert_eq!(s.shift, 10);
    assert!(TimeScale::new(0).is_none());
}

#[test]
fn version_protocol() {
    assert_eq!(version_update(0), (1, 2));
    assert_eq!(version_update(2), (3, 4));
    // A guest-corrupted odd version still gives odd then even.
    assert_eq!(version_update(5), (7, 8));
    assert_eq!(version_update(u32::MAX), (1, 2));
}

#[test]
fn timers() {
    let mut t = Singleshot::default();
    t.set_timer_op(1000, 500);
    assert!(!t.expire(999));
    assert!(t.expire(1000));
    assert!(!t.expire(2000));
    t.set_timer_op(1000, 500);
    t.set_timer_op(0, 500);
    assert_eq!(t.deadline(), None);
    t.set_timer_op(u64::MAX, 500); // negative
    assert_eq!(t.deadline(), Some(500 + HUGE_TIMEOUT_NS));
    t.set_timer_op(500 + (1 << 50), 500);
    assert_eq!(t.deadline(), Some(500 + HUGE_TIMEOUT_NS));
    t.set_timer_op(500 + (1 << 50) - 1, 500);
    assert_eq!(t.deadline(), Some(500 + (1 << 50) - 1));
    assert_eq!(t.set_singleshot(10, 1, 11), Err(-62));
    assert_eq!(t.deadline(), Some(500 + (1 << 50) - 1));
    assert_eq!(t.set_singleshot(10, 0, 11), Ok(()));
    assert!(t.expire(11));
    t.set_singleshot(10, 0, 0).unwrap();
    t.stop();
    assert!(!t.expire(u64::MAX));
}

#[test]
fn runstate() {
    let mut r = Runstate::default();
    r.blocked(100, 400);
    r.blocked(500, 600);
    let i = r.info(1000);
    assert_eq!((i.state, i.state_entry_time), (0, 600));
    assert_eq!(i.time, [600, 0, 400, 0]);
    assert_eq!(i.time[0] + i.time[2], 1000);
}

#[test]
fn rtc() {
    assert_eq!(unix_time(1970, 1, 1, 0, 0, 0), Some(0));
    assert_eq!(unix_time(2026, 11, 27, 18, 30, 0), Some(1_795_804_200));
    assert_eq!(unix_time(2000, 2, 29, 0, 0, 0), Some(951_782_400));
    assert_eq!(unix_time(2026, 13, 1, 0, 0, 0), None);
    assert_eq!(from_bcd(0x59), Some(59));
    assert_eq!(from_bcd(0x5a), None);
}

proptest::proptest! {
    /// For any frequency and delta: the scale is within 1 ppm (plus rounding) of the exact
    /// value, monotonic, and `ticks_for` is the first tick count reaching the nanoseconds.
    #[test]
    fn scale_properties(
        hz in 1_000_000u64..20_000_000_000,
        delta in 0u64..(1 << 44),
        ns in 1u64..(1 << 40),
    ) {
        let s = TimeScale::new(hz).unwrap();
        let exact = (u128::from(delta) * 1_000_000_000 / u128::from(hz)) as u64;
        let got = s.scale(delta);
        proptest::prop_assert!(
            got.abs_diff(exact) <= exact / 1_000_000 + 2 + (1_000_000_000 / hz) * 2,
            "{} vs {}", got, exact
        );
        proptest::prop_assert!(s.scale(delta + 1) >= got);
        let ticks = s.ticks_for(ns);
        proptest::prop_assert!(s.scale(ticks) >= ns);
        proptest::prop_assert!(ticks == 0 || s.scale(ticks - 1) < ns);
    }

    /// A timer never fires before its deadline, whatever the guest asks.
    #[test]
    fn never_early(
        timeout in proptest::num::u64::ANY,
        now in 0u64..(1 << 62),
        flags in 0u32..4,
        probe in proptest::num::u64::ANY,
    ) {
        let mut t = Singleshot::default();
        t.set_timer_op(timeout, now);
        if let Some(d) = t.deadline() {
            proptest::prop_assert_eq!(t.clone().expire(probe), probe >= d);
            proptest::prop_assert!(d >= timeout.min(now));
        }
        let mut t = Singleshot::default();
        if t.set_singleshot(timeout, flags, now).is_ok() {
            proptest::prop_assert_eq!(t.expire(probe), probe >= timeout);
        }
    }
}
