//! Fake disks for host tests (feature `test-utils`): [`MemDisk`], a plain disk in memory, and
//! [`CrashDisk`], which can cut the power at a chosen write and then keeps only what a real
//! disk may have kept: every write not covered by a completed flush may be lost (or kept,
//! sector by sector), and the sector being written may be torn.
#![allow(
    clippy::cast_possible_truncation,
    reason = "test fake: a random index reduced modulo a sector count"
)]

use alloc::vec;
use alloc::vec::Vec;

use crate::device::{BlockDevice, MAX_TRANSFER, SECTOR};

/// Errors of the fake disks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FakeError {
    /// Offset or length not a multiple of [`SECTOR`], or a zero length.
    Misaligned,
    /// More than [`MAX_TRANSFER`] bytes in one call.
    TooLong,
    /// The range passes the end of the disk.
    OutOfRange,
    /// The power was cut: the device answers nothing any more.
    PowerCut,
    /// An injected error (see [`MemDisk::fail_writes_after`]).
    Injected,
}

fn check(size: usize, offset: u64, len: usize) -> Result<usize, FakeError> {
    if len == 0 || !len.is_multiple_of(SECTOR) || !offset.is_multiple_of(SECTOR as u64) {
        return Err(FakeError::Misaligned);
    }
    if len > MAX_TRANSFER {
        return Err(FakeError::TooLong);
    }
    let start = usize::try_from(offset).map_err(|_| FakeError::OutOfRange)?;
    match start.checked_add(len) {
        Some(end) if end <= size => Ok(start),
        _ => Err(FakeError::OutOfRange),
    }
}

/// A disk in memory: writes are durable at once; counts calls.
#[derive(Clone, Debug)]
pub struct MemDisk {
    data: Vec<u8>,
    /// Reads served.
    pub reads: u64,
    /// Writes served.
    pub writes: u64,
    /// Flushes served.
    pub flushes: u64,
    fail_writes_after: Option<u64>,
}

impl MemDisk {
    /// A zeroed disk of `bytes` (rounded down to whole sectors).
    pub fn new(bytes: usize) -> Self {
        Self::from_image(vec![0; bytes])
    }

    /// A disk holding `image` (a trailing partial sector is cut off).
    pub fn from_image(mut image: Vec<u8>) -> Self {
        image.truncate(image.len() / SECTOR * SECTOR);
        Self {
            data: image,
            reads: 0,
            writes: 0,
            flushes: 0,
            fail_writes_after: None,
        }
    }

    /// The disk's contents.
    pub fn image(&self) -> &[u8] {
        &self.data
    }

    /// The disk's contents, mutable (to corrupt them in tests).
    pub fn image_mut(&mut self) -> &mut [u8] {
        &mut self.data
    }

    /// After `n` more successful writes, every write fails with [`FakeError::Injected`].
    pub fn fail_writes_after(&mut self, n: u64) {
        self.fail_writes_after = Some(self.writes + n);
    }
}

impl BlockDevice for MemDisk {
    type Error = FakeError;

    fn size(&self) -> u64 {
        self.data.len() as u64
    }

    fn read(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), FakeError> {
        let start = check(self.data.len(), offset, buf.len())?;
        buf.copy_from_slice(&self.data[start..start + buf.len()]);
        self.reads += 1;
        Ok(())
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), FakeError> {
        let start = check(self.data.len(), offset, data.len())?;
        if self.fail_writes_after.is_some_and(|n| self.writes >= n) {
            return Err(FakeError::Injected);
        }
        self.data[start..start + data.len()].copy_from_slice(data);
        self.writes += 1;
        Ok(())
    }

    fn flush(&mut self) -> Result<(), FakeError> {
        self.flushes += 1;
        Ok(())
    }
}

/// What survives a power cut of a [`CrashDisk`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CutPolicy {
    /// Every write not covered by a completed flush is lost.
    LoseUnflushed,
    /// Every write made before the cut reached the medium, the interrupted one whole.
    KeepAll,
    /// Every earlier unflushed write reached the medium; of the interrupted write (or, at a
    /// flush, the last unflushed write) all sectors but the last did, and the last is torn:
    /// its first `n` bytes are new, the rest old.
    TearLast(usize),
    /// Each unflushed sector independently reached the medium or not, and one of them may be
    /// torn at a random byte, all chosen by the seed.
    Random(u64),
}

/// A disk that loses unflushed writes at a power cut.
///
/// Operations (writes and flushes) are numbered from 0. With `cut_at = Some(n)` in [`CrashDisk::new`],
/// operation `n` is interrupted: it returns [`FakeError::PowerCut`], as does every later
/// call, and [`CrashDisk::surviving_image`] is what the medium holds afterwards.
#[derive(Clone, Debug)]
pub struct CrashDisk {
    durable: Vec<u8>,
    visible: Vec<u8>,
    /// Unflushed writes, in order: (offset, data).
    pending: Vec<(usize, Vec<u8>)>,
    /// The interrupted write, if the cut fell on a write.
    interrupted: Option<(usize, Vec<u8>)>,
    ops: u64,
    cut_at: Option<u64>,
    dead: bool,
    policy: CutPolicy,
    /// Flushes completed.
    pub flushes: u64,
}

