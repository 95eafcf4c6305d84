//! `{prefix}/sessions`: the signed-in user's own sessions, listed from the
//! same per-user index the admin API uses, with a way to end one of them
//! or all but the current one.
//!
//! ```text
//! GET  {prefix}/sessions             the page (JSON for JSON clients): created, last
//!                                    seen, client IP, browser; the current one marked
//! POST {prefix}/sessions/end         csrf, session=TAG: end that session of the user's
//! POST {prefix}/sessions/end-others  csrf: end every session of the user's but this one
//! ```
//!
//! Sessions are named by their log tag, never by their id. A tag is ended
//! only when it is in the user's own listing, read just before: a tag of
//! another user's session (or of none) is refused with `404`, and no
//! session of anybody else is ever ended (two sessions sharing a 48-bit
//! tag aside). The POSTs carry the session-bound CSRF token of the login
//! form (`csrf`), checked in constant time. Each session ended counts as
//! `revoked` and writes a `revoked` audit line with the user as the actor.
//!
//! Without a signed-in session, a browser is sent to the login page and
//! comes back here; a JSON client or a POST gets `401`.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use serde::Serialize;

use super::endpoints::{DeskAnswer, Visit};
use super::escape_html;
use super::page::{builtin_page_csp, page_start};
use crate::access::{self, AccessDecision, Visitor};
use crate::body::ResponseBody;
use crate::config::Access;
use crate::metrics::Metrics;
use crate::respond::{self, Reject};
use crate::session::{
    CookieOut, Current, Found, LogTag, SessionStore as _, SessionSummary, StoreError,
};
use crate::upstream::request_body::RequestBody;

/// The paths under the prefix, after it.
pub const LIST: &str = "/sessions";
/// Ends one session.
pub const END: &str = "/sessions/end";
/// Ends all the others.
pub const END_OTHERS: &str = "/sessions/end-others";

/// The most a POST's form may hold: a token and a tag.
const MAX_FORM_BYTES: usize = 4 * 1024;

const MSG_CSRF: &str = "This page had expired. Please try again.";
const MSG_UNKNOWN: &str = "That session is not one of yours, or it has already ended.";

/// The signed-in visitor: their session and their name.
struct Owner {
    current: Current,
    user: Arc<str>,
}

/// `GET {prefix}/sessions`.
pub async fn list(
    v: &Visit<'_>,
    prefix: &str,
    req: Request<RequestBody>,
) -> Result<DeskAnswer, Reject> {
    let json = wants_json(&req);
    let owner = match signed_in(v, &req).await? {
        Ok(owner) => owner,
        Err(answer) => return Ok(DeskAnswer::anonymous(answer)),
    };
    let ended = req
        .uri()
        .query()
        .and_then(|q| form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "ended"))
        .and_then(|(_, n)| n.parse::<usize>().ok());
    let notice = ended.map(|n| match n {
        1 => "Signed out 1 session.".to_owned(),
        n => format!("Signed out {n} sessions."),
    });
    let shown = Shown {
        status: StatusCode::OK,
        notice: notice.as_deref(),
        error: None,
    };
    listing(v, prefix, &owner, json, &shown).await
}

/// `POST {prefix}/sessions/end`: ends the session tagged `session`, if it
/// is one of the user's.
pub async fn end_one(
    v: &Visit<'_>,
    prefix: &str,
    req: Request<RequestBody>,
) -> Result<DeskAnswer, Reject> {
    let json = wants_json(&req);
    let (owner, form, mine) = match checked_post(v, prefix, req, json).await? {
        Ok(checked) => checked,
        Err(answer) => return Ok(answer),
    };
    let now = v.clock.now();
    let tag = form.session.to_ascii_lowercase();
    if !mine.iter().any(|s| s.tag == tag) {
        tracing::warn!(client = %v.client.ip, user = %owner.user, session = %tag, "a session that is not the user's was asked to end");
        return refused(v, prefix, &owner, json, StatusCode::NOT_FOUND, MSG_UNKNOWN).await;
    }
    let ended = end_tagged(v, &owner, &tag).await?;
    let this_one = tag == owner.current.id.log_hash();
    let mut answer = ended_answer(prefix, &owner, usize::from(ended), json);
    if this_one {
        // The browser's own session: its cookie goes with it.
        let (h, https) = (answer.response.headers_mut(), v.client.https);
        v.sessions.apply_cookie(h, CookieOut::Clear, https, now);
    }
    Ok(answer)
}

