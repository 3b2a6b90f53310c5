//! The `GET /` status document.

use crate::server::ServerStats;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write as _;

/// What the platform reports in `GET /` (gathered by the caller when asked).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Status {
    /// Milliseconds since boot.
    pub uptime_ms: u64,
    /// Heap bytes allocated now.
    pub heap_bytes_in_use: u64,
    /// Grants the guest holds now.
    pub grants_in_use: u64,
    /// The network driver's counters, by name (plain identifiers: they are not escaped).
    pub driver: Vec<(&'static str, u64)>,
    /// The storage's counters, by name (plain identifiers: they are not escaped).
    pub storage: Vec<(&'static str, u64)>,
    /// The event loop's counters (turns, time asleep, ...), by name (plain identifiers).
    pub event_loop: Vec<(&'static str, u64)>,
    /// The kernel's stacks: sizes and high-water marks in bytes, by name (plain identifiers).
    pub stack: Vec<(&'static str, u64)>,
}

impl Status {
    /// The JSON document: the fields above, `driver`, `storage`, `loop` (`event_loop`) and
    /// `stack` as objects, and `http` with the service's counters.
    pub fn to_json(&self, http: &ServerStats) -> String {
        let mut out = String::new();
        let _ = write!(
            out,
            "{{\"uptime_ms\":{},\"heap_bytes_in_use\":{},\"grants_in_use\":{},\"driver\":",
            self.uptime_ms, self.heap_bytes_in_use, self.grants_in_use
        );
        counters(&mut out, &self.driver);
        out.push_str(",\"storage\":");
        counters(&mut out, &self.storage);
        out.push_str(",\"loop\":");
        counters(&mut out, &self.event_loop);
        out.push_str(",\"stack\":");
        counters(&mut out, &self.stack);
        let _ = write!(
            out,
            ",\"http\":{{\"connections\":{},\"requests\":{},\"client_errors\":{},\
             \"bytes_in\":{},\"bytes_out\":{},\"idle_closed\":{},\"aborted\":{},\
             \"head_timeouts\":{},\"body_timeouts\":{},\"send_timeouts\":{},\
             \"handshake_timeouts\":{},\"close_timeouts\":{},\"storage_timeouts\":{},\
             \"pool\":{{\"open\":{},\"max\":{},\"reclaimed\":{},\"syns_dropped\":{},\
             \"buffer\":{},\"large\":{},\"large_buffer\":{}}}}}}}",
            http.connections,
            http.requests,
            http.client_errors,
            http.bytes_in,
            http.bytes_out,
            http.idle_closed,
            http.aborted,
            http.head_timeouts,
            http.body_timeouts,
            http.send_timeouts,
            http.handshake_timeouts,
            http.close_timeouts,
            http.storage_timeouts,
            http.open,
            http.max,
            http.reclaimed,
            http.syns_dropped,
            http.buffer,
            http.large,
            http.large_buffer
        );
        out
    }
}

/// `{"name":value,...}`.
fn counters(out: &mut String, list: &[(&'static str, u64)]) {
    out.push('{');
    for (i, (name, value)) in list.iter().enumerate() {
        let comma = if i == 0 { "" } else { "," };
        let _ = write!(out, "{comma}\"{name}\":{value}");
    }
    out.push('}');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_and_the_loop_follow_driver() {
        let status = Status {
            uptime_ms: 1,
            heap_bytes_in_use: 2,
            grants_in_use: 3,
            driver: alloc::vec![("tx", 4), ("rx", 5)],
            storage: alloc::vec![("keys", 6), ("reads", 7)],
            event_loop: alloc::vec![("turns", 19)],
            stack: alloc::vec![("size", 20), ("peak", 21)],
        };
        let http = ServerStats {
            aborted: 8,
            head_timeouts: 9,
            body_timeouts: 10,
            send_timeouts: 11,
            handshake_timeouts: 12,
            close_timeouts: 13,
            storage_timeouts: 17,
            open: 14,
            max: 15,
            reclaimed: 16,
            syns_dropped: 18,
            buffer: 22,
            large: 23,
            large_buffer: 24,
            ..ServerStats::default()
        };
        assert_eq!(
            status.to_json(&http),
            "{\"uptime_ms\":1,\"heap_bytes_in_use\":2,\"grants_in_use\":3,\
             \"driver\":{\"tx\":4,\"rx\":5},\"storage\":{\"keys\":6,\"reads\":7},\
             \"loop\":{\"turns\":19},\"stack\":{\"size\":20,\"peak\":21},\
             \"http\":{\"connections\":0,\"requests\":0,\"client_errors\":0,\"bytes_in\":0,\
             \"bytes_out\":0,\"idle_closed\":0,\"aborted\":8,\"head_timeouts\":9,\
             \"body_timeouts\":10,\"send_timeouts\":11,\"handshake_timeouts\":12,\
             \"close_timeouts\":13,\"storage_timeouts\":17,\"pool\":{\"open\":14,\"max\":15,\"reclaimed\":16,\"syns_dropped\":18,\
             \"buffer\":22,\"large\":23,\"large_buffer\":24}}}"
        );
        assert_eq!(
            Status::default().to_json(&http).get(..80),
            Some(
                "{\"uptime_ms\":0,\"heap_bytes_in_use\":0,\"grants_in_use\":0,\"driver\":{},\"storage\":{},"
            )
        );
    }
}
