//! hv's control lines: what the host may ask of a running hv on COM1's input, one line at a
//! time (the harness and `cargo xtask run` write them to QEMU's standard input, so only the
//! host user who started QEMU can). Four requests, the first two through the store as `xl`
//! does them:
//!
//! - `shutdown <domid> <poweroff|reboot|halt|suspend>`: `xl shutdown`'s write of
//!   `control/shutdown` in the domain's home;
//! - `xs-write <domid> <path> <value>`: a write under the domain's `data/` (where the
//!   harness tells a self-test it may stop), as domain 0;
//! - `stall-disk <domid> <vdev> <on|off>`: a fault to inject, for front ends under test (Xen
//!   has none built in; on stock Xen a harness suspends the disk's device-mapper target in
//!   dom0): while on, the back end of the domain's disk `vdev` leaves its ring alone, so
//!   requests get no answer, as from a disk that hangs; off, it serves what waited;
//! - `netback-stats <domid> <tag>`: one line per vif of the domain on hv's log with its
//!   netback's counts so far (frames, exits, notifications), marked `at <tag>`, so a harness
//!   can tell what a stretch of traffic cost.
//!
//! Each line is answered on hv's log (`hv: control: ...`). Input is bounded: a line longer
//! than [`MAX_LINE`] is dropped whole and answered with an error; bytes that are not
//! printable ASCII end nothing and are refused with the line.
//!
//! The management channel is the second part: [`Server`] takes the bytes of COM2 (which
//! QEMU wires to a Unix socket), frames and decodes them as [`hvctl`] requests, checks every
//! bound ([`hvctl::Request::check`]) and carries them out through [`Domains`], which the
//! machine implements; it keeps nothing of a client but a half frame (dropped after
//! [`FRAME_IDLE_NS`] of silence) and a half upload (dropped after [`UPLOAD_IDLE_NS`], or by
//! the next `CreateBegin`). [`OutputRing`] keeps the tail of a domain's console (and of
//! hv's log) for `xl console` and `xl dmesg`.

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
    /// Log the counts of domain `domid`'s netback instances, marked `tag`.
    NetbackStats {
        /// The domain.
        domid: u16,
        /// A word naming the moment (`[A-Za-z0-9-]`, at most 32).
        tag: String,
    },
    /// Stall (or serve again) the back end of domain `domid`'s disk `vdev`.
    StallDisk {
        /// The domain.
        domid: u16,
        /// The disk's `vdev` (`xvda`, ...), as its config names it.
        vdev: String,
        /// On: its ring is left alone; off: served again.
        on: bool,
    },
}

impl Request {
    /// The absolute store path and value to write, for the requests carried out through
    /// the store.
    pub fn store_write(&self) -> Option<(String, String)> {
        match self {
            Self::Shutdown { domid, reason } => Some((
                format!("/local/domain/{domid}/control/shutdown"),
                String::from(*reason),
            )),
            Self::XsWrite { domid, path, value } => {
                Some((format!("/local/domain/{domid}/{path}"), value.clone()))
            }
            Self::StallDisk { .. } | Self::NetbackStats { .. } => None,
        }
    }

    /// The domain the request names.
    pub fn domid(&self) -> u16 {
        match self {
            Self::Shutdown { domid, .. }
            | Self::XsWrite { domid, .. }
            | Self::StallDisk { domid, .. }
            | Self::NetbackStats { domid, .. } => *domid,
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
            Self::Unknown(w) => {
                write!(
                    f,
                    "unknown request `{w}` (shutdown, xs-write, stall-disk, netback-stats)"
                )
            }
            Self::Usage(u) => write!(f, "usage: {u}"),
        }
    }
}

