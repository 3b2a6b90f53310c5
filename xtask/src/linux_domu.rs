//! The Linux PVH domU: Debian's kernel (the one the stock-Xen image's dom0 runs) and a small
//! initramfs built here from Debian packages only: busybox (static), the `xen-netfront` and
//! `xen-blkfront` modules with their dependencies, and nginx as the HTTP server.
//!
//! Why nginx: it is in Debian, serves files with `sendfile` (no copy through user space, no
//! small buffers) and reads request bodies into one buffer as large as
//! `client_body_buffer_size`; busybox's `httpd` (CGI) and `nc` move 1 KiB per system call and
//! would measure themselves. `POST /sink` is read whole into a 32 MiB buffer by nginx's proxy
//! module (request buffering on), which then asks nginx's own second server on 127.0.0.1:81
//! for a small answer without the body, so the answer carries `Content-Length` and the
//! connection stays open. `GET /blob/<n>` is a file of n zero bytes in the initramfs' tmpfs,
//! made at boot for each n in `pvxen.blobs=` (and 1024); `GET /` answers `linux`.
//!
//! The API: [`build`] gives the kernel's path and the initramfs' bytes (cached under the
//! stock-Xen cache, keyed by package versions and this file's recipe); [`cmdline`] is the
//! kernel command line that configures the address, gateway, port and blob sizes (the same
//! initramfs serves any address); [`xl_config`] is an xl config with `tsc_mode = "native"`.
//! The init prints `LINUX serving <ip> <port>` once nginx runs; then, with
//! `pvxen.blkbench=<dev>`, it runs `dd` with `iflag=direct`/`oflag=direct` on that disk and
//! serves its `BENCH <name> <dd's last line>` lines as `/blob/blkbench.txt` once all ran.
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::xen::cpio::CpioWriter;
use crate::xen::{image, packages, rootfs};

/// Bump when the recipe changes in a way the key would not otherwise see.
const RECIPE_REVISION: u32 = 3;

/// Packages unpacked into the initramfs: nginx and the libraries it needs, busybox.
const PACKAGES: &[&str] = &[
    "nginx",
    "libc6",
    "libcrypt1",
    "libpcre2-8-0",
    "libssl3",
    "zlib1g",
    "busybox-static",
];

/// Modules loaded by the init (their dependencies come along).
const MODULES: &[&str] = &["xen-netfront", "xen-blkfront", "ext4", "crc32c_generic"];

/// What the init runs (busybox `sh`).
pub const INIT: &str = r#"#!/bin/sh
# The Linux domU's init (xtask/src/linux_domu.rs): network, nginx, optional dd figures.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /tmp /srv/blob /var/log/nginx /var/lib/nginx
arg() { tr ' ' '\n' < /proc/cmdline | sed -n "s/^pvxen\.$1=//p" | head -n 1; }
modprobe xen-netfront
modprobe xen-blkfront
# hv's Linux checks (xtask/src/hv/linux.rs), each only with its option: pvxen.shell=1, a
# shell on the console runs a command; pvxen.disk=<dev>, an ext2 filesystem made on the
# disk, written, mounted again read-only and read; pvxen.fetch=<url>, a file fetched once
# the network is up, with its SHA-256.
if [ -n "$(arg shell)" ]; then
    echo 'echo "LINUX shell $(uname -r) $((6 * 7))"' | sh -i 2>/dev/null
