//! The device against a fake blkback on the real ring layout: the handshake, many requests in
//! flight, flushes, a read-only disk, and a backend that misbehaves in every way it can.
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap,
    reason = "test fixtures: small known sizes and indexes, on 64-bit hosts only"
)]

use crate::device::Blkfront;
use crate::error::{BadResponse, BlkError};
use crate::info::FlushMode;
use abi::io::blkif::{
    BLKIF_DISCARD_SECURE, BLKIF_OP_DISCARD, BLKIF_OP_FLUSH_DISKCACHE, BLKIF_OP_INDIRECT,
    BLKIF_OP_READ, BLKIF_OP_WRITE, BLKIF_OP_WRITE_BARRIER, BLKIF_RSP_ERROR, BLKIF_RSP_OKAY,
    BlkifRequest, BlkifRequestDiscard, BlkifRequestIndirect, BlkifRequestSegment, BlkifResponse,
};
use abi::page::AtomicPage;
use abi::ring::{BackRing, SharedRing};
use std::boxed::Box;
use std::cell::RefCell;
use std::collections::{BTreeSet, VecDeque};
use std::format;
use std::rc::Rc;
use std::string::{String, ToString};
use std::vec::Vec;
use xenbus::Platform;
use xenbus::grant::{GrantAccess, GrantTable};
use xenbus::testing::{
    FakeEvents, FakeGrantEntries, FakeXenstored, HostMemory, SharedGrantTable, Store,
};
use xenbus::xenstore::XsClient;
use xenbus::{DomId, Instant};

const DOMID: u16 = 5;
const DEVID: u32 = 51712;
const FRONT: &str = "/local/domain/5/device/vbd/51712";
const BACK: &str = "/local/domain/0/backend/vbd/5/51712";
const SECTORS: u64 = 2048;

fn far() -> Instant {
    Instant::from_nanos(1_000_000_000_000)
}

/// What the fake backend does with the next request it takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Misbehave {
    /// Answer with an id no slot has.
    IdOutOfRange,
    /// Answer with this id (a request of another queue's).
    Id(u64),
    /// Answer twice.
    Duplicate,
    /// Answer with another operation.
    WrongOperation,
    /// Answer with this status.
    Status(i16),
    /// Publish a response producer far ahead of what was asked.
    ProducerOverrun,
    /// Keep the data pages mapped after answering.
    HoldGrants,
    /// Take the request and never answer.
    Silent,
}

/// blkback on the host: maps the ring and data grants with Xen's checks, serves a disk in
/// memory.
struct FakeBlkback {
    memory: HostMemory,
    grants: SharedGrantTable,
    disk: Vec<u8>,
    readonly: bool,
    ring: Option<BackRing<BlkifRequest, BlkifResponse>>,
    ring_page: Option<&'static AtomicPage>,
    misbehave: VecDeque<Misbehave>,
    held: Vec<u32>,
    /// Never runs (a notification that does not reach it).
    asleep: bool,
    ops: Vec<u8>,
    duplicate: Option<BlkifResponse>,
    /// Segments of each indirect request taken.
    indirect: Vec<u16>,
    /// `feature-persistent` negotiated: grants stay mapped once mapped, as Linux blkback
    /// keeps them.
    persistent: bool,
    /// Every data or indirect grant mapped so far (kept mapped when persistent).
    mapped: RefCell<BTreeSet<u32>>,
    /// Discards taken: first sector, sectors, flag.
    discards: Vec<(u64, u64, u8)>,
}

impl FakeBlkback {
    fn attach(&mut self, ring_ref: u32) {
        let page = self
            .grants
            .0
            .borrow()
            .entries()
            .map(&self.memory, ring_ref, DomId::ZERO, true)
            .expect("ring grant maps");
        self.ring_page = Some(page);
        self.ring = Some(BackRing::attach(SharedRing::from_page(page).unwrap(), 0));
    }

    /// Lets go of the ring and of persistent grants (blkback unmaps them when it closes).
    fn detach(&mut self, ring_ref: u32) {
        self.ring = None;
        let grants = self.grants.0.borrow();
        grants.entries().unmap(ring_ref);
        for gref in self.mapped.borrow().iter() {
            grants.entries().unmap(*gref);
        }
    }

