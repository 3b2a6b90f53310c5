//! Placeholder for `ring`: being written.
