//! Placeholder for `io/blkif`: being written.
