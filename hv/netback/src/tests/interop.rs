//! Our netfront against our netback.

use super::rig::{Rig, far, frame, mac_of};
use crate::Delivered::{Copied, Queued};
use crate::{DeliverError, FEATURE_KEYS};
use std::format;
use std::vec::Vec;
use xenbus::Instant;

#[test]
fn probe_writes_linuxs_keys_and_the_handshake_reaches_connected_on_both_sides() {
    let rig = Rig::new();
    let mut guest = rig.add_guest(5, 0);
    assert_eq!(rig.back_key(&guest, "state").as_deref(), Some("2"));
    for (key, value) in FEATURE_KEYS {
        assert_eq!(rig.back_key(&guest, key).as_deref(), Some(value), "{key}");
    }
    assert_eq!(
        rig.back_key(&guest, "feature-rx-copy").as_deref(),
        Some("1")
    );
    assert_eq!(
        rig.back_key(&guest, "feature-rx-flip").as_deref(),
        Some("0")
    );
    assert_eq!(
        rig.back_key(&guest, "feature-gso-tcpv4").as_deref(),
        Some("1")
    );
    assert!(!rig.dev(&guest, |d| d.is_connected()));

    let front = rig.connect(&mut guest);
    assert_eq!(rig.front_key(&guest, "state").as_deref(), Some("4"));
    assert_eq!(rig.back_key(&guest, "state").as_deref(), Some("4"));
    rig.dev(&guest, |d| {
        assert!(d.is_connected() && !d.is_disabled());
        let port = d.port().unwrap();
        // Bound to the front end's port, in its domain.
        assert_eq!(
            d.events().bound,
            [(port, xenbus::DomId::try_new(5).unwrap(), front.port())]
        );
        assert_eq!(d.stats().connects, 1);
        // Both ring pages stay mapped, nothing else.
        assert_eq!(d.grants().mapped.len(), 2);
        let mac = d.mac().unwrap();
        let text = mac_of(5, 0);
        assert_eq!(
            format!(
                "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
                mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]
            ),
            text
        );
    });
}

#[test]
fn frames_travel_both_ways_with_their_contents() {
    let rig = Rig::new();
    let mut guest = rig.add_guest(5, 0);
    let mut front = rig.connect(&mut guest);
    let lens = [14usize, 60, 1514, 700, 1000, 42];
    let out: Vec<Vec<u8>> = lens
        .iter()
        .enumerate()
        .map(|(i, &len)| frame(i as u8, len))
        .collect();
    for f in &out {
        front.send(f).unwrap();
    }
    front.flush().unwrap();
    rig.step();
    assert_eq!(rig.sent(&guest), out);
    rig.dev(&guest, |d| {
        // The front end asked to be told of responses: one notification for the batch.
        assert_eq!(d.stats().tx_notifications, 1);
        assert_eq!(d.events().sent, [d.port().unwrap()]);
    });
    front.poll();
    assert_eq!(front.stats().tx_errors, 0);
    assert_eq!(front.stats().bad_responses, 0);
    assert_eq!(front.tx_in_flight(), 0, "every tx buffer answered");

    let back: Vec<Vec<u8>> = lens
        .iter()
        .enumerate()
        .map(|(i, &len)| frame(0x80 | i as u8, len))
        .collect();
    assert!(rig.deliver(&guest, &back).iter().all(Result::is_ok));
    let received: Vec<Vec<u8>> = std::iter::from_fn(|| front.receive()).collect();
    assert_eq!(received, back);
    assert_eq!(front.stats().bad_responses, 0);
    assert_eq!(front.stats().rx_dropped, 0);

    let bytes = |v: &[Vec<u8>]| v.iter().map(|f| f.len() as u64).sum::<u64>();
    rig.dev(&guest, |d| {
        let s = d.stats();
        assert_eq!((s.tx_frames, s.tx_bytes, s.tx_slots), (6, bytes(&out), 6));
        assert_eq!((s.rx_frames, s.rx_bytes, s.rx_slots), (6, bytes(&back), 6));
        assert_eq!(
            (s.tx_errors, s.rx_errors, s.rx_dropped, s.fatal_errors),
            (0, 0, 0, 0)
        );
        // One flush, one notification; every data grant unmapped again.
        assert_eq!((s.tx_notifications, s.rx_notifications), (1, 1));
        assert_eq!(d.events().sent.len(), 2);
        assert_eq!(d.grants().mapped.len(), 2);
    });
}

