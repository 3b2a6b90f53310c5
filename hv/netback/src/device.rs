//! One vif back end: the xenbus states and keys as Linux's netback writes them, the tx ring
//! (frames from the front end) and the rx ring (frames to it, rx-copy).
//!
//! [`Netback::probe`] attaches to the backend directory the toolstack wrote, writes the
//! feature keys (`netback_probe`: only those that work here) and says InitWait.
//! [`Netback::poll`] follows the front end's state as netback's `frontend_changed` does: on
//! Connected it reads `multi-queue-num-queues` (absent: 1; 0 or above [`MAX_QUEUES`]
//! refused), our `mac`, the front end's flags (`request-rx-copy` must be 1; `feature-sg`),
//! then per queue (in the front end's directory for one, in `queue-N/` for several)
//! `tx-ring-ref`, `rx-ring-ref` and `event-channel-tx` with `event-channel-rx` (split event
//! channels) or else `event-channel`; maps every queue's rings, binds its ports and says
//! Connected (`connect`, `connect_data_rings`); on
//! Closing it lets go of the rings and says Closing; on Closed it says Closed and, when the
//! toolstack set `online` to 0, removes the device; when the front end vanishes the device
//! is removed. Then it serves the tx ring (`tx`). Frames to the front end go through
//! [`Netback::deliver`] (copied, or queued while too few buffers are posted),
//! [`Netback::drain_rx`] and [`Netback::flush_rx`] ([`rx`]).
//!
//! A malformed tx request disables the vif as `xenvif_fatal_tx_err` does (carrier off: no
//! more frames either way, the rings stay mapped until the front end disconnects); the
//! reason is kept for the caller to log ([`Netback::fatal_error`]).

pub mod rx;
mod tx;

pub use rx::{Delivered, RX_DRAIN_TIMEOUT_NS, RX_QUEUE_BYTES};

use abi::io::netif::{NetifRxRequest, NetifRxResponse, NetifTxRequest, NetifTxResponse};
use abi::io::xenbus::XenbusState;
use abi::ring::{BackRing, RingError, SharedRing};
use alloc::format;
use alloc::string::String;
use core::fmt;
use xenbus::backend::{Backend, GrantMapper, InterdomainEvents, MappedPage};
use xenbus::frontend::XenbusError;
use xenbus::xenstore::payload::parse_decimal;
use xenbus::xenstore::{TxId, XsClient, XsError, XsTransport};
use xenbus::{GrantRef, Instant, Port};

/// Attempts at the transaction that publishes the feature keys.
const TRANSACTION_ATTEMPTS: u32 = 8;
/// Linux's errnos in `error` nodes.
const EINVAL: i32 = 22;
const ENOENT: i32 = 2;
const EOPNOTSUPP: i32 = 95;
const EFAULT: i32 = 14;

/// The most queues a front end may ask for (`multi-queue-max-queues`). Linux's netback
/// offers one per dom0 vCPU (`xenvif_max_queues`), for a thread per queue; hv serves every
/// queue on its one CPU, so more queues buy no parallelism here. Two: what the stock-Xen
/// harness gives dom0's netback (`xen_netback.max_queues=2`), so that the same guest
/// negotiates the same on both; each queue binds two of the domain's sixteen domain-0 ports
/// (split channels), so more would crowd the disks'.
pub const MAX_QUEUES: u32 = 2;

/// The keys `netback_probe` writes, with the values that are true here: scatter-gather on
/// tx (a frame in several slots) works; GSO on tx over IPv4 and IPv6 works (cut into
/// segments before the packet leaves, [`crate::gso`]); checksum offload over IPv4 and IPv6
/// works (completed before the frame leaves, [`crate::checksum`]); rx-copy only; no
/// multicast control; split event channels; up to [`MAX_QUEUES`] queues; no control ring.
pub const FEATURE_KEYS: [(&str, &str); 10] = [
    ("feature-sg", "1"),
    ("feature-gso-tcpv4", "1"),
    ("feature-gso-tcpv6", "1"),
    ("feature-ipv6-csum-offload", "1"),
    ("feature-rx-copy", "1"),
    ("feature-rx-flip", "0"),
    ("feature-multicast-control", "0"),
    ("feature-dynamic-multicast-control", "0"),
    ("feature-split-event-channels", "1"),
    ("multi-queue-max-queues", "2"),
];

