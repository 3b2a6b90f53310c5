//! Domain 0's disks, as host-testable logic: the checks hv makes of what the PCI bus and the
//! virtio-blk devices hand it ([`check_bar`], [`check_capacity`]), the pairing of devices with
//! the configs' `disk` entries ([`pair`]) and the devid of a vdev name ([`devid_of`], as
//! libxl's `libxl__device_disk_dev_number`).
//!
//! The kernel side (port I/O, page tables, the virtio driver) is `kernel::pci` and
//! `kernel::virtio`; they call these functions with the values they read and refuse a device
//! any of them refuses, with a log line saying why.

use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;

use abi::io::xs_wire::{XS_ERROR, XS_WATCH_EVENT, XsdSockmsg};
use xenbus::Instant;
use xenbus::xenstore::{TransportError, Wake, XsTransport};
use xenstored::Store;

/// The granule of hv's identity map: a BAR is made uncached a 2 MiB page at a time.
pub const MAP_PAGE: u64 = 2 << 20;

/// A memory BAR hv may map: `[start, end)` and the 2 MiB pages that cover it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BarWindow {
    /// The BAR's first byte.
    pub start: u64,
    /// One past its last byte.
    pub end: u64,
    /// The first 2 MiB page to make uncached.
    pub first_page: u64,
    /// One past the last 2 MiB page to make uncached.
    pub end_page: u64,
}

/// Why a BAR is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BarError {
    /// The firmware left it unassigned (address 0) or of size 0.
    Unassigned,
    /// Address plus size overflows.
    Overflow,
    /// It lies (partly) above hv's identity map (`limit`): a 64-bit BAR the firmware put
    /// above 4 GiB.
    AboveMap {
        /// The identity map's end.
        limit: u64,
    },
    /// A 2 MiB page it shares holds RAM, which must stay cached.
    SharesRam {
        /// The RAM range's start.
        ram: u64,
    },
}

impl core::fmt::Display for BarError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Unassigned => write!(f, "not assigned by the firmware"),
            Self::Overflow => write!(f, "address + size overflows"),
            Self::AboveMap { limit } => {
                write!(f, "lies above hv's identity map (which ends at {limit:#x})")
            }
            Self::SharesRam { ram } => {
                write!(f, "shares a 2 MiB page with RAM at {ram:#x}")
            }
        }
    }
}

/// Checks a memory BAR at `addr` of `size` bytes against hv's identity map (`limit` bytes
/// from 0) and the RAM ranges `ram` (`(start, end)`): it must lie inside the map, and the
/// 2 MiB pages covering it must hold no RAM (they are made uncached whole).
pub fn check_bar(
    addr: u64,
    size: u64,
    limit: u64,
    ram: &[(u64, u64)],
) -> Result<BarWindow, BarError> {
    if addr == 0 || size == 0 {
        return Err(BarError::Unassigned);
    }
    let end = addr.checked_add(size).ok_or(BarError::Overflow)?;
    if end > limit {
        return Err(BarError::AboveMap { limit });
    }
    let first_page = addr & !(MAP_PAGE - 1);
    let end_page = end.checked_add(MAP_PAGE - 1).ok_or(BarError::Overflow)? & !(MAP_PAGE - 1);
    if let Some(&(r, _)) = ram.iter().find(|&&(s, e)| s < end_page && first_page < e) {
        return Err(BarError::SharesRam { ram: r });
    }
    Ok(BarWindow {
        start: addr,
        end,
        first_page,
        end_page,
    })
}

/// The largest disk hv serves, in 512-byte sectors (2 TiB: sector numbers and byte offsets
/// stay far from overflow).
pub const MAX_SECTORS: u64 = 1 << 32;

/// Why a device's capacity is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CapacityError {
    /// The device says it holds no sector.
    Empty,
    /// More than [`MAX_SECTORS`].
    TooLarge(u64),
}

/// Checks the capacity (512-byte sectors) a virtio-blk device reports.
pub fn check_capacity(sectors: u64) -> Result<u64, CapacityError> {
    match sectors {
        0 => Err(CapacityError::Empty),
        n if n > MAX_SECTORS => Err(CapacityError::TooLarge(n)),
        n => Ok(n),
    }
}

