//! Self-tests (group `blk`) of `blkfront` against Linux's blkback on stock Xen: two disks
//! (`xvda` read-only, `xvdb` read-write) as the harness configured them (`blk-expect=`).
//!
//! Besides `TEST` lines the group prints, at column 0, what the harness checks from outside:
//! `BLK sha256 <disk> <bytes> <hex>` (the digest of what was read back whole) and
//! `BLK stats <disk> ...` (requests, notifications, grants), plus throughput as log lines.
//! The read-write disk gets the guest pattern [`guest_pattern`] over its first
//! [`GUEST_PATTERN_BYTES`]: the harness finds it in the image after shutdown.
//!
//! After the plain tests come the negotiated features, each with a `FACT` line of its counter
//! and passing either way of its command-line switch (on, the default, it must be used; off,
//! never): `blk-indirect` (`blk-indirect=off`), `blk-persistent` (`blk-persistent=off`),
//! `blk-discard` (`blk-discard=off`), `blk-multipage-ring` (`blk-multipage-ring=off`),
//! `blk-multiqueue` (`blk-multiqueue=off`). Last, when the harness asks for it
//! (`blk-resize=<bytes>`), `blk-resize` (`blk_resize.rs`): the read-write disk grown and shrunk
//! back under the guest.
#![allow(
    clippy::cast_possible_truncation,
    reason = "the guest pattern keeps the low bits on purpose; the kernel is x86_64 (usize is 64 bits)"
)]

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use blkfront::{BlkError, Blkfront, FlushMode, MAX_REQUEST_BYTES, Platform};
use sha2::{Digest, Sha256};
use spin::Mutex;
use storage::kv::{KvError, MAX_VALUE, Store};
use storage::tar::{Archive, Kind};
use storage::{BlockDevice, Slice};
use xenbus::grant::GrantAccess;
use xenbus::xenstore::{XsClient, XsTransport};
use xenbus::{Instant, frontend};

// `blk-resize`, a child module so that it shares the group's helpers.
#[path = "blk_resize.rs"]
mod resize;

use super::report::Reporter;
use super::run::ConsoleOut;
use crate::cmdline::option;
use crate::disk::{BlkDisk, Disk};
use crate::vbd::{self, ExpectedDisk};
use crate::xen::platform::{KernelEvents, KernelGrants, KernelPages};
use crate::xen::{console, time, xenstore};

/// Bytes of the pattern the guest writes at the start of the read-write disk.
pub const GUEST_PATTERN_BYTES: usize = 256 * 1024;

/// Byte `i` of the guest pattern (the harness computes the same).
pub fn guest_pattern(i: usize) -> u8 {
    // 251 is prime: the pattern does not repeat on any power-of-two boundary.
    (i % 251) as u8 ^ 0x5a
}

/// Deadline of each test.
const TIMEOUT_MS: u64 = 60_000;

/// The archive's manifest: `<sha256>  <path>` lines, as `sha256sum` prints them, for every
/// other regular file (the harness writes it into the archive).
pub const MANIFEST: &str = "MANIFEST.sha256";

/// Where `blk-kv`'s store lives on the read-write disk (after the guest pattern).
const KV_START: u64 = 1 << 20;
/// Its size.
const KV_LEN: u64 = 1 << 20;

/// Where `blk-indirect` writes on the read-write disk (after the guest pattern, before the
/// store of `blk-kv`).
const INDIRECT_AT: u64 = 512 * 1024;
/// How much it writes and reads back: one request of Linux blkfront's 32 indirect segments.
const INDIRECT_BYTES: usize = 128 * 1024;

/// Where `blk-persistent` writes on the read-write disk (after `blk-indirect`'s data).
const PERSISTENT_AT: u64 = 640 * 1024;
/// How much it writes (in 4 KiB requests) and reads back (in 16 KiB requests).
const PERSISTENT_BYTES: usize = 64 * 1024;

/// Where `blk-discard` writes, discards and writes again on the read-write disk (after
/// `blk-persistent`'s data, before `blk-kv`'s store).
const DISCARD_AT: u64 = 768 * 1024;
/// How much.
const DISCARD_BYTES: usize = 64 * 1024;

/// Where `blk-multipage-ring` writes and reads back on the read-write disk (after the guest
/// pattern, before `blk-indirect`'s data).
const MULTIPAGE_AT: u64 = 256 * 1024;
/// The 4 KiB requests it puts in flight at once: twice the 32 slots of a one-page ring.
const MULTIPAGE_REQUESTS: usize = 64;

/// Byte `i` of what `blk-indirect` writes.
fn indirect_pattern(i: usize) -> u8 {
    (i % 253) as u8 ^ 0xa5
}

/// The read-write disk, left connected by the group for the service and a durable-storage
/// run after it.
static RW_DISK: Mutex<Option<Disk>> = Mutex::new(None);
/// The read-only disk, left connected by the group for the service after it (the `net`
/// group), which closes it.
static RO_DISK: Mutex<Option<Disk>> = Mutex::new(None);

/// Takes the read-write disk the group left connected (once).
pub fn take_rw_disk() -> Option<Disk> {
    RW_DISK.lock().take()
}

