//! A backend that misbehaves: every bad response is counted, nothing in it is used, the
//! device keeps working after it; an impossible producer index ends the device.

use super::netback::Fault;
use super::*;
use crate::error::NetError;
use abi::io::netif::{NETIF_RSP_DROPPED, NETIF_RSP_ERROR, NETIF_RSP_NULL};

/// Sends frames `0..n` (100 bytes each) and lets the backend answer.
fn send_burst(rig: &mut Rig, n: u8) {
    for i in 0..n {
        rig.dev.send(&frame(i, 100)).unwrap();
    }
    rig.dev.flush().unwrap();
    rig.backend();
}

#[test]
fn tx_responses_with_a_bad_id_status_or_duplicate_free_nothing_else() {
    for (fault, bad, errors, stuck) in [
        (Fault::IdOffset(1000), 1, 0, 1),
        (Fault::IdOffset(1), 1, 0, 1),
        (Fault::Duplicate, 1, 0, 1),
        (Fault::Status(7), 1, 0, 1),
        (Fault::Status(NETIF_RSP_NULL), 1, 0, 1),
        (Fault::Status(NETIF_RSP_ERROR), 0, 1, 0),
        (Fault::Status(NETIF_RSP_DROPPED), 0, 1, 0),
    ] {
        let mut rig = Rig::new();
        send_burst(&mut rig, 1);
        // The next burst reuses buffer 0, then buffer 1, whose response is the faulty one (a
        // duplicate names buffer 0 again, an offset of 1 names buffer 2, not in flight).
        rig.back.tx_faults.extend([Fault::IdOffset(0), fault]);
        send_burst(&mut rig, 2);
        let stats = rig.dev.stats();
        assert_eq!(stats.bad_responses, bad, "{fault:?}");
        assert_eq!(stats.tx_errors, errors, "{fault:?}");
        assert_eq!(rig.dev.tx_in_flight(), stuck, "{fault:?}");
        // The device goes on.
        send_burst(&mut rig, 3);
        assert_eq!(rig.dev.tx_in_flight(), stuck, "{fault:?}");
        assert_eq!(rig.dev.ended(), None);
    }
}

#[test]
fn rx_responses_that_fail_a_check_drop_their_packet_only() {
    for (fault, bad) in [
        (Fault::IdOffset(1), 1),
        (Fault::IdOffset(300), 1),
        (Fault::Duplicate, 1),
        (Fault::Offset(4000), 1),
        (Fault::Offset(u16::MAX), 1),
        (Fault::Status(-3), 1),
        (Fault::Status(NETIF_RSP_ERROR), 0),
        (Fault::Status(NETIF_RSP_DROPPED), 0),
        // Shorter than an Ethernet header: a valid slot, but no frame.
        (Fault::Status(5), 0),
        (Fault::Flags(1 << 4), 1),
        (Fault::Flags(1 << 9), 1),
    ] {
        let mut rig = Rig::new();
        rig.back.to_guest.push_back(frame(1, 200));
        rig.backend();
        rig.back.rx_faults.push_back(fault);
        rig.back.to_guest.push_back(frame(2, 200));
        rig.back.to_guest.push_back(frame(3, 200));
        rig.backend();
        assert_eq!(
            rig.received(),
            vec![frame(1, 200), frame(3, 200)],
            "{fault:?}"
        );
        let stats = rig.dev.stats();
        assert_eq!(
            (stats.rx_dropped, stats.bad_responses),
            (1, bad),
            "{fault:?}"
        );
        assert_eq!(
            rig.dev.rx_posted(),
            128,
            "{fault:?}: the buffer is posted again"
        );
        assert_eq!(rig.dev.ended(), None);
    }
}

#[test]
fn a_bad_slot_inside_a_chain_drops_the_whole_packet() {
    let mut rig = Rig::new();
    rig.back.rx_slot_bytes = 400;
    // The second of three slots runs past its page.
    rig.back
        .rx_faults
        .extend([Fault::IdOffset(0), Fault::Offset(3900)]);
    rig.back.to_guest.push_back(frame(1, 1200));
    rig.back.to_guest.push_back(frame(2, 300));
    rig.backend();
    assert_eq!(rig.received(), vec![frame(2, 300)]);
    let stats = rig.dev.stats();
    assert_eq!((stats.rx_dropped, stats.bad_responses), (1, 1));
}

#[test]
fn an_impossible_tx_producer_ends_the_device() {
    let mut rig = Rig::new();
    rig.back.tx_faults.push_back(Fault::Overrun(5));
    rig.dev.send(&frame(0, 100)).unwrap();
    rig.dev.flush().unwrap();
    rig.backend();
    rig.dev.poll();
    assert_eq!(rig.dev.ended(), Some(NetError::RingCorrupt));
    assert_eq!(rig.dev.send(&frame(1, 100)), Err(NetError::RingCorrupt));
    assert!(rig.dev.receive().is_none());
}

#[test]
fn an_impossible_rx_producer_ends_the_device() {
    let mut rig = Rig::with(
        Some("1500"),
        Config {
            tx_buffers: 4,
            rx_buffers: 4,
            ..Config::default()
        },
    );
    rig.back.rx_faults.push_back(Fault::Overrun(4));
    rig.back.to_guest.push_back(frame(1, 100));
    rig.backend();
    rig.dev.poll();
    assert_eq!(rig.dev.ended(), Some(NetError::RingCorrupt));
    assert_eq!(
        rig.received(),
        Vec::<Vec<u8>>::new(),
        "nothing taken past the check"
    );
    assert!(rig.dev.stats().bad_responses >= 1);
}
