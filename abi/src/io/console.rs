//! Placeholder for `io/console`: being written.