const SHUTDOWN_USAGE: &str = "shutdown <domid> <poweroff|reboot|halt|suspend>";
const XS_WRITE_USAGE: &str = "xs-write <domid> data/<path> <value>";
const STALL_USAGE: &str = "stall-disk <domid> <vdev> <on|off>";
const STATS_USAGE: &str = "netback-stats <domid> <tag>";

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
        Some("stall-disk") => {
            let domid = domid(words.get(1), STALL_USAGE)?;
            let vdev = words
                .get(2)
                .filter(|v| v.len() <= 16 && v.bytes().all(|b| b.is_ascii_alphanumeric()))
                .ok_or(ControlError::Usage(STALL_USAGE))?;
            let on = match (words.get(3).copied(), words.len()) {
                (Some("on"), 4) => true,
                (Some("off"), 4) => false,
                _ => return Err(ControlError::Usage(STALL_USAGE)),
            };
            Ok(Request::StallDisk {
                domid,
                vdev: String::from(*vdev),
                on,
            })
        }
        Some("netback-stats") => {
            let domid = domid(words.get(1), STATS_USAGE)?;
            let tag = words
                .get(2)
                .filter(|t| {
                    t.len() <= 32 && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                })
                .filter(|_| words.len() == 3)
                .ok_or(ControlError::Usage(STATS_USAGE))?;
            Ok(Request::NetbackStats {
                domid,
                tag: String::from(*tag),
            })
        }
        Some(other) => Err(ControlError::Unknown(String::from(other))),
        None => Err(ControlError::Usage(
            "shutdown ... | xs-write ... | stall-disk ... | netback-stats ...",
        )),
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

use alloc::collections::VecDeque;
use hvctl::{DomRef, DomainInfo, Envelope, FrameReader, HostInfo, Reason, Response};

/// A half frame is dropped after this much silence (its client went away).
pub const FRAME_IDLE_NS: u64 = 2_000_000_000;
/// A half upload is dropped after this much silence.
pub const UPLOAD_IDLE_NS: u64 = 30_000_000_000;

/// What the machine does for the control channel. Domain ids given are never 0 and name a
/// domain that exists ([`Server`] checks both first).
pub trait Domains {
    /// Every domain, in id order.
    fn list(&self) -> Vec<DomainInfo>;
    /// hv.
    fn info(&self) -> HostInfo;
    /// Whether the disks and vifs `config` asks for can be had (a disk needs a spare
    /// virtio-blk device); why not.
    fn check_devices(&self, config: &xlcfg::Config) -> Result<(), String>;
    /// Builds a domain from `config` and its images: the kernel, then the ramdisk's last
    /// `ramdisk_len` bytes; its id, or why not.
    fn create(
        &mut self,
        config: xlcfg::Config,
        images: Vec<u8>,
        ramdisk_len: u32,
        paused: bool,
    ) -> Result<u16, String>;
    /// Pauses (`true`) or unpauses a domain.
    fn pause(&mut self, domid: u16, pause: bool) -> Result<(), String>;
    /// Writes `control/shutdown` in the domain's home.
    fn shutdown(&mut self, domid: u16, reason: Reason) -> Result<(), String>;
    /// Destroys the domain.
    fn destroy(&mut self, domid: u16) -> Result<(), String>;
    /// Console output of the domain from byte `from`, at most `max` bytes.
    fn console(&self, domid: u16, from: u64, max: usize) -> Response;
    /// hv's log from byte `from`.
    fn dmesg(&self, from: u64, max: usize) -> Response;
}

/// What the caller does after sending the answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum After {
    /// Nothing.
    Continue,
    /// hv ends (`shutdown-hv`).
    EndHv,
}

/// A kernel (and ramdisk) being received for a `create`.
struct Upload {
    config: xlcfg::Config,
    /// The kernel's and the ramdisk's bytes together.
    len: u32,
    ramdisk_len: u32,
    data: Vec<u8>,
    last_ns: u64,
}

/// The control channel's server state: the frame being read and the upload in progress.
#[derive(Default)]
pub struct Server {
    reader: FrameReader,
    upload: Option<Upload>,
    last_byte_ns: u64,
}

/// xl's answer for a domain argument that names none (`find_domain` in xl_utils.c).
fn invalid(d: &DomRef) -> String {
    let text = match d {
        DomRef::Id(id) => format!("{id}"),
        DomRef::Name(n) => n.clone(),
    };
    format!("{text} is an invalid domain identifier (rc=-6)")
}

