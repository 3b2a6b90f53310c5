//! The host crash simulation: a deterministic put/delete sequence on a [`CrashDisk`], the
//! power cut at every one of its writes and flushes under several survival policies, then
//! recovery and the durability rule checked each time.
//!
//! The rule: the recovered store equals the acknowledged state, or the acknowledged state
//! with the interrupted operation applied whole; so every acknowledged put is there with its
//! value, nothing half-written appears, and no key that was never put appears. After each
//! recovery the store must also take new writes and keep them across a clean reopen.
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap,
    reason = "test fixtures: small known sizes and indexes, on 64-bit hosts only"
)]

use std::collections::BTreeMap;
use std::string::String;
use std::vec::Vec;
use std::{format, vec};

use proptest::prelude::*;

use super::tests::disk_bytes;
use super::{KvError, Store};
use crate::fake::{CrashDisk, CutPolicy, FakeError, MemDisk};

type State = BTreeMap<Vec<u8>, Vec<u8>>;

/// Region size for the simulation: small, so that the sequence compacts several times.
const REGION: usize = 20 * 1024;

#[derive(Clone, Debug, PartialEq, Eq)]
enum SeqOp {
    Put(Vec<u8>, Vec<u8>),
    Delete(Vec<u8>),
}

impl SeqOp {
    fn apply(&self, state: &mut State) {
        match self {
            Self::Put(k, v) => {
                state.insert(k.clone(), v.clone());
            }
            Self::Delete(k) => {
                state.remove(k);
            }
        }
    }
}

/// The deterministic sequence: 160 operations over 12 keys, values of 0..700 bytes, every
/// fifth a delete.
fn sequence() -> Vec<SeqOp> {
    generated(160, 12, 97, 700)
}

/// Region size for [`big_sequence`]: its live set needs several groups when compacted.
const BIG_REGION: usize = 96 * 1024;

/// A second sequence whose compactions write their live set (about 60 KiB) in more than one
/// group, so that cuts also land between a compaction's writes: 200 operations over 41 keys,
/// values of 0..3000 bytes.
fn big_sequence() -> Vec<SeqOp> {
    generated(200, 41, 211, 3000)
}

/// `n` operations over `keys` keys (which must be coprime with 5), every fifth a delete,
/// value lengths `(i * step) % max`.
fn generated(n: usize, keys: usize, step: usize, max: usize) -> Vec<SeqOp> {
    (0..n)
        .map(|i| {
            if i % 5 == 4 {
                SeqOp::Delete(format!("key-{:02}", (i * 7) % keys).into_bytes())
            } else {
                let len = (i * step) % max;
                let value = (0..len).map(|j| ((i * 31 + j) % 256) as u8).collect();
                SeqOp::Put(format!("key-{:02}", (i * 5) % keys).into_bytes(), value)
            }
        })
        .collect()
}

/// What a run up to the power cut did.
struct Run {
    /// The state every acknowledged operation made.
    acked: State,
    /// The operation interrupted by the cut (not acknowledged), if any.
    in_flight: Option<SeqOp>,
    /// Index of that operation in the sequence (the sequence's length if none).
    stopped_at: usize,
}

/// Runs `ops` on `disk` (opening it first) until they end or the power is cut.
fn run(disk: &mut CrashDisk, ops: &[SeqOp], mut acked: State) -> Run {
    let mut store = match Store::open(&mut *disk) {
        Ok(s) => s,
        Err(KvError::Device(FakeError::PowerCut)) => {
            return Run {
                acked,
                in_flight: None,
                stopped_at: 0,
            };
        }
        Err(e) => panic!("open failed with power on: {e:?}"),
    };
    for (i, op) in ops.iter().enumerate() {
        let result = match op {
            SeqOp::Put(k, v) => store.put(k, v),
            SeqOp::Delete(k) => store.delete(k).map(drop),
        };
        match result {
            Ok(()) => op.apply(&mut acked),
            Err(KvError::Device(FakeError::PowerCut)) => {
                return Run {
                    acked,
                    in_flight: Some(op.clone()),
                    stopped_at: i,
                };
            }
            Err(e) => panic!("operation {i} failed: {e:?}"),
        }
    }
    Run {
        acked,
        in_flight: None,
        stopped_at: ops.len(),
    }
}

/// Reads the whole store.
fn contents<D: crate::BlockDevice>(store: &mut Store<D>) -> Result<State, String> {
    let mut state = State::new();
    for key in store.list() {
        match store.get(&key) {
            Ok(Some(v)) => {
                state.insert(key, v);
            }
            other => return Err(format!("listed key {key:?} reads as {other:?}")),
        }
    }
    Ok(state)
}

