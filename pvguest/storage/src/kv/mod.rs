//! A durable key-value store on a block device: put, get, delete, list, surviving a power cut
//! at any moment.
//!
//! # Guarantees
//! - [`Store::put`], [`Store::delete`] and [`Store::commit`] return `Ok` only after their
//!   records and the group's commit record have been written and a flush has completed.
//! - After a power cut at any point (torn sector writes included), [`Store::open`] recovers
//!   every acknowledged group; a group that was not acknowledged is there whole or not at all;
//!   nothing is returned that was not written whole and committed; a key that was never put
//!   never appears.
//! - Limits: keys are 1..=[`MAX_KEY`] bytes, values at most [`MAX_VALUE`] bytes (errors
//!   [`KvError::KeyTooLong`], [`KvError::ValueTooLong`]); when the live data cannot fit a
//!   region even after compaction, [`KvError::Full`].
//!
//! # On-disk format (little endian throughout)
//! ```text
//! sector 0            header of region 0
//! sector 1            header of region 1
//! [1024, 1024+R)      body of region 0      R = ((disk bytes - 1024) / 2) rounded down to 512
//! [1024+R, 1024+2R)   body of region 1
//! ```
//! **Region header** (one sector; bytes 44.. zero): `0..8` magic `PVKVLOG1`, `8..12` version
//! (1), `12..16` region index, `16..24` epoch, `24..32` body offset, `32..40` body length,
//! `40..44` CRC-32 of bytes `0..40`. The live region is the one whose header is valid with the
//! highest epoch. A disk with no valid header is blank: [`Store::open`] formats it (region 0,
//! epoch 1). A checksummed header of another version or layout is refused
//! ([`KvError::Incompatible`]), never overwritten.
//!
//! **Records** follow each other in the body from its start, byte-packed:
//! ```text
//! 0..4    CRC-32 of bytes 4..end (the rest of the header, the key, the value)
//! 4..8    prev: the CRC of the previous record; for the first, the region header's CRC
//! 8..16   seq: the record's index in the region (0, 1, 2, ...)
//! 16      kind: 1 put, 2 delete, 3 commit
//! 17      0
//! 18..20  key length (put, delete: 1..=128; commit: 0)
//! 20..24  value length (put: 0..=16384; delete: 0); for a commit, the number of records
//!         it commits (a commit carries no value bytes)
//! 24..    key, then value
//! ```
//! A **group** is one or more put/delete records followed by a commit record, padded with
//! zeros to the next sector boundary; the next group starts there. A put is one group written
//! with one write and then flushed: the commit record is what makes it count. Recovery reads
//! groups from the body's start and stops at the first record that is malformed, does not
//! continue the chain (`prev`, `seq`), fails its CRC or passes the body's end, or at a commit
//! whose count is wrong; only groups ended by a valid commit are applied. The chain is what
//! keeps stale bytes out: records left behind by an earlier epoch of the region, or by a
//! group written after the last one recovered, do not link to the recovered log's last CRC.
//!
//! **Compaction**: when a group does not fit in the live region's free space, the live set
//! with the group applied is written to the other region as groups under a header whose epoch
//! is one more: first the body, then a flush, then the header sector, then a flush. Until the header
//! is durable the old region (untouched) stays live; a torn header fails its CRC. So a crash
//! at any point of a compaction leaves either the old state or the new one.
//!
//! # Memory
//! The index keeps keys and record locations, not values: [`Store::get`] reads the record and
//! checks its CRC again.
//!
//! CRC-32 is IEEE (`crc32fast`, no_std, table-driven or SSE4.2/PCLMUL when available: a
//! well-kept crate used by `flate2` and `zip`).
#![allow(
    clippy::cast_possible_truncation,
    reason = "region indexes are 0 or 1, batch counts at most MAX_BATCH, and sector-rounded lengths of in-memory buffers fit usize"
)]

pub mod format;
mod window;

#[cfg(test)]
mod crash_tests;
#[cfg(test)]
mod tests;

use alloc::collections::BTreeMap;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use crate::device::{BlockDevice, MAX_TRANSFER, SECTOR, round_up, write_chunked};
use format::{Chain, HeaderCheck, Kind, RECORD_HEADER, RegionHeader};
pub use format::{MAX_KEY, MAX_VALUE};
use window::Window;

/// Most operations in one [`Store::commit`].
pub const MAX_BATCH: usize = 64;

