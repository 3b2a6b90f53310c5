//! Watches: the initial event, what fires, relative event paths, permissions, the special
//! names, and release.

use super::*;

#[test]
fn a_new_watch_fires_once_with_the_path_as_given() {
    let mut s = store();
    watch(&mut s, 1, "device", "rel").unwrap();
    watch(&mut s, 1, "/local/domain/1/backend", "abs").unwrap();
    assert_eq!(
        s.take_events(1),
        [ev("device", "rel"), ev("/local/domain/1/backend", "abs")]
    );
    assert_eq!(s.take_events(1), []);
    assert_eq!(s.watch_count(1), 2);
}

#[test]
fn changes_at_or_below_fire_and_siblings_do_not() {
    let mut s = store();
    watch(&mut s, 0, "/w/a", "t").unwrap();
    s.take_events(0);
    s.write("/w/a", b"1").unwrap();
    s.write("/w/a/b/c", b"2").unwrap();
    s.write("/w/ab", b"3").unwrap();
    s.write("/w", b"4").unwrap();
    assert_eq!(s.take_events(0), [ev("/w/a", "t"), ev("/w/a/b/c", "t")]);
}

#[test]
fn relative_watches_report_relative_paths() {
    let mut s = store();
    watch(&mut s, 1, "device", "t").unwrap();
    s.take_events(1);
    s.write("/local/domain/1/device/vif/0", b"").unwrap();
    assert_eq!(s.take_events(1), [ev("device/vif/0", "t")]);
}

#[test]
fn rm_fires_for_the_node_its_ancestors_watchers_and_each_removed_descendant() {
    let mut s = store();
    s.write("/r/a/b", b"").unwrap();
    watch(&mut s, 0, "/r/a/b", "below").unwrap();
    watch(&mut s, 0, "/r", "above").unwrap();
    watch(&mut s, 0, "/r/a/b/never", "missing").unwrap();
    s.take_events(0);
    s.rm("/r/a").unwrap();
    // Bottom up, as C's `delnode_sub` runs after the children; a removed descendant fires
    // only watches on exactly it, the removed node also those above it.
    assert_eq!(
        s.take_events(0),
        [ev("/r/a/b", "below"), ev("/r/a", "above")]
    );
}

#[test]
fn mkdir_of_an_existing_node_fires_nothing() {
    let mut s = store();
    s.write("/m", b"").unwrap();
    watch(&mut s, 0, "/m", "t").unwrap();
    s.take_events(0);
    s.mkdir("/m").unwrap();
    assert_eq!(s.take_events(0), []);
    s.mkdir("/m/new").unwrap();
    assert_eq!(s.take_events(0), [ev("/m/new", "t")]);
}

#[test]
fn duplicate_watch_is_eexist_and_unknown_unwatch_is_enoent() {
    let mut s = store();
    watch(&mut s, 1, "x", "t").unwrap();
    assert_eq!(watch(&mut s, 1, "x", "t"), Err(XsdError::Eexist));
    // The relative and absolute spellings name the same watch.
    assert_eq!(
        watch(&mut s, 1, "/local/domain/1/x", "t"),
        Err(XsdError::Eexist)
    );
    watch(&mut s, 1, "x", "other").unwrap();
    assert_eq!(
        s.handle(1, XS_UNWATCH, 0, &z(&["x", "nope"])),
        Err(XsdError::Enoent)
    );
    s.handle(1, XS_UNWATCH, 0, &z(&["/local/domain/1/x", "t"]))
        .unwrap();
    assert_eq!(s.watch_count(1), 1);
    assert_eq!(watch(&mut s, 1, "x/", "t"), Err(XsdError::Einval));
    assert_eq!(s.handle(1, XS_WATCH, 0, &z(&["x"])), Err(XsdError::Einval));
}

#[test]
fn watch_ignores_the_transaction_id() {
    let mut s = store();
    assert_eq!(s.handle(1, XS_WATCH, 99, &z(&["x", "t"])).unwrap(), b"OK\0");
    assert_eq!(
        s.handle(1, XS_UNWATCH, 99, &z(&["x", "t"])).unwrap(),
        b"OK\0"
    );
}

#[test]
fn reset_watches_removes_them_all() {
    let mut s = store();
    watch(&mut s, 1, "a", "1").unwrap();
    watch(&mut s, 1, "b", "2").unwrap();
    s.handle(1, XS_RESET_WATCHES, 0, &[]).unwrap();
    assert_eq!(s.watch_count(1), 0);
    s.take_events(1);
    s.write("/local/domain/1/a", b"").unwrap();
    assert_eq!(s.take_events(1), []);
}

