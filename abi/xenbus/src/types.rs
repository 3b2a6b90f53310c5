//! Checked newtypes for the numbers that cross a domain boundary.
//!
//! Each wraps its raw value in a private field; `try_new` checks the value and is the only way
//! to make one from something a peer, the toolstack or Xen supplied.

use abi::event_channel::EVTCHN_2L_NR_CHANNELS;
use abi::grant_table::GNTTAB_NR_RESERVED_ENTRIES;
use abi::xen::{DOMID_FIRST_RESERVED, Domid};
use core::fmt;

/// A value outside the range its type allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutOfRange {
    /// What kind of value it was (`"domid"`, `"port"`, ...).
    pub what: &'static str,
    /// The value given.
    pub value: u64,
}

impl fmt::Display for OutOfRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} is out of range", self.what, self.value)
    }
}

/// A real domain's id: below `DOMID_FIRST_RESERVED` (0x7ff0); `DOMID_SELF` and the other
/// special ids are refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DomId(Domid);

impl DomId {
    /// Domain 0.
    pub const ZERO: Self = Self(0);

    /// Checks a domain id.
    pub const fn try_new(raw: u32) -> Result<Self, OutOfRange> {
        if raw < DOMID_FIRST_RESERVED as u32 {
            #[allow(clippy::cast_possible_truncation)] // below DOMID_FIRST_RESERVED (checked)
            let id = raw as Domid;
            Ok(Self(id))
        } else {
            Err(OutOfRange {
                what: "domid",
                value: raw as u64,
            })
        }
    }

    /// The raw id.
    pub const fn get(self) -> Domid {
        self.0
    }
}

impl fmt::Display for DomId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A grant reference a front end hands out: not one of the reserved entries
/// (`GNTTAB_NR_RESERVED_ENTRIES`, which the toolstack uses for the console and xenstore).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GrantRef(u32);

impl GrantRef {
    /// Checks a grant reference.
    pub const fn try_new(raw: u32) -> Result<Self, OutOfRange> {
        if raw >= GNTTAB_NR_RESERVED_ENTRIES {
            Ok(Self(raw))
        } else {
            Err(OutOfRange {
                what: "grant reference",
                value: raw as u64,
            })
        }
    }

    /// The raw reference, as written to rings and xenstore.
    pub const fn get(self) -> u32 {
        self.0
    }
}

impl fmt::Display for GrantRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A 2-level event-channel port: below `EVTCHN_2L_NR_CHANNELS` (4096).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Port(u32);

impl Port {
    /// Port 0, which Xen never allocates: names "no port" in errors of an allocation.
    pub const ZERO: Self = Self(0);

    /// Checks a port number.
    pub const fn try_new(raw: u32) -> Result<Self, OutOfRange> {
        if raw < EVTCHN_2L_NR_CHANNELS {
            Ok(Self(raw))
        } else {
            Err(OutOfRange {
                what: "event-channel port",
                value: raw as u64,
            })
        }
    }

    /// The port number.
    pub const fn get(self) -> u32 {
        self.0
    }

    /// Index of the 64-bit word of the 2-level bitmaps holding this port's bit (`< 64`).
    pub const fn word(self) -> usize {
        (self.0 / u64::BITS) as usize
    }

    /// This port's bit in its word.
    pub const fn bit(self) -> u64 {
        1 << (self.0 % u64::BITS)
    }

    /// The port of bit number `bit` in word `word` of the 2-level bitmaps; `None` outside them.
    pub const fn from_word_bit(word: usize, bit: u32) -> Option<Self> {
        if word >= (EVTCHN_2L_NR_CHANNELS / u64::BITS) as usize || bit >= u64::BITS {
            return None;
        }
        #[allow(clippy::cast_possible_truncation)] // word < 64 (checked above)
        let word = word as u32;
        Some(Self(word * u64::BITS + bit))
    }
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A guest frame number: a 4 KiB frame of a 52-bit guest-physical address space, so that
/// [`Gfn::addr`] never overflows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Gfn(u64);

impl Gfn {
    /// Frames in a 52-bit physical address space.
    pub const LIMIT: u64 = 1 << (52 - 12);

    /// Checks a frame number.
    pub const fn try_new(raw: u64) -> Result<Self, OutOfRange> {
        if raw < Self::LIMIT {
            Ok(Self(raw))
        } else {
            Err(OutOfRange {
                what: "guest frame number",
                value: raw,
            })
        }
    }

    /// The frame number.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// The frame's guest-physical address (cannot overflow: the frame is below 2^40).
    pub const fn addr(self) -> u64 {
        self.0 << 12
    }
}

impl fmt::Display for Gfn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

/// A xenstore transaction id; [`TxId::NONE`] (0) means "no transaction".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TxId(u32);

impl TxId {
    /// Outside any transaction.
    pub const NONE: Self = Self(0);

    /// Checks the id of a started transaction (xenstored never hands out 0).
    pub const fn try_new(raw: u32) -> Result<Self, OutOfRange> {
        if raw != 0 {
            Ok(Self(raw))
        } else {
            Err(OutOfRange {
                what: "transaction id",
                value: 0,
            })
        }
    }

    /// The raw id, as written in message headers.
    pub const fn get(self) -> u32 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newtypes_check_their_ranges() {
        assert_eq!(DomId::try_new(0x7fef).map(DomId::get), Ok(0x7fef));
        assert!(DomId::try_new(0x7ff0).is_err()); // DOMID_FIRST_RESERVED
        assert!(DomId::try_new(0x7ff0 + 2).is_err()); // DOMID_SELF
        assert!(DomId::try_new(u32::MAX).is_err());
        assert!(GrantRef::try_new(7).is_err());
        assert_eq!(GrantRef::try_new(8).map(GrantRef::get), Ok(8));
        assert_eq!(Port::try_new(4095).map(Port::get), Ok(4095));
        assert_eq!(
            Port::try_new(4096),
            Err(OutOfRange {
                what: "event-channel port",
                value: 4096
            })
        );
        let port = Port::try_new(130).unwrap();
        assert_eq!((port.word(), port.bit()), (2, 1 << 2));
        assert_eq!(Port::from_word_bit(2, 2), Some(port));
        assert_eq!(Port::from_word_bit(63, 63).map(Port::get), Some(4095));
        assert_eq!(Port::from_word_bit(64, 0), None);
        assert_eq!(Port::from_word_bit(0, 64), None);
        assert_eq!(
            Gfn::try_new((1 << 40) - 1).map(Gfn::addr),
            Ok(((1 << 40) - 1) << 12)
        );
        assert!(Gfn::try_new(1 << 40).is_err());
        assert!(TxId::try_new(0).is_err());
        assert_eq!(TxId::try_new(3).map(TxId::get), Ok(3));
        assert_eq!(TxId::NONE.get(), 0);
    }
}