const _: () = assert!(MAX_QUEUES == 2, "multi-queue-max-queues in FEATURE_KEYS");

/// Errors the caller sees (logged; the device itself never panics).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetbackError {
    /// A xenstore operation failed.
    Xenbus(XenbusError),
}

impl From<XenbusError> for NetbackError {
    fn from(e: XenbusError) -> Self {
        Self::Xenbus(e)
    }
}

impl From<XsError> for NetbackError {
    fn from(e: XsError) -> Self {
        Self::Xenbus(e.into())
    }
}

/// Why [`Netback::deliver`] dropped a frame (each is counted in [`NetbackStats`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliverError {
    /// The vif is not connected (or was disabled).
    NotConnected,
    /// The front end has posted too few rx buffers for the frame and the vif's queue of
    /// frames waiting for buffers is full ([`rx::RX_QUEUE_BYTES`]): dropped.
    NoBuffers,
    /// The frame is shorter than an Ethernet header, or longer than the front end accepts
    /// (1518 bytes without its `feature-sg`, 65535 with it).
    BadLength,
    /// A buffer's grant did not map: the front end gets the slot answered
    /// `NETIF_RSP_ERROR` (as Linux answers a failed grant copy) and drops the frame.
    BadBuffer,
}

/// What disabled a vif: a front end's request no honest front end sends (Linux's
/// `xenvif_fatal_tx_err` cases, with its messages), or an impossible producer index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FatalError {
    /// The front end's producer index is more than a ring ahead of what we consumed.
    ImpossibleProducer {
        /// `"tx"` or `"rx"`.
        ring: &'static str,
        /// The producer index it published.
        prod: u32,
        /// Our consumer index.
        cons: u32,
    },
    /// A request flagged `NETTXF_extra_info` (or an extra flagged more) is the last one
    /// published.
    MissingExtra,
    /// An extra-info slot of type 0 or beyond `XEN_NETIF_EXTRA_TYPE_MAX`.
    BadExtraType(u8),
    /// A `more_data` chain goes on beyond the requests published.
    ChainBeyondProducer {
        /// Requests that were published after the first.
        published: u32,
    },
    /// A chain of more than `FATAL_SKB_SLOTS` (20) slots after the first.
    TooManySlots {
        /// Slots counted after the first when it was refused.
        slots: u32,
    },
    /// A request whose `offset + size` crosses the end of its page.
    CrossPage {
        /// The request's offset.
        offset: u16,
        /// Its size (for a packet's first slot: what remains of the packet's size once the
        /// following slots are taken off).
        size: u16,
    },
    /// A GSO extra with a zero segment size.
    GsoSizeZero,
    /// A GSO extra of a type that is neither TCPv4 nor TCPv6.
    BadGsoType(u8),
}

impl fmt::Display for FatalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::ImpossibleProducer { ring, prod, cons } => write!(
                f,
                "Impossible number of {ring} requests. req_prod {prod}, req_cons {cons}"
            ),
            Self::MissingExtra => f.write_str("Missing extra info"),
            Self::BadExtraType(t) => write!(f, "Invalid extra type: {t}"),
            Self::ChainBeyondProducer { published } => {
                write!(f, "Asked for {published} slots but exceeds this limit")
            }
            Self::TooManySlots { slots } => write!(
                f,
                "Malicious frontend using {slots} slots, threshold {}",
                tx::FATAL_SKB_SLOTS
            ),
            Self::CrossPage { offset, size } => write!(
                f,
                "Cross page boundary, txp->offset: {offset}, size: {size}"
            ),
            Self::GsoSizeZero => f.write_str("GSO size must not be zero."),
            Self::BadGsoType(t) => write!(f, "Bad GSO type {t}."),
        }
    }
}

