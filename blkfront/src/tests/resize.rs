//! A resized disk against the fake blkback: the backend writes a new `sectors` and state
//! Connected again (Linux blkback's `xen_vbd_resize`); the front end takes a sane size and
//! refuses an absurd one (zero, malformed, overflowing, not whole logical sectors, below a
//! request in flight) with [`BlkError::ResizeRefused`], keeping the size it had.

use super::*;
use crate::error::ResizeRefused;

/// The backend announces `sectors` as `xen_vbd_resize` does (the key, then state Connected).
fn announce(rig: &mut Rig, sectors: &str) {
    let store = &mut rig.xs.transport_mut().store;
    store.set(&format!("{BACK}/sectors"), sectors);
    store.set(&format!("{BACK}/state"), "4");
}

#[test]
fn a_grown_disk_is_read_again_and_its_new_sectors_served() {
    let (mut rig, mut device) = connect(false, &[]);
    let old_end = SECTORS * 512;
    assert!(matches!(
        device.read(&mut rig.xs, old_end, 4096, far()),
        Err(BlkError::OutOfRange { .. })
    ));
    rig.backend
        .borrow_mut()
        .disk
        .resize((SECTORS as usize + 64) * 512, 0xab);
    announce(&mut rig, &(SECTORS + 64).to_string());
    // A wait notices it (the watch fired): the size is taken while a request runs.
    assert_eq!(device.read(&mut rig.xs, 0, 512, far()).unwrap().len(), 512);
    assert_eq!(device.info().sectors, SECTORS + 64);
    assert_eq!(device.stats().resizes, 1);
    let data = std::vec![0x3cu8; 4096];
    device.write(&mut rig.xs, old_end, &data, far()).unwrap();
    assert_eq!(
        device.read(&mut rig.xs, old_end, 4096, far()).unwrap(),
        data
    );
    // The same size announced again is no resize.
    announce(&mut rig, &(SECTORS + 64).to_string());
    device.refresh(&mut rig.xs, far()).unwrap();
    assert_eq!(
        (device.stats().resizes, device.stats().resizes_refused),
        (1, 0)
    );
}

#[test]
fn absurd_sizes_are_refused_with_a_clear_error_and_the_size_kept() {
    let (mut rig, mut device) = connect(false, &[]);
    let cases: [(&str, ResizeRefused); 7] = [
        ("0", ResizeRefused::Zero),
        ("", ResizeRefused::Malformed),
        ("-5", ResizeRefused::Malformed),
        ("12x", ResizeRefused::Malformed),
        ("99999999999999999999999", ResizeRefused::Malformed),
        // 2^55 sectors are 2^64 bytes: one past what a byte offset holds.
        (
            "36028797018963968",
            ResizeRefused::TooLarge(36_028_797_018_963_968),
        ),
        ("18446744073709551615", ResizeRefused::TooLarge(u64::MAX)),
    ];
    for (n, (text, why)) in cases.into_iter().enumerate() {
        announce(&mut rig, text);
        assert_eq!(
            device.refresh(&mut rig.xs, far()),
            Err(BlkError::ResizeRefused(why)),
            "sectors {text:?}"
        );
        assert_eq!(device.info().sectors, SECTORS, "sectors {text:?}");
        assert_eq!(device.stats().resizes_refused, n as u64 + 1);
    }
    let message = format!("{}", BlkError::ResizeRefused(ResizeRefused::Zero));
    assert!(
        message.contains("refused") && message.contains("`sectors` is 0"),
        "{message}"
    );
    // Still a working disk of its old size.
    assert_eq!(device.stats().resizes, 0);
    let data = pattern(7, 4096);
    device.write(&mut rig.xs, 4096, &data, far()).unwrap();
    assert_eq!(device.read(&mut rig.xs, 4096, 4096, far()).unwrap(), data);
    assert!(matches!(
        device.read(&mut rig.xs, SECTORS * 512, 512, far()),
        Err(BlkError::OutOfRange { .. })
    ));
}

#[test]
fn a_size_that_is_not_whole_logical_sectors_is_refused() {
    let (mut rig, mut device) = connect(false, &[("sector-size", "4096")]);
    assert_eq!(device.info().sector_size, 4096);
    announce(&mut rig, &(SECTORS + 1).to_string());
    assert_eq!(
        device.refresh(&mut rig.xs, far()),
        Err(BlkError::ResizeRefused(ResizeRefused::NotWholeSectors(
            SECTORS + 1
        )))
    );
    announce(&mut rig, &(SECTORS + 8).to_string());
    device.refresh(&mut rig.xs, far()).unwrap();
    assert_eq!(device.info().sectors, SECTORS + 8);
}

#[test]
fn a_shrink_below_a_request_in_flight_is_refused_until_it_completes() {
    let (mut rig, mut device) = connect(false, &[]);
    // A read near the end, taken by a backend not running yet.
    rig.backend.borrow_mut().asleep = true;
    let far_read = device.submit_read((SECTORS - 8) * 512, 4096).unwrap();
    device.kick().unwrap();
    announce(&mut rig, "512");
    let refused = ResizeRefused::BelowInFlight {
        sectors: 512,
        in_flight_end: SECTORS,
    };
    assert_eq!(
        device.refresh(&mut rig.xs, far()),
        Err(BlkError::ResizeRefused(refused))
    );
    assert_eq!(device.info().sectors, SECTORS);
    // The wait sees the same announcement again (a second watch event): refused and
    // counted, and the request it waits for goes on.
    announce(&mut rig, "512");
    rig.backend.borrow_mut().asleep = false;
    assert_eq!(
        device.wait_for(&mut rig.xs, far_read, far()).unwrap(),
        pattern(SECTORS - 8, 4096)
    );
    assert_eq!(device.stats().resizes_refused, 2);
    assert_eq!(device.info().sectors, SECTORS);
    // Nothing in flight any more: the shrink is taken, and what lies past it refused here.
    device.refresh(&mut rig.xs, far()).unwrap();
    assert_eq!(device.info().sectors, 512);
    assert_eq!(device.stats().resizes, 1);
    assert_eq!(
        device.submit_read(512 * 512, 512),
        Err(BlkError::OutOfRange {
            sector: 512,
            sectors: 1
        })
    );
}
