//! Tests of the 2-level scan, unmask rule and handler table against fake shared words.
#![allow(clippy::arithmetic_side_effects)] // test arithmetic on small known values

use super::*;
use core::cell::Cell;
use proptest::prelude::*;

struct FakeWords {
    upcall: Cell<bool>,
    sel: Cell<u64>,
    pending: [Cell<u64>; WORDS],
    mask: [Cell<u64>; WORDS],
}

impl Default for FakeWords {
    fn default() -> Self {
        Self {
            upcall: Cell::new(false),
            sel: Cell::new(0),
            pending: core::array::from_fn(|_| Cell::new(0)),
            mask: core::array::from_fn(|_| Cell::new(0)),
        }
    }
}

impl FakeWords {
    /// What Xen does when it sets an event: pending bit, then (if unmasked) sel and upcall.
    fn raise(&self, port: u32) {
        let p = Port::try_new(port).unwrap();
        let w = p.word();
        self.pending[w].set(self.pending[w].get() | p.bit());
        if self.mask[w].get() & p.bit() == 0 {
            self.sel.set(self.sel.get() | 1 << w);
            self.upcall.set(true);
        }
    }
    fn is_pending(&self, port: u32) -> bool {
        let p = Port::try_new(port).unwrap();
        self.pending[p.word()].get() & p.bit() != 0
    }
    fn set_masked(&self, port: u32) {
        mask(self, Port::try_new(port).unwrap());
    }
}

impl EventWords for FakeWords {
    fn clear_upcall_pending(&self) {
        self.upcall.set(false);
    }
    fn upcall_pending(&self) -> bool {
        self.upcall.get()
    }
    fn take_pending_sel(&self) -> u64 {
        self.sel.replace(0)
    }
    fn pending(&self, word: usize) -> u64 {
        self.pending[word].get()
    }
    fn mask(&self, word: usize) -> u64 {
        self.mask[word].get()
    }
    fn clear_pending(&self, word: usize, bits: u64) {
        self.pending[word].set(self.pending[word].get() & !bits);
    }
    fn set_mask(&self, word: usize, bits: u64) {
        self.mask[word].set(self.mask[word].get() | bits);
    }
    fn clear_mask(&self, word: usize, bits: u64) {
        self.mask[word].set(self.mask[word].get() & !bits);
    }
}

fn scan_all(scanner: &mut EventScanner, words: &FakeWords) -> Vec<u32> {
    let mut out = Vec::new();
    scanner.scan(words, |p| out.push(p.get()));
    out
}

#[test]
fn port_validation() {
    assert_eq!(Port::try_new(4095).unwrap().get(), 4095);
    assert!(Port::try_new(4096).is_err());
    assert!(Port::try_new(u32::MAX).is_err());
    let p = Port::try_new(130).unwrap();
    assert_eq!((p.word(), p.bit()), (2, 1 << 2));
}

#[test]
fn pending_port_is_delivered_once_and_cleared() {
    let w = FakeWords::default();
    w.raise(70);
    let mut s = EventScanner::new();
    assert_eq!(scan_all(&mut s, &w), vec![70]);
    assert!(!w.is_pending(70));
    assert_eq!(scan_all(&mut s, &w), Vec::<u32>::new());
}

#[test]
fn masked_port_stays_pending_and_unmask_asks_for_hypercall() {
    let w = FakeWords::default();
    w.set_masked(9);
    w.raise(9);
    // A masked event does not set sel; force the word into sel to prove the mask is honoured.
    w.sel.set(1);
    let mut s = EventScanner::new();
    assert_eq!(scan_all(&mut s, &w), Vec::<u32>::new());
    assert!(w.is_pending(9));
    let p = Port::try_new(9).unwrap();
    assert_eq!(unmask(&w, p), UnmaskAction::Hypercall);
    assert_ne!(
        w.mask[0].get() & p.bit(),
        0,
        "re-masked until EVTCHNOP_unmask"
    );
}

#[test]
fn unmask_of_idle_port_is_local() {
    let w = FakeWords::default();
    w.set_masked(3);
    assert_eq!(unmask(&w, Port::try_new(3).unwrap()), UnmaskAction::Done);
    assert_eq!(w.mask[0].get(), 0);
}

