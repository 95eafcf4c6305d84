//! Expiry a page can see coming: how long the visitor's session has left,
//! a way to extend it, and the script that warns before it ends.
//!
//! ```text
//! GET  {prefix}/status      the session's times, read without touching them;
//!                           401 JSON without a session
//! POST {prefix}/keepalive   X-CSRF-Token (the session's token) -> refresh the
//!                           idle deadline -> the new times; 401 / 403
//! GET  {prefix}/session.js  the warning script (assets/session.js), cached
//! ```
//!
//! `/status` must not extend the session it reports on, or a page that asks
//! would keep its session alive for ever: it reads with
//! [`SessionRules::peek`], never a lookup that refreshes `last_seen`.
//! `/keepalive` is the one built-in request that extends on purpose, so it
//! always refreshes (not only once per `touch_interval`, as a request does)
//! and is bound to the session by its CSRF token, so that another site
//! cannot keep a victim's session alive.

use std::sync::LazyLock;

use http::header::{self, HeaderValue};
use http::{HeaderMap, Request, Response, StatusCode};
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use super::endpoints::{DeskAnswer, Visit};
use crate::body::ResponseBody;
use crate::respond::Reject;
use crate::session::{Current, DataChange, Found, Policy, SessionStore as _, StoreError};

/// The warning script, as shipped in the binary.
pub const SCRIPT: &str = include_str!("../../assets/session.js");

/// The header `/keepalive` takes the session's CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// How long a browser may keep the script before asking again (with its
/// ETag): a day. The script's interface (`/status`, `/keepalive`) stays
/// the same across versions, so a day-old copy still works.
const SCRIPT_CACHE: &str = "public, max-age=86400";

/// The script's ETag: a digest of its text, so a new build that changes it
/// is fetched again once the cached copy is stale.
static SCRIPT_ETAG: LazyLock<HeaderValue> = LazyLock::new(|| {
    let digest = Sha256::digest(SCRIPT.as_bytes());
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    HeaderValue::try_from(format!("\"{hex}\"")).unwrap_or(HeaderValue::from_static("\"0\""))
});

/// What `/status` and `/keepalive` say of a live session. Times are whole
/// seconds from now; a session ends at the earlier of its two deadlines.
#[derive(Debug, Serialize)]
struct SessionTimes<'a> {
    /// The signed-in user; `null` for an anonymous session.
    user: Option<&'a str>,
    /// The user's groups (groups file and backend), sorted.
    groups: Vec<&'a str>,
    /// Until the idle deadline: how long the session lives if nothing
    /// touches it. `null` for an anonymous session that holds nothing
    /// (there is nothing stored to time out).
    idle_seconds: Option<u64>,
    /// Until the absolute lifetime ends (`max_lifetime`, or "remember me"'s
    /// own), which nothing extends.
    expires_seconds: u64,
    /// The whole idle window, as a keep-alive restarts it.
    idle_timeout: u64,
    /// A "remember me" session.
    remembered: bool,
    /// The session's CSRF token, for `/keepalive`'s `X-CSRF-Token`.
    csrf_token: &'a str,
    /// Where to sign in again.
    login: &'a str,
}

/// A session's deadlines, in seconds from now (see [`SessionTimes`]).
#[derive(Debug, PartialEq, Eq)]
struct Clock {
    idle_seconds: Option<u64>,
    expires_seconds: u64,
    idle_timeout: u64,
    remembered: bool,
}

impl Clock {
    /// The deadlines of `current` at `now`, by the lifetimes it has: the
    /// policy's, or "remember me"'s own.
    fn of(policy: &Policy, current: &Current, now: u64) -> Self {
        let record = current.record.as_ref();
        let remember = record.and_then(|r| r.remember);
        let (idle, life) = policy.lifetimes(remember);
        let created = record.map_or(current.created, |r| r.created);
        Clock {
            idle_seconds: record.map(|r| r.last_seen.saturating_add(idle).saturating_sub(now)),
            expires_seconds: created.saturating_add(life).saturating_sub(now),
            idle_timeout: idle,
            remembered: remember.is_some(),
        }
    }
}

