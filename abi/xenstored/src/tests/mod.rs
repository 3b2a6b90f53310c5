//! Host tests of the server core, by area, with small request helpers.

mod nodes;
mod paths;
mod permissions;
mod props;
mod quotas;
mod transactions;
mod watches;

use crate::quota::Quotas;
use crate::{Domid, Store, WatchEvent, XsdError};
use abi::io::xs_wire::*;
use std::string::String;
use std::vec::Vec;

/// A store with domains 1 and 2 introduced, each owning its home.
fn store() -> Store {
    store_with(Quotas::default())
}

fn store_with(quotas: Quotas) -> Store {
    let mut s = Store::with_quotas(quotas);
    for d in [1, 2] {
        s.introduce(d);
        let home = Store::home(d);
        s.write(&home, b"").unwrap();
        s.set_perms(&home, std::vec![perm(d, 'n')]).unwrap();
    }
    s.take_events(0);
    s
}

fn perm(domid: Domid, letter: char) -> crate::Perm {
    let access = match letter {
        'n' => crate::Access::None,
        'r' => crate::Access::Read,
        'w' => crate::Access::Write,
        _ => crate::Access::Both,
    };
    crate::Perm { domid, access }
}

fn z(parts: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in parts {
        out.extend_from_slice(p.as_bytes());
        out.push(0);
    }
    out
}

fn read(s: &mut Store, conn: Domid, tx: u32, path: &str) -> Result<Vec<u8>, XsdError> {
    s.handle(conn, XS_READ, tx, &z(&[path]))
}

fn write(s: &mut Store, conn: Domid, tx: u32, path: &str, value: &str) -> Result<(), XsdError> {
    let mut payload = z(&[path]);
    payload.extend_from_slice(value.as_bytes());
    s.handle(conn, XS_WRITE, tx, &payload)
        .map(|r| assert_eq!(r, b"OK\0"))
}

fn rm(s: &mut Store, conn: Domid, tx: u32, path: &str) -> Result<(), XsdError> {
    s.handle(conn, XS_RM, tx, &z(&[path]))
        .map(|r| assert_eq!(r, b"OK\0"))
}

fn dir(s: &mut Store, conn: Domid, tx: u32, path: &str) -> Result<Vec<String>, XsdError> {
    let reply = s.handle(conn, XS_DIRECTORY, tx, &z(&[path]))?;
    Ok(split(&reply))
}

fn get_perms(s: &mut Store, conn: Domid, path: &str) -> Result<Vec<String>, XsdError> {
    let reply = s.handle(conn, XS_GET_PERMS, 0, &z(&[path]))?;
    Ok(split(&reply))
}

fn set_perms(s: &mut Store, conn: Domid, path: &str, perms: &[&str]) -> Result<(), XsdError> {
    let mut parts = std::vec![path];
    parts.extend_from_slice(perms);
    s.handle(conn, XS_SET_PERMS, 0, &z(&parts)).map(drop)
}

fn watch(s: &mut Store, conn: Domid, path: &str, token: &str) -> Result<(), XsdError> {
    s.handle(conn, XS_WATCH, 0, &z(&[path, token])).map(drop)
}

fn start(s: &mut Store, conn: Domid) -> u32 {
    let reply = s.handle(conn, XS_TRANSACTION_START, 0, &[0]).unwrap();
    std::str::from_utf8(&reply[..reply.len() - 1])
        .unwrap()
        .parse()
        .unwrap()
}

fn end(s: &mut Store, conn: Domid, tx: u32, commit: bool) -> Result<(), XsdError> {
    let arg = if commit { "T" } else { "F" };
    s.handle(conn, XS_TRANSACTION_END, tx, &z(&[arg])).map(drop)
}

fn split(reply: &[u8]) -> Vec<String> {
    let mut parts: Vec<String> = reply
        .split(|&b| b == 0)
        .map(|p| String::from_utf8(p.to_vec()).unwrap())
        .collect();
    // The final nul leaves an empty last piece.
    parts.pop();
    parts
}

fn ev(path: &str, token: &str) -> WatchEvent {
    WatchEvent {
        path: path.into(),
        token: token.into(),
    }
}