#[test]
fn frames_beyond_the_posted_buffers_wait_in_order_and_go_once_buffers_are_posted() {
    let rig = Rig::new();
    let mut guest = rig.add_guest(5, 0);
    let mut front = rig.connect(&mut guest);
    let posted = front.rx_posted();
    assert_eq!(posted, 128);
    let frames: Vec<Vec<u8>> = (0..posted + 5).map(|i| frame(i as u8, 100)).collect();
    let results = rig.deliver(&guest, &frames[..posted + 3]);
    assert!(results[..posted].iter().all(|r| *r == Ok(Copied)));
    assert_eq!(results[posted..], [Ok(Queued); 3]);
    rig.dev(&guest, |d| {
        assert_eq!((d.stats().rx_dropped, d.stats().rx_queued), (0, 3));
        assert_eq!(d.stats().rx_frames, posted as u64);
        assert_eq!(d.rx_waiting(), 3);
    });
    // A frame that comes while others wait goes behind them, even though nothing changed.
    assert_eq!(
        rig.deliver(&guest, &frames[posted + 3..posted + 4]),
        [Ok(Queued)]
    );
    // The front end takes what it got and posts its buffers again (and notifies, as it was
    // asked to): the waiting frames go first, in order, then the next one.
    let received: Vec<Vec<u8>> = std::iter::from_fn(|| front.receive()).collect();
    assert_eq!(received, frames[..posted]);
    assert_eq!(rig.drain(&guest, Instant::from_nanos(1_000_000)), 4);
    assert_eq!(rig.deliver(&guest, &frames[posted + 4..]), [Ok(Copied)]);
    let received: Vec<Vec<u8>> = std::iter::from_fn(|| front.receive()).collect();
    assert_eq!(received, frames[posted..]);
    rig.dev(&guest, |d| {
        assert_eq!(d.stats().rx_dropped, 0);
        assert_eq!(d.stats().rx_frames, frames.len() as u64);
        assert_eq!(d.rx_waiting(), 0);
    });
}

#[test]
fn the_wait_queue_is_bounded_and_a_frame_that_waits_too_long_is_dropped() {
    let rig = Rig::new();
    let mut guest = rig.add_guest(5, 0);
    let mut front = rig.connect(&mut guest);
    let posted = front.rx_posted();
    let fill: Vec<Vec<u8>> = (0..posted).map(|i| frame(i as u8, 100)).collect();
    assert!(rig.deliver(&guest, &fill).iter().all(|r| *r == Ok(Copied)));
    // The ring is full: frames of 1500 bytes wait until RX_QUEUE_BYTES is reached.
    let room = crate::RX_QUEUE_BYTES / 1500;
    let waiting: Vec<Vec<u8>> = (0..room + 2).map(|i| frame(i as u8, 1500)).collect();
    let results = rig.deliver(&guest, &waiting);
    assert!(results[..room].iter().all(|r| *r == Ok(Queued)));
    assert_eq!(results[room..], [Err(DeliverError::NoBuffers); 2]);
    rig.dev(&guest, |d| {
        assert_eq!((d.rx_waiting(), d.stats().rx_dropped), (room, 2));
    });
    // Nobody takes them: past the drain timeout they are dropped, not delivered late.
    let late = Instant::from_nanos(crate::RX_DRAIN_TIMEOUT_NS + 1);
    let received: Vec<Vec<u8>> = std::iter::from_fn(|| front.receive()).collect();
    assert_eq!(received, fill);
    assert_eq!(rig.drain(&guest, late), 0);
    rig.dev(&guest, |d| {
        assert_eq!(d.rx_waiting(), 0);
        assert_eq!(d.stats().rx_dropped, 2 + room as u64);
        assert_eq!(d.stats().rx_expired, room as u64);
    });
    // And the vif works on.
    assert_eq!(rig.deliver_at(&guest, &fill[..1], late), [Ok(Copied)]);
    assert_eq!(front.receive().as_ref(), Some(&fill[0]));
}

