//! The requests in flight, one per ring slot: what each asked for and the pages granted for
//! it, and the checks a response must pass before it completes one.

use crate::error::BadResponse;
use abi::io::blkif::{
    BLKIF_OP_FLUSH_DISKCACHE, BLKIF_OP_WRITE_BARRIER, BLKIF_RSP_EOPNOTSUPP, BLKIF_RSP_ERROR,
    BLKIF_RSP_OKAY, BlkifResponse,
};
use alloc::vec::Vec;
use xenbus::grant::GrantedPage;

/// Bytes of a sector (the wire's unit).
const SECTOR_BYTES: usize = 512;

/// A request in flight.
#[derive(Debug)]
pub struct InFlight {
    /// `BLKIF_OP_*` (for an indirect request, its `indirect_op`: what the response names).
    pub operation: u8,
    /// Bytes of data (reads: to copy out on completion).
    pub len: usize,
    /// The first sector (512 bytes), to issue the request again after a resume.
    pub sector: u64,
    /// The data pages, granted to the backend, in order.
    pub pages: Vec<GrantedPage>,
    /// The indirect pages listing the segments (empty for a direct request), granted
    /// read-only.
    pub indirect: Vec<GrantedPage>,
    /// The pages are persistent grants: they go back to the pool, their grants kept.
    pub persistent: bool,
    /// The caller gave up waiting: complete it quietly.
    pub abandoned: bool,
}

/// What a valid response says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// `BLKIF_RSP_OKAY`.
    Okay,
    /// `BLKIF_RSP_ERROR`.
    Error,
    /// `BLKIF_RSP_EOPNOTSUPP`.
    NotSupported,
}

/// The slots: `None` when free.
#[derive(Debug)]
pub struct Table {
    slots: Vec<Option<InFlight>>,
}

impl Table {
    /// A table of `size` slots (the ring's size).
    pub fn new(size: usize) -> Self {
        let mut slots = Vec::with_capacity(size);
        slots.resize_with(size, || None);
        Self { slots }
    }

    /// The lowest free slot's id among `start..end` (one queue's slots) for which `usable`
    /// holds.
    pub fn free_id_in(&self, start: u64, end: u64, usable: impl Fn(u64) -> bool) -> Option<u64> {
        let (start, end) = (usize::try_from(start).ok()?, usize::try_from(end).ok()?);
        self.slots
            .get(start..end.min(self.slots.len()))?
            .iter()
            .enumerate()
            .filter(|(_, s)| s.is_none())
            .map(|(i, _)| (start + i) as u64)
            .find(|&id| usable(id))
    }

