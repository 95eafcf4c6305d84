//! The request path, top to bottom:
//!
//! ```text
//! resolve client -> check header size -> built-in endpoints? -> find route
//!   -> find our cookie, verify it, load the session (one store lookup)
//!   -> access decision (maybe: login redirect / 401)
//!   -> strip client session headers, inject ours
//!   -> forward (HTTP upstream or CGI gateway)
//!   -> take the backend's control headers -> (WebSocket: open the tunnel)
//!   -> commit the session -> set / clear the cookie
//!   -> access log (when the body ends)
//! ```

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use http::header::{self, HeaderValue};
use http::{Request, Response};
use hyper::body::Incoming;

use crate::access::{self, AccessDecision, RouteTable, Visitor};
use crate::access_log::AccessRecord;
use crate::body::ResponseBody;
use crate::canonical;
use crate::clock::Clock;
use crate::config::{Access, Config, LoginSource, Upstream};
use crate::forwarded::{self, ClientInfo, ConnInfo};
use crate::login::{LoginPage, Throttle, UsersSource};
use crate::metrics::Metrics;
use crate::respond::Reject;
use crate::session::cookie::{CookieError, cookie_values};
use crate::session::{
    AnyStore, CookieClaims, CookieJar, DataChange, Lookup, NewSession, Policy, SessionId,
    SessionRecord, SessionStore, Signer, StoreError,
};
use crate::upgrade::{self, SessionWatch};
use crate::upstream::cgi::{CgiContext, CgiGateway, CgiOptions};
use crate::upstream::control::{self, ControlHeaders};
use crate::upstream::hop_by_hop;
use crate::upstream::http::HttpUpstream;
use crate::upstream::request_body::{ClientBodyFailure, RequestBody};
use crate::upstream::request_headers::{self as hdr, Injection};

/// Everything derived from one config file; swapped whole on reload.
pub struct Runtime {
    /// The validated config.
    pub config: Config,
    routes: Arc<RouteTable>,
    targets: Vec<Target>,
    route_labels: Vec<Arc<str>>,
    /// The session header prefix, normalised, for stripping request trailers.
    header_prefix: Arc<str>,
    /// Log labels for requests that match no route, and for built-in endpoints.
    no_route_label: Arc<str>,
    builtin_label: Arc<str>,
    /// Cookie signer (first key signs, all verify).
    pub signer: Signer,
    /// Set-Cookie builder.
    pub jar: CookieJar,
    /// Lifetime and size rules.
    pub policy: Policy,
    /// Initial data of new sessions, urlencoded.
    pub initial: Arc<str>,
    /// Where visitors are sent to sign in.
    pub login_page: String,
    /// Users of the built-in login (`None` when no users file is in use).
    pub users: Option<Arc<UsersSource>>,
    /// The login page.
    pub(crate) page: LoginPage,
    /// Failed-login throttle.
    pub(crate) throttle: Throttle,
}

/// Most (user, IP) keys the login throttle tracks.
const THROTTLE_CAPACITY: usize = 100_000;

/// Where a route sends its requests, prepared once per config.
enum Target {
    Http(HttpUpstream),
    Cgi(CgiGateway),
}

/// How many requests may wait for a CGI slot, per slot.
const CGI_QUEUE_PER_SLOT: usize = 4;

