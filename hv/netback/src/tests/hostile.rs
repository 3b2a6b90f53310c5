//! A front end that breaks every tx rule, while a second guest's netfront keeps working on
//! the same domain 0: what Linux treats as fatal disables only the bad vif (with its reason);
//! what Linux refuses is answered `NETIF_RSP_ERROR` on every slot and the vif goes on.

use super::raw::{RawFront, txreq};
use super::rig::{Front, Guest, Rig, far, frame};
use crate::Delivered::{Copied, Queued};
use crate::{DeliverError, FatalError};
use abi::io::netif::{
    NETIF_RSP_ERROR, NETIF_RSP_NULL, NETIF_RSP_OKAY, NETRXF_MORE_DATA, NETTXF_CSUM_BLANK,
    NETTXF_DATA_VALIDATED, NETTXF_EXTRA_INFO, NETTXF_MORE_DATA, NetifExtraInfo, NetifExtraInfoGso,
    NetifExtraInfoU, NetifTxRequest, XEN_NETIF_EXTRA_FLAG_MORE, XEN_NETIF_EXTRA_TYPE_GSO,
    XEN_NETIF_EXTRA_TYPE_HASH, XEN_NETIF_EXTRA_TYPE_MCAST_ADD, XEN_NETIF_GSO_TYPE_TCPV4,
};
use std::format;
use std::vec::Vec;
use xenbus::Instant;
use xenbus::xenstore::TxId;

/// A hostile raw front end in domain 5 (with `feature-sg` if `sg`) and a netfront in
/// domain 6.
fn two_guests(sg: bool) -> (Rig, RawFront, Guest, Front) {
    let rig = Rig::new();
    let bad = rig.add_guest(5, 0);
    let bad = RawFront::connect(&rig, bad, sg);
    let mut good = rig.add_guest(6, 0);
    let front = rig.connect(&mut good);
    (rig, bad, good, front)
}

/// The good guest sends and receives as if nothing happened.
fn good_guest_works(rig: &Rig, good: &Guest, front: &mut Front) {
    let out = frame(0x42, 600);
    front.send(&out).unwrap();
    front.flush().unwrap();
    rig.step();
    assert_eq!(rig.sent(good), std::slice::from_ref(&out));
    let back = frame(0x24, 1200);
    assert_eq!(rig.deliver(good, std::slice::from_ref(&back)), [Ok(Copied)]);
    assert_eq!(front.receive(), Some(back));
    rig.dev(good, |d| assert!(!d.is_disabled()));
}

/// An extra-info slot as a tx request.
fn extra(type_: u8, flags: u8, u: NetifExtraInfoU) -> NetifTxRequest {
    NetifExtraInfo { type_, flags, u }.to_tx_request()
}

fn gso(size: u16, type_: u8) -> NetifTxRequest {
    extra(
        XEN_NETIF_EXTRA_TYPE_GSO,
        0,
        NetifExtraInfoU {
            gso: NetifExtraInfoGso {
                size,
                type_,
                pad: 0,
                features: 0,
            },
        },
    )
}

/// A chain: a first slot of `total` bytes and `frags` following slots of `each` bytes, all
/// in page `gref` from offset 0.
fn chain(gref: u32, frags: usize, each: u16, first_own: u16) -> Vec<NetifTxRequest> {
    let total = first_own + each * frags as u16;
    let mut v = std::vec![txreq(gref, 0, NETTXF_MORE_DATA, 100, total)];
    for i in 0..frags {
        let flags = if i + 1 < frags { NETTXF_MORE_DATA } else { 0 };
        v.push(txreq(gref, 0, flags, 101 + i as u16, each));
    }
    v
}

