//! `cargo xtask`: the one entry point that builds, runs and tests the workspace.
fn main() {}
