//! Domain 0's software switch: joins QEMU's virtio-net NIC (the uplink) and every domain's
//! vif, as the bridge a Xen dom0's `vif-bridge` script puts the vifs on, with a MAC filter on
//! each vif.
//!
//! Rules, in order, for a frame arriving on port `from`:
//! - shorter than an Ethernet header (14 bytes): dropped and counted ([`SwitchStats::runts`]);
//! - its source MAC, if unicast, is learned on `from` (a bounded table, [`Switch::new`]'s
//!   `capacity`; an entry not seen for `ageing_ns` is forgotten; a MAC seen on another port
//!   moves there). A vif's own MAC is a static entry that never moves: a frame from another
//!   port claiming it is still forwarded but teaches nothing (counted as a conflict);
//! - broadcast and multicast (the I/G bit of the destination) go to every other port;
//! - unicast goes to the port that owns the destination (a vif's MAC) or learned it, else to
//!   the uplink; a vif receives unicast only for its own MAC (the filter), and no frame goes
//!   back out the port it came in on (such frames are dropped and counted).
//!
//! Time is an argument (nanoseconds); the switch never reads a clock.

use alloc::vec::Vec;

/// An Ethernet MAC address.
pub type Mac = [u8; 6];

/// Bytes of an Ethernet header (destination, source, EtherType).
pub const ETHER_HEADER: usize = 14;

/// How long a learned entry lives without being seen (Linux's bridge default, 300 s).
pub const DEFAULT_AGEING_NS: u64 = 300_000_000_000;

/// Learned entries the switch keeps by default.
pub const DEFAULT_CAPACITY: usize = 256;

/// A port of the switch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortId(pub u32);

impl PortId {
    /// The uplink: QEMU's NIC.
    pub const UPLINK: Self = Self(0);
}

/// What the switch did, counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SwitchStats {
    /// Frames offered.
    pub frames: u64,
    /// Frames shorter than an Ethernet header (dropped).
    pub runts: u64,
    /// Frames from a port the switch does not know (dropped).
    pub unknown_port: u64,
    /// Broadcast and multicast frames flooded.
    pub floods: u64,
    /// Unicast frames sent to one port.
    pub unicast: u64,
    /// Unicast frames whose destination nobody owns or learned (sent to the uplink).
    pub unknown_unicast: u64,
    /// Unicast frames dropped: their port is the one they came from, or a vif whose MAC is
    /// not the destination.
    pub dropped: u64,
    /// Source MACs learned (new entries).
    pub learned: u64,
    /// Learned MACs that moved to another port.
    pub moved: u64,
    /// Entries forgotten to make room (the oldest first).
    pub evicted: u64,
    /// Frames whose source is another port's (a vif's) own MAC.
    pub conflicts: u64,
}

#[derive(Clone, Copy, Debug)]
struct Port {
    id: PortId,
    /// A vif's MAC (its filter); `None` for the uplink.
    mac: Option<Mac>,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    mac: Mac,
    port: PortId,
    seen: u64,
}

/// Why a port could not be added.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortError {
    /// Another vif already has this MAC.
    MacTaken(PortId),
    /// The MAC is multicast or all zeros, which no vif may own.
    BadMac,
}

/// The switch: its ports and the learned table.
#[derive(Clone, Debug)]
pub struct Switch {
    ports: Vec<Port>,
    table: Vec<Entry>,
    capacity: usize,
    ageing_ns: u64,
    next_id: u32,
    stats: SwitchStats,
}

/// Whether `mac` is a group (broadcast or multicast) address.
pub fn is_group(mac: &Mac) -> bool {
    mac[0] & 1 != 0
}

fn mac_at(frame: &[u8], at: usize) -> Option<Mac> {
    frame.get(at..at + 6)?.try_into().ok()
}

impl Switch {
    /// A switch with only the uplink, learning at most `capacity` MACs, each forgotten after
    /// `ageing_ns` unseen.
    pub fn new(capacity: usize, ageing_ns: u64) -> Self {
        Self {
            ports: alloc::vec![Port {
                id: PortId::UPLINK,
                mac: None
            }],
            table: Vec::new(),
            capacity,
            ageing_ns,
            next_id: 1,
            stats: SwitchStats::default(),
        }
    }

