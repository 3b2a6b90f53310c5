//! Back-end side of xenbus, as Linux's backends (`drivers/block/xen-blkback/xenbus.c` and the
//! xenbus core under it) run it: find the front end from the backend directory (`frontend`,
//! `frontend-id`), watch its `state`, publish ours (InitWait, Connected, Closing, Closed),
//! read the rings the front end publishes (`ring-ref` or `ring-page-order` with `ring-ref<i>`,
//! `event-channel`, `protocol`, `multi-queue-num-queues` with `queue-<n>/...`), and fail
//! fatally the way `xenbus_dev_fatal` does (an `error` node, then Closing).
//!
//! What a backend needs from the platform besides xenstore: [`GrantMapper`] (map a front
//! end's grant with Xen's checks, unmap it) and [`InterdomainEvents`] (bind to the front end's
//! port, notify it, unbind). Everything read from the front end's directory is checked before
//! use; nothing here panics on what a front end wrote.

mod grant;
#[cfg(test)]
mod tests;

pub use grant::{GrantMapError, GrantMapper, InterdomainEvents, MappedPage, MappedPageError};

use crate::frontend::XenbusError;
use crate::time::Instant;
use crate::types::{DomId, GrantRef, Port};
use crate::xenstore::payload::parse_decimal;
use crate::xenstore::{TxId, XsClient, XsErrno, XsError, XsTransport, XsdError};
use abi::io::xenbus::XenbusState;
use abi::ring::MAX_RING_PAGE_ORDER;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

/// What Linux's backends do when the front end's state changes (`frontend_changed` of
/// blkback, on top of the xenbus core).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    /// Nothing to do.
    None,
    /// The front end starts over after a close: go back to InitWait ("prepare for
    /// reconnect").
    Reconnect,
    /// The front end published its ring (Initialised, or Connected when the intermediate
    /// state was missed): map it and connect, unless already Connected.
    Connect,
    /// The front end is closing: say Closing.
    Closing,
    /// The front end is Closed: unmap everything, then say Closed.
    Closed,
    /// The front end's state is gone or Unknown: the device goes away (disconnect, remove).
    Remove,
    /// A state a front end never sends (Reconfiguring, Reconfigured, InitWait): fatal.
    Fatal,
}

/// Blkback's `frontend_changed`: what to do when the front end is in `frontend` while we are
/// in `ours`.
pub fn transition(ours: XenbusState, frontend: XenbusState) -> Transition {
    use XenbusState as S;
    match frontend {
        S::Initialising if ours == S::Closed => Transition::Reconnect,
        S::Initialising => Transition::None,
        S::Initialised | S::Connected if ours == S::Connected => Transition::None,
        S::Initialised | S::Connected => Transition::Connect,
        S::Closing => Transition::Closing,
        S::Closed => Transition::Closed,
        S::Unknown => Transition::Remove,
        S::InitWait | S::Reconfiguring | S::Reconfigured => Transition::Fatal,
    }
}

/// What a back end offers of rings: Linux blkback's `max-ring-page-order` (pages per ring,
/// as an order) and `multi-queue-max-queues` (rings per device).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingOffer {
    /// The largest `ring-page-order` accepted (0: one page).
    pub max_ring_page_order: u32,
    /// The most queues (`multi-queue-num-queues`) accepted (1: one ring).
    pub max_queues: u32,
}

impl RingOffer {
    /// One ring of one page: what a back end offering neither accepts.
    pub const ONE_PAGE: Self = Self {
        max_ring_page_order: 0,
        max_queues: 1,
    };
}

/// One ring a front end published (one queue).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RingRefs {
    /// The grants of the ring's pages, in ring order: `ring-ref` alone without
    /// `ring-page-order`, else `ring-ref0` .. `ring-ref<2^order - 1>`.
    pub ring_refs: Vec<GrantRef>,
    /// The front end's unbound port (`event-channel`).
    pub event_channel: Port,
}

/// Why a front end's rings could not be read (each is fatal for the device, as in Linux).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RingRefsError {
    /// A xenstore operation failed.
    Store(XsError),
    /// A key is missing or does not parse; names it, relative to the front end's directory
    /// (`queue-1/ring-ref3`).
    BadValue(String),
    /// `protocol` names an ABI other than x86_64's (this backend has no translation).
    UnknownProtocol,
    /// `ring-page-order` asks for more pages than we offer.
    RingPageOrder {
        /// The order asked for.
        order: u32,
        /// Our `max-ring-page-order`.
        max: u32,
    },
    /// `multi-queue-num-queues` is 0 or more than we offer.
    Queues {
        /// The queues asked for.
        queues: u32,
        /// Our `multi-queue-max-queues`.
        max: u32,
    },
}

impl From<XsError> for RingRefsError {
    fn from(e: XsError) -> Self {
        Self::Store(e)
    }
}

