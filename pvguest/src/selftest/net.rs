//! Self-tests (group `net`) of `netfront` over smoltcp against Linux's netback on stock Xen:
//! the vif the harness configured (`net-expect-mac=`), an address from dom0's DHCP server
//! (`ip=dhcp`, compared with `net-expect-ip=` and `net-expect-gw=`), and an ICMP echo to the
//! gateway. After the tests the guest serves HTTP (`crate::service`) on port 80 (`NET
//! serving`) for at most `net-serve-ms=` milliseconds, until the harness writes
//! `data/net-done`, so that the harness can ping it and run real clients against it from dom0:
//! with the archive on `xvda` and a store at `kv-region=` on `xvdb` when the `blk` group left
//! those disks connected (it then closes `xvda`, `NET closed xvda <result>`).
//!
//! `net-csum-offload` proves checksum offload is used, not only negotiated: a TCP SYN to the
//! gateway's port 9 leaves `NETTXF_csum_blank` and its answer (a reset) is trusted by its
//! flags or checked by netfront, as the driver's counters show; with `net-csum=off` neither
//! counter may move.
//!
//! `net-split-evtchn` and `net-multiqueue` prove split event channels and multiple queues
//! are used: asked for (unless `net-split-evtchn=off` / `net-multiqueue=off` or
//! `net-offloads=off`), the backend must offer them, events must move on both channels of a
//! queue (received, or sent by netfront), and SYNs to the gateway's port 9 from several
//! source ports must leave on more than one queue; switched off, one channel and one queue,
//! and no other queue's counters move.
//!
//! `net-sg` and `net-gso-rx` prove scatter-gather and GSO receive are used, from what the
//! harness's bulk transfers did while the guest served (recorded after `serve`, so they need
//! `net-serve-ms=` and a client): with `feature-sg` in use, frames went out in several slots
//! if GSO send is in use too and came in in several slots if GSO receive is (at MTU 1500
//! nothing else needs a second slot); with GSO receive in use, GSO frames came in (dom0's
//! TCP sends them on stock Xen, hv's netback merges the NIC's segments into them). With the
//! feature off (`net-sg=off`, `net-gso-rx=off`, `net-offloads=off`) its counters must not
//! move. Their `FACT` lines say whether the feature was in use and whether each counter moved
//! (`moved`/`still`), never a count: counts differ between platforms.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;

use smoltcp::phy::ChecksumCapabilities;
use smoltcp::socket::{icmp, tcp};
use smoltcp::wire::{Icmpv4Packet, Icmpv4Repr, IpAddress};

use super::blk;
use super::report::Reporter;
use super::run::ConsoleOut;
use crate::cmdline::option;
use crate::service::{self, Net, Storage, now_ns};
use crate::xen::console;

