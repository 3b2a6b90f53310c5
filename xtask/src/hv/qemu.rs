//! Booting `hv` with a guest under QEMU (TCG) with a hard timeout, reading its serial port.
//!
//! QEMU's command line is the one DESIGN and the issue give: `-accel tcg -cpu max -smp 1
//! -m <MiB> -no-reboot -display none -serial stdio -device isa-debug-exit`, `hv` as the
//! `-kernel` (started by QEMU's PVH loader) and its one PVH module as `-initrd`: either a
//! guest ELF, with `"<hv options> -- <guest command line>"` as `-append`, or an archive of
//! domain configs and kernels ([`xlcfg::archive`]), with only hv's options as `-append` (the
//! command lines are in the configs). hv tells the two apart by the archive's magic.
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::serial::{Line, QemuEnd, Transcript};
use crate::gdb::Gdb;
use crate::xen::qemu::{Spawned, spawn, spawn_with_input};

/// QEMU's memory in MiB for hv-test's boots and for one domain (`-m 512`).
pub const DEFAULT_MEMORY_MIB: u64 = 512;

/// hv's own share of QEMU's memory beside its domains', in MiB (its heap, nested tables, the
/// module), for `hv-run --config`: [`super::config::qemu_memory_mib`].
pub const HV_MEMORY_MIB: u64 = 256;

/// One of hv's disks: a raw image QEMU gives hv as a virtio-blk PCI device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drive {
    /// The image file (absolute).
    pub file: PathBuf,
    /// Whether the config says `ro` (the device is then read-only too).
    pub read_only: bool,
}

/// QEMU's arguments for `drives`, in their order (hv pairs its virtio-blk devices, in PCI
/// slot order, with the configs' disks in the same order): `-drive
/// file=<f>,format=raw,if=none,id=d<n>,cache=writeback[,readonly=on] -device
/// virtio-blk-pci,drive=d<n>`.
pub fn drive_args(drives: &[Drive]) -> Result<Vec<String>> {
    let mut args = Vec::new();
    for (n, d) in drives.iter().enumerate() {
        let file = match d.file.to_str() {
            // QEMU splits -drive at commas.
            Some(f) if !f.contains(',') => f,
            _ => bail!("{} contains a comma or non-UTF-8", d.file.display()),
        };
        let ro = if d.read_only { ",readonly=on" } else { "" };
        args.push("-drive".to_owned());
        // cache=writeback (QEMU's default, said here): the device offers VIRTIO_BLK_F_FLUSH
        // and a flush reaches the image file with fdatasync.
        args.push(format!(
            "file={file},format=raw,if=none,id=d{n},cache=writeback{ro}"
        ));
        args.push("-device".to_owned());
        args.push(format!("virtio-blk-pci,drive=d{n}"));
    }
    Ok(args)
}

/// One `hostfwd` of QEMU's user network: `tcp:127.0.0.1:<host_port>-<guest_ip>:<guest_port>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFwd {
    /// The port on the host's loopback.
    pub host_port: u16,
    /// The guest's address on QEMU's user network (10.0.2.0/24).
    pub guest_ip: std::net::Ipv4Addr,
    /// The guest's port.
    pub guest_port: u16,
}

/// QEMU's arguments for hv's NIC: `-netdev user,id=n0[,hostfwd=...]... -device
/// virtio-net-pci,netdev=n0` (one NIC, the uplink of hv's switch, whatever the number of
/// vifs).
pub fn net_args(hostfwds: &[HostFwd]) -> Vec<String> {
    let mut netdev = "user,id=n0".to_owned();
    for f in hostfwds {
        netdev.push_str(&format!(
            ",hostfwd=tcp:127.0.0.1:{}-{}:{}",
            f.host_port, f.guest_ip, f.guest_port
        ));
    }
    let mut args = vec![
        "-netdev".to_owned(),
        netdev,
        "-device".to_owned(),
        "virtio-net-pci,netdev=n0".to_owned(),
    ];
    // A debugging aid: every frame between QEMU's user network and hv's NIC, in a pcap file
    // (QEMU's filter-dump), for Wireshark or tcpdump -r.
    if let Some(file) = std::env::var_os("PVXEN_PCAP") {
        args.push("-object".to_owned());
        args.push(format!(
            "filter-dump,id=pcap0,netdev=n0,file={}",
            file.to_string_lossy()
        ));
    }
    args
}

