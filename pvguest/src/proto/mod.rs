//! Host-testable platform logic that stays kernel-specific: no hardware access, time passed in.
//!
//! What drivers share (the xenstore client, xenbus, grants, newtypes, [`xenbus::Instant`]) lives
//! in the `xenbus` crate; here remain:
//! - [`control`]: what the toolstack asks on `control/shutdown` and how the guest ends for it.
//! - [`evtchn`]: 2-level event channels: the fair scan, unmask, handlers.
//! - [`grant_map`]: the guest-physical window where other domains' grants are mapped.
//! - [`suspend_gate`]: when a suspend request is acted on, deferred or refused.
//! - [`resume`]: which devices a resume in a new domain reports missing at once.
//! - [`pvclock`]: consistent `vcpu_time_info`/wall-clock reads and TSC → ns scaling.

pub mod control;
pub mod evtchn;
pub mod grant_map;
pub mod pvclock;
pub mod resume;
pub mod suspend_gate;
