//! The service across `xl save` / `xl restore`, `xl save -c` and `xl migrate`: the toolstack
//! writes `suspend` to `control/shutdown`; the service acknowledges it (the empty string
//! back), quiesces the disks, suspends the domain ([`crate::xen::suspend`]), and on return
//! reconnects the vif and the disks if it runs in a new domain, then serves on. smoltcp's
//! sockets and the store live in the domain's memory: open connections and what was put
//! survive; frames in flight are dropped and sent again by TCP.
//!
//! Quiescing: the disks' requests in flight are given up to [`QUIESCE_MS`] to complete (a
//! store commit under way finishes first: its writes and its flush); what is still in flight
//! then is issued again by `blkfront`'s resume, under the same ids.
//!
//! Console lines (column 0): `APP suspending <n> disk requests in flight`, then one of
//! `APP suspend cancelled after <ms> ms` (the same domain continues),
//! `APP resumed in domain <domid> after <ms> ms: vif <ok|error> <disk> <ok, n issued again|error>...`,
//! `APP suspend failed: <why>`, and `APP warning resume: <device> did not come back: <why>`
//! for a device that could not be reconnected (the vif stays down; a disk's part answers 503
//! with the reason, `xvdb (the store) did not come back: ...`, and the rest is served; a later
//! resume where its backend is there again brings it back). A device the new domain's config
//! left out is known at once from its device list ([`crate::proto::resume`]), the vif as the
//! disks; one that is listed is waited for up to the reconnect deadline.
//!
//! A suspend is acknowledged only when the service is about to suspend: it is deferred while a
//! store commit is in flight, and refused past a bound ([`super::control`]). A request during
//! the boot is deferred until the service runs.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::{Net, Storage, now_ns};
use crate::proto::resume as resume_plan;
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

/// What the service keeps on disk `name`.
fn part(name: &str) -> &'static str {
    match name {
        "xvda" => "the archive",
        "xvdb" => "the store",
        _ => "a disk",
    }
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
    let mut outcomes = Vec::new();
    let deadline = time::deadline_ms(RECONNECT_MS);
    // The vif comes back as it was made: the command line's switches, the buffers posted.
    let cmdline = crate::kernel::boot_state().map_or("", |b| b.cmdline());
    let config = super::net_config(cmdline);
    let done = xenstore::with(|xs| {
        let Ok(deadline) = deadline else {
            return;
        };
        // The new domain's devices, as its config made them: one the config left out has no
        // node at all, and waiting for its backend would only run out the deadline
        // (`proto::resume`). Left as it was, a later resume where it is back reconnects it.
        let vifs = resume_plan::present(xs, "vif", deadline);
        let vif = match resume_plan::missing("vif 0", "vif", Some(0), vifs.as_deref()) {
            Some(why) => Err(why),
            None => net
                .nic
                .resume(xs, config, platform(), deadline)
                .map_err(|e| format!("{e:?}")),
        };
        match vif {
            Ok(()) => words.push("vif ok".into()),
            Err(e) => {
                words.push("vif error".into());
                warnings.push(format!("vif 0 did not come back: {e}"));
            }
        }
        let present = resume_plan::present(xs, "vbd", deadline);
        for (name, disk) in storage.disks_mut() {
            let devid = crate::vbd::xvd_devid(name);
            let resumed = match resume_plan::missing(name, "vbd", devid, present.as_deref()) {
                // Left as it was: a later resume where the disk is back issues again what was
                // in flight.
                Some(why) => Err(why),
                None => disk
                    .resume(xs, platform(), deadline)
                    .map_err(|e| format!("{e}")),
            };
            match resumed {
                Ok(n) => {
                    words.push(format!("{name} ok {n} issued again"));
                    outcomes.push((name, true));
                }
                Err(e) => {
                    words.push(format!("{name} error"));
                    warnings.push(format!(
                        "{name} ({}) did not come back: {e}; its routes answer 503, the rest is \
                         served",
                        part(name)
                    ));
                    outcomes.push((name, false));
                }
            }
        }
    });
    // A disk that did not come back: its part answers 503 with the reason until a later
    // resume brings it back.
    for (name, ok) in outcomes {
        storage.set_lost(name, !ok);
    }
    if let Err(e) = done {
        warnings.push(format!("xenstore: {e}"));
    }
    for w in warnings {
        say(format_args!("APP warning resume: {w}"));
    }
    words.join(", ")
}
