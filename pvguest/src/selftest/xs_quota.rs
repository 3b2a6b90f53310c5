//! Self-test group `xs-quota` (not part of `platform`): floods xenstore past C xenstored
//! 4.17's quotas from this guest, as a hostile guest would, and checks each answer: C's errno,
//! nothing stored by a refused request, and the guest's reads and deletes still served.
//!
//! The counts a guest reaches depend on what the toolstack gave it (nodes it already owns,
//! watches the kernel holds), so the tests check the errno and a bound, and log the counts.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicUsize, Ordering};

use super::platform::{Test, TestResult};
use crate::xen::time;
use crate::xen::xenstore::{self, Client};
use abi::io::xs_wire::XS_SET_PERMS;
use xenbus::Instant;
use xenbus::xenstore::{TxId, XsErrno, XsError, XsdError};

/// The tests, in order.
pub const TESTS: &[Test] = &[
    ("xs-quota-perms", perms),
    ("xs-quota-entry-size", entry_size),
    ("xs-quota-deep-write", deep_write),
    ("xs-quota-nodes", nodes),
    ("xs-quota-watches", watches),
    ("xs-quota-transactions", transactions),
    ("xs-quota-transaction-nodes", transaction_nodes),
    ("xs-quota-memory", memory),
];

/// Each test's deadline: a flood is a few thousand requests.
const TIMEOUT_MS: u64 = 120_000;

/// C xenstored 4.17's defaults.
const PERMS_PER_NODE: usize = 5;
const ENTRY_SIZE_MAX: usize = 2048;
const ENTRIES_PER_DOMAIN: usize = 1000;
const WATCHES_PER_DOMAIN: usize = 128;
const TRANSACTIONS_PER_DOMAIN: usize = 10;
const NODES_PER_TRANSACTION: usize = 1024;
/// C `quota_memory_per_domain_hard`.
const MEMORY_HARD: usize = 2 * 1024 * 1024 + 512 * 1024;

/// The node, transaction-node and memory quotas the floods expect: C's defaults, unless a
/// run started xenstored with smaller ones and said so ([`expect_quotas`]).
static EXPECTED_ENTRIES: AtomicUsize = AtomicUsize::new(ENTRIES_PER_DOMAIN);
static EXPECTED_TRANSACTION_NODES: AtomicUsize = AtomicUsize::new(NODES_PER_TRANSACTION);
static EXPECTED_MEMORY: AtomicUsize = AtomicUsize::new(MEMORY_HARD);

/// Makes the floods expect these quotas (C xenstored's `--entry-nb`, `--quota
/// transaction-nodes=`, `--quota memory=`): each must be refused within its quota, so a
/// xenstored that kept larger ones fails them.
pub fn expect_quotas(entries: usize, transaction_nodes: usize, memory: usize) {
    EXPECTED_ENTRIES.store(entries, Ordering::Relaxed);
    EXPECTED_TRANSACTION_NODES.store(transaction_nodes, Ordering::Relaxed);
    EXPECTED_MEMORY.store(memory, Ordering::Relaxed);
}

fn xs<R>(f: impl FnOnce(&mut Client, Instant) -> Result<R, String>) -> Result<R, String> {
    let deadline = time::deadline_ms(TIMEOUT_MS).map_err(|e| format!("clock: {e:?}"))?;
    xenstore::with(|c| f(c, deadline)).map_err(|e| e.to_string())?
}

/// The errno of a server's refusal; any other outcome is a failure described by `what`.
fn refused<T: core::fmt::Debug>(what: &str, r: Result<T, XsError>) -> Result<XsdError, String> {
    match r {
        Err(XsError::Server(XsErrno::Known(e))) => Ok(e),
        other => Err(format!("{what}: {other:?}")),
    }
}

fn expect(what: &str, got: XsdError, want: XsdError) -> TestResult {
    if got == want {
        Ok(())
    } else {
        Err(format!("{what}: {got:?}, expected {want:?}"))
    }
}

fn ok<T>(what: &str, r: Result<T, XsError>) -> Result<T, String> {
    r.map_err(|e| format!("{what}: {e:?}"))
}

/// `XS_SET_PERMS` of `path` with `n` entries: ourselves as owner, then read for domain 0.
fn set_perms(c: &mut Client, path: &str, me: u32, n: usize, d: Instant) -> Result<(), XsError> {
    let mut payload = format!("{path}\0n{me}\0").into_bytes();
    for _ in 1..n {
        payload.extend_from_slice(b"r0\0");
    }
    c.request(XS_SET_PERMS, TxId::NONE, &[&payload], d)
        .map(drop)
}

