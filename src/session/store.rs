//! The session store contract, shared by the memory and Redis stores.
//!
//! Every operation that changes a session is a single atomic step in the
//! store (a delta applied under the store's own lock or script), so
//! concurrent requests of one session never lose each other's updates.

use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use super::data::DataChange;
use super::id::SessionId;
use crate::config::SessionConfig;

/// One stored session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// Creation time, unix seconds.
    pub created: u64,
    /// Last time the idle deadline was refreshed, unix seconds.
    pub last_seen: u64,
    /// The logged-in user; `None` while anonymous.
    pub user: Option<Arc<str>>,
    /// Data, urlencoded.
    pub data: Arc<str>,
    /// Client IP the session was created from (kept for `bind_ip`).
    pub ip: Option<IpAddr>,
    /// The groups the backend gave the user at sign-in (`X-Session-Groups`),
    /// comma-separated without spaces; `None` when it gave none.
    pub groups: Option<Arc<str>>,
    /// "Remember me": this session's own lifetime, idle or not, in seconds;
    /// `None` for the policy's lifetimes.
    pub remember: Option<u64>,
    /// A short description of the browser that signed in ("Firefox on
    /// Linux", see [`super::browser`]), at most
    /// [`super::browser::MAX_BROWSER_BYTES`]; `None` for anonymous sessions
    /// and those stored before it was kept.
    pub browser: Option<Arc<str>>,
}

impl SessionRecord {
    /// When the session ends if nothing touches it again.
    pub fn expires_at(&self, policy: &Policy) -> u64 {
        policy.expires_at_remembered(self.created, self.last_seen, self.remember)
    }

    /// Whether the session has ended at `now`.
    pub fn is_expired(&self, now: u64, policy: &Policy) -> bool {
        now >= self.expires_at(policy)
    }
}

/// How long, in seconds, a login remembers the id it moved a session away
/// from. A browser keeps sending the pre-login cookie on requests it started
/// before the login's answer (with its new cookie) arrived: other tabs,
/// images, scripts polling. Each would otherwise find no session, be given
/// a new anonymous one and a `Set-Cookie` for it, and whichever answer came
/// last would sign the user out. A minute covers such requests, even those
/// still waiting for a slow backend (`upstream_timeout` is 30 s by default),
/// and leaves the memory a login costs short-lived.
pub const ROTATED_FOR: u64 = 60;

/// What a store holds under an id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// A live session.
    Live(SessionRecord),
    /// No session: a login moved it to a new id less than [`ROTATED_FOR`]
    /// seconds ago. The id must never act as that session (the new id is
    /// not even known here): it only tells a late request of the same
    /// browser from a visitor who has no session.
    Rotated,
    /// Nothing: never stored, ended, or moved by a login long ago.
    Absent,
}

impl Lookup {
    /// The live session, if any.
    pub fn live(self) -> Option<SessionRecord> {
        match self {
            Lookup::Live(record) => Some(record),
            Lookup::Rotated | Lookup::Absent => None,
        }
    }
}

/// Lifetime and size rules, in whole seconds and bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Inactivity before a session ends.
    pub idle_timeout: u64,
    /// Absolute lifetime.
    pub max_lifetime: u64,
    /// Least time between two refreshes of `last_seen`.
    pub touch_interval: u64,
    /// Most bytes of urlencoded data.
    pub max_data_bytes: usize,
    /// Most sessions (memory store).
    pub max_sessions: usize,
    /// How long a "remember me" session lasts, idle or not; `None` when
    /// the login page offers no "remember me".
    pub remember_me: Option<u64>,
}

impl Policy {
    /// Rules from `[session]` and `[store] max_sessions`.
    pub fn from_config(session: &SessionConfig, max_sessions: usize) -> Self {
        let secs = |d: Duration| d.as_secs().max(1);
        Policy {
            idle_timeout: secs(session.idle_timeout),
            max_lifetime: secs(session.max_lifetime),
            touch_interval: session.touch_interval.as_secs(),
            max_data_bytes: session.max_data_bytes,
            max_sessions,
            remember_me: None,
        }
    }

    /// These rules, with "remember me" sessions lasting `remember_me`.
    pub fn remembering(self, remember_me: Option<Duration>) -> Self {
        Policy {
            remember_me: remember_me.map(|d| d.as_secs().max(1)),
            ..self
        }
    }

    /// The most a session cookie may age: `max_lifetime`, or for a
    /// "remember me" session the longer of that and `remember_me`.
    pub fn cookie_lifetime(&self, remembered: bool) -> u64 {
        let remember = if remembered { self.remember_me } else { None };
        self.lifetimes(remember).1
    }

