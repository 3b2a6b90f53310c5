//! Multiple queues (`multi-queue-max-queues` / `multi-queue-num-queues`, `queue-<n>/...`):
//! our blkfront spreading its requests over every queue blkback offers, either end switching
//! them off, and a hand-written front end with a bad queue count, a missing per-queue key, an
//! unmappable queue ring or a queue whose producer index is impossible: refused cleanly, the
//! other queues and guests never disturbed.

use super::disk::MemDisk;
use super::rig::{Guest, Rig, far};
use crate::device::Features;
use abi::io::blkif::{
    BLKIF_OP_READ, BLKIF_RSP_OKAY, BlkifRequest, BlkifRequestSegment, BlkifResponse,
};
use abi::ring::FrontRing;
use std::format;
use std::string::String;
use std::vec::Vec;
use xenbus::grant::{GrantAccess, GrantedPage};
use xenbus::{DomId, PageProvider};

const SECTORS: u64 = 2048;

/// blkback offering `queues` queues (Linux's other features on).
fn offering(queues: u32) -> Features {
    Features {
        max_queues: queues,
        ..Features::default()
    }
}

/// `n` 4 KiB reads submitted at once, then completed: whether each read its own sectors.
fn reads(guest: &mut Guest, front: &mut super::rig::Front, n: usize) -> bool {
    let blocks = SECTORS as usize / 8;
    let ids: Vec<_> = (0..n)
        .map(|i| {
            let id = front
                .submit_read(((i % blocks) * 4096) as u64, 4096)
                .unwrap();
            (i, id)
        })
        .collect();
    ids.into_iter().all(|(i, id)| {
        let at = (i % blocks) * 4096;
        front.wait_for(&mut guest.xs, id, far()).unwrap()
            == (0..4096)
                .map(|b| ((at + b) / 512) as u8)
                .collect::<Vec<_>>()
    })
}

#[test]
fn blkfront_spreads_requests_over_every_queue_blkback_offers() {
    let rig = Rig::new();
    let mut guest = rig.add_guest_with(5, 51712, MemDisk::new(SECTORS), "w", offering(2));
    assert_eq!(
        rig.back_key(&guest, "multi-queue-max-queues").as_deref(),
        Some("2"),
        "written before InitWait"
    );
    let mut front = rig.connect(&mut guest);
    // As Linux blkfront: the count and the order at the top, each queue's ring and port in
    // its own directory, nothing of a single ring left at the top.
    let fkey = |k: &str| rig.hub.read(&format!("{}/{k}", guest.front));
    assert_eq!(fkey("multi-queue-num-queues").as_deref(), Some("2"));
    assert_eq!(fkey("ring-page-order").as_deref(), Some("2"));
    for q in 0..2 {
        assert!(fkey(&format!("queue-{q}/event-channel")).is_some(), "{q}");
        for i in 0..4 {
            assert!(fkey(&format!("queue-{q}/ring-ref{i}")).is_some(), "{q} {i}");
        }
    }
    for gone in [
        "event-channel",
        "ring-ref",
        "ring-ref0",
        "queue-2/event-channel",
    ] {
        assert_eq!(fkey(gone), None, "{gone}");
    }
    assert_eq!(front.stats().queues, 2);
    assert_eq!(front.ports().len(), 2);
    let ports = rig.dev(&guest, |d| d.ports());
    assert!(ports.len() == 2 && ports[0] != ports[1], "{ports:?}");
    // 100 reads at once: more than one ring of 4 pages would take alone is not needed; they
    // are spread round-robin, 50 on each queue, on both ends.
    assert!(reads(&mut guest, &mut front, 100));
    assert_eq!(front.stats().queue_requests, [50, 50, 0, 0]);
    let s = rig.dev(&guest, |d| d.stats());
    assert_eq!(s.queue_requests, [50, 50, 0, 0]);
    assert_eq!((s.queues, s.multiqueue_connects, s.errors), (2, 1, 0));
    // Each ring's four pages are mapped, and a write goes through either queue.
    let kept = rig.dev(&guest, |d| d.persistent_grants());
    assert_eq!(rig.dev(&guest, |d| d.grants().mapped.len()), kept + 8);
    let data: Vec<u8> = (0..8192).map(|i| (i % 251) as u8).collect();
    for at in [0u64, 8192] {
        front.write(&mut guest.xs, at, &data, far()).unwrap();
        assert_eq!(front.read(&mut guest.xs, at, 8192, far()).unwrap(), data);
    }
    // Closing ends every queue's ring: nothing stays mapped, bound or granted.
    front.close(&mut guest.xs, far()).unwrap();
    rig.settle();
    rig.dev(&guest, |d| {
        assert_eq!(d.grants().mapped.len(), 0);
        assert!(d.ports().is_empty());
        assert!(d.events().bound.is_empty());
    });
    assert_eq!(guest.grants.0.borrow().refs().live(), 0);
}

