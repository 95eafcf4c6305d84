//! Step two: the raw structs checked as a whole and turned into a [`Config`].
//!
//! Each section is checked by its own module, through a [`Section`] that
//! reports each problem where it is; then the few rules that span sections.

mod admin;
mod headers;
mod log;
mod login;
mod routes;
mod section;
mod server;
mod session;
mod store;

use std::path::Path;

use super::raw::RawConfig;
use super::report::{PathKind, Reporter};
use super::secrets::SecretSource;
use super::{
    Access, Config, CookieSecure, DEFAULT_USERS_FILE, LoginConfig, LoginSource, RouteConfig,
    SessionConfig,
};
use admin::validate_admin;
pub use headers::normalize_header_name;
use headers::validate_headers;
use log::validate_log;
use login::validate_login;
use routes::validate_routes;
pub use routes::{check_port, parse_upstream};
use section::Section;
pub use server::parse_socket_addr;
use server::validate_server;
use session::validate_session;
use store::validate_store;

/// Where the rules that span sections point: the keys as written, taken
/// before each section consumes its own.
struct Written {
    /// `session.cookie_secure`, and what it says.
    cookie_secure: Option<(usize, CookieSecure)>,
    /// Whether the proxy may see HTTPS: `server.tls` or a trusted proxy
    /// (also when either was written but could not be read).
    https_possible: bool,
    /// `session.cookie_path`
    cookie_path: Option<usize>,
    /// `login.prefix`
    login_prefix: Option<usize>,
    /// `login.page`
    login_page: Option<usize>,
    /// `login.users_file`, and the file it names.
    users_file: Option<(usize, String)>,
    /// The `access = "login"` of the first login route.
    first_login_route: Option<usize>,
}

impl Written {
    /// Notes the keys of `raw` the cross-section rules point at.
    fn of(raw: &RawConfig, r: &Reporter<'_>) -> Self {
        fn start<T>(s: &toml::Spanned<T>) -> usize {
            s.span().start
        }
        Written {
            cookie_secure: raw
                .session
                .cookie_secure
                .as_ref()
                .map(|c| (c.span().start, c.get_ref().0)),
            https_possible: raw.server.tls.is_some()
                || !raw.server.trusted_proxies.is_empty()
                || r.was_removed("server.tls")
                || r.was_removed("server.trusted_proxies"),
            cookie_path: raw.session.cookie_path.as_ref().map(start),
            login_prefix: raw.login.prefix.as_ref().map(start),
            login_page: raw.login.page.as_ref().map(start),
            users_file: raw
                .login
                .users_file
                .as_ref()
                .map(|f| (f.span().start, f.get_ref().clone())),
            first_login_route: raw
                .route
                .iter()
                .map(|route| &route.get_ref().access)
                .find(|access| *access.get_ref() == Access::Login)
                .map(start),
        }
    }
}

/// Checks every section, then the rules that span sections; `None` when
/// anything was reported.
pub(super) fn validate(
    file: &Path,
    raw: RawConfig,
    r: &mut Reporter<'_>,
    secrets: &dyn SecretSource,
) -> Option<Config> {
    let written = Written::of(&raw, r);
    // Routes check `basic_auth` against the source as written, so that the
    // error points at the route even when `[login]` has errors of its own.
    let login_source = raw
        .login
        .source
        .as_ref()
        .map_or(LoginSource::UsersFile, |s| *s.get_ref());
    names_users_file(&written, login_source, r);
    check_cookie_secure(&written, r);
    let server = validate_server(raw.server, r);
    let session = validate_session(raw.session, r, secrets);
    let store = validate_store(raw.store, r);
    let login = validate_login(raw.login, r);
    let headers = validate_headers(raw.headers, r);
    let routes = validate_routes(raw.route, login_source, r);
    let admin = validate_admin(raw.admin, r, secrets);
    let log = validate_log(raw.log, r);

    if let (Some(session), Some(login), Some(routes)) = (&session, &login, &routes) {
        check_session_and_login(session, login, routes, &written, r);
    }
    if let (Some(login), Some(routes), Some(page_at)) = (&login, &routes, written.login_page) {
        check_login_page(login, routes, page_at, r);
    }
    if let Some(routes) = &routes
        && !r.was_removed("route")
    {
        check_some_route(routes, r);
    }
    Some(Config {
        source: file.to_path_buf(),
        server: server?,
        session: session?,
        store: store?,
        login: login?,
        headers: headers?,
        routes: routes?,
        admin: admin?,
        log: log?,
    })
}

/// The users file, when the built-in login needs it (a `login` route with
/// `source = "users_file"`): `sessiongate check` looks for it, and reports
/// it at `login.users_file`, or at the route when the default is in use.
fn names_users_file(written: &Written, source: LoginSource, r: &mut Reporter<'_>) {
    let Some(route_at) = written.first_login_route else {
        return;
    };
    if source != LoginSource::UsersFile {
        return;
    }
    match &written.users_file {
        Some((at, path)) => r.names_path(
            *at,
            path,
            PathKind::File,
            "login.users_file: the users file",
        ),
        None => r.names_path(
            route_at,
            DEFAULT_USERS_FILE,
            PathKind::File,
            "access = \"login\" checks passwords in the users file; login.users_file is not set, and its default",
        ),
    }
}

