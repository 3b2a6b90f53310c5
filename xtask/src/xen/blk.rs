//! The device boot of the stock-Xen tier: pvguest with two file-backed disks served by Linux's
//! blkback and a vif on dom0's bridge (Linux netback), running its `blk` and `net` self-test
//! groups (the `net` group then serves HTTP to dom0's clients), then three crashes of its
//! key-value store, then the application on the same disks, and the harness's own checks from
//! outside:
//!
//! - `HOST net-*`: dom0's clients (`xtask/dom0/net-checks.sh`) against the guest's service:
//!   ping, 16 MiB down and up, malformed requests, `ab -k` load with grants and heap back;
//!   `net-files` (every archive file by `GET /files/<path>` with the digest of its source,
//!   `text/html` for `index.html`, 404 for a missing file), `net-kv` (put, get, overwrite, a
//!   value at 16 KiB and one over, list, delete, 404 after; the store at [`SERVICE_KV`] on
//!   `xvdb`) and `net-kv-persist` (after the crash points, a fresh domain running the
//!   application on the same disks still has what `net-kv` left); `net-head-range-etag`
//!   (`HEAD`, `Range` and `If-None-Match` on `index.html`: [`NET_HEAD_RANGE_ETAG_EXPECTED`]);
//!   `net-churn` (after
//!   [`CHURN_CONNECTIONS`] connections opened and closed at once, `GET /` answered within
//!   [`ANSWER_WITHIN_MS`]). `net-checks.sh slow-heads N` (100 clients trickling heads, `GET /`
//!   timed meanwhile) is not a step yet: in two device boots of four the guest then stopped
//!   answering altogether (no ARP, no console line), a hang not understood yet.
//! - `HOST blk-pattern`: the read-only disk holds a ustar archive of `pvguest/site/` (plus a
//!   generated file and `MANIFEST.sha256`); the guest read the disk whole and printed its
//!   SHA-256 (`BLK sha256 xvda <bytes> <hex>`), which must equal the image's.
//! - `HOST blk-guest-write`: after shutdown the read-write image starts with the guest's
//!   pattern (`pvguest/src/selftest/blk.rs`: byte `i` is `(i % 251) ^ 0x5a`).
//! - `HOST blk-readonly`: the read-only image is byte for byte unchanged.
//! - `HOST blk-flush-counted`: blkback's flush counter (`statistics/f_req` of `vbd-<domid>-51728`)
//!   grew while the group ran (read with the guest paused before it, and when the guest
//!   announced its storm after it).
//! - `HOST blk-kv-durable`: the guest puts forever (`kv-storm=<n>`, printing each acknowledged
//!   put); at a seeded random moment the harness pauses it, reads blkback's flush counter and
//!   the acknowledged puts, destroys it, and a fresh `xl create` on the same disk (`kv-check`)
//!   lists every key: each acknowledged put must be there with its value (or with the one put
//!   that was in flight), no key that was never put, and the flush counter must have grown by
//!   at least the acknowledged puts. Three crash points a run, the last check powering off.
//! - `HOST xen-save-restore`, `HOST xen-save-checkpoint`, `HOST xen-migrate-localhost`: the
//!   application (with 32 MiB) saved and restored, checkpointed, and migrated to this host
//!   while it serves a download ([`super::save`]), after `net-stalled-disk`.
//! - `HOST xen-xl-reboot`: `xl reboot` of the application (`on_reboot = "restart"` in its
//!   config): a value put before is read from the domain xl built again, under a new domid,
//!   running, after the old one said `APP stopped` and the new one `APP serving`
//!   ([`app_reboot`]); then `HOST xen-xl-shutdown`: `xl shutdown` of it powers it off.
//! - Then the `net` group once more on a fresh create with the vif alone and every negotiated
//!   feature off ([`net_off`]), against dom0's download and upload: `stock Xen net features
//!   off: TEST ...` units, `HOST xen-run-net-off` (its feature `FACT`s say off),
//!   `HOST net-off-download` and `HOST net-off-upload`.
//! - Last, the `blk` group once more on a fresh create with every negotiated feature off
//!   ([`features_off_cmdline`]), so that the plain paths stay tested against Linux blkback: its
//!   `TEST` lines are units (`stock Xen features off: TEST ...`), and `HOST xen-run-blk-off`
//!   judges the run (one `RESULT` agreeing with them, powered off).
#![allow(
    clippy::cast_possible_truncation,
    reason = "byte patterns keep the low bits on purpose; the harness runs on 64-bit hosts (usize is 64 bits)"
)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

use super::console::{self, GuestEnd, Transcript};
use super::job::{Job, Step};
use super::{
    GUEST_NAME, Limits, TEST_GUEST_LIMIT, TEST_TIMEOUT, boot_job_gdb, explain_failure, guest_elf,
    hard_timeout, image, xl_config,
};
use crate::build::workspace_root;
use crate::tally::Tally;

mod net_off;

/// Size of the read-only disk (`xvda`): the archive, padded with zeros.
pub const XVDA_BYTES: usize = 1 << 20;
/// Size of the read-write disk (`xvdb`), zeros before boot: the `blk` group's data in the first
/// 2 MiB, the crash storms' store in the next 2, the service's store ([`SERVICE_KV`]) last.
pub const XVDB_BYTES: usize = 6 << 20;
/// What `blk-resize` grows `xvdb` to (`blk-resize=<bytes>`), then shrinks it back from: on
/// stock Xen the image file and its loop device in dom0 ([`resize_command`]), on hv QEMU's
/// drive (`block_resize`, `crate::hv::resize`). 1 MiB more: the guest writes past the old end.
pub const XVDB_RESIZED_BYTES: usize = XVDB_BYTES + (1 << 20);
/// Where the service's store lives on `xvdb` (`kv-region=<start>+<len>`), in the `net` group's
/// serving and in the application boot after the crash points.
pub const SERVICE_KV: (usize, usize) = (4 << 20, 2 << 20);
/// Bytes of the guest's pattern at the start of `xvdb` (as in `pvguest/src/selftest/blk.rs`).
pub const GUEST_PATTERN_BYTES: usize = 256 * 1024;
/// The read-write disk's xenbus device id (`xvdb`: 202 << 8 | 1 << 4).
const XVDB_DEVID: u32 = 51728;

/// The config of the device boot's last create, the `blk` group with every feature off.
const FEATURES_OFF_CONFIG: &str = "guest-blk-off.cfg";
/// What the features-off run adds to the device boot's hard timeout (the `blk` group alone
/// takes seconds; a loaded host stretches it).
const FEATURES_OFF_MARGIN: std::time::Duration = std::time::Duration::from_secs(60);
/// How many `xl create`s the device boot makes: the group's, one check after each crash
/// point, the application's, the `net` features-off run's ([`net_off`]) and the `blk`
/// features-off run's (last).
const CREATES: usize = CRASH_POINTS as usize + 4;

/// Crash points of the durable check (storms), each followed by a check on a fresh create.
pub const CRASH_POINTS: u64 = 3;
/// The generated file in the archive: [`harness_pattern`] bytes, so that misplaced sectors of a
/// multi-request read show.
const GENERATED: (&str, usize) = ("data/pattern.bin", 100_003);
/// The manifest the guest checks the archive's files against.
const MANIFEST: &str = "MANIFEST.sha256";

