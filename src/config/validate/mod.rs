//! Step two: the raw structs checked as a whole and turned into a [`Config`].

mod admin;
mod headers;
mod log;
mod login;
mod routes;
mod server;
mod session;
mod store;

use std::path::Path;
use std::time::Duration;

use toml::Spanned;

use super::Config;
use super::raw::{Dur, RawConfig};
use super::report::Reporter;
use super::secrets::SecretSource;
use admin::validate_admin;
pub use headers::normalize_header_name;
use headers::validate_headers;
use log::validate_log;
use login::validate_login;
pub use routes::parse_upstream;
use routes::validate_routes;
pub use server::parse_socket_addr;
use server::validate_server;
use session::validate_session;
use store::validate_store;

pub(super) fn validate(
    file: &Path,
    raw: RawConfig,
    r: &mut Reporter<'_>,
    secrets: &dyn SecretSource,
) -> Option<Config> {
    let server = validate_server(raw.server, r);
    let session = validate_session(raw.session, r, secrets);
    let store = validate_store(raw.store, r);
    let login = validate_login(raw.login, r);
    let headers = validate_headers(raw.headers, r);
    let routes = validate_routes(raw.route, r);
    let admin = validate_admin(raw.admin, r, secrets);
    let log = validate_log(raw.log, r);

    if let (Some(session), Some(login)) = (&session, &login) {
        if session.idle_timeout > session.max_lifetime {
            // Not an error: the absolute lifetime simply wins.
            tracing::debug!("idle_timeout exceeds max_lifetime; max_lifetime wins");
        }
        if login.prefix.starts_with(&session.cookie_path) || session.cookie_path == "/" {
            // fine: the cookie reaches the built-in endpoints
        } else {
            r.at(
                0,
                format!(
                    "session.cookie_path {:?} does not cover login.prefix {:?}; the login page could not see the session",
                    session.cookie_path, login.prefix
                ),
            );
        }
    }
    if routes.as_ref().is_some_and(|r| r.is_empty()) {
        r.at(
            0,
            "no [[route]] is configured; add at least one, e.g. [[route]] path = \"/\" upstream = \"http://127.0.0.1:8000\"",
        );
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

fn positive(
    v: Option<Spanned<Dur>>,
    default: Duration,
    name: &str,
    r: &mut Reporter<'_>,
    ok: &mut bool,
) -> Duration {
    match v {
        None => default,
        Some(d) if d.get_ref().0 < Duration::from_secs(1) => {
            r.span(&d, format!("{name} must be at least one second"));
            *ok = false;
            default
        }
        Some(d) => d.into_inner().0,
    }
}

fn is_plain_path(p: &str) -> bool {
    !p.bytes()
        .any(|b| b.is_ascii_control() || b == b' ' || b == b'?' || b == b'#' || b == b'\\')
}
