//! `cargo xtask run`: the demo. pvguest's application (the HTTP service over its site archive
//! and its key-value store) on stock Xen inside QEMU, served to the host until Ctrl-C; and the
//! host-side check of that command that `cargo xtask test` runs.
//!
//! The forwarding choice: QEMU's user network is dom0's virtio NIC (`eth0`), which dom0
//! bridges with the guest's vif (`xenbr0`), so the guest sits on QEMU's user network itself
//! with the address [`GUEST_IP`] (its gateway QEMU's 10.0.2.2); QEMU forwards
//! `127.0.0.1:<port>` on the host to port 80 there (`hostfwd`). dom0 needs no address, NAT or
//! firewall, and only the loopback interface of the host is exposed.
//!
//! The disks: `xvda` is the site archive (rebuilt from `--site` every run, a file in dom0's
//! memory); `xvdb` is the store, a host file (`--store`, [`default_store`]) that QEMU gives
//! dom0 as a virtio disk (`/dev/vda`, written through to the file on every flush) and that
//! dom0 gives the guest as a `phy` vbd. It survives from one run to the next.
use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::blk::site_archive;
use super::console::{BootEnd, GuestEnd};
use super::job::{Job, Step};
use super::{Limits, boot_job_with, explain_failure, guest_elf, hard_timeout, image, xl_config};
use crate::build::workspace_root;
use crate::tally::Tally;

/// The guest's address on QEMU's user network (the first one QEMU's DHCP would lease).
pub const GUEST_IP: &str = "10.0.2.15";
/// QEMU's user-network gateway.
pub const GATEWAY: &str = "10.0.2.2";
/// The port the guest serves on.
pub const GUEST_PORT: u16 = 80;
/// The host port forwarded to the guest unless `--port` says otherwise.
pub const DEFAULT_PORT: u16 = 8080;
/// Size of a new store image (sparse): two regions of about 8 MiB each.
const STORE_BYTES: u64 = 16 << 20;
/// The archive disk is the archive rounded up to this.
pub const ARCHIVE_ROUND: usize = 1 << 20;
/// The largest archive: it travels in dom0's initramfs and is copied to its /tmp (memory).
const MAX_ARCHIVE: usize = 64 << 20;
/// The vif's MAC.
pub const GUEST_MAC: &str = "00:16:3e:00:00:03";
/// The line the application prints once it serves (`pvguest/src/app.rs`).
pub const SERVING_LINE: &str = "APP serving";

const USAGE: &str = "\
cargo xtask run [--on hv|xen] [--port N] [--site DIR] [--store FILE] [--config FILE]...
                [--keep] [--gdb[=PORT]] [--gdb-wait]

Boots pvguest's application inside QEMU and serves it to this host until Ctrl-C: an HTTP
service with the files of a site archive and a durable key-value store. By default on hv,
our own hypervisor (its netback, blkback and switch; up in seconds); `--on xen` boots stock
Xen 4.17 with a Linux dom0 (its netback and blkback) instead, with the same options and the
same store image.

  --on hv|xen   the platform (default hv)
  --port N      host port forwarded to the guest's port 80, on 127.0.0.1 (default 8080)
  --site DIR    directory packed into the read-only archive disk (default pvguest/site)
  --store FILE  the store's disk image, created (16 MiB, sparse) if missing and kept between
                runs (default $XDG_DATA_HOME/pvxen/store.img, else
                ~/.local/share/pvxen/store.img); delete it to start with an empty store
  --config FILE run your own xl.cfg domain(s) on hv instead of the application (repeatable;
                checked first as `cargo xtask hv-run --config` checks them; the first domain
                with a vif is forwarded from --port, the next from --port + 1, ...)
  --keep        (hv) hv runs on when the domains power off, so `cargo xtask xl` can create
                more into the running demo; Ctrl-C shuts the domains down, then hv
  --gdb[=PORT], --gdb-wait
                QEMU's gdbstub on 127.0.0.1:PORT (default 1234; --gdb-wait: QEMU waits for
                gdb); the gdb command for pvguest is printed (README: Debugging)

