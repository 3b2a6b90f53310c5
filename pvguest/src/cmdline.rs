//! The guest command line: which self-test groups run, which test is forced to fail, how long
//! the `spin` group spins, which side of the `pair` group this domain plays, and any other
//! `key=value` option by name.
//!
//! Options are whitespace-separated `key=value` words; unknown words are ignored (the
//! toolstack and users may pass options meant for later parts of the kernel). `note=<text>`
//! is a free-form note this kernel never reads; the stock-Xen harness pads the platform boot's
//! command line with one to check that a 2 KiB line reaches the guest whole. The whole line
//! may be up to [`crate::boot_info::CMDLINE_MAX`] bytes long.

/// The options this kernel understands, borrowed from the command line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Options<'a> {
    /// `selftest=<g1,g2,...>`: the self-test groups to run (None: run the application).
    pub selftest: Option<&'a str>,
    /// `selftest-inject-fail=<name>`: this test reports FAIL with "injected failure".
    pub inject_fail: Option<&'a str>,
    /// `selftest-fault=<kind>`: raise a CPU exception on purpose after boot, to check the
    /// exception path (`page`, `guard`, `stack`, `ud`).
    pub fault: Option<&'a str>,
    /// `spin-secs=<n>`: how long the `spin` self-test group spins with interrupts off, and
    /// how long the `timer-storm` group storms (read with [`Options::spin_seconds`]).
    pub spin_secs: Option<&'a str>,
    /// `pair=<offer|accept>`: this domain's side in the `pair` self-test group (read with
    /// [`Options::pair_side`]).
    pub pair: Option<&'a str>,
}

/// A domain's side in the `pair` self-test group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PairSide {
    /// `pair=offer`: grants pages and allocates a port for the peer.
    Offer,
    /// `pair=accept`: copies and maps the peer's grants and binds its port.
    Accept,
}

impl PairSide {
    /// The side's word, as on the command line and in the test names (`pair-<side>-...`).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Offer => "offer",
            Self::Accept => "accept",
        }
    }
}

/// `spin-secs=` when the command line has none.
pub const SPIN_SECS_DEFAULT: u32 = 5;
/// The longest spin `spin-secs=` may ask for (an hour): a typo must not hang a test run for
/// days.
pub const SPIN_SECS_MAX: u32 = 3600;

impl<'a> Options<'a> {
    /// Parses a command line; a later occurrence of a key wins.
    pub fn parse(cmdline: &'a str) -> Self {
        let mut opts = Self::default();
        for word in cmdline.split_ascii_whitespace() {
            if let Some(v) = word.strip_prefix("selftest=") {
                opts.selftest = Some(v);
            } else if let Some(v) = word.strip_prefix("selftest-inject-fail=") {
                opts.inject_fail = Some(v);
            } else if let Some(v) = word.strip_prefix("selftest-fault=") {
                opts.fault = Some(v);
            } else if let Some(v) = word.strip_prefix("spin-secs=") {
                opts.spin_secs = Some(v);
            } else if let Some(v) = word.strip_prefix("pair=") {
                opts.pair = Some(v);
            }
        }
        opts
    }

    /// The selected self-test groups, without empty names.
    pub fn groups(&self) -> impl Iterator<Item = &'a str> {
        self.selftest
            .into_iter()
            .flat_map(|s| s.split(','))
            .filter(|g| !g.is_empty())
    }

    /// `spin-secs=<n>` in whole seconds, 1 to [`SPIN_SECS_MAX`]; [`SPIN_SECS_DEFAULT`]
    /// without the option. A value that is not such a number is an error naming it.
    pub fn spin_seconds(&self) -> Result<u32, alloc::string::String> {
        let Some(value) = self.spin_secs else {
            return Ok(SPIN_SECS_DEFAULT);
        };
        value
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=SPIN_SECS_MAX).contains(n))
            .ok_or_else(|| {
                alloc::format!(
                    "spin-secs={value}: expected whole seconds from 1 to {SPIN_SECS_MAX}"
                )
            })
    }

    /// `pair=offer` or `pair=accept`; anything else, or no `pair=`, is an error naming it.
    pub fn pair_side(&self) -> Result<PairSide, alloc::string::String> {
        match self.pair {
            Some("offer") => Ok(PairSide::Offer),
            Some("accept") => Ok(PairSide::Accept),
            Some(other) => Err(alloc::format!("pair={other}: expected offer or accept")),
            None => Err("no pair= on the command line (offer or accept)".into()),
        }
    }
}

