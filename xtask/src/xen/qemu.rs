//! Booting Xen and dom0 under QEMU (TCG), capturing the serial port, and the hard timeout.
//!
//! QEMU's serial port is its stdout, read line by line on a thread; every line goes to the
//! serial log with a timestamp and through [`Transcript::push`]. The boot ends when dom0 says
//! `done` (QEMU is then killed: Xen would only halt), when Xen or dom0 report a fatal error,
//! when QEMU exits, or at the hard timeout. QEMU never outlives [`boot`]: a guard kills it, and
//! its parent-death signal kills it should xtask itself be killed.
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::console::{BootEnd, Event, Transcript};
use super::image::Image;

/// Xen's command line. `smap=0`: QEMU 7.2's TCG does IRET's stack pops as supervisor accesses,
/// which breaks a PV dom0 under SMAP (xenlab/REPORT.md, Q1). Xen's log levels stay at their
/// defaults: with `guest_loglvl=all` Xen would echo the guest's port-0xE9 output on the serial
/// port, and those lines would interleave mid-line with the console lines dom0 forwards.
const XEN_CMDLINE: &str =
    "console=com1 com1=115200,8n1 dom0_mem=512M,max:512M dom0_max_vcpus=1 smap=0";
/// dom0's command line (QEMU splits `-initrd` at commas: none allowed).
/// `xen_blkback.max_queues=2` and `xen_netback.max_queues=2`: dom0 has one vCPU, so Linux's
/// blkback and netback would offer one queue each (`multi-queue-max-queues` defaults to the
/// online CPUs); with them both offer two, as hv's back ends do. Both are modules that dom0's
/// init loads with busybox's `modprobe`, which takes `<module>.<param>=` from `/proc/cmdline`
/// (the device boot's `backend` step checks blkback took it; its net step prints what
/// netback got).
const DOM0_CMDLINE: &str = "console=hvc0 earlyprintk=xen rdinit=/init loglevel=3 \
     xen_blkback.max_queues=2 xen_netback.max_queues=2";

/// What to boot.
pub struct Boot<'a> {
    /// Xen, dom0's kernel and dom0's initramfs.
    pub image: &'a Image,
    /// A `newc` archive laid over dom0's root for this boot (the job).
    pub overlay: Vec<u8>,
    /// Directory for this boot's files (initramfs, serial log); created if missing.
    pub run_dir: PathBuf,
    /// Hard timeout for the whole boot.
    pub timeout: Duration,
    /// More QEMU arguments: devices such as a NIC or a disk.
    pub devices: Vec<String>,
    /// When given, the boot also ends once this is set (`cargo xtask run`'s Ctrl-C): QEMU is
    /// asked to quit (SIGTERM, which closes its disk images cleanly) and killed only if it has
    /// not within [`STOP_GRACE`]. QEMU then runs in its own process group, so that a terminal's
    /// Ctrl-C reaches only xtask, which stops it in that order.
    pub stop: Option<&'a AtomicBool>,
}

/// How long a stopped QEMU gets to quit after SIGTERM before it is killed.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

/// What a boot produced.
pub struct Booted {
    /// Everything the serial lines said.
    pub transcript: Transcript,
    /// How the boot ended.
    pub end: BootEnd,
    /// The serial log (timestamped, every line).
    pub serial_log: PathBuf,
    /// The last serial lines that are not `FLOOD` lines, for failure reports.
    pub tail: Vec<String>,
}

