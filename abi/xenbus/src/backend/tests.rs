//! The back-end state machine against the shared fake xenstored.

use super::*;
use crate::testing::SharedXenstored;

fn far() -> Instant {
    Instant::from_nanos(1_000_000_000_000)
}

#[test]
fn transitions_follow_blkbacks_frontend_changed() {
    use XenbusState as S;
    assert_eq!(transition(S::InitWait, S::Initialising), Transition::None);
    assert_eq!(
        transition(S::Closed, S::Initialising),
        Transition::Reconnect
    );
    assert_eq!(transition(S::InitWait, S::Initialised), Transition::Connect);
    assert_eq!(transition(S::InitWait, S::Connected), Transition::Connect);
    assert_eq!(transition(S::Connected, S::Connected), Transition::None);
    assert_eq!(transition(S::Connected, S::Initialised), Transition::None);
    assert_eq!(transition(S::Connected, S::Closing), Transition::Closing);
    assert_eq!(transition(S::Closing, S::Closed), Transition::Closed);
    assert_eq!(transition(S::Connected, S::Unknown), Transition::Remove);
    for odd in [S::InitWait, S::Reconfiguring, S::Reconfigured] {
        assert_eq!(transition(S::InitWait, odd), Transition::Fatal);
    }
}

#[test]
fn attach_watch_and_read_the_ring() {
    let hub = SharedXenstored::new();
    let (front, back) = hub.add_vbd(5, 51712, "w");
    let mut xs = XsClient::new(hub.connect(0));
    let mut be = Backend::attach(&mut xs, back.clone(), far()).unwrap();
    assert_eq!(be.frontend, front);
    assert_eq!(be.frontend_id.get(), 5);
    // The watch fires once on registration.
    xs.poll().unwrap();
    assert!(be.take_frontend_events(&mut xs));
    assert_eq!(
        be.frontend_state(&mut xs, far()),
        Ok(XenbusState::Initialising)
    );
    be.set_state(&mut xs, XenbusState::InitWait, far()).unwrap();
    assert_eq!(hub.read(&format!("{back}/state")).as_deref(), Some("2"));

    assert_eq!(
        be.read_ring_refs(&mut xs, far()),
        Err(RingRefsError::BadValue("event-channel"))
    );
    hub.write(&format!("{front}/event-channel"), "9");
    hub.write(&format!("{front}/ring-ref"), "77");
    hub.write(&format!("{front}/protocol"), "x86_64-abi");
    let refs = be.read_ring_refs(&mut xs, far()).unwrap();
    assert_eq!((refs.ring_ref.get(), refs.event_channel.get()), (77, 9));
    hub.write(&format!("{front}/ring-page-order"), "0");
    assert_eq!(
        be.read_ring_refs(&mut xs, far()),
        Err(RingRefsError::BadValue("ring-ref0"))
    );
    hub.write(&format!("{front}/ring-ref0"), "78");
    assert_eq!(
        be.read_ring_refs(&mut xs, far()).unwrap().ring_ref.get(),
        78
    );
    hub.write(&format!("{front}/ring-page-order"), "2");
    assert_eq!(
        be.read_ring_refs(&mut xs, far()),
        Err(RingRefsError::RingPageOrder(2))
    );
    hub.remove(&format!("{front}/ring-page-order"));
    for (key, value, error) in [
        ("protocol", "x86_32-abi", RingRefsError::UnknownProtocol),
        ("multi-queue-num-queues", "2", RingRefsError::Queues(2)),
        ("multi-queue-num-queues", "0", RingRefsError::Queues(0)),
        (
            "event-channel",
            "4096",
            RingRefsError::BadValue("event-channel"),
        ),
        (
            "event-channel",
            "-1",
            RingRefsError::BadValue("event-channel"),
        ),
        ("ring-ref", "3", RingRefsError::BadValue("ring-ref")),
        ("ring-ref", "x", RingRefsError::BadValue("ring-ref")),
    ] {
        let old = hub.read(&format!("{front}/{key}"));
        hub.write(&format!("{front}/{key}"), value);
        assert_eq!(
            be.read_ring_refs(&mut xs, far()),
            Err(error),
            "{key}={value}"
        );
        match old {
            Some(old) => hub.write(&format!("{front}/{key}"), &old),
            None => hub.remove(&format!("{front}/{key}")),
        }
    }
    assert!(be.read_ring_refs(&mut xs, far()).is_ok());

    // A vanished front end reads as Unknown.
    hub.remove(&front);
    assert_eq!(be.frontend_state(&mut xs, far()), Ok(XenbusState::Unknown));
    be.fatal(&mut xs, -22, "bad ring", far());
    assert_eq!(
        hub.read("/local/domain/0/error/backend/vbd/5/51712/error")
            .as_deref(),
        Some("-22 bad ring")
    );
    assert_eq!(be.state(), XenbusState::Closing);
    assert_eq!(hub.read(&format!("{back}/state")).as_deref(), Some("5"));
    be.close(&mut xs, far()).unwrap();
    assert_eq!(hub.with_store(|s| s.watch_count(0)), 0);
}

#[test]
fn attach_refuses_a_bad_frontend_id() {
    let hub = SharedXenstored::new();
    let (_front, back) = hub.add_vbd(5, 51712, "w");
    hub.write(&format!("{back}/frontend-id"), "32752");
    let mut xs = XsClient::new(hub.connect(0));
    assert_eq!(
        Backend::attach(&mut xs, back.clone(), far()),
        Err(XenbusError::BadValue("frontend-id"))
    );
    hub.write(&format!("{back}/frontend-id"), "5");
    hub.write(&format!("{back}/frontend"), "relative/path");
    assert_eq!(
        Backend::attach(&mut xs, back, far()),
        Err(XenbusError::BadValue("frontend"))
    );
}
