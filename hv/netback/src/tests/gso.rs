//! GSO send: a TCP packet sent with a GSO extra leaves as segments of the extra's size, each
//! with its own headers and complete checksums; our netfront's coalesced runs come out as
//! the segments it was given.

use super::rig::Rig;
use crate::checksum::{ChecksumError, complete_checksum};
use crate::gso::segment_tcp;
use std::vec::Vec;

/// A TCP segment over IPv4 (`v6` false) or IPv6 with `payload` bytes, sequence `seq`, IPv4
/// id `id`, TCP flags `flags`, checksums complete.
fn tcp_frame(v6: bool, payload: usize, seq: u32, id: u16, flags: u8) -> Vec<u8> {
    let ip_hlen = if v6 { 40 } else { 20 };
    let mut f = std::vec![0u8; 14 + ip_hlen + 20 + payload];
    f[..6].copy_from_slice(&[0x52, 0x54, 0, 0x12, 0x34, 0x56]);
    f[6..12].copy_from_slice(&[0x00, 0x16, 0x3e, 0, 0, 0x21]);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip = &mut f[14..14 + ip_hlen];
    if v6 {
        let ip = &mut f[12..54];
        ip[..2].copy_from_slice(&[0x86, 0xdd]);
        let ip = &mut ip[2..];
        ip[0] = 0x60;
        ip[4..6].copy_from_slice(&((20 + payload) as u16).to_be_bytes());
        ip[6] = 6;
        ip[7] = 64;
        ip[8..24].copy_from_slice(&[
            0xfe, 0x80, 0, 0, 0, 0, 0, 0, 2, 0x16, 0x3e, 0, 0, 0, 0, 0x21,
        ]);
        ip[24..40].copy_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    } else {
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&((20 + 20 + payload) as u16).to_be_bytes());
        ip[4..6].copy_from_slice(&id.to_be_bytes());
        ip[6] = 0x40;
        ip[8] = 64;
        ip[9] = 6;
        ip[12..16].copy_from_slice(&[10, 0, 2, 16]);
        ip[16..20].copy_from_slice(&[10, 0, 2, 2]);
        let mut sum = 0u32;
        for pair in ip.chunks_exact(2) {
            sum += u32::from(u16::from_be_bytes([pair[0], pair[1]]));
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    }
    let tcp = 14 + ip_hlen;
    f[tcp..tcp + 4].copy_from_slice(&[0x00, 0x50, 0xc0, 0x20]);
    f[tcp + 4..tcp + 8].copy_from_slice(&seq.to_be_bytes());
    f[tcp + 8..tcp + 12].copy_from_slice(&55u32.to_be_bytes());
    f[tcp + 12] = 0x50;
    f[tcp + 13] = flags;
    f[tcp + 14..tcp + 16].copy_from_slice(&64186u16.to_be_bytes());
    for (i, b) in f[tcp + 20..].iter_mut().enumerate() {
        // The stream's byte at this sequence number: segments of one stream agree.
        *b = (seq as usize + i).wrapping_mul(7) as u8;
    }
    complete_checksum(&mut f).unwrap();
    f
}

const ACK: u8 = 0x10;
const PSH: u8 = 0x08;
const FIN: u8 = 0x01;
const CWR: u8 = 0x80;

#[test]
fn a_tcp_packet_is_cut_into_segments_each_with_its_headers_and_checksums() {
    for v6 in [false, true] {
        // One 3000-byte packet with every flag the cut moves: the segments Linux's
        // `tcp_gso_segment` makes of it.
        let packet = tcp_frame(v6, 3000, 1000, 7, ACK | PSH | FIN | CWR);
        let mut got = Vec::new();
        let n = segment_tcp(&packet, 1448, &mut |s| got.push(s.to_vec())).unwrap();
        let want = [
            tcp_frame(v6, 1448, 1000, 7, ACK | CWR),
            tcp_frame(v6, 1448, 2448, 8, ACK),
            tcp_frame(v6, 104, 3896, 9, ACK | PSH | FIN),
        ];
        assert_eq!(n, 3, "v6 {v6}");
        assert_eq!(got, want, "v6 {v6}");
        // A packet within one segment leaves as it is.
        let small = tcp_frame(v6, 1448, 5, 1, ACK | PSH);
        let mut got = Vec::new();
        assert_eq!(
            segment_tcp(&small, 1448, &mut |s| got.push(s.to_vec())),
            Ok(1)
        );
        assert_eq!(got, [small]);
    }
}

#[test]
fn what_is_not_tcp_or_has_no_segment_size_is_refused_before_anything_leaves() {
    let packet = tcp_frame(false, 3000, 1000, 7, ACK);
    let mut udp = packet.clone();
    udp[14 + 9] = 17;
    let mut fragment = packet.clone();
    fragment[14 + 6] = 0x20;
    let mut short = packet[..14 + 20 + 10].to_vec();
    short[16..18].copy_from_slice(&30u16.to_be_bytes());
    let cases = [
        (&packet, 0, ChecksumError::Malformed),
        // A segment size that would cut the packet into thousands of frames.
        (&packet, 1, ChecksumError::Malformed),
        (&packet, crate::gso::MIN_MSS - 1, ChecksumError::Malformed),
        (&udp, 1448, ChecksumError::Unsupported),
        (&fragment, 1448, ChecksumError::Unsupported),
        (&short, 1448, ChecksumError::Malformed),
    ];
    for (p, mss, e) in cases {
        let mut got = 0;
        assert_eq!(segment_tcp(p, mss, &mut |_| got += 1), Err(e));
        assert_eq!(got, 0);
    }
}

#[test]
fn netfronts_coalesced_segments_leave_netback_as_the_segments_it_was_given() {
    let rig = Rig::new();
    let mut guest = rig.add_guest(5, 0);
    let mut front = rig.connect(&mut guest);
    assert!(front.offloads().gso_tx, "netback offers feature-gso-tcpv4");
    let segments: Vec<Vec<u8>> = (0..4u16)
        .map(|i| tcp_frame(false, 1448, 1000 + 1448 * u32::from(i), 7 + i, ACK))
        .collect();
    for s in &segments {
        front.send(s).unwrap();
    }
    front.flush().unwrap();
    rig.step();
    assert_eq!(front.stats().tx_gso, 1, "one GSO frame on the ring");
    assert_eq!(rig.sent(&guest), segments);
    rig.dev(&guest, |d| {
        let s = d.stats();
        assert_eq!(
            (s.tx_gso, s.tx_frames, s.tx_errors, s.tx_dropped),
            (1, 4, 0, 0)
        );
    });
}