/// Kills and reaps QEMU when dropped, whatever path the caller leaves by.
pub(crate) struct KillOnDrop(pub(crate) Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A started QEMU: the process (killed when dropped), its serial lines as they arrive, and
/// the threads reading its output.
pub(crate) struct Spawned {
    /// The process.
    pub(crate) qemu: KillOnDrop,
    /// Serial (stdout) lines, without their line ends.
    pub(crate) lines: mpsc::Receiver<String>,
    /// The thread reading stdout (ends at QEMU's exit).
    pub(crate) reader: std::thread::JoinHandle<()>,
    /// The thread collecting stderr, for the error message of a failed start.
    pub(crate) errors: std::thread::JoinHandle<String>,
    /// When QEMU started.
    pub(crate) started: Instant,
}

/// Makes the process `cmd` starts get SIGKILL when the thread that started it (and so xtask)
/// dies, however it dies (PR_SET_PDEATHSIG).
pub(crate) fn die_with_parent(cmd: &mut Command) {
    // SAFETY: the closure runs in the child between fork and exec; it only makes the prctl
    // system call (async-signal-safe), allocates nothing and touches no lock or memory shared
    // with the parent's other threads.
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                .map_err(std::io::Error::from)
        });
    }
}

/// Starts `cmd` (a QEMU command line) with stdin closed and its output read by two threads.
/// QEMU is killed by the kernel if xtask dies first, even by SIGKILL (its parent-death signal):
/// nothing else would stop a QEMU that `cargo xtask run` started in its own process group.
/// Call it from a thread that lives as long as QEMU should (the parent-death signal follows
/// the thread that forked).
pub(crate) fn spawn(cmd: &mut Command) -> Result<Spawned> {
    cmd.stdin(Stdio::null());
    spawn_io(cmd)
}

/// [`spawn`] with QEMU's standard input a pipe, returned (hv reads it on COM1 as control
/// lines: `-serial stdio`).
pub(crate) fn spawn_with_input(cmd: &mut Command) -> Result<(Spawned, std::process::ChildStdin)> {
    cmd.stdin(Stdio::piped());
    let mut spawned = spawn_io(cmd)?;
    let input = spawned.qemu.0.stdin.take().context("no QEMU stdin")?;
    Ok((spawned, input))
}

