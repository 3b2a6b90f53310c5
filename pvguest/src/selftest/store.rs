//! Self-tests (group `platform`) of the xenstore client against the real xenstored: reads of
//! the toolstack's keys, writes under `data/`, transactions, watches and error answers; and
//! the xenbus front-end helper against a device whose backend this guest plays itself.

use alloc::format;
use alloc::string::{String, ToString};
use core::sync::atomic::{AtomicU32, Ordering};

use super::platform::{Test, TestResult};
use crate::xen::time;
use crate::xen::xenstore::{self, Client};
use xenbus::Instant;
use xenbus::frontend::{self, Frontend, XenbusError};
use xenbus::xenstore::{TxId, XsErrno, XsError, XsdError};

/// The tests, in order.
pub const TESTS: &[Test] = &[
    ("xenstore-read-domid", read_domid),
    ("xenstore-read-name", read_name),
    ("xenstore-write-read-rm", write_read_rm),
    ("xenstore-transaction", transaction),
    ("xenstore-watch", watch),
    ("xenstore-enoent", enoent),
    ("xenstore-eacces", eacces),
    ("xenbus-frontend", xenbus_frontend),
];

/// Each test's deadline (for all its operations). Generous: under software emulation on a
/// loaded host, dom0's xenstored can be starved for seconds; a healthy exchange takes
/// about a millisecond.
const TIMEOUT_MS: u64 = 30_000;

/// Our domain id as read by `xenstore-read-domid` (0: not read yet).
static DOMID: AtomicU32 = AtomicU32::new(0);

/// Runs `f` with the client and a deadline [`TIMEOUT_MS`] from now.
fn xs<R>(f: impl FnOnce(&mut Client, Instant) -> Result<R, String>) -> Result<R, String> {
    let deadline = time::deadline_ms(TIMEOUT_MS).map_err(|e| format!("clock: {e:?}"))?;
    xenstore::with(|c| f(c, deadline)).map_err(|e| e.to_string())?
}

fn fail(what: &str, e: XsError) -> String {
    format!("{what}: {e:?}")
}

fn own_domid(c: &mut Client, deadline: Instant) -> Result<u32, String> {
    // A relative path is relative to /local/domain/<domid>, and libxl writes `domid` there.
    let text = c
        .read(TxId::NONE, "domid", deadline)
        .map_err(|e| fail("read domid", e))?;
    xenbus::xenstore::payload::parse_decimal(&text)
        .ok_or_else(|| format!("domid {text:?} is not a number"))
}

fn read_domid() -> TestResult {
    xs(|c, d| {
        let domid = own_domid(c, d)?;
        let home = format!("/local/domain/{domid}/domid");
        let absolute = c.read(TxId::NONE, &home, d).map_err(|e| fail(&home, e))?;
        log::info!("xenstore-read-domid: domid {domid}; {home} = {absolute:?}");
        if domid == 0 || domid >= u32::from(abi::xen::DOMID_FIRST_RESERVED) {
            return Err(format!("domid {domid} is not a domU's"));
        }
        if absolute != domid.to_string() {
            return Err(format!("{home} = {absolute:?}, relative read gave {domid}"));
        }
        DOMID.store(domid, Ordering::Relaxed);
        Ok(())
    })
}

fn read_name() -> TestResult {
    xs(|c, d| {
        let domid = match DOMID.load(Ordering::Relaxed) {
            0 => own_domid(c, d)?,
            id => id,
        };
        let path = format!("/local/domain/{domid}/name");
        let name = c.read(TxId::NONE, &path, d).map_err(|e| fail(&path, e))?;
        // The harnesses name the domain differently (xl configs "pvhtest", "pvguest"), so the
        // name is checked against the toolstack's second copy: libxl also writes it under the
        // domain's `/vm/<uuid>` directory, which `vm` in the home names and the guest may read.
        let vm = c
            .read(TxId::NONE, "vm", d)
            .map_err(|e| fail("read vm", e))?;
        let vm_name_path = format!("{vm}/name");
        let vm_name = c
            .read(TxId::NONE, &vm_name_path, d)
            .map_err(|e| fail(&vm_name_path, e))?;
        log::info!("xenstore-read-name: {path} = {name:?}, {vm_name_path} = {vm_name:?}");
        let plausible = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !plausible {
            return Err(format!("{path} = {name:?}"));
        }
        if !vm.starts_with("/vm/") || vm_name != name {
            return Err(format!(
                "{path} = {name:?} but {vm_name_path} = {vm_name:?}"
            ));
        }
        Ok(())
    })
}

