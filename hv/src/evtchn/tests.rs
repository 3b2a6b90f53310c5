//! Host tests of the event-channel table and the 2-level pending/mask rules.
#![allow(
    clippy::cast_possible_truncation,
    reason = "test fixtures: small known sizes and indexes, on 64-bit hosts only"
)]

use super::*;

/// The shared words as plain memory.
pub(crate) struct Words {
    pub pending: [u64; 64],
    pub mask: [u64; 64],
    pub sel: u64,
    pub upcall: u8,
}

impl Default for Words {
    fn default() -> Self {
        Self {
            pending: [0; 64],
            mask: [0; 64],
            sel: 0,
            upcall: 0,
        }
    }
}

impl EventWords for Words {
    fn pending(&self, word: usize) -> u64 {
        self.pending[word]
    }
    fn set_pending_word(&mut self, word: usize, value: u64) {
        self.pending[word] = value;
    }
    fn mask(&self, word: usize) -> u64 {
        self.mask[word]
    }
    fn set_mask_word(&mut self, word: usize, value: u64) {
        self.mask[word] = value;
    }
    fn pending_sel(&self) -> u64 {
        self.sel
    }
    fn set_pending_sel(&mut self, value: u64) {
        self.sel = value;
    }
    fn upcall_pending(&self) -> u8 {
        self.upcall
    }
    fn set_upcall_pending(&mut self, value: u8) {
        self.upcall = value;
    }
}

/// A domain alone: no other domU.
impl EventPeers for Words {}

const SELF: u16 = abi::xen::DOMID_SELF;

#[test]
fn loopback_pair_as_xen() {
    let mut t = EventChannels::new(1);
    let mut w = Words::default();
    let a = t.alloc_unbound(SELF, SELF).unwrap();
    assert_eq!(a, 1);
    assert_eq!(t.status(SELF, a).unwrap().status, ec::EVTCHNSTAT_UNBOUND);
    assert_eq!(t.status(SELF, a).unwrap().a, 1);
    let b = t.bind_interdomain(&mut w, SELF, a).unwrap();
    assert_eq!(b, 2);
    // The new port is pending, and (unmasked) raised the upcall.
    assert_eq!(w.pending[0], 1 << b);
    assert_eq!((w.sel, w.upcall), (1, 1));
    let sa = t.status(SELF, a).unwrap();
    let sb = t.status(1, b).unwrap();
    assert_eq!((sa.status, sa.a, sa.b), (ec::EVTCHNSTAT_INTERDOMAIN, 1, b));
    assert_eq!((sb.status, sb.a, sb.b), (ec::EVTCHNSTAT_INTERDOMAIN, 1, a));
    assert_eq!(t.send(&mut w, b), Ok(Notify::None));
    assert_eq!(w.pending[0], (1 << a) | (1 << b));
    // Closing b leaves a unbound for this domain; b is closed and not pending.
    assert_eq!(t.close(&mut w, b), Ok(Closed::Local));
    assert_eq!(w.pending[0], 1 << a);
    assert_eq!(t.status(SELF, a).unwrap().status, ec::EVTCHNSTAT_UNBOUND);
    assert_eq!(t.status(SELF, b).unwrap().status, ec::EVTCHNSTAT_CLOSED);
    // Sending on an unbound port is silently dropped; on a closed one -EINVAL.
    assert_eq!(t.send(&mut w, a), Ok(Notify::None));
    assert_eq!(t.send(&mut w, b), Err(-22));
    assert_eq!(t.close(&mut w, b), Err(-22));
    assert_eq!(t.close(&mut w, 0), Err(-22));
    assert_eq!(t.close(&mut w, a), Ok(Closed::Local));
}