#[test]
fn scan_resumes_after_last_served_port() {
    let w = FakeWords::default();
    let mut s = EventScanner::new();
    w.raise(5);
    assert_eq!(scan_all(&mut s, &w), vec![5]);
    w.raise(3);
    w.raise(7);
    w.raise(64 * 10);
    assert_eq!(scan_all(&mut s, &w), vec![7, 640, 3]);
}

#[test]
fn busy_low_port_does_not_starve_high_port() {
    let w = FakeWords::default();
    let mut s = EventScanner::new();
    w.raise(0);
    w.raise(4095);
    let mut order = Vec::new();
    // The handler of port 0 re-raises it every time (a busy device).
    s.upcall(&w, 3, |p| {
        order.push(p.get());
        if p.get() == 0 {
            w.raise(0);
        }
    });
    // 4095 is served in the first round, right after the busy port, exactly once.
    assert_eq!(&order[..2], &[0, 4095]);
    assert_eq!(order.iter().filter(|&&p| p == 4095).count(), 1);
    // Each round serves the busy port at most twice (its word is scanned twice, as in Linux).
    assert!(order.len() <= 2 * 3 + 1);
}

#[test]
fn upcall_rounds_are_bounded() {
    let w = FakeWords::default();
    let mut s = EventScanner::new();
    w.raise(1);
    let n = s.upcall(&w, 5, |p| w.raise(p.get()));
    // Five rounds, each delivering the re-raised port once or twice, then give up.
    assert!((5..=10).contains(&n), "{n}");
    assert!(w.upcall_pending());
}

#[test]
fn handler_table_binds_dispatches_unbinds() {
    let mut t: HandlerTable<u32> = HandlerTable::new();
    let p = Port::try_new(12).unwrap();
    assert_eq!(t.dispatch(p, |h| *h), Err(EvtchnError::NotBound(p)));
    t.bind(p, 7).unwrap();
    assert_eq!(t.bind(p, 8), Err(EvtchnError::AlreadyBound(p)));
    assert_eq!(
        t.dispatch(p, |h| {
            *h += 1;
            *h
        }),
        Ok(8)
    );
    assert!(t.is_bound(p));
    assert_eq!(t.len(), 1);
    assert_eq!(t.unbind(p), Ok(8));
    assert_eq!(t.unbind(p), Err(EvtchnError::NotBound(p)));
    assert!(t.is_empty());
}

proptest! {
    /// Every pending, unmasked port of a selected word is delivered exactly once, in ascending
    /// order rotated to start at the scanner's saved position; masked ports stay pending.
    #[test]
    fn scan_delivers_rotation_of_active_ports(
        pending in proptest::collection::vec(any::<u64>(), WORDS),
        masks in proptest::collection::vec(any::<u64>(), WORDS),
        sel in any::<u64>(),
        warmup in 0u32..NR_CHANNELS,
    ) {
        let w = FakeWords::default();
        let mut s = EventScanner::new();
        // Position the scanner by serving one port first.
        w.raise(warmup);
        prop_assert_eq!(scan_all(&mut s, &w), vec![warmup]);
        let start = (warmup + 1) % NR_CHANNELS;
        for i in 0..WORDS {
            w.pending[i].set(pending[i]);
            w.mask[i].set(masks[i]);
        }
        w.sel.set(sel);
        let mut expected: Vec<u32> = (0..NR_CHANNELS)
            .filter(|&p| {
                let port = Port::try_new(p).unwrap();
                sel & (1 << port.word()) != 0 && pending[port.word()] & !masks[port.word()] & port.bit() != 0
            })
            .collect();
        expected.sort_by_key(|&p| (p + NR_CHANNELS - start) % NR_CHANNELS);
        let got = scan_all(&mut s, &w);
        prop_assert_eq!(&got, &expected);
        for i in 0..WORDS {
            let remaining = if sel & (1 << i) != 0 { pending[i] & masks[i] } else { pending[i] };
            prop_assert_eq!(w.pending[i].get(), remaining);
        }
    }
}