/// Byte `i` of the generated file: a multiplicative hash, so that misplaced sectors show.
pub fn harness_pattern(i: usize) -> u8 {
    ((i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 56) as u8
}

/// Byte `i` of the pattern the guest writes (the same formula as the guest's).
pub fn guest_pattern(i: usize) -> u8 {
    (i % 251) as u8 ^ 0x5a
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The guest's command line for the device boot (its first storm follows the group), with
/// the head deadline [`TEST_HEAD_MS`] (`cargo xtask test`).
pub fn cmdline() -> String {
    cmdline_with(NET_SERVE_MS, &format!(" http-head-ms={TEST_HEAD_MS}"))
}

/// The guest's command line for `cargo xtask soak`: the service's default deadlines, and
/// room for `net-integrity`'s transfers.
pub fn soak_cmdline() -> String {
    cmdline_with(NET_SERVE_MS + INTEGRITY_MARGIN.as_millis() as u64, "")
}

fn cmdline_with(serve_ms: u64, extra: &str) -> String {
    format!(
        "selftest=blk,net blk-expect=xvda:{XVDA_BYTES}:r,xvdb:{XVDB_BYTES}:w ip=dhcp \
         net-expect-mac={GUEST_MAC} net-expect-ip={GUEST_IP}/24 net-expect-gw={DOM0_IP} \
         net-serve-ms={serve_ms} kv-region={}+{} kv-storm=1 kv-storm-go \
         blk-resize={XVDB_RESIZED_BYTES}{extra}",
        SERVICE_KV.0, SERVICE_KV.1
    )
}

/// The guest's command line for the last create of the device boot: the `blk` group alone,
/// with every negotiated feature switched off.
pub fn features_off_cmdline() -> String {
    format!(
        "selftest=blk blk-expect=xvda:{XVDA_BYTES}:r,xvdb:{XVDB_BYTES}:w \
         blk-multipage-ring=off blk-indirect=off blk-persistent=off blk-discard=off \
         blk-multiqueue=off"
    )
}

/// The application's command line in the boot after the crash points (`HOST net-kv-persist`).
pub fn app_cmdline() -> String {
    format!("ip=dhcp kv-region={}+{}", SERVICE_KV.0, SERVICE_KV.1)
}

/// What `HOST net-kv` expects from `net-checks.sh kv`.
pub const NET_KV_EXPECTED: &str = "put=200 get=one put2=200 get2=two big=200 bigsame=yes \
     toolarge=413 persist=200 list={\"keys\":[\"alpha\",\"big\",\"persist\"]} del=200 after=404 \
     del2=404";
/// What `HOST net-head-range-etag` expects from `net-checks.sh head-range-etag` (and hv's
/// [`crate::hv::net::head_range_etag`]) on `/files/index.html`: `HEAD` answered `200` with
/// GET's length and `ETag` and no body, `Range: bytes=0-9` `206` with 10 bytes and
/// `Content-Range: bytes 0-9/<length>`, a range from the length on `416`, `If-None-Match` with
/// the file's tag `304`, with another tag `200`.
pub const NET_HEAD_RANGE_ETAG_EXPECTED: &str = "head=200 head_body=0 length=same etag=yes \
     range=206 range_body=10 content_range=ok unsatisfiable=416 not_modified=304 other_tag=200";
/// What `HOST net-kv-persist` expects from `net-checks.sh persist` on the fresh domain.
pub const NET_KV_PERSIST_EXPECTED: &str =
    "persist=kept-across-boots big=same list={\"keys\":[\"big\",\"persist\"]}";

/// The vif's MAC (xl's `vif = [ 'mac=...' ]`), to which dom0's DHCP server leases
/// [`GUEST_IP`].
pub const GUEST_MAC: &str = "00:16:3e:00:00:02";
/// The guest's leased address.
pub const GUEST_IP: &str = "10.0.0.2";
/// dom0's address on the bridge (`xenbr0`), the guest's gateway.
pub const DOM0_IP: &str = "10.0.0.1";
/// How long the guest serves at most after its `net` tests (the harness ends it sooner by
/// writing `data/net-done` once its clients are done). 200 s ran out on a host loaded with
/// four other emulated machines (the 16 MiB transfers took 43-59 s each), and the checks
/// after it failed for it: room to spare costs nothing, as the harness ends it.
const NET_SERVE_MS: u64 = 400_000;
/// Connections the `net-churn` check opens and closes at once (several times the guest's
/// pool).
pub const CHURN_CONNECTIONS: u64 = 200;
/// How soon `GET /` must be answered in the churn and slow-heads checks, ms.
pub const ANSWER_WITHIN_MS: u64 = 2000;
/// The device boot's hard timeout: the platform boots' [`TEST_TIMEOUT`] plus room for the
/// service's pressure checks (slow heads, the stalled disk, the bench) on a loaded machine.
const DEVICE_BOOT_TIMEOUT: std::time::Duration =
    std::time::Duration::from_secs(TEST_TIMEOUT.as_secs() + 300);
/// The device-mapper target under the application's store disk (`xvdb` of `guest-app.cfg`),
/// which `net-stalled-disk` suspends.
const STALL_TARGET: &str = "pvstore";
/// The service's storage deadline (`httpd::Deadlines::storage`, its default), ms: how long
/// the puts of `net-stalled-disk` wait before their 202 and 503.
pub const STORAGE_DEADLINE_MS: u64 = 10_000;
/// Clients of the `net-slow-heads` check, each sending request heads a line a second.
pub const SLOW_HEADS: u64 = 64;
/// How long they trickle in `cargo xtask test` (the guest's head deadline [`TEST_HEAD_MS`]),
/// seconds.
pub const SLOW_HEADS_SECS: u64 = 20;
/// How long they trickle in `cargo xtask soak` (the default head deadline), seconds.
pub const SOAK_SLOW_HEADS_SECS: u64 = 60;
/// The head deadline on the guest's command line in `cargo xtask test` (`http-head-ms=`), ms:
/// short, so that the slow clients' heads time out (and they open again) within the check.
pub const TEST_HEAD_MS: u64 = 2000;
/// Requests of the load check (`ab -k`, 16 connections) in `cargo xtask test`.
pub const LOAD_REQUESTS: u64 = 2000;
/// Requests of the load check in `cargo xtask soak`.
pub const SOAK_REQUESTS: u64 = 10_000;
/// The most of the guest's boot stack the service may have used after the loads, percent
/// (`HOST net-stack`): half, so a path twice as deep as any the checks drove still fits
/// (issue 28's triple fault under load was suspected to be an overflow of this stack).
pub const STACK_LIMIT_PERCENT: u64 = 50;
/// dom0's clients of the guest's service (`xtask/dom0/net-checks.sh`).
const NET_CHECKS: &[u8] = include_bytes!("../../dom0/net-checks.sh");

/// dom0's first steps of a boot with the guest's two disks: blkback loaded, the archive disk
/// copied to `/tmp/xvda.img`, an empty `/tmp/xvdb.img` of [`XVDB_BYTES`].
pub(super) fn disk_prep_steps() -> Vec<Step> {
    let run = |key: &str, command: &str| Step::Run {
        key: key.to_owned(),
        command: command.to_owned(),
    };
    vec![
        run(
            "backend",
            // The module reads `xen_blkback.max_queues` from dom0's command line when
            // modprobe loads it (`DOM0_CMDLINE`): a blkback offering one queue says so here.
            "modprobe loop && modprobe xen-blkback && \
             q=$(cat /sys/module/xen_blkback/parameters/max_queues) && \
             if [ \"$q\" = 2 ]; then echo ok; else echo \"xen_blkback.max_queues=$q, not 2\"; fi",
        ),
        run("prep-xvda", "cp /pvxen/xvda.img /tmp/xvda.img && echo ok"),
        run(
            "prep-xvdb",
            &format!(
                "dd if=/dev/zero of=/tmp/xvdb.img bs=1048576 count={} 2>/dev/null && echo ok",
                XVDB_BYTES >> 20
            ),
        ),
    ]
}

/// dom0's command that resizes `xvdb` under the running guest (`blk-resize`): the image
/// file to `bytes`, then its loop device told to read the file's size again (`losetup -c`);
/// Linux blkback notices on its ring thread's next turn and announces it (`xen_vbd_resize`).
/// Prints `ok` and how many `VBD Resize` lines blkback has logged so far.
fn resize_command(bytes: usize) -> String {
    format!(
        "f=/tmp/xvdb.img && dev=$(losetup -j $f | head -n 1 | cut -d: -f1) && [ -n \"$dev\" ] && \
         truncate -s {bytes} $f && losetup -c $dev && \
         echo ok $dev $(blockdev --getsize64 $dev 2>/dev/null) vbd-resize-lines=$(dmesg | grep -c 'VBD Resize')"
    )
}

/// The steps of `blk-resize` in dom0: when the guest says so, `xvdb` grown to
/// [`XVDB_RESIZED_BYTES`], then shrunk back to [`XVDB_BYTES`].
fn resize_steps() -> Vec<Step> {
    vec![
        Step::WaitLine("BLK resize grow xvdb".into()),
        Step::Run {
            key: "resize-grow".into(),
            command: resize_command(XVDB_RESIZED_BYTES),
        },
        Step::WaitLine("BLK resize shrink xvdb".into()),
        Step::Run {
            key: "resize-shrink".into(),
            command: resize_command(XVDB_BYTES),
        },
    ]
}

/// dom0's bridge with netback (its `max_queues` checked: `xen_netback.max_queues=2` on dom0's
/// command line reaches the module through busybox's `modprobe`), and busybox's DHCP server
/// with a fixed lease for the vif.
pub(crate) fn net_setup() -> String {
    let conf = format!(
        "start {GUEST_IP}\\nend {GUEST_IP}\\ninterface xenbr0\\nstatic_lease {GUEST_MAC} {GUEST_IP}\\n\
         option subnet 255.255.255.0\\noption router {DOM0_IP}\\noption lease 3600\\n\
         lease_file /tmp/udhcpd.leases\\n"
    );
    format!(
        "modprobe bridge && modprobe xen-netback && \
         ip link add name xenbr0 type bridge stp_state 0 forward_delay 0 && \
         ip addr add {DOM0_IP}/24 dev xenbr0 && ip link set xenbr0 up && ip link set lo up && \
         printf '{conf}' > /tmp/udhcpd.conf && touch /tmp/udhcpd.leases && \
         udhcpd /tmp/udhcpd.conf </dev/null >/dev/null 2>&1 && \
         echo ok netback-max-queues=$(cat /sys/module/xen_netback/parameters/max_queues)"
    )
}

/// Key of put `n` of storm `seed` (as `pvguest/src/durable/storm.rs` computes it).
pub fn storm_key(seed: u64, n: u64) -> String {
    format!("k{:02}", n.wrapping_mul(7).wrapping_add(seed) % 40)
}

/// Value of put `n` of storm `seed` (as `pvguest/src/durable/storm.rs` computes it).
pub fn storm_value(seed: u64, n: u64) -> String {
    format!("s{seed}n{n}{}", "x".repeat((n % 64) as usize))
}

/// A site packed for the guest.
pub struct SiteArchive {
    /// The ustar archive (not padded).
    pub tar: Vec<u8>,
    /// Every file in it with its SHA-256 (hex), in archive order: `(path, digest)`.
    pub files: Vec<(String, String)>,
}

/// A ustar archive (made by the host's GNU tar, deterministic: sorted, mtime 0, owner 0) of
/// the files under `site` (with [`GENERATED`] if `generated`) and [`MANIFEST`] (their
/// SHA-256 sums, as `sha256sum` prints them).
pub fn site_archive(site: &Path, generated: bool) -> Result<SiteArchive> {
    if !site.is_dir() {
        bail!("the site directory {} does not exist", site.display());
    }
    let dir = std::env::temp_dir().join(format!("pvxen-site-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    copy_dir(site, &dir).with_context(|| format!("copying {}", site.display()))?;
    if generated {
        let (name, len) = GENERATED;
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap_or(&dir))?;
        std::fs::write(&path, (0..len).map(harness_pattern).collect::<Vec<u8>>())?;
    }
    let mut files = Vec::new();
    list_files(&dir, &dir, &mut files)?;
    files.sort();
    if files.iter().any(|f| f == MANIFEST) {
        bail!(
            "{} has its own {MANIFEST}; the harness writes that file (rename yours)",
            site.display()
        );
    }
    let mut manifest = String::new();
    let mut sums = Vec::new();
    for f in &files {
        let bytes = std::fs::read(dir.join(f))?;
        let digest = hex(&Sha256::digest(&bytes));
        manifest.push_str(&format!("{digest}  {f}\n"));
        sums.push((f.clone(), digest));
    }
    std::fs::write(dir.join(MANIFEST), &manifest)?;
    sums.insert(
        0,
        (
            MANIFEST.to_owned(),
            hex(&Sha256::digest(manifest.as_bytes())),
        ),
    );
    files.insert(0, MANIFEST.to_owned());
    let tar = dir.with_extension("tar");
    let status = Command::new("tar")
        .args([
            "--format=ustar",
            "--sort=name",
            "--mtime=@0",
            "--owner=0",
            "--group=0",
        ])
        .args(["--numeric-owner", "-cf"])
        .arg(&tar)
        .arg("-C")
        .arg(&dir)
        .args(&files)
        .status()
        .context("running tar (GNU tar; Debian's `tar` package) to build the archive")?;
    if !status.success() {
        bail!(
            "tar failed ({status}) building the archive of {}",
            site.display()
        );
    }
    let image = std::fs::read(&tar)?;
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_file(&tar);
    Ok(SiteArchive {
        tar: image,
        files: sums,
    })
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

fn list_files(root: &Path, dir: &Path, out: &mut Vec<String>) -> Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            list_files(root, &entry.path(), out)?;
        } else {
            let rel = entry.path();
            let rel = rel.strip_prefix(root)?.to_string_lossy().into_owned();
            out.push(rel);
        }
    }
    Ok(())
}

/// How long the guest holds after announcing a storm, before its first put (as
/// `pvguest/src/durable/mod.rs`'s `STORM_HOLD_MS`): the harness reads the flush counter then.
const STORM_HOLD_MS: u64 = 2000;

/// Pause delays (milliseconds after a storm's first put may start) from `seed`.
pub fn pause_delays(seed: u64) -> Vec<u64> {
    let mut x = seed ^ 0x9e37_79b9_7f4a_7c15;
    (0..CRASH_POINTS)
        .map(|_| {
            // xorshift64*
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            500 + (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) % 2500
        })
        .collect()
}

/// The job: disk images prepared in dom0's /tmp, the guest created paused (to read the flush
/// counter before it runs), its group run, then [`CRASH_POINTS`] storms each paused at a
/// moment of `delays` and destroyed, each followed by a check on a fresh create; the last
/// check powers off. Then the images are digested.
fn job(xvda: Vec<u8>, files: &[(String, String)], delays: &[u64], load: u64) -> Result<Job> {
    let soak = load >= SOAK_REQUESTS;
    let slow_secs = slow_heads_secs(load);
    let disks = "disk = [ 'format=raw, vdev=xvda, access=ro, target=/tmp/xvda.img',\n\
                 \x20        'format=raw, vdev=xvdb, access=rw, target=/tmp/xvdb.img' ]\n";
    let f_req = format!(
        "cat /sys/bus/xen-backend/devices/vbd-$($XL domid {GUEST_NAME})-{XVDB_DEVID}/statistics/f_req"
    );
    let run = |key: &str, command: &str| Step::Run {
        key: key.to_owned(),
        command: command.to_owned(),
    };
    let create = |config: &str| Step::Create {
        config: config.to_owned(),
        paused: true,
    };
    let mut steps = disk_prep_steps();
    steps.extend([
        run("net", &net_setup()),
        create("guest.cfg"),
        run("f_req-before", &f_req),
        Step::Unpause,
    ]);
    steps.extend(resize_steps());
    steps.extend([
        Step::WaitLine("NET serving".into()),
        run(
            "net-ping",
            &format!(
                "ping -c 3 -W 3 {GUEST_IP} >/tmp/ping.log 2>&1; echo rc=$? $(grep -c 'bytes from' /tmp/ping.log) replies"
            ),
        ),
        // The boot stack's high-water mark before the loads (printed, not judged).
        run(
            "net-stack-early",
            &format!("sh /pvxen/net-checks.sh {GUEST_IP} stack"),
        ),
        run(
            "net-download",
            &format!("sh /pvxen/net-checks.sh {GUEST_IP} download"),
        ),
        run(
            "net-upload",
            &format!("sh /pvxen/net-checks.sh {GUEST_IP} upload"),
        ),
        run(
            "net-malformed",
            &format!("sh /pvxen/net-checks.sh {GUEST_IP} malformed"),
        ),
        run(
            "net-load",
            &format!("sh /pvxen/net-checks.sh {GUEST_IP} load {load}"),
        ),
        run(
            "net-bench",
            &format!("sh /pvxen/net-checks.sh {GUEST_IP} bench {LOAD_REQUESTS}"),
        ),
        run(
            "net-files",
            &format!("sh /pvxen/net-checks.sh {GUEST_IP} files /pvxen/files.sha256"),
        ),
        run("net-kv", &format!("sh /pvxen/net-checks.sh {GUEST_IP} kv")),
        run(
            "net-head-range-etag",
            &format!("sh /pvxen/net-checks.sh {GUEST_IP} head-range-etag"),
        ),
        run(
            "net-churn",
            &format!("sh /pvxen/net-checks.sh {GUEST_IP} churn {CHURN_CONNECTIONS}"),
        ),
        // After every load of the `net` group's service (`HOST net-stack`; net-slow-heads is
        // inserted before this step below).
        run("net-stack", &format!("sh /pvxen/net-checks.sh {GUEST_IP} stack")),
        run(
            "net-diag",
            &format!("sh /pvxen/net-checks.sh {GUEST_IP} diag {GUEST_NAME}"),
        ),
        run(
            "net-done",
            &format!(
                "$XL domid {GUEST_NAME} >/dev/null && xenstore-write /local/domain/$($XL domid {GUEST_NAME})/data/net-done 1 && echo ok"
            ),
        ),
        // The guest's state once it should have stopped serving (printed, not judged).
        run(
            "net-diag-after",
            &format!("sleep 8; sh /pvxen/net-checks.sh {GUEST_IP} diag {GUEST_NAME}"),
        ),
    ]);
    if soak {
        // Issue 30's integrity item: many bulk transfers in one boot, each compared.
        let at = steps
            .iter()
            .position(|s| matches!(s, Step::Run { key, .. } if key == "net-upload"))
            .map_or(steps.len(), |i| i + 1);
        let blob: Vec<u8> = (0..16 << 20).map(harness_pattern).collect();
        steps.insert(
            at,
            run(
                "net-integrity",
                &format!(
                    "sh /pvxen/net-checks.sh {GUEST_IP} integrity {INTEGRITY_ROUNDS} {}",
                    hex(&Sha256::digest(&blob))
                ),
            ),
        );
    }
    {
        let at = steps
            .iter()
            .position(|s| matches!(s, Step::Run { key, .. } if key == "net-churn"))
            .map_or(steps.len(), |i| i + 1);
        steps.insert(
            at,
            run(
                "net-slow-heads",
                &format!("sh /pvxen/net-checks.sh {GUEST_IP} slow-heads {SLOW_HEADS} {slow_secs}"),
            ),
        );
    }
    let sums: String = files
        .iter()
        .map(|(path, digest)| format!("{digest}  {path}\n"))
        .collect();
    let mut files = vec![
        ("xvda.img".to_owned(), xvda),
        ("net-checks.sh".to_owned(), NET_CHECKS.to_vec()),
        ("files.sha256".to_owned(), sums.into_bytes()),
    ];
    let mut configs = Vec::new();
    for storm in 1..=CRASH_POINTS {
        if storm > 1 {
            steps.push(create(&format!("guest-kv{storm}.cfg")));
            steps.push(Step::Unpause);
        }
        steps.push(Step::WaitLine(format!("KV storm {storm} started")));
        steps.push(run(&format!("f_req-start{storm}"), &f_req));
        // Only now may the storm put (`kv-storm-go`): no put goes uncounted however late
        // the counter was read.
        steps.push(run(
            "storm-go",
            &format!(
                "xenstore-write /local/domain/$($XL domid {GUEST_NAME})/data/storm-go 1 && echo ok"
            ),
        ));
        let delay = STORM_HOLD_MS + delays.get(storm as usize - 1).copied().unwrap_or(1000);
        steps.push(run(
            "slept",
            &format!("sleep {}.{:03} && echo ok", delay / 1000, delay % 1000),
        ));
        steps.push(Step::Pause);
        steps.push(run(&format!("f_req-pause{storm}"), &f_req));
        steps.push(Step::Destroy);
        let next = storm + 1;
        let cmdline = if next <= CRASH_POINTS {
            format!("kv-check kv-storm={next} kv-storm-go")
        } else {
            "kv-check".to_owned()
        };
        configs.push((format!("guest-kv{next}.cfg"), xl_config(&cmdline, disks)?));
    }
    steps.push(create(&format!("guest-kv{}.cfg", CRASH_POINTS + 1)));
    steps.push(Step::Unpause);
    steps.push(Step::WaitEnd);
    steps.push(Step::Destroy);
    // A fresh domain, the application this time, on the same disks (the store's through a
    // device-mapper target the harness can suspend): what net-kv put is there.
    steps.push(run(
        "net-stall-prep",
        &format!("sh /pvxen/net-checks.sh {GUEST_IP} stall-prep /tmp/xvdb.img {STALL_TARGET}"),
    ));
    steps.push(Step::Create {
        config: "guest-app.cfg".into(),
        paused: false,
    });
    steps.push(Step::WaitLine("APP serving".into()));
    steps.push(run(
        "net-kv-persist",
        &format!("sh /pvxen/net-checks.sh {GUEST_IP} persist"),
    ));
    steps.push(run(
        "net-stalled-disk",
        &format!("sh /pvxen/net-checks.sh {GUEST_IP} stalled {STALL_TARGET}"),
    ));
    // xl save + restore, save -c, migrate to this host, each across a download (save.rs).
    steps.extend(super::save::steps(save_cycles(load)));
    // The application's boot stack after its loads and the saves (`HOST net-stack`).
    steps.push(run(
        "app-stack",
        &format!("sh /pvxen/net-checks.sh {GUEST_IP} stack"),
    ));
    // The toolstack's reboot (control/shutdown = reboot): the application stops serving and
    // ends with reason reboot, and xl builds it again from its config (`HOST xen-xl-reboot`).
    steps.push(run(
        "app-reboot",
        &format!("sh /pvxen/net-checks.sh {GUEST_IP} reboot"),
    ));
    // The toolstack's shutdown (control/shutdown = poweroff): the application stops serving
    // and powers off (`HOST xen-xl-shutdown`, issue 32's name).
    steps.push(run(
        "app-shutdown",
        "$XL shutdown $NAME >/dev/null 2>&1 && echo ok",
    ));
    steps.push(Step::WaitEnd);
    steps.push(Step::Destroy);
    // The `net` group once more with every feature off, on a domain with the vif alone.
    steps.extend(net_off::steps());
    // The `blk` group once more with every feature off (it writes the guest pattern again).
    steps.push(Step::Create {
        config: FEATURES_OFF_CONFIG.into(),
        paused: false,
    });
    steps.push(Step::WaitEnd);
    steps.push(Step::Destroy);
    steps.push(Step::Digest {
        key: "xvda-after".into(),
        path: "/tmp/xvda.img".into(),
        bytes: None,
    });
    steps.push(Step::Digest {
        key: "xvdb-head".into(),
        path: "/tmp/xvdb.img".into(),
        bytes: Some(GUEST_PATTERN_BYTES as u64),
    });
    let vif = format!("vif = [ 'mac={GUEST_MAC},bridge=xenbr0' ]\n");
    let app_disks = format!(
        "disk = [ 'format=raw, vdev=xvda, access=ro, target=/tmp/xvda.img',\n\
         \x20        'format=raw, vdev=xvdb, access=rw, target=/dev/mapper/{STALL_TARGET}' ]\n"
    );
    // `xl reboot` restarts it: xl's monitor builds the domain again from its config (the
    // other ends stay preserved, so that its console is drained before `destroy`).
    let app = super::save::small(&xl_config(&app_cmdline(), &format!("{app_disks}{vif}"))?);
    configs.push(("guest-app.cfg".to_owned(), restart_on_reboot(&app)?));
    configs.push((
        FEATURES_OFF_CONFIG.to_owned(),
        xl_config(&features_off_cmdline(), disks)?,
    ));
    configs.push((net_off::CONFIG.to_owned(), net_off::config()?));
    for (name, config) in configs {
        files.push((name, config.into_bytes()));
    }
    files.extend(super::save::files());
    let guest_cmdline = if soak { soak_cmdline() } else { cmdline() };
    Job::with_steps(
        xl_config(&guest_cmdline, &format!("{disks}{vif}"))?,
        steps,
        files,
    )
}

/// `net-checks.sh download`'s result `key`: the digest of `GET /blob/16777216`, which must be
/// the service's generator's (`httpd::blob`: the same formula as [`harness_pattern`]).
fn download_verdict(t: &Transcript, key: &str) -> Result<(), String> {
    let blob: Vec<u8> = (0..16 << 20).map(harness_pattern).collect();
    let blob_sha = hex(&Sha256::digest(&blob));
    match t.result(key) {
        Some(d) if d == blob_sha => Ok(()),
        Some(d) => Err(format!(
            "GET /blob/16777216 has sha256 {d}, the generator {blob_sha}"
        )),
        None => Err(format!("dom0 gave no `{key}`")),
    }
}

/// `net-checks.sh upload`'s result `key`: dom0's digest of the 16 MiB it posted, which the
/// service's answer must give with the length.
fn upload_verdict(t: &Transcript, key: &str) -> Result<(), String> {
    match t.result(key).and_then(|v| v.split_once(' ')) {
        Some((local, answer))
            if answer.contains(&format!("\"sha256\":\"{local}\""))
                && answer.contains("\"length\":16777216") =>
        {
            Ok(())
        }
        Some((local, answer)) => Err(format!(
            "sent sha256 {local}, the service answered {answer:?}"
        )),
        None => Err(format!("dom0 gave no `{key}`")),
    }
}

/// `config` (an xl config of [`xl_config`]) with `on_reboot = "restart"`.
fn restart_on_reboot(config: &str) -> Result<String> {
    let preserve = "on_reboot = \"preserve\"\n";
    if !config.contains(preserve) {
        bail!("no {preserve:?} in the application's config");
    }
    Ok(config.replace(preserve, "on_reboot = \"restart\"\n"))
}

/// `xl reboot` of the application (`net-checks.sh reboot`): xl answered 0; a value put
/// before (`200`) is read after; a new domid, running (`r` or `b`, nothing else); the old
/// domain printed `APP stopped` and the new one `APP serving`, once each.
fn app_reboot(v: Option<&str>) -> Result<(), String> {
    let Some(v) = v else {
        return Err("dom0 gave no `app-reboot`".to_owned());
    };
    let num = |name: &str| word(v, name).parse::<u32>().ok();
    let state = word(v, "state");
    let running = (state.starts_with('r') || state.starts_with("-b"))
        && state.len() == 6
        && state.get(2..) == Some("----");
    if word(v, "rc") == "0"
        && word(v, "put") == "200"
        && num("before").is_some()
        && num("after").is_some()
        && num("before") != num("after")
        && running
        && word(v, "stopped") == "1"
        && word(v, "serving") == "1"
        && word(v, "get") == "kept-across-reboot"
    {
        Ok(())
    } else {
        Err(format!(
            "xl reboot answered 0, a put before it read after, a new domid, running, one \
             `APP stopped` and one `APP serving` expected: {v}"
        ))
    }
}

/// `xl shutdown` of the application: it said `APP stopped` and the domain powered off.
fn app_shutdown(t: &Transcript) -> Result<(), String> {
    let stopped = t.guest.iter().any(|l| l.starts_with("APP stopped"));
    match (t.result("app-shutdown"), stopped, &t.end) {
        (Some("ok"), true, Some((GuestEnd::Poweroff, _))) => Ok(()),
        (answer, stopped, end) => Err(format!(
            "xl shutdown answered {answer:?}; `APP stopped` {}; the domain ended {:?}",
            if stopped { "printed" } else { "never printed" },
            end.as_ref().map(|(how, _)| how.describe())
        )),
    }
}

/// The value of word `<name>=<value>` in a result line of `net-checks.sh` ("" if absent).
fn word<'a>(line: &'a str, name: &str) -> &'a str {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
        .unwrap_or("")
}

