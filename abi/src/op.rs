//! Typed sub-operations: each argument struct paired with its sub-operation number, so a
//! caller cannot pass `EVTCHNOP_send` with an `evtchn_close` (the guest's hypercall layer
//! issues `T::CMD` with a `T`), and `hv` decodes with the same pairs
//! (`<EvtchnSend as EvtchnSubop>::CMD => ...`).
//!
//! The traits are sealed: the pairs are Xen's, listed here once. Only families whose every
//! argument struct belongs to exactly one sub-operation are paired this way
//! (`event_channel_op`, `grant_table_op`); in `memory_op`, `hvm_op`, `sched_op` and `vcpu_op`
//! one struct serves several sub-operations (`xen_memory_map` for `XENMEM_memory_map` and
//! `XENMEM_machine_memory_map`, `xen_hvm_param` for get and set), so those keep their
//! numbers at the call.
//!
//! The traits are named for sub-operations ([`EvtchnSubop`], [`GnttabSubop`]) so that no name
//! means two things: `event_channel::EvtchnOp` is the legacy C `struct evtchn_op`.

use crate::event_channel as ev;
use crate::grant_table as gt;

mod sealed {
    /// Seals the sub-operation traits: the pairs are Xen's, listed in this module only.
    pub trait Sealed {}
}

/// An `HYPERVISOR_event_channel_op` argument struct and the `EVTCHNOP_*` it goes with.
pub trait EvtchnSubop: sealed::Sealed + Copy {
    /// The `EVTCHNOP_*` number.
    const CMD: u32;
}

/// An [`EvtchnSubop`] that reads and writes only its argument struct: it names no guest frame
/// that Xen would map or write (unlike `EVTCHNOP_init_control` and `EVTCHNOP_expand_array`,
/// which hand Xen frames of the FIFO ABI).
pub trait EvtchnArgumentOnly: EvtchnSubop {}

/// A `HYPERVISOR_grant_table_op` argument struct and the `GNTTABOP_*` it goes with.
pub trait GnttabSubop: sealed::Sealed + Copy {
    /// The `GNTTABOP_*` number.
    const CMD: u32;
}

macro_rules! pairs {
    ($trait:ident: $($ty:ty => $cmd:expr),* $(,)?) => {
        $(
            impl sealed::Sealed for $ty {}
            impl $trait for $ty {
                const CMD: u32 = $cmd;
            }
        )*
    };
}

pairs!(EvtchnSubop:
    ev::EvtchnBindInterdomain => ev::EVTCHNOP_BIND_INTERDOMAIN,
    ev::EvtchnBindVirq => ev::EVTCHNOP_BIND_VIRQ,
    ev::EvtchnBindPirq => ev::EVTCHNOP_BIND_PIRQ,
    ev::EvtchnClose => ev::EVTCHNOP_CLOSE,
    ev::EvtchnSend => ev::EVTCHNOP_SEND,
    ev::EvtchnStatus => ev::EVTCHNOP_STATUS,
    ev::EvtchnAllocUnbound => ev::EVTCHNOP_ALLOC_UNBOUND,
    ev::EvtchnBindIpi => ev::EVTCHNOP_BIND_IPI,
    ev::EvtchnBindVcpu => ev::EVTCHNOP_BIND_VCPU,
    ev::EvtchnUnmask => ev::EVTCHNOP_UNMASK,
    ev::EvtchnReset => ev::EVTCHNOP_RESET,
    ev::EvtchnInitControl => ev::EVTCHNOP_INIT_CONTROL,
    ev::EvtchnExpandArray => ev::EVTCHNOP_EXPAND_ARRAY,
    ev::EvtchnSetPriority => ev::EVTCHNOP_SET_PRIORITY,
);

impl EvtchnArgumentOnly for ev::EvtchnBindInterdomain {}
impl EvtchnArgumentOnly for ev::EvtchnBindVirq {}
impl EvtchnArgumentOnly for ev::EvtchnBindPirq {}
impl EvtchnArgumentOnly for ev::EvtchnClose {}
impl EvtchnArgumentOnly for ev::EvtchnSend {}
impl EvtchnArgumentOnly for ev::EvtchnStatus {}
impl EvtchnArgumentOnly for ev::EvtchnAllocUnbound {}
impl EvtchnArgumentOnly for ev::EvtchnBindIpi {}
impl EvtchnArgumentOnly for ev::EvtchnBindVcpu {}
impl EvtchnArgumentOnly for ev::EvtchnUnmask {}
impl EvtchnArgumentOnly for ev::EvtchnReset {}
impl EvtchnArgumentOnly for ev::EvtchnSetPriority {}