impl Server {
    /// Takes one byte received at system time `now`; a finished frame's answer (a whole
    /// frame to send) and what to do after sending it.
    pub fn push(
        &mut self,
        byte: u8,
        now: u64,
        doms: &mut impl Domains,
    ) -> Option<(Vec<u8>, After)> {
        self.last_byte_ns = now;
        let (id, response, after) = match self.reader.push(byte)? {
            Err(e) => (0, Response::Error(format!("{e}")), After::Continue),
            Ok(frame) => match hvctl::decode::<hvctl::Request>(&frame) {
                Err((e, id)) => (id, Response::Error(format!("{e}")), After::Continue),
                Ok(Envelope { id, body, .. }) => {
                    let (r, a) = self.handle(body, now, doms);
                    (id, r, a)
                }
            },
        };
        let frame = hvctl::encode(id, response)
            .or_else(|e| hvctl::encode(id, Response::Error(format!("the answer: {e}"))))
            .ok()?;
        Some((frame, after))
    }

    /// Drops a half frame or half upload whose client went quiet; true if one was.
    pub fn expire(&mut self, now: u64) -> bool {
        let mut dropped = false;
        if self.reader.in_frame() && now.saturating_sub(self.last_byte_ns) > FRAME_IDLE_NS {
            self.reader.reset();
            dropped = true;
        }
        if self
            .upload
            .as_ref()
            .is_some_and(|u| now.saturating_sub(u.last_ns) > UPLOAD_IDLE_NS)
        {
            self.upload = None;
            dropped = true;
        }
        dropped
    }

    /// Whether a frame is half read (the caller then reads on without waiting).
    pub fn busy(&self) -> bool {
        self.reader.in_frame()
    }

    /// Whether an upload is in progress.
    pub fn uploading(&self) -> bool {
        self.upload.is_some()
    }

    /// The domain `d` names: a live domain's id, or xl's refusal. Domain 0: `xl destroy`'s
    /// own words (Xen 4.17's `destroy_domain` in xl_vmcontrol.c); for what 4.17's xl leaves
    /// to Xen or libxl to refuse (pausing domain 0 is Xen's -EINVAL, shutting it down would
    /// shut the host down), the older xl's words for destroy, `Cannot <what> privileged
    /// domain 0.`
    fn resolve(d: &DomRef, doms: &impl Domains, what: &str) -> Result<u16, String> {
        let list = doms.list();
        let dom0 = matches!(d, DomRef::Id(0)) || matches!(d, DomRef::Name(n) if n == "Domain-0");
        if dom0 && what == "destroy" {
            return Err(DESTROY_DOM0.into());
        }
        if dom0 {
            return Err(format!("Cannot {what} privileged domain 0."));
        }
        let id = match d {
            DomRef::Id(id) => list.iter().find(|i| i.domid == *id),
            DomRef::Name(n) => list.iter().find(|i| i.name == *n),
        };
        id.map(|i| i.domid).ok_or_else(|| invalid(d))
    }

