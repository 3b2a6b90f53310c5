//! C xenstored 4.17's quotas, each at, below and past its limit, with C's errno, for an
//! unprivileged domain; domain 0 is never refused, and a domain at a quota keeps reading and
//! deleting while other domains keep working.

use super::*;
use crate::quota::*;
use std::format;
use std::string::String;
use std::vec;

fn write_value(
    s: &mut Store,
    conn: Domid,
    tx: u32,
    path: &str,
    len: usize,
) -> Result<(), XsdError> {
    write(s, conn, tx, path, &"v".repeat(len))
}

fn set_perms_n(s: &mut Store, conn: Domid, path: &str, n: usize) -> Result<(), XsdError> {
    let list: Vec<String> = (0..n)
        .map(|i| {
            if i == 0 {
                format!("n{conn}")
            } else {
                format!("r{i}")
            }
        })
        .collect();
    let refs: Vec<&str> = list.iter().map(String::as_str).collect();
    set_perms(s, conn, path, &refs)
}

#[test]
fn permissions_per_node_are_five_then_enospc() {
    let mut s = store();
    write(&mut s, 1, 0, "p", "").unwrap();
    set_perms_n(&mut s, 1, "p", PERMS_PER_NODE - 1).unwrap();
    set_perms_n(&mut s, 1, "p", PERMS_PER_NODE).unwrap();
    assert_eq!(get_perms(&mut s, 1, "p").unwrap().len(), PERMS_PER_NODE);
    assert_eq!(
        set_perms_n(&mut s, 1, "p", PERMS_PER_NODE + 1),
        Err(XsdError::Enospc)
    );
    // The list a hostile guest sent: refused before anything is parsed.
    assert_eq!(set_perms_n(&mut s, 1, "p", 1300), Err(XsdError::Enospc));
    assert_eq!(get_perms(&mut s, 1, "p").unwrap().len(), PERMS_PER_NODE);
    // Domain 0 has no such quota.
    set_perms_n(&mut s, 0, "/local/domain/1/p", 1300).unwrap();
}

#[test]
fn entry_size_is_below_2048_then_enospc() {
    let mut s = store();
    // A new node below the home: one permission (the home's, owner 1), no children.
    let max = ENTRY_SIZE_MAX - 1 - 24 - 8;
    write_value(&mut s, 1, 0, "e", max - 1).unwrap();
    write_value(&mut s, 1, 0, "e", max).unwrap();
    assert_eq!(
        write_value(&mut s, 1, 0, "e", max + 1),
        Err(XsdError::Enospc)
    );
    assert_eq!(
        write_value(&mut s, 1, 0, "f", max + 1),
        Err(XsdError::Enospc)
    );
    assert_eq!(write_value(&mut s, 1, 0, "f", 4000), Err(XsdError::Enospc));
    assert_eq!(read(&mut s, 1, 0, "f"), Err(XsdError::Enoent));
    assert_eq!(read(&mut s, 1, 0, "e").unwrap().len(), max);
    // Inside a transaction too, which then fails.
    let tx = start(&mut s, 1);
    assert_eq!(
        write_value(&mut s, 1, tx, "e", max + 1),
        Err(XsdError::Enospc)
    );
    assert_eq!(end(&mut s, 1, tx, true), Err(XsdError::Enomem));
    // Domain 0 is not bound.
    write_value(&mut s, 0, 0, "/local/domain/1/e", 4000).unwrap();
}

/// Writes leaves `d<k>/n<j>` (100 to a directory, so that no child list reaches the entry
/// size) until a write is refused; returns the error.
fn fill_entries(s: &mut Store) -> XsdError {
    for i in 0..2 * ENTRIES_PER_DOMAIN {
        if let Err(e) = write(s, 1, 0, &format!("d{}/n{}", i / 100, i % 100), "") {
            return e;
        }
    }
    panic!("the node quota never refused a write");
}

