//! Nodes and values: write, mkdir, rm, directory, and the request framing around them.

use super::*;

#[test]
fn initial_tree_is_c_xenstoreds() {
    let s = Store::new();
    assert_eq!(s.paths(), ["/", "/tool", "/tool/xenstored"]);
    assert_eq!(s.perms("/").unwrap(), [perm(0, 'n')]);
    assert_eq!(s.directory("/").unwrap(), ["tool"]);
}

#[test]
fn write_creates_missing_parents_with_empty_values() {
    let mut s = store();
    write(&mut s, 0, 0, "/a/b/c", "v").unwrap();
    assert_eq!(s.read("/a").unwrap(), b"");
    assert_eq!(s.read("/a/b").unwrap(), b"");
    assert_eq!(s.read("/a/b/c").unwrap(), b"v");
    assert_eq!(dir(&mut s, 0, 0, "/a").unwrap(), ["b"]);
}

#[test]
fn values_are_bytes_including_nuls() {
    let mut s = store();
    s.handle(0, XS_WRITE, 0, b"/bin\0a\0b\xff").unwrap();
    assert_eq!(read(&mut s, 0, 0, "/bin").unwrap(), b"a\0b\xff");
    assert_eq!(s.handle(0, XS_WRITE, 0, b"/no-nul"), Err(XsdError::Einval));
}

#[test]
fn directory_lists_children_in_creation_order() {
    let mut s = store();
    for name in ["zeta", "alpha", "mid"] {
        write(&mut s, 0, 0, &std::format!("/d/{name}"), "").unwrap();
    }
    assert_eq!(dir(&mut s, 0, 0, "/d").unwrap(), ["zeta", "alpha", "mid"]);
    rm(&mut s, 0, 0, "/d/alpha").unwrap();
    assert_eq!(dir(&mut s, 0, 0, "/d").unwrap(), ["zeta", "mid"]);
    assert_eq!(s.handle(0, XS_DIRECTORY, 0, &z(&["/d/mid"])).unwrap(), b"");
}

#[test]
fn missing_node_is_enoent() {
    let mut s = store();
    assert_eq!(read(&mut s, 0, 0, "/nope"), Err(XsdError::Enoent));
    assert_eq!(dir(&mut s, 0, 0, "/nope"), Err(XsdError::Enoent));
    assert_eq!(get_perms(&mut s, 0, "/nope"), Err(XsdError::Enoent));
}

#[test]
fn mkdir_creates_once_and_keeps_existing_values() {
    let mut s = store();
    s.handle(0, XS_MKDIR, 0, &z(&["/m/n"])).unwrap();
    assert_eq!(s.read("/m/n").unwrap(), b"");
    write(&mut s, 0, 0, "/m/n", "kept").unwrap();
    assert_eq!(s.handle(0, XS_MKDIR, 0, &z(&["/m/n"])).unwrap(), b"OK\0");
    assert_eq!(s.read("/m/n").unwrap(), b"kept");
}

#[test]
fn rm_removes_the_subtree_and_the_parents_entry() {
    let mut s = store();
    write(&mut s, 0, 0, "/r/a/x", "1").unwrap();
    write(&mut s, 0, 0, "/r/a/y/z", "2").unwrap();
    write(&mut s, 0, 0, "/r/b", "3").unwrap();
    rm(&mut s, 0, 0, "/r/a").unwrap();
    assert!(s.paths().iter().all(|p| !p.starts_with("/r/a")));
    assert_eq!(s.directory("/r").unwrap(), ["b"]);
}

#[test]
fn rm_of_missing_node_is_ok_when_its_parent_exists() {
    // C 4.17 `do_rm`: "Didn't exist already? Fine, if parent exists."
    let mut s = store();
    write(&mut s, 0, 0, "/p", "").unwrap();
    assert_eq!(rm(&mut s, 0, 0, "/p/missing"), Ok(()));
    assert_eq!(rm(&mut s, 0, 0, "/p/missing/deeper"), Err(XsdError::Enoent));
    assert_eq!(rm(&mut s, 0, 0, "/"), Err(XsdError::Einval));
    assert_eq!(s.rm("/"), Err(XsdError::Einval));
}

#[test]
fn one_argument_requests_need_exactly_one_trailing_nul() {
    let mut s = store();
    write(&mut s, 0, 0, "/x", "1").unwrap();
    assert_eq!(s.handle(0, XS_READ, 0, b"/x"), Err(XsdError::Einval));
    assert_eq!(s.handle(0, XS_READ, 0, b"/x\0/y\0"), Err(XsdError::Einval));
    assert_eq!(s.handle(0, XS_READ, 0, b""), Err(XsdError::Einval));
    assert_eq!(s.handle(0, XS_READ, 0, b"/x\0").unwrap(), b"1");
    assert_eq!(s.handle(0, XS_READ, 0, b"/\xff\0"), Err(XsdError::Einval));
}