#[test]
fn a_frame_longer_than_the_front_end_accepts_or_shorter_than_a_header_is_refused() {
    let rig = Rig::new();
    let mut guest = rig.add_guest(5, 0);
    let config = netfront::Config {
        offloads: netfront::Offloads::NONE,
        ..netfront::Config::default()
    };
    let mut front = rig.connect_with(&mut guest, config);
    // netfront does not say feature-sg: Linux caps such a vif at MTU 1500.
    let results = rig.deliver(&guest, &[frame(1, 1519), frame(2, 13), frame(3, 1518)]);
    assert_eq!(
        results,
        [
            Err(DeliverError::BadLength),
            Err(DeliverError::BadLength),
            Ok(Copied)
        ]
    );
    rig.dev(&guest, |d| assert_eq!(d.stats().rx_errors, 2));
    // netfront itself takes at most MTU + 14 and drops the 1518-byte (tagged) frame.
    assert_eq!(front.receive(), None);
    assert_eq!(front.stats().rx_dropped, 1);
}

#[test]
fn closing_unmaps_and_unbinds_and_an_offline_device_is_removed() {
    let rig = Rig::new();
    let mut guest = rig.add_guest(5, 0);
    let mut front = rig.connect(&mut guest);
    rig.hub.write(&format!("{}/online", guest.back), "0");
    front.close(&mut guest.xs, far()).unwrap();
    rig.settle();
    assert_eq!(rig.back_key(&guest, "state").as_deref(), Some("6"));
    rig.dev(&guest, |d| {
        assert!(!d.is_connected());
        assert!(d.is_removed());
        assert!(d.grants().mapped.is_empty());
        assert!(d.events().bound.is_empty());
        assert_eq!(
            d.deliver(&frame(1, 60), Instant::from_nanos(0)),
            Err(DeliverError::NotConnected)
        );
    });
    // Every grant of the guest ended: the backend held none.
    assert_eq!(front.stats().grants_in_use, 0);
}

#[test]
fn a_front_end_reconnects_after_closing_while_online() {
    let rig = Rig::new();
    let mut guest = rig.add_guest(5, 0);
    let mut front = rig.connect(&mut guest);
    front.close(&mut guest.xs, far()).unwrap();
    rig.settle();
    assert_eq!(rig.back_key(&guest, "state").as_deref(), Some("6"));
    assert!(!rig.dev(&guest, |d| d.is_removed()));
    // The guest starts over: Initialising, then a new netfront.
    rig.hub.write(&format!("{}/state", guest.front), "1");
    rig.settle();
    assert_eq!(rig.back_key(&guest, "state").as_deref(), Some("2"));
    let mut front = rig.connect(&mut guest);
    front.send(&frame(9, 64)).unwrap();
    front.flush().unwrap();
    rig.step();
    assert_eq!(rig.sent(&guest), [frame(9, 64)]);
    assert_eq!(rig.dev(&guest, |d| d.stats().connects), 2);
}

/// A UDP frame from 10.0.0.`host`:`sport` to 10.0.0.9:9.
fn udp(host: u8, sport: u16, len: usize) -> Vec<u8> {
    let mut f = frame(host, len.max(60));
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f[14] = 0x45;
    f[20..22].copy_from_slice(&[0, 0]);
    f[23] = 17;
    f[26..30].copy_from_slice(&[10, 0, 0, host]);
    f[30..34].copy_from_slice(&[10, 0, 0, 9]);
    f[34..36].copy_from_slice(&sport.to_be_bytes());
    f[36..38].copy_from_slice(&9u16.to_be_bytes());
    f
}

