//! The connection layer driven by xenbus's real `XsClient` over a fake shared page.
#![allow(
    clippy::arithmetic_side_effects,
    reason = "test arithmetic on small known offsets and counts"
)]

use super::*;
use std::cell::RefCell;
use std::rc::Rc;
use xenbus::Instant;
use xenbus::xenstore::ring::{RingEvents, RingTransport, XenstoreRing};
use xenbus::xenstore::{TxId, Wake, XsClient, XsErrno, XsError, XsdError};

/// The shared page: both sides hold it.
#[derive(Clone)]
struct Page(Rc<RefCell<Vec<u8>>>);

impl Page {
    fn new() -> Self {
        Self(Rc::new(RefCell::new(vec![0; 4096])))
    }
    fn u32_at(&self, off: usize) -> u32 {
        u32::from_le_bytes(self.0.borrow()[off..off + 4].try_into().unwrap())
    }
    fn set_u32(&self, off: usize, v: u32) {
        self.0.borrow_mut()[off..off + 4].copy_from_slice(&v.to_le_bytes());
    }
}

impl StorePage for Page {
    fn load_u32(&self, off: usize) -> u32 {
        self.u32_at(off)
    }
    fn store_u32(&mut self, off: usize, value: u32) {
        self.set_u32(off, value);
    }
    fn load_u8(&self, off: usize) -> u8 {
        self.0.borrow()[off]
    }
    fn store_u8(&mut self, off: usize, value: u8) {
        self.0.borrow_mut()[off] = value;
    }
}

/// The guest's view of the same page, as xenbus's ring accessor.
impl XenstoreRing for Page {
    fn req_cons(&self) -> u32 {
        self.u32_at(REQ_CONS)
    }
    fn req_prod(&self) -> u32 {
        self.u32_at(REQ_PROD)
    }
    fn set_req_prod(&self, value: u32) {
        self.set_u32(REQ_PROD, value);
    }
    fn rsp_cons(&self) -> u32 {
        self.u32_at(RSP_CONS)
    }
    fn set_rsp_cons(&self, value: u32) {
        self.set_u32(RSP_CONS, value);
    }
    fn rsp_prod(&self) -> u32 {
        self.u32_at(RSP_PROD)
    }
    fn write_req(&self, offset: usize, data: &[u8]) {
        self.0.borrow_mut()[REQ + offset..REQ + offset + data.len()].copy_from_slice(data);
    }
    fn read_rsp(&self, offset: usize, buf: &mut [u8]) {
        buf.copy_from_slice(&self.0.borrow()[RSP + offset..RSP + offset + buf.len()]);
    }
}

/// The server side: the store, the domain's connection, and how often it notified.
struct Server {
    store: Store,
    conn: XsConnection,
    page: Page,
    notifies: u32,
    memory_low: bool,
}

impl Server {
    fn run(&mut self) {
        let mut page = self.page.clone();
        let low = self.memory_low;
        if self.conn.service(&mut self.store, &mut page, &|| low) {
            self.notifies += 1;
        }
    }
}

/// The guest's events: a notification or a wait runs the server (one thread).
/// What a test's server side does when the client notifies or waits: serve what is pending.
trait Pump {
    fn run(&mut self);
}

impl Pump for Server {
    fn run(&mut self) {
        Server::run(self);
    }
}

/// The client's events: every notification and wait runs the server side `S`; time moves
/// 1 us a look.
struct Events<S>(Rc<RefCell<S>>, u64);

impl<S: Pump> RingEvents for Events<S> {
    fn notify(&mut self) {
        self.0.borrow_mut().run();
    }
    fn now(&mut self) -> Instant {
        self.1 += 1_000;
        Instant::from_nanos(self.1)
    }
    fn wait(&mut self, deadline: Instant) -> Wake {
        self.0.borrow_mut().run();
        if self.now() > deadline {
            Wake::TimedOut
        } else {
            Wake::Ready
        }
    }
}

type Client = XsClient<RingTransport<Page, Events<Server>>>;

/// Writes one request into the ring by hand (as a guest would), bypassing the client so it
/// does not drain the reply.
fn raw_request(page: &Page, type_: u32, req_id: u32, payload: &[u8]) {
    let h = XsdSockmsg {
        type_,
        req_id,
        tx_id: 0,
        len: u32::try_from(payload.len()).unwrap(),
    };
    let mut msg = h.to_bytes().to_vec();
    msg.extend_from_slice(payload);
    xenbus::xenstore::ring::ring_write(page, &msg).unwrap();
}