/// The event words as Xen 4.17 keeps them, with Xen's exact rules, and Xen raising events
/// between any two of the guest's accesses.
///
/// `evtchn_2l_set_pending`: `test_and_set` the pending bit (already set: nothing more); if
/// unmasked, `test_and_set` the word's `evtchn_pending_sel` bit (already set: nothing more);
/// then `vcpu_mark_events_pending`, which kicks the vCPU only on `evtchn_upcall_pending`'s
/// 0→1 transition. `evtchn_2l_unmask` (`EVTCHNOP_unmask`): if the mask bit was set, clear it,
/// and if the port is pending, the same sel/upcall steps. `hvm_vcpu_has_pending_irq`
/// re-injects the callback vector for as long as `evtchn_upcall_pending` is set, and
/// `SCHEDOP_block` (an HVM `hlt` with IF=1) returns at once while it is set: so a vCPU blocks
/// for good exactly when it halts with the flag clear and no later event gets past the two
/// `test_and_set`s above.
struct XenWords {
    inner: FakeWords,
    /// Guest accesses so far (the interleaving clock).
    step: Cell<usize>,
    /// Ports Xen raises before guest access number `.0`.
    raises: core::cell::RefCell<Vec<(usize, u32)>>,
    /// Per port: the step of its last raise, and of its last delivery.
    last_raise: core::cell::RefCell<std::collections::BTreeMap<u32, usize>>,
    last_delivery: core::cell::RefCell<std::collections::BTreeMap<u32, usize>>,
    kicks: Cell<usize>,
}

impl XenWords {
    fn new(mut raises: Vec<(usize, u32)>) -> Self {
        raises.sort_unstable();
        raises.reverse();
        Self {
            inner: FakeWords::default(),
            step: Cell::new(0),
            raises: core::cell::RefCell::new(raises),
            last_raise: Default::default(),
            last_delivery: Default::default(),
            kicks: Cell::new(0),
        }
    }

    /// `evtchn_2l_set_pending` + `vcpu_mark_events_pending`.
    fn xen_set_pending(&self, port: u32) {
        let p = Port::try_new(port).unwrap();
        let w = p.word();
        self.last_raise.borrow_mut().insert(port, self.step.get());
        let old = self.inner.pending[w].get();
        self.inner.pending[w].set(old | p.bit());
        if old & p.bit() != 0 {
            return;
        }
        self.mark_if_unmasked(p);
    }

    /// The sel/upcall steps shared by set_pending and unmask.
    fn mark_if_unmasked(&self, p: Port) {
        let w = p.word();
        if self.inner.mask[w].get() & p.bit() != 0 {
            return;
        }
        let sel = self.inner.sel.get();
        self.inner.sel.set(sel | 1 << w);
        if sel & (1 << w) != 0 {
            return;
        }
        if !self.inner.upcall.replace(true) {
            self.kicks.set(self.kicks.get() + 1);
        }
    }

    /// `EVTCHNOP_unmask` (`evtchn_2l_unmask`).
    fn xen_unmask(&self, port: Port) {
        self.tick();
        let w = port.word();
        let mask = self.inner.mask[w].get();
        if mask & port.bit() == 0 {
            return;
        }
        self.inner.mask[w].set(mask & !port.bit());
        if self.inner.pending[w].get() & port.bit() != 0 {
            self.mark_if_unmasked(port);
        }
    }

    /// One guest access: Xen first raises what is due.
    fn tick(&self) {
        let now = self.step.get();
        loop {
            let due = self
                .raises
                .borrow()
                .last()
                .is_some_and(|&(at, _)| at <= now);
            if !due {
                break;
            }
            let (_, port) = self.raises.borrow_mut().pop().unwrap();
            self.xen_set_pending(port);
        }
        self.step.set(now + 1);
    }

    fn delivered(&self, port: Port) {
        self.last_delivery
            .borrow_mut()
            .insert(port.get(), self.step.get());
    }

    /// The vCPU until it halts for good: Xen injects the upcall while the flag is set (every
    /// upcall limited to `rounds`), the guest idles otherwise, and Xen raises the rest of the
    /// schedule meanwhile (a halted vCPU is woken only by a kick). Returns whether it ended
    /// halted with every raised port delivered after its last raise.
    fn run(&self, scanner: &mut EventScanner, rounds: u32) -> bool {
        let mut idle_steps = 0;
        loop {
            if self.inner.upcall.get() {
                scanner.upcall(self, rounds, |p| self.delivered(p));
                continue;
            }
            // Halted with the flag clear: only a kick (a later raise) wakes it.
            if self.raises.borrow().is_empty() {
                break;
            }
            let kicks = self.kicks.get();
            self.tick();
            idle_steps += 1;
            assert!(idle_steps < 100_000);
            if self.kicks.get() == kicks && !self.inner.upcall.get() {
                continue; // still halted
            }
        }
        let raised = self.last_raise.borrow();
        let delivered = self.last_delivery.borrow();
        raised
            .iter()
            .all(|(port, at)| delivered.get(port).is_some_and(|d| d >= at))
    }
}

