//! Two-level event channels of one guest domain, answered as Xen 4.17's
//! `common/event_channel.c` and `event_2l.c` answer them: the port table (alloc_unbound,
//! bind_interdomain, bind_virq, bind_ipi, close, send, status, unmask) with Xen's checks and
//! errno values, and the pending/mask words of `shared_info` with `vcpu_info`'s
//! `evtchn_pending_sel` / `evtchn_upcall_pending`, set as `evtchn_2l_set_pending` sets them.
//!
//! The words live in guest-writable memory and are reached through [`EventWords`]: the guest
//! may write anything there at any time, and nothing here trusts what it reads back.
//!
//! Domain 0 exists (its services live inside hv); its ports are not in this table: an
//! interdomain port whose peer is domain 0 carries the peer's port number, and sending on it
//! yields [`Notify::Dom0`] for the caller to act on. Other domUs' tables are reached through
//! [`EventPeers`] (the kernel's other domains, or a fake in tests): binding to another
//! domain's unbound port, sending to it, closing, and a domain's death, each as Xen's
//! `evtchn_bind_interdomain`, `evtchn_send`, `evtchn_close` and `evtchn_destroy` do.
#![allow(clippy::cast_possible_truncation, reason = "NR_PORTS (4096) fits u32")]

use abi::errno::{XEN_EEXIST, XEN_EINVAL, XEN_ENOENT, XEN_ENOSPC, XEN_EPERM, XEN_ESRCH};
use abi::event_channel as ec;

use crate::xen_errno::{XenErrno, xen_errno as err};

/// xl's default `max_event_channels`: the highest port a domain may use.
pub const MAX_PORT: u32 = 1023;
/// Ports of one bucket of Xen's port table (`PAGE_SIZE / sizeof(struct evtchn)` rounded to
/// a power of two: 64 on x86_64). A port is "valid" (`port_is_valid`) once its bucket has
/// been allocated, and stays valid; a free port in a valid bucket reports "closed", a port
/// beyond answers `-EINVAL`.
pub const PORTS_PER_BUCKET: u32 = 64;
/// Ports in the table (0..=[`MAX_PORT`]).
pub const NR_PORTS: usize = MAX_PORT as usize + 1;
/// Ports the 2-level ABI can name (`max_evtchns` of a 2-level domain).
pub const EVTCHN_2L_PORTS: usize = 4096;
/// Bits per pending/mask word (`BITS_PER_EVTCHN_WORD` on x86_64).
pub const WORD_BITS: u32 = 64;

/// The number of VIRQs (`NR_VIRQS`).
const NR_VIRQS: usize = ec::NR_VIRQS as usize;

/// The far end of an interdomain channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Remote {
    /// A port of this same domain (a loopback pair).
    Local(u32),
    /// A port of domain 0 (a service inside hv).
    Dom0(u32),
    /// A port of another domU.
    Domain {
        /// Its domain.
        dom: u16,
        /// Its port.
        port: u32,
    },
}

/// The state of one port (Xen's `ECS_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Free for allocation.
    Free,
    /// Port 0: never allocated.
    Reserved,
    /// Allocated, waiting for `remote` to bind to it.
    Unbound {
        /// The domain allowed to bind.
        remote: u16,
    },
    /// Connected.
    Interdomain(Remote),
    /// Bound to a VIRQ.
    Virq(u32),
    /// An IPI port.
    Ipi,
}

/// What the caller must do after a send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Notify {
    /// Nothing beyond the pending bits (already set).
    None,
    /// Domain 0's port was notified: run its service.
    Dom0(u32),
}

/// What [`EventChannels::close`] disconnected, for the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Closed {
    /// Nothing outside this domain.
    Local,
    /// Domain 0's port (its service may drop it).
    Dom0(u32),
}