#[test]
fn each_fatal_request_disables_only_its_vif_with_linuxs_reason() {
    type Case = (&'static str, fn(u32) -> Vec<NetifTxRequest>, FatalError);
    let cases: [Case; 11] = [
        (
            "first slot crosses its page",
            |g| std::vec![txreq(g, 4000, 0, 1, 200)],
            FatalError::CrossPage {
                offset: 4000,
                size: 200,
            },
        ),
        (
            "a following slot crosses its page",
            |g| {
                std::vec![
                    txreq(g, 0, NETTXF_MORE_DATA, 1, 500),
                    txreq(g, 3900, 0, 2, 200)
                ]
            },
            FatalError::CrossPage {
                offset: 3900,
                size: 200,
            },
        ),
        (
            "a first slot one byte past its page",
            |g| std::vec![txreq(g, 4000, 0, 1, 97)],
            FatalError::CrossPage {
                offset: 4000,
                size: 97,
            },
        ),
        (
            "a following slot one byte past its page",
            |g| {
                std::vec![
                    txreq(g, 0, NETTXF_MORE_DATA, 1, 500),
                    txreq(g, 4000, 0, 2, 97)
                ]
            },
            FatalError::CrossPage {
                offset: 4000,
                size: 97,
            },
        ),
        (
            "more than 20 slots after the first",
            |g| chain(g, 21, 60, 60),
            FatalError::TooManySlots { slots: 20 },
        ),
        (
            "a chain beyond the producer",
            |g| {
                std::vec![
                    txreq(g, 0, NETTXF_MORE_DATA, 1, 500),
                    txreq(g, 0, NETTXF_MORE_DATA, 2, 100)
                ]
            },
            FatalError::ChainBeyondProducer { published: 1 },
        ),
        (
            "an announced extra never published",
            |g| std::vec![txreq(g, 0, NETTXF_EXTRA_INFO, 1, 500)],
            FatalError::MissingExtra,
        ),
        (
            "an extra of type 0",
            |g| {
                std::vec![
                    txreq(g, 0, NETTXF_EXTRA_INFO, 1, 500),
                    extra(0, 0, NetifExtraInfoU::default())
                ]
            },
            FatalError::BadExtraType(0),
        ),
        (
            "an extra of an unknown type",
            |g| {
                std::vec![
                    txreq(g, 0, NETTXF_EXTRA_INFO, 1, 500),
                    extra(9, 0, NetifExtraInfoU::default())
                ]
            },
            FatalError::BadExtraType(9),
        ),
        (
            "a GSO extra of size 0",
            |g| {
                std::vec![
                    txreq(g, 0, NETTXF_EXTRA_INFO, 1, 500),
                    gso(0, XEN_NETIF_GSO_TYPE_TCPV4)
                ]
            },
            FatalError::GsoSizeZero,
        ),
        (
            "a GSO extra of an unknown type",
            |g| std::vec![txreq(g, 0, NETTXF_EXTRA_INFO, 1, 500), gso(1448, 7)],
            FatalError::BadGsoType(7),
        ),
    ];
    for (what, requests, reason) in cases {
        let (rig, mut bad, good, mut front) = two_guests(true);
        let page = bad.grant_data(&frame(1, 4096), true);
        // A good packet first: it is answered and handed out before the bad one.
        bad.submit(&[txreq(page, 0, 0, 77, 60)]);
        bad.submit(&requests(page));
        rig.step();
        assert_eq!(rig.sent(&bad.guest), [frame(1, 60)], "{what}");
        let answered = bad.tx_responses();
        assert_eq!(
            answered.len(),
            1,
            "{what}: only the good packet is answered"
        );
        assert_eq!((answered[0].id, answered[0].status), (77, NETIF_RSP_OKAY));
        rig.dev(&bad.guest, |d| {
            assert!(d.is_disabled(), "{what}");
            assert_eq!(d.fatal_error(), Some(reason), "{what}");
            assert_eq!(d.stats().fatal_errors, 1, "{what}");
            // Carrier off: nothing goes to it either; the rings stay until it disconnects.
            assert_eq!(
                d.deliver(&frame(3, 60), Instant::from_nanos(0)),
                Err(DeliverError::NotConnected)
            );
            assert!(d.is_connected());
        });
        assert!(!format!("{reason}").is_empty());
        // Later requests, good or bad, are not looked at.
        bad.submit(&[txreq(page, 0, 0, 78, 60)]);
        rig.step();
        assert!(rig.sent(&bad.guest).is_empty(), "{what}");
        assert!(bad.tx_responses().is_empty(), "{what}");
        assert_eq!(rig.back_key(&bad.guest, "state").as_deref(), Some("4"));
        good_guest_works(&rig, &good, &mut front);
    }
}

#[test]
fn an_impossible_producer_index_disables_only_that_vif() {
    let (rig, bad, good, mut front) = two_guests(false);
    bad.force_tx_req_prod(300);
    rig.step();
    rig.dev(&bad.guest, |d| {
        assert_eq!(
            d.fatal_error(),
            Some(FatalError::ImpossibleProducer {
                ring: "tx",
                prod: 300,
                cons: 0
            })
        );
    });
    good_guest_works(&rig, &good, &mut front);

    // The same on the rx ring, seen when a frame is delivered.
    let (rig, bad, good, mut front) = two_guests(false);
    bad.force_rx_req_prod(1000);
    assert_eq!(
        rig.deliver(&bad.guest, &[frame(1, 60)]),
        [Err(DeliverError::NotConnected)]
    );
    rig.dev(&bad.guest, |d| {
        assert!(matches!(
            d.fatal_error(),
            Some(FatalError::ImpossibleProducer { ring: "rx", .. })
        ));
        assert_eq!(d.stats().rx_errors, 1);
    });
    good_guest_works(&rig, &good, &mut front);
}

#[test]
fn refused_packets_get_an_error_on_every_slot_and_the_vif_goes_on() {
    let (rig, mut bad, good, mut front) = two_guests(true);
    let page = bad.grant_data(&frame(1, 4096), true);
    let revoked = bad.grant_data(&frame(2, 4096), true);
    bad.guest.grants.revoke(revoked);
    let mut cases: Vec<(&str, Vec<NetifTxRequest>, Vec<i16>)> = std::vec![
        (
            "a runt",
            std::vec![txreq(page, 0, 0, 1, 13)],
            std::vec![NETIF_RSP_ERROR]
        ),
        (
            "a revoked grant",
            std::vec![txreq(revoked, 0, 0, 2, 60)],
            std::vec![NETIF_RSP_ERROR]
        ),
        (
            "a grant never made",
            std::vec![txreq(400, 0, 0, 3, 60)],
            std::vec![NETIF_RSP_ERROR]
        ),
        (
            "a reserved grant",
            std::vec![txreq(0, 0, 0, 4, 60)],
            std::vec![NETIF_RSP_ERROR]
        ),
        (
            "a slot larger than what remains",
            std::vec![
                txreq(page, 0, NETTXF_MORE_DATA, 5, 100),
                txreq(page, 0, 0, 6, 200)
            ],
            std::vec![NETIF_RSP_ERROR; 2],
        ),
        (
            "19 slots after the first",
            chain(page, 19, 60, 60),
            std::vec![NETIF_RSP_ERROR; 20]
        ),
        (
            "a revoked grant in a following slot",
            std::vec![
                txreq(page, 0, NETTXF_MORE_DATA, 7, 100),
                txreq(revoked, 0, 0, 8, 40)
            ],
            std::vec![NETIF_RSP_ERROR; 2],
        ),
    ];
    // A GSO packet that is not TCP (the page holds no IP header): answered, not sent, as
    // Linux drops what `skb_checksum_setup` refuses.
    cases.push((
        "GSO of no TCP packet",
        std::vec![
            txreq(page, 0, NETTXF_EXTRA_INFO, 9, 500),
            gso(1448, XEN_NETIF_GSO_TYPE_TCPV4),
        ],
        std::vec![NETIF_RSP_OKAY, NETIF_RSP_NULL],
    ));
    // The page's last byte is inside it: offset + size == 4096 is a packet.
    cases.push((
        "slots ending at the page's end",
        std::vec![
            txreq(page, 4000, NETTXF_MORE_DATA, 11, 96 + 50),
            txreq(page, 4046, 0, 12, 50)
        ],
        std::vec![NETIF_RSP_OKAY; 2],
    ));
    // The largest chain Linux takes (18 slots after the first) is a packet.
    cases.push((
        "18 slots after the first",
        chain(page, 18, 60, 60),
        std::vec![NETIF_RSP_OKAY; 19],
    ));
    let mut refused = 0;
    for (what, requests, statuses) in cases {
        bad.submit(&requests);
        rig.step();
        let answered = bad.tx_responses();
        let got: Vec<i16> = answered.iter().map(|r| r.status).collect();
        assert_eq!(got, statuses, "{what}");
        for (request, response) in requests.iter().zip(&answered) {
            if response.status != NETIF_RSP_NULL {
                assert_eq!(response.id, request.id, "{what}: ids echoed");
            }
        }
        let sent = rig.sent(&bad.guest);
        if what == "slots ending at the page's end" {
            let data = frame(1, 4096);
            assert_eq!(sent, [[&data[4000..], &data[4046..]].concat()]);
        } else if what == "GSO of no TCP packet" {
            assert!(sent.is_empty(), "{what}");
            rig.dev(&bad.guest, |d| assert_eq!(d.stats().tx_dropped, 1));
        } else if statuses[0] == NETIF_RSP_OKAY {
            assert_eq!(sent, [frame(1, 60).repeat(19)]);
        } else {
            refused += 1;
            assert!(sent.is_empty(), "{what}");
        }
        rig.dev(&bad.guest, |d| {
            assert!(!d.is_disabled(), "{what}");
            assert_eq!(d.stats().tx_errors, refused, "{what}");
            // Every data mapping is gone again.
            assert_eq!(d.grants().mapped.len(), 2, "{what}");
        });
    }
    // A good packet still goes.
    bad.submit(&[txreq(page, 10, 0, 50, 70)]);
    rig.step();
    assert_eq!(rig.sent(&bad.guest), [frame(1, 4096)[10..80].to_vec()]);
    good_guest_works(&rig, &good, &mut front);
}

#[test]
fn a_chain_is_assembled_in_ring_order_and_extras_are_answered_null() {
    let (rig, mut bad, _good, _front) = two_guests(true);
    let a = bad.grant_data(&frame(1, 4096), true);
    let b = bad.grant_data(&frame(2, 4096), true);
    let c = bad.grant_data(&frame(3, 4096), true);
    let hash = extra(
        XEN_NETIF_EXTRA_TYPE_HASH,
        XEN_NETIF_EXTRA_FLAG_MORE,
        NetifExtraInfoU { pad: [1, 2, 3] },
    );
    let mcast = extra(
        XEN_NETIF_EXTRA_TYPE_MCAST_ADD,
        0,
        NetifExtraInfoU {
            pad: [0x0001, 0x5e00, 0x0001],
        },
    );
    bad.submit(&[
        txreq(
            a,
            100,
            NETTXF_MORE_DATA | NETTXF_EXTRA_INFO,
            1,
            300 + 2000 + 500,
        ),
        hash,
        extra(XEN_NETIF_EXTRA_TYPE_HASH, 0, NetifExtraInfoU::default()),
        txreq(b, 0, NETTXF_MORE_DATA, 2, 2000),
        txreq(c, 3596, 0, 3, 500),
        // A multicast add (with its dummy request): answered, no frame.
        txreq(a, 0, NETTXF_EXTRA_INFO, 4, 0),
        mcast,
    ]);
    rig.step();
    let statuses: Vec<(u16, i16)> = bad
        .tx_responses()
        .iter()
        .map(|r| (r.id, r.status))
        .collect();
    assert_eq!(
        statuses,
        [
            (1, NETIF_RSP_OKAY),
            (0, NETIF_RSP_NULL),
            (0, NETIF_RSP_NULL),
            (2, NETIF_RSP_OKAY),
            (3, NETIF_RSP_OKAY),
            (4, NETIF_RSP_OKAY),
            (0, NETIF_RSP_NULL),
        ]
    );
    let expected = [
        &frame(1, 4096)[100..400],
        &frame(2, 4096)[..2000],
        &frame(3, 4096)[3596..],
    ]
    .concat();
    assert_eq!(rig.sent(&bad.guest), [expected]);
    rig.dev(&bad.guest, |d| {
        let s = d.stats();
        assert_eq!((s.tx_frames, s.tx_slots, s.tx_errors), (1, 7, 0));
    });
}

/// An IPv4/UDP frame with a blank checksum field, or IPv4/TCP if `tcp`.
fn ip_frame(tcp: bool, payload: usize) -> Vec<u8> {
    let l4 = if tcp { 20 } else { 8 } + payload;
    let mut f = std::vec![0u8; 14 + 20 + l4];
    f[..6].copy_from_slice(&[0x00, 0x16, 0x3e, 0, 0, 1]);
    f[6..12].copy_from_slice(&[0x00, 0x16, 0x3e, 0, 5, 0]);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&((20 + l4) as u16).to_be_bytes());
    ip[8] = 64;
    ip[9] = if tcp { 6 } else { 17 };
    ip[12..16].copy_from_slice(&[10, 0, 0, 5]);
    ip[16..20].copy_from_slice(&[10, 0, 0, 1]);
    let l4b = &mut f[34..];
    l4b[0..4].copy_from_slice(&[0x30, 0x39, 0x00, 0x50]);
    if tcp {
        l4b[12] = 0x50;
        l4b[13] = 0x18;
    } else {
        l4b[4..6].copy_from_slice(&(l4 as u16).to_be_bytes());
    }
    for (i, b) in f[14 + 20 + (l4 - payload)..].iter_mut().enumerate() {
        *b = (i * 13) as u8;
    }
    f
}

