//! Property tests of the xenstore header framing in `abi::io::xs_wire`.

use abi::io::xs_wire::{XENSTORE_PAYLOAD_MAX, XsWireError, XsdSockmsg};
use proptest::prelude::*;

proptest! {
    /// Decoding never panics, and it accepts exactly the headers whose length is in range,
    /// reading the four fields as little-endian words.
    #[test]
    fn decode_any_16_bytes(bytes in any::<[u8; 16]>()) {
        let len = u32::from_le_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]);
        match XsdSockmsg::from_bytes(&bytes) {
            Ok(msg) => {
                prop_assert!(len <= XENSTORE_PAYLOAD_MAX);
                prop_assert_eq!(msg.len, len);
                prop_assert_eq!(msg.type_, u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]));
                prop_assert_eq!(msg.to_bytes(), bytes);
            }
            Err(XsWireError::PayloadTooLong { len: reported }) => {
                prop_assert!(len > XENSTORE_PAYLOAD_MAX);
                prop_assert_eq!(reported, len);
            }
        }
    }

    /// Every header with a legal length survives encode then decode.
    #[test]
    fn roundtrip(type_ in any::<u32>(), req_id in any::<u32>(), tx_id in any::<u32>(),
                 len in 0..=XENSTORE_PAYLOAD_MAX) {
        let msg = XsdSockmsg { type_, req_id, tx_id, len };
        prop_assert_eq!(XsdSockmsg::from_bytes(&msg.to_bytes()), Ok(msg));
    }
}
