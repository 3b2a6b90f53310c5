//! Resuming in a new domain ([`Netfront::resume`]): the grant table comes back empty, the
//! toolstack makes a new backend (another path, fewer features), and the device reconnects
//! with nothing leaked and traffic flowing again.

use super::*;
use xenbus::grant::{ENTRIES_PER_FRAME, GrantAccess, GrantEntries};

/// The new backend's path (a new domain's id in it, as libxl writes it after a restore).
const BACK2: &str = "/local/domain/0/backend/vif/6/0";

/// What the new domain starts with: every grant entry 0 (the old backend's mappings gone with
/// the old domain), and the toolstack's new device nodes with a backend offering only
/// `feature-rx-copy` that connects when the front end does.
fn new_domain(rig: &mut Rig) {
    let table = &rig.dev.platform().grants;
    for gref in 0..table.frames() * ENTRIES_PER_FRAME {
        table.entries().write_flags(gref, 0);
    }
    let store = &mut rig.xs.transport_mut().store;
    store.remove(FRONT);
    store.remove(BACK);
    store.add_device(
        FRONT,
        BACK2,
        &[("mac", MAC), ("mtu", "1500")],
        &[("feature-rx-copy", "1")],
    );
    rig.xs.transport_mut().on_write = Some(Box::new(|s, path, value| {
        if path == format!("{FRONT}/state") && value == "4" {
            s.set(&format!("{BACK2}/state"), "4");
        }
    }));
}

#[test]
fn a_resumed_vif_reconnects_to_a_new_backend_and_leaks_nothing() {
    let mut rig = Rig::new();
    let grants_before = rig.dev.stats().grants_in_use;
    let pages_before = rig.memory.allocated();
    rig.dev.send(&frame(1, 200)).unwrap();
    rig.dev.flush().unwrap();
    rig.backend();
    // In flight at the suspend: sent, never taken by the old backend.
    rig.dev.send(&frame(2, 300)).unwrap();
    rig.dev.flush().unwrap();
    let old_port = rig.dev.port();
    let old_tx_ref = key(&rig.xs, "tx-ring-ref");

    new_domain(&mut rig);
    rig.dev
        .resume(&mut rig.xs, Config::default(), platform(&rig.memory), far())
        .unwrap();
    assert_eq!(key(&rig.xs, "state"), "4");
    assert_eq!(
        rig.dev.frontend().backend,
        BACK2,
        "the backend path is read again"
    );
    assert!(
        !rig.dev.platform().events.closed.contains(&old_port),
        "the old port is not ours to close"
    );
    assert!(!key(&rig.xs, "tx-ring-ref").is_empty());
    let _ = old_tx_ref;
    // The same grants and pages as before the suspend: the old ones all ended and came back.
    assert_eq!(rig.dev.stats().grants_in_use, grants_before);
    assert_eq!(
        u64::from(rig.dev.platform().grants.grants_in_use()),
        grants_before
    );
    assert_eq!(rig.memory.allocated(), pages_before);
    assert_eq!(rig.dev.stats().tx_packets, 2, "counters carry on");

    // Traffic flows through the new backend.
    let tx_ref = key(&rig.xs, "tx-ring-ref").parse().unwrap();
    let rx_ref = key(&rig.xs, "rx-ring-ref").parse().unwrap();
    rig.back = netback::FakeNetback::attach(
        &rig.memory,
        rig.dev.platform().grants.entries(),
        tx_ref,
        rx_ref,
    );
    rig.dev.send(&frame(3, 400)).unwrap();
    rig.dev.flush().unwrap();
    rig.back.to_guest.push_back(frame(4, 500));
    rig.backend();
    rig.dev.poll();
    assert_eq!(rig.back.from_guest.pop_front(), Some(frame(3, 400)));
    assert_eq!(rig.received(), vec![frame(4, 500)]);
}

#[test]
fn a_resume_without_a_backend_ends_the_device_with_every_grant_ended() {
    let mut rig = Rig::new();
    new_domain(&mut rig);
    rig.xs.transport_mut().on_write = None;
    rig.xs.transport_mut().store.remove(BACK2);
    let deadline = Instant::from_nanos(5_000_000_000);
    let err = rig
        .dev
        .resume(
            &mut rig.xs,
            Config::default(),
            platform(&rig.memory),
            deadline,
        )
        .unwrap_err();
    // The backend's nodes are gone: discovery or the wait for its state says so.
    assert!(
        matches!(
            err,
            crate::NetError::Timeout | crate::NetError::BackendGone | crate::NetError::Xenbus(_)
        ),
        "{err:?}"
    );
    assert_eq!(rig.dev.send(&frame(1, 100)), Err(err));
    assert_eq!(rig.dev.stats().grants_in_use, 0);
}
