//! Finding the request's session: our cookie, its signature, one store lookup.
//!
//! An untrusted cookie is "no session", never an error: a bad signature, a
//! cookie older than `max_lifetime` (no lookup at all), a session that ended,
//! or (with `bind_ip`) one presented from another address. Only the store
//! failing is an error.

use std::net::IpAddr;
use std::sync::Arc;

use http::HeaderMap;

use super::cookie::{CookieError, cookie_values};
use super::rules::SessionRules;
use super::{AnyStore, Lookup, SessionId, SessionRecord, SessionStore, StoreError};

/// The session a request carries, once its cookie verified (or one created
/// for it by this request).
#[derive(Debug, Clone)]
pub struct Current {
    /// The session id.
    pub id: SessionId,
    /// When the session was created, unix seconds.
    pub created: u64,
    /// The cookie says the session was stored.
    pub stored_cookie: bool,
    /// The stored record; `None` for a session that never held anything.
    pub record: Option<SessionRecord>,
    /// Created by this request: its cookie must be set.
    pub new: bool,
}

impl Current {
    /// A new anonymous session, not stored until it holds something.
    pub fn fresh(now: u64) -> Self {
        Current {
            id: SessionId::generate(),
            created: now,
            stored_cookie: false,
            record: None,
            new: true,
        }
    }

    /// The signed-in user, if any.
    pub fn user(&self) -> Option<&Arc<str>> {
        self.record.as_ref().and_then(|r| r.user.as_ref())
    }
}

/// What the cookie of a request amounts to.
#[derive(Debug)]
pub enum Found {
    /// No session: no cookie, a cookie that fails, or one of a session that
    /// ended (`expired`: by time, logout or eviction).
    Nothing {
        /// A stored session ended (the login redirect says so).
        expired: bool,
    },
    /// The cookie names an id a login moved to a new one moments ago: a
    /// request the browser sent before the login's answer reached it. It is
    /// nobody (never the logged-in session: that would undo the fixation
    /// defence), but it gets no session of its own either, since its answer
    /// could then replace the new cookie and sign the user out.
    Rotated,
    /// A live session, or an anonymous one that never held anything.
    Session(Current),
}

/// Whether finding a session may refresh its idle deadline.
#[derive(Clone, Copy)]
enum Look {
    /// As a request does: [`SessionStore::lookup`].
    Lookup,
    /// Read only: [`SessionStore::peek`].
    Peek,
}

impl SessionRules {
    /// Verifies the cookie and loads its session: at most one store lookup,
    /// which also tells an id a login just moved from one that ended.
    pub async fn find(
        &self,
        store: &AnyStore,
        headers: &HeaderMap,
        client: IpAddr,
        now: u64,
    ) -> Result<Found, StoreError> {
        self.find_as(store, headers, client, now, Look::Lookup)
            .await
    }

    /// Finds the session as [`SessionRules::find`] does, without refreshing
    /// its idle deadline ([`SessionStore::peek`]): asking how long a
    /// session has left does not extend it.
    pub async fn peek(
        &self,
        store: &AnyStore,
        headers: &HeaderMap,
        client: IpAddr,
        now: u64,
    ) -> Result<Found, StoreError> {
        self.find_as(store, headers, client, now, Look::Peek).await
    }

    async fn find_as(
        &self,
        store: &AnyStore,
        headers: &HeaderMap,
        client: IpAddr,
        now: u64,
        look: Look,
    ) -> Result<Found, StoreError> {
        let mut expired = false;
        let mut claims = None;
        for value in cookie_values(headers, self.jar.name()) {
            let policy = &self.policy;
            match self.signer.decode_remembered(
                value,
                now,
                policy.max_lifetime,
                policy.cookie_lifetime(true),
            ) {
                Ok(c) => {
                    claims = Some(c);
                    break;
                }
                Err(CookieError::TooOld) => expired = true,
                Err(e) => tracing::debug!(reason = %e, "ignoring session cookie"),
            }
        }
        let Some(claims) = claims else {
            return Ok(Found::Nothing { expired });
        };
        let lookup = match look {
            Look::Lookup => store.lookup(&claims.id, now, &self.policy).await?,
            Look::Peek => store.peek(&claims.id, now, &self.policy).await?,
        };
        Ok(match lookup {
            Lookup::Live(record) => {
                if self.bind_ip && record.ip.is_some_and(|ip| ip != client) {
                    tracing::warn!(session = %claims.id.log_hash(), client = %client, "session cookie presented from another IP");
                    return Ok(Found::Nothing { expired: false });
                }
                Found::Session(Current {
                    id: claims.id,
                    created: claims.created,
                    stored_cookie: claims.stored,
                    record: Some(record),
                    new: false,
                })
            }
            // Stored or not, a login moved it to a new id just now.
            Lookup::Rotated => Found::Rotated,
            // Stored once, gone now: it ended (expired, logged out, evicted).
            Lookup::Absent if claims.stored => Found::Nothing { expired: true },
            // Never stored: an untouched anonymous session is still itself.
            Lookup::Absent => Found::Session(Current {
                id: claims.id,
                created: claims.created,
                stored_cookie: false,
                record: None,
                new: false,
            }),
        })
    }
}
