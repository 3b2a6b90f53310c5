//! `cargo xtask xl`: manages a running hv's domains the way `xl` manages Xen's, over hv's
//! control channel: COM2, which QEMU wires to a Unix socket in a mode-0700 directory under
//! `target/pvxen/` ([`socket_for`]), carrying [`hvctl`] frames. Also `HOST hv-xl`
//! ([`xl_test`]), the check `hv-test` makes of it.
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use hvctl::{DomRef, DomainInfo, Envelope, FrameReader, HostInfo, Reason, Request, Response};

use crate::build::workspace_root;

/// The boots that get a control channel, by their run label: `hv-run`, `run` on hv, and
/// `hv-test`'s own check.
const MANAGED: [&str; 3] = ["hv-run", "run-hv", "hv-xl"];

/// The socket's directory for the boot labelled `label`: `target/pvxen/ctl-<label>`.
fn socket_dir(label: &str) -> PathBuf {
    workspace_root()
        .join("target")
        .join("pvxen")
        .join(format!("ctl-{label}"))
}

/// Where the boot labelled `label` has its control socket.
pub fn socket_path(label: &str) -> PathBuf {
    socket_dir(label).join("hv.sock")
}

/// The control socket for a boot labelled `label`, its directory made with mode 0700 (and
/// a stale socket removed), or `None` for boots that get no channel.
pub fn socket_for(label: &str) -> Result<Option<PathBuf>> {
    if !MANAGED.contains(&label) {
        return Ok(None);
    }
    let dir = socket_dir(label);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("chmod 0700 {}", dir.display()))?;
    let socket = dir.join("hv.sock");
    let _ = std::fs::remove_file(&socket);
    Ok(Some(socket))
}

/// How long an answer may take (a create builds a domain first).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// A connection to hv's control channel.
pub struct Client {
    stream: UnixStream,
    reader: FrameReader,
    next_id: u32,
}

impl Client {
    /// Connects to the socket at `path`.
    pub fn connect(path: &Path) -> Result<Self> {
        let stream = UnixStream::connect(path)
            .with_context(|| format!("connecting to hv's control socket {}", path.display()))?;
        stream.set_read_timeout(Some(Duration::from_millis(200)))?;
        let mut c = Self {
            stream,
            reader: FrameReader::default(),
            next_id: std::process::id().wrapping_mul(65536),
        };
        // A 0 ends whatever half frame an earlier client left.
        c.stream.write_all(&[0])?;
        Ok(c)
    }

    /// Sends raw bytes (tests of malformed frames).
    pub fn send_raw(&mut self, bytes: &[u8]) -> Result<()> {
        self.stream.write_all(bytes)?;
        Ok(())
    }

    /// The next answer carrying `id` (others, to earlier clients, are skipped).
    pub fn answer(&mut self, id: u32) -> Result<Response> {
        self.answer_within(id, ANSWER_TIMEOUT)
    }

