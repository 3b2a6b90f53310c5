//! The feature rows of a full `cargo xtask bench` (issues 29 and 30): pvguest's front ends
//! with each negotiated feature switched off in turn, then all of them, beside every feature
//! on and beside a Linux PVH domU, measured in one stock-Xen boot of their own. dom0 drives
//! and times everything, so that every variant meets the same client on the same path (its
//! bridge and Linux's netback or blkback), as the issues measured them:
//! - network ([`NET_VARIANTS`]): pvguest's application created with the variant's switches on
//!   its command line; busybox `wget` in dom0 downloads `GET /blob/16777216` (its SHA-256
//!   compared with the generator's), uploads 16 MiB to `POST /discard` (read and dropped,
//!   the upload row: the work nginx does for the Linux domU's `/sink`), then the same to `POST
//!   /sink` (hashed by the guest, the digest it answers compared with dom0's: a row for every
//!   feature on); `ab -k -n 2000 -c 16 /blob/1024`; then the same for the Linux domU (zero
//!   blobs; its nginx drops the upload unhashed; no hashed upload). Times are dom0's
//!   `/proc/uptime` (10 ms steps, against transfers of seconds).
//! - block ([`BLK_VARIANTS`]): the `selftest=bench` guest with the variant's switches, its
//!   `BENCH` lines (sequential MB/s at depth 1 and full, 4 KiB random-read IOPS), on stock
//!   Xen in that boot and on hv in a short boot per variant (against hv's blkback, which
//!   offers the same features); Linux's `dd` figures are the main rounds' rows.
//!
//! One sample per variant (the boots run once per full bench, after the rounds).
//!
//! `PVXEN_BENCH_VARIANTS=<i>,<j>,...` (indices into [`NET_VARIANTS`]) measures only those
//! network variants and the Linux domU, and no block variant: a short run while working on
//! the network path (the report then lacks the other rows). `PVXEN_BENCH_EXTRA=<words>;<words>`
//! adds, after the picked variants, one unrecorded variant per `;`-separated entry: every
//! feature on with those words added to the guest's command line (e.g. `http-buffer-kib=128`),
//! printed with its counters like the others ([`extra_variants`]). `PVXEN_BENCH_PROFILE=<i>` adds a
//! poor man's profile of variant `i`: dom0 reads the guest's RIP (`xen-hvmctx`) as fast as
//! it can during three uploads, then three downloads, and the samples are printed by
//! function ([`profile_report`]). pvguest's counters around each transfer (`GET /` before
//! and after: frames, pure ACKs and the window they advertised, ACKs sent after a timer,
//! how long the event loop slept) are printed for every variant ([`transfer_counters`]).

use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use sha2::{Digest, Sha256};

use super::report::{Kind, Row, System};
use super::{
    BLOCK_MB, BLOCK_ROWS, Dom0Boot, RAND_ROW, Rows, add_linux, bench_block_lines, dom0_boot,
    hv_bench_boot,
};
use crate::build::workspace_root;
use crate::xen::blk::{harness_pattern, hex};

/// The network variants: a name for the rows and the guest's switches.
pub const NET_VARIANTS: &[(&str, &str)] = &[
    ("every feature on", ""),
    ("scatter-gather off", "net-sg=off"),
    ("GSO send off", "net-gso-tx=off"),
    ("GSO receive off", "net-gso-rx=off"),
    ("checksum offload off", "net-csum=off"),
    ("split event channels off", "net-split-evtchn=off"),
    ("multiple queues off", "net-multiqueue=off"),
    ("every feature off", "net-offloads=off"),
];

/// The block variants (discard is left out: no figure here sends one).
pub const BLK_VARIANTS: &[(&str, &str)] = &[
    ("every feature on", ""),
    ("indirect segments off", "blk-indirect=off"),
    ("persistent grants off", "blk-persistent=off"),
    ("multi-page ring off", "blk-multipage-ring=off"),
    ("multiple queues off", "blk-multiqueue=off"),
    (
        "every feature off",
        "blk-indirect=off blk-persistent=off blk-multipage-ring=off blk-discard=off \
         blk-multiqueue=off",
    ),
];

