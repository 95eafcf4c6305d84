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
use super::report::Reporter;
use super::secrets::SecretSource;
use super::{Config, LoginConfig, LoginSource, RouteConfig, SessionConfig};
use admin::validate_admin;
pub use headers::normalize_header_name;
use headers::validate_headers;
use log::validate_log;
use login::validate_login;
pub use routes::parse_upstream;
use routes::validate_routes;
pub use script_env::RESERVED_SCRIPT_VARIABLES;
use section::Section;
pub use server::parse_socket_addr;
use server::validate_server;
use session::validate_session;
use store::validate_store;

/// Checks every section, then the rules that span sections; `None` when
/// anything was reported.
pub(super) fn validate(
    file: &Path,
    raw: RawConfig,
    r: &mut Reporter<'_>,
    secrets: &dyn SecretSource,
) -> Option<Config> {
    let server = validate_server(raw.server, r);
    let mut session = validate_session(raw.session, r, secrets);
    let store = validate_store(raw.store, r);
    if let (Some(session), Some(store)) = (&mut session, &store) {
        if let Err(e) = resolve_kept_key(session, store, secrets) {
            r.at(0, e.to_string());
        }
    }
    // Routes check `basic_auth` against the source as written, so that the
    // error points at the route even when `[login]` has errors of its own.
    let login_source = raw
        .login
        .source
        .as_ref()
        .map_or(LoginSource::UsersFile, |s| *s.get_ref());
    let login = validate_login(raw.login, r);
    let headers = validate_headers(raw.headers, r);
    let routes = validate_routes(raw.route, login_source, r, secrets);
    let admin = validate_admin(raw.admin, r, secrets);
    let log = validate_log(raw.log, r);

    if let (Some(session), Some(login)) = (&session, &login) {
        check_session_and_login(session, login, r);
    }
    if let Some(routes) = &routes {
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

/// The session cookie must reach the built-in login endpoints.
fn check_session_and_login(session: &SessionConfig, login: &LoginConfig, r: &mut Reporter<'_>) {
    if session.idle_timeout > session.max_lifetime {
        // Not an error: the absolute lifetime simply wins.
        tracing::debug!("idle_timeout exceeds max_lifetime; max_lifetime wins");
    }
    if !login.prefix.starts_with(&session.cookie_path) && session.cookie_path != "/" {
        r.at(
            0,
            format!(
                "session.cookie_path {:?} does not cover login.prefix {:?}; the login page could not see the session",
                session.cookie_path, login.prefix
            ),
        );
    }
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
