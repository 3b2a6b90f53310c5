//! `hvctl`: the protocol of hv's control channel, which `cargo xtask xl` speaks to a running
//! hv over a serial port (COM2) that QEMU wires to a Unix socket.
//!
//! Every message is an [`Envelope`]: a protocol [`VERSION`], an `id` the client chooses (the
//! answer carries it back, so a client ignores any answer that is not to its own request)
//! and a body, a [`Request`] one way and a [`Response`] the other. On the wire an envelope is
//! postcard's encoding, COBS-framed: the frame holds no 0 byte and a 0 byte ends it, so a
//! reader that meets garbage (or half a frame from a client that went away) loses at most
//! that frame and is in step again at the next 0. A frame is at most [`MAX_FRAME`] bytes; a
//! longer one is dropped whole ([`FrameReader`]) and answered with an error.
//!
//! A serial port is slow, so a kernel (then its ramdisk, if the config names one) travels in
//! [`CHUNK`]-byte pieces, each acknowledged, and at most [`MAX_KERNEL`] bytes in all (`xtask`
//! sends only the ELF's loaded part).
//! [`Request::check`] is every bound hv applies before it acts on a request.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

/// The protocol's version; an envelope of another version is refused.
pub const VERSION: u8 = 2;
/// The longest frame, COBS-encoded, without its ending 0.
pub const MAX_FRAME: usize = 6 * 1024;
/// The most kernel bytes one [`Request::KernelChunk`] carries.
pub const CHUNK: usize = 4096;
/// The most bytes `create` sends, its kernel (the ELF's loaded part) and ramdisk together:
/// 8 MiB. QEMU's emulated UART
/// moves about 60 KiB/s to hv under TCG (pvguest's 830 KiB in about 14 s), so this is a
/// little over two minutes; larger kernels would want virtio-console.
pub const MAX_KERNEL: u32 = 8 << 20;
/// The longest config text.
pub const MAX_CONFIG: usize = 4096;
/// The longest config file name carried (for problems' `<file>:<line>:`).
pub const MAX_FILE_NAME: usize = 256;
/// The longest domain name.
pub const MAX_NAME: usize = 64;
/// The most console bytes one [`Request::Console`] asks for.
pub const MAX_CONSOLE_READ: u16 = 2048;
/// The first domain id that names no domain (Xen's `DOMID_FIRST_RESERVED`).
pub const DOMID_FIRST_RESERVED: u16 = 0x7ff0;

/// One message: version, the client's id for the exchange, and the body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope<T> {
    /// [`VERSION`].
    pub version: u8,
    /// Chosen by the client; the answer carries the same.
    pub id: u32,
    /// The request or response.
    pub body: T,
}

/// A domain, by id or by name, as `xl` accepts either.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DomRef {
    /// A domain id.
    Id(u16),
    /// A domain name.
    Name(String),
}

impl DomRef {
    /// How `xl` reads a domain argument: all digits is an id, anything else a name.
    pub fn parse(s: &str) -> Self {
        match s.parse::<u16>() {
            Ok(id) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => Self::Id(id),
            _ => Self::Name(String::from(s)),
        }
    }
}

/// What `shutdown` asks the guest (`control/shutdown`'s value).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reason {
    /// `poweroff` (`xl shutdown`).
    Poweroff,
    /// `reboot` (`xl reboot`).
    Reboot,
    /// `halt`.
    Halt,
}

impl Reason {
    /// The value written to `control/shutdown`.
    pub fn word(self) -> &'static str {
        match self {
            Self::Poweroff => "poweroff",
            Self::Reboot => "reboot",
            Self::Halt => "halt",
        }
    }
}

/// What a client asks of hv.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// The domains (`xl list`).
    List,
    /// hv's version, memory and domains (`xl info`).
    Info,
    /// Starts a `create`: the config's file name and text, and the kernel's length; the
    /// kernel follows in [`Request::KernelChunk`]s, then [`Request::CreateCommit`]. A new
    /// `CreateBegin` drops any upload in progress.
    CreateBegin {
        /// The config's file name, for problems.
        file: String,
        /// The config's text (xl.cfg syntax).
        config: String,
        /// The kernel's length in bytes.
        kernel_len: u32,
        /// The ramdisk's length in bytes (0: none); its bytes follow the kernel's in the
        /// same chunks, and both together are at most [`MAX_KERNEL`].
        ramdisk_len: u32,
    },
    /// Kernel (then ramdisk) bytes at `offset` (the upload's next byte: chunks come in
    /// order).
    KernelChunk {
        /// Where these bytes go.
        offset: u32,
        /// At most [`CHUNK`] bytes.
        bytes: Vec<u8>,
    },
    /// Builds the domain from the finished upload.
    CreateCommit {
        /// `xl create -p`: left paused.
        paused: bool,
    },
    /// Console output of a domain from byte `from` of its output (`xl console`).
    Console {
        /// The domain.
        dom: DomRef,
        /// The first byte wanted (0: the oldest kept).
        from: u64,
        /// At most this many bytes (up to [`MAX_CONSOLE_READ`]).
        max: u16,
    },
    /// `xl pause`.
    Pause(DomRef),
    /// `xl unpause`.
    Unpause(DomRef),
    /// `xl shutdown` / `xl reboot`: writes `control/shutdown` in the domain's home.
    Shutdown {
        /// The domain.
        dom: DomRef,
        /// The value written.
        reason: Reason,
    },
    /// `xl destroy`.
    Destroy(DomRef),
    /// hv's log ring from byte `from` (`xl dmesg`).
    Dmesg {
        /// The first byte wanted.
        from: u64,
    },
    /// Ends hv: every domain destroyed, QEMU exits 33.
    ShutdownHv,
}