    /// Adds a vif port with its MAC.
    pub fn add_vif(&mut self, mac: Mac) -> Result<PortId, PortError> {
        if is_group(&mac) || mac == [0; 6] {
            return Err(PortError::BadMac);
        }
        if let Some(p) = self.ports.iter().find(|p| p.mac == Some(mac)) {
            return Err(PortError::MacTaken(p.id));
        }
        let id = PortId(self.next_id);
        self.next_id = self.next_id.wrapping_add(1).max(1);
        self.ports.push(Port { id, mac: Some(mac) });
        // The MAC is the vif's now, wherever it was learned.
        self.table.retain(|e| e.mac != mac);
        Ok(id)
    }

    /// Removes a vif port and everything learned on it (the uplink stays).
    pub fn remove(&mut self, port: PortId) {
        if port == PortId::UPLINK {
            return;
        }
        self.ports.retain(|p| p.id != port);
        self.table.retain(|e| e.port != port);
    }

    /// The ports, the uplink first.
    pub fn ports(&self) -> impl Iterator<Item = PortId> + '_ {
        self.ports.iter().map(|p| p.id)
    }

    /// The counters.
    pub fn stats(&self) -> SwitchStats {
        self.stats
    }

    /// Learned entries (live or not yet purged).
    pub fn learned_len(&self) -> usize {
        self.table.len()
    }

    /// The port `mac` was learned on, if its entry is live at `now`.
    pub fn lookup(&self, mac: &Mac, now: u64) -> Option<PortId> {
        self.table
            .iter()
            .find(|e| e.mac == *mac && now.saturating_sub(e.seen) < self.ageing_ns)
            .map(|e| e.port)
    }

    fn owner(&self, mac: &Mac) -> Option<PortId> {
        self.ports
            .iter()
            .find(|p| p.mac == Some(*mac))
            .map(|p| p.id)
    }

    fn learn(&mut self, mac: Mac, port: PortId, now: u64) {
        if is_group(&mac) || mac == [0; 6] {
            return;
        }
        match self.owner(&mac) {
            Some(owner) if owner == port => return,
            Some(_) => {
                self.stats.conflicts += 1;
                return;
            }
            None => {}
        }
        if let Some(e) = self.table.iter_mut().find(|e| e.mac == mac) {
            if e.port != port {
                self.stats.moved += 1;
                e.port = port;
            }
            e.seen = now;
            return;
        }
        let ageing = self.ageing_ns;
        self.table.retain(|e| now.saturating_sub(e.seen) < ageing);
        if self.capacity == 0 {
            return;
        }
        if self.table.len() >= self.capacity
            && let Some(oldest) = self
                .table
                .iter()
                .enumerate()
                .min_by_key(|(_, e)| e.seen)
                .map(|(i, _)| i)
        {
            self.table.swap_remove(oldest);
            self.stats.evicted += 1;
        }
        self.table.push(Entry {
            mac,
            port,
            seen: now,
        });
        self.stats.learned += 1;
    }

    /// Switches `frame` arriving on `from` at `now`: `out` is cleared, then filled with the
    /// ports it goes to (none if it is dropped).
    pub fn forward(&mut self, from: PortId, frame: &[u8], now: u64, out: &mut Vec<PortId>) {
        out.clear();
        self.stats.frames += 1;
        let (Some(dst), Some(src)) = (mac_at(frame, 0), mac_at(frame, 6)) else {
            self.stats.runts += 1;
            return;
        };
        if frame.len() < ETHER_HEADER {
            self.stats.runts += 1;
            return;
        }
        if !self.ports.iter().any(|p| p.id == from) {
            self.stats.unknown_port += 1;
            return;
        }
        self.learn(src, from, now);
        if is_group(&dst) {
            self.stats.floods += 1;
            out.extend(self.ports.iter().map(|p| p.id).filter(|&p| p != from));
            return;
        }
        let to = match self.owner(&dst).or_else(|| self.lookup(&dst, now)) {
            Some(p) => p,
            None => {
                self.stats.unknown_unicast += 1;
                PortId::UPLINK
            }
        };
        let accepts = self
            .ports
            .iter()
            .find(|p| p.id == to)
            .is_some_and(|p| p.mac.is_none_or(|m| m == dst));
        if to == from || !accepts {
            self.stats.dropped += 1;
            return;
        }
        self.stats.unicast += 1;
        out.push(to);
    }
}

impl Default for Switch {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY, DEFAULT_AGEING_NS)
    }
}

#[cfg(test)]
mod tests;
