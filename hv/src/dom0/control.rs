//! hv's control lines: what the host may ask of a running hv on COM1's input, one line at a
//! time (the harness and `cargo xtask run` write them to QEMU's standard input, so only the
//! host user who started QEMU can). Today two requests, both through the store as `xl` does
//! them:
//!
//! - `shutdown <domid> <poweroff|reboot|halt|suspend>`: `xl shutdown`'s write of
//!   `control/shutdown` in the domain's home;
//! - `xs-write <domid> <path> <value>`: a write under the domain's `data/` (where the
//!   harness tells a self-test it may stop), as domain 0.
//!
//! Each line is answered on hv's log (`hv: control: ...`). Input is bounded: a line longer
//! than [`MAX_LINE`] is dropped whole and answered with an error; bytes that are not
//! printable ASCII end nothing and are refused with the line. A fuller management channel
//! (`xl`'s subcommands over a socket) is issue 32's.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

/// The longest line taken.
pub const MAX_LINE: usize = 256;

/// One request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// Write `control/shutdown` = `reason` in domain `domid`'s home.
    Shutdown {
        /// The domain.
        domid: u16,
        /// `poweroff`, `reboot`, `halt` or `suspend`.
        reason: &'static str,
    },
    /// Write `value` at `data/<path>` in domain `domid`'s home.
    XsWrite {
        /// The domain.
        domid: u16,
        /// The path under the home (starting `data/`).
        path: String,
        /// The value.
        value: String,
    },
}

impl Request {
    /// The absolute store path and value to write.
    pub fn store_write(&self) -> (String, String) {
        match self {
            Self::Shutdown { domid, reason } => (
                format!("/local/domain/{domid}/control/shutdown"),
                String::from(*reason),
            ),
            Self::XsWrite { domid, path, value } => {
                (format!("/local/domain/{domid}/{path}"), value.clone())
            }
        }
    }

    /// The domain the request names.
    pub fn domid(&self) -> u16 {
        match self {
            Self::Shutdown { domid, .. } | Self::XsWrite { domid, .. } => *domid,
        }
    }
}

/// Why a line was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ControlError {
    /// Longer than [`MAX_LINE`].
    TooLong,
    /// A byte that is not printable ASCII.
    NotText,
    /// No such request.
    Unknown(String),
    /// The request's words are wrong; says what is expected.
    Usage(&'static str),
}

impl core::fmt::Display for ControlError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::TooLong => write!(f, "a line over {MAX_LINE} bytes, dropped"),
            Self::NotText => write!(f, "a line with bytes that are not printable ASCII"),
            Self::Unknown(w) => write!(f, "unknown request `{w}` (shutdown, xs-write)"),
            Self::Usage(u) => write!(f, "usage: {u}"),
        }
    }
}

const SHUTDOWN_USAGE: &str = "shutdown <domid> <poweroff|reboot|halt|suspend>";
const XS_WRITE_USAGE: &str = "xs-write <domid> data/<path> <value>";

/// Parses one line (without its end).
pub fn parse(line: &str) -> Result<Request, ControlError> {
    if line.len() > MAX_LINE {
        return Err(ControlError::TooLong);
    }
    if !line
        .bytes()
        .all(|b| (0x20..0x7f).contains(&b) || b == b'\t')
    {
        return Err(ControlError::NotText);
    }
    let words: Vec<&str> = line.split_whitespace().collect();
    let domid = |w: Option<&&str>, usage| {
        w.and_then(|w| w.parse::<u16>().ok())
            .filter(|&d| d != 0 && d < abi::xen::DOMID_FIRST_RESERVED)
            .ok_or(ControlError::Usage(usage))
    };
    match words.first().copied() {
        Some("shutdown") => {
            let domid = domid(words.get(1), SHUTDOWN_USAGE)?;
            let reason = match (words.get(2).copied(), words.len()) {
                (Some("poweroff"), 3) => "poweroff",
                (Some("reboot"), 3) => "reboot",
                (Some("halt"), 3) => "halt",
                (Some("suspend"), 3) => "suspend",
                _ => return Err(ControlError::Usage(SHUTDOWN_USAGE)),
            };
            Ok(Request::Shutdown { domid, reason })
        }
        Some("xs-write") => {
            let domid = domid(words.get(1), XS_WRITE_USAGE)?;
            let path = words
                .get(2)
                .filter(|p| {
                    p.strip_prefix("data/").is_some_and(|rest| {
                        !rest.is_empty()
                            && rest
                                .split('/')
                                .all(|s| !s.is_empty() && s != "." && s != "..")
                    })
                })
                .ok_or(ControlError::Usage(XS_WRITE_USAGE))?;
            if words.len() != 4 {
                return Err(ControlError::Usage(XS_WRITE_USAGE));
            }
            Ok(Request::XsWrite {
                domid,
                path: String::from(*path),
                value: String::from(words[3]),
            })
        }
        Some(other) => Err(ControlError::Unknown(String::from(other))),
        None => Err(ControlError::Usage("shutdown ... | xs-write ...")),
    }
}

