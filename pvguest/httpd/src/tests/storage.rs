//! The storage routes (`/files/`, `/kv/`) and `Expect: 100-continue`, on the connection state
//! machine with the fake backend.
#![allow(
    clippy::cast_possible_truncation,
    reason = "test fixtures: small known sizes and indexes, on 64-bit hosts only"
)]

use super::conn::{responses, run_with};
use super::fake::Fake;
use crate::{BackendError, Connection, MAX_KEY, MAX_VALUE, ServerStats};
use proptest::prelude::*;
use smoltcp::time::Instant;

/// Byte `i` of the test files: not periodic in any buffer size used here.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i ^ (i >> 8) ^ (i >> 16)) as u8).collect()
}

/// Sends `input` whole to `backend` and splits what comes back: (responses, wants close).
fn ask(backend: &mut Fake, input: &str) -> (Vec<(u16, String, Vec<u8>)>, bool) {
    let (out, conn) = run_with(backend, input.as_bytes(), input.len(), 4096);
    (responses(&out), conn.wants_close())
}

fn text(body: &[u8]) -> &str {
    std::str::from_utf8(body).unwrap()
}

#[test]
fn files_are_found_decoded_and_typed() {
    let mut fake = Fake::with_files(&[
        ("index.html", b"<h1>root</h1>"),
        ("docs/index.html", b"<h1>docs</h1>"),
        ("a b/c~.txt", b"spaced"),
        ("style.CSS", b"p{}"),
        ("app.js", b"1;"),
        ("data.json", b"{}"),
        ("logo.png", b"PNG"),
        ("archive.tar", b"tar"),
    ]);
    let (r, closing) = ask(
        &mut fake,
        "GET /files/ HTTP/1.1\r\n\r\n\
         GET /files/docs/?x=1 HTTP/1.1\r\n\r\n\
         GET /files/a%20b/c%7e.txt HTTP/1.1\r\n\r\n\
         GET /files/style.CSS HTTP/1.1\r\n\r\n\
         GET /files/app.js HTTP/1.1\r\n\r\n\
         GET /files/data.json?v=2 HTTP/1.1\r\n\r\n\
         GET /files/logo.png HTTP/1.1\r\n\r\n\
         GET /files/archive.tar HTTP/1.1\r\n\r\n",
    );
    let got: Vec<(u16, &str)> = r.iter().map(|r| (r.0, text(&r.2))).collect();
    assert_eq!(
        got,
        [
            (200, "<h1>root</h1>"),
            (200, "<h1>docs</h1>"),
            (200, "spaced"),
            (200, "p{}"),
            (200, "1;"),
            (200, "{}"),
            (200, "PNG"),
            (200, "tar"),
        ]
    );
    let types: Vec<&str> = r
        .iter()
        .map(|r| {
            r.1.lines()
                .find_map(|l| l.strip_prefix("Content-Type: "))
                .unwrap()
        })
        .collect();
    assert_eq!(
        types,
        [
            "text/html; charset=utf-8",
            "text/html; charset=utf-8",
            "text/plain; charset=utf-8",
            "text/css; charset=utf-8",
            "text/javascript; charset=utf-8",
            "application/json",
            "image/png",
            "application/octet-stream",
        ]
    );
    assert!(!closing);
    assert_eq!(
        fake.log[..3],
        ["size index.html", "size docs/index.html", "size a b/c~.txt"]
    );
}

#[test]
fn file_errors() {
    let mut fake = Fake::with_files(&[("a.txt", b"a")]);
    let (r, closing) = ask(
        &mut fake,
        "GET /files/missing HTTP/1.1\r\n\r\n\
         PUT /files/a.txt HTTP/1.1\r\nContent-Length: 2\r\n\r\nxy\
         GET /files/a.txt HTTP/1.1\r\n\r\n",
    );
    let codes: Vec<u16> = r.iter().map(|r| r.0).collect();
    assert_eq!(codes, [404, 405, 200]);
    assert!(r[1].1.contains("Allow: GET, HEAD\r\n"));
    assert!(!closing);
    for bad in ["%zz", "a%00b", "../etc/passwd", "x/%2e%2e/y", "%2Fetc"] {
        let (r, closing) = ask(&mut fake, &format!("GET /files/{bad} HTTP/1.1\r\n\r\n"));
        assert_eq!(r[0].0, 400, "{bad}");
        assert!(text(&r[0].2).starts_with("bad path"), "{bad}");
        assert!(closing, "{bad}");
    }
    // No disk: 503 with the backend's text.
    fake.fail_all = Some(BackendError::Unavailable("no disk"));
    let (r, closing) = ask(&mut fake, "GET /files/a.txt HTTP/1.1\r\n\r\n");
    assert_eq!((r[0].0, text(&r[0].2)), (503, "no disk\n"));
    assert!(!closing);
    fake.fail_all = Some(BackendError::Failed("disk on fire".into()));
    let (r, _) = ask(&mut fake, "GET /files/a.txt HTTP/1.1\r\n\r\n");
    assert_eq!((r[0].0, text(&r[0].2)), (500, "disk on fire\n"));
}