    /// Carries out one decoded request.
    pub fn handle(
        &mut self,
        req: hvctl::Request,
        now: u64,
        doms: &mut impl Domains,
    ) -> (Response, After) {
        if let Err(e) = req.check() {
            return (Response::Error(format!("refused: {e}")), After::Continue);
        }
        let done = |r: Result<(), String>| match r {
            Ok(()) => Response::Done,
            Err(e) => Response::Error(e),
        };
        let r = match req {
            hvctl::Request::List => Response::List(doms.list()),
            hvctl::Request::Info => Response::Info(doms.info()),
            hvctl::Request::CreateBegin {
                file,
                config,
                kernel_len,
                ramdisk_len,
            } => {
                self.upload = None;
                match self.begin(&file, &config, (kernel_len, ramdisk_len), now, doms) {
                    Ok(u) => {
                        self.upload = Some(u);
                        Response::Received { next: 0 }
                    }
                    Err(e) => Response::Error(e),
                }
            }
            hvctl::Request::KernelChunk { offset, bytes } => match self.upload.as_mut() {
                None => Response::Error("no create in progress".into()),
                Some(u) => {
                    let have = u.data.len();
                    let fits = usize::try_from(u.len).is_ok_and(|len| {
                        have.checked_add(bytes.len()).is_some_and(|end| end <= len)
                    });
                    if usize::try_from(offset).ok() != Some(have) {
                        Response::Error(format!("expected the kernel's byte {have}"))
                    } else if !fits {
                        Response::Error("more kernel bytes than announced".into())
                    } else {
                        u.data.extend_from_slice(&bytes);
                        u.last_ns = now;
                        Response::Received {
                            next: u32::try_from(u.data.len()).unwrap_or(u32::MAX),
                        }
                    }
                }
            },
            hvctl::Request::CreateCommit { paused } => match self.upload.take() {
                None => Response::Error("no create in progress".into()),
                Some(u) if u.data.len() != u.len as usize => {
                    let have = u.data.len();
                    self.upload = Some(u);
                    Response::Error(format!("the kernel is incomplete ({have} bytes)"))
                }
                Some(u) => match duplicate(&u.config.name, doms) {
                    Some(e) => Response::Error(e),
                    None => match doms.create(u.config, u.data, u.ramdisk_len, paused) {
                        Ok(domid) => Response::Created { domid },
                        Err(e) => Response::Error(e),
                    },
                },
            },
            hvctl::Request::Console { dom, from, max } => {
                match Self::resolve(&dom, doms, "attach to") {
                    Ok(id) => doms.console(id, from, usize::from(max)),
                    Err(e) => Response::Error(e),
                }
            }
            hvctl::Request::Pause(d) => {
                done(Self::resolve(&d, doms, "pause").and_then(|id| doms.pause(id, true)))
            }
            hvctl::Request::Unpause(d) => {
                done(Self::resolve(&d, doms, "unpause").and_then(|id| doms.pause(id, false)))
            }
            hvctl::Request::Shutdown { dom, reason } => done(
                Self::resolve(&dom, doms, "shut down").and_then(|id| doms.shutdown(id, reason)),
            ),
            hvctl::Request::Destroy(d) => {
                done(Self::resolve(&d, doms, "destroy").and_then(|id| doms.destroy(id)))
            }
            hvctl::Request::Dmesg { from } => {
                doms.dmesg(from, usize::from(hvctl::MAX_CONSOLE_READ))
            }
            hvctl::Request::ShutdownHv => return (Response::Done, After::EndHv),
        };
        (r, After::Continue)
    }

    /// Checks a `CreateBegin`: the config parses (problems as `<file>:<line>: <key>: ...`),
    /// its ramdisk (if any) is sent along, its disks find spare devices, it names no
    /// existing domain, and the images' room can be had.
    fn begin(
        &self,
        file: &str,
        config: &str,
        (kernel_len, ramdisk_len): (u32, u32),
        now: u64,
        doms: &impl Domains,
    ) -> Result<Upload, String> {
        let c = xlcfg::parse(config, xlcfg::dir_of(file)).map_err(|problems| {
            let lines: Vec<String> = problems.iter().map(|p| p.render(file)).collect();
            lines.join("\n")
        })?;
        if c.ramdisk.is_some() != (ramdisk_len > 0) {
            let line = c.line_of("ramdisk").unwrap_or(c.end_line);
            return Err(format!(
                "{file}:{line}: ramdisk: the config and the upload disagree on a ramdisk \
                 ({ramdisk_len} bytes sent)"
            ));
        }
        if let Err(e) = doms.check_devices(&c) {
            let line = c.line_of("disk").unwrap_or(c.end_line);
            return Err(format!("{file}:{line}: disk: {e}"));
        }
        if let Some(e) = duplicate(&c.name, doms) {
            return Err(e);
        }
        // `check` bounded the sum.
        let len = kernel_len.saturating_add(ramdisk_len);
        let mut data = Vec::new();
        data.try_reserve_exact(len as usize)
            .map_err(|_| format!("no room in hv for images of {len} bytes"))?;
        Ok(Upload {
            config: c,
            len,
            ramdisk_len,
            data,
            last_ns: now,
        })
    }
}

