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
}

impl Status {
    /// The JSON document: the fields above, `driver` as an object, and `http` with the
    /// service's counters.
    pub fn to_json(&self, http: &ServerStats) -> String {
        let mut out = String::new();
        let _ = write!(
            out,
            "{{\"uptime_ms\":{},\"heap_bytes_in_use\":{},\"grants_in_use\":{},\"driver\":{{",
            self.uptime_ms, self.heap_bytes_in_use, self.grants_in_use
        );
        for (i, (name, value)) in self.driver.iter().enumerate() {
            let comma = if i == 0 { "" } else { "," };
            let _ = write!(out, "{comma}\"{name}\":{value}");
        }
        let _ = write!(
            out,
            "}},\"http\":{{\"connections\":{},\"requests\":{},\"client_errors\":{},\
             \"bytes_in\":{},\"bytes_out\":{},\"idle_closed\":{}}}}}",
            http.connections,
            http.requests,
            http.client_errors,
            http.bytes_in,
            http.bytes_out,
            http.idle_closed
        );
        out
    }
}
