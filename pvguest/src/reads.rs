//! The service's disk reads by submit and poll (see `service.rs`): a disk's reads in at most
//! [`READ_SLOTS`] buffers, each in flight or done, asked again turn after turn by the
//! connections that need them; host-testable over any [`SubmitDisk`], time passed in.
//!
//! - [`Reads::copy`] copies a disk range into a buffer once every byte of it is read; the first
//!   missing piece is submitted as a read ahead (page-aligned, up to [`READ_AHEAD`] bytes, inside
//!   the disk) and `Pending` answered meanwhile. The archive disk is read-only, so a piece
//!   stays good for later readers.
//! - [`Reads::take`] takes the bytes of one exact read (a store record), submitting it first.
//! - A finished read nobody copied from yet is kept [`UNCLAIMED_NS`] for whoever asked; the
//!   least recently asked finished read makes room for a new one; reads in flight are never
//!   dropped, so with every slot in flight a new read waits (`Pending`).

use alloc::format;
use alloc::vec::Vec;

use blkfront::BlkError;
use httpd::backend::BackendError;

/// Read buffers a disk keeps for the service (done or in flight).
pub const READ_SLOTS: usize = 16;
/// The most bytes one read of the service fetches (a file's next bytes are read ahead so).
pub const READ_AHEAD: usize = 64 * 1024;
/// How long a finished request's outcome waits for the connection that asked before another
/// request may take its place, ns.
pub const UNCLAIMED_NS: u64 = 2_000_000_000;

/// What the engine needs of a disk: `blkfront`'s submit side (the service's disks), or a fake
/// in the tests.
pub trait SubmitDisk {
    /// A request's id, as its completion names it.
    type Id: Copy + Eq;
    /// Whether the disk can take another request now.
    fn can_submit(&self) -> bool;
    /// Submits a read of `len` bytes at `offset`.
    fn submit_read(&mut self, offset: u64, len: usize) -> Result<Self::Id, BlkError>;
    /// The most bytes one request may carry.
    fn max_request_bytes(&self) -> usize;
    /// The disk's size in bytes.
    fn size_bytes(&self) -> u64;
}

enum ReadState<Id> {
    InFlight(Id),
    Done(Vec<u8>),
    Failed(BlkError),
}

/// One read of the service's: disk bytes `offset..offset + len`.
struct ReadSlot<Id> {
    offset: u64,
    len: usize,
    state: ReadState<Id>,
    /// When it was last asked for (the least recently asked goes first when room is needed).
    touched: u64,
    /// Whether its bytes were copied out since it finished (an unclaimed one is kept a while
    /// for whoever asked for it).
    claimed: bool,
}

/// A disk's reads, submitted and polled ([`READ_SLOTS`] at most).
pub struct Reads<Id> {
    slots: Vec<ReadSlot<Id>>,
}

impl<Id> Default for Reads<Id> {
    fn default() -> Self {
        Self { slots: Vec::new() }
    }
}

impl<Id: Copy + Eq> Reads<Id> {
    /// Copies the disk's bytes at `at` into `buf` if they are all read; otherwise submits a
    /// read of the first missing piece (when there is room) and answers `Pending`.
    pub fn copy(
        &mut self,
        disk: &mut impl SubmitDisk<Id = Id>,
        at: u64,
        buf: &mut [u8],
        now: u64,
    ) -> Result<(), BackendError> {
        let end = at.saturating_add(buf.len() as u64);
        let mut cur = at;
        while cur < end {
            let Some(i) = self
                .slots
                .iter()
                .position(|s| s.offset <= cur && cur < s.offset + s.len as u64)
            else {
                self.submit(disk, cur, now)?;
                return Err(BackendError::Pending);
            };
            let slot = &mut self.slots[i];
            slot.touched = now;
            match &slot.state {
                ReadState::InFlight(_) => return Err(BackendError::Pending),
                ReadState::Failed(e) => {
                    let e = *e;
                    self.slots.swap_remove(i);
                    return Err(BackendError::Failed(format!("disk read: {e}")));
                }
                ReadState::Done(data) => {
                    let from = usize::try_from(cur - slot.offset).unwrap_or(usize::MAX);
                    let to = usize::try_from(cur - at).unwrap_or(usize::MAX);
                    let n = (data.len().saturating_sub(from)).min(buf.len().saturating_sub(to));
                    if n == 0 {
                        return Err(BackendError::Failed("disk read came back short".into()));
                    }
                    buf[to..to + n].copy_from_slice(&data[from..from + n]);
                    slot.claimed = true;
                    cur += n as u64;
                }
            }
        }
        Ok(())
    }