/// Gathers input bytes into lines, bounded by [`MAX_LINE`].
#[derive(Debug, Default)]
pub struct LineBuffer {
    line: Vec<u8>,
    overflowed: bool,
}

impl LineBuffer {
    /// Takes one byte; returns a finished line's parse (a blank line gives nothing).
    pub fn push(&mut self, byte: u8) -> Option<Result<Request, ControlError>> {
        match byte {
            b'\n' | b'\r' => {
                let line = core::mem::take(&mut self.line);
                if core::mem::take(&mut self.overflowed) {
                    return Some(Err(ControlError::TooLong));
                }
                if line.is_empty() {
                    return None;
                }
                Some(match core::str::from_utf8(&line) {
                    Ok(text) => parse(text),
                    Err(_) => Err(ControlError::NotText),
                })
            }
            _ if self.overflowed => None,
            _ if self.line.len() >= MAX_LINE => {
                self.line.clear();
                self.overflowed = true;
                None
            }
            b => {
                self.line.push(b);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_two_requests() {
        assert_eq!(
            parse("shutdown 3 poweroff").unwrap().store_write(),
            ("/local/domain/3/control/shutdown".into(), "poweroff".into())
        );
        let r = parse("xs-write 1 data/net-done 1").unwrap();
        assert_eq!(r.domid(), 1);
        assert_eq!(
            r.store_write(),
            ("/local/domain/1/data/net-done".into(), "1".into())
        );
    }

    #[test]
    fn refusals_say_why() {
        for bad in [
            "shutdown 0 poweroff",
            "shutdown 32752 poweroff",
            "shutdown 1 explode",
            "shutdown 1",
            "shutdown x poweroff",
            "xs-write 1 control/shutdown poweroff",
            "xs-write 1 data/../../0/x 1",
            "xs-write 1 data/ 1",
            "xs-write 1 data//a 1",
            "xs-write 1 data/a",
            "xs-write 1 data/a 1 2",
        ] {
            assert!(matches!(parse(bad), Err(ControlError::Usage(_))), "{bad}");
        }
        assert_eq!(parse("rm -rf /"), Err(ControlError::Unknown("rm".into())));
        assert_eq!(parse("shutdown 1 \u{7f}"), Err(ControlError::NotText));
    }

    #[test]
    fn long_lines_are_dropped_whole() {
        let mut b = LineBuffer::default();
        for _ in 0..MAX_LINE + 10 {
            assert_eq!(b.push(b'x'), None);
        }
        assert_eq!(b.push(b'\n'), Some(Err(ControlError::TooLong)));
        for &c in b"shutdown 2 reboot\r\n" {
            if let Some(r) = b.push(c) {
                assert_eq!(
                    r,
                    Ok(Request::Shutdown {
                        domid: 2,
                        reason: "reboot"
                    })
                );
            }
        }
        assert_eq!(b.push(b'\n'), None, "a blank line is nothing");
    }

    proptest! {
        #[test]
        fn any_input_is_bounded_and_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let mut b = LineBuffer::default();
            for c in bytes {
                if let Some(Ok(r)) = b.push(c) {
                    let (path, _) = r.store_write();
                    let home = format!("/local/domain/{}/", r.domid());
                    prop_assert!(path.starts_with(&home));
                    prop_assert!(!path.contains("/../"));
                }
                prop_assert!(b.line.len() <= MAX_LINE);
            }
        }
    }
}
