//! `/sessions`: a user's sessions listed, all of them ended ("log out
//! everywhere"), or one ended by its tag. Sessions are named by their
//! 12-hex-digit log tag, the one the access log shows, never by their id.
//! The store does the work, so an ended session is gone on every instance
//! that shares it; each session ended here counts as `revoked`.
//!
//! ```text
//! GET    /sessions?user=U   200 {"user": U, "sessions": [{"session": TAG, "created": UNIX,
//!                                "last_seen": UNIX, "expires": UNIX, "client": IP,
//!                                "browser": "Firefox on Linux"}]}
//! DELETE /sessions?user=U   200 {"ended": N}
//! DELETE /sessions/TAG      200 {"ended": 1}, or 404
//! ```

use std::net::IpAddr;

use http::{Response, StatusCode};
use serde::Serialize;

use super::{AdminError, json};
use crate::body::ResponseBody;
use crate::metrics::Metrics;
use crate::proxy::Gate;
use crate::session::{LogTag, SessionStore as _, SessionSummary};

/// How long a user name in a query may be; no users file holds longer ones.
const MAX_USER_BYTES: usize = 256;

/// `GET /sessions?user=U`
pub async fn list(gate: &Gate, query: Option<&str>) -> Result<Response<ResponseBody>, AdminError> {
    let user = user_param(query)?;
    let policy = gate.setup().sessions.policy;
    let sessions = gate
        .store
        .sessions_of(&user, gate.clock.now(), &policy)
        .await?;
    let listing = Listing {
        user: &user,
        sessions: sessions.into_iter().map(Listed::from).collect(),
    };
    Ok(json(StatusCode::OK, &listing))
}

/// `DELETE /sessions?user=U`, asked by `operator` (for the audit log).
pub async fn end_all(
    gate: &Gate,
    query: Option<&str>,
    operator: IpAddr,
) -> Result<Response<ResponseBody>, AdminError> {
    let user = user_param(query)?;
    let ended = gate.store.end_sessions_of(&user).await?;
    Metrics::add(&gate.metrics.sessions_revoked, ended as u64);
    gate.audit.revoked(Some(&user), None, ended, Some(operator));
    tracing::info!(user = %user, ended, "sessions ended from the admin listener");
    Ok(json(StatusCode::OK, &Ended { ended }))
}

/// `DELETE /sessions/TAG`, asked by `operator` (for the audit log).
pub async fn end_one(
    gate: &Gate,
    tag: &str,
    operator: IpAddr,
) -> Result<Response<ResponseBody>, AdminError> {
    let tag = valid_tag(tag).ok_or(AdminError::UnknownSession)?;
    let policy = gate.setup().sessions.policy;
    if !gate
        .store
        .end_session_tagged(&tag, gate.clock.now(), &policy)
        .await?
    {
        return Err(AdminError::UnknownSession);
    }
    Metrics::inc(&gate.metrics.sessions_revoked);
    gate.audit
        .revoked(None, LogTag::parse(&tag), 1, Some(operator));
    tracing::info!(session = %tag, "session ended from the admin listener");
    Ok(json(StatusCode::OK, &Ended { ended: 1 }))
}

/// The `user` query parameter: required, not empty.
fn user_param(query: Option<&str>) -> Result<String, AdminError> {
    let user = query
        .and_then(|q| form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "user"))
        .map(|(_, v)| v.into_owned())
        .filter(|u| !u.is_empty())
        .ok_or(AdminError::MissingUser)?;
    if user.len() > MAX_USER_BYTES {
        return Err(AdminError::MissingUser);
    }
    Ok(user)
}

/// A tag as the log writes it (12 lowercase hex digits); anything else
/// names no session.
fn valid_tag(tag: &str) -> Option<String> {
    let tag = tag.to_ascii_lowercase();
    (tag.len() == 12 && tag.bytes().all(|b| b.is_ascii_hexdigit())).then_some(tag)
}

/// The answer of `GET /sessions`.
#[derive(Serialize)]
struct Listing<'a> {
    user: &'a str,
    sessions: Vec<Listed>,
}

/// One session in a [`Listing`].
#[derive(Serialize)]
struct Listed {
    session: String,
    created: u64,
    last_seen: u64,
    expires: u64,
    client: Option<IpAddr>,
    /// The browser that signed in ("Firefox on Linux"), when known.
    browser: Option<String>,
}

impl From<SessionSummary> for Listed {
    fn from(s: SessionSummary) -> Self {
        Listed {
            session: s.tag,
            created: s.created,
            last_seen: s.last_seen,
            expires: s.expires,
            client: s.client,
            browser: s.browser.as_deref().map(str::to_owned),
        }
    }
}

/// The answer of a `DELETE`.
#[derive(Serialize)]
struct Ended {
    ended: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_user_parameter_is_required_and_decoded() {
        assert_eq!(user_param(Some("user=alice")).unwrap(), "alice");
        assert_eq!(user_param(Some("x=1&user=a%20b+c")).unwrap(), "a b c");
        for missing in [None, Some(""), Some("user="), Some("users=alice")] {
            assert!(
                matches!(user_param(missing), Err(AdminError::MissingUser)),
                "{missing:?}"
            );
        }
        let long = format!("user={}", "a".repeat(MAX_USER_BYTES + 1));
        assert!(user_param(Some(&long)).is_err());
    }

    #[test]
    fn only_log_tags_name_sessions() {
        assert_eq!(valid_tag("0123456789ab").as_deref(), Some("0123456789ab"));
        assert_eq!(valid_tag("0123456789AB").as_deref(), Some("0123456789ab"));
        for bad in [
            "",
            "0123456789a",
            "0123456789abc",
            "0123456789ag",
            "../../etc/pa",
        ] {
            assert_eq!(valid_tag(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_listing_has_the_documented_shape() {
        let listing = Listing {
            user: "alice",
            sessions: vec![Listed::from(SessionSummary {
                tag: "0123456789ab".into(),
                created: 1,
                last_seen: 2,
                expires: 3,
                client: Some("192.0.2.7".parse().unwrap()),
                browser: Some("Firefox on Linux".into()),
            })],
        };
        assert_eq!(
            serde_json::to_string(&listing).unwrap(),
            r#"{"user":"alice","sessions":[{"session":"0123456789ab","created":1,"last_seen":2,"expires":3,"client":"192.0.2.7","browser":"Firefox on Linux"}]}"#
        );
        let none = Listed::from(SessionSummary {
            tag: "0123456789ab".into(),
            created: 1,
            last_seen: 2,
            expires: 3,
            client: None,
            browser: None,
        });
        assert!(
            serde_json::to_string(&none)
                .unwrap()
                .ends_with(r#""client":null,"browser":null}"#)
        );
    }
}