/// The files check: every one of the archive's `count` files fetched with the digest of its
/// source, `text/html` for `index.html`, 404 for a missing file.
pub(crate) fn files_verdict(v: &str, count: usize) -> Result<(), String> {
    let (fields, content_type) = v.split_once("; type=").unwrap_or((v, ""));
    let field = |name: &str| word(fields, name);
    let n = count.to_string();
    if field("files") == n
        && field("ok") == n
        && field("missing") == "404"
        && content_type.starts_with("text/html")
    {
        Ok(())
    } else {
        Err(format!(
            "{count} archive files expected with their digests, 404 for a missing one and \
             text/html for index.html: {v}"
        ))
    }
}

/// The churn check (and `slow-heads`): all `clients` connected, and `GET /` answered with the
/// status document within [`ANSWER_WITHIN_MS`].
pub(crate) fn timed_verdict(v: &str, clients: u64) -> Result<(), String> {
    let ms: Option<u64> = word(v, "ms").parse().ok();
    if word(v, "opened") == clients.to_string()
        && word(v, "status") == "ok"
        && ms.is_some_and(|ms| ms <= ANSWER_WITHIN_MS)
    {
        Ok(())
    } else {
        Err(format!(
            "{clients} clients connected and GET / answered within {ANSWER_WITHIN_MS} ms \
             expected: {v}"
        ))
    }
}