Environment: PVXEN_CACHE, PVXEN_GUEST (see `cargo xtask help`), PVXEN_CMDLINE (words added
to the guest's command line), PVXEN_TIMEOUT (stop after this many seconds; default: never).
";

/// What `cargo xtask run` was asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// The host port.
    pub port: u16,
    /// The site directory.
    pub site: PathBuf,
    /// The store image.
    pub store: PathBuf,
    /// `--gdb[=PORT]`, `--gdb-wait`.
    pub gdb: Option<crate::gdb::Gdb>,
    /// `--on`.
    pub on: Platform,
    /// `--config` files (hv only).
    pub configs: Vec<PathBuf>,
    /// `--keep` (hv only): hv runs on when the domains end, for `cargo xtask xl`.
    pub keep: bool,
}

/// Where `run` boots the application.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Platform {
    /// hv, our hypervisor (the default).
    Hv,
    /// Stock Xen 4.17 with a Linux dom0.
    Xen,
}

/// QEMU's devices for a stock-Xen boot of the application (`run`'s and the bench's): the user
/// network `netdev` (its `-netdev` value, with `id=net0`) on a virtio NIC, and the store image
/// `store` (a path from [`drive_path`]) as a virtio-blk drive with the host's write cache.
pub fn qemu_devices(netdev: String, store: &str) -> Vec<String> {
    vec![
        "-netdev".to_owned(),
        netdev,
        "-device".to_owned(),
        "virtio-net-pci,netdev=net0".to_owned(),
        "-drive".to_owned(),
        format!("file={store},format=raw,if=none,id=store,cache=writeback"),
        "-device".to_owned(),
        "virtio-blk-pci,drive=store".to_owned(),
    ]
}

/// The default store image: `$XDG_DATA_HOME/pvxen/store.img`, else
/// `~/.local/share/pvxen/store.img`.
pub fn default_store() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir).join("pvxen").join("store.img"));
    }
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .context("neither XDG_DATA_HOME nor HOME is set: name the store with --store FILE")?;
    Ok(PathBuf::from(home).join(".local/share/pvxen/store.img"))
}

/// Parses the arguments after `run`; `Ok(None)` for `--help`.
pub fn parse_args(args: &[String]) -> Result<Option<Options>> {
    let mut options = Options {
        port: DEFAULT_PORT,
        site: workspace_root().join("pvguest").join("site"),
        store: PathBuf::new(),
        gdb: None,
        on: Platform::Hv,
        configs: Vec::new(),
        keep: false,
    };
    let mut store = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .with_context(|| format!("{name} needs a value\n\n{USAGE}"))
        };
        match arg.as_str() {
            "--help" | "-h" => return Ok(None),
            "--port" => {
                let v = value("--port")?;
                options.port = v
                    .parse()
                    .ok()
                    .filter(|&p| p != 0)
                    .with_context(|| format!("--port {v}: not a port number (1-65535)"))?;
            }
            "--site" => options.site = PathBuf::from(value("--site")?),
            "--store" => store = Some(PathBuf::from(value("--store")?)),
            "--on" => {
                options.on = match value("--on")?.as_str() {
                    "hv" => Platform::Hv,
                    "xen" => Platform::Xen,
                    other => bail!("--on {other}: hv or xen\n\n{USAGE}"),
                }
            }
            "--config" => options.configs.push(PathBuf::from(value("--config")?)),
            "--keep" => options.keep = true,
            other if crate::gdb::parse_arg(other, &mut options.gdb)? => {}
            other => bail!("unknown argument `{other}`\n\n{USAGE}"),
        }
    }
    options.store = match store {
        Some(s) => s,
        None => default_store()?,
    };
    if options.on == Platform::Xen && options.keep {
        bail!(
            "--keep keeps hv running for `cargo xtask xl`; it does not go with --on xen\n\n{USAGE}"
        );
    }
    if options.on == Platform::Xen && !options.configs.is_empty() {
        bail!("--config runs your domains on hv; it does not go with --on xen\n\n{USAGE}");
    }
    Ok(Some(options))
}

