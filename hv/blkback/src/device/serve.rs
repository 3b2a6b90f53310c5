//! Serving the ring: at most one ring's worth of requests per round, each checked, its
//! segments mapped for the request only (read-only for writes, writable for reads), the I/O
//! done on the device, the segments unmapped, then the response with the request's id.

use super::{Blkback, Connection};
use crate::disk::{BlockDevice, DiskError, SECTOR};
use crate::request::{Checked, Geometry, Kind, Verdict, check};
use abi::io::blkif::{
    BLKIF_OP_WRITE_BARRIER, BLKIF_RSP_EOPNOTSUPP, BLKIF_RSP_ERROR, BLKIF_RSP_OKAY, BlkifRequest,
    BlkifResponse,
};
use alloc::vec;
use alloc::vec::Vec;
use xenbus::backend::{GrantMapper, InterdomainEvents, MappedPage};

impl<D: BlockDevice, M: GrantMapper, E: InterdomainEvents> Blkback<D, M, E> {
    /// Serves at most a ring's worth of requests (`do_block_io_op`); returns whether more
    /// may be waiting.
    pub(super) fn serve(&mut self) -> bool {
        let Some(mut conn) = self.connection.take() else {
            return false;
        };
        let budget = conn.ring.size();
        let mut served = 0u32;
        let mut more = false;
        while !conn.halted {
            match conn.ring.take_request() {
                Ok(Some(request)) => {
                    let response = self.handle(&request);
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
                    Err(_) => self.halt(&mut conn),
                },
                Err(_) => self.halt(&mut conn),
            }
        }
        if served > 0 && conn.ring.push_responses_and_check_notify() {
            self.stats.notifications += 1;
            // A refused notification leaves the responses on the ring for the front end's
            // next look.
            let _ = self.events.notify(conn.port);
        }
        self.connection = Some(conn);
        more
    }

    /// `RING_REQUEST_PROD_OVERFLOW`: Linux halts the ring until the front end reconnects.
    fn halt(&mut self, conn: &mut Connection) {
        conn.halted = true;
        self.stats.halts += 1;
    }

    /// Checks and serves one request; its response.
    fn handle(&mut self, request: &BlkifRequest) -> BlkifResponse {
        self.stats.requests += 1;
        let disk = Geometry {
            sectors: self.device.sectors(),
            readonly: self.readonly.unwrap_or(true),
            sector_size: self.device.sector_size(),
        };
        let (id, operation, status) = match check(request, &disk) {
            Verdict::Answer {
                id,
                operation,
                status,
            } => (id, operation, status),
            Verdict::Serve(checked) => {
                (checked.id, checked.operation, self.serve_checked(&checked))
            }
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

    /// Maps the segments, does the I/O, unmaps; the status.
    fn serve_checked(&mut self, request: &Checked) -> i16 {
        // Reads write into the front end's pages; everything else only reads them.
        let writable = request.kind == Kind::Read;
        let domid = self.xen.frontend_id;
        let mut pages: Vec<MappedPage> = Vec::with_capacity(request.segments.len());
        for seg in &request.segments {
            match self.grants.map(domid, seg.gref, writable) {
                Ok(page) => pages.push(page),
                Err(_) => {
                    self.stats.grant_failures += 1;
                    self.unmap_all(pages);
                    return BLKIF_RSP_ERROR;
                }
            }
        }
        let status = self.io(request, &pages);
        self.unmap_all(pages);
        status
    }

    fn unmap_all(&mut self, pages: Vec<MappedPage>) {
        for page in pages {
            self.grants.unmap(page);
        }
    }

    /// The I/O of a checked request over its mapped pages.
    fn io(&mut self, request: &Checked, pages: &[MappedPage]) -> i16 {
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

    fn write_segments(&mut self, request: &Checked, pages: &[MappedPage], sectors: u64) -> i16 {
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
