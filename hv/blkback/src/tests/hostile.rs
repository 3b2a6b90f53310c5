//! A front end that misbehaves in every way the ring and xenstore let it, while a second
//! guest's blkfront keeps working on the same domain 0.

use super::disk::MemDisk;
use super::raw::RawFront;
use super::rig::{Front, Guest, Rig, far};
use abi::io::blkif::{
    BLKIF_OP_DISCARD, BLKIF_OP_FLUSH_DISKCACHE, BLKIF_OP_INDIRECT, BLKIF_OP_READ, BLKIF_OP_WRITE,
    BLKIF_OP_WRITE_BARRIER, BLKIF_RSP_EOPNOTSUPP, BLKIF_RSP_ERROR, BLKIF_RSP_OKAY, BlkifRequest,
    BlkifRequestDiscard, BlkifRequestSegment,
};
use std::format;
use std::vec::Vec;
use xenbus::grant::GrantAccess;

const SECTORS: u64 = 256;

fn req(operation: u8, id: u64, sector: u64, segs: &[(u32, u8, u8)]) -> BlkifRequest {
    let mut r = BlkifRequest {
        operation,
        nr_segments: segs.len() as u8,
        handle: 51712,
        id,
        sector_number: sector,
        ..Default::default()
    };
    for (slot, &(gref, first, last)) in r.seg.iter_mut().zip(segs) {
        *slot = BlkifRequestSegment::new(gref, first, last);
    }
    r
}

/// A hostile raw front end in domain 5 and a blkfront in domain 6.
fn two_guests() -> (Rig, RawFront, Guest, Front) {
    let rig = Rig::new();
    let bad = rig.add_guest(5, 51712, MemDisk::new(SECTORS), "w");
    let bad = RawFront::connect(&rig, bad);
    let mut good = rig.add_guest(6, 51712, MemDisk::new(SECTORS), "w");
    let front = rig.connect(&mut good);
    (rig, bad, good, front)
}

/// The good guest reads, writes and flushes as if nothing happened.
fn good_guest_works(rig: &Rig, good: &mut Guest, front: &mut Front) {
    let data: Vec<u8> = (0..4096).map(|i| (i % 251) as u8).collect();
    front.write(&mut good.xs, 8 * 512, &data, far()).unwrap();
    front.flush(&mut good.xs, far()).unwrap();
    assert_eq!(
        front.read(&mut good.xs, 8 * 512, 4096, far()).unwrap(),
        data
    );
    rig.dev(good, |d| {
        assert!(d.device().durable[8 * 512..16 * 512] == data[..], "durable")
    });
}

