//! The vif device: the xenbus handshake with netback, the two rings, and the counters.
//!
//! [`Netfront::connect`] does what Linux's netback expects of a front end: it waits for the
//! backend's InitWait, reads `mac` and `mtu` from our directory ([`VifConfig`]), checks that
//! the backend offers `feature-rx-copy`, grants the two ring pages, the tx buffer pool and the
//! rx buffers (each page once, for the device's life), fills the rx ring, publishes
//! `tx-ring-ref`, `rx-ring-ref`, `event-channel`, `request-rx-copy` = 1,
//! `feature-rx-notify` = 1, `feature-no-csum-offload`, `feature-sg` and `feature-gso-tcpv4`
//! (the [`Offloads`] in use) in one transaction, switches to Connected (netback connects on
//! that, not on Initialised) and waits for the backend's Connected.
//!
//! Offloads, each on unless [`Config::offloads`] turns it off: checksum offload (tx TCP
//! frames leave `NETTXF_csum_blank | NETTXF_data_validated`; rx frames flagged
//! `NETRXF_data_validated` or `NETRXF_csum_blank` are trusted, others checked here:
//! [`crate::checksum`]); scatter-gather when the backend offers `feature-sg` (a frame in
//! several slots both ways, the MTU key honoured); GSO receive (`feature-gso-tcpv4`, needs
//! both: TCP segments up to 64 KiB arrive in one multi-slot frame).
//!
//! Split event channels and multiple queues, each on unless switched off
//! ([`Offloads::split`], [`Offloads::multi_queue`]): with the backend's
//! `feature-split-event-channels` each queue has a tx and an rx channel; with its
//! `multi-queue-max-queues` the device runs up to [`Config::queues`] queues, each with its
//! own rings, buffers and channels; a frame leaves on the queue of its flow's hash
//! ([`crate::flow`]), and every queue's rx ring is polled (smoltcp sees one device).
//!
//! Sending ([`Netfront::send`]) stages requests; [`Netfront::flush`] publishes them with one
//! notification if the ring rules ask for one, so a burst costs one event. [`Netfront::poll`]
//! reclaims tx buffers from checked responses, takes rx responses (checked, copied, the
//! buffer posted again) and refills the rx ring. A backend that corrupts a ring, closes or
//! vanishes ends the device: later calls fail with the reason, and [`Netfront::close`] ends
//! every grant the backend no longer holds.
#![allow(
    clippy::cast_possible_truncation,
    reason = "ring sizes are at most 256 slots (one page), so they fit u16"
)]

use crate::checksum::{complete_checksum, fill_pseudo_header, is_tcp, offloadable, verify_tcp};
use crate::config::VifConfig;
use crate::error::NetError;
use crate::rx::{RxDrop, RxQueue};
use crate::tx::{Segment, TxPool, TxStatus, finish_run};
use abi::io::netif::{
    NETIF_RSP_NULL, NETTXF_CSUM_BLANK, NETTXF_DATA_VALIDATED, NETTXF_EXTRA_INFO, NetifExtraInfo,
    NetifRxRequest, NetifRxResponse, NetifTxRequest, NetifTxResponse,
};
use abi::io::xenbus::XenbusState;
use abi::ring::{FrontRing, RingError};
use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use xenbus::frontend::{Frontend, XenbusError};
use xenbus::grant::{GrantAccess, GrantedPage};
use xenbus::xenstore::{TxId, XsClient, XsError, XsTransport};
use xenbus::{DomId, EventChannel, Instant, PageProvider, Platform, Port};

// A child module, so that resuming reaches the device's parts (`netfront/src/resume.rs`).
#[path = "resume.rs"]
mod resume;

/// Attempts at the transaction that publishes the rings.
const TRANSACTION_ATTEMPTS: u32 = 8;
/// Staged tx requests that make [`Netfront::send`] publish them itself (a caller that forgets
/// [`Netfront::flush`] still makes progress).
const TX_PUSH_BATCH: u32 = 64;

/// The offloads: what the device asks for (each on by default; a command-line switch turns
/// one off), and, from [`Netfront::offloads`], what it uses once connected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Offloads {
    /// Checksum offload both ways (`feature-no-csum-offload` = 0, `NETTXF_csum_blank`).
    pub csum: bool,
    /// Scatter-gather (`feature-sg`, used only if the backend offers it too).
    pub sg: bool,
    /// GSO receive (`feature-gso-tcpv4`, used only with `sg` and `csum`).
    pub gso_rx: bool,
    /// GSO send: consecutive TCP segments staged in one poll leave as one GSO frame (used
    /// only with `sg` and `csum`, and if the backend offers `feature-gso-tcpv4`).
    pub gso_tx: bool,
    /// Split event channels: one for tx and one for rx per queue (`event-channel-tx`,
    /// `event-channel-rx`; used only if the backend offers `feature-split-event-channels`).
    pub split: bool,
    /// Several queues (`multi-queue-num-queues`, `queue-N/...`): up to [`Config::queues`],
    /// at most the backend's `multi-queue-max-queues`.
    pub multi_queue: bool,
}

impl Offloads {
    /// Every offload on.
    pub const ALL: Self = Self {
        csum: true,
        sg: true,
        gso_rx: true,
        gso_tx: true,
        split: true,
        multi_queue: true,
    };
    /// Every offload off (the device as it was before them).
    pub const NONE: Self = Self {
        csum: false,
        sg: false,
        gso_rx: false,
        gso_tx: false,
        split: false,
        multi_queue: false,
    };
}

/// How many buffers the device keeps (each a granted page or part of one), and the offloads
/// it asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Tx buffers per queue (at most the ring's 256 slots); two share a page at MTU 1500.
    pub tx_buffers: u16,
    /// Rx buffers per queue, one page each (at most 256).
    pub rx_buffers: u16,
    /// The offloads asked for.
    pub offloads: Offloads,
    /// The most queues asked for with [`Offloads::multi_queue`] (1 to [`MAX_QUEUES`]).
    pub queues: u16,
}

