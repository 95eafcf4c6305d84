//! The built-in endpoints under `login.prefix`: the login page, the login
//! form's POST, and logout.
//!
//! ```text
//! GET  {prefix}/login   ensure a pre-login session (for the CSRF token), show the page
//! POST {prefix}/login   CSRF bound to that session -> throttle -> password
//!                       -> NEW session id (anonymous data kept) -> 303 next
//! GET|POST {prefix}/logout  destroy the session, clear the cookie -> 303 next or cookie_path
//! GET  {prefix}/status, POST {prefix}/keepalive, GET {prefix}/session.js
//!                       the expiry warning's (see `expiry`)
//! GET  {prefix}/sessions    the signed-in user's sessions (see `your_sessions`)
//! ```
//!
//! The login page and its POST exist only where a users file is in use
//! (`login.source = "users_file"` and the file loaded); elsewhere they are
//! `404`, like any address with nothing behind it. Logout always exists:
//! it ends whatever session the cookie names.
//!
//! Every answer carries `Cache-Control: no-store`. A login or logout the
//! store cannot keep answers 503 and leaves the cookie alone, so that the
//! user can try again: a logout that only cleared the cookie would leave
//! the session alive in the store, usable again by the same cookie.
//!
//! A request whose cookie names an id a login has just replaced (see
//! [`Found::Rotated`]) is never given a cookie here either: the page's form
//! is then bound to an id no browser holds, so posting it fails the CSRF
//! check, whose answer carries a form for the cookie the browser then has;
//! a logout with it has nothing to end and leaves the new cookie in place.

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Limited};
use std::sync::Arc;

use super::basic::{BasicGate, Verdict, Witness};
use super::your_sessions;
use super::{LoginPage, PageContext, PageError, Throttle, UsersError, UsersSource, safe_next};
use crate::audit::{Audit, Event, How};
use crate::body::ResponseBody;
use crate::clock::Clock;
use crate::config::{Access, Config, LoginSource};
use crate::forwarded::ClientInfo;
use crate::metrics::Metrics;
use crate::replay::Notice;
use crate::respond::{Reject, redirect};
use crate::session::browser::describe_header;
use crate::session::{
    AnyStore, CookieClaims, CookieOut, Current, DataChange, Found, NewSession, SessionId,
    SessionRules, SessionStore, SignIn, StoreError,
};
use crate::upstream::request_body::RequestBody;

/// The most a login form body may hold.
const MAX_FORM_BYTES: usize = 16 * 1024;

const MSG_INVALID: &str = "The user name or password is not right.";
const MSG_CSRF: &str = "This sign-in form has expired. Please try again.";

/// Most (user, IP) keys the login throttle tracks.
const THROTTLE_CAPACITY: usize = 100_000;

/// The built-in login of one config: its users, page and throttle.
pub struct LoginDesk {
    /// Users of the built-in login (`None` when no users file is in use).
    pub users: Option<Arc<UsersSource>>,
    page: LoginPage,
    throttle: Arc<Throttle>,
    source: LoginSource,
    prefix: String,
    expired_message: String,
    basic: BasicGate,
    /// Where a logout without `next` goes: the top of the cookie's path,
    /// the part of the site the session belonged to.
    logout_default: String,
    /// "Remember me": how long such a session lasts, in seconds; `None`
    /// when the page offers no such choice.
    remember_me: Option<u64>,
}

/// Why the built-in login cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum DeskError {
    /// The users file cannot be used.
    #[error(transparent)]
    Users(#[from] UsersError),
    /// The login page template cannot be used.
    #[error(transparent)]
    Page(#[from] PageError),
}

/// What an endpoint needs of the gate and of the request.
pub struct Visit<'a> {
    /// Cookies and lifetimes.
    pub sessions: &'a SessionRules,
    /// The session store.
    pub store: &'a AnyStore,
    /// Counters.
    pub metrics: &'a Metrics,
    /// The audit log.
    pub audit: &'a Audit,
    /// Time, for session lifetimes.
    pub clock: &'a Clock,
    /// Who is asking.
    pub client: &'a ClientInfo,
    /// Where visitors sign in (named in 401 answers).
    pub login_page: &'a str,
    /// The groups file, when one is in use.
    pub groups: Option<&'a super::groups::GroupsSource>,
}

impl Visit<'_> {
    /// The visitor's session, as the request's cookie names it.
    async fn find(&self, headers: &http::HeaderMap, now: u64) -> Result<Found, StoreError> {
        self.sessions
            .find(self.store, headers, self.client.ip, now)
            .await
    }

    /// Counts and logs a store operation that failed.
    pub(super) fn store_failed(&self, what: &str, e: &StoreError) {
        crate::session::commit::store_failed(self.metrics, what, e);
    }
}