#[test]
fn entries_per_domain_are_1000_then_enospc() {
    let mut s = store();
    // The home is the first node domain 1 owns.
    assert_eq!(s.entries(1), 1);
    assert_eq!(fill_entries(&mut s), XsdError::Enospc);
    assert_eq!(s.entries(1), ENTRIES_PER_DOMAIN);
    assert_eq!(write(&mut s, 1, 0, "x", ""), Err(XsdError::Enospc));
    assert_eq!(s.handle(1, XS_MKDIR, 0, &z(&["x"])), Err(XsdError::Enospc));
    // Its own reads, rewrites and deletes still work, and make room again: one node fits.
    assert_eq!(read(&mut s, 1, 0, "d0/n0").unwrap(), b"");
    write(&mut s, 1, 0, "d0/n0", "again").unwrap();
    rm(&mut s, 1, 0, "d0/n0").unwrap();
    assert_eq!(s.entries(1), ENTRIES_PER_DOMAIN - 1);
    write(&mut s, 1, 0, "x", "").unwrap();
    assert_eq!(write(&mut s, 1, 0, "y", ""), Err(XsdError::Enospc));
    // Another domain and domain 0 are not affected.
    write(&mut s, 2, 0, "y", "v").unwrap();
    write(&mut s, 0, 0, "/local/domain/1/z", "v").unwrap();
}

#[test]
fn a_deep_write_beyond_the_node_quota_creates_nothing() {
    let mut s = store();
    let deep = vec!["a"; 1000].join("/");
    let before = s.paths().len();
    assert_eq!(write(&mut s, 1, 0, &deep, "v"), Err(XsdError::Enospc));
    assert_eq!(s.paths().len(), before);
    assert_eq!(s.entries(1), 1);
    // Two levels less fit: the home and 998 nodes; then one more node, the 1000th.
    let fits = vec!["a"; 998].join("/");
    write(&mut s, 1, 0, &fits, "v").unwrap();
    assert_eq!(s.entries(1), ENTRIES_PER_DOMAIN - 1);
    write(&mut s, 1, 0, "b", "").unwrap();
    assert_eq!(s.entries(1), ENTRIES_PER_DOMAIN);
    assert_eq!(write(&mut s, 1, 0, "c", ""), Err(XsdError::Enospc));
    rm(&mut s, 1, 0, "a").unwrap();
    assert_eq!(s.entries(1), 2);
}

#[test]
fn a_transaction_may_not_leave_1000_nodes() {
    let mut s = store();
    let fits = vec!["a"; 997].join("/");
    write(&mut s, 1, 0, &fits, "").unwrap();
    assert_eq!(s.entries(1), ENTRIES_PER_DOMAIN - 2);
    // One more in a transaction: 999 at commit, fine.
    let tx = start(&mut s, 1);
    write(&mut s, 1, tx, "b", "").unwrap();
    end(&mut s, 1, tx, true).unwrap();
    assert_eq!(s.entries(1), ENTRIES_PER_DOMAIN - 1);
    // C `transaction_fix_domains`: a commit leaving 1000 is ENOSPC (outside, 1000 fit).
    let tx = start(&mut s, 1);
    write(&mut s, 1, tx, "c", "").unwrap();
    assert_eq!(end(&mut s, 1, tx, true), Err(XsdError::Enospc));
    assert_eq!(read(&mut s, 1, 0, "c"), Err(XsdError::Enoent));
    write(&mut s, 1, 0, "c", "").unwrap();
    assert_eq!(s.entries(1), ENTRIES_PER_DOMAIN);
    // At the quota, a create inside a transaction is refused at once, and the transaction
    // is not failed by it (C checks the committed count before writing anything).
    let tx = start(&mut s, 1);
    assert_eq!(write(&mut s, 1, tx, "d", ""), Err(XsdError::Enospc));
    write(&mut s, 1, tx, "c", "rewritten").unwrap();
    end(&mut s, 1, tx, true).unwrap();
    assert_eq!(read(&mut s, 1, 0, "c").unwrap(), b"rewritten");
    // A deep write in a transaction is bounded the same way.
    rm(&mut s, 1, 0, "a").unwrap();
    let tx = start(&mut s, 1);
    let deep = vec!["a"; 1000].join("/");
    write(&mut s, 1, tx, &deep, "").unwrap();
    assert_eq!(end(&mut s, 1, tx, true), Err(XsdError::Enospc));
    assert_eq!(s.entries(1), 3);
}