/// Bytes of each transfer.
const BULK: usize = 16 << 20;
/// dom0's address on `xenbr0`, the guests' subnet (QEMU's user network is not used).
const DOM0_IP: &str = "10.0.9.1";
/// pvguest's address.
const PVGUEST_IP: &str = "10.0.9.2";
/// The Linux domU's address.
const LINUX_IP: &str = "10.0.9.3";
/// The key of the warm-up variant's step (measured as the first variant, not recorded).
const WARM_UP: &str = "features-net-warmup";
/// How long the whole boot may take.
const TIMEOUT: Duration = Duration::from_secs(1800);

/// dom0's shell functions: `variant "<switches>"` creates pvguest from `/pvxen/guest.cfg`
/// with the switches added to its command line, measures it and destroys it; `linux`
/// does the same for `/pvxen/linux.cfg`; `blk "<switches>"` runs the bench guest. Each
/// prints one line: `down=<MB/s> up=<MB/s> rps=<n> failed=<n>`, or why not.
const FUNCTIONS: &str = "now() { cut -d' ' -f1 /proc/uptime; }; \
     mbs() { awk -v n=$1 -v a=$2 -v b=$3 'BEGIN { d = b - a; if (d < 0.01) d = 0.01; printf \"%.2f\", n / 1e6 / d }'; }; \
     answering() { i=0; while [ $i -lt 90 ]; do \
     timeout 3 wget -q -O /dev/null \"http://$1/\" 2>/dev/null && return 0; sleep 1; i=$((i+1)); done; return 1; }; \
     status() { [ $hashed = yes ] && timeout 10 wget -q -O - \"http://$ip/\" | tr -d ' \\n'; }; \
     rates() { ip=$1; want=$2; hashed=$3; n=16777216; \
     s0=$(status); \
     t0=$(now); timeout 300 wget -q -O /tmp/dl.bin \"http://$ip/blob/$n\"; t1=$(now); \
     got=$(sha256sum /tmp/dl.bin | cut -d' ' -f1); rm -f /tmp/dl.bin; \
     [ \"$got\" = \"$want\" ] || { echo \"download-digest=$got\"; return; }; \
     s1=$(status); \
     if [ $hashed = yes ]; then sink=discard; else sink=sink; fi; \
     t2=$(now); answer=$(timeout 300 wget -q -O - --post-file=/tmp/up.bin \"http://$ip/$sink\"); t3=$(now); \
     s2=$(status); \
     uph=; if [ $hashed = yes ]; then case \"$answer\" in *\"\\\"length\\\":$n}\"*) ;; \
     *) echo \"discard-answer=$(echo $answer | tr ' ' _)\"; return;; esac; \
     t4=$(now); answer=$(timeout 300 wget -q -O - --post-file=/tmp/up.bin \"http://$ip/sink\"); t5=$(now); \
     case \"$answer\" in *\"$(cat /tmp/up.sha)\"*) ;; \
     *) echo \"upload-answer=$(echo $answer | tr ' ' _)\"; return;; esac; uph=\" uph=$(mbs $n $t4 $t5)\"; fi; \
     timeout 300 ab -k -n 2000 -c 16 \"http://$ip/blob/1024\" > /tmp/abf.log 2>&1; \
     rps=$(awk '/^Requests per second/ {print $4}' /tmp/abf.log); \
     failed=$(awk '/^Failed requests/ {print $3}' /tmp/abf.log); \
     why=; [ -n \"$rps\" ] || why=\" ab-said=$(grep -v '^$' /tmp/abf.log | tail -n 2 | tr ' \\n' '__')\"; \
     s3=$(status); \
     echo \"down=$(mbs $n $t0 $t1) up=$(mbs $n $t2 $t3)$uph rps=${rps:-none} failed=${failed:-none}$why\" \
     \"status0=${s0:--} status1=${s1:--} status2=${s2:--} status3=${s3:--}\"; }; \
     variant() { sed \"s|^cmdline = \\\"\\(.*\\)\\\"|cmdline = \\\"\\1 $1\\\"|\" /pvxen/guest.cfg > /tmp/v.cfg; \
     $XL create /tmp/v.cfg > /tmp/vc.log 2>&1 || { echo create-failed; return; }; \
     if answering $PV_IP; then rates $PV_IP $BLOB_SHA yes; else echo no-answer; fi; \
     $XL destroy pvguest > /dev/null 2>&1; sleep 1; }; \
     linux() { $XL create /pvxen/linux.cfg > /tmp/lc.log 2>&1 || { echo create-failed; return; }; \
     if answering $LX_IP; then rates $LX_IP $ZERO_SHA no; else echo no-answer; fi; \
     $XL destroy linux > /dev/null 2>&1; sleep 1; }; \
     profile() { sed \"s|^cmdline = \\\"\\(.*\\)\\\"|cmdline = \\\"\\1 $1\\\"|\" /pvxen/guest.cfg > /tmp/p.cfg; \
     $XL create /tmp/p.cfg > /tmp/pc.log 2>&1 || { echo create-failed; return; }; \
     answering $PV_IP || { echo no-answer; return; }; d=$($XL domid pvguest); \
     for dir in up down; do rm -f /tmp/pdone; : > /tmp/rips; \
     ( for i in 1 2 3; do if [ $dir = up ]; then \
     timeout 300 wget -q -O /dev/null --post-file=/tmp/up.bin \"http://$PV_IP/sink\"; \
     else timeout 300 wget -q -O /dev/null \"http://$PV_IP/blob/16777216\"; fi; done; touch /tmp/pdone ) & \
     while [ ! -f /tmp/pdone ]; do xen-hvmctx $d 2>/dev/null | tr -s ' \\n\\t' ' ' | \
     grep -o 'rip [0-9a-fx]*' | head -n 1 | cut -d' ' -f2 >> /tmp/rips; done; wait; \
     printf '%s=' $dir; sort /tmp/rips | uniq -c | awk '{ printf \"%s:%s,\", $2, $1 }'; printf ' '; done; \
     echo; $XL destroy pvguest > /dev/null 2>&1; sleep 1; }; \
     blk() { sed \"s|^cmdline = \\\"\\(.*\\)\\\"|cmdline = \\\"\\1 $1\\\"|\" /pvxen/bench.cfg > /tmp/b.cfg; \
     rm -f /var/log/xen/xl-bench.log /var/log/xen/console/guest-bench.log; \
     $XL create /tmp/b.cfg > /dev/null 2>&1 || { echo create-failed; return; }; \
     i=0; while [ $i -lt 900 ] && ! grep -q 'reason code' /var/log/xen/xl-bench.log 2>/dev/null; \
     do sleep 0.2; i=$((i+1)); done; sleep 1; $XL destroy bench > /dev/null 2>&1; \
     grep -a '^BENCH ' /var/log/xen/console/guest-bench.log | tr -d '\\r' | tr '\\n' ';'; }";