/// The most queues a device runs (Linux's netfront default: `MAX_QUEUES_DEFAULT`, 8).
pub const MAX_QUEUES: usize = 8;

/// Queues asked for by default: the guest has one vCPU, so more queues only spread flows
/// over rings; two show the path without doubling the memory again.
pub const DEFAULT_QUEUES: u16 = 2;

impl Default for Config {
    /// 128 of each per queue: 64 tx pages and 128 rx pages (768 KiB), half of each ring;
    /// every offload; [`DEFAULT_QUEUES`] queues.
    fn default() -> Self {
        Self {
            tx_buffers: 128,
            rx_buffers: 128,
            offloads: Offloads::ALL,
            queues: DEFAULT_QUEUES,
        }
    }
}

/// One queue's counters (queue 0 is the only one without multiple queues).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Frames put on this queue's tx ring.
    pub tx_frames: u64,
    /// Frames received from this queue's rx ring.
    pub rx_frames: u64,
    /// Events received on the tx channel (the only channel without split channels).
    pub tx_channel_events: u64,
    /// Events received on the rx channel (split channels only).
    pub rx_channel_events: u64,
    /// Notifications sent on the tx channel (tx requests; without split channels also rx
    /// refills).
    pub tx_channel_notifications: u64,
    /// Notifications sent on the rx channel (rx refills; split channels only).
    pub rx_channel_notifications: u64,
}

impl QueueStats {
    pub(crate) fn carried(old: Self, new: Self) -> Self {
        Self {
            tx_frames: old.tx_frames + new.tx_frames,
            rx_frames: old.rx_frames + new.rx_frames,
            tx_channel_events: old.tx_channel_events + new.tx_channel_events,
            rx_channel_events: old.rx_channel_events + new.rx_channel_events,
            tx_channel_notifications: old.tx_channel_notifications + new.tx_channel_notifications,
            rx_channel_notifications: old.rx_channel_notifications + new.rx_channel_notifications,
        }
    }
}

/// Counters, for the status page and the benchmark.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Frames put on the tx ring.
    pub tx_packets: u64,
    /// Their bytes.
    pub tx_bytes: u64,
    /// Tx requests published.
    pub tx_requests: u64,
    /// Notifications sent for tx requests.
    pub tx_notifications: u64,
    /// Tx responses reporting `NETIF_RSP_ERROR`/`_DROPPED`.
    pub tx_errors: u64,
    /// Frames refused before reaching the ring (larger than the MTU, or no free buffer).
    pub tx_refused: u64,
    /// Frames delivered to the stack.
    pub rx_packets: u64,
    /// Their bytes.
    pub rx_bytes: u64,
    /// Rx requests (buffers) posted.
    pub rx_requests: u64,
    /// Notifications sent for posted rx buffers (`feature-rx-notify`).
    pub rx_notifications: u64,
    /// Packets dropped (a bad slot, an error status, an unsupported extra, shorter than an
    /// Ethernet header, a checksum that could not be completed).
    pub rx_dropped: u64,
    /// Frames flagged `csum_blank` whose checksum was completed here.
    pub rx_csum_completed: u64,
    /// Frames sent `NETTXF_csum_blank` (checksum offload: netback completes them).
    pub tx_csum_offloaded: u64,
    /// Frames received flagged `data_validated` or `csum_blank`, trusted unchecked (offload).
    pub rx_csum_trusted: u64,
    /// TCP frames received unflagged whose checksum was checked here (offload).
    pub rx_csum_verified: u64,
    /// Of those, dropped for a wrong checksum (also in `rx_dropped`).
    pub rx_csum_bad: u64,
    /// Frames sent in more than one slot (scatter-gather).
    pub tx_multi_slot: u64,
    /// Frames received in more than one data slot (scatter-gather).
    pub rx_multi_slot: u64,
    /// Frames received with a GSO extra (GSO receive).
    pub rx_gso: u64,
    /// The largest frame received, in bytes.
    pub rx_largest_frame: u64,
    /// GSO frames sent (each several TCP segments coalesced, `feature-gso-tcpv4`).
    pub tx_gso: u64,
    /// TCP segments they carried.
    pub tx_gso_segments: u64,
    /// Pure TCP acknowledgements sent (no payload, ACK the only flag): how often the stack
    /// acknowledges what it receives.
    pub tx_acks: u64,
    /// The sum of their window fields (unscaled): over `tx_acks`, the window advertised.
    pub tx_ack_window_sum: u64,
    /// Of them, those advertising a zero window (the receiver's buffer full).
    pub tx_zero_window_acks: u64,
    /// Events the platform reported on the device's port.
    pub notifications_received: u64,
    /// Responses (tx or rx slots) that failed validation.
    pub bad_responses: u64,
    /// Grants this device holds now (rings, tx pool, rx buffers, and pages the backend still
    /// held when it ended); constant while the device runs.
    pub grants_in_use: u64,
    /// Queues in use now (1 without multiple queues).
    pub queues_in_use: u64,
    /// Whether the connection now uses split event channels.
    pub split_channels: bool,
    /// Per queue (up to [`MAX_QUEUES`]; carried over a resume).
    pub queues: [QueueStats; MAX_QUEUES],
}

impl NetStats {
    /// The per-queue counters of the queues in use.
    pub fn queues_used(&self) -> &[QueueStats] {
        let n = usize::try_from(self.queues_in_use).unwrap_or(0);
        &self.queues[..n.min(MAX_QUEUES)]
    }

    /// Tx requests per tx notification (requests if none was needed).
    pub fn tx_requests_per_notification(&self) -> f64 {
        self.tx_requests as f64 / self.tx_notifications.max(1) as f64
    }

    /// Rx requests per rx notification.
    pub fn rx_requests_per_notification(&self) -> f64 {
        self.rx_requests as f64 / self.rx_notifications.max(1) as f64
    }
}