/// The other domUs' event channels, as one domain's operations reach them. The defaults
/// answer as if no other domU existed.
pub trait EventPeers {
    /// Whether domain `dom` (another domU) exists.
    fn peer_exists(&self, _dom: u16) -> bool {
        false
    }
    /// Binds port `rport` of domain `rdom` to port `lport` of domain `ldom`: `-EINVAL` unless
    /// `rport` is valid there and unbound for `ldom` (Xen's checks in
    /// `evtchn_bind_interdomain`); `-ESRCH` if `rdom` does not exist.
    fn peer_bind(
        &mut self,
        _rdom: u16,
        _rport: u32,
        _ldom: u16,
        _lport: u32,
    ) -> Result<(), XenErrno> {
        Err(err(XEN_ESRCH))
    }
    /// Domain `ldom` closed its port `lport`, connected to `rport` of `rdom`: that port goes
    /// back to unbound for `ldom`, as `evtchn_close` leaves it.
    fn peer_unbind(&mut self, _rdom: u16, _rport: u32, _ldom: u16, _lport: u32) {}
    /// Domain `ldom` sent on `lport`, connected to `rport` of `rdom`: `rport` is set pending
    /// there (and its vCPU kicked).
    fn peer_notify(&mut self, _rdom: u16, _rport: u32, _ldom: u16, _lport: u32) {}
}

/// Access to the guest's pending and mask words (`shared_info`) and to vCPU 0's
/// `vcpu_info` event fields. Plain loads and stores: the guest does not run while hv does.
pub trait EventWords {
    /// `shared_info.evtchn_pending[word]`.
    fn pending(&self, word: usize) -> u64;
    /// Writes `shared_info.evtchn_pending[word]`.
    fn set_pending_word(&mut self, word: usize, value: u64);
    /// `shared_info.evtchn_mask[word]`.
    fn mask(&self, word: usize) -> u64;
    /// Writes `shared_info.evtchn_mask[word]`.
    fn set_mask_word(&mut self, word: usize, value: u64);
    /// `vcpu_info.evtchn_pending_sel`.
    fn pending_sel(&self) -> u64;
    /// Writes `vcpu_info.evtchn_pending_sel`.
    fn set_pending_sel(&mut self, value: u64);
    /// `vcpu_info.evtchn_upcall_pending`.
    fn upcall_pending(&self) -> u8;
    /// Writes `vcpu_info.evtchn_upcall_pending`.
    fn set_upcall_pending(&mut self, value: u8);
}

fn word_bit(port: u32) -> (usize, u64) {
    ((port / WORD_BITS) as usize, 1 << (port % WORD_BITS))
}

/// `evtchn_2l_set_pending` for vCPU 0. Returns true when this raised the upcall (Xen's
/// `vcpu_mark_events_pending`: the caller kicks the vCPU).
pub fn set_pending(w: &mut impl EventWords, port: u32) -> bool {
    let (word, bit) = word_bit(port);
    let pending = w.pending(word);
    if pending & bit != 0 {
        return false;
    }
    w.set_pending_word(word, pending | bit);
    if w.mask(word) & bit != 0 {
        return false;
    }
    mark_sel(w, word)
}

/// Sets `word`'s selector bit and, if it was clear, the upcall flag.
fn mark_sel(w: &mut impl EventWords, word: usize) -> bool {
    let sel = w.pending_sel();
    let sel_bit = 1u64 << word;
    if sel & sel_bit != 0 {
        return false;
    }
    w.set_pending_sel(sel | sel_bit);
    if w.upcall_pending() != 0 {
        return false;
    }
    w.set_upcall_pending(1);
    true
}

/// `evtchn_2l_clear_pending`.
fn clear_pending(w: &mut impl EventWords, port: u32) {
    let (word, bit) = word_bit(port);
    let p = w.pending(word);
    w.set_pending_word(word, p & !bit);
}

/// `evtchn_2l_unmask`: clears the mask bit; if the port was masked and is pending, raises
/// the selector and the upcall. Returns true when this raised the upcall.
pub fn unmask_port(w: &mut impl EventWords, port: u32) -> bool {
    let (word, bit) = word_bit(port);
    let m = w.mask(word);
    w.set_mask_word(word, m & !bit);
    if m & bit != 0 && w.pending(word) & bit != 0 {
        mark_sel(w, word)
    } else {
        false
    }
}

