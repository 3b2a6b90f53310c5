//! Placeholder for `grant_table`: being written.