#[test]
fn every_bad_field_gets_its_linux_answer_and_ids_are_echoed() {
    let (rig, mut bad, mut good, mut front) = two_guests();
    let page = bad.grant(0x11, false);
    let ro_page = bad.grant(0x22, true);
    // A grant to another domain than 0.
    let foreign = {
        let p = xenbus::PageProvider::alloc_zeroed(&mut bad.guest.memory).unwrap();
        let g = bad
            .guest
            .grants
            .grant(p, xenbus::DomId::try_new(9).unwrap(), false)
            .unwrap();
        let gref = g.gref().get();
        bad.pages.push(g);
        gref
    };
    let cases: Vec<(BlkifRequest, i16)> = std::vec![
        (req(BLKIF_OP_READ, 1, 0, &[]), BLKIF_RSP_ERROR),
        (req(BLKIF_OP_WRITE, 2, 0, &[]), BLKIF_RSP_ERROR),
        (
            {
                let mut r = req(BLKIF_OP_READ, 3, 0, &[(page, 0, 0)]);
                r.nr_segments = 12;
                r
            },
            BLKIF_RSP_ERROR,
        ),
        (req(BLKIF_OP_READ, 4, 0, &[(page, 0, 8)]), BLKIF_RSP_ERROR),
        (req(BLKIF_OP_READ, 5, 0, &[(page, 5, 4)]), BLKIF_RSP_ERROR),
        (
            req(BLKIF_OP_READ, 6, SECTORS, &[(page, 0, 0)]),
            BLKIF_RSP_ERROR
        ),
        (
            req(BLKIF_OP_READ, 7, SECTORS - 7, &[(page, 0, 7)]),
            BLKIF_RSP_ERROR
        ),
        (
            req(BLKIF_OP_READ, 8, u64::MAX - 2, &[(page, 0, 7)]),
            BLKIF_RSP_ERROR
        ),
        (req(9, 9, 0, &[(page, 0, 0)]), BLKIF_RSP_EOPNOTSUPP),
        (req(BLKIF_OP_INDIRECT, 10, 0, &[]), BLKIF_RSP_EOPNOTSUPP),
        (
            BlkifRequestDiscard {
                operation: BLKIF_OP_DISCARD,
                id: 11,
                sector_number: 0,
                nr_sectors: 8,
                ..Default::default()
            }
            .to_request(),
            BLKIF_RSP_EOPNOTSUPP,
        ),
        (
            BlkifRequestDiscard {
                operation: BLKIF_OP_DISCARD,
                id: 12,
                sector_number: SECTORS,
                nr_sectors: 1,
                ..Default::default()
            }
            .to_request(),
            BLKIF_RSP_ERROR,
        ),
        (req(BLKIF_OP_READ, 13, 0, &[(3, 0, 0)]), BLKIF_RSP_ERROR),
        (req(BLKIF_OP_READ, 14, 0, &[(4000, 0, 0)]), BLKIF_RSP_ERROR),
        (
            req(BLKIF_OP_READ, 15, 0, &[(foreign, 0, 0)]),
            BLKIF_RSP_ERROR
        ),
        // A read must write into the page: a read-only grant refuses the mapping.
        (
            req(BLKIF_OP_READ, 16, 0, &[(ro_page, 0, 0)]),
            BLKIF_RSP_ERROR
        ),
        // The same id twice, both answered.
        (req(BLKIF_OP_READ, 17, 2, &[(page, 1, 1)]), BLKIF_RSP_OKAY),
        (
            req(BLKIF_OP_WRITE, 17, 3, &[(ro_page, 2, 3)]),
            BLKIF_RSP_OKAY
        ),
        (
            req(BLKIF_OP_FLUSH_DISKCACHE, 17, 12345, &[]),
            BLKIF_RSP_OKAY
        ),
        (
            req(BLKIF_OP_WRITE_BARRIER, u64::MAX, 0, &[]),
            BLKIF_RSP_OKAY
        ),
    ];
    for chunk in cases.chunks(8) {
        let requests: Vec<BlkifRequest> = chunk.iter().map(|(r, _)| *r).collect();
        bad.submit(&requests);
        rig.settle();
        let responses = bad.responses();
        assert_eq!(responses.len(), chunk.len());
        for ((r, status), rsp) in chunk.iter().zip(&responses) {
            assert_eq!(
                (rsp.id, rsp.operation, rsp.status),
                (r.id, r.operation, *status),
                "request {r:?}"
            );
        }
        good_guest_works(&rig, &mut good, &mut front);
    }
    // The good reads and writes landed where they should.
    assert_eq!(&bad.page(page)[512..1024], &[2u8; 512][..]);
    rig.dev(&bad.guest, |d| {
        assert_eq!(&d.device().live[3 * 512..5 * 512], &[0x22; 1024][..]);
        assert_eq!(d.grants().mapped.len(), 1, "only the ring stays mapped");
        assert!(!d.is_halted());
    });
    for gref in [page, ro_page, foreign] {
        assert_eq!(
            bad.guest.grants.flags(gref) & 0x18,
            0,
            "no grant left in use"
        );
    }
}

