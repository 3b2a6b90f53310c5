//! `HOST hv-blk-kv-durable`: the durability check of stock Xen's device boot
//! ([`crate::xen::blk`], `HOST blk-kv-durable`) on hv's disks. One domain on a read-write
//! `xvdb` (QEMU's virtio-blk drive with `cache=writeback`, behind hv's blkback) runs the
//! guest's put storm (`kv-storm=<k>`, printing `KV ack <key> <value>` after each acknowledged
//! put); a seeded moment after its first acknowledged put the harness kills QEMU with SIGKILL,
//! then boots again on the same image file with `kv-check kv-storm=<k+1>` (the check lists
//! every key, `KV found <key> <value>`, then the next storm starts), and so on; the last boot
//! runs `kv-check` alone and powers off.
//!
//! The judge ([`judge`]): every acknowledged put is found by the next check with its value (or
//! with the put in flight at the kill), no key that was never put; and hv's count of flushes
//! its device completed (`hv: d<id>: blkback xvdb: flushes <n>`, printed before the guest can
//! see the answers of the round) had grown by at least `i` since the storm started when the
//! `i`-th put was acknowledged (each put is one commit group: one write and one flush).
//! [`TEST_KILLS`] kills in `cargo xtask test` (`hv-test`), [`SOAK_KILLS`] in `cargo xtask soak`.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::serial::{Line, QemuEnd};
use super::{HV_OPTIONS, config, explain_failure, qemu, run_dir};
use crate::tally::Tally;
use crate::xen::blk::{XVDB_BYTES, storm_key, storm_value};

/// Kills in `cargo xtask test`.
pub const TEST_KILLS: u64 = 3;
/// Kills in `cargo xtask soak`.
pub const SOAK_KILLS: u64 = 20;
/// The domain's name.
const NAME: &str = "kv";
/// Hard timeout of one boot (a storm is killed long before).
const BOOT_TIMEOUT: Duration = Duration::from_secs(60);
/// The latest a kill comes after the storm's first acknowledged put, in ms.
const MAX_DELAY_MS: u64 = 1500;

/// Kill delays (ms after each storm's first acknowledged put, below [`MAX_DELAY_MS`]) from
/// `seed`.
pub fn kill_delays(seed: u64, kills: u64) -> Vec<u64> {
    let mut x = seed ^ 0x9e37_79b9_7f4a_7c15;
    (0..kills)
        .map(|_| {
            // xorshift64*
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) % MAX_DELAY_MS
        })
        .collect()
}

/// The domain's command line in boot `boot` (1-based) of `kills + 1`.
pub fn cmdline(boot: u64, kills: u64) -> String {
    match boot {
        1 => "kv-storm=1".to_owned(),
        b if b > kills => "kv-check".to_owned(),
        b => format!("kv-check kv-storm={b}"),
    }
}

/// What one boot showed, in the order it arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// A console line of the domain.
    Guest(String),
    /// hv's flush count of the domain's disk.
    Flushes(u64),
}

/// hv's flush line (`hv: d<id>: blkback xvdb: flushes <n>`): the count.
pub fn flush_count(line: &str) -> Option<u64> {
    let rest = line.strip_prefix("hv: d")?;
    let (_, count) = rest.split_once(": blkback xvdb: flushes ")?;
    count.parse().ok()
}