/// The load check: every request answered 2xx, and the service's grants and heap bytes in use
/// back exactly where they were after the warm-up.
pub(crate) fn load_verdict(v: &str, load: u64) -> Result<(), String> {
    let field = |name: &str| word(v, name);
    let same = |name: &str| {
        let value = field(name);
        matches!(value.split_once('/'), Some((a, b)) if !a.is_empty() && a == b)
    };
    if field("complete") == load.to_string()
        && field("failed") == "0"
        && field("non2xx") == "0"
        && same("grants")
        && same("heap")
    {
        Ok(())
    } else {
        Err(format!("ab -k -n {load} -c 16: {v}"))
    }
}

/// `HOST blk-kv-durable`: every crash point's acknowledged puts found by the check after it,
/// nothing never put, and blkback's flush counter grown by at least the acknowledged puts.
/// Returns the verdict and one summary line per crash point.
pub fn durable_check(t: &Transcript) -> (Result<(), String>, Vec<String>) {
    let mut summary = Vec::new();
    let g = &t.guest;
    // What the store must hold: key -> value, over all storms so far.
    let mut model: BTreeMap<String, String> = BTreeMap::new();
    let mut cursor = 0usize;
    for storm in 1..=CRASH_POINTS {
        let started = format!("KV storm {storm} started");
        let Some(start) = g[cursor..]
            .iter()
            .position(|l| *l == started)
            .map(|i| cursor + i)
        else {
            return (Err(format!("no `{started}` line")), summary);
        };
        let Some(&paused) = t.pauses.get(storm as usize - 1) else {
            return (Err(format!("storm {storm} was never paused")), summary);
        };
        if paused < start {
            return (
                Err(format!("storm {storm} was paused before it started")),
                summary,
            );
        }
        let mut acked = 0u64;
        let lines = &g[start..paused];
        for (i, line) in lines.iter().enumerate() {
            let want = format!(
                "KV ack {} {}",
                storm_key(storm, acked),
                storm_value(storm, acked)
            );
            if *line == want {
                model.insert(storm_key(storm, acked), storm_value(storm, acked));
                acked += 1;
            } else if i + 1 == lines.len() && want.starts_with(line.as_str()) {
                // The pause cut the last line short: that put's ack was on its way out, so
                // it counts as in flight (found or not, both are right).
            } else if line.starts_with("KV ack ") {
                return (
                    Err(format!(
                        "storm {storm}: ack {acked} is `{line}`, not `{want}`"
                    )),
                    summary,
                );
            }
        }
        // The put in flight at the pause may or may not have made it: both are right.
        let in_flight = (storm_key(storm, acked), storm_value(storm, acked));
        let Some(begin) = g[paused..]
            .iter()
            .position(|l| l == "KV check begin")
            .map(|i| paused + i)
        else {
            return (Err(format!("no check after crash point {storm}")), summary);
        };
        let Some(done) = g[begin..]
            .iter()
            .position(|l| l.starts_with("KV check done"))
            .map(|i| begin + i)
        else {
            return (
                Err(format!(
                    "the check after crash point {storm} did not finish"
                )),
                summary,
            );
        };
        let mut found = BTreeMap::new();
        for line in &g[begin + 1..done] {
            let rest = line.strip_prefix("KV found ").unwrap_or(line);
            let (key, value) = rest.split_once(' ').unwrap_or((rest, ""));
            found.insert(key.to_owned(), value.to_owned());
        }
        for (key, value) in &found {
            let was_put =
                model.get(key) == Some(value) || (key, value) == (&in_flight.0, &in_flight.1);
            if !was_put {
                return (
                    Err(format!(
                        "crash point {storm}: found {key} = {value:?}, never acknowledged nor in flight (acknowledged: {:?})",
                        model.get(key)
                    )),
                    summary,
                );
            }
        }
        for (key, value) in &model {
            match found.get(key) {
                Some(v) if v == value => {}
                Some(v) if (key, v) == (&in_flight.0, &in_flight.1) => {}
                other => {
                    return (
                        Err(format!(
                            "crash point {storm}: acknowledged {key} = {value:?} lost (found {other:?})"
                        )),
                        summary,
                    );
                }
            }
        }
        // What the check found is what the store holds from now on.
        model = found.clone();
        let number = |key: String| -> Result<u64, String> {
            t.result(&key)
                .and_then(|v| v.trim().parse().ok())
                .ok_or(format!("dom0 gave no number for `{key}`"))
        };
        let grew = match (
            number(format!("f_req-start{storm}")),
            number(format!("f_req-pause{storm}")),
        ) {
            (Ok(a), Ok(b)) => b.saturating_sub(a),
            (Err(e), _) | (_, Err(e)) => return (Err(e), summary),
        };
        let rate = lines
            .iter()
            .rev()
            .find_map(|l| l.strip_prefix("KV progress "))
            .map_or(String::new(), |p| format!(" (guest: {p})"));
        summary.push(format!(
            "crash point {storm}: {acked} acknowledged puts{rate}, blkback's f_req grew by {grew}, the check found {} keys",
            found.len()
        ));
        if grew < acked {
            return (
                Err(format!(
                    "crash point {storm}: {acked} puts acknowledged but blkback counted only {grew} flushes"
                )),
                summary,
            );
        }
        cursor = done;
    }
    (Ok(()), summary)
}

