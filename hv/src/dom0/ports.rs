//! Domain 0's event-channel port table: which of domain 0's services owns each of its ports,
//! so an event a guest sends to domain 0 reaches the service that registered the port (the
//! console backend, xenstored, the back ends), and the hypercall decoder knows nothing of
//! any service: it only reports "delivered to domain 0 port P".

/// A domain-0 service that listens on a port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    /// The console backend (xenconsoled's part): drains the guest's console ring.
    Console,
    /// Domain 0's xenstored: serves the guest's xenstore ring.
    Xenstored,
    /// A block back end (`blkback`) serving the domain's vbd with this devid.
    Blkback(u32),
    /// A network back end (`netback`) serving the domain's vif with this devid.
    Netback(u32),
}

/// Ports domain 0 may register (a small fixed table; each back end adds one per device).
pub const MAX_DOM0_PORTS: usize = 16;

/// Why a port could not be registered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegisterError {
    /// Another service already owns the port.
    Taken(Service),
    /// The table is full.
    Full,
}

/// Domain 0's ports and the service behind each.
#[derive(Clone, Debug, Default)]
pub struct PortTable {
    entries: [Option<(u32, Service)>; MAX_DOM0_PORTS],
}

impl PortTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `service` as the owner of domain 0's `port`.
    pub fn register(&mut self, port: u32, service: Service) -> Result<(), RegisterError> {
        if let Some(owner) = self.route(port) {
            return Err(RegisterError::Taken(owner));
        }
        let slot = self
            .entries
            .iter_mut()
            .find(|e| e.is_none())
            .ok_or(RegisterError::Full)?;
        *slot = Some((port, service));
        Ok(())
    }

    /// Removes `port`'s registration, giving back the service that owned it.
    pub fn unregister(&mut self, port: u32) -> Option<Service> {
        let slot = self
            .entries
            .iter_mut()
            .find(|e| matches!(e, Some((p, _)) if *p == port))?;
        slot.take().map(|(_, s)| s)
    }

    /// The service an event delivered to domain 0's `port` goes to (`None`: nobody listens,
    /// and the event only stays pending, as on an unwatched port of a real domain 0).
    pub fn route(&self, port: u32) -> Option<Service> {
        self.entries
            .iter()
            .flatten()
            .find(|(p, _)| *p == port)
            .map(|&(_, s)| s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_reach_the_service_that_registered_the_port() {
        let mut t = PortTable::new();
        assert_eq!(t.route(1), None);
        assert_eq!(t.register(1, Service::Xenstored), Ok(()));
        assert_eq!(t.register(2, Service::Console), Ok(()));
        assert_eq!(t.route(1), Some(Service::Xenstored));
        assert_eq!(t.route(2), Some(Service::Console));
        assert_eq!(t.route(3), None);
        assert_eq!(
            t.register(2, Service::Xenstored),
            Err(RegisterError::Taken(Service::Console))
        );
        assert_eq!(t.unregister(2), Some(Service::Console));
        assert_eq!(t.route(2), None);
        assert_eq!(t.unregister(2), None);
        assert_eq!(t.register(2, Service::Xenstored), Ok(()));
        assert_eq!(t.route(2), Some(Service::Xenstored));
    }

    #[test]
    fn a_full_table_refuses_more_ports() {
        let mut t = PortTable::new();
        let n = u32::try_from(MAX_DOM0_PORTS).unwrap();
        for p in 0..n {
            assert_eq!(t.register(100 + p, Service::Console), Ok(()));
        }
        assert_eq!(t.register(7, Service::Console), Err(RegisterError::Full));
        assert_eq!(t.route(100 + n - 1), Some(Service::Console));
        assert_eq!(t.unregister(100), Some(Service::Console));
        assert_eq!(t.register(7, Service::Console), Ok(()));
    }
}
