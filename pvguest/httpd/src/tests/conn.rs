//! The connection state machine, bytes in and out.
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap,
    reason = "test fixtures: small known sizes and indexes, on 64-bit hosts only"
)]

use super::fake::Fake;
use crate::{Backend, Connection, ServerStats};
use proptest::prelude::*;
use sha2::{Digest, Sha256};
use smoltcp::time::Instant;

/// Feeds `input` in pieces of `chunk` bytes to a connection backed by `backend`, draining
/// output through a `buffer`-byte window as it goes; returns every byte answered, and the
/// connection.
pub fn run_with(
    backend: &mut dyn Backend,
    input: &[u8],
    chunk: usize,
    buffer: usize,
) -> (Vec<u8>, Connection) {
    let mut conn = Connection::new(Instant::ZERO);
    let http = ServerStats::default();
    let mut out = Vec::new();
    let mut pending: Vec<u8> = Vec::new();
    let mut fed = 0;
    let mut buf = vec![0u8; buffer];
    for _ in 0..10_000_000 {
        if fed < input.len() {
            let end = (fed + chunk).min(input.len());
            pending.extend_from_slice(&input[fed..end]);
            fed = end;
        }
        let used = conn.receive(&pending, Instant::ZERO, backend, &http);
        pending.drain(..used);
        let n = conn.fill(&mut buf, Instant::ZERO, backend);
        out.extend_from_slice(&buf[..n]);
        if fed == input.len() && n == 0 && used == 0 {
            break;
        }
    }
    (out, conn)
}

/// Feeds `input` in pieces of `chunk` bytes (draining output as it goes) and returns every
/// byte answered, and whether the connection wants to close.
fn run(input: &[u8], chunk: usize) -> (Vec<u8>, bool) {
    let (out, conn) = run_with(&mut Fake::default(), input, chunk, 1000);
    (out, conn.wants_close())
}

/// The status document the fake gives, with no traffic counted.
pub fn fake_status() -> Vec<u8> {
    Fake::default()
        .status()
        .to_json(&ServerStats::default())
        .into_bytes()
}

/// The response head at the start of `buf`, if complete: (status, head text, head length,
/// body length from `Content-Length`; a `1xx` or a `304` has no body).
pub fn response_head(buf: &[u8]) -> Option<(u16, String, usize, usize)> {
    let mut headers = [httparse::EMPTY_HEADER; 16];
    let mut r = httparse::Response::new(&mut headers);
    let httparse::Status::Complete(len) = r.parse(buf).unwrap() else {
        return None;
    };
    let code = r.code.unwrap();
    let length: usize = if code < 200 || code == 304 {
        0
    } else {
        r.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("content-length"))
            .map(|h| std::str::from_utf8(h.value).unwrap().parse().unwrap())
            .unwrap()
    };
    let head = String::from_utf8(buf[..len].to_vec()).unwrap();
    Some((code, head, len, length))
}

/// Splits `out` into responses: (status, headers text, body); a `1xx` has no body.
pub fn responses(mut out: &[u8]) -> Vec<(u16, String, Vec<u8>)> {
    let mut all = Vec::new();
    while !out.is_empty() {
        let (code, head, len, length) = response_head(out).expect("partial response");
        let end = (len + length).min(out.len());
        all.push((code, head, out[len..end].to_vec()));
        out = &out[end..];
    }
    all
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let input = b"GET / HTTP/1.1\r\n\r\nGET /blob/5 HTTP/1.1\r\n\r\nGET /nope HTTP/1.1\r\n\r\nPOST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET /blob/3 HTTP/1.1\r\nConnection: close\r\n\r\n";
    for chunk in [1, 7, 1000] {
        let (out, closing) = run(input, chunk);
        let r = responses(&out);
        let codes: Vec<u16> = r.iter().map(|r| r.0).collect();
        assert_eq!(codes, [200, 200, 404, 405, 200], "chunk {chunk}");
        assert_eq!(r[0].2, fake_status());
        assert_eq!(r[1].2, (0..5).map(crate::blob::byte).collect::<Vec<_>>());
        assert!(r[3].1.contains("Allow: GET, HEAD\r\n"));
        assert!(r[4].1.contains("Connection: close"));
        assert!(closing);
    }
}

