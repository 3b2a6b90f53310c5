//! Normal operation: the typed operations, watches, transactions, permissions, limits.

use super::{DOMID, client, far};
use crate::time::Instant;
use crate::xenstore::{Access, Perm, TxId, XsErrno, XsError, XsdError};
use abi::io::xs_wire::{XS_READ, XS_TRANSACTION_END};

const NONE: TxId = TxId::NONE;

#[test]
fn write_then_read_relative_and_absolute() {
    let mut c = client();
    c.write(NONE, "data/greeting", "hello", far()).unwrap();
    assert_eq!(c.read(NONE, "data/greeting", far()).unwrap(), "hello");
    assert_eq!(
        c.read(NONE, "/local/domain/5/data/greeting", far())
            .unwrap(),
        "hello"
    );
    assert_eq!(
        c.transport()
            .store
            .get("/local/domain/5/data/greeting")
            .as_deref(),
        Some("hello")
    );
    // An empty value reads back empty, not as an error.
    c.write(NONE, "data/empty", "", far()).unwrap();
    assert_eq!(c.read(NONE, "data/empty", far()).unwrap(), "");
}

#[test]
fn missing_node_is_enoent() {
    let mut c = client();
    assert_eq!(
        c.read(NONE, "nothing", far()),
        Err(XsError::Server(XsErrno::Known(XsdError::Enoent)))
    );
    assert_eq!(c.read_optional(NONE, "nothing", far()), Ok(None));
    // C xenstored 4.17 (`do_rm`): removing a missing node whose parent exists is OK; with
    // the parent missing too, ENOENT.
    assert_eq!(c.rm(NONE, "nothing", far()), Ok(()));
    assert_eq!(
        c.rm(NONE, "nothing/below", far()),
        Err(XsError::Server(XsErrno::Known(XsdError::Enoent)))
    );
    assert_eq!(
        c.directory(NONE, "nothing", far()),
        Err(XsError::Server(XsErrno::Known(XsdError::Enoent)))
    );
}

#[test]
fn directory_mkdir_rm() {
    let mut c = client();
    c.mkdir(NONE, "dir", far()).unwrap();
    assert_eq!(
        c.directory(NONE, "dir", far()).unwrap(),
        Vec::<String>::new()
    );
    c.write(NONE, "dir/b", "2", far()).unwrap();
    c.write(NONE, "dir/a/x", "1", far()).unwrap();
    // Children come in creation order, as C xenstored keeps them.
    assert_eq!(c.directory(NONE, "dir", far()).unwrap(), vec!["b", "a"]);
    c.rm(NONE, "dir/a", far()).unwrap();
    assert_eq!(c.directory(NONE, "dir", far()).unwrap(), vec!["b"]);
    assert_eq!(c.read_optional(NONE, "dir/a/x", far()), Ok(None));
}

