//! What HTTP clients expect: `HEAD`, `Range`, `ETag` with `If-None-Match` and `If-Range`,
//! `Date`, and percent-decoded keys, on the connection state machine with the fake backend.
#![allow(
    clippy::cast_possible_truncation,
    reason = "test fixtures: small known sizes and indexes, on 64-bit hosts only"
)]

use super::conn::{response_head, responses, run_with};
use super::fake::Fake;

/// Byte `i` of the test file.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

fn fake() -> Fake {
    let mut fake = Fake::with_files(&[("f.bin", &pattern(1000)), ("page.html", b"<p>x</p>")]);
    fake.kv.insert("k".into(), b"value".to_vec());
    fake
}

/// Sends `input` whole and returns every byte answered.
fn ask_raw(backend: &mut Fake, input: &str) -> Vec<u8> {
    run_with(backend, input.as_bytes(), input.len(), 4096).0
}

fn ask(backend: &mut Fake, input: &str) -> Vec<(u16, String, Vec<u8>)> {
    responses(&ask_raw(backend, input))
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (n, v) = l.split_once(": ")?;
        n.eq_ignore_ascii_case(name).then_some(v)
    })
}

#[test]
fn head_answers_every_get_route_with_the_get_head_and_no_body() {
    for path in [
        "/",
        "/blob/300",
        "/files/f.bin",
        "/files/page.html",
        "/kv/",
        "/kv/k",
        "/kv/missing",
        "/files/missing",
        "/nowhere",
    ] {
        let mut backend = fake();
        let get = ask(&mut backend, &format!("GET {path} HTTP/1.1\r\n\r\n"));
        let mut backend = fake();
        let out = ask_raw(
            &mut backend,
            &format!("HEAD {path} HTTP/1.1\r\n\r\nGET /blob/3 HTTP/1.1\r\n\r\n"),
        );
        let (code, head, head_len, _) = response_head(&out).unwrap();
        assert_eq!(
            (code, head.as_str()),
            (get[0].0, get[0].1.as_str()),
            "{path}"
        );
        // What follows the head is the next answer: no body was sent.
        let rest = responses(&out[head_len..]);
        assert_eq!(
            (rest.len(), rest[0].0, rest[0].2.len()),
            (1, 200, 3),
            "{path}"
        );
    }
    // Only GET routes take HEAD.
    let r = ask(&mut fake(), "HEAD /sink HTTP/1.1\r\n\r\n");
    assert_eq!(r[0].0, 405);
}

#[test]
fn single_ranges_of_files_and_blobs() {
    let file = pattern(1000);
    let blob: Vec<u8> = (0..100).map(crate::blob::byte).collect();
    for (path, whole) in [("/files/f.bin", &file), ("/blob/100", &blob)] {
        let size = whole.len();
        let get = |range: &str| {
            let r = ask(
                &mut fake(),
                &format!("GET {path} HTTP/1.1\r\nRange: {range}\r\n\r\n"),
            );
            r.into_iter().next().unwrap()
        };
        for (range, start, end) in [
            ("bytes=10-19", 10, 20),
            ("bytes=0-0", 0, 1),
            ("bytes=-5", size - 5, size),
            ("bytes=90-", 90, size),
            ("bytes=50-100000", 50, size),
        ] {
            let (code, head, body) = get(range);
            assert_eq!(code, 206, "{path} {range}");
            assert_eq!(
                header(&head, "Content-Range"),
                Some(format!("bytes {start}-{}/{size}", end - 1).as_str()),
                "{path} {range}"
            );
            assert_eq!(body, whole[start..end], "{path} {range}");
        }
        // Past the end: 416 with the size.
        let (code, head, _) = get(&format!("bytes={size}-"));
        assert_eq!(code, 416);
        assert_eq!(
            header(&head, "Content-Range"),
            Some(format!("bytes */{size}").as_str())
        );
        // Several ranges, another unit, nonsense: the whole, as if no Range were sent.
        for ignored in ["bytes=0-1,5-6", "items=0-1", "bytes=9-2"] {
            let (code, head, body) = get(ignored);
            assert_eq!((code, &body), (200, whole), "{path} {ignored}");
            assert_eq!(header(&head, "Accept-Ranges"), Some("bytes"));
        }
    }
    // HEAD ignores Range.
    let out = ask_raw(
        &mut fake(),
        "HEAD /files/f.bin HTTP/1.1\r\nRange: bytes=0-9\r\n\r\n",
    );
    let (code, head, _, length) = response_head(&out).unwrap();
    assert_eq!((code, length), (200, 1000), "{head}");
    // The rest of the connection carries on after a range.
    let r = ask(
        &mut fake(),
        "GET /blob/100 HTTP/1.1\r\nRange: bytes=1-2\r\n\r\nGET /blob/4 HTTP/1.1\r\n\r\n",
    );
    assert_eq!(
        (r[0].0, r[0].2.len(), r[1].0, r[1].2.len()),
        (206, 2, 200, 4)
    );
}