/// A connected vif.
#[derive(Debug)]
pub struct Netfront<P: PageProvider, G: GrantAccess, E: EventChannel> {
    platform: Platform<P, G, E>,
    frontend: Frontend,
    config: VifConfig,
    queues: Vec<Queue>,
    /// Split event channels in use (each queue's `rx_port` is its own).
    split: bool,
    /// Whether `multi-queue-num-queues` was written (the backend offered queues).
    queue_key: bool,
    ring_pages: Vec<GrantedPage>,
    received: VecDeque<Vec<u8>>,
    received_bytes: usize,
    offloads: Offloads,
    requests: Vec<NetifTxRequest>,
    /// GSO send: the run of segments being coalesced (empty: none), its first segment,
    /// how many, and whether the last carried PSH.
    run: Vec<u8>,
    run_segment: Option<crate::tx::Segment>,
    run_segments: u16,
    run_mss: u16,
    run_psh: bool,
    /// An offloaded frame's copy, its checksum field holding the pseudo-header's sum.
    patched: Vec<u8>,
    quarantine: Vec<GrantedPage>,
    stats: NetStats,
    dead: Option<NetError>,
    released: bool,
    scratch: Vec<u8>,
}

/// One queue: its two rings, its event channel(s) and its buffers.
#[derive(Debug)]
struct Queue {
    tx_ring: FrontRing<NetifTxRequest, NetifTxResponse>,
    rx_ring: FrontRing<NetifRxRequest, NetifRxResponse>,
    /// The tx channel (the only one without split channels).
    tx_port: Port,
    /// The rx channel (`tx_port` without split channels).
    rx_port: Port,
    tx: Option<TxPool>,
    rx: Option<RxQueue>,
    tx_staged: u32,
    /// Extra-info slots sent whose `NETIF_RSP_NULL` answers are still due.
    tx_extras: u32,
}

/// A queue's two rings, before its ports.
type Rings = (
    FrontRing<NetifTxRequest, NetifTxResponse>,
    FrontRing<NetifRxRequest, NetifRxResponse>,
);

/// What [`Netfront::connect`] builds before the device exists, released on failure.
struct Parts {
    ring_pages: Vec<GrantedPage>,
    /// Per queue.
    tx_pages: Vec<Vec<GrantedPage>>,
    /// Per queue.
    rx_pages: Vec<Vec<GrantedPage>>,
    ports: Vec<Port>,
}

impl<P: PageProvider, G: GrantAccess, E: EventChannel> Netfront<P, G, E> {
    /// Connects vif `devid` (`device/vif/<devid>`) as Linux's netback expects (see the
    /// module documentation).
    pub fn connect<T: XsTransport>(
        xs: &mut XsClient<T>,
        devid: u32,
        config: Config,
        platform: Platform<P, G, E>,
        deadline: Instant,
    ) -> Result<Self, NetError> {
        let frontend = Frontend::discover(xs, "vif", devid, deadline)?;
        let watch = frontend.clone();
        let connected = Self::connect_to(xs, frontend, config, platform, deadline);
        if connected.is_err() {
            // Leave no watch behind: a later attempt sets it again. Failing to remove it
            // leaves only stray events.
            let _ = watch.close(xs, deadline);
        }
        connected
    }

    fn connect_to<T: XsTransport>(
        xs: &mut XsClient<T>,
        frontend: Frontend,
        config: Config,
        mut platform: Platform<P, G, E>,
        deadline: Instant,
    ) -> Result<Self, NetError> {
        frontend.wait_backend_state(
            xs,
            |s| matches!(s, XenbusState::InitWait | XenbusState::Connected),
            deadline,
        )?;
        let mac = xs.read_optional(TxId::NONE, &frontend.node("mac"), deadline)?;
        let mtu = xs.read_optional(TxId::NONE, &frontend.node("mtu"), deadline)?;
        let mut vif = VifConfig::parse(mac.as_deref(), mtu.as_deref())?;
        let offered = |xs: &mut XsClient<T>, key: &str| {
            xs.read_optional(TxId::NONE, &frontend.backend_node(key), deadline)
                .map(|v| v.as_deref().map(str::trim) == Some("1"))
        };
        if !offered(xs, "feature-rx-copy")? {
            return Err(NetError::NoRxCopy);
        }
        let asked = config.offloads;
        let sg = asked.sg && offered(xs, "feature-sg")?;
        let split = asked.split && offered(xs, "feature-split-event-channels")?;
        // `multi-queue-max-queues` (absent, 0 or garbage: one queue), as Linux's netfront
        // reads it, capped by what we ask.
        let max_queues = if asked.multi_queue {
            xs.read_optional(
                TxId::NONE,
                &frontend.backend_node("multi-queue-max-queues"),
                deadline,
            )?
            .and_then(|v| v.trim().parse::<u16>().ok())
        } else {
            None
        };
        let queue_key = max_queues.is_some();
        let queues = usize::from(
            max_queues
                .unwrap_or(1)
                .min(config.queues)
                .clamp(1, MAX_QUEUES as u16),
        );
        let offloads = Offloads {
            csum: asked.csum,
            sg,
            gso_rx: asked.gso_rx && sg && asked.csum,
            gso_tx: asked.gso_tx && sg && asked.csum && offered(xs, "feature-gso-tcpv4")?,
            split,
            multi_queue: queues > 1,
        };
        if sg {
            vif.allow_sg();
        }

        let mut parts = Parts {
            ring_pages: Vec::new(),
            tx_pages: Vec::new(),
            rx_pages: Vec::new(),
            ports: Vec::new(),
        };
        let built = Self::build(
            &mut platform,
            &mut parts,
            frontend.backend_id,
            config,
            &vif,
            queues,
        )
        .and_then(|rings| {
            let mut ports = Vec::with_capacity(rings.len());
            for _ in 0..rings.len() {
                let tx = platform.events.alloc_unbound(frontend.backend_id)?;
                parts.ports.push(tx);
                let rx = if split {
                    let rx = platform.events.alloc_unbound(frontend.backend_id)?;
                    parts.ports.push(rx);
                    rx
                } else {
                    tx
                };
                ports.push((tx, rx));
            }
            Ok((rings, ports))
        });
        let (rings, ports) = match built {
            Ok(built) => built,
            Err(e) => {
                Self::release_parts(&mut platform, parts);
                return Err(e);
            }
        };
        let buffer_size = vif.tx_buffer_size();
        let Parts {
            ring_pages,
            tx_pages,
            rx_pages,
            ports: _,
        } = parts;
        let mut rx_total = 0usize;
        let queues: Vec<Queue> = rings
            .into_iter()
            .zip(ports)
            .zip(tx_pages.into_iter().zip(rx_pages))
            .map(
                |(((tx_ring, rx_ring), (tx_port, rx_port)), (tx_pages, rx_pages))| {
                    let rx_size = rx_ring.size();
                    rx_total += rx_size as usize;
                    Queue {
                        tx_ring,
                        rx_ring,
                        tx_port,
                        rx_port,
                        tx: Some(TxPool::new(tx_pages, buffer_size, config.tx_buffers)),
                        rx: Some(RxQueue::new(
                            rx_pages,
                            rx_size,
                            vif.max_frame(),
                            offloads.gso_rx.then_some(vif.mtu),
                        )),
                        tx_staged: 0,
                        tx_extras: 0,
                    }
                },
            )
            .collect();
        let mut device = Self {
            platform,
            frontend,
            config: vif,
            queues,
            split,
            queue_key,
            ring_pages,
            // Sized once for full rx rings (what one poll can take), so that the queue never
            // grows under load and the heap in use stays flat.
            received: VecDeque::with_capacity(rx_total),
            received_bytes: 0,
            offloads,
            requests: Vec::with_capacity(crate::tx::MAX_TX_SLOTS),
            run: Vec::new(),
            run_segment: None,
            run_segments: 0,
            run_mss: 0,
            run_psh: false,
            patched: Vec::new(),
            quarantine: Vec::new(),
            stats: NetStats::default(),
            dead: None,
            released: false,
            scratch: Vec::with_capacity(vif.max_frame()),
        };
        match device.publish(xs, deadline) {
            Ok(()) => Ok(device),
            Err(e) => {
                device.end(e);
                device.release();
                Err(e)
            }
        }
    }

