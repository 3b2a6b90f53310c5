//! `blk-resize` (group `blk`, only with `blk-resize=<bytes>` on the command line): the
//! read-write disk grown under the guest and shrunk back, each change announced by the
//! backend re-asserting Connected with a new `sectors` (Linux blkback's `xen_vbd_resize` on
//! stock Xen, hv's blkback after its virtio-blk device's configuration change on hv).
//!
//! The guest prints `BLK resize grow <disk> <bytes> <new bytes>` at column 0; the harness
//! grows the disk (dom0: the image file and its loop device, `losetup -c`; hv: QEMU's
//! `block_resize` over QMP). The guest keeps issuing a small read (Linux blkback looks at
//! its device's size only when its ring thread wakes) and looking at the backend until the
//! new size shows, writes and reads back a pattern past the old end, then prints `BLK resize
//! shrink <disk> <bytes>`; the harness shrinks the disk back and the guest waits for the old
//! size, so that what runs after the group finds the disk it expects. Facts: the bytes the
//! disk grew by and the resizes blkfront took (its counter, which must have moved by two).

use alloc::format;
use alloc::string::String;

use blkfront::BlkError;

use super::{Connected, TestResult, find, say, with_store};
use crate::cmdline::option;
use crate::selftest::report::Reporter;
use crate::selftest::run::ConsoleOut;
use crate::xen::time;

/// How long the guest waits for each size change to show.
const CHANGE_WITHIN_MS: u64 = 30_000;
/// How often it issues a read and looks at the backend meanwhile.
const LOOK_EVERY_MS: u64 = 50;
/// Bytes it writes and reads back past the old end.
const PAST_END_BYTES: usize = 64 * 1024;

/// Byte `i` of what is written past the old end.
fn past_end_pattern(i: usize) -> u8 {
    (i % 241) as u8 ^ 0xc3
}

/// The size the harness grows the read-write disk to (`blk-resize=<bytes>`), if it takes
/// part in the test.
pub(super) fn asked(cmdline: &str) -> Result<Option<u64>, String> {
    option(cmdline, "blk-resize")
        .map(|v| {
            v.parse::<u64>()
                .map_err(|_| format!("blk-resize={v}: expected a size in bytes"))
        })
        .transpose()
}

/// Runs the test against the read-write disk, which grows to `new_bytes`.
pub(super) fn run(
    disks: &mut [Connected],
    new_bytes: u64,
    rep: &mut Reporter<'_, ConsoleOut>,
) -> TestResult {
    let rw = find(disks, true)?;
    let name = rw.expected.name;
    let old_bytes = rw.disk.info().sectors * 512;
    if new_bytes <= old_bytes || new_bytes - old_bytes < PAST_END_BYTES as u64 {
        return Err(format!(
            "blk-resize={new_bytes}: not at least {PAST_END_BYTES} bytes over {old_bytes}"
        ));
    }
    let before = rw.disk.stats().resizes;
    say(format_args!(
        "BLK resize grow {name} {old_bytes} {new_bytes}"
    ));
    let waited_ms = wait_for_size(rw, new_bytes)?;
    log::info!("blk-resize: {name} grew to {new_bytes} bytes, seen after {waited_ms} ms");
    let data: alloc::vec::Vec<u8> = (0..PAST_END_BYTES).map(past_end_pattern).collect();
    let back = with_store(|xs, d| {
        rw.disk
            .write(xs, old_bytes, &data, d)
            .map_err(|e| format!("write past the old end: {e}"))?;
        rw.disk
            .flush(xs, d)
            .map_err(|e| format!("flush past the old end: {e}"))?;
        rw.disk
            .read(xs, old_bytes, PAST_END_BYTES, d)
            .map_err(|e| format!("read past the old end: {e}"))
    })?;
    if back != data {
        return Err(format!(
            "{PAST_END_BYTES} bytes at {old_bytes} read back differ from what was written"
        ));
    }
    match with_store(|xs, d| Ok(rw.disk.read(xs, new_bytes, 4096, d))) {
        Ok(Err(BlkError::OutOfRange { .. })) => {}
        other => return Err(format!("a read at the new end gave {other:?}")),
    }
    say(format_args!("BLK resize shrink {name} {old_bytes}"));
    let waited_ms = wait_for_size(rw, old_bytes)?;
    log::info!("blk-resize: {name} back to {old_bytes} bytes, seen after {waited_ms} ms");
    match with_store(|xs, d| Ok(rw.disk.read(xs, old_bytes, 4096, d))) {
        Ok(Err(BlkError::OutOfRange { .. })) => {}
        other => {
            return Err(format!(
                "a read at the old end after the shrink gave {other:?}"
            ));
        }
    }
    let moved = rw.disk.stats().resizes.saturating_sub(before);
    let _ = rep.fact("blk-resize", "grown-bytes", new_bytes - old_bytes);
    let _ = rep.fact("blk-resize", "resizes", moved);
    if moved != 2 {
        return Err(format!("blkfront counted {moved} resizes, expected 2"));
    }
    Ok(())
}

/// Issues a 4 KiB read at sector 0 and looks at the backend every [`LOOK_EVERY_MS`] until
/// the disk has `bytes`; how long that took, in ms. A size the front end refused fails.
fn wait_for_size(rw: &mut Connected, bytes: u64) -> Result<u64, String> {
    let start = time::now().map_err(|e| format!("clock: {e:?}"))?;
    let until = time::deadline_ms(CHANGE_WITHIN_MS).map_err(|e| format!("clock: {e:?}"))?;
    loop {
        with_store(|xs, d| {
            rw.disk
                .read(xs, 0, 4096, d)
                .map_err(|e| format!("read while waiting: {e}"))?;
            rw.disk.refresh(xs, d).map_err(|e| format!("{e}"))
        })?;
        let now = time::now().map_err(|e| format!("clock: {e:?}"))?;
        let sectors = rw.disk.info().sectors;
        if sectors * 512 == bytes {
            return Ok(now.as_nanos().saturating_sub(start.as_nanos()) / 1_000_000);
        }
        if now >= until {
            return Err(format!(
                "{} still has {} bytes after {CHANGE_WITHIN_MS} ms, expected {bytes}",
                rw.expected.name,
                sectors * 512
            ));
        }
        time::sleep_ms(LOOK_EVERY_MS).map_err(|e| format!("sleep: {e:?}"))?;
    }
}
