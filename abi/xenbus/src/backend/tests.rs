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

    let one = RingOffer::ONE_PAGE;
    let bad = |key: &str| Err(RingRefsError::BadValue(String::from(key)));
    let read = |xs: &mut XsClient<_>, offer| be.read_rings(xs, offer, far());
    assert_eq!(read(&mut xs, one), bad("event-channel"));
    hub.write(&format!("{front}/event-channel"), "9");
    hub.write(&format!("{front}/ring-ref"), "77");
    hub.write(&format!("{front}/protocol"), "x86_64-abi");
    let refs = read(&mut xs, one).unwrap();
    assert_eq!(refs.len(), 1);
    assert_eq!(refs[0].event_channel.get(), 9);
    assert_eq!(refs[0].ring_refs, [GrantRef::try_new(77).unwrap()]);
    hub.write(&format!("{front}/ring-page-order"), "0");
    assert_eq!(read(&mut xs, one), bad("ring-ref0"));
    hub.write(&format!("{front}/ring-ref0"), "78");
    assert_eq!(read(&mut xs, one).unwrap()[0].ring_refs[0].get(), 78);
    hub.write(&format!("{front}/ring-page-order"), "2");
    assert_eq!(
        read(&mut xs, one),
        Err(RingRefsError::RingPageOrder { order: 2, max: 0 })
    );
    hub.remove(&format!("{front}/ring-page-order"));
    for (key, value, error) in [
        ("protocol", "x86_32-abi", RingRefsError::UnknownProtocol),
        (
            "multi-queue-num-queues",
            "2",
            RingRefsError::Queues { queues: 2, max: 1 },
        ),
        (
            "multi-queue-num-queues",
            "0",
            RingRefsError::Queues { queues: 0, max: 1 },
        ),
        (
            "event-channel",
            "4096",
            RingRefsError::BadValue("event-channel".into()),
        ),
        (
            "event-channel",
            "-1",
            RingRefsError::BadValue("event-channel".into()),
        ),
        ("ring-ref", "3", RingRefsError::BadValue("ring-ref".into())),
        ("ring-ref", "x", RingRefsError::BadValue("ring-ref".into())),
    ] {
        let old = hub.read(&format!("{front}/{key}"));
        hub.write(&format!("{front}/{key}"), value);
        assert_eq!(read(&mut xs, one), Err(error), "{key}={value}");
        match old {
            Some(old) => hub.write(&format!("{front}/{key}"), &old),
            None => hub.remove(&format!("{front}/{key}")),
        }
    }
    assert!(read(&mut xs, one).is_ok());

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

#[test]
fn multi_page_rings_and_queues_as_blkback_reads_them() {
    let hub = SharedXenstored::new();
    let (front, back) = hub.add_vbd(5, 51712, "w");
    let mut xs = XsClient::new(hub.connect(0));
    let be = Backend::attach(&mut xs, back, far()).unwrap();
    let offer = RingOffer {
        max_ring_page_order: 4,
        max_queues: 2,
    };
    let read = |xs: &mut XsClient<_>, offer| be.read_rings(xs, offer, far());
    let w = |key: &str, value: &str| hub.write(&format!("{front}/{key}"), value);
    // One queue of four pages: ring-ref0..3 in the front end's directory.
    w("event-channel", "9");
    w("ring-page-order", "2");
    for i in 0..4 {
        w(&format!("ring-ref{i}"), &format!("{}", 100 + i));
    }
    let rings = read(&mut xs, offer).unwrap();
    assert_eq!(rings.len(), 1);
    let refs: Vec<u32> = rings[0].ring_refs.iter().map(|r| r.get()).collect();
    assert_eq!(refs, [100, 101, 102, 103]);
    // Above the offer, and above what any ring may span whatever the offer.
    w("ring-page-order", "5");
    assert_eq!(
        read(&mut xs, offer),
        Err(RingRefsError::RingPageOrder { order: 5, max: 4 })
    );
    let huge = RingOffer {
        max_ring_page_order: 40,
        max_queues: 1,
    };
    assert_eq!(
        read(&mut xs, huge),
        Err(RingRefsError::RingPageOrder { order: 5, max: 4 })
    );
    w("ring-page-order", "4294967295");
    assert_eq!(
        read(&mut xs, offer),
        Err(RingRefsError::RingPageOrder {
            order: u32::MAX,
            max: 4
        })
    );
    // A missing or reserved ring-refN.
    w("ring-page-order", "3");
    assert_eq!(
        read(&mut xs, offer),
        Err(RingRefsError::BadValue("ring-ref4".into()))
    );
    for i in 4..8 {
        w(&format!("ring-ref{i}"), &format!("{}", 100 + i));
    }
    assert_eq!(read(&mut xs, offer).unwrap()[0].ring_refs.len(), 8);
    w("ring-ref6", "7");
    assert_eq!(
        read(&mut xs, offer),
        Err(RingRefsError::BadValue("ring-ref6".into()))
    );
    w("ring-ref6", "106");
    // Two queues: each its own event channel and ring-refs under queue-<n>/.
    w("multi-queue-num-queues", "2");
    assert_eq!(
        read(&mut xs, offer),
        Err(RingRefsError::BadValue("queue-0/event-channel".into()))
    );
    w("ring-page-order", "1");
    for q in 0..2u32 {
        w(&format!("queue-{q}/event-channel"), &format!("{}", 20 + q));
        w(
            &format!("queue-{q}/ring-ref0"),
            &format!("{}", 200 + 10 * q),
        );
    }
    assert_eq!(
        read(&mut xs, offer),
        Err(RingRefsError::BadValue("queue-0/ring-ref1".into()))
    );
    for q in 0..2u32 {
        w(
            &format!("queue-{q}/ring-ref1"),
            &format!("{}", 201 + 10 * q),
        );
    }
    let rings = read(&mut xs, offer).unwrap();
    let got: Vec<(u32, Vec<u32>)> = rings
        .iter()
        .map(|r| {
            (
                r.event_channel.get(),
                r.ring_refs.iter().map(|g| g.get()).collect(),
            )
        })
        .collect();
    assert_eq!(got, [(20, vec![200, 201]), (21, vec![210, 211])]);
    // More queues than offered, or none.
    w("multi-queue-num-queues", "3");
    assert_eq!(
        read(&mut xs, offer),
        Err(RingRefsError::Queues { queues: 3, max: 2 })
    );
    assert_eq!(
        read(&mut xs, RingOffer::ONE_PAGE),
        Err(RingRefsError::Queues { queues: 3, max: 1 })
    );
}
