//! Placeholder for `elfnote`: being written.