/// Gives the read-write disk back for what runs next.
pub fn put_rw_disk(disk: Disk) {
    *RW_DISK.lock() = Some(disk);
}

/// Takes the read-only disk the group left connected (once).
pub fn take_ro_disk() -> Option<Disk> {
    RO_DISK.lock().take()
}

/// Closes `disk` (the close handshake with blkback; its ring grant ends once the backend has
/// let go).
pub fn close(disk: Disk) -> Result<(), String> {
    with_store(|xs, d| disk.close(xs, d).map_err(|e| format!("{e}")))
}

struct Connected {
    expected: ExpectedDisk<'static>,
    disk: Disk,
}

type TestResult = Result<(), String>;
/// A test of the group, on the connected disks.
type DiskTest = (&'static str, fn(&mut [Connected]) -> TestResult);

/// Runs the group (the disks come from `blk-expect=` on the kernel's command line).
pub fn run(rep: &mut Reporter<'_, ConsoleOut>) {
    let cmdline = crate::kernel::boot_state().map_or("", |b| b.cmdline());
    let grants_before = KernelGrants.grants_in_use();
    let mut disks = Vec::new();
    let connected = connect(cmdline, &mut disks);
    let ok = connected.is_ok();
    let _ = rep.record("blk-connect", connected);
    let tests: [DiskTest; 6] = [
        ("blk-geometry", geometry),
        ("blk-read-write", read_write),
        ("blk-flush", flush),
        ("blk-readonly-refused", readonly_refused),
        ("blk-tar", tar),
        ("blk-kv", kv),
    ];
    for (name, test) in tests {
        let result = if ok {
            test(&mut disks)
        } else {
            Err(String::from("not connected"))
        };
        let _ = rep.record(name, result);
    }
    let result = if ok {
        indirect(&mut disks, cmdline, rep)
    } else {
        Err(String::from("not connected"))
    };
    let _ = rep.record("blk-indirect", result);
    let result = if ok {
        persistent(&mut disks, cmdline, rep)
    } else {
        Err(String::from("not connected"))
    };
    let _ = rep.record("blk-persistent", result);
    let result = if ok {
        discard(&mut disks, cmdline, rep)
    } else {
        Err(String::from("not connected"))
    };
    let _ = rep.record("blk-discard", result);
    let result = if ok {
        multipage_ring(&mut disks, cmdline, rep)
    } else {
        Err(String::from("not connected"))
    };
    let _ = rep.record("blk-multipage-ring", result);
    let result = if ok {
        multiqueue(&mut disks, cmdline, rep)
    } else {
        Err(String::from("not connected"))
    };
    let _ = rep.record("blk-multiqueue", result);
    match resize::asked(cmdline) {
        Ok(None) => {}
        Ok(Some(bytes)) => {
            let result = if ok {
                resize::run(&mut disks, bytes, rep)
            } else {
                Err(String::from("not connected"))
            };
            let _ = rep.record("blk-resize", result);
        }
        Err(e) => {
            let _ = rep.record("blk-resize", Err(e));
        }
    }
    for c in &disks {
        let s = c.disk.stats();
        say(format_args!(
            "BLK stats {} requests {} notifications {} responses {} bad-responses {} data-grants {} quarantined {} timeouts {} (taken by the backend {})",
            c.expected.name,
            s.requests,
            s.notifications,
            s.responses,
            s.bad_responses,
            s.data_grants,
            s.quarantined_pages,
            s.timeouts,
            s.timeouts_taken
        ));
    }
    // Both disks stay connected: the read-write one so that blkback's counters (which it drops
    // on disconnect) are still there for the harness to read, and both for the service and the
    // durable-storage run after the group. The `net` group closes the read-only one after
    // serving (the close handshake with blkback).
    for c in disks {
        if c.expected.writable {
            *RW_DISK.lock() = Some(c.disk);
        } else {
            *RO_DISK.lock() = Some(c.disk);
        }
    }
    say(format_args!(
        "BLK grants before {grants_before} after {} (both disks kept connected)",
        KernelGrants.grants_in_use()
    ));
}

fn say(args: core::fmt::Arguments<'_>) {
    let _ = console::print(format_args!("{args}\n"));
}

fn deadline() -> Result<Instant, String> {
    time::deadline_ms(TIMEOUT_MS).map_err(|e| format!("clock: {e:?}"))
}

fn now_ns() -> u64 {
    time::now().map_or(0, Instant::as_nanos)
}

/// Runs `f` with the xenstore client and a fresh deadline.
fn with_store<R>(
    f: impl FnOnce(&mut xenstore::Client, Instant) -> Result<R, String>,
) -> Result<R, String> {
    let d = deadline()?;
    xenstore::with(|c| f(c, d)).map_err(|e| format!("xenstore: {e}"))?
}

fn connect(cmdline: &'static str, disks: &mut Vec<Connected>) -> TestResult {
    let value = option(cmdline, "blk-expect")
        .ok_or("no blk-expect= on the command line (the harness passes it)")?;
    let expected =
        vbd::parse_blk_expect(value).map_err(|i| format!("blk-expect entry {i} is malformed"))?;
    let ids = with_store(|xs, d| {
        frontend::enumerate(xs, "vbd", d).map_err(|e| format!("enumerate vbd: {e:?}"))
    })?;
    let features = crate::cmdline::blk_features(cmdline)?;
    let mut want: Vec<u32> = expected.iter().map(|e| e.devid).collect();
    want.sort_unstable();
    if ids != want {
        return Err(format!("device/vbd lists {ids:?}, expected {want:?}"));
    }
    for e in expected {
        let platform = Platform {
            pages: KernelPages::new(),
            grants: KernelGrants,
            events: KernelEvents,
        };
        let disk = with_store(|xs, d| {
            Blkfront::connect_with(xs, e.devid, platform, features, d)
                .map_err(|err| format!("{}: {err}", e.name))
        })?;
        let info = disk.info();
        log::info!(
            "blk-connect: {} ({}): {} bytes, sector {} / physical {}, info {:#x}, {}, flush {:?}, port {}",
            e.name,
            e.devid,
            info.bytes(),
            info.sector_size,
            info.physical_sector_size,
            info.info,
            if info.readonly {
                "read-only"
            } else {
                "read-write"
            },
            info.flush,
            disk.port().get()
        );
        disks.push(Connected { expected: e, disk });
    }
    Ok(())
}

fn geometry(disks: &mut [Connected]) -> TestResult {
    for c in disks.iter() {
        let info = c.disk.info();
        let e = &c.expected;
        if info.bytes() != e.bytes || info.readonly == e.writable || info.sector_size != 512 {
            return Err(format!(
                "{}: backend says {} bytes, {}, sector {}; the harness configured {} bytes, {}",
                e.name,
                info.bytes(),
                if info.readonly { "r" } else { "w" },
                info.sector_size,
                e.bytes,
                if e.writable { "w" } else { "r" }
            ));
        }
    }
    Ok(())
}

fn find(disks: &mut [Connected], writable: bool) -> Result<&mut Connected, String> {
    disks
        .iter_mut()
        .find(|c| c.expected.writable == writable)
        .ok_or_else(|| {
            format!(
                "no {} disk",
                if writable { "writable" } else { "read-only" }
            )
        })
}

/// Submits `chunks` (offset, length, data for writes) with up to `depth` in flight, waiting
/// for completions as the ring fills; returns what each read gave, in order, and the time.
fn stream<T: XsTransport>(
    disk: &mut Disk,
    xs: &mut XsClient<T>,
    deadline: Instant,
    chunks: &[(u64, usize)],
    write: Option<&dyn Fn(usize) -> u8>,
    depth: usize,
) -> Result<(Vec<Vec<u8>>, u64), String> {
    let start = now_ns();
    let mut pending = alloc::collections::VecDeque::new();
    let mut out = Vec::with_capacity(chunks.len());
    for &(offset, len) in chunks {
        if pending.len() >= depth || !disk.can_submit() {
            let id = pending
                .pop_front()
                .ok_or("ring full with nothing in flight")?;
            out.push(
                disk.wait_for(xs, id, deadline)
                    .map_err(|e| format!("{e}"))?,
            );
        }
        let id = match write {
            Some(pattern) => {
                let data: Vec<u8> = (0..len).map(|i| pattern(offset as usize + i)).collect();
                disk.submit_write(offset, &data)
            }
            None => disk.submit_read(offset, len),
        }
        .map_err(|e| format!("submit at {offset}: {e}"))?;
        pending.push_back(id);
    }
    for id in pending {
        out.push(
            disk.wait_for(xs, id, deadline)
                .map_err(|e| format!("{e}"))?,
        );
    }
    Ok((out, now_ns().saturating_sub(start)))
}

fn chunks(total: usize, size: usize) -> Vec<(u64, usize)> {
    (0..total)
        .step_by(size)
        .map(|o| (o as u64, size.min(total - o)))
        .collect()
}

fn kib_per_s(bytes: usize, ns: u64) -> u64 {
    (bytes as u64).saturating_mul(1_000_000_000) / ns.max(1) / 1024
}

fn read_write(disks: &mut [Connected]) -> TestResult {
    // The read-only disk: read whole at queue depth 1 and at the ring's depth, digest it.
    let ro = find(disks, false)?;
    let bytes = usize::try_from(ro.expected.bytes).map_err(|_| "disk too large")?;
    let (qd1, qd1_ns) =
        with_store(|xs, d| stream(&mut ro.disk, xs, d, &chunks(bytes, 4096), None, 1))?;
    let (qdn, qdn_ns) = with_store(|xs, d| {
        stream(
            &mut ro.disk,
            xs,
            d,
            &chunks(bytes, MAX_REQUEST_BYTES),
            None,
            32,
        )
    })?;
    let whole: Vec<u8> = qdn.concat();
    if qd1.concat() != whole {
        return Err(format!(
            "{}: reads at depth 1 and 32 differ",
            ro.expected.name
        ));
    }
    let digest = Sha256::digest(&whole);
    say(format_args!(
        "BLK sha256 {} {} {}",
        ro.expected.name,
        whole.len(),
        Hex(&digest)
    ));
    log::info!(
        "blk-read-write: read {bytes} bytes: depth 1 (4 KiB) {} KiB/s, depth 32 (44 KiB) {} KiB/s",
        kib_per_s(bytes, qd1_ns),
        kib_per_s(bytes, qdn_ns)
    );

    // The read-write disk: the guest pattern at depth 1 and depth 32, read back.
    let rw = find(disks, true)?;
    let half = GUEST_PATTERN_BYTES / 2;
    let shifted = |i: usize| guest_pattern(i).wrapping_add(1);
    let (_, w1_ns) =
        with_store(|xs, d| stream(&mut rw.disk, xs, d, &chunks(half, 4096), Some(&shifted), 1))?;
    let (_, wn_ns) = with_store(|xs, d| {
        stream(
            &mut rw.disk,
            xs,
            d,
            &chunks(GUEST_PATTERN_BYTES, MAX_REQUEST_BYTES),
            Some(&guest_pattern),
            32,
        )
    })?;
    let (back, rn_ns) = with_store(|xs, d| {
        stream(
            &mut rw.disk,
            xs,
            d,
            &chunks(GUEST_PATTERN_BYTES, MAX_REQUEST_BYTES),
            None,
            32,
        )
    })?;
    let back = back.concat();
    if let Some(i) = (0..GUEST_PATTERN_BYTES).find(|&i| back.get(i) != Some(&guest_pattern(i))) {
        return Err(format!(
            "{}: byte {i} read back differs from what was written",
            rw.expected.name
        ));
    }
    let s = rw.disk.stats();
    log::info!(
        "blk-read-write: write {half} bytes at depth 1 (4 KiB): {} KiB/s; {GUEST_PATTERN_BYTES} at depth 32: write {} KiB/s, read {} KiB/s; {} requests on {} notifications",
        kib_per_s(half, w1_ns),
        kib_per_s(GUEST_PATTERN_BYTES, wn_ns),
        kib_per_s(GUEST_PATTERN_BYTES, rn_ns),
        s.requests,
        s.notifications
    );
    for c in disks.iter() {
        let s = c.disk.stats();
        if s.data_grants != 0 || s.bad_responses != 0 {
            return Err(format!(
                "{}: {} data grants left, {} bad responses",
                c.expected.name, s.data_grants, s.bad_responses
            ));
        }
    }
    Ok(())
}

/// Indirect descriptors: 128 KiB written and read back on the read-write disk in requests as
/// large as negotiated. With the feature on (the default) Linux blkback's offer of 256 segments
/// must give Linux blkfront's 32, and each transfer one `BLKIF_OP_INDIRECT` request; with
/// `blk-indirect=off` none may be sent. Facts: the segments in use and the indirect requests.
fn indirect(
    disks: &mut [Connected],
    cmdline: &str,
    rep: &mut Reporter<'_, ConsoleOut>,
) -> TestResult {
    let wanted = crate::cmdline::blk_features(cmdline)?.indirect;
    let rw = find(disks, true)?;
    let segments = rw.disk.indirect_segments();
    let step = rw.disk.max_request_bytes();
    let before = rw.disk.stats().indirect_requests;
    let data: Vec<u8> = (0..INDIRECT_BYTES).map(indirect_pattern).collect();
    let mut back = alloc::vec![0u8; INDIRECT_BYTES];
    with_store(|xs, d| {
        for (i, chunk) in data.chunks(step).enumerate() {
            let at = INDIRECT_AT + (i * step) as u64;
            rw.disk
                .write(xs, at, chunk, d)
                .map_err(|e| format!("write at {at}: {e}"))?;
        }
        for (i, chunk) in back.chunks_mut(step).enumerate() {
            let at = INDIRECT_AT + (i * step) as u64;
            let got = rw
                .disk
                .read(xs, at, chunk.len(), d)
                .map_err(|e| format!("read at {at}: {e}"))?;
            chunk.copy_from_slice(got.get(..chunk.len()).ok_or("short read")?);
        }
        Ok(())
    })?;
    let used = rw.disk.stats().indirect_requests.saturating_sub(before);
    let _ = rep.fact("blk-indirect", "segments", segments);
    let _ = rep.fact("blk-indirect", "requests", used);
    if let Some(i) = (0..INDIRECT_BYTES).find(|&i| back[i] != data[i]) {
        return Err(format!("byte {i} read back differs from what was written"));
    }
    let offered = rw.disk.info().max_indirect_segments;
    match (wanted, segments, used) {
        (true, 32, 2) | (false, 0, 0) => {}
        _ => {
            return Err(format!(
                "indirect {}, backend offered {offered} segments: {segments} in use, {used} indirect requests",
                if wanted { "on" } else { "off" }
            ));
        }
    }
    if segments > 0 {
        // Throughput, for the note: the read-only disk whole in requests of each size.
        let ro = find(disks, false)?;
        let bytes = usize::try_from(ro.expected.bytes).map_err(|_| "disk too large")?;
        let (_, direct_ns) = with_store(|xs, d| {
            stream(
                &mut ro.disk,
                xs,
                d,
                &chunks(bytes, MAX_REQUEST_BYTES),
                None,
                32,
            )
        })?;
        let (_, indirect_ns) =
            with_store(|xs, d| stream(&mut ro.disk, xs, d, &chunks(bytes, step), None, 32))?;
        log::info!(
            "blk-indirect: read {bytes} bytes at depth 32: 44 KiB requests {} KiB/s, {} KiB indirect requests {} KiB/s",
            kib_per_s(bytes, direct_ns),
            step / 1024,
            kib_per_s(bytes, indirect_ns)
        );
    }
    Ok(())
}

/// Persistent grants: 64 KiB written in 4 KiB requests and read back in 16 KiB ones on the
/// read-write disk. With the feature on (the default) Linux blkback's `feature-persistent`
/// must be negotiated and every page must be one of the pool the earlier tests filled (32
/// reuses, no new grant); with `blk-persistent=off` there is no pool. Facts: whether it was
/// negotiated and the reuses.
fn persistent(
    disks: &mut [Connected],
    cmdline: &str,
    rep: &mut Reporter<'_, ConsoleOut>,
) -> TestResult {
    let wanted = crate::cmdline::blk_features(cmdline)?.persistent;
    let rw = find(disks, true)?;
    let before = rw.disk.stats();
    let grants_before = KernelGrants.grants_in_use();
    let data: Vec<u8> = (0..PERSISTENT_BYTES)
        .map(|i| indirect_pattern(i).wrapping_add(7))
        .collect();
    let mut back = alloc::vec![0u8; PERSISTENT_BYTES];
    with_store(|xs, d| {
        for (i, chunk) in data.chunks(4096).enumerate() {
            let at = PERSISTENT_AT + (i * 4096) as u64;
            rw.disk
                .write(xs, at, chunk, d)
                .map_err(|e| format!("write at {at}: {e}"))?;
        }
        for (i, chunk) in back.chunks_mut(16 * 1024).enumerate() {
            let at = PERSISTENT_AT + (i * 16 * 1024) as u64;
            let got = rw
                .disk
                .read(xs, at, chunk.len(), d)
                .map_err(|e| format!("read at {at}: {e}"))?;
            chunk.copy_from_slice(got.get(..chunk.len()).ok_or("short read")?);
        }
        Ok(())
    })?;
    let after = rw.disk.stats();
    let reused = after
        .persistent_reused
        .saturating_sub(before.persistent_reused);
    let granted = after
        .persistent_grants
        .saturating_sub(before.persistent_grants);
    let negotiated = rw.disk.persistent();
    let _ = rep.fact("blk-persistent", "negotiated", u8::from(negotiated));
    let _ = rep.fact("blk-persistent", "reused", reused);
    log::info!(
        "blk-persistent: {} persistent grants held on {}, {} reused in all",
        after.persistent_grants,
        rw.expected.name,
        after.persistent_reused
    );
    if let Some(i) = (0..PERSISTENT_BYTES).find(|&i| back[i] != data[i]) {
        return Err(format!("byte {i} read back differs from what was written"));
    }
    let grants_after = KernelGrants.grants_in_use();
    let pages = (2 * PERSISTENT_BYTES / 4096) as u64;
    let expected = if wanted {
        (true, pages, 0, grants_before)
    } else {
        (false, 0, 0, grants_before)
    };
    let got = (negotiated, reused, granted, grants_after);
    if got != expected || (!wanted && after.persistent_grants != 0) {
        return Err(format!(
            "persistent {}: negotiated {negotiated}, {reused} reused, {granted} granted, grants {grants_before} -> {grants_after}; expected {expected:?}",
            if wanted { "on" } else { "off" },
        ));
    }
    Ok(())
}

/// Discard: 64 KiB written, discarded (one `BLKIF_OP_DISCARD`, answered OKAY), written again
/// and read back on the read-write disk (what a discarded range reads as is not promised, so
/// it is not checked). With the feature on (the default) Linux blkback must offer
/// `feature-discard` (it does when the loop device over dom0's tmpfs file supports discard);
/// with `blk-discard=off` the front end refuses to send one. Facts: whether it was offered
/// and used, and the discards sent.
fn discard(
    disks: &mut [Connected],
    cmdline: &str,
    rep: &mut Reporter<'_, ConsoleOut>,
) -> TestResult {
    let wanted = crate::cmdline::blk_features(cmdline)?.discard;
    let rw = find(disks, true)?;
    let before = rw.disk.stats().discards;
    let usable = rw.disk.can_discard();
    if let Some(d) = rw.disk.info().discard {
        log::info!(
            "blk-discard: {} offers discard: granularity {}, alignment {}, secure {}",
            rw.expected.name,
            d.granularity,
            d.alignment,
            d.secure
        );
    }
    let data: Vec<u8> = (0..DISCARD_BYTES)
        .map(|i| indirect_pattern(i).wrapping_add(13))
        .collect();
    let len = DISCARD_BYTES as u64;
    let sent = with_store(|xs, d| {
        rw.disk
            .write(
                xs,
                DISCARD_AT,
                &data[..MAX_REQUEST_BYTES.min(DISCARD_BYTES)],
                d,
            )
            .map_err(|e| format!("write: {e}"))?;
        let sent = rw.disk.discard(xs, DISCARD_AT, len, false, d);
        for (i, chunk) in data.chunks(MAX_REQUEST_BYTES).enumerate() {
            let at = DISCARD_AT + (i * MAX_REQUEST_BYTES) as u64;
            rw.disk
                .write(xs, at, chunk, d)
                .map_err(|e| format!("write again at {at}: {e}"))?;
        }
        Ok(sent)
    })?;
    let back = with_store(|xs, d| {
        let mut back = Vec::with_capacity(DISCARD_BYTES);
        for (i, chunk) in data.chunks(MAX_REQUEST_BYTES).enumerate() {
            let at = DISCARD_AT + (i * MAX_REQUEST_BYTES) as u64;
            back.extend(
                rw.disk
                    .read(xs, at, chunk.len(), d)
                    .map_err(|e| format!("read at {at}: {e}"))?,
            );
        }
        Ok(back)
    })?;
    let discards = rw.disk.stats().discards.saturating_sub(before);
    let _ = rep.fact("blk-discard", "usable", u8::from(usable));
    let _ = rep.fact("blk-discard", "discards", discards);
    if back != data {
        return Err(String::from(
            "what was written after the discard reads back differently",
        ));
    }
    match (wanted, usable, sent, discards) {
        (true, true, Ok(()), 1) => Ok(()),
        (false, false, Err(BlkError::NotSupported), 0) => Ok(()),
        (wanted, usable, sent, discards) => Err(format!(
            "discard {}: offered {}, usable {usable}, the discard gave {sent:?}, {discards} sent",
            if wanted { "on" } else { "off" },
            rw.disk.info().discard.is_some()
        )),
    }
}

/// Multi-page rings: 64 writes of 4 KiB submitted before any is waited for, then 64 reads of
/// them the same way, on the read-write disk. With the feature on (the default) the backend's
/// `max-ring-page-order` (Linux blkback offers 4) must give blkfront's own largest order, 2: a
/// ring of 4 pages and 128 slots, so all 64 are in flight at once; with
/// `blk-multipage-ring=off` the ring is one page and at most its 32 slots are. Facts: the ring's
/// pages and the most requests in flight at once.
fn multipage_ring(
    disks: &mut [Connected],
    cmdline: &str,
    rep: &mut Reporter<'_, ConsoleOut>,
) -> TestResult {
    let wanted = crate::cmdline::blk_features(cmdline)?.max_ring_page_order > 0;
    let rw = find(disks, true)?;
    let pages = rw.disk.stats().ring_pages;
    // What the backend offered, for the log (read as the front end found it).
    let offered = with_store(|xs, d| {
        let none = xenbus::xenstore::TxId::NONE;
        let node = format!("device/vbd/{}/backend", rw.expected.devid);
        Ok(match xs.read_optional(none, &node, d).ok().flatten() {
            Some(backend) => xs
                .read_optional(none, &format!("{backend}/max-ring-page-order"), d)
                .ok()
                .flatten(),
            None => None,
        })
    })?;
    let data: Vec<u8> = (0..MULTIPAGE_REQUESTS * 4096)
        .map(|i| indirect_pattern(i).wrapping_add(29))
        .collect();
    let t0 = now_ns();
    let (most_writes, _) = with_store(|xs, d| {
        let blocks: Vec<(u64, Option<&[u8]>)> = data
            .chunks(4096)
            .enumerate()
            .map(|(i, c)| (MULTIPAGE_AT + (i * 4096) as u64, Some(c)))
            .collect();
        all_at_once(&mut rw.disk, xs, d, &blocks)
    })?;
    let t1 = now_ns();
    let (most_reads, back) = with_store(|xs, d| {
        let blocks: Vec<(u64, Option<&[u8]>)> = (0..MULTIPAGE_REQUESTS)
            .map(|i| (MULTIPAGE_AT + (i * 4096) as u64, None))
            .collect();
        all_at_once(&mut rw.disk, xs, d, &blocks)
    })?;
    let t2 = now_ns();
    let most = most_writes.min(most_reads);
    let peak = rw.disk.stats().peak_in_flight;
    let bytes = MULTIPAGE_REQUESTS * 4096;
    let _ = rep.fact("blk-multipage-ring", "pages", pages);
    let _ = rep.fact("blk-multipage-ring", "in-flight", most);
    log::info!(
        "blk-multipage-ring: {} offers max-ring-page-order {}; {pages} ring pages, {most} requests in flight at once (peak {peak}); {MULTIPAGE_REQUESTS} x 4 KiB writes {} KiB/s, reads {} KiB/s",
        rw.expected.name,
        offered.as_deref().unwrap_or("(none)"),
        kib_per_s(bytes, t1.saturating_sub(t0)),
        kib_per_s(bytes, t2.saturating_sub(t1))
    );
    if back.concat() != data {
        return Err(String::from("what was written reads back differently"));
    }
    match (wanted, pages, most) {
        (true, 4, MULTIPAGE_REQUESTS) if peak >= MULTIPAGE_REQUESTS as u64 => Ok(()),
        (false, 1, 32) if peak <= 32 => Ok(()),
        _ => Err(format!(
            "multi-page ring {}: backend offered order {}, {pages} ring pages, {most} in flight at once, peak {peak}",
            if wanted { "on" } else { "off" },
            offered.as_deref().unwrap_or("(none)")
        )),
    }
}

/// 4 KiB reads `blk-multiqueue` puts on the read-write disk (32 at a time: what one ring of
/// one page holds, so that the same depth is measured with the feature off): the IOPS row.
const MULTIQUEUE_READS: usize = 256;
/// Bytes it reads in requests as large as they may be (16 at a time): the sequential row.
const MULTIQUEUE_SEQUENTIAL: usize = 2 << 20;

/// Multiple queues: [`MULTIQUEUE_READS`] 4 KiB reads at depth 32, then
/// [`MULTIQUEUE_SEQUENTIAL`] bytes in the largest requests at depth 16, on the read-write
/// disk, counting what each queue took. With the feature on (the default) the backend's
/// `multi-queue-max-queues` (Linux blkback with `xen_blkback.max_queues=2` on stock Xen, hv's
/// blkback offering 2) must give more than one queue, and every queue must have completed
/// requests (blkfront spreads them round-robin); with `blk-multiqueue=off` there is one queue.
/// Facts: the queues and how many of them completed requests. The log line gives the IOPS and
/// the sequential rate (the benchmark rows, with the feature on here and off in the harness's
/// features-off run).
fn multiqueue(
    disks: &mut [Connected],
    cmdline: &str,
    rep: &mut Reporter<'_, ConsoleOut>,
) -> TestResult {
    let wanted = crate::cmdline::blk_features(cmdline)?.max_queues > 1;
    let rw = find(disks, true)?;
    let before = rw.disk.stats();
    let queues = before.queues;
    let small = chunks(MULTIQUEUE_READS * 4096, 4096);
    let (_, small_ns) = with_store(|xs, d| stream(&mut rw.disk, xs, d, &small, None, 32))?;
    let step = rw.disk.max_request_bytes();
    let large = chunks(MULTIQUEUE_SEQUENTIAL, step);
    let (_, large_ns) = with_store(|xs, d| stream(&mut rw.disk, xs, d, &large, None, 16))?;
    let after = rw.disk.stats();
    let moved: Vec<u64> = after
        .queue_requests
        .iter()
        .zip(before.queue_requests.iter())
        .map(|(a, b)| a.saturating_sub(*b))
        .collect();
    let used = moved.iter().filter(|&&n| n > 0).count() as u64;
    let iops = (MULTIQUEUE_READS as u64).saturating_mul(1_000_000_000) / small_ns.max(1);
    let _ = rep.fact("blk-multiqueue", "queues", queues);
    let _ = rep.fact("blk-multiqueue", "used", used);
    log::info!(
        "blk-multiqueue: {} queues, requests by queue {moved:?}; {MULTIQUEUE_READS} x 4 KiB reads at depth 32 {iops} IOPS; {} KiB sequential reads in {} KiB requests at depth 16 {} KiB/s",
        queues,
        MULTIQUEUE_SEQUENTIAL / 1024,
        step / 1024,
        kib_per_s(MULTIQUEUE_SEQUENTIAL, large_ns)
    );
    match (wanted, queues, used) {
        (true, q, u) if q > 1 && u == q => Ok(()),
        (false, 1, 1) => Ok(()),
        _ => Err(format!(
            "multiple queues {}: {queues} queues, requests by queue {moved:?}",
            if wanted { "on" } else { "off" }
        )),
    }
}

/// Submits the blocks (offset, data for a write or `None` for a 4 KiB read) in batches: as
/// many as the ring takes without waiting, then every one of them waited for, then the next
/// batch (request ids are ring slots, reused once completed: no id is submitted again while
/// its earlier completion is undelivered). The most requests in flight at once, and what the
/// reads gave, in order.
fn all_at_once<T: XsTransport>(
    disk: &mut Disk,
    xs: &mut XsClient<T>,
    deadline: Instant,
    blocks: &[(u64, Option<&[u8]>)],
) -> Result<(usize, Vec<Vec<u8>>), String> {
    let mut out = Vec::with_capacity(blocks.len());
    let mut most = 0;
    let mut next = blocks.iter();
    let mut left = blocks.len();
    while left > 0 {
        let mut batch = Vec::new();
        while disk.can_submit() && batch.len() < left {
            let Some(&(offset, data)) = next.next() else {
                break;
            };
            let id = match data {
                Some(data) => disk.submit_write(offset, data),
                None => disk.submit_read(offset, 4096),
            }
            .map_err(|e| format!("submit at {offset}: {e}"))?;
            batch.push(id);
            most = most.max(disk.in_flight());
        }
        if batch.is_empty() {
            return Err(String::from(
                "the ring takes no request with nothing in flight",
            ));
        }
        left -= batch.len();
        for id in batch {
            out.push(
                disk.wait_for(xs, id, deadline)
                    .map_err(|e| format!("{e}"))?,
            );
        }
    }
    Ok((most, out))
}

fn flush(disks: &mut [Connected]) -> TestResult {
    let rw = find(disks, true)?;
    if rw.disk.info().flush != FlushMode::FlushCache {
        return Err(format!(
            "{}: blkback offered {:?}, not feature-flush-cache",
            rw.expected.name,
            rw.disk.info().flush
        ));
    }
    with_store(|xs, d| rw.disk.flush(xs, d).map_err(|e| format!("flush: {e}")))
}

fn readonly_refused(disks: &mut [Connected]) -> TestResult {
    let ro = find(disks, false)?;
    let data = [0xeeu8; 512];
    match with_store(|xs, d| Ok(ro.disk.write(xs, 0, &data, d))) {
        Ok(Err(BlkError::ReadOnly)) => {}
        other => return Err(format!("local guard: write gave {other:?}")),
    }
    let answer = with_store(|xs, d| {
        let id = ro
            .disk
            .submit_write_unguarded(0, &data)
            .map_err(|e| format!("raw write: {e}"))?;
        Ok(ro.disk.wait_for(xs, id, d))
    })?;
    match answer {
        Err(BlkError::IoError) => Ok(()),
        other => Err(format!(
            "a raw write to the read-only disk gave {other:?}, expected BLKIF_RSP_ERROR"
        )),
    }
}

/// Every regular file of the archive on the read-only disk read on demand and checked
/// against the manifest the harness put in it.
fn tar(disks: &mut [Connected]) -> TestResult {
    let ro = find(disks, false)?;
    let mut dev = BlkDisk::new(&mut ro.disk);
    let archive = Archive::index(&mut dev).map_err(|e| format!("index: {e}"))?;
    let manifest = archive
        .read_file(&mut dev, MANIFEST)
        .map_err(|e| format!("{MANIFEST}: {e}"))?;
    let manifest =
        core::str::from_utf8(&manifest).map_err(|_| format!("{MANIFEST} is not text"))?;
    let mut listed = 0usize;
    let mut bytes = 0u64;
    for line in manifest.lines() {
        let (digest, path) = line
            .split_once("  ")
            .ok_or_else(|| format!("{MANIFEST}: bad line {line:?}"))?;
        let path = path.strip_prefix("./").unwrap_or(path);
        let size = archive
            .file_size::<BlkError>(path)
            .map_err(|e| format!("{path}: {e}"))?;
        let mut hasher = Sha256::new();
        let mut buf = alloc::vec![0u8; 32 * 1024];
        let mut pos = 0u64;
        loop {
            let n = archive
                .read_at(&mut dev, path, pos, &mut buf)
                .map_err(|e| format!("{path} at {pos}: {e}"))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            pos += n as u64;
        }
        let got = format!("{}", Hex(&hasher.finalize()));
        if got != digest || pos != size {
            return Err(format!(
                "{path}: {pos} of {size} bytes, sha256 {got}, manifest {digest}"
            ));
        }
        listed += 1;
        bytes += size;
    }
    let files = archive
        .entries()
        .filter(|(path, e)| e.kind == Kind::File && *path != MANIFEST)
        .count();
    say(format_args!("BLK tar {files} files {bytes} bytes checked"));
    if files != listed || files == 0 {
        return Err(format!(
            "the archive has {files} files, the manifest lists {listed}"
        ));
    }
    Ok(())
}

/// The key-value store on the read-write disk: put, get, overwrite, delete, list, a value at
/// the size limit and one over it, and the same after reopening (recovery).
fn kv(disks: &mut [Connected]) -> TestResult {
    let rw = find(disks, true)?;
    let region = Slice::new(BlkDisk::new(&mut rw.disk), KV_START, KV_LEN)
        .map_err(|e| format!("slice: {e:?}"))?;
    let mut store = Store::open(region).map_err(|e| format!("open: {e}"))?;
    let big = alloc::vec![0x5au8; MAX_VALUE];
    let steps: [(&str, &[u8]); 3] = [("alpha", b"1"), ("beta", b"2"), ("alpha", b"3")];
    for (key, value) in steps {
        store
            .put(key.as_bytes(), value)
            .map_err(|e| format!("put {key}: {e}"))?;
    }
    store
        .put(b"big", &big)
        .map_err(|e| format!("put at the limit: {e}"))?;
    match store.put(b"bigger", &alloc::vec![0u8; MAX_VALUE + 1]) {
        Err(KvError::ValueTooLong(n)) if n == MAX_VALUE + 1 => {}
        other => return Err(format!("a value over the limit gave {other:?}")),
    }
    if !store.delete(b"beta").map_err(|e| format!("delete: {e}"))? {
        return Err("delete found no beta".into());
    }
    // Reopen: what was acknowledged is recovered from the disk.
    let dev = store.into_device();
    let mut store = Store::open(dev).map_err(|e| format!("reopen: {e}"))?;
    let mut keys = store.list();
    keys.sort();
    let want: [&[u8]; 2] = [b"alpha", b"big"];
    if keys != want {
        return Err(format!("after reopening the keys are {keys:?}"));
    }
    let alpha = store.get(b"alpha").map_err(|e| format!("get: {e}"))?;
    let big_back = store.get(b"big").map_err(|e| format!("get big: {e}"))?;
    if alpha.as_deref() != Some(b"3") || big_back.as_deref() != Some(&big[..]) {
        return Err(format!(
            "alpha {alpha:?}, big {} bytes",
            big_back.map_or(0, |b| b.len())
        ));
    }
    if store
        .get(b"beta")
        .map_err(|e| format!("get beta: {e}"))?
        .is_some()
    {
        return Err("beta is back after its delete".into());
    }
    let _ = store.into_device().size();
    Ok(())
}

/// Lower-case hex of a digest.
struct Hex<'a>(&'a [u8]);

impl core::fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}