/// The value of `key=` on the command line (the last one wins).
pub fn option<'a>(cmdline: &'a str, key: &str) -> Option<&'a str> {
    cmdline
        .split_ascii_whitespace()
        .filter_map(|w| w.strip_prefix(key)?.strip_prefix('='))
        .next_back()
}

/// `kv-region=<start>+<len>` (bytes): where the application's key-value store lives on its
/// disk (`Ok(None)` without the option: the whole disk). A later occurrence wins.
pub fn kv_region(cmdline: &str) -> Result<Option<(u64, u64)>, alloc::string::String> {
    let Some(value) = option(cmdline, "kv-region") else {
        return Ok(None);
    };
    value
        .split_once('+')
        .and_then(|(a, b)| Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?)))
        .map(Some)
        .ok_or_else(|| alloc::format!("kv-region={value}: expected <start>+<length> in bytes"))
}

/// The block front end's optional features: each on unless switched off with
/// `blk-multipage-ring=off` (a ring of one page), `blk-indirect=off`, `blk-persistent=off`,
/// `blk-discard=off` or `blk-multiqueue=off` (one queue) (`on` is the default). A later
/// occurrence wins.
pub fn blk_features(cmdline: &str) -> Result<blkfront::Features, alloc::string::String> {
    let switch = |key: &str| match option(cmdline, key) {
        None | Some("on") => Ok(true),
        Some("off") => Ok(false),
        Some(other) => Err(alloc::format!("{key}={other}: expected on or off")),
    };
    let multipage = switch("blk-multipage-ring")?;
    Ok(blkfront::Features {
        max_ring_page_order: if multipage {
            blkfront::FRONT_MAX_RING_PAGE_ORDER
        } else {
            0
        },
        indirect: switch("blk-indirect")?,
        persistent: switch("blk-persistent")?,
        discard: switch("blk-discard")?,
        max_queues: if switch("blk-multiqueue")? {
            blkfront::FRONT_MAX_QUEUES
        } else {
            1
        },
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn spin_secs_is_whole_seconds_with_a_default() {
        use super::{Options, SPIN_SECS_DEFAULT, SPIN_SECS_MAX};
        let secs = |line| Options::parse(line).spin_seconds();
        assert_eq!(secs("selftest=spin"), Ok(SPIN_SECS_DEFAULT));
        assert_eq!(SPIN_SECS_DEFAULT, 5);
        assert_eq!(secs("selftest=spin spin-secs=2"), Ok(2));
        assert_eq!(secs("spin-secs=9 spin-secs=1"), Ok(1));
        assert_eq!(secs("spin-secs=3600"), Ok(SPIN_SECS_MAX));
        for bad in [
            "spin-secs=",
            "spin-secs=0",
            "spin-secs=3601",
            "spin-secs=-1",
            "spin-secs=1.5",
            "spin-secs=2s",
            "spin-secs=99999999999",
        ] {
            let e = secs(bad).unwrap_err();
            assert!(
                e.starts_with(bad) && e.contains("whole seconds"),
                "{bad}: {e}"
            );
        }
        // Not mistaken for another key, nor another key for it.
        assert_eq!(Options::parse("xspin-secs=3").spin_secs, None);
        assert_eq!(Options::parse("spin-secs=3").selftest, None);
    }

    #[test]
    fn kv_region_is_start_plus_length() {
        use super::kv_region;
        assert_eq!(kv_region("ip=dhcp"), Ok(None));
        assert_eq!(
            kv_region("a kv-region=4194304+2097152 b"),
            Ok(Some((4_194_304, 2_097_152)))
        );
        assert_eq!(kv_region("kv-region=1+2 kv-region=3+4"), Ok(Some((3, 4))));
        for bad in [
            "kv-region=",
            "kv-region=5",
            "kv-region=a+1",
            "kv-region=1+-2",
        ] {
            let e = kv_region(bad).unwrap_err();
            assert!(e.contains("expected <start>+<length>"), "{bad}: {e}");
        }
    }

    use super::*;

    #[test]
    fn option_is_the_last_value_of_its_key() {
        let cmdline = "selftest=blk blk-expect=xvda:1048576:r,xvdb:4194304:w x=1";
        assert_eq!(
            option(cmdline, "blk-expect"),
            Some("xvda:1048576:r,xvdb:4194304:w")
        );
        assert_eq!(option(cmdline, "blk"), None);
        assert_eq!(option("a=1 a=2", "a"), Some("2"));
        assert_eq!(option("a", "a"), None);
    }

    #[test]
    fn parses_groups_and_injection() {
        let o =
            Options::parse("console=hvc0  selftest=platform,net selftest-inject-fail=xen-version");
        assert_eq!(o.selftest, Some("platform,net"));
        assert_eq!(o.groups().collect::<Vec<_>>(), ["platform", "net"]);
        assert_eq!(o.inject_fail, Some("xen-version"));
    }

    #[test]
    fn no_selftest_means_application() {
        let o = Options::parse("hello-from-xl-config");
        assert_eq!(o, Options::default());
        assert_eq!(o.groups().count(), 0);
    }

    #[test]
    fn inject_key_is_not_mistaken_for_selftest() {
        let o = Options::parse("selftest-inject-fail=x");
        assert_eq!(o.selftest, None);
        assert_eq!(o.inject_fail, Some("x"));
        assert_eq!(Options::parse("selftest-fault=stack").fault, Some("stack"));
        assert_eq!(
            Options::parse("selftest=,platform,")
                .groups()
                .collect::<Vec<_>>(),
            ["platform"]
        );
    }

    #[test]
    fn blk_features_are_on_unless_switched_off() {
        use super::blk_features;
        use blkfront::Features;
        assert_eq!(blk_features("selftest=blk"), Ok(Features::default()));
        assert_eq!(blk_features("blk-indirect=on"), Ok(Features::default()));
        let off = blk_features("blk-indirect=off").unwrap();
        assert!(!off.indirect && off.persistent);
        let off = blk_features("x blk-persistent=off").unwrap();
        assert!(off.indirect && !off.persistent);
        let off = blk_features("blk-discard=off").unwrap();
        assert!(off.indirect && off.persistent && !off.discard);
        let off = blk_features("blk-multipage-ring=off").unwrap();
        assert!(off.max_ring_page_order == 0 && off.indirect && off.persistent && off.discard);
        assert_eq!(
            blk_features("blk-multipage-ring=on")
                .unwrap()
                .max_ring_page_order,
            blkfront::FRONT_MAX_RING_PAGE_ORDER
        );
        let off = blk_features("blk-multiqueue=off").unwrap();
        assert!(off.max_queues == 1 && off.indirect && off.max_ring_page_order > 0);
        assert_eq!(
            blk_features("blk-multiqueue=on").unwrap().max_queues,
            blkfront::FRONT_MAX_QUEUES
        );
        let none = blk_features(
            "blk-multipage-ring=off blk-indirect=off blk-persistent=off blk-discard=off \
             blk-multiqueue=off",
        )
        .unwrap();
        assert_eq!(none, Features::NONE);
        assert!(blk_features("blk-persistent=0").is_err());
        assert!(
            blk_features("blk-indirect=off blk-indirect=on")
                .unwrap()
                .indirect
        );
        let e = blk_features("blk-indirect=no").unwrap_err();
        assert!(e.contains("blk-indirect=no: expected on or off"), "{e}");
    }

    #[test]
    fn pair_side_is_offer_or_accept() {
        let side = |line| Options::parse(line).pair_side();
        assert_eq!(side("selftest=pair pair=offer"), Ok(PairSide::Offer));
        assert_eq!(side("pair=accept selftest=pair"), Ok(PairSide::Accept));
        assert_eq!(side("pair=offer pair=accept"), Ok(PairSide::Accept));
        assert_eq!(PairSide::Offer.name(), "offer");
        assert_eq!(PairSide::Accept.name(), "accept");
        for bad in ["pair=", "pair=Offer", "pair=both"] {
            let e = side(bad).unwrap_err();
            assert!(
                e.starts_with(bad) && e.ends_with("expected offer or accept"),
                "{bad}: {e}"
            );
        }
        assert!(side("selftest=pair").unwrap_err().contains("no pair="));
        // Not mistaken for another key, nor another key for it.
        assert_eq!(Options::parse("xpair=offer").pair, None);
        assert_eq!(Options::parse("pair=offer").spin_secs, None);
    }
}