impl EventWords for XenWords {
    fn clear_upcall_pending(&self) {
        self.tick();
        self.inner.clear_upcall_pending();
    }
    fn upcall_pending(&self) -> bool {
        self.tick();
        self.inner.upcall_pending()
    }
    fn take_pending_sel(&self) -> u64 {
        self.tick();
        self.inner.take_pending_sel()
    }
    fn pending(&self, word: usize) -> u64 {
        self.tick();
        self.inner.pending(word)
    }
    fn mask(&self, word: usize) -> u64 {
        self.tick();
        self.inner.mask(word)
    }
    fn clear_pending(&self, word: usize, bits: u64) {
        self.tick();
        self.inner.clear_pending(word, bits);
    }
    fn set_mask(&self, word: usize, bits: u64) {
        self.tick();
        self.inner.set_mask(word, bits);
    }
    fn clear_mask(&self, word: usize, bits: u64) {
        self.tick();
        self.inner.clear_mask(word, bits);
    }
}

/// The ports of the device boot's hot path: timer, vif and block ports in word 0, one far
/// port (another word), and bit 63 (the word's last bit, where the scan moves on).
const HOT_PORTS: [u32; 6] = [1, 5, 6, 7, 63, 130];

#[test]
fn upcall_that_gives_up_with_the_flag_set_loses_nothing_on_xen() {
    // One round per upcall, Xen raising the timer port again during every scan: each upcall
    // returns with `evtchn_upcall_pending` set, and Xen's re-injection finishes the work.
    let raises = (0..200)
        .map(|i| (i * 3, HOT_PORTS[i % HOT_PORTS.len()]))
        .collect();
    let w = XenWords::new(raises);
    let mut s = EventScanner::new();
    assert!(w.run(&mut s, 1));
    assert_eq!(w.inner.sel.get(), 0);
    assert!(!w.inner.upcall.get());
}

proptest! {
    /// Whatever Xen raises between whichever of the guest's accesses, and however few scan
    /// rounds an upcall makes: when the vCPU halts with `evtchn_upcall_pending` clear, every
    /// port raised has been delivered after its last raise, and the words are such that the
    /// next raise of any unmasked port kicks the vCPU (its pending bit and the sel word clear).
    #[test]
    fn no_raise_is_lost_between_scans_on_xen(
        raises in proptest::collection::vec((0usize..400, 0usize..HOT_PORTS.len()), 1..60),
        rounds in 1u32..4,
        warmup in 0u32..NR_CHANNELS,
    ) {
        let raises = raises.into_iter().map(|(at, i)| (at, HOT_PORTS[i])).collect();
        let w = XenWords::new(raises);
        let mut s = EventScanner::new();
        // Position the scanner anywhere first.
        w.inner.raise(warmup);
        s.upcall(&w.inner, 8, |_| {});
        prop_assert!(w.run(&mut s, rounds));
        prop_assert_eq!(w.inner.sel.get(), 0);
        for port in HOT_PORTS {
            prop_assert!(!w.inner.is_pending(port), "port {} left pending", port);
        }
    }

    /// The unmask rule against Xen: a port raised while masked (pending, no sel bit), then
    /// unmasked by the kernel's rule with Xen raising it again at any step, is delivered.
    #[test]
    fn unmask_of_held_port_is_delivered_on_xen(
        port_index in 0usize..HOT_PORTS.len(),
        again_at in 0usize..12,
        rounds in 1u32..4,
    ) {
        let port = Port::try_new(HOT_PORTS[port_index]).unwrap();
        let w = XenWords::new(vec![(again_at, port.get())]);
        w.inner.set_masked(port.get());
        w.xen_set_pending(port.get());
        prop_assert_eq!(w.inner.sel.get(), 0);
        if unmask(&w, port) == UnmaskAction::Hypercall {
            w.xen_unmask(port);
        }
        let mut s = EventScanner::new();
        prop_assert!(w.run(&mut s, rounds));
        prop_assert!(!w.inner.is_pending(port.get()));
    }
}
