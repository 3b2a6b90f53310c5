//! The typed xenstore operations: read, write, mkdir, rm, directory, permissions, watches and
//! transactions, each validating its arguments before sending and its reply after.

use super::XsdError;
use super::client::XsClient;
use super::error::{ProtocolError, XsErrno, XsError};
use super::payload;
use super::transport::XsTransport;
use crate::time::Instant;
use crate::types::TxId;
use abi::io::xs_wire::Perm;
use abi::io::xs_wire::{
    XENSTORE_ABS_PATH_MAX, XENSTORE_REL_PATH_MAX, XS_DIRECTORY, XS_GET_PERMS, XS_MKDIR, XS_READ,
    XS_RM, XS_TRANSACTION_END, XS_TRANSACTION_START, XS_UNWATCH, XS_WATCH, XS_WRITE,
};
use alloc::string::String;
use alloc::vec::Vec;

/// Checks a path: non-empty, no NUL, within xenstored's absolute/relative length limits.
pub fn check_path(path: &str) -> Result<(), XsError> {
    let max = if path.starts_with('/') {
        XENSTORE_ABS_PATH_MAX
    } else {
        XENSTORE_REL_PATH_MAX
    };
    if path.is_empty() || path.len() > max as usize || path.contains('\0') {
        return Err(XsError::InvalidPath);
    }
    Ok(())
}

fn check_token(token: &str) -> Result<(), XsError> {
    if token.is_empty() || token.contains('\0') {
        return Err(XsError::InvalidArgument);
    }
    Ok(())
}

impl<T: XsTransport> XsClient<T> {
    /// Reads the value of `path` as UTF-8 text.
    pub fn read(&mut self, tx: TxId, path: &str, deadline: Instant) -> Result<String, XsError> {
        check_path(path)?;
        let reply = self.request(XS_READ, tx, &[path.as_bytes(), b"\0"], deadline)?;
        Ok(payload::text(&reply)?)
    }

