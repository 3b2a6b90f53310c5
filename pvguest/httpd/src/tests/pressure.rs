//! The service under pressure over the in-memory link: churn bursts, vanished peers, slow
//! heads and bodies, clients that stop reading, and the pool from a memory budget.

use super::service::{Net, take_response};
use crate::server::SPARE_LISTENERS;
use crate::{Config, Deadlines};
use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp;
use smoltcp::time::Duration;

/// Connects a fresh client, asks `GET /` and returns how long the answer took (simulated).
fn time_a_get(net: &mut Net) -> Duration {
    let start = net.now;
    let c = net.connect();
    let (code, _, _) = net.exchange(c, b"GET / HTTP/1.1\r\n\r\n");
    assert_eq!(code, 200);
    let took = net.now - start;
    net.client(c).close();
    took
}

/// A client trickling a head that never ends: one byte every `every_ms`.
struct Trickle {
    handle: SocketHandle,
    sent: usize,
}

const ENDLESS_HEAD: &[u8] = b"GET / HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

impl Trickle {
    fn start(net: &mut Net) -> Self {
        let handle = net.connect();
        let mut t = Self { handle, sent: 0 };
        t.send_one(net);
        t
    }

    fn send_one(&mut self, net: &mut Net) {
        let socket = net.client(self.handle);
        if socket.can_send() && self.sent < ENDLESS_HEAD.len() {
            self.sent += socket
                .send_slice(&ENDLESS_HEAD[self.sent..=self.sent])
                .unwrap();
        }
    }
}

/// Steps `ms` milliseconds, one at a time, sending a byte from every trickle each
/// `every_ms`.
fn trickle_for(net: &mut Net, trickles: &mut [Trickle], ms: u64, every_ms: u64) {
    for t in 1..=ms {
        if t % every_ms == 0 {
            for trickle in trickles.iter_mut() {
                trickle.send_one(net);
            }
        }
        net.step(1);
    }
}

#[test]
fn a_churn_burst_of_hundreds_then_a_get_is_answered_within_2_s() {
    let mut net = Net::new(Config::default());
    // 300 connections at once: a third close as soon as they are connected (their ACK and
    // FIN arrive together), a third reset, a third vanish after their SYN. The SYNs beyond
    // the free slots wait (dropped, sent again) and are treated alike once connected.
    let burst: Vec<(SocketHandle, u16)> = (0..300).map(|_| net.start_connect(2048)).collect();
    net.poll_client();
    for (i, &(handle, port)) in burst.iter().enumerate() {
        if i % 3 == 2 {
            net.vanish(handle, port);
        }
    }
    // One turn of the burst's clients: each connected one closes or resets; true once every
    // one is done (closed, or vanished).
    let churn = |net: &mut Net| {
        let mut done = true;
        for (i, &(handle, _)) in burst.iter().enumerate() {
            if i % 3 == 2 {
                continue;
            }
            let socket = net.client(handle);
            match socket.state() {
                tcp::State::Established if i % 3 == 0 => socket.close(),
                tcp::State::Established => socket.abort(),
                tcp::State::Closed | tcp::State::TimeWait => continue,
                _ => {}
            }
            done = false;
        }
        done
    };
    for _ in 0..50 {
        net.step_server(1);
        net.client_iface
            .poll(net.now, &mut net.client_port, &mut net.client_sockets);
        churn(&mut net);
        net.poll_client();
    }
    let took = time_a_get(&mut net);
    assert!(took <= Duration::from_secs(2), "took {took}");
    // The burst's clients finish (the SYNs beyond the free slots of each wave are sent again
    // after 1, 3, 7, ... 127 s, smoltcp's backoff), and then nothing of the burst holds a slot
    // past the handshake deadline (5 s).
    let start = net.now;
    while !churn(&mut net) {
        net.step(50);
        assert!(
            net.now - start < Duration::from_secs(300),
            "the burst never ends: {:?}",
            net.server.stats()
        );
    }
    for _ in 0..60 {
        net.step(100);
    }
    assert_eq!(net.server.free(&net.server_sockets), 24);
}

