//! Sequential reading of a region's records during recovery, through one bounce buffer.
#![allow(
    clippy::cast_possible_truncation,
    reason = "each read is at most MAX_TRANSFER bytes"
)]

use alloc::vec;
use alloc::vec::Vec;

use super::format::{self, Chain, RECORD_HEADER, RecordHeader};
use crate::device::{BlockDevice, MAX_TRANSFER, SECTOR};

/// A record read and checked during recovery; `key` borrows the window.
pub struct Record<'a> {
    /// Its decoded header.
    pub header: RecordHeader,
    /// Its key bytes.
    pub key: &'a [u8],
}

/// A window of up to [`MAX_TRANSFER`] bytes of a region's body.
pub struct Window {
    base: u64,
    body_len: u64,
    buf: Vec<u8>,
    /// Body-relative offset of `buf[0]`, and bytes loaded.
    start: u64,
    loaded: usize,
}

impl Window {
    /// A window on the body at byte `base` of `body_len` bytes (a sector multiple).
    pub fn new(base: u64, body_len: u64) -> Self {
        Self {
            base,
            body_len,
            buf: vec![0; MAX_TRANSFER],
            start: 0,
            loaded: 0,
        }
    }

    /// Bytes `at..at + len` of the body (`len` at most a record's), or `None` past its end.
    fn bytes<D: BlockDevice>(
        &mut self,
        dev: &mut D,
        at: u64,
        len: usize,
    ) -> Result<Option<&[u8]>, D::Error> {
        let end = match at.checked_add(len as u64) {
            Some(end) if end <= self.body_len => end,
            _ => return Ok(None),
        };
        if at < self.start || end > self.start + self.loaded as u64 {
            let aligned = at - at % SECTOR as u64;
            let n = (self.body_len - aligned).min(MAX_TRANSFER as u64) as usize;
            dev.read(self.base + aligned, &mut self.buf[..n])?;
            self.start = aligned;
            self.loaded = n;
        }
        let from = (at - self.start) as usize;
        Ok(Some(&self.buf[from..from + len]))
    }

    /// The record at body offset `at` if it is whole, continues `chain` and passes its checks;
    /// `None` ends the log.
    pub fn record<D: BlockDevice>(
        &mut self,
        dev: &mut D,
        at: u64,
        chain: Chain,
    ) -> Result<Option<Record<'_>>, D::Error> {
        let Some(h) = self.bytes(dev, at, RECORD_HEADER)? else {
            return Ok(None);
        };
        let mut fixed = [0u8; RECORD_HEADER];
        fixed.copy_from_slice(h);
        let Ok(header) = format::decode_header(&fixed, chain) else {
            return Ok(None);
        };
        let Some(bytes) = self.bytes(dev, at, header.record_len())? else {
            return Ok(None);
        };
        if format::verify(&header, bytes).is_err() {
            return Ok(None);
        }
        Ok(Some(Record {
            header,
            key: &bytes[RECORD_HEADER..RECORD_HEADER + header.key_len],
        }))
    }
}
