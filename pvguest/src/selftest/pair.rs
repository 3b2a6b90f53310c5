//! Self-test group `pair` (not in `platform`): two domains started together, one with
//! `pair=offer`, one with `pair=accept`, use what Xen gives two domUs between them: a port
//! bound across domains, pages granted, copied and mapped, xenstore nodes one domain makes
//! readable to the other. The test names carry the side (`pair-offer-*`, `pair-accept-*`),
//! so the two domains' lines stay apart when compared with stock Xen's.
//!
//! Both sides read the peer's domain id from `data/peer-domid` in their own xenstore home
//! (the harness or hv's builder writes it before the domains run).
//!
//! - offer: fills a page with [`OFFER_SEED`]'s pattern and grants it to the peer writable,
//!   a second page ([`READONLY_SEED`]) read-only, and a third to domain 0 (a grant not made
//!   for the peer); allocates an unbound port for the peer; writes `data/pair-gref`,
//!   `data/pair-ro-gref`, `data/pair-other-gref` and `data/pair-port` (last) with the
//!   permissions `n<self> r<peer>`; then waits for the peer's event, finds the peer's reply
//!   ([`REPLY_SEED`]) in the writable page, waits for the peer to close its end (its port is
//!   then unbound again, waiting for the peer) and ends its grants (refused while the peer
//!   still maps one).
//! - accept: waits for the offer's keys, binds the port, copies both pages through their
//!   grants (`GNTTABOP_copy`), maps them (`GNTTABOP_map_grant_ref` at a window frame outside
//!   RAM, [`crate::proto::grant_map`]), writes the reply through the writable mapping,
//!   unmaps both, notifies the port and closes it.
//!
//! Xen's refusals are `FACT` lines (errnos and `GNTST_*` codes only; no domain id, port or
//! grant reference, which the platforms number differently): the offer binding the port it
//! allocated for the peer itself (the wrong domain), the accept side copying through the
//! grant made for domain 0 and through a reference the offer never granted, and mapping the
//! read-only grant writable.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use abi::grant_table::{GNTCOPY_SOURCE_GREF, GnttabCopy, GnttabCopyPtr, GnttabCopyPtrU};
use abi::io::xs_wire::{Perm, XS_SET_PERMS};
use abi::xen::DOMID_SELF;

use super::report::Reporter;
use super::run::ConsoleOut;
use crate::cmdline::{Options, PairSide};
use crate::memory::frames::FRAME_SIZE;
use crate::memory::global;
use crate::proto::evtchn::Port;
use crate::proto::grant_map::window_clear_of;
use crate::xen::events::{self, PortStatus};
use crate::xen::grant_map::{self, MapError};
use crate::xen::grant_table;
use crate::xen::hypercall;
use crate::xen::time;
use crate::xen::xenstore::{self, Client};
use xenbus::xenstore::payload::parse_decimal;
use xenbus::xenstore::{TxId, Wake, XsErrno, XsError, XsdError};
use xenbus::{DomId, GrantRef, Instant};

/// The offer side's tests, in order.
pub const TESTS_OFFER: &[&str] = &[
    "pair-offer-publish",
    "pair-offer-event",
    "pair-offer-reply",
    "pair-offer-peer-closed",
    "pair-offer-grants-ended",
];
/// The accept side's tests, in order.
pub const TESTS_ACCEPT: &[&str] = &[
    "pair-accept-connect",
    "pair-accept-copy",
    "pair-accept-map",
    "pair-accept-event",
];

/// Byte `i` of the writable page as the offer fills it is `OFFER_SEED + i` (mod 256).
pub const OFFER_SEED: u8 = 0xa5;
/// ... of the read-only page.
pub const READONLY_SEED: u8 = 0x3c;
/// ... of the page granted to domain 0.
pub const OTHER_SEED: u8 = 0x77;
/// ... of the writable page once the accept side has replied through its mapping.
pub const REPLY_SEED: u8 = 0x5e;

/// The peer's domain id, in this domain's home.
const PEER_KEY: &str = "data/peer-domid";
/// The offer's keys, under its home's `data/`; `pair-port` is written last.
const GREF_KEY: &str = "pair-gref";
const RO_GREF_KEY: &str = "pair-ro-gref";
const OTHER_GREF_KEY: &str = "pair-other-gref";
const PORT_KEY: &str = "pair-port";
/// A reference of the offer's first grant-table frame it never grants (it grants a handful
/// from the bottom).
const UNUSED_GREF: u32 = 300;

