//! Event channels on the host: records every notification, refuses them on demand.

use crate::backend::InterdomainEvents;
use crate::platform::{EventChannel, Notify, NotifyError};
use crate::time::Instant;
use crate::types::{DomId, Port};

/// Records notifications; `refuse_with` makes the next ones fail with that errno.
#[derive(Default)]
pub struct FakeEvents {
    /// Every port notified, in order.
    pub sent: Vec<Port>,
    /// When set, `notify` fails with this (negative) errno and records nothing.
    pub refuse_with: Option<i32>,
    /// Ports allocated with `alloc_unbound` and not closed, with their remote domain.
    pub open: Vec<(Port, DomId)>,
    /// Ports closed, in order.
    pub closed: Vec<Port>,
    /// Ports bound with `bind_interdomain` (a backend's) and not unbound: local port, remote
    /// domain, remote port.
    pub bound: Vec<(Port, DomId, Port)>,
    /// Number of `wait` calls.
    pub waits: usize,
    /// Called on every `wait`: the test's stand-in for the other side running (a fake
    /// backend answering). Its result is what `wait` returns.
    pub on_wait: Option<Box<dyn FnMut(Port, Instant) -> bool>>,
    next_port: u32,
}

impl FakeEvents {
    /// A fake with nothing sent.
    pub fn new() -> Self {
        Self::default()
    }

    /// Notifications sent on `port`.
    pub fn count(&self, port: Port) -> usize {
        self.sent.iter().filter(|&&p| p == port).count()
    }
}

impl EventChannel for FakeEvents {
    fn alloc_unbound(&mut self, remote: DomId) -> Result<Port, NotifyError> {
        // Ports 1 and 2 are the toolstack's (xenstore, console) on a real guest.
        let Ok(port) = Port::try_new(3 + self.next_port) else {
            panic!("fake event channels: all 4096 ports used");
        };
        if let Some(errno) = self.refuse_with {
            return Err(NotifyError { port, errno });
        }
        self.next_port += 1;
        self.open.push((port, remote));
        Ok(port)
    }

    fn wait(&mut self, port: Port, deadline: Instant) -> bool {
        self.waits += 1;
        match self.on_wait.as_mut() {
            Some(hook) => hook(port, deadline),
            None => false,
        }
    }

    fn close(&mut self, port: Port) {
        self.open.retain(|&(p, _)| p != port);
        self.closed.push(port);
    }
}

impl InterdomainEvents for FakeEvents {
    fn bind_interdomain(&mut self, remote: DomId, remote_port: Port) -> Result<Port, NotifyError> {
        let Ok(port) = Port::try_new(3 + self.next_port) else {
            panic!("fake event channels: all 4096 ports used");
        };
        if let Some(errno) = self.refuse_with {
            return Err(NotifyError { port, errno });
        }
        self.next_port += 1;
        self.bound.push((port, remote, remote_port));
        Ok(port)
    }

    fn unbind(&mut self, port: Port) {
        self.bound.retain(|&(p, _, _)| p != port);
        self.closed.push(port);
    }
}

impl Notify for FakeEvents {
    fn notify(&mut self, port: Port) -> Result<(), NotifyError> {
        if let Some(errno) = self.refuse_with {
            return Err(NotifyError { port, errno });
        }
        self.sent.push(port);
        Ok(())
    }
}

impl core::fmt::Debug for FakeEvents {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("FakeEvents")
            .field("sent", &self.sent)
            .field("open", &self.open)
            .field("closed", &self.closed)
            .field("waits", &self.waits)
            .finish_non_exhaustive()
    }
}