    /// [`Client::answer`], waiting at most `limit`.
    fn answer_within(&mut self, id: u32, limit: Duration) -> Result<Response> {
        let until = Instant::now() + limit;
        let mut buf = [0u8; 4096];
        loop {
            if Instant::now() > until {
                bail!("hv did not answer within {limit:?}");
            }
            let n = match self.stream.read(&mut buf) {
                Ok(0) => bail!("hv's control socket closed (hv ended?)"),
                Ok(n) => n,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    continue;
                }
                Err(e) => return Err(e).context("reading hv's answer"),
            };
            for &b in &buf[..n] {
                if let Some(Ok(frame)) = self.reader.push(b)
                    && let Ok(Envelope::<Response> { id: got, body, .. }) = hvctl::decode(&frame)
                    && got == id
                {
                    return Ok(body);
                }
            }
        }
    }

    /// Sends `req` and waits for its answer.
    pub fn call(&mut self, req: Request) -> Result<Response> {
        self.call_within(req, ANSWER_TIMEOUT)
    }

    /// [`Client::call`], waiting at most `limit`.
    fn call_within(&mut self, req: Request, limit: Duration) -> Result<Response> {
        self.next_id = self.next_id.wrapping_add(1);
        let id = self.next_id;
        let frame = hvctl::encode(id, req).map_err(|e| anyhow::anyhow!("{e}"))?;
        self.stream.write_all(&frame)?;
        self.answer_within(id, limit)
    }

    /// Connects to the socket at `path` once hv answers there, within `limit`: QEMU makes
    /// the socket when it starts, but what reaches COM2 before hv has set the port up is
    /// lost, so the first request is repeated until answered.
    pub fn connect_when_up(path: &Path, limit: Duration) -> Result<Self> {
        let until = Instant::now() + limit;
        loop {
            let mut last = match Self::connect(path) {
                Ok(mut c) => match c.call_within(Request::Info, Duration::from_secs(2)) {
                    Ok(_) => return Ok(c),
                    Err(e) => e,
                },
                Err(e) => e,
            };
            if Instant::now() > until {
                last = last.context(format!("hv's control socket never answered in {limit:?}"));
                return Err(last);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// [`Client::call`], with an error answer as an error.
    fn ok(&mut self, req: Request) -> Result<Response> {
        match self.call(req)? {
            Response::Error(e) => bail!("{e}"),
            r => Ok(r),
        }
    }

    /// The domains.
    pub fn list(&mut self) -> Result<Vec<DomainInfo>> {
        match self.ok(Request::List)? {
            Response::List(l) => Ok(l),
            r => bail!("unexpected answer {r:?}"),
        }
    }

    /// hv.
    pub fn info(&mut self) -> Result<HostInfo> {
        match self.ok(Request::Info)? {
            Response::Info(i) => Ok(i),
            r => bail!("unexpected answer {r:?}"),
        }
    }

    /// Creates a domain from the config `file` (its text), `kernel` and `ramdisk` (empty:
    /// none); its id.
    pub fn create(
        &mut self,
        file: &str,
        config: &str,
        kernel: &[u8],
        ramdisk: &[u8],
        paused: bool,
    ) -> Result<u16> {
        let total = kernel.len().saturating_add(ramdisk.len());
        let (Ok(kernel_len), Ok(ramdisk_len)) =
            (u32::try_from(kernel.len()), u32::try_from(ramdisk.len()))
        else {
            bail!(
                "the images are {total} bytes; the serial channel takes at most {}",
                hvctl::MAX_KERNEL
            );
        };
        if total > hvctl::MAX_KERNEL as usize {
            bail!(
                "the kernel's loaded part and the ramdisk are {total} bytes; the serial channel \
                 takes at most {}",
                hvctl::MAX_KERNEL
            );
        }
        self.ok(Request::CreateBegin {
            file: file.to_owned(),
            config: config.to_owned(),
            kernel_len,
            ramdisk_len,
        })?;
        let images: Vec<u8> = [kernel, ramdisk].concat();
        for (offset, chunk) in (0u32..)
            .step_by(hvctl::CHUNK)
            .zip(images.chunks(hvctl::CHUNK))
        {
            self.ok(Request::KernelChunk {
                offset,
                bytes: chunk.to_vec(),
            })?;
        }
        match self.ok(Request::CreateCommit { paused })? {
            Response::Created { domid } => Ok(domid),
            r => bail!("unexpected answer {r:?}"),
        }
    }

    /// Console (or, with `dom` `None`, hv's log) bytes from `from`: `(next, bytes)`.
    pub fn output(&mut self, dom: Option<&DomRef>, from: u64) -> Result<(u64, Vec<u8>)> {
        let req = match dom {
            Some(d) => Request::Console {
                dom: d.clone(),
                from,
                max: hvctl::MAX_CONSOLE_READ,
            },
            None => Request::Dmesg { from },
        };
        match self.ok(req)? {
            Response::Output { next, bytes, .. } => Ok((next, bytes)),
            r => bail!("unexpected answer {r:?}"),
        }
    }

    /// All of a console (or, with `dom` `None`, hv's log) that hv keeps, a read at a time.
    pub fn output_all(&mut self, dom: Option<&DomRef>) -> Result<Vec<u8>> {
        let (mut from, mut all) = (0, Vec::new());
        loop {
            let (next, bytes) = self.output(dom, from)?;
            if bytes.is_empty() {
                return Ok(all);
            }
            all.extend(bytes);
            from = next;
        }
    }

    /// A request answered `Done`.
    pub fn done(&mut self, req: Request) -> Result<()> {
        match self.ok(req)? {
            Response::Done => Ok(()),
            r => bail!("unexpected answer {r:?}"),
        }
    }
}

/// The part of a 64-bit ELF a loader reads: everything up to the end of the last PT_LOAD or
/// PT_NOTE segment and of the program headers, with the section headers dropped (a debug
/// build's DWARF is most of its bytes, and a serial port is slow). Anything else is sent
/// as it is.
pub fn loaded_part(elf: &[u8]) -> Vec<u8> {
    let u16_at = |o: usize| elf.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u64_at = |o: usize| {
        elf.get(o..o + 8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
    };
    let is_elf64 = elf.starts_with(b"\x7fELF\x02\x01");
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    else {
        return elf.to_vec();
    };
    if !is_elf64 {
        return elf.to_vec();
    }
    let Ok(phoff) = usize::try_from(phoff) else {
        return elf.to_vec();
    };
    let mut end = phoff.saturating_add(usize::from(phentsize) * usize::from(phnum));
    for i in 0..usize::from(phnum) {
        let ph = phoff.saturating_add(i * usize::from(phentsize));
        let kind = elf
            .get(ph..ph + 4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes);
        if let (Some(1 | 4), Some(off), Some(filesz)) = (kind, u64_at(ph + 8), u64_at(ph + 32)) {
            let seg_end = off.saturating_add(filesz);
            end = end.max(usize::try_from(seg_end).unwrap_or(usize::MAX));
        }
    }
    if end > elf.len() {
        return elf.to_vec();
    }
    let mut out = elf[..end].to_vec();
    // e_shoff, e_shnum, e_shstrndx: no sections.
    out[0x28..0x30].fill(0);
    out[0x3c..0x40].fill(0);
    out
}

/// `xl list`'s lines.
pub fn list_lines(domains: &[DomainInfo]) -> Vec<String> {
    let mut out = vec![
        "Name                                        ID   Mem VCPUs\tState\tTime(s)".to_owned(),
    ];
    for d in domains {
        out.push(format!(
            "{:<40} {:>5} {:>5} {:>5}     {}  {:>8.1}",
            d.name,
            d.domid,
            d.mem_mib,
            d.vcpus,
            d.state(),
            d.cpu_ns as f64 / 1e9
        ));
    }
    out
}

/// `xl info`'s lines (the keys hv has answers for).
pub fn info_lines(i: &HostInfo) -> Vec<String> {
    let (major, minor) = i
        .xen_version
        .split_once('.')
        .unwrap_or((&i.xen_version, "0"));
    [
        ("host", "hv".to_owned()),
        ("release", format!("hv {}", i.hv_version)),
        ("machine", "x86_64".to_owned()),
        ("nr_cpus", "1".to_owned()),
        (
            "cpu_mhz",
            format!("{}.{:03}", i.tsc_khz / 1000, i.tsc_khz % 1000),
        ),
        ("virt_caps", "hvm".to_owned()),
        ("total_memory", format!("{}", i.total_mib)),
        ("free_memory", format!("{}", i.free_mib)),
        ("nr_domains", format!("{}", i.domains)),
        ("xen_major", major.to_owned()),
        ("xen_minor", minor.to_owned()),
        ("xen_extra", format!(" (hv {})", i.hv_version)),
        (
            "xen_version",
            format!("{} (hv {})", i.xen_version, i.hv_version),
        ),
        ("xen_caps", "hvm-3.0-x86_64".to_owned()),
        ("xen_commandline", i.commandline.clone()),
        ("uptime", format!("{:.1}", i.uptime_ns as f64 / 1e9)),
    ]
    .into_iter()
    .map(|(k, v)| format!("{k:<23}: {v}"))
    .collect()
}

/// `cargo xtask xl --help`.
pub const HELP: &str = "\
cargo xtask xl [--socket PATH] <subcommand> [args]

Manages the domains of a running hv (`cargo xtask hv-run --keep`, `cargo xtask run --keep`)
as xl manages Xen's, over hv's control channel (a Unix socket under target/pvxen/ctl-*/;
--socket names one). Domains are named by name or id.

  list                    the domains: Name, ID, Mem, VCPUs, State (r b p s c d), Time(s)
  info                    hv's version, memory and domains
  create [-p] <cfg>       build a domain from an xl.cfg file (checked first, as hv-run checks
                          it; its kernel's loaded part travels over the channel, at most
                          8 MiB); -p leaves it paused
  console <dom>           show a domain's console as it comes; Ctrl-] (or Ctrl-C) detaches
  pause <dom>             pause a domain
  unpause <dom>           unpause a domain
  shutdown [-w] <dom>     ask the guest to power off (control/shutdown = poweroff); -w waits
                          until it is gone
  reboot <dom>            ask the guest to reboot (control/shutdown = reboot)
  destroy <dom>           end a domain at once
  dmesg                   hv's log (the last 32 KiB)
  shutdown-hv             destroy every domain and end hv (QEMU exits 33)
";

/// Finds the socket: `--socket`, else the first managed boot's that accepts a connection.
fn find_socket(given: Option<PathBuf>) -> Result<PathBuf> {
    if let Some(p) = given {
        return Ok(p);
    }
    for label in MANAGED {
        let p = socket_dir(label).join("hv.sock");
        if UnixStream::connect(&p).is_ok() {
            return Ok(p);
        }
    }
    bail!("no running hv found (start one with `cargo xtask hv-run --keep`, or give --socket PATH)")
}

/// `cargo xtask xl ...`.
pub fn xl(args: &[String]) -> Result<ExitCode> {
    let mut socket = None;
    let mut words: Vec<&str> = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--socket" => socket = Some(PathBuf::from(it.next().context("--socket needs a path")?)),
            "--help" | "-h" | "help" if words.is_empty() => {
                print!("{HELP}");
                return Ok(ExitCode::SUCCESS);
            }
            w => words.push(w),
        }
    }
    let Some((&cmd, rest)) = words.split_first() else {
        eprint!("{HELP}");
        return Ok(ExitCode::from(2));
    };
    let known = [
        "list",
        "info",
        "create",
        "console",
        "pause",
        "unpause",
        "shutdown",
        "reboot",
        "destroy",
        "dmesg",
        "shutdown-hv",
    ];
    if !known.contains(&cmd) {
        eprint!("xl: unknown subcommand {cmd:?}\n\n{HELP}");
        return Ok(ExitCode::from(2));
    }
    // A config's problems are found before any hv is asked.
    let created = if cmd == "create" {
        let paused = rest.contains(&"-p");
        let Some(cfg) = rest.iter().find(|w| !w.starts_with('-')) else {
            bail!("usage: xl create [-p] <cfg>");
        };
        match super::check_configs(&[PathBuf::from(cfg)]) {
            Ok(boots) => Some((cfg.to_string(), boots, paused)),
            Err(code) => return Ok(code),
        }
    } else {
        None
    };
    let path = find_socket(socket)?;
    let mut c = Client::connect(&path)?;
    let dom = |i: usize| -> Result<DomRef> {
        rest.iter()
            .filter(|w| !w.starts_with('-'))
            .nth(i)
            .map(|w| DomRef::parse(w))
            .with_context(|| format!("usage: xl {cmd} <domain>"))
    };
    let result = match cmd {
        "list" => c
            .list()
            .map(|l| list_lines(&l).iter().for_each(|l| println!("{l}"))),
        "info" => c
            .info()
            .map(|i| info_lines(&i).iter().for_each(|l| println!("{l}"))),
        "create" => {
            let (cfg, boots, paused) = created.context("no config")?;
            let boot = boots.first().context("no domain in the config")?;
            eprintln!("Parsing config from {cfg}");
            let kernel =
                std::fs::read(&boot.kernel).with_context(|| format!("reading {}", boot.kernel))?;
            let kernel = loaded_part(&kernel);
            let ramdisk = match &boot.ramdisk {
                Some(r) => std::fs::read(r).with_context(|| format!("reading {r}"))?,
                None => Vec::new(),
            };
            if !boot.disks.is_empty() {
                eprintln!(
                    "xl: hv gives a domain created at run time the next spare virtio-blk \
                     drives it was started with (`hv-run --keep --spare-disk FILE`), in the \
                     config's disk order; the targets named are only recorded"
                );
            }
            let text = std::fs::read_to_string(&cfg)?;
            let began = Instant::now();
            c.create(&cfg, &text, &kernel, &ramdisk, paused).map(|id| {
                eprintln!(
                    "xl: domain {id} ({}) created ({} bytes of kernel and ramdisk in {:.1} s)",
                    boot.name,
                    kernel.len() + ramdisk.len(),
                    began.elapsed().as_secs_f64()
                );
            })
        }
        "console" => console(&mut c, &dom(0)?),
        "pause" => c.done(Request::Pause(dom(0)?)),
        "unpause" => c.done(Request::Unpause(dom(0)?)),
        "shutdown" | "reboot" => {
            // xl's words (xl_vmcontrol.c), on standard error as xl's are.
            let d = dom(0)?;
            let (reason, doing, code) = if cmd == "reboot" {
                (Reason::Reboot, "Rebooting", 1)
            } else {
                (Reason::Poweroff, "Shutting down", 0)
            };
            let id = c.list().map(|l| {
                l.iter()
                    .find(|i| names(std::slice::from_ref(i), &d))
                    .map(|i| i.domid)
            });
            if let Ok(Some(id)) = id {
                eprintln!("{doing} domain {id}");
            }
            c.done(Request::Shutdown {
                dom: d.clone(),
                reason,
            })
            .and_then(|()| {
                if rest.contains(&"-w") {
                    eprintln!("Waiting for 1 domains");
                    wait_gone(&mut c, &d, Duration::from_secs(600))?;
                    if let Ok(Some(id)) = id {
                        eprintln!("Domain {id} has been shut down, reason code {code}");
                    }
                }
                Ok(())
            })
        }
        "destroy" => c.done(Request::Destroy(dom(0)?)),
        "dmesg" => c.output_all(None).map(|b| {
            let _ = std::io::stdout().write_all(&b);
        }),
        "shutdown-hv" => c.done(Request::ShutdownHv),
        _ => unreachable!("checked above"),
    };
    match result {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            eprintln!("{e:#}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Whether `d` names a domain in `list`.
fn names(list: &[DomainInfo], d: &DomRef) -> bool {
    list.iter().any(|i| match d {
        DomRef::Id(id) => i.domid == *id,
        DomRef::Name(n) => i.name == *n,
    })
}

/// Waits until `d` has shut down (`xl shutdown -w`, which returns on the domain's
/// shutdown event): gone, or kept as `s` or `c` (`on_poweroff = "preserve"`).
pub fn wait_gone(c: &mut Client, d: &DomRef, limit: Duration) -> Result<()> {
    let until = Instant::now() + limit;
    loop {
        let list = c.list()?;
        let row = list.iter().find(|i| names(std::slice::from_ref(i), d));
        match row {
            None => return Ok(()),
            Some(r) if r.shutdown || r.crashed => return Ok(()),
            Some(_) => {}
        }
        if Instant::now() > until {
            bail!("the domain did not shut down within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `xl console`: the console's bytes as they come, until Ctrl-] on a terminal (read in raw
/// mode through `stty`), end of input, or the domain's end.
fn console(c: &mut Client, d: &DomRef) -> Result<()> {
    let tty = std::process::Command::new("stty")
        .arg("-g")
        .stdin(std::process::Stdio::inherit())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    if tty.is_some() {
        let _ = std::process::Command::new("stty")
            .args(["raw", "-echo"])
            .status();
    }
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        let mut b = [0u8; 1];
        while let Ok(1) = std::io::stdin().read(&mut b) {
            if b[0] == 0x1d || b[0] == 0x03 {
                break;
            }
        }
        let _ = tx.send(());
    });
    let mut from = 0;
    let result = loop {
        if rx.try_recv().is_ok() {
            break Ok(());
        }
        match c.output(Some(d), from) {
            Ok((next, bytes)) => {
                let text = String::from_utf8_lossy(&bytes);
                // Raw mode: a newline needs its carriage return.
                let text = if tty.is_some() {
                    text.replace('\n', "\r\n")
                } else {
                    text.into_owned()
                };
                print!("{text}");
                let _ = std::io::stdout().flush();
                let idle = next == from;
                from = next;
                if idle {
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
            Err(e) => break Err(e),
        }
    };
    if let Some(saved) = tty {
        let _ = std::process::Command::new("stty").arg(saved).status();
    }
    result
}

/// The hard timeout of `HOST hv-xl-*`'s boot.
const XL_TEST_TIMEOUT: Duration = Duration::from_secs(240);

/// How long the spinning guest spins (`spin-secs=`), in seconds of its system time.
const SPIN_SECS: u64 = 5;
/// How long it stays paused in the middle of its spin.
const PAUSED: Duration = Duration::from_secs(4);
/// How long after its `FACT spin.seconds` line the guest surely spins.
const SPIN_STARTED: Duration = Duration::from_millis(500);
/// The key the host puts in the store disk before the run and finds after it.
const STORE_KEY: &[u8] = b"xl-kept";
/// Its value.
const STORE_VALUE: &[u8] = b"put by the host before hv started";
/// The spinning guest's ramdisk's size.
const RAMDISK_BYTES: usize = 8192;
/// The store disk's size (a spare virtio-blk drive).
const STORE_BYTES: usize = 4 << 20;

/// The application's address on QEMU's user network (hv's switch's uplink), where the host
/// reaches its HTTP service through a `hostfwd`.
const APP_IP: &str = "10.0.2.15";
/// The key the host puts through the application's HTTP service before `reboot`, and reads
/// after it from the domain hv built again.
const REBOOT_KEY: &str = "xl-reboot";
/// Its value.
const REBOOT_VALUE: &[u8] = b"put before the reboot";

/// The bad frames' checks ([`bad_frames`]).
const BAD_FRAMES: [&str; 3] = ["garbage-frame", "oversized-frame", "half-frame"];

/// What the steps share: the connection, the configs and images, what earlier steps found.
struct State {
    c: Client,
    probe: (String, String, Vec<u8>),
    app: (String, String),
    spin: (String, String),
    guest: Vec<u8>,
    /// The spinning guest's ramdisk (it travels after the kernel).
    ramdisk: Vec<u8>,
    /// The created domains' ids.
    probe_id: u16,
    app_id: u16,
    spin_id: u16,
    /// The host's port forwarded to the application's port 80.
    http_port: u16,
    /// The serial lines about `xl-app`'s ends, as they came: its `APP stopped` lines
    /// (`(d<id>) APP stopped ...`) and hv's lines naming it (the console of a domain that
    /// ended is gone, and hv's log ring holds no guest lines).
    app_ends: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    /// When the spinning guest's `FACT spin.seconds` line was seen (its spin began).
    spin_began: Option<Instant>,
    /// When it was paused and unpaused.
    paused: Option<(Instant, Instant)>,
}

/// A step: what it checks, as its `HOST hv-xl-<name>` line says.
type Step = fn(&mut State) -> Result<()>;

/// The steps against the running hv, in order; each needs the ones before it.
const STEPS: [(&str, Step); 17] = [
    ("info", step_info),
    ("create-paused", step_create_paused),
    ("create-duplicate", step_create_duplicate),
    ("poweroff-preserved", step_poweroff_preserved),
    ("refuse-domain-0", step_refuse_domain_0),
    ("destroy-preserved", step_destroy_preserved),
    ("create-vif-disk", step_create_vif_disk),
    ("no-spare-disk", step_no_spare_disk),
    ("create-second", step_create_second),
    ("list-two", step_list_two),
    ("pause", step_pause),
    ("unpause-clock", step_unpause_clock),
    ("console", step_console),
    ("reboot", step_reboot),
    ("shutdown-wait", step_shutdown_wait),
    ("destroy", step_destroy),
    ("list-empty", step_list_empty),
];

/// `HOST hv-xl-*`: hv started with `keep`, no domain and one spare virtio-blk drive (a
/// store the host formatted and put a key in), managed through its channel, each step its
/// own line, in this order ([`STEPS`], then [`BAD_FRAMES`], `shutdown-hv` and
/// `store-intact`): `info`; the MSR/CR4 probe created paused (`--p---` in
/// `list`), a second create of its name refused with xl's words, powered off after
/// `shutdown` and `unpause` and preserved (`s`), domain 0 refused, the probe destroyed;
/// pvguest's application created with a vif on hv's switch and its store on the spare
/// drive (`APP serving` with the host's key), a create asking for a disk with no spare left
/// refused before its upload; pvguest spinning `spin-secs=` created beside it with a
/// ramdisk, both running in `list` (xl's columns); paused just after its spin began (`p`,
/// no console output, no CPU time) and unpaused: its spin of system time ended about
/// [`SPIN_SECS`] after it began (or at the unpause), not [`PAUSED`] later (its clock ran on
/// while paused, as Xen's system time does); its console without hv's prefixes, with the
/// ramdisk as the start info's one module; `reboot` of the application (a value put through
/// its HTTP service before, on hv's switch and QEMU's user network, read after: the store
/// flushed; `APP stopped`, then the domain built again from its kept config and kernel
/// under its name and a new id, as xl restarts it, serving and running in `list`);
/// `shutdown -w` of the application (`APP stopped`, powered off and preserved), then its
/// `destroy`; `destroy` of the other; `list` empty; a garbage frame, an oversized
/// one and a half one each answered with an error while hv runs on; `shutdown-hv` ends
/// QEMU with 33; the store disk still holds the host's key. Returns the lines and verdicts.
pub fn xl_test(hv: &Path, guest: &Path) -> Result<Vec<(bool, String)>> {
    let dir = super::run_dir("hv-xl");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let archive = dir.join("empty.pvxarc");
    std::fs::write(&archive, xlcfg::archive::write(&[]))?;
    let probe_kernel = dir.join("probe.elf");
    std::fs::write(&probe_kernel, super::probe::image())?;
    let store = dir.join("store.img");
    std::fs::write(&store, formatted_store()?)
        .with_context(|| format!("writing {}", store.display()))?;
    let write_cfg = |name: &str, text: String| -> Result<(String, String)> {
        let path = dir.join(format!("{name}.cfg"));
        std::fs::write(&path, &text)?;
        Ok((path.display().to_string(), text))
    };
    let probe_cfg = write_cfg(
        "probe",
        format!(
            "name = \"xl-probe\"\ntype = \"pvh\"\nkernel = \"{}\"\nmemory = 16\n\
             on_poweroff = \"preserve\"\n",
            probe_kernel.display()
        ),
    )?;
    let app = write_cfg(
        "app",
        format!(
            "name = \"xl-app\"\ntype = \"pvh\"\nkernel = \"{}\"\n\
             cmdline = \"ip={APP_IP}/24 gw=10.0.2.2\"\nmemory = 128\n\
             vif = [ 'mac=00:16:3e:00:32:01' ]\ndisk = [ '{},raw,xvdb,rw' ]\n\
             on_poweroff = \"preserve\"\non_reboot = \"restart\"\n",
            guest.display(),
            store.display()
        ),
    )?;
    let ramdisk: Vec<u8> = (0..=250u8).cycle().take(RAMDISK_BYTES).collect();
    let ramdisk_file = dir.join("spin.ramdisk");
    std::fs::write(&ramdisk_file, &ramdisk)?;
    let spin = write_cfg(
        "spin",
        format!(
            "name = \"xl-spin\"\ntype = \"pvh\"\nkernel = \"{}\"\nramdisk = \"{}\"\n\
             cmdline = \"selftest=boot,spin spin-secs={SPIN_SECS}\"\nmemory = 64\n\
             on_poweroff = \"preserve\"\n",
            guest.display(),
            ramdisk_file.display()
        ),
    )?;
    let socket = socket_dir("hv-xl").join("hv.sock");
    let options = format!("{} keep", super::HV_OPTIONS);
    let drives = [super::qemu::Drive {
        file: store.clone(),
        read_only: false,
    }];
    // hv's NIC, the uplink of its switch: the host reaches the application's service.
    let http_port = std::net::TcpListener::bind(("127.0.0.1", 0))?
        .local_addr()?
        .port();
    let fwds = [super::qemu::HostFwd {
        host_port: http_port,
        guest_ip: APP_IP.parse()?,
        guest_port: 80,
    }];
    let module = super::Module::Archive(
        &archive,
        super::qemu::DEFAULT_MEMORY_MIB,
        &drives,
        Some(&fwds),
    );
    let probe_image = loaded_part(&std::fs::read(&probe_kernel)?);
    let guest_image = loaded_part(&std::fs::read(guest)?);
    let app_ends = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let ends = std::sync::Arc::clone(&app_ends);
    let on_line = move |line: &super::serial::Line| {
        let keep = match line {
            super::serial::Line::Guest(d, text) if text.starts_with("APP stopped") => {
                Some(format!("(d{d}) {text}"))
            }
            super::serial::Line::Hv(text) if text.contains(" (xl-app) ") => Some(text.clone()),
            _ => None,
        };
        if let (Some(l), Ok(mut v)) = (keep, ends.lock()) {
            v.push(l);
        }
    };
    std::thread::scope(|scope| {
        let booted = scope.spawn(|| {
            super::boot_with(
                "hv-xl",
                hv,
                module,
                "hv-xl",
                XL_TEST_TIMEOUT,
                (&options, None),
                on_line,
            )
        });
        let mut lines = Vec::new();
        let mut first_failure = None;
        match Client::connect_when_up(&socket, Duration::from_secs(60)) {
            Err(e) => {
                for name in STEPS.iter().map(|(n, _)| *n).chain(BAD_FRAMES) {
                    lines.push((false, format!("HOST hv-xl-{name} FAIL {e:#}")));
                }
                first_failure = Some("connect");
            }
            Ok(c) => {
                let mut st = State {
                    c,
                    probe: (probe_cfg.0, probe_cfg.1, probe_image),
                    app,
                    spin,
                    guest: guest_image,
                    ramdisk,
                    probe_id: 0,
                    app_id: 0,
                    spin_id: 0,
                    http_port,
                    app_ends: std::sync::Arc::clone(&app_ends),
                    spin_began: None,
                    paused: None,
                };
                for (name, step) in STEPS {
                    let line = match first_failure {
                        Some(first) => (
                            false,
                            format!("HOST hv-xl-{name} FAIL not run: hv-xl-{first} failed"),
                        ),
                        None => match step(&mut st) {
                            Ok(()) => (true, format!("HOST hv-xl-{name} ok")),
                            Err(e) => {
                                first_failure = Some(name);
                                (false, format!("HOST hv-xl-{name} FAIL {e:#}"))
                            }
                        },
                    };
                    lines.push(line);
                }
                for (ok, line) in bad_frames(&mut st.c) {
                    lines.push((ok, line));
                }
                // hv ends either way, so the boot does not wait for its timeout.
                if let Err(e) = st.c.done(Request::ShutdownHv) {
                    first_failure.get_or_insert("shutdown-hv");
                    println!("hv-xl: shutdown-hv: {e:#}");
                }
            }
        }
        let booted = booted
            .join()
            .map_err(|_| anyhow::anyhow!("the boot thread panicked"))??;
        let ended = booted.end == super::QemuEnd::Exited(Some(super::EXIT_POWEROFF));
        lines.push(if ended {
            (true, "HOST hv-xl-shutdown-hv ok".to_owned())
        } else {
            (
                false,
                format!(
                    "HOST hv-xl-shutdown-hv FAIL QEMU {} (33 expected)",
                    booted.end.describe()
                ),
            )
        });
        lines.push(match store_holds_the_key(&store) {
            Ok(()) => (true, "HOST hv-xl-store-intact ok".to_owned()),
            Err(e) => (false, format!("HOST hv-xl-store-intact FAIL {e:#}")),
        });
        if first_failure.is_some() || !ended {
            super::explain_failure(&booted);
        }
        Ok(lines)
    })
}

/// `HOST run-keep`: `cargo xtask run --keep` (this program, on hv, a free port, a fresh
/// store) serves; after `xl shutdown` of the application (domain 1) the domain is gone and
/// hv runs on (`xtask run` still runs, `info` answers with keep and no domain); `xl
/// shutdown-hv` then ends it, status 0, saying `run: hv ended`. The line is recorded as
/// `hv: HOST run-keep ...`, beside `run`'s own checks ([`crate::xen::run::run_check`]).
pub fn run_keep_check(tally: &mut crate::tally::Tally) -> Result<()> {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    let port = std::net::TcpListener::bind(("127.0.0.1", 0))?
        .local_addr()?
        .port();
    let dir = workspace_root()
        .join("target")
        .join("pvxen")
        .join("run-keep-check");
    std::fs::create_dir_all(&dir)?;
    let store = dir.join("store.img");
    let _ = std::fs::remove_file(&store);
    let exe = std::env::current_exe().context("finding xtask's own executable")?;
    println!(
        "run-keep: `cargo xtask run --on hv --keep --port {port} --store {}`",
        store.display()
    );
    let mut command = Command::new(exe);
    command
        .args(["run", "--on", "hv", "--keep", "--port", &port.to_string()])
        .arg("--store")
        .arg(&store)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    crate::xen::qemu::die_with_parent(&mut command);
    let mut child =
        crate::xen::qemu::KillOnDrop(command.spawn().context("starting `xtask run --keep`")?);
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let mut readers = Vec::new();
    let stdout = child.0.stdout.take().context("no stdout")?;
    let stderr = child.0.stderr.take().context("no stderr")?;
    for (pipe, tag) in [
        (Box::new(stdout) as Box<dyn Read + Send>, ""),
        (Box::new(stderr), "stderr: "),
    ] {
        let tx = tx.clone();
        readers.push(std::thread::spawn(move || {
            for line in std::io::BufReader::new(pipe).lines().map_while(Result::ok) {
                let _ = tx.send(format!("{tag}{line}"));
            }
        }));
    }
    drop(tx);
    let mut lines = Vec::new();
    let verdict = (|| -> Result<()> {
        let until = Instant::now() + Duration::from_secs(600);
        while !lines
            .iter()
            .any(|l: &String| l.starts_with("run: serving on "))
        {
            let left = until.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left.min(Duration::from_secs(1))) {
                Ok(l) => lines.push(l),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) if !left.is_zero() => {}
                Err(_) => bail!("no `run: serving on` line"),
            }
        }
        let mut c = Client::connect_when_up(&socket_path("run-hv"), Duration::from_secs(30))?;
        let app = DomRef::Id(1);
        c.done(Request::Shutdown {
            dom: app.clone(),
            reason: Reason::Poweroff,
        })
        .context("xl shutdown of the application")?;
        let gone = wait_gone(&mut c, &app, Duration::from_secs(60));
        // hv would have ended by now if it did not keep running.
        std::thread::sleep(Duration::from_secs(1));
        if let Some(status) = child.0.try_wait()? {
            bail!("`xtask run --keep` ended ({status}) with its application");
        }
        gone.context("waiting for the application to power off")?;
        let info = c.info().context("info after the application powered off")?;
        if !info.keep || info.domains != 0 {
            bail!("info after the application powered off: {info:?} (keep, no domain expected)");
        }
        lines.extend(rx.try_iter());
        if !lines.iter().any(|l| l.starts_with("APP stopped")) {
            bail!("the application powered off without `APP stopped`");
        }
        c.done(Request::ShutdownHv).context("xl shutdown-hv")?;
        let until = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = child.0.try_wait()? {
                break status;
            }
            if Instant::now() > until {
                bail!("`xtask run --keep` still runs 60 s after shutdown-hv");
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        for r in readers.drain(..) {
            let _ = r.join();
        }
        lines.extend(rx.try_iter());
        if !status.success() || !lines.iter().any(|l| l.starts_with("run: hv ended")) {
            bail!(
                "after shutdown-hv `xtask run --keep` exited with {status}, not 0 saying `run: hv ended`"
            );
        }
        Ok(())
    })();
    drop(child);
    let (ok, line) = match verdict {
        Ok(()) => (true, "HOST run-keep ok".to_owned()),
        Err(e) => (false, format!("HOST run-keep FAIL {e:#}")),
    };
    println!("{line}");
    if !ok {
        lines.extend(rx.try_iter());
        println!("run-keep: what `xtask run --keep` printed:");
        for l in lines.iter().rev().take(40).rev() {
            println!("run-keep|   {l}");
        }
    }
    tally.record(ok, format!("hv: {line}"));
    Ok(())
}

/// A disk image in a file's bytes, for the store code.
struct ImageDisk(Vec<u8>);

impl storage::BlockDevice for ImageDisk {
    type Error = ();
    fn size(&self) -> u64 {
        self.0.len() as u64
    }
    fn read(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), ()> {
        let start = usize::try_from(offset).map_err(|_| ())?;
        let bytes = self.0.get(start..start + buf.len()).ok_or(())?;
        buf.copy_from_slice(bytes);
        Ok(())
    }
    fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), ()> {
        let start = usize::try_from(offset).map_err(|_| ())?;
        self.0
            .get_mut(start..start + data.len())
            .ok_or(())?
            .copy_from_slice(data);
        Ok(())
    }
    fn flush(&mut self) -> Result<(), ()> {
        Ok(())
    }
}

/// A store disk formatted by the guest's own store code, holding [`STORE_KEY`].
fn formatted_store() -> Result<Vec<u8>> {
    let mut kv = storage::kv::Store::open(ImageDisk(vec![0; STORE_BYTES]))
        .map_err(|e| anyhow::anyhow!("formatting the store: {e}"))?;
    kv.put(STORE_KEY, STORE_VALUE)
        .map_err(|e| anyhow::anyhow!("putting {STORE_KEY:?}: {e}"))?;
    Ok(kv.into_device().0)
}

/// The store disk, read after the run, opens cleanly and still holds [`STORE_KEY`].
fn store_holds_the_key(path: &Path) -> Result<()> {
    let image = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let mut kv = storage::kv::Store::open(ImageDisk(image))
        .map_err(|e| anyhow::anyhow!("the store on {} does not open: {e}", path.display()))?;
    match kv.get(STORE_KEY) {
        Ok(Some(v)) if v == STORE_VALUE => Ok(()),
        Ok(other) => bail!(
            "{} holds {other:?} for {:?}",
            path.display(),
            String::from_utf8_lossy(STORE_KEY)
        ),
        Err(e) => bail!("reading the key back: {e}"),
    }
}

/// The row of domain `id` in `list`, if any.
fn row(c: &mut Client, id: u16) -> Result<Option<DomainInfo>> {
    Ok(c.list()?.into_iter().find(|d| d.domid == id))
}

/// Reads domain `d`'s console from `*from` into `into` until it holds `what` (within
/// `limit`); the time it was seen.
/// Domain `d`'s console up to its `APP serving` line (within a minute).
fn wait_serving(c: &mut Client, d: u16) -> Result<String> {
    let (mut from, mut console) = (0, String::new());
    wait_console(
        c,
        d,
        (&mut from, &mut console),
        "APP serving",
        Duration::from_secs(60),
    )?;
    Ok(console)
}

/// The `APP serving ...` line of `console` (empty if none).
fn serving_line(console: &str) -> &str {
    console
        .lines()
        .find(|l| l.starts_with("APP serving"))
        .unwrap_or_default()
}

fn wait_console(
    c: &mut Client,
    d: u16,
    (from, into): (&mut u64, &mut String),
    what: &str,
    limit: Duration,
) -> Result<Instant> {
    let until = Instant::now() + limit;
    loop {
        let (next, bytes) = c.output(Some(&DomRef::Id(d)), *from)?;
        into.push_str(&String::from_utf8_lossy(&bytes));
        *from = next;
        if into.contains(what) {
            return Ok(Instant::now());
        }
        if Instant::now() > until {
            let tail: Vec<&str> = into.lines().rev().take(3).collect();
            bail!("no {what:?} on d{d}'s console within {limit:?} (last lines: {tail:?})");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn step_info(st: &mut State) -> Result<()> {
    let info = st.c.info()?;
    if !info.keep || info.domains != 0 {
        bail!("{info:?} (keep, no domain expected)");
    }
    Ok(())
}

fn step_create_paused(st: &mut State) -> Result<()> {
    let (file, text, image) = &st.probe;
    st.probe_id = st.c.create(file, text, image, &[], true)?;
    let r = row(&mut st.c, st.probe_id)?.context("list: the created domain is missing")?;
    if r.name != "xl-probe" || r.mem_mib != 16 || r.vcpus != 1 || r.state() != "--p---" {
        bail!("list: {r:?} (xl-probe, 16 MiB, 1 vCPU, --p--- expected)");
    }
    Ok(())
}

fn step_create_duplicate(st: &mut State) -> Result<()> {
    let (file, text, image) = &st.probe;
    match st.c.create(file, text, image, &[], false) {
        Err(e)
            if format!("{e}") == "libxl: error: Domain with name \"xl-probe\" already exists." =>
        {
            Ok(())
        }
        other => bail!("{other:?} (xl's refusal expected)"),
    }
}

fn step_poweroff_preserved(st: &mut State) -> Result<()> {
    // `shutdown` writes control/shutdown (the probe reads no store: it powers off anyway).
    st.c.done(Request::Shutdown {
        dom: DomRef::Id(st.probe_id),
        reason: Reason::Poweroff,
    })
    .context("shutdown")?;
    st.c.done(Request::Unpause(DomRef::Name("xl-probe".into())))
        .context("unpause")?;
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let r = row(&mut st.c, st.probe_id)?.context("list: the domain vanished")?;
        if r.shutdown {
            // Preserved: kept, paused, its console still readable.
            if !r.state().contains('s') {
                bail!("{r:?}");
            }
            st.c.output(Some(&DomRef::Id(st.probe_id)), 0)
                .context("console")?;
            return Ok(());
        }
        if Instant::now() > until {
            bail!("the probe did not power off after unpause: {r:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn step_refuse_domain_0(st: &mut State) -> Result<()> {
    for (req, want) in [
        (
            Request::Destroy(DomRef::Id(0)),
            "Not destroying domain 0; use -f to force.\nThis can only be done when using a \
             disaggregated hardware domain and toolstack.",
        ),
        (
            Request::Pause(DomRef::Name("Domain-0".into())),
            "Cannot pause privileged domain 0.",
        ),
    ] {
        match st.c.call(req.clone())? {
            Response::Error(e) if e == want => {}
            r => bail!("{req:?}: {r:?} ({want:?} expected)"),
        }
    }
    Ok(())
}

fn step_destroy_preserved(st: &mut State) -> Result<()> {
    st.c.done(Request::Destroy(DomRef::Id(st.probe_id)))?;
    let left: Vec<String> = st.c.list()?.into_iter().map(|d| d.name).collect();
    if left != ["Domain-0"] {
        bail!("list after destroy: {left:?}");
    }
    Ok(())
}

fn step_create_vif_disk(st: &mut State) -> Result<()> {
    let (file, text) = &st.app;
    st.app_id = st.c.create(file, text, &st.guest, &[], false)?;
    let console = wait_serving(&mut st.c, st.app_id)?;
    let serving = serving_line(&console);
    // Its vif joined the switch (a static address on QEMU's user network, the switch's
    // uplink), its store is the spare drive (the host's key is in it).
    let want = format!("APP serving http://{APP_IP}/");
    if !serving.starts_with(&want) || !serving.contains("kv-keys 1") {
        bail!("{serving:?} ({want} and kv-keys 1 expected)");
    }
    if let Some(l) = console.lines().find(|l| l.contains("store on xvdb")) {
        bail!("the store: {l:?}");
    }
    Ok(())
}

fn step_no_spare_disk(st: &mut State) -> Result<()> {
    let (file, text) = &st.spin;
    let text = format!("{text}disk = [ 'another.img,raw,xvda,rw' ]\n");
    let began = Instant::now();
    match st.c.create(file, &text, &st.guest, &st.ramdisk, false) {
        Err(e) if format!("{e}").contains(": disk: no spare virtio-blk device for xvda") => {}
        other => bail!("{other:?} (no spare device expected)"),
    }
    // Refused before the kernel travels.
    if began.elapsed() > Duration::from_secs(3) {
        bail!("refused only after {:?}", began.elapsed());
    }
    Ok(())
}

fn step_create_second(st: &mut State) -> Result<()> {
    let (file, text) = &st.spin;
    st.spin_id = st.c.create(file, text, &st.guest, &st.ramdisk, false)?;
    let (mut from, mut console) = (0, String::new());
    let seen = wait_console(
        &mut st.c,
        st.spin_id,
        (&mut from, &mut console),
        "FACT spin.seconds",
        Duration::from_secs(60),
    )?;
    st.spin_began = Some(seen);
    Ok(())
}

fn step_list_two(st: &mut State) -> Result<()> {
    let list = st.c.list()?;
    let lines = list_lines(&list);
    if lines.first().map(String::as_str)
        != Some("Name                                        ID   Mem VCPUs\tState\tTime(s)")
    {
        bail!("header {:?}", lines.first());
    }
    for (name, id, mem) in [("xl-app", st.app_id, 128), ("xl-spin", st.spin_id, 64)] {
        let line = lines
            .iter()
            .find(|l| l.starts_with(&format!("{name} ")))
            .with_context(|| format!("no row for {name}: {lines:?}"))?;
        let cols: Vec<&str> = line.split_whitespace().collect();
        let [n, i, m, v, state, time] = cols[..] else {
            bail!("{line:?}: six columns expected");
        };
        let running = state.starts_with('r') || state.starts_with("-b");
        if n != name
            || i != id.to_string()
            || m != mem.to_string()
            || v != "1"
            || !running
            || state.len() != 6
            || state[2..] != *"----"
            || time.parse::<f64>().is_err()
        {
            bail!("{line:?} ({name} {id} {mem} 1 r or b, not paused or ended)");
        }
    }
    if list.len() != 3 {
        bail!("{} rows ({lines:?}): Domain-0 and two expected", list.len());
    }
    Ok(())
}

fn step_console(st: &mut State) -> Result<()> {
    // All of it (`xl console` shows it from the start).
    let bytes = st.c.output_all(Some(&DomRef::Name("xl-spin".into())))?;
    let console = String::from_utf8_lossy(&bytes);
    let fact = format!("\nFACT spin.seconds {SPIN_SECS}\n");
    // Its ramdisk came along: the start info's one module.
    if !console.contains("\nFACT start-info.nr-modules 1\n") {
        bail!("no `FACT start-info.nr-modules 1`: the ramdisk did not reach the guest");
    }
    let log = String::from_utf8_lossy(&st.c.output_all(None)?).into_owned();
    let sent = format!("of kernel, {RAMDISK_BYTES} of ramdisk");
    if !log.contains(&sent) {
        bail!("hv's log lacks {sent:?}");
    }
    if !console.contains("\nTEST ") || !console.contains(&fact) || console.contains("(d") {
        let head: String = console.chars().take(300).collect();
        bail!("no TEST lines or no {fact:?}, or hv's (d<id>) prefixes left in: {head:?}...");
    }
    Ok(())
}

fn step_pause(st: &mut State) -> Result<()> {
    let spin = DomRef::Id(st.spin_id);
    // The spin reads its start a moment after its FACT line (it brings events up first):
    // pause once it surely spins.
    let began = st.spin_began.context("no spin began")?;
    std::thread::sleep((began + SPIN_STARTED).saturating_duration_since(Instant::now()));
    let paused_at = Instant::now();
    st.c.done(Request::Pause(spin.clone()))?;
    let r = row(&mut st.c, st.spin_id)?.context("list: the guest is missing")?;
    if r.state() != "--p---" {
        bail!("list after pause: {r:?} (--p--- expected)");
    }
    let (before, _) = st.c.output(Some(&spin), u64::MAX)?;
    std::thread::sleep(PAUSED);
    let (after, _) = st.c.output(Some(&spin), u64::MAX)?;
    let r2 = row(&mut st.c, st.spin_id)?.context("list: the guest is missing")?;
    if after != before {
        bail!(
            "{} console bytes while paused",
            after.saturating_sub(before)
        );
    }
    if r2.cpu_ns != r.cpu_ns {
        bail!(
            "its CPU time went on while paused: {} -> {} ns",
            r.cpu_ns,
            r2.cpu_ns
        );
    }
    st.paused = Some((paused_at, Instant::now()));
    Ok(())
}

fn step_unpause_clock(st: &mut State) -> Result<()> {
    st.c.done(Request::Unpause(DomRef::Name("xl-spin".into())))?;
    let (mut from, _) = st.c.output(Some(&DomRef::Id(st.spin_id)), u64::MAX)?;
    let mut console = String::new();
    let ended = wait_console(
        &mut st.c,
        st.spin_id,
        (&mut from, &mut console),
        "TEST spin ok",
        Duration::from_secs(60),
    )?;
    let began = st.spin_began.context("no spin began")?;
    let (paused_at, unpaused_at) = st.paused.context("not paused")?;
    // The spin counts system time. If the guest's clock runs on while it is paused (as
    // Xen's system time does), the spin ends SPIN_SECS after it began, or at the unpause if
    // that is later; a clock stopped while paused would end it PAUSED later than that.
    let took = ended.duration_since(began);
    let paused_after = paused_at.duration_since(began);
    println!(
        "hv-xl: the spin of {SPIN_SECS} s of system time took {took:.1?}, paused {:.1?} after \
         it began for {:.1?}",
        paused_after,
        unpaused_at.duration_since(paused_at)
    );
    let spin = Duration::from_secs(SPIN_SECS);
    if paused_after + Duration::from_secs(1) > spin {
        bail!("paused only {paused_after:.1?} into a spin of {spin:?}: nothing to tell");
    }
    let limit = spin.max(unpaused_at.duration_since(began)) + PAUSED / 2;
    if took > limit {
        bail!(
            "the spin of {SPIN_SECS} s of system time took {took:.1?}, paused {paused_after:.1?} \
             after it began for {:.1?} (at most {limit:.1?}: the guest's clock stopped while \
             it was paused?)",
            unpaused_at.duration_since(paused_at)
        );
    }
    Ok(())
}

fn step_reboot(st: &mut State) -> Result<()> {
    let addr = format!("127.0.0.1:{}", st.http_port);
    let path = format!("/kv/{REBOOT_KEY}");
    let put = crate::http::once(&addr, "PUT", &path, Some(REBOOT_VALUE))
        .context("PUT through the forwarded port")?;
    if put.status != 200 {
        bail!("PUT {path} answered {} {:?}", put.status, put.text());
    }
    let old = st.app_id;
    st.c.done(Request::Shutdown {
        dom: DomRef::Name("xl-app".into()),
        reason: Reason::Reboot,
    })
    .context("reboot")?;
    // Built again under its name as a new domain: xl restarts a rebooted domain with a new
    // domid (libxl destroys it and creates it again from its config).
    let until = Instant::now() + Duration::from_secs(30);
    let new = loop {
        let list = st.c.list()?;
        if let Some(r) = list.iter().find(|d| d.name == "xl-app" && d.domid != old) {
            if list.iter().any(|d| d.domid == old) {
                bail!(
                    "the old domain {old} is still listed beside the new {}",
                    r.domid
                );
            }
            break r.domid;
        }
        if Instant::now() > until {
            let rows: Vec<String> = list
                .iter()
                .map(|d| format!("{} {}", d.name, d.domid))
                .collect();
            bail!("no xl-app other than domain {old} within 30 s after reboot: {rows:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    st.app_id = new;
    let console = wait_serving(&mut st.c, new)?;
    let serving = serving_line(&console);
    // The host's key and the one put before the reboot.
    if !serving.starts_with(&format!("APP serving http://{APP_IP}/"))
        || !serving.contains("kv-keys 2")
    {
        bail!("after the reboot: {serving:?} (kv-keys 2 expected)");
    }
    let r = row(&mut st.c, new)?.context("list: the new domain is missing")?;
    let s = r.state();
    if !(s.starts_with('r') || s.starts_with("-b")) || s.get(2..) != Some("----") {
        bail!("list after the reboot: {r:?} (running expected)");
    }
    let got = crate::http::once(&addr, "GET", &path, None).context("GET after the reboot")?;
    if got.status != 200 || got.body != REBOOT_VALUE {
        bail!(
            "GET {path} after the reboot answered {} {:?}",
            got.status,
            got.text()
        );
    }
    // The old one stopped serving (its front ends closed, the store let go) before it
    // ended with reason reboot, and hv built it again: in this order on COM1 (read by the
    // boot's thread, which may trail the control channel a little).
    let wants = [
        format!("(d{old}) APP stopped"),
        format!("hv: domain {old} (xl-app) rebooted"),
        format!("hv: domain {old} (xl-app) restarts as domain {new}"),
    ];
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let ends = st
            .app_ends
            .lock()
            .map_err(|_| anyhow::anyhow!("the serial reader panicked"))?
            .clone();
        let mut at = Some(0);
        for want in &wants {
            at = at.and_then(|from| {
                let i = ends.iter().skip(from).position(|l| l.starts_with(want))?;
                Some(from + i + 1)
            });
        }
        if at.is_some() {
            return Ok(());
        }
        if Instant::now() > until {
            bail!("not {wants:?} in this order on the serial line: {ends:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn step_shutdown_wait(st: &mut State) -> Result<()> {
    let app = DomRef::Id(st.app_id);
    let (from, _) = st.c.output(Some(&app), u64::MAX)?;
    st.c.done(Request::Shutdown {
        dom: app.clone(),
        reason: Reason::Poweroff,
    })?;
    // `shutdown -w`: back once it has shut down (`on_poweroff = "preserve"` keeps it, so
    // its last console lines can be read; `destroy` then ends it).
    wait_gone(&mut st.c, &app, Duration::from_secs(60))?;
    let r = row(&mut st.c, st.app_id)?.context("gone, not preserved")?;
    if r.state() != "--ps--" {
        bail!("{r:?} (--ps--: powered off and preserved, expected)");
    }
    let (_, bytes) = st.c.output(Some(&app), from)?;
    let console = String::from_utf8_lossy(&bytes);
    if !console.contains("APP stopped") {
        bail!("shut down without `APP stopped` on its console: {console:?}");
    }
    let log = st.c.output_all(None)?;
    let log = String::from_utf8_lossy(&log);
    let off = format!("domain {} (xl-app) powered off", st.app_id);
    if !log.contains(&off) {
        bail!("hv's log lacks {off:?}");
    }
    st.c.done(Request::Destroy(app))?;
    Ok(())
}

fn step_destroy(st: &mut State) -> Result<()> {
    st.c.done(Request::Destroy(DomRef::Name("xl-spin".into())))?;
    if row(&mut st.c, st.spin_id)?.is_some() {
        bail!("still listed after destroy");
    }
    Ok(())
}

fn step_list_empty(st: &mut State) -> Result<()> {
    let left: Vec<String> = st.c.list()?.into_iter().map(|d| d.name).collect();
    let info = st.c.info()?;
    if left != ["Domain-0"] || info.domains != 0 {
        bail!("list {left:?}, info {} domains", info.domains);
    }
    Ok(())
}

/// Garbage, an oversized frame and half a frame (ended by the next 0): each answered with
/// an error, and hv still answers: `HOST hv-xl-garbage-frame`, `-oversized-frame`,
/// `-half-frame`.
fn bad_frames(c: &mut Client) -> Vec<(bool, String)> {
    let mut big = vec![0x55u8; hvctl::MAX_FRAME + 10];
    big.push(0);
    let half = hvctl::encode(7, Request::List).unwrap_or_default();
    let mut half = half[..half.len() / 2].to_vec();
    half.push(0);
    let cases = BAD_FRAMES
        .into_iter()
        .zip([b"\x01\x02garbage\x00".to_vec(), big, half]);
    let mut lines = Vec::new();
    for (name, bytes) in cases {
        let result = (|| -> Result<()> {
            c.send_raw(&bytes)?;
            match c.answer(0)? {
                Response::Error(_) => {}
                r => bail!("{r:?} (an error expected)"),
            }
            c.list().context("list afterwards")?;
            Ok(())
        })();
        lines.push(match result {
            Ok(()) => (true, format!("HOST hv-xl-{name} ok")),
            Err(e) => (false, format!("HOST hv-xl-{name} FAIL {e:#}")),
        });
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_and_info_look_like_xl() {
        let rows = [
            DomainInfo {
                name: "Domain-0".into(),
                running: true,
                vcpus: 1,
                cpu_ns: 12_340_000_000,
                ..DomainInfo::default()
            },
            DomainInfo {
                name: "web".into(),
                domid: 3,
                mem_mib: 128,
                vcpus: 1,
                paused: true,
                shutdown: true,
                ..DomainInfo::default()
            },
        ];
        let lines = list_lines(&rows);
        assert_eq!(
            lines[0],
            "Name                                        ID   Mem VCPUs\tState\tTime(s)"
        );
        assert_eq!(
            lines[1],
            "Domain-0                                     0     0     1     r-----      12.3"
        );
        assert_eq!(
            lines[2],
            "web                                          3   128     1     --ps--       0.0"
        );
        let info = info_lines(&HostInfo {
            xen_version: "4.17".into(),
            free_mib: 100,
            ..HostInfo::default()
        });
        assert!(info.contains(&"free_memory            : 100".to_owned()));
        assert!(info.contains(&"xen_minor              : 17".to_owned()));
    }

    #[test]
    fn the_loaded_part_drops_sections_only() {
        let mut elf = vec![0u8; 0x3000];
        elf[..6].copy_from_slice(b"\x7fELF\x02\x01");
        elf[0x20..0x28].copy_from_slice(&0x40u64.to_le_bytes());
        elf[0x28..0x30].copy_from_slice(&0x2000u64.to_le_bytes());
        elf[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        elf[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes());
        elf[0x3c..0x3e].copy_from_slice(&5u16.to_le_bytes());
        // One PT_LOAD at 0x1000, 0x100 bytes.
        elf[0x40..0x44].copy_from_slice(&1u32.to_le_bytes());
        elf[0x48..0x50].copy_from_slice(&0x1000u64.to_le_bytes());
        elf[0x60..0x68].copy_from_slice(&0x100u64.to_le_bytes());
        let part = loaded_part(&elf);
        assert_eq!(part.len(), 0x1100);
        assert_eq!(&part[0x28..0x30], &[0; 8]);
        assert_eq!(&part[0x3c..0x3e], &[0; 2]);
        assert_eq!(loaded_part(b"not an elf"), b"not an elf");
    }

    /// A fake hv on a socket: answers each request with what `answer` gives, after a
    /// garbage frame and an answer to another client's id; returns what it was asked.
    fn fake_hv(
        dir: &Path,
        answer: impl Fn(&Request) -> Response + Send + 'static,
    ) -> (PathBuf, std::thread::JoinHandle<Vec<Request>>) {
        let path = dir.join("hv.sock");
        let _ = std::fs::remove_file(&path);
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let handle = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut reader = FrameReader::default();
            let mut asked = Vec::new();
            let mut buf = [0u8; 8192];
            loop {
                let n = match conn.read(&mut buf) {
                    Ok(0) | Err(_) => return asked,
                    Ok(n) => n,
                };
                for &b in &buf[..n] {
                    let Some(Ok(frame)) = reader.push(b) else {
                        continue;
                    };
                    let env: Envelope<Request> = hvctl::decode(&frame).unwrap();
                    assert_eq!(env.body.check(), Ok(()));
                    let reply = answer(&env.body);
                    asked.push(env.body);
                    conn.write_all(b"\x05junk\x00").unwrap();
                    let other = hvctl::encode(env.id.wrapping_add(1), Response::Done).unwrap();
                    conn.write_all(&other).unwrap();
                    conn.write_all(&hvctl::encode(env.id, reply).unwrap())
                        .unwrap();
                }
            }
        });
        (path, handle)
    }

    #[test]
    fn the_client_takes_only_its_own_answer_and_sends_a_kernel_in_chunks() {
        let dir = std::env::temp_dir().join(format!("pvxen-xl-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (path, hv) = fake_hv(&dir, |req| match req {
            Request::List => Response::List(vec![DomainInfo::default()]),
            Request::CreateBegin { .. } => Response::Received { next: 0 },
            Request::KernelChunk { offset, bytes } => Response::Received {
                next: offset + u32::try_from(bytes.len()).unwrap(),
            },
            Request::CreateCommit { .. } => Response::Created { domid: 4 },
            Request::Pause(_) => Response::Error("zz is an invalid domain identifier".into()),
            _ => Response::Done,
        });
        let mut c = Client::connect(&path).unwrap();
        assert_eq!(c.list().unwrap().len(), 1);
        let kernel = vec![0xabu8; 2 * hvctl::CHUNK + 5];
        assert_eq!(
            c.create("a.cfg", "name = \"a\"", &kernel, &[], true)
                .unwrap(),
            4
        );
        let e = c.done(Request::Pause(DomRef::parse("zz"))).unwrap_err();
        assert!(format!("{e}").contains("invalid domain identifier"));
        assert!(
            c.create(
                "a.cfg",
                "",
                &vec![0; hvctl::MAX_KERNEL as usize],
                &[1],
                false
            )
            .is_err()
        );
        drop(c);
        let asked = hv.join().unwrap();
        let chunks: Vec<usize> = asked
            .iter()
            .filter_map(|r| match r {
                Request::KernelChunk { bytes, .. } => Some(bytes.len()),
                _ => None,
            })
            .collect();
        assert_eq!(chunks, [hvctl::CHUNK, hvctl::CHUNK, 5]);
        assert_eq!(
            asked.last(),
            Some(&Request::Pause(DomRef::Name("zz".into())))
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
