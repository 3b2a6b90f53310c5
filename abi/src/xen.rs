//! Placeholder for `xen`: being written.