#[test]
fn errno_values() {
    let mut t = EventChannels::new(1);
    let mut w = Words::default();
    assert_eq!(t.alloc_unbound(0, SELF), Err(-1));
    assert_eq!(t.alloc_unbound(7, SELF), Err(-3));
    assert_eq!(t.status(0, 1), Err(-1));
    assert_eq!(t.status(9, 1), Err(-3));
    // Valid bucket, free port: closed; beyond the bucket: -EINVAL.
    assert_eq!(t.status(SELF, 63).unwrap().status, ec::EVTCHNSTAT_CLOSED);
    assert_eq!(t.status(SELF, 64), Err(-22));
    assert_eq!(t.status(SELF, u32::MAX), Err(-22));
    assert_eq!(t.send(&mut w, 4096), Err(-22));
    assert_eq!(t.unmask(&mut w, 64), Err(-22));
    assert_eq!(t.bind_interdomain(&mut w, 5, 1), Err(-3));
    assert_eq!(t.bind_interdomain(&mut w, 0, 1), Err(-22));
    assert_eq!(t.bind_interdomain(&mut w, SELF, 3), Err(-22));
    assert_eq!(t.bind_interdomain(&mut w, SELF, 100_000), Err(-22));
    assert_eq!(t.bind_virq(24, 0), Err(-22));
    assert_eq!(t.bind_virq(ec::VIRQ_CONSOLE, 1), Err(-22));
    assert_eq!(t.bind_virq(ec::VIRQ_TIMER, 1), Err(-2));
    assert_eq!(t.bind_ipi(1), Err(-2));
    let p = t.bind_virq(ec::VIRQ_TIMER, 0).unwrap();
    assert_eq!(t.bind_virq(ec::VIRQ_TIMER, 0), Err(-17));
    let s = t.status(SELF, p).unwrap();
    assert_eq!((s.status, s.a), (ec::EVTCHNSTAT_VIRQ, ec::VIRQ_TIMER));
    // VIRQ ports cannot be sent on.
    assert_eq!(t.send(&mut w, p), Err(-22));
    assert!(t.raise_virq(&mut w, ec::VIRQ_TIMER));
    t.close(&mut w, p).unwrap();
    assert!(!t.raise_virq(&mut w, ec::VIRQ_TIMER));
    assert_eq!(t.bind_virq(ec::VIRQ_TIMER, 0), Ok(p));
    // A port unbound for someone else cannot be bound by us.
    let q = t.alloc_unbound(SELF, 0).unwrap();
    assert_eq!(t.bind_interdomain(&mut w, SELF, q), Err(-22));
}

#[test]
fn ipi_sends_to_itself() {
    let mut t = EventChannels::new(1);
    let mut w = Words::default();
    let p = t.bind_ipi(0).unwrap();
    assert_eq!(t.status(SELF, p).unwrap().status, ec::EVTCHNSTAT_IPI);
    t.send(&mut w, p).unwrap();
    assert!(t.is_pending(&w, p));
}

#[test]
fn limit_is_1023_ports() {
    let mut t = EventChannels::new(1);
    for want in 1..=MAX_PORT {
        assert_eq!(t.alloc_unbound(SELF, 0), Ok(want));
    }
    assert_eq!(t.alloc_unbound(SELF, 0), Err(-28));
    assert_eq!(t.bind_ipi(0), Err(-28));
    assert_eq!(t.status(SELF, 1023).unwrap().status, ec::EVTCHNSTAT_UNBOUND);
    assert_eq!(t.status(SELF, 1024), Err(-22));
    let mut w = Words::default();
    t.close(&mut w, 500).unwrap();
    assert_eq!(t.bind_ipi(0), Ok(500));
}

#[test]
fn pending_mask_rules() {
    let mut w = Words::default();
    // Masked: pending only.
    w.mask[1] = 1 << 3;
    assert!(!set_pending(&mut w, 67));
    assert_eq!((w.pending[1], w.sel, w.upcall), (1 << 3, 0, 0));
    // Unmask: the held event raises the selector and the upcall.
    assert!(unmask_port(&mut w, 67));
    assert_eq!((w.mask[1], w.sel, w.upcall), (0, 1 << 1, 1));
    // Already pending: nothing more.
    assert!(!set_pending(&mut w, 67));
    // The guest acknowledged the upcall but not the selector: no second upcall.
    w.upcall = 0;
    assert!(!set_pending(&mut w, 68));
    assert_eq!(w.upcall, 0);
    // Unmasking an unmasked port does nothing.
    w.pending = [0; 64];
    w.sel = 0;
    assert!(!unmask_port(&mut w, 5));
    assert_eq!((w.sel, w.upcall), (0, 0));
    // Unmasking a masked port that is not pending clears the mask only.
    w.mask[0] = 1 << 5;
    assert!(!unmask_port(&mut w, 5));
    assert_eq!((w.mask[0], w.sel), (0, 0));
}

