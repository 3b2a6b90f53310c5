//! Fakes of the other side for host tests (feature `test-utils`): xenstored, a grant table and
//! memory on the host, event channels and a clock, each able to misbehave on demand; and for
//! tests of a backend against front ends in one process, a xenstored shared by several
//! domains ([`SharedXenstored`]) and the backend's grant mapping ([`FakeGrantMapper`]).
//!
//! The fake xenstored is the `xenstored` crate (the server `hv` runs) plus fault injection.
//! Drivers built on this crate test against these exactly as they run against the platform:
//! the fakes implement the same traits ([`crate::xenstore::XsTransport`],
//! [`crate::grant::GrantEntries`], [`crate::PageProvider`], [`crate::Notify`],
//! [`crate::Clock`]).

mod clock;
mod events;
mod grant;
mod hub;
mod mapper;
mod store;
mod xenstored;

pub use clock::FakeClock;
pub use events::FakeEvents;
pub use grant::{FakeGrantEntries, HostMemory, MapError};
pub use hub::{SharedXenstored, WaitHook, XenstoredConn};
pub use mapper::{FakeGrantMapper, SharedGrantTable};
pub use store::Store;
pub use xenstored::{FakeXenstored, Misbehave};

#[cfg(test)]
mod tests;