/// One network variant's figures.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NetFigures {
    /// Download MB/s.
    pub down: f64,
    /// Upload MB/s (read and dropped: pvguest's `POST /discard`, nginx's `/sink`).
    pub up: f64,
    /// pvguest's hashed upload (`POST /sink`, its digest checked), MB/s; `None` for Linux.
    pub up_hashed: Option<f64>,
    /// Requests per second over 16 keep-alive connections.
    pub rps: f64,
}

/// Parses a `down=.. up=.. rps=.. failed=0` line; `Err` says what the line said instead.
pub fn parse_net(line: &str) -> Result<NetFigures, String> {
    let field = |name: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
    };
    let num = |name: &str| field(name).and_then(|v| v.parse::<f64>().ok());
    match (num("down"), num("up"), num("rps"), field("failed")) {
        (Some(down), Some(up), Some(rps), Some("0")) => Ok(NetFigures {
            down,
            up,
            up_hashed: num("uph"),
            rps,
        }),
        (Some(_), Some(_), Some(_), failed) => Err(format!(
            "ab reported {} failed requests: {line}",
            failed.unwrap_or("no count of")
        )),
        _ => Err(format!("dom0 said `{}`", line.trim())),
    }
}

/// The counter `name` in one of pvguest's status documents (`GET /`, its spaces removed):
/// the first `"name":<number>`.
fn status_field(doc: &str, name: &str) -> Option<u64> {
    let at = doc.find(&format!("\"{name}\":"))? + name.len() + 3;
    let digits: String = doc[at..].chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// What pvguest's counters say of each transfer of a variant's line (its `status0..2=`
/// documents, taken before the download, between, and after the upload): frames each way,
/// GSO frames, pure ACKs and the window they advertised, ACKs sent from a timer, and how
/// much of the transfer the event loop slept. Nothing for a line without them (Linux's).
pub fn transfer_counters(line: &str, figures: &NetFigures) -> Vec<String> {
    let doc = |n: usize| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("status{n}=")))
            .filter(|d| d.starts_with('{'))
    };
    let mut out = Vec::new();
    for (what, from, to, mbs) in [
        ("download", 0, 1, figures.down),
        ("upload", 1, 2, figures.up),
    ] {
        let (Some(a), Some(b)) = (doc(from), doc(to)) else {
            continue;
        };
        let grew = |name: &str| {
            status_field(b, name)
                .unwrap_or(0)
                .saturating_sub(status_field(a, name).unwrap_or(0))
        };
        let acks = grew("tx_acks");
        let secs = (BULK as f64 / 1e6) / mbs.max(0.01);
        let asleep = grew("asleep_us") as f64 / 1e6;
        // The guest's own clock between the two documents (the transfer and dom0's steps
        // around it).
        let span = (grew("uptime_ms") as f64 / 1e3).max(0.001);
        out.push(format!(
            "{what} ({secs:.2} s): frames rx {} (gso {}) tx {} (gso {}); pure acks {acks} \
             (window field {} avg, {} zero, {} after a timer); loop {} turns, asleep {:.0}% \
             of {span:.2} s",
            grew("rx_packets"),
            grew("rx_gso"),
            grew("tx_packets"),
            grew("tx_gso"),
            grew("tx_ack_window_sum") / acks.max(1),
            grew("tx_zero_window_acks"),
            grew("timer_acks"),
            grew("turns"),
            100.0 * asleep / span,
        ));
    }
    out
}