const DEADLINE: Instant = Instant::from_nanos(1_000_000_000);

fn setup(domid: Domid) -> (Client, Rc<RefCell<Server>>) {
    let mut store = Store::new();
    store.introduce(domid);
    let home = Store::home(domid);
    store.mkdir(&home).unwrap();
    store
        .set_perms(
            &home,
            vec![xenstored::Perm {
                domid,
                access: xenstored::Access::None,
            }],
        )
        .unwrap();
    let page = Page::new();
    let conn = XsConnection::new(domid);
    conn.init_page(&mut page.clone());
    let server = Rc::new(RefCell::new(Server {
        store,
        conn,
        page: page.clone(),
        notifies: 0,
        memory_low: false,
    }));
    let client = XsClient::new(RingTransport::new(page, Events(server.clone(), 0)));
    (client, server)
}

#[test]
fn page_starts_connected_with_xen_4_17_features() {
    let (_c, s) = setup(1);
    let p = s.borrow().page.clone();
    assert_eq!(p.u32_at(FEATURES), 3);
    assert_eq!(p.u32_at(CONNECTION), XENSTORE_CONNECTED);
    assert_eq!(p.u32_at(ERROR), XENSTORE_ERROR_NONE);
}

#[test]
fn client_reads_writes_and_gets_errors_by_name() {
    let (mut c, s) = setup(1);
    c.write(TxId::NONE, "data/k", "v", DEADLINE).unwrap();
    assert_eq!(c.read(TxId::NONE, "data/k", DEADLINE).unwrap(), "v");
    assert_eq!(
        s.borrow().store.read("/local/domain/1/data/k").as_deref(),
        Some(&b"v"[..])
    );
    assert_eq!(
        c.read(TxId::NONE, "data/missing", DEADLINE),
        Err(XsError::Server(XsErrno::Known(XsdError::Enoent)))
    );
    s.borrow_mut().store.mkdir("/local/domain/0").unwrap();
    assert_eq!(
        c.write(TxId::NONE, "/local/domain/0/x", "y", DEADLINE),
        Err(XsError::Server(XsErrno::Known(XsdError::Eacces)))
    );
    assert!(s.borrow().notifies > 0);
    assert_eq!(s.borrow().conn.stats.requests, 4);
}

#[test]
fn large_values_cross_the_ring_both_ways() {
    let (mut c, _s) = setup(1);
    // 2000 bytes: more than one ring (1024 bytes) in each direction, so both sides wrap and
    // wait, and below the entry-size quota (a node record under 2048 bytes).
    let big: String = (0..2000usize)
        .map(|i| char::from(b"abcdefghijklmnopqrstuvwxyz"[i % 26]))
        .collect();
    for round in 0..3 {
        let key = format!("data/big{round}");
        c.write(TxId::NONE, &key, &big, DEADLINE).unwrap();
        assert_eq!(c.read(TxId::NONE, &key, DEADLINE).unwrap(), big);
    }
}

#[test]
fn watch_events_follow_the_reply() {
    let (mut c, s) = setup(1);
    c.watch("data/w", "tok", DEADLINE).unwrap();
    let first = c.wait_event_for("tok", DEADLINE).unwrap();
    assert_eq!(
        (first.path.as_str(), first.token.as_str()),
        ("data/w", "tok")
    );
    c.write(TxId::NONE, "data/w", "1", DEADLINE).unwrap();
    let ev = c.wait_event_for("tok", DEADLINE).unwrap();
    assert_eq!(ev.path, "data/w");
    // A write by the toolstack (domain 0) reaches the guest with its next service.
    s.borrow_mut()
        .store
        .write("/local/domain/1/data/w", b"2")
        .unwrap();
    let ev = c.wait_event_for("tok", DEADLINE).unwrap();
    assert_eq!(ev.path, "data/w");
    assert!(s.borrow().conn.stats.events >= 3);
}

#[test]
fn events_beyond_the_bound_are_dropped_and_counted() {
    let (mut c, s) = setup(1);
    let token = "t".repeat(1000);
    c.watch("data", &token, DEADLINE).unwrap();
    // The guest stops reading: the server's queue fills with events.
    for i in 0..200 {
        s.borrow_mut()
            .store
            .write(&format!("/local/domain/1/data/k{i}"), b"x")
            .unwrap();
    }
    // One request from the guest written by hand, so the client does not drain the ring.
    let page = s.borrow().page.clone();
    raw_request(&page, abi::io::xs_wire::XS_GET_DOMAIN_PATH, 99, b"1\0");
    s.borrow_mut().run();
    let srv = s.borrow();
    assert!(srv.conn.stats.events_dropped > 0, "{:?}", srv.conn.stats);
    assert!(srv.conn.queued_bytes() <= MAX_QUEUED_BYTES);
}