fn write_read_rm() -> TestResult {
    const KEY: &str = "data/pvguest-wrr";
    xs(|c, d| {
        c.write(TxId::NONE, KEY, "hello xenstore", d)
            .map_err(|e| fail("write", e))?;
        let back = c.read(TxId::NONE, KEY, d).map_err(|e| fail("read", e))?;
        if back != "hello xenstore" {
            return Err(format!("read back {back:?}"));
        }
        c.mkdir(TxId::NONE, "data/pvguest-dir", d)
            .map_err(|e| fail("mkdir", e))?;
        let list = c
            .directory(TxId::NONE, "data", d)
            .map_err(|e| fail("directory", e))?;
        if !list.iter().any(|n| n == "pvguest-wrr") || !list.iter().any(|n| n == "pvguest-dir") {
            return Err(format!("data/ lists {list:?}"));
        }
        // The client refuses an oversized payload itself, sends nothing, and stays usable.
        let big = "x".repeat(5000);
        match c.write(TxId::NONE, KEY, &big, d) {
            Err(XsError::PayloadTooLarge { .. }) => {}
            other => return Err(format!("5000-byte write: {other:?}")),
        }
        c.rm(TxId::NONE, KEY, d).map_err(|e| fail("rm", e))?;
        c.rm(TxId::NONE, "data/pvguest-dir", d)
            .map_err(|e| fail("rm dir", e))?;
        match c.read(TxId::NONE, KEY, d) {
            Err(XsError::Server(XsErrno::Known(XsdError::Enoent))) => Ok(()),
            other => Err(format!("read after rm: {other:?}")),
        }
    })
}

fn transaction() -> TestResult {
    const A: &str = "data/pvguest-tx-a";
    const B: &str = "data/pvguest-tx-b";
    xs(|c, d| {
        // Isolation: a write inside is invisible outside until the commit.
        let tx = c.transaction_start(d).map_err(|e| fail("start", e))?;
        c.write(tx, A, "in-tx", d)
            .map_err(|e| fail("write in tx", e))?;
        let inside = c.read(tx, A, d).map_err(|e| fail("read in tx", e))?;
        let outside = c.read_optional(TxId::NONE, A, d);
        c.transaction_end(tx, true, d)
            .map_err(|e| fail("commit", e))?;
        let after = c.read(TxId::NONE, A, d).map_err(|e| fail("read", e))?;
        if inside != "in-tx" || outside != Ok(None) || after != "in-tx" {
            return Err(format!(
                "inside {inside:?}, outside before commit {outside:?}, after {after:?}"
            ));
        }
        // Conflict: the first attempt reads B, B changes outside, the commit answers EAGAIN
        // and the helper runs the body again.
        let mut attempts = 0;
        c.transaction(4, d, |c, tx| {
            attempts += 1;
            let _ = c.read_optional(tx, B, d)?;
            if attempts == 1 {
                c.write(TxId::NONE, B, "outside", d)?;
            }
            c.write(tx, B, "inside", d)
        })
        .map_err(|e| fail("transaction", e))?;
        let b = c.read(TxId::NONE, B, d).map_err(|e| fail("read B", e))?;
        log::info!("xenstore-transaction: conflict resolved in {attempts} attempts; B = {b:?}");
        c.rm(TxId::NONE, A, d).map_err(|e| fail("rm A", e))?;
        c.rm(TxId::NONE, B, d).map_err(|e| fail("rm B", e))?;
        if attempts != 2 || b != "inside" {
            return Err(format!("{attempts} attempts, B = {b:?}"));
        }
        Ok(())
    })
}

fn watch() -> TestResult {
    const KEY: &str = "data/pvguest-watch";
    const TOKEN: &str = "pvguest-watch-token";
    xs(|c, d| {
        c.watch(KEY, TOKEN, d).map_err(|e| fail("watch", e))?;
        // xenstored fires a new watch once at once, whether or not the node exists.
        let first = c
            .wait_event_for(TOKEN, d)
            .map_err(|e| fail("initial event", e))?;
        c.write(TxId::NONE, KEY, "1", d)
            .map_err(|e| fail("write", e))?;
        let fired = c
            .wait_event_for(TOKEN, d)
            .map_err(|e| fail("event after write", e))?;
        c.unwatch(KEY, TOKEN, d).map_err(|e| fail("unwatch", e))?;
        c.write(TxId::NONE, KEY, "2", d)
            .map_err(|e| fail("second write", e))?;
        // After unwatch a change stays silent (the read is a round trip the event would precede).
        let _ = c.read(TxId::NONE, KEY, d).map_err(|e| fail("read", e))?;
        c.poll().map_err(|e| fail("poll", e))?;
        let stray = c.take_event_for(TOKEN);
        c.rm(TxId::NONE, KEY, d).map_err(|e| fail("rm", e))?;
        log::info!("xenstore-watch: initial {first:?}, after write {fired:?}");
        if first.path != KEY || fired.path != KEY {
            return Err(format!("events name {:?} and {:?}", first.path, fired.path));
        }
        if let Some(e) = stray {
            return Err(format!("event after unwatch: {e:?}"));
        }
        Ok(())
    })
}

fn enoent() -> TestResult {
    xs(|c, d| {
        let missing = "data/pvguest-no-such-key";
        match c.read(TxId::NONE, missing, d) {
            Err(XsError::Server(XsErrno::Known(XsdError::Enoent))) => {}
            other => return Err(format!("read {missing}: {other:?}")),
        }
        match c.directory(TxId::NONE, "data/pvguest-no-such-dir", d) {
            Err(XsError::Server(XsErrno::Known(XsdError::Enoent))) => Ok(()),
            other => Err(format!("directory of a missing node: {other:?}")),
        }
    })
}