/// `POST {prefix}/sessions/end-others`: ends every session of the user's
/// but the one asking.
pub async fn end_others(
    v: &Visit<'_>,
    prefix: &str,
    req: Request<RequestBody>,
) -> Result<DeskAnswer, Reject> {
    let json = wants_json(&req);
    let (owner, _, mine) = match checked_post(v, prefix, req, json).await? {
        Ok(checked) => checked,
        Err(answer) => return Ok(answer),
    };
    let current = owner.current.id.log_hash();
    let mut ended = 0;
    for other in mine.iter().filter(|s| s.tag != current) {
        ended += usize::from(end_tagged(v, &owner, &other.tag).await?);
    }
    Ok(ended_answer(prefix, &owner, ended, json))
}

/// A POST's signed-in owner, its form and the owner's sessions as they
/// are now, once the form's token is right; otherwise the answer to give
/// (the login redirect or 401, or the refusal of a bad token).
async fn checked_post(
    v: &Visit<'_>,
    prefix: &str,
    req: Request<RequestBody>,
    json: bool,
) -> Result<Result<(Owner, EndForm, Vec<SessionSummary>), DeskAnswer>, Reject> {
    let owner = match signed_in(v, &req).await? {
        Ok(owner) => owner,
        Err(answer) => return Ok(Err(DeskAnswer::anonymous(answer))),
    };
    let form = EndForm::read(req).await?;
    if !v.sessions.signer.verify_csrf(&owner.current.id, &form.csrf) {
        let status = StatusCode::FORBIDDEN;
        return refused(v, prefix, &owner, json, status, MSG_CSRF)
            .await
            .map(Err);
    }
    let mine = v
        .store
        .sessions_of(&owner.user, v.clock.now(), &v.sessions.policy)
        .await
        .map_err(|e| failed(v, &e))?;
    Ok(Ok((owner, form, mine)))
}

/// Ends the session tagged `tag`, already found in the owner's listing;
/// counts and audits it. `false` when it had ended meanwhile.
async fn end_tagged(v: &Visit<'_>, owner: &Owner, tag: &str) -> Result<bool, Reject> {
    let policy = &v.sessions.policy;
    let ended = v
        .store
        .end_session_tagged(tag, v.clock.now(), policy)
        .await
        .map_err(|e| failed(v, &e))?;
    if ended {
        Metrics::inc(&v.metrics.sessions_revoked);
        v.audit
            .revoked_by_owner(&owner.user, LogTag::parse(tag), Some(v.client.ip));
        tracing::info!(client = %v.client.ip, user = %owner.user, session = %tag, "session ended by its user");
    }
    Ok(ended)
}

/// The answer after ending `ended` sessions: JSON, or back to the page.
fn ended_answer(prefix: &str, owner: &Owner, ended: usize, json: bool) -> DeskAnswer {
    let response = if json {
        json_response(StatusCode::OK, &Ended { ended })
    } else {
        respond::redirect(
            StatusCode::SEE_OTHER,
            &format!("{prefix}{LIST}?ended={ended}"),
        )
    };
    owner.answer(response)
}

/// A POST refused (bad token, a tag not the user's): the page again with
/// the reason (and a fresh form), or JSON.
async fn refused(
    v: &Visit<'_>,
    prefix: &str,
    owner: &Owner,
    json: bool,
    status: StatusCode,
    why: &str,
) -> Result<DeskAnswer, Reject> {
    if json {
        let error = match status {
            StatusCode::FORBIDDEN => "bad csrf token",
            _ => "no such session",
        };
        return Ok(owner.answer(json_response(status, &Failure { error })));
    }
    let shown = Shown {
        status,
        notice: None,
        error: Some(why),
    };
    listing(v, prefix, owner, false, &shown).await
}

/// What the page shows besides the listing.
struct Shown<'a> {
    status: StatusCode,
    notice: Option<&'a str>,
    error: Option<&'a str>,
}

/// The owner's sessions, as the page or as JSON.
async fn listing(
    v: &Visit<'_>,
    prefix: &str,
    owner: &Owner,
    json: bool,
    shown: &Shown<'_>,
) -> Result<DeskAnswer, Reject> {
    let now = v.clock.now();
    let sessions = v
        .store
        .sessions_of(&owner.user, now, &v.sessions.policy)
        .await
        .map_err(|e| failed(v, &e))?;
    let current = owner.current.id.log_hash();
    let csrf = v.sessions.signer.csrf_token(&owner.current.id);
    let response = if json {
        let listing = Listing {
            user: &owner.user,
            csrf: &csrf,
            sessions: sessions.iter().map(|s| Listed::of(s, &current)).collect(),
        };
        json_response(shown.status, &listing)
    } else {
        let page = Page {
            prefix,
            user: &owner.user,
            csrf: &csrf,
            current: &current,
            sessions: &sessions,
            notice: shown.notice,
            error: shown.error,
        };
        html_response(shown.status, page.render())
    };
    Ok(owner.answer(response))
}

