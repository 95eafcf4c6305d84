//! The request path, one stage a line, each stage in the module named:
//!
//! ```text
//! normalise the path, one host ............ canonical
//! head size, WebSocket handshake? ......... here, upgrade
//! built-in endpoints ...................... login::endpoints
//! route ................................... setup (access::RouteTable)
//! cross-site shield (403) ................. csrf
//! (the application's login page: throttle,  login::backend_page
//!   the expired notice)
//! cookie -> signature -> store lookup ..... session::found
//! access decision (login redirect / 401, .. access
//!   the allow list's 403)
//!   (HTTP Basic on basic_auth routes) ..... login::basic
//!   (a form without a session: kept, 303) . replay
//! (the form kept there, in a GET's place) . replay
//! strip client headers, inject ours ....... upstream::request_headers
//! forward (HTTP upstream or CGI gateway) .. forward
//! take the backend's control headers ...... upstream::control
//! (WebSocket: open the tunnel) ............ upgrade
//! commit the session ...................... session::commit
//! set / clear the cookie .................. session::set_cookie
//! (the expiry warning's script tag) ....... upstream::expiry_warning
//! access log, when the body ends .......... body, access_log
//! ```
//!
//! Every stage returns a value; an early answer is a [`Reject`] (made into a
//! response by [`crate::respond`], the one table of statuses) or a response
//! the stage built.

use std::ops::Deref;
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};

use crate::access::{self, AccessDecision, Visitor};
use crate::access_log::AccessRecord;
use crate::audit::{Audit, Event, How};
use crate::body::ResponseBody;
use crate::canonical;
use crate::clock::Clock;
use crate::config::{Access, CsrfMode};
use crate::csrf;
use crate::forward::{Hop, Target};
use crate::forwarded::{self, ClientInfo, ConnInfo};
use crate::login::backend_page;
use crate::login::basic::{Verdict, Witness};
use crate::login::endpoints::Visit;
use crate::metrics::{Metrics, RouteMeter};
use crate::replay::{self, KeptRequest, Notice, Outcome, Ticket};
use crate::respond::{self, Reject};
use crate::session::commit::held_back;
use crate::session::{
    AnyStore, Committer, CookieOut, Current, Found, Hold, Identity, SessionChange, SessionId,
    SessionStore as _, StoreError,
};
use crate::setup::{Route, Setup};
use crate::upgrade::{self, Handshake, PendingTunnel, SessionWatch};
use crate::upstream::cgi::AuthType;
use crate::upstream::control::take_control;
use crate::upstream::expiry_warning::{self, Page};
use crate::upstream::request_body::{ClientBodyFailure, RequestBody};
use crate::upstream::request_headers::{self, Injection, Rewrite, Signing, Subject};

/// The proxy: the setup in force, the store, the counters, the clock,
/// the audit log.
pub struct Gate {
    setup: ArcSwap<Setup>,
    /// The session store (kept across reloads).
    pub store: AnyStore,
    /// Counters.
    pub metrics: Metrics,
    /// Time source for session lifetimes.
    pub clock: Clock,
    /// The audit log (kept across reloads, which reopen it).
    pub audit: Audit,
}

/// One request's facts, gathered stage by stage: what the later stages
/// need, and what the access log line says.
struct Exchange<'a> {
    setup: &'a Setup,
    conn: &'a ConnInfo,
    client: ClientInfo,
    /// Unix seconds, for session lifetimes.
    now: u64,
    /// The route's log label (`-` until a route matched).
    route: Arc<str>,
    /// The route's request counters (those of "no route" until one matched).
    meter: &'a RouteMeter,
    user: Option<Arc<str>>,
    /// How the user proved who they are (`AUTH_TYPE` for scripts).
    auth: AuthType,
    /// The signed-in user's groups, joined by commas (see
    /// [`Setup::groups_of`]).
    groups: Option<String>,
    session: Option<SessionId>,
    /// A request to the application's login page (`source = "backend"`).
    login_page: bool,
    /// It is told that the visitor's session has ended.
    expired_notice: bool,
    /// The request's `User-Agent`, which a backend's sign-in describes.
    user_agent: Option<HeaderValue>,
}

/// What the access decision lets through.
enum Admitted {
    /// Forward, with this session (`None`: without one).
    Forward(Option<Current>),
    /// Answer here (the login redirect).
    Answer(Response<ResponseBody>),
}

impl Gate {
    /// A gate over `setup` and `store`, with the audit log off.
    pub fn new(mut setup: Setup, store: AnyStore, clock: Clock) -> Self {
        let metrics = Metrics::default();
        setup.bind_meters(&metrics.routes);
        Gate {
            setup: ArcSwap::from_pointee(setup),
            store,
            metrics,
            clock,
            audit: Audit::off(),
        }
    }

    /// The gate, writing its audit lines to `audit`.
    pub fn with_audit(self, audit: Audit) -> Self {
        Gate { audit, ..self }
    }

    /// The setup in force.
    pub fn setup(&self) -> Arc<Setup> {
        self.setup.load_full()
    }