#[test]
fn watchers_see_only_changes_they_may_read() {
    // C `watch_permitted`: the node or its parent must be readable by the watcher.
    let mut s = store();
    watch(&mut s, 2, "/local/domain/1", "spy").unwrap();
    s.take_events(2);
    s.write("/local/domain/1/secret", b"x").unwrap();
    assert_eq!(s.take_events(2), []);
    s.write("/local/domain/1/open", b"").unwrap();
    s.set_perms("/local/domain/1/open", std::vec![perm(1, 'r')])
        .unwrap();
    assert_eq!(s.take_events(2), [ev("/local/domain/1/open", "spy")]);
    // Readable parent: a child readable by nobody still fires.
    s.write("/local/domain/1/open/hidden", b"").unwrap();
    s.set_perms("/local/domain/1/open/hidden", std::vec![perm(1, 'n')])
        .unwrap();
    s.take_events(2);
    s.write("/local/domain/1/open/hidden", b"y").unwrap();
    assert_eq!(s.take_events(2), [ev("/local/domain/1/open/hidden", "spy")]);
}

#[test]
fn losing_read_access_still_announces_the_change() {
    let mut s = store();
    s.write("/pub", b"").unwrap();
    s.set_perms("/pub", std::vec![perm(0, 'r')]).unwrap();
    watch(&mut s, 2, "/pub", "t").unwrap();
    s.take_events(2);
    s.set_perms("/pub", std::vec![perm(0, 'n')]).unwrap();
    assert_eq!(s.take_events(2), [ev("/pub", "t")]);
    s.write("/pub", b"x").unwrap();
    assert_eq!(s.take_events(2), []);
}

#[test]
fn introduce_and_release_fire_special_watches_for_permitted_watchers() {
    let mut s = store();
    watch(&mut s, 0, "@introduceDomain", "in").unwrap();
    watch(&mut s, 0, "@releaseDomain", "out").unwrap();
    watch(&mut s, 1, "@releaseDomain", "out1").unwrap();
    watch(&mut s, 1, "/", "all").unwrap();
    s.take_events(0);
    s.take_events(1);
    s.introduce(5);
    s.introduce(5);
    assert_eq!(s.take_events(0), [ev("@introduceDomain", "in")]);
    s.release(5);
    assert_eq!(s.take_events(0), [ev("@releaseDomain", "out")]);
    // Domain 1 may not read @releaseDomain until dom0 allows it.
    assert_eq!(s.take_events(1), []);
    s.set_perms("@releaseDomain", std::vec![perm(0, 'n'), perm(1, 'r')])
        .unwrap();
    s.introduce(6);
    s.release(6);
    assert_eq!(s.take_events(1), [ev("@releaseDomain", "out1")]);
    assert!(!s.is_introduced(6));
}

#[test]
fn release_drops_watches_transactions_events_and_owned_nodes() {
    let mut s = store();
    s.set_perms("@releaseDomain", std::vec![perm(0, 'n'), perm(2, 'r')])
        .unwrap();
    watch(&mut s, 2, "x", "t").unwrap();
    let _ = start(&mut s, 2);
    s.write("/local/domain/2/data", b"").unwrap();
    s.write("/keep", b"").unwrap();
    watch(&mut s, 0, "/local/domain/2/data", "d").unwrap();
    s.take_events(0);
    s.release(2);
    assert_eq!(s.watch_count(2), 0);
    assert_eq!(s.transaction_count(2), 0);
    assert_eq!(s.take_events(2), []);
    assert_eq!(
        s.handle(2, XS_READ, 0, &z(&["/keep"])),
        Err(XsdError::Eacces)
    );
    // C `domain_tree_remove`: the domain's nodes go, and @releaseDomain left its perms.
    assert_eq!(s.read("/local/domain/2"), None);
    assert_eq!(s.directory("/local/domain").unwrap(), ["1"]);
    assert_eq!(s.perms("@releaseDomain").unwrap(), [perm(0, 'n')]);
    assert!(s.take_events(0).contains(&ev("/local/domain/2/data", "d")));
    assert!(s.read("/keep").is_some());
}

#[test]
fn queued_event_bytes_count_paths_tokens_and_nuls() {
    let mut s = store();
    assert_eq!(s.queued_event_bytes(1), 0);
    watch(&mut s, 1, "ab", "tok").unwrap();
    assert_eq!(s.queued_event_bytes(1), 2 + 3 + 2);
    s.write("/local/domain/1/ab/c", b"").unwrap();
    assert_eq!(s.queued_event_bytes(1), 7 + 4 + 3 + 2);
    assert_eq!(s.take_events(1).len(), 2);
    assert_eq!(s.queued_event_bytes(1), 0);
}
