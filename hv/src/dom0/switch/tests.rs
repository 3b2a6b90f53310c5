//! Tests of the switch: each rule by example, then a property test of the invariants over
//! random ports, frames and times against a model of the learned table.

use super::*;
use alloc::collections::BTreeMap;
use alloc::vec;
use proptest::prelude::*;

const A: Mac = [0x00, 0x16, 0x3e, 0, 0, 1];
const B: Mac = [0x00, 0x16, 0x3e, 0, 0, 2];
const GW: Mac = [0x52, 0x55, 0x0a, 0, 2, 2];
const OTHER: Mac = [0x52, 0x54, 0, 0x12, 0x34, 0x56];
const BCAST: Mac = [0xff; 6];
const MCAST: Mac = [0x01, 0x00, 0x5e, 0, 0, 1];

fn frame(dst: Mac, src: Mac) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&[0x08, 0x00, 0x45, 0]);
    f
}

/// A switch with the uplink and two vifs (A, B).
fn two() -> (Switch, PortId, PortId) {
    let mut s = Switch::default();
    let a = s.add_vif(A).unwrap();
    let b = s.add_vif(B).unwrap();
    (s, a, b)
}

fn fwd(s: &mut Switch, from: PortId, f: &[u8], now: u64) -> Vec<PortId> {
    let mut out = vec![PortId(99)];
    s.forward(from, f, now, &mut out);
    out.sort();
    out
}

#[test]
fn broadcast_and_multicast_flood_every_other_port() {
    let (mut s, a, b) = two();
    let up = PortId::UPLINK;
    assert_eq!(fwd(&mut s, a, &frame(BCAST, A), 0), vec![up, b]);
    assert_eq!(fwd(&mut s, up, &frame(BCAST, GW), 0), vec![a, b]);
    assert_eq!(fwd(&mut s, b, &frame(MCAST, B), 0), vec![up, a]);
    assert_eq!(s.stats().floods, 3);
}

#[test]
fn unicast_goes_to_the_owner_or_the_uplink_and_never_back() {
    let (mut s, a, b) = two();
    let up = PortId::UPLINK;
    // Domain to domain, both ways.
    assert_eq!(fwd(&mut s, a, &frame(B, A), 0), vec![b]);
    assert_eq!(fwd(&mut s, b, &frame(A, B), 0), vec![a]);
    // Unknown unicast goes to the uplink only.
    assert_eq!(fwd(&mut s, a, &frame(GW, A), 0), vec![up]);
    assert_eq!(s.stats().unknown_unicast, 1);
    // From the uplink to a vif.
    assert_eq!(fwd(&mut s, up, &frame(A, GW), 0), vec![a]);
    // Learned on the uplink now: not sent back to it.
    assert_eq!(s.lookup(&GW, 0), Some(up));
    assert_eq!(fwd(&mut s, up, &frame(GW, OTHER), 1), Vec::<PortId>::new());
    // Unknown unicast from the uplink would go back to it: dropped.
    assert_eq!(fwd(&mut s, up, &frame([2, 0, 0, 0, 0, 9], GW), 1), vec![]);
    // A vif sending to itself gets nothing back.
    assert_eq!(fwd(&mut s, a, &frame(A, A), 1), vec![]);
    assert_eq!(s.stats().dropped, 3);
}

#[test]
fn a_vif_gets_unicast_only_for_its_own_mac() {
    let (mut s, a, b) = two();
    // B's guest sends from a MAC not its own: learned on B's port...
    assert_eq!(
        fwd(&mut s, b, &frame(BCAST, OTHER), 0),
        vec![PortId::UPLINK, a]
    );
    assert_eq!(s.lookup(&OTHER, 0), Some(b));
    // ...but unicast to that MAC never reaches B, whose filter is B.
    assert_eq!(fwd(&mut s, a, &frame(OTHER, A), 1), vec![]);
    assert_eq!(fwd(&mut s, PortId::UPLINK, &frame(OTHER, GW), 1), vec![]);
}