/// Xen's major number of `xvd` disks (`XEN_XVD_MAJOR`... 202).
const XVD_MAJOR: u32 = 202;

/// The devid of a vdev name as libxl's `libxl__device_disk_dev_number` computes it for
/// `xvd<letters>[<partition>]`: disks 0..15 as `202 << 8 | disk << 4 | partition` (xvda is
/// 51712), larger ones in the extended form `1 << 28 | disk << 8 | partition`. Other
/// families (`hd`, `sd`) and anything malformed are `None`.
pub fn devid_of(vdev: &str) -> Option<u32> {
    let rest = vdev.strip_prefix("xvd")?;
    let letters = rest.bytes().take_while(u8::is_ascii_lowercase).count();
    let (name, part) = rest.split_at(letters);
    if name.is_empty() || name.len() > 3 {
        return None;
    }
    // libxl's bijective base 26: a = 0, z = 25, aa = 26, ...
    let mut disk: u32 = 0;
    for b in name.bytes() {
        disk = disk.checked_mul(26)?.checked_add(u32::from(b - b'a') + 1)?;
    }
    let disk = disk - 1;
    let partition: u32 = if part.is_empty() {
        0
    } else {
        if part.starts_with('0') {
            return None;
        }
        part.parse().ok()?
    };
    if disk < 16 && partition < 16 {
        Some(XVD_MAJOR << 8 | disk << 4 | partition)
    } else if disk < (1 << 20) && partition < 256 {
        Some(1 << 28 | disk << 8 | partition)
    } else {
        None
    }
}

/// One disk of a domain, as hv serves it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskPlan {
    /// Index of the domain's config (spec) in the archive's order.
    pub spec: usize,
    /// The vdev name (`xvda`).
    pub vdev: String,
    /// Its devid ([`devid_of`]).
    pub devid: u32,
    /// Whether the config says `ro`.
    pub read_only: bool,
    /// Index of the virtio-blk device behind it, in PCI scan order.
    pub device: usize,
}

/// Why a config's disks cannot be paired with the devices.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PairError {
    /// A vdev name hv cannot number.
    BadVdev(String),
    /// Two disks of one domain with the same devid.
    Duplicate(String),
    /// More disks than virtio-blk devices: `(disks, devices)`.
    TooFewDevices(usize, usize),
    /// A disk of a domain created at run time finds no spare virtio-blk device.
    NoSpare {
        /// The disk.
        vdev: String,
        /// Devices on the bus.
        devices: usize,
        /// Of those, the ones other domains' disks use.
        used: usize,
    },
}

impl core::fmt::Display for PairError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::BadVdev(v) => write!(f, "vdev {v:?} is not an xvd name hv can number"),
            Self::Duplicate(v) => write!(f, "vdev {v:?} given twice in one domain"),
            Self::TooFewDevices(disks, devices) => write!(
                f,
                "{disks} disk(s) in the configs but {devices} virtio-blk device(s) on the bus"
            ),
            Self::NoSpare {
                vdev,
                devices,
                used,
            } => write!(
                f,
                "no spare virtio-blk device for {vdev} ({devices} on the bus, {used} used by \
                 other domains' disks): start hv with one per disk to add \
                 (`cargo xtask hv-run --keep --spare-disk FILE`)"
            ),
        }
    }
}

/// Pairs the configs' disks (per spec, in config order: `(vdev, read_only)`) with the
/// virtio-blk devices in PCI scan order, as xtask adds one `virtio-blk-pci` per disk in
/// that same order.
pub fn pair(disks: &[Vec<(String, bool)>], devices: usize) -> Result<Vec<DiskPlan>, PairError> {
    let mut plans: Vec<DiskPlan> = Vec::new();
    for (spec, list) in disks.iter().enumerate() {
        for (vdev, read_only) in list {
            let devid = devid_of(vdev).ok_or_else(|| PairError::BadVdev(vdev.clone()))?;
            if plans.iter().any(|p| p.spec == spec && p.devid == devid) {
                return Err(PairError::Duplicate(vdev.clone()));
            }
            let device = plans.len();
            plans.push(DiskPlan {
                spec,
                vdev: vdev.clone(),
                devid,
                read_only: *read_only,
                device,
            });
        }
    }
    if plans.len() > devices {
        return Err(PairError::TooFewDevices(plans.len(), devices));
    }
    Ok(plans)
}

