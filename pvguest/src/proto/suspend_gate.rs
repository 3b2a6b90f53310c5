//! When a suspend the toolstack asks for (`suspend` on `control/shutdown`) is acted on: at once
//! when the guest is at a safe point, deferred while it is not (booting, a store write in
//! flight), refused once it stayed unsafe for [`DEFER_LIMIT_NS`]. Never half-done: the request
//! is acknowledged only when the guest is about to suspend.
//!
//! libxl (`tools/libs/light/libxl_dom_suspend.c`, Xen 4.17) writes `suspend`, then waits 60 s
//! for the guest's acknowledgement (any other value, `""` by custom); without one it clears
//! the key itself in a transaction and logs "guest didn't acknowledge suspend, cancelling
//! request", and `xl save` fails ("Failed to save domain, resuming domain"). Once
//! acknowledged, it waits another 60 s for the domain to suspend ("guest did not suspend,
//! timed out"). Linux acknowledges at once and gives up inside its freezer after 20 s, which
//! leaves libxl waiting out the second 60 s. Here the guest does not acknowledge what it
//! cannot do yet, so a refusal is libxl's first message and the key is left to libxl to
//! clear; a request still there [`LIBXL_ACK_TIMEOUT_NS`] after the refusal is a new one.
//!
//! [`DEFER_LIMIT_NS`] is 10 s: a sixth of libxl's wait for the acknowledgement, so a deferred
//! suspend is acknowledged with 50 s to spare, and still less than half Linux's freezer
//! bound. The boot that serves takes under a second after the xenstore connection on stock
//! Xen under QEMU; a store commit's writes and flush take milliseconds unless the disk stalls.
//! The bound counts from when the guest first saw the request (it reads the key at each boot
//! step and every 300 ms while serving).
//!
//! [`check`] reads the key through the xenstore client and acknowledges as Linux's
//! `shutdown_handler` does, in a transaction that re-reads the key first (libxl may have
//! cancelled in between); time is passed in.

use alloc::string::String;

use xenbus::Instant;
use xenbus::xenstore::{TxId, XsClient, XsError, XsTransport};

use super::control::{self, Request};

/// How long a suspend may be deferred before it is refused, ns (module docs: why 10 s).
pub const DEFER_LIMIT_NS: u64 = 10_000_000_000;
/// How long libxl waits for the acknowledgement before it cancels the request, ns.
pub const LIBXL_ACK_TIMEOUT_NS: u64 = 60_000_000_000;

/// What to do about a suspend request now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Suspend now: the request is acknowledged. `deferred_ns`: how long it waited, if it did.
    Go {
        /// How long the request was deferred (none: acted on when first seen).
        deferred_ns: Option<u64>,
    },
    /// Not now: unsafe because of `why`. `first`: the first time this request is deferred.
    Defer {
        /// What makes it unsafe.
        why: &'static str,
        /// Whether this is the request's first deferral (to say so once).
        first: bool,
    },
    /// Refused (said once): still unsafe after `after_ns` of deferral. Not acknowledged, so
    /// libxl cancels it after its own wait.
    Refuse {
        /// What still made it unsafe.
        why: &'static str,
        /// How long it was deferred.
        after_ns: u64,
    },
    /// A refused request still on the key (libxl has not cancelled it yet): nothing to do.
    Refused,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Idle,
    Deferred { since: Instant },
    Refused { at: Instant },
}

/// The state of the request on the key across checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gate {
    state: State,
}

impl Default for Gate {
    fn default() -> Self {
        Self::new()
    }
}

impl Gate {
    /// No request seen.
    pub const fn new() -> Self {
        Self { state: State::Idle }
    }

    /// Whether a request is deferred or refused (the key must be read at every check until it
    /// is gone).
    pub fn busy(&self) -> bool {
        self.state != State::Idle
    }

    /// The key holds no suspend request (any more).
    pub fn clear(&mut self) {
        self.state = State::Idle;
    }

    /// A suspend request is on the key at `now`; `hold` says what makes suspending unsafe
    /// now, if anything.
    pub fn decide(&mut self, now: Instant, hold: Option<&'static str>) -> Decision {
        let since = |t: Instant| now.as_nanos().saturating_sub(t.as_nanos());
        if let State::Refused { at } = self.state {
            if since(at) < LIBXL_ACK_TIMEOUT_NS {
                return Decision::Refused;
            }
            // libxl would have cleared the refused one: this is a new request.
            self.state = State::Idle;
        }
        match (hold, self.state) {
            (None, State::Deferred { since: t }) => {
                self.state = State::Idle;
                Decision::Go {
                    deferred_ns: Some(since(t)),
                }
            }
            (None, _) => {
                self.state = State::Idle;
                Decision::Go { deferred_ns: None }
            }
            (Some(why), State::Deferred { since: t }) if since(t) >= DEFER_LIMIT_NS => {
                self.state = State::Refused { at: now };
                Decision::Refuse {
                    why,
                    after_ns: since(t),
                }
            }
            (Some(why), State::Deferred { .. }) => Decision::Defer { why, first: false },
            (Some(why), _) => {
                self.state = State::Deferred { since: now };
                Decision::Defer { why, first: true }
            }
        }
    }
}

/// What the key holds, as seen by [`check`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seen {
    /// No request (empty or missing), or a suspend libxl cancelled just before the
    /// acknowledgement.
    Nothing,
    /// A suspend request, and what to do about it ([`Decision::Go`]: acknowledged).
    Suspend(Decision),
    /// Another request (stop, or a word the guest ignores), not acknowledged: the caller
    /// acknowledges it with [`acknowledge`] when it acts on it.
    Other(String),
}

/// Reads `key` (relative to the domain's home) and decides about a suspend request on it at
/// `now` with `hold` (what makes suspending unsafe now); a [`Decision::Go`] is acknowledged
/// here, in a transaction that finds the request still there.
pub fn check<T: XsTransport>(
    xs: &mut XsClient<T>,
    key: &str,
    gate: &mut Gate,
    now: Instant,
    hold: Option<&'static str>,
    deadline: Instant,
) -> Result<Seen, XsError> {
    let value = xs.read_optional(TxId::NONE, key, deadline)?;
    let value = match value {
        Some(v) if !v.is_empty() => v,
        _ => {
            gate.clear();
            return Ok(Seen::Nothing);
        }
    };
    if control::classify(key, &value) != Request::Suspend {
        gate.clear();
        return Ok(Seen::Other(value));
    }
    let decision = gate.decide(now, hold);
    if !matches!(decision, Decision::Go { .. }) {
        return Ok(Seen::Suspend(decision));
    }
    // As Linux's shutdown_handler: the acknowledgement only if the request is still there.
    let still = xs.transaction(8, deadline, |xs, tx| {
        let now_there = xs.read_optional(tx, key, deadline)?;
        if now_there.as_deref().map(|v| control::classify(key, v)) != Some(Request::Suspend) {
            return Ok(false);
        }
        xs.write(tx, key, "", deadline)?;
        Ok(true)
    })?;
    Ok(if still {
        Seen::Suspend(decision)
    } else {
        Seen::Nothing
    })
}

/// Acknowledges the request on `key` (writes the empty string back, as the toolstack waits
/// for).
pub fn acknowledge<T: XsTransport>(
    xs: &mut XsClient<T>,
    key: &str,
    deadline: Instant,
) -> Result<(), XsError> {
    xs.write(TxId::NONE, key, "", deadline)
}

#[cfg(test)]
mod tests;
