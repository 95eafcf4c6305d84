//! Route matching and the access decision.
//!
//! Routes are looked up in a byte trie of their path prefixes, so a lookup
//! costs the length of the request path, not the number of routes. Routes
//! with a `host` are tried first for that host; host-less routes answer
//! every other host.

use std::collections::HashMap;

use http::Method;

use crate::config::{Access, Allowed, RouteConfig};

/// Index of a route in the config's route list.
pub type RouteId = usize;

/// Longest-prefix lookup over the configured routes.
#[derive(Debug, Default)]
pub struct RouteTable {
    any_host: Trie,
    by_host: HashMap<String, Trie>,
}

#[derive(Debug, Default)]
struct Trie {
    nodes: Vec<Node>,
}

#[derive(Debug, Default)]
struct Node {
    /// Children sorted by byte, for binary search.
    children: Vec<(u8, u32)>,
    route: Option<RouteId>,
}

impl Trie {
    fn insert(&mut self, path: &str, route: RouteId) {
        if self.nodes.is_empty() {
            self.nodes.push(Node::default());
        }
        let mut at = 0usize;
        for &b in path.as_bytes() {
            let next = match self.nodes[at]
                .children
                .binary_search_by_key(&b, |(c, _)| *c)
            {
                Ok(i) => self.nodes[at].children[i].1 as usize,
                Err(i) => {
                    let id = self.nodes.len();
                    self.nodes.push(Node::default());
                    self.nodes[at].children.insert(i, (b, id as u32));
                    id
                }
            };
            at = next;
        }
        self.nodes[at].route = Some(route);
    }

    fn longest(&self, path: &str) -> Option<RouteId> {
        let mut at = 0usize;
        let mut best = self.nodes.first()?.route;
        for &b in path.as_bytes() {
            match self.nodes[at]
                .children
                .binary_search_by_key(&b, |(c, _)| *c)
            {
                Ok(i) => at = self.nodes[at].children[i].1 as usize,
                Err(_) => break,
            }
            if let Some(r) = self.nodes[at].route {
                best = Some(r);
            }
        }
        best
    }
}

impl RouteTable {
    /// Builds the table from the configured routes.
    pub fn new(routes: &[RouteConfig]) -> Self {
        let mut table = RouteTable::default();
        for (i, r) in routes.iter().enumerate() {
            match &r.host {
                Some(h) => table
                    .by_host
                    .entry(h.clone())
                    .or_default()
                    .insert(&r.path, i),
                None => table.any_host.insert(&r.path, i),
            }
        }
        table
    }

    /// A table of host-less public routes, for tests of path matching.
    #[cfg(test)]
    pub(crate) fn from_paths(paths: &[&str]) -> Self {
        let mut table = RouteTable::default();
        for (i, p) in paths.iter().enumerate() {
            table.any_host.insert(p, i);
        }
        table
    }

    /// Whether any route is limited to a host.
    pub fn has_host_routes(&self) -> bool {
        !self.by_host.is_empty()
    }

    /// The route for a request: longest prefix among the host's routes,
    /// else among the host-less ones.
    pub fn find(&self, host: Option<&str>, path: &str) -> Option<RouteId> {
        if !self.by_host.is_empty() {
            if let Some(trie) = host.and_then(|h| self.by_host.get(&normalize_host(h))) {
                if let Some(r) = trie.longest(path) {
                    return Some(r);
                }
            }
        }
        self.any_host.longest(path)
    }
}

/// Lowercases a Host header value and drops its port.
fn normalize_host(host: &str) -> String {
    let without_port = if host.starts_with('[') {
        host.split_inclusive(']').next().unwrap_or(host)
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    without_port.trim_end_matches('.').to_ascii_lowercase()
}

/// What the request's session looks like to the access check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visitor {
    /// No valid session (none, invalid, or ended).
    Nobody {
        /// The session ended by expiry (adds `expired=1` on the login redirect).
        expired: bool,
    },
    /// A valid session without a user.
    Anonymous,
    /// A logged-in session.
    User,
}

/// The outcome of the access check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessDecision {
    /// Forward with whatever session there is.
    Forward,
    /// Create a session, set the cookie, forward.
    CreateAndForward,
    /// Send the browser to the login page.
    RedirectToLogin {
        /// The previous session expired.
        expired: bool,
    },
    /// Answer 401 (API clients, non-GET methods).
    Unauthorized,
    /// Answer 401 with the route's `WWW-Authenticate: Basic` challenge
    /// (a `basic_auth` route, a client that is not a browser).
    Challenge,
}

