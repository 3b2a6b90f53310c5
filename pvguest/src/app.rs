//! The application run when no self-test is selected: for now a placeholder that prints a
//! banner and the Xen version, then powers off.

use crate::xen::{hypercall, shutdown};

/// Runs the placeholder application.
pub fn main() -> ! {
    let _ = crate::console_println!(
        "pvguest: placeholder application (the real app is not written yet)"
    );
    match hypercall::xen_version() {
        Ok((major, minor)) => log::info!("running on Xen {major}.{minor}"),
        Err(e) => log::error!("XENVER_version failed: {e}"),
    }
    shutdown::poweroff()
}
