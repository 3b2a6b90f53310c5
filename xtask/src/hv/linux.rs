//! Issue 33's checks: Debian's own kernel (the stock-Xen image's) with the shared initramfs
//! ([`crate::linux_domu`]) as a PVH domU on hv, beside pvguest's application, in one boot:
//!
//! - `HOST hv-linux-boot`: Linux reaches its init and a shell on its console runs a command
//!   (`LINUX shell <release> 42`), having taken the per-vCPU upcall path as on stock Xen
//!   4.17 (hv's line `d1: vcpu0 upcall vector 0x.. (HVMOP_set_evtchn_upcall_vector)`: Linux
//!   falls back to the domain's callback vector when the call fails).
//! - `HOST hv-linux-blk`: xen-blkfront attaches to hv's blkback; the init makes an ext2
//!   filesystem on the disk, mounts it, writes a file, mounts it again read-only and reads the
//!   file back (`LINUX disk xvda <text>`); the host then finds ext2's magic in the image.
//! - `HOST hv-linux-net`: xen-netfront attaches to hv's netback: nginx in the domU answers the
//!   host through QEMU's forward (`GET /` is `linux`), and the domU fetches a file from
//!   pvguest's application beside it through hv's switch (`LINUX fetched <path> <sha256>`,
//!   compared with the site's digest).
//!
//! Once the host's `GET /` passed, the host also times a [`BULK_BYTES`] download
//! (`GET /blob/<n>`) and upload (`POST /sink`) of the domU's nginx with `cargo xtask bench`'s
//! client ([`crate::bench::net`]), the figures `bench`'s "Linux on Xen" column gives for stock
//! Xen, and prints them on one `hv-linux: Linux on hv, ...` line (measured, not judged), as
//! it prints Linux's boot times on hv ([`boot_times`]) beside QEMU's end.
//!
//! hv passes no console input to a domain, so the shell reads its command from a pipe; the
//! run ends with QEMU stopped once every line is in (Linux's orderly power-off needs an init
//! that handles it, which the shared initramfs has not).
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::config;
use super::qemu::{Control, HostFwd};
use super::serial::Line;
use crate::bench::net::Server;
use crate::linux_domu;
use crate::tally::Tally;

/// The Linux domU's domain id on hv (its config comes first).
const LINUX_DOMID: u16 = 1;
/// The Linux domU's address (QEMU's DHCP range is not used: both domains are static).
const LINUX_IP: &str = "10.0.2.16";
/// pvguest's application's address.
const APP_IP: &str = "10.0.2.15";
/// The Linux domU's memory in MiB (its 4 MiB initramfs unpacked, nginx, the page cache).
pub const LINUX_MEMORY_MIB: u64 = 256;
/// QEMU's memory for this boot: hv's own beside Linux's and the application's 128 MiB.
pub const QEMU_MEMORY_MIB: u64 = 768;
/// The whole boot's hard timeout (Linux boots in about 40 s under TCG on hv).
const TIMEOUT: Duration = Duration::from_secs(170);
/// The disk Linux formats (raw, MiB).
const DISK_MIB: u64 = 8;
/// Bytes of the timed download and upload (`cargo xtask bench`'s full size).
pub const BULK_BYTES: usize = 16 << 20;

/// The download and upload rates in MB/s, or why they could not be measured.
type Rates = Result<(f64, f64), String>;

/// The lines the checks look for, from the Linux domain.
#[derive(Default, Debug)]
struct Seen {
    shell: Option<String>,
    disk: Option<String>,
    fetched: Option<String>,
    serving: bool,
    /// When the host's first `GET /` was answered, or why it never was.
    host_get: Option<Result<Instant, String>>,
    rates: Option<Rates>,
    /// hv's line for the Linux domain's `HVMOP_set_evtchn_upcall_vector`.
    upcall_vector: Option<String>,
    /// When the Linux domain's first console line came.
    first_console: Option<Instant>,
    /// When its init's `LINUX shell` line came.
    shell_at: Option<Instant>,
}

/// What hv logs when the Linux domain (d1) sets vCPU 0's own upcall vector.
const UPCALL_VECTOR_LINE: &str = "hv: d1: vcpu0 upcall vector ";

