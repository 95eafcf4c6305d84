//! The built-in endpoints under `login.prefix`: the login page, the login
//! form's POST, and logout.
//!
//! ```text
//! GET  {prefix}/login   ensure a pre-login session (for the CSRF token), show the page
//! POST {prefix}/login   CSRF bound to that session -> throttle -> password
//!                       -> NEW session id (anonymous data kept) -> 303 next
//! GET|POST {prefix}/logout  destroy the session, clear the cookie -> 303 next or /
//! ```
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

use std::time::Instant;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Limited};
use hyper::body::Incoming;

use crate::body::ResponseBody;
use crate::config::LoginSource;
use crate::forwarded::ClientInfo;
use crate::login::{PageContext, safe_next};
use crate::proxy::{CookieOut, Current, Found, Gate, Runtime};
use crate::respond::{Reject, redirect};
use crate::session::{CookieClaims, DataChange, NewSession, SessionStore};

/// The most a login form body may hold.
const MAX_FORM_BYTES: usize = 16 * 1024;

const MSG_INVALID: &str = "The user name or password is not right.";
const MSG_CSRF: &str = "This sign-in form has expired. Please try again.";
const MSG_THROTTLED: &str =
    "Too many failed sign-in attempts. Please wait a few minutes and try again.";

/// The fields of the login form.
#[derive(Debug, Default)]
struct LoginForm {
    username: String,
    password: String,
    next: String,
    csrf: String,
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
                _ => {}
            }
        }
        form
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

impl Gate {
    /// Serves `path` (already known to be under the prefix).
    pub(crate) async fn builtin(
        &self,
        rt: &Runtime,
        req: Request<Incoming>,
        client: &ClientInfo,
    ) -> Result<Response<ResponseBody>, Reject> {
        let prefix = &rt.config.login.prefix;
        let rest = &req.uri().path()[prefix.len()..];
        let answer = match (rest, req.method()) {
            ("/login", &Method::GET | &Method::HEAD) if self.builtin_login(rt) => {
                self.login_page(rt, req, client).await
            }
            ("/login", &Method::POST) if self.builtin_login(rt) => {
                self.login_post(rt, req, client).await
            }
            ("/login", _) if self.builtin_login(rt) => Err(Reject::MethodNotAllowed),
            ("/logout", &Method::GET | &Method::HEAD | &Method::POST) => {
                self.logout(rt, req, client).await
            }
            ("/logout", _) => Err(Reject::MethodNotAllowed),
            _ => Err(Reject::NotFound),
        };
        // Every built-in answer is no-store, refusals included.
        Ok(no_store(answer.unwrap_or_else(|reject| {
            reject.into_response(&rt.login_page)
        })))
    }

    fn builtin_login(&self, rt: &Runtime) -> bool {
        rt.config.login.source == LoginSource::UsersFile
    }

