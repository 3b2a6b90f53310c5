//! Resuming the vbd after the domain was saved and restored, or migrated (Linux's
//! `blkfront_resume` and `blkif_recover`).
//!
//! The new domain has none of the old connection: its grant table is empty (every old grant
//! reads as ended), its event channels are gone (the old port number may name another channel
//! by now, so it is never closed), and the toolstack made a new backend with its own features.
//! [`Blkfront::resume`] takes the requests that were in flight (with the data of writes, copied
//! from their pages), ends every grant and gives every page back, connects `device/vbd/<devid>`
//! afresh through the xenbus handshake (re-reading `backend`, `backend-id` and the disk's keys),
//! then issues the requests again under their old ids with new grants, as blkif_recover does.
//! A caller waiting on an id sees it complete as if nothing happened: a write that completed
//! before the suspend stays completed (the backend had it on the disk), one in flight is
//! written again (the same data at the same place: harmless if it had reached the disk).
//!
//! A request the new backend cannot take as it was (larger than its segments allow, a
//! discard) fails with [`BlkError::BackendGone`], as does everything in flight when the new
//! backend cannot be connected (the device then stays ended, its grants and pages given back).

use super::{BlkError, BlkStats, Blkfront, Completion, RequestId, copy_out};
use crate::info::FlushMode;
use abi::io::blkif::{
    BLKIF_OP_DISCARD, BLKIF_OP_FLUSH_DISKCACHE, BLKIF_OP_WRITE, BLKIF_OP_WRITE_BARRIER,
};
use alloc::vec::Vec;
use xenbus::grant::{GrantAccess, GrantedPage};
use xenbus::xenstore::{XsClient, XsTransport};
use xenbus::{EventChannel, Instant, PageProvider, Platform};

/// A request taken out of the old ring, to issue again.
struct Again {
    id: u64,
    operation: u8,
    sector: u64,
    len: usize,
    data: Vec<u8>,
}

impl<P: PageProvider, G: GrantAccess, E: EventChannel> Blkfront<P, G, E> {
    /// Reconnects after a resume in a new domain and issues the requests that were in flight
    /// again (see the module docs); returns how many. `fresh` is an empty platform: it takes
    /// the place of the device's own for the teardown, so that the pages given back go on to
    /// the new connection.
    pub fn resume<T: XsTransport>(
        &mut self,
        xs: &mut XsClient<T>,
        mut fresh: Platform<P, G, E>,
        deadline: Instant,
    ) -> Result<usize, BlkError> {
        let devid = self
            .frontend
            .path
            .rsplit('/')
            .next()
            .and_then(|d| d.parse::<u32>().ok())
            .ok_or(BlkError::BadBackendValue("devid"))?;
        let (again, mut failed) = self.take_in_flight();
        self.abandon();
        core::mem::swap(&mut self.platform, &mut fresh);
        let features = self.features;
        let mut device = match Self::connect_with(xs, devid, fresh, features, deadline) {
            Ok(device) => device,
            Err(e) => {
                self.dead = Some(e);
                failed.extend(again.iter().map(|a| a.id));
                self.fail(&failed, BlkError::BackendGone);
                return Err(e);
            }
        };
        device.stats = carried(self.stats, device.stats);
        device.done = core::mem::take(&mut self.done);
        let mut issued = 0;
        for request in again {
            match device.issue_again(&request) {
                Ok(()) => issued += 1,
                Err(_) => failed.push(request.id),
            }
        }
        device.fail(&failed, BlkError::BackendGone);
        *self = device;
        self.kick()?;
        Ok(issued)
    }

