//! One vif back end: the xenbus states and keys as Linux's netback writes them, the tx ring
//! (frames from the front end) and the rx ring (frames to it, rx-copy).

use abi::io::netif::{NetifRxRequest, NetifRxResponse, NetifTxRequest, NetifTxResponse};
use abi::io::xenbus::XenbusState;
use abi::ring::BackRing;
use alloc::string::String;
use xenbus::backend::{Backend, GrantMapper, InterdomainEvents, MappedPage};
use xenbus::frontend::XenbusError;
use xenbus::xenstore::{XsClient, XsError, XsTransport};
use xenbus::{Instant, Port};

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
    /// The front end has posted too few rx buffers for the frame.
    NoBuffers,
    /// The frame is shorter than an Ethernet header, or longer than the front end accepts
    /// (1518 bytes without its `feature-sg`, 65535 with it).
    BadLength,
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
    /// Frames refused with `NETIF_RSP_ERROR` without disabling the vif (Linux's
    /// `xenvif_tx_err`: too many slots, a size smaller than the following slots, a runt, a
    /// grant that did not map, a checksum that could not be completed, GSO).
    pub tx_errors: u64,
    /// Times the vif was disabled for a malformed request (`xenvif_fatal_tx_err`).
    pub fatal_errors: u64,
    /// Notifications sent for tx responses.
    pub tx_notifications: u64,
    /// Frames copied to the front end.
    pub rx_frames: u64,
    /// Their bytes.
    pub rx_bytes: u64,
    /// Rx ring slots used.
    pub rx_slots: u64,
    /// Frames dropped: too few rx buffers posted.
    pub rx_dropped: u64,
    /// Frames dropped for another reason (not connected, bad length, a buffer grant that did
    /// not map).
    pub rx_errors: u64,
    /// Notifications sent for rx responses.
    pub rx_notifications: u64,
    /// Connections made.
    pub connects: u64,
}

/// The connected rings.
#[derive(Debug)]
#[allow(dead_code, reason = "skeleton: filled in next")]
struct Connection {
    tx: BackRing<NetifTxRequest, NetifTxResponse>,
    rx: BackRing<NetifRxRequest, NetifRxResponse>,
    tx_page: MappedPage,
    rx_page: MappedPage,
    port: Port,
}

/// One vif back end.
#[derive(Debug)]
#[allow(dead_code, reason = "skeleton: filled in next")]
pub struct Netback<M: GrantMapper, E: InterdomainEvents> {
    xen: Backend,
    grants: M,
    events: E,
    connection: Option<Connection>,
    disabled: bool,
    removed: bool,
    stats: NetbackStats,
}

impl<M: GrantMapper, E: InterdomainEvents> Netback<M, E> {
    /// Attaches to backend directory `path` (absolute, e.g. `/local/domain/0/backend/vif/1/0`;
    /// `frontend`, `frontend-id`, `mac`, `handle` written by the toolstack), writes the
    /// feature keys Linux netback writes (only those that work here), and says InitWait.
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
            connection: None,
            disabled: false,
            removed: false,
            stats: NetbackStats::default(),
        };
        back.xen.set_state(xs, XenbusState::InitWait, deadline)?;
        Ok(back)
    }

    /// One round: follow the front end's state if its watch fired, then consume at most one
    /// ring's worth of tx requests, handing each complete frame to `out`. Returns whether tx
    /// requests may be left (call again soon).
    pub fn poll<T: XsTransport>(
        &mut self,
        xs: &mut XsClient<T>,
        out: &mut dyn FnMut(&[u8]),
        deadline: Instant,
    ) -> Result<bool, NetbackError> {
        let _ = (xs, out, deadline);
        // Skeleton: the connection and the tx path are not written yet.
        Err(NetbackError::Xenbus(XenbusError::BadValue(
            "netback skeleton: poll not implemented yet",
        )))
    }

    /// Copies one Ethernet frame into the buffers the front end posted on the rx ring
    /// (rx-copy). The front end is notified only by [`Netback::flush_rx`].
    pub fn deliver(&mut self, frame: &[u8]) -> Result<(), DeliverError> {
        let _ = frame;
        // Skeleton: the rx path is not written yet.
        self.stats.rx_errors += 1;
        Err(DeliverError::NotConnected)
    }

    /// Pushes the rx responses made since the last call and notifies once if the ring rules
    /// ask (`RING_PUSH_RESPONSES_AND_CHECK_NOTIFY`).
    pub fn flush_rx(&mut self) {}

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

    /// Our local port while connected.
    pub fn port(&self) -> Option<Port> {
        self.connection.as_ref().map(|c| c.port)
    }

    /// Whether the rings are connected.
    pub fn is_connected(&self) -> bool {
        self.connection.is_some()
    }

    /// Whether a malformed request disabled the vif (Linux's `xenvif_fatal_tx_err`).
    pub fn is_disabled(&self) -> bool {
        self.disabled
    }

    /// Whether the front end went away and the device was removed.
    pub fn is_removed(&self) -> bool {
        self.removed
    }
}