/// A path QEMU's `-drive file=` takes (commas would end the option).
pub(crate) fn drive_path(path: &Path) -> Result<String> {
    let abs = std::path::absolute(path).with_context(|| format!("resolving {}", path.display()))?;
    match abs.to_str() {
        Some(s) if !s.contains(',') => Ok(s.to_owned()),
        _ => bail!(
            "the store path {} has a comma or is not UTF-8, which QEMU's -drive cannot take: \
             choose another with --store",
            abs.display()
        ),
    }
}

/// Creates the store image (sparse, [`STORE_BYTES`]) unless it exists; says which.
pub(crate) fn prepare_store(path: &Path) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => {
            println!(
                "run: the store is {} ({} bytes, kept from earlier runs)",
                path.display(),
                m.len()
            );
        }
        Ok(_) => bail!("the store {} is not a regular file", path.display()),
        Err(_) => {
            let file = std::fs::File::create(path)
                .with_context(|| format!("creating the store {}", path.display()))?;
            file.set_len(STORE_BYTES)?;
            println!(
                "run: created an empty store {} ({STORE_BYTES} bytes, sparse)",
                path.display()
            );
        }
    }
    Ok(())
}

/// Fails with a clear message if `port` on 127.0.0.1 is taken.
pub(crate) fn check_port(port: u16) -> Result<()> {
    TcpListener::bind(("127.0.0.1", port)).map(drop).with_context(|| {
        format!(
            "port {port} on 127.0.0.1 is in use: stop what uses it (a QEMU left by a killed run? \
             `pkill -f hostfwd=tcp:127.0.0.1:{port}-`) or choose another with --port"
        )
    })
}

/// dom0's steps: the backends and the virtio devices, the archive in /tmp, the bridge with
/// the NIC, then the guest until it ends.
pub(crate) fn job(archive: Vec<u8>, cmdline: &str) -> Result<Job> {
    let run = |key: &str, command: &str| Step::Run {
        key: key.to_owned(),
        command: command.to_owned(),
    };
    let steps = vec![
        run(
            "devices",
            "for m in loop xen-blkback xen-netback bridge virtio_pci virtio_blk virtio_net; do \
             modprobe $m || exit 1; done; i=0; \
             while [ $i -lt 100 ] && ! { [ -b /dev/vda ] && [ -d /sys/class/net/eth0 ]; }; do \
             sleep 0.1; i=$((i+1)); done; \
             [ -b /dev/vda ] && [ -d /sys/class/net/eth0 ] && echo ok || echo no /dev/vda or eth0",
        ),
        run("prep-xvda", "cp /pvxen/xvda.img /tmp/xvda.img && echo ok"),
        run(
            "bridge",
            "ip link add name xenbr0 type bridge stp_state 0 forward_delay 0 && \
             brctl addif xenbr0 eth0 && ip link set eth0 up && ip link set xenbr0 up && echo ok",
        ),
        Step::Create {
            config: "guest.cfg".into(),
            paused: false,
        },
        Step::WaitEnd,
    ];
    let devices = format!(
        "disk = [ 'format=raw, vdev=xvda, access=ro, target=/tmp/xvda.img',\n\
         \x20        'format=raw, vdev=xvdb, access=rw, target=/dev/vda' ]\n\
         vif = [ 'mac={GUEST_MAC},bridge=xenbr0' ]\n"
    );
    Job::with_steps(
        xl_config(cmdline, &devices)?,
        steps,
        vec![("xvda.img".to_owned(), archive)],
    )
}

/// The application's command line: its address on QEMU's user network, and `PVXEN_CMDLINE`.
pub(crate) fn guest_cmdline() -> String {
    let extra = std::env::var("PVXEN_CMDLINE").unwrap_or_default();
    format!("ip={GUEST_IP}/24 gw={GATEWAY} {extra}")
        .trim_end()
        .to_owned()
}