/// What pvguest's service counted during `ab` (its `status2=` and `status3=` documents, before
/// and after): connections, SYNs dropped, slots reclaimed, handshakes timed out. `None` for a
/// line without them (Linux's, or a guest that no longer answered).
pub fn ab_counters(line: &str) -> Option<String> {
    let doc = |n: usize| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("status{n}=")))
            .filter(|d| d.starts_with('{'))
    };
    let (a, b) = (doc(2)?, doc(3)?);
    let grew = |name: &str| {
        status_field(b, name)
            .unwrap_or(0)
            .saturating_sub(status_field(a, name).unwrap_or(0))
    };
    Some(format!(
        "ab: connections {}, requests {}, syns dropped {}, reclaimed {}, handshake timeouts {}, \
         close timeouts {}",
        grew("connections"),
        grew("requests"),
        grew("syns_dropped"),
        grew("reclaimed"),
        grew("handshake_timeouts"),
        grew("close_timeouts"),
    ))
}

/// The functions where pvguest's vCPU was found (`PVXEN_BENCH_PROFILE`: dom0 read its RIP
/// with `xen-hvmctx` over and over during three uploads, then three downloads), most
/// frequent first, from dom0's `up=<rip>:<count>,... down=...` line and the guest's ELF.
fn profile_report(line: &str, guest: &Path) -> Vec<String> {
    let mut symbols = crate::symbols::Symbols::new(guest);
    let mut out = Vec::new();
    for word in line.split_whitespace() {
        let Some((dir, samples)) = word.split_once('=') else {
            continue;
        };
        let mut by_function: std::collections::BTreeMap<String, u64> = Default::default();
        let mut total = 0;
        for sample in samples.split(',').filter(|s| !s.is_empty()) {
            let Some((rip, n)) = sample.split_once(':') else {
                continue;
            };
            let n: u64 = n.parse().unwrap_or(0);
            total += n;
            // The outermost frame at the address: the function the code was inlined into.
            let name = symbols
                .resolve_line(&format!("BACKTRACE fault {rip}"))
                .and_then(|frames| frames.last().cloned())
                .and_then(|f| f.split_whitespace().nth(1).map(str::to_owned))
                .unwrap_or_else(|| rip.to_owned());
            *by_function.entry(name).or_default() += n;
        }
        let mut ranked: Vec<(String, u64)> = by_function.into_iter().collect();
        ranked.sort_by_key(|r| std::cmp::Reverse(r.1));
        let top: Vec<String> = ranked
            .iter()
            .take(12)
            .map(|(f, n)| format!("{:.0}% {f}", 100.0 * *n as f64 / total.max(1) as f64))
            .collect();
        out.push(format!("{dir} ({total} samples): {}", top.join("; ")));
    }
    out
}

