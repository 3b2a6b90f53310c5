//! Placeholder for `cpuid`: being written.
