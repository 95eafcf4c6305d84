//! The application's own login page (`login.source = "backend"`,
//! `login.page`), given what the built-in page has:
//!
//! - **the expired notice**: a request to the page gets `X-Session-Expired: 1`
//!   when the visitor was sent there because their session ended (the
//!   redirect's `expired=1`), or when its own cookie names a session that has
//!   ended; the page shows its words for it (or `login.expired_message`'s).
//! - **the throttle**: the backend reports a wrong password with the control
//!   header `X-Session-Login-Failed: <user>`, counted in the same throttle as
//!   the built-in form (per user and per address, [`super::Throttle`]). Once
//!   an address is locked, sign-in attempts at the page (any method but GET,
//!   HEAD, OPTIONS and TRACE) get `429` with `Retry-After` before the backend
//!   sees them; an `X-Session-Login` for a locked user or address is refused
//!   ([`crate::session::commit`]).
//!
//! The page's path is known here; the headers are set in
//! [`crate::upstream::request_headers`] and read in
//! [`crate::upstream::control`].

use std::net::IpAddr;

use http::Method;

use super::{RetryAfter, Throttle};
use crate::config::{LoginConfig, LoginSource};

/// The path of the application's login page, when it has one.
#[derive(Debug, Clone)]
pub struct BackendPage {
    path: String,
}

impl BackendPage {
    /// The page of `login`, with `source = "backend"`; `None` otherwise.
    pub fn new(login: &LoginConfig) -> Option<Self> {
        if login.source != LoginSource::Backend {
            return None;
        }
        let page = login.page.as_deref()?;
        let path = page.split_once('?').map_or(page, |(path, _)| path);
        Some(BackendPage {
            path: path.to_string(),
        })
    }

    /// Whether a request for the (normalised) `path` is for the page.
    pub fn is(&self, path: &str) -> bool {
        self.path == path
    }
}

/// Whether a request to the login page is told that the session ended: the
/// redirect that sent it there said so in `query`, or its own cookie named
/// a session that has ended (`cookie_expired`).
pub fn expired_notice(query: Option<&str>, cookie_expired: bool) -> bool {
    cookie_expired
        || form_urlencoded::parse(query.unwrap_or("").as_bytes())
            .any(|(k, v)| k == "expired" && v == "1")
}

/// Whether a request to the login page may reach it: one that may carry a
/// sign-in (an unsafe method) from an address the throttle has locked is
/// refused, with how long to wait. Showing the page stays possible.
pub fn check_attempt(
    throttle: &Throttle,
    method: &Method,
    ip: IpAddr,
    now: u64,
) -> Result<(), RetryAfter> {
    if method.is_safe() {
        return Ok(());
    }
    throttle.check_client(ip, now)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::Config;

    const KEY: &str = "backend-page-key-0123456789-abcdefghijklmn";

    fn login(extra: &str) -> LoginConfig {
        let text = format!(
            "[session]\nsecret_keys = [\"{KEY}\"]\n[login]\n{extra}\n[[route]]\npath = \"/\"\nupstream = \"http://127.0.0.1:1\"\n"
        );
        let c: Config = text.parse().unwrap();
        c.login
    }

    #[test]
    fn only_a_backend_login_has_a_page() {
        let page = BackendPage::new(&login("source = \"backend\"\npage = \"/login.cgi\"")).unwrap();
        assert!(page.is("/login.cgi"));
        assert!(!page.is("/login.cgi/x"));
        assert!(!page.is("/"));
        assert!(BackendPage::new(&login("")).is_none());
    }

    #[test]
    fn the_notice_comes_from_the_redirect_or_the_cookie() {
        assert!(expired_notice(Some("next=%2Fm&expired=1"), false));
        assert!(expired_notice(None, true));
        assert!(!expired_notice(Some("next=%2Fm&expired=0"), false));
        assert!(!expired_notice(Some("notexpired=1"), false));
        assert!(!expired_notice(None, false));
    }

    #[test]
    fn a_locked_address_may_see_the_page_but_not_post_to_it() {
        let t = Throttle::new(1, Duration::from_secs(60), 100);
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(check_attempt(&t, &Method::POST, ip, 100), Ok(()));
        t.record_failure("alice", ip, 100);
        assert_eq!(check_attempt(&t, &Method::GET, ip, 110), Ok(()));
        assert_eq!(check_attempt(&t, &Method::HEAD, ip, 110), Ok(()));
        let wait = check_attempt(&t, &Method::POST, ip, 110).unwrap_err();
        assert_eq!(wait.seconds(), 50);
        assert!(check_attempt(&t, &Method::PUT, ip, 110).is_err());
        assert_eq!(check_attempt(&t, &Method::POST, ip, 160), Ok(()));
    }
}
