//! The application run when no self-test is selected: the HTTP service ([`crate::service`])
//! on `vif/0`, with the site archive from `xvda` and the key-value store on `xvdb` (all of it,
//! or `kv-region=<start>+<len>`), until the toolstack asks for a shutdown (`xl shutdown`).
//!
//! Lines at column 0 for whoever watches the console (`cargo xtask run`, the harness):
//! `APP error <why>` (then the domain powers off), `APP warning <why>` (a disk is missing or
//! unreadable: its routes answer 503), `APP serving http://<address>/ files <n> kv-keys <n>`
//! once requests are answered, `APP stopped <requests> requests` at the end; across `xl save`,
//! `xl restore` and `xl migrate` the lines of [`crate::service::suspend`]; a suspend asked
//! during the boot, those of [`crate::service::control`].

use alloc::format;

use crate::disk;
use crate::proto::control;
use crate::service::{self, Control, Net, Storage};
use crate::xen::{console, shutdown};

/// How long connecting a device or getting an address may take.
const CONNECT_MS: u64 = 30_000;

fn say(args: core::fmt::Arguments<'_>) {
    let _ = console::print(format_args!("{args}\n"));
}

/// Powers off after saying why.
fn fail(why: &str) -> ! {
    say(format_args!("APP error {why}"));
    shutdown::poweroff()
}

/// Runs the application; never returns. `xl shutdown` (`poweroff`, `halt`) powers the domain
/// off, `xl reboot` ends it with reason reboot, `xl save`/`xl migrate` (`suspend`) suspends it
/// and serving goes on after the resume.
pub fn main() -> ! {
    let cmdline = crate::kernel::boot_state().map_or("", |b| b.cmdline());
    crate::kernel::ensure_platform();
    // From here on `control/shutdown` is watched: a suspend asked during the boot is deferred
    // until the service runs (refused if the boot outlasts the bound).
    let mut control = Control::new("control/shutdown");
    control.boot_point("booting (connecting the vif)");
    let region = service::kv_region(cmdline).unwrap_or_else(|e| fail(&e));
    let mut net = Net::connect(cmdline, CONNECT_MS).unwrap_or_else(|e| fail(&format!("vif: {e}")));
    control.boot_point("booting (getting an address)");
    let until = service::now_ns() + CONNECT_MS * 1_000_000;
    if net.wait_address(until).is_none() {
        fail("no address within 30 s (ip=dhcp: is a DHCP server on the vif's bridge?)");
    }
    control.boot_point("booting (connecting the disks)");
    let mut xvda = disk::connect("xvda");
    let mut xvdb = disk::connect("xvdb");
    control.boot_point("booting (opening the archive and the store)");
    for (name, disk) in [("archive", &xvda), ("store", &xvdb)] {
        if let Err(e) = disk {
            say(format_args!("APP warning no {name}: {e}"));
        }
    }
    let mut storage = Storage::open(
        xvda.as_mut().ok(),
        xvdb.as_mut().ok().map(|d| (d, region)),
        &mut |why| say(format_args!("APP warning {why}")),
    );
    say(format_args!(
        "APP serving http://{}/ {}",
        service::address_text(&net),
        storage.summary()
    ));
    let (stats, request) = service::serve(&mut net, &mut storage, None, &mut control);
    say(format_args!(
        "APP stopped {} requests {} connections",
        stats.requests, stats.connections
    ));
    drop(storage);
    // `halt` ends the domain as `poweroff` does (Xen has no halt reason; Linux powers off).
    match control::ending(request.as_deref()) {
        control::Ending::Reboot => shutdown::reboot(),
        control::Ending::Poweroff => shutdown::poweroff(),
    }
}
