//! What the toolstack asks through `control/shutdown`, and how the guest ends for it.
//!
//! Xen 4.17's toolstack writes `poweroff` (`xl shutdown`, `libxl_domain_shutdown`), `reboot`
//! (`xl reboot`, `libxl_domain_reboot`) and `suspend` (`xl save`, `xl migrate`); `halt` is
//! the older toolstacks' word (xend's `xm shutdown -H`), which Linux's `drivers/xen/manage.c`
//! still answers by powering off, as this guest does: Xen has no halt reason for
//! `SCHEDOP_shutdown`. The empty string is the guest's own acknowledgement of a request.

/// How the domain ends once it has stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// `SHUTDOWN_poweroff` (`poweroff`, `halt`; a stop asked on another key).
    Poweroff,
    /// `SHUTDOWN_reboot` (`reboot`): the toolstack does what `on_reboot` says.
    Reboot,
}

/// What a value of the stop key asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// Stop serving, then end the domain so (`poweroff`, `halt`, `reboot` on
    /// `control/shutdown`; anything on another key).
    Stop(Ending),
    /// Suspend and serve on (`suspend` on `control/shutdown`).
    Suspend,
    /// Not a request this guest knows (Linux ignores those too).
    Ignore,
}

/// What `value` of `key` asks for (`key` is the stop key the service watches:
/// `control/shutdown`, or a self-test's own key, where any value asks it to stop).
pub fn classify(key: &str, value: &str) -> Request {
    if key != "control/shutdown" {
        return Request::Stop(Ending::Poweroff);
    }
    match value {
        "poweroff" | "halt" => Request::Stop(Ending::Poweroff),
        "reboot" => Request::Stop(Ending::Reboot),
        "suspend" => Request::Suspend,
        _ => Request::Ignore,
    }
}

/// How the domain ends after a stop asked with `value` on `control/shutdown` (none: the
/// service stopped on its own).
pub fn ending(value: Option<&str>) -> Ending {
    match value.map(|v| classify("control/shutdown", v)) {
        Some(Request::Stop(e)) => e,
        _ => Ending::Poweroff,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_word_of_xens_toolstack_is_answered() {
        let key = "control/shutdown";
        for (value, want) in [
            ("poweroff", Request::Stop(Ending::Poweroff)),
            ("halt", Request::Stop(Ending::Poweroff)),
            ("reboot", Request::Stop(Ending::Reboot)),
            ("suspend", Request::Suspend),
            // The guest's own acknowledgement, and words it does not know.
            ("", Request::Ignore),
            ("crash", Request::Ignore),
            ("Poweroff", Request::Ignore),
            ("reboot ", Request::Ignore),
        ] {
            assert_eq!(classify(key, value), want, "{value:?}");
        }
    }

    #[test]
    fn another_key_stops_on_any_value() {
        for value in ["", "1", "reboot", "suspend"] {
            assert_eq!(
                classify("data/net-done", value),
                Request::Stop(Ending::Poweroff),
                "{value:?}"
            );
        }
    }

    #[test]
    fn halt_powers_off_and_reboot_reboots() {
        assert_eq!(ending(Some("halt")), Ending::Poweroff);
        assert_eq!(ending(Some("poweroff")), Ending::Poweroff);
        assert_eq!(ending(Some("reboot")), Ending::Reboot);
        assert_eq!(ending(Some("suspend")), Ending::Poweroff);
        assert_eq!(ending(None), Ending::Poweroff);
    }
}