/// The Linux domain's words after the init's option `pvxen.<name>=`.
fn linux_cmdline(fetch: &str) -> String {
    let base = linux_domu::cmdline(&linux_domu::Config {
        ip: format!("{LINUX_IP}/24"),
        gateway: "10.0.2.2".into(),
        port: 80,
        blobs: vec![BULK_BYTES],
        blk_bench: None,
    });
    // Diagnosis only (the init's `pvxen.diag` and `pvxen.sysctl`): counters on the console,
    // kernel settings.
    let diag = std::env::var("PVXEN_LINUX_DIAG")
        .map(|s| format!(" pvxen.diag={s}"))
        .unwrap_or_default();
    let sysctl = std::env::var("PVXEN_LINUX_SYSCTL")
        .map(|s| format!(" pvxen.sysctl={s}"))
        .unwrap_or_default();
    let diag = format!("{diag}{sysctl}");
    format!("{base} pvxen.shell=1 pvxen.disk=xvda pvxen.fetch=http://{APP_IP}/files/{fetch}{diag}")
}

/// The verdict of the boot check from the shell's line and hv's line for the per-vCPU
/// upcall vector (Linux 6.1 uses it when Xen offers it in CPUID, as stock Xen 4.17 does).
fn boot_verdict(shell: Option<&str>, upcall_vector: Option<&str>) -> Result<(), String> {
    match shell {
        Some(l) if l.ends_with(" 42") => {}
        Some(l) => return Err(format!("the shell answered {l:?}")),
        None => {
            return Err("no `LINUX shell` line: Linux did not reach its shell (serial log)".into());
        }
    }
    match upcall_vector {
        Some(l) if l.ends_with("(HVMOP_set_evtchn_upcall_vector)") => Ok(()),
        Some(l) => Err(format!("hv's upcall vector line reads {l:?}")),
        None => Err(format!(
            "Linux did not take the per-vCPU upcall vector (no `{UPCALL_VECTOR_LINE}` line: \
             HVMOP_set_evtchn_upcall_vector refused?)"
        )),
    }
}

/// Linux's boot on hv, measured on the host's clock from QEMU's spawn (hv's own boot and
/// the domain build included): to the Linux domain's first console line, to its init's
/// `LINUX shell` line, and to the host's first answered `GET /` of its nginx (the moment
/// `cargo xtask bench`'s "xl create → answering" ends for Linux on stock Xen).
fn boot_times(started: Instant, seen: &Seen) -> String {
    let at = |t: Option<Instant>| match t {
        Some(t) => format!(
            "{:.1} s",
            t.saturating_duration_since(started).as_secs_f64()
        ),
        None => "never".to_owned(),
    };
    let answered = seen
        .host_get
        .as_ref()
        .and_then(|r| r.as_ref().ok().copied());
    format!(
        "Linux's boot from QEMU's start: first console line {}, init's shell line {}, \
         first 200 of GET / {}",
        at(seen.first_console),
        at(seen.shell_at),
        at(answered)
    )
}

/// The verdict of the disk check: the init's line and ext2's magic in the image.
fn blk_verdict(disk: Option<&str>, image: &[u8]) -> Result<(), String> {
    let line = disk.ok_or("no `LINUX disk` line: blkfront never gave the init its disk")?;
    if !line.starts_with("xvda written by linux") {
        return Err(format!("the init said {line:?}"));
    }
    if image.get(1080..1082) != Some(&[0x53, 0xef]) {
        return Err("the disk image holds no ext2 superblock after the run".into());
    }
    Ok(())
}

/// The verdict of the network check: the host's GET through the forward and the file the
/// domU fetched from the application.
fn net_verdict(seen: &Seen, files: &[(String, String)]) -> Result<(), String> {
    match &seen.host_get {
        Some(Ok(_)) => {}
        Some(Err(e)) => return Err(format!("the host's GET / through the forward: {e}")),
        None => return Err("nginx never served (no `LINUX serving` line)".into()),
    }
    let line = seen
        .fetched
        .as_deref()
        .ok_or("no `LINUX fetched` line: the domU fetched nothing from the application")?;
    let mut w = line.split_whitespace();
    let (path, digest) = (w.next().unwrap_or(""), w.next().unwrap_or(""));
    match files.iter().find(|(p, _)| p == path) {
        Some((_, d)) if d == digest => Ok(()),
        Some(_) => Err(format!("{path}: digest {digest} is not the site's")),
        None => Err(format!("the domU fetched {path:?}, not a site file")),
    }
}