/// Per-vif counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetbackStats {
    /// Frames taken from the tx ring and handed out.
    pub tx_frames: u64,
    /// Their bytes.
    pub tx_bytes: u64,
    /// Tx ring slots consumed (requests and extra-info slots).
    pub tx_slots: u64,
    /// Frames whose checksum was completed (`NETTXF_csum_blank`).
    pub tx_csum_completed: u64,
    /// GSO packets cut into segments (each segment counts in `tx_frames`).
    pub tx_gso: u64,
    /// Frames refused with `NETIF_RSP_ERROR` without disabling the vif (Linux's
    /// `xenvif_tx_err` and failed grant copies: 19 to 21 slots, a slot larger than what
    /// remains of the packet, a first slot shorter than an Ethernet header, a grant that
    /// did not map).
    pub tx_errors: u64,
    /// Frames answered `NETIF_RSP_OKAY` but not handed out: `csum_blank` on a frame whose
    /// checksum cannot be completed, a GSO packet that cannot be cut into TCP segments
    /// (Linux drops these after `skb_checksum_setup` fails).
    pub tx_dropped: u64,
    /// Times the vif was disabled ([`FatalError`]).
    pub fatal_errors: u64,
    /// Notifications sent for tx responses.
    pub tx_notifications: u64,
    /// Frames copied to the front end.
    pub rx_frames: u64,
    /// Their bytes.
    pub rx_bytes: u64,
    /// Rx ring slots used.
    pub rx_slots: u64,
    /// Of the frames copied, GSO packets ([`Netback::deliver_gso`]).
    pub rx_gso: u64,
    /// Frames that waited for rx buffers in the vif's queue ([`rx::RX_QUEUE_BYTES`]).
    pub rx_queued: u64,
    /// Frames dropped: too few rx buffers posted and the queue full, or waited longer than
    /// [`rx::RX_DRAIN_TIMEOUT_NS`], or still waiting when the rings went away.
    pub rx_dropped: u64,
    /// Of those, the ones that waited too long.
    pub rx_expired: u64,
    /// Frames dropped for another reason (not connected or disabled, bad length, a buffer
    /// grant that did not map).
    pub rx_errors: u64,
    /// Notifications sent for rx responses.
    pub rx_notifications: u64,
    /// Connections made.
    pub connects: u64,
    /// Queues of the current connection (0 while not connected).
    pub queues: u64,
    /// Connections whose front end used split event channels.
    pub split_connects: u64,
    /// Frames taken from each queue's tx ring.
    pub tx_frames_per_queue: [u64; MAX_QUEUES as usize],
    /// Frames copied to each queue's rx ring.
    pub rx_frames_per_queue: [u64; MAX_QUEUES as usize],
}

/// One queue's rings and channels.
#[derive(Debug)]
struct Queue {
    tx: BackRing<NetifTxRequest, NetifTxResponse>,
    rx: BackRing<NetifRxRequest, NetifRxResponse>,
    tx_page: MappedPage,
    rx_page: MappedPage,
    /// Our tx channel (the only one without split channels).
    tx_port: Port,
    /// Our rx channel (`tx_port` without split channels).
    rx_port: Port,
    /// Rx responses written and not yet pushed.
    rx_unpushed: bool,
    /// Frames waiting for this queue's rx buffers.
    waiting: rx::RxQueue,
}

/// The connected queues.
#[derive(Debug)]
struct Connection {
    /// One or more ([`MAX_QUEUES`] at most).
    queues: alloc::vec::Vec<Queue>,
    /// The front end said `feature-sg`: a frame may take several rx slots.
    can_sg: bool,
    /// It takes GSO packets ([`crate::gro`]): `feature-gso-tcpv4` with `feature-sg`, and no
    /// `feature-no-csum-offload` (Linux's vif drops TSO without SG or checksum offload).
    rx_gso: bool,
}

/// A queue's keys as the front end wrote them.
struct QueueKeys {
    tx_ref: u32,
    rx_ref: u32,
    tx_port: Port,
    /// `None` without split channels.
    rx_port: Option<Port>,
}

/// One vif back end.
#[derive(Debug)]
pub struct Netback<M: GrantMapper, E: InterdomainEvents> {
    xen: Backend,
    grants: M,
    events: E,
    mac: Option<[u8; 6]>,
    connection: Option<Connection>,
    fatal: Option<FatalError>,
    removed: bool,
    stats: NetbackStats,
}