/// What `EVTCHNOP_status` reports (the `EVTCHNSTAT_*` value and its union).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status {
    /// `EVTCHNSTAT_*`.
    pub status: u32,
    /// `vcpu`.
    pub vcpu: u32,
    /// The union's first word (remote domain, or VIRQ), as Xen lays it out.
    pub a: u32,
    /// The union's second word (remote port).
    pub b: u32,
}

/// The event-channel table of one domain with one vCPU.
pub struct EventChannels {
    domid: u16,
    ports: [State; NR_PORTS],
    /// `d->valid_evtchns`: ports below this have an allocated bucket.
    valid: u32,
    virq_to_port: [u32; NR_VIRQS],
}

impl EventChannels {
    /// The table of a new domain `domid`: port 0 reserved, the first bucket valid.
    pub fn new(domid: u16) -> Self {
        let mut ports = [State::Free; NR_PORTS];
        ports[0] = State::Reserved;
        Self {
            domid,
            ports,
            valid: PORTS_PER_BUCKET,
            virq_to_port: [0; NR_VIRQS],
        }
    }

    /// The state of `port`, if it is in the table.
    pub fn state(&self, port: u32) -> Option<State> {
        self.ports.get(port as usize).copied()
    }

    /// Xen's `port_is_valid`.
    fn valid(&self, port: u32) -> bool {
        port < self.valid
    }

    /// Xen's `get_free_port`: the lowest free port, growing the valid range a bucket at a
    /// time; `-ENOSPC` past [`MAX_PORT`].
    fn free_port(&mut self) -> Result<u32, XenErrno> {
        for port in 0..=MAX_PORT {
            if !self.valid(port) {
                self.valid = (self.valid + PORTS_PER_BUCKET).min(NR_PORTS as u32);
                return Ok(port);
            }
            if self.ports[port as usize] == State::Free {
                return Ok(port);
            }
        }
        Err(err(XEN_ENOSPC))
    }

    /// Xen's domain lookup for a `domid` a guest names (`rcu_lock_domain_by_any_id`) plus
    /// the XSM dummy policy's `XSM_TARGET`: itself passes, domain 0 is refused `-EPERM`,
    /// other ids name no domain (`-ESRCH`).
    fn target(&self, dom: u16) -> Result<(), XenErrno> {
        if dom == abi::xen::DOMID_SELF || dom == self.domid {
            Ok(())
        } else if dom == 0 {
            Err(err(XEN_EPERM))
        } else {
            Err(err(XEN_ESRCH))
        }
    }

    /// `EVTCHNOP_alloc_unbound(dom, remote_dom)`: a port of `dom` (must be this domain) that
    /// `remote_dom` may bind to. Any remote id is accepted, as in Xen.
    pub fn alloc_unbound(&mut self, dom: u16, remote_dom: u16) -> Result<u32, XenErrno> {
        self.target(dom)?;
        let port = self.free_port()?;
        let remote = if remote_dom == abi::xen::DOMID_SELF {
            self.domid
        } else {
            remote_dom
        };
        self.ports[port as usize] = State::Unbound { remote };
        Ok(port)
    }

    /// A port of this domain that domain 0 allocates for itself to talk to it (what the
    /// toolstack does for the console and xenstore): unbound for domain 0.
    pub fn alloc_for_dom0(&mut self) -> Result<u32, XenErrno> {
        let port = self.free_port()?;
        self.ports[port as usize] = State::Unbound { remote: 0 };
        Ok(port)
    }

    /// Domain 0 binds its port `dom0_port` to this domain's unbound `port` (Xen's
    /// bind_interdomain from domain 0's side). `-EINVAL` unless `port` is unbound for 0.
    pub fn dom0_bind(&mut self, port: u32, dom0_port: u32) -> Result<(), XenErrno> {
        if !self.valid(port) || self.ports[port as usize] != (State::Unbound { remote: 0 }) {
            return Err(err(XEN_EINVAL));
        }
        self.ports[port as usize] = State::Interdomain(Remote::Dom0(dom0_port));
        Ok(())
    }