/// What to boot.
pub struct Boot<'a> {
    /// The `hv` ELF.
    pub hv: &'a Path,
    /// The PVH module: a guest ELF, or a domain archive.
    pub guest: &'a Path,
    /// `hv`'s own options (before `--`).
    pub hv_options: &'a str,
    /// The guest's command line (after `--`) when `guest` is an ELF; `None` when it is a
    /// domain archive.
    pub guest_cmdline: Option<&'a str>,
    /// QEMU's memory (`-m`), in MiB.
    pub memory_mib: u64,
    /// The disks, in the configs' order.
    pub drives: &'a [Drive],
    /// hv's NIC and its host forwards, when any config has a vif ([`net_args`]); `None`: no
    /// NIC.
    pub net: Option<&'a [HostFwd]>,
    /// Directory for this boot's serial log; created if missing.
    pub run_dir: PathBuf,
    /// Hard timeout.
    pub timeout: Duration,
    /// `--gdb`: QEMU's gdbstub ([`crate::gdb`]).
    pub gdb: Option<Gdb>,
    /// The control channel's Unix socket ([`control_args`]), if hv gets one.
    pub control_socket: Option<PathBuf>,
    /// QEMU's QMP socket ([`super::resize::qmp_args`]), for a boot that resizes a drive.
    pub qmp_socket: Option<PathBuf>,
}

/// What a boot produced.
pub struct Booted {
    /// The serial lines, sorted.
    pub transcript: Transcript,
    /// How QEMU ended.
    pub end: QemuEnd,
    /// The serial log (timestamped).
    pub serial_log: PathBuf,
    /// Wall time from QEMU's start to its end.
    pub wall: Duration,
    /// QEMU's stderr, if it said anything.
    pub stderr: String,
}

/// The `-append` string: `<hv options> -- <guest command line>`, or only `<hv options>`
/// when the module is a domain archive (no guest command line).
pub fn append_line(hv_options: &str, guest_cmdline: Option<&str>) -> Result<String> {
    if guest_cmdline.is_some_and(|c| c.contains('"')) || hv_options.contains('"') {
        bail!("a double quote cannot travel in QEMU's -append");
    }
    if hv_options.split_whitespace().any(|w| w == "--") {
        bail!("hv options {hv_options:?} contain the separator --");
    }
    let hv = hv_options.trim();
    Ok(match guest_cmdline {
        None => hv.to_owned(),
        Some(guest) if hv.is_empty() => format!("-- {guest}"),
        Some(guest) => format!("{hv} -- {guest}"),
    })
}

/// The QEMU arguments for `boot`.
pub fn qemu_args(boot: &Boot<'_>) -> Result<Vec<String>> {
    let path = |p: &Path| -> Result<String> {
        match p.to_str() {
            // QEMU splits -initrd at commas.
            Some(s) if !s.contains(',') => Ok(s.to_owned()),
            _ => bail!("{} contains a comma or non-UTF-8", p.display()),
        }
    };
    let memory = boot.memory_mib.to_string();
    let mut args: Vec<String> = [
        "-accel",
        "tcg",
        "-cpu",
        "max",
        "-smp",
        "1",
        "-m",
        memory.as_str(),
        "-no-reboot",
        "-display",
        "none",
        "-serial",
        "stdio",
        "-device",
        "isa-debug-exit,iobase=0xf4,iosize=0x04",
    ]
    .map(String::from)
    .to_vec();
    args.extend(["-kernel".into(), path(boot.hv)?]);
    args.extend(["-initrd".into(), path(boot.guest)?]);
    args.extend([
        "-append".into(),
        append_line(boot.hv_options, boot.guest_cmdline)?,
    ]);
    args.extend(drive_args(boot.drives)?);
    if let Some(fwds) = boot.net {
        args.extend(net_args(fwds));
    }
    if let Some(gdb) = &boot.gdb {
        args.extend(crate::gdb::qemu_args(gdb));
    }
    if let Some(socket) = &boot.control_socket {
        args.extend(control_args(socket)?);
    }
    if let Some(socket) = &boot.qmp_socket {
        args.extend(super::resize::qmp_args(socket)?);
    }
    Ok(args)
}