    /// The end of a session created at `created` and last seen at `last_seen`.
    pub fn expires_at(&self, created: u64, last_seen: u64) -> u64 {
        self.expires_at_remembered(created, last_seen, None)
    }

    /// The end of a session that may be remembered for `remember` seconds:
    /// neither its idle timeout nor its lifetime is then shorter than that.
    pub fn expires_at_remembered(
        &self,
        created: u64,
        last_seen: u64,
        remember: Option<u64>,
    ) -> u64 {
        let (idle, life) = self.lifetimes(remember);
        (last_seen.saturating_add(idle)).min(created.saturating_add(life))
    }

    /// The idle timeout and the absolute lifetime of a session remembered
    /// for `remember` seconds (`None`: an ordinary session).
    pub fn lifetimes(&self, remember: Option<u64>) -> (u64, u64) {
        let r = remember.unwrap_or(0);
        (self.idle_timeout.max(r), self.max_lifetime.max(r))
    }
}

/// Who a login signs in, and for how long.
#[derive(Debug, Clone, Copy, Default)]
pub struct SignIn<'a> {
    /// The user.
    pub user: &'a str,
    /// Groups the backend names for the user (`X-Session-Groups`),
    /// comma-separated without spaces; empty for none.
    pub groups: &'a str,
    /// "Remember me": the session lasts this many seconds, idle or not.
    pub remember: Option<u64>,
    /// The browser that signs in, described short (see
    /// [`super::browser::describe`]); `None` when it sent no `User-Agent`.
    pub browser: Option<&'a str>,
}

impl<'a> SignIn<'a> {
    /// `user`, without groups, for the policy's lifetimes.
    pub fn user(user: &'a str) -> Self {
        SignIn {
            user,
            ..SignIn::default()
        }
    }
}

/// What a session that does not exist yet starts from.
#[derive(Debug, Clone, Copy)]
pub struct NewSession<'a> {
    /// Creation time, from the cookie that names it, unix seconds.
    pub created: u64,
    /// Initial data, urlencoded.
    pub initial: &'a str,
    /// The client's IP.
    pub ip: Option<IpAddr>,
}

/// A store failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The store cannot be reached (Redis down): protected routes answer 503.
    #[error("session store unavailable: {0}")]
    Unavailable(String),
    /// The update would push the data over `max_data_bytes`; nothing changed.
    #[error("session data would hold {size} bytes, over max_data_bytes ({limit})")]
    TooLarge {
        /// Size the data would have had.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The session ended (expired, logged out, moved by a login) before the
    /// update, or the id was moved by a login moments ago and may not be
    /// used for a new session (see [`ROTATED_FOR`]).
    #[error("session no longer exists")]
    Gone,
    /// The store answered with something it should not have.
    #[error("session store error: {0}")]
    Corrupt(String),
}

/// One signed-in session as the admin API lists it: what it is (its tag,
/// never its id) and what the store knows of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSummary {
    /// The session's log tag ([`SessionId::log_hash`]): 12 hex digits.
    pub tag: String,
    /// When the session was created (the login), unix seconds.
    pub created: u64,
    /// When the store last saw it: the last refresh of its idle deadline,
    /// so at most `touch_interval` behind the last request.
    pub last_seen: u64,
    /// When it ends if nothing touches it again, unix seconds.
    pub expires: u64,
    /// The client IP it was created from.
    pub client: Option<IpAddr>,
    /// The browser that signed in, described short.
    pub browser: Option<Arc<str>>,
}

impl SessionSummary {
    /// The summary of the session `id` holding `record`.
    pub fn of(id: &SessionId, record: &SessionRecord, policy: &Policy) -> Self {
        SessionSummary {
            tag: id.log_hash(),
            created: record.created,
            last_seen: record.last_seen,
            expires: record.expires_at(policy),
            client: record.ip,
            browser: record.browser.clone(),
        }
    }
}

/// Puts a listing in a stable order: oldest login first.
pub fn oldest_first(sessions: &mut [SessionSummary]) {
    sessions.sort_unstable_by(|a, b| (a.created, &a.tag).cmp(&(b.created, &b.tag)));
}