#[test]
fn either_end_switches_multiple_queues_off_and_the_smaller_offer_wins() {
    let one = blkfront::Features {
        max_queues: 1,
        ..blkfront::Features::default()
    };
    for (back, front_features, queues) in [
        (offering(4), blkfront::Features::default(), 4u64),
        (offering(2), blkfront::Features::default(), 2),
        (offering(1), blkfront::Features::default(), 1),
        (Features::NONE, blkfront::Features::default(), 1),
        (offering(4), one, 1),
    ] {
        let rig = Rig::new();
        let mut guest = rig.add_guest_with(5, 51712, MemDisk::new(SECTORS), "w", back);
        assert_eq!(
            rig.back_key(&guest, "multi-queue-max-queues").is_some(),
            back.max_queues > 1,
            "{back:?}"
        );
        let mut front = rig.connect_with(&mut guest, front_features);
        let fkey = |k: &str| rig.hub.read(&format!("{}/{k}", guest.front));
        assert_eq!(front.stats().queues, queues, "{back:?} {front_features:?}");
        assert_eq!(rig.dev(&guest, |d| d.stats().queues), queues);
        // One queue is published as before: no count, the port at the top.
        assert_eq!(fkey("multi-queue-num-queues").is_some(), queues > 1);
        assert_eq!(fkey("event-channel").is_some(), queues == 1);
        assert!(reads(&mut guest, &mut front, 30));
        let used = front.stats().queue_requests;
        assert_eq!(
            used.iter().filter(|&&n| n > 0).count() as u64,
            queues,
            "{used:?}"
        );
        front.close(&mut guest.xs, far()).unwrap();
        rig.settle();
        rig.dev(&guest, |d| assert_eq!(d.grants().mapped.len(), 0));
    }
}

/// A page of the guest granted to domain 0 (writable).
fn granted(guest: &mut Guest) -> GrantedPage {
    let page = guest.memory.alloc_zeroed().unwrap();
    guest.grants.grant(page, DomId::ZERO, false).unwrap()
}