    /// The bytes of the read of exactly `offset..offset + len`, taken (not kept); submitted
    /// if not asked for yet.
    pub fn take(
        &mut self,
        disk: &mut impl SubmitDisk<Id = Id>,
        offset: u64,
        len: usize,
        now: u64,
    ) -> Result<Vec<u8>, BackendError> {
        let Some(i) = self
            .slots
            .iter()
            .position(|s| s.offset == offset && s.len == len)
        else {
            if self.room(now) && disk.can_submit() {
                let id = disk
                    .submit_read(offset, len)
                    .map_err(|e| BackendError::Failed(format!("disk read: {e}")))?;
                self.slots.push(ReadSlot {
                    offset,
                    len,
                    state: ReadState::InFlight(id),
                    touched: now,
                    claimed: false,
                });
            }
            return Err(BackendError::Pending);
        };
        self.slots[i].touched = now;
        match &self.slots[i].state {
            ReadState::InFlight(_) => Err(BackendError::Pending),
            ReadState::Failed(_) | ReadState::Done(_) => match self.slots.swap_remove(i).state {
                ReadState::Done(data) => Ok(data),
                ReadState::Failed(e) => Err(BackendError::Failed(format!("disk read: {e}"))),
                ReadState::InFlight(_) => Err(BackendError::Pending),
            },
        }
    }

    /// Submits a read ahead from `cur` (page-aligned, up to [`READ_AHEAD`] bytes, inside the
    /// disk), if a slot and the ring have room.
    fn submit(
        &mut self,
        disk: &mut impl SubmitDisk<Id = Id>,
        cur: u64,
        now: u64,
    ) -> Result<(), BackendError> {
        if !self.room(now) || !disk.can_submit() {
            return Ok(());
        }
        let page = 4096u64;
        let start = cur - cur % page;
        let most = READ_AHEAD.min(disk.max_request_bytes()) as u64;
        let size = disk.size_bytes();
        let len = most.min(size.saturating_sub(start)) / 512 * 512;
        if len == 0 || start + len <= cur {
            return Err(BackendError::Failed("read past the end of the disk".into()));
        }
        let len = usize::try_from(len).unwrap_or(0);
        let id = disk
            .submit_read(start, len)
            .map_err(|e| BackendError::Failed(format!("disk read: {e}")))?;
        self.slots.push(ReadSlot {
            offset: start,
            len,
            state: ReadState::InFlight(id),
            touched: now,
            claimed: false,
        });
        Ok(())
    }

