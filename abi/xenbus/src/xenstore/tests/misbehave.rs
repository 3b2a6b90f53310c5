//! A misbehaving daemon yields typed errors, never panics.

use super::{client, far};
use crate::testing::Misbehave;
use crate::time::Instant;
use crate::xenstore::{
    ProtocolError, TransportError, Wake, XsClient, XsErrno, XsError, XsTransport,
};
use abi::io::xs_wire::{XS_CONTROL, XS_READ, XS_WATCH_EVENT, XsdError, XsdSockmsg};

const NONE: crate::xenstore::TxId = crate::xenstore::TxId::NONE;

fn misbehaving(m: Misbehave) -> XsClient<crate::testing::FakeXenstored> {
    let mut c = client();
    c.write(NONE, "k", "v", far()).unwrap();
    c.transport_mut().misbehave.push_back(m);
    c
}

#[test]
fn wrong_req_id_is_a_typed_error_and_the_connection_survives() {
    let mut c = misbehaving(Misbehave::WrongReqId);
    assert_eq!(
        c.read(NONE, "k", far()),
        Err(XsError::Protocol(ProtocolError::UnexpectedReqId {
            req_id: 1002
        }))
    );
    assert!(!c.is_broken());
    assert_eq!(c.read(NONE, "k", far()).unwrap(), "v");
}

#[test]
fn oversize_reply_breaks_the_connection() {
    let mut c = misbehaving(Misbehave::Oversize);
    assert_eq!(
        c.read(NONE, "k", far()),
        Err(XsError::Protocol(ProtocolError::OversizeReply {
            len: 5000
        }))
    );
    assert!(c.is_broken());
    assert_eq!(c.read(NONE, "k", far()), Err(XsError::Broken));
    assert_eq!(c.poll(), Err(XsError::Broken));
}

#[test]
fn short_garbage_and_truncated_replies_time_out() {
    let mut c = misbehaving(Misbehave::Garbage(vec![0xff; 9]));
    assert_eq!(
        c.read(NONE, "k", Instant::from_nanos(10)),
        Err(XsError::Timeout)
    );
    let mut c = misbehaving(Misbehave::Truncate);
    assert_eq!(
        c.read(NONE, "k", Instant::from_nanos(10)),
        Err(XsError::Timeout)
    );
    // Whatever comes next is misframed; it must still not panic.
    let _ = c.read(NONE, "k", Instant::from_nanos(20));
}

#[test]
fn garbage_header_gives_typed_errors() {
    let mut header = XsdSockmsg {
        type_: 77,
        req_id: 2,
        tx_id: 0,
        len: 0,
    }
    .to_bytes()
    .to_vec();
    let mut c = misbehaving(Misbehave::Garbage(header.clone()));
    assert_eq!(
        c.read(NONE, "k", far()),
        Err(XsError::Protocol(ProtocolError::WrongReplyType {
            expected: XS_READ,
            got: 77
        }))
    );
    header[12..].copy_from_slice(&u32::MAX.to_le_bytes());
    let mut c = misbehaving(Misbehave::Garbage(header));
    assert_eq!(
        c.read(NONE, "k", far()),
        Err(XsError::Protocol(ProtocolError::OversizeReply {
            len: u32::MAX
        }))
    );
}

