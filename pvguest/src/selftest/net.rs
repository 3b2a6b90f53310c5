//! Self-tests (group `net`) of `netfront` over smoltcp against Linux's netback on stock Xen:
//! the vif the harness configured (`net-expect-mac=`), an address from dom0's DHCP server
//! (`ip=dhcp`, compared with `net-expect-ip=` and `net-expect-gw=`), and an ICMP echo to the
//! gateway. After the tests the guest serves HTTP (`httpd`) on port 80 (`NET serving`) for
//! at most `net-serve-ms=` milliseconds, until the harness writes `data/net-done`, so that
//! the harness can ping it and run real clients against it from dom0.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;

use httpd::address::{AddressMode, Addressing};
use httpd::{Config as ServerConfig, Server, Status};
use netfront::{Config, Netfront, Platform};
use smoltcp::iface::{Config as IfaceConfig, Interface, SocketSet};
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::socket::icmp;
use smoltcp::wire::{EthernetAddress, HardwareAddress, Icmpv4Packet, Icmpv4Repr, IpAddress};
use xenbus::{EventChannel, frontend};

use super::blk_expect::option;
use super::report::Reporter;
use super::run::ConsoleOut;
use crate::memory::heap;
use crate::xen::platform::{KernelEvents, KernelGrants, KernelPages};
use crate::xen::{console, time, xenstore};
use xenbus::grant::GrantAccess;