#[test]
fn csum_blank_frames_leave_with_their_checksum_complete() {
    let (rig, mut bad, _good, _front) = two_guests(false);
    let udp = ip_frame(false, 301);
    let tcp = ip_frame(true, 1000);
    let arp = frame(7, 60);
    // IPv4 says TCP, but the packet ends 10 bytes into the TCP header: too short to carry
    // the checksum its flags speak of.
    let mut short = tcp[..14 + 20 + 10].to_vec();
    short[16..18].copy_from_slice(&30u16.to_be_bytes());
    let g_udp = bad.grant_data(&udp, true);
    let g_tcp = bad.grant_data(&tcp, true);
    let g_arp = bad.grant_data(&arp, true);
    let g_short = bad.grant_data(&short, true);
    bad.submit(&[
        txreq(g_udp, 0, NETTXF_CSUM_BLANK, 1, udp.len() as u16),
        txreq(g_tcp, 0, NETTXF_CSUM_BLANK, 2, tcp.len() as u16),
        // Not IP: cannot be completed, answered OKAY and dropped (as Linux does).
        txreq(g_arp, 0, NETTXF_CSUM_BLANK, 3, arp.len() as u16),
        // Too short: the same.
        txreq(
            g_short,
            0,
            NETTXF_CSUM_BLANK | NETTXF_DATA_VALIDATED,
            4,
            short.len() as u16,
        ),
    ]);
    rig.step();
    assert!(
        bad.tx_responses()
            .iter()
            .all(|r| r.status == NETIF_RSP_OKAY)
    );
    let sent = rig.sent(&bad.guest);
    let mut expected_udp = udp.clone();
    let mut expected_tcp = tcp.clone();
    // smoltcp's checksums, through netfront.
    netfront::checksum::complete_checksum(&mut expected_udp).unwrap();
    netfront::checksum::complete_checksum(&mut expected_tcp).unwrap();
    assert_ne!(expected_udp, udp);
    assert_eq!(sent, [expected_udp, expected_tcp]);
    rig.dev(&bad.guest, |d| {
        let s = d.stats();
        assert_eq!((s.tx_csum_completed, s.tx_dropped, s.tx_frames), (2, 2, 2));
        assert!(!d.is_disabled());
    });
}