/// Pairs the disks of a domain created at run time (spec `spec`, `(vdev, read_only)` in
/// config order) with virtio-blk devices no plan in `plans` uses, lowest first: the spare
/// devices QEMU was started with (`hv-run --spare-disk`). The new plans only; none if any
/// disk cannot have one.
pub fn pair_spare(
    plans: &[DiskPlan],
    spec: usize,
    disks: &[(String, bool)],
    devices: usize,
) -> Result<Vec<DiskPlan>, PairError> {
    let mut free = (0..devices).filter(|d| !plans.iter().any(|p| p.device == *d));
    let mut new: Vec<DiskPlan> = Vec::new();
    for (vdev, read_only) in disks {
        let devid = devid_of(vdev).ok_or_else(|| PairError::BadVdev(vdev.clone()))?;
        if new.iter().any(|p| p.devid == devid) {
            return Err(PairError::Duplicate(vdev.clone()));
        }
        let Some(device) = free.next() else {
            let used = plans.len();
            return Err(PairError::NoSpare {
                vdev: vdev.clone(),
                devices,
                used,
            });
        };
        new.push(DiskPlan {
            spec,
            vdev: vdev.clone(),
            devid,
            read_only: *read_only,
            device,
        });
    }
    Ok(new)
}

/// A back end's running count of the flushes its device completed (`VIRTIO_BLK_T_FLUSH`),
/// printed as [`flush_line`] whenever it grew: the durability check (`HOST
/// hv-blk-kv-durable`) reads the last such line before QEMU was killed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlushWatch {
    reported: u64,
}

impl FlushWatch {
    /// Takes the device's count now: `Some(count)` if it grew since the last report.
    pub fn update(&mut self, count: u64) -> Option<u64> {
        (count > self.reported).then(|| {
            self.reported = count;
            count
        })
    }
}

/// The line (after hv's `hv: `) reporting that `vdev` of domain `domid` has had `flushes`
/// flushes completed by its device: `d<domid>: blkback <vdev>: flushes <n>`.
pub fn flush_line(domid: u16, vdev: &str, flushes: u64) -> String {
    alloc::format!("d{domid}: blkback {vdev}: flushes {flushes}")
}

/// Domain 0's watch events that one back end's link took from the store but that belong
/// to another (each back end watches with its own token).
#[derive(Debug, Default)]
pub struct Dom0Events {
    queue: VecDeque<xenstored::WatchEvent>,
}

/// A back end's xenstore connection inside hv: the `xenbus` client's byte stream answered at
/// once by domain 0's [`Store`] (connection 0, privileged), each request as it is sent, with
/// the watch events whose token is `token` delivered before the reply (as C xenstored sends
/// them). Made for one round of the back end (it borrows the store), then dropped.
pub struct Dom0Link<'a> {
    store: &'a mut Store,
    events: &'a mut Dom0Events,
    token: &'a str,
    from_client: Vec<u8>,
    to_client: VecDeque<u8>,
    now: Instant,
}

impl<'a> Dom0Link<'a> {
    /// A link over `store` for the back end watching with `token`, at time `now`.
    pub fn new(
        store: &'a mut Store,
        events: &'a mut Dom0Events,
        token: &'a str,
        now: Instant,
    ) -> Self {
        Self {
            store,
            events,
            token,
            from_client: Vec::new(),
            to_client: VecDeque::new(),
            now,
        }
    }

    fn push(&mut self, type_: u32, req_id: u32, tx_id: u32, payload: &[u8]) {
        let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
        let header = XsdSockmsg {
            type_,
            req_id,
            tx_id,
            len,
        };
        self.to_client.extend(header.to_bytes());
        self.to_client.extend(payload);
    }

