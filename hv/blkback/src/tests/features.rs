//! The negotiated features: our blkfront using each against our blkback (and not when either
//! side switches it off), and a hand-written front end abusing each: indirect pages with bad
//! counts or segments crossing a page, persistent grants revoked or reused wrongly. Each is
//! refused cleanly (an error response, no panic) and the ring keeps working.

use super::disk::MemDisk;
use super::raw::RawFront;
use super::rig::{Rig, far};
use crate::device::Features;
use abi::io::blkif::{
    BLKIF_OP_DISCARD, BLKIF_OP_INDIRECT, BLKIF_OP_READ, BLKIF_OP_WRITE, BLKIF_RSP_EOPNOTSUPP,
    BLKIF_RSP_ERROR, BLKIF_RSP_OKAY, BlkifRequest, BlkifRequestDiscard, BlkifRequestIndirect,
    BlkifRequestSegment,
};
use std::format;
use std::string::String;
use std::vec::Vec;

const SECTORS: u64 = 2048;

fn pattern(len: usize, salt: u8) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8 ^ salt).collect()
}

#[test]
fn blkfront_uses_every_feature_blkback_offers() {
    let rig = Rig::new();
    let mut guest = rig.add_guest_with(5, 51712, MemDisk::new(SECTORS), "w", Features::default());
    let mut front = rig.connect(&mut guest);
    for (key, value) in [
        ("feature-max-indirect-segments", "256"),
        ("feature-persistent", "1"),
        ("feature-discard", "1"),
        ("discard-granularity", "512"),
        ("discard-alignment", "0"),
        ("discard-secure", "0"),
    ] {
        assert_eq!(rig.back_key(&guest, key).as_deref(), Some(value), "{key}");
    }
    assert_eq!(front.indirect_segments(), 32);
    assert!(front.persistent());
    assert!(rig.dev(&guest, |d| d.persistent()));
    // Four queues (both ends' largest), taken in turn.
    assert_eq!(front.stats().queues, 4);
    assert_eq!(
        rig.back_key(&guest, "multi-queue-max-queues").as_deref(),
        Some("4")
    );
    // 128 KiB writes and reads back, one indirect request each, until every queue had one
    // and queue 0 a second (its persistent grants are its own, as Linux keeps them per ring).
    let data = pattern(128 * 1024, 0x3c);
    for _ in 0..3 {
        front.write(&mut guest.xs, 4096, &data, far()).unwrap();
        assert_eq!(
            front.read(&mut guest.xs, 4096, data.len(), far()).unwrap(),
            data
        );
    }
    let s = rig.dev(&guest, |d| d.stats());
    assert_eq!((s.indirect_requests, s.errors), (6, 0));
    // The fifth request went through the pages the first had mapped.
    assert!(s.persistent_mapped > 0 && s.persistent_reused > 0, "{s:?}");
    let kept = rig.dev(&guest, |d| d.persistent_grants());
    // Each ring is four pages (blkfront's order 2, under blkback's offer of 4).
    assert_eq!(front.stats().ring_pages, 4);
    assert_eq!(
        rig.dev(&guest, |d| d.grants().mapped.len()),
        kept + 4 * 4,
        "rings + kept"
    );
    // Discard: answered OKAY, the range reads as zeros (blkback writes them).
    front
        .discard(&mut guest.xs, 4096, 64 * 1024, false, far())
        .unwrap();
    let s = rig.dev(&guest, |d| d.stats());
    assert_eq!(s.discards, 1);
    rig.dev(&guest, |d| {
        assert!(
            d.device().live[4096..4096 + 64 * 1024]
                .iter()
                .all(|&b| b == 0)
        );
        assert_eq!(
            &d.device().live[4096 + 64 * 1024..4096 + 128 * 1024],
            &data[64 * 1024..]
        );
    });
    // Closing lets go of every kept page.
    front.close(&mut guest.xs, far()).unwrap();
    rig.settle();
    rig.dev(&guest, |d| assert_eq!(d.grants().mapped.len(), 0));
}

