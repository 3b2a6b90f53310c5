//! A stalled disk behind the storage routes (the fake answers `Pending` while stalled): the
//! connection waits without holding the loop, is answered once the disk answers, gets `503`
//! (or its answer cut short) after `Deadlines::storage`, and every other client is served
//! meanwhile.

use super::conn::responses;
use super::fake::Fake;
use super::service::Net;
use crate::deadline::Expiry;
use crate::{Config, Connection, Deadlines, ServerStats};
use smoltcp::socket::tcp;
use smoltcp::time::{Duration, Instant};

fn text(body: &[u8]) -> &str {
    std::str::from_utf8(body).unwrap()
}

/// Feeds `input` at `now` and returns what the connection answers at once.
fn feed(conn: &mut Connection, fake: &mut Fake, input: &[u8], now: Instant) -> Vec<u8> {
    let used = conn.receive(input, now, fake, &ServerStats::default());
    assert_eq!(used, input.len());
    drain(conn, fake, now)
}

fn drain(conn: &mut Connection, fake: &mut Fake, now: Instant) -> Vec<u8> {
    let mut buf = vec![0u8; 1 << 20];
    let n = conn.fill(&mut buf, now, fake);
    buf.truncate(n);
    buf
}

#[test]
fn a_put_waits_for_the_disk_and_is_answered_once_it_answers() {
    let mut fake = Fake {
        stalled: true,
        ..Fake::default()
    };
    let mut conn = Connection::new(Instant::ZERO);
    let put = b"PUT /kv/k HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.1\r\n\r\n";
    let used = conn.receive(put, Instant::ZERO, &mut fake, &ServerStats::default());
    assert_eq!(used, 44, "the next request waits for the put's answer");
    assert!(conn.is_waiting() && drain(&mut conn, &mut fake, Instant::ZERO).is_empty());
    let deadlines = Deadlines::default();
    assert_eq!(
        conn.due(&deadlines),
        Some((Instant::from_secs(10), Expiry::Storage))
    );
    // Asked again while the disk is silent: still waiting, the deadline not moved.
    let later = Instant::from_secs(3);
    assert!(conn.resume(later, &mut fake));
    assert_eq!(conn.due(&deadlines).unwrap().0, Instant::from_secs(10));
    fake.stalled = false;
    assert!(!conn.resume(Instant::from_secs(4), &mut fake));
    let r = responses(&drain(&mut conn, &mut fake, Instant::from_secs(4)));
    assert_eq!(
        (r[0].0, text(&r[0].2)),
        (200, "{\"key\":\"k\",\"length\":3}")
    );
    assert_eq!(fake.log, ["put k 3", "put k 3", "put k 3"]);
    assert_eq!(fake.kv.get("k").map(Vec::as_slice), Some(&b"abc"[..]));
    // The request behind it is read now.
    let r = responses(&feed(
        &mut conn,
        &mut fake,
        &put[used..],
        Instant::from_secs(4),
    ));
    assert_eq!(r[0].0, 200);
    assert!(!conn.wants_close());
}

#[test]
fn a_request_the_disk_never_answers_gets_503_and_the_connection_goes_on() {
    let mut fake = Fake {
        stalled: true,
        ..Fake::default()
    };
    fake.kv.insert("k".into(), b"v".to_vec());
    for (request, logged) in [
        (
            &b"PUT /kv/k HTTP/1.1\r\nContent-Length: 1\r\n\r\nx"[..],
            "put k 1",
        ),
        (b"GET /kv/k HTTP/1.1\r\n\r\n", "get k"),
        (b"DELETE /kv/k HTTP/1.1\r\n\r\n", "delete k"),
    ] {
        let mut conn = Connection::new(Instant::ZERO);
        assert!(feed(&mut conn, &mut fake, request, Instant::ZERO).is_empty());
        assert!(conn.is_waiting(), "{logged}");
        conn.storage_timed_out(&mut fake);
        assert!(!conn.is_waiting());
        let r = responses(&drain(&mut conn, &mut fake, Instant::from_secs(10)));
        assert_eq!(
            (r[0].0, text(&r[0].2)),
            (503, "the storage did not answer in time\n"),
            "{logged}"
        );
        assert!(!conn.wants_close(), "keep-alive kept");
        let asked: Vec<&str> = fake.log.iter().rev().take(2).map(String::as_str).collect();
        assert!(asked.contains(&logged), "{asked:?}");
    }
    assert_eq!(fake.kv.get("k").map(Vec::as_slice), Some(&b"v"[..]));
}

