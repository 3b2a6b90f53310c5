//! Resuming the vif after the domain was saved and restored, or migrated (Linux's
//! `netfront_resume`: `xennet_disconnect_backend`, then the handshake again with whatever the
//! new backend offers).
//!
//! The new domain has none of the old connection: its grant table is empty (every old grant
//! reads as ended), its event channels are gone (the old port number may already name another
//! channel, so it is never closed), and the toolstack made a new backend (another path, perhaps
//! another backend domain) with its own features. [`Netfront::resume`] therefore ends every
//! grant the device held, gives every page back, and connects `device/vif/<devid>` afresh
//! through the xenbus handshake, re-reading `backend`, `backend-id`, `mac`, `mtu` and the
//! features, and so every queue and channel again (as many as the new backend offers).
//! Frames in flight are dropped (TCP sends them again); received frames not yet
//! taken are kept. Counters carry on.

use super::{Config, NetError, NetStats, Netfront, QueueStats};
use xenbus::grant::GrantAccess;
use xenbus::xenstore::{XsClient, XsTransport};
use xenbus::{EventChannel, Instant, PageProvider, Platform};

impl<P: PageProvider, G: GrantAccess, E: EventChannel> Netfront<P, G, E> {
    /// Reconnects after a resume in a new domain (see the module docs). `fresh` is an empty
    /// platform: it takes the place of the device's own for the teardown, so that the pages
    /// given back go on to the new connection. On failure the device stays ended with the
    /// error (its pages given back, no grant left).
    pub fn resume<T: XsTransport>(
        &mut self,
        xs: &mut XsClient<T>,
        config: Config,
        mut fresh: Platform<P, G, E>,
        deadline: Instant,
    ) -> Result<(), NetError> {
        let devid = self
            .frontend
            .path
            .rsplit('/')
            .next()
            .and_then(|d| d.parse::<u32>().ok())
            .ok_or(NetError::BackendGone)?;
        self.abandon();
        core::mem::swap(&mut self.platform, &mut fresh);
        match Self::connect(xs, devid, config, fresh, deadline) {
            Ok(mut device) => {
                device.stats = carried(self.stats, device.stats);
                device.received = core::mem::take(&mut self.received);
                *self = device;
                Ok(())
            }
            Err(e) => {
                self.dead = Some(e);
                Err(e)
            }
        }
    }

    /// Ends every grant the device holds and gives the pages back, without a word to the old
    /// backend (gone with the old domain) and without closing the old port (not ours any
    /// more). A grant that will not end stays in quarantine (only if the backend still maps
    /// it: a cancelled suspend, which does not call this).
    fn abandon(&mut self) {
        self.end(NetError::BackendGone);
        self.end_grants();
        self.released = true;
    }
}

/// The old connection's counters added to the new one's (`grants_in_use` is the new one's).
fn carried(old: NetStats, new: NetStats) -> NetStats {
    NetStats {
        tx_packets: old.tx_packets + new.tx_packets,
        tx_bytes: old.tx_bytes + new.tx_bytes,
        tx_requests: old.tx_requests + new.tx_requests,
        tx_notifications: old.tx_notifications + new.tx_notifications,
        tx_errors: old.tx_errors + new.tx_errors,
        tx_refused: old.tx_refused + new.tx_refused,
        rx_packets: old.rx_packets + new.rx_packets,
        rx_bytes: old.rx_bytes + new.rx_bytes,
        rx_requests: old.rx_requests + new.rx_requests,
        rx_notifications: old.rx_notifications + new.rx_notifications,
        rx_dropped: old.rx_dropped + new.rx_dropped,
        rx_csum_completed: old.rx_csum_completed + new.rx_csum_completed,
        tx_csum_offloaded: old.tx_csum_offloaded + new.tx_csum_offloaded,
        rx_csum_trusted: old.rx_csum_trusted + new.rx_csum_trusted,
        rx_csum_verified: old.rx_csum_verified + new.rx_csum_verified,
        rx_csum_bad: old.rx_csum_bad + new.rx_csum_bad,
        tx_multi_slot: old.tx_multi_slot + new.tx_multi_slot,
        rx_multi_slot: old.rx_multi_slot + new.rx_multi_slot,
        rx_gso: old.rx_gso + new.rx_gso,
        rx_largest_frame: old.rx_largest_frame.max(new.rx_largest_frame),
        tx_gso: old.tx_gso + new.tx_gso,
        tx_gso_segments: old.tx_gso_segments + new.tx_gso_segments,
        tx_acks: old.tx_acks + new.tx_acks,
        tx_ack_window_sum: old.tx_ack_window_sum + new.tx_ack_window_sum,
        tx_zero_window_acks: old.tx_zero_window_acks + new.tx_zero_window_acks,
        notifications_received: old.notifications_received + new.notifications_received,
        bad_responses: old.bad_responses + new.bad_responses,
        grants_in_use: new.grants_in_use,
        queues_in_use: new.queues_in_use,
        split_channels: new.split_channels,
        queues: core::array::from_fn(|q| QueueStats::carried(old.queues[q], new.queues[q])),
    }
}
