//! Deadlines hold whatever the daemon sends, and what it sends is queued within a byte bound.

use super::client;
use crate::testing::Misbehave;
use crate::time::Instant;
use crate::xenstore::client::MAX_QUEUED_EVENT_BYTES;
use crate::xenstore::{TxId, XsError};

const NONE: TxId = TxId::NONE;

/// A request the daemon never answers while it floods watch events for another token: the
/// request times out at its deadline instead of reading the flood forever.
#[test]
fn deadline_holds_under_watch_flood() {
    let mut c = client();
    c.write(NONE, "k", "v", Instant::from_nanos(1)).unwrap();
    let fake = c.transport_mut();
    fake.misbehave.push_back(Misbehave::Silent);
    fake.flood_events("other", 1_000_000);
    let deadline = c.now().add_millis(100);
    assert_eq!(c.read(NONE, "k", deadline), Err(XsError::Timeout));
    let fake = c.transport_mut();
    assert!(fake.now >= deadline);
    assert!(
        fake.now <= deadline.add_millis(10),
        "gave up at {:?}",
        fake.now
    );
    // Waiting for an event of our own fares the same.
    let deadline = c.now().add_millis(100);
    assert!(matches!(
        c.wait_event_for("mine", deadline),
        Err(XsError::Timeout | XsError::EventsLost)
    ));
    let now = c.now();
    assert!(now <= deadline.add_millis(10), "gave up at {now:?}");
}

/// A flood of large events never queues more than the byte bound; the loss is reported.
#[test]
fn watch_queue_bounded_in_bytes() {
    let mut c = client();
    let token = "t".repeat(1000);
    let fake = c.transport_mut();
    let mut n = 0u64;
    let path = "p".repeat(2000);
    let tok = token.clone();
    fake.on_recv = Some(Box::new(move |s| {
        n += 1;
        s.events.push(crate::xenstore::WatchEvent {
            path: format!("{path}/{n}"),
            token: tok.clone(),
        });
    }));
    let mut lost = 0;
    for _ in 0..200 {
        match c.poll() {
            Ok(()) => {}
            Err(XsError::EventsLost) => lost += 1,
            Err(e) => panic!("unexpected {e:?}"),
        }
        assert!(c.queued_event_bytes() <= MAX_QUEUED_EVENT_BYTES);
    }
    assert!(lost > 0, "the loss must be reported");
    // About 3 KiB an event: the queue holds what fits in the bound, no more.
    let mut queued = 0;
    while c.take_event_for(&token).is_some() {
        queued += 1;
    }
    assert_eq!(queued, MAX_QUEUED_EVENT_BYTES / 3008);
    assert!(c.stats().events_dropped >= 200 - queued as u64);
}