#[test]
fn short_frames_are_dropped_and_counted() {
    let (mut s, a, _) = two();
    for len in 0..ETHER_HEADER {
        let f = &frame(BCAST, A)[..len];
        assert_eq!(fwd(&mut s, a, f, 0), vec![], "{len} bytes");
    }
    assert_eq!(s.stats().runts, ETHER_HEADER as u64);
    assert_eq!(s.learned_len(), 0, "a runt teaches nothing");
    // Exactly a header is a frame.
    assert_eq!(fwd(&mut s, a, &frame(BCAST, A)[..ETHER_HEADER], 0).len(), 2);
}

#[test]
fn a_moving_mac_is_learned_again_and_entries_age_out() {
    let (mut s, a, _) = two();
    let up = PortId::UPLINK;
    fwd(&mut s, up, &frame(BCAST, OTHER), 0);
    assert_eq!(s.lookup(&OTHER, 0), Some(up));
    fwd(&mut s, a, &frame(BCAST, OTHER), 10);
    assert_eq!(s.lookup(&OTHER, 10), Some(a));
    assert_eq!(s.stats().moved, 1);
    fwd(&mut s, up, &frame(BCAST, OTHER), 20);
    assert_eq!(s.lookup(&OTHER, 20), Some(up));
    assert_eq!(s.stats().moved, 2);
    // Unseen for the ageing time: forgotten.
    let t = 20 + DEFAULT_AGEING_NS;
    assert_eq!(s.lookup(&OTHER, t - 1), Some(up));
    assert_eq!(s.lookup(&OTHER, t), None);
}

#[test]
fn a_vifs_own_mac_never_moves_and_the_table_is_bounded() {
    let (mut s, a, b) = two();
    // Someone on the uplink claims A's MAC: forwarded, but A keeps it.
    assert_eq!(fwd(&mut s, PortId::UPLINK, &frame(BCAST, A), 0), vec![a, b]);
    assert_eq!(s.stats().conflicts, 1);
    assert_eq!(fwd(&mut s, b, &frame(A, B), 1), vec![a]);

    let mut s = Switch::new(4, 1000);
    for i in 0..10u8 {
        fwd(
            &mut s,
            PortId::UPLINK,
            &frame(BCAST, [2, 0, 0, 0, 0, i]),
            u64::from(i),
        );
        assert!(s.learned_len() <= 4);
    }
    assert_eq!(s.stats().learned, 10);
    assert_eq!(s.stats().evicted, 6);
    // The newest four are the ones kept.
    for i in 6..10u8 {
        assert_eq!(s.lookup(&[2, 0, 0, 0, 0, i], 10), Some(PortId::UPLINK));
    }
    // Expired entries make room before the oldest live one is evicted.
    fwd(
        &mut s,
        PortId::UPLINK,
        &frame(BCAST, [2, 0, 0, 0, 1, 0]),
        1007,
    );
    assert_eq!(s.stats().evicted, 6);
    assert_eq!(s.learned_len(), 3);
}

#[test]
fn ports_come_and_go() {
    let (mut s, a, b) = two();
    assert_eq!(s.add_vif(A), Err(PortError::MacTaken(a)));
    assert_eq!(s.add_vif(BCAST), Err(PortError::BadMac));
    assert_eq!(s.add_vif([0; 6]), Err(PortError::BadMac));
    fwd(&mut s, b, &frame(BCAST, OTHER), 0);
    s.remove(b);
    assert_eq!(s.ports().collect::<Vec<_>>(), vec![PortId::UPLINK, a]);
    assert_eq!(s.lookup(&OTHER, 0), None, "what b taught goes with it");
    assert_eq!(fwd(&mut s, a, &frame(B, A), 1), vec![PortId::UPLINK]);
    assert_eq!(fwd(&mut s, b, &frame(BCAST, B), 1), vec![]);
    assert_eq!(s.stats().unknown_port, 1);
    s.remove(PortId::UPLINK);
    assert_eq!(s.ports().count(), 2, "the uplink stays");
    let c = s.add_vif(B).unwrap();
    assert_ne!(c, b, "port ids are not reused");
}

/// A few MACs so that random frames hit vifs, learned entries and strangers.
fn any_mac() -> impl Strategy<Value = Mac> {
    prop_oneof![
        Just(A),
        Just(B),
        Just([0x00, 0x16, 0x3e, 0, 0, 3]),
        Just(GW),
        Just(OTHER),
        Just(BCAST),
        Just(MCAST),
        any::<[u8; 6]>(),
    ]
}