#[test]
fn connections_that_open_and_close_at_once_free_their_slots_within_a_round_trip() {
    let mut net = Net::new(Config::default());
    let burst: Vec<(SocketHandle, u16)> = (0..24).map(|_| net.start_connect(2048)).collect();
    // Each client acknowledges the SYN-ACK and closes in the same turn, so its ACK and FIN
    // reach the server together.
    let mut closed = 0;
    for _ in 0..20 {
        net.step_server(1);
        net.client_iface
            .poll(net.now, &mut net.client_port, &mut net.client_sockets);
        for &(handle, _) in &burst {
            if net.client(handle).state() == tcp::State::Established {
                net.client(handle).close();
                closed += 1;
            }
        }
        net.poll_client();
    }
    assert_eq!(closed, 24);
    for _ in 0..20 {
        net.step(1);
    }
    assert_eq!(net.server.free(&net.server_sockets), 24);
    let stats = net.server.stats();
    assert_eq!((stats.connections, stats.reclaimed), (24, 0), "{stats:?}");
}

#[test]
fn vanished_peers_hold_slots_only_until_their_deadlines() {
    let mut net = Net::new(Config::default());
    // The client knows the server's MAC address from here on.
    let warm = net.connect();
    net.client(warm).close();
    for _ in 0..20 {
        net.step(1);
    }
    let start = net.now;
    // Half-open: the SYN arrives, then nothing.
    for _ in 0..6 {
        let (handle, port) = net.start_connect(2048);
        net.poll_client();
        net.step_server(1);
        net.vanish(handle, port);
    }
    // Established and silent; mid-head; answered and closed by the server.
    let mut gone = Vec::new();
    for i in 0..18 {
        let c = net.connect();
        match i % 3 {
            0 => {}
            1 => {
                net.client(c).send_slice(b"GET / HTTP/1.1\r\n").unwrap();
            }
            _ => {
                let (code, _, _) = net.exchange(c, b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n");
                assert_eq!(code, 200);
            }
        }
        net.step(1);
        gone.push(c);
    }
    for c in gone {
        let port = net.client(c).local_endpoint().unwrap().port;
        net.vanish(c, port);
    }
    assert_eq!(net.server.free(&net.server_sockets), 0);
    // Every slot is back well before smoltcp's 60 s timeout: the idle deadline (30 s) and a
    // close deadline (5 s) are the longest on the way.
    while net.server.free(&net.server_sockets) < 24 {
        net.step(100);
        assert!(
            net.now - start < Duration::from_secs(37),
            "{:?}",
            net.server.stats()
        );
    }
    let stats = net.server.stats();
    assert_eq!(
        (
            stats.handshake_timeouts,
            stats.head_timeouts,
            stats.idle_closed,
            stats.reclaimed
        ),
        (6, 6, 6, 0),
        "{stats:?}"
    );
    assert_eq!(stats.open, 0);
}

#[test]
fn when_every_slot_is_taken_a_new_client_is_served_and_the_idle_one_goes_first() {
    let mut net = Net::new(Config::default());
    let idle = net.connect();
    assert_eq!(net.exchange(idle, b"GET / HTTP/1.1\r\n\r\n").0, 200);
    let mut trickles: Vec<Trickle> = (0..23).map(|_| Trickle::start(&mut net)).collect();
    trickle_for(&mut net, &mut trickles, 1000, 250);
    assert_eq!(net.server.free(&net.server_sockets), 0);
    let took = time_a_get(&mut net);
    assert!(took <= Duration::from_secs(2), "took {took}");
    // The idle connection was reset, the heads still arrive.
    assert_eq!(net.client(idle).state(), tcp::State::Closed);
    for t in &trickles {
        assert_eq!(net.client(t.handle).state(), tcp::State::Established);
    }
    assert_eq!(net.server.stats().reclaimed, 1);
}

#[test]
fn slow_heads_do_not_keep_others_out() {
    let mut net = Net::new(Config::default());
    let mut trickles: Vec<Trickle> = (0..24).map(|_| Trickle::start(&mut net)).collect();
    trickle_for(&mut net, &mut trickles, 2000, 200);
    assert_eq!(net.server.free(&net.server_sockets), 0);
    // The head arriving longest is reclaimed, though within its deadline.
    let took = time_a_get(&mut net);
    assert!(took <= Duration::from_secs(2), "took {took}");
    assert_eq!(
        net.client(trickles[0].handle).state(),
        tcp::State::Closed,
        "the oldest head goes"
    );
    for t in &trickles[1..] {
        assert_eq!(net.client(t.handle).state(), tcp::State::Established);
    }
    assert_eq!(net.server.stats().reclaimed, 1);
}

#[test]
fn the_head_deadline_runs_from_the_first_byte() {
    let mut net = Net::new(Config {
        deadlines: Deadlines {
            head: Duration::from_secs(2),
            ..Deadlines::default()
        },
        ..Config::default()
    });
    let mut trickle = vec![Trickle::start(&mut net)];
    let first_byte = net.now;
    // A byte every 100 ms keeps the connection busy but does not move the deadline.
    let mut closed_at = None;
    for _ in 0..40 {
        trickle_for(&mut net, &mut trickle, 100, 100);
        if !net.client(trickle[0].handle).may_recv() {
            closed_at = Some(net.now);
            break;
        }
    }
    let closed_at = closed_at.expect("the server closed");
    assert!(
        closed_at - first_byte <= Duration::from_millis(2200),
        "{}",
        closed_at - first_byte
    );
    let received = net.received.get_mut(&trickle[0].handle).unwrap();
    let (code, head, _) = take_response(received).expect("an answer");
    assert_eq!(code, 408);
    assert!(head.contains("Connection: close\r\n"));
    assert_eq!(net.server.stats().head_timeouts, 1);
}

#[test]
fn a_slow_body_is_cut_and_a_steady_one_is_not() {
    let mut net = Net::new(Config {
        deadlines: Deadlines {
            body_grace: Duration::from_secs(1),
            body_rate: 1000,
            ..Deadlines::default()
        },
        ..Config::default()
    });
    let head = b"PUT /kv/k HTTP/1.1\r\nContent-Length: 6000\r\n\r\n";
    // 2000 bytes a second (20 every 10 ms): answered.
    let steady = net.connect();
    net.client(steady).send_slice(head).unwrap();
    for _ in 0..300 {
        net.client(steady).send_slice(&[b'v'; 20]).unwrap();
        for _ in 0..10 {
            net.step(1);
        }
    }
    let (code, _, _) = take_response(net.received.get_mut(&steady).unwrap()).expect("answered");
    assert_eq!(code, 200);
    // 500 bytes a second (5 every 10 ms): 408 once the allowance runs out.
    let slow = net.connect();
    net.client(slow).send_slice(head).unwrap();
    let start = net.now;
    for _ in 0..300 {
        if net.client(slow).can_send() {
            net.client(slow).send_slice(&[b'v'; 5]).unwrap();
        }
        for _ in 0..10 {
            net.step(1);
        }
    }
    let (code, _, _) = take_response(net.received.get_mut(&slow).unwrap()).expect("answered");
    assert_eq!(code, 408);
    assert!(!net.client(slow).may_recv(), "closed");
    // At 500 B/s against 1000 B/s allowed after 1 s: cut at about 2 s.
    assert!(net.now - start >= Duration::from_secs(2));
    let stats = net.server.stats();
    assert_eq!(
        (stats.body_timeouts, stats.head_timeouts),
        (1, 0),
        "{stats:?}"
    );
}

#[test]
fn an_answer_to_a_client_that_stops_reading_is_dropped() {
    let mut net = Net::new(Config {
        deadlines: Deadlines {
            send: Duration::from_secs(2),
            ..Deadlines::default()
        },
        ..Config::default()
    });
    let c = net.connect();
    // The client never reads: its window shuts once its 64 KiB buffer is full.
    net.received.remove(&c);
    net.client(c)
        .send_slice(b"GET /blob/10000000 HTTP/1.1\r\n\r\n")
        .unwrap();
    for _ in 0..1900 {
        net.step(1);
    }
    assert_eq!(net.server.stats().send_timeouts, 0, "not yet");
    for _ in 0..400 {
        net.step(1);
    }
    assert_eq!(net.server.stats().send_timeouts, 1);
    assert_eq!(net.client(c).state(), tcp::State::Closed, "reset");
    assert_eq!(net.server.free(&net.server_sockets), 24);
}

#[test]
fn the_pool_follows_the_memory_budget_and_the_status_reports_it() {
    // A budget above rule 2's: its large slots and buffers are reported.
    let mut big = Net::new(Config::for_memory(16 << 20));
    let c = big.connect();
    let (_, _, body) = big.exchange(c, b"GET / HTTP/1.1\r\n\r\n");
    let json = String::from_utf8(body).unwrap();
    let pool = crate::pool::Pool::for_memory(16 << 20);
    assert!(
        pool.large > 0 && pool.large_buffer > pool.buffer,
        "{pool:?}"
    );
    assert!(
        json.ends_with(&format!(
            "\"max\":{},\"reclaimed\":0,\"syns_dropped\":0,\"buffer\":{},\"large\":{},\
             \"large_buffer\":{}}}}}}}",
            pool.slots, pool.buffer, pool.large, pool.large_buffer
        )),
        "{json}"
    );
    let mut net = Net::new(Config::for_memory(4 << 20));
    assert_eq!(net.server.free(&net.server_sockets), 83);
    // Only the spare listeners are in the socket set: smoltcp's work does not grow with the
    // pool.
    assert_eq!(net.server_sockets.iter().count(), SPARE_LISTENERS);
    let c = net.connect();
    assert_eq!(net.server_sockets.iter().count(), SPARE_LISTENERS + 1);
    let (_, _, body) = net.exchange(c, b"GET / HTTP/1.1\r\n\r\n");
    let json = String::from_utf8(body).unwrap();
    assert!(
        json.ends_with(
            "\"pool\":{\"open\":1,\"max\":83,\"reclaimed\":0,\"syns_dropped\":0,\
             \"buffer\":16384,\"large\":0,\"large_buffer\":16384}}}"
        ),
        "{json}"
    );
}

/// The device boot's `net-churn` then slow heads, on the guest's pool (4 MiB) and with a
/// transmit ring that fills.
#[test]
fn churn_then_slow_heads_on_the_guest_pool_with_a_small_transmit_ring() {
    let stats = churn_then_slow_heads(4 << 20);
    assert_eq!((stats.open, stats.max), (83, 83), "{stats:?}");
    // The slow heads beyond the slots took the oldest heads' slots once those were a second
    // old (`RECLAIM_GRACE`); before that their SYNs waited.
    assert!(stats.reclaimed > 17 && stats.syns_dropped > 0, "{stats:?}");
}

/// The same on the pool of a 128 MiB guest (a 16 MiB budget: 128 slots, four of them
/// large): the large slots take nothing from the churn checks' capacity.
#[test]
fn churn_then_slow_heads_on_the_pool_with_large_slots() {
    let pool = crate::Pool::for_memory(16 << 20);
    assert_eq!((pool.slots, pool.large), (128, 4), "{pool:?}");
    let stats = churn_then_slow_heads(16 << 20);
    // Every slow head holds a slot of its own (the churn's are all free again, the timed
    // GET's still closing): none was reclaimed. (The churn's 200 connections, open at once,
    // left 72 SYNs to wait.)
    assert_eq!((stats.open, stats.max), (101, 128), "{stats:?}");
    assert_eq!((stats.reclaimed, stats.syns_dropped), (0, 72), "{stats:?}");
}

/// `net-churn` then `net-slow-heads` on the pool of `budget` bytes, with a transmit ring
/// that fills; each timed GET must be answered within 2 s. The service's counters after.
fn churn_then_slow_heads(budget: usize) -> crate::ServerStats {
    let mut net = Net::new(Config::for_memory(budget));
    net.server_port.tx_limit = Some(4);
    // Churn: 200 connections one after another, then all closed at once.
    let mut open = Vec::new();
    for _ in 0..200 {
        let (h, _) = net.start_connect(2048);
        for _ in 0..10 {
            net.step(1);
            if net.client(h).state() == tcp::State::Established {
                break;
            }
        }
        open.push(h);
    }
    for &h in &open {
        net.client(h).close();
    }
    for _ in 0..100 {
        net.step(1);
    }
    let took = time_a_get(&mut net);
    assert!(took <= Duration::from_secs(2), "took {took}");
    // Slow heads: 100 connections each sent two lines, then a line a second.
    let mut slow = Vec::new();
    for _ in 0..100 {
        let (h, _) = net.start_connect(2048);
        for _ in 0..10 {
            net.step(1);
            if net.client(h).state() == tcp::State::Established {
                break;
            }
        }
        if net.client(h).can_send() {
            net.client(h)
                .send_slice(b"GET / HTTP/1.1\r\nHost: guest\r\n")
                .unwrap();
        }
        slow.push(h);
    }
    for s in 0..2 {
        for _ in 0..1000 {
            net.step(1);
        }
        for &h in &slow {
            if net.client(h).can_send() {
                net.client(h)
                    .send_slice(format!("X-Slow-{s}: y\r\n").as_bytes())
                    .unwrap();
            }
        }
    }
    let took = time_a_get(&mut net);
    assert!(took <= Duration::from_secs(2), "took {took}");
    net.server.stats()
}

#[test]
fn when_every_slot_is_busy_answering_a_syn_waits_instead_of_a_reset() {
    let config = Config {
        pool: crate::Pool::uniform(3, 4096),
        ..Config::default()
    };
    let mut net = Net::new(config);
    // Three clients that ask for a large answer and read none of it: every slot is busy.
    let mut stuck = Vec::new();
    for _ in 0..3 {
        let (c, _) = net.start_connect(1024);
        for _ in 0..20 {
            net.step(1);
        }
        net.client(c)
            .send_slice(b"GET /blob/1000000 HTTP/1.1\r\n\r\n")
            .unwrap();
        stuck.push(c);
    }
    for _ in 0..50 {
        net.step(10);
        for c in &stuck {
            net.received.remove(c);
        }
    }
    assert_eq!(net.server.free(&net.server_sockets), 0);
    let (late, _) = net.start_connect(64 * 1024);
    for _ in 0..50 {
        net.step(10);
    }
    assert_eq!(net.client(late).state(), tcp::State::SynSent, "not refused");
    assert!(net.server.stats().syns_dropped >= 1);
    assert_eq!(net.server.stats().reclaimed, 0);
    // One of them goes away: the late client's SYN, sent again, finds its slot.
    net.client(stuck[0]).abort();
    for _ in 0..400 {
        net.step(10);
        if net.client(late).state() == tcp::State::Established {
            break;
        }
    }
    assert_eq!(net.client(late).state(), tcp::State::Established);
    let (code, _, _) = net.exchange(late, b"GET / HTTP/1.1\r\n\r\n");
    assert_eq!(code, 200);
}

#[test]
fn a_burst_of_syns_beyond_the_free_slots_waits_and_no_handshake_is_reset() {
    // `ab -c 128` against a smaller pool: the SYNs arrive together, in one turn.
    let config = Config {
        pool: crate::Pool::uniform(3, 4096),
        ..Config::default()
    };
    let mut net = Net::new(config);
    let clients: Vec<_> = (0..5).map(|_| net.start_connect(4096).0).collect();
    net.poll_client();
    for _ in 0..20 {
        net.step(1);
    }
    let states: Vec<_> = clients.iter().map(|&c| net.client(c).state()).collect();
    // The first three are served; the other two wait for a slot (their SYNs are sent again),
    // rather than being taken and reset in the same turn (a failed connect: `ab` gives up
    // after ten).
    assert_eq!(
        states,
        [
            tcp::State::Established,
            tcp::State::Established,
            tcp::State::Established,
            tcp::State::SynSent,
            tcp::State::SynSent
        ]
    );
    let stats = net.server.stats();
    assert_eq!((stats.reclaimed, stats.syns_dropped), (0, 2), "{stats:?}");
    // The first three ask and are answered; the last two are taken once slots are idle.
    for &c in &clients[..3] {
        assert_eq!(net.exchange(c, b"GET / HTTP/1.1\r\n\r\n").0, 200);
    }
    for &c in &clients[3..] {
        for _ in 0..300 {
            net.step(10);
            if net.client(c).state() == tcp::State::Established {
                break;
            }
        }
        assert_eq!(net.exchange(c, b"GET / HTTP/1.1\r\n\r\n").0, 200);
    }
}

#[test]
fn more_clients_at_once_than_slots_are_all_answered_and_none_is_reset() {
    // `ab -c 12` against four slots: every client connects at once and sends its request as
    // soon as it is connected. Those beyond the slots wait (their SYNs are sent again); none
    // that connected is reset before it could send its request.
    let config = Config {
        pool: crate::Pool::uniform(4, 4096),
        ..Config::default()
    };
    let mut net = Net::new(config);
    // They connect a few milliseconds apart, as a load tool's do.
    let mut clients = Vec::new();
    for _ in 0..12 {
        clients.push(net.start_connect(4096).0);
        net.step(7);
    }
    let mut sent = [false; 12];
    let mut answered = [false; 12];
    let mut reset = [false; 12];
    // When each saw its connection established: it sends its request a round trip of the
    // emulated network later (20 ms), as a client on the other side of QEMU's forward does.
    let mut established: [Option<u64>; 12] = [None; 12];
    for ms in 0..30_000u64 {
        net.step(1);
        for (i, &c) in clients.iter().enumerate() {
            if answered[i] || reset[i] {
                continue;
            }
            if let Some((code, _, _)) = take_response(net.received.get_mut(&c).unwrap()) {
                assert_eq!(code, 200);
                answered[i] = true;
                net.client(c).close();
                continue;
            }
            let state = net.client(c).state();
            if state == tcp::State::Established && established[i].is_none() {
                established[i] = Some(ms);
            }
            if state == tcp::State::Established
                && !sent[i]
                && established[i].is_some_and(|at| ms >= at + 20)
            {
                let request = b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n";
                assert_eq!(net.client(c).send_slice(request).unwrap(), request.len());
                sent[i] = true;
            } else if established[i].is_some() && state == tcp::State::Closed {
                reset[i] = true;
            }
        }
        if answered.iter().all(|&a| a) {
            break;
        }
    }
    assert_eq!(reset, [false; 12], "{:?}", net.server.stats());
    assert_eq!(answered, [true; 12], "{:?}", net.server.stats());
}

#[test]
fn a_client_that_closes_after_the_answer_has_its_fin_acknowledged() {
    // The service closes first (`Connection: close`), then the client: the service's socket
    // goes to TIME-WAIT on the client's FIN, and the ACK of that FIN must go out before the
    // slot listens again, or the client sends its FIN again (after 1 s) and meets a reset.
    let mut net = Net::new(Config::default());
    let c = net.connect();
    let (code, _, _) = net.exchange(c, b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n");
    assert_eq!(code, 200);
    assert!(net.closed_by_server(c));
    net.client(c).close();
    for _ in 0..100 {
        net.step(1);
    }
    assert_eq!(
        net.client(c).state(),
        tcp::State::Closed,
        "LAST-ACK acknowledged"
    );
    assert_eq!(
        net.server.free(&net.server_sockets),
        24,
        "and the slot listens again"
    );
}