#[test]
fn a_large_file_streams_through_a_small_buffer() {
    let data = pattern(1 << 20);
    let mut fake = Fake::with_files(&[("big.bin", &data)]);
    let input = b"GET /files/big.bin HTTP/1.1\r\n\r\nGET /files/big.bin?again HTTP/1.1\r\n\r\n";
    let (out, conn) = run_with(&mut fake, input, input.len(), 1000);
    let r = responses(&out);
    assert_eq!(r.len(), 2);
    for (code, head, body) in &r {
        assert_eq!(*code, 200);
        assert!(head.contains("Content-Length: 1048576\r\n"));
        assert!(body == &data, "the bytes differ");
    }
    // Read as the window allowed, never whole.
    assert!(fake.largest_read <= 1000, "{}", fake.largest_read);
    assert!(fake.reads >= 2 * (1 << 20) / 1000);
    assert!(!conn.wants_close());
    assert_eq!(conn.stats().aborted, 0);
}

#[test]
fn a_failed_read_cuts_the_answer_short_and_closes() {
    let data = pattern(100_000);
    for short in [false, true] {
        let mut fake = Fake::with_files(&[("f", &data)]);
        if short {
            fake.short_read_at = Some(50_000);
        } else {
            fake.fail_read_at = Some(50_000);
        }
        let input = b"GET /files/f HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n";
        let (out, conn) = run_with(&mut fake, input, input.len(), 777);
        let r = responses(&out);
        assert_eq!(r.len(), 1, "nothing answered after the cut");
        assert_eq!(r[0].0, 200);
        assert!(r[0].1.contains("Content-Length: 100000\r\n"));
        let body = &r[0].2;
        assert!(
            body.len() < data.len() && body.len() > 40_000,
            "{}",
            body.len()
        );
        assert_eq!(body[..], data[..body.len()]);
        if short {
            assert_eq!(body.len(), 50_000);
        }
        assert!(conn.wants_close(), "short: {short}");
        assert_eq!(conn.stats().aborted, 1);
    }
}

#[test]
fn the_key_list_is_json() {
    let mut fake = Fake::default();
    let (r, _) = ask(&mut fake, "GET /kv/ HTTP/1.1\r\n\r\n");
    assert_eq!((r[0].0, text(&r[0].2)), (200, "{\"keys\":[]}"));
    fake.kv.insert("b".into(), vec![]);
    fake.kv.insert("a".into(), vec![]);
    // The backend's keys are escaped, whatever they are.
    fake.kv.insert("q\"\\\n".into(), vec![]);
    let (r, _) = ask(&mut fake, "GET /kv/?pretty HTTP/1.1\r\n\r\n");
    assert_eq!(r[0].0, 200);
    assert!(r[0].1.contains("Content-Type: application/json\r\n"));
    assert_eq!(
        text(&r[0].2),
        "{\"keys\":[\"a\",\"b\",\"q\\\"\\\\\\u000a\"]}"
    );
    let (r, closing) = ask(&mut fake, "DELETE /kv/ HTTP/1.1\r\n\r\n");
    assert_eq!(r[0].0, 405);
    assert!(r[0].1.contains("Allow: GET, HEAD\r\n"));
    assert!(!closing);
    fake.fail_all = Some(BackendError::Unavailable("no storage"));
    let (r, _) = ask(&mut fake, "GET /kv/ HTTP/1.1\r\n\r\n");
    assert_eq!((r[0].0, text(&r[0].2)), (503, "no storage\n"));
}