#[test]
fn rx_to_an_sg_front_end_takes_one_slot_per_page_and_a_bad_buffer_fails_its_slot() {
    let (rig, mut bad, _good, _front) = two_guests(true);
    let grefs = bad.post_rx(5);
    let big = frame(5, 9000);
    assert_eq!(
        rig.deliver(&bad.guest, &[big.clone(), frame(6, 60)]),
        [Ok(Copied), Ok(Copied)]
    );
    let rsp = bad.rx_responses();
    let got: Vec<(u16, u16, u16, i16)> = rsp
        .iter()
        .map(|r| (r.id, r.offset, r.flags, r.status))
        .collect();
    assert_eq!(
        got,
        [
            (0, 0, NETRXF_MORE_DATA, 4096),
            (1, 0, NETRXF_MORE_DATA, 4096),
            (2, 0, 0, 808),
            (3, 0, 0, 60),
        ]
    );
    let mut data = Vec::new();
    for (gref, r) in grefs.iter().zip(&rsp[..3]) {
        data.extend_from_slice(&bad.page(*gref)[..r.status as usize]);
    }
    assert_eq!(data, big);
    assert_eq!(bad.page(grefs[3])[..60], frame(6, 60));
    rig.dev(&bad.guest, |d| {
        let s = d.stats();
        assert_eq!((s.rx_frames, s.rx_slots, s.rx_notifications), (2, 4, 1));
    });

    // The front end revokes its last posted buffer: that slot is answered with an error.
    bad.guest.grants.revoke(grefs[4]);
    assert_eq!(
        rig.deliver(&bad.guest, &[frame(7, 60)]),
        [Err(DeliverError::BadBuffer)]
    );
    let rsp = bad.rx_responses();
    assert_eq!((rsp[0].id, rsp[0].status), (4, NETIF_RSP_ERROR));
    rig.dev(&bad.guest, |d| {
        assert!(!d.is_disabled());
        assert_eq!(d.stats().rx_errors, 1);
        // No buffers left: it waits, and is dropped and counted once it waited too long.
        assert_eq!(d.deliver(&frame(8, 60), Instant::from_nanos(0)), Ok(Queued));
        assert_eq!(
            d.drain_rx(Instant::from_nanos(crate::RX_DRAIN_TIMEOUT_NS)),
            0
        );
        assert_eq!((d.rx_waiting(), d.stats().rx_dropped), (1, 0));
        assert_eq!(
            d.drain_rx(Instant::from_nanos(crate::RX_DRAIN_TIMEOUT_NS + 1)),
            0
        );
        assert_eq!(d.rx_waiting(), 0);
        assert_eq!((d.stats().rx_dropped, d.stats().rx_expired), (1, 1));
    });
}