/// What the demo prints once the guest serves; `how` says how port `port` reaches the
/// guest's port 80.
pub(crate) fn banner(port: u16, how: &str, site: &Path, store: &Path) -> String {
    let url = format!("http://localhost:{port}");
    format!(
        "run: serving on {url}/ ({how}); Ctrl-C stops it\n\
         run: try\n\
         \x20 curl {url}/                                    # status (JSON)\n\
         \x20 curl {url}/files/index.html                    # a file of {}\n\
         \x20 curl -X PUT --data-binary 'hello' {url}/kv/greeting   # answered once durable\n\
         \x20 curl {url}/kv/greeting\n\
         \x20 curl {url}/kv/                                 # every key (JSON)\n\
         \x20 curl -X DELETE {url}/kv/greeting\n\
         run: the store is {} (it keeps its keys from run to run)",
        site.display(),
        store.display()
    )
}

/// `cargo xtask run [...]`.
pub fn run(args: &[String]) -> Result<()> {
    let Some(options) = parse_args(args)? else {
        print!("{USAGE}");
        return Ok(());
    };
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    ctrlc::set_handler(move || {
        if !flag.swap(true, Ordering::SeqCst) {
            println!("\nrun: stopping (signal received)...");
        }
    })
    .context("installing the Ctrl-C handler")?;
    match options.on {
        Platform::Hv => crate::hv::run::serve(&options, &stop),
        Platform::Xen => serve(&options, &stop),
    }
}

/// Boots the demo and serves until `stop` is set (or the guest or QEMU ends).
fn serve(options: &Options, stop: &AtomicBool) -> Result<()> {
    println!(
        "run: pvguest's application on stock Xen 4.17 (Linux dom0) inside QEMU; \
         `cargo xtask run --help` for the options"
    );
    check_port(options.port)?;
    let store = drive_path(&options.store)?;
    prepare_store(&options.store)?;
    let site = site_archive(&options.site, false)?;
    let mut archive = site.tar;
    if archive.len() > MAX_ARCHIVE {
        bail!(
            "the archive of {} is {} MiB; at most {} MiB fit (it is kept in dom0's memory)",
            options.site.display(),
            archive.len() >> 20,
            MAX_ARCHIVE >> 20
        );
    }
    archive.resize(archive.len().div_ceil(ARCHIVE_ROUND) * ARCHIVE_ROUND, 0);
    println!(
        "run: the archive disk holds {} files of {} ({} bytes)",
        site.files.len(),
        options.site.display(),
        archive.len()
    );
    let guest = guest_elf()?;
    let image = image::ensure_image()?;
    let forever = Duration::from_secs(10 * 365 * 24 * 3600);
    let timeout = hard_timeout(forever)?;
    let cmdline = guest_cmdline();
    println!("run: guest command line {cmdline:?}");
    let mut devices = qemu_devices(
        format!(
            "user,id=net0,hostfwd=tcp:127.0.0.1:{}-{GUEST_IP}:{GUEST_PORT}",
            options.port
        ),
        &store,
    );
    if let Some(gdb) = &options.gdb {
        devices.extend(crate::gdb::qemu_args(gdb));
        for line in crate::gdb::xen_instructions(&guest, gdb) {
            println!("{line}");
        }
    }
    let how = format!(
        "QEMU forwards 127.0.0.1:{} to the guest's port {GUEST_PORT}",
        options.port
    );
    let banner = banner(options.port, &how, &options.site, &options.store);
    let limits = Limits {
        timeout,
        guest_limit: timeout,
    };
    let booted = boot_job_with(
        &image,
        &guest,
        &job(archive, &cmdline)?,
        "run",
        limits,
        devices,
        Some(stop),
        |line| {
            println!("{line}");
            if line.starts_with(SERVING_LINE) {
                println!("{banner}");
            }
        },
    )?;
    let t = &booted.transcript;
    match (&booted.end, &t.end) {
        (BootEnd::Stopped, _) => {
            println!(
                "run: stopped; the store {} keeps what was put",
                options.store.display()
            );
            Ok(())
        }
        (_, Some((GuestEnd::Poweroff, _)))
            if !t.guest.iter().any(|l| l.starts_with(SERVING_LINE)) =>
        {
            explain(&booted);
            bail!("the application ended before it served (its lines above say why)")
        }
        (BootEnd::Done, Some((how, _))) => {
            explain(&booted);
            bail!("the guest {}", how.describe())
        }
        (end, _) => {
            explain(&booted);
            bail!("the boot did not finish: {end:?}")
        }
    }
}

