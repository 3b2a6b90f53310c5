//! The xenstore client engine: request ids, matching replies to requests, and queueing watch
//! events that arrive at any time (even between a request and its reply).
#![warn(clippy::arithmetic_side_effects)]

use super::codec::{Inbox, Message, encode_request};
use super::error::{ProtocolError, XsErrno, XsError};
use super::payload::{self, WatchEvent};
use super::transport::{Wake, XsTransport};
use crate::time::Instant;
use crate::types::TxId;
use abi::io::xs_wire::{XS_ERROR, XS_WATCH_EVENT};
use alloc::collections::VecDeque;
use alloc::vec::Vec;

/// Most bytes of watch events kept queued (path and token lengths plus 2 NULs each, as on the
/// wire). An event that does not fit is dropped, counted, and reported once as
/// [`XsError::EventsLost`] by the next [`XsClient::wait_event_for`] or [`XsClient::poll`], so
/// the caller re-reads what it watches. A daemon flooding events cannot exhaust the heap.
pub const MAX_QUEUED_EVENT_BYTES: usize = 64 * 1024;
/// Most abandoned (timed-out) request ids remembered, whose late replies are dropped quietly.
const MAX_ABANDONED: usize = 64;
/// Most transport reads one [`XsClient::poll`] makes.
const MAX_POLL_CHUNKS: usize = 64;
/// Bytes asked from the transport per `recv`.
const RECV_CHUNK: usize = 1024;

/// Counters of things the client tolerated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XsStats {
    /// Late replies to requests that had timed out, dropped.
    pub stale_replies: u64,
    /// Watch events dropped because the queue was full ([`MAX_QUEUED_EVENT_BYTES`]).
    pub events_dropped: u64,
    /// Watch events dropped because their payload was malformed.
    pub malformed_events: u64,
}

/// A xenstore client over a transport `T`. One request is in flight at a time.
#[derive(Debug)]
pub struct XsClient<T> {
    transport: T,
    inbox: Inbox,
    outbox: VecDeque<u8>,
    next_req_id: u32,
    abandoned: VecDeque<u32>,
    events: VecDeque<WatchEvent>,
    event_bytes: usize,
    events_lost: bool,
    stats: XsStats,
    broken: bool,
}

/// Bytes an event takes in the queue's accounting (as on the wire).
fn event_size(event: &WatchEvent) -> usize {
    event
        .path
        .len()
        .saturating_add(event.token.len())
        .saturating_add(2)
}

impl<T: XsTransport> XsClient<T> {
    /// A client over `transport`.
    pub fn new(transport: T) -> Self {
        Self {
            transport,
            inbox: Inbox::new(),
            outbox: VecDeque::new(),
            next_req_id: 1,
            abandoned: VecDeque::new(),
            events: VecDeque::new(),
            event_bytes: 0,
            events_lost: false,
            stats: XsStats::default(),
            broken: false,
        }
    }

    /// The transport.
    pub fn transport(&self) -> &T {
        &self.transport
    }

    /// The transport, mutably (tests drive fakes through it).
    pub fn transport_mut(&mut self) -> &mut T {
        &mut self.transport
    }

    /// The transport's clock.
    pub fn now(&mut self) -> Instant {
        self.transport.now()
    }

    /// Counters of tolerated misbehaviour.
    pub fn stats(&self) -> XsStats {
        self.stats
    }

    /// Whether an earlier framing or transport error made the connection unusable.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// Sends a request whose payload is the concatenation of `parts` and waits for its reply
    /// until `deadline`. Returns the reply payload; an `XS_ERROR` reply becomes
    /// [`XsError::Server`].
    pub fn request(
        &mut self,
        type_: u32,
        tx: TxId,
        parts: &[&[u8]],
        deadline: Instant,
    ) -> Result<Vec<u8>, XsError> {
        let req_id = self.enqueue(type_, tx, parts)?;
        let result = self.exchange(req_id, type_, deadline);
        if let Err(e) = result
            && !matches!(e, XsError::Server(_))
        {
            self.abandon(req_id);
        }
        result
    }

