//! Our blkfront against our blkback.

use super::disk::{DiskOp, MemDisk};
use super::rig::{Rig, far};
use blkfront::{BlkError, FlushMode};
use std::format;
use std::vec::Vec;

fn pattern(sector: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (sector as usize + i / 512) as u8)
        .collect()
}

#[test]
fn connect_publishes_linuxs_keys_and_data_round_trips() {
    let rig = Rig::new();
    let mut guest = rig.add_guest(5, 51712, MemDisk::new(2048), "w");
    assert_eq!(rig.back_key(&guest, "state").as_deref(), Some("2"));
    let mut front = rig.connect(&mut guest);
    for (key, value) in [
        ("state", "4"),
        ("sectors", "2048"),
        ("info", "0"),
        ("sector-size", "512"),
        ("physical-sector-size", "512"),
        ("feature-flush-cache", "1"),
        ("feature-barrier", "1"),
        ("feature-discard", "0"),
        ("feature-persistent", "0"),
    ] {
        assert_eq!(rig.back_key(&guest, key).as_deref(), Some(value), "{key}");
    }
    assert_eq!(rig.back_key(&guest, "max-ring-page-order"), None);
    let info = *front.info();
    assert_eq!((info.sectors, info.readonly), (2048, false));
    assert_eq!(info.flush, FlushMode::FlushCache);

    let data = front.read(&mut guest.xs, 3 * 512, 3 * 4096, far()).unwrap();
    assert_eq!(data, pattern(3, 3 * 4096));
    let payload: Vec<u8> = (0..8192 + 1024).map(|i| (i * 7) as u8).collect();
    front
        .write(&mut guest.xs, 100 * 512, &payload, far())
        .unwrap();
    rig.dev(&guest, |d| {
        assert_eq!(
            &d.device().live[100 * 512..100 * 512 + payload.len()],
            &payload[..]
        );
    });
    assert_eq!(
        front
            .read(&mut guest.xs, 100 * 512, payload.len(), far())
            .unwrap(),
        payload
    );

    let stats = rig.dev(&guest, |d| d.stats());
    assert_eq!(
        (stats.requests, stats.reads, stats.writes, stats.errors),
        (3, 2, 1, 0)
    );
    assert_eq!(stats.written_sectors, 18);
    // Only the ring stays mapped; every data grant is free again on both sides.
    rig.dev(&guest, |d| assert_eq!(d.grants().mapped.len(), 1));
    assert_eq!(front.stats().data_grants, 0);
    assert_eq!(front.stats().bad_responses, 0);
}

#[test]
fn a_full_ring_in_flight_is_served_in_one_round_with_one_notification() {
    let rig = Rig::new();
    let mut guest = rig.add_guest(5, 51712, MemDisk::new(4096), "w");
    let mut front = rig.connect(&mut guest);
    let mut ids = Vec::new();
    for i in 0..32u64 {
        ids.push(front.submit_read(i * 4096, 11 * 4096).unwrap());
    }
    front.kick().unwrap();
    rig.step();
    assert_eq!(rig.dev(&guest, |d| d.stats().reads), 32);
    let done = front.poll();
    assert_eq!(done.len(), 32);
    for (c, i) in done.iter().zip(0..) {
        assert_eq!(c.id, ids[i as usize]);
        assert_eq!(c.result.as_deref(), Ok(&pattern(i * 8, 11 * 4096)[..]));
    }
    rig.dev(&guest, |d| {
        assert_eq!(d.stats().notifications, 1);
        assert_eq!(d.events().sent.len(), 1);
    });
}

#[test]
fn a_flush_is_answered_only_once_the_data_is_durable() {
    let rig = Rig::new();
    let mut guest = rig.add_guest(5, 51712, MemDisk::new(64), "w");
    let mut front = rig.connect(&mut guest);
    front
        .write(&mut guest.xs, 512, &[0xab; 1024], far())
        .unwrap();
    rig.dev(&guest, |d| {
        assert_eq!(d.device().live[512], 0xab);
        assert_eq!(d.device().durable[512], 1, "a write alone is not durable");
    });
    let id = front.submit_flush().unwrap();
    front.kick().unwrap();
    // Before domain 0 runs, nothing is answered and nothing is durable.
    assert!(front.poll().is_empty());
    rig.step();
    rig.dev(&guest, |d| {
        assert_eq!(&d.device().durable[512..1536], &[0xab; 1024][..]);
        assert_eq!(d.device().ops.last(), Some(&DiskOp::Flush));
        assert_eq!(d.stats().flushes, 1);
    });
    let done = front.poll();
    assert_eq!((done[0].id, done[0].result.clone()), (id, Ok(Vec::new())));
}

#[test]
fn a_disk_without_a_write_cache_offers_no_flush() {
    let rig = Rig::new();
    let mut disk = MemDisk::new(64);
    disk.write_cache = false;
    let mut guest = rig.add_guest(5, 51712, disk, "w");
    let mut front = rig.connect(&mut guest);
    assert_eq!(
        rig.back_key(&guest, "feature-flush-cache").as_deref(),
        Some("0")
    );
    assert_eq!(
        rig.back_key(&guest, "feature-barrier").as_deref(),
        Some("0")
    );
    assert_eq!(front.info().flush, FlushMode::WriteThrough);
    front.write(&mut guest.xs, 0, &[9; 512], far()).unwrap();
    rig.dev(&guest, |d| assert_eq!(d.device().durable[0], 9));
}

