//! The fakes work as the platform does: a page granted, mapped by a fake backend, a ring
//! across it, and the page back only once the grant has ended.

use super::*;
use crate::grant::{GrantAccess, GrantError, GrantTable};
use crate::platform::{Clock, Notify, NotifyError};
use crate::types::{DomId, Port};
use crate::{PageError, PageProvider};
use abi::ring::{BackRing, SharedRing};

const BACKEND: DomId = DomId::ZERO;

#[test]
fn a_granted_ring_page_round_trip_with_a_fake_backend() {
    let mut memory = HostMemory::new();
    let mut grants = GrantTable::new(FakeGrantEntries::with_frames(1), 1, 4);
    let page = memory.alloc_zeroed().unwrap();
    let mut front = page.init_front_ring::<u64, u64>().unwrap();
    let granted = grants.grant(page, BACKEND, false).unwrap();
    assert_eq!(grants.grants_in_use(), 1);

    // The backend maps the grant (Xen's checks) and attaches to the ring.
    let gref = granted.gref().get();
    let other = DomId::try_new(7).unwrap();
    assert_eq!(
        grants.entries().map(&memory, gref, other, true).err(),
        Some(MapError::PermissionDenied)
    );
    assert_eq!(
        grants.entries().map(&memory, 9999, BACKEND, true).err(),
        Some(MapError::BadRef)
    );
    let shared = grants.entries().map(&memory, gref, BACKEND, true).unwrap();
    let mut back = BackRing::attach(SharedRing::<u64, u64>::from_page(shared).unwrap(), 0);
    front.write_request(21).unwrap();
    front.push_requests();
    let request = back.take_request().unwrap().unwrap();
    back.write_response(request * 2).unwrap();
    back.push_responses();
    assert_eq!(front.take_response(), Ok(Some(42)));

    // Mapped: the grant cannot end, and the page stays granted.
    let (granted, error) = grants.end(granted).unwrap_err();
    assert_eq!(error, GrantError::StillInUse(granted.gref()));
    grants.entries().unmap(gref);
    let page = grants.end(granted).unwrap();
    assert_eq!(grants.grants_in_use(), 0);
    // Ended: the backend can no longer map it.
    assert_eq!(
        grants.entries().map(&memory, gref, BACKEND, false).err(),
        Some(MapError::PermissionDenied)
    );
    memory.release(page);
    assert_eq!(memory.allocated(), 0);
}

#[test]
fn read_only_grants_refuse_a_writable_map() {
    let mut memory = HostMemory::new();
    let mut grants = GrantTable::new(FakeGrantEntries::with_frames(1), 1, 1);
    let page = memory.alloc_zeroed().unwrap();
    page.write(10, b"hello").unwrap();
    let granted = grants.grant(page, BACKEND, true).unwrap();
    let gref = granted.gref().get();
    assert_eq!(
        grants.entries().map(&memory, gref, BACKEND, true).err(),
        Some(MapError::PermissionDenied)
    );
    let seen = grants.entries().map(&memory, gref, BACKEND, false).unwrap();
    let mut buf = [0u8; 5];
    seen.read(10, &mut buf).unwrap();
    assert_eq!(&buf, b"hello");
}

#[test]
fn pages_come_zeroed_and_the_provider_can_run_out() {
    let mut memory = HostMemory::with_limit(1);
    let page = memory.alloc_zeroed().unwrap();
    page.write(0, &[0xff; 64]).unwrap();
    assert_eq!(memory.alloc_zeroed().err(), Some(PageError::Exhausted));
    let gfn = page.gfn();
    memory.release(page);
    let again = memory.alloc_zeroed().unwrap();
    assert_eq!(again.gfn(), gfn);
    let mut buf = [1u8; 64];
    again.read(0, &mut buf).unwrap();
    assert_eq!(buf, [0; 64], "a reused page must come back zeroed");
    assert!(matches!(
        again.write(4095, b"xy"),
        Err(PageError::OutOfPage(_))
    ));
}

#[test]
fn a_failed_grant_gives_the_page_back() {
    let mut memory = HostMemory::new();
    let mut entries = FakeGrantEntries::with_frames(0);
    entries.refuse_frames = true;
    let mut grants = GrantTable::new(entries, 0, 1);
    let page = memory.alloc_zeroed().unwrap();
    let gfn = page.gfn();
    let (page, error) = grants.grant(page, BACKEND, false).unwrap_err();
    assert_eq!((page.gfn(), error), (gfn, GrantError::FrameAddFailed));
}

#[test]
fn fake_events_and_clock() {
    let mut events = FakeEvents::new();
    let port = Port::try_new(3).unwrap();
    events.notify(port).unwrap();
    events.notify(port).unwrap();
    assert_eq!(events.count(port), 2);
    events.refuse_with = Some(-22);
    assert_eq!(events.notify(port), Err(NotifyError { port, errno: -22 }));
    assert_eq!(events.count(port), 2);

    let clock = FakeClock::new();
    clock.advance(5);
    clock.set(crate::Instant::from_nanos(2));
    assert_eq!(clock.now().as_nanos(), 5, "time never runs backwards");
}