    /// Moves the store's events for domain 0 into the shared queue and this link's into the
    /// client's stream.
    fn deliver_events(&mut self) {
        self.events.queue.extend(self.store.take_events(0));
        let mut kept = VecDeque::new();
        while let Some(e) = self.events.queue.pop_front() {
            if e.token == self.token {
                let mut payload = Vec::with_capacity(e.path.len() + e.token.len() + 2);
                payload.extend_from_slice(e.path.as_bytes());
                payload.push(0);
                payload.extend_from_slice(e.token.as_bytes());
                payload.push(0);
                self.push(XS_WATCH_EVENT, 0, 0, &payload);
            } else {
                kept.push_back(e);
            }
        }
        self.events.queue = kept;
    }

    /// Answers every complete request the client sent.
    fn process(&mut self) {
        while let Some(raw) = self.from_client.first_chunk::<{ XsdSockmsg::SIZE }>() {
            let Ok(h) = XsdSockmsg::from_bytes(raw) else {
                // The client is ours; an impossible header is dropped with what follows.
                self.from_client.clear();
                return;
            };
            let end = XsdSockmsg::SIZE.saturating_add(h.len as usize);
            if self.from_client.len() < end {
                return;
            }
            let payload: Vec<u8> = self
                .from_client
                .drain(..end)
                .skip(XsdSockmsg::SIZE)
                .collect();
            let result = self.store.handle(0, h.type_, h.tx_id, &payload);
            self.deliver_events();
            match result {
                Ok(body) => self.push(h.type_, h.req_id, h.tx_id, &body),
                Err(e) => {
                    let mut name = Vec::from(e.name().as_bytes());
                    name.push(0);
                    self.push(XS_ERROR, h.req_id, h.tx_id, &name);
                }
            }
        }
    }
}