fi
disk=$(arg disk)
if [ -n "$disk" ]; then
    i=0
    while [ ! -b "/dev/$disk" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
    mkdir -p /mnt
    step() {
        if ! out=$("$@" 2>&1); then
            echo "LINUX disk $disk failed: $*: $out" | tr '\n' ' '; echo
            return 1
        fi
    }
    # ext4 (which mounts ext2) asks the crypto API for crc32c, and this init has no
    # /sbin/modprobe for the kernel to load it on demand.
    if step modprobe crc32c_generic && step modprobe ext4 && step mke2fs -q "/dev/$disk" &&
        step mount -t ext4 "/dev/$disk" /mnt &&
        step sh -c "echo written by linux $(uname -r) > /mnt/hello.txt" && step umount /mnt &&
        step mount -t ext4 -o ro "/dev/$disk" /mnt; then
        echo "LINUX disk $disk $(cat /mnt/hello.txt)"
        umount /mnt
    fi
fi
i=0
while [ ! -d /sys/class/net/eth0 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
ip link set lo up
ip link set eth0 up
ip addr add "$(arg ip)" dev eth0
ip route add default via "$(arg gw)"
for n in 1024 $(arg blobs | tr ',' ' '); do head -c "$n" /dev/zero > "/srv/blob/$n"; done
sed "s/@PORT@/$(arg port)/" /etc/nginx.conf.in > /tmp/nginx.conf
nginx -c /tmp/nginx.conf -p /tmp
echo "LINUX serving $(arg ip) $(arg port)"
# pvxen.sysctl=<key=value,...>: kernel settings (diagnosis only).
for kv in $(arg sysctl | tr ',' ' '); do sysctl -w "$kv"; done
# pvxen.diag=<seconds>: netfront's counters on the console every so often (diagnosis only).
diag=$(arg diag)
if [ -n "$diag" ]; then
    while :; do
        sleep "$diag"
        x=/sys/bus/xen/devices/vif-0/xenbus
        echo "DIAG eth0 $(grep eth0 /proc/net/dev | tr -s ' ')"
        echo "DIAG xenbus events $(cat $x/events) spurious $(cat $x/spurious_events) eoi_delayed_jiffies $(cat $x/jiffies_eoi_delayed) threshold $(cat $x/spurious_threshold)"
        grep -i xen /proc/interrupts | tr -s ' ' | sed 's/^/DIAG irq /'
        grep Tcp: /proc/net/snmp | tail -1 | sed 's/^/DIAG snmp /'
        grep '^TcpExt:' /proc/net/netstat | tail -1 | sed 's/^/DIAG tcpext /'
        grep ':0050 ' /proc/net/tcp | tr -s ' ' | sed 's/^/DIAG tcp /'
        grep -E 'MemFree|Slab' /proc/meminfo | tr -s ' ' | tr '\n' ' ' | sed 's/^/DIAG mem /'; echo
    done &
fi
url=$(arg fetch)
if [ -n "$url" ]; then
    i=0
    until wget -q -O /tmp/fetched "$url" 2> /dev/null || [ $i -ge 30 ]; do sleep 1; i=$((i+1)); done
    echo "LINUX fetched ${url##*/files/} $(sha256sum < /tmp/fetched | cut -d' ' -f1)"
fi
dev=$(arg blkbench)
if [ -n "$dev" ]; then
    i=0
    while [ ! -b "/dev/$dev" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
    mb=$(arg blkmb)
    [ -n "$mb" ] || mb=16
    # <name> <bytes> <dd arguments...>: `BENCH <name> <bytes> <seconds>`, timed by
    # /proc/uptime (busybox's dd prints no rate); a failed dd prints its error instead.
    rate() {
        name=$1; bytes=$2; shift 2
        t0=$(cut -d' ' -f1 /proc/uptime)
        if out=$(dd "$@" 2>&1); then
            t1=$(cut -d' ' -f1 /proc/uptime)
            echo "BENCH $name $bytes $(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')"
        else
            echo "BENCH $name failed: $out" | tr '\n' ' '; echo
        fi
    }
    {
        # One request at a time over an eighth of the bytes, as pvguest's bench mode does.
        small=$((mb * 131072))
        big=$((mb * 1048576))
        rate blk-seq-write-qd1 $small if=/dev/zero of=/dev/$dev bs=4096 count=$((mb * 32)) oflag=direct
        rate blk-seq-read-qd1 $small if=/dev/$dev of=/dev/null bs=4096 count=$((mb * 32)) iflag=direct
        rate blk-seq-write-full $big if=/dev/zero of=/dev/$dev bs=1M count=$mb oflag=direct
        rate blk-seq-read-full $big if=/dev/$dev of=/dev/null bs=1M count=$mb iflag=direct
        # 4 KiB at random offsets, 32 in flight, as many as pvguest's bench mode reads.
        randread /dev/$dev $((mb * 256)) 32
    } > /tmp/blkbench.txt
    mv /tmp/blkbench.txt /srv/blob/blkbench.txt
    cat /srv/blob/blkbench.txt
fi
while :; do sleep 3600; done
"#;

/// nginx's configuration (`@PORT@` replaced by the init).
pub const NGINX_CONF: &str = "\
user root;
worker_processes 1;
pid /tmp/nginx.pid;
error_log stderr warn;
events { worker_connections 512; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 300s;
    keepalive_requests 1000000;
    client_body_temp_path /tmp/body;
    proxy_temp_path /tmp/proxy;
    fastcgi_temp_path /tmp/fastcgi;
    uwsgi_temp_path /tmp/uwsgi;
    scgi_temp_path /tmp/scgi;
    default_type application/octet-stream;
    server {
        listen @PORT@;
        client_max_body_size 64m;
        client_body_buffer_size 32m;
        location = / { return 200 \"linux\\n\"; }
        location /blob/ { root /srv; }
        location = /sink {
            proxy_pass http://127.0.0.1:81/ok;
            proxy_pass_request_body off;
            proxy_set_header Content-Length \"\";
            proxy_request_buffering on;
        }
    }
    server {
        listen 127.0.0.1:81;
        location = /ok { return 200 \"{\\\"sink\\\":\\\"ok\\\"}\\n\"; }
    }
}
";

/// The built domU.
#[derive(Clone, Debug)]
pub struct LinuxDomU {
    /// Debian's kernel (its bzImage, which xl's loader takes for PVH).
    pub kernel: PathBuf,
    /// The initramfs (`newc` cpio, uncompressed).
    pub initramfs: Vec<u8>,
}

/// How the domU is configured on its command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Address with prefix (`10.0.2.16/24`).
    pub ip: String,
    /// Default gateway.
    pub gateway: String,
    /// nginx's port.
    pub port: u16,
    /// Blob sizes made at boot (besides 1024), served as `/blob/<n>`.
    pub blobs: Vec<usize>,
    /// A disk (`xvda`) to measure with `dd` before serving, and how many MiB.
    pub blk_bench: Option<(String, u32)>,
}

/// The kernel command line for `config` (console on `hvc0`, quiet).
pub fn cmdline(config: &Config) -> String {
    let mut s = format!(
        "console=hvc0 loglevel=3 pvxen.ip={} pvxen.gw={} pvxen.port={}",
        config.ip, config.gateway, config.port
    );
    if !config.blobs.is_empty() {
        let list: Vec<String> = config.blobs.iter().map(ToString::to_string).collect();
        let _ = write!(s, " pvxen.blobs={}", list.join(","));
    }
    if let Some((dev, mb)) = &config.blk_bench {
        let _ = write!(s, " pvxen.blkbench={dev} pvxen.blkmb={mb}");
    }
    s
}

/// What the stock-Xen config adds to the kernel command line: `noxsave`. Under QEMU 7.2's
/// TCG, a Linux domU on stock Xen died now and then of `#UD` on an AVX instruction in its
/// own init (busybox, a VEX-encoded `vmovd` in a string function): four of nine tries of one
/// `bench` memory search, at 136 to 158 MiB, each `Attempted to kill init!` from
/// `asm_exc_invalid_op`. The likely cause: QEMU 7.2 lets a nested guest's `XSETBV` through
/// without the SVM intercept (hv reads `XCR0` back for that reason, `hv/src/kernel/fpu.rs`),
/// so Xen never learns the domU's `XCR0` and puts back its own, without AVX, when it
/// switches vCPUs; a process that chose AVX code at its start then faults. Without XSAVE,
/// Linux and glibc keep to SSE. hv's Linux boot does not need it.
pub const XEN_EXTRA_CMDLINE: &str = "noxsave";

/// An xl config for the domU named `name` with `memory_mib`, its kernel and ramdisk at
/// `kernel` and `ramdisk` (paths in dom0) and `extra` lines (devices); the command line has
/// [`XEN_EXTRA_CMDLINE`] after the configuration.
pub fn xl_config(
    name: &str,
    kernel: &str,
    ramdisk: &str,
    config: &Config,
    memory_mib: u64,
    extra: &str,
) -> String {
    format!(
        "name = \"{name}\"\ntype = \"pvh\"\nkernel = \"{kernel}\"\nramdisk = \"{ramdisk}\"\n\
         cmdline = \"{} {XEN_EXTRA_CMDLINE}\"\nmemory = {memory_mib}\nvcpus = 1\ntsc_mode = \"native\"\n\
         on_poweroff = \"preserve\"\non_crash = \"preserve\"\n{extra}",
        cmdline(config)
    )
}

/// The `dd` figure of a `BENCH blk-<name> <bytes> <seconds>` line of the init, in MB/s.
pub fn dd_rate(line: &str) -> Option<(String, f64)> {
    let mut words = line.split_whitespace();
    if words.next()? != "BENCH" {
        return None;
    }
    let name = words.next()?;
    let bytes: f64 = words.next()?.parse().ok()?;
    let secs: f64 = words.next()?.parse().ok()?;
    (words.next().is_none() && secs > 0.0).then(|| (name.to_owned(), bytes / 1e6 / secs))
}

/// The source of `randread` (the random-read tool of the bench's Linux row).
const RANDREAD: &str = include_str!("../randread.rs");

/// Compiles `randread` with the workspace's `rustc`, static and stripped (1.3 MB; 5.4 MB
/// with its symbols, which raised the Linux domU's least memory by 14 MiB), for the domU
/// (the host's architecture, `x86_64-unknown-linux-gnu`); its bytes.
fn build_randread(work: &Path) -> Result<Vec<u8>> {
    fs::create_dir_all(work)?;
    let (src, out) = (work.join("randread.rs"), work.join("randread"));
    fs::write(&src, RANDREAD)?;
    let status = Command::new(std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into()))
        .args([
            "--edition",
            "2021",
            "-O",
            "-C",
            "strip=symbols",
            "-C",
            "target-feature=+crt-static",
        ])
        .args(["--target", "x86_64-unknown-linux-gnu", "-o"])
        .arg(&out)
        .arg(&src)
        .current_dir(crate::build::workspace_root())
        .status()
        .context("running rustc for randread")?;
    if !status.success() {
        bail!(
            "rustc could not build randread ({status}): is the gnu C library's static part (libc6-dev) installed?"
        );
    }
    fs::read(&out).with_context(|| format!("reading {}", out.display()))
}

/// Builds (or takes from the cache) the kernel and initramfs.
pub fn build() -> Result<LinuxDomU> {
    packages::ensure_host_tools()?;
    let (kernel, resolved) = packages::resolve(PACKAGES)?;
    let mut key = format!("linux-domu revision {RECIPE_REVISION}\n");
    for p in std::iter::once(&kernel).chain(&resolved) {
        let _ = writeln!(key, "package {} {} {}", p.name, p.version, p.arch);
    }
    let _ = writeln!(
        key,
        "init {:016x} nginx {:016x} modules {} randread {:016x}",
        image::fnv1a64(INIT.as_bytes()),
        image::fnv1a64(NGINX_CONF.as_bytes()),
        MODULES.join(" "),
        image::fnv1a64(RANDREAD.as_bytes())
    );
    let dir = image::cache_root()
        .join("linux-domu")
        .join(format!("{:016x}", image::fnv1a64(key.as_bytes())));
    let (vmlinuz, cpio) = (dir.join("vmlinuz"), dir.join("initramfs.cpio"));
    if cpio.is_file() && vmlinuz.is_file() {
        println!("linux domU: cached in {}", dir.display());
        return Ok(LinuxDomU {
            kernel: vmlinuz,
            initramfs: fs::read(&cpio)?,
        });
    }
    println!("linux domU: building into {}", dir.display());
    let debs = image::cache_root().join("debs");
    fs::create_dir_all(&debs)?;
    let mut all = vec![kernel.clone()];
    all.extend(resolved.iter().cloned());
    packages::download(&all, &debs)?;
    let work = dir.with_extension(format!("build-{}", std::process::id()));
    let _ = fs::remove_dir_all(&work);
    let (kdir, root) = (work.join("kernel"), work.join("root"));
    unpack(&debs.join(kernel.deb_name()), &kdir)?;
    for p in &resolved {
        unpack(&debs.join(p.deb_name()), &root)?;
    }
    let kver = fs::read_dir(kdir.join("lib/modules"))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .next()
        .context("the kernel package has no lib/modules/<version>")?;
    rootfs::copy_modules(&kdir, &kver, &root, MODULES)?;
    for d in ["usr/share", "etc/nginx", "usr/lib/x86_64-linux-gnu/gconv"] {
        let _ = fs::remove_dir_all(root.join(d));
    }
    for d in [
        "proc", "sys", "dev", "tmp", "etc", "sbin", "usr/bin", "usr/sbin",
    ] {
        fs::create_dir_all(root.join(d))?;
    }
    fs::write(root.join("etc/nginx.conf.in"), NGINX_CONF)?;
    fs::write(root.join("etc/passwd"), "root:x:0:0:root:/:/bin/sh\n")?;
    fs::write(root.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n")?;
    let randread = build_randread(&work)?;
    let mut w = CpioWriter::new(Vec::new());
    w.tree(&root)?;
    w.file("init", 0o755, INIT.as_bytes())?;
    w.file("bin/randread", 0o755, &randread)?;
    let list = Command::new(root.join("bin/busybox"))
        .arg("--list")
        .output()
        .context("running busybox --list")?;
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if !applet.is_empty() && !applet.contains('/') && !root.join("bin").join(applet).exists() {
            w.symlink(&format!("bin/{applet}"), "busybox")?;
        }
    }
    let initramfs = w.finish()?;
    fs::create_dir_all(&dir)?;
    let bz = kdir.join("boot").join(format!("vmlinuz-{kver}"));
    fs::copy(&bz, &vmlinuz).with_context(|| format!("copying {}", bz.display()))?;
    fs::write(&cpio, &initramfs)?;
    let _ = fs::remove_dir_all(&work);
    println!(
        "linux domU: kernel {kver}, initramfs {} bytes",
        initramfs.len()
    );
    Ok(LinuxDomU {
        kernel: vmlinuz,
        initramfs,
    })
}

/// The ELF kernel inside the domU's bzImage (`vmlinux` beside it, unpacked once): what hv's
/// builder loads (it takes ELF kernels only, as Xen's PVH loader without decompression).
pub fn elf_kernel(domu: &LinuxDomU) -> Result<PathBuf> {
    let out = domu.kernel.with_file_name("vmlinux");
    if !out.is_file() {
        let bz = fs::read(&domu.kernel)?;
        let dir = domu
            .kernel
            .parent()
            .context("the kernel has no directory")?;
        let part = dir.join(format!("vmlinux.{}", std::process::id()));
        crate::xen::bzimage::unpack(&bz, dir, &part)?;
        fs::rename(&part, &out)?;
    }
    Ok(out)
}

/// `dpkg-deb -x deb into`.
fn unpack(deb: &Path, into: &Path) -> Result<()> {
    fs::create_dir_all(into)?;
    let status = Command::new("dpkg-deb")
        .arg("-x")
        .arg(deb)
        .arg(into)
        .status()
        .context("running dpkg-deb")?;
    if !status.success() {
        bail!("dpkg-deb -x {}: {status}", deb.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config {
            ip: "10.0.2.16/24".into(),
            gateway: "10.0.2.2".into(),
            port: 80,
            blobs: vec![2 << 20],
            blk_bench: Some(("xvda".into(), 8)),
        }
    }

    #[test]
    fn the_command_line_carries_the_configuration() {
        let c = cmdline(&config());
        assert_eq!(
            c,
            "console=hvc0 loglevel=3 pvxen.ip=10.0.2.16/24 pvxen.gw=10.0.2.2 pvxen.port=80 \
             pvxen.blobs=2097152 pvxen.blkbench=xvda pvxen.blkmb=8"
        );
        let x = xl_config(
            "linux",
            "/pvxen/k",
            "/pvxen/i",
            &config(),
            256,
            "vif = []\n",
        );
        assert!(
            x.contains("tsc_mode = \"native\"") && x.contains("type = \"pvh\""),
            "{x}"
        );
        assert!(x.contains(&format!("cmdline = \"{c} noxsave\"")), "{x}");
    }

    #[test]
    fn the_init_reads_every_option_the_command_line_sets() {
        for opt in [
            "ip", "gw", "port", "blobs", "blkbench", "blkmb", "shell", "disk", "fetch",
        ] {
            assert!(INIT.contains(&format!("$(arg {opt}")), "{opt}");
        }
        assert!(NGINX_CONF.contains("listen @PORT@;"));
        assert!(INIT.contains("s/@PORT@/"));
        // The body is read in one large buffer, the file sent with sendfile.
        assert!(NGINX_CONF.contains("client_body_buffer_size 32m"));
        assert!(NGINX_CONF.contains("sendfile on"));
    }

    #[test]
    fn dd_lines_give_mb_per_second() {
        let (name, rate) = dd_rate("BENCH blk-seq-read-full 16777216 0.5").unwrap();
        assert_eq!(name, "blk-seq-read-full");
        assert!((rate - 33.554432).abs() < 1e-6, "{rate}");
        assert!(dd_rate("BENCH blk-x failed: dd: /dev/xvda: No such file").is_none());
        assert!(dd_rate("BENCH blk-x 4096 0").is_none());
    }
}