#[test]
fn put_get_delete() {
    let mut fake = Fake::default();
    let (r, closing) = ask(
        &mut fake,
        "PUT /kv/color HTTP/1.1\r\nContent-Length: 4\r\n\r\nblue\
         GET /kv/color?x HTTP/1.1\r\n\r\n\
         DELETE /kv/color HTTP/1.1\r\n\r\n\
         GET /kv/color HTTP/1.1\r\n\r\n\
         DELETE /kv/color HTTP/1.1\r\n\r\n\
         PUT /kv/empty HTTP/1.1\r\nContent-Length: 0\r\n\r\n\
         POST /kv/color HTTP/1.1\r\n\r\n",
    );
    let got: Vec<(u16, &str)> = r.iter().map(|r| (r.0, text(&r.2))).collect();
    assert_eq!(
        got,
        [
            (200, "{\"key\":\"color\",\"length\":4}"),
            (200, "blue"),
            (200, "{\"key\":\"color\",\"deleted\":true}"),
            (404, "no such key\n"),
            (404, "no such key\n"),
            (200, "{\"key\":\"empty\",\"length\":0}"),
            (405, "method not allowed\n"),
        ]
    );
    assert!(r[0].1.contains("Content-Type: application/json\r\n"));
    assert!(
        r[1].1
            .contains("Content-Type: application/octet-stream\r\n")
    );
    assert!(r[6].1.contains("Allow: GET, HEAD, PUT, DELETE\r\n"));
    assert!(!closing);
    assert_eq!(fake.kv.get("empty").map(Vec::len), Some(0));
    assert_eq!(
        fake.log,
        [
            "put color 4",
            "get color",
            "delete color",
            "get color",
            "delete color",
            "put empty 0"
        ]
    );
}

#[test]
fn backend_errors_become_statuses() {
    for (error, status, body) in [
        (BackendError::Unavailable("no disk"), 503, "no disk\n"),
        (BackendError::Full("store full".into()), 507, "store full\n"),
        (
            BackendError::Failed("write failed".into()),
            500,
            "write failed\n",
        ),
    ] {
        let mut fake = Fake {
            fail_put: Some(error.clone()),
            ..Fake::default()
        };
        let (r, closing) = ask(
            &mut fake,
            "PUT /kv/k HTTP/1.1\r\nContent-Length: 1\r\n\r\nvGET /kv/k HTTP/1.1\r\n\r\n",
        );
        assert_eq!((r[0].0, text(&r[0].2)), (status, body));
        assert!(r[0].1.contains("Content-Type: text/plain\r\n"));
        assert_eq!(r[1].0, 404, "nothing stored");
        assert!(!closing);
        fake.fail_all = Some(error);
        let (r, _) = ask(
            &mut fake,
            "GET /kv/k HTTP/1.1\r\n\r\nDELETE /kv/k HTTP/1.1\r\n\r\nGET /kv/ HTTP/1.1\r\n\r\n",
        );
        let codes: Vec<(u16, &str)> = r.iter().map(|r| (r.0, text(&r.2))).collect();
        assert_eq!(codes, [(status, body); 3]);
    }
}

