//! Permissions: C `perm_for_conn`, inheritance on creation (`construct_node`), the checks of
//! each request, and the errno hiding of `errno_from_parents`.

use super::*;
use crate::perms::{Rights, perm_for_conn};

#[test]
fn perm_for_conn_owner_entry_default_and_dom0() {
    let perms = [perm(1, 'r'), perm(2, 'w'), perm(3, 'n'), perm(2, 'b')];
    assert_eq!(perm_for_conn(0, &perms), Rights::ALL);
    assert_eq!(perm_for_conn(1, &perms), Rights::ALL);
    // The first matching entry wins.
    assert_eq!(perm_for_conn(2, &perms), Rights::WRITE);
    assert_eq!(perm_for_conn(3, &perms), Rights::NONE);
    // Unlisted: the owner entry's access.
    assert_eq!(perm_for_conn(4, &perms), Rights::READ);
}

#[test]
fn new_nodes_inherit_parent_perms_with_the_creator_as_owner() {
    let mut s = store();
    s.write("/shared", b"").unwrap();
    s.set_perms(
        "/shared",
        std::vec![perm(0, 'n'), perm(1, 'w'), perm(2, 'r')],
    )
    .unwrap();
    write(&mut s, 1, 0, "/shared/x/y", "v").unwrap();
    for p in ["/shared/x", "/shared/x/y"] {
        assert_eq!(
            s.perms(p).unwrap(),
            [perm(1, 'n'), perm(1, 'w'), perm(2, 'r')],
            "{p}"
        );
    }
    // Domain 0 creating keeps the parent's owner.
    s.write("/local/domain/1/by-dom0/leaf", b"").unwrap();
    assert_eq!(
        s.perms("/local/domain/1/by-dom0/leaf").unwrap(),
        [perm(1, 'n')]
    );
}

#[test]
fn reads_and_writes_need_access() {
    let mut s = store();
    s.write("/ro", b"v").unwrap();
    s.set_perms("/ro", std::vec![perm(0, 'n'), perm(1, 'r')])
        .unwrap();
    assert_eq!(read(&mut s, 1, 0, "/ro").unwrap(), b"v");
    assert_eq!(write(&mut s, 1, 0, "/ro", "x"), Err(XsdError::Eacces));
    assert_eq!(rm(&mut s, 1, 0, "/ro"), Err(XsdError::Eacces));
    assert_eq!(read(&mut s, 2, 0, "/ro"), Err(XsdError::Eacces));
    assert_eq!(dir(&mut s, 2, 0, "/ro"), Err(XsdError::Eacces));
    assert_eq!(get_perms(&mut s, 2, "/ro"), Err(XsdError::Eacces));
    assert_eq!(s.read("/ro").unwrap(), b"v");
}

#[test]
fn missing_nodes_under_unreadable_parents_are_eacces() {
    // C `errno_from_parents`: do not tell a domain whether a node it may not see exists.
    let mut s = store();
    assert_eq!(
        read(&mut s, 2, 0, "/local/domain/1/nope"),
        Err(XsdError::Eacces)
    );
    assert_eq!(
        read(&mut s, 1, 0, "/local/domain/1/nope"),
        Err(XsdError::Enoent)
    );
    assert_eq!(
        read(&mut s, 1, 0, "/local/domain/1/a/b/c"),
        Err(XsdError::Enoent)
    );
    assert_eq!(
        rm(&mut s, 2, 0, "/local/domain/1/nope"),
        Err(XsdError::Eacces)
    );
}

#[test]
fn creating_needs_write_on_the_nearest_existing_ancestor() {
    let mut s = store();
    assert_eq!(write(&mut s, 1, 0, "/top/x", "v"), Err(XsdError::Eacces));
    assert_eq!(
        s.handle(1, XS_MKDIR, 0, &z(&["/top"])),
        Err(XsdError::Eacces)
    );
    s.write("/drop", b"").unwrap();
    s.set_perms("/drop", std::vec![perm(0, 'n'), perm(2, 'w')])
        .unwrap();
    write(&mut s, 2, 0, "/drop/a/b", "v").unwrap();
    assert_eq!(read(&mut s, 2, 0, "/drop"), Err(XsdError::Eacces));
    assert_eq!(read(&mut s, 2, 0, "/drop/a/b").unwrap(), b"v");
    assert_eq!(write(&mut s, 1, 0, "/drop/c", "v"), Err(XsdError::Eacces));
}

#[test]
fn set_perms_needs_ownership_and_only_dom0_changes_owner() {
    let mut s = store();
    write(&mut s, 1, 0, "mine", "").unwrap();
    let p = "/local/domain/1/mine";
    set_perms(&mut s, 1, p, &["n1", "b2"]).unwrap();
    assert_eq!(get_perms(&mut s, 1, "mine").unwrap(), ["n1", "b2"]);
    // Domain 2 may read and write but does not own it.
    write(&mut s, 2, 0, p, "x").unwrap();
    assert_eq!(set_perms(&mut s, 2, p, &["b2"]), Err(XsdError::Eacces));
    assert_eq!(set_perms(&mut s, 1, p, &["n2"]), Err(XsdError::Eperm));
    set_perms(&mut s, 0, p, &["r2"]).unwrap();
    assert_eq!(s.perms(p).unwrap(), [perm(2, 'r')]);
}

#[test]
fn set_perms_rejects_malformed_lists() {
    let mut s = store();
    s.write("/n", b"").unwrap();
    // Domain ids above 65535 are EINVAL here (C would keep and ignore them; see `parse_list`).
    for bad in [
        &["/n"][..],
        &["/n", "x1"],
        &["/n", "r"],
        &["/n", "b1", "r70000"],
    ] {
        assert_eq!(
            set_perms(&mut s, 0, bad[0], &bad[1..]),
            Err(XsdError::Einval),
            "{bad:?}"
        );
    }
    assert_eq!(
        set_perms(&mut s, 0, "/missing", &["n0"]),
        Err(XsdError::Enoent)
    );
    assert_eq!(s.set_perms("/n", std::vec![]), Err(XsdError::Einval));
    assert_eq!(s.perms("/n").unwrap(), [perm(0, 'n')]);
}

#[test]
fn special_names_have_settable_perms_for_dom0_only() {
    let mut s = store();
    assert_eq!(
        set_perms(&mut s, 1, "@releaseDomain", &["r1"]),
        Err(XsdError::Eacces)
    );
    assert_eq!(
        set_perms(&mut s, 0, "@bogus", &["r1"]),
        Err(XsdError::Einval)
    );
    set_perms(&mut s, 0, "@releaseDomain", &["n0", "r1"]).unwrap();
    assert_eq!(
        s.perms("@releaseDomain").unwrap(),
        [perm(0, 'n'), perm(1, 'r')]
    );
    assert_eq!(s.perms("@introduceDomain").unwrap(), [perm(0, 'n')]);
}
