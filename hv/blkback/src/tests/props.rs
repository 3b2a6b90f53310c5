//! Property tests: the request checks against an independent model, the ring indices a front
//! end may publish, and random traffic from blkfront against a model disk.

use super::disk::MemDisk;
use super::raw::RawFront;
use super::rig::{Rig, far};
use crate::request::{Checked, Geometry, Indirect, Kind, Segment, Verdict, check};
use abi::io::blkif::{
    BLKIF_OP_DISCARD, BLKIF_OP_INDIRECT, BLKIF_OP_READ, BLKIF_RSP_EOPNOTSUPP, BLKIF_RSP_ERROR,
    BlkifRequest, BlkifRequestDiscard, BlkifRequestIndirect, BlkifRequestSegment,
};
use abi::ring::{FrontRing, SharedRing};
use proptest::prelude::*;
use std::vec::Vec;
use xenbus::GrantRef;

/// What Linux blkback answers, written as a list of conditions with wide arithmetic.
fn model(r: &BlkifRequest, g: &Geometry) -> Verdict {
    let answer = |status| Verdict::Answer {
        id: r.id,
        operation: r.operation,
        status,
    };
    let op = r.operation;
    if op == BLKIF_OP_DISCARD {
        let d = BlkifRequestDiscard::from_request(r);
        let end = u128::from(d.sector_number) + u128::from(d.nr_sectors);
        let inside = d.nr_sectors == 0 || end <= u128::from(g.sectors);
        let unit = u64::from(g.sector_size / 512);
        let whole = d.sector_number.is_multiple_of(unit) && d.nr_sectors.is_multiple_of(unit);
        if g.readonly || !inside || !whole {
            return answer(BLKIF_RSP_ERROR);
        }
        if !g.discard {
            return answer(BLKIF_RSP_EOPNOTSUPP);
        }
        return Verdict::Serve(Checked {
            id: d.id,
            operation: op,
            kind: Kind::Discard {
                sectors: d.nr_sectors,
                secure: d.flag & 1 != 0,
            },
            sector: d.sector_number,
            segments: Vec::new(),
        });
    }
    if op == BLKIF_OP_INDIRECT && g.max_indirect_segments > 0 {
        let ind = BlkifRequestIndirect::from_request(r);
        let n = u32::from(ind.nr_segments);
        let pages = (n as usize).div_ceil(512);
        let bad_op = ind.indirect_op > 1;
        let answer = |status| Verdict::Answer {
            id: r.id,
            operation: ind.indirect_op,
            status,
        };
        if bad_op
            || n == 0
            || n > g.max_indirect_segments
            || pages > 8
            || ind.indirect_grefs[..pages].iter().any(|&r| r < 8)
            || (ind.indirect_op == 1 && g.readonly)
        {
            return answer(BLKIF_RSP_ERROR);
        }
        return Verdict::Indirect(Indirect {
            id: ind.id,
            operation: ind.indirect_op,
            kind: if ind.indirect_op == 0 {
                Kind::Read
            } else {
                Kind::Write
            },
            sector: ind.sector_number,
            nr_segments: n as usize,
            pages: ind.indirect_grefs[..pages]
                .iter()
                .map(|&r| GrantRef::try_new(r).unwrap())
                .collect(),
        });
    }
    if op > 3 {
        return answer(BLKIF_RSP_EOPNOTSUPP);
    }
    let flush = op == 2 || op == 3;
    let n = usize::from(r.nr_segments);
    if n > 11 || (n == 0 && !flush) {
        return answer(BLKIF_RSP_ERROR);
    }
    let segs = &r.seg[..n];
    if segs
        .iter()
        .any(|s| s.last_sect > 7 || s.last_sect < s.first_sect || s.gref < 8)
    {
        return answer(BLKIF_RSP_ERROR);
    }
    let nsec = |s: &BlkifRequestSegment| u128::from(s.last_sect - s.first_sect) + 1;
    let total: u128 = segs.iter().map(nsec).sum();
    if (op != BLKIF_OP_READ && g.readonly)
        || (total > 0 && u128::from(r.sector_number) + total > u128::from(g.sectors))
    {
        return answer(BLKIF_RSP_ERROR);
    }
    let unit = u128::from(g.sector_size / 512);
    if n > 0
        && (u128::from(r.sector_number) % unit != 0 || segs.iter().any(|s| nsec(s) % unit != 0))
    {
        return answer(BLKIF_RSP_ERROR);
    }
    Verdict::Serve(Checked {
        id: r.id,
        operation: op,
        kind: match op {
            0 => Kind::Read,
            1 => Kind::Write,
            _ => Kind::Flush { drain: op == 2 },
        },
        sector: r.sector_number,
        segments: segs
            .iter()
            .map(|s| Segment {
                gref: GrantRef::try_new(s.gref).unwrap(),
                offset: usize::from(s.first_sect) * 512,
                len: (usize::from(s.last_sect - s.first_sect) + 1) * 512,
            })
            .collect(),
    })
}

fn segment() -> impl Strategy<Value = BlkifRequestSegment> {
    // Mostly valid segments, so that one bad field decides the verdict often enough.
    let sectors = prop_oneof![
        8 => (0u8..8).prop_flat_map(|first| (Just(first), first..8)),
        1 => (0u8..10, 0u8..10),
        1 => (any::<u8>(), any::<u8>()),
    ];
    (
        prop_oneof![8 => 8u32..64, 1 => 0u32..8, 1 => any::<u32>()],
        sectors,
    )
        .prop_map(|(gref, (first, last))| BlkifRequestSegment::new(gref, first, last))
}

