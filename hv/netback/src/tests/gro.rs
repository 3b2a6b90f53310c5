//! GRO: segments of one flow that arrive together become one GSO packet (and their last
//! segment, as it came), which cut again
//! by [`segment_tcp`] gives back exactly the segments that went in; everything else (gaps,
//! overlaps, other flows, FIN/SYN/RST, IP options, fragments, bad checksums, bad lengths)
//! is never merged wrongly and never reordered within its flow; our netfront receives a
//! merged packet as a GSO frame, and a front end that does not take GSO gets none.

use super::rig::{Rig, far};
use crate::checksum::{ETH_HLEN, complete_checksum};
use crate::gro::{Gro, MAX_FLOWS, MAX_FRAME};
use crate::gso::segment_tcp;
use crate::{DeliverError, Delivered};
use netfront::{Config, Offloads};
use proptest::prelude::*;
use std::vec;
use std::vec::Vec;

const ACK: u8 = 0x10;
const PSH: u8 = 0x08;
const MSS: usize = 1460;

/// A TCP/IPv4 segment of flow `flow` (its source port and MAC byte), `payload` bytes at
/// sequence `seq`, IPv4 id `id`, TCP `flags`, checksums complete; `options` TCP option bytes
/// (a multiple of 4).
fn seg(flow: u8, seq: u32, id: u16, payload: usize, flags: u8, options: &[u8]) -> Vec<u8> {
    let thl = 20 + options.len();
    let mut f = vec![0u8; 14 + 20 + thl + payload];
    f[..6].copy_from_slice(&[0x00, 0x16, 0x3e, 0, 0, 5]);
    f[6..12].copy_from_slice(&[0x52, 0x55, 0x0a, 0, 2, 2]);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&((20 + thl + payload) as u16).to_be_bytes());
    ip[4..6].copy_from_slice(&id.to_be_bytes());
    ip[6] = 0x40;
    ip[8] = 64;
    ip[9] = 6;
    ip[12..16].copy_from_slice(&[10, 0, 2, 2]);
    ip[16..20].copy_from_slice(&[10, 0, 2, 15]);
    fix_ip(&mut f);
    let t = 34;
    f[t..t + 2].copy_from_slice(&(40_000 + u16::from(flow)).to_be_bytes());
    f[t + 2..t + 4].copy_from_slice(&80u16.to_be_bytes());
    f[t + 4..t + 8].copy_from_slice(&seq.to_be_bytes());
    f[t + 8..t + 12].copy_from_slice(&7777u32.to_be_bytes());
    f[t + 12] = ((thl / 4) as u8) << 4;
    f[t + 13] = flags;
    f[t + 14..t + 16].copy_from_slice(&65535u16.to_be_bytes());
    f[t + 20..t + thl].copy_from_slice(options);
    for (i, b) in f[t + thl..].iter_mut().enumerate() {
        // The stream's byte at this sequence number: segments of one stream agree.
        *b = (seq as usize + i).wrapping_mul(7) as u8 ^ flow;
    }
    complete_checksum(&mut f).unwrap();
    f
}

