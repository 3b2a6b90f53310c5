//! A `blkfront` disk as `storage`'s `BlockDevice`: each call a blocking request (or, for a
//! long read, several in flight), with the xenstore client lock held only for that call.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use blkfront::{BlkError, Blkfront};
use storage::BlockDevice;
use xenbus::{Instant, frontend};

use crate::vbd::xvd_devid;
use crate::xen::platform::{KernelEvents, KernelGrants, KernelPages};
use crate::xen::{time, xenstore};

/// A connected vbd of this kernel.
pub type Disk = Blkfront<KernelPages, KernelGrants, KernelEvents>;

/// How long one call may take before it fails with [`BlkError::Timeout`].
const CALL_TIMEOUT_MS: u64 = 30_000;

/// Connects the domain's disk `xvd<letter>` (within 30 s) with the features the command line
/// leaves on (`blk-multipage-ring=off`, `blk-indirect=off`, `blk-persistent=off`,
/// `blk-discard=off`, `blk-multiqueue=off`), or says why not (the domain has no such disk, the handshake failed, a
/// malformed switch).
pub fn connect(name: &str) -> Result<Disk, String> {
    let devid = xvd_devid(name).ok_or_else(|| format!("{name} is not a disk name (xvda...)"))?;
    let deadline = time::deadline_ms(CALL_TIMEOUT_MS).map_err(|e| format!("clock: {e:?}"))?;
    let cmdline = crate::kernel::boot_state().map_or("", |b| b.cmdline());
    let features = crate::cmdline::blk_features(cmdline)?;
    xenstore::with(|xs| {
        let ids = frontend::enumerate(xs, "vbd", deadline).map_err(|e| format!("{e:?}"))?;
        if !ids.contains(&devid) {
            return Err(format!("the domain has no {name} (device/vbd/{devid})"));
        }
        let platform = blkfront::Platform {
            pages: KernelPages::new(),
            grants: KernelGrants,
            events: KernelEvents,
        };
        Disk::connect_with(xs, devid, platform, features, deadline)
            .map_err(|e| format!("connect {name}: {e}"))
    })
    .map_err(|e| format!("xenstore: {e}"))?
}

/// `disk` as a [`BlockDevice`].
pub struct BlkDisk<'a> {
    disk: &'a mut Disk,
}

impl<'a> BlkDisk<'a> {
    /// Wraps a connected disk.
    pub fn new(disk: &'a mut Disk) -> Self {
        Self { disk }
    }

    /// The disk, for requests submitted to it directly (the service's submit and poll).
    pub fn disk_mut(&mut self) -> &mut Disk {
        self.disk
    }
}

fn deadline() -> Result<Instant, BlkError> {
    time::deadline_ms(CALL_TIMEOUT_MS).map_err(|_| BlkError::Timeout)
}

/// Runs `f` with the xenstore client (the disk's waits watch the backend's state through it).
fn with_store<R>(
    f: impl FnOnce(&mut xenstore::Client, Instant) -> Result<R, BlkError>,
) -> Result<R, BlkError> {
    let d = deadline()?;
    xenstore::with(|c| f(c, d)).map_err(|_| BlkError::BackendGone)?
}

impl BlockDevice for BlkDisk<'_> {
    type Error = BlkError;

    fn size(&self) -> u64 {
        self.disk.info().bytes()
    }

    fn read(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), BlkError> {
        // As large as a request may be (indirect requests carry more than 11 pages).
        let step = self.disk.max_request_bytes();
        with_store(|xs, d| {
            // Every chunk in flight at once, then collected in order.
            let mut ids = Vec::new();
            for (i, chunk) in buf.chunks(step).enumerate() {
                let at = offset + (i * step) as u64;
                ids.push(self.disk.submit_read(at, chunk.len())?);
            }
            for (id, chunk) in ids.into_iter().zip(buf.chunks_mut(step)) {
                let data = self.disk.wait_for(xs, id, d)?;
                chunk.copy_from_slice(data.get(..chunk.len()).ok_or(BlkError::IoError)?);
            }
            Ok(())
        })
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), BlkError> {
        let step = self.disk.max_request_bytes();
        with_store(|xs, d| {
            let mut ids = Vec::new();
            for (i, chunk) in data.chunks(step).enumerate() {
                let at = offset + (i * step) as u64;
                ids.push(self.disk.submit_write(at, chunk)?);
            }
            for id in ids {
                self.disk.wait_for(xs, id, d)?;
            }
            Ok(())
        })
    }

    fn flush(&mut self) -> Result<(), BlkError> {
        with_store(|xs, d| self.disk.flush(xs, d))
    }
}
