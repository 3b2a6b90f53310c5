//! Placeholder: the conformance checker is being written.