    /// `EVTCHNOP_bind_interdomain(remote_dom, remote_port)`: a new local port connected to
    /// the remote's unbound port; the new port is set pending (Xen does so for notifications
    /// lost while unbound). In Xen's order: an unknown remote domain is `-ESRCH`, then a free
    /// local port is taken (`-ENOSPC` wins over a bad remote port, and the port stays free
    /// on failure), then the remote port must be valid and unbound for this domain
    /// (`-EINVAL`). Binding to domain 0's ports: hv's domain 0 offers none unbound to this
    /// domain (`-EINVAL`). Another domU's port is bound through `w`'s [`EventPeers`].
    pub fn bind_interdomain(
        &mut self,
        w: &mut (impl EventWords + EventPeers),
        remote_dom: u16,
        remote_port: u32,
    ) -> Result<u32, XenErrno> {
        let rdom = if remote_dom == abi::xen::DOMID_SELF {
            self.domid
        } else {
            remote_dom
        };
        let foreign = rdom != self.domid && rdom != 0;
        if foreign && !w.peer_exists(rdom) {
            return Err(err(XEN_ESRCH));
        }
        let lport = self.free_port()?;
        if rdom == 0 {
            return Err(err(XEN_EINVAL));
        }
        if foreign {
            w.peer_bind(rdom, remote_port, self.domid, lport)?;
            self.ports[lport as usize] = State::Interdomain(Remote::Domain {
                dom: rdom,
                port: remote_port,
            });
            set_pending(w, lport);
            return Ok(lport);
        }
        if !self.valid(remote_port) {
            return Err(err(XEN_EINVAL));
        }
        match self.ports.get(remote_port as usize) {
            Some(State::Unbound { remote }) if *remote == self.domid => {}
            _ => return Err(err(XEN_EINVAL)),
        }
        if lport == remote_port {
            // Cannot happen: the remote port is not free.
            return Err(err(XEN_EINVAL));
        }
        self.ports[lport as usize] = State::Interdomain(Remote::Local(remote_port));
        self.ports[remote_port as usize] = State::Interdomain(Remote::Local(lport));
        set_pending(w, lport);
        Ok(lport)
    }

    /// The far side of another domain's `bind_interdomain`: binds this domain's `port` to
    /// (`ldom`, `lport`) if it is valid and unbound for `ldom`, else `-EINVAL`.
    pub fn accept_bind(&mut self, port: u32, ldom: u16, lport: u32) -> Result<(), XenErrno> {
        if !self.valid(port) {
            return Err(err(XEN_EINVAL));
        }
        match self.ports.get(port as usize) {
            Some(State::Unbound { remote }) if *remote == ldom => {
                self.ports[port as usize] = State::Interdomain(Remote::Domain {
                    dom: ldom,
                    port: lport,
                });
                Ok(())
            }
            _ => Err(err(XEN_EINVAL)),
        }
    }

    /// The peer (`ldom`, `lport`) of this domain's `port` closed its end or died: the port
    /// goes back to unbound for `ldom`, as `evtchn_close` leaves it. Nothing happens unless
    /// the port is connected to exactly that peer.
    pub fn peer_closed(&mut self, port: u32, ldom: u16, lport: u32) {
        if let Some(p) = self.ports.get_mut(port as usize)
            && *p
                == State::Interdomain(Remote::Domain {
                    dom: ldom,
                    port: lport,
                })
        {
            *p = State::Unbound { remote: ldom };
        }
    }

    /// The peer (`ldom`, `lport`) of this domain's `port` sent: the port is set pending if it
    /// is connected to exactly that peer. Whether the upcall was raised.
    pub fn peer_sent(&mut self, w: &mut impl EventWords, port: u32, ldom: u16, lport: u32) -> bool {
        match self.state(port) {
            Some(State::Interdomain(Remote::Domain { dom, port: p }))
                if dom == ldom && p == lport =>
            {
                set_pending(w, port)
            }
            _ => false,
        }
    }