#[test]
fn lying_indexes_and_long_payloads_stop_the_connection() {
    let (_c, s) = setup(1);
    let page = s.borrow().page.clone();
    page.set_u32(REQ_PROD, 5000);
    s.borrow_mut().run();
    assert_eq!(s.borrow().conn.failed(), Some(ConnError::RingIndexes));
    assert_eq!(page.u32_at(ERROR), XENSTORE_ERROR_RINGIDX);
    // The guest asks to reconnect: indexes reset, error cleared, served again.
    page.set_u32(CONNECTION, XENSTORE_RECONNECT);
    s.borrow_mut().run();
    assert_eq!(page.u32_at(CONNECTION), XENSTORE_CONNECTED);
    assert_eq!(page.u32_at(ERROR), XENSTORE_ERROR_NONE);
    assert_eq!(page.u32_at(REQ_PROD), 0);
    assert_eq!(s.borrow().conn.failed(), None);

    let h = XsdSockmsg {
        type_: abi::io::xs_wire::XS_READ,
        req_id: 1,
        tx_id: 0,
        len: 4096,
    };
    let mut bytes = h.to_bytes();
    bytes[12..].copy_from_slice(&4097u32.to_le_bytes());
    xenbus::xenstore::ring::ring_write(&page, &bytes).unwrap();
    s.borrow_mut().run();
    assert_eq!(s.borrow().conn.failed(), Some(ConnError::PayloadTooLong));
    assert_eq!(page.u32_at(ERROR), XENSTORE_ERROR_PROTO);
}

#[test]
fn low_memory_refuses_requests_with_enomem() {
    let (mut c, s) = setup(1);
    s.borrow_mut().memory_low = true;
    assert_eq!(
        c.write(TxId::NONE, "data/k", "v", DEADLINE),
        Err(XsError::Server(XsErrno::Known(XsdError::Enomem)))
    );
    assert_eq!(s.borrow().store.read("/local/domain/1/data/k"), None);
    s.borrow_mut().memory_low = false;
    c.write(TxId::NONE, "data/k", "v", DEADLINE).unwrap();
}

/// Two domains' connections over one store, as hv will serve several domains.
struct Both {
    store: Store,
    conns: Vec<(XsConnection, Page)>,
}

impl Both {
    fn run(&mut self) {
        for (conn, page) in &mut self.conns {
            let mut page = page.clone();
            conn.service(&mut self.store, &mut page, &|| false);
        }
    }
}

impl Pump for Both {
    fn run(&mut self) {
        Both::run(self);
    }
}

type BothClient = XsClient<RingTransport<Page, Events<Both>>>;

/// Domains 1 and 2, each owning its home, each with a client.
fn setup_two() -> (BothClient, BothClient, Rc<RefCell<Both>>) {
    let mut store = Store::new();
    let mut conns = Vec::new();
    for domid in [1, 2] {
        store.introduce(domid);
        let home = Store::home(domid);
        store.mkdir(&home).unwrap();
        let owner = xenstored::Perm {
            domid,
            access: xenstored::Access::None,
        };
        store.set_perms(&home, vec![owner]).unwrap();
        let page = Page::new();
        let conn = XsConnection::new(domid);
        conn.init_page(&mut page.clone());
        conns.push((conn, page));
    }
    let pages: Vec<Page> = conns.iter().map(|(_, p)| p.clone()).collect();
    let both = Rc::new(RefCell::new(Both { store, conns }));
    let client =
        |page: &Page| XsClient::new(RingTransport::new(page.clone(), Events(both.clone(), 0)));
    (client(&pages[0]), client(&pages[1]), both)
}

fn server_errno(e: XsError) -> XsdError {
    match e {
        XsError::Server(XsErrno::Known(errno)) => errno,
        other => panic!("not a server error: {other:?}"),
    }
}