#[test]
fn files_have_a_strong_etag_and_if_none_match_gets_304() {
    let r = ask(&mut fake(), "GET /files/f.bin HTTP/1.1\r\n\r\n");
    let etag = header(&r[0].1, "ETag").unwrap().to_owned();
    assert!(
        etag.starts_with("\"3e8-") && !etag.starts_with("W/"),
        "{etag}"
    );
    // The same for the same file, another when the backend's version changes.
    let again = ask(&mut fake(), "GET /files/f.bin HTTP/1.1\r\n\r\n");
    assert_eq!(header(&again[0].1, "ETag"), Some(etag.as_str()));
    let mut changed = fake();
    changed.version = 1;
    let other = ask(&mut changed, "GET /files/f.bin HTTP/1.1\r\n\r\n");
    assert_ne!(header(&other[0].1, "ETag"), Some(etag.as_str()));

    let r = ask(
        &mut fake(),
        &format!(
            "GET /files/f.bin HTTP/1.1\r\nIf-None-Match: \"zzz\", {etag}\r\n\r\n\
             GET /files/f.bin HTTP/1.1\r\nIf-None-Match: \"zzz\"\r\n\r\n\
             HEAD /files/f.bin HTTP/1.1\r\nIf-None-Match: *\r\n\r\n\
             GET /files/f.bin HTTP/1.1\r\nIf-Range: {etag}\r\nRange: bytes=0-1\r\n\r\n\
             GET /files/f.bin HTTP/1.1\r\nIf-Range: \"old\"\r\nRange: bytes=0-1\r\n\r\n"
        ),
    );
    let codes: Vec<(u16, usize)> = r.iter().map(|r| (r.0, r.2.len())).collect();
    assert_eq!(
        codes,
        [(304, 0), (200, 1000), (304, 0), (206, 2), (200, 1000)]
    );
    assert_eq!(header(&r[0].1, "ETag"), Some(etag.as_str()));
    assert_eq!(header(&r[0].1, "Content-Length"), None);
}

#[test]
fn every_answer_has_a_date_when_the_backend_knows_the_time() {
    let input = "GET / HTTP/1.1\r\n\r\nGET /files/f.bin HTTP/1.1\r\nRange: bytes=0-0\r\n\r\n\
                 GET /nowhere HTTP/1.1\r\n\r\nBOGUS\r\n\r\n";
    let mut backend = fake();
    backend.unix_time = Some(784_111_777);
    let r = ask(&mut backend, input);
    assert_eq!(r.len(), 4);
    for (code, head, _) in &r {
        let second_line = head.lines().nth(1).unwrap();
        assert_eq!(second_line, "Date: Sun, 06 Nov 1994 08:49:37 GMT", "{code}");
    }
    // No clock, no Date.
    let r = ask(&mut fake(), input);
    assert!(r.iter().all(|(_, head, _)| header(head, "Date").is_none()));
}

#[test]
fn keys_are_percent_decoded_before_the_key_rule() {
    let mut backend = fake();
    let r = ask(
        &mut backend,
        "PUT /kv/a%41%7e HTTP/1.1\r\nContent-Length: 2\r\n\r\nhiGET /kv/aA~ HTTP/1.1\r\n\r\n\
         DELETE /kv/%61A%7E HTTP/1.1\r\n\r\n",
    );
    let got: Vec<(u16, &[u8])> = r.iter().map(|r| (r.0, r.2.as_slice())).collect();
    assert_eq!(got[0], (200, &b"{\"key\":\"aA~\",\"length\":2}"[..]));
    assert_eq!(got[1], (200, &b"hi"[..]));
    assert_eq!(got[2].0, 200);
    assert!(!backend.kv.contains_key("aA~"));
    assert_eq!(ask(&mut fake(), "GET /kv/a%2Fb HTTP/1.1\r\n\r\n")[0].0, 400);
}
