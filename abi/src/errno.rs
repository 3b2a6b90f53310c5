//! Placeholder for `errno`: being written.