    /// Sends a request without waiting for its reply: the request goes out now (or with the
    /// next request, if the ring is full), and its reply is dropped as stale when it arrives.
    /// For clean-up whose outcome nobody acts on, such as removing a watch after its deadline.
    pub fn request_detached(
        &mut self,
        type_: u32,
        tx: TxId,
        parts: &[&[u8]],
    ) -> Result<(), XsError> {
        let req_id = self.enqueue(type_, tx, parts)?;
        self.abandon(req_id);
        self.flush()?;
        Ok(())
    }

    /// Frames a request under the next request id and queues it for sending.
    fn enqueue(&mut self, type_: u32, tx: TxId, parts: &[&[u8]]) -> Result<u32, XsError> {
        if self.broken {
            return Err(XsError::Broken);
        }
        let req_id = self.next_req_id;
        let bytes = encode_request(type_, req_id, tx.get(), parts)?;
        self.next_req_id = self.next_req_id.wrapping_add(1).max(1);
        self.outbox.extend(bytes);
        Ok(req_id)
    }

    fn exchange(&mut self, req_id: u32, type_: u32, deadline: Instant) -> Result<Vec<u8>, XsError> {
        loop {
            let mut progress = self.flush()?;
            progress |= self.receive()?;
            while let Some(msg) = self.next_message()? {
                // Watch events are recognised by type whatever their req_id.
                if msg.header.type_ != XS_WATCH_EVENT && msg.header.req_id == req_id {
                    // xenstored sends a watch's first event right after the XS_WATCH reply,
                    // often in the same read: queue what already arrived, so callers that
                    // look at the queue next (without waiting) see it.
                    while let Some(next) = self.next_message()? {
                        self.unsolicited(&next)?;
                    }
                    return match msg.header.type_ {
                        XS_ERROR => Err(XsError::Server(XsErrno::from_name(
                            msg.payload.strip_suffix(&[0]).unwrap_or(&msg.payload),
                        ))),
                        t if t == type_ => Ok(msg.payload),
                        got => Err(ProtocolError::WrongReplyType {
                            expected: type_,
                            got,
                        }
                        .into()),
                    };
                }
                self.unsolicited(&msg)?;
            }
            // Checked every round, not only when nothing happened: a daemon that keeps
            // sending (say, a flood of watch events) must not hold the caller past `deadline`.
            if self.transport.now() >= deadline
                || (!progress && self.wait(deadline)? == Wake::TimedOut)
            {
                self.transport
                    .request_timed_out(type_, req_id, self.inbox.buffered());
                return Err(XsError::Timeout);
            }
        }
    }

    /// Handles every message already received (queueing watch events) without blocking.
    ///
    /// Fails with [`XsError::EventsLost`] (once) if watch events were dropped since the last
    /// report; the messages are handled all the same.
    pub fn poll(&mut self) -> Result<(), XsError> {
        if self.broken {
            return Err(XsError::Broken);
        }
        self.flush()?;
        // Bounded, so a daemon that never stops producing cannot hold the caller here.
        for _ in 0..MAX_POLL_CHUNKS {
            let got = self.receive()?;
            while let Some(msg) = self.next_message()? {
                self.unsolicited(&msg)?;
            }
            if !got {
                break;
            }
        }
        self.report_lost_events()
    }

    /// Bytes of watch events queued now (at most [`MAX_QUEUED_EVENT_BYTES`]).
    pub fn queued_event_bytes(&self) -> usize {
        self.event_bytes
    }

    /// `Err(EventsLost)` once after events were dropped.
    fn report_lost_events(&mut self) -> Result<(), XsError> {
        if core::mem::take(&mut self.events_lost) {
            return Err(XsError::EventsLost);
        }
        Ok(())
    }

    fn dequeue(&mut self, index: usize) -> Option<WatchEvent> {
        let event = self.events.remove(index)?;
        self.event_bytes = self.event_bytes.saturating_sub(event_size(&event));
        Some(event)
    }

    /// Takes the oldest queued watch event.
    pub fn take_event(&mut self) -> Option<WatchEvent> {
        self.dequeue(0)
    }

    /// Takes the oldest queued watch event carrying `token`, leaving the others queued.
    pub fn take_event_for(&mut self, token: &str) -> Option<WatchEvent> {
        let index = self.events.iter().position(|e| e.token == token)?;
        self.dequeue(index)
    }