    /// Replaces the setup (SIGHUP); requests in flight finish on the old
    /// one. Request totals run on, by route label.
    /// Failed-login counts carry over when the limits stay the same.
    pub fn swap_setup(&self, mut setup: Setup) {
        setup.bind_meters(&self.metrics.routes);
        setup.login.keep_throttle_of(&self.setup.load().login);
        self.setup.store(Arc::new(setup));
    }

    /// Handles one request. Never fails: every problem becomes a response.
    pub fn handle<'a>(
        &'a self,
        req: Request<RequestBody>,
        conn: &'a ConnInfo,
    ) -> impl Future<Output = Response<ResponseBody>> + 'a {
        Gate::handle_in(self, conn, req)
    }

    /// [`Gate::handle`] with the gate and the connection held as the caller
    /// holds them: by reference, or (for the listeners, whose futures own
    /// what they use) by `Arc`.
    ///
    /// An `async` block over the arguments, not an `async fn` (which would
    /// keep a second copy of the request in its state), as are the
    /// stages' and the HTTP upstream's: the listeners copy this future
    /// into its box on every request.
    #[allow(
        clippy::manual_async_fn,
        reason = "an async fn keeps its arguments twice in its future"
    )]
    pub fn handle_in(
        gate: impl Deref<Target = Gate>,
        conn: impl Deref<Target = ConnInfo>,
        mut req: Request<RequestBody>,
    ) -> impl Future<Output = Response<ResponseBody>> {
        async move {
            let (gate, conn) = (&*gate, &*conn);
            let started = Instant::now();
            let setup = gate.setup.load_full();
            let client =
                forwarded::resolve(conn, req.headers(), &setup.config.server.trusted_proxies);
            let mut ex = Exchange {
                setup: &setup,
                conn,
                client,
                now: gate.clock.now(),
                route: setup.no_route_label.clone(),
                meter: setup.meters.no_route(),
                user: None,
                auth: AuthType::Session,
                groups: None,
                session: None,
                login_page: false,
                expired_notice: false,
                user_agent: None,
            };
            let method = req.method().clone();
            // From here on the path is the normalised one: it is routed,
            // checked, logged and forwarded as one.
            let canonical = canonical::normalize_uri(req.uri_mut());
            let path = req.uri().path().to_owned();
            let result = match canonical {
                Ok(()) => gate.process(&mut ex, req).await,
                Err(e) => {
                    tracing::debug!(client = %ex.client.ip, path = %path, error = %e, "bad request target");
                    Err(e.into())
                }
            };
            let mut resp = result.unwrap_or_else(|reject| refuse(&setup, ex.meter, reject));
            if let Some(value) = &conn.hsts {
                crate::hsts::apply(&mut resp, value);
            }
            // Counted as the head leaves: the time to answer, not to stream the body.
            ex.meter.observe(resp.status(), started.elapsed());
            ex.log(resp, started, method, path)
        }
    }

    /// The stages, in order.
    ///
    /// Every byte of this future's largest state is copied on every
    /// request (the listeners box it), so it is kept small: an `async`
    /// block over the arguments (see [`Gate::handle_in`]), the request
    /// rewritten in place rather than in a second binding, what the access
    /// decision consumes scoped to a block of its own, and the large,
    /// rarer futures (built-in endpoints, CGI, FastCGI and static files, a
    /// form kept for after the sign-in) boxed.
    #[allow(
        clippy::manual_async_fn,
        reason = "an async fn keeps its arguments twice in its future"
    )]
    fn process(
        &self,
        ex: &mut Exchange<'_>,
        mut req: Request<RequestBody>,
    ) -> impl Future<Output = Result<Response<ResponseBody>, Reject>> {
        async move {
            check_head_size(&req, ex.setup.config.server.max_header_bytes)?;
            let handshake = upgrade::classify(&req)?;
            if ex.setup.is_builtin(req.uri().path()) {
                return Box::pin(self.builtin(ex, req)).await;
            }
            let host = canonical::request_host(&req)?;
            let route = ex.enter(host.as_ref(), req.uri().path())?;
            ex.shield(&req, host.as_ref(), Some(&route))?;
            self.login_attempt(ex, &req)?;
            let (current, hold) = {
                let (found, mut hold) = self.find_session(ex, &route, &req).await?;
                ex.notice_expiry(&req, &found);
                let expired = matches!(found, Found::Nothing { expired: true });
                match self
                    .admit(ex, &route, found, &mut hold, &req, handshake)
                    .await
                {
                    Ok(Admitted::Forward(current)) => (current, hold),
                    Ok(Admitted::Answer(resp)) => return Ok(resp),
                    // A form sent without a session: kept across the sign-in.
                    Err(Reject::Unauthorized { json: false }) if ex.keeps(&req) => {
                        return Ok(Box::pin(self.keep(ex, req, expired)).await);
                    }
                    Err(reject) => return Err(reject),
                }
            };
            let replayed = self.replay(ex, &route, &mut req, handshake).await;
            let page = ex.page(&route, current.as_ref(), &req, host.as_ref());
            ex.user_agent = req.headers().get(header::USER_AGENT).cloned();
            let body_failure;
            (req, body_failure) = ex.prepare(req, host.as_ref(), &route, current.as_ref());
            let tunnel = open_tunnel(&route, &mut req, handshake)?;
            let hop = ex.hop(&route, &body_failure);
            let mut resp = match &route.target {
                // The common case awaited here, without the dispatch's own
                // future around it: each layer of async fn copies the one inside.
                Target::Http(upstream) => upstream
                    .forward(req, hop.timeout, &hop.conn.upstream_timer)
                    .await?
                    .map(ResponseBody::upstream),
                target => Box::pin(target.forward(req, &hop)).await?,
            };
            let change = take_control(
                resp.headers_mut(),
                &ex.setup.config.headers,
                ex.setup.sessions.jar.name(),
            );
            if let Some(tunnel) = tunnel {
                tunnel.complete(&mut resp, self.watch(ex, &route, current.as_ref()))?;
            }
            let cookie = self.commit(ex, current, hold, change).await?;
            let https = ex.client.https;
            ex.setup
                .sessions
                .apply_cookie(resp.headers_mut(), cookie, https, ex.now);
            if let Some(page) = page {
                ex.setup.expiry_warning.apply(&page, &mut resp);
            }
            if let Some(secure) = replayed {
                let clear = replay::clear_cookie(secure);
                resp.headers_mut().append(header::SET_COOKIE, clear);
            }
            Ok(resp)
        }
    }

    /// Keeps a form sent without a session ([`crate::replay`]) and sends
    /// the browser to sign in with the one-time cookie naming it; a form it
    /// cannot keep (over `login.replay_max_bytes`, or no room in the
    /// store) goes with the notice to send it again.
    async fn keep(
        &self,
        ex: &Exchange<'_>,
        req: Request<RequestBody>,
        expired: bool,
    ) -> Response<ResponseBody> {
        let login = &ex.setup.config.login;
        let secure = ex.setup.sessions.jar.secure_for(ex.client.https);
        let (parts, body) = req.into_parts();
        let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let body = replay::read_body(&parts.headers, body, login.replay_max_bytes).await;
        let content_type = parts.headers.get(header::CONTENT_TYPE).cloned();
        let ticket = match (body, content_type) {
            (Some(body), Some(content_type)) => {
                let kept = KeptRequest {
                    method: parts.method.clone(),
                    target: target.to_owned(),
                    content_type,
                    body,
                };
                self.store_kept(ex, &kept).await
            }
            _ => {
                tracing::info!(client = %ex.client.ip, route = %ex.route, method = %parts.method, limit = login.replay_max_bytes, "form sent without a session not kept: over replay_max_bytes");
                None
            }
        };
        let notice = match ticket {
            Some(_) => Notice::Kept,
            None => {
                self.metrics.replays.count(Outcome::NotKept);
                Notice::TooLarge
            }
        };
        let to = replay::login_url(&ex.setup.login_page, target, expired, notice);
        let mut resp = respond::redirect(replay::REDIRECT, &to);
        if let Some(ticket) = ticket {
            let ttl = login.replay_ttl.as_secs();
            let cookie = ticket.set_cookie(secure, ttl);
            resp.headers_mut().append(header::SET_COOKIE, cookie);
        }
        resp
    }

    /// Stores `kept` under a fresh id; the ticket naming it, or `None`
    /// when the store has no room or fails (logged, never the body).
    async fn store_kept(&self, ex: &Exchange<'_>, kept: &KeptRequest) -> Option<Ticket> {
        let id = SessionId::generate();
        let ttl = ex.setup.config.login.replay_ttl.as_secs();
        let stored = self
            .store
            .keep_request(&id, &kept.encode(), ex.now, ttl)
            .await;
        match stored {
            Ok(()) => {
                self.metrics.replays.count(Outcome::Kept);
                tracing::info!(client = %ex.client.ip, route = %ex.route, method = %kept.method, bytes = kept.body.len(), "form sent without a session kept until the sign-in");
                Some(Ticket::new(id, &kept.target))
            }
            Err(e) => {
                if !matches!(e, StoreError::TooLarge { .. }) {
                    Metrics::inc(&self.metrics.store_errors);
                }
                tracing::warn!(client = %ex.client.ip, route = %ex.route, error = %e, "form sent without a session not kept");
                None
            }
        }
    }

    /// A signed-in `GET` carrying the one-time cookie for its own address
    /// becomes the request kept there ([`crate::replay`]): taken from the
    /// store once, it goes on through the ordinary stages in the `GET`'s
    /// place. `Some(secure)`: the cookie is to be cleared (whatever came
    /// of the take).
    ///
    /// The request is changed in place: every request passes here, and
    /// moving it in and out would copy it each time.
    async fn replay(
        &self,
        ex: &Exchange<'_>,
        route: &Route<'_>,
        req: &mut Request<RequestBody>,
        handshake: Option<Handshake>,
    ) -> Option<bool> {
        let (ticket, secure) = ex.replay_ticket(route, req, handshake)?;
        // Boxed: rare, and the store's future is large; the hot path's
        // future stays small.
        Box::pin(self.take_kept(ex, ticket, req)).await;
        Some(secure)
    }

    /// Takes the kept request `ticket` names and puts it in `req`'s place.
    async fn take_kept(&self, ex: &Exchange<'_>, ticket: Ticket, req: &mut Request<RequestBody>) {
        let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
        let kept = match self.store.take_request(&ticket.id, ex.now).await {
            Ok(Some(bytes)) => match KeptRequest::decode(&bytes) {
                Ok(kept) if kept.target == target => Some(kept),
                Ok(_) => {
                    tracing::warn!(client = %ex.client.ip, "a kept form's address differs from its cookie's; not sent");
                    None
                }
                Err(e) => {
                    tracing::warn!(client = %ex.client.ip, error = %e, "a kept form could not be read; not sent");
                    None
                }
            },
            Ok(None) => {
                tracing::info!(client = %ex.client.ip, route = %ex.route, "kept form gone (its time over, or sent already)");
                None
            }
            Err(e) => {
                Metrics::inc(&self.metrics.store_errors);
                tracing::warn!(client = %ex.client.ip, error = %e, "kept form could not be taken from the store");
                None
            }
        };
        let Some(kept) = kept else {
            self.metrics.replays.count(Outcome::Missing);
            return;
        };
        self.metrics.replays.count(Outcome::Replayed);
        tracing::info!(client = %ex.client.ip, route = %ex.route, user = ?ex.user, method = %kept.method, bytes = kept.body.len(), "kept form sent after the sign-in");
        *req.method_mut() = kept.method;
        let h = req.headers_mut();
        h.remove(header::TRANSFER_ENCODING);
        // The GET's own conditions are not the form's: a cached copy of
        // the page must not turn the form into a 304 or a part of it.
        for condition in [
            header::IF_MATCH,
            header::IF_NONE_MATCH,
            header::IF_MODIFIED_SINCE,
            header::IF_UNMODIFIED_SINCE,
            header::IF_RANGE,
            header::RANGE,
        ] {
            h.remove(condition);
        }
        h.insert(header::CONTENT_TYPE, kept.content_type);
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(kept.body.len()));
        *req.body_mut() = RequestBody::other(http_body_util::Full::new(kept.body));
    }

    /// The built-in endpoints under `login.prefix`.
    async fn builtin(
        &self,
        ex: &mut Exchange<'_>,
        req: Request<RequestBody>,
    ) -> Result<Response<ResponseBody>, Reject> {
        ex.route = ex.setup.builtin_label.clone();
        ex.meter = ex.setup.meters.builtin();
        // Every state-changing endpoint is shielded, whatever its own
        // token: the login form posts from its own page, on this origin.
        if !csrf::is_safe(req.method()) {
            let host = canonical::request_host(&req)?;
            ex.shield(&req, host.as_ref(), None)?;
        }
        let visit = Visit {
            sessions: &ex.setup.sessions,
            store: &self.store,
            metrics: &self.metrics,
            audit: &self.audit,
            clock: &self.clock,
            client: &ex.client,
            login_page: &ex.setup.login_page,
            groups: ex.setup.groups.as_deref(),
        };
        // Boxed: the login futures are large and rare; the hot path's
        // future stays small and cheap to move.
        let answer = Box::pin(ex.setup.login.serve(&visit, req)).await;
        // The log names who signed in or out.
        ex.user = answer.user;
        ex.session = answer.session;
        Ok(answer.response)
    }

    /// A request to the application's own login page: one that may carry a
    /// sign-in, from an address locked by failed logins, is refused here
    /// with 429 (see [`crate::login::backend_page`]).
    fn login_attempt<B>(&self, ex: &mut Exchange<'_>, req: &Request<B>) -> Result<(), Reject> {
        let Some(page) = &ex.setup.backend_page else {
            return Ok(());
        };
        ex.login_page = page.is(req.uri().path());
        if !ex.login_page {
            return Ok(());
        }
        let throttle = ex.setup.login.throttle();
        let checked = backend_page::check_attempt(throttle, req.method(), ex.client.ip, ex.now);
        let Err(wait) = checked else {
            return Ok(());
        };
        self.metrics.logins.inc_throttled();
        tracing::warn!(client = %ex.client.ip, "sign-in at the login page throttled");
        self.audit
            .refused(Event::LoginThrottled, How::Backend, "", Some(ex.client.ip));
        Err(Reject::Throttled {
            retry_after: wait.seconds(),
        })
    }

    /// The request's session, and whether it must be left alone ([`Hold`]).
    /// Fails closed: a protected route is never served, and no session
    /// handed out, while the store cannot keep it.
    async fn find_session<B>(
        &self,
        ex: &Exchange<'_>,
        route: &Route<'_>,
        req: &Request<B>,
    ) -> Result<(Found, Option<Hold>), Reject> {
        let protected = route.config.access != Access::Public;
        if protected && !self.store.ready().await {
            Metrics::inc(&self.metrics.store_errors);
            return Err(Reject::StoreUnavailable);
        }
        let sessions = &ex.setup.sessions;
        match sessions
            .find(&self.store, req.headers(), ex.client.ip, ex.now)
            .await
        {
            Ok(Found::Rotated) => Ok((Found::Rotated, Some(Hold::Rotated))),
            Ok(found) => Ok((found, None)),
            Err(e) => {
                Metrics::inc(&self.metrics.store_errors);
                tracing::warn!(error = %e, "session store lookup failed");
                if protected {
                    return Err(Reject::StoreUnavailable);
                }
                let nobody = Found::Nothing { expired: false };
                Ok((nobody, Some(Hold::StoreUnreachable)))
            }
        }
    }

    /// The access decision: forward with the session found (or one created
    /// now), or without one for valid HTTP Basic credentials on a
    /// `basic_auth` route; send a browser to the login page, refuse with 401
    /// (with a Basic challenge on a `basic_auth` route), or, for a user the
    /// route's `allow` list leaves out, 403.
    async fn admit<B>(
        &self,
        ex: &mut Exchange<'_>,
        route: &Route<'_>,
        found: Found,
        hold: &mut Option<Hold>,
        req: &Request<B>,
        handshake: Option<Handshake>,
    ) -> Result<Admitted, Reject> {
        let (visitor, current) = match found {
            Found::Nothing { expired } => (Visitor::Nobody { expired }, None),
            // Nobody, but not expired: the user has just signed in.
            Found::Rotated => (Visitor::Nobody { expired: false }, None),
            Found::Session(c) if c.user().is_some() => (Visitor::User, Some(c)),
            Found::Session(c) => (Visitor::Anonymous, Some(c)),
        };
        let accept = || req.headers().get(header::ACCEPT);
        // Whether the client asks for JSON: only a refusal depends on it,
        // so most requests never read `Accept`.
        let json = || access::accepts_json(accept());
        // A signed-in session is served as on any login route; only without
        // one are Basic credentials looked at.
        let basic = route.config.basic_auth;
        if basic && visitor != Visitor::User {
            if let Some(user) = self.basic(ex, req, json()).await? {
                // No session: none is looked up, started or stored for it.
                *hold = Some(Hold::Basic);
                ex.user = Some(user.clone());
                ex.auth = AuthType::Basic;
                return Ok(self.allowed(ex, route, None, json));
            }
        }
        let mut decision = access::decide(route.config.access, visitor, req.method(), json);
        if basic {
            decision = access::with_basic(decision, access::accepts_html(accept()));
        }
        let current = match decision {
            AccessDecision::Forward => current,
            // Forwarded without a session (and without session headers).
            AccessDecision::CreateAndForward if hold.is_some() => None,
            AccessDecision::CreateAndForward => {
                Metrics::inc(&self.metrics.sessions_created);
                Some(Current::fresh(ex.now))
            }
            // A WebSocket cannot follow a redirect to a login page.
            AccessDecision::RedirectToLogin { .. } if handshake.is_some() && basic => {
                return Err(challenge(ex.setup, json()));
            }
            AccessDecision::RedirectToLogin { .. } if handshake.is_some() => {
                return Err(Reject::Unauthorized { json: json() });
            }
            AccessDecision::RedirectToLogin { expired } => {
                let to = respond::login_redirect(&ex.setup.login_page, req, expired);
                return Ok(Admitted::Answer(respond::redirect(StatusCode::FOUND, &to)));
            }
            AccessDecision::Unauthorized => return Err(Reject::Unauthorized { json: json() }),
            AccessDecision::Challenge => return Err(challenge(ex.setup, json())),
        };
        if let Some(c) = &current {
            ex.session = Some(c.id);
            ex.user = c.user().cloned();
        }
        Ok(self.allowed(ex, route, current, json))
    }

    /// Lets the request through (with `current`) if the route's `allow`
    /// list admits its user
    /// (by name, or by the groups [`Setup::groups_of`] gives them, which go
    /// to the backend too); a signed-in user it leaves out gets the 403
    /// page, never the login page they would only come back from.
    fn allowed(
        &self,
        ex: &mut Exchange<'_>,
        route: &Route<'_>,
        current: Option<Current>,
        json: impl FnOnce() -> bool,
    ) -> Admitted {
        let Some(user) = ex.user.clone() else {
            return Admitted::Forward(current);
        };
        let session_groups = current
            .as_ref()
            .and_then(|c| c.record.as_ref()?.groups.as_deref());
        ex.groups = ex.setup.groups_of(&user, session_groups);
        if let Some(allow) = &route.config.allow
            && !access::admits(allow, &user, ex.groups.as_deref())
        {
            tracing::info!(client = %ex.client.ip, user = %user, route = %route.label, "signed-in user not admitted by the route's allow list");
            let logout = format!("{}/logout", ex.setup.config.login.prefix);
            return Admitted::Answer(respond::not_admitted(&user, &logout, json()));
        }
        Admitted::Forward(current)
    }

    /// The user a `basic_auth` route's request proves with HTTP Basic
    /// credentials ([`crate::login::basic`]); `None` when it offers none.
    async fn basic<B>(
        &self,
        ex: &Exchange<'_>,
        req: &Request<B>,
        json: bool,
    ) -> Result<Option<Arc<str>>, Reject> {
        let witness = Witness {
            counters: &self.metrics.logins,
            audit: &self.audit,
            client: ex.client.ip,
            now: ex.now,
        };
        // Boxed: the verification's future is large, and only these routes
        // pay for it.
        let verdict = Box::pin(ex.setup.login.check_basic(req.headers(), &witness)).await;
        match verdict {
            Verdict::NoCredentials => Ok(None),
            Verdict::Admitted(user) => Ok(Some(user)),
            Verdict::Refused => Err(challenge(ex.setup, json)),
            Verdict::Throttled(wait) => Err(Reject::Throttled {
                retry_after: wait.seconds(),
            }),
        }
    }

    /// A tunnel lives as long as the session it was opened with, on every
    /// route where access depends on a session.
    fn watch(
        &self,
        ex: &Exchange<'_>,
        route: &Route<'_>,
        current: Option<&Current>,
    ) -> Option<SessionWatch> {
        let c = current.filter(|_| route.config.access != Access::Public)?;
        let record = c.record.as_ref()?;
        let policy = ex.setup.sessions.policy;
        Some(SessionWatch::new(
            self.store.clone(),
            self.clock.clone(),
            c.id,
            record.user.clone(),
            policy,
        ))
    }

    /// Applies the backend's control headers to the session (see
    /// [`crate::session::commit`]) and says what the cookie becomes.
    async fn commit(
        &self,
        ex: &mut Exchange<'_>,
        current: Option<Current>,
        hold: Option<Hold>,
        change: SessionChange,
    ) -> Result<CookieOut, Reject> {
        if change.is_empty() && change.rejected.is_empty() {
            // Nothing to store: the common case needs no store call.
            return Ok(CookieOut::for_new(current.as_ref()));
        }
        let change = match hold {
            Some(hold) => held_back(hold, change)?,
            None => change,
        };
        let committer = Committer {
            rules: &ex.setup.sessions,
            store: &self.store,
            metrics: &self.metrics,
            audit: &self.audit,
            throttle: ex.setup.login.throttle(),
            client: ex.client.ip,
            user_agent: ex.user_agent.as_ref(),
            now: ex.now,
        };
        let committed = Box::pin(committer.commit(current, change)).await?;
        match committed.identity {
            Identity::Same => {}
            // The request was still the user's own: the log names them.
            Identity::SignedOut => {}
            Identity::Became { id, user } => {
                ex.session = Some(id);
                ex.user = user;
            }
        }
        Ok(committed.cookie)
    }
}

