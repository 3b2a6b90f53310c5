//! The handshake: keys and states as netback expects, the MTU read, failures that release
//! everything, and a backend that closes or vanishes.

use super::*;
use crate::error::NetError;
use smoltcp::phy::Device as _;
use xenbus::grant::GrantAccess;

#[test]
fn handshake_without_offloads_publishes_the_keys_netback_reads() {
    let rig = Rig::with(Some("1400"), NO_OFFLOADS);
    for (name, value) in [
        ("request-rx-copy", "1"),
        ("feature-rx-notify", "1"),
        ("feature-no-csum-offload", "1"),
        ("feature-sg", "0"),
        ("feature-gso-tcpv4", "0"),
        ("state", "4"),
    ] {
        assert_eq!(key(&rig.xs, name), value, "{name}");
    }
    let port: u32 = key(&rig.xs, "event-channel").parse().unwrap();
    assert_eq!(port, rig.dev.port().get());
    assert_eq!(rig.dev.platform().events.open.len(), 1, "one event channel");
    assert_eq!(key(&rig.xs, "event-channel-tx"), "", "no split channels");
    assert_ne!(key(&rig.xs, "tx-ring-ref"), key(&rig.xs, "rx-ring-ref"));
    assert_eq!(rig.dev.config().mac.to_string(), MAC);
    assert_eq!(
        (rig.dev.config().mtu_key, rig.dev.config().mtu),
        (Some(1400), 1400)
    );
    assert_eq!(rig.dev.capabilities().max_transmission_unit, 1414);
    // The rx ring is full of buffers before the backend connects.
    assert_eq!(rig.dev.rx_posted(), 128);
    assert_eq!(rig.back.rx_available(), 128);
    // Grants: 2 rings, 64 tx pages (2 buffers each), 128 rx pages; the device's count is
    // the grant table's.
    let stats = rig.dev.stats();
    assert_eq!(stats.grants_in_use, 2 + 64 + 128);
    assert_eq!(
        u64::from(rig.dev.platform().grants.grants_in_use()),
        stats.grants_in_use
    );
}

#[test]
fn mtu_absent_is_1500_and_a_large_one_is_capped_without_sg() {
    let rig = Rig::with(None, Config::default());
    assert_eq!(
        (rig.dev.config().mtu_key, rig.dev.config().mtu),
        (None, 1500)
    );
    let rig = Rig::with(Some("9000"), NO_OFFLOADS);
    assert_eq!(rig.dev.config().mtu, 1500);
    assert_eq!(rig.dev.capabilities().max_transmission_unit, 1514);
}

#[test]
fn refused_handshakes_release_every_page_and_grant() {
    let cases: [(Option<&str>, bool, NetError); 3] = [
        (Some("1500"), false, NetError::NoRxCopy),
        (Some("huge"), true, NetError::BadValue("mtu")),
        (Some("12"), true, NetError::BadValue("mtu")),
    ];
    for (mtu, rx_copy, expected) in cases {
        let memory = HostMemory::new();
        let mut xs = xenstore(mtu, rx_copy);
        let err = Netfront::connect(&mut xs, 0, Config::default(), platform(&memory), far())
            .err()
            .unwrap();
        assert_eq!(err, expected);
        assert_eq!(memory.allocated(), 0);
    }
    // Memory for 100 pages of the 194 wanted: whatever was granted is ended again.
    let memory = HostMemory::with_limit(100);
    let mut xs = xenstore(Some("1500"), true);
    let err = Netfront::connect(&mut xs, 0, Config::default(), platform(&memory), far())
        .err()
        .unwrap();
    assert!(matches!(err, NetError::Pages(_)), "{err:?}");
    assert_eq!(memory.allocated(), 0);
    // A grant table that cannot grow: likewise.
    let memory = HostMemory::new();
    let mut platform = platform(&memory);
    let mut entries = FakeGrantEntries::with_frames(0);
    entries.refuse_frames = true;
    platform.grants = GrantTable::new(entries, 0, 4);
    let err = Netfront::connect(&mut xs, 0, Config::default(), platform, far())
        .err()
        .unwrap();
    assert!(matches!(err, NetError::Grant(_)), "{err:?}");
    assert_eq!(memory.allocated(), 0);
    assert_eq!(key(&xs, "state"), "1", "nothing published");
}

#[test]
fn a_backend_that_never_connects_times_out() {
    let memory = HostMemory::new();
    let mut xs = xenstore(Some("1500"), true);
    xs.transport_mut().on_write = None;
    let deadline = Instant::from_nanos(5_000_000_000);
    let err = Netfront::connect(&mut xs, 0, Config::default(), platform(&memory), deadline)
        .err()
        .unwrap();
    assert_eq!(err, NetError::Timeout);
    assert_eq!(memory.allocated(), 0, "every page back");
}

#[test]
fn a_closing_backend_ends_the_device_and_close_ends_every_grant() {
    let mut rig = Rig::new();
    rig.dev.send(&frame(1, 100)).unwrap();
    rig.dev.flush().unwrap();
    assert_eq!(rig.dev.check_backend(&mut rig.xs, far()), None);
    // A backend re-asserting Connected (as after a reconfiguration) is still connected.
    rig.xs
        .transport_mut()
        .store
        .set(&format!("{BACK}/state"), "4");
    assert_eq!(rig.dev.check_backend(&mut rig.xs, far()), None);
    rig.xs
        .transport_mut()
        .store
        .set(&format!("{BACK}/state"), "5");
    assert_eq!(
        rig.dev.check_backend(&mut rig.xs, far()),
        Some(NetError::BackendGone)
    );
    assert_eq!(rig.dev.send(&frame(2, 100)), Err(NetError::BackendGone));
    assert!(rig.dev.transmit(smoltcp::time::Instant::ZERO).is_none());
    // The backend unmaps its rings as it disconnects; close ends every grant.
    let entries = rig.dev.platform().grants.entries();
    rig.back.detach(
        entries,
        key(&rig.xs, "tx-ring-ref").parse().unwrap(),
        key(&rig.xs, "rx-ring-ref").parse().unwrap(),
    );
    rig.dev.close(&mut rig.xs, far()).unwrap();
    assert_eq!(key(&rig.xs, "state"), "6");
    assert_eq!(rig.dev.platform().grants.grants_in_use(), 0);
    assert_eq!(rig.dev.stats().grants_in_use, 0);
    assert_eq!(rig.memory.allocated(), 0);
    assert_eq!(rig.dev.platform().events.open.len(), 0, "port closed");
    assert_eq!(
        rig.xs.transport_mut().store.watch_count(),
        0,
        "watch removed"
    );
}

#[test]
fn a_vanished_backend_ends_the_device() {
    let mut rig = Rig::new();
    rig.xs.transport_mut().store.remove(BACK);
    assert_eq!(
        rig.dev.check_backend(&mut rig.xs, far()),
        Some(NetError::BackendGone)
    );
    assert!(rig.dev.receive().is_none());
    // Closing a device whose backend is gone still succeeds; a ring page the backend never
    // unmapped stays granted (counted), never reused.
    rig.dev.close(&mut rig.xs, far()).unwrap();
    assert_eq!(rig.dev.stats().grants_in_use, 2);
    assert_eq!(rig.memory.allocated(), 2);
}
