//! The guest's service: `netfront` under smoltcp and `httpd` over the site archive (`xvda`,
//! [`storage::tar`]) and the durable key-value store (`xvdb`, [`storage::kv`]). The
//! application (`app.rs`) runs it until told to stop; the `net` self-test group runs it after
//! its tests for the harness's clients.
//!
//! # The disk never stalls the loop: submit and poll
//! The service reaches the disks by submitting requests to `blkfront` and polling for their
//! completions once a turn, never by waiting on one ([`Storage`] answers
//! [`BackendError::Pending`] meanwhile, and `httpd` asks again on later turns). Submit and
//! poll rather than an asynchronous interface (futures and an executor): the loop already
//! polls every connection once a turn, `blkfront` already has `submit_*` and `poll`, and a
//! request is plain data kept in [`Storage`], so nothing borrows across turns and the host
//! tests drive it with time passed in, as they drive the rest of `httpd`.
//!
//! - A file's bytes are read ahead in pieces of up to [`READ_AHEAD`](crate::reads::READ_AHEAD) bytes into at most
//!   [`READ_SLOTS`](crate::reads::READ_SLOTS) buffers (the archive disk is read-only, so a piece stays good); a piece
//!   in flight answers `Pending`.
//! - `PUT` and `DELETE` on `/kv/` are one store commit each ([`storage::kv::Store::begin`]):
//!   its writes are submitted together, the flush once they all completed, and the answer
//!   comes once the flush did (durable, as before). One commit is on its way at a time;
//!   others wait their turn (`Pending`). A commit that needs a compaction (the live region is
//!   full, rare) still runs with blocking calls, once nothing else is in flight on the disk.
//! - `GET /kv/<key>` reads its record the same way and checks it as `Store::get` does.
//! - The loop sleeps on the vif's port and the disks' ports together ([`serve`]).
//!
//! A backend that hangs costs only the requests that wait on it: each gets an answer after
//! `httpd`'s storage deadline while everything else (`GET /`, the blob, the other disk) is
//! answered; the requests stay in flight and complete whenever the backend answers. The
//! answer is what will be: `503` for a read, and for a change that waited for another
//! change's commit (not begun, never applied); `202 Accepted` for a put or delete whose own
//! commit is on its way to the disk (it lands when the disk answers: a `503` would say it
//! was not done).

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use blkfront::{BlkError, Completion, RequestId};
use httpd::backend::{Backend, BackendError};
use httpd::{Config as ServerConfig, Server, ServerStats, Status};
use netfront::{Config, NetStats, Netfront, Platform};
use smoltcp::iface::{Config as IfaceConfig, Interface, SocketSet};
use smoltcp::wire::{EthernetAddress, HardwareAddress, Ipv4Address, Ipv4Cidr};
use storage::kv::{KvError, Op, RecordRead, Store};
use storage::tar::{Archive, TarError};
use storage::{BlockDevice, Slice};
use xenbus::frontend;
use xenbus::grant::GrantAccess;

use crate::disk::{BlkDisk, Disk};
use crate::memory::heap;
use crate::reads;
use crate::xen::platform::{KernelEvents, KernelGrants, KernelPages};
use crate::xen::{events, time, xenstore};

pub mod control;
pub mod suspend;

pub use control::Control;

// The service refuses what the store would refuse, before reading a body.
const _: () = assert!(httpd::MAX_KEY == storage::kv::MAX_KEY);
const _: () = assert!(httpd::MAX_VALUE == storage::kv::MAX_VALUE);

/// The connected network interface.
pub type Nic = Netfront<KernelPages, KernelGrants, KernelEvents>;

/// The interface and its sockets once connected.
pub struct Net {
    /// The vif.
    pub nic: Nic,
    /// smoltcp's interface over it.
    pub iface: Interface,
    /// The sockets (the service's, and any a test adds).
    pub sockets: SocketSet<'static>,
    /// The address: DHCP or static, from `ip=` on the command line.
    pub addressing: httpd::address::Addressing,
}

/// Rx buffers the service posts: the whole ring, as Linux's netfront does (netfront's default
/// is half of it). A back end that finds too few buffers drops the frame (hv's netback does
/// at once; Linux's queues a few hundred KiB first), and a burst of connections brings
/// QEMU's whole virtio queue at once while the guest is busy: with 128 buffers, hv's netback
/// dropped 11 to 48 frames in 40 rounds of the churn check, and the three or four `GET /`
/// whose SYN or request was among them waited 5.5-6 s for slirp to send it again; with 256,
/// none in 40 rounds.
pub const RX_BUFFERS: u16 = 256;