#[test]
fn a_domain_at_its_quotas_gets_c_errnos_and_everyone_keeps_working() {
    let (mut one, mut two, both) = setup_two();
    // What a hostile guest sent: 1,300 permissions, a value of 4,000 bytes, a write 1,000
    // levels deep; each refused before anything is stored.
    one.write(TxId::NONE, "data/p", "", DEADLINE).unwrap();
    let mut payload = b"data/p\0n1\0".to_vec();
    for i in 0..1300 {
        payload.extend_from_slice(format!("r{}\0", i % 7 + 1).as_bytes());
    }
    let e = one.request(
        abi::io::xs_wire::XS_SET_PERMS,
        TxId::NONE,
        &[&payload],
        DEADLINE,
    );
    assert_eq!(server_errno(e.unwrap_err()), XsdError::Enospc);
    let e = one.write(TxId::NONE, "data/big", &"x".repeat(4000), DEADLINE);
    assert_eq!(server_errno(e.unwrap_err()), XsdError::Enospc);
    let deep = vec!["a"; 1000].join("/");
    let e = one.write(TxId::NONE, &deep, "", DEADLINE);
    assert_eq!(server_errno(e.unwrap_err()), XsdError::Enospc);
    // Fill the node quota.
    let mut refused = None;
    for i in 0..1100 {
        if let Err(e) = one.write(
            TxId::NONE,
            &format!("d{}/n{}", i / 100, i % 100),
            "",
            DEADLINE,
        ) {
            refused = Some(server_errno(e));
            break;
        }
    }
    assert_eq!(refused, Some(XsdError::Enospc));
    assert_eq!(both.borrow().store.entries(1), 1000);
    // Its own reads and deletes work; so does domain 2.
    assert_eq!(one.read(TxId::NONE, "d0/n0", DEADLINE).unwrap(), "");
    one.rm(TxId::NONE, "d0", DEADLINE).unwrap();
    two.write(TxId::NONE, "data/k", "v", DEADLINE).unwrap();
    assert_eq!(two.read(TxId::NONE, "data/k", DEADLINE).unwrap(), "v");
    one.write(TxId::NONE, "d0/again", "", DEADLINE).unwrap();
}

#[test]
fn the_memory_quota_answers_eio_and_other_domains_keep_working() {
    let (mut one, mut two, both) = setup_two();
    let top = "x".repeat(1200);
    let value = "v".repeat(2000);
    let mut refused = None;
    'fill: for d in 0..40 {
        for n in 0..40 {
            let path = format!("{top}/d{d:038}/n{n:038}");
            if let Err(e) = one.write(TxId::NONE, &path, &value, DEADLINE) {
                refused = Some(server_errno(e));
                break 'fill;
            }
        }
    }
    assert_eq!(refused, Some(XsdError::Eio));
    assert!(both.borrow().store.memory(1) < xenstored::quota::MEMORY_HARD);
    let first = format!("{top}/d{:038}/n{:038}", 0, 0);
    assert_eq!(one.read(TxId::NONE, &first, DEADLINE).unwrap(), value);
    two.write(TxId::NONE, "data/k", &value, DEADLINE).unwrap();
    one.rm(TxId::NONE, &top, DEADLINE).unwrap();
    one.write(TxId::NONE, "data/k", &value, DEADLINE).unwrap();
}

#[test]
fn twenty_outstanding_replies_stop_reading_requests() {
    let (mut c, s) = setup(1);
    c.write(TxId::NONE, "data/v", &"v".repeat(2000), DEADLINE)
        .unwrap();
    // 25 reads of the 2000-byte value written by hand; the guest reads no reply.
    let page = s.borrow().page.clone();
    let mut msg = Vec::new();
    for i in 0..25 {
        let h = XsdSockmsg {
            type_: abi::io::xs_wire::XS_READ,
            req_id: 100 + i,
            tx_id: 0,
            len: 7,
        };
        msg.extend_from_slice(&h.to_bytes());
        msg.extend_from_slice(b"data/v\0");
    }
    assert_eq!(
        xenbus::xenstore::ring::ring_write(&page, &msg).unwrap(),
        msg.len()
    );
    let before = s.borrow().conn.stats.requests;
    s.borrow_mut().run();
    let srv = s.borrow();
    assert_eq!(srv.conn.stats.requests - before, 20);
    assert_eq!(
        srv.conn.outstanding(),
        xenstored::quota::REQUESTS_OUTSTANDING
    );
    assert!(srv.conn.stats.stalls > 0);
    assert_ne!(page.u32_at(REQ_CONS), page.u32_at(REQ_PROD));
}