#[test]
fn each_feature_switched_off_on_the_back_end_is_not_offered_nor_used() {
    let rig = Rig::new();
    let mut guest = rig.add_guest_with(5, 51712, MemDisk::new(SECTORS), "w", Features::NONE);
    let mut front = rig.connect(&mut guest);
    assert_eq!(rig.back_key(&guest, "feature-max-indirect-segments"), None);
    assert_eq!(
        rig.back_key(&guest, "feature-persistent").as_deref(),
        Some("0")
    );
    assert_eq!(
        rig.back_key(&guest, "feature-discard").as_deref(),
        Some("0")
    );
    assert_eq!((front.indirect_segments(), front.persistent()), (0, false));
    let data = pattern(blkfront::MAX_REQUEST_BYTES, 0x11);
    front.write(&mut guest.xs, 0, &data, far()).unwrap();
    assert_eq!(
        front.read(&mut guest.xs, 0, data.len(), far()).unwrap(),
        data
    );
    assert!(front.discard(&mut guest.xs, 0, 4096, false, far()).is_err());
    let s = rig.dev(&guest, |d| d.stats());
    assert_eq!(
        (s.indirect_requests, s.persistent_mapped, s.discards),
        (0, 0, 0)
    );
    rig.dev(&guest, |d| assert_eq!(d.grants().mapped.len(), 1));
}

#[test]
fn persistent_grants_are_bounded_and_make_room_when_the_platform_has_none() {
    let rig = Rig::new();
    let features = Features {
        max_persistent_grants: 8,
        ..Features::default()
    };
    let guest = rig.add_guest_with(5, 51712, MemDisk::new(SECTORS), "w", features);
    let mut bad = RawFront::connect_with(&rig, guest, &[("feature-persistent", "1")]);
    let pages: Vec<u32> = (0..10).map(|i| bad.grant(i as u8, false)).collect();
    let reads: Vec<BlkifRequest> = pages[..8]
        .iter()
        .enumerate()
        .map(|(i, &g)| one_read(i as u64, 0, &[(g, 0, 7)]))
        .collect();
    bad.submit(&reads);
    rig.settle();
    assert!(bad.responses().iter().all(|r| r.status == BLKIF_RSP_OKAY));
    assert_eq!(rig.dev(&bad.guest, |d| d.persistent_grants()), 8);
    // At the bound, a new grant is mapped for its request only.
    bad.submit(&[one_read(8, 0, &[(pages[8], 0, 7)])]);
    rig.settle();
    assert_eq!(bad.responses()[0].status, BLKIF_RSP_OKAY);
    assert_eq!(rig.dev(&bad.guest, |d| d.persistent_grants()), 8);
    // The platform has room for one more mapping: the second of this request's pages gets
    // it only by letting go of kept ones this request does not use.
    rig.dev(&bad.guest, |d| d.grants_mut().max_maps = 10);
    bad.submit(&[one_read(9, 0, &[(pages[8], 0, 7), (pages[9], 0, 7)])]);
    rig.settle();
    assert_eq!(bad.responses()[0].status, BLKIF_RSP_OKAY);
    let s = rig.dev(&bad.guest, |d| d.stats());
    assert_eq!((s.persistent_evicted, s.errors), (4, 0), "{s:?}");
    bad.close(&rig);
    rig.dev(&bad.guest, |d| assert_eq!(d.grants().mapped.len(), 0));
}

fn one_read(id: u64, sector: u64, segs: &[(u32, u8, u8)]) -> BlkifRequest {
    let mut r = BlkifRequest {
        operation: BLKIF_OP_READ,
        nr_segments: segs.len() as u8,
        id,
        sector_number: sector,
        ..Default::default()
    };
    for (slot, &(g, f, l)) in r.seg.iter_mut().zip(segs) {
        *slot = BlkifRequestSegment::new(g, f, l);
    }
    r
}