/// `xl destroy 0`'s refusal (xl_vmcontrol.c's `destroy_domain`; hv has no `-f`).
pub const DESTROY_DOM0: &str = "Not destroying domain 0; use -f to force.\n\
    This can only be done when using a disaggregated hardware domain and toolstack.";

/// xl's refusal of a second domain with a name in use: libxl's `libxl__domain_rename`
/// logs `Domain with name "<name>" already exists.` (after its `libxl: error:
/// <file>:<line>:<function>: Domain <id>:` prefix, which hv leaves out).
fn duplicate(name: &str, doms: &impl Domains) -> Option<String> {
    (name == "Domain-0" || doms.list().iter().any(|d| d.name == name))
        .then(|| format!("libxl: error: Domain with name {name:?} already exists."))
}

/// The last `cap` bytes of an output stream, with offsets counted from its start.
#[derive(Debug)]
pub struct OutputRing {
    bytes: VecDeque<u8>,
    cap: usize,
    /// The offset of the first byte kept.
    start: u64,
}

impl OutputRing {
    /// A ring keeping the last `cap` bytes.
    pub fn new(cap: usize) -> Self {
        Self {
            bytes: VecDeque::new(),
            cap,
            start: 0,
        }
    }

    /// Appends, dropping the oldest bytes past the cap.
    pub fn push(&mut self, data: &[u8]) {
        for &b in data {
            if self.bytes.len() >= self.cap {
                self.bytes.pop_front();
                self.start = self.start.saturating_add(1);
            }
            self.bytes.push_back(b);
        }
    }

    /// The offset after the last byte.
    pub fn end(&self) -> u64 {
        self.start.saturating_add(self.bytes.len() as u64)
    }

