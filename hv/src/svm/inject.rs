//! Event injection decisions for the upcall vector, with QEMU's EVENTINJ quirks: QEMU
//! delivers EVENTINJ whatever the guest's IF, records an interrupted interrupt in EXITINTINFO
//! as type 3 (exception), and rejects a type-3 injection of a vector of 31 or more with
//! VMEXIT_INVALID. So hv checks IF and the interrupt shadow itself, asks for the VINTR
//! window when the guest cannot take the vector yet, and re-injects vectors of 32 and more
//! as type 0 (external interrupt).

/// EVENTINJ / EXITINTINFO: valid.
pub const EVENT_VALID: u64 = 1 << 31;
/// EVENTINJ type field (bits 10:8).
const TYPE_MASK: u64 = 7 << 8;
/// Type 3: exception.
const TYPE_EXCEPTION: u64 = 3 << 8;

/// `vintr`: V_IRQ (bit 8), a virtual interrupt is pending.
pub const V_IRQ: u64 = 1 << 8;
/// `vintr`: V_INTR_PRIO (bits 19:16).
pub const V_INTR_PRIO_MASK: u64 = 0xf << 16;
/// `vintr`: V_IGN_TPR (bit 20).
pub const V_IGN_TPR: u64 = 1 << 20;

/// RFLAGS.IF.
const RFLAGS_IF: u64 = 1 << 9;

/// An external interrupt (type 0) of `vector`, for EVENTINJ.
pub const fn interrupt_event(vector: u8) -> u64 {
    vector as u64 | EVENT_VALID
}

/// What to put in EVENTINJ for an EXITINTINFO the exit left: nothing if not valid; a
/// type-3 event of vector 32 or more (an interrupted interrupt, as QEMU records it) as
/// type 0; anything else as it is.
pub const fn reinjection(exitintinfo: u64) -> u64 {
    if exitintinfo & EVENT_VALID == 0 {
        return 0;
    }
    let vector = exitintinfo & 0xff;
    if exitintinfo & TYPE_MASK == TYPE_EXCEPTION && vector >= 32 {
        // Keep only the vector and valid bit: an interrupt has no error code.
        vector | EVENT_VALID
    } else {
        exitintinfo
    }
}

/// What to do about a pending upcall before VMRUN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Upcall {
    /// Nothing to deliver (no upcall pending, no usable vector, or an event is already
    /// being injected: it goes first, the upcall waits for the next entry).
    None,
    /// Inject this EVENTINJ value.
    Inject(u64),
    /// The guest cannot take it now: request the VINTR window (set V_IRQ).
    Window,
}

/// Decides the upcall: `pending` is `vcpu_info.evtchn_upcall_pending != 0`, `vector` the
/// callback vector (vectors below 32 are exceptions' and are not delivered), `rflags` and
/// `shadow` (the interrupt shadow, bit 0) the guest's, `event_inj` what is queued already.
pub fn upcall(
    pending: bool,
    vector: Option<u8>,
    rflags: u64,
    shadow: u64,
    event_inj: u64,
) -> Upcall {
    let Some(v) = vector.filter(|&v| v >= 32) else {
        return Upcall::None;
    };
    if !pending || event_inj & EVENT_VALID != 0 {
        return Upcall::None;
    }
    if rflags & RFLAGS_IF != 0 && shadow & 1 == 0 {
        Upcall::Inject(interrupt_event(v))
    } else {
        Upcall::Window
    }
}

/// `vintr` with a virtual interrupt requested (V_IRQ, top priority, TPR ignored), so that
/// the VINTR intercept fires when the guest can take interrupts.
pub const fn request_window(vintr: u64) -> u64 {
    (vintr & !V_INTR_PRIO_MASK) | V_IRQ | V_INTR_PRIO_MASK | V_IGN_TPR
}

/// `vintr` with the request withdrawn.
pub const fn clear_window(vintr: u64) -> u64 {
    vintr & !(V_IRQ | V_IGN_TPR | V_INTR_PRIO_MASK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quirks() {
        assert_eq!(reinjection(0), 0);
        // An interrupted upcall recorded as type 3: re-injected as type 0.
        assert_eq!(
            reinjection(0xf3 | (3 << 8) | EVENT_VALID),
            0xf3 | EVENT_VALID
        );
        // A #PF with error code stays an exception.
        let pf = 14 | (3 << 8) | (1 << 11) | EVENT_VALID | (2 << 32);
        assert_eq!(reinjection(pf), pf);
        assert_eq!(reinjection(0x40 | EVENT_VALID), 0x40 | EVENT_VALID);
    }

    #[test]
    fn decisions() {
        let on = RFLAGS_IF;
        assert_eq!(
            upcall(true, Some(0xf3), on, 0, 0),
            Upcall::Inject(0xf3 | EVENT_VALID)
        );
        assert_eq!(upcall(true, Some(0xf3), 0, 0, 0), Upcall::Window);
        assert_eq!(upcall(true, Some(0xf3), on, 1, 0), Upcall::Window);
        assert_eq!(upcall(false, Some(0xf3), on, 0, 0), Upcall::None);
        assert_eq!(upcall(true, None, on, 0, 0), Upcall::None);
        assert_eq!(upcall(true, Some(14), on, 0, 0), Upcall::None);
        assert_eq!(
            upcall(true, Some(0xf3), on, 0, EVENT_VALID | 14),
            Upcall::None
        );
        let v = request_window(1 << 24);
        assert_eq!(v & V_IRQ, V_IRQ);
        assert_eq!(clear_window(v), 1 << 24);
    }

    proptest::proptest! {
        /// Never a type-3 injection of a vector of 31 or more, never an injection while
        /// the guest's IF is clear or in a shadow.
        #[test]
        fn never_invalid(info in proptest::num::u64::ANY, pending: bool, vector: Option<u8>,
                         rflags in proptest::num::u64::ANY, shadow in 0u64..4, inj in proptest::num::u64::ANY) {
            let r = reinjection(info);
            if r & EVENT_VALID != 0 && r & TYPE_MASK == TYPE_EXCEPTION {
                proptest::prop_assert!(r & 0xff < 32);
            }
            if let Upcall::Inject(ev) = upcall(pending, vector, rflags, shadow, inj) {
                proptest::prop_assert!(rflags & RFLAGS_IF != 0 && shadow & 1 == 0);
                proptest::prop_assert_eq!(ev & TYPE_MASK, 0);
                proptest::prop_assert!(ev & 0xff >= 32);
            }
        }
    }
}
