//! The checksum completion: against smoltcp's (through netfront) on IPv4 TCP and UDP
//! frames, by the one's-complement rule on IPv6 and tagged frames, and never a panic or a
//! change on anything it refuses.

use crate::checksum::{ChecksumError, complete_checksum};
use proptest::prelude::*;
use std::vec::Vec;

/// An Ethernet frame: IPv4 (or IPv6 if `v6`), TCP (6) or UDP (17) or `proto`, after an
/// 802.1Q tag if `vlan`, the checksum field holding `junk`.
fn ip_frame(v6: bool, vlan: bool, proto: u8, payload: &[u8], junk: u16) -> Vec<u8> {
    let l4_head = if proto == 6 { 20 } else { 8 };
    let l4_len = l4_head + payload.len();
    let mut f = std::vec![0x00, 0x16, 0x3e, 0, 0, 1, 0x00, 0x16, 0x3e, 0, 5, 0];
    if vlan {
        f.extend_from_slice(&[0x81, 0x00, 0x00, 0x05]);
    }
    if v6 {
        f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
        f.extend_from_slice(&(l4_len as u16).to_be_bytes());
        f.extend_from_slice(&[proto, 64]);
        f.extend((0..32).map(|i| i as u8 * 3));
    } else {
        f.extend_from_slice(&[0x08, 0x00, 0x45, 0]);
        f.extend_from_slice(&((20 + l4_len) as u16).to_be_bytes());
        f.extend_from_slice(&[0, 1, 0x40, 0, 64, proto, 0, 0, 10, 0, 0, 5, 10, 0, 0, 1]);
    }
    let mut l4 = std::vec![0u8; l4_head];
    l4[..4].copy_from_slice(&[0x30, 0x39, 0x1f, 0x90]);
    if proto == 6 {
        l4[12] = 0x50;
        l4[16..18].copy_from_slice(&junk.to_be_bytes());
    } else {
        l4[4..6].copy_from_slice(&(l4_len as u16).to_be_bytes());
        l4[6..8].copy_from_slice(&junk.to_be_bytes());
    }
    f.extend_from_slice(&l4);
    f.extend_from_slice(payload);
    f
}

/// The one's-complement sum of the transport segment and its pseudo header is all ones
/// when the checksum is right.
fn verifies(f: &[u8], v6: bool, vlan: bool, proto: u8) -> bool {
    let l3 = if vlan { 18 } else { 14 };
    let (addrs, l4) = if v6 {
        (&f[l3 + 8..l3 + 40], l3 + 40)
    } else {
        (&f[l3 + 12..l3 + 20], l3 + 20)
    };
    let seg = &f[l4..];
    let mut sum: u64 = 0;
    let mut add = |b: &[u8]| {
        for c in b.chunks(2) {
            sum += u64::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
        }
    };
    add(addrs);
    add(seg);
    sum += u64::from(proto) + seg.len() as u64;
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum == 0xffff
}

proptest! {
    #[test]
    fn ipv4_checksums_match_smoltcps(
        tcp in any::<bool>(),
        payload in proptest::collection::vec(any::<u8>(), 0..1400),
        junk in any::<u16>(),
    ) {
        let proto = if tcp { 6 } else { 17 };
        let mut ours = ip_frame(false, false, proto, &payload, junk);
        let mut theirs = ours.clone();
        complete_checksum(&mut ours).unwrap();
        netfront::checksum::complete_checksum(&mut theirs).unwrap();
        prop_assert_eq!(ours, theirs);
    }

    #[test]
    fn ipv6_and_tagged_frames_verify(
        v6 in any::<bool>(),
        vlan in any::<bool>(),
        tcp in any::<bool>(),
        payload in proptest::collection::vec(any::<u8>(), 0..1400),
        junk in any::<u16>(),
    ) {
        let proto = if tcp { 6 } else { 17 };
        let mut f = ip_frame(v6, vlan, proto, &payload, junk);
        complete_checksum(&mut f).unwrap();
        prop_assert!(verifies(&f, v6, vlan, proto));
    }

    #[test]
    fn anything_refused_is_left_unchanged(
        bytes in proptest::collection::vec(any::<u8>(), 0..200),
        ethertype in prop_oneof![Just(0x0800u16), Just(0x86dd), Just(0x8100), any::<u16>()],
    ) {
        let mut f = bytes.clone();
        if f.len() >= 14 {
            f[12..14].copy_from_slice(&ethertype.to_be_bytes());
        }
        let before = f.clone();
        if complete_checksum(&mut f).is_err() {
            prop_assert_eq!(f, before);
        }
    }
}

