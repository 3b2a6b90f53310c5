//! Placeholder for `hvm`: being written.