#[test]
fn dom0_ports() {
    let mut t = EventChannels::new(1);
    let mut w = Words::default();
    let store = t.alloc_for_dom0().unwrap();
    let console = t.alloc_for_dom0().unwrap();
    assert_eq!((store, console), (1, 2));
    t.dom0_bind(store, 11).unwrap();
    t.dom0_bind(console, 12).unwrap();
    assert_eq!(t.dom0_bind(console, 13), Err(-22));
    assert_eq!(t.send(&mut w, console), Ok(Notify::Dom0(12)));
    let s = t.status(SELF, console).unwrap();
    assert_eq!((s.status, s.a, s.b), (ec::EVTCHNSTAT_INTERDOMAIN, 0, 12));
    assert!(t.notify_from_dom0(&mut w, store));
    assert!(!t.notify_from_dom0(&mut w, 3));
    assert_eq!(t.close(&mut w, console), Ok(Closed::Dom0(12)));
}

proptest::proptest! {
    /// Any sequence of operations with hostile arguments and hostile shared words: no
    /// panic, the table stays consistent (connected ports point at each other, VIRQ map
    /// agrees), and every error is one of Xen's.
    #[test]
    fn hostile_sequences(
        ops in proptest::collection::vec(
            (0u8..9, proptest::prop_oneof![0u32..70, 1000u32..1100, proptest::num::u32::ANY],
             proptest::prop_oneof![0u16..3, proptest::num::u16::ANY]),
            0..300),
        junk in proptest::collection::vec(proptest::num::u64::ANY, 0..8),
    ) {
        let mut t = EventChannels::new(1);
        let mut w = Words::default();
        for (i, (op, n, dom)) in ops.into_iter().enumerate() {
            if let Some(j) = junk.get(i % 8) {
                w.mask[i % 64] ^= *j;
                w.sel ^= j.rotate_left(7);
            }
            let r: Result<(), XenErrno> = match op {
                0 => t.alloc_unbound(dom, dom).map(|_| ()),
                1 => t.bind_interdomain(&mut w, dom, n).map(|_| ()),
                2 => t.bind_virq(n % 30, n / 30 % 2).map(|_| ()),
                3 => t.bind_ipi(n % 2).map(|_| ()),
                4 => t.close(&mut w, n).map(|_| ()),
                5 => t.send(&mut w, n).map(|_| ()),
                6 => t.status(dom, n).map(|_| ()),
                7 => t.unmask(&mut w, n).map(|_| ()),
                _ => { t.raise_virq(&mut w, n); Ok(()) }
            };
            if let Err(e) = r {
                proptest::prop_assert!([-1, -2, -3, -17, -22, -28].contains(&e), "errno {}", e);
            }
        }
        for p in 0..NR_PORTS as u32 {
            match t.state(p).unwrap() {
                State::Interdomain(Remote::Local(q)) => {
                    proptest::prop_assert_eq!(t.state(q), Some(State::Interdomain(Remote::Local(p))));
                }
                State::Virq(v) => proptest::prop_assert_eq!(t.virq_to_port[v as usize], p),
                State::Reserved => proptest::prop_assert_eq!(p, 0),
                _ => {}
            }
            proptest::prop_assert!(p < t.valid || t.state(p) == Some(State::Free));
        }
    }
}

/// One domain's words with another domain (its table and words) behind [`EventPeers`].
struct WithPeer<'a> {
    words: &'a mut Words,
    peer: &'a mut EventChannels,
    peer_words: &'a mut Words,
    peer_id: u16,
}

impl EventWords for WithPeer<'_> {
    fn pending(&self, word: usize) -> u64 {
        self.words.pending(word)
    }
    fn set_pending_word(&mut self, word: usize, value: u64) {
        self.words.set_pending_word(word, value);
    }
    fn mask(&self, word: usize) -> u64 {
        self.words.mask(word)
    }
    fn set_mask_word(&mut self, word: usize, value: u64) {
        self.words.set_mask_word(word, value);
    }
    fn pending_sel(&self) -> u64 {
        self.words.pending_sel()
    }
    fn set_pending_sel(&mut self, value: u64) {
        self.words.set_pending_sel(value);
    }
    fn upcall_pending(&self) -> u8 {
        self.words.upcall_pending()
    }
    fn set_upcall_pending(&mut self, value: u8) {
        self.words.set_upcall_pending(value);
    }
}

impl EventPeers for WithPeer<'_> {
    fn peer_exists(&self, dom: u16) -> bool {
        dom == self.peer_id
    }
    fn peer_bind(&mut self, rdom: u16, rport: u32, ldom: u16, lport: u32) -> Result<(), XenErrno> {
        if rdom != self.peer_id {
            return Err(err(XEN_ESRCH));
        }
        self.peer.accept_bind(rport, ldom, lport)
    }
    fn peer_unbind(&mut self, rdom: u16, rport: u32, ldom: u16, lport: u32) {
        if rdom == self.peer_id {
            self.peer.peer_closed(rport, ldom, lport);
        }
    }
    fn peer_notify(&mut self, rdom: u16, rport: u32, ldom: u16, lport: u32) {
        if rdom == self.peer_id {
            self.peer.peer_sent(self.peer_words, rport, ldom, lport);
        }
    }
}