fn indirect(id: u64, op: u8, sector: u64, nr: u16, pages: &[u32]) -> BlkifRequest {
    let mut r = BlkifRequestIndirect {
        operation: BLKIF_OP_INDIRECT,
        indirect_op: op,
        nr_segments: nr,
        id,
        sector_number: sector,
        handle: 51712,
        ..Default::default()
    };
    for (slot, &g) in r.indirect_grefs.iter_mut().zip(pages) {
        *slot = g;
    }
    r.to_request()
}

/// A page of segment entries, granted read-only; its gref.
fn segment_page(bad: &mut RawFront, segs: &[(u32, u8, u8)]) -> u32 {
    let gref = bad.grant(0, true);
    let mut bytes = std::vec![0u8; 4096];
    for (i, &(g, first, last)) in segs.iter().enumerate() {
        let s = BlkifRequestSegment::new(g, first, last);
        bytes[i * 8..i * 8 + 4].copy_from_slice(&s.gref.to_le_bytes());
        bytes[i * 8 + 4] = first;
        bytes[i * 8 + 5] = last;
    }
    let page = bad.pages.iter().find(|p| p.gref().get() == gref).unwrap();
    page.page().write(0, &bytes).unwrap();
    gref
}

#[test]
fn hostile_indirect_requests_are_refused_and_the_ring_keeps_working() {
    let rig = Rig::new();
    let guest = rig.add_guest_with(5, 51712, MemDisk::new(SECTORS), "w", Features::default());
    let mut bad = RawFront::connect(&rig, guest);
    let data: Vec<u32> = (0..16).map(|i| bad.grant(i as u8, false)).collect();
    let good: Vec<(u32, u8, u8)> = data.iter().map(|&g| (g, 0, 7)).collect();
    let list = segment_page(&mut bad, &good);
    let mut crossing = good.clone();
    crossing[9] = (data[9], 4, 8);
    let crossing = segment_page(&mut bad, &crossing);
    let mut backwards = good.clone();
    backwards[15] = (data[15], 5, 4);
    let backwards = segment_page(&mut bad, &backwards);
    let mut reserved = good.clone();
    reserved[3] = (2, 0, 7);
    let reserved = segment_page(&mut bad, &reserved);
    let unmapped = bad.grant(0, true);
    bad.guest.grants.revoke(unmapped);
    let cases: Vec<(BlkifRequest, i16)> = std::vec![
        (indirect(1, BLKIF_OP_WRITE, 0, 16, &[list]), BLKIF_RSP_OKAY),
        (indirect(2, BLKIF_OP_READ, 0, 16, &[list]), BLKIF_RSP_OKAY),
        // Bad counts: none, more than offered, more than the list holds (the rest of the page
        // is zeros: reserved grants).
        (indirect(3, BLKIF_OP_READ, 0, 0, &[list]), BLKIF_RSP_ERROR),
        (
            indirect(4, BLKIF_OP_READ, 0, 257, &[list, list]),
            BLKIF_RSP_ERROR
        ),
        (indirect(5, BLKIF_OP_READ, 0, 17, &[list]), BLKIF_RSP_ERROR),
        (
            indirect(6, BLKIF_OP_READ, 0, u16::MAX, &[list; 8]),
            BLKIF_RSP_ERROR
        ),
        // Not a read or a write inside.
        (
            indirect(7, BLKIF_OP_DISCARD, 0, 16, &[list]),
            BLKIF_RSP_ERROR
        ),
        (
            indirect(8, BLKIF_OP_INDIRECT, 0, 16, &[list]),
            BLKIF_RSP_ERROR
        ),
        // A segment crossing its page, one ending before it starts, a reserved grant.
        (
            indirect(9, BLKIF_OP_READ, 0, 16, &[crossing]),
            BLKIF_RSP_ERROR
        ),
        (
            indirect(10, BLKIF_OP_WRITE, 0, 16, &[backwards]),
            BLKIF_RSP_ERROR
        ),
        (
            indirect(11, BLKIF_OP_READ, 0, 16, &[reserved]),
            BLKIF_RSP_ERROR
        ),
        // The indirect page itself: reserved, revoked, not granted at all.
        (indirect(12, BLKIF_OP_READ, 0, 16, &[1]), BLKIF_RSP_ERROR),
        (
            indirect(13, BLKIF_OP_READ, 0, 16, &[unmapped]),
            BLKIF_RSP_ERROR
        ),
        (indirect(14, BLKIF_OP_READ, 0, 16, &[4000]), BLKIF_RSP_ERROR),
        // Past the end of the disk.
        (
            indirect(15, BLKIF_OP_READ, SECTORS - 64, 16, &[list]),
            BLKIF_RSP_ERROR
        ),
        // Still fine after all that.
        (indirect(16, BLKIF_OP_READ, 8, 16, &[list]), BLKIF_RSP_OKAY),
    ];
    for chunk in cases.chunks(8) {
        let requests: Vec<BlkifRequest> = chunk.iter().map(|(r, _)| *r).collect();
        bad.submit(&requests);
        rig.settle();
        let responses = bad.responses();
        assert_eq!(responses.len(), chunk.len());
        for ((r, status), rsp) in chunk.iter().zip(&responses) {
            // Linux echoes the operation inside an indirect request.
            let inner = BlkifRequestIndirect::from_request(r).indirect_op;
            assert_eq!(
                (rsp.id, rsp.operation, rsp.status),
                (r.id, inner, *status),
                "request {r:?}"
            );
        }
    }
    rig.dev(&bad.guest, |d| {
        // The first write put page i's bytes at sectors 8i..8i+8.
        assert!(d.device().live[4096..8192].iter().all(|&b| b == 1));
        assert_eq!(d.stats().indirect_requests, 3);
        assert_eq!(d.grants().mapped.len(), 1, "only the ring stays mapped");
        assert!(!d.is_halted());
    });
    // Offered no indirect requests, a back end answers them EOPNOTSUPP.
    let rig = Rig::new();
    let guest = rig.add_guest(5, 51712, MemDisk::new(SECTORS), "w");
    let mut plain = RawFront::connect(&rig, guest);
    let list = segment_page(&mut plain, &[]);
    plain.submit(&[indirect(1, BLKIF_OP_READ, 0, 1, &[list])]);
    rig.settle();
    assert_eq!(plain.responses()[0].status, BLKIF_RSP_EOPNOTSUPP);
}