#[test]
fn a_grant_revoked_before_its_request_is_served_fails_it_and_unmaps_the_rest() {
    let (rig, mut bad, mut good, mut front) = two_guests();
    let a = bad.grant(1, false);
    let b = bad.grant(2, false);
    let c = bad.grant(3, false);
    bad.submit(&[req(BLKIF_OP_READ, 1, 0, &[(a, 0, 7), (b, 0, 7), (c, 0, 7)])]);
    // Withdrawn behind blkback's back after the request went on the ring.
    bad.guest.grants.revoke(b);
    rig.settle();
    let rsp = bad.responses();
    assert_eq!((rsp[0].id, rsp[0].status), (1, BLKIF_RSP_ERROR));
    assert_eq!(
        bad.page(a),
        std::vec![1u8; 4096],
        "nothing was read into the first page"
    );
    rig.dev(&bad.guest, |d| {
        assert_eq!(
            d.grants().mapped.len(),
            1,
            "the first segment's mapping was undone"
        );
        assert_eq!(d.stats().grant_failures, 1);
        assert!(
            d.device().ops.is_empty(),
            "no I/O for a request that failed to map"
        );
    });
    assert_eq!(bad.guest.grants.flags(a) & 0x18, 0);
    good_guest_works(&rig, &mut good, &mut front);
}

#[test]
fn a_grant_cannot_be_ended_while_its_request_is_in_progress() {
    let (rig, mut bad, mut good, mut front) = two_guests();
    let a = bad.grant(7, true);
    let grants = bad.guest.grants.clone();
    let tried = std::rc::Rc::new(std::cell::Cell::new(None));
    let seen = tried.clone();
    rig.dev(&bad.guest, |d| {
        d.device_mut().during_io = Some(std::boxed::Box::new(move || {
            // Xen's rule: the entry shows GTF_reading while blkback has it mapped, so the
            // front end's end-access fails.
            let flags = grants.flags(a);
            seen.set(Some(flags));
        }))
    });
    bad.submit(&[req(BLKIF_OP_WRITE, 1, 0, &[(a, 0, 7)])]);
    rig.settle();
    assert_eq!(bad.responses()[0].status, BLKIF_RSP_OKAY);
    let flags = tried.get().unwrap();
    assert_ne!(
        flags & abi::grant_table::GTF_READING,
        0,
        "mapped during the I/O"
    );
    assert_eq!(
        flags & abi::grant_table::GTF_WRITING,
        0,
        "a write maps read-only"
    );
    let granted = bad.pages.pop().unwrap();
    assert!(bad.guest.grants.end(granted).is_ok(), "ended once answered");
    good_guest_works(&rig, &mut good, &mut front);
}

#[test]
fn a_producer_index_beyond_the_ring_halts_only_that_ring() {
    let (rig, mut bad, mut good, mut front) = two_guests();
    let page = bad.grant(0, false);
    bad.submit(&[req(BLKIF_OP_READ, 1, 0, &[(page, 0, 0)])]);
    rig.settle();
    assert_eq!(bad.responses().len(), 1);
    // 100 requests claimed on a 32-slot ring.
    bad.force_req_prod(1 + 100);
    rig.settle();
    let rsp_prod = bad.rsp_prod();
    assert_eq!(rsp_prod, 1, "nothing more was answered");
    rig.dev(&bad.guest, |d| {
        assert!(d.is_halted());
        assert_eq!(d.stats().halts, 1);
        assert_eq!(d.stats().requests, 1);
    });
    good_guest_works(&rig, &mut good, &mut front);
    // Even a legal index later is ignored: the ring stays halted until a reconnect.
    bad.force_req_prod(2);
    rig.settle();
    assert_eq!(bad.rsp_prod(), 1);
}

#[test]
fn a_front_end_that_keeps_its_ring_full_does_not_starve_another() {
    let (rig, mut bad, mut good, mut front) = two_guests();
    let page = bad.grant(0, false);
    let flood: Vec<BlkifRequest> = (0..32)
        .map(|i| req(BLKIF_OP_READ, i, 0, &[(page, 0, 7)]))
        .collect();
    bad.submit(&flood);
    // Every time domain 0 runs, the flood is topped up again.
    let mut rounds = 0;
    let id = front.submit_read(0, 4096).unwrap();
    front.kick().unwrap();
    let result = loop {
        rounds += 1;
        assert!(rounds < 100, "the good guest never got an answer");
        rig.step();
        let answered = bad.responses().len();
        bad.submit(&flood[..answered]);
        if let Some(c) = front.poll().into_iter().find(|c| c.id == id) {
            break c.result;
        }
    };
    assert_eq!(
        result.unwrap(),
        (0..4096).map(|i| (i / 512) as u8).collect::<Vec<_>>()
    );
    assert!(
        rounds <= 2,
        "answered in the first round after its kick: {rounds}"
    );
    rig.dev(&bad.guest, |d| assert!(d.stats().requests >= 32));
    good_guest_works(&rig, &mut good, &mut front);
}