#[test]
fn two_domains_bind_send_and_close_as_xen() {
    // Domain 1 offers a port to domain 2; domain 3 does not exist.
    let (mut d1, mut d2) = (EventChannels::new(1), EventChannels::new(2));
    let (mut w1, mut w2) = (Words::default(), Words::default());
    let offer = d1.alloc_unbound(SELF, 2).unwrap();
    let other = d1.alloc_unbound(SELF, 3).unwrap();
    let mut from2 = WithPeer {
        words: &mut w2,
        peer: &mut d1,
        peer_words: &mut w1,
        peer_id: 1,
    };
    // Xen's order: an unknown domain, then the port checks.
    assert_eq!(
        d2.bind_interdomain(&mut from2, 3, offer),
        Err(err(XEN_ESRCH))
    );
    assert_eq!(
        d2.bind_interdomain(&mut from2, 1, 999),
        Err(err(XEN_EINVAL))
    );
    assert_eq!(
        d2.bind_interdomain(&mut from2, 1, other),
        Err(err(XEN_EINVAL)),
        "not ours"
    );
    let accept = d2.bind_interdomain(&mut from2, 1, offer).unwrap();
    // The failed binds left no port taken: the first free one was used.
    assert_eq!(accept, 1);
    assert_eq!(
        from2.words.pending[0],
        1 << accept,
        "the new port is pending"
    );
    assert_eq!(
        d2.bind_interdomain(&mut from2, 1, offer),
        Err(err(XEN_EINVAL)),
        "bound once only"
    );
    let s = d2.status(SELF, accept).unwrap();
    assert_eq!((s.status, s.a, s.b), (ec::EVTCHNSTAT_INTERDOMAIN, 1, offer));
    let s = d1.status(SELF, offer).unwrap();
    assert_eq!(
        (s.status, s.a, s.b),
        (ec::EVTCHNSTAT_INTERDOMAIN, 2, accept)
    );
    // A send reaches the peer's port only.
    let mut from2 = WithPeer {
        words: &mut w2,
        peer: &mut d1,
        peer_words: &mut w1,
        peer_id: 1,
    };
    assert_eq!(d2.send(&mut from2, accept), Ok(Notify::None));
    assert_eq!(w1.pending[0], 1 << offer);
    assert_eq!(w1.upcall, 1);
    // Domain 1 sends back.
    w2.pending[0] = 0;
    let mut from1 = WithPeer {
        words: &mut w1,
        peer: &mut d2,
        peer_words: &mut w2,
        peer_id: 2,
    };
    assert_eq!(d1.send(&mut from1, offer), Ok(Notify::None));
    assert_eq!(w2.pending[0], 1 << accept);
    // Closing domain 2's end leaves domain 1's port unbound for domain 2 (evtchn_close).
    let mut from2 = WithPeer {
        words: &mut w2,
        peer: &mut d1,
        peer_words: &mut w1,
        peer_id: 1,
    };
    assert_eq!(d2.close(&mut from2, accept), Ok(Closed::Local));
    assert_eq!(d2.state(accept), Some(State::Free));
    // ... and it can be bound again.
    let again = d2.bind_interdomain(&mut from2, 1, offer);
    assert_eq!(again, Ok(accept));
    d2.close(&mut from2, accept).unwrap();
    assert_eq!(d1.state(offer), Some(State::Unbound { remote: 2 }));
    let mut from2 = WithPeer {
        words: &mut w2,
        peer: &mut d1,
        peer_words: &mut w1,
        peer_id: 1,
    };
    assert_eq!(d2.bind_interdomain(&mut from2, 1, offer), Ok(accept));
    assert_eq!(d2.foreign().collect::<Vec<_>>(), [(accept, 1, offer)]);
    // A stale peer closing does not touch a port connected elsewhere.
    d1.peer_closed(offer, 2, accept + 5);
    assert_eq!(
        d1.state(offer),
        Some(State::Interdomain(Remote::Domain {
            dom: 2,
            port: accept
        }))
    );
    d1.peer_closed(offer, 2, accept);
    assert_eq!(d1.state(offer), Some(State::Unbound { remote: 2 }));
}