/// The `protocol` values meaning x86_64's layouts (`XEN_IO_PROTO_ABI_X86_64`; absent means the
/// backend's native ABI, which is x86_64 here).
pub const PROTOCOL_X86_64: &str = "x86_64-abi";

/// One back-end device: its directory, its front end, our state and the watch on theirs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backend {
    /// Our directory (absolute), e.g. `/local/domain/0/backend/vbd/5/51712`.
    pub path: String,
    /// The front end's directory (absolute), from our `frontend` node.
    pub frontend: String,
    /// The front end's domain, from our `frontend-id` node.
    pub frontend_id: DomId,
    state: XenbusState,
    token: String,
}

impl Backend {
    /// Attaches to backend directory `path` (absolute): reads `frontend` and `frontend-id`
    /// (what the xenbus core's `talk_to_otherend` reads) and watches `<frontend>/state`.
    /// Our state starts as Initialising (what the toolstack wrote).
    pub fn attach<T: XsTransport>(
        xs: &mut XsClient<T>,
        path: String,
        deadline: Instant,
    ) -> Result<Self, XenbusError> {
        let id = xs.read(TxId::NONE, &format!("{path}/frontend-id"), deadline)?;
        let frontend_id = parse_decimal(&id)
            .and_then(|v| DomId::try_new(v).ok())
            .ok_or(XenbusError::BadValue("frontend-id"))?;
        let frontend = xs.read(TxId::NONE, &format!("{path}/frontend"), deadline)?;
        if !frontend.starts_with('/') || frontend.len() < 2 || frontend.ends_with('/') {
            return Err(XenbusError::BadValue("frontend"));
        }
        let backend = Self {
            token: format!("xb-be-other:{path}"),
            path,
            frontend,
            frontend_id,
            state: XenbusState::Initialising,
        };
        xs.watch(&backend.frontend_node("state"), &backend.token, deadline)?;
        Ok(backend)
    }

    /// `<our path>/<key>`.
    pub fn node(&self, key: &str) -> String {
        format!("{}/{key}", self.path)
    }

    /// `<front-end path>/<key>`.
    pub fn frontend_node(&self, key: &str) -> String {
        format!("{}/{key}", self.frontend)
    }

    /// Our state as last published.
    pub fn state(&self) -> XenbusState {
        self.state
    }

    /// Publishes our state (`xenbus_switch_state`: nothing is written if it is already so).
    pub fn set_state<T: XsTransport>(
        &mut self,
        xs: &mut XsClient<T>,
        state: XenbusState,
        deadline: Instant,
    ) -> Result<(), XenbusError> {
        if state == self.state {
            return Ok(());
        }
        xs.write(TxId::NONE, &self.node("state"), state.as_str(), deadline)?;
        self.state = state;
        Ok(())
    }

    /// The front end's state; a missing or unreadable node, or a value that is no state, is
    /// Unknown (`xenbus_read_driver_state`).
    pub fn frontend_state<T: XsTransport>(
        &self,
        xs: &mut XsClient<T>,
        deadline: Instant,
    ) -> Result<XenbusState, XenbusError> {
        match xs.read(TxId::NONE, &self.frontend_node("state"), deadline) {
            Ok(text) => Ok(XenbusState::parse(&text).unwrap_or(XenbusState::Unknown)),
            Err(XsError::Server(
                XsErrno::Known(XsdError::Enoent) | XsErrno::Known(XsdError::Eacces),
            )) => Ok(XenbusState::Unknown),
            Err(e) => Err(e.into()),
        }
    }

    /// Takes the queued events of the front-end state watch without blocking; whether there
    /// were any (the front end's state may have changed).
    pub fn take_frontend_events<T: XsTransport>(&self, xs: &mut XsClient<T>) -> bool {
        let mut any = false;
        while xs.take_event_for(&self.token).is_some() {
            any = true;
        }
        any
    }

    /// Reads an unsigned decimal key of the front end's directory; `None` if absent.
    fn frontend_u32<T: XsTransport>(
        &self,
        xs: &mut XsClient<T>,
        key: &'static str,
        deadline: Instant,
    ) -> Result<Option<u32>, RingRefsError> {
        match xs.read_optional(TxId::NONE, &self.frontend_node(key), deadline)? {
            None => Ok(None),
            Some(text) => parse_decimal(&text)
                .map(Some)
                .ok_or_else(|| RingRefsError::BadValue(String::from(key))),
        }
    }

    /// Reads an unsigned decimal key under the front end's directory (`dir/key`, `dir` empty
    /// for the directory itself); a missing or malformed value is `BadValue`.
    fn frontend_required<T: XsTransport>(
        &self,
        xs: &mut XsClient<T>,
        dir: &str,
        key: &str,
        deadline: Instant,
    ) -> Result<u32, RingRefsError> {
        let name = relative(dir, key);
        xs.read_optional(TxId::NONE, &self.frontend_node(&name), deadline)?
            .as_deref()
            .and_then(parse_decimal)
            .ok_or(RingRefsError::BadValue(name))
    }