    /// Maps a data or indirect grant (writable if `write`).
    fn map(&self, gref: u32, write: bool) -> Option<&'static AtomicPage> {
        let page = self
            .grants
            .0
            .borrow()
            .entries()
            .map(&self.memory, gref, DomId::ZERO, write)
            .ok()?;
        self.mapped.borrow_mut().insert(gref);
        Some(page)
    }

    /// Unmaps it after the I/O, unless grants are persistent.
    fn unmap(&self, gref: u32) {
        if !self.persistent {
            self.grants.0.borrow().entries().unmap(gref);
        }
    }

    /// Serves every request on the ring; returns whether it answered anything.
    fn process(&mut self) -> bool {
        if self.asleep {
            return false;
        }
        let mut answered = false;
        let mut overrun = false;
        let Some(mut ring) = self.ring.take() else {
            return false;
        };
        while let Ok(Some(request)) = ring.take_request() {
            if let Some(duplicate) = self.duplicate.take() {
                // This request's answer is a second copy of the previous one.
                self.ops.push(request.operation);
                ring.write_response(duplicate).unwrap();
                answered = true;
                continue;
            }
            // As Linux blkback: an indirect request is answered with its indirect_op.
            let operation = if request.operation == BLKIF_OP_INDIRECT {
                BlkifRequestIndirect::from_request(&request).indirect_op
            } else {
                request.operation
            };
            let mut response = BlkifResponse {
                id: request.id,
                operation,
                status: self.serve(&request),
                ..Default::default()
            };
            match self.misbehave.pop_front() {
                None => {}
                Some(Misbehave::IdOutOfRange) => response.id = 1000,
                Some(Misbehave::Id(id)) => response.id = id,
                Some(Misbehave::WrongOperation) => response.operation ^= 1,
                Some(Misbehave::Status(s)) => response.status = s,
                Some(Misbehave::Duplicate) => self.duplicate = Some(response),
                Some(Misbehave::Silent) => continue,
                Some(Misbehave::HoldGrants) => {
                    let mut grefs: Vec<u32> = if request.operation == BLKIF_OP_INDIRECT {
                        let indirect = BlkifRequestIndirect::from_request(&request);
                        indirect.indirect_grefs[..1].to_vec()
                    } else {
                        Vec::new()
                    };
                    grefs.extend(self.segments(&request).unwrap().1.iter().map(|s| s.gref));
                    let grants = self.grants.0.borrow();
                    for gref in grefs {
                        grants
                            .entries()
                            .map(&self.memory, gref, DomId::ZERO, false)
                            .unwrap();
                        self.held.push(gref);
                    }
                }
                Some(Misbehave::ProducerOverrun) => overrun = true,
            }
            ring.write_response(response).unwrap();
            answered = true;
        }
        // As Linux blkback going idle: ask to hear of the next request (req_event).
        let _ = ring.final_check_for_requests();
        if answered {
            ring.push_responses_and_check_notify();
        }
        if overrun {
            // rsp_prod (offset 8) jumps 100 ahead of what was answered.
            let page = self.ring_page.unwrap();
            let mut raw = [0u8; 4];
            page.read(8, &mut raw).unwrap();
            let bogus = u32::from_le_bytes(raw).wrapping_add(100);
            page.write(8, &bogus.to_le_bytes()).unwrap();
        }
        self.ring = Some(ring);
        answered
    }

    /// The operation and segments of `request`, read from its indirect pages if it is
    /// indirect (mapped read-only, at most 256 segments as Linux blkback takes).
    fn segments(&self, request: &BlkifRequest) -> Option<(u8, Vec<BlkifRequestSegment>)> {
        if request.operation != BLKIF_OP_INDIRECT {
            let n = usize::from(request.nr_segments).min(request.seg.len());
            return Some((request.operation, request.seg[..n].to_vec()));
        }
        let indirect = BlkifRequestIndirect::from_request(request);
        let n = usize::from(indirect.nr_segments);
        if n == 0 || n > 256 {
            return None;
        }
        let mut segments = Vec::new();
        for (page_index, gref) in indirect.indirect_grefs[..n.div_ceil(512)]
            .iter()
            .enumerate()
        {
            let page = self.map(*gref, false)?;
            let count = (n - page_index * 512).min(512);
            let mut raw = std::vec![0u8; count * 8];
            page.read(0, &mut raw).unwrap();
            self.unmap(*gref);
            for entry in raw.chunks(8) {
                let gref = u32::from_le_bytes([entry[0], entry[1], entry[2], entry[3]]);
                segments.push(BlkifRequestSegment::new(gref, entry[4], entry[5]));
            }
        }
        Some((indirect.indirect_op, segments))
    }

    /// Does the I/O of `request` through the grants; the status to answer.
    fn serve(&mut self, request: &BlkifRequest) -> i16 {
        self.ops.push(request.operation);
        if request.operation == BLKIF_OP_DISCARD {
            let d = BlkifRequestDiscard::from_request(request);
            self.discards.push((d.sector_number, d.nr_sectors, d.flag));
            let start = d.sector_number as usize * 512;
            let Some(range) = self
                .disk
                .get_mut(start..start + d.nr_sectors as usize * 512)
            else {
                return BLKIF_RSP_ERROR;
            };
            range.fill(0);
            return BLKIF_RSP_OKAY;
        }
        let Some((operation, segments)) = self.segments(request) else {
            return BLKIF_RSP_ERROR;
        };
        if request.operation == BLKIF_OP_INDIRECT {
            self.indirect.push(segments.len() as u16);
        }
        let write = operation == BLKIF_OP_WRITE;
        if write && self.readonly {
            return BLKIF_RSP_ERROR;
        }
        if operation != BLKIF_OP_READ && !write {
            return BLKIF_RSP_OKAY;
        }
        let mut offset = request.sector_number as usize * 512;
        for seg in &segments {
            let Some(page) = self.map(seg.gref, !write) else {
                return BLKIF_RSP_ERROR;
            };
            let first = usize::from(seg.first_sect) * 512;
            let len = (usize::from(seg.last_sect) + 1) * 512 - first;
            if offset + len > self.disk.len() {
                self.unmap(seg.gref);
                return BLKIF_RSP_ERROR;
            }
            if write {
                page.read(first, &mut self.disk[offset..offset + len])
                    .unwrap();
            } else {
                page.write(first, &self.disk[offset..offset + len]).unwrap();
            }
            self.unmap(seg.gref);
            offset += len;
        }
        BLKIF_RSP_OKAY
    }
}

type Device = Blkfront<HostMemory, SharedGrantTable, FakeEvents>;

struct Rig {
    xs: XsClient<FakeXenstored>,
    backend: Rc<RefCell<FakeBlkback>>,
    memory: HostMemory,
}