    /// Allocates and grants each queue's ring pages and buffers (each kept in `parts` as
    /// soon as it is granted, so a failure releases it).
    fn build(
        platform: &mut Platform<P, G, E>,
        parts: &mut Parts,
        backend: DomId,
        config: Config,
        vif: &VifConfig,
        queues: usize,
    ) -> Result<Vec<Rings>, NetError> {
        let mut rings = Vec::with_capacity(queues);
        for _ in 0..queues {
            let tx_page = platform.pages.alloc_zeroed()?;
            let tx_ring = tx_page.init_front_ring::<NetifTxRequest, NetifTxResponse>();
            parts
                .ring_pages
                .push(Self::grant(platform, tx_page, backend, false)?);
            let rx_page = platform.pages.alloc_zeroed()?;
            let rx_ring = rx_page.init_front_ring::<NetifRxRequest, NetifRxResponse>();
            parts
                .ring_pages
                .push(Self::grant(platform, rx_page, backend, false)?);
            let (tx_ring, rx_ring) = (tx_ring?, rx_ring?);

            let tx_buffers = config.tx_buffers.clamp(1, tx_ring.size() as u16);
            let rx_buffers = config.rx_buffers.clamp(1, rx_ring.size() as u16);
            let per_page = crate::config::PAGE / vif.tx_buffer_size();
            parts.tx_pages.push(Vec::new());
            parts.rx_pages.push(Vec::new());
            for _ in 0..usize::from(tx_buffers).div_ceil(per_page) {
                let page = platform.pages.alloc_zeroed()?;
                let granted = Self::grant(platform, page, backend, true)?;
                if let Some(pages) = parts.tx_pages.last_mut() {
                    pages.push(granted);
                }
            }
            for _ in 0..rx_buffers {
                let page = platform.pages.alloc_zeroed()?;
                let granted = Self::grant(platform, page, backend, false)?;
                if let Some(pages) = parts.rx_pages.last_mut() {
                    pages.push(granted);
                }
            }
            rings.push((tx_ring, rx_ring));
        }
        Ok(rings)
    }

    fn grant(
        platform: &mut Platform<P, G, E>,
        page: xenbus::Page,
        backend: DomId,
        readonly: bool,
    ) -> Result<GrantedPage, NetError> {
        platform
            .grants
            .grant(page, backend, readonly)
            .map_err(|(page, e)| {
                platform.pages.release(page);
                NetError::Grant(e)
            })
    }

    fn release_parts(platform: &mut Platform<P, G, E>, parts: Parts) {
        for port in parts.ports {
            platform.events.close(port);
        }
        let all = parts
            .ring_pages
            .into_iter()
            .chain(parts.tx_pages.into_iter().flatten())
            .chain(parts.rx_pages.into_iter().flatten());
        for granted in all {
            // Never shared with the backend yet, so the grant ends; if it does not, the page
            // stays granted (leaked) rather than reused.
            if let Ok(page) = platform.grants.end(granted) {
                platform.pages.release(page);
            }
        }
    }

