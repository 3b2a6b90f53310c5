//! Tests of the xenbus helpers with the fake xenstored playing toolstack and backend.

use super::*;
use crate::testing::{FakeXenstored, Store};
use crate::xenstore::{Access, Perm, XsdError};

const DOMID: u16 = 5;
const FRONT: &str = "/local/domain/5/device/vif/0";
const BACK: &str = "/local/domain/0/backend/vif/5/0";

fn far() -> Instant {
    Instant::from_nanos(1_000_000_000_000)
}

fn at(nanos: u64) -> Instant {
    Instant::from_nanos(nanos)
}

/// What the toolstack writes before the guest starts, minus what `skip` names.
fn toolstack(s: &mut Store, skip: &[&str]) {
    let mut put = |k: &str, path: String, v: &str| {
        if !skip.contains(&k) {
            s.set(&path, v);
        }
    };
    put("backend-id", format!("{FRONT}/backend-id"), "0");
    put("backend", format!("{FRONT}/backend"), BACK);
    put("bstate", format!("{BACK}/state"), "2");
    s.set(&format!("{FRONT}/state"), "1");
    s.set_perms(
        FRONT,
        vec![
            Perm {
                domid: DOMID,
                access: Access::None,
            },
            Perm {
                domid: 0,
                access: Access::Read,
            },
        ],
    );
    s.set_perms(
        &format!("{FRONT}/state"),
        vec![Perm {
            domid: DOMID,
            access: Access::None,
        }],
    );
    s.set("/local/domain/0/backend", "");
    for p in ["/local/domain/0/backend", BACK, &format!("{BACK}/state")] {
        s.set_perms(
            p,
            vec![
                Perm {
                    domid: 0,
                    access: Access::None,
                },
                Perm {
                    domid: DOMID,
                    access: Access::Read,
                },
            ],
        );
    }
}

fn setup(skip: &[&str]) -> XsClient<FakeXenstored> {
    let mut fake = FakeXenstored::new(DOMID);
    toolstack(&mut fake.store, skip);
    XsClient::new(fake)
}

/// A backend that connects once the frontend says Initialised.
fn connecting_backend(xs: &mut XsClient<FakeXenstored>) {
    xs.transport_mut().on_write = Some(Box::new(|s, path, value| {
        if path == format!("{FRONT}/state") && value == "3" {
            s.set(&format!("{BACK}/state"), "4");
        }
    }));
}

#[test]
fn enumerate_lists_numeric_ids() {
    let mut xs = setup(&[]);
    xs.transport_mut()
        .store
        .set("/local/domain/5/device/vif/2/backend-id", "0");
    xs.transport_mut()
        .store
        .set("/local/domain/5/device/vif/junk", "");
    assert_eq!(enumerate(&mut xs, "vif", far()), Ok(vec![0, 2]));
    assert_eq!(enumerate(&mut xs, "vbd", far()), Ok(vec![]));
}

#[test]
fn a_device_outside_device_is_found_by_path() {
    let mut xs = setup(&[]);
    let dir = "/local/domain/5/data/dev/x/3";
    xs.transport_mut()
        .store
        .set(&format!("{dir}/backend-id"), "0");
    xs.transport_mut()
        .store
        .set(&format!("{dir}/backend"), BACK);
    assert_eq!(enumerate_in(&mut xs, "data/dev/x", far()), Ok(vec![3]));
    let fe = Frontend::discover_at(&mut xs, "data/dev/x/3".into(), far()).unwrap();
    assert_eq!((fe.backend.as_str(), fe.backend_id), (BACK, DomId::ZERO));
    assert_eq!(fe.node("state"), "data/dev/x/3/state");
    assert_eq!(
        fe.wait_backend_state(&mut xs, |s| s == XenbusState::InitWait, far()),
        Ok(XenbusState::InitWait)
    );
    fe.close(&mut xs, far()).unwrap();
}

#[test]
fn full_handshake_with_a_backend() {
    let mut xs = setup(&[]);
    connecting_backend(&mut xs);
    let fe = Frontend::discover(&mut xs, "vif", 0, far()).unwrap();
    assert_eq!((fe.backend.as_str(), fe.backend_id), (BACK, DomId::ZERO));
    assert_eq!(fe.backend_state(&mut xs, far()), Ok(XenbusState::InitWait));
    assert_eq!(
        fe.wait_backend_state(&mut xs, |s| s == XenbusState::InitWait, far()),
        Ok(XenbusState::InitWait)
    );
    fe.set_state(&mut xs, XenbusState::Initialised, far())
        .unwrap();
    assert_eq!(
        fe.wait_backend_state(&mut xs, |s| s == XenbusState::Connected, far()),
        Ok(XenbusState::Connected)
    );
    fe.set_state(&mut xs, XenbusState::Connected, far())
        .unwrap();
    assert_eq!(
        xs.transport()
            .store
            .get(&format!("{FRONT}/state"))
            .as_deref(),
        Some("4")
    );
    fe.close(&mut xs, far()).unwrap();
    assert_eq!(xs.transport().store.watch_count(), 0);
}

#[test]
fn late_backend_values_are_waited_for() {
    let mut xs = setup(&["backend-id", "backend"]);
    xs.transport_mut()
        .at(at(300), |s| s.set(&format!("{FRONT}/backend"), BACK));
    xs.transport_mut()
        .at(at(700), |s| s.set(&format!("{FRONT}/backend-id"), "0"));
    let fe = Frontend::discover(&mut xs, "vif", 0, at(1000)).unwrap();
    assert_eq!(fe.backend, BACK);
    assert_eq!(xs.transport().now, at(700));
}

