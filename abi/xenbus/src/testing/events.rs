//! Event channels on the host: records every notification, refuses them on demand.

use crate::platform::{Notify, NotifyError};
use crate::types::Port;

/// Records notifications; `refuse_with` makes the next ones fail with that errno.
#[derive(Debug, Default)]
pub struct FakeEvents {
    /// Every port notified, in order.
    pub sent: Vec<Port>,
    /// When set, `notify` fails with this (negative) errno and records nothing.
    pub refuse_with: Option<i32>,
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

impl Notify for FakeEvents {
    fn notify(&mut self, port: Port) -> Result<(), NotifyError> {
        if let Some(errno) = self.refuse_with {
            return Err(NotifyError { port, errno });
        }
        self.sent.push(port);
        Ok(())
    }
}
