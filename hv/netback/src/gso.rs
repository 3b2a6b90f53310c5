//! Segmenting a TCP packet a front end sent with a GSO extra (`feature-gso-tcpv4` and
//! `feature-gso-tcpv6`) into frames of at most the extra's segment size, as Linux's
//! `tcp_gso_segment` does for a device without TSO: each segment carries a copy of the
//! headers, its own sequence number, IPv4 total length, identifier (the first one's plus the
//! segment's index) and header checksum, or IPv6 payload length, and a complete TCP checksum;
//! FIN and PSH stay on the last segment only, CWR on the first only.
//!
//! Why: Linux's netfront sends one large packet per TCP send when the back end offers GSO,
//! as it does to Linux's netback. Without it every 1448 bytes are a packet of their own, and
//! Linux's TCP small queues keep one of them at a time in the device, so each round trip of
//! hv's switch and NIC carried one segment (`hv-linux`'s download: 2.3 MB/s).

use alloc::vec::Vec;

use crate::checksum::{
    ChecksumError, ETH_HLEN, ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETHERTYPE_VLAN, IPV4_HLEN, IPV6_HLEN,
    PROTO_TCP, TCP_HLEN, add_bytes, be16, complete_checksum, fold, ipv6_extensions,
};

/// The smallest segment size taken: Linux's `TCP_MIN_MSS`. A front end asking for less
/// (a 64 KiB packet cut into one-byte segments is 65,535 frames through the switch and the
/// NIC, each a virtio round trip) has its packet refused, not amplified.
pub const MIN_MSS: u16 = 88;

/// TCP flags kept on the last segment only.
const FIN_PSH: u8 = 0x09;
/// TCP flag kept on the first segment only.
const CWR: u8 = 0x80;

/// Splits Ethernet frame `packet` (TCP over IPv4 or IPv6, one optional 802.1Q tag) into
/// segments of at most `mss` payload bytes, handing each to `out` with its checksums
/// complete; the number of segments. A packet with no more than `mss` payload bytes is one
/// segment. Anything else (not TCP, an IPv4 fragment, headers that do not fit, `mss` below
/// [`MIN_MSS`]) is refused before anything is handed out.
pub fn segment_tcp(
    packet: &[u8],
    mss: u16,
    out: &mut dyn FnMut(&[u8]),
) -> Result<usize, ChecksumError> {
    if mss < MIN_MSS {
        return Err(ChecksumError::Malformed);
    }
    let mss = usize::from(mss);
    let mut l3 = ETH_HLEN;
    let mut ethertype = be16(packet, 12).ok_or(ChecksumError::Malformed)?;
    if ethertype == ETHERTYPE_VLAN {
        ethertype = be16(packet, 16).ok_or(ChecksumError::Malformed)?;
        l3 += 4;
    }
    let ip = packet.get(l3..).ok_or(ChecksumError::Malformed)?;
    // (transport offset, end of the IP packet, IPv4 header length if IPv4)
    let (l4, end, ipv4) = match ethertype {
        ETHERTYPE_IPV4 => {
            let vihl = ip.first().copied().ok_or(ChecksumError::Malformed)?;
            let ihl = usize::from(vihl & 0x0f) * 4;
            if vihl >> 4 != 4 || ihl < IPV4_HLEN || ip.len() < ihl {
                return Err(ChecksumError::Malformed);
            }
            let total = usize::from(be16(ip, 2).ok_or(ChecksumError::Malformed)?);
            if be16(ip, 6).ok_or(ChecksumError::Malformed)? & 0x3fff != 0 {
                return Err(ChecksumError::Unsupported);
            }
            if total < ihl || total > ip.len() {
                return Err(ChecksumError::Malformed);
            }
            if ip.get(9).copied() != Some(PROTO_TCP) {
                return Err(ChecksumError::Unsupported);
            }
            (l3 + ihl, l3 + total, Some(ihl))
        }
        ETHERTYPE_IPV6 => {
            if ip.len() < IPV6_HLEN || ip.first().is_none_or(|v| v >> 4 != 6) {
                return Err(ChecksumError::Malformed);
            }
            let payload = usize::from(be16(ip, 4).ok_or(ChecksumError::Malformed)?);
            if payload > ip.len() - IPV6_HLEN {
                return Err(ChecksumError::Malformed);
            }
            let (skip, proto) = ipv6_extensions(ip, payload)?;
            if proto != PROTO_TCP {
                return Err(ChecksumError::Unsupported);
            }
            (l3 + skip, l3 + IPV6_HLEN + payload, None)
        }
        _ => return Err(ChecksumError::Unsupported),
    };
    let tcp = packet.get(l4..end).ok_or(ChecksumError::Malformed)?;
    let thl = usize::from(tcp.get(12).copied().ok_or(ChecksumError::Malformed)? >> 4) * 4;
    if thl < TCP_HLEN || tcp.len() < thl {
        return Err(ChecksumError::Malformed);
    }
    let headers = l4 + thl;
    let (head, data) = (&packet[..headers], &packet[headers..end]);
    let seq = u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]);
    let flags = tcp[13];
    let ip_id = be16(ip, 4).unwrap_or(0);
    let count = data.len().div_ceil(mss).max(1);
    let mut seg = Vec::with_capacity(headers + mss);
    for index in 0..count {
        let at = index * mss;
        let chunk = data.get(at..data.len().min(at + mss)).unwrap_or(&[]);
        seg.clear();
        seg.extend_from_slice(head);
        seg.extend_from_slice(chunk);
        let ip_len = headers - l3 + chunk.len();
        match ipv4 {
            Some(ihl) => {
                let total = u16::try_from(ip_len).map_err(|_| ChecksumError::Malformed)?;
                seg[l3 + 2..l3 + 4].copy_from_slice(&total.to_be_bytes());
                let id = ip_id.wrapping_add(u16::try_from(index).unwrap_or(u16::MAX));
                seg[l3 + 4..l3 + 6].copy_from_slice(&id.to_be_bytes());
                seg[l3 + 10..l3 + 12].copy_from_slice(&[0, 0]);
                let sum = !fold(add_bytes(0, &seg[l3..l3 + ihl]));
                seg[l3 + 10..l3 + 12].copy_from_slice(&sum.to_be_bytes());
            }
            None => {
                let payload =
                    u16::try_from(ip_len - IPV6_HLEN).map_err(|_| ChecksumError::Malformed)?;
                seg[l3 + 4..l3 + 6].copy_from_slice(&payload.to_be_bytes());
            }
        }
        let offset = u32::try_from(at).map_err(|_| ChecksumError::Malformed)?;
        seg[l4 + 4..l4 + 8].copy_from_slice(&seq.wrapping_add(offset).to_be_bytes());
        let mut f = flags;
        if index + 1 != count {
            f &= !FIN_PSH;
        }
        if index != 0 {
            f &= !CWR;
        }
        seg[l4 + 13] = f;
        complete_checksum(&mut seg)?;
        out(&seg);
    }
    Ok(count)
}
