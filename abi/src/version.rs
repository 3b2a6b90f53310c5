//! Placeholder for `version`: being written.