/// QEMU's arguments for hv's control channel (`cargo xtask xl`): a Unix socket QEMU listens
/// on, without waiting for a client, as the second serial port (COM2, after `-serial
/// stdio`'s COM1): `-chardev socket,id=ctl,path=<socket>,server=on,wait=off -serial
/// chardev:ctl`. The socket's directory must be the user's alone (mode 0700): QEMU makes the
/// socket with the process umask.
pub fn control_args(socket: &Path) -> Result<Vec<String>> {
    match socket.to_str() {
        Some(s) if !s.contains(',') => Ok(vec![
            "-chardev".to_owned(),
            format!("socket,id=ctl,path={s},server=on,wait=off"),
            "-serial".to_owned(),
            "chardev:ctl".to_owned(),
        ]),
        _ => bail!("{} contains a comma or non-UTF-8", socket.display()),
    }
}

/// Boots, calling `on_line` for each serial line as it arrives, and returns when QEMU has
/// exited or was killed at the hard timeout.
pub fn boot(boot: &Boot<'_>, mut on_line: impl FnMut(&Line)) -> Result<Booted> {
    boot_killable(boot, |line| {
        on_line(line);
        None
    })
}

/// [`boot`], where `on_line` may also ask for QEMU to be killed with SIGKILL at a moment
/// (the latest one it returned counts; a moment already past kills at once, before the next
/// line is read). A kill ends the boot as [`QemuEnd::Exited`]`(None)`; the transcript has
/// every line QEMU wrote before it died (the last one perhaps cut short).
pub fn boot_killable(
    boot: &Boot<'_>,
    on_line: impl FnMut(&Line) -> Option<Instant>,
) -> Result<Booted> {
    boot_inner(boot, None, on_line)
}

/// What a controlled boot's owner may send it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// A control line for hv, written to QEMU's standard input (hv reads it on COM1:
    /// `hv/src/dom0/control.rs`: `shutdown <domid> <reason>`, `xs-write <domid>
    /// data/<path> <value>`).
    Line(String),
    /// Ask QEMU to quit (SIGTERM, SIGKILL after [`crate::xen::qemu::STOP_GRACE`]).
    Quit,
}

/// [`boot`], taking [`Control`]s as they come. QEMU runs in its own process group, so that a
/// terminal's Ctrl-C reaches only xtask, which decides what to send.
pub fn boot_controlled(
    boot: &Boot<'_>,
    control: mpsc::Receiver<Control>,
    mut on_line: impl FnMut(&Line),
) -> Result<Booted> {
    boot_inner(boot, Some(control), |line| {
        on_line(line);
        None
    })
}

/// How often a boot with control lines looks for one to send.
const CONTROL_POLL: Duration = Duration::from_millis(50);

