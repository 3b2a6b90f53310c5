//! Frames both ways with an honest backend: batching and notifications, buffer reuse,
//! `more_data` chains, extra-info slots, `csum_blank`.

use super::*;
use crate::error::NetError;
use abi::io::netif::{
    NETRXF_CSUM_BLANK, NetifExtraInfo, NetifExtraInfoGso, NetifExtraInfoHash, NetifExtraInfoU,
    XEN_NETIF_EXTRA_FLAG_MORE, XEN_NETIF_EXTRA_TYPE_GSO, XEN_NETIF_EXTRA_TYPE_HASH,
};
use xenbus::grant::GrantAccess;

#[test]
fn a_burst_of_frames_costs_one_notification_and_arrives_intact() {
    let mut rig = Rig::new();
    let port = rig.dev.port();
    let before = rig.dev.platform().events.count(port);
    let frames: Vec<Vec<u8>> = (0..40)
        .map(|n| frame(n, 60 + usize::from(n) * 37))
        .collect();
    for f in &frames {
        rig.dev.send(f).unwrap();
    }
    assert!(
        rig.back.from_guest.is_empty(),
        "nothing published before flush"
    );
    rig.dev.flush().unwrap();
    assert_eq!(rig.dev.platform().events.count(port) - before, 1);
    rig.backend();
    assert_eq!(Vec::from(rig.back.from_guest.clone()), frames);
    assert_eq!(rig.dev.tx_in_flight(), 0, "every buffer reclaimed");
    let stats = rig.dev.stats();
    assert_eq!((stats.tx_packets, stats.tx_requests), (40, 40));
    assert_eq!(stats.tx_notifications, 1);
    assert_eq!(
        stats.tx_bytes,
        frames.iter().map(|f| f.len() as u64).sum::<u64>()
    );
}

#[test]
fn a_busy_backend_is_not_notified_again() {
    let mut rig = Rig::new();
    rig.dev.send(&frame(1, 100)).unwrap();
    rig.dev.flush().unwrap();
    // The backend has not run its final check since: it will look at the ring anyway, so
    // further pushes need no event.
    for n in 2..10 {
        rig.dev.send(&frame(n, 100)).unwrap();
        rig.dev.flush().unwrap();
    }
    assert_eq!(rig.dev.stats().tx_notifications, 1);
    rig.backend();
    assert_eq!(rig.back.from_guest.len(), 9);
    // Drained and re-armed: the next push notifies again.
    rig.dev.send(&frame(10, 100)).unwrap();
    rig.dev.flush().unwrap();
    assert_eq!(rig.dev.stats().tx_notifications, 2);
}

#[test]
fn frames_over_the_mtu_are_refused_and_never_reach_the_ring() {
    let mut rig = Rig::with(Some("1400"), Config::default());
    assert_eq!(
        rig.dev.send(&frame(0, 1415)),
        Err(NetError::FrameSize(1415))
    );
    assert_eq!(rig.dev.send(&[]), Err(NetError::FrameSize(0)));
    assert_eq!(rig.dev.send(&frame(0, 13)), Err(NetError::FrameSize(13)));
    rig.dev.send(&frame(0, 1414)).unwrap();
    rig.dev.flush().unwrap();
    rig.backend();
    assert_eq!(rig.back.from_guest.len(), 1);
    assert_eq!(rig.back.tx_violations, 0, "no slot crossed a page");
    assert_eq!(rig.dev.stats().tx_refused, 3);
}

#[test]
fn the_tx_pool_runs_out_and_comes_back_without_new_grants() {
    let mut rig = Rig::with(
        Some("1500"),
        Config {
            tx_buffers: 8,
            rx_buffers: 8,
            ..Config::default()
        },
    );
    let grants = rig.dev.platform().grants.grants_in_use();
    for round in 0..50u8 {
        for n in 0..8 {
            rig.dev.send(&frame(round ^ n, 1514)).unwrap();
        }
        assert_eq!(rig.dev.send(&frame(0, 64)), Err(NetError::TxFull));
        rig.dev.flush().unwrap();
        rig.backend();
    }
    assert_eq!(rig.back.from_guest.len(), 400);
    assert_eq!(rig.back.tx_violations, 0);
    assert_eq!(rig.dev.platform().grants.grants_in_use(), grants);
    // 8 buffers of 2048 bytes share 4 pages.
    assert_eq!(rig.dev.stats().grants_in_use, 2 + 4 + 8);
}

