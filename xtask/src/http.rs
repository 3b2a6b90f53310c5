//! A small HTTP/1.1 client for the host-side checks and the benchmark: one keep-alive
//! connection at a time, bodies framed by `Content-Length` (the guest's service always sends
//! it), every read and write under a deadline.
//!
//! Why not curl or a crate: the checks need keep-alive connections driven from several threads
//! and exact counts of what came back (status, bytes, digest) with no process per request;
//! `ureq`/`reqwest` would bring TLS and a large tree for what is a few dozen lines over
//! `std::net::TcpStream`.
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::{Context, Result, bail};

/// The largest head an answer may have.
const MAX_HEAD: usize = 16 << 10;

/// One answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The header fields, names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    /// The body (empty for `HEAD`, 1xx, 204 and 304).
    pub body: Vec<u8>,
    /// Whether the server said it closes the connection after this answer.
    pub closes: bool,
}

impl Response {
    /// The first header field `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A keep-alive connection.
pub struct Conn {
    reader: BufReader<TcpStream>,
    host: String,
}

impl Conn {
    /// Connects to `addr` (`host:port`) within `timeout`; every later read and write has
    /// the same timeout.
    pub fn connect(addr: &str, timeout: Duration) -> Result<Self> {
        let sock: SocketAddr = addr
            .to_socket_addrs()
            .with_context(|| format!("resolving {addr}"))?
            .next()
            .with_context(|| format!("{addr} resolves to nothing"))?;
        let stream = TcpStream::connect_timeout(&sock, timeout)
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        stream.set_nodelay(true)?;
        Ok(Self {
            reader: BufReader::with_capacity(64 << 10, stream),
            host: addr.to_owned(),
        })
    }

    /// Sends raw bytes (for malformed requests).
    pub fn send_raw(&mut self, bytes: &[u8]) -> Result<()> {
        self.reader
            .get_mut()
            .write_all(bytes)
            .context("sending to the server")
    }

    /// One request; `body` is sent with its `Content-Length` (none for `None`).
    pub fn request(&mut self, method: &str, path: &str, body: Option<&[u8]>) -> Result<Response> {
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", self.host);
        if let Some(b) = body {
            head.push_str(&format!("Content-Length: {}\r\n", b.len()));
        }
        head.push_str("\r\n");
        let stream = self.reader.get_mut();
        stream
            .write_all(head.as_bytes())
            .context("sending a request head")?;
        if let Some(b) = body {
            stream.write_all(b).context("sending a request body")?;
        }
        self.read_response(method == "HEAD")
    }

    /// Reads one answer (after [`Conn::send_raw`]); `head_only` for an answer to `HEAD`.
    pub fn read_response(&mut self, head_only: bool) -> Result<Response> {
        let (status, headers) = read_head(&mut self.reader)?;
        let closes = headers
            .iter()
            .any(|(n, v)| n == "connection" && v.eq_ignore_ascii_case("close"));
        let no_body = head_only || status < 200 || status == 204 || status == 304;
        let body = if no_body {
            Vec::new()
        } else if let Some((_, len)) = headers.iter().find(|(n, _)| n == "content-length") {
            let len: usize = len
                .trim()
                .parse()
                .with_context(|| format!("Content-Length {len:?}"))?;
            let mut body = vec![0; len];
            self.reader
                .read_exact(&mut body)
                .with_context(|| format!("reading a body of {len} bytes"))?;
            body
        } else if closes {
            let mut body = Vec::new();
            self.reader
                .read_to_end(&mut body)
                .context("reading a body to the connection's end")?;
            body
        } else {
            bail!("status {status}: an answer with neither Content-Length nor Connection: close")
        };
        Ok(Response {
            status,
            headers,
            body,
            closes,
        })
    }
}

/// Reads a status line and header fields.
fn read_head(reader: &mut impl BufRead) -> Result<(u16, Vec<(String, String)>)> {
    let mut total = 0;
    let mut line = String::new();
    let mut next = |line: &mut String| -> Result<()> {
        line.clear();
        let n = reader.read_line(line).context("reading an answer's head")?;
        if n == 0 {
            bail!("the server closed the connection before a whole head");
        }
        total += n;
        if total > MAX_HEAD {
            bail!("an answer's head over {MAX_HEAD} bytes");
        }
        Ok(())
    };
    next(&mut line)?;
    let mut words = line.trim_end().splitn(3, ' ');
    let version = words.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        bail!("not an HTTP/1 status line: {:?}", line.trim_end());
    }
    let status: u16 = words
        .next()
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("no status code in {:?}", line.trim_end()))?;
    let mut headers = Vec::new();
    loop {
        next(&mut line)?;
        let field = line.trim_end_matches(['\r', '\n']);
        if field.is_empty() {
            return Ok((status, headers));
        }
        let (name, value) = field
            .split_once(':')
            .with_context(|| format!("a header line without a colon: {field:?}"))?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
}

/// One request on a fresh connection.
pub fn once(addr: &str, method: &str, path: &str, body: Option<&[u8]>) -> Result<Response> {
    Conn::connect(addr, Duration::from_secs(30))?.request(method, path, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A server that answers each request on one connection with the canned answers in turn,
    /// and records what it read.
    fn serve(answers: Vec<&'static [u8]>) -> (String, std::thread::JoinHandle<Vec<u8>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let handle = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut seen = Vec::new();
            for a in answers {
                let mut buf = [0u8; 4096];
                let n = s.read(&mut buf).unwrap();
                seen.extend_from_slice(&buf[..n]);
                s.write_all(a).unwrap();
            }
            seen
        });
        (addr, handle)
    }

    #[test]
    fn keep_alive_answers_are_framed_by_their_length() {
        let (addr, h) = serve(vec![
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello",
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
        ]);
        let mut c = Conn::connect(&addr, Duration::from_secs(5)).unwrap();
        let r = c.request("PUT", "/kv/a", Some(b"xyz")).unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"hello"[..]));
        assert_eq!(r.header("x-a"), Some("b"));
        let r = c.request("GET", "/nope", None).unwrap();
        assert_eq!((r.status, r.body.len()), (404, 0));
        let seen = String::from_utf8(h.join().unwrap()).unwrap();
        assert!(seen.starts_with("PUT /kv/a HTTP/1.1\r\n"), "{seen}");
        assert!(seen.contains("Content-Length: 3\r\n\r\nxyz"), "{seen}");
    }

    #[test]
    fn head_answers_have_no_body_and_bad_heads_are_errors() {
        let (addr, _h) = serve(vec![
            b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n",
            b"SMTP ready\r\n\r\n",
        ]);
        let mut c = Conn::connect(&addr, Duration::from_secs(5)).unwrap();
        let r = c.request("HEAD", "/", None).unwrap();
        assert_eq!((r.status, r.body.len()), (200, 0));
        assert!(c.request("GET", "/", None).is_err());
    }

    #[test]
    fn a_body_cut_short_is_an_error() {
        let (addr, _h) = serve(vec![
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nConnection: close\r\n\r\nabc",
        ]);
        let mut c = Conn::connect(&addr, Duration::from_secs(5)).unwrap();
        assert!(c.request("GET", "/", None).is_err());
    }
}