/// A place to keep sessions. Implemented by the memory store and Redis.
///
/// `now` is passed in (unix seconds) so that expiry is testable without waiting.
pub trait SessionStore: Send + Sync + 'static {
    /// Finds what `id` names: a live session (its idle deadline refreshed
    /// when `touch_interval` has passed), the mark of a recent login that
    /// moved it away, or nothing. Expired sessions are [`Lookup::Absent`].
    /// As cheap as a plain load: the mark is read in the same step.
    fn lookup(
        &self,
        id: &SessionId,
        now: u64,
        policy: &Policy,
    ) -> impl Future<Output = Result<Lookup, StoreError>> + Send;

    /// Finds what `id` names, as [`SessionStore::lookup`] does, but never
    /// refreshes the idle deadline: for a page asking how long its session
    /// has left (`{prefix}/status`), which must not extend it by asking.
    fn peek(
        &self,
        id: &SessionId,
        now: u64,
        policy: &Policy,
    ) -> impl Future<Output = Result<Lookup, StoreError>> + Send;

    /// Loads a live session, as [`SessionStore::lookup`] does; anything
    /// else is `None`.
    fn load(
        &self,
        id: &SessionId,
        now: u64,
        policy: &Policy,
    ) -> impl Future<Output = Result<Option<SessionRecord>, StoreError>> + Send {
        async move { Ok(self.lookup(id, now, policy).await?.live()) }
    }

    /// Applies a data change atomically. A missing session is created from
    /// `create` when given, else the result is [`StoreError::Gone`]; an id
    /// a login moved away less than [`ROTATED_FOR`] seconds ago is never
    /// created again ([`StoreError::Gone`]).
    fn update(
        &self,
        id: &SessionId,
        change: &DataChange,
        create: Option<NewSession<'_>>,
        now: u64,
        policy: &Policy,
    ) -> impl Future<Output = Result<SessionRecord, StoreError>> + Send;

    /// Logs `who` in under a NEW id: the data of `old` (if it is stored) is
    /// carried over with `change` applied, and `old` stops existing, in one
    /// step. `old` is then marked as moved for [`ROTATED_FOR`] seconds
    /// (stored or not: an anonymous session that never held anything is
    /// rotated too), so that [`SessionStore::lookup`] reports it as
    /// [`Lookup::Rotated`]. A refused login ([`StoreError::TooLarge`])
    /// changes nothing.
    #[allow(clippy::too_many_arguments)] // one atomic step needs every input
    fn login(
        &self,
        old: Option<&SessionId>,
        new: &SessionId,
        who: &SignIn<'_>,
        change: &DataChange,
        seed: NewSession<'_>,
        now: u64,
        policy: &Policy,
    ) -> impl Future<Output = Result<SessionRecord, StoreError>> + Send;

    /// Ends a session, and forgets the id's mark if a login moved it.
    /// Ending one that does not exist is not an error.
    fn remove(&self, id: &SessionId) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Lists the live sessions of `user`, oldest login first ("where am I
    /// signed in"). Only signed-in sessions have a user; the listing
    /// drops whatever the store's index still names but is gone.
    fn sessions_of(
        &self,
        user: &str,
        now: u64,
        policy: &Policy,
    ) -> impl Future<Output = Result<Vec<SessionSummary>, StoreError>> + Send;

    /// Ends every session of `user` ("log out everywhere"); returns how many
    /// ended. Each one's next request, on any instance that shares the
    /// store, finds no session.
    fn end_sessions_of(&self, user: &str)
    -> impl Future<Output = Result<usize, StoreError>> + Send;

    /// Ends the signed-in session whose log tag is `tag` (as
    /// [`SessionSummary::tag`] and the logs show it); `false` when no live
    /// signed-in session has it (a tag that is not 12 hex digits included).
    /// Anonymous sessions are not found by tag: they hold no sign-in to
    /// take back, and no index names them. Should two sessions share a
    /// tag, both end.
    fn end_session_tagged(
        &self,
        tag: &str,
        now: u64,
        policy: &Policy,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Keeps `request` (opaque bytes: a request interrupted by a sign-in)
    /// under the fresh random id `id` until `now + ttl` seconds; it is no
    /// session, and [`SessionStore::count`] does not count it. Fails with
    /// [`StoreError::TooLarge`] when the store has no room for it.
    fn keep_request(
        &self,
        id: &SessionId,
        request: &[u8],
        now: u64,
        ttl: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Takes what [`SessionStore::keep_request`] kept under `id`, once: in
    /// the same step it is deleted, so of two requests racing for it one
    /// gets it and the other `None`. `None` too once its time is over.
    fn take_request(
        &self,
        id: &SessionId,
        now: u64,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, StoreError>> + Send;

    /// Number of stored sessions (marks of moved ids are not sessions).
    fn count(&self) -> impl Future<Output = Result<usize, StoreError>> + Send;

    /// Whether the store can be reached right now.
    fn ping(&self) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Checks a new data value against the size limit.
pub fn check_size(data: &str, policy: &Policy) -> Result<(), StoreError> {
    if data.len() > policy.max_data_bytes {
        return Err(StoreError::TooLarge {
            size: data.len(),
            limit: policy.max_data_bytes,
        });
    }
    Ok(())
}