#[test]
fn a_read_only_disk_is_announced_and_enforced() {
    let rig = Rig::new();
    let mut guest = rig.add_guest(5, 51712, MemDisk::new(64), "r");
    let mut front = rig.connect(&mut guest);
    assert_eq!(rig.back_key(&guest, "info").as_deref(), Some("4"));
    assert!(front.info().readonly);
    let id = front.submit_write_unguarded(0, &[1; 512]).unwrap();
    assert_eq!(
        front.wait_for(&mut guest.xs, id, far()),
        Err(BlkError::IoError)
    );
    rig.dev(&guest, |d| {
        assert_eq!(d.device().live[0], 0, "the disk is unchanged");
        assert!(d.device().ops.is_empty());
        assert_eq!(d.stats().errors, 1);
    });
    // Reads still work.
    assert_eq!(
        front.read(&mut guest.xs, 512, 512, far()).unwrap(),
        pattern(1, 512)
    );
}

#[test]
fn a_device_error_fails_only_its_request() {
    let rig = Rig::new();
    let mut guest = rig.add_guest(5, 51712, MemDisk::new(64), "w");
    let mut front = rig.connect(&mut guest);
    rig.dev(&guest, |d| {
        d.device_mut().fail_next = Some(crate::DiskError::Io)
    });
    assert_eq!(
        front.read(&mut guest.xs, 0, 512, far()),
        Err(BlkError::IoError)
    );
    assert_eq!(
        front.read(&mut guest.xs, 0, 512, far()).unwrap(),
        pattern(0, 512)
    );
    rig.dev(&guest, |d| {
        d.device_mut().flush_fails = Some(crate::DiskError::NotSupported)
    });
    assert_eq!(
        front.flush(&mut guest.xs, far()),
        Err(BlkError::NotSupported)
    );
    // As Linux: the feature is withdrawn at once.
    assert_eq!(
        rig.back_key(&guest, "feature-flush-cache").as_deref(),
        Some("0")
    );
    assert_eq!(
        rig.back_key(&guest, "feature-barrier").as_deref(),
        Some("1")
    );
}

#[test]
fn without_mode_the_device_fails_and_when_offline_a_closed_device_is_removed() {
    let rig = Rig::new();
    let (_front, back) = rig.hub.add_vbd(5, 51712, "w");
    rig.hub.remove(&format!("{back}/mode"));
    let mut dom0 = rig.dom0.borrow_mut();
    let dev = crate::Blkback::probe(
        &mut dom0.xs,
        back.clone(),
        MemDisk::new(8),
        xenbus::testing::FakeGrantMapper::new(xenbus::DomId::ZERO),
        xenbus::testing::FakeEvents::new(),
        far(),
    )
    .unwrap();
    drop(dom0);
    assert_eq!(rig.hub.read(&format!("{back}/state")).as_deref(), Some("5"));
    assert_eq!(
        rig.hub
            .read("/local/domain/0/error/backend/vbd/5/51712/error")
            .as_deref(),
        Some("-2 reading mode")
    );
    drop(dev);

    let rig = Rig::new();
    let mut guest = rig.add_guest(6, 51712, MemDisk::new(8), "w");
    let front = rig.connect(&mut guest);
    rig.hub.write(&format!("{}/online", guest.back), "0");
    front.close(&mut guest.xs, far()).unwrap();
    rig.dev(&guest, |d| {
        assert!(d.is_removed());
        assert!(d.grants().mapped.is_empty());
    });
}

#[test]
fn close_unmaps_everything_and_a_reprobed_front_end_reconnects() {
    let rig = Rig::new();
    let mut guest = rig.add_guest(5, 51712, MemDisk::new(64), "w");
    let front = rig.connect(&mut guest);
    rig.dev(&guest, |d| {
        assert_eq!(d.grants().mapped.len(), 1);
        assert_eq!(d.events().bound.len(), 1);
    });
    front.close(&mut guest.xs, far()).unwrap();
    assert_eq!(rig.back_key(&guest, "state").as_deref(), Some("6"));
    rig.dev(&guest, |d| {
        assert!(d.grants().mapped.is_empty(), "the ring is unmapped");
        assert!(d.events().bound.is_empty(), "the port is unbound");
        assert!(!d.is_removed(), "online = 1: the device stays");
    });
    assert_eq!(xenbus::grant::GrantAccess::grants_in_use(&guest.grants), 0);

    // The front end is probed again (Initialising): blkback goes back to InitWait.
    rig.hub.write(&format!("{}/state", guest.front), "1");
    rig.settle();
    assert_eq!(rig.back_key(&guest, "state").as_deref(), Some("2"));
    let mut front = rig.connect(&mut guest);
    assert_eq!(
        front.read(&mut guest.xs, 0, 512, far()).unwrap(),
        pattern(0, 512)
    );
    rig.dev(&guest, |d| assert_eq!(d.stats().connects, 2));
}

#[test]
fn a_front_end_that_vanishes_removes_the_device() {
    let rig = Rig::new();
    let mut guest = rig.add_guest(5, 51712, MemDisk::new(64), "w");
    let _front = rig.connect(&mut guest);
    rig.hub.remove(&guest.front);
    rig.settle();
    rig.dev(&guest, |d| {
        assert!(d.is_removed());
        assert!(d.grants().mapped.is_empty());
    });
    assert_eq!(rig.hub.with_store(|s| s.watch_count(0)), 0);
}