    /// Fills the rx rings, publishes the keys (one queue's in our directory, several in
    /// `queue-N/`, as Linux's `talk_to_netback` writes them), and runs the state handshake.
    fn publish<T: XsTransport>(
        &mut self,
        xs: &mut XsClient<T>,
        deadline: Instant,
    ) -> Result<(), NetError> {
        for q in 0..self.queues.len() {
            self.refill_rx(q);
            self.queues[q].rx_ring.push_requests();
        }
        let queues: Vec<(u32, u32, u32, u32)> = self
            .queues
            .iter()
            .enumerate()
            .map(|(i, q)| {
                (
                    self.ring_pages[2 * i].gref().get(),
                    self.ring_pages[2 * i + 1].gref().get(),
                    q.tx_port.get(),
                    q.rx_port.get(),
                )
            })
            .collect();
        let (split, queue_key) = (self.split, self.queue_key);
        let frontend = &self.frontend;
        let flag = |on: bool| if on { "1" } else { "0" };
        let offloads = self.offloads;
        xs.transaction(TRANSACTION_ATTEMPTS, deadline, |xs, tx| {
            let keys = [
                ("request-rx-copy", "1"),
                ("feature-rx-notify", "1"),
                ("feature-no-csum-offload", flag(!offloads.csum)),
                ("feature-sg", flag(offloads.sg)),
                ("feature-gso-tcpv4", flag(offloads.gso_rx)),
            ];
            for (key, value) in keys {
                xs.write(tx, &frontend.node(key), value, deadline)?;
            }
            // What an earlier connection (before a resume) wrote and this one does not:
            // netback would read a stale queue count or channel before ours.
            let mut stale: Vec<&str> = match (queues.len() > 1, split) {
                (true, _) => alloc::vec![
                    "tx-ring-ref",
                    "rx-ring-ref",
                    "event-channel",
                    "event-channel-tx",
                    "event-channel-rx",
                ],
                (false, true) => alloc::vec!["event-channel"],
                (false, false) => alloc::vec!["event-channel-tx", "event-channel-rx"],
            };
            if !queue_key {
                stale.push("multi-queue-num-queues");
            }
            for key in stale {
                match xs.rm(tx, &frontend.node(key), deadline) {
                    Ok(()) | Err(XsError::Server(_)) => {}
                    Err(e) => return Err(e),
                }
            }
            if queue_key {
                let n = format!("{}", queues.len());
                xs.write(tx, &frontend.node("multi-queue-num-queues"), &n, deadline)?;
            }
            for (i, &(tx_ref, rx_ref, tx_port, rx_port)) in queues.iter().enumerate() {
                let dir = if queues.len() == 1 {
                    String::new()
                } else {
                    format!("queue-{i}/")
                };
                let mut keys = Vec::with_capacity(4);
                keys.push(("tx-ring-ref", tx_ref));
                keys.push(("rx-ring-ref", rx_ref));
                if split {
                    keys.push(("event-channel-tx", tx_port));
                    keys.push(("event-channel-rx", rx_port));
                } else {
                    keys.push(("event-channel", tx_port));
                }
                for (key, value) in keys {
                    let node = frontend.node(&format!("{dir}{key}"));
                    xs.write(tx, &node, &format!("{value}"), deadline)?;
                }
            }
            Ok(())
        })?;
        self.frontend
            .set_state(xs, XenbusState::Connected, deadline)?;
        self.frontend
            .wait_backend_state(xs, |s| s == XenbusState::Connected, deadline)?;
        // The backend may have bound the channels after the buffers were published.
        for q in 0..self.queues.len() {
            self.notify_rx(q)?;
        }
        Ok(())
    }

    /// The offloads in use (asked for, and offered where the backend must offer them).
    pub fn offloads(&self) -> Offloads {
        self.offloads
    }

    /// The vif's MAC and MTU.
    pub fn config(&self) -> &VifConfig {
        &self.config
    }

    /// Queue 0's tx (or only) event-channel port.
    pub fn port(&self) -> Port {
        self.queues.first().map_or(Port::ZERO, |q| q.tx_port)
    }

    /// Every event-channel port of the device, each once (the event loop waits on all of
    /// them and reports each that fired to [`Netfront::on_port_event`]).
    pub fn ports(&self) -> Vec<Port> {
        let mut ports = Vec::with_capacity(self.queues.len() * 2);
        for q in &self.queues {
            ports.push(q.tx_port);
            if q.rx_port != q.tx_port {
                ports.push(q.rx_port);
            }
        }
        ports
    }

    /// Queues in use.
    pub fn queue_count(&self) -> usize {
        self.queues.len()
    }

    /// Whether split event channels are in use.
    pub fn split_channels(&self) -> bool {
        self.split
    }

    /// The frontend's xenstore location.
    pub fn frontend(&self) -> &Frontend {
        &self.frontend
    }

    /// The platform (tests reach their fakes through it).
    pub fn platform(&self) -> &Platform<P, G, E> {
        &self.platform
    }

    /// The platform, mutably.
    pub fn platform_mut(&mut self) -> &mut Platform<P, G, E> {
        &mut self.platform
    }

    /// Why the device has ended, if it has.
    pub fn ended(&self) -> Option<NetError> {
        self.dead
    }

    /// Counters.
    pub fn stats(&self) -> NetStats {
        let tx_pages: usize = self
            .queues
            .iter()
            .map(|q| q.tx.as_ref().map_or(0, TxPool::pages))
            .sum();
        let rx_pages: usize = self
            .queues
            .iter()
            .map(|q| q.rx.as_ref().map_or(0, RxQueue::buffers))
            .sum();
        NetStats {
            grants_in_use: (self.ring_pages.len() + tx_pages + rx_pages + self.quarantine.len())
                as u64,
            queues_in_use: self.queues.len() as u64,
            split_channels: self.split,
            ..self.stats
        }
    }

    /// Tx buffers in flight (staged or published, not yet answered), over every queue.
    pub fn tx_in_flight(&self) -> usize {
        self.queues
            .iter()
            .map(|q| q.tx.as_ref().map_or(0, TxPool::in_flight))
            .sum()
    }

    /// Rx buffers posted to the backend, over every queue.
    pub fn rx_posted(&self) -> usize {
        self.queues
            .iter()
            .map(|q| q.rx.as_ref().map_or(0, RxQueue::posted))
            .sum()
    }

    /// A queue's counters.
    fn queue_stats(&mut self, q: usize) -> &mut QueueStats {
        // `q` is below the queue count, itself at most MAX_QUEUES.
        let last = MAX_QUEUES - 1;
        &mut self.stats.queues[q.min(last)]
    }

