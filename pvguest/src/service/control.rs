//! The watch on the stop key (`control/shutdown`, as Linux's `shutdown_handler`) from as early
//! as the xenstore connection exists, and the deferral of a suspend asked while the guest
//! cannot suspend safely ([`crate::proto::suspend_gate`] decides, with time passed in).
//!
//! The application makes one [`Control`] right after the platform is up and calls
//! [`Control::boot_point`] between its boot steps (vif, address, disks, store): a suspend
//! asked then is deferred (not acknowledged) until the service runs, and refused if the
//! boot takes longer than the bound. The service's loop calls [`Control::check`] every
//! 300 ms with what holds a suspend back (a store commit in flight).
//!
//! Console lines (column 0): `APP suspend deferred: <why>` (once per request),
//! `APP suspend refused after <ms> ms: still <why>; not acknowledged, the toolstack cancels
//! it`, `APP suspend going ahead after <ms> ms deferred`.

use alloc::string::{String, ToString};

use crate::proto::control;
use crate::proto::suspend_gate::{self, Decision, Gate, Seen};
use crate::xen::{console, time, xenstore};

/// The watch's token.
const STOP_TOKEN: &str = "service-stop";

/// Every how many checks the key is read even if its watch did not fire (a lost watch event
/// costs at most this many checks).
const READ_EVERY_CHECKS: u64 = 10;

fn say(args: core::fmt::Arguments<'_>) {
    let _ = console::print(format_args!("{args}\n"));
}

/// What a check found that the caller acts on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Asked {
    /// Suspend now (acknowledged).
    Suspend,
    /// Stop with this request (acknowledged).
    Stop(String),
}

/// The stop key's watch on the current xenstore connection, and the suspend gate.
pub struct Control {
    key: String,
    set: bool,
    checks: u64,
    gate: Gate,
    /// A request other than a suspend was seen at a boot point: the first check reads it.
    reread: bool,
}

impl Control {
    /// Watches `key` (relative to the domain's home) on the current xenstore connection.
    pub fn new(key: &str) -> Self {
        let mut control = Self {
            key: key.to_string(),
            set: false,
            checks: 0,
            gate: Gate::new(),
            reread: false,
        };
        control.rewatch();
        control
    }

    /// Sets the watch again: after a resume in a new domain the xenstore connection is new.
    pub fn rewatch(&mut self) {
        let key = self.key.as_str();
        self.set = time::deadline_ms(5_000).is_ok_and(|deadline| {
            xenstore::with(|xs| xs.watch(key, STOP_TOKEN, deadline).is_ok()).unwrap_or(false)
        });
        if !self.set {
            log::warn!("service: no watch on {key}: reading it every check");
        }
    }

    /// Between two boot steps (`next`: what the boot does next): a suspend asked is deferred,
    /// or refused past the bound; other requests wait for the service.
    pub fn boot_point(&mut self, next: &'static str) {
        if let Some(Seen::Other(_)) = self.read(true, Some(next)) {
            self.reread = true;
        }
    }

    /// A check of the service's loop (every 300 ms): `hold` is what makes suspending unsafe
    /// now. Reads the key when its watch fired, while a request is deferred or refused, and
    /// every `READ_EVERY_CHECKS` (10) checks regardless. Words the guest does not know are
    /// acknowledged and ignored, as Linux ignores them.
    pub fn check(&mut self, hold: Option<&'static str>) -> Option<Asked> {
        self.checks = self.checks.wrapping_add(1);
        let due = core::mem::take(&mut self.reread)
            || self.gate.busy()
            || !self.set
            || self.checks.is_multiple_of(READ_EVERY_CHECKS);
        match self.read(due, hold)? {
            Seen::Suspend(Decision::Go { .. }) => Some(Asked::Suspend),
            Seen::Other(request) => {
                let key = self.key.as_str();
                let acked = time::deadline_ms(5_000).map(|deadline| {
                    xenstore::with(|xs| suspend_gate::acknowledge(xs, key, deadline))
                });
                if !matches!(acked, Ok(Ok(Ok(())))) {
                    log::warn!("acknowledging {key}: {acked:?}");
                }
                match control::classify(key, &request) {
                    control::Request::Stop(_) => Some(Asked::Stop(request)),
                    _ => {
                        log::warn!("service: ignoring {key} = {request:?}");
                        None
                    }
                }
            }
            Seen::Suspend(_) | Seen::Nothing => None,
        }
    }

    /// Drains the watch's events; reads the key if they fired or `due`, and decides with
    /// `hold`; says what a deferral, a refusal or a deferred go means.
    fn read(&mut self, due: bool, hold: Option<&'static str>) -> Option<Seen> {
        let deadline = time::deadline_ms(5_000).ok()?;
        let now = time::now().ok()?;
        let (key, set, gate) = (self.key.as_str(), self.set, &mut self.gate);
        let seen = xenstore::with(|xs| {
            let fired = set && xs.poll().is_ok() && {
                let mut any = false;
                while xs.take_event_for(STOP_TOKEN).is_some() {
                    any = true;
                }
                any
            };
            if !fired && !due {
                return None;
            }
            suspend_gate::check(xs, key, gate, now, hold, deadline).ok()
        })
        .ok()
        .flatten()?;
        let ms = |ns: u64| ns / 1_000_000;
        match &seen {
            Seen::Suspend(Decision::Defer { why, first: true }) => {
                say(format_args!("APP suspend deferred: {why}"));
            }
            Seen::Suspend(Decision::Refuse { why, after_ns }) => say(format_args!(
                "APP suspend refused after {} ms: still {why}; not acknowledged, the toolstack \
                 cancels it",
                ms(*after_ns)
            )),
            Seen::Suspend(Decision::Go {
                deferred_ns: Some(ns),
            }) => say(format_args!(
                "APP suspend going ahead after {} ms deferred",
                ms(*ns)
            )),
            _ => {}
        }
        Some(seen)
    }
}