#[test]
fn permissions_are_enforced_and_reported() {
    let mut c = client();
    c.write(NONE, "mine", "1", far()).unwrap();
    assert_eq!(
        c.get_perms(NONE, "mine", far()).unwrap(),
        vec![Perm {
            domid: DOMID,
            access: Access::None
        }]
    );
    let store = &mut c.transport_mut().store;
    store.set("/local/domain/0/secret", "s");
    store.set("/local/domain/0/public", "p");
    store.set_perms(
        "/local/domain/0/public",
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
    assert_eq!(
        c.read(NONE, "/local/domain/0/secret", far()),
        Err(XsError::Server(XsErrno::Known(XsdError::Eacces)))
    );
    assert_eq!(c.read(NONE, "/local/domain/0/public", far()).unwrap(), "p");
    assert_eq!(
        c.write(NONE, "/local/domain/0/public", "x", far()),
        Err(XsError::Server(XsErrno::Known(XsdError::Eacces)))
    );
    assert_eq!(
        c.write(NONE, "/local/domain/0/new", "x", far()),
        Err(XsError::Server(XsErrno::Known(XsdError::Eacces)))
    );
    assert_eq!(
        c.get_perms(NONE, "/local/domain/0/public", far()).unwrap(),
        vec![
            Perm {
                domid: 0,
                access: Access::None
            },
            Perm {
                domid: DOMID,
                access: Access::Read
            }
        ]
    );
}

#[test]
fn oversize_payload_is_refused_before_sending() {
    let mut c = client();
    let big = "x".repeat(4095);
    // "a\0" + 4095 bytes = 4097 > XENSTORE_PAYLOAD_MAX.
    assert_eq!(
        c.write(NONE, "a", &big, far()),
        Err(XsError::PayloadTooLarge { len: 4097 })
    );
    assert!(c.transport().requests.is_empty());
    // Exactly 4096 goes through; xenstored (C 4.17's quotas) refuses so big a node from a
    // domU with ENOSPC, and a value below its entry size is stored.
    assert_eq!(
        c.write(NONE, "a", &big[1..], far()),
        Err(XsError::Server(XsErrno::Known(XsdError::Enospc)))
    );
    assert_eq!(c.transport().requests.last().unwrap().len, 4096);
    c.write(NONE, "a", &big[..2000], far()).unwrap();
    assert_eq!(c.read(NONE, "a", far()).unwrap().len(), 2000);
}

#[test]
fn invalid_paths_and_tokens_are_refused() {
    let mut c = client();
    assert_eq!(c.read(NONE, "", far()), Err(XsError::InvalidPath));
    assert_eq!(c.read(NONE, "a\0b", far()), Err(XsError::InvalidPath));
    assert_eq!(
        c.read(NONE, &"a".repeat(2049), far()),
        Err(XsError::InvalidPath)
    );
    assert_eq!(
        c.read(NONE, &format!("/{}", "a".repeat(3072)), far()),
        Err(XsError::InvalidPath)
    );
    assert_eq!(c.watch("a", "", far()), Err(XsError::InvalidArgument));
    assert_eq!(c.watch("a", "t\0", far()), Err(XsError::InvalidArgument));
    assert!(c.transport().requests.is_empty());
}

#[test]
fn request_ids_are_distinct_and_replies_matched() {
    let mut c = client();
    for i in 0..5 {
        c.write(NONE, "k", &i.to_string(), far()).unwrap();
    }
    let ids: Vec<u32> = c.transport().requests.iter().map(|h| h.req_id).collect();
    assert_eq!(ids, vec![1, 2, 3, 4, 5]);
}

#[test]
fn watches_fire_initially_on_change_and_stop_after_unwatch() {
    let mut c = client();
    c.watch("device", "tok", far()).unwrap();
    let first = c.take_event().unwrap();
    assert_eq!(
        (first.path.as_str(), first.token.as_str()),
        ("device", "tok")
    );
    // The event for this write arrives before the write's reply and is queued.
    c.write(NONE, "device/vif/0/state", "1", far()).unwrap();
    assert_eq!(c.take_event().unwrap().path, "device/vif/0/state");
    assert_eq!(c.take_event(), None);
    c.transport_mut()
        .store
        .set("/local/domain/5/device/vbd", "");
    c.poll().unwrap();
    assert_eq!(c.take_event().unwrap().path, "device/vbd");
    c.transport_mut().store.set("/local/domain/5/device/x", "");
    c.unwatch("device", "tok", far()).unwrap();
    assert_eq!(
        c.take_event(),
        None,
        "queued events of the token are discarded"
    );
    assert_eq!(c.transport().store.watch_count(), 0);
    c.write(NONE, "device/y", "1", far()).unwrap();
    c.poll().unwrap();
    assert_eq!(c.take_event(), None);
    assert_eq!(
        c.unwatch("device", "tok", far()),
        Err(XsError::Server(XsErrno::Known(XsdError::Enoent)))
    );
}

/// A detached unwatch removes the watch without waiting; its reply, arriving with the next
/// request's, is dropped as stale and does not disturb that request.
#[test]
fn detached_unwatch_removes_the_watch_and_drops_its_reply() {
    let mut c = client();
    c.watch("d", "tok", far()).unwrap();
    c.take_event_for("tok").unwrap();
    let waits = c.transport().waits;
    c.unwatch_detached("d", "tok").unwrap();
    assert_eq!(c.transport().waits, waits, "nothing waited");
    c.write(NONE, "d/x", "1", far()).unwrap();
    assert_eq!(c.read(NONE, "d/x", far()).unwrap(), "1");
    assert_eq!(c.transport().store.watch_count(), 0);
    assert_eq!(c.take_event_for("tok"), None);
    assert_eq!(c.stats().stale_replies, 1);
}

/// Real xenstored sends a new watch's first event right after the `XS_WATCH` reply, so both
/// arrive in one read. The event must be queued at once and found without waiting (a client
/// that left it in its inbox and then waited for the ring slept until the deadline).
#[test]
fn event_arriving_with_the_reply_is_seen_without_waiting() {
    let mut c = client();
    c.transport_mut().events_after_reply = true;
    c.watch("w", "tok", far()).unwrap();
    let waits = c.transport().waits;
    assert_eq!(c.take_event_for("tok").unwrap().path, "w");
    c.write(NONE, "w", "1", far()).unwrap();
    let e = c.wait_event_for("tok", Instant::from_nanos(1000)).unwrap();
    assert_eq!(e.path, "w");
    assert_eq!(c.transport().waits, waits, "nothing waited");
    assert_eq!(c.transport().now, Instant::from_nanos(0));
}

#[test]
fn events_between_request_and_reply_are_kept_by_token() {
    let mut c = client();
    c.transport_mut().inject_event("/a", "one");
    c.transport_mut().inject_event("/b", "two");
    c.write(NONE, "k", "v", far()).unwrap();
    assert_eq!(c.take_event_for("two").unwrap().path, "/b");
    assert_eq!(c.take_event_for("two"), None);
    assert_eq!(c.take_event_for("one").unwrap().path, "/a");
}

#[test]
fn wait_event_times_out_at_the_deadline_and_sees_late_changes() {
    let mut c = client();
    c.watch("late", "t", far()).unwrap();
    c.take_event_for("t").unwrap();
    let deadline = Instant::from_nanos(1000);
    assert_eq!(c.wait_event_for("t", deadline), Err(XsError::Timeout));
    assert_eq!(c.transport().now, deadline);
    c.transport_mut().at(Instant::from_nanos(1500), |s| {
        s.set("/local/domain/5/late", "v")
    });
    let e = c.wait_event_for("t", Instant::from_nanos(2000)).unwrap();
    assert_eq!(e.path, "late");
    assert_eq!(c.transport().now, Instant::from_nanos(1500));
}

#[test]
fn transactions_start_use_and_end() {
    let mut c = client();
    let tx = c.transaction_start(far()).unwrap();
    assert_ne!(tx, TxId::NONE);
    c.write(tx, "t", "1", far()).unwrap();
    c.transaction_end(tx, true, far()).unwrap();
    assert_eq!(
        c.transaction_end(tx, true, far()),
        Err(XsError::Server(XsErrno::Known(XsdError::Enoent)))
    );
    assert_eq!(
        c.read(TxId::try_new(999).unwrap(), "t", far()),
        Err(XsError::Server(XsErrno::Known(XsdError::Enoent)))
    );
}

#[test]
fn transaction_helper_retries_eagain() {
    let mut c = client();
    c.transport_mut().store.commit_eagain = 2;
    let mut runs = 0;
    let v = c
        .transaction(5, far(), |c, tx| {
            runs += 1;
            c.write(tx, "n", &runs.to_string(), far())?;
            Ok(runs)
        })
        .unwrap();
    assert_eq!((v, runs), (3, 3));
}

#[test]
fn transaction_helper_gives_up_and_aborts_on_errors() {
    let mut c = client();
    c.transport_mut().store.commit_eagain = 10;
    let r = c.transaction(3, far(), |_, _| Ok(()));
    assert_eq!(r, Err(XsError::TransactionRetriesExhausted));

    let mut c = client();
    let r: Result<(), _> =
        c.transaction(3, far(), |c, tx| c.read(tx, "missing", far()).map(|_| ()));
    assert_eq!(r, Err(XsError::Server(XsErrno::Known(XsdError::Enoent))));
    let last = c.transport().requests.last().unwrap();
    assert_eq!(
        last.type_, XS_TRANSACTION_END,
        "the failed transaction was aborted"
    );
}

#[test]
fn small_transport_chunks_still_frame_correctly() {
    let mut c = client();
    c.transport_mut().chunk = 7;
    // Below xenstored's entry-size quota, and still hundreds of chunks.
    let value = "v".repeat(2000);
    c.write(NONE, "big", &value, far()).unwrap();
    assert_eq!(c.read(NONE, "big", far()).unwrap(), value);
    assert_eq!(c.transport().requests.last().unwrap().type_, XS_READ);
}
