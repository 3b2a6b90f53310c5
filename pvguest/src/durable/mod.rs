//! The durable-storage run the harness crashes on purpose (`HOST blk-kv-durable`):
//! `kv-check` lists every key of the storm's store (`KV found <key> <value>`), `kv-storm=<seed>`
//! then puts forever, printing `KV ack <key> <value>` after each acknowledged put (and its
//! rate now and then, `KV progress <n> puts in <ms> ms`), until the
//! harness pauses and destroys the domain. The store lives on the read-write disk (`xvdb`) from
//! [`STORM_START`], apart from what the `blk` self-tests use. [`storm`] says what each put
//! writes (host-testable); the run itself is kernel only.

use crate::cmdline::option;

pub mod storm;

#[cfg(target_os = "none")]
mod run;
#[cfg(target_os = "none")]
pub use run::run;

/// Where the storm's store starts on `xvdb` (the `blk` group uses the first 2 MiB).
pub const STORM_START: u64 = 2 << 20;
/// Its size.
pub const STORM_LEN: u64 = 2 << 20;
/// How long the storm waits after announcing itself before its first put.
pub const STORM_HOLD_MS: u64 = 2000;

/// Whether the command line asks for a durable-storage run.
pub fn requested(cmdline: &str) -> bool {
    option(cmdline, "kv-storm").is_some()
        || cmdline.split_ascii_whitespace().any(|w| w == "kv-check")
}

#[cfg(test)]
mod tests {
    use super::requested;

    #[test]
    fn kv_storm_or_kv_check_asks_for_a_run() {
        assert!(requested("selftest=blk kv-storm=3"));
        assert!(requested("kv-check"));
        assert!(!requested("kv-checked kv-storm"));
        assert!(!requested("selftest=platform"));
    }
}
