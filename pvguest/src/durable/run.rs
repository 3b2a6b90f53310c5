//! The durable-storage run itself (kernel only): the store on `xvdb`, `kv-check`, then the
//! storm.

use alloc::format;
use alloc::string::String;

use storage::Slice;
use storage::kv::Store;

use super::{STORM_HOLD_MS, STORM_LEN, STORM_START, storm};
use crate::cmdline::option;
use crate::disk::{BlkDisk, Disk};
use crate::xen::{console, shutdown, time, xenstore};

/// The storm prints `KV progress <n> puts in <ms> ms` every this many puts (its rate).
const PROGRESS_EVERY: u64 = 128;

fn say(args: core::fmt::Arguments<'_>) {
    let _ = console::print(format_args!("{args}\n"));
}

/// Ends the run with a crash after saying why (the harness sees no `KV check done`).
fn fail(why: String) -> ! {
    say(format_args!("KV error {why}"));
    shutdown::crash()
}

/// How long the storm waits for the harness's `data/storm-go`.
const GO_WAIT_MS: u64 = 120_000;
/// Between two reads of it.
const GO_POLL_MS: u64 = 50;

/// Waits until `data/storm-go` in the domain's home is non-empty (the harness has read
/// blkback's flush counter), at most [`GO_WAIT_MS`]; a storm never told to go fails.
fn wait_for_go() {
    let Ok(deadline) = time::deadline_ms(GO_WAIT_MS) else {
        fail("no clock for the wait for data/storm-go".into())
    };
    loop {
        let Ok(read_by) = time::deadline_ms(5_000) else {
            fail("no clock".into())
        };
        let go = xenstore::with(|xs| {
            xs.read_optional(xenbus::TxId::NONE, "data/storm-go", read_by)
                .ok()
                .flatten()
                .is_some_and(|v| !v.is_empty())
        })
        .unwrap_or(false);
        if go {
            return;
        }
        if time::now().is_ok_and(|t| t >= deadline) {
            fail(format!("no data/storm-go within {GO_WAIT_MS} ms"));
        }
        if let Err(e) = time::sleep_ms(GO_POLL_MS) {
            fail(format!("sleep: {e:?}"));
        }
    }
}

/// Runs what the command line asks; never returns. `disk` is `xvdb` if the `blk` group left
/// it connected.
pub fn run(cmdline: &str, disk: Option<Disk>) -> ! {
    crate::kernel::ensure_platform();
    let mut disk = match disk {
        Some(d) => d,
        None => crate::disk::connect("xvdb").unwrap_or_else(|e| fail(e)),
    };
    let region = Slice::new(BlkDisk::new(&mut disk), STORM_START, STORM_LEN)
        .unwrap_or_else(|e| fail(format!("slice: {e:?}")));
    let mut store = Store::open(region).unwrap_or_else(|e| fail(format!("open: {e}")));
    if cmdline.split_ascii_whitespace().any(|w| w == "kv-check") {
        say(format_args!("KV check begin"));
        let keys = store.list();
        for key in &keys {
            match store.get(key) {
                Ok(Some(value)) => say(format_args!(
                    "KV found {} {}",
                    String::from_utf8_lossy(key),
                    String::from_utf8_lossy(&value)
                )),
                other => fail(format!("get {:?}: {other:?}", String::from_utf8_lossy(key))),
            }
        }
        say(format_args!("KV check done {}", keys.len()));
    }
    let Some(seed) = option(cmdline, "kv-storm") else {
        shutdown::poweroff()
    };
    let seed: u64 = seed
        .parse()
        .unwrap_or_else(|_| fail(format!("kv-storm={seed} is not a number")));
    say(format_args!("KV storm {seed} started"));
    // A pause before the first put lets the harness read blkback's flush counter first: with
    // `kv-storm-go`, until it says it has (`data/storm-go`), else a fixed hold.
    if cmdline.split_ascii_whitespace().any(|w| w == "kv-storm-go") {
        wait_for_go();
    } else if let Err(e) = time::sleep_ms(STORM_HOLD_MS) {
        fail(format!("sleep: {e:?}"));
    }
    let mut n = 0u64;
    let start = time::now().map_or(0, xenbus::Instant::as_nanos);
    loop {
        let (key, value) = (storm::key(seed, n), storm::value(seed, n));
        if let Err(e) = store.put(key.as_bytes(), value.as_bytes()) {
            fail(format!("put {n}: {e}"));
        }
        say(format_args!("KV ack {key} {value}"));
        n += 1;
        if n.is_multiple_of(PROGRESS_EVERY) {
            let ms = time::now().map_or(0, |t| t.as_nanos().saturating_sub(start) / 1_000_000);
            say(format_args!("KV progress {n} puts in {ms} ms"));
        }
    }
}