impl XsTransport for Dom0Link<'_> {
    fn send(&mut self, data: &[u8]) -> Result<usize, TransportError> {
        self.from_client.extend_from_slice(data);
        self.process();
        Ok(data.len())
    }

    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, TransportError> {
        if self.to_client.is_empty() {
            self.deliver_events();
        }
        let n = buf.len().min(self.to_client.len());
        for (b, v) in buf.iter_mut().zip(self.to_client.drain(..n)) {
            *b = v;
        }
        Ok(n)
    }

    fn now(&mut self) -> Instant {
        self.now
    }

    fn wait(&mut self, _deadline: Instant) -> Result<Wake, TransportError> {
        // Every request is answered when sent: with nothing queued, nothing will come.
        if self.to_client.is_empty() {
            Ok(Wake::TimedOut)
        } else {
            Ok(Wake::Ready)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    const GIB4: u64 = 4 << 30;

    #[test]
    fn a_flush_count_is_reported_each_time_it_grows() {
        let mut w = FlushWatch::default();
        assert_eq!(w.update(0), None);
        assert_eq!(w.update(2), Some(2));
        assert_eq!(w.update(2), None);
        assert_eq!(w.update(3), Some(3));
        assert_eq!(flush_line(1, "xvdb", 3), "d1: blkback xvdb: flushes 3");
    }

    #[test]
    fn bars_inside_the_map_and_away_from_ram_are_taken() {
        let ram = [(0, 0x9f000), (0x10_0000, 0x2000_0000)];
        let w = check_bar(0xfebd_1000, 0x1000, GIB4, &ram).unwrap();
        assert_eq!(w.first_page, 0xfea0_0000);
        assert_eq!(w.end_page, 0xfec0_0000);
        let w = check_bar(0xfe00_0000, 0x4000, GIB4, &ram).unwrap();
        assert_eq!((w.start, w.end), (0xfe00_0000, 0xfe00_4000));
        // Straddling a 2 MiB boundary covers both pages.
        let w = check_bar(0xfe1f_f000, 0x2000, GIB4, &ram).unwrap();
        assert_eq!((w.first_page, w.end_page), (0xfe00_0000, 0xfe40_0000));
    }

    #[test]
    fn bars_above_the_map_unassigned_overflowing_or_beside_ram_are_refused() {
        let ram = [(0x10_0000, 0x2010_0000)];
        assert_eq!(
            check_bar(0x8_0000_0000, 0x4000, GIB4, &ram),
            Err(BarError::AboveMap { limit: GIB4 })
        );
        assert_eq!(
            check_bar(GIB4 - 0x1000, 0x2000, GIB4, &ram),
            Err(BarError::AboveMap { limit: GIB4 })
        );
        assert_eq!(check_bar(0, 0x1000, GIB4, &ram), Err(BarError::Unassigned));
        assert_eq!(check_bar(0x1000, 0, GIB4, &ram), Err(BarError::Unassigned));
        assert_eq!(
            check_bar(u64::MAX - 10, 0x1000, u64::MAX, &ram),
            Err(BarError::Overflow)
        );
        assert_eq!(
            check_bar(0x2010_0000, 0x1000, GIB4, &ram),
            Err(BarError::SharesRam { ram: 0x10_0000 })
        );
        assert!(check_bar(0x2020_0000, 0x1000, GIB4, &ram).is_ok());
    }

    #[test]
    fn capacities_are_checked() {
        assert_eq!(check_capacity(0), Err(CapacityError::Empty));
        assert_eq!(check_capacity(8192), Ok(8192));
        assert_eq!(check_capacity(MAX_SECTORS), Ok(MAX_SECTORS));
        assert_eq!(
            check_capacity(MAX_SECTORS + 1),
            Err(CapacityError::TooLarge(MAX_SECTORS + 1))
        );
    }

    #[test]
    fn devids_are_libxls() {
        assert_eq!(devid_of("xvda"), Some(51712));
        assert_eq!(devid_of("xvdb"), Some(51728));
        assert_eq!(devid_of("xvda1"), Some(51713));
        assert_eq!(devid_of("xvdp"), Some(202 << 8 | 15 << 4));
        assert_eq!(devid_of("xvdq"), Some(1 << 28 | 16 << 8));
        assert_eq!(devid_of("xvdaa"), Some(1 << 28 | 26 << 8));
        assert_eq!(devid_of("xvda01"), None);
        assert_eq!(devid_of("xvd"), None);
        assert_eq!(devid_of("hda"), None);
        assert_eq!(devid_of("xvdA"), None);
        assert_eq!(devid_of("xvda1x"), None);
    }

    #[test]
    fn run_time_disks_take_the_spare_devices() {
        let boot = pair(&[vec![("xvda".into(), false)], vec![]], 4).unwrap();
        let one = pair_spare(&boot, 2, &[("xvdb".into(), false)], 4).unwrap();
        assert_eq!((one[0].spec, one[0].device, one[0].devid), (2, 1, 51728));
        let plans: Vec<DiskPlan> = boot.iter().chain(&one).cloned().collect();
        let two = pair_spare(
            &plans,
            3,
            &[("xvda".into(), true), ("xvdb".into(), false)],
            4,
        )
        .unwrap();
        assert_eq!(two.iter().map(|p| p.device).collect::<Vec<_>>(), vec![2, 3]);
        // The last spare taken: the next disk is refused, saying what is missing.
        let all: Vec<DiskPlan> = plans.iter().chain(&two).cloned().collect();
        let e = pair_spare(&all, 4, &[("xvda".into(), false)], 4).unwrap_err();
        assert_eq!(
            e,
            PairError::NoSpare {
                vdev: "xvda".into(),
                devices: 4,
                used: 4
            }
        );
        assert!(format!("{e}").contains("--spare-disk"));
        // A device given back (its domain gone) is taken again.
        let freed: Vec<DiskPlan> = all.into_iter().filter(|p| p.spec != 2).collect();
        assert_eq!(
            pair_spare(&freed, 4, &[("xvda".into(), false)], 4).unwrap()[0].device,
            1
        );
        assert_eq!(
            pair_spare(&[], 0, &[("xvda".into(), false), ("xvda".into(), false)], 2),
            Err(PairError::Duplicate("xvda".into()))
        );
        assert_eq!(
            pair_spare(&[], 0, &[("hda".into(), false)], 2),
            Err(PairError::BadVdev("hda".into()))
        );
    }

    #[test]
    fn disks_pair_with_devices_in_config_order() {
        let disks = vec![
            vec![("xvda".into(), false), ("xvdb".into(), true)],
            vec![],
            vec![("xvda".into(), false)],
        ];
        let p = pair(&disks, 3).unwrap();
        assert_eq!(p.len(), 3);
        assert_eq!(
            (p[0].spec, p[0].devid, p[0].device, p[0].read_only),
            (0, 51712, 0, false)
        );
        assert_eq!(
            (p[1].spec, p[1].devid, p[1].device, p[1].read_only),
            (0, 51728, 1, true)
        );
        assert_eq!((p[2].spec, p[2].devid, p[2].device), (2, 51712, 2));
        assert_eq!(pair(&disks, 2), Err(PairError::TooFewDevices(3, 2)));
        let dup = vec![vec![("xvda".into(), false), ("xvda".into(), true)]];
        assert_eq!(pair(&dup, 2), Err(PairError::Duplicate("xvda".into())));
        let bad = vec![vec![("hda".into(), false)]];
        assert_eq!(pair(&bad, 2), Err(PairError::BadVdev("hda".into())));
        assert_eq!(pair(&[], 0), Ok(vec![]));
    }

    /// A disk in memory.
    struct Mem(Vec<u8>);

    impl blkback::BlockDevice for Mem {
        fn sectors(&self) -> u64 {
            self.0.len() as u64 / 512
        }
        fn read_only(&self) -> bool {
            false
        }
        fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), blkback::DiskError> {
            let at = usize::try_from(sector).unwrap() * 512;
            buf.copy_from_slice(&self.0[at..at + buf.len()]);
            Ok(())
        }
        fn write(&mut self, sector: u64, data: &[u8]) -> Result<(), blkback::DiskError> {
            let at = usize::try_from(sector).unwrap() * 512;
            self.0[at..at + data.len()].copy_from_slice(data);
            Ok(())
        }
        fn flush(&mut self) -> Result<(), blkback::DiskError> {
            Ok(())
        }
    }

    #[test]
    fn a_back_end_over_the_store_follows_its_front_end_through_its_watch() {
        use crate::dom0::toolstack::{VbdInfo, vbd_backend, write_vbd};
        use abi::io::xs_wire::XS_WRITE;
        use xenbus::testing::{FakeEvents, FakeGrantMapper};
        use xenbus::xenstore::XsClient;

        let mut store = Store::new();
        store.introduce(1);
        let v = VbdInfo {
            domid: 1,
            devid: 51712,
            vdev: "xvda",
            params: "/d/a.img",
            read_only: false,
        };
        write_vbd(&mut store, &v).unwrap();
        let path = vbd_backend(1, 51712);
        let token = alloc::format!("xb-be-other:{path}");
        let mut events = Dom0Events::default();
        let deadline = Instant::from_nanos(1_000_000);
        let now = Instant::from_nanos(0);
        let mut xs = XsClient::new(Dom0Link::new(&mut store, &mut events, &token, now));
        let mut back = blkback::Blkback::probe(
            &mut xs,
            path.clone(),
            Mem(vec![0; 4096]),
            FakeGrantMapper::new(xenbus::DomId::ZERO),
            FakeEvents::new(),
            deadline,
        )
        .unwrap();
        drop(xs);
        assert_eq!(store.read(&alloc::format!("{path}/state")).unwrap(), b"2");
        // Another back end's event waits in the shared queue, untouched by this one.
        store
            .handle(
                0,
                abi::io::xs_wire::XS_WATCH,
                0,
                b"/local/domain/1/name\0other\0",
            )
            .unwrap();
        // The front end (domain 1) says Closing: the back end follows on its next round.
        let w = b"device/vbd/51712/state\x005";
        store.handle(1, XS_WRITE, 0, w).unwrap();
        let mut xs = XsClient::new(Dom0Link::new(&mut store, &mut events, &token, now));
        back.poll(&mut xs, deadline).unwrap();
        drop(xs);
        assert_eq!(store.read(&alloc::format!("{path}/state")).unwrap(), b"5");
        assert_eq!(events.queue.len(), 1);
        assert_eq!(events.queue[0].token, "other");
        // Without a change, a round does nothing.
        let mut xs = XsClient::new(Dom0Link::new(&mut store, &mut events, &token, now));
        assert_eq!(back.poll(&mut xs, deadline), Ok(false));
    }
}
