//! Split event channels and multiple queues: the keys as Linux's netfront writes them, each
//! flow on one queue and flows spread over queues, events and frames counted per queue and
//! channel, the switches, a backend's absurd offers, and a resume that makes every queue
//! again.

use super::*;
use crate::device::MAX_QUEUES;
use xenbus::Port;
use xenbus::grant::{ENTRIES_PER_FRAME, GrantEntries};

/// A xenstore whose netback offers split channels and `max_queues` queues (as written).
fn offering(split: &str, max_queues: Option<&str>) -> XsClient<FakeXenstored> {
    let mut xs = xenstore(Some("1500"), true);
    let store = &mut xs.transport_mut().store;
    store.set(&format!("{BACK}/feature-split-event-channels"), split);
    if let Some(n) = max_queues {
        store.set(&format!("{BACK}/multi-queue-max-queues"), n);
    }
    xs
}

/// A frontend key under `queue-<q>/` (or flat for `None`).
fn qkey(xs: &XsClient<FakeXenstored>, q: Option<usize>, name: &str) -> Option<String> {
    let dir = q.map_or(String::new(), |q| format!("queue-{q}/"));
    xs.transport().store.get(&format!("{FRONT}/{dir}{name}"))
}

/// A UDP frame from 10.0.0.2:`sport` to 10.0.0.1:9.
fn udp(sport: u16, len: usize) -> Vec<u8> {
    let mut f = vec![0u8; len.max(42)];
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f[14] = 0x45;
    f[23] = 17;
    f[26..30].copy_from_slice(&[10, 0, 0, 2]);
    f[30..34].copy_from_slice(&[10, 0, 0, 1]);
    f[34..36].copy_from_slice(&sport.to_be_bytes());
    f[36..38].copy_from_slice(&9u16.to_be_bytes());
    f
}

/// The device with every feature on and `queues` asked for, and a fake netback per queue.
fn connected(
    xs: &mut XsClient<FakeXenstored>,
    memory: &HostMemory,
    queues: u16,
) -> (Device, Vec<FakeNetback>) {
    let config = Config {
        queues,
        ..Config::default()
    };
    let dev = Netfront::connect(xs, 0, config, platform(memory), far()).unwrap();
    let n = dev.queue_count();
    let backs = (0..n)
        .map(|q| {
            let dir = (n > 1).then_some(q);
            let tx = qkey(xs, dir, "tx-ring-ref").unwrap().parse().unwrap();
            let rx = qkey(xs, dir, "rx-ring-ref").unwrap().parse().unwrap();
            FakeNetback::attach(memory, dev.platform().grants.entries(), tx, rx)
        })
        .collect();
    (dev, backs)
}

#[test]
fn queues_and_split_channels_are_written_as_linux_writes_them() {
    let memory = HostMemory::new();
    let mut xs = offering("1", Some("4"));
    let (dev, _) = connected(&mut xs, &memory, 2);
    assert_eq!(dev.queue_count(), 2);
    assert!(dev.split_channels());
    assert!(dev.offloads().split && dev.offloads().multi_queue);
    assert_eq!(key(&xs, "multi-queue-num-queues"), "2");
    // Hierarchical keys only: nothing flat that netback could take for queue 0.
    for flat in ["tx-ring-ref", "rx-ring-ref", "event-channel"] {
        assert_eq!(qkey(&xs, None, flat), None, "{flat}");
    }
    let mut ports = Vec::new();
    for q in 0..2 {
        assert_eq!(qkey(&xs, Some(q), "event-channel"), None);
        for k in ["event-channel-tx", "event-channel-rx"] {
            ports.push(qkey(&xs, Some(q), k).unwrap().parse::<u32>().unwrap());
        }
    }
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), 4, "four distinct channels");
    assert_eq!(dev.ports().len(), 4);
    let s = dev.stats();
    assert_eq!((s.queues_in_use, s.split_channels), (2, true));
    // Every queue's buffers posted, and each rx channel told of them.
    assert_eq!(dev.rx_posted(), 2 * 128);
    assert!(
        s.queues_used()
            .iter()
            .all(|q| q.rx_channel_notifications == 1)
    );
}

