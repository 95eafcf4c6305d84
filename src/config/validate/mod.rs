//! Step two: the raw structs checked as a whole and turned into a [`Config`].
//!
//! Each section is checked by its own module, through a [`Section`] that
//! reports each problem where it is; then the few rules that span sections.

mod admin;
mod headers;
mod log;
mod login;
mod routes;
mod script_env;
mod section;
mod server;
mod session;
mod store;

use std::path::Path;

use super::kept_key::resolve_kept_key;
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
pub use script_env::RESERVED_SCRIPT_VARIABLES;
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
    let mut session = validate_session(raw.session, r, secrets);
    let store = validate_store(raw.store, r);
    if let (Some(session), Some(store)) = (&mut session, &store) {
        if let Err(e) = resolve_kept_key(session, store, secrets) {
            r.at(0, e.to_string());
        }
    }
    let login = validate_login(raw.login, r);
    let headers = validate_headers(raw.headers, r, secrets);
    let routes = validate_routes(raw.route, login_source, r, secrets);
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
    use crate::config::testing::{FixedSecrets, KEY, minimal};
    use crate::config::{Checked, ConfigError};

    #[test]
    fn semantic_errors_name_their_line() {
        let text = "[server]\nlisten = [\"nope\"]\n\n[session]\nsecret_keys = [\"short\"]\n\n[[route]]\npath = \"/\"\nupstream = \"ftp://x\"\n";
        let errs = text.parse::<Config>().unwrap_err().0;
        let lines: Vec<usize> = errs.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![2, 5, 9], "{errs:?}");
        assert!(errs[1].message.contains("at least 32"));
    }

    /// `(line, col, message)` of each error.
    fn errors(text: &str) -> Vec<(usize, usize, String)> {
        match text.parse::<Config>() {
            Ok(_) => Vec::new(),
            Err(e) => {
                e.0.into_iter()
                    .map(|e| (e.line, e.col, e.message))
                    .collect()
            }
        }
    }

    /// What `sessiongate check` finds in `text`, the disk included.
    fn checked(text: &str) -> Checked {
        Config::check_text(Path::new("<config>"), text, &FixedSecrets::default())
    }

    fn positions(found: &[ConfigError]) -> Vec<(usize, usize)> {
        found.iter().map(|e| (e.line, e.col)).collect()
    }

    /// A backend login at `page`, and `routes`.
    fn backend_login(page: &str, routes: &str) -> String {
        format!(
            "[session]\nsecret_keys = [\"{KEY}\"]\n\n[login]\nsource = \"backend\"\npage = \"{page}\"\n\n{routes}"
        )
    }

    fn route(path: &str, access: &str, host: Option<&str>) -> String {
        let host = host.map_or(String::new(), |h| format!("host = \"{h}\"\n"));
        format!(
            "[[route]]\npath = \"{path}\"\n{host}upstream = \"http://127.0.0.1:9000\"\naccess = \"{access}\"\n"
        )
    }

    #[test]
    fn a_backend_login_page_behind_login_is_a_loop() {
        let text = backend_login("/login.cgi", &route("/", "login", None));
        let errs = errors(&text);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!((errs[0].0, errs[0].1), (6, 8), "{errs:?}");
        assert!(
            errs[0].2.contains("sent to sign in again, forever"),
            "{errs:?}"
        );
        assert!(errs[0].2.contains("route \"/\""), "{errs:?}");

        let own_route = format!(
            "{}{}",
            route("/", "login", None),
            route("/login.cgi", "public", None)
        );
        assert!(errors(&backend_login("/login.cgi", &own_route)).is_empty());
        let session_route = format!(
            "{}{}",
            route("/", "login", None),
            route("/account/", "session", None)
        );
        assert!(errors(&backend_login("/account/login", &session_route)).is_empty());
    }

    #[test]
    fn a_backend_login_page_on_no_route_is_refused() {
        let text = backend_login("/login.cgi", &route("/app/", "login", None));
        let errs = errors(&text);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!((errs[0].0, errs[0].1), (6, 8), "{errs:?}");
        assert!(errs[0].2.contains("is on no route"), "{errs:?}");
    }

    #[test]
    fn a_login_loop_on_one_host_is_found() {
        let routes = format!(
            "{}{}",
            route("/", "public", None),
            route("/", "login", Some("intranet.example"))
        );
        let errs = errors(&backend_login("/login.cgi", &routes));
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(errs[0].2.contains("(host intranet.example)"), "{errs:?}");
    }

    #[test]
    fn cookie_path_must_cover_the_builtin_login_only_when_it_is_used() {
        let session = format!("[session]\nsecret_keys = [\"{KEY}\"]\ncookie_path = \"/app\"\n\n");
        let login_route = route("/app/", "login", None);
        let errs = errors(&format!("{session}{login_route}"));
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!((errs[0].0, errs[0].1), (3, 15), "at cookie_path: {errs:?}");
        assert!(
            errs[0].2.contains("does not cover login.prefix"),
            "{errs:?}"
        );
        // Under the cookie path, the login pages see the cookie.
        let inside = format!("{session}[login]\nprefix = \"/app/.sg\"\n\n{login_route}");
        assert!(errors(&inside).is_empty(), "{:?}", errors(&inside));
        // No login route and no users file: the built-in login is unused.
        assert!(errors(&format!("{session}{}", route("/app/", "session", None))).is_empty());
        // A backend login: the built-in pages are never shown.
        let backend = backend_login("/app/login", &route("/app/", "public", None))
            .replace("[login]", "[login]\n")
            .replacen("\n\n[login]", "\ncookie_path = \"/app\"\n\n[login]", 1);
        assert!(errors(&backend).is_empty(), "{:?}", errors(&backend));
        // Only the prefix written: the error points at it.
        let prefix_only = format!(
            "[session]\nsecret_keys = [\"{KEY}\"]\n\n[login]\nprefix = \"/other\"\nusers_file = \"u\"\n\n{}",
            route("/", "public", None)
        );
        assert!(errors(&prefix_only).is_empty(), "cookie_path / covers all");
    }

    #[test]
    fn cookie_secure_without_https_is_a_warning_at_the_key() {
        let text = minimal().replace("[session]\n", "[session]\ncookie_secure = true\n");
        let found = checked(&text);
        assert!(found.config.is_some(), "{:?}", found.errors);
        assert_eq!(positions(&found.warnings), vec![(2, 17)]);
        assert!(
            found.warnings[0]
                .message
                .contains("browsers will not send a Secure cookie back over http://"),
            "{:?}",
            found.warnings
        );
        for https in [
            "[server]\ntls = { cert = \"c.pem\", key = \"k.pem\" }\n\n",
            "[server]\ntrusted_proxies = [\"10.0.0.1\"]\n\n",
        ] {
            let found = checked(&format!("{https}{text}"));
            assert!(found.warnings.is_empty(), "{https}: {:?}", found.warnings);
        }
        // "auto" and false never warn.
        for value in ["\"auto\"", "false"] {
            let text = minimal().replace(
                "[session]\n",
                &format!("[session]\ncookie_secure = {value}\n"),
            );
            assert!(checked(&text).warnings.is_empty(), "{value}");
        }
    }

    #[test]
    fn idle_timeout_past_the_lifetime_is_a_warning() {
        let text = minimal().replace(
            "[session]\n",
            "[session]\nidle_timeout = \"2d\"\nmax_lifetime = \"12h\"\n",
        );
        let found = checked(&text);
        assert!(found.config.is_some(), "{:?}", found.errors);
        assert_eq!(positions(&found.warnings), vec![(2, 16)]);
        assert!(
            found.warnings[0]
                .message
                .contains("max_lifetime wins: sessions end after 12h"),
            "{:?}",
            found.warnings
        );
        let equal = minimal().replace("[session]\n", "[session]\nidle_timeout = \"24h\"\n");
        assert!(checked(&equal).warnings.is_empty());
    }

    #[test]
    fn type_errors_and_rule_errors_come_in_one_pass() {
        let text = format!(
            "[server]\nmax_connections = \"many\"\n\n[session]\nsecret_keys = [\"{KEY}\"]\nidle_timeout = \"1.5h\"\n\n[[route]]\npath = \"/\"\nupstream = \"http://127.0.0.1:99999\"\n"
        );
        let errs = errors(&text);
        let at: Vec<(usize, usize)> = errs.iter().map(|e| (e.0, e.1)).collect();
        assert_eq!(at, vec![(2, 19), (6, 16), (10, 12)], "{errs:?}");
        assert!(
            errs[0]
                .2
                .starts_with("server.max_connections must be a whole number"),
            "{errs:?}"
        );
        assert!(errs[1].2.contains("\"1h30m\""), "{errs:?}");
        assert!(errs[2].2.contains("port 99999 is out of range"), "{errs:?}");
    }

    #[test]
    fn a_key_reported_unreadable_is_not_reported_missing_as_well() {
        let text = format!(
            "[server]\ntls = \"yes\"\nhsts = \"max-age=600\"\n\n[session]\nsecret_keys = \"{KEY}\"\n\n[[route]]\npath = \"/\"\nupstream = \"http://127.0.0.1:9000\"\n"
        );
        let errs = errors(&text);
        let lines: Vec<usize> = errs.iter().map(|e| e.0).collect();
        assert_eq!(lines, vec![2, 6], "{errs:?}");
        assert!(
            errs[0].2.starts_with("server.tls must be a table"),
            "{errs:?}"
        );
        assert!(
            errs[1].2.starts_with("session.secret_keys must be a list"),
            "{errs:?}"
        );
    }

    #[test]
    fn named_paths_are_looked_at_only_by_check() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a-file");
        std::fs::write(&file, "").unwrap();
        let text = format!(
            "[session]\nsecret_keys = [\"{KEY}\"]\n\n[login]\ngroups_file = \"{missing}\"\ntemplate = \"{dir}\"\nusers_file = \"{missing}\"\n\n[[route]]\npath = \"/\"\nupstream = \"cgi:{file}\"\naccess = \"login\"\n\n[[route]]\npath = \"/s/\"\nupstream = \"static:{dir}\"\n",
            missing = dir.path().join("missing").display(),
            dir = dir.path().display(),
            file = file.display(),
        );
        assert!(errors(&text).is_empty(), "a start reads them itself");
        let found = checked(&text);
        assert!(found.config.is_none());
        let at = positions(&found.errors);
        // groups file, template, the users file the login route needs,
        // the CGI "directory"; the static directory is fine.
        assert_eq!(
            at,
            vec![(5, 15), (6, 12), (7, 14), (11, 12)],
            "{:?}",
            found.errors
        );
        let messages: Vec<&str> = found.errors.iter().map(|e| e.message.as_str()).collect();
        assert!(
            messages[0].starts_with("login.groups_file: the groups file"),
            "{messages:?}"
        );
        assert!(messages[0].ends_with("does not exist"), "{messages:?}");
        assert!(
            messages[1].ends_with("is a directory, not a file"),
            "{messages:?}"
        );
        assert!(
            messages[2].starts_with("login.users_file: the users file"),
            "{messages:?}"
        );
        assert!(messages[3].starts_with("CGI directory"), "{messages:?}");
        assert!(messages[3].ends_with("is not a directory"), "{messages:?}");
        assert_eq!(found.places.get("route.1.upstream"), Some((16, 12)));
    }
}
