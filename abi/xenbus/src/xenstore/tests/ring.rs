//! The ring copy code against a fake shared page.

use crate::time::Instant;
use crate::xenstore::ring::{
    RingEvents, RingIndexes, RingTransport, XenstoreRing, ring_read, ring_write,
};
use crate::xenstore::{TransportError, TxId, Wake, XsClient, XsError, XsTransport};
use abi::io::xs_wire::{XS_READ, XsdSockmsg};
use core::cell::{Cell, RefCell};
use proptest::prelude::*;

/// A fake `xenstore_domain_interface`.
struct FakeRing {
    req: RefCell<[u8; 1024]>,
    rsp: RefCell<[u8; 1024]>,
    req_cons: Cell<u32>,
    req_prod: Cell<u32>,
    rsp_cons: Cell<u32>,
    rsp_prod: Cell<u32>,
}

impl FakeRing {
    fn new(start: u32) -> Self {
        Self {
            req: RefCell::new([0; 1024]),
            rsp: RefCell::new([0; 1024]),
            req_cons: Cell::new(start),
            req_prod: Cell::new(start),
            rsp_cons: Cell::new(start),
            rsp_prod: Cell::new(start),
        }
    }

    /// The daemon consuming up to `max` request bytes.
    fn server_take(&self, max: usize) -> Vec<u8> {
        let mut out = Vec::new();
        while out.len() < max && self.req_cons.get() != self.req_prod.get() {
            let c = self.req_cons.get();
            out.push(self.req.borrow()[(c & 1023) as usize]);
            self.req_cons.set(c.wrapping_add(1));
        }
        out
    }

    /// The daemon producing response bytes (as many as fit).
    fn server_put(&self, data: &[u8]) -> usize {
        let mut n = 0;
        for &b in data {
            let p = self.rsp_prod.get();
            if p.wrapping_sub(self.rsp_cons.get()) >= 1024 {
                break;
            }
            self.rsp.borrow_mut()[(p & 1023) as usize] = b;
            self.rsp_prod.set(p.wrapping_add(1));
            n += 1;
        }
        n
    }
}

impl XenstoreRing for FakeRing {
    fn req_cons(&self) -> u32 {
        self.req_cons.get()
    }
    fn req_prod(&self) -> u32 {
        self.req_prod.get()
    }
    fn set_req_prod(&self, value: u32) {
        self.req_prod.set(value);
    }
    fn rsp_cons(&self) -> u32 {
        self.rsp_cons.get()
    }
    fn set_rsp_cons(&self, value: u32) {
        self.rsp_cons.set(value);
    }
    fn rsp_prod(&self) -> u32 {
        self.rsp_prod.get()
    }
    fn write_req(&self, offset: usize, data: &[u8]) {
        self.req.borrow_mut()[offset..offset + data.len()].copy_from_slice(data);
    }
    fn read_rsp(&self, offset: usize, buf: &mut [u8]) {
        buf.copy_from_slice(&self.rsp.borrow()[offset..offset + buf.len()]);
    }
}

#[test]
fn write_wraps_around_the_ring_end() {
    let r = FakeRing::new(1020);
    assert_eq!(ring_write(&r, b"0123456789"), Ok(10));
    assert_eq!(&r.req.borrow()[1020..], b"0123");
    assert_eq!(&r.req.borrow()[..6], b"456789");
    assert_eq!(r.req_prod.get(), 1030);
    assert_eq!(r.server_take(100), b"0123456789");
}

#[test]
fn full_ring_accepts_nothing_and_partial_fits() {
    let r = FakeRing::new(0);
    assert_eq!(ring_write(&r, &[1; 1000]), Ok(1000));
    assert_eq!(ring_write(&r, &[2; 100]), Ok(24));
    assert_eq!(ring_write(&r, &[3; 1]), Ok(0));
    assert_eq!(ring_read(&r, &mut [0; 8]), Ok(0));
}

#[test]
fn indexes_wrap_at_u32_max() {
    let r = FakeRing::new(u32::MAX - 2);
    assert_eq!(ring_write(&r, b"abcdef"), Ok(6));
    assert_eq!(r.req_prod.get(), 3);
    assert_eq!(r.server_take(10), b"abcdef");
    assert_eq!(r.server_put(b"xyz123"), 6);
    let mut buf = [0; 16];
    assert_eq!(ring_read(&r, &mut buf), Ok(6));
    assert_eq!(&buf[..6], b"xyz123");
    assert_eq!(r.rsp_cons.get(), 3);
}

#[test]
fn impossible_indexes_are_refused() {
    let r = FakeRing::new(0);
    r.req_prod.set(1025);
    assert_eq!(ring_write(&r, b"x"), Err(TransportError::BadRingIndexes));
    r.rsp_prod.set(2000);
    assert_eq!(
        ring_read(&r, &mut [0; 4]),
        Err(TransportError::BadRingIndexes)
    );
    // A consumer ahead of the producer is just as impossible.
    r.rsp_prod.set(0);
    r.rsp_cons.set(5);
    assert_eq!(
        ring_read(&r, &mut [0; 4]),
        Err(TransportError::BadRingIndexes)
    );
}