/// Recomputes the IPv4 header checksum (20-byte header).
fn fix_ip(f: &mut [u8]) {
    f[24..26].copy_from_slice(&[0, 0]);
    let mut sum = 0u32;
    for pair in f[14..34].chunks_exact(2) {
        sum += u32::from(u16::from_be_bytes([pair[0], pair[1]]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    f[24..26].copy_from_slice(&(!(sum as u16)).to_be_bytes());
}

/// `n` full segments of flow 1 from sequence `seq` with ids from `id`, then a `last`-byte
/// one if `last` is not zero.
fn stream(seq: u32, id: u16, n: usize, last: usize) -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = (0..n)
        .map(|i| seg(1, seq + (i * MSS) as u32, id + i as u16, MSS, ACK, &[]))
        .collect();
    if last > 0 {
        v.push(seg(
            1,
            seq + (n * MSS) as u32,
            id + n as u16,
            last,
            ACK,
            &[],
        ));
    }
    v
}

/// Pushes `frames` and flushes: what came out, with each merged packet's segment size.
fn run(frames: &[Vec<u8>]) -> Vec<(Vec<u8>, Option<u16>)> {
    let mut gro = Gro::default();
    let mut out = Vec::new();
    for f in frames {
        gro.push(f, &mut |f, g| out.push((f.to_vec(), g)));
    }
    gro.flush(&mut |f, g| out.push((f.to_vec(), g)));
    assert!(gro.is_empty());
    out
}

/// A merged packet cut again (its checksum completed first, as a receiver would).
fn resegment(frame: &[u8], mss: u16) -> Vec<Vec<u8>> {
    let mut f = frame.to_vec();
    complete_checksum(&mut f).unwrap();
    let mut segs = Vec::new();
    segment_tcp(&f, mss, &mut |s| segs.push(s.to_vec())).unwrap();
    segs
}

/// Every output, merged packets cut again: what the front end's stack sees, segment by
/// segment.
fn expand(out: &[(Vec<u8>, Option<u16>)]) -> Vec<Vec<u8>> {
    out.iter()
        .flat_map(|(f, g)| match g {
            Some(mss) => resegment(f, *mss),
            None => vec![f.clone()],
        })
        .collect()
}

#[test]
fn a_run_of_segments_becomes_one_packet_that_cuts_back_into_them() {
    let input = stream(1000, 50, 20, 700);
    let out = run(&input);
    // The last segment goes apart, as it came.
    assert_eq!(out.len(), 2);
    assert_eq!(out[1], (input[20].clone(), None));
    let (merged, gso) = &out[0];
    assert_eq!(*gso, Some(MSS as u16));
    assert_eq!(merged.len(), 54 + 20 * MSS);
    // IPv4 total length and a good header checksum; the first segment's id.
    assert_eq!(
        u16::from_be_bytes([merged[16], merged[17]]) as usize,
        merged.len() - 14
    );
    assert_eq!(&merged[18..20], &50u16.to_be_bytes());
    let mut ip = merged.clone();
    fix_ip(&mut ip);
    assert_eq!(ip[24..26], merged[24..26]);
    // The TCP checksum field holds the pseudo-header sum (CHECKSUM_PARTIAL).
    let mut sum = 0u32;
    for pair in merged[26..34].chunks_exact(2) {
        sum += u32::from(u16::from_be_bytes([pair[0], pair[1]]));
    }
    sum += 6 + (merged.len() - 34) as u32;
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    assert_eq!(&merged[50..52], &(sum as u16).to_be_bytes());
    assert_eq!(expand(&out), input);
}

#[test]
fn a_lone_segment_and_a_batch_of_one_go_as_they_came() {
    let one = stream(5, 1, 1, 0);
    assert_eq!(run(&one), [(one[0].clone(), None)]);
    // Two flows of one segment each, and a non-TCP frame between them.
    let mut arp = vec![0xffu8; 42];
    arp[12..14].copy_from_slice(&[0x08, 0x06]);
    let input = vec![
        seg(1, 0, 0, MSS, ACK, &[]),
        arp.clone(),
        seg(2, 0, 0, 100, ACK, &[]),
    ];
    let out = run(&input);
    let frames: Vec<Vec<u8>> = out.iter().map(|(f, _)| f.clone()).collect();
    assert_eq!(frames, input);
    assert!(out.iter().all(|(_, g)| g.is_none()));
}

#[test]
fn psh_closes_the_packet_and_stays_on_its_segment() {
    let mut input = stream(0, 0, 4, 0);
    input[2] = seg(1, 2 * MSS as u32, 2, MSS, ACK | PSH, &[]);
    let out = run(&input);
    // Two merged, the PSH one as it came, then the next on its own.
    assert_eq!(out.len(), 3);
    assert_eq!(out[0].1, Some(MSS as u16));
    assert_eq!(out[0].0[34 + 13], ACK);
    assert_eq!(out[1], (input[2].clone(), None));
    assert_eq!(out[2], (input[3].clone(), None));
    assert_eq!(expand(&out), input);
}

#[test]
fn a_short_segment_ends_the_packet() {
    let mut input = stream(0, 0, 3, 500);
    input.extend(stream(3 * MSS as u32 + 500, 4, 3, 0));
    let out = run(&input);
    // Each packet's last segment apart.
    assert_eq!(out.len(), 4);
    assert_eq!(out[0].0.len(), 54 + 3 * MSS);
    assert_eq!(out[1], (input[3].clone(), None));
    assert_eq!(out[2].0.len(), 54 + 2 * MSS);
    assert_eq!(out[3], (input[6].clone(), None));
    assert_eq!(expand(&out), input);
}

#[test]
fn gaps_and_overlaps_are_never_merged() {
    let gap = vec![
        seg(1, 0, 0, MSS, ACK, &[]),
        seg(1, MSS as u32 + 1, 1, MSS, ACK, &[]),
    ];
    let overlap = vec![
        seg(1, 0, 0, MSS, ACK, &[]),
        seg(1, MSS as u32 - 8, 1, MSS, ACK, &[]),
    ];
    let repeat = vec![seg(1, 0, 0, MSS, ACK, &[]), seg(1, 0, 0, MSS, ACK, &[])];
    let backwards = vec![
        seg(1, MSS as u32, 0, MSS, ACK, &[]),
        seg(1, 0, 1, MSS, ACK, &[]),
    ];
    for input in [gap, overlap, repeat, backwards] {
        let out = run(&input);
        assert!(out.iter().all(|(_, g)| g.is_none()), "merged {input:?}");
        let frames: Vec<Vec<u8>> = out.into_iter().map(|(f, _)| f).collect();
        assert_eq!(frames, input);
    }
}

#[test]
fn interleaved_flows_merge_apart_each_in_its_order() {
    let a = |i: u32| seg(1, i * MSS as u32, i as u16, MSS, ACK, &[]);
    let b = |i: u32| seg(2, 9000 + i * MSS as u32, 100 + i as u16, MSS, ACK, &[]);
    let input = vec![a(0), b(0), a(1), b(1), a(2), b(2), b(3)];
    let out = run(&input);
    assert_eq!(out.len(), 4);
    assert_eq!(expand(&out[..2]), [a(0), a(1), a(2)]);
    assert_eq!(expand(&out[2..]), [b(0), b(1), b(2), b(3)]);
    assert!(out[0].1.is_some() && out[2].1.is_some());
    // More flows than are held: the oldest goes first, nothing is lost or reordered.
    let many: Vec<Vec<u8>> = (0..2 * MAX_FLOWS as u8)
        .flat_map(|flow| (0..2u32).map(move |i| seg(flow, i * MSS as u32, i as u16, MSS, ACK, &[])))
        .collect();
    assert_eq!(expand(&run(&many)), many);
}

#[test]
fn fin_syn_rst_and_other_flags_in_the_middle_are_never_merged_and_keep_their_place() {
    for flags in [
        ACK | 0x01,
        ACK | 0x02,
        0x04,
        ACK | 0x04,
        ACK | 0x20,
        ACK | 0x40,
        ACK | 0x80,
        0,
    ] {
        let mut input = stream(0, 0, 7, 0);
        input[3] = seg(1, 3 * MSS as u32, 3, MSS, flags, &[]);
        let out = run(&input);
        // The first three as two merged and one, the odd one alone and in its place, the
        // last three likewise.
        assert_eq!(out.len(), 5, "flags {flags:#x}");
        assert_eq!(out[2], (input[3].clone(), None), "flags {flags:#x}");
        assert!(out[0].1.is_some() && out[3].1.is_some(), "flags {flags:#x}");
        assert_eq!(expand(&out), input, "flags {flags:#x}");
    }
}

#[test]
fn ip_options_fragments_and_bad_checksums_go_unmerged() {
    // An IPv4 header with options: the TCP header is not where a 20-byte header puts it.
    let mut options = seg(1, MSS as u32, 1, MSS, ACK, &[]);
    options[14] = 0x46;
    fix_ip(&mut options);
    let mut fragment = seg(1, MSS as u32, 1, MSS, ACK, &[]);
    fragment[20] |= 0x20;
    fix_ip(&mut fragment);
    let mut offset = seg(1, MSS as u32, 1, MSS, ACK, &[]);
    offset[21] = 1;
    fix_ip(&mut offset);
    let mut bad_ip = seg(1, MSS as u32, 1, MSS, ACK, &[]);
    bad_ip[24] ^= 1;
    let mut bad_tcp = seg(1, MSS as u32, 1, MSS, ACK, &[]);
    bad_tcp[100] ^= 1;
    let mut other_ttl = seg(1, MSS as u32, 1, MSS, ACK, &[]);
    other_ttl[22] = 63;
    fix_ip(&mut other_ttl);
    let other_options = seg(
        1,
        MSS as u32,
        1,
        MSS - 12,
        ACK,
        &[1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2],
    );
    let mut other_ack = seg(1, MSS as u32, 1, MSS, ACK, &[]);
    other_ack[34 + 11] ^= 1;
    complete_checksum(&mut other_ack).unwrap();
    let mut other_window = seg(1, MSS as u32, 1, MSS, ACK, &[]);
    other_window[34 + 15] ^= 1;
    complete_checksum(&mut other_window).unwrap();
    let bigger = seg(1, MSS as u32, 1, MSS + 1, ACK, &[]);
    for odd in [
        options,
        fragment,
        offset,
        bad_ip,
        bad_tcp,
        other_ttl,
        other_options,
        other_ack,
        other_window,
        bigger,
    ] {
        let input = vec![
            seg(1, 0, 0, MSS, ACK, &[]),
            odd,
            seg(1, 2 * MSS as u32, 2, MSS, ACK, &[]),
        ];
        let out = run(&input);
        assert!(out.iter().all(|(_, g)| g.is_none()), "{:?}", input[1]);
        let frames: Vec<Vec<u8>> = out.into_iter().map(|(f, _)| f).collect();
        assert_eq!(frames, input);
    }
}

#[test]
fn equal_options_merge_and_a_packet_stays_within_the_largest_frame() {
    let ts = [1u8, 1, 8, 10, 0, 0, 0, 9, 0, 0, 0, 3];
    let mss = MSS - 12;
    let input: Vec<Vec<u8>> = (0..4)
        .map(|i| seg(1, (i * mss) as u32, i as u16, mss, ACK, &ts))
        .collect();
    let out = run(&input);
    assert_eq!((out.len(), out[0].1), (2, Some(mss as u16)));
    assert_eq!(expand(&out), input);
    // 60 full segments would be 87,600 bytes: cut where 64 KiB ends, nothing lost.
    let input = stream(0, 0, 60, 0);
    let out = run(&input);
    assert!(out.len() >= 2);
    assert!(out.iter().all(|(f, _)| f.len() <= MAX_FRAME));
    // The last segment that fitted goes apart.
    assert_eq!(out[0].0.len(), 54 + ((MAX_FRAME - 54) / MSS - 1) * MSS);
    assert_eq!(expand(&out), input);
}

#[test]
fn bad_lengths_never_panic_or_merge() {
    let good = seg(1, 0, 0, MSS, ACK, &[]);
    let mut cases: Vec<Vec<u8>> = (0..60).map(|n| good[..n].to_vec()).collect();
    // IPv4 total length beyond the frame, below the headers, zero.
    for total in [0u16, 19, 39, 2000, 65535] {
        let mut f = seg(1, MSS as u32, 1, MSS, ACK, &[]);
        f[16..18].copy_from_slice(&total.to_be_bytes());
        fix_ip(&mut f);
        cases.push(f);
    }
    // TCP header length below 20 and beyond the packet.
    for doff in [0u8, 0x40, 0xf0] {
        let mut f = seg(1, MSS as u32, 1, MSS, ACK, &[]);
        f[34 + 12] = doff;
        cases.push(f);
    }
    for odd in cases {
        let input = vec![good.clone(), odd, seg(1, 2 * MSS as u32, 2, MSS, ACK, &[])];
        let out = run(&input);
        assert!(out.iter().all(|(_, g)| g.is_none()));
        let frames: Vec<Vec<u8>> = out.into_iter().map(|(f, _)| f).collect();
        assert_eq!(frames, input);
    }
}

/// The 4-tuple of a TCP/IPv4 frame, if it has one where a 20-byte header puts it.
fn flow_of(f: &[u8]) -> Option<Vec<u8>> {
    (f.len() >= 38 && f[12..14] == [8, 0]).then(|| f[26..38].to_vec())
}

proptest! {
    /// Whatever arrives (segments of three flows, each perhaps perturbed: a gap, other
    /// flags, a bad checksum, cut short, random bytes), everything comes out once, each
    /// flow's segments in their order, and a frame that was not merged is never behind
    /// itself nor ahead of what came before it.
    #[test]
    fn nothing_is_lost_merged_wrongly_or_reordered_within_a_flow(
        script in proptest::collection::vec(
            (0u8..3, 0usize..=MSS, 0u8..8, any::<u16>(), proptest::collection::vec(any::<u8>(), 0..80)),
            0..60,
        )
    ) {
        let mut next = [0u32; 3];
        let mut ids = [0u16; 3];
        let mut input = Vec::new();
        for (flow, len, twist, r, junk) in script {
            let i = usize::from(flow);
            let len = if twist % 2 == 0 { MSS } else { len };
            let mut f = seg(flow, next[i], ids[i], len, ACK, &[]);
            match twist {
                3 => f = seg(flow, next[i].wrapping_add(u32::from(r)), ids[i], len, ACK, &[]),
                5 => f = seg(flow, next[i], ids[i], len, (r as u8) & 0x3f, &[]),
                7 if !junk.is_empty() => f = junk,
                1 if r % 3 == 0 => {
                    let at = usize::from(r) % f.len();
                    f[at] ^= 0x10;
                }
                _ => {}
            }
            next[i] = next[i].wrapping_add(len as u32);
            ids[i] = ids[i].wrapping_add(1);
            input.push(f);
        }
        let out = run(&input);
        for (f, g) in &out {
            prop_assert!(f.len() <= MAX_FRAME);
            if g.is_some() {
                prop_assert!(f.len() > ETH_HLEN);
            }
        }
        let got = expand(&out);
        // Every frame once.
        let mut a = got.clone();
        let mut b = input.clone();
        a.sort();
        b.sort();
        prop_assert_eq!(a, b);
        // Each flow's frames in their order.
        for flow in input.iter().filter_map(|f| flow_of(f)) {
            let of = |v: &[Vec<u8>]| -> Vec<Vec<u8>> {
                v.iter().filter(|f| flow_of(f).as_ref() == Some(&flow)).cloned().collect()
            };
            prop_assert_eq!(of(&got), of(&input));
        }
    }

    /// Random bytes never panic, and what is not a TCP/IPv4 segment comes out unchanged.
    #[test]
    fn random_frames_never_panic(frames in proptest::collection::vec(
        proptest::collection::vec(any::<u8>(), 0..200), 0..20)
    ) {
        let out = run(&frames);
        let got: Vec<Vec<u8>> = out.into_iter().map(|(f, _)| f).collect();
        prop_assert_eq!(got, frames);
    }
}

/// Our netfront against our netback: a merged packet arrives as one GSO frame in several
/// slots; a front end that does not take GSO is never sent one.
#[test]
fn netfront_receives_a_merged_packet_as_a_gso_frame() {
    let rig = Rig::new();
    let mut guest = rig.add_guest(5, 0);
    let mut front = rig.connect(&mut guest);
    let input = stream(0, 0, 30, 1000);
    let out = run(&input);
    assert_eq!(out.len(), 2);
    let (packet, gso) = out[0].clone();
    let delivered = rig.dev(&guest, |d| {
        assert!(d.rx_gso());
        let r = d.deliver_gso(&packet, gso, far());
        d.flush_rx();
        r
    });
    assert_eq!(delivered, Ok(Delivered::Copied));
    assert_eq!(front.receive(), Some(packet.clone()));
    let s = front.stats();
    assert_eq!((s.rx_gso, s.rx_multi_slot, s.rx_dropped), (1, 1, 0));
    assert_eq!(s.rx_largest_frame, packet.len() as u64);
    assert_eq!(s.bad_responses, 0);
    rig.dev(&guest, |d| {
        let s = d.stats();
        // A slot per page of data, and the extra's.
        let slots = packet.len().div_ceil(4096) as u64 + 1;
        assert_eq!((s.rx_gso, s.rx_frames, s.rx_slots), (1, 1, slots));
    });

    for offloads in [
        Offloads {
            gso_rx: false,
            ..Offloads::ALL
        },
        Offloads {
            csum: false,
            ..Offloads::ALL
        },
        Offloads {
            sg: false,
            ..Offloads::ALL
        },
    ] {
        let rig = Rig::new();
        let mut guest = rig.add_guest(6, 0);
        let config = Config {
            offloads,
            ..Config::default()
        };
        let mut front = rig.connect_with(&mut guest, config);
        let refused = rig.dev(&guest, |d| {
            assert!(!d.rx_gso(), "{offloads:?}");
            d.deliver_gso(&packet, gso, far())
        });
        assert_eq!(refused, Err(DeliverError::BadLength));
        // Segments as they came still go.
        assert!(rig.deliver(&guest, &input).iter().all(Result::is_ok));
        let got: Vec<Vec<u8>> = std::iter::from_fn(|| front.receive()).collect();
        assert_eq!(got, input);
        assert_eq!(front.stats().rx_gso, 0);
    }
}