/// Parses `xx:xx:xx:xx:xx:xx` (Linux's `xen_net_read_mac`).
fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = text.split(':');
    for byte in &mut mac {
        let part = parts.next()?;
        if part.len() != 2 {
            return None;
        }
        *byte = u8::from_str_radix(part, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

impl<M: GrantMapper, E: InterdomainEvents> Netback<M, E> {
    /// Attaches to backend directory `path` (absolute, e.g. `/local/domain/0/backend/vif/1/0`;
    /// `frontend`, `frontend-id`, `mac`, `handle` written by the toolstack), writes the
    /// feature keys Linux netback writes ([`FEATURE_KEYS`]: only those that work here), and
    /// says InitWait. If the keys cannot be written the device fails as Linux's does (an
    /// `error` node and Closing).
    pub fn probe<T: XsTransport>(
        xs: &mut XsClient<T>,
        path: String,
        grants: M,
        events: E,
        deadline: Instant,
    ) -> Result<Self, NetbackError> {
        let xen = Backend::attach(xs, path, deadline)?;
        let mut back = Self {
            xen,
            grants,
            events,
            mac: None,
            connection: None,
            fatal: None,
            removed: false,
            stats: NetbackStats::default(),
        };
        let xen = &back.xen;
        let written = xs.transaction(TRANSACTION_ATTEMPTS, deadline, |xs, tx| {
            for (key, value) in FEATURE_KEYS {
                xs.write(tx, &xen.node(key), value, deadline)?;
            }
            Ok(())
        });
        if written.is_err() {
            back.xen
                .fatal(xs, -EINVAL, "writing the feature keys", deadline);
            return Ok(back);
        }
        back.xen.set_state(xs, XenbusState::InitWait, deadline)?;
        Ok(back)
    }

    /// One round: follow the front end's state if its watch fired (connect: read
    /// `tx-ring-ref`, `rx-ring-ref`, `event-channel`, `request-rx-copy`, `feature-sg`; map the
    /// rings; bind; Connected), then consume at most one ring's worth of tx requests. Each
    /// complete frame the guest sent (its checksum completed if the request had
    /// `NETTXF_csum_blank`) is handed to `out`. Returns whether tx requests may be left
    /// (call again soon).
    pub fn poll<T: XsTransport>(
        &mut self,
        xs: &mut XsClient<T>,
        out: &mut dyn FnMut(&[u8]),
        deadline: Instant,
    ) -> Result<bool, NetbackError> {
        if self.removed {
            return Ok(false);
        }
        // A broken connection shows in the read below; polling only moves queued bytes.
        let _ = xs.poll();
        if self.xen.take_frontend_events(xs) {
            let state = self.xen.frontend_state(xs, deadline)?;
            self.frontend_changed(xs, state, deadline)?;
        }
        Ok(self.serve_tx(out))
    }

    /// Netback's `frontend_changed`.
    fn frontend_changed<T: XsTransport>(
        &mut self,
        xs: &mut XsClient<T>,
        state: XenbusState,
        deadline: Instant,
    ) -> Result<(), NetbackError> {
        use XenbusState as S;
        let ours = self.xen.state();
        match state {
            S::Initialising if ours == S::Closed => {
                self.xen.set_state(xs, S::InitWait, deadline)?;
            }
            S::Initialising | S::Initialised => {}
            S::Connected if ours == S::Connected => {}
            S::Connected => {
                self.disconnect();
                if self.connect(xs, deadline) {
                    self.xen.set_state(xs, S::Connected, deadline)?;
                }
            }
            S::Closing => {
                self.disconnect();
                self.xen.set_state(xs, S::Closing, deadline)?;
            }
            S::Closed => {
                self.disconnect();
                self.xen.set_state(xs, S::Closed, deadline)?;
                let online = xs.read_optional(TxId::NONE, &self.xen.node("online"), deadline)?;
                if online.as_deref() != Some("1") {
                    self.remove(xs, deadline);
                }
            }
            S::Unknown => {
                self.disconnect();
                let _ = self.xen.set_state(xs, S::Closed, deadline);
                self.remove(xs, deadline);
            }
            S::InitWait | S::Reconfiguring | S::Reconfigured => {
                let message = format!("saw state {} at frontend", state.as_u32());
                self.xen.fatal(xs, -EINVAL, &message, deadline);
            }
        }
        Ok(())
    }

    /// The device goes away (`device_unregister`): rings released, watch removed.
    fn remove<T: XsTransport>(&mut self, xs: &mut XsClient<T>, deadline: Instant) {
        self.disconnect();
        self.removed = true;
        let _ = self.xen.clone().close(xs, deadline);
    }

    /// An unsigned decimal key of the front end's directory: `Ok(None)` if absent,
    /// `Err(())` if it does not parse or cannot be read.
    fn frontend_u32<T: XsTransport>(
        &self,
        xs: &mut XsClient<T>,
        key: &str,
        deadline: Instant,
    ) -> Result<Option<u32>, ()> {
        match xs.read_optional(TxId::NONE, &self.xen.frontend_node(key), deadline) {
            Ok(None) => Ok(None),
            Ok(Some(text)) => parse_decimal(text.trim()).map(Some).ok_or(()),
            Err(_) => Err(()),
        }
    }

    /// Netback's `connect`: reads the front end's keys, maps and binds every queue's rings;
    /// false (after a fatal error, which says Closing) if it cannot.
    fn connect<T: XsTransport>(&mut self, xs: &mut XsClient<T>, deadline: Instant) -> bool {
        let queues = match self.frontend_u32(xs, "multi-queue-num-queues", deadline) {
            Ok(None) => 1,
            Ok(Some(n)) if (1..=MAX_QUEUES).contains(&n) => n,
            Ok(Some(0)) => {
                self.xen
                    .fatal(xs, -EINVAL, "guest requested 0 queues.", deadline);
                return false;
            }
            Ok(Some(n)) => {
                let message =
                    format!("guest requested {n} queues, exceeding the maximum of {MAX_QUEUES}.");
                self.xen.fatal(xs, -EINVAL, &message, deadline);
                return false;
            }
            Err(()) => {
                let message = format!("reading {}/multi-queue-num-queues", self.xen.frontend);
                self.xen.fatal(xs, -EINVAL, &message, deadline);
                return false;
            }
        };
        let mac = xs
            .read_optional(TxId::NONE, &self.xen.node("mac"), deadline)
            .ok()
            .flatten();
        match mac.as_deref().map(str::trim).and_then(parse_mac) {
            Some(mac) => self.mac = Some(mac),
            None => {
                let (errno, message) = match mac {
                    None => (ENOENT, format!("parsing {}/mac", self.xen.path)),
                    Some(_) => (EINVAL, format!("parsing {}/mac", self.xen.path)),
                };
                self.xen.fatal(xs, -errno, &message, deadline);
                return false;
            }
        }
        // `read_xenbus_vif_flags`: rx-copy is the only receive mode.
        match self.frontend_u32(xs, "request-rx-copy", deadline) {
            Ok(Some(v)) if v != 0 => {}
            Ok(_) => {
                let message = format!("{}/request-rx-copy: rx-flip unsupported", self.xen.frontend);
                self.xen.fatal(xs, -EOPNOTSUPP, &message, deadline);
                return false;
            }
            Err(()) => {
                let message = format!("reading {}/request-rx-copy", self.xen.frontend);
                self.xen.fatal(xs, -EINVAL, &message, deadline);
                return false;
            }
        }
        let can_sg = matches!(self.frontend_u32(xs, "feature-sg", deadline), Ok(Some(v)) if v != 0);
        let gso =
            matches!(self.frontend_u32(xs, "feature-gso-tcpv4", deadline), Ok(Some(v)) if v != 0);
        let no_csum = matches!(
            self.frontend_u32(xs, "feature-no-csum-offload", deadline),
            Ok(Some(v)) if v != 0
        );
        let mut connection = Connection {
            queues: alloc::vec::Vec::with_capacity(queues as usize),
            can_sg,
            rx_gso: can_sg && gso && !no_csum,
        };
        for q in 0..queues {
            let dir = if queues == 1 {
                String::new()
            } else {
                format!("queue-{q}/")
            };
            let queue = self
                .queue_keys(xs, &dir, deadline)
                .and_then(|keys| self.connect_queue(&keys));
            match queue {
                Ok(queue) => connection.queues.push(queue),
                Err((errno, message)) => {
                    self.release(connection);
                    self.xen.fatal(xs, -errno, &message, deadline);
                    return false;
                }
            }
        }
        let split = connection.queues.iter().any(|q| q.rx_port != q.tx_port);
        self.stats.queues = u64::from(queues);
        self.stats.split_connects += u64::from(split);
        self.connection = Some(connection);
        self.fatal = None;
        self.stats.connects += 1;
        true
    }

    /// `connect_data_rings`' reads for one queue (`dir`: empty, or `queue-N/`): the ring
    /// references, then `event-channel-tx` with `event-channel-rx`, else `event-channel`.
    /// `Err` is the errno and message of the fatal error.
    fn queue_keys<T: XsTransport>(
        &self,
        xs: &mut XsClient<T>,
        dir: &str,
        deadline: Instant,
    ) -> Result<QueueKeys, (i32, String)> {
        let xspath = format!("{}/{}", self.xen.frontend, dir.trim_end_matches('/'));
        let xspath = xspath.trim_end_matches('/');
        let tx_ref = self.frontend_u32(xs, &format!("{dir}tx-ring-ref"), deadline);
        let rx_ref = self.frontend_u32(xs, &format!("{dir}rx-ring-ref"), deadline);
        let (Ok(Some(tx_ref)), Ok(Some(rx_ref))) = (tx_ref, rx_ref) else {
            return Err((ENOENT, format!("reading {xspath}/ring-ref")));
        };
        let port = |back: &Self, xs: &mut XsClient<T>, key: &str| match back.frontend_u32(
            xs,
            &format!("{dir}{key}"),
            deadline,
        ) {
            Ok(Some(p)) => Port::try_new(p).ok(),
            _ => None,
        };
        let split = (
            port(self, xs, "event-channel-tx"),
            port(self, xs, "event-channel-rx"),
        );
        let (tx_port, rx_port) = match split {
            (Some(tx), Some(rx)) => (Some(tx), Some(rx)),
            _ => (port(self, xs, "event-channel"), None),
        };
        let Some(tx_port) = tx_port else {
            return Err((ENOENT, format!("reading {xspath}/event-channel(-tx/rx)")));
        };
        Ok(QueueKeys {
            tx_ref,
            rx_ref,
            tx_port,
            rx_port,
        })
    }

    /// `xenvif_connect_data`: maps a queue's rings and binds its channels.
    fn connect_queue(&mut self, keys: &QueueKeys) -> Result<Queue, (i32, String)> {
        let (tx_ref, rx_ref) = (keys.tx_ref, keys.rx_ref);
        let remote_rx = keys.rx_port.unwrap_or(keys.tx_port);
        let failed = |errno: i32| {
            let message = format!(
                "mapping shared-frames {tx_ref}/{rx_ref} port tx {} rx {}",
                keys.tx_port.get(),
                remote_rx.get()
            );
            (errno, message)
        };
        let Some(tx_page) = self.map_ring(tx_ref) else {
            return Err(failed(EFAULT));
        };
        let Some(rx_page) = self.map_ring(rx_ref) else {
            self.grants.unmap(tx_page);
            return Err(failed(EFAULT));
        };
        let rings = Self::ring(&tx_page).and_then(|tx| Ok((tx, Self::ring(&rx_page)?)));
        let Ok((tx, rx)) = rings else {
            self.grants.unmap(tx_page);
            self.grants.unmap(rx_page);
            return Err(failed(EINVAL));
        };
        let frontend = self.xen.frontend_id;
        let tx_port = match self.events.bind_interdomain(frontend, keys.tx_port) {
            Ok(port) => port,
            Err(e) => {
                self.grants.unmap(tx_page);
                self.grants.unmap(rx_page);
                return Err(failed(e.errno.saturating_abs()));
            }
        };
        let rx_port = match keys.rx_port {
            None => tx_port,
            Some(remote) => match self.events.bind_interdomain(frontend, remote) {
                Ok(port) => port,
                Err(e) => {
                    self.events.unbind(tx_port);
                    self.grants.unmap(tx_page);
                    self.grants.unmap(rx_page);
                    return Err(failed(e.errno.saturating_abs()));
                }
            },
        };
        Ok(Queue {
            tx,
            rx,
            tx_page,
            rx_page,
            tx_port,
            rx_port,
            rx_unpushed: false,
            waiting: rx::RxQueue::default(),
        })
    }

    /// Maps a ring page writable.
    fn map_ring(&mut self, gref: u32) -> Option<MappedPage> {
        let gref = GrantRef::try_new(gref).ok()?;
        self.grants.map(self.xen.frontend_id, gref, true).ok()
    }

    /// A back ring on a mapped page.
    fn ring<Req: abi::ring::RingEntry, Rsp: abi::ring::RingEntry>(
        page: &MappedPage,
    ) -> Result<BackRing<Req, Rsp>, RingError> {
        page.ring_memory()
            .ok_or(RingError::Null)
            .and_then(SharedRing::from_page)
            .map(BackRing::init)
    }

    /// Lets go of the rings: port unbound, pages unmapped (`xenvif_disconnect_data`).
    /// Frames are copied synchronously, so no grant is in use.
    fn disconnect(&mut self) {
        if let Some(connection) = self.connection.take() {
            self.release(connection);
        }
        self.stats.queues = 0;
    }

    /// Unbinds and unmaps every queue of `connection`; the frames waiting for its rx buffers
    /// are dropped and counted (Linux purges its queues: they are not delivered to new
    /// rings).
    fn release(&mut self, connection: Connection) {
        for queue in connection.queues {
            // The ring handles go with the queue, before their pages are unmapped.
            let Queue {
                tx_page,
                rx_page,
                tx_port,
                rx_port,
                mut waiting,
                ..
            } = queue;
            self.stats.rx_dropped += waiting.clear() as u64;
            self.events.unbind(tx_port);
            if rx_port != tx_port {
                self.events.unbind(rx_port);
            }
            self.grants.unmap(tx_page);
            self.grants.unmap(rx_page);
        }
    }

    /// `xenvif_fatal_tx_err`: the vif is disabled until the front end reconnects.
    fn disable(&mut self, error: FatalError) {
        if self.fatal.is_none() {
            self.stats.fatal_errors += 1;
        }
        self.fatal = Some(error);
    }

    /// The xenbus side (paths, our state).
    pub fn xenbus(&self) -> &Backend {
        &self.xen
    }

    /// The grant mapper.
    pub fn grants(&self) -> &M {
        &self.grants
    }

    /// The event channels.
    pub fn events(&self) -> &E {
        &self.events
    }

    /// Counters.
    pub fn stats(&self) -> NetbackStats {
        self.stats
    }

    /// Whether the front end takes GSO packets ([`Netback::deliver_gso`], [`crate::gro`]).
    pub fn rx_gso(&self) -> bool {
        self.connection.as_ref().is_some_and(|c| c.rx_gso)
    }

    /// Our local port while connected: queue 0's tx (or only) channel.
    pub fn port(&self) -> Option<Port> {
        self.connection
            .as_ref()
            .and_then(|c| c.queues.first())
            .map(|q| q.tx_port)
    }

    /// Our local ports while connected, per queue: (tx, rx), the same port twice without
    /// split channels.
    pub fn ports(&self) -> alloc::vec::Vec<(Port, Port)> {
        self.connection
            .as_ref()
            .map_or_else(alloc::vec::Vec::new, |c| {
                c.queues.iter().map(|q| (q.tx_port, q.rx_port)).collect()
            })
    }

    /// Whether the rings are connected (a disabled vif stays connected until the front end
    /// disconnects).
    pub fn is_connected(&self) -> bool {
        self.connection.is_some()
    }

    /// Whether a malformed request disabled the vif (Linux's `xenvif_fatal_tx_err`, carrier
    /// off): [`Netback::fatal_error`] says why.
    pub fn is_disabled(&self) -> bool {
        self.fatal.is_some()
    }

    /// What disabled the vif (for the caller's log), until the front end reconnects.
    pub fn fatal_error(&self) -> Option<FatalError> {
        self.fatal
    }

    /// The vif's MAC (our `mac` key), once connected.
    pub fn mac(&self) -> Option<[u8; 6]> {
        self.mac
    }

    /// Whether the front end went away and the device was removed.
    pub fn is_removed(&self) -> bool {
        self.removed
    }
}