impl LoginDesk {
    /// The users file (loaded now, when the built-in login serves a route
    /// or the file exists), the page, and an empty throttle.
    pub fn new(config: &Config) -> Result<Self, DeskError> {
        let login = &config.login;
        let builtin = login.source == LoginSource::UsersFile;
        let needed = config.routes.iter().any(|r| r.access == Access::Login);
        let users = if builtin && (needed || login.users_file.exists()) {
            Some(Arc::new(UsersSource::load(&login.users_file)?))
        } else {
            None
        };
        let page = match &login.template {
            Some(path) => LoginPage::from_template_file(path)?,
            None => LoginPage::builtin(),
        };
        Ok(LoginDesk {
            users,
            page,
            throttle: Arc::new(Throttle::new(
                login.max_attempts,
                login.attempt_window,
                THROTTLE_CAPACITY,
            )),
            source: login.source,
            prefix: login.prefix.clone(),
            expired_message: login.expired_message.clone(),
            basic: BasicGate::new(&login.basic_realm),
            logout_default: config.session.cookie_path.clone(),
            remember_me: login.remember_me.map(|d| d.as_secs().max(1)),
        })
    }

    /// Takes over the failed-login counts of `before` (the desk of the
    /// config in force until a reload) when its limits are the same, so
    /// that a reload (SIGHUP) does not give an attacker a fresh window.
    pub fn keep_throttle_of(&mut self, before: &LoginDesk) {
        if self.throttle.same_limits(&before.throttle) {
            self.throttle = Arc::clone(&before.throttle);
        }
    }

    /// The failed-login throttle, shared by the login form, HTTP Basic and
    /// the application's own login page.
    pub fn throttle(&self) -> &Throttle {
        &self.throttle
    }

    /// HTTP Basic for the `basic_auth` routes: the challenge and the cache.
    pub fn basic(&self) -> &BasicGate {
        &self.basic
    }

    /// Checks a request's HTTP Basic credentials against this desk's users,
    /// under the same throttle as the login form.
    pub async fn check_basic(&self, headers: &http::HeaderMap, w: &Witness<'_>) -> Verdict {
        self.basic
            .check(self.users.as_ref(), &self.throttle, headers, w)
            .await
    }
}

/// The fields of the login form.
#[derive(Debug, Default)]
struct LoginForm {
    username: String,
    password: String,
    next: String,
    csrf: String,
    /// The "remember me" box was ticked.
    remember: bool,
}

impl LoginForm {
    fn parse(body: &[u8]) -> Self {
        let mut form = LoginForm::default();
        for (k, v) in form_urlencoded::parse(body) {
            match &*k {
                "username" => form.username = v.into_owned(),
                "password" => form.password = v.into_owned(),
                "next" => form.next = v.into_owned(),
                "csrf" => form.csrf = v.into_owned(),
                "remember" => form.remember = !v.is_empty() && v != "0",
                _ => {}
            }
        }
        form
    }
}

/// A built-in endpoint's answer, and whose request it was: the access
/// log names the user who signed in or out, and their session.
pub struct DeskAnswer {
    /// The response.
    pub response: Response<ResponseBody>,
    /// The signed-in user the request was for (the one who signed in, or
    /// the one who signed out), if any.
    pub user: Option<Arc<str>>,
    /// Their session.
    pub session: Option<SessionId>,
}

impl DeskAnswer {
    /// An answer that names no user or session.
    pub fn anonymous(response: Response<ResponseBody>) -> Self {
        DeskAnswer {
            response,
            user: None,
            session: None,
        }
    }
}

/// A page to render, and what goes with it.
struct PageAnswer<'a> {
    status: StatusCode,
    next: &'a str,
    username: &'a str,
    message: Option<&'a str>,
    error: Option<&'a str>,
}

