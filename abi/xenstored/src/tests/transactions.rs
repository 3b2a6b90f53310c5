//! Transactions: isolation, commit, EAGAIN on conflict (C 4.17's generation counts), abort,
//! ids, and watch events at commit.

use super::*;

#[test]
fn ids_start_at_one_and_unknown_ids_are_enoent() {
    let mut s = store();
    assert_eq!(start(&mut s, 1), 1);
    assert_eq!(start(&mut s, 1), 2);
    // Ids are per connection.
    assert_eq!(start(&mut s, 2), 1);
    assert_eq!(read(&mut s, 1, 77, "/"), Err(XsdError::Enoent));
    assert_eq!(end(&mut s, 1, 77, true), Err(XsdError::Enoent));
    assert_eq!(end(&mut s, 1, 0, true), Err(XsdError::Enoent));
    assert_eq!(
        s.handle(1, XS_TRANSACTION_END, 1, &z(&["X"])),
        Err(XsdError::Einval)
    );
    assert_eq!(
        s.handle(1, XS_TRANSACTION_START, 1, &[0]),
        Err(XsdError::Ebusy)
    );
    assert_eq!(s.transaction_count(1), 2);
}

#[test]
fn a_transaction_sees_its_own_writes_and_others_do_not_until_commit() {
    let mut s = store();
    let t = start(&mut s, 1);
    write(&mut s, 1, t, "a/b", "tx").unwrap();
    assert_eq!(read(&mut s, 1, t, "a/b").unwrap(), b"tx");
    assert_eq!(dir(&mut s, 1, t, "a").unwrap(), ["b"]);
    assert_eq!(read(&mut s, 1, 0, "a/b"), Err(XsdError::Enoent));
    assert_eq!(s.read("/local/domain/1/a"), None);
    end(&mut s, 1, t, true).unwrap();
    assert_eq!(s.read("/local/domain/1/a/b").unwrap(), b"tx");
    assert_eq!(s.perms("/local/domain/1/a/b").unwrap(), [perm(1, 'n')]);
    assert_eq!(s.transaction_count(1), 0);
    assert_eq!(end(&mut s, 1, t, true), Err(XsdError::Enoent));
}

#[test]
fn abort_discards_everything() {
    let mut s = store();
    write(&mut s, 1, 0, "keep", "old").unwrap();
    let t = start(&mut s, 1);
    write(&mut s, 1, t, "keep", "new").unwrap();
    write(&mut s, 1, t, "fresh", "x").unwrap();
    rm(&mut s, 1, t, "keep").unwrap();
    assert_eq!(read(&mut s, 1, t, "keep"), Err(XsdError::Enoent));
    end(&mut s, 1, t, false).unwrap();
    assert_eq!(s.read("/local/domain/1/keep").unwrap(), b"old");
    assert_eq!(s.read("/local/domain/1/fresh"), None);
}

#[test]
fn a_change_to_a_node_read_in_the_transaction_is_eagain() {
    let mut s = store();
    write(&mut s, 1, 0, "a", "1").unwrap();
    let t = start(&mut s, 1);
    assert_eq!(read(&mut s, 1, t, "a").unwrap(), b"1");
    write(&mut s, 1, t, "b", "from-tx").unwrap();
    write(&mut s, 1, 0, "a", "2").unwrap();
    // The transaction keeps the copy it read.
    assert_eq!(read(&mut s, 1, t, "a").unwrap(), b"1");
    assert_eq!(end(&mut s, 1, t, true), Err(XsdError::Eagain));
    // Nothing of it was applied, and it is gone.
    assert_eq!(s.read("/local/domain/1/b"), None);
    assert_eq!(s.transaction_count(1), 0);
}

#[test]
fn creating_or_removing_a_node_the_transaction_saw_is_eagain() {
    let mut s = store();
    let t = start(&mut s, 1);
    assert_eq!(read(&mut s, 1, t, "later"), Err(XsdError::Enoent));
    write(&mut s, 1, 0, "later", "x").unwrap();
    assert_eq!(end(&mut s, 1, t, true), Err(XsdError::Eagain));

    write(&mut s, 1, 0, "gone", "x").unwrap();
    let t = start(&mut s, 1);
    write(&mut s, 1, t, "gone", "y").unwrap();
    rm(&mut s, 1, 0, "gone").unwrap();
    assert_eq!(end(&mut s, 1, t, true), Err(XsdError::Eagain));
    assert_eq!(s.read("/local/domain/1/gone"), None);
}