#[test]
fn received_frames_are_copies_and_the_ring_stays_full() {
    let mut rig = Rig::with(
        Some("1500"),
        Config {
            tx_buffers: 16,
            rx_buffers: 16,
            ..Config::default()
        },
    );
    let grants = rig.dev.platform().grants.grants_in_use();
    let mut expected = Vec::new();
    let mut got = Vec::new();
    for round in 0..20u8 {
        for n in 0..12u8 {
            let f = frame(round.wrapping_mul(13) ^ n, 42 + usize::from(n) * 100);
            rig.back.to_guest.push_back(f.clone());
            expected.push(f);
        }
        rig.backend();
        got.extend(rig.received());
        assert_eq!(rig.dev.rx_posted(), 16, "every buffer posted again");
    }
    assert_eq!(got, expected);
    let stats = rig.dev.stats();
    assert_eq!(stats.rx_packets, 240);
    assert_eq!((stats.bad_responses, stats.rx_dropped), (0, 0));
    assert_eq!(rig.dev.platform().grants.grants_in_use(), grants);
}

#[test]
fn a_backend_short_of_buffers_waits_for_the_refill_notification() {
    let mut rig = Rig::with(
        Some("1500"),
        Config {
            tx_buffers: 4,
            rx_buffers: 4,
            ..Config::default()
        },
    );
    for n in 0..10 {
        rig.back.to_guest.push_back(frame(n, 500));
    }
    rig.backend();
    assert_eq!(rig.back.to_guest.len(), 6, "four buffers, four frames");
    // The device refills when it takes the frames and, the backend having asked, notifies.
    let before = rig.dev.stats().rx_notifications;
    assert_eq!(rig.dev.queued_frames(), 4);
    rig.dev.poll();
    assert_eq!(rig.dev.stats().rx_notifications, before);
    let got = rig.received();
    assert_eq!(got.len(), 4);
    while !rig.back.to_guest.is_empty() {
        rig.backend();
        rig.received();
    }
    assert_eq!(rig.dev.stats().rx_packets, 10);
    assert!(rig.dev.stats().rx_notifications > before);
}

#[test]
fn more_data_chains_are_reassembled() {
    let mut rig = Rig::new();
    rig.back.rx_slot_bytes = 500;
    let big = frame(7, 1514);
    rig.back.to_guest.push_back(big.clone());
    rig.back.to_guest.push_back(frame(8, 100));
    rig.backend();
    assert_eq!(rig.received(), vec![big, frame(8, 100)]);
    assert_eq!(rig.dev.rx_posted(), 128);
}

#[test]
fn a_chain_longer_than_the_frame_or_the_slot_limit_is_dropped() {
    let mut rig = Rig::new();
    // 23 slots of 10 bytes: more slots than any backend may use.
    rig.back.rx_slot_bytes = 10;
    rig.back.to_guest.push_back(frame(1, 230));
    rig.backend();
    assert_eq!(rig.received(), Vec::<Vec<u8>>::new());
    assert_eq!(rig.dev.stats().rx_dropped, 1);
    // A chain adding up to more than MTU + 14.
    rig.back.rx_slot_bytes = 1000;
    rig.back.to_guest.push_back(frame(2, 1515));
    rig.back.to_guest.push_back(frame(3, 64));
    rig.backend();
    assert_eq!(rig.received(), vec![frame(3, 64)]);
    assert_eq!(rig.dev.stats().rx_dropped, 2);
}

fn hash_extra(flags: u8) -> NetifExtraInfo {
    NetifExtraInfo {
        type_: XEN_NETIF_EXTRA_TYPE_HASH,
        flags,
        u: NetifExtraInfoU {
            hash: NetifExtraInfoHash {
                type_: 1,
                algorithm: 1,
                value: [1, 2, 3, 4],
            },
        },
    }
}

