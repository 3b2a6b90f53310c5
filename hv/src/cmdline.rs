//! hv's command line: `<hv options> -- <guest command line>`.

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

#[cfg(test)]
mod tests {
    use super::*;

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