/// Why a runtime could not be built from a valid config.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The users file cannot be used.
    #[error(transparent)]
    Users(#[from] crate::login::UsersError),
    /// The login page template cannot be used.
    #[error(transparent)]
    Page(#[from] crate::login::PageError),
    /// The upstream CA file cannot be used.
    #[error(transparent)]
    UpstreamTls(#[from] crate::tls::TlsError),
    /// A CGI directory is missing or unusable.
    #[error("route {route}: {message}")]
    Route {
        /// The route's path.
        route: String,
        /// What is wrong.
        message: String,
    },
}

impl Runtime {
    /// Prepares routes, keys and cookie attributes from a config.
    pub fn build(config: Config) -> Result<Runtime, RuntimeError> {
        let routes = Arc::new(RouteTable::new(&config.routes));
        let https_upstreams = config.routes.iter().any(|r| {
            matches!(&r.upstream, Upstream::Http { scheme, .. } if *scheme == http::uri::Scheme::HTTPS)
        });
        let mut upstream_tls = if https_upstreams || config.server.upstream_ca.is_some() {
            crate::tls::upstream_client_config(config.server.upstream_ca.as_deref())?
        } else {
            crate::tls::no_upstream_tls()?
        };
        upstream_tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let upstream_tls = Arc::new(upstream_tls);
        // Routes to the same origin share its connections.
        let mut origins: HashMap<(&http::uri::Scheme, &http::uri::Authority), HttpUpstream> =
            HashMap::new();
        let mut targets = Vec::with_capacity(config.routes.len());
        for route in &config.routes {
            targets.push(match &route.upstream {
                Upstream::Http { scheme, authority } => {
                    let upstream = match origins.get(&(scheme, authority)) {
                        Some(shared) => shared.clone(),
                        None => {
                            let new = HttpUpstream::new(
                                scheme,
                                authority,
                                &upstream_tls,
                                config.server.upstream_max_connections,
                            )
                            .map_err(|e| RuntimeError::Route {
                                route: route.path.clone(),
                                message: e.to_string(),
                            })?;
                            origins.insert((scheme, authority), new.clone());
                            new
                        }
                    };
                    Target::Http(upstream)
                }
                Upstream::Cgi(dir) => {
                    let options = CgiOptions {
                        timeout: config.server.upstream_timeout,
                        max_concurrent: config.server.cgi_max_concurrent,
                        max_queue: config.server.cgi_max_concurrent * CGI_QUEUE_PER_SLOT,
                    };
                    let gateway =
                        CgiGateway::new(dir, options).map_err(|e| RuntimeError::Route {
                            route: route.path.clone(),
                            message: format!("CGI directory {}: {e}", dir.display()),
                        })?;
                    // A script's local redirect is followed inside the gateway
                    // only when the new path stays on this same route; any
                    // other path goes back to the browser, so that it passes
                    // through routing and the access check again.
                    let table = routes.clone();
                    let id = targets.len();
                    // The path must already be normal: the route table
                    // only ever sees normalised paths, and the gateway must
                    // not run a script on a path it did not see.
                    Target::Cgi(gateway.with_local_redirect_check(move |path, _| {
                        !table.has_host_routes()
                            && canonical::normalize_path(path).is_ok_and(|p| p == path)
                            && table.find(None, path) == Some(id)
                    }))
                }
            });
        }
        let initial = crate::session::data::encode(
            config
                .session
                .initial
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        );
        let login = &config.login;
        let needs_users = login.source == LoginSource::UsersFile
            && config.routes.iter().any(|r| r.access == Access::Login);
        let users = if login.source == LoginSource::UsersFile
            && (needs_users || login.users_file.exists())
        {
            Some(Arc::new(UsersSource::load(&login.users_file)?))
        } else {
            None
        };
        let page = match &login.template {
            Some(path) => LoginPage::from_template_file(path)?,
            None => LoginPage::builtin(),
        };
        let throttle = Throttle::new(login.max_attempts, login.attempt_window, THROTTLE_CAPACITY);
        Ok(Runtime {
            users,
            page,
            throttle,
            routes,
            route_labels: config
                .routes
                .iter()
                .map(|r| Arc::from(r.path.as_str()))
                .collect(),
            header_prefix: Arc::from(config.headers.match_prefix.as_str()),
            no_route_label: Arc::from("-"),
            builtin_label: Arc::from(config.login.prefix.as_str()),
            targets,
            signer: Signer::new(&config.session.secret_keys),
            jar: CookieJar::new(&config.session),
            policy: Policy::from_config(&config.session, config.store.max_sessions),
            initial: Arc::from(initial),
            login_page: config.login.login_page(),
            config,
        })
    }
}

/// The proxy: the current runtime, the store, the upstream client, counters.
pub struct Gate {
    runtime: ArcSwap<Runtime>,
    /// The session store (kept across reloads).
    pub store: AnyStore,
    /// Counters.
    pub metrics: Metrics,
    /// Time source for session lifetimes.
    pub clock: Clock,
}

/// The session a request carries, once its cookie verified.
#[derive(Debug, Clone)]
pub(crate) struct Current {
    pub(crate) id: SessionId,
    pub(crate) created: u64,
    /// The cookie says the session was stored.
    pub(crate) stored_cookie: bool,
    /// The stored record; `None` for a session that never held anything.
    pub(crate) record: Option<SessionRecord>,
    /// Created by this request: its cookie must be set.
    pub(crate) new: bool,
}

impl Current {
    pub(crate) fn fresh(now: u64) -> Self {
        Current {
            id: SessionId::generate(),
            created: now,
            stored_cookie: false,
            record: None,
            new: true,
        }
    }
}

/// What the cookie of a request amounts to.
pub(crate) enum Found {
    /// No session: no cookie, a cookie that fails, or one of a session that
    /// ended (`expired`: by time, logout or eviction).
    Nothing { expired: bool },
    /// The cookie names an id a login moved to a new one moments ago: a
    /// request the browser sent before the login's answer reached it. It is
    /// nobody (never the logged-in session: that would undo the fixation
    /// defence), but it gets no session of its own either, since its answer
    /// could then replace the new cookie and sign the user out.
    Rotated,
    /// A live session, or an anonymous one that never held anything.
    Session(Current),
}

/// Why a request goes on without a session and must leave the browser's
/// cookie as it is: no new session, no `Set-Cookie` of any kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hold {
    /// The cookie names an id a login just moved ([`Found::Rotated`]).
    Rotated,
    /// The store could not say what the cookie names (a `public` route goes
    /// on without it): the session may be alive and well.
    StoreUnreachable,
}

/// What goes into `Set-Cookie` after the backend answered.
pub(crate) enum CookieOut {
    Keep,
    Set(CookieClaims),
    Clear,
}

/// Facts gathered along the way for the access log.
struct Trail {
    route: Arc<str>,
    user: Option<Arc<str>>,
    session: Option<SessionId>,
}

impl Gate {
    /// A gate over `runtime` and `store`.
    pub fn new(runtime: Runtime, store: AnyStore, clock: Clock) -> Self {
        Gate {
            runtime: ArcSwap::from_pointee(runtime),
            store,
            metrics: Metrics::default(),
            clock,
        }
    }

    /// The runtime in force.
    pub fn runtime(&self) -> Arc<Runtime> {
        self.runtime.load_full()
    }

    /// Replaces the runtime (SIGHUP); requests in flight finish on the old one.
    pub fn swap_runtime(&self, runtime: Runtime) {
        self.runtime.store(Arc::new(runtime));
    }

    /// Handles one request. Never fails: every problem becomes a response.
    pub async fn handle(
        &self,
        mut req: Request<Incoming>,
        conn: &ConnInfo,
    ) -> Response<ResponseBody> {
        let started = Instant::now();
        let rt = self.runtime.load_full();
        let client = forwarded::resolve(conn, req.headers(), &rt.config.server.trusted_proxies);
        let method = req.method().clone();
        // From here on the path is the normalised one: it is routed, checked,
        // logged and forwarded as one.
        let canonical = canonical::normalize_uri(req.uri_mut());
        let path = req.uri().path().to_string();
        let mut trail = Trail {
            route: rt.no_route_label.clone(),
            user: None,
            session: None,
        };
        let result = match canonical {
            Ok(()) => self.process(&rt, req, conn, &client, &mut trail).await,
            Err(e) => {
                tracing::debug!(client = %client.ip, path = %path, error = %e, "bad request target");
                Err(Reject::from(e))
            }
        };
        let resp = match result {
            Ok(resp) => resp,
            Err(reject) => {
                if matches!(reject, Reject::BadGateway | Reject::GatewayTimeout) {
                    Metrics::inc(&self.metrics.upstream_errors);
                }
                reject.into_response(&rt.login_page)
            }
        };
        Metrics::inc(&self.metrics.requests);
        if !tracing::enabled!(target: "access", tracing::Level::INFO) {
            return resp;
        }
        let status = resp.status().as_u16();
        let (parts, body) = resp.into_parts();
        let body = body.with_log(AccessRecord {
            started,
            client: client.ip,
            method,
            path,
            status,
            bytes: 0,
            route: trail.route,
            user: trail.user,
            session: trail.session.map(|id| id.log_hash()),
            aborted: false,
        });
        Response::from_parts(parts, body)
    }

    async fn process(
        &self,
        rt: &Runtime,
        req: Request<Incoming>,
        conn: &ConnInfo,
        client: &ClientInfo,
        trail: &mut Trail,
    ) -> Result<Response<ResponseBody>, Reject> {
        if header_bytes(&req) > rt.config.server.max_header_bytes {
            return Err(Reject::HeadersTooLarge);
        }
        let handshake = upgrade::classify(&req)?;
        if under_prefix(req.uri().path(), &rt.config.login.prefix) {
            trail.route = rt.builtin_label.clone();
            // Boxed: the login futures are large and rare; the hot path
            // future stays small and cheap to move.
            return Box::pin(self.builtin(rt, req, client)).await;
        }
        let host = canonical::request_host(&req)?;
        let route_id = rt
            .routes
            .find(
                host.as_ref().and_then(|h| h.to_str().ok()),
                req.uri().path(),
            )
            .ok_or(Reject::NoRoute)?;
        let route = &rt.config.routes[route_id];
        trail.route = rt.route_labels[route_id].clone();
        // Fail closed: a protected route is never served, and no session
        // handed out, while the store cannot keep it.
        if route.access != Access::Public && !self.store.ready().await {
            Metrics::inc(&self.metrics.store_errors);
            return Err(Reject::StoreUnavailable);
        }
        let now = self.clock.now();

        let mut hold = None;
        let found = match self.find_session(rt, req.headers(), client, now).await {
            Ok(found) => found,
            Err(e) => {
                Metrics::inc(&self.metrics.store_errors);
                tracing::warn!(error = %e, "session store lookup failed");
                if route.access != Access::Public {
                    return Err(Reject::StoreUnavailable);
                }
                hold = Some(Hold::StoreUnreachable);
                Found::Nothing { expired: false }
            }
        };
        let visitor = match &found {
            Found::Nothing { expired } => Visitor::Nobody { expired: *expired },
            // Nobody, but not expired: the user has just signed in.
            Found::Rotated => Visitor::Nobody { expired: false },
            Found::Session(c) if c.record.as_ref().is_some_and(|r| r.user.is_some()) => {
                Visitor::User
            }
            Found::Session(_) => Visitor::Anonymous,
        };
        let wants_json = access::accepts_json(req.headers().get(header::ACCEPT));
        let mut current = match found {
            Found::Session(c) => Some(c),
            Found::Rotated => {
                hold = Some(Hold::Rotated);
                None
            }
            Found::Nothing { .. } => None,
        };
        match access::decide(route.access, visitor, req.method(), wants_json) {
            AccessDecision::Forward => {}
            // Forwarded without a session (and without session headers).
            AccessDecision::CreateAndForward if hold.is_some() => {}
            AccessDecision::CreateAndForward => {
                current = Some(Current::fresh(now));
                Metrics::inc(&self.metrics.sessions_created);
            }
            // A WebSocket cannot follow a redirect to a login page.
            AccessDecision::RedirectToLogin { .. } if handshake.is_some() => {
                return Err(Reject::Unauthorized { json: wants_json });
            }
            AccessDecision::RedirectToLogin { expired } => {
                return Ok(crate::respond::redirect(
                    http::StatusCode::FOUND,
                    &login_redirect(&rt.login_page, &req, expired),
                ));
            }
            AccessDecision::Unauthorized => return Err(Reject::Unauthorized { json: wants_json }),
        }
        if let Some(c) = &current {
            trail.session = Some(c.id);
            trail.user = c.record.as_ref().and_then(|r| r.user.clone());
        }

        let (mut req, body_failure) =
            prepare_request(rt, req, conn, client, host, current.as_ref(), now);
        let tunnel = match (&rt.targets[route_id], handshake) {
            (Target::Cgi(_), Some(_)) => return Err(Reject::UpgradeNotSupported),
            (_, Some(kind)) => Some(upgrade::prepare(&mut req, kind)),
            (_, None) => None,
        };
        let mut resp = match &rt.targets[route_id] {
            Target::Http(upstream) => upstream
                .forward(req, rt.config.server.upstream_timeout)
                .await
                .map(|r| r.map(ResponseBody::upstream))?,
            Target::Cgi(gateway) => {
                let ctx = CgiContext {
                    remote_addr: SocketAddr::new(client.ip, conn.peer.port()),
                    local_addr: conn.local,
                    https: client.https,
                    route_prefix: route.path.clone(),
                };
                match Box::pin(gateway.serve(req, &ctx)).await {
                    Ok(resp) => resp.map(ResponseBody::stream),
                    // The script failed because the client's body broke.
                    Err(_) if body_failure.happened() => {
                        return Err(Reject::BadRequest(crate::upstream::http::BAD_BODY));
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        };

        let control = control::take_control(resp.headers_mut(), &rt.config.headers, rt.jar.name());
        if let Some(tunnel) = tunnel {
            // The tunnel lives as long as the session it was opened with,
            // on every route where access depends on a session.
            let watch = current
                .as_ref()
                .filter(|_| route.access != Access::Public)
                .and_then(|c| c.record.as_ref().map(|r| (c.id, r.user.clone())))
                .map(|(id, user)| {
                    SessionWatch::new(self.store.clone(), self.clock.clone(), id, user, rt.policy)
                });
            tunnel.complete(&mut resp, watch)?;
        }
        let out = if control.is_empty() && control.rejected.is_empty() {
            // Nothing to store: the common case needs no store call.
            new_cookie(current.as_ref())
        } else {
            let control = match hold {
                Some(hold) => held_back(hold, control)?,
                None => control,
            };
            Box::pin(self.commit(rt, current, control, client, now, trail)).await?
        };
        rt.apply_cookie(resp.headers_mut(), out, client.https, now);
        Ok(resp)
    }

    /// Verifies the cookie and loads its session: at most one store lookup,
    /// which also tells an id a login just moved from one that ended.
    pub(crate) async fn find_session(
        &self,
        rt: &Runtime,
        headers: &http::HeaderMap,
        client: &ClientInfo,
        now: u64,
    ) -> Result<Found, StoreError> {
        let mut expired = false;
        let mut claims = None;
        for value in cookie_values(headers, rt.jar.name()) {
            match rt.signer.decode(value, now, rt.policy.max_lifetime) {
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
        let lookup = self.store.lookup(&claims.id, now, &rt.policy).await?;
        Ok(match lookup {
            Lookup::Live(record) => {
                if rt.config.session.bind_ip && record.ip.is_some_and(|ip| ip != client.ip) {
                    tracing::warn!(session = %claims.id.log_hash(), client = %client.ip, "session cookie presented from another IP");
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

    /// Applies the backend's control headers to the session, atomically in
    /// the store, and says what the cookie must become. A login or logout
    /// the store could not keep is an error: the backend's answer says it
    /// happened, so that answer must not reach the user, and the cookie
    /// stays as it was so that the user can try again.
    async fn commit(
        &self,
        rt: &Runtime,
        mut current: Option<Current>,
        control: ControlHeaders,
        client: &ClientInfo,
        now: u64,
        trail: &mut Trail,
    ) -> Result<CookieOut, Reject> {
        for problem in &control.rejected {
            tracing::warn!(problem = %problem, "ignoring a control header from the backend");
        }
        let change = DataChange {
            delete: control.delete,
            set: control.set,
        };
        let seed = NewSession {
            created: now,
            initial: &rt.initial,
            ip: Some(client.ip),
        };
        if control.logout {
            if let Some(c) = current.take() {
                if let Err(e) = self.store.remove(&c.id).await {
                    self.store_failed("logout", &e);
                    return Err(Reject::StoreUnavailable);
                }
            }
            trail.user = None;
            if control.login.is_none() {
                return Ok(CookieOut::Clear);
            }
        }
        if let Some(user) = control.login {
            let new_id = SessionId::generate();
            let old = current.as_ref().map(|c| c.id);
            let mut result = self
                .store
                .login(old.as_ref(), &new_id, &user, &change, seed, now, &rt.policy)
                .await;
            if let Err(StoreError::TooLarge { .. }) = &result {
                self.too_large(&result);
                // The login itself still happens; only the data change is refused.
                result = self
                    .store
                    .login(
                        old.as_ref(),
                        &new_id,
                        &user,
                        &DataChange::default(),
                        seed,
                        now,
                        &rt.policy,
                    )
                    .await;
            }
            return match result {
                Ok(record) => {
                    Metrics::inc(&self.metrics.sessions_created);
                    trail.user = record.user.clone();
                    trail.session = Some(new_id);
                    Ok(CookieOut::Set(CookieClaims {
                        id: new_id,
                        created: record.created,
                        stored: true,
                    }))
                }
                Err(e) => {
                    self.store_failed("login", &e);
                    Err(Reject::StoreUnavailable)
                }
            };
        }
        if change.is_empty() {
            return Ok(new_cookie(current.as_ref()));
        }
        let cur = match current {
            Some(c) => c,
            None => {
                // A public route without a session, and the backend wants to
                // remember something: the session starts now.
                Metrics::inc(&self.metrics.sessions_created);
                let c = Current::fresh(now);
                trail.session = Some(c.id);
                c
            }
        };
        let create = (!cur.stored_cookie).then_some(NewSession {
            created: cur.created,
            ..seed
        });
        Ok(
            match self
                .store
                .update(&cur.id, &change, create, now, &rt.policy)
                .await
            {
                Ok(_) if !cur.stored_cookie => CookieOut::Set(CookieClaims {
                    id: cur.id,
                    created: cur.created,
                    stored: true,
                }),
                Ok(_) => CookieOut::Keep,
                Err(e) => {
                    match e {
                        StoreError::TooLarge { .. } => self.too_large::<()>(&Err(e)),
                        StoreError::Gone => {
                            tracing::info!(session = %cur.id.log_hash(), "session ended before the backend's update");
                        }
                        e => self.store_failed("update", &e),
                    }
                    new_cookie(Some(&cur))
                }
            },
        )
    }

    fn too_large<T>(&self, result: &Result<T, StoreError>) {
        if let Err(e) = result {
            Metrics::inc(&self.metrics.updates_too_large);
            tracing::warn!(error = %e, "refused a session update from the backend");
        }
    }

    /// Counts and logs a store operation that failed.
    pub(crate) fn store_failed(&self, what: &str, e: &StoreError) {
        Metrics::inc(&self.metrics.store_errors);
        tracing::error!(operation = what, error = %e, "session store failed");
    }
}

impl Runtime {
    /// Adds the one `Set-Cookie` of the session cookie, if any is due.
    pub(crate) fn apply_cookie(
        &self,
        headers: &mut http::HeaderMap,
        out: CookieOut,
        https: bool,
        now: u64,
    ) {
        let secure = self.jar.secure_for(https);
        let value = match out {
            CookieOut::Keep => return,
            CookieOut::Set(claims) => {
                let remaining = claims
                    .created
                    .saturating_add(self.policy.max_lifetime)
                    .saturating_sub(now);
                self.jar
                    .set(&self.signer.encode(&claims), secure, remaining)
            }
            CookieOut::Clear => self.jar.clear(secure),
        };
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.append(header::SET_COOKIE, v);
            no_store_on_cookie(headers);
        }
    }
}

/// Whether `path` is one of the built-in endpoints' paths.
fn under_prefix(path: &str, prefix: &str) -> bool {
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// The cookie of a session created by this request (not yet stored).
fn new_cookie(current: Option<&Current>) -> CookieOut {
    match current {
        Some(c) if c.new => CookieOut::Set(CookieClaims {
            id: c.id,
            created: c.created,
            stored: false,
        }),
        _ => CookieOut::Keep,
    }
}

/// What is left of the backend's control headers for a request on
/// [`Hold`]: no session was found for it, and none may be started for it.
/// A login still happens, with its data changes (it makes a new id of its
/// own, so it replaces nothing the user holds: a login form sent twice
/// logs in twice). Without a login, data changes go nowhere (logged). A
/// logout has nothing to end when a login moved the id; when the store
/// could not be asked, the session may be alive, and clearing the cookie
/// would leave it so: that is refused.
fn held_back(hold: Hold, mut control: ControlHeaders) -> Result<ControlHeaders, Reject> {
    if control.logout {
        match hold {
            Hold::Rotated => {
                tracing::info!("a logout with a cookie a login has just replaced: nothing to end")
            }
            Hold::StoreUnreachable => {
                tracing::error!(
                    operation = "logout",
                    "session store unreachable: the session cannot be ended"
                );
                return Err(Reject::StoreUnavailable);
            }
        }
        control.logout = false;
    }
    if control.login.is_none() && !(control.set.is_empty() && control.delete.is_empty()) {
        match hold {
            Hold::Rotated => tracing::info!(
                "the backend changed a session whose id a login has just replaced: not applied"
            ),
            Hold::StoreUnreachable => tracing::warn!(
                "session store unreachable: the backend's session changes are not applied"
            ),
        }
        control.set.clear();
        control.delete.clear();
    }
    Ok(control)
}

/// Rewrites the request for the backend: strip, then set. The body's
/// trailers are stripped as they pass (see [`RequestBody`]).
fn prepare_request(
    rt: &Runtime,
    req: Request<Incoming>,
    conn: &ConnInfo,
    client: &ClientInfo,
    host: Option<HeaderValue>,
    current: Option<&Current>,
    now: u64,
) -> (Request<RequestBody>, ClientBodyFailure) {
    let (mut parts, body) = req.into_parts();
    let (body, failure) = RequestBody::new(body, &rt.header_prefix);
    let headers = &mut parts.headers;
    hop_by_hop::remove_hop_by_hop(headers);
    hdr::strip_prefixed(headers, &rt.config.headers.match_prefix);
    hdr::strip_cookie(headers, rt.jar.name());
    hdr::set_forwarded(headers, client, conn, host.as_ref());
    if !headers.contains_key(header::HOST) {
        if let Some(h) = host {
            headers.insert(header::HOST, h);
        }
    }
    if let Some(c) = current {
        let (user, data, expires) = match &c.record {
            Some(r) => (r.user.as_deref(), &*r.data, r.expires_at(&rt.policy)),
            None => (None, &*rt.initial, rt.policy.expires_at(c.created, now)),
        };
        hdr::inject(
            headers,
            &rt.config.headers,
            &Injection {
                user,
                data,
                created: c.created,
                expires,
                new: c.new,
                id: rt.config.headers.send_id.then_some(&c.id),
            },
        );
    }
    (Request::from_parts(parts, body), failure)
}

/// Size of the request line and header block, as sent on the wire.
fn header_bytes<B>(req: &Request<B>) -> usize {
    let uri = req.uri();
    let target = uri.path_and_query().map_or(1, |p| p.as_str().len())
        + uri.scheme_str().map_or(0, |s| s.len() + 3)
        + uri.authority().map_or(0, |a| a.as_str().len());
    let line = req.method().as_str().len() + target + 12;
    req.headers()
        .iter()
        .fold(line, |n, (k, v)| n + k.as_str().len() + v.len() + 4)
}

/// `{login_page}?next=<path and query>[&expired=1]`.
fn login_redirect<B>(login_page: &str, req: &Request<B>, expired: bool) -> String {
    let next = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair("next", next);
    if expired {
        q.append_pair("expired", "1");
    }
    let sep = if login_page.contains('?') { '&' } else { '?' };
    format!("{login_page}{sep}{}", q.finish())
}

/// A response that sets a session cookie must never be cached by a shared cache.
fn no_store_on_cookie(headers: &mut http::HeaderMap) {
    let cacheable = headers
        .get(header::CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| {
            let v = v.to_ascii_lowercase();
            !(v.contains("no-store") || v.contains("private") || v.contains("no-cache"))
        });
    if cacheable {
        headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("private, no-store"),
        );
    }
}