/// How long one xenstore operation may take. Generous: under software emulation on a loaded
/// host, dom0's xenstored can be starved for seconds.
const XS_TIMEOUT_MS: u64 = 30_000;
/// How long a side waits for the other (the peer's keys, its event, its close): the other
/// domain boots at the same time and may be slow under software emulation.
const PEER_WAIT_MS: u64 = 60_000;
/// How often the accept side looks for the offer's keys, and the offer at its port's state.
const POLL_MS: u64 = 50;

type TestResult = Result<(), String>;

/// Runs the side `pair=` names (a missing or unknown side is the failed test `pair-side`).
pub fn run(rep: &mut Reporter<'_, ConsoleOut>, opts: &Options<'_>) {
    crate::kernel::ensure_platform();
    match opts.pair_side() {
        Ok(PairSide::Offer) => offer(rep),
        Ok(PairSide::Accept) => accept(rep),
        Err(e) => {
            let _ = rep.record("pair-side", Err(e));
        }
    }
}

// ---- shared ---------------------------------------------------------------------------------

/// Runs `f` with the xenstore client and a deadline [`XS_TIMEOUT_MS`] from now.
fn xs<R>(f: impl FnOnce(&mut Client, Instant) -> Result<R, String>) -> Result<R, String> {
    let deadline = time::deadline_ms(XS_TIMEOUT_MS).map_err(|e| format!("clock: {e:?}"))?;
    xenstore::with(|c| f(c, deadline)).map_err(|e| e.to_string())?
}

fn read_domid(c: &mut Client, path: &str, d: Instant) -> Result<DomId, String> {
    let text = match c.read(TxId::NONE, path, d) {
        Ok(text) => text,
        Err(XsError::Server(XsErrno::Known(XsdError::Enoent))) => {
            return Err(format!(
                "{path} missing: the peer's domain id was not written"
            ));
        }
        Err(e) => return Err(format!("read {path}: {e:?}")),
    };
    parse_decimal(&text)
        .and_then(|n| DomId::try_new(n).ok())
        .ok_or_else(|| format!("{path} = {text:?} is not a domain id"))
}

/// `(own domain id, peer's domain id)`; the peer must be another domU.
fn domids() -> Result<(DomId, DomId), String> {
    let (me, peer) = xs(|c, d| Ok((read_domid(c, "domid", d)?, read_domid(c, PEER_KEY, d)?)))?;
    if peer == me || peer == DomId::ZERO || peer.get() >= abi::xen::DOMID_FIRST_RESERVED {
        return Err(format!(
            "{PEER_KEY} names domain {} (this domain is {})",
            peer.get(),
            me.get()
        ));
    }
    Ok((me, peer))
}

fn fill(paddr: u64, seed: u8) {
    for i in 0..FRAME_SIZE {
        // SAFETY: `paddr` is a whole frame this group took from the allocator, identity
        // mapped, reached only through volatile accesses (the peer may access it too).
        unsafe { core::ptr::write_volatile((paddr + i) as *mut u8, pattern(seed, i)) };
    }
}

/// Byte `i` of `seed`'s pattern.
fn pattern(seed: u8, i: u64) -> u8 {
    seed.wrapping_add((i & 0xff) as u8)
}

/// The first byte of the frame at `paddr` that differs from `seed`'s pattern: `(index, byte)`.
fn first_difference(paddr: u64, seed: u8) -> Option<(u64, u8)> {
    (0..FRAME_SIZE).find_map(|i| {
        // SAFETY: as in `fill`.
        let byte = unsafe { core::ptr::read_volatile((paddr + i) as *const u8) };
        (byte != pattern(seed, i)).then_some((i, byte))
    })
}

/// The first byte of `bytes` that differs from `seed`'s pattern.
fn first_difference_in(bytes: &[u8], seed: u8) -> Option<(usize, u8)> {
    bytes
        .iter()
        .enumerate()
        .find(|&(i, &b)| b != pattern(seed, i as u64))
        .map(|(i, &b)| (i, b))
}

fn frame() -> Result<u64, String> {
    global::allocate_frames(1).map_err(|e| format!("frame: {e:?}"))
}

/// A wait for the peer: `Ok(true)` once `done`, `Ok(false)` at the deadline.
fn poll_until(millis: u64, mut done: impl FnMut() -> Result<bool, String>) -> Result<bool, String> {
    let deadline = time::deadline_ms(millis).map_err(|e| format!("clock: {e:?}"))?;
    loop {
        if done()? {
            return Ok(true);
        }
        if time::now().map_err(|e| format!("clock: {e:?}"))? >= deadline {
            return Ok(false);
        }
        time::sleep_ms(POLL_MS).map_err(|e| format!("sleep: {e}"))?;
    }
}