#[test]
fn watches_are_129_then_e2big() {
    let mut s = store();
    for i in 0..=WATCHES_PER_DOMAIN {
        watch(&mut s, 1, "w", &format!("t{i}")).unwrap();
    }
    assert_eq!(s.watch_count(1), WATCHES_PER_DOMAIN + 1);
    assert_eq!(watch(&mut s, 1, "w", "more"), Err(XsdError::E2big));
    // A duplicate is still EEXIST (checked first, as in C).
    assert_eq!(watch(&mut s, 1, "w", "t0"), Err(XsdError::Eexist));
    s.handle(1, XS_UNWATCH, 0, &z(&["w", "t0"])).unwrap();
    watch(&mut s, 1, "w", "more").unwrap();
    for i in 0..2 * WATCHES_PER_DOMAIN {
        watch(&mut s, 0, "/w", &format!("t{i}")).unwrap();
    }
    watch(&mut s, 2, "w", "t").unwrap();
}

#[test]
fn transactions_are_11_then_enospc() {
    let mut s = store();
    let ids: Vec<u32> = (0..=TRANSACTIONS_PER_DOMAIN)
        .map(|_| start(&mut s, 1))
        .collect();
    assert_eq!(s.transaction_count(1), TRANSACTIONS_PER_DOMAIN + 1);
    assert_eq!(
        s.handle(1, XS_TRANSACTION_START, 0, &[0]),
        Err(XsdError::Enospc)
    );
    end(&mut s, 1, ids[0], false).unwrap();
    start(&mut s, 1);
    for _ in 0..2 * TRANSACTIONS_PER_DOMAIN {
        start(&mut s, 0);
    }
    start(&mut s, 2);
}

#[test]
fn a_transaction_touches_1024_nodes_then_enospc_and_fails() {
    let mut s = store();
    let tx = start(&mut s, 1);
    // Reads of missing nodes count as C's accessed nodes: the node itself, and the parents
    // asked for the errno (the home, once).
    for i in 0..NODES_PER_TRANSACTION - 1 {
        assert_eq!(read(&mut s, 1, tx, &format!("m{i}")), Err(XsdError::Enoent));
    }
    assert_eq!(read(&mut s, 1, tx, "m0"), Err(XsdError::Enoent));
    assert_eq!(read(&mut s, 1, tx, "last"), Err(XsdError::Enospc));
    assert_eq!(end(&mut s, 1, tx, true), Err(XsdError::Enomem));
    // Outside a transaction nothing is counted; domain 0 is not bound.
    read(&mut s, 1, 0, "/local/domain/1").unwrap();
    let tx = start(&mut s, 0);
    for i in 0..2 * NODES_PER_TRANSACTION {
        let _ = read(&mut s, 0, tx, &format!("/m{i}"));
    }
    end(&mut s, 0, tx, true).unwrap();
}

#[test]
fn paths_are_2048_bytes_below_the_home_then_einval() {
    let mut s = store();
    // Components short enough for the parents' child lists.
    let path = format!(
        "{}/{}/{}",
        "a".repeat(1000),
        "b".repeat(1000),
        "c".repeat(46)
    );
    assert_eq!(path.len(), PATH_LEN_MAX);
    write(&mut s, 1, 0, &path, "").unwrap();
    assert_eq!(
        write(&mut s, 1, 0, &format!("{path}c"), ""),
        Err(XsdError::Einval)
    );
    assert_eq!(
        read(&mut s, 1, 0, &format!("{path}c")),
        Err(XsdError::Einval)
    );
    // Absolute paths outside a home: 2048 bytes in all.
    let other = format!("/{}/{}", "a".repeat(1000), "b".repeat(1046));
    assert_eq!(other.len(), PATH_LEN_MAX);
    write(&mut s, 0, 0, &other, "").unwrap();
    assert_eq!(
        write(&mut s, 0, 0, &format!("{other}b"), ""),
        Err(XsdError::Einval)
    );
}