/// The host's `GET /` of the domU's nginx: when it was answered.
fn host_get(addr: &str) -> Result<Instant, String> {
    let mut last = String::new();
    // nginx may print its line a moment before it accepts.
    for _ in 0..20 {
        match crate::http::once(addr, "GET", "/", None) {
            Ok(r) if r.status == 200 && r.text() == "linux\n" => return Ok(Instant::now()),
            Ok(r) => last = format!("status {} body {:?}", r.status, r.text()),
            Err(e) => last = format!("{e:#}"),
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    Err(last)
}

/// The host's `GET /`, then (if it passed) the timed download and upload.
fn host_side(
    addr: &str,
    control: &std::sync::mpsc::Sender<Control>,
) -> (Result<Instant, String>, Option<Rates>) {
    let get = host_get(addr);
    if get.is_err() {
        return (get, None);
    }
    // hv's netback counts around each transfer (`netback-stats` on hv's control lines).
    let stats = |tag: &str| {
        let _ = control.send(Control::Line(format!("netback-stats {LINUX_DOMID} {tag}")));
    };
    stats("before-download");
    let rates = crate::bench::net::download(addr, Server::Linux, BULK_BYTES)
        .and_then(|down| {
            stats("after-download");
            let up = crate::bench::net::upload(addr, Server::Linux, BULK_BYTES)?;
            stats("after-upload");
            Ok((down, up))
        })
        .map_err(|e| format!("{e:#}"));
    (get, Some(rates))
}

/// The measured line of the rates.
fn rates_line(rates: Option<&Rates>) -> String {
    let mib = BULK_BYTES >> 20;
    match rates {
        Some(Ok((down, up))) => format!(
            "hv-linux: Linux on hv, {mib} MiB through QEMU's hostfwd: download {down:.2} MB/s, \
             upload {up:.2} MB/s"
        ),
        Some(Err(e)) => format!("hv-linux: Linux on hv, {mib} MiB: not measured: {e}"),
        None => format!("hv-linux: Linux on hv, {mib} MiB: not measured (GET / failed)"),
    }
}

/// Boots Linux beside pvguest's application on hv and records the three `HOST hv-linux-*`
/// units.
pub fn linux_checks(tally: &mut Tally, hv: &Path, guest: &Path) -> Result<()> {
    let label = "hv-linux";
    let dir = super::run_dir(label);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let domu = linux_domu::build()?;
    let vmlinux = linux_domu::elf_kernel(&domu)?;
    let initrd = dir.join("initramfs.cpio");
    std::fs::write(&initrd, &domu.initramfs)?;
    let disk = dir.join("linux-disk.img");
    std::fs::File::create(&disk)?.set_len(DISK_MIB << 20)?;
    let site =
        crate::xen::blk::site_archive(&crate::build::workspace_root().join("pvguest/site"), false)?;
    let mut xvda = site.tar;
    xvda.resize(xvda.len().div_ceil(1 << 20) * (1 << 20), 0);
    std::fs::write(dir.join("xvda.img"), &xvda)?;
    std::fs::File::create(dir.join("xvdb.img"))?.set_len(16 << 20)?;
    let fetch = site
        .files
        .first()
        .map(|(p, _)| p.clone())
        .context("the site has no file")?;
    let app = std::path::absolute(guest)?;
    let texts = [
        (
            "linux",
            format!(
                "name = \"linux\"\ntype = \"pvh\"\nkernel = \"{}\"\nramdisk = \"{}\"\n\
                 cmdline = \"{}\"\nmemory = {LINUX_MEMORY_MIB}\n\
                 disk = [ 'format=raw, vdev=xvda, access=rw, target={}' ]\n\
                 vif = [ 'mac=00:16:3e:00:00:21' ]\n",
                vmlinux.display(),
                initrd.display(),
                linux_cmdline(&fetch),
                disk.display()
            ),
        ),
        (
            "linux-app",
            format!(
                "name = \"linux-app\"\ntype = \"pvh\"\nkernel = \"{}\"\n\
                 cmdline = \"ip={APP_IP}/24 gw=10.0.2.2\"\nmemory = 128\n\
                 disk = [ 'format=raw, vdev=xvda, access=ro, target=xvda.img',\n\
                 \x20        'format=raw, vdev=xvdb, access=rw, target=xvdb.img' ]\n\
                 vif = [ 'mac=00:16:3e:00:00:22' ]\n",
                app.display()
            ),
        ),
    ];
    let mut files = Vec::new();
    for (name, text) in texts {
        let path = dir.join(format!("{name}.cfg"));
        std::fs::write(&path, &text)?;
        let path = path.display().to_string();
        files.push(config::ConfigFile {
            absolute: path.clone(),
            path,
            text,
        });
    }
    let boots = match config::check(&files, |k| Path::new(k).is_file()).0 {
        Ok(b) => b,
        Err(problems) => anyhow::bail!("{label}: {}", problems.join("; ")),
    };
    let archive = config::archive(&boots, |k| Ok(std::fs::read(k)?))?;
    let archive_path = config::archive_path(&dir);
    std::fs::write(&archive_path, archive)?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let fwds = [HostFwd {
        host_port: port,
        guest_ip: LINUX_IP.parse()?,
        guest_port: 80,
    }];
    let drives = config::drives(&boots);
    let module = super::Module::Archive(&archive_path, QEMU_MEMORY_MIB, &drives, Some(&fwds));
    let (control, lines) = std::sync::mpsc::channel::<Control>();
    let addr = format!("127.0.0.1:{port}");
    let mut seen = Seen::default();
    type HostSide = (Result<Instant, String>, Option<Rates>);
    let mut getter: Option<std::thread::JoinHandle<HostSide>> = None;
    // QEMU quits once the domU's lines are in and the host's side is done, whichever is last:
    // each side sets its flag, then quits if the other's is set (one of them sees both).
    let lines_done = Arc::new(AtomicBool::new(false));
    let host_done = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let booted = super::boot_with_control(
        "hv-test",
        hv,
        module,
        label,
        TIMEOUT,
        (super::HV_OPTIONS, None),
        Some(lines),
        |line| {
            if let Line::Hv(text) = line
                && text.starts_with(UPCALL_VECTOR_LINE)
            {
                seen.upcall_vector = Some(text.clone());
            }
            let Line::Guest(1, text) = line else {
                return;
            };
            seen.first_console.get_or_insert_with(Instant::now);
            // The shell's prompt may precede a line (it shares the console).
            let Some(text) = text.find("LINUX ").and_then(|at| text.get(at..)) else {
                return;
            };
            if let Some(rest) = text.strip_prefix("LINUX shell ") {
                seen.shell = Some(rest.to_owned());
                seen.shell_at.get_or_insert_with(Instant::now);
            } else if let Some(rest) = text.strip_prefix("LINUX disk ") {
                seen.disk = Some(rest.to_owned());
            } else if let Some(rest) = text.strip_prefix("LINUX fetched ") {
                seen.fetched = Some(rest.to_owned());
            } else if text.starts_with("LINUX serving") && !seen.serving {
                seen.serving = true;
                let (addr, control) = (addr.clone(), control.clone());
                let (lines_done, host_done) = (lines_done.clone(), host_done.clone());
                getter = Some(std::thread::spawn(move || {
                    let side = host_side(&addr, &control);
                    host_done.store(true, Ordering::SeqCst);
                    if lines_done.load(Ordering::SeqCst) {
                        let _ = control.send(Control::Quit);
                    }
                    side
                }));
            }
            if seen.fetched.is_some() && seen.disk.is_some() && getter.is_some() {
                lines_done.store(true, Ordering::SeqCst);
                if host_done.load(Ordering::SeqCst) {
                    let _ = control.send(Control::Quit);
                }
            }
        },
    )?;
    if let Some(g) = getter {
        let (get, rates) = g.join().unwrap_or_else(|_| (Err("panicked".into()), None));
        seen.host_get = Some(get);
        seen.rates = rates;
    }
    let image = std::fs::read(&disk).unwrap_or_default();
    println!(
        "hv-linux: QEMU -m {QEMU_MEMORY_MIB}, Linux {LINUX_MEMORY_MIB} MiB; ended {:?} after {:.1} s; {}; serial log {}",
        booted.end,
        booted.wall.as_secs_f64(),
        boot_times(started, &seen),
        booted.serial_log.display()
    );
    if let Some(t) = booted
        .transcript
        .guest
        .iter()
        .find(|l| l.contains("LINUX shell"))
    {
        println!("hv-linux: {t}");
    }
    println!("{}", rates_line(seen.rates.as_ref()));
    for (name, verdict) in [
        (
            "boot",
            boot_verdict(seen.shell.as_deref(), seen.upcall_vector.as_deref()),
        ),
        ("blk", blk_verdict(seen.disk.as_deref(), &image)),
        ("net", net_verdict(&seen, &site.files)),
    ] {
        let line = match &verdict {
            Ok(()) => format!("HOST hv-linux-{name} ok"),
            Err(why) => format!("HOST hv-linux-{name} FAIL {why}"),
        };
        println!("{line}");
        tally.record(verdict.is_ok(), line);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_check_fails_without_its_evidence() {
        let upcall = Some("hv: d1: vcpu0 upcall vector 0xf3 (HVMOP_set_evtchn_upcall_vector)");
        assert!(upcall.is_some_and(|l| l.starts_with(UPCALL_VECTOR_LINE)));
        assert!(boot_verdict(Some("6.1.0-57-amd64 42"), upcall).is_ok());
        assert!(boot_verdict(Some("6.1.0-57-amd64 41"), upcall).is_err());
        assert!(boot_verdict(None, upcall).is_err());
        // Linux fell back to the domain's callback vector: the boot check fails.
        assert!(boot_verdict(Some("6.1.0-57-amd64 42"), None).is_err());
        let mut image = vec![0u8; 4096];
        assert!(blk_verdict(Some("xvda written by linux on 6.1"), &image).is_err());
        image[1080..1082].copy_from_slice(&[0x53, 0xef]);
        assert!(blk_verdict(Some("xvda written by linux on 6.1"), &image).is_ok());
        assert!(blk_verdict(Some("xvda failed"), &image).is_err());
        assert!(blk_verdict(None, &image).is_err());
        let files = vec![("a.txt".to_owned(), "ab12".to_owned())];
        let mut seen = Seen {
            host_get: Some(Ok(Instant::now())),
            fetched: Some("a.txt ab12".into()),
            ..Seen::default()
        };
        assert!(net_verdict(&seen, &files).is_ok());
        seen.fetched = Some("a.txt ab13".into());
        assert!(net_verdict(&seen, &files).is_err());
        seen.fetched = Some("a.txt ab12".into());
        seen.first_console = Some(Instant::now());
        let started = seen.first_console.unwrap() - Duration::from_millis(2500);
        let times = boot_times(started, &seen);
        assert!(
            times.contains("first console line 2.5 s, init's shell line never"),
            "{times}"
        );
        seen.host_get = Some(Err("refused".into()));
        assert!(net_verdict(&seen, &files).is_err());
        seen.host_get = None;
        assert!(net_verdict(&seen, &files).is_err());
    }

    #[test]
    fn the_command_line_asks_for_every_check() {
        let c = linux_cmdline("index.html");
        for w in [
            "pvxen.shell=1",
            "pvxen.disk=xvda",
            "pvxen.fetch=http://10.0.2.15/files/index.html",
            "pvxen.ip=10.0.2.16/24",
            "pvxen.blobs=16777216",
        ] {
            assert!(c.contains(w), "{c}");
        }
        assert!(!c.contains("noxsave"), "Linux runs with XSAVE on hv: {c}");
        for opt in ["shell", "disk", "fetch"] {
            assert!(linux_domu::INIT.contains(&format!("$(arg {opt})")), "{opt}");
        }
    }
}
