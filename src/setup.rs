//! Everything derived from one config file before a request can be served:
//! the route table and each route's target, the session rules, the built-in
//! login. Built at start and again at every reload (SIGHUP), then swapped
//! in whole; requests in flight finish on the setup they started with.

use std::collections::HashMap;
use std::sync::Arc;

use crate::access::{RouteId, RouteTable};
use crate::canonical;
use crate::config::{Access, Allowed, Config, FastCgiServer, RouteConfig, Upstream};
use crate::forward::Target;
use crate::login::backend_page::BackendPage;
use crate::login::endpoints::LoginDesk;
use crate::login::groups::GroupsSource;
use crate::metrics::{RouteMeter, RouteMeters, RouteRegistry};
use crate::session::SessionRules;
use crate::upstream::cgi::{CgiGateway, CgiOptions};
use crate::upstream::expiry_warning::ExpiryWarning;
use crate::upstream::fastcgi::{FastCgiServerPool, FastCgiUpstream};
use crate::upstream::files::StaticFiles;
use crate::upstream::http::HttpUpstream;
use crate::upstream::signed_assertion::AssertionSigner;

/// How many requests may wait for a CGI slot, per slot.
const CGI_QUEUE_PER_SLOT: usize = 4;

/// Everything derived from one config file; swapped whole on reload.
pub struct Setup {
    /// The validated config.
    pub config: Config,
    /// Longest-prefix route lookup.
    pub routes: Arc<RouteTable>,
    /// Each route's target, by route id.
    targets: Vec<Target>,
    /// Each route's label in the access log (its path), by route id.
    route_labels: Vec<Arc<str>>,
    /// The label of requests that match no route.
    pub no_route_label: Arc<str>,
    /// The label of the built-in endpoints.
    pub builtin_label: Arc<str>,
    /// Request counters by route label (see [`Setup::bind_meters`]).
    pub meters: RouteMeters,
    /// The session header prefix, normalised, for stripping request trailers.
    pub header_prefix: Arc<str>,
    /// Cookies, lifetimes, initial data.
    pub sessions: SessionRules,
    /// The built-in login endpoints.
    pub login: LoginDesk,
    /// The groups file, when `login.groups_file` names one.
    pub groups: Option<Arc<GroupsSource>>,
    /// Where visitors are sent to sign in.
    pub login_page: String,
    /// The application's own login page (`login.source = "backend"`).
    pub backend_page: Option<BackendPage>,
    /// The expiry warning's tag, for routes that add it to their pages.
    pub expiry_warning: ExpiryWarning,
    /// Signs forwarded requests, when `headers.sign_key` is set.
    pub signer: Option<Arc<AssertionSigner>>,
}

/// Why a setup could not be built from a valid config.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The users file or the login page template cannot be used.
    #[error(transparent)]
    Login(#[from] crate::login::endpoints::DeskError),
    /// The groups file cannot be used.
    #[error(transparent)]
    Groups(#[from] crate::login::groups::GroupsError),
    /// The upstream CA file cannot be used.
    #[error(transparent)]
    UpstreamTls(#[from] crate::tls::TlsError),
    /// A route's target cannot be used (a missing CGI directory, say).
    #[error("route {route}: {message}")]
    Route {
        /// The route's path.
        route: String,
        /// What is wrong.
        message: String,
    },
}

/// A warning about one route (see [`Setup::warnings`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteWarning {
    /// The route's index in the config's list.
    pub route: usize,
    /// What is wrong, naming the route.
    pub message: String,
}

impl std::fmt::Display for RouteWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// One matched route: its config, target and log label.
pub struct Route<'a> {
    /// The route's id in the config's list.
    pub id: RouteId,
    /// Its config.
    pub config: &'a RouteConfig,
    /// Where its requests go.
    pub target: &'a Target,
    /// Its access-log label.
    pub label: &'a Arc<str>,
    /// Its request counters.
    pub meter: &'a RouteMeter,
}

impl Setup {
    /// Prepares routes, targets, keys and cookie attributes from a config.
    pub fn build(config: Config) -> Result<Setup, SetupError> {
        let routes = Arc::new(RouteTable::new(&config.routes));
        let targets = build_targets(&config, &routes)?;
        let login_page = config.login.login_page();
        let route_labels: Vec<Arc<str>> = config
            .routes
            .iter()
            .map(|r| Arc::from(r.path.as_str()))
            .collect();
        let no_route_label = Arc::from("-");
        let builtin_label = Arc::from(config.login.prefix.as_str());
        Ok(Setup {
            sessions: SessionRules::new(&config.session, &config.store, &config.login),
            login: LoginDesk::new(&config)?,
            groups: match &config.login.groups_file {
                Some(path) => Some(Arc::new(GroupsSource::load(path)?)),
                None => None,
            },
            routes,
            targets,
            meters: RouteMeters::new(&route_labels, &no_route_label, &builtin_label),
            route_labels,
            no_route_label,
            builtin_label,
            header_prefix: Arc::from(config.headers.match_prefix.as_str()),
            login_page,
            backend_page: BackendPage::new(&config.login),
            expiry_warning: ExpiryWarning::new(&config),
            signer: AssertionSigner::new(&config.headers).map(Arc::new),
            config,
        })
    }

