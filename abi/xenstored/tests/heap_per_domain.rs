//! The heap one unprivileged domain can make the store hold when it pushes each quota as far
//! as it goes, measured with a counting allocator: it stays below
//! half of [`xenstored::quota::HEAP_PER_DOMAIN`] (the rest is margin), the number `hv` sizes
//! its heap by.
#![allow(clippy::unwrap_used, reason = "test")]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use abi::io::xs_wire::*;
use xenstored::Store;
use xenstored::quota::*;

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
/// One measurement at a time (the test harness runs tests on threads).
static ONE: Mutex<()> = Mutex::new(());

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let cost = layout.size() + PER_ALLOCATION;
        let live = LIVE.fetch_add(cost, Ordering::SeqCst) + cost;
        PEAK.fetch_max(live, Ordering::SeqCst);
        // SAFETY: the caller's contract is `System.alloc`'s.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() + PER_ALLOCATION, Ordering::SeqCst);
        // SAFETY: the caller's contract is `System.dealloc`'s.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Per allocation, what a heap spends beyond the bytes asked for (header, alignment and
/// rounding of a first-fit allocator such as hv's): counted with the bytes.
const PER_ALLOCATION: usize = 32;

fn z(parts: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in parts {
        out.extend_from_slice(p.as_bytes());
        out.push(0);
    }
    out
}

fn setup() -> Store {
    let mut s = Store::new();
    s.introduce(1);
    let home = Store::home(1);
    s.write(&home, b"").unwrap();
    s.set_perms(
        &home,
        vec![xenstored::Perm {
            domid: 1,
            access: xenstored::Access::None,
        }],
    )
    .unwrap();
    s
}

/// Runs `flood` (requests of domain 1, stopped while the store says the domain is over its
/// hard memory quota, as hv's connection layer does) and returns the peak heap it added.
fn measure(flood: impl FnOnce(&mut dyn FnMut(u32, u32, &[u8]) -> bool)) -> usize {
    let _one = ONE.lock().unwrap();
    let mut s = setup();
    let base = LIVE.load(Ordering::SeqCst);
    PEAK.store(base, Ordering::SeqCst);
    let mut request = |type_: u32, tx: u32, payload: &[u8]| -> bool {
        if s.memory_hard_exceeded(1) {
            return false;
        }
        let _ = s.handle(1, type_, tx, payload);
        s.take_events(1);
        true
    };
    flood(&mut request);
    PEAK.load(Ordering::SeqCst) - base
}

fn floods() -> Vec<(&'static str, usize)> {
    let mut out = Vec::new();
    // Big values on long paths until the memory quota refuses.
    out.push((
        "memory",
        measure(|r| {
            let top = "x".repeat(1200);
            for d in 0..40 {
                for n in 0..40 {
                    let mut p = z(&[&format!("{top}/d{d:038}/n{n:038}")]);
                    p.extend_from_slice(&[b'v'; 2000]);
                    r(XS_WRITE, 0, &p);
                }
            }
        }),
    ));
    // Many small nodes with one-letter names: the per-node overhead.
    out.push((
        "entries",
        measure(|r| {
            for i in 0..2 * ENTRIES_PER_DOMAIN {
                r(XS_WRITE, 0, &z(&[&format!("{}/{}", i / 50, i % 50), ""]));
            }
        }),
    ));
    // One deep write, then a deep write in each transaction, then reads of long missing paths
    // in transactions until the hard quota stalls the domain.
    out.push((
        "transactions",
        measure(|r| {
            let deep = vec!["a"; 998].join("/");
            r(XS_WRITE, 0, &z(&[&deep, ""]));
            for t in 1..=u32::try_from(TRANSACTIONS_PER_DOMAIN).unwrap() + 1 {
                // Transaction ids count from 1 on a new connection.
                r(XS_TRANSACTION_START, 0, &[0]);
                let deep = vec!["b"; 1000].join("/");
                r(XS_WRITE, t, &z(&[&deep, ""]));
                for i in 0..NODES_PER_TRANSACTION {
                    let long = format!("{}{i}", "m".repeat(2030));
                    if !r(XS_READ, t, &z(&[&long])) {
                        return;
                    }
                }
            }
        }),
    ));
    // Watches with the longest tokens.
    out.push((
        "watches",
        measure(|r| {
            for i in 0..2 * WATCHES_PER_DOMAIN {
                let token = format!("{i}{}", "t".repeat(3000));
                r(XS_WATCH, 0, &z(&["w", &token]));
            }
        }),
    ));
    out
}

#[test]
fn one_domain_at_its_quotas_stays_within_heap_per_domain() {
    let floods = floods();
    for (name, peak) in &floods {
        println!("{name}: peak {peak} bytes");
    }
    for (name, peak) in floods {
        assert!(
            peak * 2 <= HEAP_PER_DOMAIN,
            "{name}: {peak} bytes, more than half of {HEAP_PER_DOMAIN}"
        );
    }
}
