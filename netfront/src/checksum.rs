//! Completing the transport checksum of a received frame flagged `NETRXF_csum_blank`.
//!
//! This front end writes `feature-no-csum-offload` = 1, so netback's vif has no checksum
//! offload and dom0 fills every checksum before the frame reaches the ring; a frame that still
//! comes flagged `csum_blank` (a backend ignoring the key) carries a partial checksum that
//! smoltcp would reject. Such a frame gets its TCP or UDP checksum computed here, over IPv4;
//! anything else flagged `csum_blank` is dropped (the caller counts it), never delivered with
//! a checksum known to be wrong. `NETRXF_data_validated` alone needs nothing: the checksum is
//! present, and smoltcp checks it anyway.

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