#[test]
fn each_flow_keeps_its_queue_and_flows_spread_over_the_queues() {
    let memory = HostMemory::new();
    let mut xs = offering("1", Some("2"));
    let (mut dev, mut backs) = connected(&mut xs, &memory, 8);
    assert_eq!(dev.queue_count(), 2, "capped by the offer");
    for round in 0..3u8 {
        for sport in 40_000..40_008u16 {
            let mut f = udp(sport, 100);
            f[60] = round;
            dev.send(&f).unwrap();
        }
    }
    dev.flush().unwrap();
    let grants = dev.platform().grants.entries();
    for back in &mut backs {
        back.run(grants);
    }
    let mut per_queue = Vec::new();
    for back in &backs {
        let mut sports: Vec<u16> = back
            .from_guest
            .iter()
            .map(|f| u16::from_be_bytes([f[34], f[35]]))
            .collect();
        assert_eq!(sports.len() % 3, 0, "every frame of a flow on one queue");
        sports.dedup();
        per_queue.push(sports.len());
    }
    assert!(per_queue.iter().all(|&n| n > 0), "{per_queue:?}");
    let s = dev.stats();
    let frames: Vec<u64> = s.queues_used().iter().map(|q| q.tx_frames).collect();
    assert_eq!(frames.iter().sum::<u64>(), 24);
    assert!(frames.iter().all(|&n| n > 0), "{frames:?}");
    // One tx notification per queue, on its tx channel.
    assert!(
        s.queues_used()
            .iter()
            .all(|q| q.tx_channel_notifications == 1)
    );

    // Frames back on queue 1 only: polled, counted there; events counted by channel.
    backs[1].to_guest.push_back(udp(9, 80));
    backs[1].run(grants);
    let ports = dev.ports();
    for &port in &ports {
        dev.on_port_event(port);
    }
    dev.on_port_event(Port::try_new(999).unwrap());
    dev.poll();
    assert_eq!(dev.receive().map(|f| f.len()), Some(80));
    let s = dev.stats();
    assert_eq!(
        s.queues_used()
            .iter()
            .map(|q| q.rx_frames)
            .collect::<Vec<_>>(),
        [0, 1]
    );
    for q in s.queues_used() {
        assert_eq!((q.tx_channel_events, q.rx_channel_events), (1, 1));
    }
    assert_eq!(s.notifications_received, 4, "the stray port counts nowhere");
}

#[test]
fn with_the_switches_off_one_queue_and_one_channel() {
    let memory = HostMemory::new();
    let mut xs = offering("1", Some("4"));
    let config = Config {
        offloads: Offloads {
            split: false,
            multi_queue: false,
            ..Offloads::ALL
        },
        ..Config::default()
    };
    let mut dev = Netfront::connect(&mut xs, 0, config, platform(&memory), far()).unwrap();
    assert_eq!((dev.queue_count(), dev.split_channels()), (1, false));
    assert_eq!(key(&xs, "multi-queue-num-queues"), "");
    assert_eq!(qkey(&xs, None, "event-channel-tx"), None);
    assert!(qkey(&xs, None, "event-channel").is_some());
    assert_eq!(qkey(&xs, Some(0), "tx-ring-ref"), None);
    assert_eq!(dev.ports(), [dev.port()]);
    let port = dev.port();
    dev.send(&udp(40_001, 90)).unwrap();
    dev.send(&udp(40_002, 90)).unwrap();
    dev.flush().unwrap();
    dev.on_port_event(port);
    let s = dev.stats();
    assert_eq!((s.queues_in_use, s.split_channels), (1, false));
    let q = s.queues[0];
    assert_eq!((q.tx_frames, q.tx_channel_events), (2, 1));
    assert_eq!((q.rx_channel_events, q.rx_channel_notifications), (0, 0));
    assert!(s.queues[1..].iter().all(|q| *q == Default::default()));
    // `net-offloads=off`: every feature off.
    const { assert!(!Offloads::NONE.split && !Offloads::NONE.multi_queue) };
}

#[test]
fn absurd_offers_give_one_queue_or_the_most_asked() {
    for (split, max, queues, want_split) in [
        ("0", Some("4"), 3, false),
        ("1", None, 1, true),
        ("1", Some("0"), 1, true),
        ("1", Some("1"), 1, true),
        ("1", Some("two"), 1, true),
        ("1", Some("-2"), 1, true),
        ("1", Some("70000"), 1, true),
        ("yes", Some("65535"), 3, false),
    ] {
        let memory = HostMemory::new();
        let mut xs = offering(split, max);
        let config = Config {
            queues: 3,
            ..Config::default()
        };
        let dev = Netfront::connect(&mut xs, 0, config, platform(&memory), far()).unwrap();
        assert_eq!(dev.queue_count(), queues, "{split} {max:?}");
        assert_eq!(dev.split_channels(), want_split, "{split} {max:?}");
        // One queue: flat keys, as netback expects when it reads no queue count above 1.
        if queues == 1 {
            assert!(qkey(&xs, None, "tx-ring-ref").is_some());
        }
    }
    // Never more than MAX_QUEUES, whatever is asked.
    let memory = HostMemory::new();
    let mut xs = offering("0", Some("64"));
    let config = Config {
        queues: 64,
        tx_buffers: 2,
        rx_buffers: 2,
        ..Config::default()
    };
    let dev = Netfront::connect(&mut xs, 0, config, platform(&memory), far()).unwrap();
    assert_eq!(dev.queue_count(), MAX_QUEUES);
}

