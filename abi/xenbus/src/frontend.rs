//! Front-end side of xenbus: finding devices under `device/<class>`, locating the backend,
//! publishing our state and waiting on the backend's, all over the xenstore client with
//! deadlines passed in.
//!
//! A [`Frontend`] keeps a watch on `<backend>/state` for its whole life (as Linux does), so a
//! state change between two waits is never missed; [`Frontend::close`] removes it.

#[cfg(test)]
mod tests;

use crate::time::Instant;
use crate::types::DomId;
use crate::xenstore::payload::parse_decimal;
use crate::xenstore::{TxId, XsClient, XsErrno, XsError, XsTransport, XsdError};
use abi::io::xenbus::XenbusState;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

/// Errors of the xenbus helpers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XenbusError {
    /// A xenstore operation failed.
    Store(XsError),
    /// The deadline passed before the awaited value or state appeared.
    Timeout,
    /// The backend moved to Closing or Closed while we waited for another state.
    BackendClosing(XenbusState),
    /// The backend's `state` node does not exist (the backend went away).
    BackendGone,
    /// A node held a value that does not parse; names the key.
    BadValue(&'static str),
}

impl From<XsError> for XenbusError {
    fn from(e: XsError) -> Self {
        match e {
            XsError::Timeout => Self::Timeout,
            e => Self::Store(e),
        }
    }
}

/// Lists the device ids under `device/<class>` (e.g. `vif`), ascending. Entries whose names
/// are not decimal numbers are skipped; a missing directory means no devices.
pub fn enumerate<T: XsTransport>(
    xs: &mut XsClient<T>,
    class: &str,
    deadline: Instant,
) -> Result<Vec<u32>, XenbusError> {
    enumerate_in(xs, &format!("device/{class}"), deadline)
}