/// Applies the SPEC's access table. `wants_json` (whether the client asks
/// for JSON) is asked only when the answer depends on it: a visitor
/// without a signed-in session on a login route.
pub fn decide(
    access: Access,
    visitor: Visitor,
    method: &Method,
    wants_json: impl FnOnce() -> bool,
) -> AccessDecision {
    match (access, visitor) {
        (Access::Public, _) => AccessDecision::Forward,
        (Access::Session, Visitor::Nobody { .. }) => AccessDecision::CreateAndForward,
        (Access::Session, _) => AccessDecision::Forward,
        (Access::Login, Visitor::User) => AccessDecision::Forward,
        (Access::Login, Visitor::Nobody { expired }) => to_sign_in(expired, method, wants_json),
        (Access::Login, Visitor::Anonymous) => to_sign_in(false, method, wants_json),
    }
}

/// A visitor who must sign in: a browser's navigation goes to the login
/// page, anything else is refused.
fn to_sign_in(expired: bool, method: &Method, wants_json: impl FnOnce() -> bool) -> AccessDecision {
    if browser_navigation(method, wants_json) {
        AccessDecision::RedirectToLogin { expired }
    } else {
        AccessDecision::Unauthorized
    }
}

/// The decision on a `basic_auth` route for a request without Basic
/// credentials: a browser (its `Accept` names `text/html`) still goes to
/// the login page; any other client (curl's `*/*`, JSON, a form post) is
/// challenged, so that it can answer with credentials.
pub fn with_basic(decision: AccessDecision, wants_html: bool) -> AccessDecision {
    match decision {
        AccessDecision::RedirectToLogin { .. } if !wants_html => AccessDecision::Challenge,
        AccessDecision::Unauthorized => AccessDecision::Challenge,
        other => other,
    }
}

fn browser_navigation(method: &Method, wants_json: impl FnOnce() -> bool) -> bool {
    (method == Method::GET || method == Method::HEAD) && !wants_json()
}

/// Whether a route's `allow` list admits `user`, whose groups are `groups`
/// (joined by commas, as [`crate::setup::Setup::groups_of`] gives them).
pub fn admits(allow: &[Allowed], user: &str, groups: Option<&str>) -> bool {
    allow.iter().any(|a| match a {
        Allowed::User(name) => name == user,
        Allowed::Group(name) => groups.is_some_and(|g| g.split(',').any(|g| g == name)),
    })
}

/// Whether an `Accept` header asks for JSON.
pub fn accepts_json(accept: Option<&http::HeaderValue>) -> bool {
    // Compared in place, without a lower-cased copy of each part: every
    // request to a protected route asks this.
    accept.and_then(|v| v.to_str().ok()).is_some_and(|v| {
        v.split(',').any(|part| {
            let media = part.split(';').next().unwrap_or("").trim().as_bytes();
            media.eq_ignore_ascii_case(b"application/json")
                || media.len() >= 5 && media[media.len() - 5..].eq_ignore_ascii_case(b"+json")
        })
    })
}

