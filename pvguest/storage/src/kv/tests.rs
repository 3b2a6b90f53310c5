//! Unit and property tests of the store over the in-memory disk.

use std::collections::BTreeMap;
use std::vec::Vec;
use std::{format, vec};

use proptest::prelude::*;

use super::format::MAX_RECORD;
use super::{KvError, MAX_BATCH, MAX_KEY, MAX_VALUE, Op, Store};
use crate::fake::{FakeError, MemDisk};

/// Bytes of a disk whose regions hold `region` bytes each.
pub fn disk_bytes(region: usize) -> usize {
    1024 + 2 * region
}

fn small_store() -> Store<MemDisk> {
    Store::open(MemDisk::new(disk_bytes(64 * 1024))).expect("format")
}

#[test]
fn put_get_overwrite_delete_list() {
    let mut s = small_store();
    assert_eq!(s.get(b"a"), Ok(None));
    s.put(b"a", b"one").expect("put");
    s.put(b"b", b"").expect("put empty value");
    s.put(b"a", b"two").expect("overwrite");
    assert_eq!(s.get(b"a"), Ok(Some(b"two".to_vec())));
    assert_eq!(s.get(b"b"), Ok(Some(Vec::new())));
    assert_eq!(s.list(), vec![b"a".to_vec(), b"b".to_vec()]);
    assert_eq!(s.delete(b"a"), Ok(true));
    assert_eq!(s.delete(b"a"), Ok(false));
    assert_eq!(s.get(b"a"), Ok(None));
    assert_eq!(s.list(), vec![b"b".to_vec()]);
    // Reopened, the same.
    let mut s = Store::open(s.into_device()).expect("reopen");
    assert_eq!(s.list(), vec![b"b".to_vec()]);
    assert_eq!(s.get(b"b"), Ok(Some(Vec::new())));
    assert_eq!(s.stats().recovered_groups, 4);
}

#[test]
fn each_put_is_one_write_and_one_flush() {
    let mut s = small_store();
    let disk_before = (s.dev.writes, s.dev.flushes);
    s.put(b"k", b"v").expect("put");
    assert_eq!(
        (s.dev.writes, s.dev.flushes),
        (disk_before.0 + 1, disk_before.1 + 1)
    );
}

#[test]
fn size_limits() {
    let mut s = small_store();
    let key = vec![b'k'; MAX_KEY];
    let value = vec![7u8; MAX_VALUE];
    s.put(&key, &value).expect("at the limits");
    assert_eq!(s.get(&key), Ok(Some(value.clone())));
    assert_eq!(
        s.put(&[b'k'; MAX_KEY + 1], b"v"),
        Err(KvError::KeyTooLong(MAX_KEY + 1))
    );
    assert_eq!(
        s.put(b"k", &vec![0; MAX_VALUE + 1]),
        Err(KvError::ValueTooLong(MAX_VALUE + 1))
    );
    assert_eq!(s.put(b"", b"v"), Err(KvError::EmptyKey));
    assert_eq!(s.commit(&[]), Err(KvError::BadBatch(0)));
    let many = vec![Op::Delete(b"x"); MAX_BATCH + 1];
    assert_eq!(s.commit(&many), Err(KvError::BadBatch(MAX_BATCH + 1)));
    let s = Store::open(s.into_device()).expect("reopen");
    assert_eq!(s.list(), vec![key]);
}

#[test]
fn disk_too_small_and_incompatible() {
    let tiny = disk_bytes(MAX_RECORD);
    assert!(matches!(
        Store::open(MemDisk::new(tiny)),
        Err(KvError::DiskTooSmall(_))
    ));
    let s = small_store();
    // The same image on a bigger disk: the headers name another layout.
    let mut image = s.into_device().image().to_vec();
    image.resize(image.len() + 4096, 0);
    assert!(matches!(
        Store::open(MemDisk::from_image(image)),
        Err(KvError::Incompatible)
    ));
}