/// `GET {prefix}/status`: the session's times, without extending it.
pub async fn status<B>(v: &Visit<'_>, req: &Request<B>) -> Result<DeskAnswer, Reject> {
    let now = v.clock.now();
    let found = v
        .sessions
        .peek(v.store, req.headers(), v.client.ip, now)
        .await;
    let current = session_or_refuse(v, found, "status")?;
    Ok(answer(v, &current, now))
}

/// `POST {prefix}/keepalive`: refreshes the idle deadline of the session
/// whose CSRF token the request carries, and answers its new times.
pub async fn keepalive<B>(v: &Visit<'_>, req: &Request<B>) -> Result<DeskAnswer, Reject> {
    let now = v.clock.now();
    // Read without touching: a request whose token fails extends nothing.
    let found = v
        .sessions
        .peek(v.store, req.headers(), v.client.ip, now)
        .await;
    let mut current = session_or_refuse(v, found, "keepalive")?;
    if !token_matches(v, &current, req.headers()) {
        tracing::warn!(client = %v.client.ip, "keepalive refused: missing or wrong CSRF token");
        return Ok(DeskAnswer::anonymous(json(
            StatusCode::FORBIDDEN,
            r#"{"error":"missing or wrong X-CSRF-Token"}"#.to_string(),
        )));
    }
    // An anonymous session that never held anything has no idle deadline
    // to move: its times are answered as they are.
    if current.record.is_some() {
        let refreshed = v
            .store
            .update(
                &current.id,
                &DataChange::default(),
                None,
                now,
                &v.sessions.policy,
            )
            .await;
        match refreshed {
            Ok(record) => current.record = Some(record),
            Err(StoreError::Gone) => return Err(Reject::Unauthorized { json: true }),
            Err(e) => {
                v.store_failed("keepalive", &e);
                return Err(Reject::StoreUnavailable);
            }
        }
        tracing::debug!(client = %v.client.ip, session = %current.id.log_hash(), "keepalive");
    }
    Ok(answer(v, &current, now))
}

/// `GET {prefix}/session.js`: the script, with its ETag; `304` when the
/// browser's copy is the same.
pub fn script<B>(req: &Request<B>) -> Response<ResponseBody> {
    let etag = &*SCRIPT_ETAG;
    let fresh = req
        .headers()
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == "*" || t.as_bytes() == etag.as_bytes());
    let mut resp = if fresh {
        let mut r = Response::new(ResponseBody::empty());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else if req.method() == http::Method::HEAD {
        Response::new(ResponseBody::empty())
    } else {
        Response::new(ResponseBody::full(SCRIPT))
    };
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/javascript; charset=utf-8"),
    );
    if !fresh {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(SCRIPT.len()));
    }
    h.insert(header::ETAG, etag.clone());
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(SCRIPT_CACHE),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}

/// The live session `found` names, or the 401 (or 503) to answer instead.
fn session_or_refuse(
    v: &Visit<'_>,
    found: Result<Found, StoreError>,
    what: &str,
) -> Result<Current, Reject> {
    match found {
        Ok(Found::Session(c)) => Ok(c),
        // 401 JSON, naming the login page. A cookie a login has just
        // replaced is not that session's to report on or extend either.
        Ok(Found::Nothing { .. } | Found::Rotated) => Err(Reject::Unauthorized { json: true }),
        Err(e) => {
            v.store_failed(what, &e);
            Err(Reject::StoreUnavailable)
        }
    }
}

/// Whether the request's `X-CSRF-Token` is `current`'s, in constant time.
fn token_matches(v: &Visit<'_>, current: &Current, headers: &HeaderMap) -> bool {
    let mut tokens = headers.get_all(CSRF_HEADER).iter();
    match (tokens.next(), tokens.next()) {
        (Some(token), None) => token
            .to_str()
            .is_ok_and(|t| v.sessions.signer.verify_csrf(&current.id, t)),
        _ => false,
    }
}