impl CrashDisk {
    /// A disk holding `image` (durable), cutting power per `policy` at operation `cut_at`
    /// (never if `None`).
    pub fn new(image: Vec<u8>, cut_at: Option<u64>, policy: CutPolicy) -> Self {
        let mut image = image;
        image.truncate(image.len() / SECTOR * SECTOR);
        Self {
            durable: image.clone(),
            visible: image,
            pending: Vec::new(),
            interrupted: None,
            ops: 0,
            cut_at,
            dead: false,
            policy,
            flushes: 0,
        }
    }

    /// Operations (writes and flushes) attempted so far.
    pub fn ops(&self) -> u64 {
        self.ops
    }

    /// Whether the power has been cut.
    pub fn is_cut(&self) -> bool {
        self.dead
    }

    /// Cuts the power now (if not yet cut), as if before the next operation.
    pub fn cut_now(&mut self) {
        self.dead = true;
    }

    /// What the medium holds after the cut (or now, if the power is on: then everything
    /// written, as a clean shutdown would leave it).
    pub fn surviving_image(&self) -> Vec<u8> {
        if !self.dead {
            return self.visible.clone();
        }
        let mut image = self.durable.clone();
        let mut writes: Vec<&(usize, Vec<u8>)> = self.pending.iter().collect();
        if let Some(w) = &self.interrupted {
            writes.push(w);
        }
        match self.policy {
            CutPolicy::LoseUnflushed => {}
            CutPolicy::KeepAll => {
                for (at, data) in writes {
                    image[*at..*at + data.len()].copy_from_slice(data);
                }
            }
            CutPolicy::TearLast(n) => {
                let n = n.min(SECTOR);
                let count = writes.len();
                for (i, (at, data)) in writes.into_iter().enumerate() {
                    if i + 1 < count {
                        image[*at..*at + data.len()].copy_from_slice(data);
                    } else {
                        let whole = data.len() - SECTOR;
                        image[*at..*at + whole].copy_from_slice(&data[..whole]);
                        image[*at + whole..*at + whole + n]
                            .copy_from_slice(&data[whole..whole + n]);
                    }
                }
            }
            CutPolicy::Random(seed) => {
                let mut rng = XorShift(seed | 1);
                let sectors: usize = writes.iter().map(|(_, d)| d.len() / SECTOR).sum();
                let torn = if sectors > 0 && rng.next().is_multiple_of(2) {
                    Some(rng.next() as usize % sectors)
                } else {
                    None
                };
                let mut index = 0;
                for (at, data) in writes {
                    for (i, sector) in data.chunks(SECTOR).enumerate() {
                        let start = at + i * SECTOR;
                        if torn == Some(index) {
                            let n = rng.next() as usize % SECTOR;
                            image[start..start + n].copy_from_slice(&sector[..n]);
                        } else if rng.next().is_multiple_of(2) {
                            image[start..start + SECTOR].copy_from_slice(sector);
                        }
                        index += 1;
                    }
                }
            }
        }
        image
    }

    fn operation(&mut self) -> Result<bool, FakeError> {
        if self.dead {
            return Err(FakeError::PowerCut);
        }
        let n = self.ops;
        self.ops += 1;
        Ok(self.cut_at == Some(n))
    }
}

impl BlockDevice for CrashDisk {
    type Error = FakeError;

    fn size(&self) -> u64 {
        self.visible.len() as u64
    }

    fn read(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), FakeError> {
        if self.dead {
            return Err(FakeError::PowerCut);
        }
        let start = check(self.visible.len(), offset, buf.len())?;
        buf.copy_from_slice(&self.visible[start..start + buf.len()]);
        Ok(())
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), FakeError> {
        let start = check(self.visible.len(), offset, data.len())?;
        if self.operation()? {
            self.interrupted = Some((start, data.to_vec()));
            self.dead = true;
            return Err(FakeError::PowerCut);
        }
        self.visible[start..start + data.len()].copy_from_slice(data);
        self.pending.push((start, data.to_vec()));
        Ok(())
    }

    fn flush(&mut self) -> Result<(), FakeError> {
        if self.operation()? {
            self.dead = true;
            return Err(FakeError::PowerCut);
        }
        for (at, data) in self.pending.drain(..) {
            self.durable[at..at + data.len()].copy_from_slice(&data);
        }
        self.flushes += 1;
        Ok(())
    }
}

/// A small deterministic generator (xorshift64) for [`CutPolicy::Random`].
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}