#[test]
fn batch_commits_together() {
    let mut s = small_store();
    s.commit(&[Op::Put(b"a", b"1"), Op::Put(b"b", b"2"), Op::Delete(b"a")])
        .expect("batch");
    let s = Store::open(s.into_device()).expect("reopen");
    assert_eq!(s.list(), vec![b"b".to_vec()]);
    assert_eq!(s.stats().recovered_groups, 1);
}

#[test]
fn compaction_keeps_live_data_and_alternates_regions() {
    let mut s = small_store();
    let mut model = BTreeMap::new();
    for i in 0..2000u32 {
        let key = format!("key{}", i % 37).into_bytes();
        let value = vec![(i % 251) as u8; (i as usize * 13) % 900];
        s.put(&key, &value).expect("put");
        model.insert(key, value);
    }
    let stats = s.stats();
    assert!(stats.compactions >= 3, "{stats:?}");
    assert_eq!(stats.epoch, 1 + stats.compactions);
    let mut s = Store::open(s.into_device()).expect("reopen");
    assert_eq!(s.list(), model.keys().cloned().collect::<Vec<_>>());
    for (k, v) in &model {
        assert_eq!(s.get(k).expect("get").as_ref(), Some(v));
    }
}

#[test]
fn full_store_says_so_and_still_deletes() {
    let mut s = small_store();
    let value = vec![1u8; MAX_VALUE];
    let mut stored = 0;
    let err = loop {
        match s.put(format!("k{stored}").as_bytes(), &value) {
            Ok(()) => stored += 1,
            Err(e) => break e,
        }
    };
    assert!(matches!(err, KvError::Full { .. }), "{err:?}");
    assert_eq!(s.len(), stored);
    // Deleting from a full store works (compaction applies it), and frees room.
    assert_eq!(s.delete(b"k0"), Ok(true));
    s.put(b"again", &value).expect("room after delete");
    let s = Store::open(s.into_device()).expect("reopen");
    assert_eq!(s.len(), stored);
}

#[test]
fn corrupt_record_is_reported_on_get() {
    let mut s = small_store();
    s.put(b"key", b"value").expect("put");
    let mut disk = s.into_device();
    // Damage the value in place, then open: recovery drops the bad group (and everything
    // after), so the key is gone rather than wrong.
    let at = disk
        .image()
        .windows(5)
        .position(|w| w == b"value")
        .expect("on disk");
    disk.image_mut()[at] ^= 1;
    let mut s = Store::open(disk).expect("reopen");
    assert_eq!(s.get(b"key"), Ok(None));
    // Damage under a running store: get notices.
    s.put(b"key2", b"value2").expect("put");
    let at = s
        .dev
        .image()
        .windows(6)
        .position(|w| w == b"value2")
        .expect("on disk");
    s.dev.image_mut()[at] ^= 1;
    assert!(matches!(s.get(b"key2"), Err(KvError::Corrupt { .. })));
}

#[test]
fn a_failed_write_poisons_the_store() {
    let mut s = small_store();
    s.put(b"a", b"1").expect("put");
    s.dev.fail_writes_after(0);
    assert_eq!(s.put(b"b", b"2"), Err(KvError::Device(FakeError::Injected)));
    assert_eq!(s.put(b"c", b"3"), Err(KvError::Poisoned));
}

#[derive(Clone, Debug)]
enum ModelOp {
    Put(u8, Vec<u8>),
    Delete(u8),
    Reopen,
}

