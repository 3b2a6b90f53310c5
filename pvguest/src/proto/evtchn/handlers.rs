//! The port → handler table the upcall dispatches through.

use super::{EvtchnError, Port};
use alloc::collections::BTreeMap;

/// Handlers bound to event-channel ports (`H` is whatever the kernel calls: an id, a closure).
#[derive(Debug)]
pub struct HandlerTable<H> {
    handlers: BTreeMap<u32, H>,
}

impl<H> Default for HandlerTable<H> {
    fn default() -> Self {
        Self::new()
    }
}

impl<H> HandlerTable<H> {
    /// An empty table.
    pub const fn new() -> Self {
        Self {
            handlers: BTreeMap::new(),
        }
    }

    /// Binds `handler` to `port`; a port has at most one handler.
    pub fn bind(&mut self, port: Port, handler: H) -> Result<(), EvtchnError> {
        if self.handlers.contains_key(&port.get()) {
            return Err(EvtchnError::AlreadyBound(port));
        }
        self.handlers.insert(port.get(), handler);
        Ok(())
    }

    /// Removes and returns the handler of `port`.
    pub fn unbind(&mut self, port: Port) -> Result<H, EvtchnError> {
        self.handlers
            .remove(&port.get())
            .ok_or(EvtchnError::NotBound(port))
    }

    /// Whether `port` has a handler.
    pub fn is_bound(&self, port: Port) -> bool {
        self.handlers.contains_key(&port.get())
    }

    /// Runs `f` on the handler of `port`; [`EvtchnError::NotBound`] for a spurious event.
    pub fn dispatch<R>(
        &mut self,
        port: Port,
        f: impl FnOnce(&mut H) -> R,
    ) -> Result<R, EvtchnError> {
        self.handlers
            .get_mut(&port.get())
            .map(f)
            .ok_or(EvtchnError::NotBound(port))
    }

    /// Number of bound ports.
    pub fn len(&self) -> usize {
        self.handlers.len()
    }

    /// Whether no port is bound.
    pub fn is_empty(&self) -> bool {
        self.handlers.is_empty()
    }
}