/// The rows' names for a network variant.
fn net_row_names(variant: &str) -> [String; 3] {
    [
        format!("download 16 MiB from dom0, {variant}"),
        format!("upload 16 MiB from dom0, {variant}"),
        format!("requests/s from dom0 (ab -k -c 16), {variant}"),
    ]
}

/// The row of pvguest's hashed upload (`POST /sink`), every feature on only.
fn hashed_row_name(variant: &str) -> String {
    format!("upload 16 MiB from dom0, SHA-256 in the guest, {variant}")
}

/// Declares the rows a full run must fill.
pub(super) fn declare(rows: &mut Rows) {
    for (i, (variant, _)) in NET_VARIANTS.iter().enumerate() {
        // Linux sits beside the every-feature-on variant only.
        let systems: &[System] = if i == 0 {
            &[System::PvguestXen, System::LinuxXen]
        } else {
            &[System::PvguestXen]
        };
        for (name, unit) in net_row_names(variant)
            .into_iter()
            .zip(["MB/s", "MB/s", "req/s"])
        {
            let mut row = net_row(unit);
            row.name = name;
            rows.declare(row, systems);
        }
        if i == 0 {
            let mut row = net_row("MB/s");
            row.name = hashed_row_name(variant);
            rows.declare(row, &[System::PvguestXen]);
        }
    }
    for (variant, _) in BLK_VARIANTS {
        for (name, unit) in BLOCK_ROWS
            .iter()
            .map(|(_, name)| (*name, "MB/s"))
            .chain([(RAND_ROW, "IOPS")])
        {
            let mut row = Row::new(BLK_GROUP, "", unit, Kind::Higher, "one sample per variant");
            row.name = format!("{name}, {variant}");
            rows.declare(row, &[System::PvguestHv, System::PvguestXen]);
        }
    }
}

fn net_row(unit: &'static str) -> Row {
    Row::new(
        "features (stock Xen, dom0's busybox wget and ab over the bridge)",
        "",
        unit,
        Kind::Higher,
        "one sample per variant, in a boot of its own",
    )
}