#[test]
fn bad_xenstore_values_fail_the_device_as_linux_does() {
    for (key, value, error) in [
        ("ring-ref", "banana", "-22 reading ring-ref"),
        ("event-channel", "5000", "-22 reading event-channel"),
        ("protocol", "x86_32-abi", "-38 unknown fe protocol"),
        (
            "ring-page-order",
            "3",
            "-22 ring page order 3 exceeds max 0",
        ),
        (
            "multi-queue-num-queues",
            "4",
            "-38 guest requested 4 queues",
        ),
    ] {
        let rig = Rig::new();
        let mut guest = rig.add_guest(5, 51712, MemDisk::new(SECTORS), "w");
        let front = guest.front.clone();
        for (k, v) in [
            ("ring-ref", "8"),
            ("event-channel", "7"),
            (key, value),
            ("state", "3"),
        ] {
            rig.hub.write(&format!("{front}/{k}"), v);
        }
        rig.settle();
        assert_eq!(
            rig.back_key(&guest, "state").as_deref(),
            Some("5"),
            "{key}={value}"
        );
        assert_eq!(
            rig.hub
                .read("/local/domain/0/error/backend/vbd/5/51712/error")
                .as_deref(),
            Some(error)
        );
        rig.dev(&guest, |d| assert!(d.grants().mapped.is_empty()));
        let _ = &mut guest;
    }
}

#[test]
fn a_ring_grant_that_does_not_map_or_a_state_a_front_end_never_sends_is_fatal() {
    let rig = Rig::new();
    let guest = rig.add_guest(5, 51712, MemDisk::new(SECTORS), "w");
    let front = guest.front.clone();
    for (k, v) in [("ring-ref", "300"), ("event-channel", "7"), ("state", "3")] {
        rig.hub.write(&format!("{front}/{k}"), v);
    }
    rig.settle();
    assert_eq!(rig.back_key(&guest, "state").as_deref(), Some("5"));
    let error = rig
        .hub
        .read("/local/domain/0/error/backend/vbd/5/51712/error")
        .unwrap();
    assert!(error.starts_with("-14 mapping ring-ref 300"), "{error}");

    let rig = Rig::new();
    let guest = rig.add_guest(5, 51712, MemDisk::new(SECTORS), "w");
    rig.hub.write(&format!("{}/state", guest.front), "7");
    rig.settle();
    assert_eq!(rig.back_key(&guest, "state").as_deref(), Some("5"));
    assert_eq!(
        rig.hub
            .read("/local/domain/0/error/backend/vbd/5/51712/error")
            .as_deref(),
        Some("-22 saw state 7 at frontend")
    );
}

#[test]
fn a_front_end_that_refills_during_service_gets_one_ring_per_round() {
    let (rig, mut bad, mut good, mut front) = two_guests();
    let page = bad.grant(0, false);
    let reads: Vec<BlkifRequest> = (0..32)
        .map(|i| req(BLKIF_OP_READ, i, 0, &[(page, 0, 0)]))
        .collect();
    bad.submit(&reads);
    // While blkback serves a request, the guest's other vCPU publishes one more in the slot
    // just taken (legal: the slot's response is produced before blkback reads on), forever.
    let ring = bad.ring_page.page().memory();
    let bumps = std::rc::Rc::new(std::cell::Cell::new(0u32));
    let counted = bumps.clone();
    rig.dev(&bad.guest, |d| {
        d.device_mut().during_io = Some(std::boxed::Box::new(move || {
            if counted.get() < 10_000 {
                counted.set(counted.get() + 1);
                let mut raw = [0u8; 4];
                ring.read(0, &mut raw).unwrap();
                let prod = u32::from_le_bytes(raw).wrapping_add(1);
                ring.write(0, &prod.to_le_bytes()).unwrap();
            }
        }))
    });
    rig.step();
    let served = rig.dev(&bad.guest, |d| d.stats().requests);
    assert_eq!(served, 32, "one ring's worth per round, not {served}");
    assert!(!rig.dev(&bad.guest, |d| d.is_halted()));
    good_guest_works(&rig, &mut good, &mut front);
    rig.dev(&bad.guest, |d| d.device_mut().during_io = None);
}