fn request(sectors: u64) -> impl Strategy<Value = BlkifRequest> {
    (
        prop_oneof![8 => 0u8..4, 1 => 4u8..7, 1 => any::<u8>()],
        prop_oneof![8 => 0u8..4, 2 => 0u8..13, 1 => any::<u8>()],
        any::<u64>(),
        prop_oneof![
            4 => 0..sectors / 2 + 1,
            2 => sectors.saturating_sub(100)..sectors + 16,
            1 => any::<u64>(),
            1 => u64::MAX - 100..=u64::MAX,
        ],
        proptest::array::uniform11(segment()),
        any::<u16>(),
    )
        .prop_map(
            |(operation, nr_segments, id, sector_number, seg, handle)| BlkifRequest {
                operation,
                nr_segments,
                handle,
                id,
                sector_number,
                seg,
                ..Default::default()
            },
        )
}

fn geometry() -> impl Strategy<Value = Geometry> {
    (
        prop_oneof![0u64..400, Just(0u64), any::<u64>()],
        any::<bool>(),
        prop_oneof![Just(512u32), Just(1024), Just(4096)],
        prop_oneof![Just(0u32), Just(256), Just(32), Just(4096)],
        any::<bool>(),
    )
        .prop_map(
            |(sectors, readonly, sector_size, max_indirect_segments, discard)| Geometry {
                sectors,
                readonly,
                sector_size,
                max_indirect_segments,
                discard,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

    #[test]
    fn every_request_field_is_checked_as_linux_does(
        (g, r) in geometry().prop_flat_map(|g| (Just(g), request(g.sectors)))
    ) {
        prop_assert_eq!(check(&r, &g), model(&r, &g));
    }
}

/// What a front end may do to the ring's indices.
#[derive(Clone, Debug)]
enum Action {
    /// Publish this many valid requests (at most a ring's worth) after the last published.
    Push(u32),
    /// Write any producer index.
    Jump(u32),
    /// Domain 0 runs.
    Step,
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        3 => (0u32..40).prop_map(Action::Push),
        1 => prop_oneof![0u32..40, any::<u32>()].prop_map(Action::Jump),
        3 => Just(Action::Step),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Whatever producer index a front end publishes, blkback serves exactly the requests it
    /// may legally have published (and answers each), or halts the ring and answers nothing
    /// more; it never panics, and the other guest is not affected.
    #[test]
    fn ring_indices_from_a_front_end_are_checked(actions in proptest::collection::vec(action(), 1..40)) {
        let rig = Rig::new();
        let guest = rig.add_guest(5, 51712, MemDisk::new(64), "w");
        let mut raw = RawFront::connect(&rig, guest);
        let page = raw.grant(0, false);
        let memory = raw.ring_page.page().memory();
        let (mut published, mut served, mut halted, mut total) = (0u32, 0u32, false, 0u64);
        for a in actions {
            match a {
                Action::Push(k) => {
                    let mut ring: FrontRing<BlkifRequest, abi::io::blkif::BlkifResponse> =
                        FrontRing::attach(SharedRing::from_page(memory).unwrap(), published);
                    let k = k.min(32);
                    for i in 0..k {
                        let mut r = BlkifRequest { operation: BLKIF_OP_READ, nr_segments: 1, id: u64::from(i), ..Default::default() };
                        r.seg[0] = BlkifRequestSegment::new(page, 0, 0);
                        ring.write_request(r).unwrap();
                    }
                    ring.push_requests();
                    published = published.wrapping_add(k);
                }
                Action::Jump(value) => {
                    published = value;
                    raw.force_req_prod(value);
                }
                Action::Step => {
                    rig.settle();
                    if !halted {
                        let waiting = published.wrapping_sub(served);
                        if waiting > 32 {
                            halted = true;
                        } else {
                            total += u64::from(waiting);
                            served = published;
                        }
                    }
                    prop_assert_eq!(rig.dev(&raw.guest, |d| d.is_halted()), halted);
                    prop_assert_eq!(raw.rsp_prod(), served);
                    prop_assert_eq!(rig.dev(&raw.guest, |d| d.stats().requests), total);
                }
            }
        }
        rig.dev(&raw.guest, |d| assert_eq!(d.grants().mapped.len(), 1));
    }
}

#[derive(Clone, Debug)]
enum Io {
    Write(u64, Vec<u8>),
    Read(u64, usize),
    Flush,
}

fn io() -> impl Strategy<Value = Io> {
    prop_oneof![
        (0u64..120, 1usize..24, any::<u8>()).prop_map(|(s, n, b)| Io::Write(
            s * 512,
            (0..n * 512).map(|i| b ^ (i as u8)).collect()
        )),
        (0u64..120, 1usize..24).prop_map(|(s, n)| Io::Read(s * 512, n * 512)),
        Just(Io::Flush),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// Random traffic from blkfront: every read sees the model disk, every flush makes it
    /// durable.
    #[test]
    fn blkfront_traffic_matches_a_model_disk(ops in proptest::collection::vec(io(), 1..20)) {
        let rig = Rig::new();
        let mut guest = rig.add_guest(5, 51712, MemDisk::new(144), "w");
        let mut front = rig.connect(&mut guest);
        let mut model: Vec<u8> = MemDisk::new(144).live;
        for op in ops {
            match op {
                Io::Write(at, data) => {
                    front.write(&mut guest.xs, at, &data, far()).unwrap();
                    model[at as usize..at as usize + data.len()].copy_from_slice(&data);
                }
                Io::Read(at, len) => {
                    let got = front.read(&mut guest.xs, at, len, far()).unwrap();
                    prop_assert!(got[..] == model[at as usize..at as usize + len]);
                }
                Io::Flush => {
                    front.flush(&mut guest.xs, far()).unwrap();
                    prop_assert!(rig.dev(&guest, |d| d.device().durable == model));
                }
            }
        }
        prop_assert_eq!(front.stats().data_grants, 0);
    }
}