/// Runs the features boot and adds its rows.
pub(super) fn measure(
    rows: &mut Rows,
    hv: &Path,
    guest: &Path,
    image: &crate::xen::image::Image,
    linux: Option<&crate::linux_domu::LinuxDomU>,
) -> Result<()> {
    use crate::xen::job::Step;
    let Dom0Boot { mut job, devices } = dom0_boot(
        "xen-features-store.img",
        &format!("ip={PVGUEST_IP}/24 gw={DOM0_IP}"),
    )?;
    let bench_cfg = crate::xen::xl_config(
        &format!("selftest=bench bench-disk=xvda bench-mb={}", BLOCK_MB.1),
        "disk = [ 'format=raw, vdev=xvda, access=rw, target=/tmp/bench-disk.img' ]\n",
    )?
    .replace("name = \"pvguest\"", "name = \"bench\"");
    job.files.push(("bench.cfg".into(), bench_cfg.into_bytes()));
    let blob_sha = hex(&Sha256::digest(
        (0..BULK).map(harness_pattern).collect::<Vec<u8>>(),
    ));
    let zero_sha = hex(&Sha256::digest(vec![0u8; BULK]));
    let env = format!(
        "{FUNCTIONS}; PV_IP={PVGUEST_IP}; LX_IP={LINUX_IP}; BLOB_SHA={blob_sha}; ZERO_SHA={zero_sha}"
    );
    let run = |key: String, command: String| Step::Run { key, command };
    job.steps.push(run(
        "features-prep".into(),
        format!(
            "ip addr add {DOM0_IP}/24 dev xenbr0 && \
             head -c {BULK} /dev/urandom | tr '\\000' '\\001' > /tmp/up.bin && \
             sha256sum /tmp/up.bin | cut -d' ' -f1 > /tmp/up.sha && \
             dd if=/dev/zero of=/tmp/bench-disk.img bs=1M count=0 seek=64 2>/dev/null && echo ok"
        ),
    ));
    let picked = picked_variants();
    let wanted = |i: usize| picked.as_ref().is_none_or(|p| p.contains(&i));
    // A warm-up, not recorded: in two runs of three the first variant after dom0's boot
    // (every feature on, each time) ran at a fraction of its rate (2.39 and 9.43 MB/s down
    // against 28.93 in the third; in one the second variant too), the later ones normal. The
    // warm-up's own line, printed, shows whether it is the first transfer after the boot.
    job.steps.push(run(
        WARM_UP.into(),
        format!("{env}; variant \"{}\"", NET_VARIANTS[0].1),
    ));
    for (i, (_, switches)) in NET_VARIANTS.iter().enumerate() {
        if !wanted(i) {
            continue;
        }
        job.steps.push(run(
            format!("features-net-{i}"),
            format!("{env}; variant \"{switches}\""),
        ));
    }
    let extras = extra_variants();
    for (i, words) in extras.iter().enumerate() {
        job.steps.push(run(
            format!("features-net-extra-{i}"),
            format!("{env}; variant \"{words}\""),
        ));
    }
    let profiled = std::env::var("PVXEN_BENCH_PROFILE")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .and_then(|i| NET_VARIANTS.get(i));
    if let Some((_, switches)) = profiled {
        job.steps.push(run(
            "features-profile".into(),
            format!("{env}; profile \"{switches}\""),
        ));
    }
    if let Some(linux) = linux {
        let config = crate::linux_domu::Config {
            ip: format!("{LINUX_IP}/24"),
            gateway: DOM0_IP.into(),
            port: 80,
            blobs: vec![BULK],
            blk_bench: None,
        };
        add_linux(&mut job, linux, &config, "")?;
        job.steps
            .push(run("features-net-linux".into(), format!("{env}; linux")));
    }
    let blk_variants = if picked.is_some() {
        &[][..]
    } else {
        BLK_VARIANTS
    };
    for (i, (_, switches)) in blk_variants.iter().enumerate() {
        job.steps.push(run(
            format!("features-blk-{i}"),
            format!("{env}; blk \"{switches}\""),
        ));
    }
    let boot = crate::xen::qemu::Boot {
        image,
        overlay: crate::xen::overlay(guest, &job, TIMEOUT)?,
        run_dir: workspace_root()
            .join("target")
            .join("pvxen")
            .join("bench-xen-features"),
        timeout: TIMEOUT,
        devices,
        stop: None,
    };
    println!(
        "bench: stock Xen: pvguest with each front-end feature off in turn ({} network and {} \
         block variants), and the Linux domU, measured by dom0",
        (0..NET_VARIANTS.len()).filter(|&i| wanted(i)).count(),
        blk_variants.len()
    );
    let booted = crate::xen::qemu::boot(&boot, |_, _| {})?;
    let result = |key: &str| {
        booted
            .transcript
            .results
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.trim().to_owned())
    };
    let mut net = |key: &str, variant: &str, system: System, record: bool| {
        let line = result(key).unwrap_or_else(|| "no result".into());
        // An unrecorded variant's transfers are shown even when ab failed.
        let parsed = match parse_net(&line) {
            Err(e) if !record => {
                println!("bench: {} {variant}: {e}", system.label());
                parse_net(
                    &line
                        .replace("rps=none", "rps=0")
                        .replace("failed=none", "failed=0"),
                )
            }
            parsed => parsed,
        };
        match parsed {
            Ok(f) => {
                let hashed = f
                    .up_hashed
                    .map(|h| format!(" (hashed by the guest {h:.2})"))
                    .unwrap_or_default();
                println!(
                    "bench: {} {variant}: download {:.2} MB/s, upload {:.2} MB/s{hashed}, {:.0} req/s",
                    system.label(),
                    f.down,
                    f.up,
                    f.rps
                );
                for line in transfer_counters(&line, &f) {
                    println!("bench: {} {variant}: {line}", system.label());
                }
                if let Some(ab) = ab_counters(&line) {
                    println!("bench: {} {variant}: {ab}", system.label());
                }
                if !record {
                    return;
                }
                let [down, up, rps] = net_row_names(variant);
                rows.add(&down, || net_row("MB/s"), system, f.down);
                rows.add(&up, || net_row("MB/s"), system, f.up);
                rows.add(&rps, || net_row("req/s"), system, f.rps);
                if let Some(h) = f.up_hashed
                    && variant == NET_VARIANTS[0].0
                {
                    rows.add(&hashed_row_name(variant), || net_row("MB/s"), system, h);
                }
            }
            Err(e) => println!("bench: features {} {variant}: {e}", system.label()),
        }
    };
    println!(
        "bench: warm-up (not recorded): {}",
        result(WARM_UP).unwrap_or_else(|| "no result".into())
    );
    for (i, (variant, _)) in NET_VARIANTS.iter().enumerate() {
        if wanted(i) {
            net(
                &format!("features-net-{i}"),
                variant,
                System::PvguestXen,
                true,
            );
        }
    }
    for (i, words) in extras.iter().enumerate() {
        let variant = format!("{} + {words} (not recorded)", NET_VARIANTS[0].0);
        net(
            &format!("features-net-extra-{i}"),
            &variant,
            System::PvguestXen,
            false,
        );
    }
    if linux.is_some() {
        net(
            "features-net-linux",
            NET_VARIANTS[0].0,
            System::LinuxXen,
            true,
        );
    }
    if let Some((variant, _)) = profiled {
        let line = result("features-profile").unwrap_or_default();
        for out in profile_report(&line, guest) {
            println!("bench: profile of pvguest, {variant}: {out}");
        }
    }
    for (i, (variant, _)) in blk_variants.iter().enumerate() {
        let Some(joined) = result(&format!("features-blk-{i}")) else {
            println!("bench: features block {variant}: no result");
            continue;
        };
        let lines: Vec<String> = joined
            .split(';')
            .filter(|l| l.starts_with("BENCH "))
            .map(str::to_owned)
            .collect();
        if lines.is_empty() {
            println!("bench: features block {variant}: dom0 said `{joined}`");
            continue;
        }
        bench_block_lines(
            rows,
            System::PvguestXen,
            &lines,
            &format!(", {variant}"),
            BLK_GROUP,
        );
    }
    for (variant, switches) in blk_variants {
        println!("bench: hv: the selftest=bench guest, {variant}");
        match hv_bench_boot(hv, guest, BLOCK_MB.1, switches) {
            Ok((lines, _)) => bench_block_lines(
                rows,
                System::PvguestHv,
                &lines,
                &format!(", {variant}"),
                BLK_GROUP,
            ),
            Err(e) => println!("bench: features block on hv, {variant}: {e:#}"),
        }
    }
    Ok(())
}