/// The signed-in visitor, or the answer for one who is not: the login
/// redirect for a browser's GET, else `401`.
async fn signed_in(
    v: &Visit<'_>,
    req: &Request<RequestBody>,
) -> Result<Result<Owner, Response<ResponseBody>>, Reject> {
    let now = v.clock.now();
    let found = v
        .sessions
        .find(v.store, req.headers(), v.client.ip, now)
        .await
        .map_err(|e| failed(v, &e))?;
    let visitor = match found {
        Found::Session(current) => match current.user().cloned() {
            Some(user) => return Ok(Ok(Owner { current, user })),
            None => Visitor::Anonymous,
        },
        Found::Nothing { expired } => Visitor::Nobody { expired },
        Found::Rotated => Visitor::Nobody { expired: false },
    };
    let json = wants_json(req);
    match access::decide(Access::Login, visitor, req.method(), || json) {
        AccessDecision::RedirectToLogin { expired } => {
            let to = respond::login_redirect(v.login_page, req, expired);
            Ok(Err(respond::redirect(StatusCode::FOUND, &to)))
        }
        _ => Err(Reject::Unauthorized { json }),
    }
}

/// Counts and logs a store failure; the answer is 503.
fn failed(v: &Visit<'_>, e: &StoreError) -> Reject {
    crate::session::commit::store_failed(v.metrics, "sessions page", e);
    Reject::StoreUnavailable
}

fn wants_json<B>(req: &Request<B>) -> bool {
    access::accepts_json(req.headers().get(header::ACCEPT))
}

impl Owner {
    /// `response`, with the owner named for the access log.
    fn answer(&self, response: Response<ResponseBody>) -> DeskAnswer {
        DeskAnswer {
            response,
            user: Some(self.user.clone()),
            session: Some(self.current.id),
        }
    }
}

/// The fields of the POSTs.
#[derive(Debug, Default)]
struct EndForm {
    csrf: String,
    session: String,
}

impl EndForm {
    async fn read(req: Request<RequestBody>) -> Result<Self, Reject> {
        let body = super::endpoints::read_form_limited(req.into_body(), MAX_FORM_BYTES).await?;
        let mut form = EndForm::default();
        for (k, v) in form_urlencoded::parse(&body) {
            match &*k {
                "csrf" => form.csrf = v.into_owned(),
                "session" => form.session = v.into_owned(),
                _ => {}
            }
        }
        Ok(form)
    }
}

/// The JSON listing.
#[derive(Serialize)]
struct Listing<'a> {
    user: &'a str,
    /// The token the POSTs must carry.
    csrf: &'a str,
    sessions: Vec<Listed<'a>>,
}

/// One session in a [`Listing`]: the admin API's fields, the browser, and
/// whether it is the one asking.
#[derive(Serialize)]
struct Listed<'a> {
    session: &'a str,
    created: u64,
    last_seen: u64,
    expires: u64,
    client: Option<IpAddr>,
    browser: Option<&'a str>,
    current: bool,
}

impl<'a> Listed<'a> {
    fn of(s: &'a SessionSummary, current: &str) -> Self {
        Listed {
            session: &s.tag,
            created: s.created,
            last_seen: s.last_seen,
            expires: s.expires,
            client: s.client,
            browser: s.browser.as_deref(),
            current: s.tag == current,
        }
    }
}

#[derive(Serialize)]
struct Ended {
    ended: usize,
}

#[derive(Serialize)]
struct Failure<'a> {
    error: &'a str,
}

