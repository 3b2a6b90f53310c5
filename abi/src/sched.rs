//! Placeholder for `sched`: being written.