/// Compaction closes a group before it passes this many bytes.
const GROUP_BYTES: usize = MAX_TRANSFER;

/// Errors of the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KvError<E> {
    /// The device failed. After a failed write or flush the store refuses further changes
    /// ([`KvError::Poisoned`]): reopen it to learn what is on the disk.
    Device(E),
    /// A key of zero bytes.
    EmptyKey,
    /// A key longer than [`MAX_KEY`] (its length).
    KeyTooLong(usize),
    /// A value longer than [`MAX_VALUE`] (its length).
    ValueTooLong(usize),
    /// A batch with no operations or more than [`MAX_BATCH`].
    BadBatch(usize),
    /// The live data with this change needs more than a region holds, even compacted.
    Full {
        /// Bytes the compacted region would need.
        needed: u64,
        /// Bytes in a region.
        capacity: u64,
    },
    /// The disk is too small for two regions that each hold the largest record.
    DiskTooSmall(u64),
    /// A region header of another version or layout (say, the disk was resized): refused
    /// rather than formatted over.
    Incompatible,
    /// A committed record failed its checks when read back (the medium changed under us).
    Corrupt {
        /// Byte offset of the record on the disk.
        offset: u64,
    },
    /// An earlier write or flush failed; reopen the store.
    Poisoned,
    /// A commit begun with [`Store::begin`] has not finished yet: one at a time.
    Busy,
}

impl<E: fmt::Debug> fmt::Display for KvError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Device(e) => write!(f, "device: {e:?}"),
            Self::EmptyKey => write!(f, "empty key"),
            Self::KeyTooLong(n) => write!(f, "key of {n} bytes (limit {MAX_KEY})"),
            Self::ValueTooLong(n) => write!(f, "value of {n} bytes (limit {MAX_VALUE})"),
            Self::BadBatch(n) => write!(f, "batch of {n} operations (1..={MAX_BATCH})"),
            Self::Full { needed, capacity } => write!(
                f,
                "store full: {needed} bytes needed, a region holds {capacity}"
            ),
            Self::DiskTooSmall(n) => write!(f, "disk of {n} bytes is too small"),
            Self::Incompatible => write!(f, "the disk holds a store of another version or size"),
            Self::Corrupt { offset } => write!(f, "record at byte {offset} is corrupt"),
            Self::Poisoned => write!(f, "an earlier write failed: reopen the store"),
            Self::Busy => write!(f, "another change is still on its way to the disk"),
        }
    }
}

/// One change of a [`Store::commit`] batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op<'a> {
    /// Sets `key` to `value`.
    Put(&'a [u8], &'a [u8]),
    /// Removes `key` (nothing if absent).
    Delete(&'a [u8]),
}

impl Op<'_> {
    fn key(&self) -> &[u8] {
        match self {
            Self::Put(k, _) | Self::Delete(k) => k,
        }
    }
}

/// Counters of a store.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KvStats {
    /// Groups found by recovery when the store was opened.
    pub recovered_groups: u64,
    /// Groups committed since then (compactions not counted).
    pub groups: u64,
    /// Compactions since then.
    pub compactions: u64,
    /// Flushes issued since then.
    pub flushes: u64,
    /// Epoch of the live region.
    pub epoch: u64,
    /// Bytes used in the live region.
    pub used: u64,
    /// Bytes in a region.
    pub capacity: u64,
}

/// Where a live record lies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Loc {
    /// Byte offset of the record on the disk.
    offset: u64,
    /// Bytes in the record.
    len: usize,
}

/// A key-value store open on a disk.
pub struct Store<D: BlockDevice> {
    dev: D,
    body_len: u64,
    active: u32,
    epoch: u64,
    chain: Chain,
    /// Bytes used in the live region's body (a sector multiple).
    tail: u64,
    index: BTreeMap<Vec<u8>, Loc>,
    poisoned: bool,
    /// A commit begun ([`Store::begin`]) and not finished.
    begun: bool,
    stats: KvStats,
}

/// A commit planned by [`Store::begin`] whose group the caller writes itself (submit and
/// poll): [`Pending::writes`] in any order, then a flush once every write completed, then
/// [`Store::finish`] with the outcome. Until then the store's index is unchanged.
#[derive(Debug)]
pub struct Pending {
    at: u64,
    group: Vec<u8>,
    chain: Chain,
    /// Each key with its new record (None: deleted).
    changes: Vec<(Vec<u8>, Option<Loc>)>,
}

