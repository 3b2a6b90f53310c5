//! `blk-resize` on hv: QEMU's monitor (QMP) on a Unix socket for the boots that resize a disk
//! under the guest, and the harness's side of the test: when the guest prints `BLK resize
//! grow <vdev> ...` or `BLK resize shrink <vdev> ...` on its console, the drive behind that
//! disk gets `block_resize` to the size the stock-Xen device boot gives it
//! ([`crate::xen::blk::XVDB_RESIZED_BYTES`], then [`crate::xen::blk::XVDB_BYTES`] back).
//! QEMU raises the virtio-blk device's configuration-change interrupt; hv's driver notices it
//! when the disk's back end next serves requests, and hv's blkback announces the new size.
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::serial::Line;
use crate::build::workspace_root;

/// The boots whose QEMU gets a QMP socket, by their run label.
const WITH_QMP: [&str; 1] = ["hv-blk"];

/// How long QEMU may take to answer one QMP exchange.
const QMP_TIMEOUT: Duration = Duration::from_secs(10);

/// The QMP socket for the boot labelled `label` (its directory `target/pvxen/qmp-<label>`
/// made with mode 0700, a stale socket removed), or `None` for boots that get none.
pub fn qmp_socket_for(label: &str) -> Result<Option<PathBuf>> {
    if !WITH_QMP.contains(&label) {
        return Ok(None);
    }
    let dir = workspace_root()
        .join("target")
        .join("pvxen")
        .join(format!("qmp-{label}"));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("chmod 0700 {}", dir.display()))?;
    let socket = dir.join("qmp.sock");
    let _ = std::fs::remove_file(&socket);
    Ok(Some(socket))
}

/// QEMU's arguments for a QMP server on `socket` that does not wait for a client.
pub fn qmp_args(socket: &Path) -> Result<Vec<String>> {
    match socket.to_str() {
        Some(s) if !s.contains(',') => Ok(vec![
            "-qmp".to_owned(),
            format!("unix:{s},server=on,wait=off"),
        ]),
        _ => bail!("{} contains a comma or non-UTF-8", socket.display()),
    }
}

