//! Property tests: every tx request field a front end controls, against a model of Linux's
//! rules written as plain conditions over the published requests (never a panic: either a
//! frame, a refusal answered on every slot, or the vif disabled with the reason), any
//! producer index, and rx delivery of any length into any number of posted buffers.

use super::raw::{RawFront, txreq};
use super::rig::{Rig, frame};
use crate::checksum::complete_checksum;
use crate::{DeliverError, Delivered, FatalError};
use abi::io::netif::{
    NETIF_RSP_ERROR, NETIF_RSP_NULL, NETIF_RSP_OKAY, NETRXF_MORE_DATA, NETTXF_CSUM_BLANK,
    NETTXF_EXTRA_INFO, NETTXF_MORE_DATA, NetifExtraInfo, NetifTxRequest,
};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::vec::Vec;

/// What the vif does with a list of published requests.
#[derive(Debug, Default, PartialEq, Eq)]
struct Outcome {
    /// (id, status) in ring order.
    responses: Vec<(u16, i16)>,
    frames: Vec<Vec<u8>>,
    fatal: Option<FatalError>,
}

/// Linux netback's rules for `reqs` (all published at once), with `pages` the grants that
/// map and what they hold.
fn model(reqs: &[NetifTxRequest], pages: &BTreeMap<u32, Vec<u8>>) -> Outcome {
    let mut o = Outcome::default();
    let n = reqs.len();
    let mut i = 0;
    while i < n {
        let start = i;
        let first = reqs[i];
        i += 1;
        let mut extras: Vec<NetifExtraInfo> = Vec::new();
        if first.flags & NETTXF_EXTRA_INFO != 0 {
            loop {
                if i >= n {
                    o.fatal = Some(FatalError::MissingExtra);
                    return o;
                }
                let e = NetifExtraInfo::from_tx_request(&reqs[i]);
                i += 1;
                if e.type_ == 0 || e.type_ >= 5 {
                    o.fatal = Some(FatalError::BadExtraType(e.type_));
                    return o;
                }
                extras.push(e);
                if e.flags & 1 == 0 {
                    break;
                }
            }
        }
        // The last extra of a type wins.
        let of = |t: u8| extras.iter().rev().find(|e| e.type_ == t).copied();
        let nulls = std::iter::repeat_n((0u16, NETIF_RSP_NULL), extras.len());
        if of(2).is_some() || of(3).is_some() {
            o.responses.push((first.id, NETIF_RSP_OKAY));
            o.responses.extend(nulls);
            continue;
        }
        let mut frags: Vec<NetifTxRequest> = Vec::new();
        let mut refused = false;
        let mut own = i64::from(first.size);
        if first.flags & NETTXF_MORE_DATA != 0 {
            let published = (n - start - 1 - extras.len()) as u32;
            loop {
                let k = frags.len() as u32;
                if k >= published {
                    o.fatal = Some(FatalError::ChainBeyondProducer { published });
                    return o;
                }
                if k >= 20 {
                    o.fatal = Some(FatalError::TooManySlots { slots: k });
                    return o;
                }
                let f = reqs[i];
                i += 1;
                if k >= 18 || i64::from(f.size) > own {
                    refused = true;
                }
                own -= i64::from(f.size);
                if u32::from(f.offset) + u32::from(f.size) > 4096 {
                    o.fatal = Some(FatalError::CrossPage {
                        offset: f.offset,
                        size: f.size,
                    });
                    return o;
                }
                frags.push(f);
                if f.flags & NETTXF_MORE_DATA == 0 {
                    break;
                }
            }
        }
        let refuse = |o: &mut Outcome| {
            o.responses.push((first.id, NETIF_RSP_ERROR));
            o.responses
                .extend(std::iter::repeat_n((0u16, NETIF_RSP_NULL), extras.len()));
            o.responses
                .extend(frags.iter().map(|f| (f.id, NETIF_RSP_ERROR)));
        };
        if refused || own < 14 {
            refuse(&mut o);
            continue;
        }
        if i64::from(first.offset) + own > 4096 {
            o.fatal = Some(FatalError::CrossPage {
                offset: first.offset,
                size: own as u16,
            });
            return o;
        }
        if let Some(gso) = of(1) {
            let gso = gso.u.gso();
            if gso.size == 0 {
                o.fatal = Some(FatalError::GsoSizeZero);
                return o;
            }
            if gso.type_ != 1 && gso.type_ != 2 {
                o.fatal = Some(FatalError::BadGsoType(gso.type_));
                return o;
            }
        }
        let mut data = Vec::new();
        let mut mapped = true;
        let mut head = first;
        head.size = own as u16;
        for s in std::iter::once(&head).chain(&frags) {
            match pages.get(&s.gref) {
                Some(page) => {
                    let at = usize::from(s.offset);
                    data.extend_from_slice(&page[at..at + usize::from(s.size)]);
                }
                None => mapped = false,
            }
        }
        if !mapped {
            refuse(&mut o);
            continue;
        }
        o.responses.push((first.id, NETIF_RSP_OKAY));
        o.responses
            .extend(std::iter::repeat_n((0u16, NETIF_RSP_NULL), extras.len()));
        o.responses
            .extend(frags.iter().map(|f| (f.id, NETIF_RSP_OKAY)));
        if let Some(gso) = of(1) {
            // Cut into segments (their rules are `gso`'s tests'); nothing if not TCP.
            let _ = crate::gso::segment_tcp(&data, gso.u.gso().size, &mut |s| {
                o.frames.push(s.to_vec())
            });
            continue;
        }
        if first.flags & NETTXF_CSUM_BLANK != 0 && complete_checksum(&mut data).is_err() {
            continue;
        }
        o.frames.push(data);
    }
    o
}