#[test]
fn fragments_other_protocols_and_short_headers_are_refused() {
    let mut frag = ip_frame(false, false, 17, &[1, 2, 3], 0);
    frag[20] = 0x20; // more fragments
    assert_eq!(
        complete_checksum(&mut frag),
        Err(ChecksumError::Unsupported)
    );
    let mut icmp = ip_frame(false, false, 1, &[0; 8], 0);
    assert_eq!(
        complete_checksum(&mut icmp),
        Err(ChecksumError::Unsupported)
    );
    let mut cut = ip_frame(false, false, 6, &[], 0);
    cut.truncate(14 + 20 + 10);
    assert_eq!(complete_checksum(&mut cut), Err(ChecksumError::Malformed));
    let mut arp = std::vec![0u8; 42];
    arp[12..14].copy_from_slice(&[0x08, 0x06]);
    assert_eq!(complete_checksum(&mut arp), Err(ChecksumError::Unsupported));
    // A UDP segment whose checksum computes to zero is sent with all ones (RFC 768): the
    // payload word is chosen to make it so.
    let mut probe = ip_frame(false, false, 17, &[0, 0], 0);
    complete_checksum(&mut probe).unwrap();
    let word = [probe[40], probe[41]];
    let mut zero = ip_frame(false, false, 17, &word, 0);
    complete_checksum(&mut zero).unwrap();
    assert_eq!([zero[40], zero[41]], [0xff, 0xff]);
    assert!(verifies(&zero, false, false, 17));
}

/// `f` (an untagged IPv6 frame) with an extension header of `kind` (8 bytes of its own)
/// put before the transport header.
fn with_extension(f: &[u8], kind: u8, fragment: u16) -> Vec<u8> {
    let proto = f[14 + 6];
    let mut out = f[..14 + 40].to_vec();
    out[14 + 6] = kind;
    let payload = u16::from_be_bytes([out[18], out[19]]) + 8;
    out[18..20].copy_from_slice(&payload.to_be_bytes());
    let mut ext = std::vec![proto, 0, 0, 0, 0, 0, 0, 0];
    if kind == 44 {
        ext[2..4].copy_from_slice(&fragment.to_be_bytes());
    }
    out.extend_from_slice(&ext);
    out.extend_from_slice(&f[14 + 40..]);
    out
}

#[test]
fn ipv6_extension_headers_are_skipped_and_fragments_refused() {
    for (kind, proto) in [(0u8, 6u8), (60, 17), (43, 6), (44, 17)] {
        let plain = ip_frame(true, false, proto, &[7; 100], 0x1234);
        let mut f = with_extension(&plain, kind, 0);
        complete_checksum(&mut f).unwrap();
        // The checksum is the one of the frame without the extension (same pseudo header,
        // same segment).
        let mut g = plain.clone();
        complete_checksum(&mut g).unwrap();
        assert_eq!(f[14 + 48..], g[14 + 40..], "extension {kind}");
        assert!(verifies(&g, true, false, proto));
    }
    let plain = ip_frame(true, false, 17, &[7; 100], 0);
    for fragment in [0x0001, 0x0008] {
        let mut f = with_extension(&plain, 44, fragment);
        let before = f.clone();
        assert_eq!(complete_checksum(&mut f), Err(ChecksumError::Unsupported));
        assert_eq!(f, before);
    }
    // An extension header longer than the payload.
    let mut f = with_extension(&plain, 0, 0);
    f[14 + 41] = 200;
    assert_eq!(complete_checksum(&mut f), Err(ChecksumError::Malformed));
}