/// The toolstack's keys and a backend that connects when the front end is Initialised,
/// publishing `keys` (beyond `sectors`/`sector-size`).
fn rig(
    readonly: bool,
    keys: &[(&str, &str)],
) -> (Rig, Platform<HostMemory, SharedGrantTable, FakeEvents>) {
    let memory = HostMemory::new();
    let grants = SharedGrantTable(Rc::new(RefCell::new(GrantTable::new(
        FakeGrantEntries::with_frames(1),
        1,
        4,
    ))));
    let backend = Rc::new(RefCell::new(FakeBlkback {
        memory: memory.clone(),
        grants: grants.clone(),
        disk: (0..SECTORS as usize * 512)
            .map(|i| (i / 512) as u8)
            .collect(),
        readonly,
        ring: None,
        ring_page: None,
        misbehave: VecDeque::new(),
        held: Vec::new(),
        asleep: false,
        ops: Vec::new(),
        duplicate: None,
        indirect: Vec::new(),
        persistent: false,
        mapped: RefCell::new(BTreeSet::new()),
        discards: Vec::new(),
    }));
    let mut fake = FakeXenstored::new(DOMID);
    toolstack(&mut fake.store, readonly);
    let keys: Vec<(String, String)> = keys
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let be = backend.clone();
    fake.on_write = Some(Box::new(move |s: &mut Store, path: &str, value: &str| {
        if path == format!("{FRONT}/state") && value == "3" {
            // With several queues the fake serves queue 0 alone.
            let ring_ref: u32 = s
                .get(&format!("{FRONT}/ring-ref"))
                .or_else(|| s.get(&format!("{FRONT}/queue-0/ring-ref")))
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(
                s.get(&format!("{FRONT}/protocol")).as_deref(),
                Some("x86_64-abi")
            );
            let offered = keys
                .iter()
                .any(|(k, v)| k == "feature-persistent" && v == "1");
            let front = s.get(&format!("{FRONT}/feature-persistent"));
            be.borrow_mut().persistent = offered && front.as_deref() == Some("1");
            be.borrow_mut().attach(ring_ref);
            s.set(&format!("{BACK}/sectors"), &SECTORS.to_string());
            s.set(&format!("{BACK}/sector-size"), "512");
            s.set(&format!("{BACK}/info"), if readonly { "4" } else { "0" });
            for (k, v) in &keys {
                s.set(&format!("{BACK}/{k}"), v);
            }
            s.set(&format!("{BACK}/state"), "4");
        }
    }));
    let mut events = FakeEvents::new();
    let be = backend.clone();
    events.on_wait = Some(Box::new(move |_, _| be.borrow_mut().process()));
    let platform = Platform {
        pages: memory.clone(),
        grants,
        events,
    };
    (
        Rig {
            xs: XsClient::new(fake),
            backend,
            memory,
        },
        platform,
    )
}

fn toolstack(s: &mut Store, readonly: bool) {
    let mode = if readonly { "r" } else { "w" };
    s.add_device(FRONT, BACK, &[], &[("mode", mode)]);
}

fn connect(readonly: bool, keys: &[(&str, &str)]) -> (Rig, Device) {
    let (mut rig, platform) = rig(readonly, keys);
    let device = Blkfront::connect(&mut rig.xs, DEVID, platform, far()).unwrap();
    (rig, device)
}

fn pattern(sector: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (sector as usize + i / 512) as u8)
        .collect()
}

#[test]
fn connect_publishes_the_ring_and_reads_the_disk() {
    let (mut rig, device) = connect(
        false,
        &[
            ("feature-flush-cache", "1"),
            ("physical-sector-size", "4096"),
        ],
    );
    let store = &rig.xs.transport_mut().store;
    assert_eq!(
        store.get(&format!("{FRONT}/protocol")).as_deref(),
        Some("x86_64-abi")
    );
    assert_eq!(store.get(&format!("{FRONT}/state")).as_deref(), Some("4"));
    let port = store.get(&format!("{FRONT}/event-channel")).unwrap();
    assert_eq!(port, device.port().get().to_string());
    let info = device.info();
    assert_eq!(
        (info.sectors, info.sector_size, info.physical_sector_size),
        (SECTORS, 512, 4096)
    );
    assert_eq!((info.readonly, info.flush), (false, FlushMode::FlushCache));
    // One grant in place: the ring.
    assert_eq!(device.platform().grants.grants_in_use(), 1);
    assert_eq!(device.platform().events.open.len(), 1);
}

#[test]
fn blocking_read_and_write_round_trip() {
    let (mut rig, mut device) = connect(false, &[]);
    let data = device.read(&mut rig.xs, 3 * 512, 3 * 4096, far()).unwrap();
    assert_eq!(data, pattern(3, 3 * 4096));
    let payload: Vec<u8> = (0..8192).map(|i| (i * 7) as u8).collect();
    device
        .write(&mut rig.xs, 100 * 512, &payload, far())
        .unwrap();
    assert_eq!(
        &rig.backend.borrow().disk[100 * 512..100 * 512 + 8192],
        &payload[..]
    );
    assert_eq!(
        device.read(&mut rig.xs, 100 * 512, 8192, far()).unwrap(),
        payload
    );
    let stats = device.stats();
    assert_eq!(
        (stats.requests, stats.responses, stats.bad_responses),
        (3, 3, 0)
    );
    assert_eq!(stats.data_grants, 0, "every data grant ended");
    assert_eq!(device.platform().grants.grants_in_use(), 1);
    assert_eq!(
        rig.memory.allocated(),
        1,
        "only the ring page stays allocated"
    );
}

#[test]
fn a_full_ring_in_flight_takes_one_notification() {
    let (_rig, mut device) = connect(false, &[]);
    let mut ids = Vec::new();
    for i in 0..32u64 {
        ids.push(device.submit_read(i * 4096, 11 * 4096).unwrap());
    }
    assert_eq!(device.submit_read(0, 512), Err(BlkError::RingFull));
    assert_eq!(device.in_flight(), 32);
    assert_eq!(device.stats().data_grants, 32 * 11);
    // Submitted, not yet published: the backend sees nothing until the kick.
    assert!(!_rig.backend.borrow_mut().process());
    assert_eq!(device.stats().notifications, 0);
    device.kick().unwrap();
    // One notification for the whole burst.
    assert_eq!(device.stats().notifications, 1);
    assert!(_rig.backend.borrow_mut().process());
    let done = device.poll();
    assert_eq!(done.len(), 32);
    for (c, i) in done.iter().zip(0..) {
        assert_eq!(c.id, ids[i as usize]);
        assert_eq!(c.result.as_deref(), Ok(&pattern(i * 8, 11 * 4096)[..]));
    }
    assert_eq!(device.stats().data_grants, 0);
    assert_eq!(device.in_flight(), 0);
}

#[test]
fn flush_uses_what_the_backend_offers() {
    let (mut rig, mut device) = connect(
        false,
        &[("feature-flush-cache", "1"), ("feature-barrier", "1")],
    );
    device.flush(&mut rig.xs, far()).unwrap();
    assert_eq!(rig.backend.borrow().ops, [BLKIF_OP_FLUSH_DISKCACHE]);
    let (mut rig, mut device) = connect(false, &[("feature-barrier", "1")]);
    device.flush(&mut rig.xs, far()).unwrap();
    assert_eq!(rig.backend.borrow().ops, [BLKIF_OP_WRITE_BARRIER]);
    let (mut rig, mut device) = connect(false, &[]);
    assert_eq!(device.info().flush, FlushMode::WriteThrough);
    device.flush(&mut rig.xs, far()).unwrap();
    assert!(
        rig.backend.borrow().ops.is_empty(),
        "write-through: nothing to send"
    );
}

