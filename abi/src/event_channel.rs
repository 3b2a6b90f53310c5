//! Placeholder for `event_channel`: being written.