#[test]
fn the_sink_hashes_the_upload() {
    let body: Vec<u8> = (0..100_000u32).map(|i| (i * 7 + i / 300) as u8).collect();
    let mut input = format!(
        "POST /sink HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    input.extend_from_slice(&body);
    input.extend_from_slice(b"POST /sink HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    let (out, closing) = run(&input, 1460);
    let r = responses(&out);
    let hex: String = Sha256::digest(&body)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        String::from_utf8(r[0].2.clone()).unwrap(),
        format!("{{\"sha256\":\"{hex}\",\"length\":100000}}")
    );
    assert_eq!(
        String::from_utf8(r[1].2.clone()).unwrap(),
        "{\"sha256\":\"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\",\"length\":0}"
    );
    assert!(!closing);
}

#[test]
fn discard_reads_the_upload_unhashed_and_answers_its_length() {
    let body = vec![0x5a_u8; 70_000];
    let mut input = format!(
        "POST /discard?x=1 HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    input.extend_from_slice(&body);
    // The body was read whole: the next request is parsed where it ends.
    input.extend_from_slice(
        b"POST /discard HTTP/1.1\r\nContent-Length: 0\r\n\r\nGET /discard HTTP/1.1\r\n\r\n",
    );
    let (out, closing) = run(&input, 1460);
    let r = responses(&out);
    let codes: Vec<u16> = r.iter().map(|r| r.0).collect();
    assert_eq!(codes, [200, 200, 405]);
    assert_eq!(
        String::from_utf8(r[0].2.clone()).unwrap(),
        "{\"length\":70000}"
    );
    assert_eq!(String::from_utf8(r[1].2.clone()).unwrap(), "{\"length\":0}");
    assert!(r[2].1.contains("Allow: POST\r\n"));
    assert!(!closing);
}

#[test]
fn refused_requests_close_and_nothing_after_them_is_read() {
    let (out, closing) = run(b"BOGUS\r\n\r\nGET / HTTP/1.1\r\n\r\n", 3);
    let r = responses(&out);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].0, 400);
    assert!(closing);
    // A head that never ends: 413 once it passes the limit.
    let mut huge = b"GET / HTTP/1.1\r\nX-Long: ".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 20_000));
    let (out, closing) = run(&huge, 1000);
    assert_eq!(responses(&out)[0].0, 413);
    assert!(closing);
    let (out, _) = run(b"GET / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n", 100);
    assert_eq!(responses(&out)[0].0, 400);
}

#[test]
fn a_blob_streams_without_being_held() {
    let (out, _) = run(b"GET /blob/3000000 HTTP/1.1\r\n\r\n", 100);
    let r = responses(&out);
    assert_eq!(r[0].2.len(), 3_000_000);
    assert!(
        r[0].2
            .iter()
            .enumerate()
            .all(|(i, &b)| b == ((i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8)
    );
}

proptest! {
    /// Whatever arrives, the connection answers only well-formed responses, never panics,
    /// and answers a valid request the same however it is split.
    #[test]
    fn any_bytes_get_well_formed_answers(
        junk in proptest::collection::vec(any::<u8>(), 0..3000),
        chunk in 1usize..600,
    ) {
        let (out, _) = run(&junk, chunk);
        if !out.is_empty() {
            prop_assert!(out.starts_with(b"HTTP/1.1 "));
            let r = responses(&out);
            prop_assert!(r.iter().all(|r| matches!(r.0, 100 | 200 | 400 | 404 | 405 | 411 | 413)));
        }
    }

    #[test]
    fn splitting_does_not_change_the_answers(chunk in 1usize..200, size in 0u64..5000) {
        let input = format!(
            "GET /blob/{size} HTTP/1.1\r\nHost: a\r\n\r\nPOST /sink HTTP/1.1\r\ncontent-length: 4\r\n\r\nwxyzGET /x HTTP/1.1\r\n\r\n"
        );
        let whole = run(input.as_bytes(), input.len());
        let split = run(input.as_bytes(), chunk);
        prop_assert_eq!(whole, split);
    }
}
