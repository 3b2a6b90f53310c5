//! Serving the ring: at most one ring's worth of requests per round, each checked, its
//! segments mapped for the request only (read-only for writes, writable for reads) or, with
//! persistent grants, through the pages kept mapped (writable, as Linux maps them), the I/O
//! done on the device, the request's own mappings ended, then the response with the
//! request's id. An indirect request's pages are read (through the same mappings) and its
//! segments checked before anything else is mapped.

use super::{Blkback, Connection};
use crate::disk::{BlockDevice, DiskError, SECTOR};
use crate::request::{Checked, Geometry, Indirect, Kind, Verdict, check, check_indirect};
use abi::io::blkif::{
    BLKIF_OP_WRITE_BARRIER, BLKIF_RSP_EOPNOTSUPP, BLKIF_RSP_ERROR, BLKIF_RSP_OKAY, BlkifRequest,
    BlkifResponse,
};
use alloc::vec;
use alloc::vec::Vec;
use xenbus::GrantRef;
use xenbus::backend::{GrantMapError, GrantMapper, InterdomainEvents, MappedPage};

/// Bytes of a page.
const PAGE: usize = 4096;

/// A page one request reaches: kept mapped (persistent), or mapped for the request only.
enum Held {
    Kept(GrantRef),
    Mapped(MappedPage),
}

impl Held {
    fn page<'a>(&'a self, conn: &'a Connection) -> Option<&'a MappedPage> {
        match self {
            Self::Kept(gref) => conn.kept.get(gref).map(|(page, _)| page),
            Self::Mapped(page) => Some(page),
        }
    }
}

impl<D: BlockDevice, M: GrantMapper, E: InterdomainEvents> Blkback<D, M, E> {
    /// Serves at most a ring's worth of requests on every queue (`do_block_io_op` of each
    /// ring); returns whether more may be waiting. A queue halted for its producer index is
    /// left alone; the others are served as before.
    pub(super) fn serve(&mut self) -> bool {
        let mut queues = core::mem::take(&mut self.connection);
        let mut more = false;
        for conn in &mut queues {
            more |= self.serve_queue(conn);
        }
        self.connection = queues;
        more
    }

    /// Serves at most a ring's worth of requests of one queue.
    fn serve_queue(&mut self, conn: &mut Connection) -> bool {
        let budget = conn.ring.size();
        let mut served = 0u32;
        let mut more = false;
        while !conn.halted {
            match conn.ring.take_request() {
                Ok(Some(request)) => {
                    if let Some(n) = self.stats.queue_requests.get_mut(conn.queue) {
                        *n += 1;
                    }
                    let response = self.handle(conn, &request);
                    // A response slot is free: the request was just taken.
                    let _ = conn.ring.write_response(response);
                    served += 1;
                    if served >= budget {
                        more = conn.ring.unconsumed_requests().is_ok_and(|n| n > 0);
                        break;
                    }
                }
                Ok(None) => match conn.ring.final_check_for_requests() {
                    Ok(true) => continue,
                    Ok(false) => break,
                    Err(_) => self.halt(conn),
                },
                Err(_) => self.halt(conn),
            }
        }
        if served > 0 && conn.ring.push_responses_and_check_notify() {
            self.stats.notifications += 1;
            // A refused notification leaves the responses on the ring for the front end's
            // next look.
            let _ = self.events.notify(conn.port);
        }
        more
    }

    /// `RING_REQUEST_PROD_OVERFLOW`: Linux halts the ring until the front end reconnects.
    fn halt(&mut self, conn: &mut Connection) {
        conn.halted = true;
        self.stats.halts += 1;
    }