/// The 401 of a `basic_auth` route: the Basic challenge of the setup.
fn challenge(setup: &Setup, json: bool) -> Reject {
    Reject::CredentialsRequired {
        json,
        challenge: setup.login.basic().challenge().clone(),
    }
}

/// The response for a refusal, counting upstream failures on the route.
fn refuse(setup: &Setup, meter: &RouteMeter, reject: Reject) -> Response<ResponseBody> {
    if matches!(reject, Reject::BadGateway | Reject::GatewayTimeout) {
        meter.upstream_error();
    }
    reject.into_response(&setup.login_page)
}

impl<'a> Exchange<'a> {
    /// On the application's login page: whether the visitor is to be told
    /// that their session has ended.
    fn notice_expiry<B>(&mut self, req: &Request<B>, found: &Found) {
        let ended = matches!(found, Found::Nothing { expired: true });
        self.expired_notice =
            self.login_page && backend_page::expired_notice(req.uri().query(), ended);
    }

    /// The cross-site shield ([`crate::csrf`]): on a route with `csrf =
    /// "origin"` (`route`; `None`: the built-in endpoints, always), a
    /// state-changing request from another origin is refused here, before
    /// a session is made for it or the backend sees it.
    fn shield<B>(
        &self,
        req: &Request<B>,
        host: Option<&HeaderValue>,
        route: Option<&Route<'_>>,
    ) -> Result<(), Reject> {
        if route.is_some_and(|r| r.config.csrf == CsrfMode::Off) {
            return Ok(());
        }
        let facts = csrf::Facts {
            method: req.method(),
            headers: req.headers(),
            https: self.client.https,
            host,
            basic_route: route.is_some_and(|r| r.config.basic_auth),
        };
        let Err(refusal) = csrf::check(&facts, &self.setup.config.server.trusted_origins) else {
            return Ok(());
        };
        self.meter.csrf_refusal();
        tracing::info!(
            client = %self.client.ip,
            route = %self.route,
            method = %req.method(),
            origin = %refusal.seen(),
            reason = refusal.reason(),
            "cross-site request refused"
        );
        let json = access::accepts_json(req.headers().get(header::ACCEPT));
        Err(Reject::CrossSite { json })
    }