    /// Reads `path`, mapping `ENOENT` to `None`.
    pub fn read_optional(
        &mut self,
        tx: TxId,
        path: &str,
        deadline: Instant,
    ) -> Result<Option<String>, XsError> {
        match self.read(tx, path, deadline) {
            Ok(value) => Ok(Some(value)),
            Err(XsError::Server(XsErrno::Known(XsdError::Enoent))) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes `value` to `path`, creating it (and missing parents) if needed.
    pub fn write(
        &mut self,
        tx: TxId,
        path: &str,
        value: &str,
        deadline: Instant,
    ) -> Result<(), XsError> {
        check_path(path)?;
        let reply = self.request(
            XS_WRITE,
            tx,
            &[path.as_bytes(), b"\0", value.as_bytes()],
            deadline,
        )?;
        Ok(payload::ok(&reply)?)
    }

    /// Creates `path` with an empty value if it does not exist.
    pub fn mkdir(&mut self, tx: TxId, path: &str, deadline: Instant) -> Result<(), XsError> {
        self.simple(XS_MKDIR, tx, path, deadline)
    }

    /// Removes `path` and everything below it.
    pub fn rm(&mut self, tx: TxId, path: &str, deadline: Instant) -> Result<(), XsError> {
        self.simple(XS_RM, tx, path, deadline)
    }

    /// Lists the children of `path` (names, not full paths).
    pub fn directory(
        &mut self,
        tx: TxId,
        path: &str,
        deadline: Instant,
    ) -> Result<Vec<String>, XsError> {
        check_path(path)?;
        let reply = self.request(XS_DIRECTORY, tx, &[path.as_bytes(), b"\0"], deadline)?;
        Ok(payload::list(&reply)?)
    }

    /// Reads the permission list of `path` (owner and default access first).
    pub fn get_perms(
        &mut self,
        tx: TxId,
        path: &str,
        deadline: Instant,
    ) -> Result<Vec<Perm>, XsError> {
        check_path(path)?;
        let reply = self.request(XS_GET_PERMS, tx, &[path.as_bytes(), b"\0"], deadline)?;
        Ok(payload::perms(&reply)?)
    }

    /// Registers a watch on `path` (and everything below it). xenstored fires it once at once.
    pub fn watch(&mut self, path: &str, token: &str, deadline: Instant) -> Result<(), XsError> {
        self.watch_request(XS_WATCH, path, token, deadline)
    }

    /// Removes a watch registered with the same `path` and `token`; queued events carrying
    /// `token` are discarded.
    pub fn unwatch(&mut self, path: &str, token: &str, deadline: Instant) -> Result<(), XsError> {
        self.watch_request(XS_UNWATCH, path, token, deadline)?;
        while self.take_event_for(token).is_some() {}
        Ok(())
    }

    /// Removes a watch without waiting for xenstored's answer (see
    /// [`XsClient::request_detached`]); queued events of `token` are discarded.
    pub fn unwatch_detached(&mut self, path: &str, token: &str) -> Result<(), XsError> {
        check_path(path)?;
        check_token(token)?;
        self.request_detached(
            XS_UNWATCH,
            TxId::NONE,
            &[path.as_bytes(), b"\0", token.as_bytes(), b"\0"],
        )?;
        while self.take_event_for(token).is_some() {}
        Ok(())
    }

    /// Starts a transaction.
    pub fn transaction_start(&mut self, deadline: Instant) -> Result<TxId, XsError> {
        let reply = self.request(XS_TRANSACTION_START, TxId::NONE, &[b"\0"], deadline)?;
        let id = payload::single(&reply)?;
        payload::parse_decimal(id)
            .and_then(|id| TxId::try_new(id).ok())
            .ok_or(ProtocolError::MalformedPayload.into())
    }

    /// Ends a transaction: commits it if `commit`, aborts it otherwise. A commit that
    /// conflicted fails with `Server(Eagain)`.
    pub fn transaction_end(
        &mut self,
        tx: TxId,
        commit: bool,
        deadline: Instant,
    ) -> Result<(), XsError> {
        let flag: &[u8] = if commit { b"T\0" } else { b"F\0" };
        let reply = self.request(XS_TRANSACTION_END, tx, &[flag], deadline)?;
        Ok(payload::ok(&reply)?)
    }

    /// Runs `body` in a transaction and commits it, rerunning everything when xenstored
    /// answers `EAGAIN` (from the commit or from inside `body`), at most `max_attempts` times.
    /// Any other error from `body` aborts the transaction and is returned.
    pub fn transaction<R>(
        &mut self,
        max_attempts: u32,
        deadline: Instant,
        mut body: impl FnMut(&mut Self, TxId) -> Result<R, XsError>,
    ) -> Result<R, XsError> {
        const EAGAIN: XsError = XsError::Server(XsErrno::Known(XsdError::Eagain));
        for _ in 0..max_attempts {
            let tx = self.transaction_start(deadline)?;
            match body(self, tx) {
                Ok(value) => match self.transaction_end(tx, true, deadline) {
                    Ok(()) => return Ok(value),
                    Err(EAGAIN) => continue,
                    Err(e) => return Err(e),
                },
                Err(e) => {
                    // The body's error is the one to report; an abort failure adds nothing.
                    let _ = self.transaction_end(tx, false, deadline);
                    if e != EAGAIN {
                        return Err(e);
                    }
                }
            }
        }
        Err(XsError::TransactionRetriesExhausted)
    }

    fn simple(
        &mut self,
        type_: u32,
        tx: TxId,
        path: &str,
        deadline: Instant,
    ) -> Result<(), XsError> {
        check_path(path)?;
        let reply = self.request(type_, tx, &[path.as_bytes(), b"\0"], deadline)?;
        Ok(payload::ok(&reply)?)
    }

    fn watch_request(
        &mut self,
        type_: u32,
        path: &str,
        token: &str,
        deadline: Instant,
    ) -> Result<(), XsError> {
        check_path(path)?;
        check_token(token)?;
        let reply = self.request(
            type_,
            TxId::NONE,
            &[path.as_bytes(), b"\0", token.as_bytes(), b"\0"],
            deadline,
        )?;
        Ok(payload::ok(&reply)?)
    }
}
