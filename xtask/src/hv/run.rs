//! `cargo xtask run` on hv (the default): pvguest's application on our own hypervisor, its
//! archive and store on hv's virtio-blk disks behind blkback, its vif on hv's switch behind
//! netback, QEMU's user network as the switch's uplink with `hostfwd` from
//! `127.0.0.1:<port>` to the guest's port 80; or the user's own configs (`--config`).
//!
//! Ctrl-C reaches only xtask (QEMU runs in its own process group): xtask asks each domain to
//! power off through hv's control lines (`shutdown <id> poweroff`, as `xl shutdown` writes
//! `control/shutdown`), so the application closes its disks, and QEMU ends with exit 33; if
//! it has not within [`SHUTDOWN_GRACE`], QEMU is asked to quit.
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::qemu::{Control, HostFwd};
use super::serial::{Line, QemuEnd};
use super::{
    EXIT_POWEROFF, HV_OPTIONS, Module, boot_with_control, build_hv, check_configs, config,
    guest_elf, hard_timeout, run_dir,
};
use crate::xen::blk::site_archive;
use crate::xen::run::{
    ARCHIVE_ROUND, GUEST_IP, GUEST_MAC, GUEST_PORT, Options, SERVING_LINE, banner, check_port,
    drive_path, guest_cmdline, prepare_store,
};

/// How long the domains have to power off after Ctrl-C before QEMU is asked to quit.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);
/// The application domain's memory, MiB (as on stock Xen).
const APP_MEMORY_MIB: u64 = 128;

/// The application's config: its archive (`xvda`, read-only), the store (`xvdb`) and a vif.
fn app_config(kernel: &Path, xvda: &str, store: &str, cmdline: &str) -> Result<String> {
    let kernel = kernel
        .to_str()
        .filter(|k| !k.contains(['"', '\'', '\\']))
        .with_context(|| format!("{}: cannot be written in a config", kernel.display()))?;
    for p in [xvda, store] {
        if p.contains(['\'', ',']) {
            bail!("{p}: a disk path with a quote or comma cannot be written in a config");
        }
    }
    if cmdline.contains('"') {
        bail!("PVXEN_CMDLINE cannot hold a double quote");
    }
    Ok(format!(
        "# Written by `cargo xtask run`: pvguest's application.\n\
         name = \"pvguest-app\"\ntype = \"pvh\"\nkernel = \"{kernel}\"\n\
         cmdline = \"{cmdline}\"\nmemory = {APP_MEMORY_MIB}\n\
         disk = [ 'format=raw, vdev=xvda, access=ro, target={xvda}',\n\
         \x20        'format=raw, vdev=xvdb, access=rw, target={store}' ]\n\
         vif = [ 'mac={GUEST_MAC}' ]\n"
    ))
}

