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
mod props;
mod traffic;

use crate::device::{Config, Netfront, Platform};
use netback::FakeNetback;
use std::boxed::Box;
use std::format;
use std::string::{String, ToString};
use std::vec::Vec;
use xenbus::Instant;
use xenbus::grant::GrantTable;
use xenbus::testing::{FakeEvents, FakeGrantEntries, FakeXenstored, HostMemory, Store};
use xenbus::xenstore::{Access, Perm, XsClient};

const DOMID: u16 = 5;
const FRONT: &str = "/local/domain/5/device/vif/0";
const BACK: &str = "/local/domain/0/backend/vif/5/0";
const MAC: &str = "00:16:3e:12:34:56";

type Device = Netfront<HostMemory, GrantTable<FakeGrantEntries>, FakeEvents>;

fn far() -> Instant {
    Instant::from_nanos(1_000_000_000_000)
}

/// What the toolstack and netback's probe write before the guest starts (`mtu` unless
/// `None`, `feature-rx-copy` if `rx_copy`).
fn toolstack(s: &mut Store, mtu: Option<&str>, rx_copy: bool) {
    s.set(&format!("{FRONT}/backend-id"), "0");
    s.set(&format!("{FRONT}/backend"), BACK);
    s.set(&format!("{FRONT}/mac"), MAC);
    if let Some(mtu) = mtu {
        s.set(&format!("{FRONT}/mtu"), mtu);
    }
    s.set(&format!("{FRONT}/state"), "1");
    s.set(&format!("{BACK}/state"), "2");
    if rx_copy {
        s.set(&format!("{BACK}/feature-rx-copy"), "1");
    }
    s.set(&format!("{BACK}/feature-sg"), "1");
    let guest_owns = vec![
        Perm {
            domid: DOMID,
            access: Access::None,
        },
        Perm {
            domid: 0,
            access: Access::Read,
        },
    ];
    s.set_perms(FRONT, guest_owns.clone());
    for key in ["backend-id", "backend", "mac", "mtu", "state"] {
        let path = format!("{FRONT}/{key}");
        if s.get(&path).is_some() {
            s.set_perms(&path, guest_owns.clone());
        }
    }
    let guest_reads = vec![
        Perm {
            domid: 0,
            access: Access::None,
        },
        Perm {
            domid: DOMID,
            access: Access::Read,
        },
    ];
    s.set("/local/domain/0/backend", "");
    for p in [
        "/local/domain/0/backend".to_string(),
        BACK.to_string(),
        format!("{BACK}/state"),
        format!("{BACK}/feature-rx-copy"),
        format!("{BACK}/feature-sg"),
    ] {
        if s.get(&p).is_some() {
            s.set_perms(&p, guest_reads.clone());
        }
    }
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