impl LoginDesk {
    /// Serves `req`, whose path is known to be under the prefix.
    pub async fn serve(&self, v: &Visit<'_>, req: Request<RequestBody>) -> DeskAnswer {
        let prefix = &self.prefix;
        let rest = &req.uri().path()[prefix.len()..];
        let cached = rest == "/session.js";
        let answer = match (rest, req.method()) {
            ("/login", &Method::GET | &Method::HEAD) if self.builtin_login() => {
                self.login_page(v, req).await.map(DeskAnswer::anonymous)
            }
            ("/login", &Method::POST) if self.builtin_login() => self.login_post(v, req).await,
            ("/login", _) if self.builtin_login() => Err(Reject::MethodNotAllowed {
                allow: Some("GET, HEAD, POST"),
            }),
            ("/logout", &Method::GET | &Method::HEAD | &Method::POST) => self.logout(v, req).await,
            ("/logout", _) => Err(Reject::MethodNotAllowed {
                allow: Some("GET, HEAD, POST"),
            }),
            ("/status", &Method::GET | &Method::HEAD) => super::expiry::status(v, &req).await,
            ("/keepalive", &Method::POST) => super::expiry::keepalive(v, &req).await,
            ("/session.js", &Method::GET | &Method::HEAD) => {
                Ok(DeskAnswer::anonymous(super::expiry::script(&req)))
            }
            ("/status" | "/session.js", _) => Err(Reject::MethodNotAllowed {
                allow: Some("GET, HEAD"),
            }),
            ("/keepalive", _) => Err(Reject::MethodNotAllowed {
                allow: Some("POST"),
            }),
            (your_sessions::LIST, &Method::GET | &Method::HEAD) => {
                your_sessions::list(v, prefix, req).await
            }
            (your_sessions::END, &Method::POST) => your_sessions::end_one(v, prefix, req).await,
            (your_sessions::END_OTHERS, &Method::POST) => {
                your_sessions::end_others(v, prefix, req).await
            }
            (your_sessions::LIST, _) => Err(Reject::MethodNotAllowed {
                allow: Some("GET, HEAD"),
            }),
            (your_sessions::END | your_sessions::END_OTHERS, _) => Err(Reject::MethodNotAllowed {
                allow: Some("POST"),
            }),
            _ => Err(Reject::NotFound),
        };
        let mut answer = answer
            .unwrap_or_else(|reject| DeskAnswer::anonymous(reject.into_response(v.login_page)));
        // Every built-in answer is no-store, refusals included, but for
        // the script (`session.js`, the same for everyone), cached.
        if !cached {
            answer
                .response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }
        answer
    }

    /// Whether the built-in login page is served: with a users file to
    /// check passwords against, and only then (a page whose every POST
    /// fails would only mislead).
    fn builtin_login(&self) -> bool {
        self.source == LoginSource::UsersFile && self.users.is_some()
    }