type Nic = Netfront<KernelPages, KernelGrants, KernelEvents>;
type TestResult = Result<(), String>;
/// A test of the group on the connected interface, with the command line.
type NetTest = (&'static str, fn(&mut Net, &str) -> TestResult);

/// Each test's deadline.
const TIMEOUT_MS: u64 = 30_000;

/// The interface and its sockets once connected.
struct Net {
    nic: Nic,
    iface: Interface,
    sockets: SocketSet<'static>,
    addressing: Addressing,
}

fn now_ns() -> u64 {
    time::now().map_or(0, xenbus::Instant::as_nanos)
}

fn smol_now() -> smoltcp::time::Instant {
    smoltcp::time::Instant::from_micros(i64::try_from(now_ns() / 1000).unwrap_or(i64::MAX))
}

fn say(args: core::fmt::Arguments<'_>) {
    let _ = console::print(format_args!("{args}\n"));
}

impl Net {
    /// One turn: the rings, the interface, the address; then a wait on the port until
    /// `until_ns` or what smoltcp asks for, whichever is sooner.
    fn turn(&mut self, until_ns: u64) {
        self.nic.poll();
        self.iface
            .poll(smol_now(), &mut self.nic, &mut self.sockets);
        let _ = self.nic.flush();
        self.addressing.poll(&mut self.iface, &mut self.sockets);
        let soon = self
            .iface
            .poll_delay(smol_now(), &self.sockets)
            .map_or(until_ns, |d| {
                now_ns().saturating_add(d.total_micros() * 1000)
            });
        let wake = xenbus::Instant::from_nanos(soon.min(until_ns).min(now_ns() + 50_000_000));
        let port = self.nic.port();
        if self.nic.queued_frames() == 0 {
            self.nic.platform_mut().events.wait(port, wake);
        }
    }
}

/// Runs the group (options from the kernel's command line).
pub fn run(rep: &mut Reporter<'_, ConsoleOut>) {
    let cmdline = crate::kernel::boot_state().map_or("", |b| b.cmdline());
    let connected = connect(cmdline);
    let (result, mut net) = match connected {
        Ok(n) => (Ok(()), Some(n)),
        Err(e) => (Err(e), None),
    };
    let _ = rep.record("net-connect", result);
    let tests: [NetTest; 3] = [
        ("net-mac", mac),
        ("net-dhcp", dhcp),
        ("net-ping-gateway", ping_gateway),
    ];
    for (name, test) in tests {
        let result = match net.as_mut() {
            Some(n) => test(n, cmdline),
            None => Err("not connected".to_string()),
        };
        let _ = rep.record(name, result);
    }
    if let Some(n) = net.as_mut() {
        serve(n, cmdline);
        let s = n.nic.stats();
        say(format_args!(
            "NET stats tx-packets {} rx-packets {} tx-requests-per-notification {:.1} rx-requests-per-notification {:.1} bad-responses {}",
            s.tx_packets,
            s.rx_packets,
            s.tx_requests_per_notification(),
            s.rx_requests_per_notification(),
            s.bad_responses
        ));
    }
}

fn connect(cmdline: &str) -> Result<Net, String> {
    crate::kernel::ensure_platform();
    let deadline = time::deadline_ms(TIMEOUT_MS).map_err(|e| format!("clock: {e:?}"))?;
    let nic = xenstore::with(|xs| {
        let ids =
            frontend::enumerate(xs, "vif", deadline).map_err(|e| format!("enumerate: {e:?}"))?;
        if ids != [0] {
            return Err(format!("device/vif lists {ids:?}, expected [0]"));
        }
        let platform = Platform {
            pages: KernelPages::new(),
            grants: KernelGrants,
            events: KernelEvents,
        };
        Nic::connect(xs, 0, Config::default(), platform, deadline)
            .map_err(|e| format!("connect: {e:?}"))
    })
    .map_err(|e| format!("xenstore: {e}"))??;
    let mut nic = nic;
    let mac = nic.config().mac.0;
    let mut config = IfaceConfig::new(HardwareAddress::Ethernet(EthernetAddress(mac)));
    config.random_seed = now_ns();
    let mut iface = Interface::new(config, &mut nic, smol_now());
    let mut sockets = SocketSet::new(vec![]);
    let mode = AddressMode::from_cmdline(cmdline).map_err(|e| format!("{e}"))?;
    let addressing = Addressing::new(mode, &mut iface, &mut sockets);
    log::info!(
        "net-connect: vif 0 mac {} mtu {}",
        nic.config().mac,
        nic.config().mtu
    );
    Ok(Net {
        nic,
        iface,
        sockets,
        addressing,
    })
}

fn mac(net: &mut Net, cmdline: &str) -> TestResult {
    let want =
        option(cmdline, "net-expect-mac").ok_or("no net-expect-mac= (the harness passes it)")?;
    let got = net.nic.config().mac.to_string();
    if !got.eq_ignore_ascii_case(want) {
        return Err(format!(
            "the vif's mac is {got}, the harness configured {want}"
        ));
    }
    Ok(())
}

fn dhcp(net: &mut Net, cmdline: &str) -> TestResult {
    let until = now_ns() + TIMEOUT_MS * 1_000_000;
    while net.addressing.current().is_none() && now_ns() < until {
        net.turn(until);
    }
    let (address, gateway) = net
        .addressing
        .current()
        .ok_or("no address by the deadline")?;
    let got_ip = format!("{address}");
    let got_gw = gateway.map_or("none".to_string(), |g| format!("{g}"));
    log::info!("net-dhcp: {got_ip} gateway {got_gw}");
    let want_ip = option(cmdline, "net-expect-ip").ok_or("no net-expect-ip=")?;
    let want_gw = option(cmdline, "net-expect-gw").ok_or("no net-expect-gw=")?;
    if got_ip != want_ip || got_gw != want_gw {
        return Err(format!(
            "leased {got_ip} gateway {got_gw}, expected {want_ip} gateway {want_gw}"
        ));
    }
    Ok(())
}

fn ping_gateway(net: &mut Net, _cmdline: &str) -> TestResult {
    let (_, gateway) = net.addressing.current().ok_or("no address")?;
    let gateway = gateway.ok_or("no gateway")?;
    let rx = icmp::PacketBuffer::new(vec![icmp::PacketMetadata::EMPTY; 4], vec![0; 512]);
    let tx = icmp::PacketBuffer::new(vec![icmp::PacketMetadata::EMPTY; 4], vec![0; 512]);
    let handle = net.sockets.add(icmp::Socket::new(rx, tx));
    let ident = 0x7076;
    let result = (|| {
        net.sockets
            .get_mut::<icmp::Socket>(handle)
            .bind(icmp::Endpoint::Ident(ident))
            .map_err(|e| format!("bind: {e:?}"))?;
        // netfront asks dom0 for no offload: every checksum is computed and checked here.
        let caps = ChecksumCapabilities::default();
        let until = now_ns() + TIMEOUT_MS * 1_000_000;
        let mut seq = 0u16;
        let mut next_send = 0u64;
        while now_ns() < until {
            let socket = net.sockets.get_mut::<icmp::Socket>(handle);
            if now_ns() >= next_send && socket.can_send() {
                let repr = Icmpv4Repr::EchoRequest {
                    ident,
                    seq_no: seq,
                    data: b"pvguest",
                };
                let buf = socket
                    .send(repr.buffer_len(), IpAddress::Ipv4(gateway))
                    .map_err(|e| format!("send: {e:?}"))?;
                repr.emit(&mut Icmpv4Packet::new_unchecked(buf), &caps);
                seq = seq.wrapping_add(1);
                next_send = now_ns() + 1_000_000_000;
            }
            while socket.can_recv() {
                let (payload, _) = socket.recv().map_err(|e| format!("recv: {e:?}"))?;
                let packet = Icmpv4Packet::new_checked(payload).map_err(|e| format!("{e:?}"))?;
                if let Ok(Icmpv4Repr::EchoReply { ident: i, .. }) =
                    Icmpv4Repr::parse(&packet, &caps)
                    && i == ident
                {
                    log::info!(
                        "net-ping-gateway: echo reply from {gateway} after {seq} request(s)"
                    );
                    return Ok(());
                }
            }
            net.turn(next_send.min(until));
        }
        Err(format!(
            "no echo reply from {gateway} in {TIMEOUT_MS} ms ({seq} requests)"
        ))
    })();
    net.sockets.remove(handle);
    result
}

/// Serves HTTP (and answers ARP and ICMP echo) for at most `net-serve-ms=` milliseconds, or
/// until the harness writes `data/net-done` in this domain's xenstore home.
fn serve(net: &mut Net, cmdline: &str) {
    let Some(ms) = option(cmdline, "net-serve-ms").and_then(|v| v.parse::<u64>().ok()) else {
        return;
    };
    let mut sockets_server = Server::new(ServerConfig::default(), &mut net.sockets);
    say(format_args!("NET serving {ms} ms"));
    let start = now_ns();
    let until = start + ms * 1_000_000;
    let mut next_check = 0u64;
    while now_ns() < until {
        let Net {
            nic,
            iface,
            sockets,
            addressing,
        } = net;
        nic.poll();
        // The driver's counters as of this turn (the status page is built while the
        // interface holds the device); copied, the list is made only when a page asks.
        let driver = nic.stats();
        let delay = sockets_server.step(smol_now(), iface, nic, sockets, &mut || Status {
            uptime_ms: now_ns().saturating_sub(start) / 1_000_000,
            heap_bytes_in_use: heap::stats().1 as u64,
            grants_in_use: u64::from(KernelGrants.grants_in_use()),
            driver: driver_counters(&driver),
        });
        let _ = nic.flush();
        addressing.poll(iface, sockets);
        if now_ns() >= next_check {
            next_check = now_ns() + 300_000_000;
            if done_requested() {
                break;
            }
        }
        let wake = delay.map_or(until, |d| now_ns().saturating_add(d.total_micros() * 1000));
        let wake = wake.min(until).min(next_check);
        if nic.queued_frames() == 0 {
            let port = nic.port();
            nic.platform_mut()
                .events
                .wait(port, xenbus::Instant::from_nanos(wake));
        }
    }
    let stats = sockets_server.stats();
    say(format_args!(
        "NET served {} connections {} requests {} client errors",
        stats.connections, stats.requests, stats.client_errors
    ));
}

/// Whether the harness wrote `data/net-done`.
fn done_requested() -> bool {
    let Ok(deadline) = time::deadline_ms(5_000) else {
        return false;
    };
    xenstore::with(|xs| {
        matches!(
            xs.read_optional(xenbus::TxId::NONE, "data/net-done", deadline),
            Ok(Some(_))
        )
    })
    .unwrap_or(false)
}

/// netfront's counters for the status page.
fn driver_counters(s: &netfront::NetStats) -> alloc::vec::Vec<(&'static str, u64)> {
    alloc::vec![
        ("tx_packets", s.tx_packets),
        ("rx_packets", s.rx_packets),
        ("tx_bytes", s.tx_bytes),
        ("rx_bytes", s.rx_bytes),
        ("bad_responses", s.bad_responses),
    ]
}
