//! TEMPORARY, removed when the store's session listing and revocation
//! (issue 13, items 3 and 4) are merged: until then, the three methods
//! that work will add to [`crate::session::SessionStore`], with their exact
//! names and signatures, so that [`super::sessions`] is written against
//! them already, and its endpoints answer `501 Not Implemented`.
//!
//! At the merge: delete this file and its `mod` line, import
//! `SessionStore` and the new `SessionSummary` in `sessions.rs` instead of
//! `pending::*`, and drop its `pending::built()?` lines. (Should both this
//! trait and the real methods be in scope, the calls are ambiguous and the
//! build fails: this shim cannot be left behind by mistake.)

use std::net::IpAddr;

use super::AdminError;
use crate::session::{AnyStore, Policy, StoreError};

/// One live session as the admin API lists it.
#[derive(Debug, Clone)]
pub struct SessionSummary {
    /// The session's 12-hex-digit log tag (never the id).
    pub tag: String,
    /// Creation, unix seconds.
    pub created: u64,
    /// Last refresh of the idle deadline, unix seconds.
    pub last_seen: u64,
    /// When it ends if nothing touches it again, unix seconds.
    pub expires: u64,
    /// The client address it was created from, when kept.
    pub client: Option<IpAddr>,
}

/// Refuses with `501` until the store methods exist.
pub fn built() -> Result<(), AdminError> {
    Err(AdminError::NotImplemented)
}

/// The session listing and revocation methods, as the store will have them.
pub trait SessionAdmin {
    /// The live sessions of `user`.
    fn sessions_of(
        &self,
        user: &str,
        now: u64,
        policy: &Policy,
    ) -> impl Future<Output = Result<Vec<SessionSummary>, StoreError>> + Send;

    /// Ends every session of `user`; how many ended.
    fn end_sessions_of(&self, user: &str)
    -> impl Future<Output = Result<usize, StoreError>> + Send;

    /// Ends the live session tagged `tag`; whether there was one.
    fn end_session_tagged(
        &self,
        tag: &str,
        now: u64,
        policy: &Policy,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

impl SessionAdmin for AnyStore {
    async fn sessions_of(
        &self,
        _user: &str,
        _now: u64,
        _policy: &Policy,
    ) -> Result<Vec<SessionSummary>, StoreError> {
        Ok(Vec::new())
    }

    async fn end_sessions_of(&self, _user: &str) -> Result<usize, StoreError> {
        Ok(0)
    }

    async fn end_session_tagged(
        &self,
        _tag: &str,
        _now: u64,
        _policy: &Policy,
    ) -> Result<bool, StoreError> {
        Ok(false)
    }
}