#[test]
fn a_read_only_disk_refuses_writes_locally_and_the_backend_refuses_them_too() {
    let (mut rig, mut device) = connect(true, &[]);
    assert!(device.info().readonly);
    assert_eq!(
        device.write(&mut rig.xs, 0, &[1; 512], far()),
        Err(BlkError::ReadOnly)
    );
    assert!(rig.backend.borrow().ops.is_empty());
    let id = device.submit_write_unguarded(0, &[1; 512]).unwrap();
    assert_eq!(
        device.wait_for(&mut rig.xs, id, far()),
        Err(BlkError::IoError)
    );
    assert_eq!(rig.backend.borrow().disk[0], 0, "the disk is unchanged");
    assert_eq!(device.stats().data_grants, 0);
}

#[test]
fn requests_outside_the_disk_or_unaligned_are_refused() {
    let (_rig, mut device) = connect(false, &[]);
    let end = SECTORS * 512;
    assert_eq!(
        device.submit_read(end - 512, 1024),
        Err(BlkError::OutOfRange {
            sector: SECTORS - 1,
            sectors: 2
        })
    );
    assert_eq!(
        device.submit_read(u64::MAX - 511, 512).err(),
        Some(BlkError::OutOfRange {
            sector: (u64::MAX - 511) / 512,
            sectors: 1
        })
    );
    assert_eq!(device.submit_read(0, 0), Err(BlkError::BadLength(0)));
    assert_eq!(device.submit_read(0, 100), Err(BlkError::BadLength(100)));
    assert_eq!(
        device.submit_read(0, 12 * 4096),
        Err(BlkError::BadLength(12 * 4096))
    );
    assert_eq!(device.submit_read(1, 512), Err(BlkError::BadLength(1)));
    assert_eq!(device.stats().requests, 0);
}

/// Submits one read per misbehaviour and checks what each request ends with.
fn misbehaving(m: Misbehave) -> (Rig, Device, Vec<crate::device::Completion>) {
    let (rig, mut device) = connect(false, &[]);
    rig.backend.borrow_mut().misbehave.push_back(m);
    device.submit_read(0, 512).unwrap();
    device.kick().unwrap();
    rig.backend.borrow_mut().process();
    let done = device.poll();
    (rig, device, done)
}

#[test]
fn a_bad_id_is_counted_and_the_request_stays_in_flight() {
    let (_rig, device, done) = misbehaving(Misbehave::IdOutOfRange);
    assert!(done.is_empty());
    assert_eq!(device.stats().bad_responses, 1);
    assert_eq!(device.in_flight(), 1);
}

#[test]
fn a_duplicate_response_is_counted_once_it_names_nothing() {
    let (rig, mut device) = connect(false, &[]);
    rig.backend
        .borrow_mut()
        .misbehave
        .push_back(Misbehave::Duplicate);
    device.submit_read(0, 512).unwrap();
    let second = device.submit_read(512, 512).unwrap();
    device.kick().unwrap();
    rig.backend.borrow_mut().process();
    let done = device.poll();
    // The first completes; its copy (in the second's place) names nothing outstanding.
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].result.as_deref(), Ok(&pattern(0, 512)[..]));
    let stats = device.stats();
    assert_eq!((stats.responses, stats.bad_responses), (1, 1));
    assert_eq!(device.in_flight(), 1);
    assert_ne!(done[0].id, second);
}

#[test]
fn a_wrong_operation_or_unknown_status_fails_the_request() {
    let (_rig, device, done) = misbehaving(Misbehave::WrongOperation);
    assert_eq!(
        done[0].result,
        Err(BlkError::BadResponse(BadResponse::WrongOperation {
            expected: BLKIF_OP_READ,
            got: BLKIF_OP_WRITE
        }))
    );
    assert_eq!(device.stats().data_grants, 0);
    let (_rig, _device, done) = misbehaving(Misbehave::Status(77));
    assert_eq!(
        done[0].result,
        Err(BlkError::BadResponse(BadResponse::UnknownStatus(77)))
    );
    let (_rig, _device, done) = misbehaving(Misbehave::Status(BLKIF_RSP_ERROR));
    assert_eq!(done[0].result, Err(BlkError::IoError));
    let (_rig, _device, done) = misbehaving(Misbehave::Status(-2));
    assert_eq!(done[0].result, Err(BlkError::NotSupported));
}

#[test]
fn a_producer_overrun_kills_the_ring_and_fails_everything() {
    let (rig, mut device) = connect(false, &[]);
    rig.backend
        .borrow_mut()
        .misbehave
        .extend([Misbehave::ProducerOverrun, Misbehave::Silent]);
    device.submit_read(0, 512).unwrap();
    device.submit_read(512, 512).unwrap();
    device.kick().unwrap();
    rig.backend.borrow_mut().process();
    let done = device.poll();
    assert_eq!(done.len(), 2);
    assert!(done.iter().all(|c| c.result == Err(BlkError::RingCorrupt)));
    assert_eq!(device.submit_read(0, 512), Err(BlkError::RingCorrupt));
    assert_eq!(device.stats().data_grants, 0);
}

#[test]
fn pages_the_backend_keeps_mapped_are_never_reused() {
    let (rig, mut device) = connect(false, &[]);
    rig.backend
        .borrow_mut()
        .misbehave
        .push_back(Misbehave::HoldGrants);
    device.submit_read(0, 4096).unwrap();
    device.kick().unwrap();
    rig.backend.borrow_mut().process();
    let done = device.poll();
    assert_eq!(done[0].result, Err(BlkError::GrantStillMapped));
    assert_eq!(device.stats().quarantined_pages, 1);
    assert_eq!(rig.memory.allocated(), 2, "the held page is not given back");
    let held = rig.backend.borrow_mut().held.pop().unwrap();
    rig.backend.borrow().grants.0.borrow().entries().unmap(held);
    device.poll();
    assert_eq!(device.stats().quarantined_pages, 0);
    assert_eq!(rig.memory.allocated(), 1);
}