fn model_op() -> impl Strategy<Value = ModelOp> {
    prop_oneof![
        6 => (0u8..20, proptest::collection::vec(any::<u8>(), 0..2000)).prop_map(|(k, v)| ModelOp::Put(k, v)),
        2 => (0u8..20).prop_map(ModelOp::Delete),
        1 => Just(ModelOp::Reopen),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The store agrees with a map under any sequence of puts, deletes and reopenings
    /// (through compactions).
    #[test]
    fn store_matches_a_map(ops in proptest::collection::vec(model_op(), 1..200)) {
        let mut s = Store::open(MemDisk::new(disk_bytes(48 * 1024))).expect("format");
        let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        for op in ops {
            match op {
                ModelOp::Put(k, v) => {
                    let key = format!("key-{k}").into_bytes();
                    s.put(&key, &v).expect("put");
                    model.insert(key, v);
                }
                ModelOp::Delete(k) => {
                    let key = format!("key-{k}").into_bytes();
                    prop_assert_eq!(s.delete(&key).expect("delete"), model.remove(&key).is_some());
                }
                ModelOp::Reopen => s = Store::open(s.into_device()).expect("reopen"),
            }
        }
        let mut s = Store::open(s.into_device()).expect("reopen");
        prop_assert_eq!(s.list(), model.keys().cloned().collect::<Vec<_>>());
        for (k, v) in &model {
            let got = s.get(k).expect("get");
            prop_assert_eq!(got.as_ref(), Some(v));
        }
    }

    /// Recovery over arbitrary bytes in a region never panics and finds only well-formed,
    /// checksummed data.
    #[test]
    fn recovery_over_garbage(garbage in proptest::collection::vec(any::<u8>(), 0..4096), at in 0usize..8192) {
        let mut s = small_store();
        s.put(b"a", b"1").expect("put");
        let mut disk = s.into_device();
        let start = 1024 + at;
        let end = (start + garbage.len()).min(disk.image().len());
        disk.image_mut()[start..end].copy_from_slice(&garbage[..end - start]);
        if let Ok(mut s) = Store::open(disk) {
            for k in s.list() {
                prop_assert!(k == b"a", "unknown key {:?}", k);
                prop_assert_eq!(s.get(&k).expect("get"), Some(b"1".to_vec()));
            }
        }
    }
}

/// Host measurements over the in-memory disk (not a test of correctness: run with
/// `cargo test --release -p storage -- --ignored --nocapture measure`). The disk is the size
/// of the guest's `xvdb` (4 MiB: regions of 2 MiB).
#[test]
#[ignore = "measurement; prints host numbers"]
fn measure_host_puts_per_second_and_recovery() {
    use std::time::Instant;
    const DISK: usize = 4 << 20;
    let mut s = Store::open(MemDisk::new(DISK)).expect("format");
    let value = vec![0x5au8; 100];
    let puts = 100_000u32;
    let t = Instant::now();
    for i in 0..puts {
        s.put(format!("key-{:04}", i % 1000).as_bytes(), &value)
            .expect("put");
    }
    let dt = t.elapsed();
    let stats = s.stats();
    std::eprintln!(
        "MEASURE host puts: {puts} puts of 100-byte values over 1000 keys in {dt:?}: {:.0} puts/s ({} compactions, {} flushes)",
        f64::from(puts) / dt.as_secs_f64(),
        stats.compactions,
        stats.flushes
    );
    // A full log: fill the live region with overwrites up to its last group, then recover.
    let mut s = Store::open(MemDisk::new(DISK)).expect("format");
    let mut i = 0u32;
    loop {
        let before = s.stats().compactions;
        s.put(format!("key-{:04}", i % 1000).as_bytes(), &value)
            .expect("put");
        if s.stats().compactions > before {
            break;
        }
        i += 1;
    }
    // The compaction just left a small log; refill it to the brim without compacting.
    let mut groups = 0u64;
    loop {
        let st = s.stats();
        if st.used + 1024 > st.capacity {
            break;
        }
        s.put(format!("key-{:04}", i % 1000).as_bytes(), &value)
            .expect("put");
        i += 1;
        groups += 1;
    }
    let st = s.stats();
    let disk = s.into_device();
    let t = Instant::now();
    let s = Store::open(disk).expect("recover");
    let dt = t.elapsed();
    std::eprintln!(
        "MEASURE host recovery of a full log: {} of {} bytes used, {} groups ({} added after the last compaction), {} keys, in {dt:?}",
        st.used,
        st.capacity,
        s.stats().recovered_groups,
        groups,
        s.len()
    );
}

/// Writes and flushes what `pending` asks for, as a caller submitting requests would.
fn complete(s: &mut Store<MemDisk>, pending: super::Pending) -> Result<(), KvError<FakeError>> {
    let pieces: Vec<(u64, Vec<u8>)> = pending.writes().map(|(at, p)| (at, p.to_vec())).collect();
    let mut result = Ok(());
    for (at, piece) in &pieces {
        result = result.and_then(|()| crate::BlockDevice::write(&mut s.dev, *at, piece));
    }
    let result = result.and_then(|()| crate::BlockDevice::flush(&mut s.dev));
    s.finish(pending, result)
}

#[test]
fn a_begun_commit_changes_nothing_until_it_finishes() {
    let mut s = small_store();
    s.put(b"a", b"old").expect("put");
    let (writes, flushes) = (s.dev.writes, s.dev.flushes);
    let counted = s.stats().flushes;
    let pending = s
        .begin(&[Op::Put(b"a", b"new")])
        .expect("begin")
        .expect("fits");
    assert_eq!(
        (s.dev.writes, s.dev.flushes),
        (writes, flushes),
        "the caller writes"
    );
    assert_eq!(s.get(b"a"), Ok(Some(b"old".to_vec())));
    assert!(s.is_busy());
    assert_eq!(s.begin(&[Op::Put(b"b", b"x")]).err(), Some(KvError::Busy));
    assert_eq!(s.put(b"b", b"x"), Err(KvError::Busy));
    complete(&mut s, pending).expect("finish");
    assert!(!s.is_busy());
    assert_eq!(s.get(b"a"), Ok(Some(b"new".to_vec())));
    assert_eq!(s.stats().flushes, counted + 1);
    // What the caller wrote is what a commit writes: the store reopens to it.
    let mut s = Store::open(s.into_device()).expect("reopen");
    assert_eq!(s.get(b"a"), Ok(Some(b"new".to_vec())));
    // A read done by the caller gives what get gives, and is checked.
    let at = s.locate(b"a").expect("located");
    let mut bytes = vec![0u8; at.len];
    crate::BlockDevice::read(&mut s.dev, at.offset, &mut bytes).expect("read");
    assert_eq!(s.value_from(&at, b"a", &bytes), Ok(b"new".to_vec()));
    assert!(matches!(
        s.value_from(&at, b"b", &bytes),
        Err(KvError::Corrupt { .. })
    ));
    assert!(matches!(
        s.value_from(&at, b"a", &bytes[..1]),
        Err(KvError::Corrupt { .. })
    ));
    bytes.iter_mut().for_each(|b| *b ^= 0xff);
    assert!(matches!(
        s.value_from(&at, b"a", &bytes),
        Err(KvError::Corrupt { .. })
    ));
    assert_eq!(s.locate(b"missing"), None);
}

#[test]
fn a_begun_commit_that_fails_poisons_and_a_full_region_is_left_to_commit() {
    let mut s = small_store();
    s.put(b"a", b"v").expect("put");
    let pending = s.begin(&[Op::Delete(b"a")]).expect("begin").expect("fits");
    assert!(s.finish(pending, Err(FakeError::OutOfRange)).is_err());
    assert_eq!(s.put(b"a", b"w"), Err(KvError::Poisoned));
    // Once the live region cannot take the group, begin declines (None) and commit
    // compacts.
    let mut s = small_store();
    let value = vec![1u8; 4096];
    for i in 0..100 {
        let key = format!("k{}", i % 2);
        match s.begin(&[Op::Put(key.as_bytes(), &value)]).expect("begin") {
            Some(pending) => complete(&mut s, pending).expect("commit"),
            None => {
                assert!(!s.is_busy());
                s.put(key.as_bytes(), &value).expect("compacts");
                assert_eq!(s.stats().compactions, 1);
                return;
            }
        }
    }
    panic!("the region never filled");
}