#[test]
fn unrelated_changes_do_not_conflict() {
    let mut s = store();
    write(&mut s, 1, 0, "mine/a", "1").unwrap();
    let t = start(&mut s, 1);
    write(&mut s, 1, t, "mine/a", "2").unwrap();
    // Another domain's change elsewhere.
    write(&mut s, 2, 0, "theirs", "x").unwrap();
    end(&mut s, 1, t, true).unwrap();
    assert_eq!(s.read("/local/domain/1/mine/a").unwrap(), b"2");
}

#[test]
fn a_new_child_in_a_directory_the_transaction_listed_is_eagain() {
    let mut s = store();
    s.mkdir("/local/domain/1/dir").unwrap();
    let t = start(&mut s, 1);
    assert_eq!(dir(&mut s, 1, t, "dir").unwrap(), Vec::<String>::new());
    write(&mut s, 1, 0, "dir/new", "").unwrap();
    assert_eq!(end(&mut s, 1, t, true), Err(XsdError::Eagain));
}

#[test]
fn of_two_interfering_transactions_the_second_commit_fails() {
    // The fourth example of C's xenstored_transaction.c.
    let mut s = store();
    write(&mut s, 0, 0, "/A", "a").unwrap();
    write(&mut s, 0, 0, "/B", "b").unwrap();
    let t1 = start(&mut s, 0);
    let t2 = start(&mut s, 0);
    read(&mut s, 0, t1, "/A").unwrap();
    read(&mut s, 0, t2, "/B").unwrap();
    write(&mut s, 0, t1, "/B", "1").unwrap();
    write(&mut s, 0, t2, "/A", "2").unwrap();
    end(&mut s, 0, t1, true).unwrap();
    assert_eq!(end(&mut s, 0, t2, true), Err(XsdError::Eagain));
    assert_eq!(s.read("/A").unwrap(), b"a");
    assert_eq!(s.read("/B").unwrap(), b"1");
}

#[test]
fn watches_fire_at_commit_not_before() {
    let mut s = store();
    watch(&mut s, 2, "/shared", "w").unwrap();
    s.write("/shared", b"").unwrap();
    s.set_perms("/shared", std::vec![perm(0, 'b')]).unwrap();
    s.take_events(2);
    let t = start(&mut s, 0);
    write(&mut s, 0, t, "/shared/x", "1").unwrap();
    write(&mut s, 0, t, "/shared/x", "2").unwrap();
    assert_eq!(s.take_events(2), []);
    end(&mut s, 0, t, true).unwrap();
    // One event per changed node, however often it changed.
    assert_eq!(s.take_events(2), [ev("/shared/x", "w")]);
    // An aborted or failed transaction fires nothing.
    let t = start(&mut s, 0);
    write(&mut s, 0, t, "/shared/y", "1").unwrap();
    end(&mut s, 0, t, false).unwrap();
    assert_eq!(s.take_events(2), []);
}

#[test]
fn rm_inside_a_transaction_fires_for_the_subtree_at_commit() {
    let mut s = store();
    s.write("/t/a/b", b"").unwrap();
    watch(&mut s, 0, "/t/a/b", "deep").unwrap();
    watch(&mut s, 0, "/t", "top").unwrap();
    s.take_events(0);
    let t = start(&mut s, 0);
    rm(&mut s, 0, t, "/t/a").unwrap();
    assert_eq!(s.read("/t/a/b").unwrap(), b"");
    end(&mut s, 0, t, true).unwrap();
    assert_eq!(s.read("/t/a"), None);
    let events = s.take_events(0);
    assert!(events.contains(&ev("/t/a", "top")), "{events:?}");
    assert!(events.contains(&ev("/t/a/b", "deep")), "{events:?}");
}

#[test]
fn reset_watches_ends_transactions_too() {
    let mut s = store();
    let t = start(&mut s, 1);
    watch(&mut s, 1, "x", "t").unwrap();
    s.handle(1, XS_RESET_WATCHES, 0, &[]).unwrap();
    assert_eq!(s.watch_count(1), 0);
    assert_eq!(end(&mut s, 1, t, true), Err(XsdError::Enoent));
}
