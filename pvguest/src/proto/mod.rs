//! Host-testable protocol logic of the guest platform: no hardware access, time passed in.
//!
//! Each module talks to the shared pages and hypercalls only through small traits that the
//! kernel implements (volatile and atomic accessors) and host tests fake:
//! - [`evtchn`]: 2-level event channels: ports, the fair scan, unmask, handlers.
//! - [`grant`]: grant tables v1: grant and end access, reference allocation and growth.
//! - [`pvclock`]: consistent `vcpu_time_info`/wall-clock reads and TSC → ns scaling.
//! - [`time`]: [`time::Instant`], the time type protocol logic takes as an argument.
//! - [`xenbus`]: front-end device discovery and the state handshake over xenstore.
//! - [`xenstore`]: the xenstore client (rings, framing, requests, watches, transactions).

pub mod evtchn;
pub mod grant;
pub mod pvclock;
pub mod time;
pub mod xenbus;
pub mod xenstore;
