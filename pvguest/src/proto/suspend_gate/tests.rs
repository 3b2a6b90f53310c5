//! The gate alone with time passed in, then [`check`] against the fake xenstored playing
//! libxl (it writes `suspend`, waits for the acknowledgement, cancels by writing `""`).

use super::*;
use xenbus::testing::FakeXenstored;

const S: u64 = 1_000_000_000;
const KEY: &str = "control/shutdown";
const DOMID: u16 = 7;

fn at(ns: u64) -> Instant {
    Instant::from_nanos(ns)
}

#[test]
fn a_request_at_a_safe_point_goes_at_once() {
    let mut gate = Gate::new();
    assert_eq!(
        gate.decide(at(5 * S), None),
        Decision::Go { deferred_ns: None }
    );
    assert!(!gate.busy());
}

#[test]
fn a_deferred_request_goes_once_safe_within_the_bound() {
    let mut gate = Gate::new();
    assert_eq!(
        gate.decide(at(S), Some("booting")),
        Decision::Defer {
            why: "booting",
            first: true
        }
    );
    assert_eq!(
        gate.decide(at(S + DEFER_LIMIT_NS - 1), Some("a store write in flight")),
        Decision::Defer {
            why: "a store write in flight",
            first: false
        }
    );
    assert_eq!(
        gate.decide(at(S + DEFER_LIMIT_NS - 1), None),
        Decision::Go {
            deferred_ns: Some(DEFER_LIMIT_NS - 1)
        }
    );
    assert!(!gate.busy());
}

#[test]
fn a_request_unsafe_past_the_bound_is_refused_once_then_left_to_libxl() {
    let mut gate = Gate::new();
    let _ = gate.decide(at(2 * S), Some("booting"));
    assert_eq!(
        gate.decide(at(2 * S + DEFER_LIMIT_NS), Some("booting")),
        Decision::Refuse {
            why: "booting",
            after_ns: DEFER_LIMIT_NS
        }
    );
    // Safe again, but the same request stays refused: libxl is about to cancel it.
    let refused = 2 * S + DEFER_LIMIT_NS;
    assert_eq!(gate.decide(at(refused + S), None), Decision::Refused);
    assert_eq!(
        gate.decide(at(refused + LIBXL_ACK_TIMEOUT_NS - 1), Some("x")),
        Decision::Refused
    );
    assert!(gate.busy());
    // Still there after libxl's own wait: a new request.
    assert_eq!(
        gate.decide(at(refused + LIBXL_ACK_TIMEOUT_NS), None),
        Decision::Go { deferred_ns: None }
    );
    // libxl's cancel seen: the next request is new.
    let _ = gate.decide(at(100 * S), Some("booting"));
    let _ = gate.decide(at(100 * S + DEFER_LIMIT_NS), Some("booting"));
    gate.clear();
    assert_eq!(
        gate.decide(at(111 * S), None),
        Decision::Go { deferred_ns: None }
    );
}

/// The limit leaves libxl's acknowledgement wait most of its time.
#[test]
fn the_bound_is_well_inside_libxls_wait() {
    const { assert!(DEFER_LIMIT_NS * 5 < LIBXL_ACK_TIMEOUT_NS) };
}

fn client() -> XsClient<FakeXenstored> {
    XsClient::new(FakeXenstored::new(DOMID))
}

fn path() -> String {
    format!("/local/domain/{DOMID}/{KEY}")
}

/// libxl writes `suspend`.
fn ask(xs: &mut XsClient<FakeXenstored>, value: &str) {
    xs.transport_mut().store.set(&path(), value);
}

fn key(xs: &XsClient<FakeXenstored>) -> Option<String> {
    xs.transport().store.get(&path())
}

#[test]
fn a_deferred_suspend_is_acknowledged_only_when_it_goes() {
    let mut xs = client();
    let mut gate = Gate::new();
    let far = at(1000 * S);
    assert_eq!(
        check(&mut xs, KEY, &mut gate, at(0), None, far),
        Ok(Seen::Nothing)
    );
    ask(&mut xs, "suspend");
    let seen = check(&mut xs, KEY, &mut gate, at(S), Some("booting"), far);
    assert_eq!(
        seen,
        Ok(Seen::Suspend(Decision::Defer {
            why: "booting",
            first: true
        }))
    );
    assert_eq!(key(&xs).as_deref(), Some("suspend"), "not acknowledged yet");
    let seen = check(&mut xs, KEY, &mut gate, at(3 * S), None, far);
    assert_eq!(
        seen,
        Ok(Seen::Suspend(Decision::Go {
            deferred_ns: Some(2 * S)
        }))
    );
    assert_eq!(key(&xs).as_deref(), Some(""), "acknowledged");
    assert_eq!(
        check(&mut xs, KEY, &mut gate, at(4 * S), None, far),
        Ok(Seen::Nothing)
    );
}

#[test]
fn a_refused_suspend_is_never_acknowledged_and_a_later_one_works() {
    let mut xs = client();
    let mut gate = Gate::new();
    let far = at(1000 * S);
    ask(&mut xs, "suspend");
    let hold = Some("a store write in flight");
    let _ = check(&mut xs, KEY, &mut gate, at(S), hold, far);
    let seen = check(&mut xs, KEY, &mut gate, at(S + DEFER_LIMIT_NS), hold, far);
    assert_eq!(
        seen,
        Ok(Seen::Suspend(Decision::Refuse {
            why: "a store write in flight",
            after_ns: DEFER_LIMIT_NS
        }))
    );
    // Safe again before libxl gives up: still not acknowledged.
    let seen = check(&mut xs, KEY, &mut gate, at(20 * S), None, far);
    assert_eq!(seen, Ok(Seen::Suspend(Decision::Refused)));
    assert_eq!(key(&xs).as_deref(), Some("suspend"));
    // libxl cancels (its transaction writes ""), and a later `xl save` asks again.
    ask(&mut xs, "");
    assert_eq!(
        check(&mut xs, KEY, &mut gate, at(61 * S), None, far),
        Ok(Seen::Nothing)
    );
    ask(&mut xs, "suspend");
    assert_eq!(
        check(&mut xs, KEY, &mut gate, at(70 * S), None, far),
        Ok(Seen::Suspend(Decision::Go { deferred_ns: None }))
    );
    assert_eq!(key(&xs).as_deref(), Some(""));
}

#[test]
fn other_requests_are_left_for_the_caller_to_acknowledge() {
    let mut xs = client();
    let mut gate = Gate::new();
    let far = at(1000 * S);
    ask(&mut xs, "poweroff");
    assert_eq!(
        check(&mut xs, KEY, &mut gate, at(S), Some("booting"), far),
        Ok(Seen::Other("poweroff".into()))
    );
    assert_eq!(key(&xs).as_deref(), Some("poweroff"));
    assert_eq!(acknowledge(&mut xs, KEY, far), Ok(()));
    assert_eq!(key(&xs).as_deref(), Some(""));
    // On a self-test's own stop key, any value is a stop.
    xs.transport_mut()
        .store
        .set(&format!("/local/domain/{DOMID}/data/done"), "suspend");
    assert_eq!(
        check(&mut xs, "data/done", &mut gate, at(S), None, far),
        Ok(Seen::Other("suspend".into()))
    );
}