#[derive(Default)]
struct CountingEvents {
    notifies: usize,
}

impl RingEvents for CountingEvents {
    fn notify(&mut self) {
        self.notifies += 1;
    }
    fn now(&mut self) -> Instant {
        Instant::from_nanos(0)
    }
    fn wait(&mut self, _: Instant) -> Wake {
        Wake::TimedOut
    }
}

/// Events that never fire, recording what the transport reports at a request timeout.
#[derive(Default)]
struct RecordingEvents {
    timed_out: Vec<(RingIndexes, u32, u32, usize)>,
}

impl RingEvents for RecordingEvents {
    fn notify(&mut self) {}
    fn now(&mut self) -> Instant {
        Instant::from_nanos(0)
    }
    fn wait(&mut self, _: Instant) -> Wake {
        Wake::TimedOut
    }
    fn request_timed_out(&mut self, ix: RingIndexes, type_: u32, req_id: u32, inbox: usize) {
        self.timed_out.push((ix, type_, req_id, inbox));
    }
}

#[test]
fn a_request_timeout_reports_the_ring_and_the_request() {
    let transport = RingTransport::new(FakeRing::new(0), RecordingEvents::default());
    let mut c = XsClient::new(transport);
    let deadline = Instant::from_nanos(1);
    // The daemon never takes the request: req_cons stays behind req_prod.
    assert_eq!(c.read(TxId::NONE, "a", deadline), Err(XsError::Timeout));
    let sent = u32::try_from(XsdSockmsg::SIZE + 2).expect("a short request");
    let idle = RingIndexes {
        req_cons: 0,
        req_prod: sent,
        rsp_cons: 0,
        rsp_prod: 0,
    };
    assert_eq!(
        c.transport_mut().events_mut().timed_out,
        [(idle, XS_READ, 1, 0)]
    );
    // The daemon takes the next request and answers with a header only: the report counts
    // the 16 bytes that arrived and names the second request.
    let ring = c.transport().ring();
    ring.server_take(usize::MAX);
    let header = XsdSockmsg {
        type_: XS_READ,
        req_id: 2,
        tx_id: 0,
        len: 5,
    };
    assert_eq!(c.read(TxId::NONE, "b", deadline), Err(XsError::Timeout));
    c.transport().ring().server_take(usize::MAX);
    c.transport().ring().server_put(&header.to_bytes());
    assert_eq!(c.read(TxId::NONE, "c", deadline), Err(XsError::Timeout));
    let reports = &c.transport_mut().events_mut().timed_out;
    assert_eq!(reports.len(), 3);
    let (ix, type_, req_id, inbox) = reports[2];
    assert_eq!((type_, req_id, inbox), (XS_READ, 3, 16));
    assert_eq!((ix.req_cons, ix.req_prod), (2 * sent, 3 * sent));
    assert_eq!((ix.rsp_cons, ix.rsp_prod), (16, 16));
}

#[test]
fn ring_transport_notifies_only_on_progress() {
    let mut t = RingTransport::new(FakeRing::new(0), CountingEvents::default());
    assert_eq!(t.recv(&mut [0; 4]), Ok(0));
    assert_eq!(t.events_mut().notifies, 0);
    assert_eq!(t.send(b"hi"), Ok(2));
    assert_eq!(t.events_mut().notifies, 1);
    t.ring().server_put(b"ok");
    assert_eq!(t.recv(&mut [0; 4]), Ok(2));
    assert_eq!(t.events_mut().notifies, 2);
    assert_eq!(t.wait(Instant::from_nanos(1)), Ok(Wake::TimedOut));
}

proptest! {
    /// Bytes written in arbitrary pieces against a daemon consuming arbitrary amounts arrive
    /// intact and in order, from any starting index.
    #[test]
    fn stream_survives_arbitrary_chunking(
        start in any::<u32>(),
        data in proptest::collection::vec(any::<u8>(), 0..5000),
        takes in proptest::collection::vec(1usize..1500, 1..50),
    ) {
        let r = FakeRing::new(start);
        let (mut sent, mut got, mut i) = (0, Vec::new(), 0);
        while got.len() < data.len() {
            sent += ring_write(&r, &data[sent..]).unwrap();
            got.extend(r.server_take(takes[i % takes.len()]));
            i += 1;
        }
        prop_assert_eq!(got, data);
    }

    /// Any index values the daemon writes give a typed result, never a panic or overrun.
    #[test]
    fn arbitrary_indexes_never_panic(cons in any::<u32>(), prod in any::<u32>(), len in 0usize..3000) {
        let r = FakeRing::new(0);
        r.req_cons.set(cons);
        r.req_prod.set(prod);
        r.rsp_cons.set(cons);
        r.rsp_prod.set(prod);
        let valid = prod.wrapping_sub(cons) <= 1024;
        match ring_write(&r, &vec![7; len]) {
            Ok(n) => prop_assert!(valid && n <= len && n <= 1024),
            Err(e) => prop_assert!(!valid && e == TransportError::BadRingIndexes),
        }
        let mut buf = vec![0; len];
        match ring_read(&r, &mut buf) {
            Ok(n) => prop_assert!(valid && n <= len),
            Err(_) => prop_assert!(!valid),
        }
    }
}
