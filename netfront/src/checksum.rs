//! Checksums where smoltcp's per-device setting cannot follow a frame's flags.
//!
//! With checksum offload ([`crate::device::Offloads::csum`]) smoltcp neither computes nor
//! checks TCP checksums (its setting holds for the whole device); this module decides per
//! frame instead. On tx, [`offloadable`] picks the IPv4 TCP frames that leave flagged
//! `NETTXF_csum_blank | NETTXF_data_validated` (netback completes them, as Linux's netfront
//! asks of it). On rx, a frame flagged `NETRXF_data_validated` or `NETRXF_csum_blank` was
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