/// Grants the raw front end makes: three pages of data, one revoked.
const PAGES: usize = 3;

fn gref_strategy() -> impl Strategy<Value = u32> {
    // 8, 9 are the rings (never data); 10..=12 the data pages; 13 the revoked one.
    prop_oneof![
        12 => 10u32..=12,
        1 => Just(13u32),
        1 => 0u32..8,
        1 => any::<u32>(),
    ]
}

fn request_strategy() -> impl Strategy<Value = NetifTxRequest> {
    (
        gref_strategy(),
        prop_oneof![40 => 0u16..64, 1 => 3900u16..4200, 1 => any::<u16>()],
        prop_oneof![
            4 => Just(0u16),
            1 => Just(NETTXF_MORE_DATA),
            1 => Just(NETTXF_EXTRA_INFO),
            1 => Just(NETTXF_CSUM_BLANK),
            1 => 0u16..16,
            1 => any::<u16>(),
        ],
        any::<u16>(),
        prop_oneof![1 => 0u16..14, 12 => 14u16..1500, 1 => any::<u16>()],
    )
        .prop_map(|(gref, offset, flags, id, size)| txreq(gref, offset, flags, id, size))
}

/// An extra-info slot of a known type (GSO with a plausible or any size and type,
/// multicast, hash), more or not, any other contents.
fn extra_strategy() -> impl Strategy<Value = NetifTxRequest> {
    (
        1u8..5,
        0u8..2,
        any::<[u16; 3]>(),
        0u16..3,
        prop_oneof![Just(1u8), Just(2), any::<u8>()],
    )
        .prop_map(|(type_, flags, mut pad, size, gso_type)| {
            if type_ == 1 {
                // u.gso: size, then type in the low byte of the next word.
                pad[0] = if size == 0 { 0 } else { pad[0] | 1 };
                pad[1] = (pad[1] & 0xff00) | u16::from(gso_type);
            }
            NetifExtraInfo {
                type_,
                flags,
                u: abi::io::netif::NetifExtraInfoU { pad },
            }
            .to_tx_request()
        })
}

/// A packet as a front end builds one (first slot, extras, a chain with consistent sizes),
/// each field then perturbed now and then.
fn packet_strategy() -> impl Strategy<Value = Vec<NetifTxRequest>> {
    (
        request_strategy(),
        proptest::collection::vec(extra_strategy(), 0..3),
        prop_oneof![
            6 => proptest::collection::vec(request_strategy(), 0..5),
            1 => proptest::collection::vec(request_strategy(), 17..23),
        ],
        prop_oneof![8 => Just(0i32), 1 => -200i32..200],
    )
        .prop_map(|(mut first, mut extras, mut frags, skew)| {
            let n = extras.len();
            for (k, e) in extras.iter_mut().enumerate() {
                // The `more` flag is bit 0 of the slot's second byte.
                let flags = if k + 1 < n { 1u32 } else { 0 };
                e.gref = (e.gref & !0xff00) | (flags << 8);
            }
            let count = frags.len();
            for (k, f) in frags.iter_mut().enumerate() {
                f.size %= 1000;
                f.flags = if k + 1 < count {
                    f.flags | NETTXF_MORE_DATA
                } else {
                    f.flags & !NETTXF_MORE_DATA
                };
            }
            first.flags &= !(NETTXF_MORE_DATA | NETTXF_EXTRA_INFO);
            if count > 0 {
                first.flags |= NETTXF_MORE_DATA;
            }
            if n > 0 {
                first.flags |= NETTXF_EXTRA_INFO;
            }
            let own = i32::from(first.size % 1500);
            let total: i32 = own + frags.iter().map(|f| i32::from(f.size)).sum::<i32>() + skew;
            first.size = total.clamp(0, 0xffff) as u16;
            let mut v = std::vec![first];
            v.extend(extras);
            v.extend(frags);
            v
        })
}

fn sequence_strategy() -> impl Strategy<Value = Vec<NetifTxRequest>> {
    proptest::collection::vec(
        prop_oneof![
            8 => packet_strategy(),
            1 => proptest::collection::vec(request_strategy(), 1..4),
            1 => proptest::collection::vec(extra_strategy(), 1..2),
        ],
        1..6,
    )
    .prop_map(|chunks| chunks.concat())
}

