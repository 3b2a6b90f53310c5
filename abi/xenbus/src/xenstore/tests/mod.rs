//! Tests of the xenstore client against the fake daemon, a fake ring, and arbitrary bytes.

mod deadlines;
mod misbehave;
mod ops;
mod props;
mod ring;

use super::XsClient;
use crate::testing::FakeXenstored;
use crate::time::Instant;

/// The client's domain id in these tests.
const DOMID: u16 = 5;

/// A deadline far in simulated time.
fn far() -> Instant {
    Instant::from_nanos(1_000_000_000_000)
}

fn client() -> XsClient<FakeXenstored> {
    XsClient::new(FakeXenstored::new(DOMID))
}
