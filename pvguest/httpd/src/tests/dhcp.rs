//! `ip=dhcp`: smoltcp's DHCP client against a small DHCP server on the link, then the
//! service reached at the leased address through the leased gateway's subnet.

use super::link::{Port, carry, interface};
use crate::address::{AddressEvent, AddressMode, Addressing};
use crate::{Config, Server, Status, StatusOnly};
use smoltcp::iface::{Config as IfaceConfig, Interface, SocketSet};
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::socket::tcp;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::*;

const SERVER_MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 1]);
const SERVER_IP: Ipv4Address = Ipv4Address::new(10, 0, 0, 1);
const LEASE: Ipv4Address = Ipv4Address::new(10, 0, 0, 2);

/// Answers DISCOVER with OFFER and REQUEST with ACK (10.0.0.2/24, router 10.0.0.1);
/// returns the frames it sent, or `None` if `frame` is not DHCP.
fn dhcp_server(frame: &[u8]) -> Option<Vec<u8>> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
    let udp = UdpPacket::new_checked(ip.payload()).ok()?;
    if udp.dst_port() != 67 {
        return None;
    }
    let dhcp = DhcpPacket::new_checked(udp.payload()).ok()?;
    let request = DhcpRepr::parse(&dhcp).ok()?;
    let message_type = match request.message_type {
        DhcpMessageType::Discover => DhcpMessageType::Offer,
        DhcpMessageType::Request => DhcpMessageType::Ack,
        _ => return None,
    };
    let reply = DhcpRepr {
        message_type,
        transaction_id: request.transaction_id,
        secs: 0,
        client_hardware_address: request.client_hardware_address,
        client_ip: Ipv4Address::UNSPECIFIED,
        your_ip: LEASE,
        server_ip: SERVER_IP,
        router: Some(SERVER_IP),
        subnet_mask: Some(Ipv4Address::new(255, 255, 255, 0)),
        relay_agent_ip: Ipv4Address::UNSPECIFIED,
        broadcast: false,
        requested_ip: None,
        client_identifier: None,
        server_identifier: Some(SERVER_IP),
        parameter_request_list: None,
        dns_servers: None,
        max_size: None,
        lease_duration: Some(3600),
        renew_duration: None,
        rebind_duration: None,
        additional_options: &[],
    };
    let udp_repr = UdpRepr {
        src_port: 67,
        dst_port: 68,
    };
    let dhcp_len = reply.buffer_len();
    let ip_repr = Ipv4Repr {
        src_addr: SERVER_IP,
        dst_addr: Ipv4Address::BROADCAST,
        next_header: IpProtocol::Udp,
        payload_len: 8 + dhcp_len,
        hop_limit: 64,
    };
    let mut out = vec![0u8; 14 + 20 + 8 + dhcp_len];
    let mut eth = EthernetFrame::new_unchecked(&mut out[..]);
    EthernetRepr {
        src_addr: SERVER_MAC,
        dst_addr: EthernetAddress::BROADCAST,
        ethertype: EthernetProtocol::Ipv4,
    }
    .emit(&mut eth);
    let caps = ChecksumCapabilities::default();
    let mut ip = Ipv4Packet::new_unchecked(eth.payload_mut());
    ip_repr.emit(&mut ip, &caps);
    let mut udp = UdpPacket::new_unchecked(ip.payload_mut());
    udp_repr.emit(
        &mut udp,
        &SERVER_IP.into(),
        &Ipv4Address::BROADCAST.into(),
        dhcp_len,
        |buf| {
            let mut packet = DhcpPacket::new_unchecked(buf);
            reply.emit(&mut packet).unwrap();
        },
        &caps,
    );
    Some(out)
}

#[test]
fn ip_dhcp_leases_the_address_and_the_service_answers_there() {
    let mut guest_port = Port::default();
    let config = IfaceConfig::new(HardwareAddress::Ethernet(EthernetAddress([
        2, 0, 0, 0, 0, 2,
    ])));
    let mut guest = Interface::new(config, &mut guest_port, Instant::ZERO);
    let mut guest_sockets = SocketSet::new(vec![]);
    let mode = AddressMode::from_cmdline("console=hvc0 ip=dhcp").unwrap();
    let mut addressing = Addressing::new(mode, &mut guest, &mut guest_sockets);
    let mut server = Server::new(Config::default(), &mut guest_sockets);

    let mut peer_port = Port::default();
    let mut peer = interface(1, &mut peer_port);
    let mut peer_sockets = SocketSet::new(vec![]);

    let mut now = Instant::ZERO;
    let mut events = Vec::new();
    let mut status = StatusOnly(Status::default);
    for _ in 0..200 {
        now += Duration::from_millis(10);
        server.step(
            now,
            &mut guest,
            &mut guest_port,
            &mut guest_sockets,
            &mut status,
        );
        events.extend(addressing.poll(&mut guest, &mut guest_sockets));
        // The DHCP server sees the guest's broadcasts; everything else goes to the peer.
        let frames: Vec<Vec<u8>> = guest_port.outbound.drain(..).collect();
        for frame in frames {
            match dhcp_server(&frame) {
                Some(reply) => guest_port.inbound.push_back(reply),
                None => guest_port.outbound.push_back(frame),
            }
        }
        carry(&mut guest_port, &mut peer_port);
        peer.poll(now, &mut peer_port, &mut peer_sockets);
        carry(&mut guest_port, &mut peer_port);
        if !events.is_empty() {
            break;
        }
    }
    assert_eq!(
        events,
        [AddressEvent::Configured {
            address: Ipv4Cidr::new(LEASE, 24),
            gateway: Some(SERVER_IP)
        }]
    );
    assert_eq!(
        addressing.current(),
        Some((Ipv4Cidr::new(LEASE, 24), Some(SERVER_IP)))
    );

    // The peer reaches the service at the leased address.
    let mut socket = tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; 4096]),
        tcp::SocketBuffer::new(vec![0; 4096]),
    );
    socket
        .connect(peer.context(), (IpAddress::Ipv4(LEASE), 80), 40001)
        .unwrap();
    let client = peer_sockets.add(socket);
    let mut sent = false;
    let mut inbox = Vec::new();
    for _ in 0..500 {
        now += Duration::from_millis(1);
        server.step(
            now,
            &mut guest,
            &mut guest_port,
            &mut guest_sockets,
            &mut status,
        );
        addressing.poll(&mut guest, &mut guest_sockets);
        carry(&mut guest_port, &mut peer_port);
        peer.poll(now, &mut peer_port, &mut peer_sockets);
        carry(&mut guest_port, &mut peer_port);
        let s = peer_sockets.get_mut::<tcp::Socket>(client);
        if !sent && s.can_send() {
            s.send_slice(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
                .unwrap();
            sent = true;
        }
        while s.can_recv() {
            s.recv(|d| {
                inbox.extend_from_slice(d);
                (d.len(), ())
            })
            .unwrap();
        }
        if inbox.ends_with(b"}}") {
            break;
        }
    }
    let text = String::from_utf8(inbox).unwrap();
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
}
