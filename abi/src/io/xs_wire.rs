//! Placeholder for `io/xs_wire`: being written.