// ---- offer ----------------------------------------------------------------------------------

/// What the offer side set up for the peer.
struct Offered {
    peer: DomId,
    port: Port,
    rw: (GrantRef, u64),
    ro: (GrantRef, u64),
    other: (GrantRef, u64),
}

fn offer(rep: &mut Reporter<'_, ConsoleOut>) {
    let name = TESTS_OFFER[0];
    let mut facts = Vec::new();
    let offered = publish(&mut facts);
    for (key, value) in &facts {
        let _ = rep.fact(name, key, value);
    }
    let offered = match offered {
        Ok(o) => {
            let _ = rep.record(name, Ok::<(), String>(()));
            o
        }
        // Offered, but not as it should be: the peer may still take it.
        Err((Some(o), e)) => {
            let _ = rep.record(name, Err(e));
            o
        }
        Err((None, e)) => {
            let _ = rep.record(name, Err(e));
            for name in &TESTS_OFFER[1..] {
                let _ = rep.record(name, Err("not run: nothing was offered"));
            }
            return;
        }
    };
    let event = wait_event(&offered);
    let got_event = event.is_ok();
    let _ = rep.record(TESTS_OFFER[1], event);
    let reply = if got_event {
        check_reply(&offered)
    } else {
        Err("no event from the peer: its reply is not awaited".into())
    };
    let _ = rep.record(TESTS_OFFER[2], reply);
    let closed = if got_event {
        peer_closed(&offered)
    } else {
        Err("no event from the peer: its close is not awaited".into())
    };
    let _ = rep.record(TESTS_OFFER[3], closed);
    let _ = rep.record(TESTS_OFFER[4], end_grants(&offered));
}