#[test]
fn a_backend_closing_while_we_wait_ends_the_wait() {
    let (mut rig, mut device) = connect(false, &[]);
    rig.backend
        .borrow_mut()
        .misbehave
        .push_back(Misbehave::Silent);
    rig.xs
        .transport_mut()
        .store
        .set(&format!("{BACK}/state"), "5");
    assert_eq!(
        device.read(&mut rig.xs, 0, 512, far()),
        Err(BlkError::BackendGone)
    );
    assert_eq!(device.submit_read(0, 512), Err(BlkError::BackendGone));
    assert_eq!(device.stats().data_grants, 0);
}

#[test]
fn a_silent_backend_times_out_at_the_deadline() {
    let (mut rig, mut device) = connect(false, &[]);
    rig.backend
        .borrow_mut()
        .misbehave
        .push_back(Misbehave::Silent);
    rig.xs.transport_mut().recv_cost_nanos = 1_000_000;
    let deadline = rig.xs.now().add_millis(50);
    assert_eq!(
        device.read(&mut rig.xs, 0, 512, deadline),
        Err(BlkError::Timeout)
    );
    assert!(rig.xs.now() <= deadline.add_millis(5));
    assert_eq!(
        device.in_flight(),
        1,
        "the request stays in flight, abandoned"
    );
    // The backend took it (went idle past it): the I/O was late, not the notification lost.
    assert_eq!(
        (device.stats().timeouts, device.stats().timeouts_taken),
        (1, 1)
    );
}

#[test]
fn a_backend_never_woken_times_out_with_its_request_untaken() {
    let (mut rig, mut device) = connect(false, &[]);
    // The notification never reaches the backend: it does not run while the front end waits.
    rig.backend.borrow_mut().asleep = true;
    rig.xs.transport_mut().recv_cost_nanos = 1_000_000;
    let deadline = rig.xs.now().add_millis(50);
    assert_eq!(
        device.read(&mut rig.xs, 0, 512, deadline),
        Err(BlkError::Timeout)
    );
    assert_eq!(
        (device.stats().timeouts, device.stats().timeouts_taken),
        (1, 0)
    );
    // Once it runs, the request completes quietly (abandoned) and the next one works.
    rig.backend.borrow_mut().asleep = false;
    assert_eq!(device.read(&mut rig.xs, 0, 512, far()).unwrap().len(), 512);
    assert_eq!(device.in_flight(), 0);
}

/// As Linux blkback does it: Closing when the front end says Closing, and only when the
/// front end is Closed, unmap the ring and go Closed.
#[test]
fn close_ends_every_grant_and_the_port() {
    let (mut rig, device) = connect(false, &[]);
    let grants = device.platform().grants.clone();
    let backend = rig.backend.clone();
    rig.xs.transport_mut().on_write =
        Some(Box::new(move |s: &mut Store, path: &str, value: &str| {
            if path != format!("{FRONT}/state") {
                return;
            }
            if value == "5" {
                s.set(&format!("{BACK}/state"), "5");
            }
        }));
    // Some time later (while the front end waits), blkback has seen Closed: it unmaps.
    rig.xs
        .transport_mut()
        .at(Instant::from_nanos(1_000), move |s: &mut Store| {
            let ring_ref: u32 = s
                .get(&format!("{FRONT}/ring-ref"))
                .unwrap()
                .parse()
                .unwrap();
            backend.borrow_mut().detach(ring_ref);
            s.set(&format!("{BACK}/state"), "6");
        });
    device.close(&mut rig.xs, far()).unwrap();
    assert_eq!(grants.grants_in_use(), 0);
    assert_eq!(rig.memory.allocated(), 0);
    assert_eq!(
        rig.xs
            .transport_mut()
            .store
            .get(&format!("{FRONT}/state"))
            .as_deref(),
        Some("6")
    );
    assert_eq!(
        rig.xs.transport_mut().store.watch_count(),
        0,
        "the backend watch is gone"
    );
}

#[test]
fn a_backend_that_never_connects_fails_the_handshake_cleanly() {
    let (mut rig, platform) = rig(false, &[]);
    rig.xs.transport_mut().on_write = None;
    let memory = rig.memory.clone();
    let deadline = Instant::from_nanos(1_000_000);
    assert!(matches!(
        Blkfront::connect(&mut rig.xs, DEVID, platform, deadline),
        Err(BlkError::Timeout)
    ));
    assert_eq!(memory.allocated(), 0, "the ring page came back");
}

const INDIRECT_256: &[(&str, &str)] = &[("feature-max-indirect-segments", "256")];

#[test]
fn large_requests_go_indirect_when_the_backend_offers_it() {
    let (mut rig, mut device) = connect(false, INDIRECT_256);
    // Linux blkback offers 256; Linux blkfront's default of 32 is the cap.
    assert_eq!(device.indirect_segments(), 32);
    assert_eq!(device.max_request_bytes(), 128 * 1024);
    let payload: Vec<u8> = (0..128 * 1024).map(|i| (i * 13 + 5) as u8).collect();
    device
        .write(&mut rig.xs, 16 * 512, &payload, far())
        .unwrap();
    assert_eq!(
        &rig.backend.borrow().disk[16 * 512..16 * 512 + payload.len()],
        &payload[..]
    );
    let back = device.read(&mut rig.xs, 16 * 512, payload.len(), far());
    assert!(back == Ok(payload), "read back differs");
    // 11 pages or fewer stay direct; 12 go indirect, with a short last segment.
    device.read(&mut rig.xs, 0, 11 * 4096, far()).unwrap();
    let odd = device
        .read(&mut rig.xs, 300 * 512, 11 * 4096 + 1024, far())
        .unwrap();
    assert!(
        odd == pattern(300, 11 * 4096 + 1024),
        "12-segment read differs"
    );
    assert_eq!(
        device.submit_read(0, 33 * 4096),
        Err(BlkError::BadLength(33 * 4096))
    );
    let backend = rig.backend.borrow();
    assert_eq!(backend.indirect, [32, 32, 12]);
    assert_eq!(
        backend.ops,
        [
            BLKIF_OP_INDIRECT,
            BLKIF_OP_INDIRECT,
            BLKIF_OP_READ,
            BLKIF_OP_INDIRECT
        ]
    );
    let stats = device.stats();
    assert_eq!((stats.requests, stats.indirect_requests), (4, 3));
    assert_eq!((stats.responses, stats.bad_responses), (4, 0));
    assert_eq!(stats.data_grants, 0, "data and indirect grants all ended");
    assert_eq!(device.platform().grants.grants_in_use(), 1);
    assert_eq!(rig.memory.allocated(), 1);
}