    /// Reads the rings the front end published, as blkback's `connect_ring` and
    /// `read_per_ring_refs` do, within `offer`: `protocol` (absent or x86_64's),
    /// `multi-queue-num-queues` (absent: 1; 0 or above `offer.max_queues` refused),
    /// `ring-page-order` (absent: one page named by `ring-ref`; present and at most
    /// `offer.max_ring_page_order`: `2^order` pages named `ring-ref0`, `ring-ref1`, ...), then
    /// for each queue, in the front end's directory for one queue or in `queue-<n>/` for
    /// several, `event-channel` and the ring references (each a grant reference past the
    /// reserved ones). One ring per queue, in queue order.
    pub fn read_rings<T: XsTransport>(
        &self,
        xs: &mut XsClient<T>,
        offer: RingOffer,
        deadline: Instant,
    ) -> Result<Vec<RingRefs>, RingRefsError> {
        let protocol = xs.read_optional(TxId::NONE, &self.frontend_node("protocol"), deadline)?;
        if protocol.is_some_and(|p| p != PROTOCOL_X86_64) {
            return Err(RingRefsError::UnknownProtocol);
        }
        let queues = match self.frontend_u32(xs, "multi-queue-num-queues", deadline)? {
            None => 1,
            Some(n) if n == 0 || n > offer.max_queues.max(1) => {
                return Err(RingRefsError::Queues {
                    queues: n,
                    max: offer.max_queues.max(1),
                });
            }
            Some(n) => n,
        };
        // No ring spans more than `MAX_RING_PAGES`, whatever the offer says.
        let max = offer.max_ring_page_order.min(MAX_RING_PAGE_ORDER);
        let order = match self.frontend_u32(xs, "ring-page-order", deadline)? {
            None => None,
            Some(order) if order <= max => Some(order),
            Some(order) => return Err(RingRefsError::RingPageOrder { order, max }),
        };
        let mut rings = Vec::new();
        for queue in 0..queues {
            let dir = if queues == 1 {
                String::new()
            } else {
                format!("queue-{queue}")
            };
            let bad = |key: &str| RingRefsError::BadValue(relative(&dir, key));
            let port = self.frontend_required(xs, &dir, "event-channel", deadline)?;
            let event_channel = Port::try_new(port).map_err(|_| bad("event-channel"))?;
            // `order <= MAX_RING_PAGE_ORDER` (4): at most 16 names.
            let names: Vec<String> = match order {
                None => alloc::vec![String::from("ring-ref")],
                Some(order) => (0..1u32 << order).map(|i| format!("ring-ref{i}")).collect(),
            };
            let mut ring_refs = Vec::with_capacity(names.len());
            for name in names {
                let raw = self.frontend_required(xs, &dir, &name, deadline)?;
                ring_refs.push(GrantRef::try_new(raw).map_err(|_| bad(&name))?);
            }
            rings.push(RingRefs {
                ring_refs,
                event_channel,
            });
        }
        Ok(rings)
    }

    /// `xenbus_dev_fatal`: writes `<errno> <message>` to the device's error node
    /// (`error/<our path relative to our home>/error`) and switches to Closing. Best effort:
    /// a failing write changes nothing else.
    pub fn fatal<T: XsTransport>(
        &mut self,
        xs: &mut XsClient<T>,
        errno: i32,
        message: &str,
        deadline: Instant,
    ) {
        let error_node = match error_dir(&self.path) {
            Some(dir) => format!("{dir}/error"),
            None => self.node("error"),
        };
        let _ = xs.write(
            TxId::NONE,
            &error_node,
            &format!("{errno} {message}"),
            deadline,
        );
        let _ = self.set_state(xs, XenbusState::Closing, deadline);
    }

    /// Removes the front-end state watch.
    pub fn close<T: XsTransport>(
        self,
        xs: &mut XsClient<T>,
        deadline: Instant,
    ) -> Result<(), XenbusError> {
        Ok(xs.unwatch(&self.frontend_node("state"), &self.token, deadline)?)
    }
}

/// `dir/key`, or `key` when `dir` is empty (the front end's directory itself).
fn relative(dir: &str, key: &str) -> String {
    if dir.is_empty() {
        String::from(key)
    } else {
        format!("{dir}/{key}")
    }
}

/// `/local/domain/<id>/error/<rest>` for a backend path `/local/domain/<id>/<rest>`, where
/// Linux's `xenbus_dev_fatal` writes (`error/` + the device's node name, relative to the
/// backend domain's home).
fn error_dir(path: &str) -> Option<String> {
    let rest = path.strip_prefix("/local/domain/")?;
    let (id, rest) = rest.split_once('/')?;
    parse_decimal(id)?;
    Some(format!("/local/domain/{id}/error/{rest}"))
}
