//! A fake xenstored for host tests: a [`Store`] behind the byte transport, with simulated
//! time, timed actions, a write hook (to play a backend), and scripted misbehaviour.

pub use super::store::Store;

use crate::time::Instant;
use crate::xenstore::{TransportError, Wake, WatchEvent, XsTransport};
use abi::io::xs_wire::{XS_CONTROL, XS_DIRECTORY, XS_ERROR, XS_WATCH_EVENT, XsdSockmsg};
use std::collections::VecDeque;

/// How the fake answers the next request.
#[derive(Clone, Debug)]
pub enum Misbehave {
    /// Reply with a request id nobody asked for.
    WrongReqId,
    /// Reply with a header announcing 5000 payload bytes.
    Oversize,
    /// Reply with these raw bytes instead.
    Garbage(Vec<u8>),
    /// Send the header and only half of the payload.
    Truncate,
    /// Answer `XS_ERROR` with this name.
    ErrorName(&'static str),
    /// Answer with a type that is neither the request's nor `XS_ERROR`.
    WrongType,
    /// Do not answer at all.
    Silent,
    /// Answer with this payload instead of the real one (same header otherwise).
    Payload(Vec<u8>),
}

type Action = Box<dyn FnOnce(&mut Store)>;
type WriteHook = Box<dyn FnMut(&mut Store, &str, &str)>;
/// What [`FakeXenstored::on_recv`] runs on every read.
pub type RecvHook = Box<dyn FnMut(&mut Store)>;

/// The fake daemon; implements [`XsTransport`].
pub struct FakeXenstored {
    /// The tree the fake serves (tests and fake backends change it directly).
    pub store: Store,
    from_client: Vec<u8>,
    to_client: VecDeque<u8>,
    /// Simulated time; advanced only by `wait`.
    pub now: Instant,
    timers: Vec<(Instant, Action)>,
    /// Called after each successful client write or mkdir with the absolute path and value.
    pub on_write: Option<WriteHook>,
    /// Misbehaviour for the next requests, in order.
    pub misbehave: VecDeque<Misbehave>,
    /// Most bytes moved per `send`/`recv` call.
    pub chunk: usize,
    /// Headers of every request received.
    pub requests: Vec<XsdSockmsg>,
    /// Number of `wait` calls.
    pub waits: usize,
    /// Send watch events after the reply (as xenstored does for a new watch's first event)
    /// instead of before it.
    pub events_after_reply: bool,
    /// Simulated time each `recv` costs (0: time moves only in `wait`).
    pub recv_cost_nanos: u64,
    /// Called on every `recv` before anything is sent: a peer that keeps changing things
    /// (a watch-event flood, a backend rewriting its state).
    pub on_recv: Option<RecvHook>,
    /// Number of `recv` calls.
    pub recvs: usize,
    /// `recv` panics after this many calls: a client that never gave up on a flooding peer
    /// fails its test instead of hanging it.
    pub max_recvs: usize,
}

impl FakeXenstored {
    /// A daemon serving one client, domain `domid`, with an empty home.
    pub fn new(domid: u16) -> Self {
        Self {
            store: Store::new(domid),
            from_client: Vec::new(),
            to_client: VecDeque::new(),
            now: Instant::from_nanos(0),
            timers: Vec::new(),
            on_write: None,
            misbehave: VecDeque::new(),
            chunk: usize::MAX,
            requests: Vec::new(),
            waits: 0,
            events_after_reply: false,
            recv_cost_nanos: 0,
            on_recv: None,
            recvs: 0,
            max_recvs: 1_000_000,
        }
    }

    /// Every `recv` queues one more watch event with `token` and costs `cost_nanos` of
    /// simulated time: a daemon (or a peer driving it) that never stops sending.
    pub fn flood_events(&mut self, token: &'static str, cost_nanos: u64) {
        self.recv_cost_nanos = cost_nanos;
        let mut n = 0u64;
        self.on_recv = Some(Box::new(move |store: &mut Store| {
            n += 1;
            store.events.push(WatchEvent {
                path: format!("flood/{n}"),
                token: token.to_string(),
            });
        }));
    }

    /// Runs `action` on the store when simulated time reaches `at`.
    pub fn at(&mut self, at: Instant, action: impl FnOnce(&mut Store) + 'static) {
        self.timers.push((at, Box::new(action)));
    }

    /// Queues raw bytes for the client.
    pub fn inject(&mut self, bytes: &[u8]) {
        self.to_client.extend(bytes);
    }

    /// Queues a well-formed watch event for the client.
    pub fn inject_event(&mut self, path: &str, token: &str) {
        let payload = format!("{path}\0{token}\0");
        self.send_message(XS_WATCH_EVENT, 0, 0, payload.as_bytes());
    }

    fn send_message(&mut self, type_: u32, req_id: u32, tx_id: u32, payload: &[u8]) {
        push_message(&mut self.to_client, type_, req_id, tx_id, payload);
    }

    fn flush_events(&mut self) {
        for WatchEvent { path, token } in self.store.take_events() {
            self.inject_event(&path, &token);
        }
    }