    /// Checks and serves one request; its response.
    fn handle(&mut self, conn: &mut Connection, request: &BlkifRequest) -> BlkifResponse {
        self.stats.requests += 1;
        conn.clock = conn.clock.wrapping_add(1);
        let disk = Geometry {
            sectors: self.device.sectors(),
            readonly: self.readonly.unwrap_or(true),
            sector_size: self.device.sector_size(),
            max_indirect_segments: self.features.max_indirect_segments,
            discard: self.discard_offered(),
        };
        let verdict = match check(request, &disk) {
            Verdict::Indirect(ind) => self.read_indirect(conn, &ind, &disk),
            other => other,
        };
        let (id, operation, status) = match verdict {
            Verdict::Answer {
                id,
                operation,
                status,
            } => (id, operation, status),
            Verdict::Serve(checked) => (
                checked.id,
                checked.operation,
                self.serve_checked(conn, &checked),
            ),
            // `read_indirect` never gives another indirect verdict.
            Verdict::Indirect(ind) => (ind.id, ind.operation, BLKIF_RSP_ERROR),
        };
        match status {
            BLKIF_RSP_ERROR => self.stats.errors += 1,
            BLKIF_RSP_EOPNOTSUPP => self.stats.unsupported += 1,
            _ => {}
        }
        BlkifResponse {
            id,
            operation,
            status,
            ..Default::default()
        }
    }

    /// Reads an indirect request's segment lists from its pages (`xen_blkbk_parse_indirect`)
    /// and checks them.
    fn read_indirect(&mut self, conn: &mut Connection, ind: &Indirect, disk: &Geometry) -> Verdict {
        let refuse = Verdict::Answer {
            id: ind.id,
            operation: ind.operation,
            status: BLKIF_RSP_ERROR,
        };
        let Ok(held) = self.hold(conn, &ind.pages, false) else {
            return refuse;
        };
        let mut lists = vec![0u8; held.len() * PAGE];
        let mut read = true;
        for (h, chunk) in held.iter().zip(lists.chunks_mut(PAGE)) {
            read &= h.page(conn).is_some_and(|p| p.read(0, chunk).is_ok());
        }
        self.release(held);
        if !read {
            return refuse;
        }
        let verdict = check_indirect(ind, &lists, disk);
        if matches!(verdict, Verdict::Serve(_)) {
            self.stats.indirect_requests += 1;
        }
        verdict
    }

    /// Maps the pages of `grefs` for one request: with persistent grants through the kept
    /// mappings (a kept one reused; a new one kept while under the bound, else mapped for
    /// the request only), otherwise each mapped for the request, writable if `writable`. When
    /// the platform has no room for another mapping, the least recently used kept mappings
    /// not used by this request are let go and the map tried once more. On a failure what
    /// was mapped is let go: `Err`.
    fn hold(
        &mut self,
        conn: &mut Connection,
        grefs: &[GrantRef],
        writable: bool,
    ) -> Result<Vec<Held>, ()> {
        let domid = self.xen.frontend_id;
        let mut held = Vec::with_capacity(grefs.len());
        for &gref in grefs {
            if conn.persistent
                && let Some((_, used)) = conn.kept.get_mut(&gref)
            {
                *used = conn.clock;
                self.stats.persistent_reused += 1;
                held.push(Held::Kept(gref));
                continue;
            }
            // Linux maps persistent grants writable whatever the request.
            let writable = writable || conn.persistent;
            let mapped = match self.grants.map(domid, gref, writable) {
                Err(GrantMapError::NoSpace) if self.evict(conn) => {
                    self.grants.map(domid, gref, writable)
                }
                other => other,
            };
            match mapped {
                Ok(page)
                    if conn.persistent && conn.kept.len() < self.features.max_persistent_grants =>
                {
                    conn.kept.insert(gref, (page, conn.clock));
                    self.stats.persistent_mapped += 1;
                    held.push(Held::Kept(gref));
                }
                Ok(page) => held.push(Held::Mapped(page)),
                Err(_) => {
                    self.stats.grant_failures += 1;
                    self.release(held);
                    return Err(());
                }
            }
        }
        Ok(held)
    }

    /// Lets go of the older half of the kept mappings this request does not use; whether any
    /// went.
    fn evict(&mut self, conn: &mut Connection) -> bool {
        let mut idle: Vec<(u64, GrantRef)> = conn
            .kept
            .iter()
            .filter(|(_, (_, used))| *used != conn.clock)
            .map(|(gref, (_, used))| (*used, *gref))
            .collect();
        idle.sort_unstable();
        let n = idle.len().div_ceil(2);
        for (_, gref) in idle.into_iter().take(n) {
            if let Some((page, _)) = conn.kept.remove(&gref) {
                self.grants.unmap(page);
                self.stats.persistent_evicted += 1;
            }
        }
        n > 0
    }