    /// Whether a frame can be staged now (reclaiming answered buffers first): room on every
    /// queue for the largest frame besides the run of segments being coalesced (the queue a
    /// frame takes is known only once smoltcp has built it).
    pub fn can_send(&mut self) -> bool {
        if self.dead.is_some() {
            return false;
        }
        let max_frame = self.config.max_frame();
        let run = self.run.len();
        let need =
            |tx: &TxPool| tx.slots_for(max_frame) + if run > 0 { tx.slots_for(run) } else { 0 };
        let room = |q: &Queue| q.tx.as_ref().is_some_and(|tx| tx.free() >= need(tx));
        for q in 0..self.queues.len() {
            if !room(&self.queues[q]) {
                self.poll_tx(q);
            }
        }
        !self.queues.is_empty() && self.queues.iter().all(room)
    }

    /// Stages `frame` (an Ethernet frame of 14 to MTU + 14 bytes) for sending; it leaves
    /// with the next [`Netfront::flush`]. Frames larger than the MTU are refused; a frame
    /// larger than a tx buffer (with scatter-gather) takes several slots. With checksum
    /// offload an IPv4 TCP frame leaves flagged `NETTXF_csum_blank | NETTXF_data_validated`
    /// (smoltcp left its checksum zero; netback completes it). With GSO send, consecutive
    /// segments of one connection are coalesced until [`Netfront::flush`], a segment that
    /// does not continue them, a short or PSH segment, or the most one frame may hold (18
    /// slots), and leave as one GSO frame.
    pub fn send(&mut self, frame: &[u8]) -> Result<(), NetError> {
        if let Some(e) = self.dead {
            return Err(e);
        }
        // Netback answers a frame shorter than an Ethernet header with an error.
        if frame.len() < crate::config::ETHERNET_HEADER || frame.len() > self.config.max_frame() {
            self.stats.tx_refused += 1;
            return Err(NetError::FrameSize(frame.len()));
        }
        if !self.can_send() {
            self.stats.tx_refused += 1;
            return Err(NetError::TxFull);
        }
        if let Some(window) = crate::tx::pure_ack_window(frame) {
            self.stats.tx_acks += 1;
            self.stats.tx_ack_window_sum += u64::from(window);
            self.stats.tx_zero_window_acks += u64::from(window == 0);
        }
        if self.offloads.gso_tx {
            if let Some(segment) = Segment::parse(frame) {
                return self.coalesce(frame, segment);
            }
            self.emit_run()?;
        }
        self.stage_frame(frame, None)?;
        if self.queues.iter().any(|q| q.tx_staged >= TX_PUSH_BATCH) {
            self.flush()?;
        }
        Ok(())
    }

    /// The most bytes a GSO frame may hold: 18 slots of tx buffers, and an IPv4 packet.
    fn run_limit(&self) -> usize {
        (crate::tx::MAX_TX_SLOTS * self.config.tx_buffer_size()).min(crate::rx::MAX_GSO_FRAME)
    }

    fn coalesce(&mut self, frame: &[u8], segment: Segment) -> Result<(), NetError> {
        let len = segment.len(frame);
        let psh = frame.get(segment.tcp + 13).is_some_and(|f| f & 0x08 != 0);
        if let Some(first) = self.run_segment {
            let fits = self.run.len() + len <= self.run_limit()
                && len <= usize::from(self.run_mss)
                && first.continues(&self.run, &segment, frame);
            if fits {
                self.run.extend_from_slice(&frame[segment.payload..]);
                self.run_segments += 1;
                self.run_psh = psh;
                // A short segment or a PSH ends the run: its bytes are the last.
                if psh || len < usize::from(self.run_mss) {
                    self.emit_run()?;
                }
                return Ok(());
            }
            self.emit_run()?;
        }
        if psh {
            return self.stage_frame(frame, None);
        }
        self.run.clear();
        self.run.extend_from_slice(frame);
        self.run_segment = Some(segment);
        self.run_segments = 1;
        self.run_mss = u16::try_from(len).unwrap_or(u16::MAX);
        self.run_psh = false;
        Ok(())
    }

    /// Stages the run of coalesced segments: as it is if it is one segment, else as one GSO
    /// frame.
    fn emit_run(&mut self) -> Result<(), NetError> {
        let Some(segment) = self.run_segment.take() else {
            return Ok(());
        };
        let mut run = core::mem::take(&mut self.run);
        let segments = core::mem::take(&mut self.run_segments);
        let result = if segments > 1 {
            finish_run(&segment, &mut run, self.run_psh);
            let staged = self.stage_frame(&run, Some(self.run_mss));
            if staged.is_ok() {
                self.stats.tx_gso += 1;
                self.stats.tx_gso_segments += u64::from(segments);
            }
            staged
        } else {
            self.stage_frame(&run, None)
        };
        run.clear();
        self.run = run;
        result
    }

    /// Puts `frame` on the ring (several slots if it needs them; a GSO extra-info slot after
    /// the first if `gso` gives the segment size).
    fn stage_frame(&mut self, frame: &[u8], gso: Option<u16>) -> Result<(), NetError> {
        let q = crate::flow::queue_for(frame, self.queues.len());
        let Some(queue) = self.queues.get_mut(q) else {
            return Err(NetError::BackendGone);
        };
        let Some(tx) = queue.tx.as_mut() else {
            return Err(NetError::BackendGone);
        };
        // An offloaded frame leaves with the pseudo-header's sum in its checksum field (a
        // copy: smoltcp's frame is borrowed).
        let mut patched = core::mem::take(&mut self.patched);
        let offload = self.offloads.csum && {
            patched.clear();
            patched.extend_from_slice(frame);
            fill_pseudo_header(&mut patched)
        };
        let frame: &[u8] = if offload { &patched } else { frame };
        let mut flags = if offload {
            NETTXF_CSUM_BLANK | NETTXF_DATA_VALIDATED
        } else {
            0
        };
        if gso.is_some() {
            flags |= NETTXF_EXTRA_INFO;
        }
        let extra = u32::from(gso.is_some());
        let room =
            (queue.tx_ring.free_requests() as usize) >= tx.slots_for(frame.len()) + extra as usize;
        let staged = room && tx.stage(frame, flags, &mut self.requests);
        let len = frame.len();
        self.patched = patched;
        if !staged {
            self.stats.tx_refused += 1;
            return Err(NetError::TxFull);
        }
        // Room was checked: every write succeeds.
        for (i, request) in self.requests.iter().enumerate() {
            let _ = queue.tx_ring.write_request(*request);
            if i == 0
                && let Some(size) = gso
            {
                let info = NetifExtraInfo::gso_tcpv4(size);
                let _ = queue.tx_ring.write_request(info.to_tx_request());
            }
        }
        let slots = self.requests.len() as u32;
        queue.tx_staged += slots + extra;
        queue.tx_extras += extra;
        self.queue_stats(q).tx_frames += 1;
        if slots > 1 {
            self.stats.tx_multi_slot += 1;
        }
        if flags & NETTXF_CSUM_BLANK != 0 {
            self.stats.tx_csum_offloaded += 1;
        }
        self.stats.tx_packets += 1;
        self.stats.tx_bytes += len as u64;
        Ok(())
    }