/// Two queues with split channels: queue 0 on grants 8 and 9 and ports 7 and 8, queue 1 on
/// 10 and 11 and ports 12 and 13; `multi-queue-num-queues` = `count`.
fn two_queues(rig: &Rig, g: &mut Guest, count: &str) {
    let w = |key: &str, value: &str| rig.hub.write(&format!("{}/{key}", g.front), value);
    w("multi-queue-num-queues", count);
    for (q, tx, rx, ptx, prx) in [(0, "8", "9", "7", "8"), (1, "10", "11", "12", "13")] {
        w(&format!("queue-{q}/tx-ring-ref"), tx);
        w(&format!("queue-{q}/rx-ring-ref"), rx);
        w(&format!("queue-{q}/event-channel-tx"), ptx);
        w(&format!("queue-{q}/event-channel-rx"), prx);
    }
}

/// Error node of vif 5/0.
const ERROR_NODE: &str = "/local/domain/0/error/backend/vif/5/0/error";

#[test]
fn bad_xenstore_values_fail_the_device_as_linux_does() {
    type Setup = fn(&Rig, &mut Guest);
    let write = |guest: &mut Guest, key: &str, value: &str| {
        let path = format!("{}/{key}", guest.front);
        guest.xs.write(TxId::NONE, &path, value, far()).unwrap();
    };
    let cases: [(&str, Setup, &str); 13] = [
        (
            "no request-rx-copy",
            |rig, g| rig.hub.remove(&format!("{}/request-rx-copy", g.front)),
            "-95 /local/domain/5/device/vif/0/request-rx-copy: rx-flip unsupported",
        ),
        (
            "no mac",
            |rig, g| rig.hub.remove(&format!("{}/mac", g.back)),
            "-2 parsing /local/domain/0/backend/vif/5/0/mac",
        ),
        (
            "a bad mac",
            |rig, g| {
                rig.hub
                    .write(&format!("{}/mac", g.back), "00:16:3e:zz:00:01")
            },
            "-22 parsing /local/domain/0/backend/vif/5/0/mac",
        ),
        (
            "four queues",
            |rig, g| {
                rig.hub
                    .write(&format!("{}/multi-queue-num-queues", g.front), "4")
            },
            "-22 guest requested 4 queues, exceeding the maximum of 2.",
        ),
        (
            "three queues",
            |rig, g| two_queues(rig, g, "3"),
            "-22 guest requested 3 queues, exceeding the maximum of 2.",
        ),
        (
            "zero queues",
            |rig, g| two_queues(rig, g, "0"),
            "-22 guest requested 0 queues.",
        ),
        (
            "a queue count that is no number",
            |rig, g| two_queues(rig, g, "two"),
            "-22 reading /local/domain/5/device/vif/0/multi-queue-num-queues",
        ),
        (
            "two queues, queue 1 without an event channel (queue 0 mapped and bound first)",
            |rig, g| {
                two_queues(rig, g, "2");
                rig.hub
                    .remove(&format!("{}/queue-1/event-channel-tx", g.front));
            },
            "-2 reading /local/domain/5/device/vif/0/queue-1/event-channel(-tx/rx)",
        ),
        (
            "two queues, queue 1 without its rx ring",
            |rig, g| {
                two_queues(rig, g, "2");
                rig.hub.remove(&format!("{}/queue-1/rx-ring-ref", g.front));
            },
            "-2 reading /local/domain/5/device/vif/0/queue-1/ring-ref",
        ),
        (
            "two queues, flat keys only",
            |rig, g| {
                rig.hub
                    .write(&format!("{}/multi-queue-num-queues", g.front), "2");
            },
            "-2 reading /local/domain/5/device/vif/0/queue-0/ring-ref",
        ),
        (
            "two queues, queue 1's ring grant does not map",
            |rig, g| {
                two_queues(rig, g, "2");
                rig.hub
                    .write(&format!("{}/queue-1/tx-ring-ref", g.front), "300");
            },
            "-14 mapping shared-frames 300/11 port tx 12 rx 13",
        ),
        (
            "no rx-ring-ref",
            |rig, g| rig.hub.remove(&format!("{}/rx-ring-ref", g.front)),
            "-2 reading /local/domain/5/device/vif/0/ring-ref",
        ),
        (
            "a ring grant that does not map",
            |rig, g| rig.hub.write(&format!("{}/tx-ring-ref", g.front), "300"),
            "-14 mapping shared-frames 300/",
        ),
    ];
    for (what, setup, error) in cases {
        let rig = Rig::new();
        let mut guest = rig.add_guest(5, 0);
        for (key, value) in [
            ("tx-ring-ref", "8"),
            ("rx-ring-ref", "9"),
            ("event-channel", "7"),
            ("request-rx-copy", "1"),
        ] {
            write(&mut guest, key, value);
        }
        // Grants 8 to 11: four ring pages (two queues' worth).
        for _ in 0..4 {
            use xenbus::PageProvider;
            use xenbus::grant::GrantAccess;
            let page = guest.memory.alloc_zeroed().unwrap();
            // Kept granted for the rest of the test.
            let _granted = guest
                .grants
                .grant(page, xenbus::DomId::ZERO, false)
                .unwrap();
        }
        setup(&rig, &mut guest);
        write(&mut guest, "state", "4");
        rig.settle();
        let node = rig.hub.read(ERROR_NODE).unwrap_or_default();
        assert!(node.starts_with(error), "{what}: {node}");
        assert_eq!(
            rig.back_key(&guest, "state").as_deref(),
            Some("5"),
            "{what}"
        );
        rig.dev(&guest, |d| {
            assert!(!d.is_connected(), "{what}");
            assert!(d.grants().mapped.is_empty(), "{what}: nothing left mapped");
            assert!(d.events().bound.is_empty(), "{what}");
        });
    }
}