/// The network variants `PVXEN_BENCH_VARIANTS` names (see the module docs), or `None` for
/// every variant (unset or empty).
fn picked_variants() -> Option<Vec<usize>> {
    let text = std::env::var("PVXEN_BENCH_VARIANTS").ok()?;
    let picked: Vec<usize> = text
        .split(',')
        .filter_map(|w| w.trim().parse().ok())
        .filter(|&i| i < NET_VARIANTS.len())
        .collect();
    (!picked.is_empty()).then_some(picked)
}

/// The extra command lines `PVXEN_BENCH_EXTRA` names (see the module docs): its
/// `;`-separated entries, trimmed, the empty ones left out. Only words of the form
/// `name=value` made of letters, digits, `-`, `_` and `.` are taken, so nothing reaches dom0's
/// shell or the `sed` that writes the guest's configuration but such words.
fn extra_variants() -> Vec<String> {
    parse_extra(&std::env::var("PVXEN_BENCH_EXTRA").unwrap_or_default())
}

fn parse_extra(text: &str) -> Vec<String> {
    let plain = |w: &str| {
        w.split_once('=')
            .is_some_and(|(n, v)| !n.is_empty() && !v.is_empty())
            && w.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.=".contains(c))
    };
    text.split(';')
        .map(|e| {
            e.split_whitespace()
                .filter(|w| plain(w))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .filter(|e| !e.is_empty())
        .collect()
}

/// The block variants' group.
const BLK_GROUP: &str = "features (the selftest=bench guest's blkfront)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_measured_line_gives_its_figures_and_anything_else_says_why() {
        assert_eq!(
            parse_net("down=7.50 up=12.25 rps=1500.3 failed=0"),
            Ok(NetFigures {
                down: 7.5,
                up: 12.25,
                up_hashed: None,
                rps: 1500.3
            })
        );
        assert_eq!(
            parse_net("down=7.50 up=12.25 uph=9.50 rps=1500.3 failed=0").map(|f| f.up_hashed),
            Ok(Some(9.5))
        );
        assert!(
            parse_net("down=7.50 up=12.25 rps=1500.3 failed=3")
                .unwrap_err()
                .contains("3 failed")
        );
        assert!(
            parse_net("download-digest=00ff")
                .unwrap_err()
                .contains("download-digest=00ff")
        );
        assert!(parse_net("down=x up=1 rps=2 failed=0").is_err());
        assert!(parse_net("").is_err());
    }

    #[test]
    fn the_counters_of_each_transfer_are_the_documents_differences() {
        let doc = |rx: u64, acks: u64, sum: u64, asleep: u64| {
            format!(
                "{{\"uptime_ms\":{},\"driver\":{{\"rx_packets\":{rx},\"tx_acks\":{acks},\
                 \"tx_ack_window_sum\":{sum}}},\"loop\":{{\"asleep_us\":{asleep}}}}}",
                asleep / 500
            )
        };
        let line = format!(
            "down=16.78 up=8.39 rps=1 failed=0 status0={} status1={} status2={}",
            doc(10, 2, 200, 0),
            doc(20, 6, 600, 500_000),
            doc(1020, 106, 10_600, 1_500_000)
        );
        let f = parse_net(&line).unwrap();
        let out = transfer_counters(&line, &f);
        assert_eq!(out.len(), 2, "{out:?}");
        assert!(
            out[0].starts_with("download (1.00 s): frames rx 10 ")
                && out[0].contains("50% of 1.00 s"),
            "{}",
            out[0]
        );
        assert!(
            out[1].contains("frames rx 1000 ")
                && out[1].contains("pure acks 100 (window field 100 avg")
                && out[1].contains("asleep 50% of 2.00 s"),
            "{}",
            out[1]
        );
        assert!(transfer_counters("down=1 up=1 rps=1 failed=0", &f).is_empty());
    }

    #[test]
    fn the_counters_of_ab_are_the_last_two_documents_differences() {
        let doc = |conns: u64, dropped: u64| {
            format!(
                "{{\"http\":{{\"connections\":{conns},\"requests\":{conns},\
                 \"handshake_timeouts\":0,\"pool\":{{\"reclaimed\":0,\
                 \"syns_dropped\":{dropped}}}}}}}"
            )
        };
        let line = format!(
            "down=1 up=1 rps=1 failed=0 status0={} status1={} status2={} status3={}",
            doc(1, 0),
            doc(2, 0),
            doc(3, 1),
            doc(20, 4)
        );
        let out = ab_counters(&line).unwrap();
        assert!(
            out.starts_with("ab: connections 17, requests 17, syns dropped 3, reclaimed 0"),
            "{out}"
        );
        assert!(ab_counters(&format!("down=1 status2={}", doc(1, 0))).is_none());
        assert!(ab_counters("down=1 status2=- status3=-").is_none());
    }

    #[test]
    fn extra_command_lines_are_plain_words_only() {
        assert_eq!(
            parse_extra("http-buffer-kib=128; ;http-buffer-kib=256 net-sg=off"),
            ["http-buffer-kib=128", "http-buffer-kib=256 net-sg=off"]
        );
        assert_eq!(parse_extra("a=1 `reboot` b=$(x) c=\"d\" e|f=1 g="), ["a=1"]);
        assert!(parse_extra("").is_empty());
    }

    #[test]
    fn every_variant_switch_is_one_the_guest_reads() {
        // The guest's switches (pvguest/src/service.rs and cmdline.rs) are `<name>=off`.
        for (_, switches) in NET_VARIANTS.iter().chain(BLK_VARIANTS) {
            for w in switches.split_whitespace() {
                assert!(w.ends_with("=off"), "{w}");
                assert!(w.starts_with("net-") || w.starts_with("blk-"), "{w}");
            }
        }
        assert_eq!(NET_VARIANTS[0].1, "");
        assert_eq!(BLK_VARIANTS[0].1, "");
    }
}