    /// Whether a slot is free, making one by dropping the least recently asked finished read
    /// (one nobody copied from yet is kept [`UNCLAIMED_NS`] for whoever asked for it).
    fn room(&mut self, now: u64) -> bool {
        if self.slots.len() < READ_SLOTS {
            return true;
        }
        let oldest = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| {
                !matches!(s.state, ReadState::InFlight(_))
                    && (s.claimed || now.saturating_sub(s.touched) >= UNCLAIMED_NS)
            })
            .min_by_key(|(_, s)| s.touched)
            .map(|(i, _)| i);
        match oldest {
            Some(i) => {
                self.slots.swap_remove(i);
                true
            }
            None => false,
        }
    }

    /// Takes the completion of request `id` (at `now`) if it is one of these reads'; gives
    /// its result back otherwise.
    pub fn complete(
        &mut self,
        id: Id,
        result: Result<Vec<u8>, BlkError>,
        now: u64,
    ) -> Option<Result<Vec<u8>, BlkError>> {
        let Some(slot) = self
            .slots
            .iter_mut()
            .find(|s| matches!(s.state, ReadState::InFlight(i) if i == id))
        else {
            return Some(result);
        };
        slot.touched = now;
        slot.state = match result {
            Ok(data) if data.len() >= slot.len => ReadState::Done(data),
            Ok(_) => ReadState::Failed(BlkError::IoError),
            Err(e) => ReadState::Failed(e),
        };
        None
    }

    /// Finished reads dropped (the store's disk was rewritten under them).
    pub fn forget_done(&mut self) {
        self.slots
            .retain(|s| matches!(s.state, ReadState::InFlight(_)));
    }

    /// Reads submitted and not completed.
    pub fn in_flight(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| matches!(s.state, ReadState::InFlight(_)))
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A disk of `size` bytes (byte `i` is `i % 251`) that queues what is submitted; the test
    /// completes requests when it likes.
    struct FakeDisk {
        size: u64,
        max_request: usize,
        room: usize,
        next_id: u64,
        submitted: Vec<(u64, u64, usize)>,
    }

    impl FakeDisk {
        fn new(size: u64) -> Self {
            Self {
                size,
                max_request: 44 * 4096,
                room: 32,
                next_id: 0,
                submitted: Vec::new(),
            }
        }

        fn bytes(offset: u64, len: usize) -> Vec<u8> {
            (offset..offset + len as u64)
                .map(|i| (i % 251) as u8)
                .collect()
        }

        /// Completes every submitted read with the disk's bytes, at `now`.
        fn complete_all(&mut self, reads: &mut Reads<u64>, now: u64) {
            for (id, offset, len) in self.submitted.drain(..) {
                assert!(
                    reads
                        .complete(id, Ok(Self::bytes(offset, len)), now)
                        .is_none()
                );
            }
        }
    }

    impl SubmitDisk for FakeDisk {
        type Id = u64;

        fn can_submit(&self) -> bool {
            self.submitted.len() < self.room
        }

        fn submit_read(&mut self, offset: u64, len: usize) -> Result<u64, BlkError> {
            assert!(
                offset.is_multiple_of(512)
                    && len.is_multiple_of(512)
                    && offset + len as u64 <= self.size
            );
            self.next_id += 1;
            self.submitted.push((self.next_id, offset, len));
            Ok(self.next_id)
        }

        fn max_request_bytes(&self) -> usize {
            self.max_request
        }

        fn size_bytes(&self) -> u64 {
            self.size
        }
    }

    const MS: u64 = 1_000_000;

    #[test]
    fn a_copy_is_pending_until_its_read_ahead_completes() {
        let mut disk = FakeDisk::new(1 << 20);
        let mut reads = Reads::default();
        let mut buf = [0u8; 100];
        assert_eq!(
            reads.copy(&mut disk, 5000, &mut buf, 0),
            Err(BackendError::Pending)
        );
        // One read ahead from the page holding byte 5000: READ_AHEAD bytes.
        assert_eq!(disk.submitted, [(1, 4096, READ_AHEAD)]);
        // Asked again before it completes: nothing more submitted.
        assert_eq!(
            reads.copy(&mut disk, 5000, &mut buf, MS),
            Err(BackendError::Pending)
        );
        assert_eq!((disk.submitted.len(), reads.in_flight()), (1, 1));
        disk.complete_all(&mut reads, 2 * MS);
        assert_eq!(reads.in_flight(), 0);
        assert_eq!(reads.copy(&mut disk, 5000, &mut buf, 3 * MS), Ok(()));
        assert_eq!(buf.to_vec(), FakeDisk::bytes(5000, 100));
        // The next bytes of the file come from the same piece, without a request.
        assert_eq!(reads.copy(&mut disk, 5100, &mut buf, 4 * MS), Ok(()));
        assert!(disk.submitted.is_empty());
    }

    #[test]
    fn a_copy_across_pieces_reads_each_in_turn_and_stays_inside_the_disk() {
        let size = 4096 * 20;
        let mut disk = FakeDisk::new(size);
        disk.max_request = 8 * 4096;
        let mut reads = Reads::default();
        let mut buf = vec![0u8; 12 * 4096];
        let at = 4096 * 7 + 10;
        let mut submitted = Vec::new();
        let mut now = 0;
        while reads.copy(&mut disk, at, &mut buf, now) == Err(BackendError::Pending) {
            submitted.extend(disk.submitted.iter().map(|&(_, o, l)| (o, l)));
            disk.complete_all(&mut reads, now);
            now += MS;
            assert!(now < 10 * MS, "never done: {submitted:?}");
        }
        // Pieces of at most the disk's largest request, the last cut at the disk's end.
        assert_eq!(
            submitted,
            [(4096 * 7, 8 * 4096), (4096 * 15, 5 * 4096)],
            "{submitted:?}"
        );
        assert_eq!(buf, FakeDisk::bytes(at, 12 * 4096));
    }

    #[test]
    fn a_failed_or_short_read_fails_the_copy_once_then_is_read_again() {
        let mut disk = FakeDisk::new(1 << 20);
        let mut reads = Reads::default();
        let mut buf = [0u8; 10];
        let _ = reads.copy(&mut disk, 0, &mut buf, 0);
        let (id, _, _) = disk.submitted.remove(0);
        assert!(reads.complete(id, Err(BlkError::IoError), MS).is_none());
        assert!(matches!(
            reads.copy(&mut disk, 0, &mut buf, 2 * MS),
            Err(BackendError::Failed(_))
        ));
        // Dropped: the next copy submits a read again, and this one comes back short.
        assert_eq!(
            reads.copy(&mut disk, 0, &mut buf, 3 * MS),
            Err(BackendError::Pending)
        );
        let (id, _, _) = disk.submitted.remove(0);
        assert!(reads.complete(id, Ok(vec![0; 512]), 4 * MS).is_none());
        assert!(matches!(
            reads.copy(&mut disk, 0, &mut buf, 5 * MS),
            Err(BackendError::Failed(_))
        ));
    }

    #[test]
    fn another_request_s_completion_is_given_back() {
        let mut reads: Reads<u64> = Reads::default();
        assert_eq!(reads.complete(7, Ok(vec![1, 2]), 0), Some(Ok(vec![1, 2])));
    }

    #[test]
    fn a_full_ring_or_full_slots_wait_and_unclaimed_reads_are_kept_for_their_reader() {
        let mut disk = FakeDisk::new(64 << 20);
        let mut reads = Reads::default();
        let mut buf = [0u8; 1];
        // The ring has no room: nothing submitted, Pending.
        disk.room = 0;
        assert_eq!(
            reads.copy(&mut disk, 0, &mut buf, 0),
            Err(BackendError::Pending)
        );
        assert_eq!(reads.in_flight(), 0);
        disk.room = 64;
        // Every slot in flight: a further read waits (nothing in flight is dropped).
        let piece = READ_AHEAD as u64;
        for i in 0..READ_SLOTS as u64 {
            let _ = reads.copy(&mut disk, i * piece, &mut buf, 0);
        }
        assert_eq!(reads.in_flight(), READ_SLOTS);
        let late = READ_SLOTS as u64 * piece;
        assert_eq!(
            reads.copy(&mut disk, late, &mut buf, 0),
            Err(BackendError::Pending)
        );
        assert_eq!(disk.submitted.len(), READ_SLOTS);
        // All done but none claimed: kept for their readers until UNCLAIMED_NS.
        disk.complete_all(&mut reads, MS);
        assert_eq!(
            reads.copy(&mut disk, late, &mut buf, UNCLAIMED_NS),
            Err(BackendError::Pending)
        );
        assert!(disk.submitted.is_empty());
        // One claimed: it makes room at once.
        assert_eq!(reads.copy(&mut disk, piece, &mut buf, UNCLAIMED_NS), Ok(()));
        let _ = reads.copy(&mut disk, late, &mut buf, UNCLAIMED_NS);
        assert_eq!(disk.submitted.len(), 1);
        // Past UNCLAIMED_NS, the unclaimed ones go too, least recently asked first.
        let later = late + piece;
        let _ = reads.copy(&mut disk, later, &mut buf, UNCLAIMED_NS + MS + 1);
        assert_eq!(disk.submitted.len(), 2);
    }

    #[test]
    fn an_exact_read_is_taken_once() {
        let mut disk = FakeDisk::new(1 << 20);
        let mut reads = Reads::default();
        assert_eq!(
            reads.take(&mut disk, 8192, 1024, 0),
            Err(BackendError::Pending)
        );
        assert_eq!(
            reads.take(&mut disk, 8192, 1024, MS),
            Err(BackendError::Pending)
        );
        assert_eq!(disk.submitted, [(1, 8192, 1024)]);
        disk.complete_all(&mut reads, 2 * MS);
        assert_eq!(
            reads.take(&mut disk, 8192, 1024, 3 * MS),
            Ok(FakeDisk::bytes(8192, 1024))
        );
        // Taken, not kept: asking again reads again.
        assert_eq!(
            reads.take(&mut disk, 8192, 1024, 4 * MS),
            Err(BackendError::Pending)
        );
        assert_eq!(disk.submitted.len(), 1);
        // The store's disk rewritten: finished reads are forgotten, those in flight kept.
        disk.complete_all(&mut reads, 5 * MS);
        reads.forget_done();
        assert_eq!(
            reads.take(&mut disk, 8192, 1024, 6 * MS),
            Err(BackendError::Pending)
        );
    }
}