impl Pending {
    /// The writes (byte offset on the store's device, bytes), each at most
    /// [`crate::MAX_TRANSFER`] bytes and sector-aligned.
    pub fn writes(&self) -> impl Iterator<Item = (u64, &[u8])> {
        self.group
            .chunks(crate::device::MAX_TRANSFER)
            .enumerate()
            .map(|(i, piece)| (self.at + (i * crate::device::MAX_TRANSFER) as u64, piece))
    }
}

/// Where a live record lies, for a caller that reads it itself ([`Store::locate`]), and what
/// [`Store::value_from`] needs to check it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordRead {
    /// Sector-aligned byte offset on the store's device.
    pub offset: u64,
    /// Bytes to read there (a sector multiple).
    pub len: usize,
    loc: Loc,
}

impl<D: BlockDevice> Store<D> {
    /// Opens the store on `dev`, recovering it, or formats a blank disk (one with no valid
    /// region header).
    pub fn open(mut dev: D) -> Result<Self, KvError<D::Error>> {
        let size = dev.size() / SECTOR as u64 * SECTOR as u64;
        let body_len = size.saturating_sub(2 * SECTOR as u64) / 2 / SECTOR as u64 * SECTOR as u64;
        if body_len < round_up((format::MAX_RECORD + RECORD_HEADER) as u64) {
            return Err(KvError::DiskTooSmall(size));
        }
        let mut headers = [None, None];
        for (i, slot) in headers.iter_mut().enumerate() {
            let mut s = [0u8; SECTOR];
            dev.read((i * SECTOR) as u64, &mut s)
                .map_err(KvError::Device)?;
            match RegionHeader::decode(&s) {
                Ok(h) => {
                    let i = i as u32;
                    if h.region != i
                        || h.body_len != body_len
                        || h.body_offset != body_offset(i, body_len)
                    {
                        return Err(KvError::Incompatible);
                    }
                    *slot = Some(h);
                }
                Err(HeaderCheck::Absent) => {}
                Err(HeaderCheck::Foreign) => return Err(KvError::Incompatible),
            }
        }
        let mut store = Self {
            dev,
            body_len,
            active: 0,
            epoch: 0,
            chain: Chain { prev: 0, seq: 0 },
            tail: 0,
            index: BTreeMap::new(),
            poisoned: false,
            begun: false,
            stats: KvStats {
                capacity: body_len,
                ..KvStats::default()
            },
        };
        let live = match headers {
            [None, None] => {
                let h = store.region_header(0, 1);
                store.dev.write(0, &h.encode()).map_err(KvError::Device)?;
                store.flush()?;
                h
            }
            [Some(a), None] => a,
            [None, Some(b)] => b,
            [Some(a), Some(b)] if a.epoch > b.epoch => a,
            [Some(a), Some(b)] if b.epoch > a.epoch => b,
            [Some(_), Some(_)] => return Err(KvError::Incompatible),
        };
        store.active = live.region;
        store.epoch = live.epoch;
        store.recover(live)?;
        Ok(store)
    }

    /// The header region `region` gets at `epoch`.
    fn region_header(&self, region: u32, epoch: u64) -> RegionHeader {
        RegionHeader {
            region,
            epoch,
            body_offset: body_offset(region, self.body_len),
            body_len: self.body_len,
        }
    }