    /// Empties the table: the requests to issue again (writes with their data) and the ids to
    /// fail (their data could not be read back); every page ended and given back, or back in
    /// the pool. Abandoned requests are dropped quietly.
    fn take_in_flight(&mut self) -> (Vec<Again>, Vec<u64>) {
        let mut again = Vec::new();
        let mut failed = Vec::new();
        for (id, request) in self.table.drain() {
            let data = if request.operation == BLKIF_OP_WRITE {
                copy_out(request.pages.iter().map(GrantedPage::page), request.len)
            } else {
                Ok(Vec::new())
            };
            if request.persistent {
                // Ended with the rest of the pool in `abandon`.
                self.return_to_pool(0, request.pages);
                self.return_to_pool(0, request.indirect);
            } else {
                for pages in [request.pages, request.indirect] {
                    if let Ok(pages) = self.end_pages(pages) {
                        self.release_pages(pages);
                    }
                }
            }
            match data {
                _ if request.abandoned => {}
                Ok(data) => again.push(Again {
                    id,
                    operation: request.operation,
                    sector: request.sector,
                    len: request.len,
                    data,
                }),
                Err(_) => failed.push(id),
            }
        }
        (again, failed)
    }

    /// Ends the ring's and the pool's grants and the quarantined ones (the new domain's table
    /// has none of them: they end at once) and gives the pages back, without closing the old
    /// port (not ours any more).
    fn abandon(&mut self) {
        self.dead = Some(BlkError::BackendGone);
        let mut granted: Vec<GrantedPage> = Vec::new();
        self.stats.persistent_grants = 0;
        for queue in &mut self.queues {
            granted.append(&mut queue.pool);
            granted.append(&mut queue.ring_pages);
        }
        granted.append(&mut self.quarantine);
        for page in granted {
            match self.platform.grants.end(page) {
                Ok(page) => self.platform.pages.release(page),
                Err((page, _)) => self.quarantine.push(page),
            }
        }
    }

    /// Puts `request` on the new ring under its old id.
    fn issue_again(&mut self, request: &Again) -> Result<(), BlkError> {
        let Again {
            id,
            operation,
            sector,
            len,
            ref data,
        } = *request;
        // Every queue is made again: the request goes back on the queue of its id (the new
        // backend offering fewer queues or a smaller ring leaves it without one).
        if self.queue_of(id).is_none() {
            return Err(BlkError::UnknownRequest);
        }
        let operation = match operation {
            BLKIF_OP_FLUSH_DISKCACHE | BLKIF_OP_WRITE_BARRIER => match self.info.flush {
                FlushMode::FlushCache => BLKIF_OP_FLUSH_DISKCACHE,
                FlushMode::Barrier => BLKIF_OP_WRITE_BARRIER,
                FlushMode::WriteThrough => {
                    self.done.push_back(Completion {
                        id: RequestId(id),
                        result: Ok(Vec::new()),
                    });
                    return Ok(());
                }
            },
            BLKIF_OP_DISCARD => return Err(BlkError::NotSupported),
            other => other,
        };
        if len > self.max_request_bytes() {
            return Err(BlkError::BadLength(len));
        }
        self.submit_as(id, operation, sector, len, data).map(drop)
    }

    /// Completes `ids` with `error`.
    fn fail(&mut self, ids: &[u64], error: BlkError) {
        for &id in ids {
            self.done.push_back(Completion {
                id: RequestId(id),
                result: Err(error),
            });
        }
    }
}

/// The old connection's counters added to the new one's (the grants in place are the new
/// one's).
fn carried(old: BlkStats, new: BlkStats) -> BlkStats {
    BlkStats {
        requests: old.requests + new.requests,
        notifications: old.notifications + new.notifications,
        responses: old.responses + new.responses,
        bad_responses: old.bad_responses + new.bad_responses,
        indirect_requests: old.indirect_requests + new.indirect_requests,
        persistent_reused: old.persistent_reused + new.persistent_reused,
        discards: old.discards + new.discards,
        timeouts: old.timeouts + new.timeouts,
        timeouts_taken: old.timeouts_taken + new.timeouts_taken,
        resizes: old.resizes + new.resizes,
        peak_in_flight: old.peak_in_flight.max(new.peak_in_flight),
        queue_requests: core::array::from_fn(|i| {
            old.queue_requests.get(i).copied().unwrap_or(0)
                + new.queue_requests.get(i).copied().unwrap_or(0)
        }),
        ..new
    }
}