fn own_domid(c: &mut Client, d: Instant) -> Result<u32, String> {
    let text = ok("read domid", c.read(TxId::NONE, "domid", d))?;
    xenbus::xenstore::payload::parse_decimal(&text).ok_or_else(|| format!("domid {text:?}"))
}

fn perms() -> TestResult {
    const P: &str = "data/xsq-perms";
    xs(|c, d| {
        let me = own_domid(c, d)?;
        ok("write", c.write(TxId::NONE, P, "", d))?;
        ok("5 entries", set_perms(c, P, me, PERMS_PER_NODE, d))?;
        let e = refused("6 entries", set_perms(c, P, me, PERMS_PER_NODE + 1, d))?;
        expect("6 entries", e, XsdError::Enospc)?;
        let e = refused("1300 entries", set_perms(c, P, me, 1300, d))?;
        expect("1300 entries", e, XsdError::Enospc)?;
        let kept = ok("get_perms", c.get_perms(TxId::NONE, P, d))?.len();
        ok("rm", c.rm(TxId::NONE, P, d))?;
        if kept == PERMS_PER_NODE {
            Ok(())
        } else {
            Err(format!("{kept} entries after the refusals"))
        }
    })
}

fn entry_size() -> TestResult {
    const E: &str = "data/xsq-entry";
    xs(|c, d| {
        ok("write", c.write(TxId::NONE, E, "", d))?;
        // C's record: 24 bytes, 8 per permission entry, the value (no children here).
        let perms = ok("get_perms", c.get_perms(TxId::NONE, E, d))?.len();
        let max = ENTRY_SIZE_MAX - 1 - 24 - 8 * perms;
        ok("largest value", c.write(TxId::NONE, E, &"v".repeat(max), d))?;
        let e = refused(
            "one byte more",
            c.write(TxId::NONE, E, &"v".repeat(max + 1), d),
        )?;
        expect("one byte more", e, XsdError::Enospc)?;
        let e = refused("4000 bytes", c.write(TxId::NONE, E, &"v".repeat(4000), d))?;
        expect("4000 bytes", e, XsdError::Enospc)?;
        let kept = ok("read", c.read(TxId::NONE, E, d))?.len();
        ok("rm", c.rm(TxId::NONE, E, d))?;
        if kept == max {
            Ok(())
        } else {
            Err(format!("{kept} bytes kept, expected {max}"))
        }
    })
}

fn deep_write() -> TestResult {
    const D: &str = "data/xsq-deep";
    xs(|c, d| {
        let deep = format!("{D}{}", "/a".repeat(1000));
        let e = refused("1000 levels", c.write(TxId::NONE, &deep, "v", d))?;
        expect("1000 levels", e, XsdError::Enospc)?;
        match ok("read", c.read_optional(TxId::NONE, D, d))? {
            None => Ok(()),
            Some(_) => Err(String::from("the refused write left nodes")),
        }
    })
}

fn nodes() -> TestResult {
    const N: &str = "data/xsq-nodes";
    let quota = EXPECTED_ENTRIES.load(Ordering::Relaxed);
    xs(|c, d| {
        let mut made = 0;
        let errno = loop {
            // 100 to a directory keeps every child list below the entry size.
            let path = format!("{N}/{}/{}", made / 100, made % 100);
            match c.write(TxId::NONE, &path, "", d) {
                Ok(()) => made += 1,
                Err(e) => break refused("flood", Err::<(), _>(e))?,
            }
            if made > 2 * ENTRIES_PER_DOMAIN.max(quota) {
                return Err(String::from("never refused"));
            }
        };
        log::info!("xs-quota-nodes: {made} leaves written before {errno:?}");
        expect("flood", errno, XsdError::Enospc)?;
        // Still served: a read, a delete, and a write once there is room.
        ok("read", c.read(TxId::NONE, &format!("{N}/0/0"), d))?;
        ok("rm", c.rm(TxId::NONE, N, d))?;
        ok("write after rm", c.write(TxId::NONE, N, "", d))?;
        ok("rm again", c.rm(TxId::NONE, N, d))?;
        if made > quota {
            return Err(format!("{made} leaves written (quota {quota})"));
        }
        Ok(())
    })
}

