//! The xenstore client: ring transport, message framing, the request/reply engine with its
//! watch-event queue, and the typed operations.
//!
//! Layers, bottom up: [`ring`] copies bytes through the shared page's two 1 KiB rings (over
//! the kernel's [`ring::XenstoreRing`] accessor); [`transport::XsTransport`] is the byte stream
//! with a blocking `wait(deadline)`; [`codec`] frames messages; [`client::XsClient`] matches
//! replies to requests and queues watch events; [`ops`] gives the typed operations.

pub mod client;
pub mod codec;
pub mod error;
pub mod ops;
pub mod payload;
pub mod ring;
pub mod transport;

#[cfg(test)]
mod tests;

pub use crate::types::TxId;
pub use abi::io::xs_wire::XsdError;
pub use abi::io::xs_wire::{Access, Perm};
pub use client::{XsClient, XsStats};
pub use error::{ProtocolError, TransportError, XsErrno, XsError};
pub use payload::WatchEvent;
pub use transport::{Wake, XsTransport};