/// A put or delete the backend already has on its way to the disk at the storage deadline
/// lands whatever the client is told: it is answered `202 Accepted` (not done yet), never
/// `503`; a read still gets `503`. Asked with the request's own key and value.
#[test]
fn a_change_on_its_way_to_the_disk_is_answered_202_not_503() {
    let mut fake = Fake {
        stalled: true,
        on_its_way: true,
        ..Fake::default()
    };
    fake.kv.insert("k".into(), b"v".to_vec());
    for (request, status, asked) in [
        (
            &b"PUT /kv/k HTTP/1.1\r\nContent-Length: 3\r\n\r\nxyz"[..],
            202,
            Some("on its way? k 3"),
        ),
        (
            b"DELETE /kv/k HTTP/1.1\r\n\r\n",
            202,
            Some("on its way? k delete"),
        ),
        (b"GET /kv/k HTTP/1.1\r\n\r\n", 503, None),
    ] {
        let mut conn = Connection::new(Instant::ZERO);
        assert!(feed(&mut conn, &mut fake, request, Instant::ZERO).is_empty());
        let before = fake.log.len();
        conn.storage_timed_out(&mut fake);
        assert_eq!(
            fake.log.get(before).map(String::as_str),
            asked,
            "{:?}",
            String::from_utf8_lossy(request)
        );
        let r = responses(&drain(&mut conn, &mut fake, Instant::from_secs(10)));
        assert_eq!(r[0].0, status, "{:?}", String::from_utf8_lossy(request));
        if status == 202 {
            assert!(text(&r[0].2).starts_with("accepted, not done yet"));
        }
        assert!(!conn.wants_close(), "keep-alive kept");
    }
}

#[test]
fn file_bytes_the_disk_holds_back_pause_the_answer_then_cut_it_short() {
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let mut fake = Fake::with_files(&[("f.bin", &data)]);
    let mut conn = Connection::new(Instant::ZERO);
    conn.receive(
        b"GET /files/f.bin HTTP/1.1\r\n\r\n",
        Instant::ZERO,
        &mut fake,
        &ServerStats::default(),
    );
    let mut buf = vec![0u8; 1000];
    let head = conn.fill(&mut buf, Instant::ZERO, &mut fake);
    assert!(head > 0 && !conn.is_waiting());
    fake.stalled = true;
    assert_eq!(conn.fill(&mut buf, Instant::from_secs(1), &mut fake), 0);
    assert!(conn.is_waiting() && conn.has_output() && !conn.wants_close());
    // The disk answers: the answer goes on.
    fake.stalled = false;
    assert_eq!(conn.fill(&mut buf, Instant::from_secs(2), &mut fake), 1000);
    assert!(!conn.is_waiting());
    fake.stalled = true;
    assert_eq!(conn.fill(&mut buf, Instant::from_secs(3), &mut fake), 0);
    assert_eq!(
        conn.due(&Deadlines::default()),
        Some((Instant::from_secs(13), Expiry::Storage))
    );
    conn.storage_timed_out(&mut fake);
    assert!(conn.wants_close() && !conn.has_output());
    assert_eq!(conn.stats().aborted, 1);
}

#[test]
fn a_stalled_disk_costs_only_the_requests_that_wait_on_it() {
    let mut net = Net::new(Config::default());
    net.backend.stalled = true;
    let putter = net.connect();
    net.client(putter)
        .send_slice(b"PUT /kv/k HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello")
        .unwrap();
    for _ in 0..100 {
        net.step(10);
    }
    assert!(net.received.get(&putter).is_none_or(Vec::is_empty));
    // Meanwhile others are served at once, again and again.
    for _ in 0..5 {
        let start = net.now;
        let c = net.connect();
        let (code, _, _) = net.exchange(c, b"GET / HTTP/1.1\r\n\r\n");
        assert_eq!(code, 200);
        assert!(net.now - start < Duration::from_millis(100));
        net.client(c).close();
        for _ in 0..100 {
            net.step(10);
        }
    }
    // Past the deadline the put hears 503, and its connection stays open.
    for _ in 0..600 {
        net.step(10);
    }
    let got = net.received.get_mut(&putter).unwrap();
    let (code, _, body) = super::service::take_response(got).expect("an answer");
    assert_eq!(
        (code, text(&body)),
        (503, "the storage did not answer in time\n")
    );
    assert_eq!(net.client(putter).state(), tcp::State::Established);
    assert_eq!(net.server.stats().storage_timeouts, 1);
    assert!(!net.backend.kv.contains_key("k"));
    // A put the disk holds up for a second is answered as soon as the disk answers.
    net.client(putter)
        .send_slice(b"PUT /kv/k HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello")
        .unwrap();
    for _ in 0..100 {
        net.step(10);
    }
    assert!(net.received.get(&putter).is_none_or(Vec::is_empty));
    net.backend.stalled = false;
    net.step(1);
    net.step(1);
    let got = net.received.get_mut(&putter).unwrap();
    let (code, _, _) = super::service::take_response(got).expect("answered at once");
    assert_eq!(code, 200);
    assert_eq!(
        net.backend.kv.get("k").map(Vec::as_slice),
        Some(&b"hello"[..])
    );
    let (_, _, status) = net.exchange(putter, b"GET / HTTP/1.1\r\n\r\n");
    assert!(text(&status).contains("\"storage_timeouts\":1,"));
}
