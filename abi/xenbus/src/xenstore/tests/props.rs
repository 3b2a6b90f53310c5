//! Property tests: arbitrary daemon bytes never panic the client or the payload parsers.

use super::far;
use crate::time::Instant;
use crate::xenstore::{TransportError, TxId, Wake, XsClient, XsError, XsTransport, payload};
use proptest::prelude::*;

/// A daemon that answers every request with the same arbitrary bytes, in arbitrary chunks.
struct Scripted {
    bytes: Vec<u8>,
    pos: usize,
    chunk: usize,
}

impl XsTransport for Scripted {
    fn send(&mut self, data: &[u8]) -> Result<usize, TransportError> {
        Ok(data.len())
    }
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, TransportError> {
        let n = buf.len().min(self.chunk).min(self.bytes.len() - self.pos);
        buf[..n].copy_from_slice(&self.bytes[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
    fn now(&mut self) -> Instant {
        Instant::from_nanos(0)
    }
    fn wait(&mut self, _: Instant) -> Result<Wake, TransportError> {
        Ok(Wake::TimedOut)
    }
}

fn header(type_: u32, req_id: u32, len: u32) -> Vec<u8> {
    abi::io::xs_wire::XsdSockmsg {
        type_,
        req_id,
        tx_id: 0,
        len,
    }
    .to_bytes()
    .to_vec()
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_the_client(
        bytes in proptest::collection::vec(any::<u8>(), 0..6000),
        chunk in 1usize..2000,
    ) {
        let mut c = XsClient::new(Scripted { bytes, pos: 0, chunk });
        let _ = c.read(TxId::NONE, "a", far());
        let _ = c.directory(TxId::NONE, "a", far());
        let _ = c.get_perms(TxId::NONE, "a", far());
        let _ = c.transaction_start(far());
        let _ = c.wait_event_for("t", far());
        let _ = c.poll();
    }

    /// A well-framed reply with an arbitrary payload and type: typed result, no panic.
    #[test]
    fn arbitrary_reply_payloads_give_typed_results(
        type_ in prop_oneof![Just(1u32), Just(2), Just(3), Just(6), Just(15), Just(16), any::<u32>()],
        payload in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let mut bytes = header(type_, 1, payload.len() as u32);
        bytes.extend_from_slice(&payload);
        let mut c = XsClient::new(Scripted { bytes, pos: 0, chunk: 64 });
        let r = c.directory(TxId::NONE, "a", far());
        if type_ != 1 && type_ != 15 && type_ != 16 {
            let wrong = matches!(r, Err(XsError::Protocol(_)));
            prop_assert!(wrong);
        }
    }

    #[test]
    fn payload_parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = payload::text(&bytes);
        let _ = payload::single(&bytes);
        let _ = payload::ok(&bytes);
        let _ = payload::perms(&bytes);
        if let Ok(items) = payload::list(&bytes) {
            prop_assert!(items.iter().all(|s| !s.is_empty() && !s.contains('\0')));
        }
        if let Ok(e) = payload::watch_event(&bytes) {
            prop_assert!(!e.path.is_empty() && !e.token.is_empty());
        }
    }
}