/// `cookie_secure = true` on a proxy that only ever sees plain HTTP: valid,
/// but the browser never sends the cookie back, so no session lasts.
fn check_cookie_secure(written: &Written, r: &mut Reporter<'_>) {
    if let Some((at, CookieSecure::Always)) = written.cookie_secure
        && !written.https_possible
    {
        r.warn_at(
            at,
            "session.cookie_secure = true, but the proxy serves plain HTTP (no server.tls) and trusts no proxy that serves HTTPS (server.trusted_proxies): browsers will not send a Secure cookie back over http://, so every request starts a new session and nobody stays signed in; use \"auto\", or serve HTTPS",
        );
    }
}

/// The session cookie must reach the built-in login endpoints, when they
/// are in use: a users file to sign in with and somewhere that needs it.
fn check_session_and_login(
    session: &SessionConfig,
    login: &LoginConfig,
    routes: &[RouteConfig],
    written: &Written,
    r: &mut Reporter<'_>,
) {
    let builtin_in_use = login.source == LoginSource::UsersFile
        && (routes.iter().any(|route| route.access == Access::Login)
            || written.users_file.is_some());
    if !builtin_in_use
        || session.cookie_path == "/"
        || login.prefix.starts_with(&session.cookie_path)
    {
        return;
    }
    // The cookie path is the usual culprit; when only the prefix was
    // written, that is what moved.
    let at = written.cookie_path.or(written.login_prefix).unwrap_or(0);
    r.at(
        at,
        format!(
            "session.cookie_path {:?} does not cover login.prefix {:?}: the built-in login page would never see the session cookie; set cookie_path = \"/\", or move login.prefix under it (like \"{}/.sessiongate\")",
            session.cookie_path,
            login.prefix,
            session.cookie_path.trim_end_matches('/')
        ),
    );
}

/// With `source = "backend"`, the application's login page must be on a
/// route visitors may reach without signing in: on a `login` route, every
/// visit to it would be sent to sign in again, with an ever longer
/// `next=`; on no route, nobody could sign in.
fn check_login_page(
    login: &LoginConfig,
    routes: &[RouteConfig],
    page_at: usize,
    r: &mut Reporter<'_>,
) {
    let (LoginSource::Backend, Some(page)) = (login.source, &login.page) else {
        return;
    };
    let mut hosts: Vec<Option<&str>> = vec![None];
    hosts.extend(
        routes
            .iter()
            .filter_map(|route| route.host.as_deref().map(Some)),
    );
    hosts.dedup();
    let mut on_some_route = false;
    for host in hosts {
        let Some(route) = route_for(routes, host, page) else {
            continue;
        };
        on_some_route = true;
        if route.access == Access::Login {
            let on_host = host.map_or(String::new(), |h| format!(" (host {h})"));
            r.at(
                page_at,
                format!(
                    "login.page {page:?} is on route {:?}{on_host}, which has access = \"login\": visitors sent to sign in would be sent to sign in again, forever; give the login page a route of its own with access = \"public\" or \"session\", like [[route]] path = \"{page}\"",
                    route.path
                ),
            );
            return;
        }
    }
    if !on_some_route {
        r.at(
            page_at,
            format!(
                "login.page {page:?} is on no route, so visitors sent to sign in would find nothing there; add a [[route]] for it with access = \"public\" or \"session\""
            ),
        );
    }
}

/// The route a request for `path` on `host` takes: the longest prefix
/// among the host's routes, else among the routes for any host (as
/// `access::RouteTable` finds it).
fn route_for<'a>(
    routes: &'a [RouteConfig],
    host: Option<&str>,
    path: &str,
) -> Option<&'a RouteConfig> {
    let longest = |for_host: Option<&str>| {
        routes
            .iter()
            .filter(|route| route.host.as_deref() == for_host && path.starts_with(&route.path))
            .max_by_key(|route| route.path.len())
    };
    host.and_then(|h| longest(Some(h)))
        .or_else(|| longest(None))
}

/// At least one route: without one, no request could go anywhere.
fn check_some_route(routes: &[RouteConfig], r: &mut Reporter<'_>) {
    if routes.is_empty() {
        r.at(
            0,
            "no [[route]] is configured; add at least one, e.g. [[route]] path = \"/\" upstream = \"http://127.0.0.1:8000\"",
        );
    }
}

/// Whether a configured path holds nothing a request path could not:
/// no space, query, fragment, backslash or control character.
fn is_plain_path(p: &str) -> bool {
    !p.bytes()
        .any(|b| b.is_ascii_control() || b == b' ' || b == b'?' || b == b'#' || b == b'\\')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn semantic_errors_name_their_line() {
        let text = "[server]\nlisten = [\"nope\"]\n\n[session]\nsecret_keys = [\"short\"]\n\n[[route]]\npath = \"/\"\nupstream = \"ftp://x\"\n";
        let errs = text.parse::<Config>().unwrap_err().0;
        let lines: Vec<usize> = errs.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![2, 5, 9], "{errs:?}");
        assert!(errs[1].message.contains("at least 32"));
    }
}