#[test]
fn hostile_persistent_grants_are_refused_or_served_never_a_panic() {
    let rig = Rig::new();
    let guest = rig.add_guest_with(5, 51712, MemDisk::new(SECTORS), "w", Features::default());
    let mut bad = RawFront::connect_with(&rig, guest, &[("feature-persistent", "1")]);
    assert!(rig.dev(&bad.guest, |d| d.persistent()));
    let rw = bad.grant(0x44, false);
    let ro = bad.grant(0x55, true);
    let read = one_read;
    let mut write = read(3, 16, &[(ro, 0, 7)]);
    write.operation = BLKIF_OP_WRITE;
    bad.submit(&[
        read(1, 0, &[(rw, 0, 7)]),
        // The same grant twice in one request, and again in the next: served.
        read(2, 0, &[(rw, 0, 3), (rw, 4, 7)]),
        // Persistent grants are mapped writable: a read-only grant is refused, even for a
        // write, and is not kept.
        write,
    ]);
    rig.settle();
    let statuses: Vec<i16> = bad.responses().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [BLKIF_RSP_OKAY, BLKIF_RSP_OKAY, BLKIF_RSP_ERROR]);
    assert_eq!(rig.dev(&bad.guest, |d| d.persistent_grants()), 1);
    // The front end revokes the kept grant behind blkback's back (clears its flags): the
    // mapping blkback holds stays valid memory; requests through it are still served, and
    // the disconnect lets it go without a panic.
    bad.guest.grants.revoke(rw);
    bad.submit(&[read(4, 8, &[(rw, 0, 7)])]);
    rig.settle();
    assert_eq!(bad.responses()[0].status, BLKIF_RSP_OKAY);
    let discard = BlkifRequestDiscard {
        operation: BLKIF_OP_DISCARD,
        id: 5,
        sector_number: 1,
        nr_sectors: SECTORS,
        ..Default::default()
    }
    .to_request();
    bad.submit(&[discard]);
    rig.settle();
    assert_eq!(bad.responses()[0].status, BLKIF_RSP_ERROR);
    rig.dev(&bad.guest, |d| {
        assert_eq!(d.stats().persistent_reused, 3);
        assert!(!d.is_halted());
    });
    bad.close(&rig);
    rig.dev(&bad.guest, |d| assert_eq!(d.grants().mapped.len(), 0));
}