/// The session's times, as JSON.
fn answer(v: &Visit<'_>, current: &Current, now: u64) -> DeskAnswer {
    let record = current.record.as_ref();
    let clock = Clock::of(&v.sessions.policy, current, now);
    let user = record.and_then(|r| r.user.as_deref());
    let groups = user.and_then(|u| {
        crate::login::groups::joined(v.groups, u, record.and_then(|r| r.groups.as_deref()))
    });
    let csrf = v.sessions.signer.csrf_token(&current.id);
    let times = SessionTimes {
        user,
        groups: groups
            .as_deref()
            .map_or_else(Vec::new, |g| g.split(',').collect()),
        idle_seconds: clock.idle_seconds,
        expires_seconds: clock.expires_seconds,
        idle_timeout: clock.idle_timeout,
        remembered: clock.remembered,
        csrf_token: &csrf,
        login: v.login_page,
    };
    let body = serde_json::to_string(&times).unwrap_or_else(|_| String::from("{}"));
    DeskAnswer {
        response: json(StatusCode::OK, body),
        user: user.map(Into::into),
        session: Some(current.id),
    }
}

/// A JSON response.
fn json(status: StatusCode, body: String) -> Response<ResponseBody> {
    let mut resp = Response::new(ResponseBody::full(body));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_is_plain_and_self_contained() {
        for banned in [
            "eval(",
            "new Function",
            "innerHTML",
            "onclick=",
            "setInterval(\"",
        ] {
            assert!(!SCRIPT.contains(banned), "{banned}");
        }
        assert!(SCRIPT.contains("/keepalive"));
        assert!(SCRIPT.contains("/status"));
    }

    #[test]
    fn times_follow_the_sessions_own_lifetimes() {
        use crate::session::{SessionId, SessionRecord};
        let policy = Policy {
            idle_timeout: 100,
            max_lifetime: 1000,
            touch_interval: 10,
            max_data_bytes: 64,
            max_sessions: 10,
            remember_me: Some(5000),
        };
        let record = |remember| SessionRecord {
            created: 0,
            last_seen: 40,
            user: Some("ann".into()),
            data: "".into(),
            ip: None,
            groups: None,
            remember,
            browser: None,
        };
        let current = |r: Option<SessionRecord>| Current {
            id: SessionId::generate(),
            created: 0,
            stored_cookie: r.is_some(),
            record: r,
            new: false,
        };
        let plain = Clock::of(&policy, &current(Some(record(None))), 50);
        let want = Clock {
            idle_seconds: Some(90),
            expires_seconds: 950,
            idle_timeout: 100,
            remembered: false,
        };
        assert_eq!(plain, want);
        // Remembered: both windows are remember_me's, idle or not.
        let remembered = Clock::of(&policy, &current(Some(record(Some(5000)))), 50);
        let want = Clock {
            idle_seconds: Some(4990),
            expires_seconds: 4950,
            idle_timeout: 5000,
            remembered: true,
        };
        assert_eq!(remembered, want);
        // An anonymous session that never held anything: no idle deadline.
        let empty = Clock::of(&policy, &current(None), 50);
        assert_eq!((empty.idle_seconds, empty.expires_seconds), (None, 950));
        // Past the end: zero, never a wrap.
        assert_eq!(
            Clock::of(&policy, &current(Some(record(None))), 2000).expires_seconds,
            0
        );
    }

    #[test]
    fn the_script_answers_304_to_its_own_etag() {
        let req = Request::get("/x/session.js").body(()).expect("request");
        let resp = script(&req);
        assert_eq!(resp.status(), StatusCode::OK);
        let etag = resp.headers()[header::ETAG].clone();
        assert_eq!(resp.headers()[header::CACHE_CONTROL], SCRIPT_CACHE);
        let again = Request::get("/x/session.js")
            .header(header::IF_NONE_MATCH, etag.clone())
            .body(())
            .expect("request");
        let resp = script(&again);
        assert_eq!(resp.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(resp.headers()[header::ETAG], etag);
        let other = Request::get("/x/session.js")
            .header(header::IF_NONE_MATCH, "\"other\"")
            .body(())
            .expect("request");
        assert_eq!(script(&other).status(), StatusCode::OK);
    }
}