/// `pair-offer-publish`: grants, the port, the keys with their permissions. A failure after
/// the keys are written (a permission read back wrong, the port bound by this domain) comes
/// with what was offered, so that the other tests still run.
fn publish(facts: &mut Vec<(&'static str, String)>) -> Result<Offered, (Option<Offered>, String)> {
    let (offered, problem) = offer_keys(facts).map_err(|e| (None, e))?;
    match problem {
        None => Ok(offered),
        Some(e) => Err((Some(offered), e)),
    }
}

/// What [`publish`] does: what was offered, and what was wrong with it.
fn offer_keys(
    facts: &mut Vec<(&'static str, String)>,
) -> Result<(Offered, Option<String>), String> {
    let (me, peer) = domids()?;
    let grant = |to: DomId, seed: u8, readonly: bool| -> Result<(GrantRef, u64), String> {
        let paddr = frame()?;
        fill(paddr, seed);
        let gref = grant_table::grant_access(to, paddr / FRAME_SIZE, readonly)
            .map_err(|e| format!("grant: {e:?}"))?;
        Ok((gref, paddr))
    };
    let rw = grant(peer, OFFER_SEED, false)?;
    let ro = grant(peer, READONLY_SEED, true)?;
    let other = grant(DomId::ZERO, OTHER_SEED, true)?;
    let port = events::alloc_unbound(peer.get()).map_err(|e| format!("alloc_unbound: {e}"))?;
    match events::status(port).map_err(|e| format!("status: {e}"))? {
        PortStatus::Unbound { remote } if remote == peer.get() => {}
        other => {
            return Err(format!(
                "new port: {other:?}, expected unbound for the peer"
            ));
        }
    }
    // The port is the peer's to bind: this domain is refused (errno).
    let mut arg = [u32::from(DOMID_SELF), port.get(), 0, 0, 0, 0];
    let bind_own =
        hypercall::evtchn_op_raw(abi::event_channel::EVTCHNOP_BIND_INTERDOMAIN, &mut arg)
            .map_err(|e| format!("bind_interdomain: {e}"))?;
    facts.push(("bind-own-port", format!("{bind_own}")));
    let mut problems = Vec::new();
    if bind_own >= 0 {
        problems.push(format!(
            "binding the port allocated for the peer from this domain succeeded ({bind_own})"
        ));
    }
    events::bind_latch(port).map_err(|e| format!("latch: {e}"))?;
    let keys = [
        (GREF_KEY, rw.0.get()),
        (RO_GREF_KEY, ro.0.get()),
        (OTHER_GREF_KEY, other.0.get()),
        (PORT_KEY, port.get()),
    ];
    let perms = [
        Perm {
            domid: me.get(),
            access: abi::io::xs_wire::Access::None,
        },
        Perm {
            domid: peer.get(),
            access: abi::io::xs_wire::Access::Read,
        },
    ];
    xs(|c, d| {
        for (key, value) in keys {
            let path = format!("data/{key}");
            c.write(TxId::NONE, &path, &value.to_string(), d)
                .map_err(|e| format!("write {path}: {e:?}"))?;
            let payload = format!("{path}\0{}\0{}\0", perms[0], perms[1]);
            c.request(XS_SET_PERMS, TxId::NONE, &[payload.as_bytes()], d)
                .map_err(|e| format!("set_perms {path}: {e:?}"))?;
            let back = c
                .get_perms(TxId::NONE, &path, d)
                .map_err(|e| format!("get_perms {path}: {e:?}"))?;
            if back != perms {
                problems.push(format!("{path}: permissions {back:?}, set {perms:?}"));
            }
        }
        Ok(())
    })?;
    log::info!(
        "pair: offered refs {} (rw), {} (ro), {} (to domain 0) and port {} to domain {}",
        rw.0.get(),
        ro.0.get(),
        other.0.get(),
        port.get(),
        peer.get()
    );
    let offered = Offered {
        peer,
        port,
        rw,
        ro,
        other,
    };
    Ok((offered, (!problems.is_empty()).then(|| problems.join("; "))))
}

/// `pair-offer-event`: the peer's notification arrives.
fn wait_event(o: &Offered) -> TestResult {
    let deadline = time::deadline_ms(PEER_WAIT_MS).map_err(|e| format!("clock: {e:?}"))?;
    match events::wait_port(o.port, deadline).map_err(|e| format!("wait: {e}"))? {
        Wake::Ready => Ok(()),
        Wake::TimedOut => Err(format!(
            "no event on the port within {PEER_WAIT_MS} ms (port state {:?})",
            events::status(o.port)
        )),
    }
}

/// `pair-offer-reply`: the peer's reply in the writable page, the other pages untouched.
fn check_reply(o: &Offered) -> TestResult {
    if let Some((i, b)) = first_difference(o.rw.1, REPLY_SEED) {
        return Err(format!(
            "writable page: byte {i} is {b:#04x}, the reply has {:#04x}",
            pattern(REPLY_SEED, i)
        ));
    }
    for (what, (_, paddr), seed) in [
        ("read-only page", o.ro, READONLY_SEED),
        ("page granted to domain 0", o.other, OTHER_SEED),
    ] {
        if let Some((i, b)) = first_difference(paddr, seed) {
            return Err(format!("{what} changed: byte {i} is {b:#04x}"));
        }
    }
    Ok(())
}

/// `pair-offer-peer-closed` (after the peer's event, so the port was bound): once the peer
/// closed its end, this port waits for the peer again (unbound, remote = the peer), as Xen
/// leaves it; then it is closed.
fn peer_closed(o: &Offered) -> TestResult {
    let mut last = None;
    let closed = poll_until(PEER_WAIT_MS, || {
        let s = events::status(o.port).map_err(|e| format!("status: {e}"))?;
        last = Some(s);
        Ok(matches!(s, PortStatus::Unbound { remote } if remote == o.peer.get()))
    })?;
    let result = if closed {
        Ok(())
    } else {
        Err(format!(
            "after {PEER_WAIT_MS} ms the port is {last:?}, not unbound for the peer"
        ))
    };
    events::close(o.port).map_err(|e| format!("close: {e}"))?;
    result
}

/// `pair-offer-grants-ended`: every grant ends (none is still mapped by the peer).
fn end_grants(o: &Offered) -> TestResult {
    let mut problems = Vec::new();
    for (what, (gref, _)) in [
        ("writable", o.rw),
        ("read-only", o.ro),
        ("domain 0's", o.other),
    ] {
        if let Err(e) = grant_table::end_access(gref) {
            problems.push(format!("{what} grant: {e:?}"));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

// ---- accept ---------------------------------------------------------------------------------

/// What the accept side found of the offer's.
struct Accepted {
    peer: DomId,
    local: Port,
    rw: GrantRef,
    ro: GrantRef,
    other: GrantRef,
}

fn accept(rep: &mut Reporter<'_, ConsoleOut>) {
    let accepted = match connect() {
        Ok(a) => {
            let _ = rep.record(TESTS_ACCEPT[0], Ok::<(), String>(()));
            a
        }
        Err(e) => {
            let _ = rep.record(TESTS_ACCEPT[0], Err(e));
            for name in &TESTS_ACCEPT[1..] {
                let _ = rep.record(name, Err("not run: not connected"));
            }
            return;
        }
    };
    let mut facts = Vec::new();
    let copied = copy(&accepted, &mut facts);
    for (key, value) in &facts {
        let _ = rep.fact(TESTS_ACCEPT[1], key, value);
    }
    let _ = rep.record(TESTS_ACCEPT[1], copied);
    let mut facts = Vec::new();
    let mapped = map(&accepted, &mut facts);
    for (key, value) in &facts {
        let _ = rep.fact(TESTS_ACCEPT[2], key, value);
    }
    let _ = rep.record(TESTS_ACCEPT[2], mapped);
    let _ = rep.record(TESTS_ACCEPT[3], notify(&accepted));
}

/// `pair-accept-connect`: the offer's keys (waited for), the port bound to the offer's.
fn connect() -> Result<Accepted, String> {
    let (_, peer) = domids()?;
    let dir = format!("/local/domain/{}/data", peer.get());
    let port_path = format!("{dir}/{PORT_KEY}");
    let mut last = None;
    let published = poll_until(PEER_WAIT_MS, || {
        xs(|c, d| match c.read(TxId::NONE, &port_path, d) {
            Ok(_) => Ok(true),
            // Not written yet, or written but not yet readable by us.
            Err(e @ XsError::Server(XsErrno::Known(XsdError::Enoent | XsdError::Eacces))) => {
                last = Some(e);
                Ok(false)
            }
            Err(e) => Err(format!("read {port_path}: {e:?}")),
        })
    })?;
    if !published {
        return Err(format!(
            "{port_path} not readable after {PEER_WAIT_MS} ms (last answer {last:?})"
        ));
    }
    let read = |key: &str| {
        let path = format!("{dir}/{key}");
        xs(|c, d| {
            let text = c
                .read(TxId::NONE, &path, d)
                .map_err(|e| format!("read {path}: {e:?}"))?;
            parse_decimal(&text).ok_or_else(|| format!("{path} = {text:?} is not a number"))
        })
    };
    let gref = |key: &str| {
        let n = read(key)?;
        GrantRef::try_new(n).map_err(|e| format!("{key} = {n}: {e:?}"))
    };
    let (rw, ro, other) = (gref(GREF_KEY)?, gref(RO_GREF_KEY)?, gref(OTHER_GREF_KEY)?);
    let n = read(PORT_KEY)?;
    let remote = Port::try_new(n).map_err(|e| format!("{PORT_KEY} = {n}: {e:?}"))?;
    let local = events::bind_interdomain(peer.get(), remote)
        .map_err(|e| format!("bind_interdomain to the offer's port: {e}"))?;
    events::bind_latch(local).map_err(|e| format!("latch: {e}"))?;
    match events::status(local).map_err(|e| format!("status: {e}"))? {
        PortStatus::Interdomain { remote: dom, port } if dom == peer.get() && port == n => {}
        other => return Err(format!("bound port: {other:?}")),
    }
    Ok(Accepted {
        peer,
        local,
        rw,
        ro,
        other,
    })
}

/// Copies the page behind the peer's grant `gref` into frame `dest`; Xen's status.
fn copy_from(peer: DomId, gref: u32, dest: u64) -> Result<i16, String> {
    let mut op = GnttabCopy {
        source: GnttabCopyPtr {
            u: GnttabCopyPtrU { ref_: gref },
            domid: peer.get(),
            offset: 0,
        },
        dest: GnttabCopyPtr {
            u: GnttabCopyPtrU {
                gmfn: dest / FRAME_SIZE,
            },
            domid: DOMID_SELF,
            offset: 0,
        },
        len: FRAME_SIZE as u16,
        flags: GNTCOPY_SOURCE_GREF,
        status: 0,
    };
    // SAFETY: the destination is a frame this group took from the allocator and reaches only
    // through raw volatile accesses.
    unsafe { hypercall::gnttab_copy(&mut op) }.map_err(|e| format!("GNTTABOP_copy: {e}"))?;
    Ok(op.status)
}

/// `pair-accept-copy`: both pages copied through their grants; refusals as facts.
fn copy(a: &Accepted, facts: &mut Vec<(&'static str, String)>) -> TestResult {
    let dest = frame()?;
    // Refused: a grant the offer made for domain 0, and a reference it never granted.
    fill(dest, 0);
    let third = copy_from(a.peer, a.other.get(), dest)?;
    facts.push(("copy-third-domain-grant", format!("{third}")));
    let unused = copy_from(a.peer, UNUSED_GREF, dest)?;
    facts.push(("copy-unused-gref", format!("{unused}")));
    if third == 0 || unused == 0 || first_difference(dest, 0).is_some() {
        return Err(format!(
            "a copy Xen should refuse: grant to domain 0 {third}, unused ref {unused}"
        ));
    }
    for (what, gref, seed) in [
        ("writable", a.rw, OFFER_SEED),
        ("read-only", a.ro, READONLY_SEED),
    ] {
        fill(dest, 0);
        let status = copy_from(a.peer, gref.get(), dest)?;
        if status != 0 {
            return Err(format!("copy through the {what} grant: status {status}"));
        }
        if let Some((i, b)) = first_difference(dest, seed) {
            return Err(format!(
                "copy through the {what} grant: byte {i} is {b:#04x}, expected {:#04x}",
                pattern(seed, i)
            ));
        }
    }
    Ok(())
}

/// Reads the whole mapped page.
fn read_page(m: &grant_map::GrantMapping) -> Result<Vec<u8>, String> {
    let mut page = alloc::vec![0u8; FRAME_SIZE as usize];
    m.read_bytes(0, &mut page)
        .map_err(|e| format!("read through the mapping: {e}"))?;
    Ok(page)
}

/// `pair-accept-map`: the writable grant mapped, checked, replied to and unmapped; the
/// read-only grant mapped read-only, checked and unmapped; mapping it writable refused.
fn map(a: &Accepted, facts: &mut Vec<(&'static str, String)>) -> TestResult {
    let regions = crate::kernel::boot_state()
        .map(|b| {
            b.memory_map()
                .iter()
                .map(|r| (r.base, r.size))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    window_clear_of(regions).map_err(|(base, size)| {
        format!("the memory map's region {base:#x}+{size:#x} reaches into the grant-map window")
    })?;
    let refused = match grant_map::map(a.peer, a.ro, false) {
        Err(MapError::Status(s)) => format!("{s}"),
        Err(e) => return Err(format!("mapping the read-only grant writable: {e}")),
        Ok(m) => {
            let _ = grant_map::unmap(m);
            return Err("mapping the read-only grant writable succeeded".into());
        }
    };
    facts.push(("map-readonly-grant-writable", refused));

    let m = grant_map::map(a.peer, a.rw, false)
        .map_err(|e| format!("mapping the writable grant: {e}"))?;
    let checked = read_page(&m).and_then(|page| {
        if let Some((i, b)) = first_difference_in(&page, OFFER_SEED) {
            return Err(format!(
                "through the mapping at {:#x}: byte {i} is {b:#04x}, expected {:#04x}",
                m.addr(),
                pattern(OFFER_SEED, i as u64)
            ));
        }
        let reply: Vec<u8> = (0..FRAME_SIZE).map(|i| pattern(REPLY_SEED, i)).collect();
        m.write_bytes(0, &reply)
            .map_err(|e| format!("write through the mapping: {e}"))?;
        match read_page(&m)? {
            back if back == reply => Ok(()),
            _ => Err("the reply did not read back through the mapping".into()),
        }
    });
    grant_map::unmap(m).map_err(|(_, e)| format!("unmapping the writable grant: {e}"))?;
    checked?;

    let m = grant_map::map(a.peer, a.ro, true)
        .map_err(|e| format!("mapping the read-only grant read-only: {e}"))?;
    let checked = read_page(&m).and_then(|page| match first_difference_in(&page, READONLY_SEED) {
        None => Ok(()),
        Some((i, b)) => Err(format!("read-only mapping: byte {i} is {b:#04x}")),
    });
    grant_map::unmap(m).map_err(|(_, e)| format!("unmapping the read-only grant: {e}"))?;
    checked
}

/// `pair-accept-event`: the offer notified, then this end closed.
fn notify(a: &Accepted) -> TestResult {
    events::send(a.local).map_err(|e| format!("send: {e}"))?;
    events::close(a.local).map_err(|e| format!("close: {e}"))?;
    match events::status(a.local).map_err(|e| format!("status after close: {e}"))? {
        PortStatus::Closed => Ok(()),
        other => Err(format!("port after close: {other:?}")),
    }
}
