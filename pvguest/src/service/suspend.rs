//! The service across `xl save` / `xl restore`, `xl save -c` and `xl migrate`: the toolstack
//! writes `suspend` to `control/shutdown`; the service acknowledges it (the empty string
//! back), quiesces the disks, suspends the domain ([`crate::xen::suspend`]), and on return
//! reconnects the vif and the disks if it runs in a new domain, then serves on. smoltcp's
//! sockets and the store live in the domain's memory: open connections and what was put
//! survive; frames in flight are dropped and sent again by TCP.
//!
//! Quiescing: the disks' requests in flight are given up to [`QUIESCE_MS`] to complete (a
//! store commit under way finishes first: its writes and its flush); what is still in flight
//! then is issued again by `blkfront`'s resume, under the same ids. A request before the
//! service runs (during the boot) is not read until it does: the toolstack's own timeout then
//! cancels it (libxl: "guest didn't acknowledge suspend, cancelling request").
//!
//! Console lines (column 0): `APP suspending <n> disk requests in flight`, then one of
//! `APP suspend cancelled after <ms> ms` (the same domain continues),
//! `APP resumed in domain <domid> after <ms> ms: vif <ok|error> <disk> <ok, n issued again|error>...`,
//! `APP suspend failed: <why>`, and `APP warning resume: <device>: <why>` for a device that
//! could not be reconnected (its routes then answer 503 or the vif stays down; the rest is
//! served).

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::{Net, Storage, now_ns};
use crate::xen::platform::{KernelEvents, KernelGrants, KernelPages};
use crate::xen::suspend::{self as platform_suspend, Outcome};
use crate::xen::{console, time, xenstore};

/// How long the disks' requests in flight may take to complete before the domain suspends
/// (the rest are issued again after the resume).
pub const QUIESCE_MS: u64 = 5_000;
/// How long reconnecting each device may take after a resume.
const RECONNECT_MS: u64 = 30_000;

fn say(args: core::fmt::Arguments<'_>) {
    let _ = console::print(format_args!("{args}\n"));
}

/// Quiesces, suspends, and after the resume reconnects what the new domain needs (module
/// docs); whether the service now runs in a new domain.
pub fn suspend_service(net: &mut Net, storage: &mut Storage<'_>) -> bool {
    storage.settle(now_ns().saturating_add(QUIESCE_MS * 1_000_000));
    say(format_args!(
        "APP suspending {} disk requests in flight",
        storage.in_flight()
    ));
    let before = now_ns();
    let outcome = platform_suspend::suspend();
    // The kernel's clock skips the time the domain was saved: this is the time to suspend
    // and to re-establish the platform.
    let took = now_ns().saturating_sub(before) / 1_000_000;
    match outcome {
        Ok(Outcome::Cancelled) => {
            say(format_args!("APP suspend cancelled after {took} ms"));
            false
        }
        Ok(Outcome::Resumed) => {
            let devices = reconnect(net, storage);
            say(format_args!(
                "APP resumed in domain {} after {took} ms: {devices}",
                domid().unwrap_or_else(|| "?".into())
            ));
            true
        }
        Err(e) => {
            say(format_args!("APP suspend failed: {e}"));
            // A failure after the resume leaves the platform half made: treat it as new.
            matches!(e, platform_suspend::SuspendError::Resume(_))
        }
    }
}

/// This domain's id as xenstore says (`domid` under its home).
fn domid() -> Option<String> {
    let deadline = time::deadline_ms(5_000).ok()?;
    xenstore::with(|xs| {
        xs.read_optional(xenbus::TxId::NONE, "domid", deadline)
            .ok()
            .flatten()
    })
    .ok()
    .flatten()
}

/// Reconnects the vif and the disks through the xenbus handshake with the new backends; one
/// word per device for the `resumed` line.
fn reconnect(net: &mut Net, storage: &mut Storage<'_>) -> String {
    let platform = || xenbus::Platform {
        pages: KernelPages::new(),
        grants: KernelGrants,
        events: KernelEvents,
    };
    let mut words = Vec::new();
    let mut warnings = Vec::new();
    let deadline = time::deadline_ms(RECONNECT_MS);
    let done = xenstore::with(|xs| {
        let Ok(deadline) = deadline else {
            return;
        };
        match net
            .nic
            .resume(xs, netfront::Config::default(), platform(), deadline)
        {
            Ok(()) => words.push("vif ok".into()),
            Err(e) => {
                words.push("vif error".into());
                warnings.push(format!("vif 0: {e:?}"));
            }
        }
        for (name, disk) in storage.disks_mut() {
            match disk.resume(xs, platform(), deadline) {
                Ok(n) => words.push(format!("{name} ok {n} issued again")),
                Err(e) => {
                    words.push(format!("{name} error"));
                    warnings.push(format!("{name}: {e}"));
                }
            }
        }
    });
    if let Err(e) = done {
        warnings.push(format!("xenstore: {e}"));
    }
    for w in warnings {
        say(format_args!("APP warning resume: {w}"));
    }
    words.join(", ")
}