    /// At most `max` bytes from offset `from` (bytes before the oldest kept are lost).
    pub fn read(&self, from: u64, max: usize) -> Response {
        let first = from.max(self.start).min(self.end());
        let lost = self.start.saturating_sub(from);
        let skip = usize::try_from(first - self.start).unwrap_or(usize::MAX);
        let bytes: Vec<u8> = self.bytes.iter().skip(skip).take(max).copied().collect();
        Response::Output {
            next: first.saturating_add(bytes.len() as u64),
            bytes,
            lost,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_four_requests() {
        assert_eq!(
            parse("shutdown 3 poweroff").unwrap().store_write(),
            Some(("/local/domain/3/control/shutdown".into(), "poweroff".into()))
        );
        let r = parse("xs-write 1 data/net-done 1").unwrap();
        assert_eq!(r.domid(), 1);
        assert_eq!(
            r.store_write(),
            Some(("/local/domain/1/data/net-done".into(), "1".into()))
        );
        let r = parse("stall-disk 2 xvdb on").unwrap();
        assert_eq!(
            r,
            Request::StallDisk {
                domid: 2,
                vdev: "xvdb".into(),
                on: true
            }
        );
        assert_eq!(r.store_write(), None);
        assert!(matches!(
            parse("stall-disk 2 xvdb off"),
            Ok(Request::StallDisk { on: false, .. })
        ));
        assert_eq!(
            parse("netback-stats 1 before-16").unwrap(),
            Request::NetbackStats {
                domid: 1,
                tag: "before-16".into()
            }
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
            "stall-disk 0 xvdb on",
            "stall-disk 1 xvdb",
            "stall-disk 1 xvdb maybe",
            "stall-disk 1 ../xvdb on",
            "stall-disk 1 xvdb on now",
            "stall-disk 1 averyveryverylongdiskname on",
            "netback-stats 1",
            "netback-stats 1 a/b",
            "netback-stats 1 a b",
            "netback-stats 1 aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
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

    /// A machine of plain data.
    #[derive(Default)]
    struct Fake {
        doms: Vec<DomainInfo>,
        /// Name, image bytes, ramdisk bytes, paused.
        created: Vec<(String, usize, u32, bool)>,
        /// Spare virtio-blk devices.
        spare_disks: usize,
        writes: Vec<(u16, &'static str)>,
    }

    impl Domains for Fake {
        fn list(&self) -> Vec<DomainInfo> {
            self.doms.clone()
        }
        fn info(&self) -> HostInfo {
            HostInfo::default()
        }
        fn check_devices(&self, config: &xlcfg::Config) -> Result<(), String> {
            if config.disks.len() > self.spare_disks {
                return Err(format!(
                    "no spare virtio-blk device for {}",
                    config.disks[0].vdev
                ));
            }
            Ok(())
        }
        fn create(
            &mut self,
            config: xlcfg::Config,
            images: Vec<u8>,
            ramdisk_len: u32,
            paused: bool,
        ) -> Result<u16, String> {
            let domid = u16::try_from(self.doms.len() + 1).unwrap();
            self.created
                .push((config.name.clone(), images.len(), ramdisk_len, paused));
            self.doms.push(DomainInfo {
                name: config.name,
                domid,
                ..DomainInfo::default()
            });
            Ok(domid)
        }
        fn pause(&mut self, domid: u16, pause: bool) -> Result<(), String> {
            let d = self.doms.iter_mut().find(|d| d.domid == domid).unwrap();
            d.paused = pause;
            Ok(())
        }
        fn shutdown(&mut self, domid: u16, reason: Reason) -> Result<(), String> {
            self.writes.push((domid, reason.word()));
            Ok(())
        }
        fn destroy(&mut self, domid: u16) -> Result<(), String> {
            self.doms.retain(|d| d.domid != domid);
            Ok(())
        }
        fn console(&self, _: u16, from: u64, max: usize) -> Response {
            let mut r = OutputRing::new(8);
            r.push(b"hello, world");
            r.read(from, max)
        }
        fn dmesg(&self, _: u64, _: usize) -> Response {
            Response::Done
        }
    }

    const CFG: &str = "name = \"a\"\ntype = \"pvh\"\nkernel = \"k\"\nmemory = 16\n";

    /// Sends `req` through the byte path; the answer.
    fn ask(s: &mut Server, f: &mut Fake, req: hvctl::Request) -> Response {
        let frame = hvctl::encode(42, req).unwrap();
        let mut answers = Vec::new();
        for b in frame {
            if let Some((a, _)) = s.push(b, 0, f) {
                answers.push(a);
            }
        }
        assert_eq!(answers.len(), 1);
        let a = answers.pop().unwrap();
        let env: Envelope<Response> = hvctl::decode(&a[..a.len() - 1]).unwrap();
        assert_eq!(env.id, 42);
        env.body
    }

    #[test]
    fn create_travels_in_chunks_and_every_request_is_answered() {
        use hvctl::Request as R;
        let (mut s, mut f) = (Server::default(), Fake::default());
        let begin = |len| R::CreateBegin {
            file: "/c/a.cfg".into(),
            config: CFG.into(),
            kernel_len: len,
            ramdisk_len: 0,
        };
        assert_eq!(
            ask(&mut s, &mut f, begin(5000)),
            Response::Received { next: 0 }
        );
        let chunk = |offset, n| R::KernelChunk {
            offset,
            bytes: vec![7; n],
        };
        assert_eq!(
            ask(&mut s, &mut f, chunk(0, 4096)),
            Response::Received { next: 4096 }
        );
        // Out of order, or past the announced length: refused, the upload unchanged.
        assert!(matches!(
            ask(&mut s, &mut f, chunk(0, 10)),
            Response::Error(_)
        ));
        assert!(matches!(
            ask(&mut s, &mut f, chunk(4096, 1000)),
            Response::Error(_)
        ));
        assert!(matches!(
            ask(&mut s, &mut f, R::CreateCommit { paused: false }),
            Response::Error(_)
        ));
        assert_eq!(
            ask(&mut s, &mut f, chunk(4096, 904)),
            Response::Received { next: 5000 }
        );
        assert_eq!(
            ask(&mut s, &mut f, R::CreateCommit { paused: true }),
            Response::Created { domid: 1 }
        );
        assert_eq!(f.created, vec![("a".into(), 5000, 0, true)]);
        // xl's refusal of a name in use; a config's problems with file and line.
        match ask(&mut s, &mut f, begin(10)) {
            Response::Error(e) => {
                assert_eq!(e, "libxl: error: Domain with name \"a\" already exists.")
            }
            r => panic!("{r:?}"),
        }
        let bad = R::CreateBegin {
            file: "/c/b.cfg".into(),
            config: "name = \"b\"\nmemory = \"lots\"\n".into(),
            kernel_len: 10,
            ramdisk_len: 0,
        };
        match ask(&mut s, &mut f, bad) {
            Response::Error(e) => assert!(e.starts_with("/c/b.cfg:"), "{e}"),
            r => panic!("{r:?}"),
        }
        // A disk without a spare device: refused before any byte of kernel, at its line.
        let begin_with = |name: &str, extra: &str, ramdisk_len| R::CreateBegin {
            file: format!("/c/{name}.cfg"),
            config: format!("{CFG}name = \"{name}\"\n{extra}\n"),
            kernel_len: 10,
            ramdisk_len,
        };
        match ask(
            &mut s,
            &mut f,
            begin_with("d", "disk = [ 'd.img,raw,xvda,rw' ]", 0),
        ) {
            Response::Error(e) => assert!(
                e.starts_with("/c/d.cfg:6: disk: no spare virtio-blk device"),
                "{e}"
            ),
            r => panic!("{r:?}"),
        }
        // A ramdisk the config names must come along, and one it does not name must not.
        for (extra, len) in [("ramdisk = \"initrd\"", 0), ("", 5)] {
            match ask(&mut s, &mut f, begin_with("r", extra, len)) {
                Response::Error(e) => assert!(e.contains(": ramdisk: "), "{e}"),
                r => panic!("{r:?}"),
            }
        }
        // A vif, a disk on a spare device and a ramdisk travelling after the kernel.
        f.spare_disks = 1;
        let extra = "vif = [ '' ]\ndisk = [ 'd.img,raw,xvda,rw' ]\nramdisk = \"initrd\"";
        assert_eq!(
            ask(&mut s, &mut f, begin_with("v", extra, 5)),
            Response::Received { next: 0 }
        );
        assert_eq!(
            ask(&mut s, &mut f, chunk(0, 15)),
            Response::Received { next: 15 }
        );
        assert_eq!(
            ask(&mut s, &mut f, R::CreateCommit { paused: false }),
            Response::Created { domid: 2 }
        );
        assert_eq!(f.created[1], ("v".into(), 15, 5, false));
        assert_eq!(
            ask(&mut s, &mut f, R::Destroy(DomRef::Name("v".into()))),
            Response::Done
        );
        assert_eq!(
            ask(&mut s, &mut f, R::Pause(DomRef::Name("a".into()))),
            Response::Done
        );
        assert!(f.doms[0].paused);
        assert_eq!(
            ask(&mut s, &mut f, R::Unpause(DomRef::Id(1))),
            Response::Done
        );
        assert_eq!(
            ask(
                &mut s,
                &mut f,
                R::Shutdown {
                    dom: DomRef::Id(1),
                    reason: Reason::Reboot
                }
            ),
            Response::Done
        );
        assert_eq!(f.writes, vec![(1, "reboot")]);
        assert_eq!(
            ask(
                &mut s,
                &mut f,
                R::Console {
                    dom: DomRef::Id(1),
                    from: 0,
                    max: 3
                }
            ),
            Response::Output {
                next: 7,
                bytes: b"o, ".to_vec(),
                lost: 4
            }
        );
        for (req, want) in [
            (R::Destroy(DomRef::Id(0)), DESTROY_DOM0),
            (
                R::Pause(DomRef::Name("Domain-0".into())),
                "Cannot pause privileged domain 0.",
            ),
            (
                R::Destroy(DomRef::Id(9)),
                "9 is an invalid domain identifier (rc=-6)",
            ),
            (
                R::Pause(DomRef::Name("zz".into())),
                "zz is an invalid domain identifier (rc=-6)",
            ),
        ] {
            assert_eq!(ask(&mut s, &mut f, req), Response::Error(want.into()));
        }
        assert_eq!(
            ask(&mut s, &mut f, R::Destroy(DomRef::Name("a".into()))),
            Response::Done
        );
        assert!(f.doms.is_empty());
        assert_eq!(ask(&mut s, &mut f, R::List), Response::List(vec![]));
        let frame = hvctl::encode(1, R::ShutdownHv).unwrap();
        let mut last = None;
        for b in frame {
            if let Some((_, after)) = s.push(b, 0, &mut f) {
                last = Some(after);
            }
        }
        assert_eq!(last, Some(After::EndHv));
    }

    #[test]
    fn bad_frames_are_answered_and_disturb_nothing() {
        let (mut s, mut f) = (Server::default(), Fake::default());
        let answers = core::cell::Cell::new(0);
        let feed = |s: &mut Server, f: &mut Fake, bytes: &[u8], now| {
            for &b in bytes {
                if let Some((a, after)) = s.push(b, now, f) {
                    assert_eq!(after, After::Continue);
                    let env: Envelope<Response> = hvctl::decode(&a[..a.len() - 1]).unwrap();
                    assert!(matches!(env.body, Response::Error(_)));
                    answers.set(answers.get() + 1);
                }
            }
        };
        feed(&mut s, &mut f, b"\x03ab\x00", 0);
        let mut big = vec![9u8; hvctl::MAX_FRAME + 1];
        big.push(0);
        feed(&mut s, &mut f, &big, 0);
        // Over the bounds: refused before anything is done.
        let oversized = hvctl::encode(
            3,
            hvctl::Request::CreateBegin {
                file: "a".into(),
                config: CFG.into(),
                kernel_len: hvctl::MAX_KERNEL + 1,
                ramdisk_len: 0,
            },
        )
        .unwrap();
        feed(&mut s, &mut f, &oversized, 0);
        assert_eq!(answers.get(), 3);
        assert!(!s.uploading());
        // A client gone mid-frame: the half frame is dropped after the idle time.
        let half = hvctl::encode(4, hvctl::Request::List).unwrap();
        feed(&mut s, &mut f, &half[..half.len() / 2], 0);
        assert!(s.busy());
        assert!(!s.expire(FRAME_IDLE_NS));
        assert!(s.expire(FRAME_IDLE_NS + 1));
        assert!(!s.busy());
        // A half upload too.
        assert_eq!(
            ask(
                &mut s,
                &mut f,
                hvctl::Request::CreateBegin {
                    file: "a".into(),
                    config: CFG.into(),
                    kernel_len: 9,
                    ramdisk_len: 0,
                }
            ),
            Response::Received { next: 0 }
        );
        assert!(s.uploading());
        assert!(s.expire(UPLOAD_IDLE_NS + 1));
        assert!(!s.uploading());
        assert!(f.doms.is_empty() && f.created.is_empty());
    }

    #[test]
    fn output_rings_keep_the_tail_with_offsets() {
        let mut r = OutputRing::new(4);
        r.push(b"abcdef");
        assert_eq!(r.end(), 6);
        assert_eq!(
            r.read(0, 10),
            Response::Output {
                next: 6,
                bytes: b"cdef".to_vec(),
                lost: 2
            }
        );
        assert_eq!(
            r.read(5, 10),
            Response::Output {
                next: 6,
                bytes: b"f".to_vec(),
                lost: 0
            }
        );
        assert_eq!(
            r.read(99, 10),
            Response::Output {
                next: 6,
                bytes: vec![],
                lost: 0
            }
        );
    }

    proptest! {
        #[test]
        fn any_input_is_bounded_and_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let mut b = LineBuffer::default();
            for c in bytes {
                if let Some(Ok(r)) = b.push(c)
                    && let Some((path, _)) = r.store_write()
                {
                    let home = format!("/local/domain/{}/", r.domid());
                    prop_assert!(path.starts_with(&home));
                    prop_assert!(!path.contains("/../"));
                }
                prop_assert!(b.line.len() <= MAX_LINE);
            }
        }
    }
}