#[test]
fn a_full_ring_of_indirect_requests_round_trips() {
    let (_rig, mut device) = connect(false, INDIRECT_256);
    for i in 0..32u64 {
        device.submit_read(i * 512, 32 * 4096).unwrap();
    }
    assert_eq!(device.stats().data_grants, 32 * 33);
    device.kick().unwrap();
    assert!(_rig.backend.borrow_mut().process());
    let done = device.poll();
    assert_eq!(done.len(), 32);
    for (c, i) in done.iter().zip(0..) {
        assert!(c.result.as_deref() == Ok(&pattern(i, 32 * 4096)[..]), "{i}");
    }
    assert_eq!(device.stats().indirect_requests, 32);
    assert_eq!(device.stats().data_grants, 0);
}

#[test]
fn indirect_is_unused_unless_offered_above_eleven_and_wanted() {
    use crate::features::Features;
    for keys in [
        &[][..],
        &[("feature-max-indirect-segments", "0")],
        &[("feature-max-indirect-segments", "11")],
    ] {
        let (_rig, mut device) = connect(false, keys);
        assert_eq!(device.indirect_segments(), 0, "{keys:?}");
        assert_eq!(device.max_request_bytes(), 11 * 4096);
        assert_eq!(
            device.submit_read(0, 12 * 4096),
            Err(BlkError::BadLength(12 * 4096))
        );
    }
    // A backend that takes fewer than 32: its count is the cap.
    let (_rig, device) = connect(false, &[("feature-max-indirect-segments", "16")]);
    assert_eq!(device.max_request_bytes(), 16 * 4096);
    // Switched off (`blk-indirect=off`): offered, not used.
    let (mut rig, platform) = rig(false, INDIRECT_256);
    let mut device =
        Blkfront::connect_with(&mut rig.xs, DEVID, platform, Features::NONE, far()).unwrap();
    assert_eq!(device.indirect_segments(), 0);
    assert_eq!(
        device.submit_read(0, 12 * 4096),
        Err(BlkError::BadLength(12 * 4096))
    );
    device.read(&mut rig.xs, 0, 11 * 4096, far()).unwrap();
    assert_eq!(device.stats().indirect_requests, 0);
    assert!(rig.backend.borrow().indirect.is_empty());
}

#[test]
fn a_malformed_indirect_offer_fails_the_handshake_cleanly() {
    for bad in ["lots", "-1", "4294967296", "99999999999999999999999", ""] {
        let (mut rig, platform) = rig(false, &[("feature-max-indirect-segments", bad)]);
        assert_eq!(
            Blkfront::connect(&mut rig.xs, DEVID, platform, far()).err(),
            Some(BlkError::BadBackendValue("feature-max-indirect-segments")),
            "{bad:?}"
        );
    }
}

/// One 128 KiB indirect read against a backend misbehaving with `m`.
fn misbehaving_indirect(m: Misbehave) -> (Rig, Device, Vec<crate::device::Completion>) {
    let (rig, mut device) = connect(false, INDIRECT_256);
    rig.backend.borrow_mut().misbehave.push_back(m);
    device.submit_read(0, 32 * 4096).unwrap();
    device.kick().unwrap();
    rig.backend.borrow_mut().process();
    let done = device.poll();
    (rig, device, done)
}

#[test]
fn bad_answers_to_indirect_requests_fail_them_and_end_every_grant() {
    let (rig, device, done) = misbehaving_indirect(Misbehave::WrongOperation);
    assert_eq!(
        done[0].result,
        Err(BlkError::BadResponse(BadResponse::WrongOperation {
            expected: BLKIF_OP_READ,
            got: BLKIF_OP_WRITE
        }))
    );
    assert_eq!(device.stats().data_grants, 0);
    assert_eq!(rig.memory.allocated(), 1);
    let (rig, device, done) = misbehaving_indirect(Misbehave::IdOutOfRange);
    assert!(done.is_empty());
    assert_eq!(device.stats().bad_responses, 1);
    assert_eq!(
        device.in_flight(),
        1,
        "its grants stay until it is answered"
    );
    assert_eq!(device.stats().data_grants, 33);
    drop(rig);
    let (rig, device, done) = misbehaving_indirect(Misbehave::Status(BLKIF_RSP_ERROR));
    assert_eq!(done[0].result, Err(BlkError::IoError));
    assert_eq!(device.stats().data_grants, 0);
    assert_eq!(rig.memory.allocated(), 1);
}

#[test]
fn an_indirect_page_the_backend_keeps_mapped_is_quarantined() {
    let (rig, mut device, done) = misbehaving_indirect(Misbehave::HoldGrants);
    assert_eq!(done[0].result, Err(BlkError::GrantStillMapped));
    // The 32 data pages and the indirect page are all held.
    assert_eq!(device.stats().quarantined_pages, 33);
    let held: Vec<u32> = rig.backend.borrow_mut().held.drain(..).collect();
    for gref in held {
        rig.backend.borrow().grants.0.borrow().entries().unmap(gref);
    }
    device.poll();
    assert_eq!(device.stats().quarantined_pages, 0);
    assert_eq!(rig.memory.allocated(), 1);
}

const PERSISTENT: &[(&str, &str)] = &[("feature-persistent", "1")];