    /// Whether a request refused for want of a signed-in session is a
    /// form to keep across the sign-in ([`crate::replay`]).
    fn keeps<B>(&self, req: &Request<B>) -> bool {
        self.setup.config.login.replay_max_bytes != 0
            && replay::keepable(req.method(), req.headers())
    }

    /// The one-time cookie of a signed-in `GET` on a login route (forms
    /// are kept there only) for its own address, and whether it is the
    /// Secure one; `None` for every other request.
    fn replay_ticket<B>(
        &self,
        route: &Route<'_>,
        req: &Request<B>,
        handshake: Option<Handshake>,
    ) -> Option<(Ticket, bool)> {
        let signed_in = self.user.is_some() && self.auth == AuthType::Session;
        if route.config.access != Access::Login
            || !signed_in
            || req.method() != Method::GET
            || handshake.is_some()
            || self.setup.config.login.replay_max_bytes == 0
        {
            return None;
        }
        let secure = self.setup.sessions.jar.secure_for(self.client.https);
        let ticket = Ticket::find(req.headers(), secure)?;
        let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
        // Kept for another address: left to be taken there, or to end.
        ticket.is_for(target).then_some((ticket, secure))
    }

    /// Finds the route for the request, and labels the exchange with it.
    fn enter(&mut self, host: Option<&HeaderValue>, path: &str) -> Result<Route<'a>, Reject> {
        let host = host.and_then(|h| h.to_str().ok());
        let route = self.setup.route(host, path).ok_or(Reject::NoRoute)?;
        self.route = route.label.clone();
        self.meter = route.meter;
        Ok(route)
    }

    /// On a route with `inject_expiry_warning`, the page the warning may go
    /// into: only where the request has a session to watch.
    fn page<B>(
        &self,
        route: &Route<'_>,
        current: Option<&Current>,
        req: &Request<B>,
        host: Option<&HeaderValue>,
    ) -> Option<Page> {
        if !route.config.inject_expiry_warning || current.is_none() || self.auth == AuthType::Basic
        {
            return None;
        }
        let origin = expiry_warning::origin(self.client.https, host);
        Some(Page::new(route.id, req.method(), origin))
    }

    /// The request as the backend gets it: headers stripped, then set; the
    /// body's trailers stripped as they pass.
    fn prepare(
        &self,
        req: Request<RequestBody>,
        host: Option<&HeaderValue>,
        route: &Route<'_>,
        current: Option<&Current>,
    ) -> (Request<RequestBody>, ClientBodyFailure) {
        let (mut parts, body) = req.into_parts();
        let (body, failure) = body.watch(&self.setup.header_prefix);
        if route.config.basic_auth {
            // The credentials are the gate's business, whatever came of
            // them: a backend behind a basic_auth route never sees a
            // password.
            parts.headers.remove(header::AUTHORIZATION);
        }
        let subject = match (self.auth, self.user.as_deref(), current) {
            // HTTP Basic: a user, and no session.
            (AuthType::Basic, Some(user), _) => Subject::User {
                user,
                groups: self.groups.as_deref(),
            },
            (_, _, Some(c)) => Subject::Session(self.injection(c)),
            (_, _, None) => Subject::Nobody,
        };
        let rewrite = Rewrite {
            config: &self.setup.config.headers,
            cookie_name: self.setup.sessions.jar.name(),
            client: &self.client,
            conn: self.conn,
            host,
            subject,
            expired: self.expired_notice,
            signing: self.setup.signer.as_ref().map(|signer| Signing {
                signer,
                method: parts.method.as_str(),
                target: parts.uri.path_and_query().map_or("/", |p| p.as_str()),
                now: self.now,
            }),
        };
        let notice = self.replay_notice(&parts);
        request_headers::rewrite(&mut parts.headers, &rewrite);
        if let Some(notice) = notice {
            self.tell_replay(&mut parts.headers, notice);
        }
        (Request::from_parts(parts, body), failure)
    }

    /// On the application's login page: what it is to tell the visitor of
    /// the form they sent ([`crate::replay::Notice`]).
    fn replay_notice(&self, parts: &http::request::Parts) -> Option<Notice> {
        if !self.login_page {
            return None;
        }
        let secure = self.setup.sessions.jar.secure_for(self.client.https);
        Notice::from_query(parts.uri.query(), &parts.headers, secure)
    }

    /// `{prefix}Replay: kept | too-large` to the application's login page.
    fn tell_replay(&self, headers: &mut http::HeaderMap, notice: Notice) {
        let name = format!("{}Replay", self.setup.config.headers.prefix);
        if let Ok(name) = header::HeaderName::from_bytes(name.as_bytes()) {
            headers.insert(name, HeaderValue::from_static(notice.as_str()));
        }
    }

    /// The session facts a request carries to the backend.
    fn injection<'c>(&'c self, c: &'c Current) -> Injection<'c> {
        let policy = &self.setup.sessions.policy;
        let (user, data, expires) = match &c.record {
            Some(r) => (r.user.as_deref(), &*r.data, r.expires_at(policy)),
            None => (
                None,
                &*self.setup.sessions.initial,
                policy.expires_at(c.created, self.now),
            ),
        };
        Injection {
            user,
            groups: self.groups.as_deref(),
            data,
            created: c.created,
            expires,
            new: c.new,
            id: self.setup.config.headers.send_id.then_some(&c.id),
        }
    }

    /// What the forward stage needs besides the request.
    fn hop<'h>(&'h self, route: &'h Route<'_>, body_failure: &'h ClientBodyFailure) -> Hop<'h> {
        Hop {
            client: &self.client,
            conn: self.conn,
            route_path: &route.config.path,
            timeout: self.setup.config.server.upstream_timeout,
            body_failure,
            // The user of the session forwarded: set by the access decision,
            // changed by the commit only after the backend has answered.
            remote_user: self.user.as_deref().map(|u| (u, self.auth)),
            resign: self.setup.signer.as_ref().map(|signer| (signer, self.now)),
        }
    }

    /// Hands the access log line to the response body, which writes it
    /// when it ends (with the real byte count and duration).
    fn log(
        self,
        resp: Response<ResponseBody>,
        started: Instant,
        method: Method,
        path: String,
    ) -> Response<ResponseBody> {
        if !tracing::enabled!(target: "access", tracing::Level::INFO) {
            return resp;
        }
        let status = resp.status().as_u16();
        let (parts, body) = resp.into_parts();
        let body = body.with_log(AccessRecord {
            started,
            client: self.client.ip,
            method,
            path,
            status,
            bytes: 0,
            route: self.route,
            user: self.user,
            session: self.session.map(|id| id.log_tag()),
            aborted: false,
        });
        Response::from_parts(parts, body)
    }
}