#[test]
fn keys_and_values_are_checked_before_anything_is_stored() {
    let longest = "k".repeat(MAX_KEY);
    let mut fake = Fake::default();
    let (r, _) = ask(
        &mut fake,
        &format!("PUT /kv/{longest} HTTP/1.1\r\nContent-Length: 1\r\n\r\nx"),
    );
    assert_eq!(r[0].0, 200);
    let value = "v".repeat(MAX_VALUE);
    let (r, _) = ask(
        &mut fake,
        &format!("PUT /kv/big HTTP/1.1\r\nContent-Length: {MAX_VALUE}\r\n\r\n{value}"),
    );
    assert_eq!(r[0].0, 200);
    assert_eq!(fake.kv.get("big").map(Vec::len), Some(MAX_VALUE));
    let stored = fake.log.len();
    let too_long = "k".repeat(MAX_KEY + 1);
    for (request, status, reason) in [
        (
            format!("GET /kv/{too_long} HTTP/1.1\r\n\r\n"),
            413,
            "key too long",
        ),
        (
            format!("PUT /kv/{too_long} HTTP/1.1\r\nContent-Length: 1\r\n\r\nx"),
            413,
            "key too long",
        ),
        (
            "GET /kv/a%2Fb HTTP/1.1\r\n\r\n".into(),
            400,
            "bad key: 1 to 128 bytes of A-Z a-z 0-9 - . _ ~",
        ),
        ("GET /kv/a%4 HTTP/1.1\r\n\r\n".into(), 400, "bad key: a `%`"),
        ("GET /kv/a/b HTTP/1.1\r\n\r\n".into(), 400, "bad key"),
        ("DELETE /kv/a:b HTTP/1.1\r\n\r\n".into(), 400, "bad key"),
        (
            "PUT /kv/a HTTP/1.1\r\n\r\n".into(),
            411,
            "PUT /kv/<key> needs Content-Length",
        ),
        (
            format!(
                "PUT /kv/a HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
                MAX_VALUE + 1
            ),
            413,
            "value too large",
        ),
        (
            "PUT /kv/a HTTP/1.1\r\nContent-Length: 1000000\r\nExpect: 100-continue\r\n\r\n".into(),
            413,
            "value too large",
        ),
        (
            "PUT /kv/a HTTP/1.1\r\nExpect: 100-continue\r\n\r\n".into(),
            411,
            "PUT /kv/<key> needs Content-Length",
        ),
    ] {
        let (r, closing) = ask(&mut fake, &format!("{request}GET / HTTP/1.1\r\n\r\n"));
        assert_eq!(r.len(), 1, "{request}: only the refusal");
        assert_eq!(r[0].0, status, "{request}");
        assert!(
            text(&r[0].2).starts_with(reason),
            "{request}: {}",
            text(&r[0].2)
        );
        assert!(closing, "{request}");
    }
    assert_eq!(fake.log.len(), stored, "the backend was not asked");
}

/// Feeds `input` to `conn` and returns what it answers at once.
fn exchange(conn: &mut Connection, fake: &mut Fake, input: &[u8]) -> (usize, Vec<u8>) {
    let used = conn.receive(input, Instant::ZERO, fake, &ServerStats::default());
    let mut buf = vec![0u8; 64 * 1024];
    let n = conn.fill(&mut buf, Instant::ZERO, fake);
    buf.truncate(n);
    (used, buf)
}

#[test]
fn a_put_is_answered_only_once_the_backend_stored_it() {
    let mut fake = Fake::default();
    let mut conn = Connection::new(Instant::ZERO);
    let (used, out) = exchange(
        &mut conn,
        &mut fake,
        b"PUT /kv/k HTTP/1.1\r\nContent-Length: 10\r\n\r\n01234",
    );
    assert_eq!(used, 47);
    assert!(out.is_empty(), "answered before the value was complete");
    assert!(fake.log.is_empty(), "stored before the value was complete");
    let (_, out) = exchange(&mut conn, &mut fake, b"5678");
    assert!(out.is_empty() && fake.log.is_empty());
    let (_, out) = exchange(&mut conn, &mut fake, b"9");
    assert_eq!(fake.log, ["put k 10"]);
    assert_eq!(
        fake.kv.get("k").map(Vec::as_slice),
        Some(&b"0123456789"[..])
    );
    let r = responses(&out);
    assert_eq!(
        (r[0].0, text(&r[0].2)),
        (200, "{\"key\":\"k\",\"length\":10}")
    );
    // A failed put is what the client hears about.
    fake.fail_put = Some(BackendError::Full("no room".into()));
    let (_, out) = exchange(
        &mut conn,
        &mut fake,
        b"PUT /kv/k HTTP/1.1\r\nContent-Length: 2\r\n\r\nab",
    );
    let r = responses(&out);
    assert_eq!((r[0].0, text(&r[0].2)), (507, "no room\n"));
    assert_eq!(fake.kv.get("k").map(Vec::len), Some(10));
}

#[test]
fn pipelined_put_then_get_however_split() {
    let input = b"PUT /kv/p HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloGET /kv/p HTTP/1.1\r\n\r\nPUT /kv/p HTTP/1.1\r\nContent-Length: 3\r\n\r\nbyeGET /kv/p HTTP/1.1\r\nConnection: close\r\n\r\n";
    for chunk in [1, 3, 50, input.len()] {
        let mut fake = Fake::default();
        let (out, conn) = run_with(&mut fake, input, chunk, 7);
        let r = responses(&out);
        let got: Vec<(u16, &str)> = r.iter().map(|r| (r.0, text(&r.2))).collect();
        assert_eq!(
            got,
            [
                (200, "{\"key\":\"p\",\"length\":5}"),
                (200, "hello"),
                (200, "{\"key\":\"p\",\"length\":3}"),
                (200, "bye"),
            ],
            "chunk {chunk}"
        );
        assert!(conn.wants_close());
    }
}

