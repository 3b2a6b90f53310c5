//! Self-tests run inside the guest, selected by `selftest=<groups>` on the command line.
//!
//! [`report`] holds the line protocol, [`vector`] the values of the `vector-registers`
//! test, [`xstate`] the images of the `extended-state` test and [`hostile`]'s `digest` the `hostile` group's generator and digest (all
//! host-testable); the groups themselves run only in the kernel.

pub mod report;
pub mod vector;
pub mod xstate;

#[cfg(target_os = "none")]
pub mod balloon;
#[cfg(target_os = "none")]
pub mod bench;
#[cfg(target_os = "none")]
pub mod blk;
#[cfg(target_os = "none")]
pub mod boot;
#[cfg(target_os = "none")]
pub mod events;
#[cfg(target_os = "none")]
pub mod extended_state;
#[cfg(target_os = "none")]
pub mod fault;
#[cfg(target_os = "none")]
#[allow(clippy::cast_possible_truncation)] // byte patterns (`i as u8`) wrap on purpose
pub mod grants;
pub mod hostile;
#[cfg(target_os = "none")]
pub mod hostile_bounds;
#[cfg(target_os = "none")]
pub mod lapic;
#[cfg(target_os = "none")]
pub mod net;
#[cfg(target_os = "none")]
pub mod net_peer;
#[cfg(target_os = "none")]
pub mod outside_ram;
#[cfg(target_os = "none")]
#[allow(clippy::cast_possible_truncation)] // byte patterns (`i as u8`) wrap on purpose
pub mod pair;
#[cfg(target_os = "none")]
#[allow(clippy::cast_possible_truncation)] // byte patterns (`i as u8`) wrap on purpose
pub mod platform;
#[cfg(target_os = "none")]
pub mod run;
#[cfg(target_os = "none")]
pub mod spin;
#[cfg(target_os = "none")]
pub mod store;
#[cfg(target_os = "none")]
pub mod timer_storm;
#[cfg(target_os = "none")]
pub mod vector_registers;
#[cfg(target_os = "none")]
pub mod xs_quota;