#[test]
fn a_domain_over_its_hard_memory_quota_is_not_read_until_below() {
    let (_c, s) = setup(1);
    let top = "x".repeat(1200);
    let leaf = |d: usize, n: usize| format!("{top}/d{d:038}/n{n:038}");
    let payload = |path: &str, value: &[u8]| {
        let mut p = path.as_bytes().to_vec();
        p.push(0);
        p.extend_from_slice(value);
        p
    };
    {
        let store = &mut s.borrow_mut().store;
        'fill: for d in 0..40 {
            for n in 0..40 {
                let w = payload(&leaf(d, n), &[b'v'; 2000]);
                if store.handle(1, abi::io::xs_wire::XS_WRITE, 0, &w).is_err() {
                    break 'fill;
                }
            }
        }
        // Reads inside a transaction are charged without a check, as in C.
        let tx = store
            .handle(1, abi::io::xs_wire::XS_TRANSACTION_START, 0, b"\0")
            .unwrap();
        assert_eq!(tx, b"1\0");
        let mut n = 0;
        while !store.memory_hard_exceeded(1) {
            // The copy is charged even when the reply is refused (ENOMEM, as in C).
            let read = &payload(&leaf(0, n), b"")[..leaf(0, n).len() + 1];
            let reply = store.handle(1, abi::io::xs_wire::XS_READ, 1, read);
            assert!(matches!(reply, Ok(_) | Err(XsdError::Enomem)), "{reply:?}");
            n += 1;
        }
    }
    let page = s.borrow().page.clone();
    raw_request(&page, abi::io::xs_wire::XS_GET_DOMAIN_PATH, 7, b"1\0");
    let before = s.borrow().conn.stats.requests;
    s.borrow_mut().run();
    assert_eq!(s.borrow().conn.stats.requests, before);
    assert!(s.borrow().conn.stats.stalls > 0);
    // Below the quota again (the transaction ends), the request is answered.
    s.borrow_mut()
        .store
        .handle(1, abi::io::xs_wire::XS_TRANSACTION_END, 1, b"F\0")
        .unwrap();
    s.borrow_mut().run();
    assert_eq!(s.borrow().conn.stats.requests, before + 1);
    assert_eq!(page.u32_at(REQ_CONS), page.u32_at(REQ_PROD));
}

proptest::proptest! {
    /// Whatever the guest puts in the page, serving it neither panics nor queues beyond the
    /// bound.
    #[test]
    fn any_page_is_served_safely(bytes in proptest::collection::vec(proptest::num::u8::ANY, 4096)) {
        let mut store = Store::new();
        store.introduce(1);
        let mut page = Page(Rc::new(RefCell::new(bytes)));
        page.set_u32(CONNECTION, XENSTORE_CONNECTED);
        let mut conn = XsConnection::new(1);
        conn.service(&mut store, &mut page, &|| false);
        conn.service(&mut store, &mut page, &|| false);
        proptest::prop_assert!(conn.queued_bytes() <= MAX_QUEUED_BYTES);
    }
}

/// Domain 0 and domains 1 and 2 as the toolstack writes them, in one store, each domU with
/// its own connection and page (set up, nothing served yet).
fn toolstack_two() -> (Store, [(XsConnection, Page); 2]) {
    use crate::dom0::toolstack::{self, Ring};
    let mut store = Store::new();
    toolstack::write_dom0(&mut store).unwrap();
    let conns = [1, 2].map(|domid| {
        let uuid = toolstack::uuid_text(&toolstack::domain_uuid(domid));
        let ring = |port, gfn| Ring { port, gfn };
        let info = toolstack::domain_info(
            domid,
            "guest",
            &uuid,
            128,
            ring(1, 0xfeffc),
            ring(2, 0xfefff),
        );
        toolstack::write_domu(&mut store, &info).unwrap();
        let page = Page::new();
        let conn = XsConnection::new(domid);
        conn.init_page(&mut page.clone());
        (conn, page)
    });
    (store, conns)
}

/// The messages in `page`'s response ring from index `from` to its producer, as (type,
/// payload); the guest's consumer index moves there.
fn responses(page: &Page, from: u32) -> Vec<(u32, Vec<u8>)> {
    let prod = page.u32_at(RSP_PROD);
    let bytes: Vec<u8> = (from..prod)
        .map(|i| page.0.borrow()[RSP + (i as usize % XENSTORE_RING_SIZE as usize)])
        .collect();
    page.set_u32(RSP_CONS, prod);
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let h = XsdSockmsg::from_bytes(bytes[at..at + 16].try_into().unwrap()).unwrap();
        let body = bytes[at + 16..at + 16 + h.len as usize].to_vec();
        at += 16 + h.len as usize;
        out.push((h.type_, body));
    }
    out
}

