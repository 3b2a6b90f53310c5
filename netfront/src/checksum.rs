//! Checksums where smoltcp's per-device setting cannot follow a frame's flags.
//!
//! With checksum offload ([`crate::device::Offloads::csum`]) smoltcp neither computes nor
//! checks TCP checksums (its setting holds for the whole device); this module decides per
//! frame instead. On tx, [`offloadable`] picks the IPv4 TCP frames that leave flagged
//! `NETTXF_csum_blank | NETTXF_data_validated` with the pseudo-header's sum in their checksum
//! field ([`fill_pseudo_header`]), as Linux's netfront leaves a `CHECKSUM_PARTIAL` segment:
//! Linux's netback does not recompute it (`checksum_setup` asks no recalculation), and whoever
//! completes the checksum (dom0's stack or a NIC) sums from the TCP header on. On rx, a frame flagged `NETRXF_data_validated` or `NETRXF_csum_blank` was
//! checked or made by dom0 and is trusted, as Linux's netfront trusts it; any other TCP frame
//! has its checksum checked here ([`verify_tcp`]), and a wrong one is dropped.
//!
//! Without offload (`feature-no-csum-offload` = 1) dom0 fills every checksum; a frame that
//! still comes flagged `csum_blank` (a backend ignoring the key), and a `csum_blank` UDP frame
//! in any case, gets its checksum computed here ([`complete_checksum`]), over IPv4; anything
//! else flagged `csum_blank` is dropped (the caller counts it), never delivered with a
//! checksum known to be wrong.

use smoltcp::wire::{EthernetFrame, EthernetProtocol, IpAddress, IpProtocol, Ipv4Packet};
use smoltcp::wire::{TcpPacket, UdpPacket};

/// Why a `csum_blank` frame could not be completed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChecksumError {
    /// Not an IPv4 TCP or UDP frame, or a fragment.
    Unsupported,
    /// The headers do not parse.
    Malformed,
}

/// Fills in the transport checksum of `frame` (Ethernet, IPv4, TCP or UDP, not a fragment).
pub fn complete_checksum(frame: &mut [u8]) -> Result<(), ChecksumError> {
    let mut ethernet = EthernetFrame::new_checked(frame).map_err(|_| ChecksumError::Malformed)?;
    if ethernet.ethertype() != EthernetProtocol::Ipv4 {
        return Err(ChecksumError::Unsupported);
    }
    let mut ip =
        Ipv4Packet::new_checked(ethernet.payload_mut()).map_err(|_| ChecksumError::Malformed)?;
    if ip.more_frags() || ip.frag_offset() != 0 {
        return Err(ChecksumError::Unsupported);
    }
    let src = IpAddress::Ipv4(ip.src_addr());
    let dst = IpAddress::Ipv4(ip.dst_addr());
    match ip.next_header() {
        IpProtocol::Tcp => {
            let mut tcp =
                TcpPacket::new_checked(ip.payload_mut()).map_err(|_| ChecksumError::Malformed)?;
            tcp.fill_checksum(&src, &dst);
        }
        IpProtocol::Udp => {
            let mut udp =
                UdpPacket::new_checked(ip.payload_mut()).map_err(|_| ChecksumError::Malformed)?;
            udp.fill_checksum(&src, &dst);
        }
        _ => return Err(ChecksumError::Unsupported),
    }
    Ok(())
}

/// An Ethernet header's bytes.
const ETHERNET: usize = 14;

/// Whether `frame` is an IPv4 TCP segment, not a fragment, whose headers lie inside it: one
/// netback can complete (`NETTXF_csum_blank`).
pub fn offloadable(frame: &[u8]) -> bool {
    let Ok(ethernet) = EthernetFrame::new_checked(frame) else {
        return false;
    };
    if ethernet.ethertype() != EthernetProtocol::Ipv4 {
        return false;
    }
    let Ok(ip) = Ipv4Packet::new_checked(ethernet.payload()) else {
        return false;
    };
    !ip.more_frags()
        && ip.frag_offset() == 0
        && ip.next_header() == IpProtocol::Tcp
        && TcpPacket::new_checked(ip.payload()).is_ok()
}

/// Whether `frame` (Ethernet) carries an IPv4 TCP segment at all, whatever its state.
pub fn is_tcp(frame: &[u8]) -> bool {
    frame.get(12..14) == Some(&[0x08, 0x00]) && frame.get(ETHERNET + 9) == Some(&6)
}

/// Checks the TCP checksum of an IPv4 TCP frame: `Ok(true)` if it is right, `Ok(false)` if
/// it is wrong, an error if the frame is not one that parses.
pub fn verify_tcp(frame: &[u8]) -> Result<bool, ChecksumError> {
    let ethernet = EthernetFrame::new_checked(frame).map_err(|_| ChecksumError::Malformed)?;
    if ethernet.ethertype() != EthernetProtocol::Ipv4 {
        return Err(ChecksumError::Unsupported);
    }
    let ip = Ipv4Packet::new_checked(ethernet.payload()).map_err(|_| ChecksumError::Malformed)?;
    if ip.more_frags() || ip.frag_offset() != 0 || ip.next_header() != IpProtocol::Tcp {
        return Err(ChecksumError::Unsupported);
    }
    let tcp = TcpPacket::new_checked(ip.payload()).map_err(|_| ChecksumError::Malformed)?;
    Ok(tcp.verify_checksum(
        &IpAddress::Ipv4(ip.src_addr()),
        &IpAddress::Ipv4(ip.dst_addr()),
    ))
}

/// Writes the IPv4 pseudo-header's one's-complement sum (addresses, protocol, TCP length;
/// not inverted) into the TCP checksum field of an [`offloadable`] frame: what the peer that
/// completes a `NETTXF_csum_blank` frame adds the segment's sum to. `false` (nothing
/// written) if the frame is not offloadable.
pub fn fill_pseudo_header(frame: &mut [u8]) -> bool {
    if !offloadable(frame) {
        return false;
    }
    let ihl = usize::from(frame[ETHERNET] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([
        frame[ETHERNET + 2],
        frame[ETHERNET + 3],
    ]));
    let Some(tcp_len) = total.checked_sub(ihl) else {
        return false;
    };
    let mut sum = 6u32 + u32::from(u16::try_from(tcp_len).unwrap_or(u16::MAX));
    for pair in frame[ETHERNET + 12..ETHERNET + 20].chunks_exact(2) {
        sum += u32::from(u16::from_be_bytes([pair[0], pair[1]]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    let at = ETHERNET + ihl + 16;
    let folded = u16::try_from(sum).unwrap_or(0xffff);
    frame[at..at + 2].copy_from_slice(&folded.to_be_bytes());
    true
}