    /// The ids of the requests in flight, lowest first.
    pub fn ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.is_some())
            .map(|(i, _)| i as u64)
    }

    /// Puts a request in slot `id` (which [`Table::free_id_in`] returned).
    pub fn insert(&mut self, id: u64, request: InFlight) {
        if let Some(slot) = usize::try_from(id).ok().and_then(|i| self.slots.get_mut(i)) {
            *slot = Some(request);
        }
    }

    /// The sector just past the highest one a request in flight reaches (0 if none does: a
    /// flush or barrier reaches none; a discard counts at least its first sector).
    pub fn end_sector(&self) -> u64 {
        self.slots
            .iter()
            .flatten()
            .filter(|r| {
                r.operation != BLKIF_OP_FLUSH_DISKCACHE && r.operation != BLKIF_OP_WRITE_BARRIER
            })
            .map(|r| {
                let sectors = (r.len / SECTOR_BYTES).max(1) as u64;
                r.sector.saturating_add(sectors)
            })
            .max()
            .unwrap_or(0)
    }

    /// Requests in flight.
    pub fn len(&self) -> usize {
        self.slots.iter().filter(|s| s.is_some()).count()
    }

    /// The request `id`, if in flight.
    pub fn get_mut(&mut self, id: u64) -> Option<&mut InFlight> {
        usize::try_from(id)
            .ok()
            .and_then(|i| self.slots.get_mut(i))
            .and_then(Option::as_mut)
    }

    /// Checks `response` against the table. An id that names no outstanding request is an
    /// error with nothing to complete; otherwise the request is taken out of its slot and comes
    /// back with the verdict on the rest of the response.
    #[allow(clippy::type_complexity)]
    pub fn complete(
        &mut self,
        response: &BlkifResponse,
    ) -> Result<(u64, InFlight, Result<Status, BadResponse>), BadResponse> {
        let id = response.id;
        let slot = usize::try_from(id)
            .ok()
            .and_then(|i| self.slots.get_mut(i))
            .ok_or(BadResponse::IdOutOfRange(id))?;
        let request = slot.take().ok_or(BadResponse::NotOutstanding(id))?;
        let verdict = if response.operation != request.operation {
            Err(BadResponse::WrongOperation {
                expected: request.operation,
                got: response.operation,
            })
        } else {
            match response.status {
                BLKIF_RSP_OKAY => Ok(Status::Okay),
                BLKIF_RSP_ERROR => Ok(Status::Error),
                BLKIF_RSP_EOPNOTSUPP => Ok(Status::NotSupported),
                other => Err(BadResponse::UnknownStatus(other)),
            }
        };
        Ok((id, request, verdict))
    }

    /// Takes every request out (the ring died).
    pub fn drain(&mut self) -> Vec<(u64, InFlight)> {
        self.slots
            .iter_mut()
            .enumerate()
            .filter_map(|(i, s)| s.take().map(|r| (i as u64, r)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use abi::io::blkif::{BLKIF_OP_READ, BLKIF_OP_WRITE};
    use proptest::prelude::*;
    use std::vec::Vec;

    /// Ids in these tests are below 32.
    fn at(id: u64) -> usize {
        usize::try_from(id).unwrap_or(usize::MAX)
    }

    fn request(operation: u8) -> InFlight {
        InFlight {
            operation,
            len: 512,
            sector: 0,
            pages: Vec::new(),
            indirect: Vec::new(),
            persistent: false,
            abandoned: false,
        }
    }

    fn response(id: u64, operation: u8, status: i16) -> BlkifResponse {
        BlkifResponse {
            id,
            operation,
            status,
            ..Default::default()
        }
    }

    #[test]
    fn responses_are_checked_against_the_request() {
        let mut t = Table::new(4);
        assert_eq!(t.free_id_in(0, 4, |_| true), Some(0));
        assert_eq!(t.free_id_in(0, 4, |id| id > 1), Some(2));
        t.insert(0, request(BLKIF_OP_READ));
        t.insert(1, request(BLKIF_OP_WRITE));
        assert_eq!(
            t.complete(&response(9, BLKIF_OP_READ, 0)).err(),
            Some(BadResponse::IdOutOfRange(9))
        );
        assert_eq!(
            t.complete(&response(2, BLKIF_OP_READ, 0)).err(),
            Some(BadResponse::NotOutstanding(2))
        );
        let (id, _, verdict) = t.complete(&response(0, BLKIF_OP_WRITE, 0)).unwrap();
        assert_eq!(
            (id, verdict),
            (
                0,
                Err(BadResponse::WrongOperation {
                    expected: BLKIF_OP_READ,
                    got: BLKIF_OP_WRITE
                })
            )
        );
        // The slot is free now: a duplicate of that response names nothing outstanding.
        assert_eq!(
            t.complete(&response(0, BLKIF_OP_READ, 0)).err(),
            Some(BadResponse::NotOutstanding(0))
        );
        let (_, _, verdict) = t.complete(&response(1, BLKIF_OP_WRITE, 7)).unwrap();
        assert_eq!(verdict, Err(BadResponse::UnknownStatus(7)));
        assert_eq!(t.len(), 0);
    }

    proptest! {
        /// Any response either names an outstanding request (which leaves the table) or is
        /// refused leaving the table as it was; nothing panics.
        #[test]
        fn any_response_is_judged(outstanding in proptest::collection::vec(any::<bool>(), 32),
                                  id in any::<u64>(), operation in any::<u8>(), status in any::<i16>()) {
            let mut t = Table::new(32);
            for (i, &busy) in outstanding.iter().enumerate() {
                if busy {
                    t.insert(i as u64, request(BLKIF_OP_READ));
                }
            }
            let before = t.len();
            match t.complete(&response(id, operation, status)) {
                Ok((got, _, verdict)) => {
                    prop_assert_eq!(got, id);
                    prop_assert!(outstanding[at(id)]);
                    prop_assert_eq!(t.len(), before - 1);
                    let known = [0i16, -1, -2].contains(&status);
                    prop_assert_eq!(verdict.is_ok(), operation == BLKIF_OP_READ && known);
                }
                Err(_) => {
                    prop_assert!(id >= 32 || !outstanding[at(id)]);
                    prop_assert_eq!(t.len(), before);
                }
            }
        }
    }
}