/// Serves `conn` once; whether it asked to notify.
fn serve(store: &mut Store, (conn, page): &mut (XsConnection, Page)) -> bool {
    conn.service(store, &mut page.clone(), &|| false)
}

#[test]
fn a_toolstack_write_reaches_the_watching_domain_with_its_next_service_and_no_other() {
    use abi::io::xs_wire::XS_WATCH;
    let (mut store, [mut one, mut two]) = toolstack_two();
    // Domain 2 watches its shutdown key; domain 1 watches the same node (it may not read it)
    // and its own.
    raw_request(&two.1, XS_WATCH, 1, b"control/shutdown\0s\0");
    raw_request(
        &one.1,
        XS_WATCH,
        1,
        b"/local/domain/2/control/shutdown\0spy\0",
    );
    raw_request(&one.1, XS_WATCH, 2, b"control/shutdown\0own\0");
    assert!(serve(&mut store, &mut two));
    assert!(serve(&mut store, &mut one));
    let two_at = two.1.u32_at(RSP_PROD);
    let one_at = one.1.u32_at(RSP_PROD);
    responses(&two.1, 0);
    responses(&one.1, 0);
    let one_events = one.0.stats.events;

    // The toolstack (domain 0) asks domain 2 to power off.
    store
        .write("/local/domain/2/control/shutdown", b"poweroff")
        .unwrap();
    assert!(!serve(&mut store, &mut one), "nothing for domain 1");
    assert_eq!(one.1.u32_at(RSP_PROD), one_at);
    assert!(serve(&mut store, &mut two));
    assert_eq!(
        responses(&two.1, two_at),
        [(XS_WATCH_EVENT, b"control/shutdown\0s\0".to_vec())]
    );
    assert_eq!(one.0.stats.events, one_events);
}

#[test]
fn deliver_events_writes_queued_events_without_reading_requests() {
    use abi::io::xs_wire::{XS_READ, XS_WATCH};
    let (mut store, [mut one, mut two]) = toolstack_two();
    raw_request(&two.1, XS_WATCH, 1, b"control/shutdown\0s\0");
    assert!(serve(&mut store, &mut two));
    responses(&two.1, 0);
    let at = two.1.u32_at(RSP_PROD);
    // Nothing queued: nothing written, no notification.
    assert!(!two.0.deliver_events(&mut store, &mut two.1.clone()));
    // A request waits in domain 2's ring while domain 1's request causes an event for it:
    // domain 0 writes the key on domain 1's behalf here (domain 1 may not).
    raw_request(&two.1, XS_READ, 2, b"domid\0");
    store
        .write("/local/domain/2/control/shutdown", b"reboot")
        .unwrap();
    let requests = two.0.stats.requests;
    assert!(two.0.deliver_events(&mut store, &mut two.1.clone()));
    assert_eq!(
        responses(&two.1, at),
        [(XS_WATCH_EVENT, b"control/shutdown\0s\0".to_vec())]
    );
    assert_eq!(two.0.stats.requests, requests, "a request was read");
    assert_ne!(two.1.u32_at(REQ_CONS), two.1.u32_at(REQ_PROD));
    assert!(!one.0.deliver_events(&mut store, &mut one.1.clone()));
    assert_eq!(one.1.u32_at(RSP_PROD), 0);
    // The request is answered by the next service.
    assert!(serve(&mut store, &mut two));
    assert_eq!(two.0.stats.requests, requests + 1);

    // A guest asking to reconnect, or a stopped connection, gets nothing.
    store
        .write("/local/domain/2/control/shutdown", b"x")
        .unwrap();
    two.1.set_u32(CONNECTION, XENSTORE_RECONNECT);
    let prod = two.1.u32_at(RSP_PROD);
    assert!(!two.0.deliver_events(&mut store, &mut two.1.clone()));
    assert_eq!(two.1.u32_at(RSP_PROD), prod);
    two.1.set_u32(CONNECTION, XENSTORE_CONNECTED);
    two.1.set_u32(RSP_CONS, prod.wrapping_add(5000));
    assert!(two.0.deliver_events(&mut store, &mut two.1.clone()));
    assert_eq!(two.0.failed(), Some(ConnError::RingIndexes));
    assert_eq!(two.1.u32_at(ERROR), XENSTORE_ERROR_RINGIDX);
    assert!(!two.0.deliver_events(&mut store, &mut two.1.clone()));
}
