//! The guest's service: `netfront` under smoltcp and `httpd` over the site archive (`xvda`,
//! [`storage::tar`]) and the durable key-value store (`xvdb`, [`storage::kv`]). The
//! application (`app.rs`) runs it until told to stop; the `net` self-test group runs it after
//! its tests for the harness's clients.
//!
//! Disk I/O happens inside the serve loop (a file is read as the socket has room, a put is a
//! write and a flush before its answer): the loop does not poll the network meanwhile, which
//! only delays other connections by a disk round trip.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use blkfront::BlkError;
use httpd::backend::{Backend, BackendError};
use httpd::{Config as ServerConfig, Server, ServerStats, Status};
use netfront::{Config, NetStats, Netfront, Platform};
use smoltcp::iface::{Config as IfaceConfig, Interface, SocketSet};
use smoltcp::wire::{EthernetAddress, HardwareAddress, Ipv4Address, Ipv4Cidr};
use storage::kv::{KvError, Store};
use storage::tar::{Archive, TarError};
use storage::{BlockDevice, Slice};
use xenbus::grant::GrantAccess;
use xenbus::{EventChannel, frontend};

use crate::disk::{BlkDisk, Disk};
use crate::memory::heap;
use crate::xen::platform::{KernelEvents, KernelGrants, KernelPages};
use crate::xen::{time, xenstore};

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

/// Nanoseconds since boot (0 if the clock cannot be read).
pub fn now_ns() -> u64 {
    time::now().map_or(0, xenbus::Instant::as_nanos)
}

/// smoltcp's time.
pub fn smol_now() -> smoltcp::time::Instant {
    smoltcp::time::Instant::from_micros(i64::try_from(now_ns() / 1000).unwrap_or(i64::MAX))
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
            Nic::connect(xs, 0, Config::default(), platform, deadline)
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
            "net: vif 0 mac {} mtu {}",
            nic.config().mac,
            nic.config().mtu
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
        let port = self.nic.port();
        if self.nic.queued_frames() == 0 {
            self.nic.platform_mut().events.wait(port, wake);
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

/// What the service serves from: the archive and the store, either of which may be missing
/// (its routes then answer 503 with the reason).
pub struct Storage<'a> {
    /// The archive and its disk.
    pub files: Result<(Archive, BlkDisk<'a>), &'static str>,
    /// The store.
    pub kv: Result<Store<Slice<BlkDisk<'a>>>, &'static str>,
    /// The network driver's counters as of the current turn.
    pub driver: NetStats,
    /// When the service started (for `uptime_ms`).
    pub start_ns: u64,
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
            start_ns: now_ns(),
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
            ],
            storage,
        }
    }

    fn file_size(&mut self, path: &str) -> Result<u64, BackendError> {
        let (archive, _) = self
            .files
            .as_mut()
            .map_err(|w| BackendError::Unavailable(w))?;
        archive.file_size(path).map_err(tar_error)
    }

    fn read_file(&mut self, path: &str, pos: u64, buf: &mut [u8]) -> Result<usize, BackendError> {
        let (archive, dev) = self
            .files
            .as_mut()
            .map_err(|w| BackendError::Unavailable(w))?;
        archive.read_at(dev, path, pos, buf).map_err(tar_error)
    }

    fn kv_get(&mut self, key: &str) -> Result<Vec<u8>, BackendError> {
        let store = self.kv.as_mut().map_err(|w| BackendError::Unavailable(w))?;
        match store.get(key.as_bytes()) {
            Ok(Some(value)) => Ok(value),
            Ok(None) => Err(BackendError::NotFound),
            Err(e) => Err(kv_error(e)),
        }
    }

    fn kv_put(&mut self, key: &str, value: &[u8]) -> Result<(), BackendError> {
        let store = self.kv.as_mut().map_err(|w| BackendError::Unavailable(w))?;
        store.put(key.as_bytes(), value).map_err(kv_error)
    }

    fn kv_delete(&mut self, key: &str) -> Result<(), BackendError> {
        let store = self.kv.as_mut().map_err(|w| BackendError::Unavailable(w))?;
        match store.delete(key.as_bytes()) {
            Ok(true) => Ok(()),
            Ok(false) => Err(BackendError::NotFound),
            Err(e) => Err(kv_error(e)),
        }
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
        let store = self.kv.as_mut().map_err(|w| BackendError::Unavailable(w))?;
        Ok(store
            .list()
            .into_iter()
            .map(|k| String::from_utf8_lossy(&k).into_owned())
            .collect())
    }
}

/// The service's configuration: the pool from a quarter of the heap (`httpd::pool` gives the
/// rule) and the default deadlines, except the head deadline when the command line has
/// `http-head-ms=<ms>` (a harness shortens it to see heads time out within its run).
pub fn server_config(cmdline: &str) -> ServerConfig {
    let mut config = ServerConfig::for_memory(heap::stats().0 / 4);
    if let Some(ms) = crate::cmdline::option(cmdline, "http-head-ms").and_then(|v| v.parse().ok()) {
        config.deadlines.head = smoltcp::time::Duration::from_millis(ms);
    }
    config
}

/// Serves HTTP (and answers ARP and ICMP echo) until `until_ns` (if given) or until the
/// xenstore key `stop_key` (relative to the domain's home) holds a request, checked every
/// 300 ms; returns the service's counters.
pub fn serve(
    net: &mut Net,
    storage: &mut Storage<'_>,
    until_ns: Option<u64>,
    stop_key: &str,
) -> ServerStats {
    let cmdline = crate::kernel::boot_state().map_or("", |b| b.cmdline());
    let mut server = Server::new(server_config(cmdline), &mut net.sockets);
    let mut next_check = 0u64;
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
        nic.poll();
        // The driver's counters as of this turn (the interface holds the device meanwhile).
        storage.driver = nic.stats();
        let delay = server.step(smol_now(), iface, nic, sockets, storage);
        let _ = nic.flush();
        addressing.poll(iface, sockets);
        if now_ns() >= next_check {
            next_check = now_ns() + 300_000_000;
            if stop_requested(stop_key) {
                break;
            }
        }
        let wake = delay.map_or(u64::MAX, |d| {
            now_ns().saturating_add(d.total_micros() * 1000)
        });
        let wake = wake.min(until_ns.unwrap_or(u64::MAX)).min(next_check);
        if nic.queued_frames() == 0 {
            let port = nic.port();
            nic.platform_mut()
                .events
                .wait(port, xenbus::Instant::from_nanos(wake));
        }
    }
    server.stats()
}

/// Whether `key` (relative to the domain's xenstore home) holds a request (a non-empty value);
/// if so, the request is acknowledged by writing the empty string back, as the toolstack waits
/// for on `control/shutdown` (`xl shutdown` otherwise waits 60 s for it).
fn stop_requested(key: &str) -> bool {
    let Ok(deadline) = time::deadline_ms(5_000) else {
        return false;
    };
    xenstore::with(|xs| {
        let asked = matches!(
            xs.read_optional(xenbus::TxId::NONE, key, deadline),
            Ok(Some(v)) if !v.is_empty()
        );
        if asked && let Err(e) = xs.write(xenbus::TxId::NONE, key, "", deadline) {
            log::warn!("acknowledging {key}: {e:?}");
        }
        asked
    })
    .unwrap_or(false)
}

/// The address as the service announces it (`a.b.c.d`), or `?`.
pub fn address_text(net: &Net) -> String {
    net.addressing
        .current()
        .map_or("?".to_string(), |(cidr, _)| format!("{}", cidr.address()))
}