/// The vif's configuration: every offload and feature, less those the command line switches
/// off (`net-csum=off`, `net-sg=off`, `net-gso-rx=off`, `net-gso-tx=off`,
/// `net-split-evtchn=off`, `net-multiqueue=off`; `net-offloads=off` for all of them), with
/// [`RX_BUFFERS`] posted on each queue.
pub fn net_config(cmdline: &str) -> Config {
    let off = |key: &str| {
        crate::cmdline::option(cmdline, key) == Some("off")
            || crate::cmdline::option(cmdline, "net-offloads") == Some("off")
    };
    Config {
        offloads: netfront::Offloads {
            csum: !off("net-csum"),
            sg: !off("net-sg"),
            gso_rx: !off("net-gso-rx"),
            gso_tx: !off("net-gso-tx"),
            split: !off("net-split-evtchn"),
            multi_queue: !off("net-multiqueue"),
        },
        rx_buffers: RX_BUFFERS,
        ..Config::default()
    }
}

/// Nanoseconds since boot (0 if the clock cannot be read).
pub fn now_ns() -> u64 {
    time::now().map_or(0, xenbus::Instant::as_nanos)
}

/// smoltcp's time.
pub fn smol_now() -> smoltcp::time::Instant {
    smoltcp::time::Instant::from_micros(i64::try_from(now_ns() / 1000).unwrap_or(i64::MAX))
}

/// Takes the latches of the vif's `nic_ports` (each that fired counted on its queue and
/// channel, [`netfront::NetStats::queues`]) and of `others`: whether any fired.
pub fn take_nic_events(nic: &mut Nic, nic_ports: &[xenbus::Port], others: &[xenbus::Port]) -> bool {
    let mut any = false;
    for &port in nic_ports {
        if events::take_latched(port) {
            nic.on_port_event(port);
            any = true;
        }
    }
    others
        .iter()
        .fold(any, |any, &p| events::take_latched(p) | any)
}

impl Net {
    /// Connects `vif/0` (within `timeout_ms`) and sets up the interface and the addressing
    /// `ip=` asks for (`ip=dhcp`, or `ip=a.b.c.d/len gw=e.f.g.h`).
    pub fn connect(cmdline: &str, timeout_ms: u64) -> Result<Self, String> {
        crate::kernel::ensure_platform();
        let deadline = time::deadline_ms(timeout_ms).map_err(|e| format!("clock: {e:?}"))?;
        let nic = xenstore::with(|xs| {
            let ids = frontend::enumerate(xs, "vif", deadline)
                .map_err(|e| format!("enumerate: {e:?}"))?;
            if !ids.contains(&0) {
                return Err(format!(
                    "no vif 0 (device/vif lists {ids:?}): the domain needs `vif = [ ... ]` in its xl config"
                ));
            }
            let platform = Platform {
                pages: KernelPages::new(),
                grants: KernelGrants,
                events: KernelEvents,
            };
            Nic::connect(xs, 0, net_config(cmdline), platform, deadline)
                .map_err(|e| format!("connect: {e:?}"))
        })
        .map_err(|e| format!("xenstore: {e}"))??;
        let mut nic = nic;
        let mac = nic.config().mac.0;
        let mut config = IfaceConfig::new(HardwareAddress::Ethernet(EthernetAddress(mac)));
        config.random_seed = now_ns();
        let mut iface = Interface::new(config, &mut nic, smol_now());
        let mut sockets = SocketSet::new(vec![]);
        let mode =
            httpd::address::AddressMode::from_cmdline(cmdline).map_err(|e| format!("{e}"))?;
        let addressing = httpd::address::Addressing::new(mode, &mut iface, &mut sockets);
        log::info!(
            "net: vif 0 mac {} mtu {} offloads {:?}",
            nic.config().mac,
            nic.config().mtu,
            nic.offloads()
        );
        Ok(Self {
            nic,
            iface,
            sockets,
            addressing,
        })
    }

    /// One turn: the rings, the interface, the address; then a wait on the port until
    /// `until_ns` or what smoltcp asks for, whichever is sooner.
    pub fn turn(&mut self, until_ns: u64) {
        self.nic.poll();
        self.iface
            .poll(smol_now(), &mut self.nic, &mut self.sockets);
        let _ = self.nic.flush();
        self.addressing.poll(&mut self.iface, &mut self.sockets);
        let soon = self
            .iface
            .poll_delay(smol_now(), &self.sockets)
            .map_or(until_ns, |d| {
                now_ns().saturating_add(d.total_micros() * 1000)
            });
        let wake = xenbus::Instant::from_nanos(soon.min(until_ns).min(now_ns() + 50_000_000));
        if self.nic.queued_frames() == 0 {
            let ports = self.nic.ports();
            let _ = time::wait_until(wake, || take_nic_events(&mut self.nic, &ports, &[]));
        }
    }

