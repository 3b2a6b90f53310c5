//! Completing the TCP or UDP checksum of a frame a front end sent `NETTXF_csum_blank`
//! (checksum offload), before the frame leaves the vif: the switch, other guests and QEMU's
//! NIC all need complete frames.
//!
//! Linux's netback marks such a frame `CHECKSUM_PARTIAL` and `skb_checksum_setup` finds the
//! transport header; the checksum is filled in later, by whoever sends it on. Here it is
//! filled in at once, from scratch (the field is zeroed first, whatever the front end left
//! in it: a pseudo-header sum, as Linux's netfront leaves, or anything else). What
//! `skb_checksum_setup` refuses is refused here too: anything but TCP or UDP over IPv4 or
//! IPv6 (one optional 802.1Q tag before it; IPv6's hop-by-hop, routing, destination-options,
//! authentication and fragment headers skipped as Linux skips them), a fragment, headers that
//! do not fit the frame: such a frame is refused, never sent with a wrong checksum.

/// Ethernet header bytes.
pub const ETH_HLEN: usize = 14;
pub(crate) const ETHERTYPE_IPV4: u16 = 0x0800;
pub(crate) const ETHERTYPE_IPV6: u16 = 0x86dd;
pub(crate) const ETHERTYPE_VLAN: u16 = 0x8100;
pub(crate) const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;
/// Offset of the checksum field in a TCP header.
const TCP_CSUM: usize = 16;
/// Smallest TCP header.
pub(crate) const TCP_HLEN: usize = 20;
/// Offset of the checksum field in a UDP header.
const UDP_CSUM: usize = 6;
/// UDP header bytes.
const UDP_HLEN: usize = 8;
pub(crate) const IPV4_HLEN: usize = 20;
pub(crate) const IPV6_HLEN: usize = 40;

/// Why a `csum_blank` frame could not be completed (the frame is dropped and counted).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChecksumError {
    /// Not TCP or UDP over IPv4 or IPv6, or an IPv4 fragment.
    Unsupported,
    /// The headers do not fit the frame, or contradict each other.
    Malformed,
}

pub(crate) fn be16(frame: &[u8], at: usize) -> Option<u16> {
    let bytes = frame.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([
        bytes.first().copied()?,
        bytes.get(1).copied()?,
    ]))
}

/// The one's-complement sum of `data` added to `sum` (not folded).
pub(crate) fn add_bytes(mut sum: u64, data: &[u8]) -> u64 {
    let mut words = data.chunks_exact(2);
    for word in &mut words {
        sum += u64::from(u16::from_be_bytes([word[0], word[1]]));
    }
    if let [last] = words.remainder() {
        sum += u64::from(u16::from_be_bytes([*last, 0]));
    }
    sum
}

pub(crate) fn fold(mut sum: u64) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    // The loop leaves at most 16 bits.
    u16::try_from(sum).unwrap_or(0xffff)
}

/// Walks the IPv6 extension headers `skb_checksum_setup_ipv6` walks (hop-by-hop, routing,
/// destination options, authentication, fragment) inside the `payload` bytes after the fixed
/// header of `ip`: the offset of the transport header in `ip`, and its protocol.
pub(crate) fn ipv6_extensions(ip: &[u8], payload: usize) -> Result<(usize, u8), ChecksumError> {
    const HOPOPTS: u8 = 0;
    const ROUTING: u8 = 43;
    const FRAGMENT: u8 = 44;
    const AUTH: u8 = 51;
    const DSTOPTS: u8 = 60;
    let end = IPV6_HLEN + payload;
    let mut at = IPV6_HLEN;
    let mut next = ip.get(6).copied().ok_or(ChecksumError::Malformed)?;
    loop {
        let header = ip.get(at..end).ok_or(ChecksumError::Malformed)?;
        let len = match next {
            HOPOPTS | ROUTING | DSTOPTS => {
                (usize::from(header.get(1).copied().ok_or(ChecksumError::Malformed)?) + 1) * 8
            }
            AUTH => (usize::from(header.get(1).copied().ok_or(ChecksumError::Malformed)?) + 2) * 4,
            FRAGMENT => {
                // An offset or more fragments: a fragment, which has no whole segment.
                let off = be16(header, 2).ok_or(ChecksumError::Malformed)?;
                if off & 0xfff9 != 0 {
                    return Err(ChecksumError::Unsupported);
                }
                8
            }
            proto => return Ok((at, proto)),
        };
        next = header.first().copied().ok_or(ChecksumError::Malformed)?;
        // A header longer than what is left shows as `at > end` on the next round.
        at += len;
    }
}