type TestResult = Result<(), String>;
/// A test of the group on the connected interface, with the command line.
type NetTest = (&'static str, fn(&mut Net, &str) -> TestResult);

/// Each test's deadline.
const TIMEOUT_MS: u64 = 30_000;

fn say(args: core::fmt::Arguments<'_>) {
    let _ = console::print(format_args!("{args}\n"));
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
    let tests: [NetTest; 6] = [
        ("net-mac", mac),
        ("net-dhcp", dhcp),
        ("net-ping-gateway", ping_gateway),
        ("net-csum-offload", csum_offload),
        ("net-split-evtchn", split_evtchn),
        ("net-multiqueue", multiqueue),
    ];
    for (name, test) in tests {
        let result = match net.as_mut() {
            Some(n) => test(n, cmdline),
            None => Err("not connected".to_string()),
        };
        let _ = rep.record(name, result);
    }
    let Some(n) = net.as_mut() else {
        for name in ["net-sg", "net-gso-rx"] {
            let _ = rep.record(name, Err::<(), _>("not connected"));
        }
        return;
    };
    {
        let before = n.nic.stats();
        let served = serve(n, cmdline);
        let s = n.nic.stats();
        say(format_args!(
            "NET stats tx-packets {} rx-packets {} tx-requests-per-notification {:.1} rx-requests-per-notification {:.1} bad-responses {}",
            s.tx_packets,
            s.rx_packets,
            s.tx_requests_per_notification(),
            s.rx_requests_per_notification(),
            s.bad_responses
        ));
        say(format_args!(
            "NET offloads {:?} tx-csum-offloaded {} rx-csum-trusted {} rx-csum-verified {} rx-csum-bad {} tx-multi-slot {} rx-multi-slot {} tx-gso {} tx-gso-segments {} rx-gso {} rx-largest-frame {} rx-dropped {}",
            n.nic.offloads(),
            s.tx_csum_offloaded,
            s.rx_csum_trusted,
            s.rx_csum_verified,
            s.rx_csum_bad,
            s.tx_multi_slot,
            s.rx_multi_slot,
            s.tx_gso,
            s.tx_gso_segments,
            s.rx_gso,
            s.rx_largest_frame,
            s.rx_dropped
        ));
        for (q, qs) in s.queues_used().iter().enumerate() {
            say(format_args!(
                "NET queue {q} of {} split {}: tx frames {} rx frames {} events tx-channel {} rx-channel {} notifications tx-channel {} rx-channel {}",
                s.queues_in_use,
                s.split_channels,
                qs.tx_frames,
                qs.rx_frames,
                qs.tx_channel_events,
                qs.rx_channel_events,
                qs.tx_channel_notifications,
                qs.rx_channel_notifications
            ));
        }
        let offloads = n.nic.offloads();
        let used = Used {
            served,
            tx_multi_slot: s.tx_multi_slot > before.tx_multi_slot,
            rx_multi_slot: s.rx_multi_slot > before.rx_multi_slot,
            rx_gso: s.rx_gso > before.rx_gso,
        };
        let yes_no = |b: bool| if b { "yes" } else { "no" };
        let moved = |b: bool| if b { "moved" } else { "still" };
        let _ = rep.fact("net-sg", "in-use", yes_no(offloads.sg));
        let _ = rep.fact("net-sg", "tx-multi-slot", moved(used.tx_multi_slot));
        let _ = rep.fact("net-sg", "rx-multi-slot", moved(used.rx_multi_slot));
        let _ = rep.record("net-sg", sg_used(offloads, used));
        let _ = rep.fact("net-gso-rx", "in-use", yes_no(offloads.gso_rx));
        let _ = rep.fact("net-gso-rx", "received", moved(used.rx_gso));
        let _ = rep.record("net-gso-rx", gso_rx_used(offloads, used));
    }
}

/// Which of the driver's offload counters moved while the guest served.
#[derive(Clone, Copy, Debug)]
struct Used {
    /// The guest served (`net-serve-ms=`), so a client's transfers could move them.
    served: bool,
    tx_multi_slot: bool,
    rx_multi_slot: bool,
    rx_gso: bool,
}

/// `net-sg`: with scatter-gather in use, multi-slot frames went out if GSO send is in use and
/// came in if GSO receive is (and at least one of them); with it off, none either way.
fn sg_used(offloads: netfront::Offloads, used: Used) -> TestResult {
    if !used.served {
        return Err("nothing served (net-serve-ms= and a client's transfers prove it)".into());
    }
    let (tx, rx) = (used.tx_multi_slot, used.rx_multi_slot);
    if !offloads.sg {
        return match (tx, rx) {
            (false, false) => Ok(()),
            _ => Err(format!(
                "scatter-gather off (net-sg=off or the backend lacks it), yet multi-slot \
                 frames moved: sent {tx}, received {rx}"
            )),
        };
    }
    if !offloads.gso_tx && !offloads.gso_rx {
        // Nothing at MTU 1500 needs a second slot: nothing to prove, nothing to refute.
        log::info!("net-sg: scatter-gather on, no GSO in use: multi-slot sent {tx} received {rx}");
        return Ok(());
    }
    if offloads.gso_tx && !tx {
        return Err(
            "scatter-gather and GSO send in use, yet no frame went out in several \
                    slots while serving"
                .into(),
        );
    }
    if offloads.gso_rx && !rx {
        return Err(
            "scatter-gather and GSO receive in use, yet no frame came in in several \
                    slots while serving"
                .into(),
        );
    }
    Ok(())
}

/// `net-gso-rx`: with GSO receive in use, GSO frames came in; with it off, none.
fn gso_rx_used(offloads: netfront::Offloads, used: Used) -> TestResult {
    if !used.served {
        return Err("nothing served (net-serve-ms= and a client's upload prove it)".into());
    }
    match (offloads.gso_rx, used.rx_gso) {
        (true, true) | (false, false) => Ok(()),
        (true, false) => {
            Err("GSO receive in use, yet no GSO frame came in while serving".to_string())
        }
        (false, true) => Err("GSO receive off (net-gso-rx=off), yet GSO frames came in".into()),
    }
}

fn connect(cmdline: &str) -> Result<Net, String> {
    Net::connect(cmdline, TIMEOUT_MS)
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
    let (address, gateway) = net
        .wait_address(until)
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

/// How long `net-csum-offload` waits for the gateway's answer.
const ANSWER_MS: u64 = 10_000;

fn csum_offload(net: &mut Net, _cmdline: &str) -> TestResult {
    let (_, gateway) = net.addressing.current().ok_or("no address")?;
    let gateway = gateway.ok_or("no gateway")?;
    let on = net.nic.offloads().csum;
    let before = net.nic.stats();
    let rx = tcp::SocketBuffer::new(vec![0; 1024]);
    let tx = tcp::SocketBuffer::new(vec![0; 1024]);
    let handle = net.sockets.add(tcp::Socket::new(rx, tx));
    let result = (|| {
        net.sockets
            .get_mut::<tcp::Socket>(handle)
            .connect(net.iface.context(), (IpAddress::Ipv4(gateway), 9), 40_009)
            .map_err(|e| format!("connect: {e:?}"))?;
        let until = now_ns() + ANSWER_MS * 1_000_000;
        // The reset of a closed port closes the socket.
        while now_ns() < until
            && net.sockets.get::<tcp::Socket>(handle).state() != tcp::State::Closed
        {
            net.turn((now_ns() + 50_000_000).min(until));
        }
        let s = net.nic.stats();
        let sent = s.tx_csum_offloaded - before.tx_csum_offloaded;
        let trusted = s.rx_csum_trusted - before.rx_csum_trusted;
        let checked = s.rx_csum_verified - before.rx_csum_verified;
        let state = net.sockets.get::<tcp::Socket>(handle).state();
        log::info!(
            "net-csum-offload: on {on}; sent offloaded {sent}, received trusted {trusted} checked {checked}; socket {state}"
        );
        if state != tcp::State::Closed {
            return Err(format!(
                "no answer from {gateway}:9 in {ANSWER_MS} ms (socket {state})"
            ));
        }
        match (on, sent > 0, trusted + checked > 0) {
            (true, true, true) | (false, false, false) => Ok(()),
            (true, false, _) => Err("offload on, yet no frame left csum_blank".to_string()),
            (true, true, false) => {
                Err("offload on, yet no TCP answer was trusted or checked".to_string())
            }
            (false, _, _) => Err(format!(
                "offload off (net-csum=off), yet {sent} sent and {} received offloaded",
                trusted + checked
            )),
        }
    })();
    net.sockets.get_mut::<tcp::Socket>(handle).abort();
    net.sockets.remove(handle);
    result
}

/// Connects to the gateway's port 9 from each of `ports` at once and waits until every
/// socket is closed by the gateway's reset (or [`ANSWER_MS`] passes): traffic over as many
/// flows.
fn syns_to_gateway(net: &mut Net, ports: core::ops::Range<u16>) -> TestResult {
    let (_, gateway) = net.addressing.current().ok_or("no address")?;
    let gateway = gateway.ok_or("no gateway")?;
    let mut handles = vec![];
    for port in ports {
        let rx = tcp::SocketBuffer::new(vec![0; 256]);
        let tx = tcp::SocketBuffer::new(vec![0; 256]);
        let handle = net.sockets.add(tcp::Socket::new(rx, tx));
        handles.push(handle);
        let connected = net.sockets.get_mut::<tcp::Socket>(handle).connect(
            net.iface.context(),
            (IpAddress::Ipv4(gateway), 9),
            port,
        );
        if let Err(e) = connected {
            for h in handles {
                net.sockets.remove(h);
            }
            return Err(format!("connect from port {port}: {e:?}"));
        }
    }
    let until = now_ns() + ANSWER_MS * 1_000_000;
    let open = |net: &Net| {
        handles
            .iter()
            .filter(|&&h| net.sockets.get::<tcp::Socket>(h).state() != tcp::State::Closed)
            .count()
    };
    while now_ns() < until && open(net) > 0 {
        net.turn((now_ns() + 50_000_000).min(until));
    }
    let left = open(net);
    for h in handles {
        net.sockets.get_mut::<tcp::Socket>(h).abort();
        net.sockets.remove(h);
    }
    if left > 0 {
        return Err(format!(
            "{left} connections to {gateway}:9 not answered in {ANSWER_MS} ms"
        ));
    }
    Ok(())
}

/// Per queue, how much `now` moved past `before` in what `f` reads.
fn moved(
    before: &netfront::NetStats,
    now: &netfront::NetStats,
    f: fn(&netfront::QueueStats) -> u64,
) -> vec::Vec<u64> {
    before
        .queues
        .iter()
        .zip(now.queues.iter())
        .map(|(b, n)| f(n).saturating_sub(f(b)))
        .collect()
}

fn split_evtchn(net: &mut Net, cmdline: &str) -> TestResult {
    let asked = service::net_config(cmdline).offloads.split;
    let used = net.nic.split_channels();
    let before = net.nic.stats();
    syns_to_gateway(net, 40_019..40_020)?;
    let now = net.nic.stats();
    let tx: u64 = moved(&before, &now, |q| {
        q.tx_channel_events + q.tx_channel_notifications
    })
    .iter()
    .sum();
    let rx: u64 = moved(&before, &now, |q| {
        q.rx_channel_events + q.rx_channel_notifications
    })
    .iter()
    .sum();
    let ever_rx: u64 = now
        .queues
        .iter()
        .map(|q| q.rx_channel_events + q.rx_channel_notifications)
        .sum();
    log::info!(
        "net-split-evtchn: asked {asked} used {used}; events on the tx channel {tx}, on the rx channel {rx}"
    );
    match (asked, used) {
        (true, false) => {
            Err("asked for, but the backend offers no feature-split-event-channels".to_string())
        }
        (false, true) => Err("switched off (net-split-evtchn=off), yet in use".to_string()),
        (true, true) if tx == 0 || rx == 0 => Err(format!(
            "split channels in use, yet events on the tx channel {tx}, on the rx channel {rx}"
        )),
        (false, false) if ever_rx > 0 => Err(format!(
            "switched off, yet {ever_rx} events on an rx channel"
        )),
        _ => Ok(()),
    }
}

/// Source ports of `net-multiqueue`'s connections: eight flows.
const MULTIQUEUE_PORTS: core::ops::Range<u16> = 40_100..40_108;

fn multiqueue(net: &mut Net, cmdline: &str) -> TestResult {
    let asked = service::net_config(cmdline).offloads.multi_queue;
    let queues = net.nic.queue_count();
    let before = net.nic.stats();
    syns_to_gateway(net, MULTIQUEUE_PORTS)?;
    let now = net.nic.stats();
    let tx = moved(&before, &now, |q| q.tx_frames);
    let rx = moved(&before, &now, |q| q.rx_frames);
    let events = moved(&before, &now, |q| q.tx_channel_events + q.rx_channel_events);
    log::info!(
        "net-multiqueue: asked {asked}, {queues} queues; tx frames per queue {tx:?}, rx {rx:?}, events received {events:?}"
    );
    let tx_queues = tx.iter().filter(|&&n| n > 0).count();
    let beyond_0: u64 = tx.iter().skip(1).chain(rx.iter().skip(1)).sum();
    match (asked, queues) {
        (true, 0 | 1) => {
            Err("asked for, but the backend offers no multi-queue-max-queues above 1".to_string())
        }
        (false, 2..) => Err(format!(
            "switched off (net-multiqueue=off), yet {queues} queues"
        )),
        (true, _) if tx_queues < 2 => Err(format!(
            "{queues} queues, yet the frames of {} flows left on {tx_queues} ({tx:?})",
            MULTIQUEUE_PORTS.len()
        )),
        (false, _) if beyond_0 > 0 => Err(format!(
            "one queue, yet frames counted beyond queue 0 (tx {tx:?}, rx {rx:?})"
        )),
        _ => Ok(()),
    }
}

/// Serves HTTP (and answers ARP and ICMP echo) for at most `net-serve-ms=` milliseconds, or
/// until the harness writes `data/net-done` in this domain's xenstore home (false if it has
/// no `net-serve-ms=`); from the disks the
/// `blk` group left connected (the store only where `kv-region=` puts it: the rest of `xvdb`
/// holds the group's own data).
fn serve(net: &mut Net, cmdline: &str) -> bool {
    let Some(ms) = option(cmdline, "net-serve-ms").and_then(|v| v.parse::<u64>().ok()) else {
        return false;
    };
    let region = match service::kv_region(cmdline) {
        Ok(r) => r,
        Err(e) => {
            say(format_args!("NET warning {e}"));
            None
        }
    };
    let mut ro = blk::take_ro_disk();
    let mut rw = blk::take_rw_disk();
    {
        // The store only where `kv-region=` puts it.
        let kv = rw.as_mut().zip(region).map(|(disk, r)| (disk, Some(r)));
        let mut storage = Storage::open(ro.as_mut(), kv, &mut |why| {
            say(format_args!("NET warning {why}"))
        });
        say(format_args!("NET serving {ms} ms {}", storage.summary()));
        let until = now_ns().saturating_add(ms.saturating_mul(1_000_000));
        let (stats, _) = service::serve(
            net,
            &mut storage,
            Some(until),
            &mut service::Control::new("data/net-done"),
        );
        say(format_args!(
            "NET served {} connections {} requests {} client errors {} aborted",
            stats.connections, stats.requests, stats.client_errors, stats.aborted
        ));
        let used = crate::arch::stack::boot_stack_use();
        say(format_args!(
            "NET stack size {} peak {}",
            used.size, used.peak
        ));
    }
    if let Some(disk) = ro {
        say(format_args!("NET closed xvda {:?}", blk::close(disk)));
    }
    if let Some(disk) = rw {
        blk::put_rw_disk(disk);
    }
    true
}