    /// This domain's ports connected to other domUs: `(port, peer domain, peer port)`, for
    /// the domain's death (Xen's `evtchn_destroy` closes each).
    pub fn foreign(&self) -> impl Iterator<Item = (u32, u16, u32)> + '_ {
        self.ports.iter().enumerate().filter_map(|(i, s)| match *s {
            State::Interdomain(Remote::Domain { dom, port }) => Some((i as u32, dom, port)),
            _ => None,
        })
    }

    /// `EVTCHNOP_bind_virq(virq, vcpu)`.
    pub fn bind_virq(&mut self, virq: u32, vcpu: u32) -> Result<u32, XenErrno> {
        if virq as usize >= NR_VIRQS {
            return Err(err(XEN_EINVAL));
        }
        if virq_is_global(virq) && vcpu != 0 {
            return Err(err(XEN_EINVAL));
        }
        if vcpu != 0 {
            return Err(err(XEN_ENOENT));
        }
        if self.virq_to_port[virq as usize] != 0 {
            return Err(err(XEN_EEXIST));
        }
        let port = self.free_port()?;
        self.ports[port as usize] = State::Virq(virq);
        self.virq_to_port[virq as usize] = port;
        Ok(port)
    }

    /// `EVTCHNOP_bind_ipi(vcpu)`.
    pub fn bind_ipi(&mut self, vcpu: u32) -> Result<u32, XenErrno> {
        if vcpu != 0 {
            return Err(err(XEN_ENOENT));
        }
        let port = self.free_port()?;
        self.ports[port as usize] = State::Ipi;
        Ok(port)
    }

    /// `EVTCHNOP_close(port)`: the far end of a loopback pair, or another domU's port, goes
    /// back to unbound (for this domain); a domain-0 peer is told through the returned
    /// [`Closed`] so its service can drop it. The port's pending bit is cleared (Xen's
    /// `free_evtchn`).
    pub fn close(
        &mut self,
        w: &mut (impl EventWords + EventPeers),
        port: u32,
    ) -> Result<Closed, XenErrno> {
        if !self.valid(port) {
            return Err(err(XEN_EINVAL));
        }
        let mut closed = Closed::Local;
        match self.ports[port as usize] {
            State::Free | State::Reserved => return Err(err(XEN_EINVAL)),
            State::Unbound { .. } | State::Ipi => {}
            State::Virq(v) => {
                if let Some(slot) = self.virq_to_port.get_mut(v as usize)
                    && *slot == port
                {
                    *slot = 0;
                }
            }
            State::Interdomain(Remote::Local(peer)) => {
                if let Some(p) = self.ports.get_mut(peer as usize) {
                    *p = State::Unbound { remote: self.domid };
                }
            }
            State::Interdomain(Remote::Dom0(p)) => closed = Closed::Dom0(p),
            State::Interdomain(Remote::Domain { dom, port: rport }) => {
                w.peer_unbind(dom, rport, self.domid, port);
            }
        }
        clear_pending(w, port);
        self.ports[port as usize] = State::Free;
        Ok(closed)
    }

    /// `EVTCHNOP_send(port)`.
    pub fn send(
        &mut self,
        w: &mut (impl EventWords + EventPeers),
        port: u32,
    ) -> Result<Notify, XenErrno> {
        if !self.valid(port) {
            return Err(err(XEN_EINVAL));
        }
        match self.ports[port as usize] {
            State::Interdomain(Remote::Local(peer)) => {
                set_pending(w, peer);
                Ok(Notify::None)
            }
            State::Interdomain(Remote::Dom0(p)) => Ok(Notify::Dom0(p)),
            State::Interdomain(Remote::Domain { dom, port: rport }) => {
                w.peer_notify(dom, rport, self.domid, port);
                Ok(Notify::None)
            }
            State::Ipi => {
                set_pending(w, port);
                Ok(Notify::None)
            }
            // Silently dropped.
            State::Unbound { .. } => Ok(Notify::None),
            _ => Err(err(XEN_EINVAL)),
        }
    }

    /// Domain 0 (or hv itself) signals this domain's `port` (a service's notification).
    /// Returns whether the upcall was raised.
    pub fn notify_from_dom0(&mut self, w: &mut impl EventWords, port: u32) -> bool {
        match self.state(port) {
            Some(State::Interdomain(Remote::Dom0(_))) => set_pending(w, port),
            _ => false,
        }
    }

    /// Xen's `send_guest_vcpu_virq` for vCPU 0: sets the VIRQ's port pending, if bound.
    pub fn raise_virq(&mut self, w: &mut impl EventWords, virq: u32) -> bool {
        match self.virq_to_port.get(virq as usize) {
            Some(&port) if port != 0 => set_pending(w, port),
            _ => false,
        }
    }

    /// `EVTCHNOP_status(dom, port)`.
    pub fn status(&self, dom: u16, port: u32) -> Result<Status, XenErrno> {
        self.target(dom)?;
        if !self.valid(port) {
            return Err(err(XEN_EINVAL));
        }
        let (status, a, b) = match self.ports[port as usize] {
            State::Free | State::Reserved => (ec::EVTCHNSTAT_CLOSED, 0, 0),
            State::Unbound { remote } => (ec::EVTCHNSTAT_UNBOUND, u32::from(remote), 0),
            State::Interdomain(Remote::Local(p)) => {
                (ec::EVTCHNSTAT_INTERDOMAIN, u32::from(self.domid), p)
            }
            State::Interdomain(Remote::Dom0(p)) => (ec::EVTCHNSTAT_INTERDOMAIN, 0, p),
            State::Interdomain(Remote::Domain { dom, port }) => {
                (ec::EVTCHNSTAT_INTERDOMAIN, u32::from(dom), port)
            }
            State::Virq(v) => (ec::EVTCHNSTAT_VIRQ, v, 0),
            State::Ipi => (ec::EVTCHNSTAT_IPI, 0, 0),
        };
        Ok(Status {
            status,
            vcpu: 0,
            a,
            b,
        })
    }

    /// `EVTCHNOP_unmask(port)`: returns whether the upcall was raised.
    pub fn unmask(&mut self, w: &mut impl EventWords, port: u32) -> Result<bool, XenErrno> {
        if !self.valid(port) {
            return Err(err(XEN_EINVAL));
        }
        Ok(unmask_port(w, port))
    }

    /// `EVTCHNOP_bind_vcpu(port, vcpu)`: only vCPU 0 exists, so this changes nothing
    /// but answers as Xen does.
    pub fn bind_vcpu(&self, port: u32, vcpu: u32) -> Result<(), XenErrno> {
        if vcpu != 0 {
            return Err(err(XEN_ENOENT));
        }
        if !self.valid(port) {
            return Err(err(XEN_EINVAL));
        }
        match self.ports[port as usize] {
            State::Virq(v) if virq_is_global(v) => Ok(()),
            State::Unbound { .. } | State::Interdomain(_) => Ok(()),
            _ => Err(err(XEN_EINVAL)),
        }
    }

    /// Whether `port` is pending in the guest's words (for `SCHEDOP_poll`).
    pub fn is_pending(&self, w: &impl EventWords, port: u32) -> bool {
        let (word, bit) = word_bit(port);
        port < NR_PORTS as u32 && w.pending(word) & bit != 0
    }
}

/// Xen's `virq_is_global`: VIRQ_TIMER, DEBUG, XENOPROF and XENPMU are per vCPU; the arch
/// VIRQs are global on x86.
pub fn virq_is_global(virq: u32) -> bool {
    !matches!(
        virq,
        ec::VIRQ_TIMER | ec::VIRQ_DEBUG | ec::VIRQ_XENOPROF | ec::VIRQ_XENPMU
    )
}

#[cfg(test)]
pub(crate) mod tests;