pairs!(GnttabSubop:
    gt::GnttabMapGrantRef => gt::GNTTABOP_MAP_GRANT_REF,
    gt::GnttabUnmapGrantRef => gt::GNTTABOP_UNMAP_GRANT_REF,
    gt::GnttabSetupTable => gt::GNTTABOP_SETUP_TABLE,
    gt::GnttabDumpTable => gt::GNTTABOP_DUMP_TABLE,
    gt::GnttabTransfer => gt::GNTTABOP_TRANSFER,
    gt::GnttabCopy => gt::GNTTABOP_COPY,
    gt::GnttabQuerySize => gt::GNTTABOP_QUERY_SIZE,
    gt::GnttabUnmapAndReplace => gt::GNTTABOP_UNMAP_AND_REPLACE,
    gt::GnttabSetVersion => gt::GNTTABOP_SET_VERSION,
    gt::GnttabGetStatusFrames => gt::GNTTABOP_GET_STATUS_FRAMES,
    gt::GnttabGetVersion => gt::GNTTABOP_GET_VERSION,
    gt::GnttabSwapGrantRef => gt::GNTTABOP_SWAP_GRANT_REF,
    gt::GnttabCacheFlush => gt::GNTTABOP_CACHE_FLUSH,
);

#[cfg(test)]
mod tests {
    use super::*;

    /// The sub-operation numbers of a family: all distinct, and exactly `0..n`.
    fn assert_dense(numbers: &mut [u32]) {
        numbers.sort_unstable();
        for (i, n) in numbers.iter().enumerate() {
            assert_eq!(*n as usize, i, "numbers {numbers:?}");
        }
    }

    #[test]
    fn each_evtchnop_number_has_exactly_one_struct() {
        assert_eq!(<ev::EvtchnSend as EvtchnSubop>::CMD, 4);
        assert_eq!(<ev::EvtchnAllocUnbound as EvtchnSubop>::CMD, 6);
        assert_eq!(<ev::EvtchnUnmask as EvtchnSubop>::CMD, 9);
        assert_eq!(<ev::EvtchnStatus as EvtchnSubop>::CMD, 5);
        // Every EVTCHNOP_* 0..=13 has exactly one struct.
        assert_dense(&mut [
            ev::EvtchnBindInterdomain::CMD,
            ev::EvtchnBindVirq::CMD,
            ev::EvtchnBindPirq::CMD,
            ev::EvtchnClose::CMD,
            ev::EvtchnSend::CMD,
            ev::EvtchnStatus::CMD,
            ev::EvtchnAllocUnbound::CMD,
            ev::EvtchnBindIpi::CMD,
            ev::EvtchnBindVcpu::CMD,
            ev::EvtchnUnmask::CMD,
            ev::EvtchnReset::CMD,
            ev::EvtchnInitControl::CMD,
            ev::EvtchnExpandArray::CMD,
            ev::EvtchnSetPriority::CMD,
        ]);
    }

    #[test]
    fn each_gnttabop_number_has_exactly_one_struct() {
        assert_eq!(<gt::GnttabCopy as GnttabSubop>::CMD, 5);
        assert_eq!(<gt::GnttabQuerySize as GnttabSubop>::CMD, 6);
        assert_dense(&mut [
            gt::GnttabMapGrantRef::CMD,
            gt::GnttabUnmapGrantRef::CMD,
            gt::GnttabSetupTable::CMD,
            gt::GnttabDumpTable::CMD,
            gt::GnttabTransfer::CMD,
            gt::GnttabCopy::CMD,
            gt::GnttabQuerySize::CMD,
            gt::GnttabUnmapAndReplace::CMD,
            gt::GnttabSetVersion::CMD,
            gt::GnttabGetStatusFrames::CMD,
            gt::GnttabGetVersion::CMD,
            gt::GnttabSwapGrantRef::CMD,
            gt::GnttabCacheFlush::CMD,
        ]);
    }
}