#[test]
fn a_resized_disk_is_announced_and_blkfront_reads_the_new_size() {
    let rig = Rig::new();
    let mut guest = rig.add_guest(5, 51712, MemDisk::new(SECTORS), "w");
    let mut front = rig.connect(&mut guest);
    assert_eq!(front.info().sectors, SECTORS);
    let past_end = SECTORS * 512;
    assert!(matches!(
        front.read(&mut guest.xs, past_end, 4096, far()),
        Err(blkfront::BlkError::OutOfRange { .. })
    ));
    // The disk grows (as a loop device's file and `losetup -c`): blkback writes the new
    // `sectors` and Connected again; blkfront reads it on its next look at the backend.
    rig.dev(&guest, |d| {
        let disk = d.device_mut();
        disk.live.resize(disk.live.len() + 64 * 512, 0xab);
        disk.durable.resize(disk.live.len(), 0xab);
    });
    rig.settle();
    assert_eq!(
        rig.back_key(&guest, "sectors").as_deref(),
        Some(std::format!("{}", SECTORS + 64).as_str())
    );
    assert_eq!(rig.back_key(&guest, "state").as_deref(), Some("4"));
    front.refresh(&mut guest.xs, far()).unwrap();
    assert_eq!(front.info().sectors, SECTORS + 64);
    assert_eq!(
        front.read(&mut guest.xs, past_end, 4096, far()).unwrap(),
        [0xab; 4096]
    );
    // It shrinks again: the sectors past the new end are refused before the ring.
    rig.dev(&guest, |d| {
        let disk = d.device_mut();
        disk.live.truncate(SECTORS as usize * 512);
        disk.durable.truncate(SECTORS as usize * 512);
    });
    rig.settle();
    front.refresh(&mut guest.xs, far()).unwrap();
    assert_eq!(front.info().sectors, SECTORS);
    assert!(matches!(
        front.read(&mut guest.xs, past_end, 4096, far()),
        Err(blkfront::BlkError::OutOfRange { .. })
    ));
    assert_eq!(rig.dev(&guest, |d| d.stats().resizes), 2);
    assert_eq!(front.stats().resizes, 2);
    // Nothing changes: no announcement, no resize.
    rig.settle();
    front.refresh(&mut guest.xs, far()).unwrap();
    assert_eq!(
        (
            rig.dev(&guest, |d| d.stats().resizes),
            front.stats().resizes
        ),
        (2, 2)
    );
}