    /// Reads the live region's groups into the index (see the module docs).
    fn recover(&mut self, header: RegionHeader) -> Result<(), KvError<D::Error>> {
        let base = header.body_offset;
        let mut window = Window::new(base, self.body_len);
        let mut chain = Chain {
            prev: header.seed(),
            seq: 0,
        };
        let mut pos = 0u64;
        let mut ops: Vec<(Kind, Vec<u8>, Loc)> = Vec::new();
        'groups: loop {
            ops.clear();
            let mut at = pos;
            let mut group_chain = chain;
            let end = loop {
                let Some(record) = window
                    .record(&mut self.dev, at, group_chain)
                    .map_err(KvError::Device)?
                else {
                    break 'groups;
                };
                group_chain = Chain {
                    prev: record.header.crc,
                    seq: record.header.seq + 1,
                };
                let len = record.header.record_len();
                match record.header.kind {
                    Kind::Commit => {
                        if record.header.value_len != ops.len() {
                            break 'groups;
                        }
                        break at + len as u64;
                    }
                    kind => ops.push((
                        kind,
                        record.key.to_vec(),
                        Loc {
                            offset: base + at,
                            len,
                        },
                    )),
                }
                at += len as u64;
            };
            for (kind, key, loc) in ops.drain(..) {
                if kind == Kind::Put {
                    self.index.insert(key, loc);
                } else {
                    self.index.remove(&key);
                }
            }
            chain = group_chain;
            pos = round_up(end);
            self.stats.recovered_groups += 1;
        }
        self.chain = chain;
        self.tail = pos;
        Ok(())
    }

    /// Sets `key` to `value`, durably.
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), KvError<D::Error>> {
        self.commit(&[Op::Put(key, value)])
    }

    /// Removes `key`, durably; returns whether it was there (nothing is written if not).
    pub fn delete(&mut self, key: &[u8]) -> Result<bool, KvError<D::Error>> {
        check_key::<D::Error>(key)?;
        if !self.index.contains_key(key) {
            return Ok(false);
        }
        self.commit(&[Op::Delete(key)]).map(|()| true)
    }

    /// Applies `ops` in order as one group: after `Ok`, all are durable; after a crash before
    /// it, all or none are.
    pub fn commit(&mut self, ops: &[Op<'_>]) -> Result<(), KvError<D::Error>> {
        match self.begin(ops)? {
            Some(pending) => {
                let mut written = Ok(());
                for (at, piece) in pending.writes() {
                    written = self.dev.write(at, piece);
                    if written.is_err() {
                        break;
                    }
                }
                let result = written.and_then(|()| self.dev.flush());
                self.finish(pending, result)
            }
            None => self.compact(ops),
        }
    }

    /// Plans `ops` as one group for a caller that writes it itself: `Some` with the writes
    /// (then [`Store::finish`]); `None` if the group does not fit the live region, so that
    /// [`Store::commit`] must compact (with blocking calls). Refused while another begun
    /// commit is unfinished ([`KvError::Busy`]).
    pub fn begin(&mut self, ops: &[Op<'_>]) -> Result<Option<Pending>, KvError<D::Error>> {
        if self.poisoned {
            return Err(KvError::Poisoned);
        }
        if self.begun {
            return Err(KvError::Busy);
        }
        if ops.is_empty() || ops.len() > MAX_BATCH {
            return Err(KvError::BadBatch(ops.len()));
        }
        for op in ops {
            check_key::<D::Error>(op.key())?;
            if let Op::Put(_, v) = op
                && v.len() > MAX_VALUE
            {
                return Err(KvError::ValueTooLong(v.len()));
            }
        }
        let mut chain = self.chain;
        let mut group = Vec::new();
        let mut locs = Vec::with_capacity(ops.len());
        for op in ops {
            let at = group.len();
            let len = match op {
                Op::Put(k, v) => format::encode(&mut group, &mut chain, Kind::Put, k, v),
                Op::Delete(k) => format::encode(&mut group, &mut chain, Kind::Delete, k, &[]),
            };
            locs.push((at, len));
        }
        format::encode_commit(&mut group, &mut chain, ops.len() as u32);
        group.resize(round_up(group.len() as u64) as usize, 0);
        if self.tail + group.len() as u64 > self.body_len {
            return Ok(None);
        }
        let at = body_offset(self.active, self.body_len) + self.tail;
        let changes = ops
            .iter()
            .zip(locs)
            .map(|(op, (rel, len))| match op {
                Op::Put(k, _) => (
                    k.to_vec(),
                    Some(Loc {
                        offset: at + rel as u64,
                        len,
                    }),
                ),
                Op::Delete(k) => (k.to_vec(), None),
            })
            .collect();
        self.begun = true;
        Ok(Some(Pending {
            at,
            group,
            chain,
            changes,
        }))
    }

    /// Ends a commit from [`Store::begin`] with the outcome of its writes and flush: `Ok`,
    /// and the changes are in the store (durable); a device error poisons the store, as a
    /// failed [`Store::commit`] does.
    pub fn finish(
        &mut self,
        pending: Pending,
        result: Result<(), D::Error>,
    ) -> Result<(), KvError<D::Error>> {
        self.begun = false;
        if result.is_ok() {
            self.stats.flushes += 1;
        }
        self.guard(|_| result)?;
        for (key, loc) in pending.changes {
            match loc {
                Some(loc) => {
                    self.index.insert(key, loc);
                }
                None => {
                    self.index.remove(&key);
                }
            }
        }
        self.chain = pending.chain;
        self.tail += pending.group.len() as u64;
        self.stats.groups += 1;
        Ok(())
    }

    /// Whether a commit from [`Store::begin`] is unfinished.
    pub fn is_busy(&self) -> bool {
        self.begun
    }

    /// Where the record of `key` lies, for a caller that reads it itself (then
    /// [`Store::value_from`]); None if absent.
    pub fn locate(&self, key: &[u8]) -> Option<RecordRead> {
        let loc = *self.index.get(key)?;
        let offset = loc.offset - loc.offset % SECTOR as u64;
        let skip = (loc.offset - offset) as usize;
        let len = round_up((skip + loc.len) as u64) as usize;
        Some(RecordRead { offset, len, loc })
    }

    /// The value of `key` from the bytes read at `at` (from [`Store::locate`]), checked as
    /// [`Store::get`] checks it.
    pub fn value_from(
        &self,
        at: &RecordRead,
        key: &[u8],
        bytes: &[u8],
    ) -> Result<Vec<u8>, KvError<D::Error>> {
        let mut record = check_record::<D::Error>(at.loc, key, at.offset, bytes)?;
        record.drain(..RECORD_HEADER + key.len());
        Ok(record)
    }

    /// Writes the live set with `ops` applied into the other region and makes it live.
    fn compact(&mut self, ops: &[Op<'_>]) -> Result<(), KvError<D::Error>> {
        // The new live set: each key's source is its old record or a value from `ops`.
        enum Source<'v> {
            Old(Loc),
            New(&'v [u8]),
        }
        let mut live: BTreeMap<Vec<u8>, Source<'_>> = self
            .index
            .iter()
            .map(|(k, l)| (k.clone(), Source::Old(*l)))
            .collect();
        for op in ops {
            match op {
                Op::Put(k, v) => {
                    live.insert(k.to_vec(), Source::New(v));
                }
                Op::Delete(k) => {
                    live.remove(*k);
                }
            }
        }
        let record_len = |k: &[u8], s: &Source<'_>| match s {
            Source::Old(l) => l.len,
            Source::New(v) => RECORD_HEADER + k.len() + v.len(),
        };
        // Plan the groups (each closed before it passes GROUP_BYTES) to know the size first;
        // the writing loop below closes them by the same rule.
        let mut needed = 0u64;
        let mut group = 0usize;
        for (k, s) in &live {
            let r = record_len(k, s);
            if group > 0 && group + r + RECORD_HEADER > GROUP_BYTES {
                needed += round_up((group + RECORD_HEADER) as u64);
                group = 0;
            }
            group += r;
        }
        if group > 0 {
            needed += round_up((group + RECORD_HEADER) as u64);
        }
        if needed > self.body_len {
            return Err(KvError::Full {
                needed,
                capacity: self.body_len,
            });
        }
        let region = 1 - self.active;
        let header = self.region_header(region, self.epoch + 1);
        let base = header.body_offset;
        let mut chain = Chain {
            prev: header.seed(),
            seq: 0,
        };
        let mut index = BTreeMap::new();
        let mut pos = 0u64;
        let mut buf = Vec::with_capacity(GROUP_BYTES + SECTOR);
        let mut count = 0u32;
        for (k, s) in live {
            let r = record_len(&k, &s);
            if count > 0 && buf.len() + r + RECORD_HEADER > GROUP_BYTES {
                pos += self.write_group(base + pos, &mut buf, &mut chain, count)?;
                count = 0;
            }
            let old;
            let value = match s {
                Source::New(v) => v,
                Source::Old(loc) => {
                    old = self.read_record(loc, &k)?;
                    &old[RECORD_HEADER + k.len()..]
                }
            };
            let at = buf.len();
            let len = format::encode(&mut buf, &mut chain, Kind::Put, &k, value);
            index.insert(
                k,
                Loc {
                    offset: base + pos + at as u64,
                    len,
                },
            );
            count += 1;
        }
        if count > 0 {
            pos += self.write_group(base + pos, &mut buf, &mut chain, count)?;
        }
        // The body is durable before the header that makes it live.
        self.flush()?;
        let at = u64::from(region) * SECTOR as u64;
        self.guard(|s| s.dev.write(at, &header.encode()))?;
        self.flush()?;
        self.active = region;
        self.epoch = header.epoch;
        self.chain = chain;
        self.tail = pos;
        self.index = index;
        self.stats.compactions += 1;
        Ok(())
    }

    /// Ends the group in `buf` with a commit for `count` records, pads it to a sector and
    /// writes it at byte `at`; returns the bytes written and leaves `buf` empty.
    fn write_group(
        &mut self,
        at: u64,
        buf: &mut Vec<u8>,
        chain: &mut Chain,
        count: u32,
    ) -> Result<u64, KvError<D::Error>> {
        format::encode_commit(buf, chain, count);
        buf.resize(round_up(buf.len() as u64) as usize, 0);
        self.guard(|s| write_chunked(&mut s.dev, at, buf))?;
        let len = buf.len() as u64;
        buf.clear();
        Ok(len)
    }

    /// Reads and checks the record at `loc`, which must be a put of `key`.
    fn read_record(&mut self, loc: Loc, key: &[u8]) -> Result<Vec<u8>, KvError<D::Error>> {
        let aligned = loc.offset - loc.offset % SECTOR as u64;
        let skip = (loc.offset - aligned) as usize;
        let mut buf = vec![0u8; round_up((skip + loc.len) as u64) as usize];
        crate::device::read_chunked(&mut self.dev, aligned, &mut buf).map_err(KvError::Device)?;
        check_record(loc, key, aligned, &buf)
    }

    /// The value of `key`, if present.
    pub fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, KvError<D::Error>> {
        let Some(&loc) = self.index.get(key) else {
            return Ok(None);
        };
        let mut record = self.read_record(loc, key)?;
        record.drain(..RECORD_HEADER + key.len());
        Ok(Some(record))
    }

    /// Every key, in byte order.
    pub fn list(&self) -> Vec<Vec<u8>> {
        self.index.keys().cloned().collect()
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether the store holds no keys.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Counters.
    pub fn stats(&self) -> KvStats {
        KvStats {
            epoch: self.epoch,
            used: self.tail,
            ..self.stats
        }
    }

    /// The device (the store is closed; nothing is pending, every change was flushed).
    pub fn into_device(self) -> D {
        self.dev
    }

    /// The device, borrowed (for a caller that submits the writes of [`Store::begin`] or the
    /// reads of [`Store::locate`] to it itself).
    pub fn device_mut(&mut self) -> &mut D {
        &mut self.dev
    }

    fn flush(&mut self) -> Result<(), KvError<D::Error>> {
        self.stats.flushes += 1;
        self.guard(|s| s.dev.flush())
    }

    /// Runs a device write or flush; a failure poisons the store.
    fn guard(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<(), D::Error>,
    ) -> Result<(), KvError<D::Error>> {
        f(self).map_err(|e| {
            self.poisoned = true;
            KvError::Device(e)
        })
    }
}

/// The record at `loc`, which must be a put of `key`, from `bytes` read at byte `aligned`.
fn check_record<E>(
    loc: Loc,
    key: &[u8],
    aligned: u64,
    bytes: &[u8],
) -> Result<Vec<u8>, KvError<E>> {
    let corrupt = || KvError::Corrupt { offset: loc.offset };
    let skip = usize::try_from(loc.offset - aligned).map_err(|_| corrupt())?;
    let record = skip
        .checked_add(loc.len)
        .and_then(|end| bytes.get(skip..end))
        .ok_or_else(corrupt)?;
    let mut h = [0u8; RECORD_HEADER];
    h.copy_from_slice(record.get(..RECORD_HEADER).ok_or_else(corrupt)?);
    let header = format::decode_self_chained(&h).ok_or_else(corrupt)?;
    if header.kind != Kind::Put
        || header.record_len() != loc.len
        || format::verify(&header, record).is_err()
        || record.get(RECORD_HEADER..RECORD_HEADER + key.len()) != Some(key)
    {
        return Err(corrupt());
    }
    Ok(record.to_vec())
}

/// Byte offset of region `region`'s body.
fn body_offset(region: u32, body_len: u64) -> u64 {
    2 * SECTOR as u64 + u64::from(region) * body_len
}

fn check_key<E>(key: &[u8]) -> Result<(), KvError<E>> {
    if key.is_empty() {
        Err(KvError::EmptyKey)
    } else if key.len() > MAX_KEY {
        Err(KvError::KeyTooLong(key.len()))
    } else {
        Ok(())
    }
}