/// Boots the application (or `--config`'s domains) on hv and serves until `stop` is set or
/// every domain has ended.
pub fn serve(options: &Options, stop: &AtomicBool) -> Result<()> {
    println!(
        "run: pvguest's application on hv inside QEMU; `cargo xtask run --help` for the \
         options (--on xen: stock Xen)"
    );
    check_port(options.port)?;
    let dir = run_dir("run-hv");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let boots = if options.configs.is_empty() {
        let store = drive_path(&options.store)?;
        prepare_store(&options.store)?;
        let site = site_archive(&options.site, false)?;
        let mut archive = site.tar;
        archive.resize(archive.len().div_ceil(ARCHIVE_ROUND) * ARCHIVE_ROUND, 0);
        let xvda = dir.join("xvda.img");
        std::fs::write(&xvda, &archive).with_context(|| format!("writing {}", xvda.display()))?;
        println!(
            "run: the archive disk holds {} files of {} ({} bytes)",
            site.files.len(),
            options.site.display(),
            archive.len()
        );
        let guest = std::path::absolute(guest_elf()?)?;
        let cmdline = guest_cmdline();
        println!("run: guest command line {cmdline:?}");
        let cfg = dir.join("app.cfg");
        std::fs::write(
            &cfg,
            app_config(&guest, &drive_path(&xvda)?, &store, &cmdline)?,
        )
        .with_context(|| format!("writing {}", cfg.display()))?;
        match check_configs(&[cfg]) {
            Ok(b) => b,
            Err(_) => bail!("the application's config was refused (the lines above say why)"),
        }
    } else {
        match check_configs(&options.configs) {
            Ok(b) => b,
            Err(_) => bail!("fix the config(s): the problems are listed above"),
        }
    };
    let hv = build_hv()?;
    let archive = config::archive(&boots, |k| Ok(std::fs::read(k)?))?;
    let path = config::archive_path(&dir);
    std::fs::write(&path, archive).with_context(|| format!("writing {}", path.display()))?;
    let drives = config::drives(&boots);
    let fwds: Vec<HostFwd> = if options.configs.is_empty() {
        vec![HostFwd {
            host_port: options.port,
            guest_ip: GUEST_IP.parse()?,
            guest_port: GUEST_PORT,
        }]
    } else {
        let (fwds, warnings) = config::hostfwds(&boots, options.port);
        for w in &warnings {
            println!("run: {w}");
        }
        fwds.unwrap_or_default()
    };
    // Each forward's port is served by a front that hands QEMU's forward (on a free port of
    // its own) one connection at a time: QEMU listens with a backlog of 1 (see `front`).
    let mut fronts = Vec::new();
    let mut qemu_fwds = Vec::new();
    for f in &fwds {
        check_port(f.host_port)?;
        let inner = super::front::free_port()?;
        let front = super::front::Front::start(
            std::net::SocketAddr::from(([127, 0, 0, 1], f.host_port)),
            std::net::SocketAddr::from(([127, 0, 0, 1], inner)),
        )?;
        println!(
            "run: http://localhost:{}/ forwards to {}:{} (through xtask's front, which hands \
             QEMU's forward on 127.0.0.1:{inner} one connection at a time)",
            f.host_port, f.guest_ip, f.guest_port
        );
        fronts.push(front);
        qemu_fwds.push(HostFwd {
            host_port: inner,
            ..*f
        });
    }
    for (id, b) in (1..).zip(&boots) {
        println!(
            "run: domain {id}: {} ({} MiB, cmdline {:?})",
            b.name, b.memory_mib, b.cmdline
        );
    }
    if let Some(gdb) = &options.gdb {
        let kernels: Vec<&Path> = boots.iter().map(|b| Path::new(&b.kernel)).collect();
        super::print_gdb(&hv, &kernels, gdb)?;
    }
    let forever = Duration::from_secs(10 * 365 * 24 * 3600);
    let timeout = hard_timeout(forever)?;
    let (control, lines) = mpsc::channel::<Control>();
    let ids: Vec<u16> = (1..).take(boots.len()).collect();
    let done = AtomicBool::new(false);
    let how = format!(
        "xtask's front on 127.0.0.1:{} hands each connection to QEMU's forward in turn, to the \
         guest's port {GUEST_PORT}",
        options.port
    );
    let banner = banner(options.port, &how, &options.site, &options.store);
    let several = boots.len() > 1;
    // `--keep`: hv outlives the domains, with room for those `cargo xtask xl create` adds.
    let memory = config::qemu_memory_mib(&boots)
        + if options.keep {
            super::KEEP_ROOM_MIB
        } else {
            0
        };
    let module = Module::Archive(&path, memory, &drives, Some(&qemu_fwds));
    let hv_options = if options.keep {
        format!("{HV_OPTIONS} keep")
    } else {
        HV_OPTIONS.to_owned()
    };
    if options.keep {
        println!(
            "run: --keep: hv runs on when the domains end; `cargo xtask xl --help` manages them"
        );
    }
    let booted = std::thread::scope(|scope| {
        // Ctrl-C: each domain is asked to power off, then QEMU to quit if they do not.
        let watcher = {
            let (control, ids, done) = (control.clone(), ids.clone(), &done);
            scope.spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    if done.load(Ordering::SeqCst) {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                for id in &ids {
                    let _ = control.send(Control::Line(format!("shutdown {id} poweroff")));
                }
                if options.keep {
                    // hv outlives its domains: once they are gone, it is asked to end.
                    let socket = super::xl::socket_path("run-hv");
                    if let Ok(mut c) = super::xl::Client::connect(&socket) {
                        for id in &ids {
                            let d = hvctl::DomRef::Id(*id);
                            let _ = super::xl::wait_gone(&mut c, &d, SHUTDOWN_GRACE);
                        }
                        let _ = c.done(hvctl::Request::ShutdownHv);
                    }
                }
                let until = Instant::now() + SHUTDOWN_GRACE;
                while Instant::now() < until {
                    if done.load(Ordering::SeqCst) {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                println!("run: the domains did not power off within {SHUTDOWN_GRACE:?}; QEMU is asked to quit");
                let _ = control.send(Control::Quit);
            })
        };
        let booted = boot_with_control(
            "run",
            &hv,
            module,
            "run-hv",
            timeout,
            (&hv_options, options.gdb),
            Some(lines),
            |line| {
                match line {
                    Line::Guest(id, l) if several => println!("(d{id}) {l}"),
                    Line::Guest(_, l) | Line::Counter(l) | Line::Hv(l) | Line::Other(l) => {
                        println!("{l}")
                    }
                }
                if let Line::Guest(_, l) = line
                    && l.starts_with(SERVING_LINE)
                    && options.configs.is_empty()
                {
                    println!("{banner}");
                }
            },
        );
        done.store(true, Ordering::SeqCst);
        let _ = watcher.join();
        booted
    })?;
    for f in &fronts {
        println!("run: {}", f.summary());
    }
    let stopped = stop.load(Ordering::SeqCst);
    match (&booted.end, stopped) {
        (QemuEnd::Exited(Some(EXIT_POWEROFF)), true) => {
            if options.configs.is_empty() {
                println!(
                    "run: stopped; the store {} keeps what was put",
                    options.store.display()
                );
            } else {
                println!("run: stopped");
            }
            Ok(())
        }
        (_, true) => {
            println!("run: stopped ({})", booted.end.describe());
            Ok(())
        }
        (QemuEnd::Exited(Some(EXIT_POWEROFF)), false) if options.keep => {
            println!("run: hv ended (`cargo xtask xl shutdown-hv`)");
            Ok(())
        }
        (QemuEnd::Exited(Some(EXIT_POWEROFF)), false) => {
            bail!("every domain powered off by itself before Ctrl-C (the lines above say why)")
        }
        (end, false) => {
            super::explain_failure(&booted);
            bail!("hv ended: {}", end.describe())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_application_config_names_both_disks_and_the_vif() {
        let c = app_config(
            Path::new("/k/pvguest"),
            "/d/xvda.img",
            "/s/store.img",
            "ip=x",
        )
        .unwrap();
        assert!(c.contains("kernel = \"/k/pvguest\""));
        assert!(c.contains("vdev=xvda, access=ro, target=/d/xvda.img"));
        assert!(c.contains("vdev=xvdb, access=rw, target=/s/store.img"));
        assert!(c.contains(&format!("vif = [ 'mac={GUEST_MAC}' ]")));
        assert!(app_config(Path::new("/k"), "/a,b", "/s", "").is_err());
        assert!(app_config(Path::new("/k"), "/a", "/s", "say \"hi\"").is_err());
    }
}