/// Opens the client side of a WebSocket handshake, when the route's target
/// can carry one.
fn open_tunnel(
    route: &Route<'_>,
    req: &mut Request<RequestBody>,
    handshake: Option<Handshake>,
) -> Result<Option<PendingTunnel>, Reject> {
    match handshake {
        None => Ok(None),
        Some(_) if !route.target.takes_upgrades() => Err(Reject::UpgradeNotSupported),
        Some(kind) => Ok(Some(upgrade::prepare(req, kind))),
    }
}

/// Refuses a request line and header block larger than `max_header_bytes`.
fn check_head_size<B>(req: &Request<B>, max: usize) -> Result<(), Reject> {
    let uri = req.uri();
    let target = uri.path_and_query().map_or(1, |p| p.as_str().len())
        + uri.scheme_str().map_or(0, |s| s.len() + 3)
        + uri.authority().map_or(0, |a| a.as_str().len());
    let line = req.method().as_str().len() + target + 12;
    let size = req
        .headers()
        .iter()
        .fold(line, |n, (k, v)| n + k.as_str().len() + v.len() + 4);
    if size > max {
        return Err(Reject::HeadersTooLarge);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! The pipeline driven without a socket: requests built in memory, the
    //! gate's answer inspected as it leaves `handle`.

    use std::sync::Arc;

    use http_body_util::{BodyExt as _, Full};

    use super::*;
    use crate::session::MemoryStore;

    const CONFIG: &str = r#"
[session]
secret_keys = ["pipeline-key-0123456789-abcdefghijklmnop"]

[login]
source = "backend"
page = "/login.cgi"

[[route]]
path = "/"
upstream = "http://127.0.0.1:9"
access = "public"

[[route]]
path = "/members/"
upstream = "http://127.0.0.1:9"
access = "login"
"#;

    fn gate() -> Gate {
        let config: crate::config::Config = CONFIG.parse().expect("config");
        let setup = Setup::build(config).expect("setup");
        let store = AnyStore::Memory(MemoryStore::new());
        Gate::new(setup, store, Clock::Manual(Arc::default()))
    }

    fn conn() -> ConnInfo {
        ConnInfo::new(
            "192.0.2.1:5000".parse().expect("peer"),
            "127.0.0.1:8080".parse().expect("local"),
            false,
        )
    }

    async fn get(gate: &Gate, target: &str, accept: &str) -> Response<ResponseBody> {
        let req = Request::get(target)
            .header(header::HOST, "site.example")
            .header(header::ACCEPT, accept)
            .body(RequestBody::other(Full::new(bytes::Bytes::new())))
            .expect("request");
        gate.handle(req, &conn()).await
    }

    #[tokio::test]
    async fn protected_paths_meet_the_gate_in_every_spelling() {
        let gate = gate();
        for target in [
            "/members/x",
            "/%6dembers/x",
            "//members/x",
            "/a/../members/x",
        ] {
            let resp = get(&gate, target, "text/html").await;
            assert_eq!(resp.status(), StatusCode::FOUND, "{target}");
            assert_eq!(
                resp.headers()[header::LOCATION],
                "/login.cgi?next=%2Fmembers%2Fx",
                "{target}"
            );
        }
        let resp = get(&gate, "/members/x", "application/json").await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        assert!(
            body.starts_with(b"{\"error\":\"login required\""),
            "{body:?}"
        );
    }

    #[tokio::test]
    async fn a_bad_target_is_refused_before_any_stage() {
        let gate = gate();
        assert_eq!(get(&gate, "/../etc/passwd", "*/*").await.status(), 400);
        assert_eq!(get(&gate, "/a%zz", "*/*").await.status(), 400);
        assert_eq!(
            get(&gate, "/.sessiongate/nothing", "*/*").await.status(),
            404
        );
    }

    #[tokio::test]
    async fn an_unreachable_upstream_is_a_502_counted_as_such() {
        let gate = gate();
        let resp = get(&gate, "/public", "*/*").await;
        assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(gate.metrics.upstream_errors(), 1);
        assert_eq!(gate.metrics.requests(), 1);
        let setup = gate.setup();
        let public = setup.route(None, "/public").expect("route").meter;
        assert_eq!(public.upstream_errors(), 1);
        assert_eq!(
            public.statuses().collect::<Vec<_>>(),
            [(StatusCode::BAD_GATEWAY, 1)]
        );
    }
}