/// The new domain after a restore: every grant entry 0, and a new backend at `path` (the
/// new domain's id in it, as libxl writes it) offering `split` and `max_queues`, connecting
/// when the front end does.
fn new_domain(
    dev: &Device,
    xs: &mut XsClient<FakeXenstored>,
    old: &str,
    path: &'static str,
    offers: &[(&str, &str)],
) {
    let table = &dev.platform().grants;
    for gref in 0..table.frames() * ENTRIES_PER_FRAME {
        table.entries().write_flags(gref, 0);
    }
    let store = &mut xs.transport_mut().store;
    store.remove(FRONT);
    store.remove(old);
    let mut back = vec![("feature-rx-copy", "1")];
    back.extend_from_slice(offers);
    store.add_device(FRONT, path, &[("mac", MAC), ("mtu", "1500")], &back);
    xs.transport_mut().on_write = Some(Box::new(move |s, at, value| {
        if at == format!("{FRONT}/state") && value == "4" {
            s.set(&format!("{path}/state"), "4");
        }
    }));
}

#[test]
fn a_resume_makes_every_queue_again_and_leaks_nothing() {
    const BACK2: &str = "/local/domain/0/backend/vif/6/0";
    const BACK3: &str = "/local/domain/0/backend/vif/7/0";
    let memory = HostMemory::new();
    let mut xs = offering("1", Some("2"));
    let (mut dev, _) = connected(&mut xs, &memory, 2);
    let grants_before = dev.stats().grants_in_use;
    let pages_before = memory.allocated();
    dev.send(&udp(40_000, 100)).unwrap();
    dev.send(&udp(40_003, 100)).unwrap();
    dev.flush().unwrap();
    let offers = [
        ("feature-split-event-channels", "1"),
        ("multi-queue-max-queues", "2"),
    ];
    new_domain(&dev, &mut xs, BACK, BACK2, &offers);
    dev.resume(&mut xs, Config::default(), platform(&memory), far())
        .unwrap();
    assert_eq!(dev.queue_count(), 2);
    assert!(dev.split_channels());
    let s = dev.stats();
    assert_eq!(s.grants_in_use, grants_before);
    assert_eq!(memory.allocated(), pages_before);
    assert_eq!(key(&xs, "multi-queue-num-queues"), "2");
    // Counters carried; the new rings carry traffic on both queues.
    assert_eq!(s.queues_used().iter().map(|q| q.tx_frames).sum::<u64>(), 2);
    let mut backs = Vec::new();
    for q in 0..2 {
        let tx = qkey(&xs, Some(q), "tx-ring-ref").unwrap().parse().unwrap();
        let rx = qkey(&xs, Some(q), "rx-ring-ref").unwrap().parse().unwrap();
        backs.push(FakeNetback::attach(
            &memory,
            dev.platform().grants.entries(),
            tx,
            rx,
        ));
    }
    for sport in 40_000..40_008u16 {
        dev.send(&udp(sport, 100)).unwrap();
    }
    dev.flush().unwrap();
    let grants = dev.platform().grants.entries();
    for back in &mut backs {
        back.run(grants);
        assert!(!back.from_guest.is_empty());
    }

    // Resumed again where the backend offers neither: one queue, one channel, flat keys.
    new_domain(&dev, &mut xs, BACK2, BACK3, &[]);
    dev.resume(&mut xs, Config::default(), platform(&memory), far())
        .unwrap();
    assert_eq!((dev.queue_count(), dev.split_channels()), (1, false));
    assert_eq!(key(&xs, "multi-queue-num-queues"), "");
    assert!(qkey(&xs, None, "event-channel").is_some());
    assert!(memory.allocated() < pages_before, "one queue's pages");
}