fn watches() -> TestResult {
    const W: &str = "data/xsq-watch";
    xs(|c, d| {
        let mut tokens: Vec<String> = Vec::new();
        let errno = loop {
            let token = format!("xsq{}", tokens.len());
            match c.watch(W, &token, d) {
                Ok(()) => tokens.push(token),
                Err(e) => break refused("flood", Err::<(), _>(e))?,
            }
            if tokens.len() > 2 * WATCHES_PER_DOMAIN {
                break XsdError::Eperm;
            }
        };
        let added = tokens.len();
        for token in tokens {
            ok("unwatch", c.unwatch(W, &token, d))?;
        }
        log::info!("xs-quota-watches: {added} watches added before {errno:?}");
        expect("flood", errno, XsdError::E2big)?;
        // C compares with `>`: 129 fit, fewer if the kernel holds watches of its own.
        if !(WATCHES_PER_DOMAIN / 2..=WATCHES_PER_DOMAIN + 1).contains(&added) {
            return Err(format!("{added} watches added"));
        }
        Ok(())
    })
}

fn transactions() -> TestResult {
    xs(|c, d| {
        let mut open: Vec<TxId> = Vec::new();
        let errno = loop {
            match c.transaction_start(d) {
                Ok(tx) => open.push(tx),
                Err(e) => break refused("flood", Err::<(), _>(e))?,
            }
            if open.len() > 2 * TRANSACTIONS_PER_DOMAIN {
                break XsdError::Eperm;
            }
        };
        let started = open.len();
        for tx in open {
            ok("end", c.transaction_end(tx, false, d))?;
        }
        log::info!("xs-quota-transactions: {started} started before {errno:?}");
        expect("flood", errno, XsdError::Enospc)?;
        // C compares with `>`: 11 fit.
        if started != TRANSACTIONS_PER_DOMAIN + 1 {
            return Err(format!("{started} transactions started"));
        }
        Ok(())
    })
}

fn transaction_nodes() -> TestResult {
    let quota = EXPECTED_TRANSACTION_NODES.load(Ordering::Relaxed);
    xs(|c, d| {
        let tx = ok("start", c.transaction_start(d))?;
        let mut read = 0;
        let errno = loop {
            match c.read(tx, &format!("data/xsq-missing{read}"), d) {
                Err(XsError::Server(XsErrno::Known(XsdError::Enoent))) => read += 1,
                other => break refused("flood", other)?,
            }
            if read > 2 * NODES_PER_TRANSACTION.max(quota) {
                break XsdError::Eperm;
            }
        };
        log::info!("xs-quota-transaction-nodes: {read} reads before {errno:?}");
        expect("flood", errno, XsdError::Enospc)?;
        // The transaction failed: its commit is ENOMEM (C `trans->fail`).
        let e = refused("commit", c.transaction_end(tx, true, d))?;
        expect("commit", e, XsdError::Enomem)?;
        if read > quota {
            return Err(format!("{read} nodes read (quota {quota})"));
        }
        Ok(())
    })
}

fn memory() -> TestResult {
    const M: &str = "data/xsq-mem";
    let quota = EXPECTED_MEMORY.load(Ordering::Relaxed);
    xs(|c, d| {
        let top = format!("{M}/{}", "x".repeat(1200));
        let value = "v".repeat(2000);
        let mut made = 0;
        let errno = loop {
            let path = format!("{top}/d{:038}/n{:038}", made / 40, made % 40);
            match c.write(TxId::NONE, &path, &value, d) {
                Ok(()) => made += 1,
                Err(e) => break refused("flood", Err::<(), _>(e))?,
            }
            if made > ENTRIES_PER_DOMAIN {
                break XsdError::Eperm;
            }
        };
        log::info!("xs-quota-memory: {made} values of 2000 bytes written before {errno:?}");
        // C `write_node_raw` turns the accounting's ENOMEM into EIO.
        expect("flood", errno, XsdError::Eio)?;
        if made * value.len() > quota {
            return Err(format!(
                "{made} values of 2000 bytes under a {quota}-byte quota"
            ));
        }
        // Near the quota C refuses a reply over 16 bytes (it charges the reply while queued)
        // with ENOMEM; a short one is served, and so is a delete.
        let first = format!("{top}/d{:038}/n{:038}", 0, 0);
        match c.read(TxId::NONE, &first, d) {
            Ok(back) if back == value => log::info!("xs-quota-memory: the big read is served"),
            Err(XsError::Server(XsErrno::Known(XsdError::Enomem))) => {
                log::info!("xs-quota-memory: the big read is ENOMEM");
            }
            other => return Err(format!("read: {other:?}")),
        }
        ok("short read", c.read(TxId::NONE, "domid", d))?;
        ok("rm", c.rm(TxId::NONE, M, d))?;
        ok("write after rm", c.write(TxId::NONE, M, &value, d))?;
        let back = ok("read after rm", c.read(TxId::NONE, M, d))?;
        ok("rm again", c.rm(TxId::NONE, M, d))?;
        if back != value {
            return Err(String::from("read back a different value"));
        }
        Ok(())
    })
}
