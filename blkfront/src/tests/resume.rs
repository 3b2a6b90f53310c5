//! Resuming in a new domain ([`Blkfront::resume`]) against the fake blkback: the grant table
//! comes back empty, the toolstack makes a new backend (another path, fewer features), and the
//! requests that were in flight at the suspend are issued again.

use super::*;
use std::collections::BTreeMap;

/// The new backend's path (a new domain's id in it, as libxl writes it after a restore).
const BACK2: &str = "/local/domain/0/backend/vbd/6/51712";

/// What the new domain starts with: an empty grant table (every entry 0), no mapping of the
/// old backend, and the toolstack's new device nodes with a backend offering `keys` that
/// connects when the front end is Initialised.
fn new_domain(rig: &mut Rig, grants: &SharedGrantTable, keys: &'static [(&'static str, &str)]) {
    {
        let table = grants.0.borrow();
        for gref in 0..table.frames() * xenbus::grant::ENTRIES_PER_FRAME {
            xenbus::grant::GrantEntries::write_flags(table.entries(), gref, 0);
        }
    }
    {
        let mut backend = rig.backend.borrow_mut();
        backend.ring = None;
        backend.ring_page = None;
        backend.misbehave.clear();
        backend.mapped.borrow_mut().clear();
        backend.persistent = false;
    }
    let store = &mut rig.xs.transport_mut().store;
    store.remove(FRONT);
    store.remove(BACK);
    store.add_device(FRONT, BACK2, &[], &[("mode", "w")]);
    let be = rig.backend.clone();
    rig.xs.transport_mut().on_write =
        Some(Box::new(move |s: &mut Store, path: &str, value: &str| {
            if path != format!("{FRONT}/state") || value != "3" {
                return;
            }
            let ring_ref: u32 = s
                .get(&format!("{FRONT}/ring-ref"))
                .unwrap()
                .parse()
                .unwrap();
            let offered = keys
                .iter()
                .any(|(k, v)| *k == "feature-persistent" && *v == "1");
            let front = s.get(&format!("{FRONT}/feature-persistent"));
            be.borrow_mut().persistent = offered && front.as_deref() == Some("1");
            be.borrow_mut().attach(ring_ref);
            s.set(&format!("{BACK2}/sectors"), &SECTORS.to_string());
            s.set(&format!("{BACK2}/sector-size"), "512");
            s.set(&format!("{BACK2}/info"), "0");
            for (k, v) in keys {
                s.set(&format!("{BACK2}/{k}"), v);
            }
            s.set(&format!("{BACK2}/state"), "4");
        }));
}

/// A platform as the kernel hands `resume`: the same memory and grant table, new events.
fn fresh(
    rig: &Rig,
    grants: &SharedGrantTable,
) -> Platform<HostMemory, SharedGrantTable, FakeEvents> {
    let mut events = FakeEvents::new();
    let be = rig.backend.clone();
    events.on_wait = Some(Box::new(move |_, _| be.borrow_mut().process()));
    Platform {
        pages: rig.memory.clone(),
        grants: grants.clone(),
        events,
    }
}

const RICH: &[(&str, &str)] = &[
    ("feature-flush-cache", "1"),
    ("feature-max-indirect-segments", "256"),
    ("feature-persistent", "1"),
];
const PLAIN: &[(&str, &str)] = &[("feature-flush-cache", "1")];