#[test]
fn a_multi_page_ring_beyond_the_offer_or_with_a_bad_reference_is_fatal_and_maps_nothing() {
    use crate::device::Features;
    // Each case: the keys the front end writes beside `event-channel` and `state`, the error.
    // `G0`/`G1` stand for two pages it really granted to domain 0.
    let cases: [(&[(&str, &str)], &str); 6] = [
        (
            &[("ring-page-order", "5"), ("ring-ref0", "G0")],
            "-22 ring page order 5 exceeds max 4",
        ),
        (
            &[("ring-page-order", "4294967295"), ("ring-ref0", "G0")],
            "-22 ring page order 4294967295 exceeds max 4",
        ),
        (
            &[
                ("ring-page-order", "2"),
                ("ring-ref0", "G0"),
                ("ring-ref1", "G1"),
                ("ring-ref3", "G1"),
            ],
            "-22 reading ring-ref2",
        ),
        (
            &[
                ("ring-page-order", "1"),
                ("ring-ref", "G0"),
                ("ring-ref0", "G0"),
            ],
            "-22 reading ring-ref1",
        ),
        (
            &[
                ("ring-page-order", "1"),
                ("ring-ref0", "G0"),
                ("ring-ref1", "2"),
            ],
            "-22 reading ring-ref1",
        ),
        (
            &[
                ("ring-page-order", "1"),
                ("ring-ref0", "G0"),
                ("ring-ref1", "300"),
            ],
            "-14 mapping ring-ref 300",
        ),
    ];
    for (keys, error) in cases {
        let rig = Rig::new();
        let mut guest =
            rig.add_guest_with(5, 51712, MemDisk::new(SECTORS), "w", Features::default());
        let mut good =
            rig.add_guest_with(6, 51712, MemDisk::new(SECTORS), "w", Features::default());
        let mut front = rig.connect(&mut good);
        let mut granted = Vec::new();
        for _ in 0..2 {
            let page = xenbus::PageProvider::alloc_zeroed(&mut guest.memory).unwrap();
            granted.push(
                guest
                    .grants
                    .grant(page, xenbus::DomId::ZERO, false)
                    .unwrap(),
            );
        }
        let front_dir = guest.front.clone();
        let value = |v: &str| match v {
            "G0" => format!("{}", granted[0].gref()),
            "G1" => format!("{}", granted[1].gref()),
            other => other.into(),
        };
        for (k, v) in keys.iter().chain(&[("event-channel", "7"), ("state", "3")]) {
            rig.hub.write(&format!("{front_dir}/{k}"), &value(v));
        }
        rig.settle();
        assert_eq!(
            rig.back_key(&guest, "state").as_deref(),
            Some("5"),
            "{keys:?}"
        );
        let got = rig
            .hub
            .read("/local/domain/0/error/backend/vbd/5/51712/error")
            .unwrap_or_default();
        assert!(got.starts_with(error), "{keys:?}: {got}");
        // Nothing of the refused ring stays mapped (a first page mapped before a bad second
        // one is let go), and the other guest's multi-page ring keeps working.
        rig.dev(&guest, |d| {
            assert!(d.grants().mapped.is_empty(), "{keys:?}")
        });
        assert_eq!(front.stats().ring_pages, 4);
        good_guest_works(&rig, &mut good, &mut front);
    }
}