/// The judge over the boots (`boots[k - 1]` is boot `k`, storm `k` for `k <= kills`, the
/// check of storm `k - 1` for `k > 1`). Returns the verdict and one summary line per kill.
pub fn judge(boots: &[Vec<Seen>], kills: u64) -> (Result<(), String>, Vec<String>) {
    let mut summary = Vec::new();
    let mut model: BTreeMap<String, String> = BTreeMap::new();
    let mut in_flight: Option<(String, String)> = None;
    for (i, seen) in boots.iter().enumerate() {
        let boot = i as u64 + 1;
        let guest: Vec<(usize, &str)> = seen
            .iter()
            .enumerate()
            .filter_map(|(n, s)| match s {
                Seen::Guest(l) => Some((n, l.as_str())),
                Seen::Flushes(_) => None,
            })
            .collect();
        if let Some((_, l)) = guest.iter().find(|(_, l)| l.starts_with("KV error")) {
            return (Err(format!("boot {boot}: `{l}`")), summary);
        }
        let mut from = 0;
        if boot > 1 {
            let storm = boot - 1;
            let Some(begin) = guest.iter().position(|(_, l)| *l == "KV check begin") else {
                return (Err(format!("no check after kill {storm}")), summary);
            };
            let Some(done) = guest[begin..]
                .iter()
                .position(|(_, l)| l.starts_with("KV check done"))
                .map(|d| begin + d)
            else {
                return (
                    Err(format!("the check after kill {storm} did not finish")),
                    summary,
                );
            };
            let mut found = BTreeMap::new();
            for (_, line) in &guest[begin + 1..done] {
                let rest = line.strip_prefix("KV found ").unwrap_or(line);
                let (key, value) = rest.split_once(' ').unwrap_or((rest, ""));
                found.insert(key.to_owned(), value.to_owned());
            }
            let flying = |k: &String, v: &String| {
                in_flight
                    .as_ref()
                    .is_some_and(|(fk, fv)| (fk, fv) == (k, v))
            };
            for (key, value) in &found {
                if model.get(key) != Some(value) && !flying(key, value) {
                    return (
                        Err(format!(
                            "kill {storm}: found {key} = {value:?}, never acknowledged nor in flight (acknowledged: {:?})",
                            model.get(key)
                        )),
                        summary,
                    );
                }
            }
            for (key, value) in &model {
                match found.get(key) {
                    Some(v) if v == value || flying(key, v) => {}
                    other => {
                        return (
                            Err(format!(
                                "kill {storm}: acknowledged {key} = {value:?} lost (found {other:?})"
                            )),
                            summary,
                        );
                    }
                }
            }
            if let Some(last) = summary.last_mut() {
                *last = format!("{last}, the check found {} keys", found.len());
            }
            model = found;
            from = done;
        }
        if boot > kills {
            break;
        }
        let started = format!("KV storm {boot} started");
        let Some(start) = guest[from..]
            .iter()
            .position(|(_, l)| *l == started)
            .map(|s| from + s)
        else {
            return (Err(format!("boot {boot}: no `{started}` line")), summary);
        };
        // hv's count when the storm started, then as each put is acknowledged.
        let count_before = |at: usize| {
            seen[..at]
                .iter()
                .rev()
                .find_map(|s| match s {
                    Seen::Flushes(n) => Some(*n),
                    Seen::Guest(_) => None,
                })
                .unwrap_or(0)
        };
        let base = count_before(guest[start].0);
        let mut acked = 0u64;
        let mut flushes = 0;
        let lines = &guest[start + 1..];
        for (n, (at, line)) in lines.iter().enumerate() {
            let (key, value) = (storm_key(boot, acked), storm_value(boot, acked));
            let want = format!("KV ack {key} {value}");
            if *line == want {
                acked += 1;
                flushes = count_before(*at).saturating_sub(base);
                if flushes < acked {
                    return (
                        Err(format!(
                            "storm {boot}: put {acked} acknowledged but hv's blkback had passed only {flushes} flushes to the device"
                        )),
                        summary,
                    );
                }
                model.insert(key, value);
            } else if n + 1 == lines.len() && want.starts_with(line) {
                // The kill cut the last line short: that put counts as in flight.
            } else if line.starts_with("KV ack ") {
                return (
                    Err(format!(
                        "storm {boot}: ack {acked} is `{line}`, not `{want}`"
                    )),
                    summary,
                );
            }
        }
        if acked == 0 {
            return (
                Err(format!("storm {boot} acknowledged no put before the kill")),
                summary,
            );
        }
        in_flight = Some((storm_key(boot, acked), storm_value(boot, acked)));
        summary.push(format!(
            "kill {boot}: {acked} acknowledged puts, {flushes} flushes passed to the device by then"
        ));
    }
    if (boots.len() as u64) < kills + 1 {
        return (
            Err(format!("{} boots of {}", boots.len(), kills + 1)),
            summary,
        );
    }
    (Ok(()), summary)
}

/// The seed: `PVXEN_SEED` if set, else the clock.
fn seed() -> Result<u64> {
    Ok(match std::env::var("PVXEN_SEED") {
        Ok(s) if !s.is_empty() => s.parse().with_context(|| format!("PVXEN_SEED={s:?}"))?,
        _ => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| {
                d.as_secs()
                    .wrapping_mul(1_000_000_000)
                    .wrapping_add(u64::from(d.subsec_nanos()))
            }),
    })
}