/// Lists the device ids in directory `dir` (what [`enumerate`] does for `device/<class>`).
pub fn enumerate_in<T: XsTransport>(
    xs: &mut XsClient<T>,
    dir: &str,
    deadline: Instant,
) -> Result<Vec<u32>, XenbusError> {
    let names = match xs.directory(TxId::NONE, dir, deadline) {
        Ok(names) => names,
        Err(XsError::Server(XsErrno::Known(XsdError::Enoent))) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut ids: Vec<u32> = names.iter().filter_map(|n| parse_decimal(n)).collect();
    ids.sort_unstable();
    Ok(ids)
}

/// One round of a wait on a watched value: returns when the watch with `token` fired (or
/// events were lost, so the caller re-reads anyway), and fails with [`XenbusError::Timeout`]
/// once `deadline` has passed, checked every round so that a peer rewriting the value
/// endlessly cannot keep the caller past it.
fn wait_for_change<T: XsTransport>(
    xs: &mut XsClient<T>,
    token: &str,
    deadline: Instant,
) -> Result<(), XenbusError> {
    if xs.now() >= deadline {
        return Err(XenbusError::Timeout);
    }
    match xs.wait_event_for(token, deadline) {
        Ok(_) | Err(XsError::EventsLost) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// One front-end device and where its backend lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frontend {
    /// Our directory: `device/<class>/<id>` (relative to the domain's home) unless found
    /// with [`Frontend::discover_at`].
    pub path: String,
    /// The backend's directory (absolute), from our `backend` node.
    pub backend: String,
    /// The backend's domain, from our `backend-id` node.
    pub backend_id: DomId,
    token: String,
}

impl Frontend {
    /// Finds device `<class>/<id>`: reads `backend-id` and `backend`, waiting (through a watch)
    /// until the toolstack has written both or `deadline` passes, then watches the backend's
    /// state.
    pub fn discover<T: XsTransport>(
        xs: &mut XsClient<T>,
        class: &str,
        id: u32,
        deadline: Instant,
    ) -> Result<Self, XenbusError> {
        Self::discover_at(xs, format!("device/{class}/{id}"), deadline)
    }

    /// Like [`Frontend::discover`] for a device directory given as a path (relative to the
    /// domain's home, or absolute).
    pub fn discover_at<T: XsTransport>(
        xs: &mut XsClient<T>,
        path: String,
        deadline: Instant,
    ) -> Result<Self, XenbusError> {
        let token = format!("xb-fe:{path}");
        xs.watch(&path, &token, deadline)?;
        let found = Self::read_backend_location(xs, &path, &token, deadline);
        // The watch has served its purpose. Its removal is not waited for (the deadline may
        // be gone already); failing to remove it would leave only stray events.
        let _ = xs.unwatch_detached(&path, &token);
        let (backend, backend_id) = found?;
        let frontend = Self {
            token: format!("xb-be:{path}"),
            path,
            backend,
            backend_id,
        };
        xs.watch(&frontend.backend_node("state"), &frontend.token, deadline)?;
        Ok(frontend)
    }

    fn read_backend_location<T: XsTransport>(
        xs: &mut XsClient<T>,
        path: &str,
        token: &str,
        deadline: Instant,
    ) -> Result<(String, DomId), XenbusError> {
        loop {
            while xs.take_event_for(token).is_some() {}
            let id = xs.read_optional(TxId::NONE, &format!("{path}/backend-id"), deadline)?;
            let backend = xs.read_optional(TxId::NONE, &format!("{path}/backend"), deadline)?;
            if let (Some(id), Some(backend)) = (id, backend) {
                let id = parse_decimal(&id)
                    .and_then(|v| DomId::try_new(v).ok())
                    .ok_or(XenbusError::BadValue("backend-id"))?;
                if !backend.starts_with('/') || backend.len() < 2 || backend.ends_with('/') {
                    return Err(XenbusError::BadValue("backend"));
                }
                return Ok((backend, id));
            }
            wait_for_change(xs, token, deadline)?;
        }
    }

    /// `<our path>/<key>`.
    pub fn node(&self, key: &str) -> String {
        format!("{}/{key}", self.path)
    }

    /// `<backend path>/<key>`.
    pub fn backend_node(&self, key: &str) -> String {
        format!("{}/{key}", self.backend)
    }

    /// Publishes our state in `<our path>/state`.
    pub fn set_state<T: XsTransport>(
        &self,
        xs: &mut XsClient<T>,
        state: XenbusState,
        deadline: Instant,
    ) -> Result<(), XenbusError> {
        Ok(xs.write(TxId::NONE, &self.node("state"), state.as_str(), deadline)?)
    }

    /// Reads the backend's state; a missing node is [`XenbusError::BackendGone`], and so is one
    /// we may no longer read (xenstored answers EACCES for a removed node whose nearest
    /// remaining ancestor the guest cannot read, as when the toolstack removes the backend).
    pub fn backend_state<T: XsTransport>(
        &self,
        xs: &mut XsClient<T>,
        deadline: Instant,
    ) -> Result<XenbusState, XenbusError> {
        match xs.read(TxId::NONE, &self.backend_node("state"), deadline) {
            Ok(text) => XenbusState::parse(&text).map_err(|_| XenbusError::BadValue("state")),
            Err(XsError::Server(
                XsErrno::Known(XsdError::Enoent) | XsErrno::Known(XsdError::Eacces),
            )) => Err(XenbusError::BackendGone),
            Err(e) => Err(e.into()),
        }
    }

    /// Waits until the backend's state satisfies `accept`, returning it. Closing or Closed
    /// (when not accepted) ends the wait with [`XenbusError::BackendClosing`], a vanished
    /// state node with [`XenbusError::BackendGone`], the deadline with
    /// [`XenbusError::Timeout`].
    pub fn wait_backend_state<T: XsTransport>(
        &self,
        xs: &mut XsClient<T>,
        accept: impl Fn(XenbusState) -> bool,
        deadline: Instant,
    ) -> Result<XenbusState, XenbusError> {
        loop {
            // Events queued so far are covered by the read below.
            while xs.take_event_for(&self.token).is_some() {}
            let state = self.backend_state(xs, deadline)?;
            if accept(state) {
                return Ok(state);
            }
            if matches!(state, XenbusState::Closing | XenbusState::Closed) {
                return Err(XenbusError::BackendClosing(state));
            }
            wait_for_change(xs, &self.token, deadline)?;
        }
    }

    /// Waits until the backend is Closed (passing through Closing) or gone, for a front end
    /// that has said Closed itself: Linux's backends release the shared pages only then.
    /// Fails with [`XenbusError::Timeout`] at `deadline`.
    pub fn wait_backend_closed<T: XsTransport>(
        &self,
        xs: &mut XsClient<T>,
        deadline: Instant,
    ) -> Result<(), XenbusError> {
        loop {
            while xs.take_event_for(&self.token).is_some() {}
            match self.backend_state(xs, deadline) {
                Ok(XenbusState::Closed) | Err(XenbusError::BackendGone) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(e),
            }
            wait_for_change(xs, &self.token, deadline)?;
        }
    }

    /// Takes the queued events of the backend-state watch (without blocking); returns whether
    /// there were any, i.e. whether the backend's state may have changed since last looked at.
    pub fn take_backend_events<T: XsTransport>(&self, xs: &mut XsClient<T>) -> bool {
        let mut any = false;
        while xs.take_event_for(&self.token).is_some() {
            any = true;
        }
        any
    }

    /// Removes the backend-state watch.
    pub fn close<T: XsTransport>(
        self,
        xs: &mut XsClient<T>,
        deadline: Instant,
    ) -> Result<(), XenbusError> {
        Ok(xs.unwatch(&self.backend_node("state"), &self.token, deadline)?)
    }
}
