//! smoltcp over netfront against the fake netback, end to end: a TCP exchange with a smoltcp
//! peer on the backend's side of the bridge.

use super::*;
use smoltcp::iface::{Config as IfaceConfig, Interface, SocketSet};
use smoltcp::phy::{self, DeviceCapabilities, Medium};
use smoltcp::socket::tcp;
use smoltcp::time::Instant as NetInstant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr};
use std::collections::VecDeque;

/// The peer's network card: frames in from the bridge, frames out to it.
#[derive(Default)]
pub(super) struct Wire {
    pub(super) inbound: VecDeque<Vec<u8>>,
    pub(super) outbound: VecDeque<Vec<u8>>,
}

pub(super) struct WireRx(Vec<u8>);
pub(super) struct WireTx<'a>(&'a mut VecDeque<Vec<u8>>);

impl phy::RxToken for WireRx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl phy::TxToken for WireTx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut frame = vec![0u8; len];
        let r = f(&mut frame);
        self.0.push_back(frame);
        r
    }
}

impl phy::Device for Wire {
    type RxToken<'a> = WireRx;
    type TxToken<'a> = WireTx<'a>;

    fn receive(&mut self, _: NetInstant) -> Option<(WireRx, WireTx<'_>)> {
        let frame = self.inbound.pop_front()?;
        Some((WireRx(frame), WireTx(&mut self.outbound)))
    }

    fn transmit(&mut self, _: NetInstant) -> Option<WireTx<'_>> {
        Some(WireTx(&mut self.outbound))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = 1514;
        caps
    }
}

pub(super) fn interface(mac: [u8; 6], ip: [u8; 4], device: &mut impl phy::Device) -> Interface {
    let config = IfaceConfig::new(HardwareAddress::Ethernet(EthernetAddress(mac)));
    let mut iface = Interface::new(config, device, NetInstant::ZERO);
    iface.update_ip_addrs(|addrs| {
        addrs
            .push(IpCidr::new(IpAddress::v4(ip[0], ip[1], ip[2], ip[3]), 24))
            .unwrap();
    });
    iface
}

fn tcp_socket() -> tcp::Socket<'static> {
    tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; 64 * 1024]),
        tcp::SocketBuffer::new(vec![0; 64 * 1024]),
    )
}

/// `len` bytes of a stream that says where each byte belongs.
fn stream(seed: u32, len: usize) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) ^ seed).to_le_bytes()[1])
        .collect()
}

#[test]
fn a_tcp_exchange_over_netfront_and_the_fake_netback() {
    let mut rig = Rig::new();
    let mac = rig.dev.config().mac.0;
    let mut guest = interface(mac, [10, 0, 0, 2], &mut rig.dev);
    let mut wire = Wire::default();
    let mut peer = interface([2, 0, 0, 0, 0, 1], [10, 0, 0, 1], &mut wire);

    let mut guest_sockets = SocketSet::new(vec![]);
    let mut peer_sockets = SocketSet::new(vec![]);
    let client = guest_sockets.add(tcp_socket());
    let server = peer_sockets.add(tcp_socket());
    peer_sockets
        .get_mut::<tcp::Socket>(server)
        .listen(8080)
        .unwrap();
    guest_sockets
        .get_mut::<tcp::Socket>(client)
        .connect(guest.context(), (IpAddress::v4(10, 0, 0, 1), 8080), 49152)
        .unwrap();

    const LEN: usize = 1 << 20;
    let upload = stream(1, LEN);
    let download = stream(2, LEN);
    let (mut up_sent, mut down_sent) = (0, 0);
    let mut up_got = Vec::with_capacity(LEN);
    let mut down_got = Vec::with_capacity(LEN);

    let mut step = 0i64;
    while (up_got.len() < LEN || down_got.len() < LEN) && step < 200_000 {
        let now = NetInstant::from_millis(step);
        step += 1;
        guest.poll(now, &mut rig.dev, &mut guest_sockets);
        rig.dev.flush().unwrap();
        rig.backend();
        wire.inbound.extend(rig.back.from_guest.drain(..));
        peer.poll(now, &mut wire, &mut peer_sockets);
        rig.back.to_guest.extend(wire.outbound.drain(..));
        rig.backend();

        let c = guest_sockets.get_mut::<tcp::Socket>(client);
        if c.can_send() && up_sent < LEN {
            up_sent += c.send_slice(&upload[up_sent..]).unwrap();
        }
        if c.can_recv() {
            c.recv(|data| {
                down_got.extend_from_slice(data);
                (data.len(), ())
            })
            .unwrap();
        }
        let s = peer_sockets.get_mut::<tcp::Socket>(server);
        if s.can_send() && down_sent < LEN {
            down_sent += s.send_slice(&download[down_sent..]).unwrap();
        }
        if s.can_recv() {
            s.recv(|data| {
                up_got.extend_from_slice(data);
                (data.len(), ())
            })
            .unwrap();
        }
    }
    assert_eq!(up_got.len(), LEN, "upload incomplete after {step} steps");
    assert_eq!(
        down_got.len(),
        LEN,
        "download incomplete after {step} steps"
    );
    assert!(up_got == upload, "upload corrupted");
    assert!(down_got == download, "download corrupted");

    let stats = rig.dev.stats();
    eprintln!(
        "e2e: {step} steps; tx {} packets {} requests {} notifications ({:.1} per notification); \
         rx {} packets {} requests {} notifications ({:.1} per notification); \
         {} events received; {} bad; {} grants",
        stats.tx_packets,
        stats.tx_requests,
        stats.tx_notifications,
        stats.tx_requests_per_notification(),
        stats.rx_packets,
        stats.rx_requests,
        stats.rx_notifications,
        stats.rx_requests_per_notification(),
        stats.notifications_received,
        stats.bad_responses,
        stats.grants_in_use,
    );
    assert_eq!(
        (stats.bad_responses, stats.rx_dropped, stats.tx_refused),
        (0, 0, 0)
    );
    assert_eq!(rig.back.tx_violations, 0);
    // GSO send: the fake netback offers feature-gso-tcpv4, so runs of segments left as GSO
    // frames (their bytes checked by the peer above), each announcing the segments' size.
    assert!(stats.tx_gso > 0, "{stats:?}");
    assert!(stats.tx_gso_segments >= 2 * stats.tx_gso, "{stats:?}");
    assert_eq!(rig.back.tx_gso.len() as u64, stats.tx_gso);
    assert!(rig.back.tx_gso.iter().all(|&mss| mss > 0 && mss <= 1460));
    // The guest acknowledged the download with pure ACKs, each advertising its window.
    assert!(stats.tx_acks > 0, "{stats:?}");
    assert!(stats.tx_ack_window_sum >= stats.tx_acks, "{stats:?}");
    // Batching: a poll's worth of segments leaves with one notification.
    assert!(stats.tx_requests_per_notification() > 2.0, "{stats:?}");
    assert_eq!(stats.grants_in_use, 2 + 64 + 128, "no grant churn");
    assert_eq!(
        u64::from(xenbus::grant::GrantAccess::grants_in_use(
            &rig.dev.platform().grants
        )),
        stats.grants_in_use
    );
}