/// Writes the config (command line `cmdline`) and its archive into `dir`: one domain on
/// `xvdb.img`. Returns the archive and its drives.
fn archive(
    dir: &Path,
    guest: &Path,
    cmdline: &str,
) -> Result<(std::path::PathBuf, Vec<qemu::Drive>)> {
    let kernel = std::path::absolute(guest)?;
    let kernel = kernel
        .to_str()
        .filter(|k| !k.contains(['"', '\\']))
        .with_context(|| format!("{}: cannot be written in a config", kernel.display()))?;
    let text = format!(
        "# Written by `cargo xtask hv-test` (hv-blk-durable).\nname = \"{NAME}\"\n\
         type = \"pvh\"\nkernel = \"{kernel}\"\ncmdline = \"{cmdline}\"\nmemory = 128\n\
         disk = [ 'format=raw, vdev=xvdb, access=rw, target=xvdb.img' ]\n"
    );
    let path = dir.join(format!("{NAME}.cfg"));
    std::fs::write(&path, &text).with_context(|| format!("writing {}", path.display()))?;
    let path = path.display().to_string();
    let files = [config::ConfigFile {
        absolute: path.clone(),
        path,
        text,
    }];
    let boots = match config::check(&files, |k| Path::new(k).is_file()).0 {
        Ok(boots) => boots,
        Err(problems) => bail!("hv-blk-durable: {}", problems.join("; ")),
    };
    let bytes = config::archive(&boots, |k| Ok(std::fs::read(k)?))?;
    let archive = config::archive_path(dir);
    std::fs::write(&archive, bytes).with_context(|| format!("writing {}", archive.display()))?;
    Ok((archive, config::drives(&boots)))
}