/// Fills in the transport checksum of Ethernet frame `frame` (see the module documentation).
/// On an error the frame is unchanged.
pub fn complete_checksum(frame: &mut [u8]) -> Result<(), ChecksumError> {
    let mut l3 = ETH_HLEN;
    let mut ethertype = be16(frame, 12).ok_or(ChecksumError::Malformed)?;
    if ethertype == ETHERTYPE_VLAN {
        ethertype = be16(frame, 16).ok_or(ChecksumError::Malformed)?;
        l3 += 4;
    }
    // (transport offset, transport length, protocol, pseudo-header sum without the length
    // and protocol)
    let (l4, l4_len, proto, pseudo) = match ethertype {
        ETHERTYPE_IPV4 => {
            let ip = frame.get(l3..).ok_or(ChecksumError::Malformed)?;
            let (&vihl, _) = ip.split_first().ok_or(ChecksumError::Malformed)?;
            let ihl = usize::from(vihl & 0x0f) * 4;
            if vihl >> 4 != 4 || ihl < IPV4_HLEN || ip.len() < ihl {
                return Err(ChecksumError::Malformed);
            }
            let total = usize::from(be16(ip, 2).ok_or(ChecksumError::Malformed)?);
            let frag = be16(ip, 6).ok_or(ChecksumError::Malformed)?;
            // More fragments, or a fragment offset.
            if frag & 0x3fff != 0 {
                return Err(ChecksumError::Unsupported);
            }
            if total < ihl || total > ip.len() {
                return Err(ChecksumError::Malformed);
            }
            let proto = ip.get(9).copied().ok_or(ChecksumError::Malformed)?;
            let addrs = ip.get(12..20).ok_or(ChecksumError::Malformed)?;
            (l3 + ihl, total - ihl, proto, add_bytes(0, addrs))
        }
        ETHERTYPE_IPV6 => {
            let ip = frame.get(l3..).ok_or(ChecksumError::Malformed)?;
            if ip.len() < IPV6_HLEN || ip.first().is_none_or(|v| v >> 4 != 6) {
                return Err(ChecksumError::Malformed);
            }
            let payload = usize::from(be16(ip, 4).ok_or(ChecksumError::Malformed)?);
            if payload > ip.len() - IPV6_HLEN {
                return Err(ChecksumError::Malformed);
            }
            let addrs = ip.get(8..40).ok_or(ChecksumError::Malformed)?;
            let (skip, proto) = ipv6_extensions(ip, payload)?;
            (
                l3 + skip,
                payload - (skip - IPV6_HLEN),
                proto,
                add_bytes(0, addrs),
            )
        }
        _ => return Err(ChecksumError::Unsupported),
    };
    let (field, min) = match proto {
        PROTO_TCP => (TCP_CSUM, TCP_HLEN),
        PROTO_UDP => (UDP_CSUM, UDP_HLEN),
        _ => return Err(ChecksumError::Unsupported),
    };
    let end = l4.checked_add(l4_len).ok_or(ChecksumError::Malformed)?;
    let segment = frame.get_mut(l4..end).ok_or(ChecksumError::Malformed)?;
    if segment.len() < min {
        return Err(ChecksumError::Malformed);
    }
    let len = u32::try_from(segment.len()).map_err(|_| ChecksumError::Malformed)?;
    let slot = segment
        .get_mut(field..field + 2)
        .ok_or(ChecksumError::Malformed)?;
    slot.copy_from_slice(&[0, 0]);
    let sum = pseudo + u64::from(proto) + u64::from(len >> 16) + u64::from(len & 0xffff);
    let mut checksum = !fold(add_bytes(sum, segment));
    if proto == PROTO_UDP && checksum == 0 {
        // RFC 768: a computed zero is sent as all ones (zero means "no checksum").
        checksum = 0xffff;
    }
    if let Some(slot) = segment.get_mut(field..field + 2) {
        slot.copy_from_slice(&checksum.to_be_bytes());
    }
    Ok(())
}