/// The `HOST blk-*` checks from what the boot left: (passed, line).
pub fn host_checks(
    t: &Transcript,
    xvda_sha: &str,
    guest_sha: &str,
    load: u64,
    archive_files: usize,
) -> Vec<(bool, String)> {
    let check = |name: &str, verdict: Result<(), String>| match verdict {
        Ok(()) => (true, format!("HOST {name} ok")),
        Err(why) => (false, format!("HOST {name} FAIL {why}")),
    };
    let printed = t.guest.iter().find_map(|l| {
        let rest = l.strip_prefix("BLK sha256 xvda ")?;
        let (bytes, digest) = rest.split_once(' ')?;
        Some((bytes.to_owned(), digest.trim().to_owned()))
    });
    let pattern = match printed {
        None => Err("the guest printed no `BLK sha256 xvda` line".to_owned()),
        Some((bytes, _)) if bytes != XVDA_BYTES.to_string() => {
            Err(format!("the guest read {bytes} bytes of {XVDA_BYTES}"))
        }
        Some((_, digest)) if digest == xvda_sha => Ok(()),
        Some((_, digest)) => Err(format!("guest read sha256 {digest}, image has {xvda_sha}")),
    };
    let result = |key: &str| -> Result<&str, String> {
        match t.result(key) {
            None | Some("-") => Err(format!("dom0 gave no `{key}`")),
            Some(v) => Ok(v),
        }
    };
    let guest_write = result("xvdb-head").and_then(|d| {
        if d == guest_sha {
            Ok(())
        } else {
            Err(format!("first {GUEST_PATTERN_BYTES} bytes of xvdb have sha256 {d}, the guest pattern {guest_sha}"))
        }
    });
    let readonly = result("xvda-after").and_then(|d| {
        if d == xvda_sha {
            Ok(())
        } else {
            Err(format!("xvda changed: sha256 {d}, written {xvda_sha}"))
        }
    });
    let flush = result("f_req-before").and_then(|before| {
        let after = result("f_req-start1")?;
        let parse = |v: &str| {
            v.trim()
                .parse::<u64>()
                .map_err(|_| format!("f_req {v:?} is not a number"))
        };
        let (b, a) = (parse(before)?, parse(after)?);
        if a > b {
            Ok(())
        } else {
            Err(format!(
                "blkback's f_req went from {b} to {a}: no flush reached it"
            ))
        }
    });
    let download = download_verdict(t, "net-download");
    let upload = upload_verdict(t, "net-upload");
    let malformed = match t.result("net-malformed") {
        Some(v) if v.starts_with("400 413 400 {\"uptime_ms\"") => Ok(()),
        Some(v) => Err(format!(
            "bad line, oversize head, bad length, then GET /: {v:?}"
        )),
        None => Err("dom0 gave no `net-malformed`".to_owned()),
    };
    let slow_secs = slow_heads_secs(load);
    let soak = load >= SOAK_REQUESTS;
    let load = match t.result("net-load") {
        Some(v) => load_verdict(v, load),
        None => Err("dom0 gave no `net-load`".to_owned()),
    };
    let ping = match t.result("net-ping") {
        Some(v) if v.starts_with("rc=0 ") && !v.starts_with("rc=0 0 ") => Ok(()),
        Some(v) => Err(format!("ping {GUEST_IP} from dom0: {v}")),
        None => Err("dom0 gave no `net-ping`".to_owned()),
    };
    let files = match t.result("net-files") {
        Some(v) => files_verdict(v, archive_files),
        None => Err("dom0 gave no `net-files`".to_owned()),
    };
    let timed = |key: &str, clients: u64| match t.result(key) {
        Some(v) => timed_verdict(v, clients),
        None => Err(format!("dom0 gave no `{key}`")),
    };
    let exact = |key: &str, want: &str| match t.result(key) {
        Some(v) if v == want => Ok(()),
        Some(v) => Err(format!("got `{v}`, expected `{want}`")),
        None => Err(format!("dom0 gave no `{key}`")),
    };
    let mut checks = vec![
        check("net-ping", ping),
        check("net-download", download),
        check("net-upload", upload),
        check("net-malformed", malformed),
        check("net-load", load),
        check("net-files", files),
        check("net-kv", exact("net-kv", NET_KV_EXPECTED)),
        check(
            "net-kv-persist",
            exact("net-kv-persist", NET_KV_PERSIST_EXPECTED),
        ),
        check(
            "net-head-range-etag",
            exact("net-head-range-etag", NET_HEAD_RANGE_ETAG_EXPECTED),
        ),
        check("blk-pattern", pattern),
        check("blk-guest-write", guest_write),
        check("blk-readonly", readonly),
        check("blk-flush-counted", flush),
        check("xen-xl-shutdown", app_shutdown(t)),
        check("net-churn", timed("net-churn", CHURN_CONNECTIONS)),
        check(
            "net-stalled-disk",
            match t.result("net-stalled-disk") {
                Some(v) => stalled_verdict(v),
                None => Err("dom0 gave no `net-stalled-disk`".to_owned()),
            },
        ),
    ];
    // Back in `test`: the guest that went silent during it was the stock-Xen lost wake-up
    // (QEMU's nested SVM dropping the `sti` shadow, covered in pvguest's upcall stub).
    checks.push(check(
        "net-slow-heads",
        match t.result("net-slow-heads") {
            Some(v) => slow_heads_verdict(v, slow_secs),
            None => Err("dom0 gave no `net-slow-heads`".to_owned()),
        },
    ));
    checks.push(check("xen-xl-reboot", app_reboot(t.result("app-reboot"))));
    checks.push(check(
        "net-stack",
        stack_verdict(t.result("net-stack"), t.result("app-stack")),
    ));
    if soak {
        checks.push(check(
            "net-integrity",
            match t.result("net-integrity") {
                Some(v) => integrity_verdict(v),
                None => Err("dom0 gave no `net-integrity`".to_owned()),
            },
        ));
    }
    checks
}

/// `net-stack`: after the `net` group's loads (`net`) and after the application's (`app`),
/// the guest's boot stack peaked at no more than [`STACK_LIMIT_PERCENT`] of its size.
pub(crate) fn stack_verdict(net: Option<&str>, app: Option<&str>) -> Result<(), String> {
    for (what, v) in [("net", net), ("app", app)] {
        let v = v.ok_or_else(|| format!("dom0 gave no `{what}-stack`"))?;
        stack_line_verdict(v).map_err(|why| format!("{what}: {why}"))?;
    }
    Ok(())
}

/// One `net-checks.sh stack` line (`size=N peak=N ...`): the boot stack peaked at no more
/// than [`STACK_LIMIT_PERCENT`] of its size.
pub(crate) fn stack_line_verdict(v: &str) -> Result<(), String> {
    let num = |name: &str| word(v, name).parse::<u64>().ok();
    let (Some(size), Some(peak)) = (num("size"), num("peak")) else {
        return Err(format!("no boot stack size and peak in GET /: {v:?}"));
    };
    if size == 0 || peak > size {
        return Err(format!("a peak of {peak} bytes of a {size}-byte stack"));
    }
    if peak.saturating_mul(100) > size.saturating_mul(STACK_LIMIT_PERCENT) {
        return Err(format!(
            "the boot stack peaked at {peak} of {size} bytes, more than {STACK_LIMIT_PERCENT} %"
        ));
    }
    Ok(())
}

/// Uploads and downloads of 16 MiB in `soak`'s `net-integrity` (the report: 6 of 18
/// uploads wrong in one boot).
const INTEGRITY_ROUNDS: u32 = 18;
/// What `net-integrity` adds to the soak's device boot and to its guest's serving time (each
/// round moves 32 MiB at several MB/s; four times that, for a loaded machine).
const INTEGRITY_MARGIN: std::time::Duration = std::time::Duration::from_secs(300);

/// `net-integrity`: every upload's digest and every download's were right.
pub(crate) fn integrity_verdict(v: &str) -> Result<(), String> {
    let want = format!(
        "uploads={INTEGRITY_ROUNDS} wrong=0 downloads={INTEGRITY_ROUNDS} wrong=0 first=none"
    );
    if v == want {
        Ok(())
    } else {
        Err(format!("16 MiB transfers came back wrong: {v}"))
    }
}

/// The stalled-disk check: a put acknowledged before the stall; while the store's disk is
/// suspended, `GET /` answered within [`ANSWER_WITHIN_MS`], a put answered `202` (accepted,
/// not done: its commit is with the stalled disk and lands when it answers, so not `503`)
/// and a put of another key sent half a second later, which waits behind that commit and is
/// never begun, answered `503`, each after the storage deadline (not much later); once
/// resumed, the acknowledged values are there, the `202`'s value landed and the `503`'s key
/// was never written (`404`).
pub(crate) fn stalled_verdict(v: &str) -> Result<(), String> {
    let num = |name: &str| word(v, name).parse::<u64>().ok();
    let deadline = STORAGE_DEADLINE_MS;
    let after_deadline =
        |name: &str| num(name).is_some_and(|ms| (deadline - 1000..=deadline * 3).contains(&ms));
    if word(v, "before") == "200"
        && word(v, "get") == "ok"
        && num("get_ms").is_some_and(|ms| ms <= ANSWER_WITHIN_MS)
        && word(v, "put") == "202"
        && after_deadline("put_ms")
        && word(v, "queued") == "503"
        && after_deadline("queued_ms")
        && word(v, "landed") == "yes"
        && word(v, "queued_after") == "404"
        && word(v, "after") == "same"
        && word(v, "persist") == "kept-across-boots"
    {
        Ok(())
    } else {
        Err(format!(
            "with the store's disk suspended, GET / within {ANSWER_WITHIN_MS} ms, a put \
             answered 202 and one queued behind it 503, each after about {deadline} ms; \
             resumed, what was acknowledged before and the 202's value there, the 503's key \
             absent: {v}"
        ))
    }
}

/// Save and restore cycles in a device boot with `load` requests in its load check: several
/// in `soak` ([`super::save::SOAK_CYCLES`]), one in `test`.
fn save_cycles(load: u64) -> u32 {
    if load >= SOAK_REQUESTS {
        super::save::SOAK_CYCLES
    } else {
        1
    }
}

/// How long the slow clients trickle in a device boot with `load` requests in its load check.
fn slow_heads_secs(load: u64) -> u64 {
    if load >= SOAK_REQUESTS {
        SOAK_SLOW_HEADS_SECS
    } else {
        SLOW_HEADS_SECS
    }
}

/// The slow-heads check: all [`SLOW_HEADS`] clients connected, and every timed `GET /` of the
/// `secs` seconds (one a second, give or take the slowest) answered within
/// [`ANSWER_WITHIN_MS`].
pub(crate) fn slow_heads_verdict(v: &str, secs: u64) -> Result<(), String> {
    let num = |name: &str| word(v, name).parse::<u64>().ok();
    let (gets, ok, worst) = (num("gets"), num("ok"), num("worst_ms"));
    let enough = secs * 1000 / (ANSWER_WITHIN_MS + 1000);
    if word(v, "opened") == SLOW_HEADS.to_string()
        && gets.is_some_and(|g| g >= enough)
        && ok == gets
        && worst.is_some_and(|w| w <= ANSWER_WITHIN_MS)
    {
        Ok(())
    } else {
        Err(format!(
            "{SLOW_HEADS} clients connected and every GET / of {secs} s (at least {enough}) \
             answered within {ANSWER_WITHIN_MS} ms expected: {v}"
        ))
    }
}

/// Boots the guest with its two disks and counts one unit per `TEST` line of the `blk` group
/// and per `HOST` line. `Err` only for harness errors.
/// With `gdb` (`blk-test --gdb`) the boot gets QEMU's gdbstub ([`super::boot_job_gdb`]).
pub fn blk_test(tally: &mut Tally, gdb: Option<crate::gdb::Gdb>) -> Result<Vec<String>> {
    device_boot(tally, LOAD_REQUESTS, gdb)
}

/// `cargo xtask soak`: the device boot with [`SOAK_REQUESTS`] in its load check.
pub fn soak(tally: &mut Tally) -> Result<()> {
    device_boot(tally, SOAK_REQUESTS, None).map(drop)
}