/// Recovers `image` and checks the rule against `run`; returns the recovered state.
fn recover_and_check(image: Vec<u8>, run: &Run) -> Result<State, String> {
    let mut store =
        Store::open(MemDisk::from_image(image)).map_err(|e| format!("recovery failed: {e:?}"))?;
    let got = contents(&mut store)?;
    let mut with = run.acked.clone();
    if let Some(op) = &run.in_flight {
        op.apply(&mut with);
    }
    if got != run.acked && got != with {
        let lost: Vec<_> = run
            .acked
            .iter()
            .filter(|(k, v)| got.get(*k) != Some(v))
            .map(|(k, _)| String::from_utf8_lossy(k).into_owned())
            .collect();
        let extra: Vec<_> = got
            .keys()
            .filter(|k| !run.acked.contains_key(*k) && !with.contains_key(*k))
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .collect();
        return Err(format!(
            "recovered state is neither the acknowledged one nor it plus the interrupted \
             operation {:?}: keys lost or changed {lost:?}, keys never put {extra:?}",
            run.in_flight.as_ref().map(|op| match op {
                SeqOp::Put(k, v) =>
                    format!("put {} ({} bytes)", String::from_utf8_lossy(k), v.len()),
                SeqOp::Delete(k) => format!("delete {}", String::from_utf8_lossy(k)),
            })
        ));
    }
    // The recovered store takes new writes, and they survive a clean reopen (stale bytes
    // past the recovered log must not come back).
    store
        .put(b"after-recovery", b"x")
        .map_err(|e| format!("put after recovery: {e:?}"))?;
    let mut again = Store::open(store.into_device()).map_err(|e| format!("reopen: {e:?}"))?;
    let mut expected = got.clone();
    expected.insert(b"after-recovery".to_vec(), b"x".to_vec());
    if contents(&mut again)? != expected {
        return Err(String::from(
            "a write after recovery did not survive a clean reopen",
        ));
    }
    Ok(got)
}

/// Per operation of the sequence on an uncut disk: the device operations it used and
/// whether it compacted. Also the total device operations.
fn dry_run(ops: &[SeqOp], region: usize) -> (Vec<(u64, u64, bool)>, u64) {
    let mut disk = CrashDisk::new(vec![0; disk_bytes(region)], None, CutPolicy::LoseUnflushed);
    let mut spans = Vec::new();
    {
        let mut store = Store::open(&mut disk).expect("format");
        for op in ops {
            let compactions = store.stats().compactions;
            let before = store.dev.ops();
            match op {
                SeqOp::Put(k, v) => store.put(k, v).expect("put"),
                SeqOp::Delete(k) => {
                    store.delete(k).expect("delete");
                }
            }
            spans.push((
                before,
                store.dev.ops(),
                store.stats().compactions > compactions,
            ));
        }
    }
    let total = disk.ops();
    (spans, total)
}

/// Cuts the power at every device operation of the sequence under `policy`; returns how
/// many cuts fell inside a compaction.
fn every_cut(policy: impl Fn(u64) -> CutPolicy) -> usize {
    every_cut_of(&sequence(), REGION, policy)
}

