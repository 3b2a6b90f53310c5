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
        let until = Instant::now() + ANSWER_TIMEOUT;
        let mut buf = [0u8; 4096];
        loop {
            if Instant::now() > until {
                bail!("hv did not answer within {ANSWER_TIMEOUT:?}");
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
        self.next_id = self.next_id.wrapping_add(1);
        let id = self.next_id;
        let frame = hvctl::encode(id, req).map_err(|e| anyhow::anyhow!("{e}"))?;
        self.stream.write_all(&frame)?;
        self.answer(id)
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

    /// Creates a domain from the config `file` (its text) and `kernel`; its id.
    pub fn create(&mut self, file: &str, config: &str, kernel: &[u8], paused: bool) -> Result<u16> {
        let kernel_len = u32::try_from(kernel.len())
            .ok()
            .filter(|&l| l <= hvctl::MAX_KERNEL)
            .with_context(|| {
                format!(
                    "the kernel's loaded part is {} bytes; the serial channel takes at most {}",
                    kernel.len(),
                    hvctl::MAX_KERNEL
                )
            })?;
        self.ok(Request::CreateBegin {
            file: file.to_owned(),
            config: config.to_owned(),
            kernel_len,
        })?;
        for (offset, chunk) in (0u32..)
            .step_by(hvctl::CHUNK)
            .zip(kernel.chunks(hvctl::CHUNK))
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
            println!("Parsing config from {cfg}");
            let kernel =
                std::fs::read(&boot.kernel).with_context(|| format!("reading {}", boot.kernel))?;
            let kernel = loaded_part(&kernel);
            let text = std::fs::read_to_string(&cfg)?;
            let began = Instant::now();
            c.create(&cfg, &text, &kernel, paused).map(|id| {
                eprintln!(
                    "xl: domain {id} ({}) created ({} kernel bytes in {:.1} s)",
                    boot.name,
                    kernel.len(),
                    began.elapsed().as_secs_f64()
                );
            })
        }
        "console" => console(&mut c, &dom(0)?),
        "pause" => c.done(Request::Pause(dom(0)?)),
        "unpause" => c.done(Request::Unpause(dom(0)?)),
        "shutdown" | "reboot" => {
            let d = dom(0)?;
            let reason = if cmd == "reboot" {
                Reason::Reboot
            } else {
                Reason::Poweroff
            };
            c.done(Request::Shutdown {
                dom: d.clone(),
                reason,
            })
            .and_then(|()| {
                if rest.contains(&"-w") {
                    println!("Waiting for 1 domains");
                    wait_gone(&mut c, &d, Duration::from_secs(600))
                } else {
                    Ok(())
                }
            })
        }
        "destroy" => c.done(Request::Destroy(dom(0)?)),
        "dmesg" => c.output(None, 0).map(|(_, b)| {
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

/// Waits until `d` is gone (`xl shutdown -w`).
pub fn wait_gone(c: &mut Client, d: &DomRef, limit: Duration) -> Result<()> {
    let until = Instant::now() + limit;
    while names(&c.list()?, d) {
        if Instant::now() > until {
            bail!("the domain did not end within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    println!(
        "Domain {} has been shut down, reason code 0",
        match d {
            DomRef::Id(id) => id.to_string(),
            DomRef::Name(n) => n.clone(),
        }
    );
    Ok(())
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

/// The hard timeout of `HOST hv-xl`'s boot.
const XL_TEST_TIMEOUT: Duration = Duration::from_secs(120);

/// `HOST hv-xl`: hv started with `keep` and no domain, managed through its channel: a
/// domain created paused from a config (the MSR/CR4 probe, a kernel small enough to travel
/// in a moment) shows in `list` as `p`, a second create of its name gets xl's refusal, it
/// runs after `unpause` and powers off (`on_poweroff = "preserve"`: `s`), `console` answers
/// for it, `destroy` leaves only Domain-0, pvguest created over the channel prints nothing
/// while paused and, unpaused, shows its self-tests' lines on `console` (without hv's
/// prefixes) and is destroyed, a garbage frame, an oversized one and a half one
/// get error answers while hv runs on, and `shutdown-hv` ends QEMU with 33. Returns the
/// verdict line.
pub fn xl_test(hv: &Path, guest: &Path) -> Result<(bool, String)> {
    let dir = super::run_dir("hv-xl");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let archive = dir.join("empty.pvxarc");
    std::fs::write(&archive, xlcfg::archive::write(&[]))?;
    let kernel = dir.join("probe.elf");
    std::fs::write(&kernel, super::probe::image())?;
    let cfg = dir.join("probe.cfg");
    let text = format!(
        "name = \"xl-probe\"\ntype = \"pvh\"\nkernel = \"{}\"\nmemory = 16\n\
         on_poweroff = \"preserve\"\n",
        kernel.display()
    );
    std::fs::write(&cfg, &text)?;
    let guest_cfg = dir.join("guest.cfg");
    let guest_text = format!(
        "name = \"xl-guest\"\ntype = \"pvh\"\nkernel = \"{}\"\ncmdline = \"selftest=boot\"\n\
         memory = 128\non_poweroff = \"preserve\"\n",
        guest.display()
    );
    std::fs::write(&guest_cfg, &guest_text)?;
    let socket = socket_dir("hv-xl").join("hv.sock");
    let options = format!("{} keep", super::HV_OPTIONS);
    let module = super::Module::Archive(&archive, super::qemu::DEFAULT_MEMORY_MIB, &[], None);
    std::thread::scope(|scope| {
        let booted = scope.spawn(|| {
            super::boot_with(
                "hv-xl",
                hv,
                module,
                "hv-xl",
                XL_TEST_TIMEOUT,
                (&options, None),
                |_| {},
            )
        });
        let steps = xl_steps(
            &socket,
            (&cfg, &text, &kernel),
            (&guest_cfg, &guest_text, guest),
        );
        let booted = booted
            .join()
            .map_err(|_| anyhow::anyhow!("the boot thread panicked"))??;
        let ended = booted.end == super::QemuEnd::Exited(Some(super::EXIT_POWEROFF));
        Ok(match (steps, ended) {
            (Ok(()), true) => (true, "HOST hv-xl ok".to_owned()),
            (Ok(()), false) => (
                false,
                format!(
                    "HOST hv-xl FAIL shutdown-hv: QEMU {} (33 expected)",
                    booted.end.describe()
                ),
            ),
            (Err(e), _) => {
                super::explain_failure(&booted);
                (false, format!("HOST hv-xl FAIL {e:#}"))
            }
        })
    })
}

/// The steps of [`xl_test`] against the hv at `socket`; the first that fails says why.
fn xl_steps(
    socket: &Path,
    (cfg, text, kernel): (&Path, &str, &Path),
    (guest_cfg, guest_text, guest): (&Path, &str, &Path),
) -> Result<()> {
    let until = Instant::now() + Duration::from_secs(60);
    let mut c = loop {
        match Client::connect(socket) {
            Ok(c) => break c,
            Err(_) if Instant::now() < until => std::thread::sleep(Duration::from_millis(200)),
            Err(e) => return Err(e).context("hv's control socket never answered"),
        }
    };
    let outcome = (|| -> Result<()> {
        let info = c.info().context("info")?;
        if !info.keep || info.domains != 0 {
            bail!("info: {info:?} (keep, no domain expected)");
        }
        let file = cfg.display().to_string();
        let image = loaded_part(&std::fs::read(kernel)?);
        let id = c.create(&file, text, &image, true).context("create -p")?;
        let row = |c: &mut Client| -> Result<Option<DomainInfo>> {
            Ok(c.list()?.into_iter().find(|d| d.domid == id))
        };
        let r = row(&mut c)?.context("list: the created domain is missing")?;
        if r.name != "xl-probe" || r.mem_mib != 16 || r.state() != "--p---" {
            bail!("list: {r:?} (xl-probe, 16 MiB, --p--- expected)");
        }
        match c.create(&file, text, &image, false) {
            Err(e) if format!("{e}").contains("already exists") => {}
            other => bail!("a second create of xl-probe: {other:?} (xl's refusal expected)"),
        }
        // `shutdown` writes control/shutdown (the probe reads no store: it stays).
        c.done(Request::Shutdown {
            dom: DomRef::Id(id),
            reason: Reason::Poweroff,
        })
        .context("shutdown")?;
        c.done(Request::Unpause(DomRef::Name("xl-probe".into())))
            .context("unpause")?;
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            let r = row(&mut c)?.context("list: the domain vanished")?;
            if r.shutdown {
                break;
            }
            if Instant::now() > until {
                bail!("the probe did not power off after unpause: {r:?}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        c.output(Some(&DomRef::Id(id)), 0).context("console")?;
        match c.call(Request::Destroy(DomRef::Id(0)))? {
            Response::Error(e) if e.contains("domain 0") => {}
            r => bail!("destroy 0: {r:?} (xl's refusal expected)"),
        }
        c.done(Request::Destroy(DomRef::Id(id)))
            .context("destroy")?;
        let left: Vec<String> = c.list()?.into_iter().map(|d| d.name).collect();
        if left != ["Domain-0"] {
            bail!("list after destroy: {left:?}");
        }
        // pvguest over the channel: its console shows its self-tests' lines.
        let image = loaded_part(&std::fs::read(guest)?);
        let file = guest_cfg.display().to_string();
        let id = c
            .create(&file, guest_text, &image, false)
            .context("create pvguest")?;
        // Paused, it prints nothing; unpaused, it goes on.
        let guest_ref = DomRef::Name("xl-guest".into());
        c.done(Request::Pause(guest_ref.clone())).context("pause")?;
        let r = c
            .list()?
            .into_iter()
            .find(|d| d.name == "xl-guest")
            .context("list: pvguest is missing")?;
        if !r.paused {
            bail!("list after pause: {r:?} (p expected)");
        }
        let (before, _) = c.output(Some(&guest_ref), u64::MAX)?;
        std::thread::sleep(Duration::from_secs(1));
        let (after, _) = c.output(Some(&guest_ref), u64::MAX)?;
        if after != before {
            bail!(
                "console: {} bytes while paused",
                after.saturating_sub(before)
            );
        }
        c.done(Request::Unpause(guest_ref))
            .context("unpause pvguest")?;
        let (mut from, mut console) = (0, Vec::new());
        let until = Instant::now() + Duration::from_secs(60);
        while !String::from_utf8_lossy(&console).contains("\nRESULT ") {
            if Instant::now() > until {
                bail!("console: no RESULT line within 60 s");
            }
            let (next, bytes) = c.output(Some(&DomRef::Name("xl-guest".into())), from)?;
            console.extend(bytes);
            from = next;
            std::thread::sleep(Duration::from_millis(100));
        }
        let console = String::from_utf8_lossy(&console);
        if !console.contains("\nTEST ") || console.contains("(d") {
            bail!("console: no TEST line, or hv's (d<id>) prefixes left in");
        }
        c.done(Request::Destroy(DomRef::Id(id)))
            .context("destroy pvguest")?;
        // Garbage, an oversized frame and half a frame: each answered with an error (the
        // half one when the next 0 ends it), and hv still answers.
        c.send_raw(b"\x01\x02garbage\x00")?;
        let mut big = vec![0x55u8; hvctl::MAX_FRAME + 10];
        big.push(0);
        c.send_raw(&big)?;
        let half = hvctl::encode(7, Request::List).map_err(|e| anyhow::anyhow!("{e}"))?;
        c.send_raw(&half[..half.len() / 2])?;
        c.send_raw(&[0])?;
        for what in ["garbage", "an oversized frame", "half a frame"] {
            match c.answer(0)? {
                Response::Error(_) => {}
                r => bail!("{what}: {r:?} (an error expected)"),
            }
        }
        c.list().context("list after the bad frames")?;
        Ok(())
    })();
    // hv ends either way, so the boot does not wait for its timeout.
    let end = c.done(Request::ShutdownHv).context("shutdown-hv");
    outcome.and(end)
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
        assert_eq!(c.create("a.cfg", "name = \"a\"", &kernel, true).unwrap(), 4);
        let e = c.done(Request::Pause(DomRef::parse("zz"))).unwrap_err();
        assert!(format!("{e}").contains("invalid domain identifier"));
        assert!(
            c.create("a.cfg", "", &vec![0; hvctl::MAX_KERNEL as usize + 1], false)
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