    /// The route for a request to `host` and (normalised) `path`.
    pub fn route(&self, host: Option<&str>, path: &str) -> Option<Route<'_>> {
        let id = self.routes.find(host, path)?;
        Some(Route {
            id,
            config: &self.config.routes[id],
            target: &self.targets[id],
            label: &self.route_labels[id],
            meter: self.meters.route(id).unwrap_or(self.meters.no_route()),
        })
    }

    /// Counts into the meters `registry` keeps under each route label, so
    /// that totals run on across reloads (the gate does this as it puts a
    /// setup in force).
    pub fn bind_meters(&mut self, registry: &RouteRegistry) {
        self.meters.bind(registry);
    }

    /// A signed-in user's groups, sorted and joined by commas: those the
    /// groups file gives `user` now, and those the backend gave the
    /// session (`session`, joined the same way). `None` when there are none.
    pub fn groups_of(&self, user: &str, session: Option<&str>) -> Option<String> {
        crate::login::groups::joined(self.groups.as_deref(), user, session)
    }

    /// What `sessiongate check` warns about without refusing the config:
    /// an `allow` entry that names a user the users file does not list, or
    /// a group nobody is in. Groups a backend gives at sign-in
    /// (`login.source = "backend"`) cannot be known here, so such a login
    /// gets no group warnings.
    pub fn warnings(&self) -> Vec<RouteWarning> {
        let users = self.login.users.as_ref().map(|u| u.current());
        let groups = self.groups.as_ref().map(|g| g.current());
        let backend = self.config.login.source == crate::config::LoginSource::Backend;
        let mut warnings = Vec::new();
        for (index, route) in self.config.routes.iter().enumerate() {
            for allowed in route.allow.iter().flatten() {
                let unknown = match allowed {
                    Allowed::User(name) => users.as_ref().is_some_and(|u| !u.contains(name)),
                    Allowed::Group(name) => {
                        !backend && groups.as_ref().is_none_or(|g| g.size_of(name) == 0)
                    }
                };
                if unknown {
                    let what = match allowed {
                        Allowed::User(_) => "a user the users file does not list",
                        Allowed::Group(_) if groups.is_none() => {
                            "a group, but no login.groups_file is set"
                        }
                        Allowed::Group(_) => "a group nobody is in",
                    };
                    warnings.push(RouteWarning {
                        route: index,
                        message: format!("route {}: allow names {allowed}, {what}", route.path),
                    });
                }
            }
        }
        warnings
    }

    /// Whether `path` is one of the built-in endpoints' paths.
    pub fn is_builtin(&self, path: &str) -> bool {
        path.strip_prefix(self.config.login.prefix.as_str())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    }
}

/// Every route's target. Routes to the same origin share its connections.
fn build_targets(config: &Config, routes: &Arc<RouteTable>) -> Result<Vec<Target>, SetupError> {
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
    let mut origins: HashMap<(&http::uri::Scheme, &http::uri::Authority), HttpUpstream> =
        HashMap::new();
    let mut fastcgi_servers: HashMap<&FastCgiServer, FastCgiServerPool> = HashMap::new();
    let mut targets = Vec::with_capacity(config.routes.len());
    for route in &config.routes {
        let failed = |message: String| SetupError::Route {
            route: route.path.clone(),
            message,
        };
        targets.push(match &route.upstream {
            Upstream::Http { scheme, authority } => match origins.get(&(scheme, authority)) {
                Some(shared) => Target::Http(shared.clone()),
                None => {
                    let max = config.server.upstream_max_connections;
                    let lanes = config.server.thread_per_core_workers().unwrap_or(1);
                    let new = HttpUpstream::new(scheme, authority, &upstream_tls, max, lanes)
                        .map_err(|e| failed(e.to_string()))?;
                    origins.insert((scheme, authority), new.clone());
                    Target::Http(new)
                }
            },
            Upstream::Cgi(dir) => {
                let options = CgiOptions {
                    timeout: config.server.upstream_timeout,
                    max_concurrent: config.server.cgi_max_concurrent,
                    max_queue: config.server.cgi_max_concurrent * CGI_QUEUE_PER_SLOT,
                };
                let gateway = CgiGateway::new(dir, options)
                    .map_err(|e| failed(format!("CGI directory {}: {e}", dir.display())))?
                    .with_settings(route.env.clone());
                // A script's local redirect is followed inside the gateway
                // only when the new path stays on this same route; any other
                // path goes back to the browser, so that it passes through
                // routing and the access check again. The path must already
                // be normal: the route table only ever sees normalised paths,
                // and the gateway must not run a script on a path it did not
                // see.
                let table = routes.clone();
                let id = targets.len();
                Target::Cgi(gateway.with_local_redirect_check(move |path, _| {
                    !table.has_host_routes()
                        && canonical::normalize_path(path).is_ok_and(|p| p == path)
                        && table.find(None, path) == Some(id)
                }))
            }
            Upstream::Static(dir) => {
                // Files behind a session are for that visitor's browser only.
                let private = route.access != Access::Public;
                Target::Static(
                    StaticFiles::new(dir, private)
                        .map_err(|e| failed(format!("static directory {}: {e}", dir.display())))?,
                )
            }
            Upstream::FastCgi(fastcgi) => {
                let pool = fastcgi_servers.entry(&fastcgi.server).or_insert_with(|| {
                    FastCgiServerPool::new(
                        fastcgi.server.clone(),
                        config.server.upstream_max_connections,
                    )
                });
                Target::FastCgi(FastCgiUpstream::new(pool, fastcgi, route.env.clone()))
            }
        });
    }
    Ok(targets)
}