    /// Turns until the interface has an address or `until_ns` passes.
    pub fn wait_address(&mut self, until_ns: u64) -> Option<(Ipv4Cidr, Option<Ipv4Address>)> {
        while self.addressing.current().is_none() && now_ns() < until_ns {
            self.turn(until_ns);
        }
        self.addressing.current()
    }
}

pub use crate::cmdline::kv_region;

/// The store on `disk` (the whole disk, or `region`), recovered or formatted.
pub fn open_store(
    disk: &mut Disk,
    region: Option<(u64, u64)>,
) -> Result<Store<Slice<BlkDisk<'_>>>, String> {
    let dev = BlkDisk::new(disk);
    let (start, len) = region.unwrap_or((0, dev.size()));
    let slice = Slice::new(dev, start, len).map_err(|e| format!("region {start}+{len}: {e:?}"))?;
    Store::open(slice).map_err(|e| format!("{e}"))
}

/// The archive on `disk`, indexed.
pub fn open_archive(disk: &mut Disk) -> Result<(Archive, BlkDisk<'_>), String> {
    let mut dev = BlkDisk::new(disk);
    let archive = Archive::index(&mut dev).map_err(|e| format!("{e}"))?;
    Ok((archive, dev))
}

/// The regular files in `archive` (directories and links not counted).
pub fn file_count(archive: &Archive) -> usize {
    archive
        .entries()
        .filter(|(_, e)| e.kind == storage::tar::Kind::File)
        .count()
}

/// How long a finished request's outcome waits for the connection that asked before another
/// request may take its place, ns (a store commit's; reads keep theirs as long,
/// [`reads::UNCLAIMED_NS`]).
const UNCLAIMED_NS: u64 = reads::UNCLAIMED_NS;

/// A disk's reads for the service ([`reads`]), by blkfront's request ids.
type Reads = reads::Reads<RequestId>;

impl reads::SubmitDisk for Disk {
    type Id = RequestId;

    fn can_submit(&self) -> bool {
        Disk::can_submit(self)
    }

    fn submit_read(&mut self, offset: u64, len: usize) -> Result<RequestId, BlkError> {
        Disk::submit_read(self, offset, len)
    }

    fn max_request_bytes(&self) -> usize {
        Disk::max_request_bytes(self)
    }

    fn size_bytes(&self) -> u64 {
        self.info().bytes()
    }
}

/// Whether `disk` can take another request now.
fn can_submit(disk: &Disk) -> bool {
    disk.can_submit()
}

/// Which request a store commit answers: the same request asked again finds it.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Claim {
    Put { key: String, len: usize, sum: u64 },
    Delete { key: String },
}

/// FNV-1a of `bytes`: tells a put asked again from another one of the same key and length.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

enum Stage {
    /// Writes submitted (`next` of them so far), `ids` still in flight.
    Writing {
        next: usize,
        ids: Vec<RequestId>,
        failed: Option<BlkError>,
    },
    /// Every write done; the flush in flight.
    Flushing(RequestId),
    /// Finished (at this time): the outcome, for the request that asks again.
    Done(Result<(), BackendError>, u64),
}

/// The store commit on its way to the disk.
struct Commit {
    claim: Claim,
    pending: Option<storage::kv::Pending>,
    stage: Stage,
}

/// What the service serves from: the archive and the store, either of which may be missing
/// (its routes then answer 503 with the reason).
pub struct Storage<'a> {
    /// The archive and its disk.
    pub files: Result<(Archive, BlkDisk<'a>), &'static str>,
    /// The store.
    pub kv: Result<Store<Slice<BlkDisk<'a>>>, &'static str>,
    /// The network driver's counters as of the current turn.
    pub driver: NetStats,
    /// The event loop's counters ([`serve`]).
    pub event_loop: LoopStats,
    /// When the service started (for `uptime_ms`).
    pub start_ns: u64,
    /// The archive disk's reads in flight or kept.
    file_reads: Reads,
    /// The store disk's record reads.
    kv_reads: Reads,
    /// The store commit on its way, if any.
    commit: Option<Commit>,
    /// The archive's disk did not come back after a resume (its routes answer 503).
    lost_files: bool,
    /// The store's disk did not come back after a resume (its routes answer 503).
    lost_kv: bool,
}

/// Why the archive's routes answer 503 once its disk did not come back after a resume.
const LOST_FILES: &str = "the archive's disk (xvda) is missing since the resume";
/// Why the store's routes answer 503 once its disk did not come back after a resume.
const LOST_KV: &str = "the store's disk (xvdb) is missing since the resume";