#[test]
fn persistent_grants_are_granted_once_and_reused() {
    let (mut rig, mut device) = connect(false, PERSISTENT);
    let store = &rig.xs.transport_mut().store;
    assert_eq!(
        store.get(&format!("{FRONT}/feature-persistent")).as_deref(),
        Some("1")
    );
    assert!(device.persistent() && rig.backend.borrow().persistent);
    let payload: Vec<u8> = (0..8192).map(|i| (i * 3 + 1) as u8).collect();
    for round in 0..3u64 {
        let at = (40 + round * 16) * 512;
        device.write(&mut rig.xs, at, &payload, far()).unwrap();
        assert_eq!(
            device.read(&mut rig.xs, at, 8192, far()),
            Ok(payload.clone())
        );
    }
    let data = device.read(&mut rig.xs, 3 * 512, 3 * 4096, far()).unwrap();
    assert_eq!(data, pattern(3, 3 * 4096));
    let stats = device.stats();
    // Two pages granted by the first write, three by the last read's third page.
    assert_eq!(stats.persistent_grants, 3);
    assert_eq!(stats.persistent_reused, 2 * 6 - 2 + 2);
    assert_eq!(stats.data_grants, 0);
    assert_eq!(device.platform().grants.grants_in_use(), 1 + 3);
    // The backend mapped only those three pages, and still has them (no grant was ended).
    assert_eq!(rig.backend.borrow().mapped.borrow().len(), 3);
    assert_eq!(stats.quarantined_pages, 0);
}

#[test]
fn persistent_indirect_requests_keep_their_indirect_pages_too() {
    let keys = [PERSISTENT[0], INDIRECT_256[0]];
    let (mut rig, mut device) = connect(false, &keys);
    let payload: Vec<u8> = (0..128 * 1024).map(|i| (i * 11) as u8).collect();
    for _ in 0..2 {
        device.write(&mut rig.xs, 0, &payload, far()).unwrap();
        let back = device.read(&mut rig.xs, 0, payload.len(), far()).unwrap();
        assert!(back == payload, "read back differs");
    }
    let stats = device.stats();
    assert_eq!(stats.indirect_requests, 4);
    assert_eq!(
        stats.persistent_grants, 33,
        "32 data pages and one indirect page"
    );
    assert_eq!(stats.persistent_reused, 3 * 33);
    assert_eq!(rig.backend.borrow().mapped.borrow().len(), 33);
}

#[test]
fn without_both_ends_agreeing_grants_are_per_request() {
    use crate::features::Features;
    // Not offered: the front end asks, the backend does not keep grants.
    let (mut plain, mut device) = connect(false, &[]);
    assert!(!device.persistent());
    device.read(&mut plain.xs, 0, 8192, far()).unwrap();
    device.read(&mut plain.xs, 0, 8192, far()).unwrap();
    let stats = device.stats();
    assert_eq!((stats.persistent_grants, stats.persistent_reused), (0, 0));
    assert_eq!(device.platform().grants.grants_in_use(), 1);
    // Offered but switched off (`blk-persistent=off`): the front end says 0.
    let (mut rig, platform) = rig(false, PERSISTENT);
    let features = Features {
        persistent: false,
        ..Features::default()
    };
    let mut device = Blkfront::connect_with(&mut rig.xs, DEVID, platform, features, far()).unwrap();
    let store = &rig.xs.transport_mut().store;
    assert_eq!(
        store.get(&format!("{FRONT}/feature-persistent")).as_deref(),
        Some("0")
    );
    assert!(!device.persistent() && !rig.backend.borrow().persistent);
    device.read(&mut rig.xs, 0, 8192, far()).unwrap();
    assert_eq!(device.stats().persistent_reused, 0);
    assert_eq!(device.platform().grants.grants_in_use(), 1);
    assert_eq!(rig.memory.allocated(), 1);
}

#[test]
fn a_backend_that_unmaps_persistent_grants_anyway_still_works() {
    // Linux blkback unmaps persistent grants beyond its limit or unused for a while: the
    // front end keeps granting the same pages, and they are mapped again.
    let (mut rig, mut device) = connect(false, PERSISTENT);
    device.read(&mut rig.xs, 0, 4096, far()).unwrap();
    let kept: Vec<u32> = rig
        .backend
        .borrow()
        .mapped
        .borrow()
        .iter()
        .copied()
        .collect();
    for gref in kept {
        rig.backend.borrow().grants.0.borrow().entries().unmap(gref);
    }
    let data = device.read(&mut rig.xs, 8 * 512, 4096, far()).unwrap();
    assert_eq!(data, pattern(8, 4096));
    assert_eq!(device.stats().persistent_reused, 1);
    // Bad answers fail their request, and the pages still go back to the pool.
    rig.backend
        .borrow_mut()
        .misbehave
        .push_back(Misbehave::WrongOperation);
    assert!(matches!(
        device.read(&mut rig.xs, 0, 4096, far()),
        Err(BlkError::BadResponse(BadResponse::WrongOperation { .. }))
    ));
    device.read(&mut rig.xs, 0, 4096, far()).unwrap();
    assert_eq!(device.stats().persistent_grants, 1);
    assert_eq!(device.stats().persistent_reused, 3);
}

#[test]
fn close_ends_the_persistent_grants_once_the_backend_lets_go() {
    let (mut rig, mut device) = connect(false, &[PERSISTENT[0], INDIRECT_256[0]]);
    device.read(&mut rig.xs, 0, 64 * 1024, far()).unwrap();
    assert_eq!(device.stats().persistent_grants, 17);
    let grants = device.platform().grants.clone();
    let backend = rig.backend.clone();
    rig.xs.transport_mut().on_write =
        Some(Box::new(move |s: &mut Store, path: &str, value: &str| {
            if path == format!("{FRONT}/state") && value == "5" {
                s.set(&format!("{BACK}/state"), "5");
            }
        }));
    rig.xs
        .transport_mut()
        .at(Instant::from_nanos(1_000), move |s: &mut Store| {
            let ring_ref: u32 = s
                .get(&format!("{FRONT}/ring-ref"))
                .unwrap()
                .parse()
                .unwrap();
            backend.borrow_mut().detach(ring_ref);
            s.set(&format!("{BACK}/state"), "6");
        });
    device.close(&mut rig.xs, far()).unwrap();
    assert_eq!(grants.grants_in_use(), 0);
    assert_eq!(rig.memory.allocated(), 0);
}