/// A failed run's evidence: dom0's step results and the boot's last words.
fn explain(booted: &super::qemu::Booted) {
    for (key, value) in &booted.transcript.results {
        println!("run| dom0 step {key}: {value}");
    }
    explain_failure(booted);
}

/// Kills every process whose command line forwards host port `port` (`hostfwd=tcp:127.0.0.1:
/// <port>-`: a QEMU of `xtask run`); returns how many there were.
fn kill_qemu_forwarding(port: u16) -> usize {
    let needle = format!("hostfwd=tcp:127.0.0.1:{port}-");
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let mut killed = 0;
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        if String::from_utf8_lossy(&cmdline).contains(&needle)
            && nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            )
            .is_ok()
        {
            killed += 1;
        }
    }
    killed
}

/// Runs `curl` with `args`; returns its standard output.
fn curl(args: &[&str]) -> Result<String> {
    let out = Command::new("curl")
        .args(["-sS", "-m", "30"])
        .args(args)
        .output()
        .context("running curl (Debian's `curl` package)")?;
    if !out.status.success() {
        bail!(
            "curl {}: {} {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The host-side check of `cargo xtask run`, as `cargo xtask test` runs it: the command itself
/// (this program, `run --port <free> --store <fresh>`) must print that it serves, answer `curl
/// http://localhost:<port>/` with the status JSON and a put and get through the forwarded
/// port, stop cleanly (exit 0, port closed) on SIGINT, and leave the value in the store image
/// on the host. `HOST run-serves`, `HOST run-stops`, `HOST run-store-on-host`; on hv also
/// `HOST run-keep` ([`crate::hv::xl::run_keep_check`]: `run --keep` outlives the application).
pub fn run_check(tally: &mut Tally) -> Result<()> {
    let hv = run_check_on(tally, Platform::Hv).and(crate::hv::xl::run_keep_check(tally));
    let xen = run_check_on(tally, Platform::Xen);
    hv.and(xen)
}

/// [`run_check`] of `run --on <on>`; its units are prefixed `hv: ` or `stock Xen: `.
/// The lines `run` printed up to its serving line come from the platform asked for: on hv,
/// hv's own `hv: ` lines and none of the stock-Xen path's (`booting Xen`, `dom0 ready`); on
/// Xen, dom0's and no hv lines.
fn platform_lines(on: Platform, lines: &[String]) -> Result<(), String> {
    let hv = lines.iter().any(|l| l.starts_with("hv: starting"));
    let xen = lines
        .iter()
        .find(|l| l.contains("booting Xen") || l.contains("dom0 ready"));
    match (on, hv, xen) {
        (Platform::Hv, true, None) | (Platform::Xen, false, Some(_)) => Ok(()),
        (Platform::Hv, false, _) => Err("no `hv: starting` line before serving".to_owned()),
        (Platform::Hv, true, Some(l)) => Err(format!("a stock-Xen line on hv: {l:?}")),
        (Platform::Xen, true, _) => Err("an `hv: starting` line with --on xen".to_owned()),
        (Platform::Xen, false, None) => {
            Err("no `booting Xen` or `dom0 ready` line before serving".to_owned())
        }
    }
}

fn run_check_on(tally: &mut Tally, on: Platform) -> Result<()> {
    super::packages::ensure_tools(&[("curl", "curl")])?;
    let (flag, who) = match on {
        Platform::Hv => ("hv", "hv"),
        Platform::Xen => ("xen", "stock Xen"),
    };
    let port = TcpListener::bind(("127.0.0.1", 0))?.local_addr()?.port();
    let dir = workspace_root()
        .join("target")
        .join("pvxen")
        .join("run-check");
    std::fs::create_dir_all(&dir)?;
    let store = dir.join("store.img");
    let _ = std::fs::remove_file(&store);
    let value = format!(
        "run-check-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    );
    let exe = std::env::current_exe().context("finding xtask's own executable")?;
    println!(
        "run-check: `cargo xtask run --on {flag} --port {port} --store {}`",
        store.display()
    );
    let mut command = Command::new(exe);
    command
        .args(["run", "--on", flag, "--port", &port.to_string(), "--store"])
        .arg(&store)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    super::qemu::die_with_parent(&mut command);
    let mut child = super::qemu::KillOnDrop(command.spawn().context("starting `xtask run`")?);
    let stdout = child.0.stdout.take().context("no stdout")?;
    let stderr = child.0.stderr.take().context("no stderr")?;
    let (tx, rx) = mpsc::channel::<String>();
    let tx2 = tx.clone();
    let readers = [
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        }),
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx2.send(format!("stderr: {line}"));
            }
        }),
    ];
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(900);
    let mut serving = false;
    while !serving && Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(line) => {
                if line.starts_with("run:") || line.starts_with("xen:") {
                    println!("run-check| {line}");
                }
                serving |= line.starts_with("run: serving on ");
                lines.push(line);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    let url = format!("http://localhost:{port}");
    let serves = if serving {
        (|| -> Result<(), String> {
            platform_lines(on, &lines)?;
            let status = curl(&[&format!("{url}/")]).map_err(|e| format!("{e:#}"))?;
            if !(status.starts_with("{\"uptime_ms\":") && status.contains("\"storage\":")) {
                return Err(format!("GET / answered {status:?}, not the status JSON"));
            }
            let put = curl(&[
                "-X",
                "PUT",
                "--data-binary",
                &value,
                "-w",
                " %{http_code}",
                &format!("{url}/kv/run-check"),
            ])
            .map_err(|e| format!("{e:#}"))?;
            if !put.ends_with(" 200") {
                return Err(format!("PUT /kv/run-check answered {put:?}"));
            }
            let got = curl(&[&format!("{url}/kv/run-check")]).map_err(|e| format!("{e:#}"))?;
            if got != value {
                return Err(format!("GET /kv/run-check gave {got:?}, put {value:?}"));
            }
            Ok(())
        })()
    } else {
        let tail: Vec<&str> = lines
            .iter()
            .rev()
            .take(15)
            .rev()
            .map(String::as_str)
            .collect();
        Err(format!(
            "no `run: serving on` line within 900 s; last lines: {}",
            tail.join(" | ")
        ))
    };
    // SIGINT, as a terminal's Ctrl-C sends it (to xtask only: QEMU has its own group).
    let stops = match i32::try_from(child.0.id()) {
        Ok(pid) => nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGINT,
        )
        .map_err(|e| format!("kill -INT {pid}: {e}")),
        Err(_) => Err("pid out of range".to_owned()),
    }
    .and_then(|()| {
        let until = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = child.0.try_wait() {
                break Ok(status);
            }
            if Instant::now() >= until {
                break Err("still running 60 s after SIGINT".to_owned());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    })
    .and_then(|status| {
        for r in readers {
            let _ = r.join();
        }
        lines.extend(rx.try_iter());
        if !status.success() {
            return Err(format!("exited with {status} after SIGINT"));
        }
        if !lines.iter().any(|l| l.starts_with("run: stopped")) {
            return Err("exited without saying `run: stopped`".to_owned());
        }
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Err(format!(
                "port {port} still accepts connections (QEMU left behind?)"
            ));
        }
        Ok(())
    });
    // A QEMU left behind (by an `xtask run` that had to be killed) must not outlive the check.
    drop(child);
    let leftovers = kill_qemu_forwarding(port);
    let stops = match (stops, leftovers) {
        (Ok(()), 0) => Ok(()),
        (Ok(()), n) => Err(format!(
            "{n} QEMU process(es) forwarding port {port} were left behind"
        )),
        (Err(e), 0) => Err(e),
        (Err(e), n) => Err(format!("{e}; killed {n} QEMU left behind")),
    };
    let on_host = match std::fs::read(&store) {
        Ok(bytes) if bytes.windows(value.len()).any(|w| w == value.as_bytes()) => Ok(()),
        Ok(bytes) => Err(format!(
            "{} ({} bytes) does not hold the value put",
            store.display(),
            bytes.len()
        )),
        Err(e) => Err(format!("reading {}: {e}", store.display())),
    };
    let mut all_ok = true;
    for (name, verdict) in [
        ("run-serves", serves),
        ("run-stops", stops),
        ("run-store-on-host", on_host),
    ] {
        let (ok, line) = match verdict {
            Ok(()) => (true, format!("HOST {name} ok")),
            Err(why) => (false, format!("HOST {name} FAIL {why}")),
        };
        println!("{line}");
        all_ok &= ok;
        tally.record(ok, format!("{who}: {line}"));
    }
    if !all_ok {
        println!("run-check: what `xtask run` printed:");
        for line in &lines {
            println!("run-check|   {line}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_prints_the_lines_of_the_platform_asked_for() {
        let l = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let hv = l(&[
            "run: x",
            "hv: starting (start info at 0x21e0)",
            "run: serving on",
        ]);
        let xen = l(&[
            "xen: booting Xen + dom0 for `run`...",
            "xen: dom0 ready after 8 s",
        ]);
        assert!(platform_lines(Platform::Hv, &hv).is_ok());
        assert!(platform_lines(Platform::Xen, &xen).is_ok());
        assert!(platform_lines(Platform::Hv, &xen).is_err());
        assert!(platform_lines(Platform::Xen, &hv).is_err());
        let both = [hv.clone(), xen.clone()].concat();
        assert!(platform_lines(Platform::Hv, &both).is_err());
        assert!(platform_lines(Platform::Xen, &both).is_err());
    }

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn options_parse_with_defaults_and_clear_errors() {
        let o = parse_args(&args(&["--store", "/tmp/s.img"]))
            .unwrap()
            .unwrap();
        assert_eq!(o.port, DEFAULT_PORT);
        assert!(o.site.ends_with("pvguest/site"));
        assert_eq!(o.store, PathBuf::from("/tmp/s.img"));
        let o = parse_args(&args(&["--port", "9000", "--site", "x", "--store", "y"]))
            .unwrap()
            .unwrap();
        assert_eq!((o.port, o.site, o.store), (9000, "x".into(), "y".into()));
        assert!(parse_args(&args(&["--help"])).unwrap().is_none());
        let o = parse_args(&args(&["--gdb=4000", "--store", "y"]))
            .unwrap()
            .unwrap();
        assert_eq!(o.gdb.map(|g| (g.port, g.wait)), Some((4000, false)));
        for bad in [
            &["--port"][..],
            &["--port", "0"],
            &["--port", "70000"],
            &["--bogus"],
        ] {
            let e = format!("{:#}", parse_args(&args(bad)).unwrap_err());
            assert!(
                e.contains("--port") || e.contains("unknown argument"),
                "{e}"
            );
        }
    }

    #[test]
    fn the_job_bridges_the_nic_and_gives_the_guest_the_store() {
        let job = job(vec![0; 512], &guest_cmdline()).unwrap();
        let steps = job.steps_text().unwrap();
        for needle in [
            "virtio_blk",
            "virtio_net",
            "brctl addif xenbr0 eth0",
            "create guest.cfg",
        ] {
            assert!(steps.contains(needle), "{needle} missing from {steps}");
        }
        assert!(steps.trim_end().ends_with("wait-end"));
        assert!(job.config.contains("target=/dev/vda"));
        assert!(job.config.contains("access=ro, target=/tmp/xvda.img"));
        assert!(job.config.contains("bridge=xenbr0"));
        assert!(job.config.contains("ip=10.0.2.15/24 gw=10.0.2.2"));
    }

    #[test]
    fn a_taken_port_is_refused_by_name() {
        let held = TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let port = held.local_addr().unwrap().port();
        let e = format!("{:#}", check_port(port).unwrap_err());
        assert!(
            e.contains(&format!("port {port}")) && e.contains("--port"),
            "{e}"
        );
        drop(held);
        check_port(port).unwrap();
    }

    #[test]
    fn the_store_is_created_once_and_kept() {
        let dir = std::env::temp_dir().join(format!("pvxen-store-test-{}", std::process::id()));
        let path = dir.join("sub").join("store.img");
        prepare_store(&path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), STORE_BYTES);
        std::fs::write(&path, b"kept").unwrap();
        prepare_store(&path).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"kept");
        assert!(drive_path(Path::new("/tmp/a,b.img")).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