    /// Ends a request's own mappings (kept ones stay).
    fn release(&mut self, held: Vec<Held>) {
        for h in held {
            if let Held::Mapped(page) = h {
                self.grants.unmap(page);
            }
        }
    }

    /// Maps the segments, does the I/O, lets go of the request's mappings; the status.
    fn serve_checked(&mut self, conn: &mut Connection, request: &Checked) -> i16 {
        // Reads write into the front end's pages; everything else only reads them.
        let writable = request.kind == Kind::Read;
        let grefs: Vec<GrantRef> = request.segments.iter().map(|s| s.gref).collect();
        let Ok(held) = self.hold(conn, &grefs, writable) else {
            return BLKIF_RSP_ERROR;
        };
        let pages: Option<Vec<&MappedPage>> = held.iter().map(|h| h.page(conn)).collect();
        let status = match pages {
            Some(pages) => self.io(request, &pages),
            None => BLKIF_RSP_ERROR,
        };
        self.release(held);
        status
    }

    /// The I/O of a checked request over its mapped pages.
    fn io(&mut self, request: &Checked, pages: &[&MappedPage]) -> i16 {
        let sectors = request.bytes() as u64 / SECTOR;
        match request.kind {
            Kind::Read => {
                self.stats.reads += 1;
                let mut buf = vec![0u8; request.bytes()];
                if self.device.read(request.sector, &mut buf).is_err() {
                    return BLKIF_RSP_ERROR;
                }
                let mut at = 0;
                for (seg, page) in request.segments.iter().zip(pages) {
                    let chunk = buf.get(at..at + seg.len).unwrap_or(&[]);
                    if page.write(seg.offset, chunk).is_err() {
                        return BLKIF_RSP_ERROR;
                    }
                    at += seg.len;
                }
                self.stats.read_sectors += sectors;
                BLKIF_RSP_OKAY
            }
            Kind::Write => {
                self.stats.writes += 1;
                self.write_segments(request, pages, sectors)
            }
            Kind::Discard { sectors, .. } => {
                // Secure erase is never offered (`discard-secure` 0): Linux then discards
                // plainly whatever the flag says.
                self.stats.discards += 1;
                match self.device.discard(request.sector, sectors) {
                    Ok(()) => BLKIF_RSP_OKAY,
                    Err(DiskError::NotSupported) => BLKIF_RSP_EOPNOTSUPP,
                    Err(DiskError::Io) => BLKIF_RSP_ERROR,
                }
            }
            Kind::Flush { .. } => {
                self.stats.flushes += 1;
                match self.device.flush() {
                    Ok(()) if request.segments.is_empty() => BLKIF_RSP_OKAY,
                    Ok(()) => self.write_segments(request, pages, sectors),
                    Err(DiskError::NotSupported) => {
                        // Linux withdraws the feature at once (`xen_blkbk_flush_diskcache(..,
                        // 0)` or `xen_blkbk_barrier(.., 0)`), and for later connects.
                        if request.operation == BLKIF_OP_WRITE_BARRIER {
                            self.barrier = false;
                            self.withdrawn = Some("feature-barrier");
                        } else {
                            self.flush = false;
                            self.withdrawn = Some("feature-flush-cache");
                        }
                        BLKIF_RSP_EOPNOTSUPP
                    }
                    Err(DiskError::Io) => BLKIF_RSP_ERROR,
                }
            }
        }
    }

    fn write_segments(&mut self, request: &Checked, pages: &[&MappedPage], sectors: u64) -> i16 {
        let mut buf = vec![0u8; request.bytes()];
        let mut at = 0;
        for (seg, page) in request.segments.iter().zip(pages) {
            let Some(chunk) = buf.get_mut(at..at + seg.len) else {
                return BLKIF_RSP_ERROR;
            };
            if page.read(seg.offset, chunk).is_err() {
                return BLKIF_RSP_ERROR;
            }
            at += seg.len;
        }
        match self.device.write(request.sector, &buf) {
            Ok(()) => {
                self.stats.written_sectors += sectors;
                BLKIF_RSP_OKAY
            }
            Err(_) => BLKIF_RSP_ERROR,
        }
    }
}