/// Fills domain 1's memory with big nodes on long paths until a write is refused; returns
/// the number of leaves written.
fn fill_memory(s: &mut Store) -> usize {
    let top = "x".repeat(1200);
    let mut leaves = 0;
    for d in 0..40 {
        for n in 0..40 {
            let path = format!("{top}/d{d:038}/n{n:038}");
            match write_value(s, 1, 0, &path, 2000) {
                Ok(()) => leaves += 1,
                Err(e) => {
                    assert_eq!(e, XsdError::Eio);
                    return leaves;
                }
            }
        }
    }
    panic!("the memory quota never refused a write");
}

fn leaf(d: usize, n: usize) -> String {
    format!("{}/d{d:038}/n{n:038}", "x".repeat(1200))
}

#[test]
fn memory_is_2_5_mib_then_eio_and_the_domain_still_reads_and_deletes() {
    let mut s = store();
    let leaves = fill_memory(&mut s);
    assert!(s.entries(1) < ENTRIES_PER_DOMAIN, "memory must bind first");
    let used = s.memory(1);
    assert!(
        used < MEMORY_HARD && used > MEMORY_HARD - 4000,
        "{used} after {leaves} leaves"
    );
    assert!(s.memory_soft_exceeded(1));
    assert!(!s.memory_hard_exceeded(1));
    // Reads, deletes and other domains still work; a watch is ENOMEM when it does not fit,
    // and so is a reply over 16 bytes (C charges it while queued).
    write(&mut s, 0, 0, "/local/domain/1/small", "0123456789abcde").unwrap();
    assert_eq!(read(&mut s, 1, 0, "small").unwrap().len(), 15);
    let big = read(&mut s, 1, 0, &leaf(0, 0));
    if used + 2000 + 16 >= MEMORY_HARD {
        assert_eq!(big, Err(XsdError::Enomem));
    } else {
        assert_eq!(big.unwrap().len(), 2000);
    }
    assert_eq!(
        watch(&mut s, 1, "w", &"t".repeat(4000)),
        Err(XsdError::Enomem)
    );
    write_value(&mut s, 2, 0, "big", 2000).unwrap();
    write_value(&mut s, 0, 0, "/local/domain/1/by-dom0", 2000).unwrap();
    rm(&mut s, 1, 0, &"x".repeat(1200)).unwrap();
    // The home, and what domain 0 wrote below it (owned by domain 1 as well).
    assert_eq!(s.entries(1), 3);
    write_value(&mut s, 1, 0, "again", 2000).unwrap();
}

#[test]
fn the_memory_quota_binds_at_exactly_its_value() {
    let mut s = store();
    let leaves = fill_memory(&mut s);
    // Grow leaves (each may take 15 more bytes) until the charge is one below the quota.
    let max = ENTRY_SIZE_MAX - 1 - 32;
    let mut k = 0;
    while s.memory(1) < MEMORY_HARD - 1 {
        let room = MEMORY_HARD - 1 - s.memory(1);
        write_value(
            &mut s,
            1,
            0,
            &leaf(k / 40, k % 40),
            2000 + room.min(max - 2000),
        )
        .unwrap();
        k += 1;
        assert!(k < leaves);
    }
    assert_eq!(s.memory(1), MEMORY_HARD - 1);
    let (d, n) = (k / 40, k % 40);
    assert_eq!(
        write_value(&mut s, 1, 0, &leaf(d, n), 2001),
        Err(XsdError::Eio)
    );
    assert_eq!(write(&mut s, 1, 0, "new", ""), Err(XsdError::Eio));
    assert_eq!(s.memory(1), MEMORY_HARD - 1);
    // A reply of 16 bytes is not checked; one of 17 is, and refused.
    // (Domain 0's nodes, readable by domain 1: one below its home would be charged to it.)
    for n in [16, 17] {
        let path = format!("/r{n}");
        write(&mut s, 0, 0, &path, &"r".repeat(n)).unwrap();
        set_perms(&mut s, 0, &path, &["n0", "r1"]).unwrap();
    }
    assert_eq!(read(&mut s, 1, 0, "/r16").unwrap().len(), 16);
    assert_eq!(read(&mut s, 1, 0, "/r17"), Err(XsdError::Enomem));
    assert_eq!(read(&mut s, 2, 0, "/local/domain/2").unwrap(), b"");
    write_value(&mut s, 1, 0, &leaf(d, n), 1999).unwrap();
    write_value(&mut s, 1, 0, &leaf(d, n), 2000).unwrap();
    assert_eq!(s.memory(1), MEMORY_HARD - 1);
}

