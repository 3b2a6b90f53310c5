//! hv's command line: `<hv options> -- <guest command line>`, and hv's options
//! ([`Options`]): `npf=crash` (a domain's access outside its memory crashes it, for
//! debugging) or `npf=emulate` (the default: it reads all ones and its writes are dropped,
//! as on Xen); `xenstored-entry-nb=<n>`, `xenstored-transaction-nodes=<n>` and
//! `xenstored-memory=<bytes>`: domain 0's xenstored quotas, as C xenstored's `--entry-nb`,
//! `--quota transaction-nodes=` and `--quota memory=` set them (a test setting; without them,
//! C's defaults).

use xenstored::quota::Quotas;

/// The separator between hv's options and the guest's command line.
pub const SEPARATOR: &str = "--";

/// The two halves of hv's command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SplitCmdline<'a> {
    /// hv's own options (trimmed).
    pub hv: &'a str,
    /// The guest's command line (trimmed); empty without a separator.
    pub guest: &'a str,
}

/// Splits at the first `--` that stands as a word of its own.
pub fn split(cmdline: &str) -> SplitCmdline<'_> {
    let mut offset = 0;
    for word in cmdline.split(' ') {
        if word == SEPARATOR {
            return SplitCmdline {
                hv: cmdline[..offset].trim(),
                guest: cmdline[offset + word.len()..].trim(),
            };
        }
        offset += word.len() + 1;
    }
    SplitCmdline {
        hv: cmdline.trim(),
        guest: "",
    }
}

/// What hv does when a domain touches guest-physical memory outside its RAM and special
/// pages (a nested page fault on a frame it has not mapped): `npf=`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum NpfPolicy {
    /// `npf=emulate`: as Xen 4.17 with no device model, the access reads all ones and its
    /// write is dropped (the instruction is decoded and completed).
    #[default]
    Emulate,
    /// `npf=crash`: the domain crashes with the address in hv's log (for debugging).
    Crash,
}

/// hv's options (the words before `--`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// `npf=emulate|crash`.
    pub npf: NpfPolicy,
    /// `xenstored-entry-nb=`, `xenstored-transaction-nodes=`, `xenstored-memory=`.
    pub xenstored: Quotas,
}

impl Options {
    /// Parses the options in `hv` (words separated by spaces); each word hv does not know,
    /// or whose value it does not know, goes to `unknown` and changes nothing. A later word
    /// wins over an earlier one.
    pub fn parse<'a>(hv: &'a str, mut unknown: impl FnMut(&'a str)) -> Self {
        let mut options = Self::default();
        for word in hv.split_whitespace() {
            match word {
                "npf=emulate" => options.npf = NpfPolicy::Emulate,
                "npf=crash" => options.npf = NpfPolicy::Crash,
                other => {
                    let q = &mut options.xenstored;
                    let set = match other.split_once('=') {
                        Some(("xenstored-entry-nb", v)) => {
                            v.parse().map(|n| q.entries_per_domain = n)
                        }
                        Some(("xenstored-transaction-nodes", v)) => {
                            v.parse().map(|n| q.nodes_per_transaction = n)
                        }
                        Some(("xenstored-memory", v)) => v.parse().map(|n| q.memory_hard = n),
                        _ => {
                            unknown(other);
                            continue;
                        }
                    };
                    if set.is_err() {
                        unknown(other);
                    }
                }
            }
        }
        options
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_and_the_unknown_words() {
        let mut unknown = alloc::vec::Vec::new();
        let o = Options::parse("", |w| unknown.push(w));
        assert_eq!((o.npf, unknown.len()), (NpfPolicy::Emulate, 0));
        let o = Options::parse(" npf=crash  bogus npf=maybe ", |w| unknown.push(w));
        assert_eq!(o.npf, NpfPolicy::Crash);
        assert_eq!(unknown, ["bogus", "npf=maybe"]);
        let o = Options::parse("npf=crash npf=emulate", |_| {});
        assert_eq!(o.npf, NpfPolicy::Emulate);
    }

    #[test]
    fn xenstored_quotas_are_cs_unless_given() {
        assert_eq!(Options::default().xenstored, Quotas::default());
        let mut unknown = alloc::vec::Vec::new();
        let o = Options::parse(
            "xenstored-entry-nb=100 xenstored-transaction-nodes=50 xenstored-memory=65536 \
             xenstored-memory=lots xenstored-watch-nb=3",
            |w| unknown.push(w),
        );
        let want = Quotas {
            entries_per_domain: 100,
            nodes_per_transaction: 50,
            memory_hard: 65536,
        };
        assert_eq!(o.xenstored, want);
        assert_eq!(unknown, ["xenstored-memory=lots", "xenstored-watch-nb=3"]);
    }

    #[test]
    fn splits_at_the_separator_word() {
        assert_eq!(
            split("-- selftest=boot"),
            SplitCmdline {
                hv: "",
                guest: "selftest=boot"
            }
        );
        assert_eq!(
            split("a b -- c -- d"),
            SplitCmdline {
                hv: "a b",
                guest: "c -- d"
            }
        );
        assert_eq!(
            split("x--y"),
            SplitCmdline {
                hv: "x--y",
                guest: ""
            }
        );
        assert_eq!(split(""), SplitCmdline { hv: "", guest: "" });
        assert_eq!(split("a --"), SplitCmdline { hv: "a", guest: "" });
    }
}