/// A raw front end with `PAGES` data pages (grefs 10..=12) and a revoked one (13).
fn raw(rig: &Rig) -> (RawFront, BTreeMap<u32, Vec<u8>>) {
    let guest = rig.add_guest(5, 0);
    let mut raw = RawFront::connect(rig, guest, true);
    let mut pages = BTreeMap::new();
    for n in 0..PAGES {
        let data = frame(n as u8 + 1, 4096);
        let gref = raw.grant_data(&data, true);
        pages.insert(gref, data);
    }
    let revoked = raw.grant_data(&frame(9, 4096), true);
    raw.guest.grants.revoke(revoked);
    assert_eq!(
        (pages.keys().copied().collect::<Vec<_>>(), revoked),
        (std::vec![10, 11, 12], 13)
    );
    (raw, pages)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_tx_field_gets_a_frame_a_refusal_or_a_fatal_error_as_linux_rules_say(
        reqs in sequence_strategy(),
    ) {
        let rig = Rig::new();
        let (mut raw, pages) = raw(&rig);
        raw.submit(&reqs);
        rig.step();
        let got = Outcome {
            responses: raw.tx_responses().iter().map(|r| (r.id, r.status)).collect(),
            frames: rig.sent(&raw.guest),
            fatal: rig.dev(&raw.guest, |d| d.fatal_error()),
        };
        let expected = model(&reqs, &pages);
        prop_assert_eq!(&got, &expected);
        rig.dev(&raw.guest, |d| {
            // Only the rings stay mapped, whatever happened.
            assert_eq!(d.grants().mapped.len(), 2);
            let s = d.stats();
            assert_eq!(s.tx_frames, expected.frames.len() as u64);
            assert_eq!(s.fatal_errors, u64::from(expected.fatal.is_some()));
        });
    }

    #[test]
    fn any_producer_index_is_served_or_disables_the_vif(prod in any::<u32>(), good in 0u32..4) {
        let rig = Rig::new();
        let (mut raw, _) = raw(&rig);
        for id in 0..good {
            raw.tx.write_request(txreq(10, 0, 0, id as u16, 60)).unwrap();
        }
        raw.tx.push_requests();
        raw.force_tx_req_prod(prod);
        rig.step();
        let fatal = rig.dev(&raw.guest, |d| d.fatal_error());
        if prod > 256 {
            prop_assert_eq!(fatal, Some(FatalError::ImpossibleProducer { ring: "tx", prod, cons: 0 }));
            prop_assert!(raw.tx_responses().is_empty());
        } else {
            // Slots past what was written hold zeros: a zero-size first slot, refused; or the
            // requests written.
            prop_assert_eq!(fatal, None);
            let responses = raw.tx_responses();
            prop_assert_eq!(responses.len() as u32, prod);
            let frames = rig.sent(&raw.guest);
            prop_assert_eq!(frames.len() as u32, prod.min(good));
        }
    }

    #[test]
    fn any_frame_into_any_buffers_is_copied_whole_or_refused_cleanly(
        len in prop_oneof![0usize..100, 1400usize..1600, 0usize..70_000],
        posted in 0u16..20,
        sg in any::<bool>(),
    ) {
        let rig = Rig::new();
        let guest = rig.add_guest(5, 0);
        let mut raw = RawFront::connect(&rig, guest, sg);
        let grefs = raw.post_rx(posted);
        let f = frame(3, len);
        let result = rig.deliver(&raw.guest, std::slice::from_ref(&f))[0];
        let max = if sg { 65535 } else { 1518 };
        let needed = len.div_ceil(4096);
        let responses = raw.rx_responses();
        if !(14..=max).contains(&len) {
            prop_assert_eq!(result, Err(DeliverError::BadLength));
            prop_assert!(responses.is_empty());
        } else if needed > usize::from(posted) {
            prop_assert_eq!(result, Ok(Delivered::Queued));
            prop_assert!(responses.is_empty());
        } else {
            prop_assert_eq!(result, Ok(Delivered::Copied));
            prop_assert_eq!(responses.len(), needed);
            let mut data = Vec::new();
            for (k, (r, gref)) in responses.iter().zip(&grefs).enumerate() {
                let last = k + 1 == needed;
                prop_assert_eq!(r.id, k as u16);
                prop_assert_eq!(r.offset, 0);
                prop_assert_eq!(r.flags, if last { 0 } else { NETRXF_MORE_DATA });
                // One slot per page, each full but the last.
                let size = if last { len - 4096 * (needed - 1) } else { 4096 };
                prop_assert_eq!(r.status as usize, size);
                data.extend_from_slice(&raw.page(*gref)[..r.status as usize]);
            }
            prop_assert_eq!(data, f);
        }
        prop_assert!(!rig.dev(&raw.guest, |d| d.is_disabled()));
    }
}