#[test]
fn expect_100_continue() {
    let mut fake = Fake::default();
    let mut conn = Connection::new(Instant::ZERO);
    // The interim answer goes out before any of the body arrives.
    let (_, out) = exchange(
        &mut conn,
        &mut fake,
        b"PUT /kv/c HTTP/1.1\r\nContent-Length: 3\r\nExpect: 100-Continue\r\n\r\n",
    );
    assert_eq!(out, b"HTTP/1.1 100 Continue\r\n\r\n");
    let (_, out) = exchange(&mut conn, &mut fake, b"abc");
    let r = responses(&out);
    assert_eq!(
        (r[0].0, text(&r[0].2)),
        (200, "{\"key\":\"c\",\"length\":3}")
    );
    assert_eq!(
        conn.stats().requests,
        1,
        "the interim answer is not an answer"
    );
    // The sink too.
    let (_, out) = exchange(
        &mut conn,
        &mut fake,
        b"POST /sink HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n",
    );
    assert_eq!(out, b"HTTP/1.1 100 Continue\r\n\r\n");
    let (_, out) = exchange(&mut conn, &mut fake, b"x");
    assert_eq!(responses(&out)[0].0, 200);
    assert!(!conn.wants_close());

    // A request whose body is not read gets only its final answer, and the connection
    // closes (the client may or may not send the body).
    let (r, closing) = ask(
        &mut fake,
        "PUT /sink HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
    );
    let codes: Vec<u16> = r.iter().map(|r| r.0).collect();
    assert_eq!(codes, [405]);
    assert!(r[0].1.contains("Connection: close\r\n"));
    assert!(closing);
    // Nothing to wait for without a body; HTTP/1.0 clients get no interim answers.
    let (r, _) = ask(
        &mut fake,
        "PUT /kv/e HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n\
         PUT /kv/f HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nz",
    );
    let codes: Vec<u16> = r.iter().map(|r| r.0).collect();
    assert_eq!(codes, [200, 200]);
}

proptest! {
    /// A value put is the value got back, however the requests are split and however small
    /// the window the answers go out through.
    #[test]
    fn put_then_get_round_trips(
        key in "[A-Za-z0-9._~-]{1,128}",
        value in proptest::collection::vec(any::<u8>(), 0..3000),
        chunk in 1usize..400,
        window in 1usize..300,
    ) {
        let mut input = format!("PUT /kv/{key} HTTP/1.1\r\nContent-Length: {}\r\n\r\n", value.len())
            .into_bytes();
        input.extend_from_slice(&value);
        input.extend_from_slice(format!("GET /kv/{key} HTTP/1.1\r\n\r\n").as_bytes());
        let mut fake = Fake::default();
        let (out, conn) = run_with(&mut fake, &input, chunk, window);
        let r = responses(&out);
        prop_assert_eq!(r.len(), 2);
        prop_assert_eq!(r[0].0, 200);
        prop_assert_eq!(&r[1].2, &value);
        prop_assert!(!conn.wants_close());
    }
}

#[test]
fn files_and_kv_without_the_slash_are_the_same_routes() {
    let mut fake = Fake::with_files(&[("index.html", b"<h1>root</h1>")]);
    fake.kv.insert("k".into(), b"v".to_vec());
    let (r, closing) = ask(
        &mut fake,
        "GET /files HTTP/1.1\r\n\r\nGET /kv?x HTTP/1.1\r\n\r\nPUT /files HTTP/1.1\r\n\r\n",
    );
    let got: Vec<(u16, &str)> = r.iter().map(|r| (r.0, text(&r.2))).collect();
    assert_eq!(
        got,
        [
            (200, "<h1>root</h1>"),
            (200, "{\"keys\":[\"k\"]}"),
            (405, "method not allowed\n")
        ]
    );
    assert!(!closing);
    // A longer name is not the route.
    let (r, _) = ask(
        &mut fake,
        "GET /filesx HTTP/1.1\r\n\r\nGET /kvx HTTP/1.1\r\n\r\n",
    );
    assert_eq!((r[0].0, r[1].0), (404, 404));
}