    /// Waits until a watch event carrying `token` arrives, or `deadline` passes.
    ///
    /// Fails with [`XsError::EventsLost`] (once) if watch events were dropped: the awaited
    /// one may be among them, so the caller should re-read what it watches.
    pub fn wait_event_for(
        &mut self,
        token: &str,
        deadline: Instant,
    ) -> Result<WatchEvent, XsError> {
        loop {
            if let Some(event) = self.take_event_for(token) {
                return Ok(event);
            }
            self.report_lost_events()?;
            if self.broken {
                return Err(XsError::Broken);
            }
            let mut progress = self.flush()?;
            progress |= self.receive()?;
            while let Some(msg) = self.next_message()? {
                self.unsolicited(&msg)?;
                // A message taken from the inbox may be the awaited event: look before waiting.
                progress = true;
            }
            if let Some(event) = self.take_event_for(token) {
                return Ok(event);
            }
            // Every round, whatever arrived: a flood of other events must not outlast it.
            if self.transport.now() >= deadline
                || (!progress && self.wait(deadline)? == Wake::TimedOut)
            {
                return Err(XsError::Timeout);
            }
        }
    }

    /// A message that is not the reply being waited for.
    fn unsolicited(&mut self, msg: &Message) -> Result<(), XsError> {
        if msg.header.type_ == XS_WATCH_EVENT {
            match payload::watch_event(&msg.payload) {
                Ok(event) => {
                    let size = event_size(&event);
                    if self.event_bytes.saturating_add(size) > MAX_QUEUED_EVENT_BYTES {
                        self.stats.events_dropped = self.stats.events_dropped.saturating_add(1);
                        self.events_lost = true;
                    } else {
                        // Bounded by MAX_QUEUED_EVENT_BYTES (checked above).
                        self.event_bytes = self.event_bytes.saturating_add(size);
                        self.events.push_back(event);
                    }
                }
                Err(_) => {
                    self.stats.malformed_events = self.stats.malformed_events.saturating_add(1)
                }
            }
            return Ok(());
        }
        if let Some(i) = self
            .abandoned
            .iter()
            .position(|&id| id == msg.header.req_id)
        {
            self.abandoned.remove(i);
            self.stats.stale_replies = self.stats.stale_replies.saturating_add(1);
            return Ok(());
        }
        Err(ProtocolError::UnexpectedReqId {
            req_id: msg.header.req_id,
        }
        .into())
    }

    fn abandon(&mut self, req_id: u32) {
        if self.abandoned.len() >= MAX_ABANDONED {
            self.abandoned.pop_front();
        }
        self.abandoned.push_back(req_id);
    }

    /// Sends what the outbox holds; returns whether any byte went out.
    fn flush(&mut self) -> Result<bool, XsError> {
        let mut progress = false;
        while !self.outbox.is_empty() {
            let (front, _) = self.outbox.as_slices();
            let offered = front.len();
            let sent = match self.transport.send(front) {
                Ok(sent) => sent,
                Err(e) => return Err(self.fail(e.into())),
            };
            if sent == 0 {
                break;
            }
            // A transport reporting more than it was given is clamped, not trusted.
            self.outbox.drain(..sent.min(offered));
            progress = true;
        }
        Ok(progress)
    }

    /// Moves available bytes from the transport into the inbox; returns whether any arrived.
    fn receive(&mut self) -> Result<bool, XsError> {
        let mut buf = [0u8; RECV_CHUNK];
        let n = self
            .transport
            .recv(&mut buf)
            .map_err(|e| self.fail(e.into()))?;
        self.inbox.push(&buf[..n.min(RECV_CHUNK)]);
        Ok(n > 0)
    }

    fn next_message(&mut self) -> Result<Option<Message>, XsError> {
        self.inbox.pop().map_err(|e| self.fail(e.into()))
    }

    fn wait(&mut self, deadline: Instant) -> Result<Wake, XsError> {
        self.transport
            .wait(deadline)
            .map_err(|e| self.fail(e.into()))
    }

    /// Marks the connection unusable and passes the error on.
    fn fail(&mut self, error: XsError) -> XsError {
        self.broken = true;
        error
    }
}
