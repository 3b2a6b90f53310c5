//! Host tests: the device against a fake xenstored playing toolstack and netback, and a fake
//! netback on the real ring layout that misbehaves on demand.
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap,
    reason = "test fixtures: small known sizes and indexes, on 64-bit hosts only"
)]

mod e2e;
mod faults;
mod handshake;
mod http;
mod netback;
mod offload;
mod props;
mod queues;
mod resume;
mod traffic;

use crate::device::{Config, Netfront, Offloads};
use netback::FakeNetback;
use std::boxed::Box;
use std::format;
use std::string::{String, ToString};
use std::vec::Vec;
use xenbus::Instant;
use xenbus::Platform;
use xenbus::grant::GrantTable;
use xenbus::testing::{FakeEvents, FakeGrantEntries, FakeXenstored, HostMemory, Store};
use xenbus::xenstore::XsClient;

const DOMID: u16 = 5;
const FRONT: &str = "/local/domain/5/device/vif/0";
const BACK: &str = "/local/domain/0/backend/vif/5/0";
const MAC: &str = "00:16:3e:12:34:56";

type Device = Netfront<HostMemory, GrantTable<FakeGrantEntries>, FakeEvents>;

/// The device as it was before the offloads: every one switched off.
const NO_OFFLOADS: Config = Config {
    tx_buffers: 128,
    rx_buffers: 128,
    offloads: Offloads::NONE,
    queues: 1,
};

fn far() -> Instant {
    Instant::from_nanos(1_000_000_000_000)
}

/// What the toolstack and netback's probe write before the guest starts (`mtu` unless
/// `None`, `feature-rx-copy` if `rx_copy`).
fn toolstack(s: &mut Store, mtu: Option<&str>, rx_copy: bool) {
    let mut front = vec![("mac", MAC)];
    front.extend(mtu.map(|m| ("mtu", m)));
    let mut back = Vec::new();
    if rx_copy {
        back.push(("feature-rx-copy", "1"));
    }
    back.push(("feature-sg", "1"));
    back.push(("feature-gso-tcpv4", "1"));
    s.add_device(FRONT, BACK, &front, &back);
}

/// A xenstored whose netback connects once the front end says Connected.
fn xenstore(mtu: Option<&str>, rx_copy: bool) -> XsClient<FakeXenstored> {
    let mut fake = FakeXenstored::new(DOMID);
    toolstack(&mut fake.store, mtu, rx_copy);
    fake.on_write = Some(Box::new(|s, path, value| {
        if path == format!("{FRONT}/state") {
            match value {
                "4" => s.set(&format!("{BACK}/state"), "4"),
                "5" => s.set(&format!("{BACK}/state"), "6"),
                _ => {}
            }
        }
    }));
    XsClient::new(fake)
}

fn platform(memory: &HostMemory) -> Platform<HostMemory, GrantTable<FakeGrantEntries>, FakeEvents> {
    Platform {
        pages: memory.clone(),
        grants: GrantTable::new(FakeGrantEntries::with_frames(1), 1, 8),
        events: FakeEvents::new(),
    }
}

/// A connected device and its backend.
struct Rig {
    xs: XsClient<FakeXenstored>,
    dev: Device,
    back: FakeNetback,
    memory: HostMemory,
}

impl Rig {
    fn new() -> Self {
        Self::with(Some("1500"), Config::default())
    }

    fn with(mtu: Option<&str>, config: Config) -> Self {
        let memory = HostMemory::new();
        let mut xs = xenstore(mtu, true);
        let dev = Netfront::connect(&mut xs, 0, config, platform(&memory), far()).unwrap();
        let tx_ref = key(&xs, "tx-ring-ref").parse().unwrap();
        let rx_ref = key(&xs, "rx-ring-ref").parse().unwrap();
        let back = FakeNetback::attach(&memory, dev.platform().grants.entries(), tx_ref, rx_ref);
        Self {
            xs,
            dev,
            back,
            memory,
        }
    }

    /// The backend runs once; its notification (if any) reaches the device.
    fn backend(&mut self) -> bool {
        let notified = self.back.run(self.dev.platform().grants.entries());
        if notified {
            self.dev.on_event();
        }
        notified
    }

    /// Frames the device has received.
    fn received(&mut self) -> Vec<Vec<u8>> {
        std::iter::from_fn(|| self.dev.receive()).collect()
    }
}

/// A frontend key as written.
fn key(xs: &XsClient<FakeXenstored>, name: &str) -> String {
    xs.transport()
        .store
        .get(&format!("{FRONT}/{name}"))
        .unwrap_or_default()
}

/// A frame of `len` bytes numbered `n` (its bytes say where they belong).
fn frame(n: u8, len: usize) -> Vec<u8> {
    (0..len).map(|i| n ^ (i as u8)).collect()
}