const DISCARD: &[(&str, &str)] = &[
    ("feature-discard", "1"),
    ("discard-granularity", "4096"),
    ("discard-alignment", "0"),
];

#[test]
fn discards_go_to_the_backend_when_offered() {
    let (mut rig, mut device) = connect(false, DISCARD);
    assert!(device.can_discard());
    // Longer than any data request: a discard carries no pages.
    device
        .discard(&mut rig.xs, 8 * 512, 1 << 19, false, far())
        .unwrap();
    assert_eq!(rig.backend.borrow().discards, [(8, 1024, 0)]);
    assert!(
        rig.backend.borrow().disk[8 * 512..8 * 512 + (1 << 19)]
            .iter()
            .all(|&b| b == 0)
    );
    assert_eq!(
        device.read(&mut rig.xs, 8 * 512, 4096, far()),
        Ok(std::vec![0; 4096])
    );
    // No discard-secure: a secure discard is refused here.
    assert_eq!(
        device.submit_discard(0, 512, true),
        Err(BlkError::NotSupported)
    );
    let stats = device.stats();
    assert_eq!(
        (stats.discards, stats.responses, stats.bad_responses),
        (1, 2, 0)
    );
    assert_eq!(rig.backend.borrow().ops[0], BLKIF_OP_DISCARD);
}

#[test]
fn secure_discards_need_discard_secure() {
    let keys = [DISCARD[0], ("discard-secure", "1")];
    let (mut rig, mut device) = connect(false, &keys);
    device.discard(&mut rig.xs, 0, 4096, true, far()).unwrap();
    assert_eq!(
        rig.backend.borrow().discards,
        [(0, 8, BLKIF_DISCARD_SECURE)]
    );
}

#[test]
fn discards_are_refused_locally_unless_offered_wanted_and_in_range() {
    use crate::features::Features;
    let (_rig, mut device) = connect(false, &[]);
    assert!(!device.can_discard());
    assert_eq!(
        device.submit_discard(0, 512, false),
        Err(BlkError::NotSupported)
    );
    let (mut rig, platform) = rig(false, DISCARD);
    let features = Features {
        discard: false,
        ..Features::default()
    };
    let mut device = Blkfront::connect_with(&mut rig.xs, DEVID, platform, features, far()).unwrap();
    assert!(!device.can_discard());
    assert_eq!(
        device.submit_discard(0, 512, false),
        Err(BlkError::NotSupported)
    );
    let (_rig, mut device) = connect(true, DISCARD);
    assert_eq!(
        device.submit_discard(0, 512, false),
        Err(BlkError::ReadOnly)
    );
    let (_rig, mut device) = connect(false, DISCARD);
    assert_eq!(
        device.submit_discard(0, 0, false),
        Err(BlkError::BadLength(0))
    );
    assert_eq!(
        device.submit_discard(0, 100, false),
        Err(BlkError::BadLength(100))
    );
    assert_eq!(
        device.submit_discard(1, 512, false),
        Err(BlkError::BadLength(1))
    );
    assert_eq!(
        device.submit_discard(512, SECTORS * 512, false),
        Err(BlkError::OutOfRange {
            sector: 1,
            sectors: SECTORS
        })
    );
    assert_eq!(
        device.submit_discard(u64::MAX - 511, 512, false).err(),
        Some(BlkError::OutOfRange {
            sector: (u64::MAX - 511) / 512,
            sectors: 1
        })
    );
    assert_eq!(device.stats().discards, 0);
    assert!(_rig.backend.borrow().ops.is_empty());
}

#[test]
fn bad_answers_to_a_discard_fail_it() {
    for (m, want) in [
        (Misbehave::Status(-2), BlkError::NotSupported),
        (Misbehave::Status(BLKIF_RSP_ERROR), BlkError::IoError),
        (
            Misbehave::WrongOperation,
            BlkError::BadResponse(BadResponse::WrongOperation {
                expected: BLKIF_OP_DISCARD,
                got: BLKIF_OP_DISCARD ^ 1,
            }),
        ),
    ] {
        let (mut rig, mut device) = connect(false, DISCARD);
        rig.backend.borrow_mut().misbehave.push_back(m);
        assert_eq!(
            device.discard(&mut rig.xs, 0, 4096, false, far()),
            Err(want)
        );
        // The device goes on working.
        device.read(&mut rig.xs, 0, 512, far()).unwrap();
    }
}

mod resize;
mod resume;

#[test]
fn a_response_naming_another_queues_request_is_refused() {
    let (mut rig, platform) = rig(false, &[]);
    // Offered before InitWait, as Linux blkback writes it.
    rig.xs
        .transport_mut()
        .store
        .set(&format!("{BACK}/multi-queue-max-queues"), "2");
    let mut dev = Blkfront::connect(&mut rig.xs, DEVID, platform, far()).unwrap();
    assert_eq!(dev.stats().queues, 2);
    assert_eq!(dev.ports().len(), 2);
    // Round-robin: the first read on queue 0 (id 0), the second on queue 1 (id 32).
    let first = dev.submit_read(0, 512).unwrap();
    let second = dev.submit_read(512, 512).unwrap();
    assert_eq!(dev.stats().queue_requests, [1, 1, 0, 0]);
    // Queue 0's request is answered on queue 0's ring with queue 1's id.
    rig.backend
        .borrow_mut()
        .misbehave
        .push_back(Misbehave::Id(32));
    dev.kick().unwrap();
    rig.backend.borrow_mut().process();
    let done = dev.poll();
    assert!(done.is_empty(), "{done:?}");
    assert_eq!(dev.stats().bad_responses, 1);
    assert_eq!(dev.in_flight(), 2, "neither request completed");
    // Queue 0 keeps working: a later request on it is answered rightly.
    let third = dev.submit_read(1024, 512).unwrap();
    dev.kick().unwrap();
    rig.backend.borrow_mut().process();
    let done = dev.poll();
    assert!(
        done.iter()
            .any(|c| c.id == third && c.result == Ok(pattern(2, 512)))
    );
    assert!(!done.iter().any(|c| c.id == first || c.id == second));
    let _ = &mut rig.xs;
}
