//! The transmit side: a pool of buffers in pages granted read-only once and kept granted,
//! requests built from it, and responses checked before a buffer is reused.
//!
//! A buffer is a power-of-two part of a page at least as large as the largest frame
//! ([`crate::config::VifConfig::tx_buffer_size`]), so every request's `offset + size` stays
//! inside its page and every frame is one slot: `NETTXF_more_data` is never sent (no
//! `feature-sg`), far below netback's limit of 18 slots a packet. A request's id is its
//! buffer's number; netback answers in any order, so responses are matched by id.
#![allow(
    clippy::cast_possible_truncation,
    reason = "slots are below the ring size (at most 256) and offsets below a page: they fit u16"
)]

use crate::error::BadResponse;
use abi::io::netif::{
    NETIF_RSP_DROPPED, NETIF_RSP_ERROR, NETIF_RSP_OKAY, NetifTxRequest, NetifTxResponse,
};
use alloc::vec::Vec;
use xenbus::grant::GrantedPage;

/// How the backend answered a valid tx response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxStatus {
    /// Sent.
    Okay,
    /// `NETIF_RSP_ERROR` or `NETIF_RSP_DROPPED`: not sent (the buffer is free again).
    Failed(i16),
}

/// Checks a tx response against the buffers in flight (`in_flight[id]`): the id names a
/// buffer with a request outstanding, and the status is one netback sends for a request.
/// `NETIF_RSP_NULL` answers an extra-info slot, and this front end sends none.
pub fn check_tx_response(
    response: &NetifTxResponse,
    in_flight: &[bool],
) -> Result<(u16, TxStatus), BadResponse> {
    let id = response.id;
    match in_flight.get(usize::from(id)) {
        None => {
            return Err(BadResponse::IdMismatch {
                expected: u16::try_from(in_flight.len()).unwrap_or(u16::MAX),
                got: id,
            });
        }
        Some(false) => return Err(BadResponse::NotOutstanding(id)),
        Some(true) => {}
    }
    match response.status {
        NETIF_RSP_OKAY => Ok((id, TxStatus::Okay)),
        s @ (NETIF_RSP_ERROR | NETIF_RSP_DROPPED) => Ok((id, TxStatus::Failed(s))),
        s => Err(BadResponse::UnknownStatus(s)),
    }
}

/// The pool of tx buffers.
#[derive(Debug)]
pub(crate) struct TxPool {
    pages: Vec<GrantedPage>,
    buffer_size: usize,
    per_page: usize,
    free: Vec<u16>,
    in_flight: Vec<bool>,
}

impl TxPool {
    /// A pool of `buffers` buffers of `buffer_size` bytes over `pages` (granted read-only),
    /// which must hold them all.
    pub(crate) fn new(pages: Vec<GrantedPage>, buffer_size: usize, buffers: u16) -> Self {
        let per_page = crate::config::PAGE / buffer_size;
        debug_assert!(pages.len() * per_page >= usize::from(buffers));
        Self {
            pages,
            buffer_size,
            per_page,
            // Popped from the end: buffer 0 first.
            free: (0..buffers).rev().collect(),
            in_flight: alloc::vec![false; usize::from(buffers)],
        }
    }

    /// Pages the pool owns (all granted).
    pub(crate) fn pages(&self) -> usize {
        self.pages.len()
    }

    /// Buffers not in flight.
    pub(crate) fn free(&self) -> usize {
        self.free.len()
    }

    /// Buffers in flight.
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.len() - self.free.len()
    }

    /// Copies `frame` into a free buffer and returns the request that sends it, or `None` if
    /// every buffer is in flight. `frame` must fit a buffer (the caller checked the MTU).
    pub(crate) fn stage(&mut self, frame: &[u8]) -> Option<NetifTxRequest> {
        if frame.is_empty() || frame.len() > self.buffer_size {
            return None;
        }
        let id = *self.free.last()?;
        let (page, offset) = self.place(id);
        let granted = self.pages.get(page)?;
        granted.page().write(offset, frame).ok()?;
        self.free.pop();
        self.in_flight[usize::from(id)] = true;
        Some(NetifTxRequest {
            gref: granted.gref().get(),
            offset: offset as u16,
            flags: 0,
            id,
            size: frame.len() as u16,
        })
    }

    /// Gives back the buffer of a request that could not be put on the ring.
    pub(crate) fn unstage(&mut self, id: u16) {
        if let Some(flag) = self.in_flight.get_mut(usize::from(id))
            && *flag
        {
            *flag = false;
            self.free.push(id);
        }
    }

    /// Takes a response: checks it, and frees its buffer if it is valid.
    pub(crate) fn complete(&mut self, response: &NetifTxResponse) -> Result<TxStatus, BadResponse> {
        let (id, status) = check_tx_response(response, &self.in_flight)?;
        self.unstage(id);
        Ok(status)
    }

    /// Every page, for ending their grants when the device ends.
    pub(crate) fn into_pages(self) -> Vec<GrantedPage> {
        self.pages
    }

    fn place(&self, id: u16) -> (usize, usize) {
        let id = usize::from(id);
        (id / self.per_page, (id % self.per_page) * self.buffer_size)
    }
}
