//! Placeholder for `io/netif`: being written.