    /// `GET {prefix}/login`: the page, with a CSRF token bound to a
    /// pre-login session (created now if the browser has none).
    async fn login_page(
        &self,
        rt: &Runtime,
        req: Request<Incoming>,
        client: &ClientInfo,
    ) -> Result<Response<ResponseBody>, Reject> {
        let now = self.clock.now();
        let mut next = String::from("/");
        let mut expired = false;
        for (k, v) in form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes()) {
            match &*k {
                "next" => next = safe_next(&v),
                "expired" => expired = v == "1",
                _ => {}
            }
        }
        let current = self.session_or_new(rt, &req, client, now).await?;
        let message = expired.then_some(rt.config.login.expired_message.as_str());
        let answer = PageAnswer {
            status: StatusCode::OK,
            next: &next,
            username: "",
            message,
            error: None,
        };
        Ok(self.render(rt, &current, &answer, client, now))
    }

    /// `POST {prefix}/login`: CSRF, throttle, password, then a new session id.
    async fn login_post(
        &self,
        rt: &Runtime,
        req: Request<Incoming>,
        client: &ClientInfo,
    ) -> Result<Response<ResponseBody>, Reject> {
        let now = self.clock.now();
        let found = self.find_session(rt, req.headers(), client, now).await;
        let body = read_form(req.into_body()).await?;
        let form = LoginForm::parse(&body);
        let next = safe_next(&form.next);
        let username = form.username.trim();

        let current = match found {
            Ok(Found::Session(c)) if rt.signer.verify_csrf(&c.id, &form.csrf) => c,
            Ok(found) => {
                tracing::warn!(client = %client.ip, "login refused: missing or wrong CSRF token");
                // The page comes back with a token for the visitor's own
                // session (a new one if there is none), so a retry works.
                let fresh = page_session(found, now);
                let answer = PageAnswer {
                    status: StatusCode::FORBIDDEN,
                    next: &next,
                    username,
                    message: None,
                    error: Some(MSG_CSRF),
                };
                return Ok(self.render(rt, &fresh, &answer, client, now));
            }
            Err(e) => {
                self.store_failed("login", &e);
                return Err(Reject::StoreUnavailable);
            }
        };

        if let Err(wait) = rt.throttle.check(username, client.ip, Instant::now()) {
            self.metrics.logins.inc_throttled();
            tracing::warn!(client = %client.ip, user = %username, "login throttled");
            let answer = PageAnswer {
                status: StatusCode::TOO_MANY_REQUESTS,
                next: &next,
                username,
                message: None,
                error: Some(MSG_THROTTLED),
            };
            let mut resp = self.render(rt, &current, &answer, client, now);
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(wait.seconds()));
            return Ok(resp);
        }

        let verified = !username.is_empty()
            && !form.password.is_empty()
            && crate::session::user::valid_user(username)
            && match &rt.users {
                Some(users) => {
                    users
                        .verify_blocking(username.to_string(), form.password)
                        .await
                }
                None => false,
            };
        if !verified {
            rt.throttle
                .record_failure(username, client.ip, Instant::now());
            self.metrics.logins.inc_failed();
            tracing::info!(client = %client.ip, user = %username, "login failed");
            let answer = PageAnswer {
                status: StatusCode::UNAUTHORIZED,
                next: &next,
                username,
                message: None,
                error: Some(MSG_INVALID),
            };
            return Ok(self.render(rt, &current, &answer, client, now));
        }

        rt.throttle.record_success(username, client.ip);
        let new_id = crate::session::SessionId::generate();
        let seed = NewSession {
            created: now,
            initial: &rt.initial,
            ip: Some(client.ip),
        };
        // The pre-login id is handed over even when it was never stored, so
        // that the store marks it as moved (requests still carrying it get
        // no new session that would replace the cookie set below).
        let old = Some(current.id);
        match self
            .store
            .login(
                old.as_ref(),
                &new_id,
                username,
                &DataChange::default(),
                seed,
                now,
                &rt.policy,
            )
            .await
        {
            Ok(record) => {
                self.metrics.logins.inc_ok();
                tracing::info!(client = %client.ip, user = %username, session = %new_id.log_hash(), "login");
                let mut resp = redirect(StatusCode::SEE_OTHER, &next);
                let claims = CookieClaims {
                    id: new_id,
                    created: record.created,
                    stored: true,
                };
                rt.apply_cookie(
                    resp.headers_mut(),
                    CookieOut::Set(claims),
                    client.https,
                    now,
                );
                Ok(resp)
            }
            Err(e) => {
                self.store_failed("login", &e);
                Err(Reject::StoreUnavailable)
            }
        }
    }

    /// `GET|POST {prefix}/logout`: destroy the session, clear the cookie;
    /// nothing of either when the store cannot be reached.
    async fn logout(
        &self,
        rt: &Runtime,
        req: Request<Incoming>,
        client: &ClientInfo,
    ) -> Result<Response<ResponseBody>, Reject> {
        let now = self.clock.now();
        let found = self.find_session(rt, req.headers(), client, now).await;
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
        let clear = match found {
            Ok(Found::Session(c)) => {
                if let Err(e) = self.store.remove(&c.id).await {
                    self.store_failed("logout", &e);
                    return Err(Reject::StoreUnavailable);
                }
                tracing::info!(client = %client.ip, session = %c.id.log_hash(), "logout");
                true
            }
            Ok(Found::Nothing { .. }) => true,
            Ok(Found::Rotated) => {
                tracing::info!(client = %client.ip, "logout with a cookie a login has just replaced: nothing to end");
                false
            }
            Err(e) => {
                self.store_failed("logout", &e);
                return Err(Reject::StoreUnavailable);
            }
        };
        let mut resp = redirect(
            StatusCode::SEE_OTHER,
            &safe_next(next.as_deref().unwrap_or("/")),
        );
        if clear {
            rt.apply_cookie(resp.headers_mut(), CookieOut::Clear, client.https, now);
        }
        Ok(resp)
    }

    /// The request's session, or a new anonymous one (not stored).
    async fn session_or_new<B>(
        &self,
        rt: &Runtime,
        req: &Request<B>,
        client: &ClientInfo,
        now: u64,
    ) -> Result<Current, Reject> {
        match self.find_session(rt, req.headers(), client, now).await {
            Ok(found) => Ok(page_session(found, now)),
            Err(e) => {
                self.store_failed("login page", &e);
                Err(Reject::StoreUnavailable)
            }
        }
    }

    /// Renders the login page for `current`, setting its cookie when it is new.
    fn render(
        &self,
        rt: &Runtime,
        current: &Current,
        answer: &PageAnswer<'_>,
        client: &ClientInfo,
        now: u64,
    ) -> Response<ResponseBody> {
        let action = format!("{}/login", rt.config.login.prefix);
        let csrf = rt.signer.csrf_token(&current.id);
        let html = rt.page.render(&PageContext {
            action: &action,
            next: answer.next,
            csrf: &csrf,
            username: answer.username,
            message: answer.message,
            error: answer.error,
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
        if let Some(csp) = rt.page.content_security_policy() {
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
            };
            rt.apply_cookie(h, CookieOut::Set(claims), client.https, now);
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

async fn read_form(body: Incoming) -> Result<Bytes, Reject> {
    match Limited::new(body, MAX_FORM_BYTES).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(_) => Err(Reject::BadRequest("The form is too large or was cut off.")),
    }
}

fn no_store(mut resp: Response<ResponseBody>) -> Response<ResponseBody> {
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}