#[test]
fn netfronts_offloads_through_netback_csum_blank_completed_and_multi_slot_frames_whole() {
    let rig = Rig::new();
    let mut guest = rig.add_guest(5, 0);
    let mut front = rig.connect(&mut guest);
    // Every offload, GSO send included (this netback offers feature-gso-tcpv4); the rig's
    // `connect` asks for one queue and one channel.
    let one_queue = netfront::Offloads {
        split: false,
        multi_queue: false,
        ..netfront::Offloads::ALL
    };
    assert_eq!(front.offloads(), one_queue);
    // What smoltcp emits with TCP checksums left to the device: a zero checksum.
    let tcp = ip_frame(true, 1000);
    let mut complete = tcp.clone();
    netfront::checksum::complete_checksum(&mut complete).unwrap();
    front.send(&tcp).unwrap();
    front.flush().unwrap();
    rig.step();
    assert_eq!(rig.sent(&guest), [complete]);
    assert_eq!(front.stats().tx_csum_offloaded, 1);
    rig.dev(&guest, |d| {
        let s = d.stats();
        assert_eq!((s.tx_csum_completed, s.tx_dropped, s.tx_errors), (1, 0, 0));
    });
    // A frame over a page (netback's `feature-sg`) reaches the front end in several slots.
    let big = frame(3, 6000);
    assert_eq!(
        rig.deliver(&guest, std::slice::from_ref(&big)),
        [Ok(Copied)]
    );
    assert_eq!(
        front.receive(),
        None,
        "over the vif's MTU of 1500: netfront drops it"
    );
    assert_eq!(front.stats().rx_multi_slot, 0);
    rig.dev(&guest, |d| assert_eq!(d.stats().rx_slots, 2));
}