#[test]
fn extra_info_slots_are_skipped_and_gso_is_dropped_without_gso_rx() {
    let mut rig = Rig::with(Some("1500"), NO_OFFLOADS);
    rig.back.rx_slot_bytes = 700;
    rig.back.rx_extras = vec![hash_extra(XEN_NETIF_EXTRA_FLAG_MORE), hash_extra(0)];
    rig.back.to_guest.push_back(frame(1, 1500));
    rig.backend();
    assert_eq!(rig.received(), vec![frame(1, 1500)]);

    rig.back.rx_extras = vec![NetifExtraInfo {
        type_: XEN_NETIF_EXTRA_TYPE_GSO,
        flags: 0,
        u: NetifExtraInfoU {
            gso: NetifExtraInfoGso {
                size: 1448,
                type_: 1,
                pad: 0,
                features: 0,
            },
        },
    }];
    rig.back.to_guest.push_back(frame(2, 1500));
    rig.back.to_guest.push_back(frame(3, 80));
    rig.backend();
    assert_eq!(rig.received(), vec![frame(3, 80)]);
    let stats = rig.dev.stats();
    assert_eq!((stats.rx_dropped, stats.bad_responses), (1, 0));

    let mut bad = hash_extra(0);
    bad.type_ = 9;
    rig.back.rx_extras = vec![bad];
    rig.back.to_guest.push_back(frame(4, 300));
    rig.back.to_guest.push_back(frame(5, 81));
    rig.backend();
    assert_eq!(rig.received(), vec![frame(5, 81)]);
    let stats = rig.dev.stats();
    assert_eq!((stats.rx_dropped, stats.bad_responses), (2, 1));
    assert_eq!(rig.dev.rx_posted(), 128);
}

/// An Ethernet/IPv4/TCP frame from 10.0.0.1:80 to 10.0.0.2:1234 with `payload`.
pub(super) fn tcp_frame(payload: &[u8]) -> Vec<u8> {
    use smoltcp::phy::ChecksumCapabilities;
    use smoltcp::wire::*;
    let src = Ipv4Address::new(10, 0, 0, 1);
    let dst = Ipv4Address::new(10, 0, 0, 2);
    let tcp = TcpRepr {
        src_port: 80,
        dst_port: 1234,
        control: TcpControl::Psh,
        seq_number: TcpSeqNumber(1000),
        ack_number: Some(TcpSeqNumber(2000)),
        window_len: 1024,
        window_scale: None,
        max_seg_size: None,
        sack_permitted: false,
        sack_ranges: [None, None, None],
        timestamp: None,
        payload,
    };
    let ip = Ipv4Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: IpProtocol::Tcp,
        payload_len: tcp.header_len() + payload.len(),
        hop_limit: 64,
    };
    let mut buf = vec![0u8; 14 + ip.buffer_len() + ip.payload_len];
    let mut eth = EthernetFrame::new_unchecked(&mut buf[..]);
    EthernetRepr {
        src_addr: EthernetAddress([2, 0, 0, 0, 0, 1]),
        dst_addr: EthernetAddress([0, 0x16, 0x3e, 0x12, 0x34, 0x56]),
        ethertype: EthernetProtocol::Ipv4,
    }
    .emit(&mut eth);
    let caps = ChecksumCapabilities::default();
    let mut ipp = Ipv4Packet::new_unchecked(eth.payload_mut());
    ip.emit(&mut ipp, &caps);
    let mut tcpp = TcpPacket::new_unchecked(ipp.payload_mut());
    tcp.emit(&mut tcpp, &src.into(), &dst.into(), &caps);
    buf
}

#[test]
fn csum_blank_frames_get_their_checksum_completed_without_offload() {
    use smoltcp::wire::{EthernetFrame, IpAddress, Ipv4Address, Ipv4Packet, TcpPacket};
    let mut rig = Rig::with(Some("1500"), NO_OFFLOADS);
    let good = tcp_frame(b"hello over a blank checksum");
    let mut blank = good.clone();
    // What Linux leaves in a CHECKSUM_PARTIAL segment: not the full checksum.
    let csum_at = 14 + 20 + 16;
    blank[csum_at] = 0x12;
    blank[csum_at + 1] = 0x34;
    assert_ne!(blank, good);
    rig.back.rx_flags = NETRXF_CSUM_BLANK;
    rig.back.to_guest.push_back(blank);
    // Not TCP or UDP over IPv4: cannot be completed, dropped.
    rig.back.to_guest.push_back(frame(9, 60));
    rig.backend();
    let got = rig.received();
    assert_eq!(got, vec![good.clone()]);
    let eth = EthernetFrame::new_checked(&got[0][..]).unwrap();
    let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
    let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
    assert!(tcp.verify_checksum(
        &IpAddress::Ipv4(Ipv4Address::new(10, 0, 0, 1)),
        &IpAddress::Ipv4(Ipv4Address::new(10, 0, 0, 2))
    ));
    let stats = rig.dev.stats();
    assert_eq!((stats.rx_csum_completed, stats.rx_dropped), (1, 1));
}
