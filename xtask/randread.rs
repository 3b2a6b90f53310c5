//! `randread`: 4 KiB reads at random block offsets of a block device, `depth` of them in
//! flight (one thread each, `O_DIRECT` `pread`s into an aligned buffer), for the Linux domU's
//! random-read row of `cargo xtask bench` (busybox has no such tool, and a `dd` per read
//! would measure process creation). xtask builds it with `rustc` as a static executable for
//! `x86_64-unknown-linux-gnu` into the domU's initramfs (`linux_domu.rs`).
//!
//! `randread <device> <reads> <depth>` prints `BENCH blk-rand-read-4k <reads> <seconds>`, the
//! shape of the init's `dd` lines, or `BENCH blk-rand-read-4k failed: <why>` and exits 1.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::time::Instant;

/// Linux's `O_DIRECT` on x86-64.
const O_DIRECT: i32 = 0o40000;
/// The read size and alignment.
const BLOCK: usize = 4096;

fn fail(why: &str) -> ! {
    println!("BENCH blk-rand-read-4k failed: {why}");
    std::process::exit(1);
}

/// `per` reads at pseudo-random blocks below `blocks`, from the stream `seed` picks.
fn reads(file: &File, blocks: u64, per: u64, seed: u64) -> std::io::Result<u64> {
    let mut buf = vec![0u8; 2 * BLOCK];
    let off = buf.as_ptr().align_offset(BLOCK);
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    for _ in 0..per {
        // xorshift64: a different block each time, spread over the whole device.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let block = x % blocks;
        file.read_exact_at(&mut buf[off..off + BLOCK], block * BLOCK as u64)?;
    }
    Ok(per)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let number = |i: usize| args.get(i).and_then(|a| a.parse::<u64>().ok());
    let (Some(device), Some(total), Some(depth)) = (args.get(1), number(2), number(3)) else {
        fail("usage: randread <device> <reads> <depth>");
    };
    let depth = depth.max(1);
    let mut file = OpenOptions::new()
        .read(true)
        .custom_flags(O_DIRECT)
        .open(device)
        .unwrap_or_else(|e| fail(&format!("{device}: {e}")));
    let size = file
        .seek(SeekFrom::End(0))
        .unwrap_or_else(|e| fail(&format!("{device}: size: {e}")));
    let blocks = size / BLOCK as u64;
    if blocks == 0 {
        fail(&format!("{device}: smaller than a block"));
    }
    let per = (total / depth).max(1);
    let file = &file;
    let start = Instant::now();
    let done: std::io::Result<u64> = std::thread::scope(|s| {
        let threads: Vec<_> = (0..depth)
            .map(|t| s.spawn(move || reads(file, blocks, per, t + 1)))
            .collect();
        threads
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| fail("a reader panicked")))
            .sum()
    });
    let secs = start.elapsed().as_secs_f64();
    match done {
        Ok(n) => println!("BENCH blk-rand-read-4k {n} {secs:.6}"),
        Err(e) => fail(&format!("{device}: read: {e}")),
    }
}
