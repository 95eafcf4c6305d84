//! `[login]`: where logins come from, the built-in endpoints, throttling.

use std::path::PathBuf;

use super::{is_plain_path, positive};
use crate::config::raw::RawLogin;
use crate::config::report::Reporter;
use crate::config::{
    DEFAULT_ATTEMPT_WINDOW, DEFAULT_EXPIRED_MESSAGE, DEFAULT_LOGIN_PREFIX, DEFAULT_MAX_ATTEMPTS,
    DEFAULT_USERS_FILE, LoginConfig, LoginSource,
};

pub(super) fn validate_login(raw: RawLogin, r: &mut Reporter<'_>) -> Option<LoginConfig> {
    let mut ok = true;
    let source = raw
        .source
        .as_ref()
        .map_or(LoginSource::UsersFile, |s| *s.get_ref());
    let prefix = match raw.prefix {
        None => DEFAULT_LOGIN_PREFIX.to_string(),
        Some(p) => {
            let trimmed = p.get_ref().trim_end_matches('/').to_string();
            if !p.get_ref().starts_with('/') || trimmed.is_empty() || !is_plain_path(&trimmed) {
                r.span(
                    &p,
                    "login.prefix must be a path like \"/.sessiongate\" (not \"/\")",
                );
                ok = false;
            }
            trimmed
        }
    };
    let page = match raw.page {
        None => None,
        Some(p) => {
            if !p.get_ref().starts_with('/')
                || p.get_ref().starts_with("//")
                || !is_plain_path(p.get_ref())
            {
                r.span(
                    &p,
                    "login.page must be a path on this site, like \"/login.cgi\"",
                );
                ok = false;
            }
            Some(p.into_inner())
        }
    };
    if source == LoginSource::Backend && page.is_none() {
        match &raw.source {
            Some(s) => r.span(
                s,
                "login.source = \"backend\" needs login.page, the application's login route",
            ),
            None => r.at(0, "login.source = \"backend\" needs login.page"),
        }
        ok = false;
    }
    let max_attempts = match raw.max_attempts {
        None => DEFAULT_MAX_ATTEMPTS,
        Some(v) if *v.get_ref() == 0 => {
            r.span(&v, "max_attempts must be at least 1");
            ok = false;
            1
        }
        Some(v) => v.into_inner(),
    };
    let attempt_window = positive(
        raw.attempt_window,
        DEFAULT_ATTEMPT_WINDOW,
        "attempt_window",
        r,
        &mut ok,
    );
    ok.then(|| LoginConfig {
        source,
        users_file: PathBuf::from(
            raw.users_file
                .unwrap_or_else(|| DEFAULT_USERS_FILE.to_string()),
        ),
        page,
        prefix,
        expired_message: raw
            .expired_message
            .unwrap_or_else(|| DEFAULT_EXPIRED_MESSAGE.to_string()),
        max_attempts,
        attempt_window,
        template: raw.template.map(PathBuf::from),
    })
}
