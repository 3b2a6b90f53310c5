//! Placeholder for `memory`: being written.