/// Starts `cmd` with its output read by two threads (standard input as the caller set it).
fn spawn_io(cmd: &mut Command) -> Result<Spawned> {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    die_with_parent(cmd);
    let started = Instant::now();
    let mut qemu = KillOnDrop(cmd.spawn().context("starting qemu-system-x86_64")?);
    let stdout = qemu.0.stdout.take().context("no QEMU stdout")?;
    let mut stderr = qemu.0.stderr.take().context("no QEMU stderr")?;
    let (tx, lines) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut buf = Vec::new();
        while matches!(reader.read_until(b'\n', &mut buf), Ok(n) if n > 0) {
            let line = String::from_utf8_lossy(&buf);
            let line = line.trim_end_matches(['\n', '\r']).to_owned();
            buf.clear();
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    Ok(Spawned {
        qemu,
        lines,
        reader,
        errors,
        started,
    })
}

/// Asks `child` to quit (SIGTERM) and waits at most [`STOP_GRACE`] for it.
pub(crate) fn terminate(child: &mut Child) {
    let Ok(pid) = i32::try_from(child.id()) else {
        return;
    };
    if nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGTERM,
    )
    .is_err()
    {
        return;
    }
    let until = Instant::now() + STOP_GRACE;
    while Instant::now() < until {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Checks that QEMU can take `path` inside `-initrd` (which splits at commas and spaces).
fn plain_path(path: &Path) -> Result<&str> {
    match path.to_str() {
        Some(s) if !s.contains([',', ' ']) => Ok(s),
        _ => bail!(
            "{} contains a comma, a space or non-UTF-8, which QEMU's -initrd cannot take \
             (the image is in PVXEN_CACHE, the per-boot initramfs in the workspace's target/)",
            path.display()
        ),
    }
}

/// Boots, calling `on_event` for each event as it arrives (guest lines included), and
/// returns when the boot has ended and QEMU is gone.
pub fn boot(boot: &Boot<'_>, mut on_event: impl FnMut(&Event, Duration)) -> Result<Booted> {
    fs::create_dir_all(&boot.run_dir)
        .with_context(|| format!("creating {}", boot.run_dir.display()))?;
    let initrd = boot.run_dir.join("initrd.cpio");
    let mut initramfs = fs::read(&boot.image.dom0_cpio)
        .with_context(|| format!("reading {}", boot.image.dom0_cpio.display()))?;
    initramfs.extend_from_slice(&boot.overlay);
    fs::write(&initrd, initramfs).with_context(|| format!("writing {}", initrd.display()))?;
    let modules = format!(
        "{} {DOM0_CMDLINE},{}",
        plain_path(&boot.image.vmlinux)?,
        plain_path(&initrd)?
    );
    let serial_log = boot.run_dir.join("serial.log");
    let mut log = std::io::BufWriter::new(
        fs::File::create(&serial_log)
            .with_context(|| format!("creating {}", serial_log.display()))?,
    );

    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args([
        "-machine", "pc", "-accel", "tcg", "-cpu", "max", "-m", "1024", "-smp", "2",
    ])
    .args([
        "-display",
        "none",
        "-monitor",
        "none",
        "-no-reboot",
        "-serial",
        "stdio",
    ])
    // dom0's init writes port 0xf4 when it is done, so QEMU ends even without us.
    .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"])
    .arg("-kernel")
    .arg(&boot.image.xen)
    .args(["-append", XEN_CMDLINE, "-initrd", &modules])
    .args(&boot.devices);
    if boot.stop.is_some() {
        cmd.process_group(0);
    }
    let Spawned {
        mut qemu,
        lines: rx,
        reader,
        errors,
        started,
    } = spawn(&mut cmd)?;

    let mut transcript = Transcript::default();
    let mut tail: Vec<String> = Vec::new();
    let mut deadline = started + boot.timeout;
    let mut end = None;
    let mut fatal: Option<String> = None;
    let stopping = || boot.stop.is_some_and(|s| s.load(Ordering::SeqCst));
    loop {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        if stopping() {
            end = Some(BootEnd::Stopped);
            break;
        }
        let wait = if boot.stop.is_some() {
            (deadline - now).min(Duration::from_millis(200))
        } else {
            deadline - now
        };
        match rx.recv_timeout(wait) {
            Ok(line) => {
                let at = started.elapsed();
                writeln!(log, "[{:7.2}] {line}", at.as_secs_f64())?;
                if !line.starts_with("G|FLOOD ") {
                    if tail.len() == 40 {
                        tail.remove(0);
                    }
                    tail.push(line.clone());
                }
                if let Some(event) = transcript.push(&line) {
                    on_event(&event, at);
                    match event {
                        Event::Done => {
                            end = Some(BootEnd::Done);
                            break;
                        }
                        // Let the last words arrive (a panic's backtrace), then stop.
                        Event::Fatal(why) if fatal.is_none() => {
                            fatal = Some(why);
                            deadline = deadline.min(Instant::now() + Duration::from_secs(3));
                        }
                        _ => {}
                    }
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() >= deadline => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = qemu.0.wait().context("waiting for QEMU")?;
                end = Some(match &fatal {
                    Some(why) => BootEnd::Fatal(why.clone()),
                    None => BootEnd::QemuExited(status.to_string()),
                });
                break;
            }
        }
    }
    let end = match (end, fatal) {
        (Some(end), _) => end,
        (None, Some(why)) => BootEnd::Fatal(why),
        (None, None) => BootEnd::Timeout {
            secs: boot.timeout.as_secs(),
        },
    };
    if matches!(end, BootEnd::Stopped) {
        terminate(&mut qemu.0);
    }
    drop(qemu); // kills QEMU if it still runs, which closes its pipes
    let _ = reader.join();
    let stderr_text = errors.join().unwrap_or_default();
    for line in stderr_text.lines() {
        writeln!(log, "[qemu stderr] {line}")?;
    }
    log.flush()?;
    let end = match end {
        BootEnd::QemuExited(status) if !stderr_text.trim().is_empty() => {
            BootEnd::QemuExited(format!("{status}: {}", stderr_text.trim()))
        }
        other => other,
    };
    Ok(Booted {
        transcript,
        end,
        serial_log,
        tail,
    })
}