#[test]
fn requests_in_flight_are_issued_again_on_a_new_backend_offering_fewer_features() {
    let (mut rig, mut device) = connect(false, RICH);
    assert!(device.persistent() && device.indirect_segments() > 0);
    let grants = device.platform().grants.clone();
    // Acknowledged before the suspend: it must stay on the disk.
    let acked = pattern(900, 4096)
        .iter()
        .map(|b| b ^ 0xff)
        .collect::<Vec<u8>>();
    device.write(&mut rig.xs, 40 * 512, &acked, far()).unwrap();
    // In flight at the suspend: taken by the old backend, never answered.
    for _ in 0..4 {
        rig.backend
            .borrow_mut()
            .misbehave
            .push_back(Misbehave::Silent);
    }
    let data: Vec<u8> = (0..8192).map(|i| (i * 7 + 3) as u8).collect();
    let write = device.submit_write(100 * 512, &data).unwrap();
    let read = device.submit_read(8 * 512, 4096).unwrap();
    let flush = device.submit_flush().unwrap();
    // Too large for the new backend (no indirect descriptors there).
    let large = device.submit_write(200 * 512, &[0x55; 16 * 4096]).unwrap();
    device.kick().unwrap();
    rig.backend.borrow_mut().process();
    assert!(
        device.poll().is_empty(),
        "nothing answered before the suspend"
    );
    assert_eq!(device.in_flight(), 4);

    new_domain(&mut rig, &grants, PLAIN);
    let platform = fresh(&rig, &grants);
    assert_eq!(device.resume(&mut rig.xs, platform, far()), Ok(3));
    assert_eq!(
        rig.xs
            .transport_mut()
            .store
            .get(&format!("{FRONT}/state"))
            .as_deref(),
        Some("4")
    );
    assert!(
        !device.persistent(),
        "the new backend offers no persistent grants"
    );
    assert_eq!(device.indirect_segments(), 0);

    let mut results = BTreeMap::new();
    for _ in 0..10 {
        rig.backend.borrow_mut().process();
        for c in device.poll() {
            results.insert(c.id, c.result);
        }
    }
    assert_eq!(results.remove(&write), Some(Ok(Vec::new())));
    assert_eq!(results.remove(&read), Some(Ok(pattern(8, 4096))));
    assert_eq!(results.remove(&flush), Some(Ok(Vec::new())));
    assert_eq!(results.remove(&large), Some(Err(BlkError::BackendGone)));
    assert!(results.is_empty(), "{results:?}");
    let backend = rig.backend.borrow();
    assert_eq!(&backend.disk[100 * 512..100 * 512 + data.len()], &data[..]);
    assert_eq!(&backend.disk[40 * 512..40 * 512 + acked.len()], &acked[..]);
    drop(backend);
    // Nothing leaked: the ring's grant and page only.
    assert_eq!(device.stats().data_grants, 0);
    assert_eq!(grants.grants_in_use(), 1);
    assert_eq!(rig.memory.allocated(), 1);
    // The device keeps working on the new backend.
    device.write(&mut rig.xs, 0, &[7; 512], far()).unwrap();
    assert_eq!(
        device.read(&mut rig.xs, 0, 512, far()),
        Ok(std::vec![7; 512])
    );
}

#[test]
fn a_missing_backend_fails_what_was_in_flight_and_leaks_nothing() {
    let (mut rig, mut device) = connect(false, RICH);
    let grants = device.platform().grants.clone();
    rig.backend
        .borrow_mut()
        .misbehave
        .push_back(Misbehave::Silent);
    let read = device.submit_read(0, 4096).unwrap();
    device.kick().unwrap();
    rig.backend.borrow_mut().process();
    new_domain(&mut rig, &grants, PLAIN);
    // The new domain has no such disk: its backend never connects.
    rig.xs.transport_mut().on_write = None;
    let platform = fresh(&rig, &grants);
    let deadline = Instant::from_nanos(1_000_000);
    assert_eq!(
        device.resume(&mut rig.xs, platform, deadline),
        Err(BlkError::Timeout)
    );
    assert_eq!(
        device.poll(),
        std::vec![crate::device::Completion {
            id: read,
            result: Err(BlkError::BackendGone)
        }]
    );
    assert_eq!(device.submit_read(0, 512), Err(BlkError::Timeout));
    assert_eq!(grants.grants_in_use(), 0, "every grant ended");
}