#[test]
fn events_beyond_the_memory_quota_are_dropped() {
    let mut s = store();
    fill_memory(&mut s);
    write(&mut s, 0, 0, "/shared", "").unwrap();
    set_perms(&mut s, 0, "/shared", &["n0", "r1"]).unwrap();
    watch(&mut s, 1, "/shared", "t").unwrap();
    // Events are charged while queued: the first fit, then they are dropped.
    for i in 0..400 {
        write(&mut s, 0, 0, "/shared", &format!("{i}")).unwrap();
    }
    assert!(s.memory(1) < MEMORY_HARD);
    let dropped = s.events_dropped(1);
    assert!(dropped > 0 && dropped < 400, "{dropped}");
    // Taking them frees their charge: the next ones are queued again.
    let taken = s.take_events(1).len();
    assert_eq!(taken as u64 + dropped, 401);
    write(&mut s, 0, 0, "/shared", "more").unwrap();
    assert_eq!(s.take_events(1).len(), 1);
    assert_eq!(s.events_dropped(1), dropped);
}

#[test]
fn reads_in_transactions_may_pass_the_hard_quota_which_stalls_the_domain() {
    let mut s = store();
    fill_memory(&mut s);
    assert!(!s.memory_hard_exceeded(1));
    let tx = start(&mut s, 1);
    for n in 0..10 {
        // The copy is charged even when the reply is refused (ENOMEM, as in C).
        let reply = read(&mut s, 1, tx, &leaf(0, n));
        assert!(matches!(reply, Ok(_) | Err(XsdError::Enomem)), "{reply:?}");
    }
    assert!(s.memory_hard_exceeded(1));
    end(&mut s, 1, tx, false).unwrap();
    assert!(!s.memory_hard_exceeded(1));
}

#[test]
fn smaller_quotas_bind_where_set_and_the_others_stay_cs() {
    let q = Quotas {
        entries_per_domain: 10,
        nodes_per_transaction: 6,
        memory_hard: 12_000,
    };
    let mut s = store_with(q);
    assert_eq!(s.quotas(), q);
    assert_eq!(Store::new().quotas(), Quotas::default());
    assert_eq!(Quotas::default().entries_per_domain, ENTRIES_PER_DOMAIN);
    // Nodes: the home and 9 more fit (C: `>=` the quota refuses), the 11th is refused.
    let mut made = 0;
    let errno = loop {
        match write(&mut s, 1, 0, &format!("n{made}"), "") {
            Ok(()) => made += 1,
            Err(e) => break e,
        }
        assert!(made <= 10, "never refused");
    };
    assert_eq!((made, errno), (9, XsdError::Enospc));
    // A transaction may touch 6 nodes (a missing node's read touches it and its parent, the
    // home: 5 reads); the next fails it, and its commit is ENOMEM.
    let tx = start(&mut s, 2);
    let mut reads = 0;
    let errno = loop {
        match read(&mut s, 2, tx, &format!("m{reads}")) {
            Err(XsdError::Enoent) => reads += 1,
            other => break other,
        }
        assert!(reads <= 10, "never refused");
    };
    assert_eq!((reads, errno), (5, Err(XsdError::Enospc)));
    assert_eq!(end(&mut s, 2, tx, true), Err(XsdError::Enomem));
    // Memory: 1900-byte values until the charge would reach 12,000 bytes: EIO.
    let mut made = 0;
    let errno = loop {
        match write_value(&mut s, 2, 0, &format!("v{made}"), 1900) {
            Ok(()) => made += 1,
            Err(e) => break e,
        }
        assert!(made <= 10, "never refused");
    };
    assert_eq!((made, errno), (6, XsdError::Eio));
    // The quotas left alone are C's: 11 transactions open, the 12th refused.
    for _ in 0..=TRANSACTIONS_PER_DOMAIN {
        start(&mut s, 1);
    }
    assert_eq!(
        s.handle(1, XS_TRANSACTION_START, 0, &[0]),
        Err(XsdError::Enospc)
    );
}