    fn process(&mut self) {
        while let Some(raw) = self.from_client.first_chunk::<16>() {
            let header = XsdSockmsg::from_bytes(raw).expect("client sent an oversize request");
            let end = 16 + header.len as usize;
            if self.from_client.len() < end {
                return;
            }
            let payload: Vec<u8> = self.from_client[16..end].to_vec();
            self.from_client.drain(..end);
            self.requests.push(header);
            self.answer(header, &payload);
        }
    }

    fn answer(&mut self, h: XsdSockmsg, payload: &[u8]) {
        let result = self.store.handle(h.type_, h.tx_id, payload);
        let is_write =
            h.type_ == abi::io::xs_wire::XS_WRITE || h.type_ == abi::io::xs_wire::XS_MKDIR;
        if result.is_ok()
            && is_write
            && let Some(mut hook) = self.on_write.take()
        {
            let mut parts = payload.splitn(2, |&b| b == 0);
            let path = String::from_utf8_lossy(parts.next().unwrap_or(b"")).into_owned();
            let path = self.store.canonical(&path).unwrap_or(path);
            let value = String::from_utf8_lossy(parts.next().unwrap_or(b"")).into_owned();
            hook(&mut self.store, &path, &value);
            self.on_write = Some(hook);
        }
        // Watch events go out before the reply (unless `events_after_reply`): the client must
        // queue them separately.
        if !self.events_after_reply {
            self.flush_events();
        }
        let (type_, body) = match result {
            Ok(body) => (h.type_, body),
            Err(name) => (XS_ERROR, format!("{name}\0").into_bytes()),
        };
        match self.misbehave.pop_front() {
            None => self.send_message(type_, h.req_id, h.tx_id, &body),
            Some(Misbehave::WrongReqId) => {
                self.send_message(type_, h.req_id.wrapping_add(1000), h.tx_id, &body)
            }
            Some(Misbehave::Oversize) => self.to_client.extend(
                XsdSockmsg {
                    type_,
                    req_id: h.req_id,
                    tx_id: h.tx_id,
                    len: 5000,
                }
                .to_bytes(),
            ),
            Some(Misbehave::Garbage(bytes)) => self.inject(&bytes),
            Some(Misbehave::Truncate) => {
                let len = u32::try_from(body.len()).unwrap_or(u32::MAX);
                self.to_client.extend(
                    XsdSockmsg {
                        type_,
                        req_id: h.req_id,
                        tx_id: h.tx_id,
                        len,
                    }
                    .to_bytes(),
                );
                self.to_client.extend(&body[..body.len() / 2]);
            }
            Some(Misbehave::ErrorName(name)) => {
                self.send_message(XS_ERROR, h.req_id, h.tx_id, format!("{name}\0").as_bytes())
            }
            Some(Misbehave::WrongType) => {
                let wrong = if h.type_ == XS_CONTROL {
                    XS_DIRECTORY
                } else {
                    XS_CONTROL
                };
                self.send_message(wrong, h.req_id, h.tx_id, &body)
            }
            Some(Misbehave::Silent) => {}
            Some(Misbehave::Payload(p)) => self.send_message(type_, h.req_id, h.tx_id, &p),
        }
        self.flush_events();
    }
}

impl XsTransport for FakeXenstored {
    fn send(&mut self, data: &[u8]) -> Result<usize, TransportError> {
        let n = data.len().min(self.chunk);
        self.from_client.extend_from_slice(&data[..n]);
        self.process();
        Ok(n)
    }

    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, TransportError> {
        self.recvs += 1;
        assert!(
            self.recvs <= self.max_recvs,
            "runaway client: {} reads from the fake xenstored without giving up",
            self.recvs
        );
        self.now = self.now.add_nanos(self.recv_cost_nanos);
        if let Some(mut hook) = self.on_recv.take() {
            hook(&mut self.store);
            self.on_recv = Some(hook);
        }
        // Changes made directly on the store (by a test or fake backend) fire now.
        self.flush_events();
        let n = buf.len().min(self.chunk).min(self.to_client.len());
        for (slot, byte) in buf.iter_mut().zip(self.to_client.drain(..n)) {
            *slot = byte;
        }
        Ok(n)
    }

    fn now(&mut self) -> Instant {
        self.now
    }

    fn wait(&mut self, deadline: Instant) -> Result<Wake, TransportError> {
        self.waits += 1;
        if !self.to_client.is_empty() {
            return Ok(Wake::Ready);
        }
        let next = self
            .timers
            .iter()
            .enumerate()
            .filter(|(_, (t, _))| *t <= deadline)
            .min_by_key(|(_, (t, _))| *t)
            .map(|(i, _)| i);
        match next {
            Some(i) => {
                let (t, action) = self.timers.remove(i);
                self.now = self.now.max(t);
                action(&mut self.store);
                self.flush_events();
                Ok(Wake::Ready)
            }
            None => {
                self.now = self.now.max(deadline);
                Ok(Wake::TimedOut)
            }
        }
    }
}

/// Appends one framed message (header, then `payload`) to the bytes a fake daemon sends.
pub(super) fn push_message(
    out: &mut VecDeque<u8>,
    type_: u32,
    req_id: u32,
    tx_id: u32,
    payload: &[u8],
) {
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    out.extend(
        XsdSockmsg {
            type_,
            req_id,
            tx_id,
            len,
        }
        .to_bytes(),
    );
    out.extend(payload);
}