/// [`every_cut`] for a given sequence and region size.
fn every_cut_of(ops: &[SeqOp], region: usize, policy: impl Fn(u64) -> CutPolicy) -> usize {
    let (spans, total) = dry_run(ops, region);
    let mut inside_compaction = 0;
    let mut failures = Vec::new();
    for cut in 0..total {
        let mut disk = CrashDisk::new(vec![0; disk_bytes(region)], Some(cut), policy(cut));
        let r = run(&mut disk, ops, State::new());
        assert!(disk.is_cut(), "cut {cut} never happened");
        if let Some((_, _, true)) = spans.get(r.stopped_at).filter(|_| r.in_flight.is_some()) {
            inside_compaction += 1;
        }
        if let Err(why) = recover_and_check(disk.surviving_image(), &r) {
            failures.push(format!(
                "cut at device operation {cut} (sequence op {}): {why}",
                r.stopped_at
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {total} cuts failed; first: {}",
        failures.len(),
        failures[0]
    );
    inside_compaction
}

#[test]
fn crash_simulation_sequence_compacts_at_least_twice() {
    let (spans, total) = dry_run(&sequence(), REGION);
    let compactions = spans.iter().filter(|s| s.2).count();
    let compacting_ops: u64 = spans.iter().filter(|s| s.2).map(|s| s.1 - s.0).sum();
    std::eprintln!(
        "crash simulation: {} operations, {total} device operations (cut points), \
         {compactions} compactions spanning {compacting_ops} device operations",
        spans.len()
    );
    assert!(compactions >= 2, "only {compactions} compactions");
    // Every operation is acknowledged after a flush: at least one write and one flush each,
    // except deletes of absent keys (no I/O).
    assert!(total > 2 * 100, "{total} device operations");
}

#[test]
fn crash_simulation_power_cut_loses_unflushed_writes() {
    let inside = every_cut(|_| CutPolicy::LoseUnflushed);
    std::eprintln!("crash simulation: {inside} cuts fell inside a compaction");
    assert!(inside >= 2 * 4, "only {inside} cuts inside compactions");
}

#[test]
fn crash_simulation_multi_group_compactions() {
    let ops = big_sequence();
    let (spans, total) = dry_run(&ops, BIG_REGION);
    let compactions: Vec<u64> = spans.iter().filter(|s| s.2).map(|s| s.1 - s.0).collect();
    std::eprintln!(
        "crash simulation (big): {total} device operations, compactions of {compactions:?} device operations"
    );
    assert!(compactions.len() >= 2, "{compactions:?}");
    // More than body write, flush, header, flush: the body took several writes.
    assert!(compactions.iter().all(|&n| n > 4), "{compactions:?}");
    every_cut_of(&ops, BIG_REGION, |_| CutPolicy::LoseUnflushed);
    every_cut_of(&ops, BIG_REGION, |_| CutPolicy::TearLast(200));
    every_cut_of(&ops, BIG_REGION, |cut| CutPolicy::Random(cut * 31 + 7));
}

#[test]
fn crash_simulation_power_cut_keeps_unflushed_writes() {
    every_cut(|_| CutPolicy::KeepAll);
}

#[test]
fn crash_simulation_torn_last_sector() {
    for n in [1, 24, 256, 511] {
        every_cut(|_| CutPolicy::TearLast(n));
    }
}

#[test]
fn crash_simulation_random_surviving_sectors() {
    for seed in 1..=6u64 {
        every_cut(|cut| CutPolicy::Random(seed * 1_000_003 + cut));
    }
}

/// Crash, recover, carry on with the rest of the sequence, crash again, ... ; each recovery
/// starts from the previous one's state.
#[test]
fn crash_simulation_repeated_crashes() {
    let ops = sequence();
    for (stride, seed) in [(7u64, 11u64), (13, 5), (29, 3)] {
        let mut image = vec![0; disk_bytes(REGION)];
        let mut state = State::new();
        let mut next = 0usize;
        let mut round = 0u64;
        while next < ops.len() {
            round += 1;
            let policy = match round % 4 {
                0 => CutPolicy::LoseUnflushed,
                1 => CutPolicy::KeepAll,
                2 => CutPolicy::TearLast(100),
                _ => CutPolicy::Random(seed * 7919 + round),
            };
            let mut disk = CrashDisk::new(image, Some(stride + round % 5), policy);
            let r = run(&mut disk, &ops[next..], state.clone());
            image = disk.surviving_image();
            state = recover_and_check(image.clone(), &r)
                .unwrap_or_else(|why| panic!("stride {stride} round {round}: {why}"));
            // recover_and_check wrote `after-recovery` into its own copy; do it here too so
            // the next round starts from what the disk holds.
            let mut store = Store::open(MemDisk::from_image(image)).expect("reopen");
            store.put(b"after-recovery", b"x").expect("put");
            state.insert(b"after-recovery".to_vec(), b"x".to_vec());
            image = store.into_device().image().to_vec();
            next += r.stopped_at + usize::from(r.in_flight.is_some());
        }
    }
}

fn policy() -> impl Strategy<Value = CutPolicy> {
    prop_oneof![
        Just(CutPolicy::LoseUnflushed),
        Just(CutPolicy::KeepAll),
        (0usize..512).prop_map(CutPolicy::TearLast),
        any::<u64>().prop_map(CutPolicy::Random),
    ]
}

fn seq_op() -> impl Strategy<Value = SeqOp> {
    prop_oneof![
        4 => (0u8..16, proptest::collection::vec(any::<u8>(), 0..1500))
            .prop_map(|(k, v)| SeqOp::Put(format!("p{k}").into_bytes(), v)),
        1 => (0u8..16).prop_map(|k| SeqOp::Delete(format!("p{k}").into_bytes())),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Random sequences, a random cut point and survival policy: the rule holds.
    #[test]
    fn crash_simulation_property(
        ops in proptest::collection::vec(seq_op(), 1..120),
        cut in 0u64..400,
        policy in policy(),
    ) {
        let mut disk = CrashDisk::new(vec![0; disk_bytes(REGION)], Some(cut), policy);
        let r = run(&mut disk, &ops, State::new());
        let result = recover_and_check(disk.surviving_image(), &r);
        prop_assert!(result.is_ok(), "{}", result.err().unwrap_or_default());
    }
}
