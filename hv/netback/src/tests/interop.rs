//! Our netfront against our netback.

use super::rig::{Rig, far, frame, mac_of};
use crate::{DeliverError, FEATURE_KEYS};
use std::format;
use std::vec::Vec;

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
        Some("0")
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
fn a_full_rx_ring_drops_and_counts_and_recovers_once_buffers_are_posted() {
    let rig = Rig::new();
    let mut guest = rig.add_guest(5, 0);
    let mut front = rig.connect(&mut guest);
    let posted = front.rx_posted();
    assert_eq!(posted, 128);
    let frames: Vec<Vec<u8>> = (0..posted + 3).map(|i| frame(i as u8, 100)).collect();
    let results = rig.deliver(&guest, &frames);
    assert!(results[..posted].iter().all(Result::is_ok));
    assert_eq!(results[posted..], [Err(DeliverError::NoBuffers); 3]);
    rig.dev(&guest, |d| {
        assert_eq!(d.stats().rx_dropped, 3);
        assert_eq!(d.stats().rx_frames, posted as u64);
    });
    let received: Vec<Vec<u8>> = std::iter::from_fn(|| front.receive()).collect();
    assert_eq!(received, frames[..posted]);
    // The front end posted its buffers again: delivery works.
    assert_eq!(rig.deliver(&guest, &frames[..1]), [Ok(())]);
    assert_eq!(front.receive().as_ref(), Some(&frames[0]));
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
            Ok(())
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
        assert_eq!(d.deliver(&frame(1, 60)), Err(DeliverError::NotConnected));
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
