//! Placeholder for `vcpu`: being written.
