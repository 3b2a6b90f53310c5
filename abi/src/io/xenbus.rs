//! The xenbus device states of `xen/io/xenbus.h`, as the C constants and as a checked Rust enum.
//!
//! Each end of a split device publishes its state as a decimal string in its `state` node
//! (`"4"` is Connected); [`XenbusState::parse`] reads one, [`XenbusState::as_str`] writes one.

use core::fmt;
use core::str::FromStr;

/// `XenbusStateUnknown`: the state node is missing or unreadable.
pub const XENBUSSTATEUNKNOWN: u32 = 0;
/// `XenbusStateInitialising`: early initialisation.
pub const XENBUSSTATEINITIALISING: u32 = 1;
/// `XenbusStateInitWait`: finished early initialisation, waiting for the peer or hotplug
/// scripts.
pub const XENBUSSTATEINITWAIT: u32 = 2;
/// `XenbusStateInitialised`: waiting for a connection from the peer.
pub const XENBUSSTATEINITIALISED: u32 = 3;
/// `XenbusStateConnected`: the device is up.
pub const XENBUSSTATECONNECTED: u32 = 4;
/// `XenbusStateClosing`: being closed because of an error or an unplug.
pub const XENBUSSTATECLOSING: u32 = 5;
/// `XenbusStateClosed`: closed.
pub const XENBUSSTATECLOSED: u32 = 6;
/// `XenbusStateReconfiguring`: being reconfigured.
pub const XENBUSSTATERECONFIGURING: u32 = 7;
/// `XenbusStateReconfigured`: reconfiguration done.
pub const XENBUSSTATERECONFIGURED: u32 = 8;

/// `enum xenbus_state`, checked: only the nine defined values exist.
///
/// Deliberately without `#[repr(u32)]`: it never lies in shared memory; convert with
/// [`XenbusState::from_u32`] / [`XenbusState::as_u32`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum XenbusState {
    /// `XenbusStateUnknown` (0).
    Unknown,
    /// `XenbusStateInitialising` (1).
    Initialising,
    /// `XenbusStateInitWait` (2).
    InitWait,
    /// `XenbusStateInitialised` (3).
    Initialised,
    /// `XenbusStateConnected` (4).
    Connected,
    /// `XenbusStateClosing` (5).
    Closing,
    /// `XenbusStateClosed` (6).
    Closed,
    /// `XenbusStateReconfiguring` (7).
    Reconfiguring,
    /// `XenbusStateReconfigured` (8).
    Reconfigured,
}

/// Why a value is not a xenbus state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XenbusStateError {
    /// A number that is not one of the nine states.
    OutOfRange {
        /// The number read.
        value: u32,
    },
    /// A string that is not a plain decimal number (empty, a sign, spaces, other characters,
    /// or too large for `u32`).
    NotDecimal,
}

impl fmt::Display for XenbusStateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OutOfRange { value } => write!(f, "{value} is not a xenbus state"),
            Self::NotDecimal => f.write_str("xenbus state is not a decimal number"),
        }
    }
}

impl XenbusState {
    /// All states, in numeric order.
    pub const ALL: [Self; 9] = [
        Self::Unknown,
        Self::Initialising,
        Self::InitWait,
        Self::Initialised,
        Self::Connected,
        Self::Closing,
        Self::Closed,
        Self::Reconfiguring,
        Self::Reconfigured,
    ];

    /// The state numbered `value`.
    pub const fn from_u32(value: u32) -> Result<Self, XenbusStateError> {
        Ok(match value {
            XENBUSSTATEUNKNOWN => Self::Unknown,
            XENBUSSTATEINITIALISING => Self::Initialising,
            XENBUSSTATEINITWAIT => Self::InitWait,
            XENBUSSTATEINITIALISED => Self::Initialised,
            XENBUSSTATECONNECTED => Self::Connected,
            XENBUSSTATECLOSING => Self::Closing,
            XENBUSSTATECLOSED => Self::Closed,
            XENBUSSTATERECONFIGURING => Self::Reconfiguring,
            XENBUSSTATERECONFIGURED => Self::Reconfigured,
            _ => return Err(XenbusStateError::OutOfRange { value }),
        })
    }

    /// The state's number.
    pub const fn as_u32(self) -> u32 {
        match self {
            Self::Unknown => XENBUSSTATEUNKNOWN,
            Self::Initialising => XENBUSSTATEINITIALISING,
            Self::InitWait => XENBUSSTATEINITWAIT,
            Self::Initialised => XENBUSSTATEINITIALISED,
            Self::Connected => XENBUSSTATECONNECTED,
            Self::Closing => XENBUSSTATECLOSING,
            Self::Closed => XENBUSSTATECLOSED,
            Self::Reconfiguring => XENBUSSTATERECONFIGURING,
            Self::Reconfigured => XENBUSSTATERECONFIGURED,
        }
    }

    /// The decimal string xenstore holds for this state (`"4"` for Connected).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "0",
            Self::Initialising => "1",
            Self::InitWait => "2",
            Self::Initialised => "3",
            Self::Connected => "4",
            Self::Closing => "5",
            Self::Closed => "6",
            Self::Reconfiguring => "7",
            Self::Reconfigured => "8",
        }
    }

    /// Parses the value of a `state` node: ASCII decimal digits only (leading zeros allowed),
    /// naming one of the nine states.
    pub fn parse(text: &str) -> Result<Self, XenbusStateError> {
        if text.is_empty() {
            return Err(XenbusStateError::NotDecimal);
        }
        let mut value: u32 = 0;
        for byte in text.bytes() {
            if !byte.is_ascii_digit() {
                return Err(XenbusStateError::NotDecimal);
            }
            value = value
                .checked_mul(10)
                .and_then(|v| v.checked_add(u32::from(byte - b'0')))
                .ok_or(XenbusStateError::NotDecimal)?;
        }
        Self::from_u32(value)
    }
}

impl TryFrom<u32> for XenbusState {
    type Error = XenbusStateError;

    fn try_from(value: u32) -> Result<Self, Self::Error> {
        Self::from_u32(value)
    }
}

impl From<XenbusState> for u32 {
    fn from(state: XenbusState) -> Self {
        state.as_u32()
    }
}

impl FromStr for XenbusState {
    type Err = XenbusStateError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

impl fmt::Display for XenbusState {
    /// Writes the decimal form xenstore holds.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_strings_round_trip() {
        for (number, state) in XenbusState::ALL.into_iter().enumerate() {
            let number = u32::try_from(number).expect("eight states");
            assert_eq!(state.as_u32(), number);
            assert_eq!(XenbusState::try_from(number), Ok(state));
            assert_eq!(state.as_str().parse::<u32>(), Ok(number));
            assert_eq!(XenbusState::parse(state.as_str()), Ok(state));
        }
        assert_eq!(XenbusState::parse("4"), Ok(XenbusState::Connected));
        assert_eq!(XenbusState::parse("04"), Ok(XenbusState::Connected));
    }

    #[test]
    fn rejects_what_is_not_a_state() {
        assert_eq!(
            XenbusState::from_u32(9),
            Err(XenbusStateError::OutOfRange { value: 9 })
        );
        assert_eq!(
            XenbusState::parse("10"),
            Err(XenbusStateError::OutOfRange { value: 10 })
        );
        for text in ["", " 4", "4 ", "+4", "-1", "4\0", "x", "99999999999"] {
            assert_eq!(
                XenbusState::parse(text),
                Err(XenbusStateError::NotDecimal),
                "{text:?}"
            );
        }
    }
}
