//! Placeholder for `start_info`: being written.