fn eacces() -> TestResult {
    xs(|c, d| {
        // Domain 0's home belongs to domain 0 with no access for others.
        let path = "/local/domain/0/data/pvguest-intruder";
        match c.write(TxId::NONE, path, "x", d) {
            Err(XsError::Server(XsErrno::Known(XsdError::Eacces))) => Ok(()),
            other => Err(format!("write {path}: {other:?}")),
        }
    })
}

/// Drives [`Frontend`] through discovery and the state machine on real xenstored. There is
/// no real backend (the harness's domain has no devices), so the guest makes a device
/// directory under its own `data/` and plays the backend there by writing `state`.
/// Stock Xen surprised here: libxl makes `/local/domain/<id>/device` read-only for the
/// domain (a write below it is `EACCES`), so the device cannot live under `device/`.
fn xenbus_frontend() -> TestResult {
    const DIR: &str = "data/pvgtest-device";
    const DEV: &str = "data/pvgtest-device/0";
    xs(|c, d| {
        let domid = own_domid(c, d)?;
        let backend = format!("/local/domain/{domid}/data/pvgtest-backend/0");
        let cleanup = |c: &mut Client| {
            let _ = c.rm(TxId::NONE, DIR, d);
            let _ = c.rm(TxId::NONE, "data/pvgtest-backend", d);
        };
        cleanup(c);
        let result = frontend_steps(c, d, DIR, DEV, domid, &backend);
        cleanup(c);
        result
    })?;
    // Not from the toolstack's own devices: this domain has none of class `vif`.
    let vifs =
        xs(|c, d| frontend::enumerate(c, "vif", d).map_err(|e| format!("enumerate vif: {e:?}")))?;
    if !vifs.is_empty() {
        return Err(format!(
            "device/vif lists {vifs:?} but the domain has no vif"
        ));
    }
    Ok(())
}

fn frontend_steps(
    c: &mut Client,
    d: Instant,
    dir: &str,
    dev: &str,
    domid: u32,
    backend: &str,
) -> TestResult {
    use abi::io::xenbus::XenbusState as S;
    let w = |c: &mut Client, path: &str, value: &str| {
        c.write(TxId::NONE, path, value, d)
            .map_err(|e| fail(&format!("write {path}"), e))
    };
    let bstate = format!("{backend}/state");
    // No device yet: discovery waits (on a watch) for `backend-id`/`backend`, until its deadline.
    let t0 = time::now().map_err(|e| format!("clock: {e:?}"))?;
    let short = t0.add_millis(100);
    match Frontend::discover_at(c, dev.to_string(), short) {
        Err(XenbusError::Timeout) => {}
        other => return Err(format!("discover without a device: {other:?}")),
    }
    let t1 = time::now().map_err(|e| format!("clock: {e:?}"))?;
    if t1 < short {
        return Err("discover gave up before its deadline".into());
    }
    w(c, &bstate, S::InitWait.as_str())?;
    w(c, &format!("{dev}/backend"), backend)?;
    w(c, &format!("{dev}/backend-id"), &domid.to_string())?;
    let ids = frontend::enumerate_in(c, dir, d).map_err(|e| format!("enumerate: {e:?}"))?;
    if ids != [0] {
        return Err(format!("enumerate {dir}: {ids:?}"));
    }
    let fe =
        Frontend::discover_at(c, dev.to_string(), d).map_err(|e| format!("discover: {e:?}"))?;
    if fe.backend != backend || u32::from(fe.backend_id.get()) != domid {
        return Err(format!(
            "found backend {:?} in {}",
            fe.backend, fe.backend_id
        ));
    }
    fe.set_state(c, S::Initialised, d)
        .map_err(|e| format!("set_state: {e:?}"))?;
    let ours = c
        .read(TxId::NONE, &format!("{dev}/state"), d)
        .map_err(|e| fail("read our state", e))?;
    let steps = (|| {
        if ours != S::Initialised.as_str() {
            return Err(format!("our state reads {ours:?}"));
        }
        let got = fe.wait_backend_state(c, |s| s == S::InitWait, d);
        if got != Ok(S::InitWait) {
            return Err(format!("waiting for InitWait: {got:?}"));
        }
        w(c, &bstate, S::Connected.as_str())?;
        let got = fe.wait_backend_state(c, |s| s == S::Connected, d);
        if got != Ok(S::Connected) {
            return Err(format!("waiting for Connected: {got:?}"));
        }
        w(c, &bstate, S::Closing.as_str())?;
        let got = fe.wait_backend_state(c, |s| s == S::Connected, d);
        if got != Err(XenbusError::BackendClosing(S::Closing)) {
            return Err(format!("backend Closing: {got:?}"));
        }
        c.rm(TxId::NONE, backend, d)
            .map_err(|e| fail("rm backend", e))?;
        let got = fe.wait_backend_state(c, |s| s == S::Connected, d);
        if got != Err(XenbusError::BackendGone) {
            return Err(format!("backend gone: {got:?}"));
        }
        Ok(())
    })();
    let closed = fe.close(c, d).map_err(|e| format!("close: {e:?}"));
    steps?;
    closed
}