#[test]
fn error_names_map_and_unknown_ones_are_unknown() {
    for (name, errno) in [
        ("ENOENT", XsErrno::Known(XsdError::Enoent)),
        ("EACCES", XsErrno::Known(XsdError::Eacces)),
        ("EINVAL", XsErrno::Known(XsdError::Einval)),
        ("EAGAIN", XsErrno::Known(XsdError::Eagain)),
        ("EEXIST", XsErrno::Known(XsdError::Eexist)),
        ("EISDIR", XsErrno::Known(XsdError::Eisdir)),
        ("ENOSPC", XsErrno::Known(XsdError::Enospc)),
        ("EIO", XsErrno::Known(XsdError::Eio)),
        ("E2BIG", XsErrno::Known(XsdError::E2big)),
        ("EPERM", XsErrno::Known(XsdError::Eperm)),
        ("EBUSY", XsErrno::Known(XsdError::Ebusy)),
        ("EROFS", XsErrno::Known(XsdError::Erofs)),
        ("ENOSYS", XsErrno::Known(XsdError::Enosys)),
        ("ECONNRESET", XsErrno::Econnreset),
        ("EQUOTA", XsErrno::Unknown),
        ("enoent", XsErrno::Unknown),
    ] {
        let mut c = misbehaving(Misbehave::ErrorName(name));
        assert_eq!(
            c.read(NONE, "k", far()),
            Err(XsError::Server(errno)),
            "{name}"
        );
        if errno != XsErrno::Unknown {
            assert_eq!(errno.name(), name);
        }
    }
    // Every name of the header's table is known.
    for name in abi::io::xs_wire::XSD_ERRORS {
        assert_ne!(
            XsErrno::from_name(name.as_bytes()),
            XsErrno::Unknown,
            "{name}"
        );
    }
}

#[test]
fn wrong_reply_type_is_typed() {
    let mut c = misbehaving(Misbehave::WrongType);
    assert_eq!(
        c.read(NONE, "k", far()),
        Err(XsError::Protocol(ProtocolError::WrongReplyType {
            expected: XS_READ,
            got: XS_CONTROL
        }))
    );
}

#[test]
fn malformed_payloads_are_typed() {
    let mut c = misbehaving(Misbehave::Payload(vec![0xc3, 0x28]));
    assert_eq!(
        c.read(NONE, "k", far()),
        Err(XsError::Protocol(ProtocolError::InvalidUtf8))
    );
    let mut c = misbehaving(Misbehave::Payload(b"NO\0".to_vec()));
    assert_eq!(
        c.write(NONE, "k", "v", far()),
        Err(XsError::Protocol(ProtocolError::MalformedPayload))
    );
    let mut c = misbehaving(Misbehave::Payload(b"0\0".to_vec()));
    assert_eq!(
        c.transaction_start(far()),
        Err(XsError::Protocol(ProtocolError::MalformedPayload))
    );
    let mut c = misbehaving(Misbehave::Payload(b"12x\0".to_vec()));
    assert_eq!(
        c.transaction_start(far()),
        Err(XsError::Protocol(ProtocolError::MalformedPayload))
    );
    let mut c = misbehaving(Misbehave::Payload(b"a\0\0b\0".to_vec()));
    assert_eq!(
        c.directory(NONE, "k", far()),
        Err(XsError::Protocol(ProtocolError::MalformedPayload))
    );
    let mut c = misbehaving(Misbehave::Payload(b"x5\0".to_vec()));
    assert_eq!(
        c.get_perms(NONE, "k", far()),
        Err(XsError::Protocol(ProtocolError::MalformedPayload))
    );
    let mut c = misbehaving(Misbehave::Payload(b"r70000\0".to_vec()));
    assert_eq!(
        c.get_perms(NONE, "k", far()),
        Err(XsError::Protocol(ProtocolError::MalformedPayload))
    );
}

#[test]
fn late_reply_to_a_timed_out_request_is_dropped() {
    let mut c = misbehaving(Misbehave::Silent);
    assert_eq!(
        c.read(NONE, "k", Instant::from_nanos(5)),
        Err(XsError::Timeout)
    );
    let stale = c.transport().requests.last().unwrap().req_id;
    let mut late = XsdSockmsg {
        type_: XS_READ,
        req_id: stale,
        tx_id: 0,
        len: 1,
    }
    .to_bytes()
    .to_vec();
    late.push(b'v');
    c.transport_mut().inject(&late);
    assert_eq!(c.read(NONE, "k", far()).unwrap(), "v");
    assert_eq!(c.stats().stale_replies, 1);
}

#[test]
fn malformed_watch_events_are_dropped_and_counted() {
    let mut c = client();
    let mut bad = XsdSockmsg {
        type_: XS_WATCH_EVENT,
        req_id: 0,
        tx_id: 0,
        len: 2,
    }
    .to_bytes()
    .to_vec();
    bad.extend_from_slice(b"p\0");
    c.transport_mut().inject(&bad);
    c.poll().unwrap();
    assert_eq!(c.take_event(), None);
    assert_eq!(c.stats().malformed_events, 1);
}