/// The device boot with `load` requests in its load check; the guest's console lines (for
/// the comparison of the `blk` group with hv's).
fn device_boot(tally: &mut Tally, load: u64, gdb: Option<crate::gdb::Gdb>) -> Result<Vec<String>> {
    let guest = guest_elf()?;
    let image = image::ensure_image()?;
    let cycles_margin = super::save::CYCLE_MARGIN * (save_cycles(load) - 1);
    let integrity_margin = if load >= SOAK_REQUESTS {
        INTEGRITY_MARGIN
    } else {
        std::time::Duration::ZERO
    };
    let timeout = hard_timeout(
        DEVICE_BOOT_TIMEOUT
            + FEATURES_OFF_MARGIN
            + net_off::MARGIN
            + super::save::MARGIN
            + cycles_margin
            + integrity_margin,
    )?;
    let site = site_archive(&workspace_root().join("pvguest").join("site"), true)?;
    let mut xvda = site.tar;
    if xvda.len() > XVDA_BYTES {
        bail!(
            "the site archive is {} bytes, more than the {XVDA_BYTES}-byte disk",
            xvda.len()
        );
    }
    xvda.resize(XVDA_BYTES, 0);
    let xvda_sha = hex(&Sha256::digest(&xvda));
    let seed = match std::env::var("PVXEN_SEED") {
        Ok(s) if !s.is_empty() => s.parse().with_context(|| format!("PVXEN_SEED={s:?}"))?,
        _ => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64),
    };
    let delays = pause_delays(seed);
    println!(
        "xen: kv crash points: PVXEN_SEED={seed} pauses {delays:?} ms after each storm's first put may start"
    );
    let guest_bytes: Vec<u8> = (0..GUEST_PATTERN_BYTES).map(guest_pattern).collect();
    let guest_sha = hex(&Sha256::digest(&guest_bytes));
    let shown = if load >= SOAK_REQUESTS {
        soak_cmdline()
    } else {
        cmdline()
    };
    println!("xen: device boot, guest cmdline {shown:?}");
    let limits = Limits {
        timeout,
        guest_limit: TEST_GUEST_LIMIT,
    };
    let job = job(xvda, &site.files, &delays, load)?;
    let booted = boot_job_gdb(&image, &guest, &job, "blk", limits, gdb, |_| {})?;
    let (main, net_off_lines, off) = split_features_off(&booted.transcript);
    let t = &main;
    let mut verdict = console::judge_selftest(t, &booted.end);
    // What the guest measured and counted, both runs side by side (for the note's rates).
    let shown = |l: &&String| {
        l.starts_with("BLK ")
            || l.starts_with("KV error")
            || [
                "blk-read-write:",
                "blk-indirect:",
                "blk-persistent:",
                "blk-multipage-ring:",
                "blk-multiqueue:",
                "blk-resize:",
            ]
            .iter()
            .any(|k| l.contains(k))
    };
    for line in t.guest.iter().filter(shown) {
        println!("xen| {line}");
    }
    for line in off.iter().filter(shown) {
        println!("xen features off| {line}");
    }
    for (_, line) in &mut verdict.host {
        *line = line.replacen("HOST xen-run", "HOST xen-run-blk", 1);
    }
    for key in [
        "resize-grow",
        "resize-shrink",
        "net-load",
        "net-bench",
        "net-churn",
        "net-slow-heads",
        "net-diag",
        "net-diag-after",
        "net-stalled-disk",
        "net-stack-early",
        "net-stack",
        "app-stack",
    ] {
        if let Some(v) = t.result(key) {
            println!("xen: {key}: {v}");
        }
    }
    verdict.host.extend(host_checks(
        t,
        &xvda_sha,
        &guest_sha,
        load,
        site.files.len(),
    ));
    verdict
        .host
        .extend(super::save::host_checks(t, save_cycles(load)));
    let (durable, summary) = durable_check(t);
    for line in summary {
        println!("xen: {line}");
    }
    verdict.host.push(match durable {
        Ok(()) => (true, "HOST blk-kv-durable ok".to_owned()),
        Err(why) => (
            false,
            format!("HOST blk-kv-durable FAIL {why} (PVXEN_SEED={seed})"),
        ),
    });
    let mut all_ok = verdict.record(tally, "stock Xen");
    let (off_lines, (off_ok, off_host)) = judge_features_off(&off, booted.transcript.end.as_ref());
    for line in &off_lines.shown {
        println!("features off: {line}");
    }
    for test in &off_lines.tests {
        tally.record(test.ok, format!("stock Xen features off: {}", test.line));
        all_ok &= test.ok;
    }
    println!("{off_host}");
    tally.record(off_ok, format!("stock Xen: {off_host}"));
    all_ok &= off_ok;
    all_ok &= record_net_off(tally, &booted.transcript, &net_off_lines);
    if !all_ok {
        explain_failure(&booted);
    }
    Ok(main.guest)
}

/// The device boot's transcript up to the features-off runs (its last two creates), and the
/// guest lines of the `net` one and of the `blk` one (the last); none for a run the boot did
/// not get as far as creating.
fn split_features_off(t: &Transcript) -> (Transcript, Vec<String>, Vec<String>) {
    let mut main = t.clone();
    let end = t.guest.len();
    let (net_at, blk_at) = match t.creates.as_slice() {
        c if c.len() == CREATES => (c[CREATES - 2], c[CREATES - 1]),
        c if c.len() == CREATES - 1 => (c[CREATES - 2], end),
        _ => (end, end),
    };
    let mut net_lines = main.guest.split_off(net_at.min(end));
    let blk_lines = net_lines.split_off(blk_at.saturating_sub(net_at).min(net_lines.len()));
    // dom0 counts every domain's lines: what the main run's check compares with is the count
    // without the features-off runs' (a line lost in any still shows).
    let off = net_lines.len() + blk_lines.len();
    main.forwarded = t.forwarded.map(|n| n.saturating_sub(off));
    (main, net_lines, blk_lines)
}

/// Records the `net` features-off run ([`net_off`]): its `TEST` lines, `HOST
/// xen-run-net-off` and its transfers' digests. Whether all passed.
fn record_net_off(tally: &mut Tally, t: &Transcript, lines: &[String]) -> bool {
    let (judged, (run_ok, run_host)) = net_off::judge(lines, t.result("net-off-end"));
    for line in &judged.shown {
        println!("net features off: {line}");
    }
    let mut all_ok = true;
    for test in &judged.tests {
        tally.record(
            test.ok,
            format!("stock Xen net features off: {}", test.line),
        );
        all_ok &= test.ok;
    }
    let mut host = vec![(run_ok, run_host)];
    for (name, verdict) in [
        ("net-off-download", download_verdict(t, "net-off-download")),
        ("net-off-upload", upload_verdict(t, "net-off-upload")),
    ] {
        host.push(match verdict {
            Ok(()) => (true, format!("HOST {name} ok")),
            Err(why) => (false, format!("HOST {name} FAIL {why}")),
        });
    }
    for (ok, line) in host {
        println!("{line}");
        tally.record(ok, format!("stock Xen: {line}"));
        all_ok &= ok;
    }
    all_ok
}