/// `part` unless it is missing or its disk was `lost`: the reason as `Unavailable` (503).
fn usable<'s, T>(
    part: &'s mut Result<T, &'static str>,
    lost: bool,
    lost_why: &'static str,
) -> Result<&'s mut T, BackendError> {
    match part {
        Ok(_) if lost => Err(BackendError::Unavailable(lost_why)),
        Ok(part) => Ok(part),
        Err(why) => Err(BackendError::Unavailable(why)),
    }
}

impl<'a> Storage<'a> {
    /// Opens what the disks hold: the archive on `files` and the store on `kv` (the whole disk,
    /// or the region given). A missing or unreadable part is left out (its routes answer 503)
    /// and `warn` is told why.
    pub fn open(
        files: Option<&'a mut Disk>,
        kv: Option<(&'a mut Disk, Option<(u64, u64)>)>,
        warn: &mut dyn FnMut(core::fmt::Arguments<'_>),
    ) -> Self {
        let files = match files.map(open_archive) {
            Some(Ok(opened)) => Ok(opened),
            Some(Err(e)) => {
                warn(format_args!("the archive on xvda: {e}"));
                Err("the archive disk could not be read (see the console)")
            }
            None => Err("no archive disk"),
        };
        let kv = match kv.map(|(disk, region)| open_store(disk, region)) {
            Some(Ok(store)) => Ok(store),
            Some(Err(e)) => {
                warn(format_args!("the store on xvdb: {e}"));
                Err("the store could not be opened (see the console)")
            }
            None => Err("no store disk"),
        };
        Self {
            files,
            kv,
            driver: NetStats::default(),
            event_loop: LoopStats::default(),
            start_ns: now_ns(),
            file_reads: Reads::default(),
            kv_reads: Reads::default(),
            commit: None,
            lost_files: false,
            lost_kv: false,
        }
    }

    /// The disks' event channels (the loop sleeps on them with the vif's).
    pub fn ports(&mut self) -> Vec<xenbus::Port> {
        let mut ports = Vec::new();
        if let Ok((_, dev)) = &mut self.files {
            ports.extend(dev.disk_mut().ports());
        }
        if let Ok(store) = &mut self.kv {
            ports.extend(store.device_mut().inner_mut().disk_mut().ports());
        }
        ports
    }

    /// The disks the service reads and writes, by name (for a suspend and resume).
    pub fn disks_mut(&mut self) -> Vec<(&'static str, &mut Disk)> {
        let mut disks = Vec::new();
        if let Ok((_, dev)) = &mut self.files {
            disks.push(("xvda", dev.disk_mut()));
        }
        if let Ok(store) = &mut self.kv {
            disks.push(("xvdb", store.device_mut().inner_mut().disk_mut()));
        }
        disks
    }

    /// Marks the disk `name` (`xvda`, `xvdb`) lost (its resume failed: its part answers 503
    /// with the reason) or back.
    pub fn set_lost(&mut self, name: &str, lost: bool) {
        match name {
            "xvda" => self.lost_files = lost,
            "xvdb" => self.lost_kv = lost,
            _ => {}
        }
    }

    /// What holds a suspend back: a store commit on its way (its writes or its flush in
    /// flight), if any.
    pub fn writing(&self) -> Option<&'static str> {
        self.commit
            .as_ref()
            .is_some_and(|c| !matches!(c.stage, Stage::Done(..)))
            .then_some("a store write in flight")
    }

    /// Whether the change `claim` is begun: its commit, writes and flush, goes to the disk
    /// and lands once the disk answers (it is never withdrawn: the group with its commit
    /// record is with the backend, and recovery would apply it), so a put or delete still
    /// waiting on it at the storage deadline is answered `202`, not `503`. A change waiting
    /// for another one's commit is not begun: answered `503`, it never is.
    fn on_its_way(&self, claim: &Claim) -> bool {
        self.commit
            .as_ref()
            .is_some_and(|c| c.claim == *claim && !matches!(c.stage, Stage::Done(..)))
    }

    /// Requests of the service still in flight on the disks.
    pub fn in_flight(&self) -> usize {
        let commit = self
            .commit
            .as_ref()
            .is_some_and(|c| !matches!(c.stage, Stage::Done(..)));
        self.file_reads.in_flight() + self.kv_reads.in_flight() + usize::from(commit)
    }

    /// Takes the disks' completions and moves the store commit on: once a turn, before the
    /// connections ask again.
    pub fn poll(&mut self) {
        if self.in_flight() == 0 {
            // Nothing of the service's on the disks: nothing to take.
            return;
        }
        let now = now_ns();
        if let Ok((_, dev)) = &mut self.files {
            for c in dev.disk_mut().poll() {
                // Nothing else of the service's is on this disk.
                let _ = self.file_reads.complete(c.id, c.result, now);
            }
        }
        let Ok(store) = &mut self.kv else {
            return;
        };
        let completions = store.device_mut().inner_mut().disk_mut().poll();
        for c in completions {
            let id = c.id;
            let Some(result) = self.kv_reads.complete(id, c.result, now) else {
                continue;
            };
            let c = Completion { id, result };
            if let Some(commit) = &mut self.commit {
                match &mut commit.stage {
                    Stage::Writing { ids, failed, .. } => {
                        if let Some(i) = ids.iter().position(|&id| id == c.id) {
                            ids.swap_remove(i);
                            if let Err(e) = c.result {
                                failed.get_or_insert(e);
                            }
                        }
                    }
                    Stage::Flushing(id) if *id == c.id => {
                        let result = c.result.map(drop);
                        Self::finish(store, commit, result, now);
                    }
                    _ => {}
                }
            }
        }
        if let Some(commit) = &mut self.commit {
            Self::advance(store, commit, now);
        }
    }

    /// Submits what the commit can submit now: its next writes, or the flush once every write
    /// completed; ends it if a write failed.
    fn advance(store: &mut Store<Slice<BlkDisk<'a>>>, commit: &mut Commit, now: u64) {
        let Stage::Writing { next, ids, failed } = &mut commit.stage else {
            return;
        };
        let Some(pending) = commit.pending.as_ref() else {
            return;
        };
        let pieces: Vec<(u64, usize)> = pending.writes().map(|(at, p)| (at, p.len())).collect();
        let slice = store.device_mut();
        while failed.is_none() && *next < pieces.len() {
            let Some((at, piece)) = pending.writes().nth(*next) else {
                break;
            };
            let Some(disk_at) = slice.to_inner(at, piece.len()) else {
                failed.get_or_insert(BlkError::IoError);
                break;
            };
            let disk = slice.inner_mut().disk_mut();
            if !can_submit(disk) {
                return;
            }
            match disk.submit_write(disk_at, piece) {
                Ok(id) => ids.push(id),
                Err(e) => {
                    failed.get_or_insert(e);
                }
            }
            *next += 1;
        }
        if !ids.is_empty() {
            return;
        }
        if let Some(e) = *failed {
            Self::finish(store, commit, Err(e), now);
            return;
        }
        if *next < pieces.len() {
            return;
        }
        let disk = slice.inner_mut().disk_mut();
        if !can_submit(disk) {
            return;
        }
        match disk.submit_flush() {
            Ok(id) => commit.stage = Stage::Flushing(id),
            Err(e) => Self::finish(store, commit, Err(e), now),
        }
    }

    /// Ends the commit with the outcome of its writes and flush.
    fn finish(
        store: &mut Store<Slice<BlkDisk<'a>>>,
        commit: &mut Commit,
        result: Result<(), BlkError>,
        now: u64,
    ) {
        let outcome = match commit.pending.take() {
            Some(pending) => store
                .finish(pending, result.map_err(storage::slice::SliceError::Device))
                .map_err(kv_error),
            None => Err(BackendError::Failed("commit lost".into())),
        };
        commit.stage = Stage::Done(outcome, now);
    }

    /// A store change (`ops`, for `claim`) by submit and poll: the outcome once its flush
    /// completed, `Pending` until then (and while another change is on its way).
    fn change(&mut self, claim: Claim, ops: &[Op<'_>]) -> Result<(), BackendError> {
        let now = now_ns();
        if let Some(commit) = &self.commit {
            match &commit.stage {
                Stage::Done(outcome, _) if commit.claim == claim => {
                    let outcome = outcome.clone();
                    self.commit = None;
                    return outcome;
                }
                Stage::Done(_, at) if now.saturating_sub(*at) >= UNCLAIMED_NS => {
                    // Nobody came back for it (its connection went away or timed out).
                    self.commit = None;
                }
                _ => return Err(BackendError::Pending),
            }
        }
        let store = usable(&mut self.kv, self.lost_kv, LOST_KV)?;
        match store.begin(ops) {
            Ok(Some(pending)) => {
                let mut commit = Commit {
                    claim,
                    pending: Some(pending),
                    stage: Stage::Writing {
                        next: 0,
                        ids: Vec::new(),
                        failed: None,
                    },
                };
                Self::advance(store, &mut commit, now);
                self.commit = Some(commit);
                Err(BackendError::Pending)
            }
            Ok(None) => {
                // Only a compacting commit fits: with blocking calls, once the disk is idle.
                if self.kv_reads.in_flight() > 0
                    || store.device_mut().inner_mut().disk_mut().in_flight() > 0
                {
                    return Err(BackendError::Pending);
                }
                self.kv_reads.forget_done();
                store.commit(ops).map_err(kv_error)
            }
            Err(e) => Err(kv_error(e)),
        }
    }

    /// Waits (polling) until nothing of the service's is in flight, or `until_ns`.
    pub fn settle(&mut self, until_ns: u64) {
        while self.in_flight() > 0 && now_ns() < until_ns {
            self.poll();
            let ports = self.ports();
            let wake = xenbus::Instant::from_nanos(until_ns.min(now_ns() + 10_000_000));
            let _ = time::wait_until(wake, || {
                ports
                    .iter()
                    .fold(false, |any, &p| crate::xen::events::take_latched(p) | any)
            });
        }
    }

    /// `files <n> kv-keys <n>`: what the service starts with, for its `serving` line.
    pub fn summary(&self) -> String {
        format!(
            "files {} kv-keys {}",
            self.files.as_ref().map_or(0, |(a, _)| file_count(a)),
            self.kv.as_ref().map_or(0, Store::len)
        )
    }
}

fn kv_error<E: core::fmt::Debug>(e: KvError<E>) -> BackendError {
    match e {
        KvError::Full { .. } => BackendError::Full(e.to_string()),
        other => BackendError::Failed(other.to_string()),
    }
}

fn tar_error(e: TarError<BlkError>) -> BackendError {
    match e {
        TarError::NotFound | TarError::NotAFile => BackendError::NotFound,
        other => BackendError::Failed(other.to_string()),
    }
}

impl Backend for Storage<'_> {
    fn status(&mut self) -> Status {
        let mut storage = Vec::new();
        if let Ok((archive, _)) = &self.files {
            storage.push(("files", file_count(archive) as u64));
        }
        if let Ok(store) = &self.kv {
            let s = store.stats();
            storage.extend([
                ("kv_keys", store.len() as u64),
                ("kv_used_bytes", s.used),
                ("kv_capacity_bytes", s.capacity),
                ("kv_groups", s.groups),
                ("kv_flushes", s.flushes),
                ("kv_compactions", s.compactions),
            ]);
        }
        let d = &self.driver;
        Status {
            uptime_ms: now_ns().saturating_sub(self.start_ns) / 1_000_000,
            heap_bytes_in_use: heap::stats().1 as u64,
            grants_in_use: u64::from(KernelGrants.grants_in_use()),
            driver: vec![
                ("tx_packets", d.tx_packets),
                ("rx_packets", d.rx_packets),
                ("tx_bytes", d.tx_bytes),
                ("rx_bytes", d.rx_bytes),
                ("bad_responses", d.bad_responses),
                // Segments per notification: requests over notifications, each way.
                ("tx_requests", d.tx_requests),
                ("tx_notifications", d.tx_notifications),
                ("rx_requests", d.rx_requests),
                ("rx_notifications", d.rx_notifications),
                ("notifications_received", d.notifications_received),
                ("rx_dropped", d.rx_dropped),
                // The offloads in use (issue 30).
                ("tx_csum_offloaded", d.tx_csum_offloaded),
                ("rx_csum_trusted", d.rx_csum_trusted),
                ("rx_csum_verified", d.rx_csum_verified),
                ("rx_csum_bad", d.rx_csum_bad),
                ("tx_multi_slot", d.tx_multi_slot),
                ("rx_multi_slot", d.rx_multi_slot),
                ("rx_gso", d.rx_gso),
                ("tx_gso", d.tx_gso),
                ("tx_gso_segments", d.tx_gso_segments),
                ("rx_largest_frame", d.rx_largest_frame),
                // How the stack acknowledges (issue 30's upload).
                ("tx_acks", d.tx_acks),
                ("tx_ack_window_sum", d.tx_ack_window_sum),
                ("tx_zero_window_acks", d.tx_zero_window_acks),
            ],
            storage,
            event_loop: vec![
                ("turns", self.event_loop.turns),
                ("asleep_us", self.event_loop.asleep_ns / 1000),
                ("timer_acks", self.event_loop.timer_acks),
            ],
            stack: crate::arch::stack_use().to_vec(),
        }
    }

    fn file_size(&mut self, path: &str) -> Result<u64, BackendError> {
        let (archive, _) = usable(&mut self.files, self.lost_files, LOST_FILES)?;
        archive.file_size(path).map_err(tar_error)
    }

    fn read_file(&mut self, path: &str, pos: u64, buf: &mut [u8]) -> Result<usize, BackendError> {
        let (archive, dev) = usable(&mut self.files, self.lost_files, LOST_FILES)?;
        let entry = archive.lookup(path).ok_or(BackendError::NotFound)?;
        if entry.kind != storage::tar::Kind::File {
            return Err(BackendError::NotFound);
        }
        let left = entry.size.saturating_sub(pos);
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let at = entry.data_offset.saturating_add(pos);
        let out = buf.get_mut(..want).unwrap_or_default();
        self.file_reads
            .copy(dev.disk_mut(), at, out, now_ns())
            .map(|()| want)
    }

    fn kv_get(&mut self, key: &str) -> Result<Vec<u8>, BackendError> {
        let store = usable(&mut self.kv, self.lost_kv, LOST_KV)?;
        let Some(at): Option<RecordRead> = store.locate(key.as_bytes()) else {
            return Err(BackendError::NotFound);
        };
        let slice = store.device_mut();
        let disk_at = slice
            .to_inner(at.offset, at.len)
            .ok_or_else(|| BackendError::Failed("record outside the store".into()))?;
        let bytes = self
            .kv_reads
            .take(slice.inner_mut().disk_mut(), disk_at, at.len, now_ns())?;
        store
            .value_from(&at, key.as_bytes(), &bytes)
            .map_err(kv_error)
    }

    fn kv_put(&mut self, key: &str, value: &[u8]) -> Result<(), BackendError> {
        let claim = Claim::Put {
            key: key.to_string(),
            len: value.len(),
            sum: fnv(value),
        };
        self.change(claim, &[Op::Put(key.as_bytes(), value)])
    }

    fn kv_delete(&mut self, key: &str) -> Result<(), BackendError> {
        let claim = Claim::Delete {
            key: key.to_string(),
        };
        let ours = self.commit.as_ref().is_some_and(|c| c.claim == claim);
        if !ours && self.commit.is_none() {
            let store = usable(&mut self.kv, self.lost_kv, LOST_KV)?;
            if store.locate(key.as_bytes()).is_none() {
                return Err(BackendError::NotFound);
            }
        }
        self.change(claim, &[Op::Delete(key.as_bytes())])
    }

    fn kv_change_on_its_way(&mut self, key: &str, value: Option<&[u8]>) -> bool {
        let claim = match value {
            Some(value) => Claim::Put {
                key: key.to_string(),
                len: value.len(),
                sum: fnv(value),
            },
            None => Claim::Delete {
                key: key.to_string(),
            },
        };
        self.on_its_way(&claim)
    }

    fn file_version(&mut self, path: &str) -> u64 {
        // Where the file lies in the archive: another archive, another offset.
        self.files
            .as_ref()
            .ok()
            .and_then(|(archive, _)| archive.lookup(path))
            .map_or(0, |entry| entry.data_offset)
    }

    fn unix_time(&mut self) -> Option<u64> {
        time::wall_clock().ok().map(|t| t.secs)
    }

    fn kv_keys(&mut self) -> Result<Vec<String>, BackendError> {
        let store = usable(&mut self.kv, self.lost_kv, LOST_KV)?;
        Ok(store
            .list()
            .into_iter()
            .map(|k| String::from_utf8_lossy(&k).into_owned())
            .collect())
    }
}

/// The service's configuration: the pool from a quarter of the heap (`httpd::pool` gives the
/// rule) and the default deadlines, except the head deadline when the command line has
/// `http-head-ms=<ms>` (a harness shortens it to see heads time out within its run). For
/// measurements (`cargo xtask bench`'s variants): `http-ack-delay-ms=<ms>` gives the sockets
/// smoltcp's delayed ACK back (0: none, the default), `http-buffer-kib=<KiB>` sets each socket
/// buffer (4 to 1024 KiB), none larger, with as many slots as the budget then holds (within
/// the pool's bounds).
pub fn server_config(cmdline: &str) -> ServerConfig {
    let mut config = ServerConfig::for_memory(heap::stats().0 / 4);
    if let Some(ms) = crate::cmdline::option(cmdline, "http-head-ms").and_then(|v| v.parse().ok()) {
        config.deadlines.head = smoltcp::time::Duration::from_millis(ms);
    }
    if let Some(ms) =
        crate::cmdline::option(cmdline, "http-ack-delay-ms").and_then(|v| v.parse().ok())
    {
        config.ack_delay = (ms > 0).then(|| smoltcp::time::Duration::from_millis(ms));
    }
    if let Some(kib) =
        crate::cmdline::option(cmdline, "http-buffer-kib").and_then(|v| v.parse::<usize>().ok())
    {
        let buffer = kib.clamp(4, 1024) * 1024;
        let budget = heap::stats().0 / 4;
        config.pool = httpd::Pool::uniform(
            (budget / (2 * buffer + httpd::pool::WORKING_BYTES))
                .clamp(httpd::pool::MIN_SLOTS, httpd::pool::MAX_SLOTS),
            buffer,
        );
    }
    config
}

/// Serves HTTP (and answers ARP and ICMP echo) until `until_ns` (if given) or until the
/// xenstore key `control`'s key (relative to the domain's home) holds a request to stop,
/// checked every 300 ms ([`Control::check`]: when its watch fired, while a suspend is
/// deferred, and every 3 s regardless); returns the service's counters and the request that
/// stopped it. On `control/shutdown`, `suspend` suspends the domain and serving goes on after
/// it ([`suspend`]; deferred while a store commit is in flight); `poweroff`, `reboot` and
/// `halt` stop it; other values are ignored, as Linux ignores them.
pub fn serve(
    net: &mut Net,
    storage: &mut Storage<'_>,
    until_ns: Option<u64>,
    control: &mut Control,
) -> (ServerStats, Option<String>) {
    // From here on the status document's `serve_peak` is the service's own stack depth (its
    // `peak` stays the deepest since boot).
    crate::arch::stack::repaint_boot_stack();
    let cmdline = crate::kernel::boot_state().map_or("", |b| b.cmdline());
    let mut server = Server::new(server_config(cmdline), &mut net.sockets);
    let mut disk_ports = storage.ports();
    let mut next_check = 0u64;
    let mut stop = None;
    let mut woke_by_deadline = false;
    loop {
        if until_ns.is_some_and(|u| now_ns() >= u) {
            break;
        }
        let Net {
            nic,
            iface,
            sockets,
            addressing,
        } = &mut *net;
        let before = nic.stats();
        storage.event_loop.turns += 1;
        nic.poll();
        // The disks' completions, before the connections ask again.
        storage.poll();
        // The driver's counters as of this turn (the interface holds the device meanwhile).
        storage.driver = nic.stats();
        let delay = server.step(smol_now(), iface, nic, sockets, storage);
        let _ = nic.flush();
        let after = nic.stats();
        if woke_by_deadline {
            storage.event_loop.timer_acks += after.tx_acks.saturating_sub(before.tx_acks);
        }
        woke_by_deadline = false;
        addressing.poll(iface, sockets);
        if now_ns() >= next_check {
            next_check = now_ns() + 300_000_000;
            match control.check(storage.writing()) {
                Some(control::Asked::Stop(request)) => {
                    log::info!("service: asked to stop ({request})");
                    stop = Some(request);
                    break;
                }
                Some(control::Asked::Suspend) => {
                    if suspend::suspend_service(net, storage) {
                        // A new domain: new ports, a new xenstore connection.
                        disk_ports = storage.ports();
                        control.rewatch();
                    }
                    next_check = 0;
                    continue;
                }
                None => {}
            }
        }
        let wake = delay.map_or(u64::MAX, |d| {
            now_ns().saturating_add(d.total_micros() * 1000)
        });
        let wake = wake.min(until_ns.unwrap_or(u64::MAX)).min(next_check);
        if nic.queued_frames() == 0 {
            // Woken by a frame, the time, or (while the service has requests on them) a
            // disk's completion.
            let ports: &[xenbus::Port] = if storage.in_flight() > 0 {
                &disk_ports
            } else {
                &[]
            };
            let nic_ports = nic.ports();
            let slept = now_ns();
            let woken = time::wait_until(xenbus::Instant::from_nanos(wake), || {
                take_nic_events(nic, &nic_ports, ports)
            });
            woke_by_deadline = woken == Ok(false);
            storage.event_loop.asleep_ns += now_ns().saturating_sub(slept);
        }
    }
    // What is still on its way to the disks lands before the disks are handed back.
    let left = storage.in_flight();
    storage.settle(now_ns().saturating_add(SETTLE_NS));
    log::info!(
        "service: stopped; {left} disk requests were in flight, {} still are",
        storage.in_flight()
    );
    (server.stats(), stop)
}

/// The event loop's counters: where [`serve`]'s time goes, and what its timers sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoopStats {
    /// Turns of the loop.
    pub turns: u64,
    /// Time spent waiting for an event or a deadline, ns (the rest is work).
    pub asleep_ns: u64,
    /// Pure acknowledgements sent in a turn that a deadline began (the loop woke without an
    /// event): smoltcp's delayed-ACK timer's, a transfer's sender waiting on them meanwhile.
    pub timer_acks: u64,
}

/// How long the service waits at its end for requests still in flight on the disks, ns.
const SETTLE_NS: u64 = 5_000_000_000;

/// The address as the service announces it (`a.b.c.d`), or `?`.
pub fn address_text(net: &Net) -> String {
    net.addressing
        .current()
        .map_or("?".to_string(), |(cidr, _)| format!("{}", cidr.address()))
}