/// The QMP command that resizes drive `drive` to `bytes`.
pub fn block_resize_command(drive: &str, bytes: usize) -> String {
    format!(r#"{{"execute":"block_resize","arguments":{{"device":"{drive}","size":{bytes}}}}}"#)
}

/// One QMP session: the greeting, `qmp_capabilities`, then `command`; `Ok` with QEMU's
/// `return` line, or the `error` it gave (events in between are skipped).
pub fn qmp(socket: &Path, command: &str) -> Result<String> {
    let stream = UnixStream::connect(socket)
        .with_context(|| format!("connecting to QMP at {}", socket.display()))?;
    stream.set_read_timeout(Some(QMP_TIMEOUT))?;
    stream.set_write_timeout(Some(QMP_TIMEOUT))?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader
        .read_line(&mut line)
        .context("reading QMP's greeting")?;
    if !line.contains("\"QMP\"") {
        bail!("QMP greeting {:?}", line.trim());
    }
    for request in [r#"{"execute":"qmp_capabilities"}"#, command] {
        writer.write_all(format!("{request}\n").as_bytes())?;
        let answer = loop {
            line.clear();
            if reader
                .read_line(&mut line)
                .context("reading QMP's answer")?
                == 0
            {
                bail!("QMP closed before answering {request}");
            }
            if !line.contains("\"event\"") {
                break line.trim().to_owned();
            }
        };
        if !answer.contains("\"return\"") {
            bail!("QMP answered {request} with {answer}");
        }
        if request == command {
            return Ok(answer);
        }
    }
    unreachable!("the loop returns after the command")
}

/// The harness's side of `blk-resize` during one boot: each console line of the guest asks
/// for at most one resize, which is done at once; what was done, in order.
pub struct Resizer {
    socket: Option<PathBuf>,
    /// `(vdev, QEMU drive id)` of the disks that may be resized.
    drives: Vec<(&'static str, String)>,
    /// `(vdev, bytes, outcome)` of each resize asked for.
    pub done: Vec<(String, usize, Result<String, String>)>,
}

/// What a guest's console line asks of the harness: the disk and its new size in bytes.
pub fn asked(text: &str) -> Option<(&str, usize)> {
    use crate::xen::blk::{XVDB_BYTES, XVDB_RESIZED_BYTES};
    let rest = text.strip_prefix("BLK resize ")?;
    let (verb, rest) = rest.split_once(' ')?;
    let vdev = rest.split_whitespace().next()?;
    match verb {
        "grow" => Some((vdev, XVDB_RESIZED_BYTES)),
        "shrink" => Some((vdev, XVDB_BYTES)),
        _ => None,
    }
}

impl Resizer {
    /// A resizer over QMP at `socket` (none: every resize fails) for `drives`.
    pub fn new(socket: Option<PathBuf>, drives: Vec<(&'static str, String)>) -> Self {
        Self {
            socket,
            drives,
            done: Vec::new(),
        }
    }

    /// Looks at one serial line; a guest's resize request is carried out.
    pub fn on_line(&mut self, line: &Line) {
        let Line::Guest(_, text) = line else {
            return;
        };
        let Some((vdev, bytes)) = asked(text) else {
            return;
        };
        let drive = self.drives.iter().find(|(v, _)| *v == vdev);
        let outcome = match (drive, &self.socket) {
            (None, _) => Err(format!("no drive for {vdev}")),
            (_, None) => Err("QEMU has no QMP socket".to_owned()),
            (Some((_, id)), Some(socket)) => {
                qmp(socket, &block_resize_command(id, bytes)).map_err(|e| format!("{e:#}"))
            }
        };
        self.done.push((vdev.to_owned(), bytes, outcome));
    }

    /// `HOST hv-blk-resize`: both resizes were asked for (grow, then shrink back) and QEMU
    /// carried each out.
    pub fn verdict(&self) -> (bool, String) {
        use crate::xen::blk::{XVDB_BYTES, XVDB_RESIZED_BYTES};
        let sizes: Vec<usize> = self.done.iter().map(|(_, b, _)| *b).collect();
        let failed = self.done.iter().find_map(|(v, b, r)| {
            r.as_ref()
                .err()
                .map(|e| format!("block_resize of {v} to {b}: {e}"))
        });
        match failed {
            Some(why) => (false, format!("HOST hv-blk-resize FAIL {why}")),
            None if sizes == [XVDB_RESIZED_BYTES, XVDB_BYTES] => {
                (true, "HOST hv-blk-resize ok".to_owned())
            }
            None => (
                false,
                format!("HOST hv-blk-resize FAIL the guest asked for sizes {sizes:?}"),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guests_requests_and_the_qmp_command() {
        assert_eq!(
            asked("BLK resize grow xvdb 6291456 7340032"),
            Some(("xvdb", 7 << 20))
        );
        assert_eq!(
            asked("BLK resize shrink xvdb 6291456"),
            Some(("xvdb", 6 << 20))
        );
        assert_eq!(asked("BLK resize explode xvdb"), None);
        assert_eq!(asked("BLK stats xvdb requests 3"), None);
        assert_eq!(
            block_resize_command("d1", 7 << 20),
            r#"{"execute":"block_resize","arguments":{"device":"d1","size":7340032}}"#
        );
        assert_eq!(
            qmp_args(Path::new("/t/qmp.sock")).unwrap().join(" "),
            "-qmp unix:/t/qmp.sock,server=on,wait=off"
        );
        assert!(qmp_args(Path::new("/t/a,b")).is_err());
    }

    #[test]
    fn the_verdict_needs_both_resizes_carried_out() {
        let mut r = Resizer::new(None, vec![("xvdb", "d1".to_owned())]);
        r.on_line(&Line::Guest(
            1,
            "BLK resize grow xvdb 6291456 7340032".to_owned(),
        ));
        assert!(!r.verdict().0, "{:?}", r.verdict());
        assert!(r.verdict().1.contains("no QMP socket"));
        r.done = vec![
            (
                "xvdb".to_owned(),
                7 << 20,
                Ok("{\"return\": {}}".to_owned()),
            ),
            (
                "xvdb".to_owned(),
                6 << 20,
                Ok("{\"return\": {}}".to_owned()),
            ),
        ];
        assert_eq!(r.verdict(), (true, "HOST hv-blk-resize ok".to_owned()));
        r.done.pop();
        assert!(!r.verdict().0);
    }
}
