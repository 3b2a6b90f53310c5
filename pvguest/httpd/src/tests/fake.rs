//! A fake [`Backend`]: files and keys in memory, switches to make it fail, and a log of what
//! it was asked, in order.

use crate::{Backend, BackendError, Status};
use std::collections::BTreeMap;

#[derive(Default)]
pub struct Fake {
    /// The archive: path → contents (directories are paths ending in `/`, not files).
    pub files: BTreeMap<String, Vec<u8>>,
    /// The store.
    pub kv: BTreeMap<String, Vec<u8>>,
    /// A read touching this offset of any file fails.
    pub fail_read_at: Option<u64>,
    /// A read touching this offset of any file ends there (a short read before the end).
    pub short_read_at: Option<u64>,
    /// What `kv_put` answers instead of storing.
    pub fail_put: Option<BackendError>,
    /// What every storage method answers (say, `Unavailable`).
    pub fail_all: Option<BackendError>,
    /// A stalled disk: every method that needs it (file reads, the store's get, put and
    /// delete) answers `Pending` (and is logged or counted) until this is cleared.
    pub stalled: bool,
    /// While stalled: the put or delete asked is on its way to the disk (what
    /// `kv_change_on_its_way` answers).
    pub on_its_way: bool,
    /// What it was asked, in order (`read_file` calls are counted, not logged).
    pub log: Vec<String>,
    /// What `unix_time` answers.
    pub unix_time: Option<u64>,
    /// What `file_version` answers, for every file.
    pub version: u64,
    /// `read_file` calls and the largest buffer one was given.
    pub reads: usize,
    pub largest_read: usize,
}

impl Fake {
    pub fn with_files(files: &[(&str, &[u8])]) -> Self {
        Self {
            files: files
                .iter()
                .map(|(path, data)| ((*path).to_owned(), data.to_vec()))
                .collect(),
            ..Self::default()
        }
    }

    fn check(&self) -> Result<(), BackendError> {
        self.fail_all.clone().map_or(Ok(()), Err)
    }

    fn disk(&self) -> Result<(), BackendError> {
        self.check()?;
        if self.stalled {
            Err(BackendError::Pending)
        } else {
            Ok(())
        }
    }
}

impl Backend for Fake {
    fn status(&mut self) -> Status {
        Status {
            uptime_ms: 1234,
            heap_bytes_in_use: 5678,
            grants_in_use: 194,
            driver: vec![("tx_packets", 5), ("rx_packets", 7)],
            storage: vec![
                ("keys", self.kv.len() as u64),
                ("files", self.files.len() as u64),
            ],
            event_loop: vec![("turns", 3)],
            stack: vec![],
        }
    }

    fn file_size(&mut self, path: &str) -> Result<u64, BackendError> {
        self.log.push(format!("size {path}"));
        self.check()?;
        self.files
            .get(path)
            .map(|f| f.len() as u64)
            .ok_or(BackendError::NotFound)
    }

    fn read_file(&mut self, path: &str, pos: u64, buf: &mut [u8]) -> Result<usize, BackendError> {
        self.reads += 1;
        self.largest_read = self.largest_read.max(buf.len());
        self.disk()?;
        let file = self.files.get(path).ok_or(BackendError::NotFound)?;
        let end = pos + buf.len() as u64;
        if self.fail_read_at.is_some_and(|at| (pos..end).contains(&at)) {
            return Err(BackendError::Failed("read error".into()));
        }
        let end = match self.short_read_at {
            Some(at) if (pos..end).contains(&at) => at,
            _ => end,
        };
        let start = usize::try_from(pos).unwrap().min(file.len());
        let end = usize::try_from(end).unwrap().min(file.len());
        buf[..end - start].copy_from_slice(&file[start..end]);
        Ok(end - start)
    }

    fn kv_get(&mut self, key: &str) -> Result<Vec<u8>, BackendError> {
        self.log.push(format!("get {key}"));
        self.disk()?;
        self.kv.get(key).cloned().ok_or(BackendError::NotFound)
    }

    fn kv_put(&mut self, key: &str, value: &[u8]) -> Result<(), BackendError> {
        self.log.push(format!("put {key} {}", value.len()));
        self.disk()?;
        if let Some(error) = self.fail_put.clone() {
            return Err(error);
        }
        self.kv.insert(key.to_owned(), value.to_vec());
        Ok(())
    }

    fn kv_delete(&mut self, key: &str) -> Result<(), BackendError> {
        self.log.push(format!("delete {key}"));
        self.disk()?;
        self.kv
            .remove(key)
            .map(|_| ())
            .ok_or(BackendError::NotFound)
    }

    fn kv_change_on_its_way(&mut self, key: &str, value: Option<&[u8]>) -> bool {
        self.log.push(format!(
            "on its way? {key} {}",
            value.map_or("delete".to_owned(), |v| v.len().to_string())
        ));
        self.stalled && self.on_its_way
    }

    fn file_version(&mut self, _path: &str) -> u64 {
        self.version
    }

    fn unix_time(&mut self) -> Option<u64> {
        self.unix_time
    }

    fn kv_keys(&mut self) -> Result<Vec<String>, BackendError> {
        self.log.push("keys".to_owned());
        self.check()?;
        Ok(self.kv.keys().cloned().collect())
    }
}