#[test]
fn two_queues_with_split_channels_connect_and_carry_flows_both_ways() {
    let rig = Rig::new();
    let mut guest = rig.add_guest(5, 0);
    assert_eq!(
        rig.back_key(&guest, "feature-split-event-channels")
            .as_deref(),
        Some("1")
    );
    assert_eq!(
        rig.back_key(&guest, "multi-queue-max-queues").as_deref(),
        Some("2")
    );
    let mut front = rig.connect_with(&mut guest, netfront::Config::default());
    assert_eq!((front.queue_count(), front.split_channels()), (2, true));
    assert_eq!(rig.back_key(&guest, "state").as_deref(), Some("4"));
    rig.dev(&guest, |d| {
        let s = d.stats();
        assert_eq!((s.queues, s.split_connects, s.connects), (2, 1, 1));
        // Four rings mapped, four channels bound, each its own.
        assert_eq!(d.grants().mapped.len(), 4);
        let ports = d.ports();
        assert_eq!(ports.len(), 2);
        assert!(ports.iter().all(|(tx, rx)| tx != rx));
        assert_eq!(d.events().bound.len(), 4);
    });
    // Eight flows out: every frame arrives, and both queues carried some.
    let out: Vec<Vec<u8>> = (0..8).map(|i| udp(2, 40_000 + i, 100)).collect();
    for f in &out {
        front.send(f).unwrap();
    }
    front.flush().unwrap();
    rig.step();
    let mut sent = rig.sent(&guest);
    sent.sort();
    let mut want = out.clone();
    want.sort();
    assert_eq!(sent, want);
    // Eight flows in: every frame arrives, both rx queues used, each notified on its own
    // rx channel.
    let back: Vec<Vec<u8>> = (0..8).map(|i| udp(9, 50_000 + i, 90)).collect();
    assert!(rig.deliver(&guest, &back).iter().all(|r| *r == Ok(Copied)));
    front.poll();
    let mut got: Vec<Vec<u8>> = std::iter::from_fn(|| front.receive()).collect();
    got.sort();
    let mut want = back.clone();
    want.sort();
    assert_eq!(got, want);
    rig.dev(&guest, |d| {
        let s = d.stats();
        assert!(s.tx_frames_per_queue.iter().all(|&n| n > 0), "{s:?}");
        assert!(s.rx_frames_per_queue.iter().all(|&n| n > 0), "{s:?}");
        let rx_ports: Vec<_> = d.ports().iter().map(|p| p.1).collect();
        let rx_sent = d
            .events()
            .sent
            .iter()
            .filter(|p| rx_ports.contains(p))
            .count();
        assert_eq!(rx_sent, 2, "one rx notification per queue");
    });
    let s = front.stats();
    assert!(
        s.queues_used()
            .iter()
            .all(|q| q.tx_frames > 0 && q.rx_frames > 0)
    );
}

#[test]
fn split_channels_alone_and_neither_both_connect() {
    for (split, ports) in [(true, 2), (false, 1)] {
        let rig = Rig::new();
        let mut guest = rig.add_guest(5, 0);
        let mut config = netfront::Config::default();
        config.offloads.multi_queue = false;
        config.offloads.split = split;
        let mut front = rig.connect_with(&mut guest, config);
        assert_eq!(front.queue_count(), 1);
        assert_eq!(rig.front_key(&guest, "multi-queue-num-queues"), None);
        rig.dev(&guest, |d| {
            assert_eq!(d.stats().queues, 1);
            assert_eq!(d.stats().split_connects, u64::from(split));
            assert_eq!(d.events().bound.len(), ports);
        });
        front.send(&udp(2, 40_000, 100)).unwrap();
        front.flush().unwrap();
        rig.step();
        assert_eq!(rig.sent(&guest).len(), 1);
        assert!(
            rig.deliver(&guest, &[udp(9, 9, 90)])
                .iter()
                .all(|r| *r == Ok(Copied))
        );
        front.poll();
        assert!(front.receive().is_some());
    }
}