fn boot_inner(
    boot: &Boot<'_>,
    control: Option<mpsc::Receiver<Control>>,
    mut on_line: impl FnMut(&Line) -> Option<Instant>,
) -> Result<Booted> {
    fs::create_dir_all(&boot.run_dir)
        .with_context(|| format!("creating {}", boot.run_dir.display()))?;
    let serial_log = boot.run_dir.join("serial.log");
    let mut log = std::io::BufWriter::new(
        fs::File::create(&serial_log)
            .with_context(|| format!("creating {}", serial_log.display()))?,
    );
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args(qemu_args(boot)?);
    if control.is_some() {
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    }
    let (
        Spawned {
            mut qemu,
            lines: rx,
            reader,
            errors,
            started,
        },
        mut input,
    ) = if control.is_some() {
        let (spawned, input) = spawn_with_input(&mut cmd)?;
        (spawned, Some(input))
    } else {
        (spawn(&mut cmd)?, None)
    };
    let deadline = started + boot.timeout;
    let mut transcript = Transcript::default();
    let mut end = None;
    let mut kill_at: Option<Instant> = None;
    loop {
        let now = Instant::now();
        if let Some(at) = kill_at.filter(|at| now >= *at) {
            // SIGKILL: QEMU gets no chance to flush or close anything.
            qemu.0.kill().context("killing QEMU")?;
            let status = qemu.0.wait().context("waiting for QEMU")?;
            writeln!(
                log,
                "[{:7.2}] [harness] QEMU killed ({:.0} ms after the moment asked for)",
                started.elapsed().as_secs_f64(),
                now.duration_since(at).as_secs_f64() * 1000.0
            )?;
            // What QEMU wrote before it died is still in the pipe: every line of it is
            // something the machine said (the last one may be cut short).
            while let Ok(line) = rx.recv_timeout(Duration::from_secs(2)) {
                writeln!(log, "[{:7.2}] {line}", started.elapsed().as_secs_f64())?;
                let _ = on_line(&transcript.push(&line));
            }
            end = Some(QemuEnd::Exited(status.code()));
            break;
        }
        if now >= deadline {
            break;
        }
        if let (Some(c), Some(pipe)) = (control.as_ref(), input.as_mut()) {
            while let Ok(c) = c.try_recv() {
                writeln!(
                    log,
                    "[{:7.2}] [harness] control: {c:?}",
                    started.elapsed().as_secs_f64()
                )?;
                match c {
                    // QEMU gone: its end shows on the output side.
                    Control::Line(line) => {
                        let _ = pipe
                            .write_all(format!("{line}\n").as_bytes())
                            .and_then(|()| pipe.flush());
                    }
                    Control::Quit => crate::xen::qemu::terminate(&mut qemu.0),
                }
            }
        }
        let mut until = kill_at.map_or(deadline, |at| at.min(deadline));
        if control.is_some() {
            until = until.min(now + CONTROL_POLL);
        }
        match rx.recv_timeout(until.saturating_duration_since(now)) {
            Ok(line) => {
                writeln!(log, "[{:7.2}] {line}", started.elapsed().as_secs_f64())?;
                if let Some(at) = on_line(&transcript.push(&line)) {
                    kill_at = Some(at);
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = qemu.0.wait().context("waiting for QEMU")?;
                end = Some(QemuEnd::Exited(status.code()));
                break;
            }
        }
    }
    let wall = started.elapsed();
    let end = end.unwrap_or(QemuEnd::Timeout {
        secs: boot.timeout.as_secs(),
    });
    drop(qemu);
    let _ = reader.join();
    let stderr = errors.join().unwrap_or_default();
    for line in stderr.lines() {
        writeln!(log, "[qemu stderr] {line}")?;
    }
    log.flush()?;
    Ok(Booted {
        transcript,
        end,
        serial_log,
        wall,
        stderr,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_the_agreed_one() {
        let b = Boot {
            hv: Path::new("/t/hv"),
            guest: Path::new("/t/pvguest"),
            hv_options: "",
            guest_cmdline: Some("selftest=boot selftest-inject-fail=xen-version"),
            memory_mib: 512,
            drives: &[],
            net: None,
            run_dir: PathBuf::from("/t"),
            timeout: Duration::from_secs(1),
            gdb: None,
            control_socket: None,
            qmp_socket: None,
        };
        let args = qemu_args(&b).unwrap().join(" ");
        assert_eq!(
            args,
            "-accel tcg -cpu max -smp 1 -m 512 -no-reboot -display none -serial stdio \
             -device isa-debug-exit,iobase=0xf4,iosize=0x04 -kernel /t/hv -initrd /t/pvguest \
             -append -- selftest=boot selftest-inject-fail=xen-version"
        );
        assert_eq!(
            append_line("log=debug", Some("x")).unwrap(),
            "log=debug -- x"
        );
        assert!(append_line("a -- b", Some("x")).is_err());
        assert!(append_line("", Some("a\"b")).is_err());
        assert_eq!(append_line(" log=debug ", None).unwrap(), "log=debug");
        let archive = Boot {
            guest: Path::new("/t/domains.pvxarc"),
            guest_cmdline: None,
            memory_mib: 768,
            run_dir: PathBuf::from("/t"),
            ..b
        };
        assert_eq!(
            qemu_args(&archive).unwrap().join(" "),
            "-accel tcg -cpu max -smp 1 -m 768 -no-reboot -display none -serial stdio \
             -device isa-debug-exit,iobase=0xf4,iosize=0x04 -kernel /t/hv \
             -initrd /t/domains.pvxarc -append "
        );
        let gdb = Boot {
            gdb: Some(Gdb {
                port: 1234,
                wait: true,
            }),
            guest_cmdline: None,
            ..archive
        };
        assert!(
            qemu_args(&gdb)
                .unwrap()
                .join(" ")
                .ends_with("-append  -gdb tcp:127.0.0.1:1234 -S")
        );
        let bad = Boot {
            guest: Path::new("/t/a,b"),
            ..gdb
        };
        assert!(qemu_args(&bad).is_err());
    }

    #[test]
    fn a_nic_with_its_host_forwards_follows_the_disks() {
        let fwd = |host_port, ip: [u8; 4]| HostFwd {
            host_port,
            guest_ip: ip.into(),
            guest_port: 80,
        };
        assert_eq!(
            net_args(&[]).join(" "),
            "-netdev user,id=n0 -device virtio-net-pci,netdev=n0"
        );
        let fwds = [fwd(8080, [10, 0, 2, 15]), fwd(8081, [10, 0, 2, 16])];
        assert_eq!(
            net_args(&fwds).join(" "),
            "-netdev user,id=n0,hostfwd=tcp:127.0.0.1:8080-10.0.2.15:80,\
             hostfwd=tcp:127.0.0.1:8081-10.0.2.16:80 -device virtio-net-pci,netdev=n0"
        );
        let drives = [Drive {
            file: PathBuf::from("/t/a.img"),
            read_only: false,
        }];
        let b = Boot {
            hv: Path::new("/t/hv"),
            guest: Path::new("/t/a.pvxarc"),
            hv_options: "",
            guest_cmdline: None,
            memory_mib: 512,
            drives: &drives,
            net: Some(&fwds[..1]),
            run_dir: PathBuf::from("/t"),
            timeout: Duration::from_secs(1),
            gdb: None,
            control_socket: None,
            qmp_socket: None,
        };
        assert!(qemu_args(&b).unwrap().join(" ").ends_with(
            "-initrd /t/a.pvxarc -append  \
             -drive file=/t/a.img,format=raw,if=none,id=d0,cache=writeback \
             -device virtio-blk-pci,drive=d0 \
             -netdev user,id=n0,hostfwd=tcp:127.0.0.1:8080-10.0.2.15:80 \
             -device virtio-net-pci,netdev=n0"
        ));
        let none = Boot { net: None, ..b };
        assert!(!qemu_args(&none).unwrap().join(" ").contains("netdev"));
        let managed = Boot {
            control_socket: Some(PathBuf::from("/t/ctl-hv-run/hv.sock")),
            ..none
        };
        assert!(qemu_args(&managed).unwrap().join(" ").ends_with(
            "-chardev socket,id=ctl,path=/t/ctl-hv-run/hv.sock,server=on,wait=off \
             -serial chardev:ctl"
        ));
        assert!(control_args(Path::new("/t/a,b")).is_err());
        let resized = Boot {
            qmp_socket: Some(PathBuf::from("/t/qmp-hv-blk/qmp.sock")),
            ..managed
        };
        assert!(
            qemu_args(&resized).unwrap().join(" ").ends_with(
                "-serial chardev:ctl -qmp unix:/t/qmp-hv-blk/qmp.sock,server=on,wait=off"
            )
        );
    }

    #[test]
    fn each_disk_is_one_virtio_blk_drive_in_order() {
        let drives = [
            Drive {
                file: PathBuf::from("/t/a.img"),
                read_only: false,
            },
            Drive {
                file: PathBuf::from("/t/ro.img"),
                read_only: true,
            },
        ];
        assert_eq!(
            drive_args(&drives).unwrap().join(" "),
            "-drive file=/t/a.img,format=raw,if=none,id=d0,cache=writeback \
             -device virtio-blk-pci,drive=d0 \
             -drive file=/t/ro.img,format=raw,if=none,id=d1,cache=writeback,readonly=on \
             -device virtio-blk-pci,drive=d1"
        );
        let comma = [Drive {
            file: PathBuf::from("/t/a,b.img"),
            read_only: false,
        }];
        assert!(drive_args(&comma).is_err());
        assert!(drive_args(&[]).unwrap().is_empty());
    }
}