/// Why a request was refused by [`Request::check`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckError {
    /// A string or byte field is longer than its limit.
    TooLong(&'static str),
    /// A domain id outside 1..[`DOMID_FIRST_RESERVED`] (or an empty name).
    BadDomain,
    /// The kernel is empty, or it and the ramdisk are larger than [`MAX_KERNEL`].
    KernelSize,
}

impl core::fmt::Display for CheckError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::TooLong(what) => write!(f, "{what} is over its limit"),
            Self::BadDomain => f.write_str("no such domain id (1 to 32751) or an empty name"),
            Self::KernelSize => write!(
                f,
                "the kernel must be 1 to {MAX_KERNEL} bytes, with the ramdisk"
            ),
        }
    }
}

fn check_dom(d: &DomRef) -> Result<(), CheckError> {
    match d {
        // Domain 0 passes here: the handler refuses it with xl's words.
        DomRef::Id(id) if *id < DOMID_FIRST_RESERVED => Ok(()),
        DomRef::Id(_) => Err(CheckError::BadDomain),
        DomRef::Name(n) if n.is_empty() => Err(CheckError::BadDomain),
        DomRef::Name(n) if n.len() > MAX_NAME => Err(CheckError::TooLong("the domain name")),
        DomRef::Name(_) => Ok(()),
    }
}

impl Request {
    /// Every bound on the request's fields (hv acts on none that fails).
    pub fn check(&self) -> Result<(), CheckError> {
        match self {
            Self::List | Self::Info | Self::ShutdownHv | Self::Dmesg { .. } => Ok(()),
            Self::CreateBegin {
                file,
                config,
                kernel_len,
                ramdisk_len,
            } => {
                if file.len() > MAX_FILE_NAME {
                    return Err(CheckError::TooLong("the file name"));
                }
                if config.len() > MAX_CONFIG {
                    return Err(CheckError::TooLong("the config"));
                }
                let total = kernel_len.checked_add(*ramdisk_len);
                if *kernel_len == 0 || total.is_none_or(|t| t > MAX_KERNEL) {
                    return Err(CheckError::KernelSize);
                }
                Ok(())
            }
            Self::KernelChunk { bytes, .. } if bytes.len() > CHUNK || bytes.is_empty() => {
                Err(CheckError::TooLong("a kernel chunk"))
            }
            Self::KernelChunk { .. } | Self::CreateCommit { .. } => Ok(()),
            Self::Console { dom, max, .. } => {
                if *max > MAX_CONSOLE_READ {
                    return Err(CheckError::TooLong("a console read"));
                }
                check_dom(dom)
            }
            Self::Pause(d) | Self::Unpause(d) | Self::Destroy(d) => check_dom(d),
            Self::Shutdown { dom, .. } => check_dom(dom),
        }
    }
}

/// One row of `xl list`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainInfo {
    /// The name.
    pub name: String,
    /// The id.
    pub domid: u16,
    /// Memory, MiB.
    pub mem_mib: u64,
    /// vCPUs.
    pub vcpus: u32,
    /// `r`: on the CPU or runnable.
    pub running: bool,
    /// `b`: waiting for an event.
    pub blocked: bool,
    /// `p`: paused.
    pub paused: bool,
    /// `s`: shut down (kept, as `on_poweroff = "preserve"` keeps it).
    pub shutdown: bool,
    /// `c`: crashed (kept).
    pub crashed: bool,
    /// `d`: dying.
    pub dying: bool,
    /// CPU time used, ns.
    pub cpu_ns: u64,
}

impl DomainInfo {
    /// xl's six state letters, `rbpscd`, `-` for each not set.
    pub fn state(&self) -> String {
        [
            (self.running, 'r'),
            (self.blocked, 'b'),
            (self.paused, 'p'),
            (self.shutdown, 's'),
            (self.crashed, 'c'),
            (self.dying, 'd'),
        ]
        .iter()
        .map(|&(on, c)| if on { c } else { '-' })
        .collect()
    }
}