#[derive(Clone, Debug)]
struct Step {
    from: usize,
    dst: Mac,
    src: Mac,
    len: usize,
    dt: u64,
}

fn any_step() -> impl Strategy<Value = Step> {
    (0..5usize, any_mac(), any_mac(), 0..40usize, 0..400u64).prop_map(
        |(from, dst, src, len, dt)| Step {
            from,
            dst,
            src,
            len,
            dt,
        },
    )
}

proptest! {
    /// Whatever arrives: no frame goes back out its port, a vif gets unicast only for its
    /// MAC, a group frame reaches every other port, a unicast frame at most one port (the
    /// owner, else the live learned port as a model of the table says, else the uplink),
    /// runts reach nobody, and the table never outgrows its bound.
    #[test]
    fn forwarding_keeps_its_rules(steps in proptest::collection::vec(any_step(), 1..200)) {
        const CAP: usize = 5;
        const AGE: u64 = 1000;
        let mut s = Switch::new(CAP, AGE);
        let macs = [A, B, [0x00, 0x16, 0x3e, 0, 0, 3]];
        let mut ports = vec![(PortId::UPLINK, None)];
        for m in macs {
            ports.push((s.add_vif(m).unwrap(), Some(m)));
        }
        // Index 4: a port that does not exist.
        ports.push((PortId(77), None));
        // The model: MAC -> (port, last seen), unbounded; the switch may have forgotten
        // (evicted) an entry the model keeps, never the other way round.
        let mut model: BTreeMap<Mac, (PortId, u64)> = BTreeMap::new();
        let mut now = 0u64;
        let mut out = Vec::new();
        for st in steps {
            now += st.dt;
            let (from, _) = ports[st.from];
            let mut f = frame(st.dst, st.src);
            f.resize(st.len, 0xaa);
            f.truncate(st.len);
            if st.len >= 12 {
                f[..6].copy_from_slice(&st.dst);
                f[6..12].copy_from_slice(&st.src);
            }
            let before = s.stats();
            s.forward(from, &f, now, &mut out);
            prop_assert!(s.learned_len() <= CAP);
            prop_assert!(!out.contains(&from));
            let mut sorted = out.clone();
            sorted.sort();
            sorted.dedup();
            prop_assert_eq!(sorted.len(), out.len(), "a port twice");
            if st.len < ETHER_HEADER || st.from == 4 {
                prop_assert!(out.is_empty());
                continue;
            }
            let owned = macs.contains(&st.src);
            if !is_group(&st.src) && st.src != [0; 6] && !owned {
                model.insert(st.src, (from, now));
            }
            if is_group(&st.dst) {
                prop_assert_eq!(out.len(), ports.len() - 2);
                prop_assert_eq!(s.stats().floods, before.floods + 1);
                continue;
            }
            prop_assert!(out.len() <= 1);
            for p in &out {
                let mac = ports.iter().find(|(id, _)| id == p).and_then(|(_, m)| *m);
                prop_assert!(mac.is_none_or(|m| m == st.dst), "vif {:?} got {:?}", p, st.dst);
            }
            let expected = if let Some(i) = macs.iter().position(|m| *m == st.dst) {
                Some(ports[i + 1].0)
            } else {
                match (s.lookup(&st.dst, now), model.get(&st.dst)) {
                    (Some(p), Some(&(q, seen))) => {
                        prop_assert_eq!(p, q);
                        prop_assert!(now - seen < AGE);
                        Some(p)
                    }
                    (Some(_), None) => {
                        prop_assert!(false, "learned what the model did not");
                        None
                    }
                    (None, _) => Some(PortId::UPLINK),
                }
            };
            let expected: Vec<PortId> = expected
                .filter(|&p| p != from)
                .filter(|p| {
                    ports.iter().find(|(id, _)| id == p).is_some_and(|(_, m)| m.is_none_or(|m| m == st.dst))
                })
                .into_iter()
                .collect();
            prop_assert_eq!(&out, &expected);
        }
        let st = s.stats();
        prop_assert_eq!(
            st.frames,
            st.runts + st.unknown_port + st.floods + st.unicast + st.dropped
        );
    }
}
