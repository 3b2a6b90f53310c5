//! Property tests: tree invariants under any sequence of changes, permission inheritance,
//! all-or-nothing commits, and arbitrary requests never panicking.

use super::*;
use proptest::prelude::*;

/// A path of one to four components from a small alphabet, so that sequences collide.
fn arb_path() -> impl Strategy<Value = String> {
    proptest::collection::vec(prop_oneof!["a", "b", "c"], 1..5)
        .prop_map(|parts| std::format!("/t/{}", parts.join("/")))
}

#[derive(Clone, Debug)]
enum Op {
    Write(Domid, String),
    Rm(Domid, String),
    Mkdir(Domid, String),
}

fn arb_op() -> impl Strategy<Value = Op> {
    let dom = prop_oneof![Just(0u16), Just(1u16), Just(2u16)];
    prop_oneof![
        (dom.clone(), arb_path()).prop_map(|(d, p)| Op::Write(d, p)),
        (dom.clone(), arb_path()).prop_map(|(d, p)| Op::Rm(d, p)),
        (dom, arb_path()).prop_map(|(d, p)| Op::Mkdir(d, p)),
    ]
}

fn apply(s: &mut Store, op: &Op, tx: u32) -> Result<(), XsdError> {
    match op {
        Op::Write(d, p) => write(s, *d, tx, p, "v"),
        Op::Rm(d, p) => rm(s, *d, tx, p),
        Op::Mkdir(d, p) => s.handle(*d, XS_MKDIR, tx, &z(&[p])).map(drop),
    }
}

/// A store where domains 1 and 2 may write below `/t`.
fn shared_store() -> Store {
    let mut s = store();
    s.write("/t", b"").unwrap();
    s.set_perms("/t", std::vec![perm(0, 'r'), perm(1, 'b'), perm(2, 'b')])
        .unwrap();
    s
}

/// Every node but the root has its parent, listed once among the parent's children, and
/// every listed child exists.
fn assert_tree_consistent(s: &Store) {
    let paths = s.paths();
    for p in &paths {
        let children = s.directory(p).unwrap();
        for c in &children {
            let child = crate::path::child(p, c);
            assert!(s.read(&child).is_some(), "{p} lists missing {c}");
            assert_eq!(children.iter().filter(|x| *x == c).count(), 1);
        }
        if p != "/" {
            let parent = crate::path::parent(p);
            let listed = s.directory(parent).expect("parent exists");
            assert!(listed.iter().any(|c| c == crate::path::basename(p)), "{p}");
        }
    }
}

proptest! {
    #[test]
    fn any_sequence_of_changes_keeps_the_tree_consistent(ops in proptest::collection::vec(arb_op(), 0..40)) {
        let mut s = shared_store();
        for op in &ops {
            let _ = apply(&mut s, op, 0);
        }
        assert_tree_consistent(&s);
    }

    #[test]
    fn created_nodes_inherit_their_parents_perms(ops in proptest::collection::vec(arb_op(), 0..30)) {
        let mut s = shared_store();
        for op in &ops {
            let before = s.paths();
            if apply(&mut s, op, 0).is_ok() {
                let (Op::Write(d, _) | Op::Mkdir(d, _)) = op else { continue };
                for p in s.paths().iter().filter(|p| !before.contains(p)) {
                    let mut expected = s.perms(crate::path::parent(p)).unwrap();
                    if *d != 0 {
                        expected[0].domid = *d;
                    }
                    prop_assert_eq!(s.perms(p).unwrap(), expected, "{}", p);
                }
            }
        }
    }

    #[test]
    fn a_commit_is_all_or_nothing(
        setup in proptest::collection::vec(arb_op(), 0..15),
        in_tx in proptest::collection::vec(arb_op(), 1..15),
        interfere in proptest::option::of(arb_op()),
    ) {
        let mut s = shared_store();
        for op in &setup {
            let _ = apply(&mut s, op, 0);
        }
        let before = snapshot(&s);
        // The same transaction replayed on a copy, without interference, gives the
        // all-applied outcome.
        let mut expected_store = shared_store();
        for op in &setup {
            let _ = apply(&mut expected_store, op, 0);
        }
        let t = start(&mut s, 1);
        let t_expected = start(&mut expected_store, 1);
        for op in &in_tx {
            let op = as_domain(op, 1);
            let _ = apply(&mut s, &op, t);
            let _ = apply(&mut expected_store, &op, t_expected);
        }
        end(&mut expected_store, 1, t_expected, true).unwrap();
        let all = snapshot(&expected_store);
        let mut interfered = None;
        if let Some(op) = &interfere {
            let op = as_domain(op, 2);
            if apply(&mut s, &op, 0).is_ok() {
                interfered = Some(snapshot(&s));
            }
        }
        match end(&mut s, 1, t, true) {
            Ok(()) => {
                if interfered.is_none() {
                    prop_assert_eq!(snapshot(&s), all);
                }
            }
            Err(XsdError::Eagain) => {
                prop_assert!(interfered.is_some());
                prop_assert_eq!(Some(snapshot(&s)), interfered);
            }
            Err(e) => prop_assert!(false, "commit failed with {}", e),
        }
        let _ = before;
        assert_tree_consistent(&s);
    }

    #[test]
    fn arbitrary_requests_never_panic(
        conn in 0u16..4,
        type_ in 0u32..30,
        tx in 0u32..3,
        payload in proptest::collection::vec(prop_oneof![Just(0u8), Just(b'/'), Just(b'a'), Just(b'T'), Just(b'1'), any::<u8>()], 0..64),
    ) {
        let mut s = shared_store();
        let _ = start(&mut s, 1);
        let _ = s.handle(conn, type_, tx, &payload);
        assert_tree_consistent(&s);
    }
}

fn as_domain(op: &Op, d: Domid) -> Op {
    match op {
        Op::Write(_, p) => Op::Write(d, p.clone()),
        Op::Rm(_, p) => Op::Rm(d, p.clone()),
        Op::Mkdir(_, p) => Op::Mkdir(d, p.clone()),
    }
}

/// Every node's path, value and permissions.
fn snapshot(s: &Store) -> Vec<(String, Vec<u8>, Vec<crate::Perm>)> {
    s.paths()
        .into_iter()
        .map(|p| {
            let v = s.read(&p).unwrap();
            let perms = s.perms(&p).unwrap();
            (p, v, perms)
        })
        .collect()
}