/// What `xl info` shows of hv.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostInfo {
    /// hv's version (its crate's).
    pub hv_version: String,
    /// The Xen interface version hv speaks (`4.17`).
    pub xen_version: String,
    /// hv's command line (its own options).
    pub commandline: String,
    /// Memory hv gives domains, free and used, MiB.
    pub total_mib: u64,
    /// Free of it, MiB.
    pub free_mib: u64,
    /// The TSC's rate.
    pub tsc_khz: u32,
    /// Domains now.
    pub domains: u32,
    /// System time, ns.
    pub uptime_ns: u64,
    /// Whether hv outlives its domains (`keep`).
    pub keep: bool,
}

/// What hv answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// Done.
    Done,
    /// Refused or failed; the text says why, in xl's words where xl has some.
    Error(String),
    /// The domains.
    List(Vec<DomainInfo>),
    /// hv.
    Info(HostInfo),
    /// The upload has this many kernel bytes.
    Received {
        /// Bytes received so far.
        next: u32,
    },
    /// The domain was built.
    Created {
        /// Its id.
        domid: u16,
    },
    /// Console (or log) bytes.
    Output {
        /// The byte after the last one given (ask from here next).
        next: u64,
        /// The bytes.
        bytes: Vec<u8>,
        /// Bytes between `from` and the oldest kept that were lost.
        lost: u64,
    },
}

/// Why a frame could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// Over [`MAX_FRAME`] bytes; dropped whole.
    TooLong,
    /// Not valid COBS.
    Cobs,
    /// Not an envelope postcard can read (or bytes left after it).
    Decode,
    /// Another protocol version.
    Version(u8),
}

impl core::fmt::Display for FrameError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::TooLong => write!(f, "a frame over {MAX_FRAME} bytes, dropped"),
            Self::Cobs => f.write_str("a frame that is not COBS"),
            Self::Decode => f.write_str("a frame that is no request"),
            Self::Version(v) => write!(f, "protocol version {v}, hv speaks {VERSION}"),
        }
    }
}

/// Encodes `body` with `id` as one frame, its ending 0 included.
pub fn encode<T: Serialize>(id: u32, body: T) -> Result<Vec<u8>, FrameError> {
    let env = Envelope {
        version: VERSION,
        id,
        body,
    };
    let frame = postcard::to_allocvec_cobs(&env).map_err(|_| FrameError::Decode)?;
    if frame.len() > MAX_FRAME + 1 {
        return Err(FrameError::TooLong);
    }
    Ok(frame)
}

/// Decodes one frame (without its ending 0). On failure, the id if the envelope's head was
/// readable, so that the error answer reaches the client that asked.
pub fn decode<T: for<'de> Deserialize<'de>>(
    frame: &[u8],
) -> Result<Envelope<T>, (FrameError, u32)> {
    if frame.len() > MAX_FRAME {
        return Err((FrameError::TooLong, 0));
    }
    let mut buf = Vec::from(frame);
    let len = cobs::decode_in_place(&mut buf).map_err(|_| (FrameError::Cobs, 0))?;
    let bytes = buf.get(..len).ok_or((FrameError::Cobs, 0))?;
    let head = postcard::take_from_bytes::<(u8, u32)>(bytes).ok();
    let id = head.map_or(0, |((_, id), _)| id);
    if let Some(((v, _), _)) = head
        && v != VERSION
    {
        return Err((FrameError::Version(v), id));
    }
    match postcard::take_from_bytes::<Envelope<T>>(bytes) {
        Ok((env, [])) => Ok(env),
        _ => Err((FrameError::Decode, id)),
    }
}

/// Gathers bytes into frames: [`FrameReader::push`] gives a finished frame (COBS-encoded,
/// without its 0) or the error of an overlong one; empty frames (two 0s) are skipped, so a
/// client may send a 0 first to end any half frame left by another.
#[derive(Debug, Default)]
pub struct FrameReader {
    buf: Vec<u8>,
    overflowed: bool,
}

impl FrameReader {
    /// Takes one byte.
    pub fn push(&mut self, byte: u8) -> Option<Result<Vec<u8>, FrameError>> {
        if byte == 0 {
            let frame = core::mem::take(&mut self.buf);
            if core::mem::take(&mut self.overflowed) {
                return Some(Err(FrameError::TooLong));
            }
            return (!frame.is_empty()).then_some(Ok(frame));
        }
        if self.overflowed {
            return None;
        }
        if self.buf.len() >= MAX_FRAME {
            self.buf = Vec::new();
            self.overflowed = true;
            return None;
        }
        self.buf.push(byte);
        None
    }

    /// Whether a frame is half read.
    pub fn in_frame(&self) -> bool {
        !self.buf.is_empty() || self.overflowed
    }

    /// Drops a half-read frame (its sender went quiet).
    pub fn reset(&mut self) {
        self.buf = Vec::new();
        self.overflowed = false;
    }

    /// Bytes held.
    pub fn held(&self) -> usize {
        self.buf.len()
    }
}

#[cfg(test)]
mod tests;