    /// Publishes the staged tx requests (a run of segments first), notifying the backend if
    /// the ring rules say so.
    pub fn flush(&mut self) -> Result<(), NetError> {
        if let Some(e) = self.dead {
            return Err(e);
        }
        let emitted = self.emit_run();
        for q in 0..self.queues.len() {
            let queue = &mut self.queues[q];
            if queue.tx_staged == 0 {
                continue;
            }
            let staged = u64::from(core::mem::take(&mut queue.tx_staged));
            let notify = queue.tx_ring.push_requests_and_check_notify();
            let port = queue.tx_port;
            self.stats.tx_requests += staged;
            if notify {
                self.stats.tx_notifications += 1;
                self.queue_stats(q).tx_channel_notifications += 1;
                self.platform.events.notify(port)?;
            }
        }
        emitted
    }

    /// The platform reported an event (on some port of the device): counts it and polls.
    pub fn on_event(&mut self) {
        self.stats.notifications_received += 1;
        self.poll();
    }

    /// The platform reported an event on `port`: counts it on its queue and channel (a port
    /// not the device's counts nowhere). The caller polls.
    pub fn on_port_event(&mut self, port: Port) {
        for q in 0..self.queues.len() {
            let (tx, rx) = (self.queues[q].tx_port, self.queues[q].rx_port);
            if port == tx {
                self.stats.notifications_received += 1;
                self.queue_stats(q).tx_channel_events += 1;
            } else if port == rx {
                self.stats.notifications_received += 1;
                self.queue_stats(q).rx_channel_events += 1;
            }
        }
    }

    /// Takes every response waiting on every queue's rings and refills the rx rings.
    pub fn poll(&mut self) {
        for q in 0..self.queues.len() {
            self.poll_tx(q);
            self.poll_rx(q);
        }
    }

    /// The next received frame, polling the rings if none is queued.
    pub fn receive(&mut self) -> Option<Vec<u8>> {
        if self.received.is_empty() {
            self.poll();
        }
        let frame = self.received.pop_front()?;
        self.received_bytes = self.received_bytes.saturating_sub(frame.len());
        Some(frame)
    }

    /// The buffer smoltcp builds a frame in (see [`crate::phy`]).
    pub(crate) fn take_scratch(&mut self) -> Vec<u8> {
        core::mem::take(&mut self.scratch)
    }

    /// Gives the frame buffer back for the next frame.
    pub(crate) fn put_scratch(&mut self, buffer: Vec<u8>) {
        self.scratch = buffer;
    }

    /// Frames received and not yet taken.
    pub fn queued_frames(&self) -> usize {
        self.received.len()
    }

    fn poll_tx(&mut self, q: usize) {
        if self.dead.is_some() {
            return;
        }
        let Some(queue) = self.queues.get_mut(q) else {
            return;
        };
        loop {
            match queue.tx_ring.take_response() {
                Ok(Some(response)) => {
                    let Some(tx) = queue.tx.as_mut() else { return };
                    // The answer to a GSO extra-info slot (its id means nothing).
                    if response.status == NETIF_RSP_NULL && queue.tx_extras > 0 {
                        queue.tx_extras -= 1;
                        continue;
                    }
                    match tx.complete(&response) {
                        Ok(TxStatus::Okay) => {}
                        Ok(TxStatus::Failed(_)) => self.stats.tx_errors += 1,
                        Err(_) => self.stats.bad_responses += 1,
                    }
                }
                Ok(None) => match queue.tx_ring.final_check_for_responses() {
                    Ok(true) => {}
                    Ok(false) => return,
                    Err(e) => return self.corrupt(e),
                },
                Err(e) => return self.corrupt(e),
            }
        }
    }

    fn poll_rx(&mut self, q: usize) {
        if self.dead.is_some() || q >= self.queues.len() {
            return;
        }
        // Bounded: responses stay in the ring while the stack has not taken enough frames
        // or bytes (netback then waits, as for a full ring): never more than the rx
        // buffers of every queue hold, however large the frames.
        let limit: usize = self
            .queues
            .iter()
            .map(|q| q.rx.as_ref().map_or(0, RxQueue::buffers))
            .sum();
        let byte_limit = limit * crate::config::PAGE;
        while self.received.len() < limit && self.received_bytes < byte_limit {
            let ring = &mut self.queues[q].rx_ring;
            let index = ring.rsp_cons();
            match ring.take_response() {
                Ok(Some(response)) => self.take_rx(q, index, &response),
                Ok(None) => match ring.final_check_for_responses() {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(e) => return self.corrupt(e),
                },
                Err(e) => return self.corrupt(e),
            }
        }
        if self.refill_rx(q) > 0
            && self.queues[q].rx_ring.push_requests_and_check_notify()
            && let Err(e) = self.notify_rx(q)
        {
            self.end(e);
        }
    }

    /// Notifies queue `q`'s rx channel of posted buffers, counting it.
    fn notify_rx(&mut self, q: usize) -> Result<(), NetError> {
        let Some(queue) = self.queues.get(q) else {
            return Ok(());
        };
        let (port, split) = (queue.rx_port, self.split);
        self.stats.rx_notifications += 1;
        let stats = self.queue_stats(q);
        if split {
            stats.rx_channel_notifications += 1;
        } else {
            stats.tx_channel_notifications += 1;
        }
        self.platform.events.notify(port)?;
        Ok(())
    }