#[test]
fn a_bad_queue_count_or_a_missing_queue_key_is_fatal_and_maps_nothing() {
    // Each case: the keys the front end writes before `state`, the error. `G0`/`G1` stand for
    // two ring pages it really granted to domain 0; blkback offers 2 queues of one page.
    let cases: [(&[(&str, &str)], &str); 7] = [
        (
            &[
                ("multi-queue-num-queues", "0"),
                ("ring-ref", "G0"),
                ("event-channel", "7"),
            ],
            "-38 guest requested 0 queues",
        ),
        (
            &[
                ("multi-queue-num-queues", "3"),
                ("ring-ref", "G0"),
                ("event-channel", "7"),
            ],
            "-38 guest requested 3 queues",
        ),
        (
            &[
                ("multi-queue-num-queues", "-1"),
                ("ring-ref", "G0"),
                ("event-channel", "7"),
            ],
            "-22 reading multi-queue-num-queues",
        ),
        (
            // Two queues named, only the top-level keys of one written.
            &[
                ("multi-queue-num-queues", "2"),
                ("ring-ref", "G0"),
                ("event-channel", "7"),
            ],
            "-22 reading queue-0/event-channel",
        ),
        (
            &[
                ("multi-queue-num-queues", "2"),
                ("queue-0/ring-ref", "G0"),
                ("queue-0/event-channel", "7"),
                ("queue-1/ring-ref", "G1"),
            ],
            "-22 reading queue-1/event-channel",
        ),
        (
            &[
                ("multi-queue-num-queues", "2"),
                ("queue-0/ring-ref", "G0"),
                ("queue-0/event-channel", "7"),
                ("queue-1/event-channel", "8"),
                ("queue-2/ring-ref", "G1"),
            ],
            "-22 reading queue-1/ring-ref",
        ),
        (
            // Queue 0 maps and binds, queue 1's ring does not map: queue 0 is let go too.
            &[
                ("multi-queue-num-queues", "2"),
                ("queue-0/ring-ref", "G0"),
                ("queue-0/event-channel", "7"),
                ("queue-1/ring-ref", "300"),
                ("queue-1/event-channel", "8"),
            ],
            "-14 mapping ring-ref 300",
        ),
    ];
    for (keys, error) in cases {
        let rig = Rig::new();
        let mut guest = rig.add_guest_with(5, 51712, MemDisk::new(SECTORS), "w", offering(2));
        let mut good = rig.add_guest_with(6, 51712, MemDisk::new(SECTORS), "w", offering(2));
        let mut front = rig.connect(&mut good);
        let pages = [granted(&mut guest), granted(&mut guest)];
        let value = |v: &str| match v {
            "G0" => format!("{}", pages[0].gref()),
            "G1" => format!("{}", pages[1].gref()),
            other => other.into(),
        };
        let dir = guest.front.clone();
        for (k, v) in keys.iter().chain(&[("state", "3")]) {
            rig.hub.write(&format!("{dir}/{k}"), &value(v));
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
        rig.dev(&guest, |d| {
            assert!(d.grants().mapped.is_empty(), "{keys:?}");
            assert!(d.events().bound.is_empty(), "{keys:?}");
            assert_eq!(d.stats().connects, 0);
        });
        // The other guest's two queues keep working.
        assert!(reads(&mut good, &mut front, 8));
        assert_eq!(front.stats().queue_requests, [4, 4, 0, 0]);
    }
}

/// `request` a one-sector read into `gref`.
fn read_request(id: u64, gref: u32) -> BlkifRequest {
    let mut r = BlkifRequest {
        operation: BLKIF_OP_READ,
        nr_segments: 1,
        handle: 51712,
        id,
        sector_number: 3,
        ..Default::default()
    };
    r.seg[0] = BlkifRequestSegment::new(gref, 0, 0);
    r
}

#[test]
fn a_queue_with_an_impossible_producer_index_is_halted_alone() {
    let rig = Rig::new();
    let mut guest = rig.add_guest_with(5, 51712, MemDisk::new(SECTORS), "w", offering(2));
    // Two one-page rings published by hand.
    let mut rings: Vec<(FrontRing<BlkifRequest, BlkifResponse>, GrantedPage)> = Vec::new();
    for _ in 0..2 {
        let page = guest.memory.alloc_zeroed().unwrap();
        let ring = page.init_front_ring().unwrap();
        rings.push((ring, guest.grants.grant(page, DomId::ZERO, false).unwrap()));
    }
    let dir = guest.front.clone();
    let mut keys: Vec<(String, String)> = std::vec![("multi-queue-num-queues".into(), "2".into())];
    for (q, (_, page)) in rings.iter().enumerate() {
        keys.push((format!("queue-{q}/ring-ref"), format!("{}", page.gref())));
        keys.push((format!("queue-{q}/event-channel"), format!("{}", 7 + q)));
    }
    keys.push(("state".into(), "3".into()));
    for (k, v) in &keys {
        rig.hub.write(&format!("{dir}/{k}"), v);
    }
    rig.settle();
    assert_eq!(rig.back_key(&guest, "state").as_deref(), Some("4"));
    let data = granted(&mut guest);
    // Queue 1's producer jumps a whole ring ahead of what it could hold.
    rings[1].1.page().write(0, &1000u32.to_le_bytes()).unwrap();
    // Queue 0 is served as if nothing happened, before and after.
    for id in [1u64, 2] {
        let (ring, _) = &mut rings[0];
        ring.write_request(read_request(id, data.gref().get()))
            .unwrap();
        ring.push_requests_and_check_notify();
        rig.settle();
        let r = ring.take_response().unwrap().unwrap();
        assert_eq!((r.id, r.status), (id, BLKIF_RSP_OKAY));
        rig.dev(&guest, |d| {
            assert!(d.is_queue_halted(1) && !d.is_queue_halted(0));
            assert_eq!(d.stats().halts, 1);
        });
    }
    let mut sector = [0u8; 512];
    data.page().read(0, &mut sector).unwrap();
    assert!(sector.iter().all(|&b| b == 3), "sector 3 read");
    rig.dev(&guest, |d| {
        assert_eq!(d.stats().queue_requests, [2, 0, 0, 0])
    });
}

/// Reads streamed at depth 32 over two queues, each wait taking the oldest: a wait collects
/// the other queues' completions too, and their slots must not be reused (their ids would name
/// two requests) until the caller was given them.
#[test]
fn a_slot_is_reused_only_after_its_completion_was_delivered() {
    let rig = Rig::new();
    let mut guest = rig.add_guest_with(5, 51712, MemDisk::new(SECTORS), "w", offering(2));
    let mut front = rig.connect(&mut guest);
    assert_eq!(front.stats().queues, 2);
    let blocks = SECTORS / 8;
    let mut pending = std::collections::VecDeque::new();
    let check = |front: &mut super::rig::Front, guest: &mut Guest, (i, id)| {
        let at = (i % blocks) as usize * 4096;
        let data = front.wait_for(&mut guest.xs, id, far()).unwrap();
        assert!(
            data.iter()
                .enumerate()
                .all(|(b, &v)| v == ((at + b) / 512) as u8),
            "{i}"
        );
    };
    for i in 0..600u64 {
        if pending.len() >= 32 || !front.can_submit() {
            check(&mut front, &mut guest, pending.pop_front().unwrap());
        }
        let id = front.submit_read((i % blocks) * 4096, 4096).unwrap();
        pending.push_back((i, id));
        // Domain 0 serves at once, as hv's blkback does on the kick's exit.
        front.kick().unwrap();
        rig.settle();
    }
    for p in pending {
        check(&mut front, &mut guest, p);
    }
    assert_eq!(front.stats().queue_requests, [300, 300, 0, 0]);
}