#[test]
fn a_backend_reasserting_connected_with_a_bad_size_is_refused() {
    use blkfront::{BlkError, ResizeRefused};
    let rig = Rig::new();
    let mut guest = rig.add_guest(5, 51712, MemDisk::new(SECTORS), "w");
    let mut front = rig.connect(&mut guest);
    let back = guest.back.clone();
    let cases = [
        ("", ResizeRefused::Malformed),
        ("-5", ResizeRefused::Malformed),
        ("12x", ResizeRefused::Malformed),
        ("99999999999999999999999", ResizeRefused::Malformed),
        ("0", ResizeRefused::Zero),
        (
            "36028797018963968",
            ResizeRefused::TooLarge(36_028_797_018_963_968),
        ),
    ];
    for (bad, why) in cases {
        {
            let mut dom0 = rig.dom0.borrow_mut();
            let tx = xenbus::xenstore::TxId::NONE;
            dom0.xs
                .write(tx, &std::format!("{back}/sectors"), bad, far())
                .unwrap();
            dom0.xs
                .write(tx, &std::format!("{back}/state"), "4", far())
                .unwrap();
        }
        assert_eq!(
            front.refresh(&mut guest.xs, far()),
            Err(BlkError::ResizeRefused(why)),
            "sectors {bad:?}"
        );
        assert_eq!(front.info().sectors, SECTORS, "sectors {bad:?}");
    }
    assert_eq!(front.stats().resizes, 0);
    assert_eq!(front.stats().resizes_refused, cases.len() as u64);
    let data = pattern(4096, 0x77);
    front.write(&mut guest.xs, 0, &data, far()).unwrap();
    assert_eq!(front.read(&mut guest.xs, 0, 4096, far()).unwrap(), data);
}

#[test]
fn blkback_announces_a_disk_emptied_to_zero_and_blkfront_refuses_it() {
    use blkfront::{BlkError, ResizeRefused};
    let rig = Rig::new();
    let mut guest = rig.add_guest(5, 51712, MemDisk::new(SECTORS), "w");
    let mut front = rig.connect(&mut guest);
    rig.dev(&guest, |d| {
        let disk = d.device_mut();
        disk.live.clear();
        disk.durable.clear();
    });
    rig.settle();
    // blkback says what the device says, as Linux's `xen_vbd_resize` does.
    assert_eq!(rig.back_key(&guest, "sectors").as_deref(), Some("0"));
    assert_eq!(rig.dev(&guest, |d| d.stats().resizes), 1);
    assert_eq!(
        front.refresh(&mut guest.xs, far()),
        Err(BlkError::ResizeRefused(ResizeRefused::Zero))
    );
    assert_eq!(front.info().sectors, SECTORS);
    // The front end still sends what fits its size; blkback refuses what its device lacks.
    assert_eq!(
        front.read(&mut guest.xs, 0, 4096, far()),
        Err(BlkError::IoError)
    );
}

/// `n` 4 KiB reads submitted at once (before any answer), then completed: the most that were
/// in flight together, and whether every one read its own sectors.
fn reads_in_flight(
    guest: &mut super::rig::Guest,
    front: &mut super::rig::Front,
    n: usize,
) -> (u64, bool) {
    let blocks = SECTORS as usize / 8;
    let mut ids = Vec::new();
    for i in 0..n {
        match front.submit_read(((i % blocks) * 4096) as u64, 4096) {
            Ok(id) => ids.push((i, id)),
            Err(blkfront::BlkError::RingFull) => break,
            Err(e) => panic!("submit {i}: {e}"),
        }
    }
    let mut right = true;
    for (i, id) in ids {
        let data = front.wait_for(&mut guest.xs, id, far()).unwrap();
        let at = (i % blocks) * 4096;
        right &= data
            == (0..4096)
                .map(|b| ((at + b) / 512) as u8)
                .collect::<Vec<_>>();
    }
    (front.stats().peak_in_flight, right)
}

/// The disk's sectors hold their own number's low byte ([`MemDisk::new`]).
fn sector_disk() -> MemDisk {
    MemDisk::new(SECTORS)
}

