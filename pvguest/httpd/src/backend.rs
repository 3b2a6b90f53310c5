//! What the storage routes read and keep: the [`Backend`] trait the caller implements, and
//! [`StatusOnly`] for a caller with no storage at all.

use crate::status::Status;
use alloc::string::String;
use alloc::vec::Vec;

/// Why the storage behind a route could not do what was asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BackendError {
    /// No such file or key: 404.
    NotFound,
    /// This part of the service has no storage behind it (say, no disk attached): 503, with this text.
    Unavailable(&'static str),
    /// The store has no room for it: 507, with this text.
    Full(String),
    /// The device or store failed: 500, with this text.
    Failed(String),
    /// The storage has the request in hand and its disk has not answered yet: the
    /// connection asks again, with the same arguments, on a later turn (meanwhile the loop
    /// serves everyone else); still pending after [`crate::Deadlines::storage`], it is
    /// answered `503` (or, mid-answer, cut short), unless it is a change already on its way
    /// to the disk ([`Backend::kv_change_on_its_way`]): that one is answered `202`.
    Pending,
}

/// What the service reads and keeps, given to `Server::step` / `Server::serve` by the caller.
///
/// Submit and poll: a method whose answer needs the disk may submit the request and return
/// [`BackendError::Pending`] at once; the connection calls it again with the same arguments
/// on later turns until it answers (the caller polls the disk between turns and wakes the
/// loop when it completes). A backend that answers at once never returns `Pending`.
pub trait Backend {
    /// The platform part of the status document (`GET /`).
    fn status(&mut self) -> Status;
    /// Size of the archive's regular file at `path` (no leading `/`); NotFound for a missing file or a directory.
    fn file_size(&mut self, path: &str) -> Result<u64, BackendError>;
    /// Reads from the file at `path`, starting `pos` bytes in, into `buf`; returns the bytes read (fewer only at the end).
    fn read_file(&mut self, path: &str, pos: u64, buf: &mut [u8]) -> Result<usize, BackendError>;
    /// The value of `key` (NotFound if absent).
    fn kv_get(&mut self, key: &str) -> Result<Vec<u8>, BackendError>;
    /// Sets `key`; returns only once the change is durable.
    fn kv_put(&mut self, key: &str, value: &[u8]) -> Result<(), BackendError>;
    /// Removes `key` (NotFound if absent); returns only once durable.
    fn kv_delete(&mut self, key: &str) -> Result<(), BackendError>;
    /// Every key, in order.
    fn kv_keys(&mut self) -> Result<Vec<String>, BackendError>;
    /// Whether the change of `key` (a put of `value`, or with `None` a delete), still
    /// [`BackendError::Pending`] at the storage deadline, is already on its way to the disk,
    /// so that it lands when the disk answers whatever the client is told. Such a change is
    /// answered `202 Accepted` (not done yet, applied once the disk completes it); any other
    /// is answered `503` and must then never be applied (the connection stops asking, so a
    /// backend begins nothing it was not asked for again). The default, false: a backend
    /// whose changes never outlive their answer.
    fn kv_change_on_its_way(&mut self, _key: &str, _value: Option<&[u8]>) -> bool {
        false
    }
    /// Something that changes whenever the bytes of the file at `path` may have (the kernel
    /// gives the file's offset in the archive): the file's ETag hashes it with the path and
    /// the size ([`crate::entity::file_etag`]). The default, 0, leaves the ETag to path and
    /// size alone.
    fn file_version(&mut self, _path: &str) -> u64 {
        0
    }
    /// Seconds since the Unix epoch, if the caller knows the wall-clock time: the answers'
    /// `Date` header. The default, None, sends no `Date`.
    fn unix_time(&mut self) -> Option<u64> {
        None
    }
}

/// A backend with no storage: `status` asks the closure; every storage method answers
/// [`BackendError::Unavailable`]`("no storage")` (so the storage routes answer `503`).
pub struct StatusOnly<F: FnMut() -> Status>(pub F);

/// What [`StatusOnly`] answers to every storage method.
const NO_STORAGE: BackendError = BackendError::Unavailable("no storage");

impl<F: FnMut() -> Status> Backend for StatusOnly<F> {
    fn status(&mut self) -> Status {
        (self.0)()
    }

    fn file_size(&mut self, _path: &str) -> Result<u64, BackendError> {
        Err(NO_STORAGE)
    }

    fn read_file(
        &mut self,
        _path: &str,
        _pos: u64,
        _buf: &mut [u8],
    ) -> Result<usize, BackendError> {
        Err(NO_STORAGE)
    }

    fn kv_get(&mut self, _key: &str) -> Result<Vec<u8>, BackendError> {
        Err(NO_STORAGE)
    }

    fn kv_put(&mut self, _key: &str, _value: &[u8]) -> Result<(), BackendError> {
        Err(NO_STORAGE)
    }

    fn kv_delete(&mut self, _key: &str) -> Result<(), BackendError> {
        Err(NO_STORAGE)
    }

    fn kv_keys(&mut self) -> Result<Vec<String>, BackendError> {
        Err(NO_STORAGE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_only_has_status_and_no_storage() {
        let mut backend = StatusOnly(|| Status {
            uptime_ms: 9,
            ..Status::default()
        });
        assert_eq!(backend.status().uptime_ms, 9);
        let unavailable = BackendError::Unavailable("no storage");
        assert_eq!(backend.file_size("a"), Err(unavailable.clone()));
        assert_eq!(
            backend.read_file("a", 0, &mut [0; 4]),
            Err(unavailable.clone())
        );
        assert_eq!(backend.kv_get("k"), Err(unavailable.clone()));
        assert_eq!(backend.kv_put("k", b"v"), Err(unavailable.clone()));
        assert_eq!(backend.kv_delete("k"), Err(unavailable.clone()));
        assert_eq!(backend.kv_keys(), Err(unavailable));
    }
}