    /// `GET {prefix}/login`: the page, with a CSRF token bound to a
    /// pre-login session (created now if the browser has none).
    async fn login_page(
        &self,
        v: &Visit<'_>,
        req: Request<RequestBody>,
    ) -> Result<Response<ResponseBody>, Reject> {
        let now = v.clock.now();
        let mut next = String::from("/");
        let mut expired = false;
        for (k, v) in form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes()) {
            match &*k {
                "next" => next = safe_next(&v),
                "expired" => expired = v == "1",
                _ => {}
            }
        }
        let current = self.session_or_new(v, &req, now).await?;
        let secure = v.sessions.jar.secure_for(v.client.https);
        let replay = Notice::from_query(req.uri().query(), req.headers(), secure);
        let message = match (expired, replay) {
            (true, Some(r)) => Some(format!("{} {}", self.expired_message, r.message())),
            (true, None) => Some(self.expired_message.clone()),
            (false, r) => r.map(|r| r.message().to_owned()),
        };
        let message = message.as_deref();
        let answer = PageAnswer {
            status: StatusCode::OK,
            next: &next,
            username: "",
            message,
            error: None,
        };
        Ok(self.render(v, &current, &answer, now))
    }

    /// `POST {prefix}/login`: CSRF, throttle, password, then a new session id.
    async fn login_post(
        &self,
        v: &Visit<'_>,
        req: Request<RequestBody>,
    ) -> Result<DeskAnswer, Reject> {
        let now = v.clock.now();
        let found = v.find(req.headers(), now).await;
        let browser = describe_header(req.headers().get(header::USER_AGENT));
        let form = LoginForm::parse(&read_form(req.into_body()).await?);
        let next = safe_next(&form.next);
        let username = form.username.trim();
        let again = |status, error| PageAnswer {
            status,
            next: &next,
            username,
            message: None,
            error: Some(error),
        };
        // The form's token is bound to the pre-login session.
        let current = match found {
            Ok(Found::Session(c)) if v.sessions.signer.verify_csrf(&c.id, &form.csrf) => c,
            Ok(found) => {
                tracing::warn!(client = %v.client.ip, "login refused: missing or wrong CSRF token");
                // The page comes back with a token for the visitor's own
                // session (a new one if there is none), so a retry works.
                let fresh = page_session(found, now);
                let answer = again(StatusCode::FORBIDDEN, MSG_CSRF);
                return Ok(DeskAnswer::anonymous(self.render(v, &fresh, &answer, now)));
            }
            Err(e) => {
                v.store_failed("login", &e);
                return Err(Reject::StoreUnavailable);
            }
        };
        if let Err(wait) = self.throttle.check(username, v.client.ip, now) {
            v.metrics.logins.inc_throttled();
            tracing::warn!(client = %v.client.ip, user = %username, "login throttled");
            v.audit.refused(
                Event::LoginThrottled,
                How::Form,
                username,
                Some(v.client.ip),
            );
            let message = super::throttle::wait_message(wait.seconds());
            let answer = again(StatusCode::TOO_MANY_REQUESTS, &message);
            let mut resp = self.render(v, &current, &answer, now);
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(wait.seconds()));
            return Ok(DeskAnswer::anonymous(resp));
        }
        if !self.verify(username, form.password).await {
            self.throttle.record_failure(username, v.client.ip, now);
            v.metrics.logins.inc_failed();
            tracing::info!(client = %v.client.ip, user = %username, "login failed");
            v.audit
                .refused(Event::LoginFailed, How::Form, username, Some(v.client.ip));
            let answer = again(StatusCode::UNAUTHORIZED, MSG_INVALID);
            return Ok(DeskAnswer::anonymous(
                self.render(v, &current, &answer, now),
            ));
        }
        self.throttle.record_success(username, v.client.ip);
        let who = SignIn {
            user: username,
            groups: "",
            remember: self.remember_me.filter(|_| form.remember),
            browser: browser.as_deref(),
        };
        self.sign_in(v, &current, &who, &next, now).await
    }

    /// Whether `password` is `username`'s, by the users file (off the
    /// request threads: hashing is slow on purpose).
    async fn verify(&self, username: &str, password: String) -> bool {
        let plausible = !username.is_empty()
            && !password.is_empty()
            && crate::session::user::valid_user(username);
        match &self.users {
            Some(users) if plausible => users.verify_blocking(username.to_string(), password).await,
            _ => false,
        }
    }

    /// Logs `current` in as `who` under a new id (anonymous data kept),
    /// and sends the browser on to `next` with the new cookie.
    async fn sign_in(
        &self,
        v: &Visit<'_>,
        current: &Current,
        who: &SignIn<'_>,
        next: &str,
        now: u64,
    ) -> Result<DeskAnswer, Reject> {
        let username = who.user;
        let new_id = crate::session::SessionId::generate();
        let seed = NewSession {
            created: now,
            initial: &v.sessions.initial,
            ip: Some(v.client.ip),
        };
        // The pre-login id is handed over even when it was never stored, so
        // that the store marks it as moved (requests still carrying it get
        // no new session that would replace the cookie set below).
        let nothing = DataChange::default();
        let policy = &v.sessions.policy;
        let stored = v
            .store
            .login(Some(&current.id), &new_id, who, &nothing, seed, now, policy)
            .await;
        let record = match stored {
            Ok(record) => record,
            Err(e) => {
                v.store_failed("login", &e);
                return Err(Reject::StoreUnavailable);
            }
        };
        v.metrics.logins.inc_ok();
        // A new id, as a backend's login gets in `session::commit`.
        Metrics::inc(&v.metrics.sessions_created);
        tracing::info!(client = %v.client.ip, user = %username, session = %new_id.log_hash(), "login");
        v.audit
            .login(How::Form, username, Some(v.client.ip), new_id.log_tag());
        let mut resp = redirect(StatusCode::SEE_OTHER, next);
        let claims = CookieClaims {
            id: new_id,
            created: record.created,
            stored: true,
            remembered: record.remember.is_some(),
        };
        let cookie = CookieOut::Set(claims);
        v.sessions
            .apply_cookie(resp.headers_mut(), cookie, v.client.https, now);
        Ok(DeskAnswer {
            response: resp,
            user: record.user,
            session: Some(new_id),
        })
    }

    /// `GET|POST {prefix}/logout`: destroy the session, clear the cookie;
    /// nothing of either when the store cannot be reached. Without `next`,
    /// the browser goes to the cookie's path.
    async fn logout(&self, v: &Visit<'_>, req: Request<RequestBody>) -> Result<DeskAnswer, Reject> {
        let client = v.client;
        let now = v.clock.now();
        let found = v.find(req.headers(), now).await;
        let mut next = req
            .uri()
            .query()
            .and_then(|q| form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "next"))
            .map(|(_, v)| v.into_owned());
        if req.method() == Method::POST {
            let body = read_form(req.into_body()).await.unwrap_or_default();
            if let Some((_, v)) = form_urlencoded::parse(&body).find(|(k, _)| k == "next") {
                next = Some(v.into_owned());
            }
        }
        let mut ended = None;
        let clear = match found {
            Ok(Found::Session(c)) => {
                if let Err(e) = v.store.remove(&c.id).await {
                    v.store_failed("logout", &e);
                    return Err(Reject::StoreUnavailable);
                }
                Metrics::inc(&v.metrics.sessions_logged_out);
                let user = c.user().cloned();
                tracing::info!(client = %client.ip, user = user.as_deref().unwrap_or("-"), session = %c.id.log_hash(), "logout");
                if let Some(user) = &user {
                    v.audit
                        .logout(How::Form, user, Some(client.ip), c.id.log_tag());
                }
                ended = Some((user, c.id));
                true
            }
            Ok(Found::Nothing { .. }) => true,
            Ok(Found::Rotated) => {
                tracing::info!(client = %client.ip, "logout with a cookie a login has just replaced: nothing to end");
                false
            }
            Err(e) => {
                v.store_failed("logout", &e);
                return Err(Reject::StoreUnavailable);
            }
        };
        let next = next.as_deref().unwrap_or(&self.logout_default);
        let mut resp = redirect(StatusCode::SEE_OTHER, &safe_next(next));
        if clear {
            v.sessions
                .apply_cookie(resp.headers_mut(), CookieOut::Clear, client.https, now);
        }
        let (user, session) = ended.map_or((None, None), |(user, id)| (user, Some(id)));
        Ok(DeskAnswer {
            response: resp,
            user,
            session,
        })
    }

    /// The request's session, or a new anonymous one (not stored).
    async fn session_or_new<B>(
        &self,
        v: &Visit<'_>,
        req: &Request<B>,
        now: u64,
    ) -> Result<Current, Reject> {
        match v
            .sessions
            .find(v.store, req.headers(), v.client.ip, now)
            .await
        {
            Ok(found) => Ok(page_session(found, now)),
            Err(e) => {
                v.store_failed("login page", &e);
                Err(Reject::StoreUnavailable)
            }
        }
    }

    /// Renders the login page for `current`, setting its cookie when it is new.
    fn render(
        &self,
        v: &Visit<'_>,
        current: &Current,
        answer: &PageAnswer<'_>,
        now: u64,
    ) -> Response<ResponseBody> {
        let action = format!("{}/login", self.prefix);
        let csrf = v.sessions.signer.csrf_token(&current.id);
        let html = self.page.render(&PageContext {
            action: &action,
            next: answer.next,
            csrf: &csrf,
            username: answer.username,
            message: answer.message,
            error: answer.error,
            remember: self.remember_me.is_some(),
        });
        let mut resp = Response::new(ResponseBody::full(html));
        *resp.status_mut() = answer.status;
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        h.insert("x-frame-options", HeaderValue::from_static("DENY"));
        h.insert("referrer-policy", HeaderValue::from_static("same-origin"));
        if let Some(csp) = self.page.content_security_policy() {
            h.insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(csp),
            );
        }
        if current.new {
            let claims = CookieClaims {
                id: current.id,
                created: current.created,
                stored: false,
                remembered: false,
            };
            v.sessions
                .apply_cookie(h, CookieOut::Set(claims), v.client.https, now);
        }
        resp
    }
}

/// The session a login page is bound to: the request's own, or a new one
/// whose cookie the page sets; for a cookie a login has just replaced, a
/// new id whose cookie is never sent (see the module documentation).
fn page_session(found: Found, now: u64) -> Current {
    match found {
        Found::Session(c) => c,
        Found::Nothing { .. } => Current::fresh(now),
        Found::Rotated => Current {
            new: false,
            ..Current::fresh(now)
        },
    }
}

async fn read_form(body: RequestBody) -> Result<Bytes, Reject> {
    read_form_limited(body, MAX_FORM_BYTES).await
}

/// A form body of at most `max` bytes; more, or one cut off, is a `400`.
pub(super) async fn read_form_limited(body: RequestBody, max: usize) -> Result<Bytes, Reject> {
    match Limited::new(body, max).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(_) => Err(Reject::BadRequest("The form is too large or was cut off.")),
    }
}
