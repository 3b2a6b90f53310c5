//! Placeholder for `features`: being written.