/// `HOST hv-blk-kv-durable` with `kills` kills (one unit). `Err` only for harness errors.
pub fn check(tally: &mut Tally, hv: &Path, guest: &Path, kills: u64) -> Result<()> {
    let label = "hv-blk-durable";
    let dir = run_dir(label);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(dir.join("xvdb.img"), vec![0u8; XVDB_BYTES])?;
    let seed = seed()?;
    let delays = kill_delays(seed, kills);
    println!(
        "hv-blk-durable: PVXEN_SEED={seed}: {kills} kills, {delays:?} ms after each storm's first acknowledged put"
    );
    let began = Instant::now();
    let mut boots = Vec::new();
    let mut verdict = Ok(());
    for (boot, delay) in (1..=kills + 1).zip(delays.iter().copied().chain([0])) {
        let cmdline = cmdline(boot, kills);
        let (module, drives) = archive(&dir, guest, &cmdline)?;
        let b = qemu::Boot {
            hv,
            guest: &module,
            hv_options: HV_OPTIONS,
            guest_cmdline: None,
            memory_mib: qemu::DEFAULT_MEMORY_MIB,
            drives: &drives,
            net: None,
            control_socket: None,
            qmp_socket: None,
            run_dir: dir.join(format!("boot{boot}")),
            timeout: BOOT_TIMEOUT,
            gdb: None,
        };
        let delay = Duration::from_millis(delay);
        let mut seen = Vec::new();
        let mut killing = false;
        let booted = qemu::boot_killable(&b, |line| match line {
            Line::Guest(_, l) => {
                seen.push(Seen::Guest(l.clone()));
                let first_ack = boot <= kills && !killing && l.starts_with("KV ack ");
                killing |= first_ack;
                first_ack.then(|| Instant::now() + delay)
            }
            Line::Hv(l) => {
                if let Some(n) = flush_count(l) {
                    seen.push(Seen::Flushes(n));
                }
                None
            }
            _ => None,
        })?;
        let want = if boot <= kills {
            QemuEnd::Exited(None)
        } else {
            QemuEnd::Exited(Some(super::EXIT_POWEROFF))
        };
        boots.push(seen);
        if booted.end != want {
            verdict = Err(format!(
                "boot {boot} ({cmdline:?}): {}, not {}",
                booted.end.describe(),
                want.describe()
            ));
            explain_failure(&booted);
            break;
        }
    }
    let (judged, summary) = judge(&boots, kills);
    for line in summary {
        println!("hv-blk-durable: {line}");
    }
    let line = match verdict.and(judged) {
        Ok(()) => "HOST hv-blk-kv-durable ok".to_owned(),
        Err(why) => format!("HOST hv-blk-kv-durable FAIL {why} (PVXEN_SEED={seed})"),
    };
    println!(
        "hv-blk-durable: {} boots in {:.1} s",
        boots.len(),
        began.elapsed().as_secs_f64()
    );
    println!("{line}");
    tally.record(line.ends_with(" ok"), line);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(l: &str) -> Seen {
        Seen::Guest(l.to_owned())
    }

    fn ack(storm: u64, n: u64) -> Seen {
        g(&format!(
            "KV ack {} {}",
            storm_key(storm, n),
            storm_value(storm, n)
        ))
    }

    /// Two kills: storm 1 acknowledges `acks1` puts, storm 2 `acks2`; each ack preceded by a
    /// flush line when `flushed`; the checks find what `found2`/`found3` say.
    fn run(acks: [u64; 2], flushed: bool, found: [Vec<(u64, u64)>; 2]) -> Vec<Vec<Seen>> {
        let mut boots = Vec::new();
        let mut flushes = 0;
        for (k, found, acks) in [
            (1u64, None, acks[0]),
            (2, Some(&found[0]), acks[1]),
            (3, Some(&found[1]), 0),
        ] {
            let mut seen = vec![Seen::Flushes(flushes)];
            if let Some(found) = found {
                seen.push(g("KV check begin"));
                let mut keys: BTreeMap<String, String> = BTreeMap::new();
                for (s, n) in found {
                    keys.insert(storm_key(*s, *n), storm_value(*s, *n));
                }
                for (key, value) in &keys {
                    seen.push(g(&format!("KV found {key} {value}")));
                }
                seen.push(g(&format!("KV check done {}", keys.len())));
            }
            if k <= 2 {
                seen.push(g(&format!("KV storm {k} started")));
                for n in 0..acks {
                    flushes += 1;
                    if flushed {
                        seen.push(Seen::Flushes(flushes));
                    }
                    seen.push(ack(k, n));
                }
                // The put in flight, cut short.
                seen.push(g("KV ack k"));
            }
            boots.push(seen);
        }
        boots
    }

    /// Every put of storm `s` below `n` (the last value of each key).
    fn puts(storms: &[(u64, u64)]) -> Vec<(u64, u64)> {
        let mut m: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        for &(s, n) in storms {
            for i in 0..n {
                m.insert(storm_key(s, i), (s, i));
            }
        }
        m.into_values().collect()
    }

    #[test]
    fn acknowledged_puts_found_and_flushed_pass() {
        let boots = run([5, 3], true, [puts(&[(1, 5)]), puts(&[(1, 5), (2, 3)])]);
        let (v, summary) = judge(&boots, 2);
        assert_eq!(v, Ok(()), "{summary:?}");
        assert_eq!(summary.len(), 2);
        // The put in flight may be found too.
        let boots = run([5, 3], true, [puts(&[(1, 6)]), puts(&[(1, 6), (2, 3)])]);
        assert_eq!(judge(&boots, 2).0, Ok(()));
    }

    #[test]
    fn a_lost_put_or_a_missing_flush_or_a_stray_key_fails() {
        let lost = run([5, 3], true, [puts(&[(1, 4)]), puts(&[(1, 4), (2, 3)])]);
        assert!(judge(&lost, 2).0.unwrap_err().contains("lost"));
        let unflushed = run([5, 3], false, [puts(&[(1, 5)]), puts(&[(1, 5), (2, 3)])]);
        assert!(judge(&unflushed, 2).0.unwrap_err().contains("flushes"));
        let stray = run([5, 3], true, [puts(&[(1, 7)]), puts(&[(1, 7), (2, 3)])]);
        assert!(
            judge(&stray, 2)
                .0
                .unwrap_err()
                .contains("never acknowledged")
        );
        let mut short = run([5, 3], true, [puts(&[(1, 5)]), puts(&[(1, 5), (2, 3)])]);
        short.pop();
        assert!(judge(&short, 2).0.is_err());
        let idle = run([0, 3], true, [vec![], puts(&[(2, 3)])]);
        assert!(judge(&idle, 2).0.unwrap_err().contains("no put"));
    }

    #[test]
    fn the_plan_follows_the_seed() {
        assert_eq!(cmdline(1, 3), "kv-storm=1");
        assert_eq!(cmdline(3, 3), "kv-check kv-storm=3");
        assert_eq!(cmdline(4, 3), "kv-check");
        let d = kill_delays(7, 20);
        assert_eq!(d.len(), 20);
        assert!(d.iter().all(|&ms| ms < MAX_DELAY_MS));
        assert_eq!(d, kill_delays(7, 20));
        assert_ne!(d, kill_delays(8, 20));
        assert_eq!(flush_count("hv: d1: blkback xvdb: flushes 42"), Some(42));
        assert_eq!(flush_count("hv: d1: blkback xvda: flushes 42"), None);
        assert_eq!(flush_count("(d1) hv: d1: blkback xvdb: flushes 42"), None);
    }
}