    fn take_rx(&mut self, q: usize, index: u32, response: &NetifRxResponse) {
        let Some(rx) = self.queues.get_mut(q).and_then(|q| q.rx.as_mut()) else {
            return;
        };
        let taken = rx.take(index, response);
        if taken.bad.is_some() {
            self.stats.bad_responses += 1;
        }
        match taken.done {
            None => {}
            Some(Err(RxDrop::Bad(_) | RxDrop::Status(_) | RxDrop::Gso | RxDrop::Runt)) => {
                self.stats.rx_dropped += 1;
            }
            Some(Ok(mut packet)) => {
                let tcp = is_tcp(&packet.data);
                if self.offloads.csum && tcp && (packet.csum_blank || packet.data_validated) {
                    // smoltcp checks no TCP checksum: dom0 made or checked this one. Flags on
                    // a frame too short to hold the headers they speak of drop it.
                    if !offloadable(&packet.data) {
                        self.stats.rx_csum_bad += 1;
                        self.stats.rx_dropped += 1;
                        return;
                    }
                    self.stats.rx_csum_trusted += 1;
                } else if packet.csum_blank {
                    if complete_checksum(&mut packet.data).is_err() {
                        self.stats.rx_dropped += 1;
                        return;
                    }
                    self.stats.rx_csum_completed += 1;
                } else if self.offloads.csum && tcp {
                    self.stats.rx_csum_verified += 1;
                    if verify_tcp(&packet.data) != Ok(true) {
                        self.stats.rx_csum_bad += 1;
                        self.stats.rx_dropped += 1;
                        return;
                    }
                }
                if packet.data_slots > 1 {
                    self.stats.rx_multi_slot += 1;
                }
                if packet.gso {
                    self.stats.rx_gso += 1;
                }
                let len = packet.data.len();
                self.stats.rx_largest_frame = self.stats.rx_largest_frame.max(len as u64);
                self.stats.rx_packets += 1;
                self.stats.rx_bytes += len as u64;
                self.queue_stats(q).rx_frames += 1;
                self.received_bytes += len;
                self.received.push_back(packet.data);
            }
        }
    }

    fn refill_rx(&mut self, q: usize) -> u32 {
        let Some(queue) = self.queues.get_mut(q) else {
            return 0;
        };
        let posted = queue
            .rx
            .as_mut()
            .map_or(0, |rx| rx.refill(&mut queue.rx_ring));
        self.stats.rx_requests += u64::from(posted);
        posted
    }

    fn corrupt(&mut self, _: RingError) {
        self.stats.bad_responses += 1;
        self.end(NetError::RingCorrupt);
    }

    /// Stops the device for good: later calls fail with `error`. Grants stay until
    /// [`Netfront::close`] (the backend may still be using the pages).
    fn end(&mut self, error: NetError) {
        if self.dead.is_none() {
            self.dead = Some(error);
        }
    }

    /// Ends the device if the backend's state says it is closing or gone; returns why it has
    /// ended, if it has. The event loop calls this when the xenstore watch fires (or now and
    /// then).
    pub fn check_backend<T: XsTransport>(
        &mut self,
        xs: &mut XsClient<T>,
        deadline: Instant,
    ) -> Option<NetError> {
        if self.dead.is_none()
            && (xs.poll().is_err() || self.frontend.take_backend_events(xs))
            && !matches!(
                self.frontend.backend_state(xs, deadline),
                Ok(XenbusState::Connected)
            )
        {
            self.end(NetError::BackendGone);
        }
        self.dead
    }

    /// Disconnects: Closing, waits for the backend to close (or vanish), Closed; then ends
    /// every grant the backend no longer holds and gives the pages back. Pages still held
    /// stay granted (counted in [`NetStats::grants_in_use`]), never reused.
    pub fn close<T: XsTransport>(
        &mut self,
        xs: &mut XsClient<T>,
        deadline: Instant,
    ) -> Result<(), NetError> {
        self.end(NetError::BackendGone);
        let result = self.close_states(xs, deadline);
        self.release();
        result
    }

    fn close_states<T: XsTransport>(
        &mut self,
        xs: &mut XsClient<T>,
        deadline: Instant,
    ) -> Result<(), NetError> {
        self.frontend
            .set_state(xs, XenbusState::Closing, deadline)?;
        let closed = self.frontend.wait_backend_state(
            xs,
            |s| matches!(s, XenbusState::Closing | XenbusState::Closed),
            deadline,
        );
        self.frontend.set_state(xs, XenbusState::Closed, deadline)?;
        // The backend-state watch goes too; failing to remove it leaves only stray events.
        let _ = self.frontend.clone().close(xs, deadline);
        match closed {
            Ok(_) | Err(XenbusError::BackendGone) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Ends the grants of everything the device holds (the backend must be done with it).
    fn release(&mut self) {
        if self.released {
            return;
        }
        self.released = true;
        self.end_grants();
        self.received.clear();
        self.received_bytes = 0;
        for port in self.ports() {
            self.platform.events.close(port);
        }
    }

    /// Ends the grants of the rings, the buffers and the quarantine and gives their pages
    /// back; a grant that will not end (still mapped) stays in quarantine. Shared by
    /// [`Self::release`] and resume's `abandon`.
    pub(crate) fn end_grants(&mut self) {
        let mut granted: Vec<GrantedPage> = core::mem::take(&mut self.ring_pages);
        for queue in &mut self.queues {
            if let Some(tx) = queue.tx.take() {
                granted.extend(tx.into_pages());
            }
            if let Some(rx) = queue.rx.take() {
                granted.extend(rx.into_buffers());
            }
        }
        granted.append(&mut self.quarantine);
        for page in granted {
            match self.platform.grants.end(page) {
                Ok(page) => self.platform.pages.release(page),
                Err((page, _)) => self.quarantine.push(page),
            }
        }
    }
}