#[test]
fn a_multi_page_ring_holds_more_requests_than_one_page() {
    let rig = Rig::new();
    let mut guest = rig.add_guest_with(5, 51712, sector_disk(), "w", Features::default());
    assert_eq!(
        rig.back_key(&guest, "max-ring-page-order").as_deref(),
        Some("4"),
        "Linux blkback's offer, written before InitWait"
    );
    // One queue: the ring's own size is what is measured.
    let one_queue = blkfront::Features {
        max_queues: 1,
        ..blkfront::Features::default()
    };
    let mut front = rig.connect_with(&mut guest, one_queue);
    // blkfront asks for its own largest order (2) in ring-ref0..3, no ring-ref.
    let fkey = |k: &str| rig.hub.read(&format!("{}/{k}", guest.front));
    assert_eq!(fkey("ring-page-order").as_deref(), Some("2"));
    assert_eq!(fkey("ring-ref"), None);
    let refs: Vec<Option<String>> = (0..5).map(|i| fkey(&format!("ring-ref{i}"))).collect();
    assert!(
        refs[..4].iter().all(Option::is_some) && refs[4].is_none(),
        "{refs:?}"
    );
    assert_eq!(front.stats().ring_pages, 4);
    let s = rig.dev(&guest, |d| d.stats());
    assert_eq!((s.ring_pages, s.multipage_connects), (4, 1));
    // 128 slots: 100 reads in flight at once (one page holds 32), each answered rightly.
    let (peak, right) = reads_in_flight(&mut guest, &mut front, 100);
    assert_eq!(peak, 100);
    assert!(right);
    // A full ring of four pages is 128 requests.
    let (peak, _) = reads_in_flight(&mut guest, &mut front, 200);
    assert_eq!(peak, 128);
    // Closing ends every ring page's grant: nothing stays mapped or granted.
    front.close(&mut guest.xs, far()).unwrap();
    rig.settle();
    rig.dev(&guest, |d| assert_eq!(d.grants().mapped.len(), 0));
    assert_eq!(guest.grants.0.borrow().refs().live(), 0);
}

#[test]
fn the_largest_order_both_ends_allow_is_used_and_either_end_can_switch_it_off() {
    // One queue: the ring's own size is what is measured.
    let order4 = blkfront::Features {
        max_ring_page_order: 4,
        max_queues: 1,
        ..blkfront::Features::default()
    };
    let off = blkfront::Features {
        max_ring_page_order: 0,
        max_queues: 1,
        ..blkfront::Features::default()
    };
    for (back, front_features, pages, slots) in [
        (Features::default(), order4, 16u64, 512u64),
        (Features::default(), off, 1, 32),
        (Features::NONE, order4, 1, 32),
        (
            Features {
                max_ring_page_order: 1,
                ..Features::default()
            },
            order4,
            2,
            64,
        ),
    ] {
        let rig = Rig::new();
        let mut guest = rig.add_guest_with(5, 51712, sector_disk(), "w", back);
        let mut front = rig.connect_with(&mut guest, front_features);
        assert_eq!(
            front.stats().ring_pages,
            pages,
            "{back:?} {front_features:?}"
        );
        assert_eq!(rig.dev(&guest, |d| d.stats().ring_pages), pages);
        let fkey = |k: &str| rig.hub.read(&format!("{}/{k}", guest.front));
        // One page is published as Linux blkfront publishes it: ring-ref, no order.
        assert_eq!(fkey("ring-page-order").is_some(), pages > 1);
        assert_eq!(fkey("ring-ref").is_some(), pages == 1);
        let (peak, right) = reads_in_flight(&mut guest, &mut front, 600);
        assert_eq!((peak, right), (slots, true), "{back:?} {front_features:?}");
        front.close(&mut guest.xs, far()).unwrap();
        rig.settle();
        rig.dev(&guest, |d| assert_eq!(d.grants().mapped.len(), 0));
    }
}
