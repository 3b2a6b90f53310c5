//! `xenbus`: what Xen PV front ends (and, later, `hv`'s back ends) share.
//!
//! - [`types`]: checked newtypes for values that cross a boundary ([`DomId`], [`GrantRef`],
//!   [`Port`], [`Gfn`], [`TxId`]): private fields, `try_new` constructors.
//! - [`time`] and [`platform`]: [`Instant`] and the small traits a driver sees: a clock, a
//!   notifier for event-channel ports, a page provider ([`page`]) and grant access
//!   ([`grant::GrantAccess`]). The platform (pvguest over hypercalls, tests over `testing`)
//!   implements them; drivers reach shared memory only through them.
//! - [`xenstore`]: the xenstore client (rings, framing, requests, watches, transactions).
//! - [`frontend`]: the xenbus front-end state machine (device discovery, backend state).
//! - [`backend`]: the back-end state machine (front-end state, the ring it publishes, fatal
//!   errors) and what a backend needs of the platform: [`backend::GrantMapper`] and
//!   [`backend::InterdomainEvents`].
//! - [`grant`]: grant tables v1: granting pages, ending grants with Xen's in-use rules, and the
//!   reference allocator.
//! - `testing` (feature `test-utils`): fakes of the other side that misbehave on demand.
//!
//! Deadlines hold whatever the peer sends: every wait checks the clock on every round, and
//! memory queued on a peer's behalf is bounded in bytes.
#![cfg_attr(not(any(test, feature = "test-utils")), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod backend;
pub mod frontend;
pub mod grant;
pub mod page;
pub mod platform;
pub mod time;
pub mod types;
pub mod xenstore;

#[cfg(any(test, feature = "test-utils"))]
pub mod testing;

pub use page::{Page, PageError, PageProvider};
pub use platform::{Clock, EventChannel, Notify, NotifyError, Platform};
pub use time::Instant;
pub use types::{DomId, Gfn, GrantRef, OutOfRange, Port, TxId};