fn json_response(status: StatusCode, value: &impl Serialize) -> Response<ResponseBody> {
    let body = serde_json::to_string(value).unwrap_or_else(|_| "{}".to_owned());
    let mut resp = Response::new(ResponseBody::full(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

fn html_response(status: StatusCode, html: String) -> Response<ResponseBody> {
    let mut resp = Response::new(ResponseBody::full(html));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(builtin_page_csp()),
    );
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("referrer-policy", HeaderValue::from_static("same-origin"));
    resp
}

/// The page, in the built-in login page's style (and under its CSP).
struct Page<'a> {
    prefix: &'a str,
    user: &'a str,
    csrf: &'a str,
    current: &'a str,
    sessions: &'a [SessionSummary],
    notice: Option<&'a str>,
    error: Option<&'a str>,
}

impl Page<'_> {
    fn render(&self) -> String {
        let esc = escape_html;
        let mut html = String::with_capacity(4096);
        page_start(&mut html, "Your sessions");
        if let Some(notice) = self.notice {
            let _ = writeln!(
                html,
                "<p class=\"notice\" role=\"status\">{}</p>",
                esc(notice)
            );
        }
        if let Some(error) = self.error {
            let _ = writeln!(html, "<p class=\"error\" role=\"alert\">{}</p>", esc(error));
        }
        let _ = writeln!(
            html,
            "<p class=\"who\">Signed in as <strong>{}</strong>.</p>\n<ul class=\"sessions\">",
            esc(self.user)
        );
        let end = esc(&format!("{}{END}", self.prefix));
        let csrf = esc(self.csrf);
        for s in self.sessions {
            let this = s.tag == self.current;
            let browser = s.browser.as_deref().unwrap_or("Unknown browser");
            let client = s
                .client
                .map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
            let _ = write!(
                html,
                "<li>\n<p id=\"s-{tag}\"><strong>{browser}</strong>{marker}</p>\n\
                 <p class=\"meta\">Signed in {created} · last seen {seen} · from {client}</p>\n\
                 <form method=\"post\" action=\"{end}\">\n\
                 <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\n\
                 <input type=\"hidden\" name=\"session\" value=\"{tag}\">\n\
                 <button type=\"submit\" aria-describedby=\"s-{tag}\">{label}</button>\n\
                 </form>\n</li>\n",
                browser = esc(browser),
                marker = if this { " (this browser)" } else { "" },
                created = time_element(s.created),
                seen = time_element(s.last_seen),
                client = esc(&client),
                tag = esc(&s.tag),
                label = if this {
                    "Sign out here"
                } else {
                    "Sign out this one"
                },
            );
        }
        html.push_str("</ul>\n");
        if self.sessions.iter().any(|s| s.tag != self.current) {
            let _ = write!(
                html,
                "<form method=\"post\" action=\"{action}\">\n\
                 <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\n\
                 <button type=\"submit\">Sign out all others</button>\n</form>\n",
                action = esc(&format!("{}{END_OTHERS}", self.prefix)),
            );
        }
        html.push_str("</main>\n</body>\n</html>\n");
        html
    }
}

/// A `<time>` element for unix seconds, in UTC to the minute.
fn time_element(unix: u64) -> String {
    let at = UNIX_EPOCH + Duration::from_secs(unix);
    let iso = humantime::format_rfc3339_seconds(at).to_string();
    let shown = format!("{} UTC", iso.get(..16).unwrap_or(&iso).replace('T', " "));
    format!("<time datetime=\"{iso}\">{shown}</time>")
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOSTILE: &str = "\"><script>alert(1)</script>";

    fn summary(tag: &str, browser: Option<&str>) -> SessionSummary {
        SessionSummary {
            tag: tag.into(),
            created: 1_764_790_000,
            last_seen: 1_764_790_600,
            expires: 1_764_794_200,
            client: Some("192.0.2.7".parse().unwrap()),
            browser: browser.map(Arc::from),
        }
    }

    #[test]
    fn the_page_escapes_everything_and_marks_the_current_session() {
        let sessions = [
            summary("0123456789ab", Some("Firefox on Linux")),
            summary("ba9876543210", Some(HOSTILE)),
        ];
        let html = Page {
            prefix: "/.sessiongate",
            user: HOSTILE,
            csrf: "tok\"en",
            current: "0123456789ab",
            sessions: &sessions,
            notice: Some("<b>"),
            error: None,
        }
        .render();
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;"));
        assert!(html.contains("value=\"tok&quot;en\""));
        assert!(html.contains("&lt;b&gt;"));
        assert!(html.contains("<strong>Firefox on Linux</strong> (this browser)"));
        assert!(html.contains("action=\"/.sessiongate/sessions/end\""));
        assert!(html.contains("action=\"/.sessiongate/sessions/end-others\""));
        assert!(
            html.contains("<time datetime=\"2025-12-03T19:26:40Z\">2025-12-03 19:26 UTC</time>")
        );
        assert!(html.contains("from 192.0.2.7"));
    }

    #[test]
    fn alone_there_is_no_one_else_to_sign_out() {
        let sessions = [summary("0123456789ab", None)];
        let html = Page {
            prefix: "/p",
            user: "alice",
            csrf: "t",
            current: "0123456789ab",
            sessions: &sessions,
            notice: None,
            error: None,
        }
        .render();
        assert!(!html.contains("end-others"));
        assert!(html.contains("Unknown browser"));
    }

    #[test]
    fn the_json_listing_has_the_admin_fields_and_more() {
        let s = summary("0123456789ab", Some("Safari on iOS"));
        let listing = Listing {
            user: "alice",
            csrf: "t",
            sessions: vec![Listed::of(&s, "0123456789ab")],
        };
        assert_eq!(
            serde_json::to_string(&listing).unwrap(),
            r#"{"user":"alice","csrf":"t","sessions":[{"session":"0123456789ab","created":1764790000,"last_seen":1764790600,"expires":1764794200,"client":"192.0.2.7","browser":"Safari on iOS","current":true}]}"#
        );
    }
}
