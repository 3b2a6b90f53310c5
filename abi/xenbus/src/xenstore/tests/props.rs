//! Property tests: arbitrary daemon bytes never panic the client or the payload parsers.

use super::far;
use crate::time::Instant;
use crate::xenstore::{
    ProtocolError, TransportError, TxId, Wake, XsClient, XsErrno, XsError, XsTransport, payload,
};
use abi::io::xs_wire::{XS_DIRECTORY, XS_ERROR, XS_GET_PERMS, XS_READ, XS_WATCH_EVENT};
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

    /// A well-framed reply with an arbitrary payload and type to `XS_DIRECTORY`: every reply
    /// type has its exact result. The directory's own type gives the parsed list (or the
    /// parser's error), `XS_ERROR` the server's errno, a watch event is queued (or counted as
    /// malformed) and the request then times out, and any other type is a wrong reply type.
    #[test]
    fn each_reply_type_to_a_directory_request_gives_its_exact_result(
        type_ in prop_oneof![Just(XS_DIRECTORY), Just(XS_READ), Just(XS_GET_PERMS),
                             Just(XS_WATCH_EVENT), Just(XS_ERROR), any::<u32>()],
        payload in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..300),
            // Well-formed payloads, so that each type's success path is taken too.
            prop_oneof![Just("ENOENT"), Just("EACCES"), Just("EAGAIN"), Just("EINVAL")]
                .prop_map(|name| format!("{name}\0").into_bytes()),
            "[a-z]{1,8}(\0[a-z]{1,8}){0,3}\0?".prop_map(String::into_bytes),
        ],
    ) {
        let mut bytes = header(type_, 1, u32::try_from(payload.len()).expect("short payload"));
        bytes.extend_from_slice(&payload);
        let mut c = XsClient::new(Scripted { bytes, pos: 0, chunk: 64 });
        let r = c.directory(TxId::NONE, "a", far());
        match type_ {
            XS_DIRECTORY => {
                prop_assert_eq!(r, payload::list(&payload).map_err(XsError::from));
            }
            XS_ERROR => {
                let name = payload.strip_suffix(&[0]).unwrap_or(&payload);
                prop_assert_eq!(r, Err(XsError::Server(XsErrno::from_name(name))));
            }
            XS_WATCH_EVENT => {
                prop_assert_eq!(r, Err(XsError::Timeout));
                match payload::watch_event(&payload) {
                    Ok(event) => prop_assert_eq!(c.take_event(), Some(event)),
                    Err(_) => {
                        prop_assert_eq!(c.take_event(), None);
                        prop_assert_eq!(c.stats().malformed_events, 1);
                    }
                }
            }
            got => {
                let wrong = ProtocolError::WrongReplyType { expected: XS_DIRECTORY, got };
                prop_assert_eq!(r, Err(XsError::Protocol(wrong)));
            }
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
