//! Placeholder for `io/xenbus`: being written.