/// Whether an `Accept` header names `text/html`, as a browser's does when
/// it navigates (curl's `*/*` does not).
pub fn accepts_html(accept: Option<&http::HeaderValue>) -> bool {
    accept.and_then(|v| v.to_str().ok()).is_some_and(|v| {
        v.split(',').any(|part| {
            part.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("text/html")
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_upstream;

    fn route(path: &str, host: Option<&str>) -> RouteConfig {
        RouteConfig {
            path: path.into(),
            host: host.map(str::to_string),
            upstream: parse_upstream("http://127.0.0.1:1").unwrap(),
            access: Access::Public,
            basic_auth: false,
            csrf: crate::config::CsrfMode::Off,
            allow: None,
            env: Default::default(),
            inject_expiry_warning: false,
        }
    }

    #[test]
    fn allow_lists_admit_users_and_members() {
        let allow = [
            Allowed::User("carol".into()),
            Allowed::Group("admins".into()),
        ];
        assert!(admits(&allow, "carol", None));
        assert!(admits(&allow, "alice", Some("admins,staff")));
        assert!(admits(&allow, "alice", Some("staff,admins")));
        assert!(!admits(&allow, "alice", Some("staff,admins2")));
        assert!(!admits(&allow, "alice", Some("xadmins")));
        assert!(!admits(&allow, "alice", None));
        assert!(!admits(&allow, "Carol", None));
    }

    #[test]
    fn longest_prefix_wins() {
        let t = RouteTable::new(&[
            route("/", None),
            route("/static/", None),
            route("/static/img/", None),
            route("/api", None),
        ]);
        assert_eq!(t.find(None, "/"), Some(0));
        assert_eq!(t.find(None, "/x"), Some(0));
        assert_eq!(t.find(None, "/static/a.css"), Some(1));
        assert_eq!(t.find(None, "/static/img/a.png"), Some(2));
        assert_eq!(t.find(None, "/static"), Some(0));
        assert_eq!(t.find(None, "/apix"), Some(3));
    }

    #[test]
    fn no_route_means_none() {
        let t = RouteTable::new(&[route("/app/", None)]);
        assert_eq!(t.find(None, "/other"), None);
    }

    #[test]
    fn host_routes_first_then_any_host() {
        let t = RouteTable::new(&[
            route("/", None),
            route("/", Some("admin.example.org")),
            route("/x/", Some("admin.example.org")),
        ]);
        assert_eq!(t.find(Some("Admin.Example.org:8080"), "/x/1"), Some(2));
        assert_eq!(t.find(Some("admin.example.org"), "/y"), Some(1));
        assert_eq!(t.find(Some("www.example.org"), "/x/1"), Some(0));
        assert_eq!(t.find(None, "/x/1"), Some(0));
    }

    #[test]
    fn the_access_table() {
        use AccessDecision::*;
        let get = Method::GET;
        let post = Method::POST;
        let nobody = Visitor::Nobody { expired: false };
        assert_eq!(decide(Access::Public, nobody, &get, || false), Forward);
        assert_eq!(
            decide(Access::Public, Visitor::User, &post, || true),
            Forward
        );
        assert_eq!(
            decide(Access::Session, nobody, &get, || false),
            CreateAndForward
        );
        assert_eq!(
            decide(Access::Session, Visitor::Anonymous, &get, || false),
            Forward
        );
        assert_eq!(
            decide(Access::Login, nobody, &get, || false),
            RedirectToLogin { expired: false }
        );
        assert_eq!(
            decide(
                Access::Login,
                Visitor::Nobody { expired: true },
                &Method::HEAD,
                || false
            ),
            RedirectToLogin { expired: true }
        );
        assert_eq!(decide(Access::Login, nobody, &get, || true), Unauthorized);
        assert_eq!(decide(Access::Login, nobody, &post, || false), Unauthorized);
        assert_eq!(
            decide(Access::Login, Visitor::Anonymous, &get, || false),
            RedirectToLogin { expired: false }
        );
        assert_eq!(
            decide(Access::Login, Visitor::Anonymous, &Method::DELETE, || false),
            Unauthorized
        );
        assert_eq!(
            decide(Access::Login, Visitor::User, &post, || true),
            Forward
        );
    }

    #[test]
    fn basic_routes_challenge_all_but_browsers() {
        use AccessDecision::*;
        let redirect = RedirectToLogin { expired: true };
        assert_eq!(with_basic(redirect, true), redirect);
        assert_eq!(with_basic(redirect, false), Challenge);
        assert_eq!(with_basic(Unauthorized, true), Challenge);
        assert_eq!(with_basic(Forward, false), Forward);
        let v = |s: &'static str| http::HeaderValue::from_static(s);
        assert!(accepts_html(Some(&v(
            "text/html,application/xhtml+xml,*/*;q=0.8"
        ))));
        assert!(accepts_html(Some(&v("Text/HTML; q=0.5"))));
        assert!(!accepts_html(Some(&v("*/*"))));
        assert!(!accepts_html(Some(&v("text/htmlx, application/json"))));
        assert!(!accepts_html(None));
    }

    #[test]
    fn json_accept() {
        let v = |s: &'static str| http::HeaderValue::from_static(s);
        assert!(accepts_json(Some(&v("application/json"))));
        assert!(accepts_json(Some(&v(
            "text/plain, application/vnd.api+json;q=0.9"
        ))));
        assert!(!accepts_json(Some(&v(
            "text/html,application/xhtml+xml,*/*;q=0.8"
        ))));
        assert!(!accepts_json(None));
    }
}
