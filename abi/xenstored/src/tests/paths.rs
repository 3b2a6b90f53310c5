//! Path validity and home-relative paths (C `is_valid_nodename`, `canonicalize`).

use super::*;
use crate::path::{is_valid_nodename, parent};

#[test]
fn valid_characters_and_shapes() {
    for ok in ["/", "/a", "/a/b-c_d@e/F9", "/local/domain/7/x"] {
        assert!(is_valid_nodename(ok), "{ok}");
    }
    for bad in [
        "", "a", "/a/", "/a//b", "/a b", "/a.b", "/a:b", "/ä", "/a\\b", "//",
    ] {
        assert!(!is_valid_nodename(bad), "{bad:?}");
    }
}

#[test]
fn length_limit_counts_from_a_domain_home() {
    let max = XENSTORE_REL_PATH_MAX as usize;
    let plain = std::format!("/{}", "a".repeat(max - 1));
    assert!(is_valid_nodename(&plain));
    assert!(!is_valid_nodename(&std::format!("{plain}b")));
    // Beneath /local/domain/<id>/ the limit applies to the rest only.
    let prefix = "/local/domain/12345/";
    let long = std::format!("{prefix}{}", "a".repeat(max));
    assert!(is_valid_nodename(&long));
    assert!(!is_valid_nodename(&std::format!("{long}b")));
    // Six digits are not a domain id for C's "%5u": the whole path counts.
    let six = std::format!("/local/domain/123456/{}", "a".repeat(max));
    assert!(!is_valid_nodename(&six));
}

#[test]
fn parents() {
    assert_eq!(parent("/"), "/");
    assert_eq!(parent("/a"), "/");
    assert_eq!(parent("/a/b/c"), "/a/b");
}

#[test]
fn canonical_resolves_relative_paths_and_rejects_bad_ones() {
    assert_eq!(
        Store::canonical(5, "device/vif").unwrap(),
        "/local/domain/5/device/vif"
    );
    assert_eq!(Store::canonical(5, "/abs").unwrap(), "/abs");
    assert_eq!(
        Store::canonical(5, "@releaseDomain").unwrap(),
        "@releaseDomain"
    );
    assert_eq!(Store::canonical(5, ""), Err(XsdError::Einval));
    assert_eq!(Store::canonical(5, "a/"), Err(XsdError::Einval));
    assert_eq!(Store::canonical(5, "a//b"), Err(XsdError::Einval));
    assert_eq!(Store::home(5), "/local/domain/5");
}

#[test]
fn relative_requests_use_the_connections_home() {
    let mut s = store();
    write(&mut s, 1, 0, "name", "one").unwrap();
    assert_eq!(s.read("/local/domain/1/name").unwrap(), b"one");
    assert_eq!(read(&mut s, 1, 0, "/local/domain/1/name").unwrap(), b"one");
    assert_eq!(read(&mut s, 2, 0, "name"), Err(XsdError::Enoent));
}

#[test]
fn special_paths_are_for_watches_only() {
    let mut s = store();
    assert_eq!(read(&mut s, 0, 0, "@releaseDomain"), Err(XsdError::Einval));
    assert_eq!(
        write(&mut s, 0, 0, "@introduceDomain", "x"),
        Err(XsdError::Einval)
    );
    assert_eq!(rm(&mut s, 0, 0, "@releaseDomain"), Err(XsdError::Einval));
    watch(&mut s, 0, "@releaseDomain", "r").unwrap();
    let long = std::format!("@{}", "x".repeat(XENSTORE_REL_PATH_MAX as usize));
    assert_eq!(watch(&mut s, 0, &long, "t"), Err(XsdError::Einval));
}