/// The features-off run's verdict: its `TEST`/`FACT`/`RESULT` lines and `HOST
/// xen-run-blk-off` (a single `RESULT` agreeing with the `TEST` lines, and the domain powered
/// off; `end` is how the boot's last domain ended).
fn judge_features_off(
    off: &[String],
    end: Option<&(GuestEnd, String)>,
) -> (crate::selftest::Lines, (bool, String)) {
    let mut lines = crate::selftest::read_lines(off);
    if off.is_empty() {
        lines.problems = vec!["the features-off run was not created or printed nothing".into()];
    } else {
        match end.map(|e| &e.0) {
            Some(GuestEnd::Poweroff) => {}
            Some(other) => lines
                .problems
                .push(format!("the guest {}", other.describe())),
            None => lines
                .problems
                .push("dom0 never said how the guest ended".into()),
        }
    }
    let host = if lines.problems.is_empty() {
        (true, "HOST xen-run-blk-off ok".to_owned())
    } else {
        (
            false,
            format!("HOST xen-run-blk-off FAIL {}", lines.problems.join("; ")),
        )
    };
    (lines, host)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transcript(lines: &[&str]) -> Transcript {
        let mut t = Transcript::default();
        for l in lines {
            t.push(l);
        }
        t
    }

    #[test]
    fn integrity_passes_only_when_every_transfer_was_right() {
        assert!(integrity_verdict("uploads=18 wrong=0 downloads=18 wrong=0 first=none").is_ok());
        for bad in [
            "uploads=18 wrong=1 downloads=18 wrong=0 first=upload-3-answered-x",
            "uploads=18 wrong=0 downloads=18 wrong=2 first=download-4-differs-at-4097-in-12-bytes-length-16777216",
            "uploads=2 wrong=0 downloads=2 wrong=0 first=none",
            "",
        ] {
            assert!(integrity_verdict(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn host_checks_pass_only_on_matching_evidence() {
        let blob: Vec<u8> = (0..16 << 20).map(harness_pattern).collect();
        let download = format!("PVXEN result net-download {}", hex(&Sha256::digest(&blob)));
        let good = transcript(&[
            "PVXEN result net-ping rc=0 3 replies",
            &download,
            "PVXEN result net-upload abcd {\"sha256\":\"abcd\",\"length\":16777216}",
            "PVXEN result net-malformed 400 413 400 {\"uptime_ms\":9",
            "PVXEN result net-load complete=2000 failed=0 non2xx=0 rps=1200.5 grants=195/195 heap=10/10",
            "G|BLK sha256 xvda 1048576 aaaa",
            "PVXEN result f_req-before 0",
            "PVXEN result f_req-start1 2",
            "PVXEN result xvda-after aaaa",
            "PVXEN result xvdb-head bbbb",
            "PVXEN result net-files files=5 ok=5 missing=404 bad=; type=text/html; charset=utf-8",
            &format!("PVXEN result net-kv {NET_KV_EXPECTED}"),
            &format!("PVXEN result net-kv-persist {NET_KV_PERSIST_EXPECTED}"),
            &format!("PVXEN result net-head-range-etag {NET_HEAD_RANGE_ETAG_EXPECTED}"),
            "PVXEN result app-reboot rc=0 put=200 before=9 after=10 state=-b---- stopped=1 serving=1 get=kept-across-reboot codes=1,",
            "PVXEN result app-shutdown ok",
            "G|APP stopped 3 requests 3 connections",
            "PVXEN result net-churn opened=200 status=ok ms=35",
            "PVXEN result net-slow-heads opened=64 reopened=300 gets=19 ok=19 worst_ms=412",
            "PVXEN result net-stalled-disk before=200 get=ok get_ms=80 put=202 put_ms=10050 queued=503 queued_ms=10480 landed=yes queued_after=404 after=same persist=kept-across-boots",
            "PVXEN result net-stack size=65536 peak=20000 serve_peak=9000 serve_base=8000 rsp0_size=12288 rsp0_peak=0",
            "PVXEN result app-stack size=65536 peak=30000 serve_peak=9000 serve_base=8000 rsp0_size=12288 rsp0_peak=0",
            "PVXEN end poweroff 5.0",
        ]);
        let checks = host_checks(&good, "aaaa", "bbbb", 2000, 5);
        assert!(checks.iter().all(|(ok, _)| *ok), "{checks:?}");
        // `net-slow-heads` is judged in `test` and `soak` alike.
        assert_eq!(checks.len(), 19);
        let soak = host_checks(&good, "aaaa", "bbbb", SOAK_REQUESTS, 5);
        // `soak` adds `net-integrity`, failed here: the transcript has no such result.
        assert_eq!(soak.len(), 20);
        assert!(
            soak.iter()
                .any(|(ok, l)| !*ok && l.contains("net-integrity"))
        );
        let mut soaked = good.clone();
        soaked.results.push((
            "net-integrity".into(),
            format!(
                "uploads={INTEGRITY_ROUNDS} wrong=0 downloads={INTEGRITY_ROUNDS} wrong=0 first=none"
            ),
        ));
        let soak = host_checks(&soaked, "aaaa", "bbbb", SOAK_REQUESTS, 5);
        assert!(
            soak.iter()
                .any(|(ok, l)| *ok && l.contains("net-integrity"))
        );
        let rebooted = "rc=0 put=200 before=9 after=10 state=r----- stopped=1 serving=1 get=kept-across-reboot codes=-";
        assert!(app_reboot(Some(rebooted)).is_ok());
        for (from, to) in [
            ("rc=0", "rc=1"),
            ("put=200", "put=503"),
            ("after=10", "after=9"),
            ("after=10", "after=-"),
            ("state=r-----", "state=--ps--"),
            ("state=r-----", "state=r-p---"),
            ("state=r-----", "state=-"),
            ("stopped=1", "stopped=0"),
            ("serving=1", "serving=0"),
            ("get=kept-across-reboot", "get=-"),
        ] {
            let bad = rebooted.replace(from, to);
            assert!(app_reboot(Some(&bad)).is_err(), "{bad}");
        }
        assert!(app_reboot(None).is_err());
        for late in [
            "opened=300 status=ok ms=2001",
            "opened=300 status=failed ms=3",
            "opened=299 status=ok ms=35",
            "opened=300 status=ok",
        ] {
            assert!(timed_verdict(late, 300).is_err(), "{late}");
        }
        assert!(slow_heads_verdict("opened=64 reopened=0 gets=6 ok=6 worst_ms=2000", 20).is_ok());
        let stack =
            "size=65536 peak=32768 serve_peak=9000 serve_base=8000 rsp0_size=12288 rsp0_peak=400";
        assert!(stack_verdict(Some(stack), Some(stack)).is_ok());
        for bad in [
            "size=65536 peak=32776 serve_peak=9000 serve_base=8000 rsp0_size=12288 rsp0_peak=400",
            "size=65536 peak=65537",
            "size=0 peak=0",
            "size=65536",
            "none",
        ] {
            assert!(stack_verdict(Some(stack), Some(bad)).is_err(), "{bad}");
            assert!(stack_verdict(Some(bad), Some(stack)).is_err(), "{bad}");
        }
        assert!(stack_verdict(None, Some(stack)).is_err());
        assert!(stack_verdict(Some(stack), None).is_err());
        let stalled = "before=200 get=ok get_ms=80 put=202 put_ms=10050 queued=503 \
            queued_ms=10480 landed=yes queued_after=404 after=same persist=kept-across-boots";
        assert!(stalled_verdict(stalled).is_ok());
        for (from, to) in [
            ("before=200", "before=503"),
            ("get=ok", "get=failed"),
            ("get_ms=80", "get_ms=2500"),
            ("put=202", "put=200"),
            ("put=202", "put=503"),
            ("put_ms=10050", "put_ms=200"),
            ("put_ms=10050", "put_ms=45000"),
            ("queued=503", "queued=202"),
            ("queued=503", "queued=200"),
            ("queued_ms=10480", "queued_ms=300"),
            ("queued_ms=10480", "queued_ms=45000"),
            ("landed=yes", "landed=no"),
            ("queued_after=404", "queued_after=200"),
            ("after=same", "after=differs"),
            ("persist=kept-across-boots", "persist="),
        ] {
            let bad = stalled.replace(from, to);
            assert!(stalled_verdict(&bad).is_err(), "{bad}");
        }
        for bad in [
            "opened=64 reopened=9 gets=19 ok=18 worst_ms=40",
            "opened=64 reopened=9 gets=19 ok=19 worst_ms=2001",
            "opened=63 reopened=9 gets=19 ok=19 worst_ms=40",
            "opened=64 reopened=9 gets=5 ok=5 worst_ms=40",
            "opened=64 reopened=9 gets=19 ok=19",
        ] {
            assert!(slow_heads_verdict(bad, 20).is_err(), "{bad}");
        }
        assert_eq!(
            timed_verdict("opened=1", 300),
            Err(
                "300 clients connected and GET / answered within 2000 ms expected: opened=1".into()
            )
        );
        // The application ignored the shutdown: dom0 timed out waiting.
        let ignored = transcript(&["PVXEN result app-shutdown ok", "PVXEN end timeout 120.0"]);
        let shutdown = &host_checks(&ignored, "aaaa", "bbbb", 2000, 5)[13];
        assert!(!shutdown.0);
        assert!(
            shutdown.1.contains("`APP stopped` never printed"),
            "{}",
            shutdown.1
        );
        // One file short, a wrong answer for a deleted key, a key lost across the re-create.
        let worse = transcript(&[
            "PVXEN result net-files files=5 ok=4 missing=404 bad=style.css; type=text/html",
            &format!(
                "PVXEN result net-kv {}",
                NET_KV_EXPECTED.replace("after=404", "after=200")
            ),
            "PVXEN result net-kv-persist persist= big=differs list={\"keys\":[]}",
        ]);
        let checks = host_checks(&worse, "aaaa", "bbbb", 2000, 5);
        assert!(
            checks[5]
                .1
                .starts_with("HOST net-files FAIL 5 archive files"),
            "{}",
            checks[5].1
        );
        assert!(checks[6].1.contains("after=200"), "{}", checks[6].1);
        assert!(
            checks[7]
                .1
                .starts_with("HOST net-kv-persist FAIL got `persist="),
            "{}",
            checks[7].1
        );
        assert!(checks[5..8].iter().all(|(ok, _)| !ok));
        let checks = host_checks(&good, "aaaa", "bbbb", 2000, 6);
        assert!(
            !checks[5].0,
            "a file missing from the fetch list is a failure"
        );
        assert!(
            files_verdict("files=5 ok=5 missing=404 bad=; type=text/plain", 5).is_err(),
            "index.html must be text/html"
        );

        let bad = transcript(&[
            "G|BLK sha256 xvda 1048576 cccc",
            "PVXEN result f_req-before 3",
            "PVXEN result f_req-start1 3",
            "PVXEN result xvda-after dddd",
            "PVXEN result net-ping rc=1 0 replies",
            "PVXEN result net-download 00",
            "PVXEN result net-upload abcd {\"sha256\":\"ef01\",\"length\":159}",
            "PVXEN result net-malformed 400 200 400 {\"uptime_ms\":9",
            "PVXEN result net-load complete=1990 failed=10 non2xx=0 rps=1200.5 grants=195/196 heap=10/10",
        ]);
        let checks = host_checks(&bad, "aaaa", "bbbb", 2000, 5);
        assert!(checks.iter().all(|(ok, _)| !ok), "{checks:?}");
        let checks = [&checks[..5], &checks[9..]].concat();
        assert!(
            checks[0]
                .1
                .contains("ping 10.0.0.2 from dom0: rc=1 0 replies")
        );
        assert!(
            checks[1]
                .1
                .contains("HOST net-download FAIL GET /blob/16777216 has sha256 00")
        );
        assert!(
            checks[2]
                .1
                .contains("HOST net-upload FAIL sent sha256 abcd")
        );
        assert!(checks[3].1.contains("HOST net-malformed FAIL"));
        assert!(
            checks[4]
                .1
                .contains("HOST net-load FAIL ab -k -n 2000 -c 16: complete=1990")
        );
        let checks = &checks[5..];
        assert!(
            checks[0]
                .1
                .starts_with("HOST blk-pattern FAIL guest read sha256 cccc")
        );
        assert!(checks[1].1.contains("dom0 gave no `xvdb-head`"));
        assert!(checks[2].1.contains("xvda changed"));
        assert!(checks[3].1.contains("from 3 to 3"));
        let short = transcript(&["G|BLK sha256 xvda 512 aaaa"]);
        assert!(
            host_checks(&short, "aaaa", "b", 2000, 5)[9]
                .1
                .contains("read 512 bytes")
        );
    }

    #[test]
    fn the_job_prepares_the_disks_and_crashes_the_store_three_times() {
        let files = [("index.html".to_owned(), "ab".repeat(32))];
        let job = job(vec![1, 2, 3], &files, &[1500, 700, 2999], 2000).unwrap();
        let steps = job.steps_text().unwrap();
        let order: Vec<String> = steps
            .lines()
            .map(|l| l.splitn(3, ' ').take(2).collect::<Vec<_>>().join(" "))
            .collect();
        let mut want = vec![
            "run backend",
            "run prep-xvda",
            "run prep-xvdb",
            "run net",
            "create guest.cfg",
            "run f_req-before",
            "unpause",
            "wait-line BLK",
            "run resize-grow",
            "wait-line BLK",
            "run resize-shrink",
            "wait-line NET",
            "run net-ping",
            "run net-stack-early",
            "run net-download",
            "run net-upload",
            "run net-malformed",
            "run net-load",
            "run net-bench",
            "run net-files",
            "run net-kv",
            "run net-head-range-etag",
            "run net-churn",
            "run net-slow-heads",
            "run net-stack",
            "run net-diag",
            "run net-done",
            "run net-diag-after",
        ];
        for storm in 1..=3 {
            if storm > 1 {
                want.push(["create guest-kv2.cfg", "create guest-kv3.cfg"][storm - 2]);
                want.push("unpause");
            }
            want.extend([
                "wait-line KV",
                ["run f_req-start1", "run f_req-start2", "run f_req-start3"][storm - 1],
                "run storm-go",
                "run slept",
                "pause",
                ["run f_req-pause1", "run f_req-pause2", "run f_req-pause3"][storm - 1],
                "destroy",
            ]);
        }
        want.extend([
            "create guest-kv4.cfg",
            "unpause",
            "wait-end",
            "destroy",
            "run net-stall-prep",
            "create guest-app.cfg",
            "wait-line APP",
            "run net-kv-persist",
            "run net-stalled-disk",
            "run save-migrate",
            "run save-save-restore",
            "run save-refuse",
            "run save-checkpoint",
            "run save-put-during",
            "run save-boot-suspend",
            "run save-missing-backend",
            "run app-stack",
            "run app-reboot",
            "run app-shutdown",
            "wait-end",
            "destroy",
            "run net-off-mark",
            "create guest-net-off.cfg",
            "run net-off-serving",
            "run net-off-download",
            "run net-off-upload",
            "run net-off-done",
            "wait-end",
            "run net-off-end",
            "destroy",
            "create guest-blk-off.cfg",
            "wait-end",
            "destroy",
            "digest xvda-after",
            "digest xvdb-head",
        ]);
        assert_eq!(order, want);
        assert!(steps.contains("net-checks.sh 10.0.0.2 files /pvxen/files.sha256"));
        assert!(steps.contains("vbd-$($XL domid pvguest)-51728/statistics/f_req"));
        assert!(steps.contains("run slept sleep 2.700 && echo ok"));
        assert!(steps.contains("wait-line BLK resize grow xvdb\n"));
        assert!(steps.contains("truncate -s 7340032 $f && losetup -c $dev"));
        assert!(steps.contains("wait-line BLK resize shrink xvdb\n"));
        assert!(steps.contains("truncate -s 6291456 $f && losetup -c $dev"));
        assert!(job.config.contains("access=ro, target=/tmp/xvda.img"));
        assert!(job.config.contains(&cmdline()));
        let names: Vec<&str> = job.files.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "xvda.img",
                "net-checks.sh",
                "files.sha256",
                "guest-kv2.cfg",
                "guest-kv3.cfg",
                "guest-kv4.cfg",
                "guest-app.cfg",
                "guest-blk-off.cfg",
                "guest-net-off.cfg",
                "save-checks.sh"
            ]
        );
        let net_off = String::from_utf8(job.files[8].1.clone()).unwrap();
        assert!(net_off.contains("net-offloads=off") && !net_off.contains("disk"));
        let off = String::from_utf8(job.files[7].1.clone()).unwrap();
        assert!(off.contains(
            "cmdline = \"selftest=blk blk-expect=xvda:1048576:r,xvdb:6291456:w \
             blk-multipage-ring=off blk-indirect=off blk-persistent=off blk-discard=off \
             blk-multiqueue=off\""
        ));
        assert!(!off.contains("vif"));
        let sums = String::from_utf8(job.files[2].1.clone()).unwrap();
        assert_eq!(sums, format!("{}  index.html\n", "ab".repeat(32)));
        let kv3 = String::from_utf8(job.files[4].1.clone()).unwrap();
        assert!(kv3.contains("cmdline = \"kv-check kv-storm=3 kv-storm-go\""));
        let kv4 = String::from_utf8(job.files[5].1.clone()).unwrap();
        assert!(kv4.contains("cmdline = \"kv-check\""));
        let app = String::from_utf8(job.files[6].1.clone()).unwrap();
        assert!(app.contains("cmdline = \"ip=dhcp kv-region=4194304+2097152\""));
        assert!(app.contains("bridge=xenbr0") && app.contains("vdev=xvdb"));
        assert!(
            app.contains("on_reboot = \"restart\"\n") && app.contains("on_poweroff = \"preserve\"")
        );
        assert!(job.config.contains("kv-region=4194304+2097152"));
    }

    #[test]
    fn the_features_off_run_is_judged_apart() {
        let mut lines = vec!["PVXEN created at 1", "G|TEST blk-connect ok"];
        lines.extend(["G|RESULT 1 passed, 0 failed"]);
        lines.extend(["PVXEN created at 2"; 3]);
        lines.extend(["PVXEN created at 3", "G|APP serving"]);
        lines.extend(["PVXEN created at 4", "G|TEST net-connect ok"]);
        let before_off = lines.clone();
        lines.extend([
            "PVXEN created at 5",
            "G|TEST blk-connect ok",
            "G|FACT blk-indirect.segments 0",
            "G|TEST blk-indirect FAIL used",
            "G|RESULT 1 passed, 1 failed",
            "PVXEN end crash 9",
        ]);
        lines.push("PVXEN console-lines 8");
        let t = transcript(&lines);
        let (main, net, off) = split_features_off(&t);
        assert_eq!(main.guest.len(), 3);
        assert_eq!(net, ["TEST net-connect ok"]);
        assert_eq!(off.len(), 4);
        assert_eq!(main.forwarded, Some(3));
        let (judged, (ok, host)) = judge_features_off(&off, t.end.as_ref());
        assert_eq!(judged.tests.len(), 2);
        assert!(judged.tests[0].ok && !judged.tests[1].ok);
        assert!(
            !ok && host == "HOST xen-run-blk-off FAIL the guest crashed",
            "{host}"
        );
        let good = [
            "G|TEST blk-connect ok",
            "G|RESULT 1 passed, 0 failed",
            "PVXEN end poweroff 9",
        ];
        let t = transcript(&[before_off.as_slice(), &["PVXEN created at 5"], &good].concat());
        let (_, net, off) = split_features_off(&t);
        assert_eq!(net.len(), 1);
        let (_, (ok, host)) = judge_features_off(&off, t.end.as_ref());
        assert!(ok, "{host}");
        // The blk run not created (a create short): no lines of it, a failure; the net run's
        // lines are its own.
        let t = transcript(&before_off);
        let (main, net, off) = split_features_off(&t);
        assert_eq!((main.guest.len(), net.len(), off.len()), (3, 1, 0));
        let (_, (ok, host)) = judge_features_off(&off, t.end.as_ref());
        assert!(!ok && host.contains("not created"), "{host}");
        // Neither created: the boot's lines stay whole.
        let t = transcript(&lines[..lines.len() - 9]);
        let (main, net, off) = split_features_off(&t);
        assert_eq!((main.guest.len(), net.len(), off.len()), (3, 0, 0));
    }

    /// A transcript of three crash points: `acks[i]` puts acknowledged in storm i+1, the check
    /// after it finding `found[i]`.
    fn durable_transcript(
        acks: [u64; 3],
        found: [Vec<(String, String)>; 3],
        f_req: [u64; 3],
    ) -> Transcript {
        let mut t = Transcript::default();
        for storm in 1..=3u64 {
            t.push(&format!("G|KV storm {storm} started"));
            t.push(&format!("PVXEN result f_req-start{storm} 0"));
            for n in 0..acks[storm as usize - 1] {
                t.push(&format!(
                    "G|KV ack {} {}",
                    storm_key(storm, n),
                    storm_value(storm, n)
                ));
            }
            t.push("PVXEN paused at 1.0");
            t.push(&format!(
                "PVXEN result f_req-pause{storm} {}",
                f_req[storm as usize - 1]
            ));
            t.push("G|KV check begin");
            for (k, v) in &found[storm as usize - 1] {
                t.push(&format!("G|KV found {k} {v}"));
            }
            t.push(&format!(
                "G|KV check done {}",
                found[storm as usize - 1].len()
            ));
        }
        t
    }

    /// The store after storms with `acks` puts each (the last value of each key).
    fn expected(acks: &[u64]) -> Vec<(String, String)> {
        let mut m = BTreeMap::new();
        for (i, &a) in acks.iter().enumerate() {
            for n in 0..a {
                m.insert(storm_key(i as u64 + 1, n), storm_value(i as u64 + 1, n));
            }
        }
        m.into_iter().collect()
    }

    #[test]
    fn durable_check_accepts_exactly_what_was_acknowledged() {
        let acks = [50, 3, 0];
        let found = [
            expected(&acks[..1]),
            expected(&acks[..2]),
            expected(&acks[..3]),
        ];
        let (verdict, summary) =
            durable_check(&durable_transcript(acks, found.clone(), [60, 3, 0]));
        assert_eq!(verdict, Ok(()), "{summary:?}");
        assert_eq!(summary.len(), 3);
        // The put in flight at the pause may be there too.
        let mut with_flight = found.clone();
        with_flight[1].retain(|(k, _)| *k != storm_key(2, 3));
        with_flight[1].push((storm_key(2, 3), storm_value(2, 3)));
        with_flight[2] = with_flight[1].clone();
        assert_eq!(
            durable_check(&durable_transcript(acks, with_flight, [60, 3, 0])).0,
            Ok(())
        );
    }

    #[test]
    fn a_last_ack_cut_short_by_the_pause_is_in_flight() {
        let acks = [5, 2, 0];
        let found = [
            expected(&acks[..1]),
            expected(&acks[..2]),
            expected(&acks[..3]),
        ];
        let mut t = durable_transcript(acks, found, [5, 2, 0]);
        // Storm 1's sixth ack, cut short just before the pause.
        let pause = t.pauses[0];
        t.guest.insert(pause, "KV ack k".into());
        for p in &mut t.pauses {
            *p += 1;
        }
        assert_eq!(durable_check(&t).0, Ok(()));
        // A cut line anywhere else is an error.
        t.guest.insert(pause - 1, "KV ack k".into());
        for p in &mut t.pauses {
            *p += 1;
        }
        assert!(durable_check(&t).0.is_err());
    }

    #[test]
    fn durable_check_catches_loss_invention_and_missing_flushes() {
        let acks = [50, 3, 0];
        let good = [
            expected(&acks[..1]),
            expected(&acks[..2]),
            expected(&acks[..3]),
        ];
        let mut lost = good.clone();
        lost[0].pop();
        let (v, _) = durable_check(&durable_transcript(acks, lost, [60, 3, 0]));
        assert!(v.unwrap_err().contains("lost"));
        let mut invented = good.clone();
        invented[1].push(("k99".into(), "never".into()));
        let (v, _) = durable_check(&durable_transcript(acks, invented, [60, 3, 0]));
        assert!(v.unwrap_err().contains("never acknowledged"));
        let (v, _) = durable_check(&durable_transcript(acks, good.clone(), [49, 3, 0]));
        assert!(v.unwrap_err().contains("only 49 flushes"));
        let mut stale = good;
        stale[0][0].1 = "s1n0".into();
        let key0 = stale[0][0].0.clone();
        let (v, _) = durable_check(&durable_transcript(acks, stale, [60, 3, 0]));
        assert!(v.is_err(), "an old value of {key0} must not pass");
    }

    #[test]
    fn the_storm_matches_the_guests() {
        // The same literals as pvguest/src/durable/storm.rs's test.
        assert_eq!(storm_key(1, 0), "k01");
        assert_eq!(storm_key(1, 1), "k08");
        assert_eq!(storm_value(2, 3), "s2n3xxx");
        assert_eq!(storm_value(2, 64), "s2n64");
        let delays = pause_delays(7);
        assert_eq!(delays.len(), 3);
        assert!(delays.iter().all(|d| (500..3000).contains(d)));
        assert_eq!(delays, pause_delays(7));
        assert_ne!(delays, pause_delays(8));
    }

    #[test]
    fn the_site_image_is_a_tar_with_its_manifest() {
        let site = workspace_root().join("pvguest").join("site");
        let archive = site_archive(&site, true).unwrap();
        assert!(archive.tar.len() <= XVDA_BYTES);
        let paths: Vec<&str> = archive.files.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(paths[0], MANIFEST);
        assert!(paths.contains(&"index.html") && paths.contains(&"data/pattern.bin"));
        let pattern: Vec<u8> = (0..GENERATED.1).map(harness_pattern).collect();
        let digest = hex(&Sha256::digest(&pattern));
        assert!(
            archive
                .files
                .contains(&("data/pattern.bin".to_owned(), digest))
        );
        assert!(
            !site_archive(&site, false)
                .unwrap()
                .files
                .iter()
                .any(|(p, _)| p == "data/pattern.bin")
        );
        let image = archive.tar;
        let text = String::from_utf8_lossy(&image);
        assert!(text.contains("MANIFEST.sha256"));
        assert!(text.contains("index.html"));
        assert!(text.contains("ustar"));
        assert!(text.contains("  data/pattern.bin\n"));
    }

    #[test]
    fn the_load_verdict_wants_every_answer_and_the_grants_back() {
        let good = "complete=2000 failed=0 non2xx=0 rps=9 grants=195/195 heap=1/1";
        assert_eq!(load_verdict(good, 2000), Ok(()));
        assert!(load_verdict(good, 10_000).is_err());
        for bad in [
            "complete=1999 failed=0 non2xx=0 rps=9 grants=195/195 heap=1/1",
            "complete=2000 failed=1 non2xx=0 rps=9 grants=195/195 heap=1/1",
            "complete=2000 failed=0 non2xx=3 rps=9 grants=195/195 heap=1/1",
            "complete=2000 failed=0 non2xx=0 rps=9 grants=195/196 heap=1/1",
            "complete=2000 failed=0 non2xx=0 rps=9 grants=/ heap=1/1",
            "complete=2000 failed=0 non2xx=0 rps=9 grants=195/195 heap=825216/825344",
            "",
        ] {
            assert!(load_verdict(bad, 2000).is_err(), "{bad}");
        }
    }

    #[test]
    fn patterns_tell_sectors_apart() {
        let sector = |n: usize| {
            (n * 512..(n + 1) * 512)
                .map(harness_pattern)
                .collect::<Vec<_>>()
        };
        assert_ne!(sector(0), sector(1));
        assert_ne!(sector(1), sector(2048));
        assert_eq!(
            (guest_pattern(0), guest_pattern(251), guest_pattern(250)),
            (0x5a, 0x5a, 250 ^ 0x5a)
        );
    }
}
