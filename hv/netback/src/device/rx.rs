//! The rx ring: frames to the front end, copied into the buffers it posted (rx-copy, as
//! netback's `xenvif_rx_skb` and `xenvif_rx_data_slot` fill them).
//!
//! A frame takes one slot per page of data, each filled from offset 0; every slot but the
//! last is flagged `NETRXF_more_data`. The frames handed to [`Netback::deliver`] are
//! complete (checksums filled in), which Linux sends with no checksum flag
//! (`CHECKSUM_NONE`): no `NETRXF_csum_blank`, no `NETRXF_data_validated`, no extra-info
//! slots (no GSO, no hash). When too few buffers are posted the frame is dropped and counted
//! (Linux queues it a while, then drops), and the front end is asked to notify when it posts
//! more (`req_event`). A buffer whose grant does not map gets its slot answered
//! `NETIF_RSP_ERROR`, as Linux answers a failed grant copy.

use super::{DeliverError, Netback, tx::overrun};
use crate::checksum::ETH_HLEN;
use abi::io::netif::{NETIF_RSP_ERROR, NETRXF_MORE_DATA, NetifRxResponse, XEN_NETIF_MAX_TX_SIZE};
use xenbus::GrantRef;
use xenbus::backend::{GrantMapper, InterdomainEvents};

/// Bytes of a page (one rx buffer).
const PAGE: usize = 4096;
/// The longest frame for a front end without `feature-sg`: Linux caps its vif's MTU at 1500
/// (`ETH_DATA_LEN`), plus the Ethernet header and an 802.1Q tag.
pub const MAX_FRAME_WITHOUT_SG: usize = 1518;

impl<M: GrantMapper, E: InterdomainEvents> Netback<M, E> {
    /// Copies one Ethernet frame into the buffers the front end posted on the rx ring
    /// (rx-copy). `Err(DeliverError::NoBuffers)` when too few are posted (the frame is
    /// dropped and counted), `Err(DeliverError::NotConnected)` when not connected or
    /// disabled. Responses are produced but the front end is notified only by
    /// [`Netback::flush_rx`].
    pub fn deliver(&mut self, frame: &[u8]) -> Result<(), DeliverError> {
        let Some(mut conn) = self.connection.take() else {
            self.stats.rx_errors += 1;
            return Err(DeliverError::NotConnected);
        };
        let result = self.deliver_on(&mut conn, frame);
        self.connection = Some(conn);
        result
    }

    fn deliver_on(
        &mut self,
        conn: &mut super::Connection,
        frame: &[u8],
    ) -> Result<(), DeliverError> {
        if self.fatal.is_some() {
            self.stats.rx_errors += 1;
            return Err(DeliverError::NotConnected);
        }
        let max = if conn.can_sg {
            usize::from(XEN_NETIF_MAX_TX_SIZE)
        } else {
            MAX_FRAME_WITHOUT_SG
        };
        if frame.len() < ETH_HLEN || frame.len() > max {
            self.stats.rx_errors += 1;
            return Err(DeliverError::BadLength);
        }
        let needed = u32::try_from(frame.len().div_ceil(PAGE)).unwrap_or(u32::MAX);
        let mut available = conn.rx.unconsumed_requests();
        if matches!(available, Ok(n) if n < needed) {
            // Ask to be told when buffers are posted, then look once more.
            available = conn
                .rx
                .final_check_for_requests()
                .and_then(|_| conn.rx.unconsumed_requests());
        }
        match available {
            Ok(n) if n >= needed => {}
            Ok(_) => {
                self.stats.rx_dropped += 1;
                return Err(DeliverError::NoBuffers);
            }
            Err(e) => {
                self.disable(overrun("rx", e));
                self.stats.rx_errors += 1;
                return Err(DeliverError::NotConnected);
            }
        }
        let count = frame.chunks(PAGE).count();
        let mut failed = false;
        for (i, chunk) in frame.chunks(PAGE).enumerate() {
            let request = match conn.rx.take_request() {
                Ok(Some(request)) => request,
                // The producer index moved backwards or beyond the ring since it was read.
                Ok(None) | Err(_) => {
                    let e = conn.rx.unconsumed_requests().err();
                    self.disable(overrun("rx", e.unwrap_or(abi::ring::RingError::Null)));
                    self.stats.rx_errors += 1;
                    return Err(DeliverError::NotConnected);
                }
            };
            let flags = if i + 1 < count { NETRXF_MORE_DATA } else { 0 };
            // At most a page: it fits.
            let mut status = i16::try_from(chunk.len()).unwrap_or(NETIF_RSP_ERROR);
            if !self.copy_to(request.gref, chunk) {
                status = NETIF_RSP_ERROR;
                failed = true;
            }
            // A request was just taken, so its response slot is free.
            let _ = conn.rx.write_response(NetifRxResponse {
                id: request.id,
                offset: 0,
                flags,
                status,
            });
            self.stats.rx_slots += 1;
        }
        conn.rx_unpushed = true;
        if failed {
            self.stats.rx_errors += 1;
            return Err(DeliverError::BadBuffer);
        }
        self.stats.rx_frames += 1;
        self.stats.rx_bytes += frame.len() as u64;
        Ok(())
    }

    /// Copies `data` to the start of the front end's buffer `gref`, mapped writable for the
    /// copy only; false if the grant does not map.
    fn copy_to(&mut self, gref: u32, data: &[u8]) -> bool {
        let Ok(gref) = GrantRef::try_new(gref) else {
            return false;
        };
        let Ok(page) = self.grants.map(self.xen.frontend_id, gref, true) else {
            return false;
        };
        let written = page.write(0, data).is_ok();
        self.grants.unmap(page);
        written
    }

    /// Pushes the rx responses made since the last call and notifies once if the ring rules
    /// ask (`RING_PUSH_RESPONSES_AND_CHECK_NOTIFY`).
    pub fn flush_rx(&mut self) {
        let Some(conn) = self.connection.as_mut() else {
            return;
        };
        if !conn.rx_unpushed {
            return;
        }
        conn.rx_unpushed = false;
        if conn.rx.push_responses_and_check_notify() {
            self.stats.rx_notifications += 1;
            // A refused notification leaves the responses for the front end's next look.
            let _ = self.events.notify(conn.port);
        }
    }
}