#[test]
fn unsolicited_reply_while_idle_is_typed() {
    let mut c = client();
    c.transport_mut().inject(
        &XsdSockmsg {
            type_: XS_READ,
            req_id: 42,
            tx_id: 0,
            len: 0,
        }
        .to_bytes(),
    );
    assert_eq!(
        c.poll(),
        Err(XsError::Protocol(ProtocolError::UnexpectedReqId {
            req_id: 42
        }))
    );
}

/// A transport whose ring indexes went bad.
struct BadRing;

impl XsTransport for BadRing {
    fn send(&mut self, _: &[u8]) -> Result<usize, TransportError> {
        Err(TransportError::BadRingIndexes)
    }
    fn recv(&mut self, _: &mut [u8]) -> Result<usize, TransportError> {
        Err(TransportError::BadRingIndexes)
    }
    fn now(&mut self) -> Instant {
        Instant::from_nanos(0)
    }
    fn wait(&mut self, _: Instant) -> Result<Wake, TransportError> {
        Ok(Wake::Ready)
    }
}

#[test]
fn transport_errors_break_the_connection() {
    let mut c = XsClient::new(BadRing);
    assert_eq!(
        c.read(NONE, "k", far()),
        Err(XsError::Transport(TransportError::BadRingIndexes))
    );
    assert_eq!(c.read(NONE, "k", far()), Err(XsError::Broken));
}

#[test]
fn watch_event_carrying_our_req_id_is_still_an_event() {
    let mut c = client();
    // Request 1 will be the read; an event claiming req_id 1 arrives first.
    let mut ev = XsdSockmsg {
        type_: XS_WATCH_EVENT,
        req_id: 1,
        tx_id: 0,
        len: 4,
    }
    .to_bytes()
    .to_vec();
    ev.extend_from_slice(b"p\0t\0");
    c.transport_mut().inject(&ev);
    c.transport_mut().store.set("/local/domain/5/k", "v");
    assert_eq!(c.read(NONE, "k", far()).unwrap(), "v");
    assert_eq!(c.take_event().unwrap().token, "t");
}

/// A daemon that never stops sending watch events.
struct Flood;

impl XsTransport for Flood {
    fn send(&mut self, data: &[u8]) -> Result<usize, TransportError> {
        Ok(data.len())
    }
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, TransportError> {
        let mut event = XsdSockmsg {
            type_: XS_WATCH_EVENT,
            req_id: 0,
            tx_id: 0,
            len: 4,
        }
        .to_bytes()
        .to_vec();
        event.extend_from_slice(b"p\0t\0");
        for (i, slot) in buf.iter_mut().enumerate() {
            *slot = event[i % event.len()];
        }
        Ok(buf.len() - buf.len() % event.len())
    }
    fn now(&mut self) -> Instant {
        Instant::from_nanos(0)
    }
    fn wait(&mut self, _: Instant) -> Result<Wake, TransportError> {
        Ok(Wake::Ready)
    }
}

#[test]
fn flooding_daemon_cannot_hold_poll_or_grow_the_queue_without_bound() {
    let mut c = XsClient::new(Flood);
    // Each poll reads a bounded amount (64 reads); a few polls overflow the queue, and the
    // dropped events are reported once.
    let polls = (0..100).position(|_| c.poll().is_err());
    assert_eq!(polls, Some(5));
    assert!(c.queued_event_bytes() <= crate::xenstore::client::MAX_QUEUED_EVENT_BYTES);
    let mut queued = 0;
    while c.take_event().is_some() {
        queued += 1;
    }
    // Each event is "p\0t\0": 4 bytes in the queue's accounting.
    assert_eq!(queued, crate::xenstore::client::MAX_QUEUED_EVENT_BYTES / 4);
    assert_eq!(c.queued_event_bytes(), 0);
    assert!(c.stats().events_dropped > 0);
    // Drained, the queue takes events again without loss.
    assert_eq!(c.poll(), Ok(()));
    assert_eq!(c.queued_event_bytes(), 64 * 1020 / 20 * 4);
}