#[test]
fn unknown_and_privileged_types() {
    let mut s = store();
    for t in [XS_WATCH_EVENT, XS_ERROR, 20, XS_TYPE_COUNT, XS_INVALID] {
        assert_eq!(s.handle(1, t, 0, b"x\0"), Err(XsdError::Enosys), "type {t}");
    }
    for t in [
        XS_CONTROL,
        XS_INTRODUCE,
        XS_RELEASE,
        XS_IS_DOMAIN_INTRODUCED,
        XS_RESUME,
        XS_SET_TARGET,
    ] {
        assert_eq!(s.handle(1, t, 0, b"1\0"), Err(XsdError::Eacces), "type {t}");
    }
    assert_eq!(
        s.handle(0, XS_IS_DOMAIN_INTRODUCED, 0, b"1\0").unwrap(),
        b"T\0"
    );
    assert_eq!(
        s.handle(0, XS_IS_DOMAIN_INTRODUCED, 0, b"9\0").unwrap(),
        b"F\0"
    );
    assert_eq!(s.handle(0, XS_RESUME, 0, b"0\0"), Err(XsdError::Einval));
    assert_eq!(s.handle(0, XS_RESUME, 0, b"9\0"), Err(XsdError::Enoent));
    assert_eq!(s.handle(0, XS_RESUME, 0, b"2\0").unwrap(), b"OK\0");
    // Not introduced: no connection.
    assert_eq!(s.handle(9, XS_READ, 0, b"/\0"), Err(XsdError::Eacces));
}

#[test]
fn get_domain_path_formats_like_c() {
    let mut s = store();
    let path = |s: &mut Store, arg: &[u8]| s.handle(1, XS_GET_DOMAIN_PATH, 0, arg);
    assert_eq!(path(&mut s, b"7\0").unwrap(), b"/local/domain/7\0");
    assert_eq!(path(&mut s, b"junk\0").unwrap(), b"/local/domain/0\0");
    assert_eq!(
        path(&mut s, b"-1\0").unwrap(),
        b"/local/domain/4294967295\0"
    );
    assert_eq!(path(&mut s, b"7"), Err(XsdError::Einval));
}

#[test]
fn oversize_replies_are_e2big() {
    let mut s = store();
    let big = std::vec![b'v'; XENSTORE_PAYLOAD_MAX as usize + 1];
    s.write("/big", &big).unwrap();
    assert_eq!(read(&mut s, 0, 0, "/big"), Err(XsdError::E2big));
    s.write("/fits", &big[1..]).unwrap();
    assert_eq!(
        read(&mut s, 0, 0, "/fits").unwrap().len(),
        XENSTORE_PAYLOAD_MAX as usize
    );
}

#[test]
fn directory_part_pages_through_a_large_directory() {
    let mut s = store();
    let names: Vec<String> = (0..300)
        .map(|i| std::format!("child-with-a-long-name-{i:04}"))
        .collect();
    for n in &names {
        s.mkdir(&std::format!("/big/{n}")).unwrap();
    }
    assert_eq!(dir(&mut s, 0, 0, "/big"), Err(XsdError::E2big));
    let mut got: Vec<String> = Vec::new();
    let mut off = 0usize;
    let mut generation = None;
    loop {
        let reply = s
            .handle(
                0,
                XS_DIRECTORY_PART,
                0,
                &z(&["/big", &std::format!("{off}")]),
            )
            .unwrap();
        assert!(reply.len() <= XENSTORE_PAYLOAD_MAX as usize);
        let parts = split(&reply);
        let g = parts[0].clone();
        assert_eq!(*generation.get_or_insert(g.clone()), g);
        let chunk = &parts[1..];
        if chunk.last().is_some_and(|c| c.is_empty()) {
            got.extend(chunk[..chunk.len() - 1].iter().cloned());
            break;
        }
        off += chunk.iter().map(|c| c.len() + 1).sum::<usize>();
        got.extend(chunk.iter().cloned());
        // A page holds as many names as fit (C: stop when `len + strlen(next) >= maxlen`).
        assert!(reply.len() + names[got.len()].len() >= XENSTORE_PAYLOAD_MAX as usize - 1);
    }
    assert_eq!(got, names);
    // Past the end: the generation and an empty list.
    let reply = s
        .handle(0, XS_DIRECTORY_PART, 0, &z(&["/big", "999999"]))
        .unwrap();
    assert!(reply.ends_with(b"\0\0"));
    assert_eq!(
        s.handle(0, XS_DIRECTORY_PART, 0, &z(&["/big"])),
        Err(XsdError::Einval)
    );
}

#[test]
fn directory_part_reply_format() {
    let mut s = store();
    s.mkdir("/s/a").unwrap();
    s.mkdir("/s/bb").unwrap();
    let reply = s.handle(0, XS_DIRECTORY_PART, 0, &z(&["/s", "0"])).unwrap();
    let generation = split(&reply)[0].clone();
    assert!(generation.parse::<u64>().is_ok());
    assert_eq!(reply, [generation.as_bytes(), b"\0a\0bb\0\0"].concat());
    let reply = s.handle(0, XS_DIRECTORY_PART, 0, &z(&["/s", "2"])).unwrap();
    assert_eq!(reply, [generation.as_bytes(), b"\0bb\0\0"].concat());
    // The generation changes with the child list.
    s.mkdir("/s/c").unwrap();
    let reply = s.handle(0, XS_DIRECTORY_PART, 0, &z(&["/s", "0"])).unwrap();
    assert_ne!(split(&reply)[0], generation);
}

#[test]
fn deep_trees_are_created_and_removed_without_recursion() {
    let mut s = store();
    let deep = std::format!("/deep{}", "/a".repeat(1000));
    s.write(&deep, b"bottom").unwrap();
    assert_eq!(s.paths().len(), 3 + 4 + 1001);
    let t = start(&mut s, 0);
    rm(&mut s, 0, t, "/deep/a").unwrap();
    end(&mut s, 0, t, true).unwrap();
    assert_eq!(s.read(&deep), None);
    s.write(&deep, b"again").unwrap();
    rm(&mut s, 0, 0, "/deep").unwrap();
    assert!(s.paths().iter().all(|p| !p.starts_with("/deep")));
}