#[test]
fn missing_backend_times_out_at_the_deadline() {
    let mut xs = setup(&["backend-id"]);
    xs.transport_mut()
        .at(at(5000), |s| s.set(&format!("{FRONT}/backend-id"), "0"));
    assert_eq!(
        Frontend::discover(&mut xs, "vif", 0, at(1000)),
        Err(XenbusError::Timeout)
    );
    assert_eq!(xs.transport().now, at(1000));
}

#[test]
fn malformed_backend_values_are_typed() {
    for (key, value) in [
        ("backend-id", "zero"),
        ("backend-id", "70000"),
        ("backend-id", "32752"),
        ("backend", "relative/path"),
        ("backend", "/"),
    ] {
        let mut xs = setup(&[]);
        xs.transport_mut()
            .store
            .set(&format!("{FRONT}/{key}"), value);
        assert_eq!(
            Frontend::discover(&mut xs, "vif", 0, far()),
            Err(XenbusError::BadValue(key)),
            "{key}={value}"
        );
    }
}

#[test]
fn backend_closing_while_waiting_is_typed() {
    let mut xs = setup(&[]);
    let fe = Frontend::discover(&mut xs, "vif", 0, far()).unwrap();
    xs.transport_mut()
        .at(at(100), |s| s.set(&format!("{BACK}/state"), "5"));
    assert_eq!(
        fe.wait_backend_state(&mut xs, |s| s == XenbusState::Connected, far()),
        Err(XenbusError::BackendClosing(XenbusState::Closing))
    );
    // Waiting for Closing itself is fine.
    assert_eq!(
        fe.wait_backend_state(&mut xs, |s| s == XenbusState::Closing, far()),
        Ok(XenbusState::Closing)
    );
}

/// With the backend's directory gone, reading its state fails with EACCES (C xenstored's
/// `errno_from_parents`: the nearest existing ancestor is not readable by the guest), or
/// ENOENT where it is: both mean the backend is gone.
#[test]
fn backend_disappearing_is_typed() {
    let mut xs = setup(&[]);
    let fe = Frontend::discover(&mut xs, "vif", 0, far()).unwrap();
    xs.transport_mut().at(at(100), |s| s.remove(BACK));
    assert_eq!(
        fe.wait_backend_state(&mut xs, |s| s == XenbusState::Connected, far()),
        Err(XenbusError::BackendGone)
    );
}

#[test]
fn stuck_backend_times_out_and_bad_state_is_typed() {
    let mut xs = setup(&[]);
    let fe = Frontend::discover(&mut xs, "vif", 0, far()).unwrap();
    assert_eq!(
        fe.wait_backend_state(&mut xs, |s| s == XenbusState::Connected, at(50)),
        Err(XenbusError::Timeout)
    );
    xs.transport_mut().store.set(&format!("{BACK}/state"), "9");
    assert_eq!(
        fe.backend_state(&mut xs, far()),
        Err(XenbusError::BadValue("state"))
    );
}

#[test]
fn unreadable_backend_state_counts_as_gone_and_other_errors_pass_through() {
    let mut xs = setup(&[]);
    let fe = Frontend::discover(&mut xs, "vif", 0, far()).unwrap();
    // The backend's state becomes unreadable for us: from here that looks exactly like a
    // removed backend (EACCES either way).
    xs.transport_mut().store.set_perms(
        &format!("{BACK}/state"),
        vec![Perm {
            domid: 0,
            access: Access::None,
        }],
    );
    assert_eq!(
        fe.backend_state(&mut xs, far()),
        Err(XenbusError::BackendGone)
    );
    xs.transport_mut()
        .misbehave
        .push_back(crate::testing::Misbehave::ErrorName("EIO"));
    assert_eq!(
        fe.backend_state(&mut xs, far()),
        Err(XenbusError::Store(XsError::Server(XsErrno::Known(
            XsdError::Eio
        ))))
    );
}

/// A backend that rewrites its `state` node on every read the client makes (flapping between
/// Initialising and InitWait, never Connected), each read costing 1 ms of simulated time.
#[test]
fn deadline_holds_under_flapping_state() {
    let mut xs = setup(&[]);
    let fe = Frontend::discover(&mut xs, "vif", 0, far()).unwrap();
    let fake = xs.transport_mut();
    fake.recv_cost_nanos = 1_000_000;
    let mut flip = false;
    fake.on_recv = Some(Box::new(move |s: &mut Store| {
        flip = !flip;
        s.set(&format!("{BACK}/state"), if flip { "1" } else { "2" });
    }));
    let start = xs.now();
    let deadline = start.add_millis(200);
    assert_eq!(
        fe.wait_backend_state(&mut xs, |s| s == XenbusState::Connected, deadline),
        Err(XenbusError::Timeout)
    );
    let fake = xs.transport_mut();
    assert!(fake.now >= deadline);
    // It gave up within a few rounds of the deadline, not a million reads later.
    assert!(
        fake.now <= deadline.add_millis(10),
        "gave up at {:?}",
        fake.now
    );
}

/// Backend location never written, while the daemon floods events for the discovery watch.
#[test]
fn discovery_deadline_holds_under_watch_flood() {
    let mut xs = setup(&["backend"]);
    xs.transport_mut()
        .flood_events("xb-fe:device/vif/0", 1_000_000);
    let deadline = xs.now().add_millis(100);
    assert_eq!(
        Frontend::discover(&mut xs, "vif", 0, deadline),
        Err(XenbusError::Timeout)
    );
    assert!(xs.transport_mut().now <= deadline.add_millis(10));
}
