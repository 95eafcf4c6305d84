//! `[login]`: where logins come from, the built-in endpoints, throttling.

use std::path::PathBuf;
use std::time::Duration;

use toml::Spanned;

use super::{Section, is_plain_path};
use crate::config::raw::RawLogin;
use crate::config::report::Reporter;
use crate::config::{
    DEFAULT_ATTEMPT_WINDOW, DEFAULT_BASIC_REALM, DEFAULT_EXPIRED_MESSAGE, DEFAULT_LOGIN_PREFIX,
    DEFAULT_MAX_ATTEMPTS, DEFAULT_REPLAY_MAX_BYTES, DEFAULT_REPLAY_TTL, DEFAULT_USERS_FILE,
    LoginConfig, LoginSource,
};

/// Checks `[login]`.
pub(super) fn validate_login(raw: RawLogin, r: &mut Reporter<'_>) -> Option<LoginConfig> {
    let mut s = Section::new(r);
    let source = raw
        .source
        .as_ref()
        .map_or(LoginSource::UsersFile, |s| *s.get_ref());
    let prefix = prefix(raw.prefix, &mut s);
    let page = raw.page.map(|page| {
        s.checked(
            page,
            |page| page.starts_with('/') && !page.starts_with("//") && is_plain_path(page),
            "login.page must be a path on this site, like \"/login.cgi\"",
        )
    });
    if let Some(written) = &raw.source
        && source == LoginSource::Backend
        && page.is_none()
        && !s.was_removed("login.page")
    {
        s.error(
            written,
            "login.source = \"backend\" needs login.page, the application's login route",
        );
    }
    let max_attempts = s
        .at_least(raw.max_attempts, 1, "max_attempts")
        .unwrap_or(DEFAULT_MAX_ATTEMPTS);
    let attempt_window = s.seconds(raw.attempt_window, DEFAULT_ATTEMPT_WINDOW, "attempt_window");
    let basic_realm = raw.basic_realm.map_or_else(
        || DEFAULT_BASIC_REALM.to_string(),
        |realm| {
            s.checked(
                realm,
                |realm| is_quotable_realm(realm),
                "login.basic_realm must be printable ASCII without '\"' or '\\' (it is sent quoted in WWW-Authenticate)",
            )
        },
    );
    // The users file is checked where the routes say whether it is needed
    // (see `check_users_file`); the groups file and the template are read
    // at every start.
    if let Some(users_file) = &raw.users_file {
        s.place("login.users_file", users_file);
    }
    if let Some(groups_file) = &raw.groups_file {
        s.place("login.groups_file", groups_file);
        s.names_file(groups_file, "login.groups_file: the groups file");
    }
    if let Some(template) = &raw.template {
        s.place("login.template", template);
        s.names_file(template, "login.template: the login page template");
    }
    // Past 64 MiB a form could never be kept: the memory store holds no
    // more than that of all kept forms together.
    let replay_max_bytes = raw
        .replay_max_bytes
        .map_or(DEFAULT_REPLAY_MAX_BYTES, |max| {
            s.checked(
                max,
                |max| *max <= 64 << 20,
                "login.replay_max_bytes must be at most 67108864 (64 MiB); 0 turns the replay off",
            )
        });
    let replay_ttl = s.seconds(raw.replay_ttl, DEFAULT_REPLAY_TTL, "replay_ttl");
    let remember_me = raw
        .remember_me
        .map(|d| s.seconds(Some(d), Duration::ZERO, "remember_me"));
    s.finish(|| LoginConfig {
        source,
        users_file: PathBuf::from(
            raw.users_file
                .map_or_else(|| DEFAULT_USERS_FILE.to_string(), Spanned::into_inner),
        ),
        groups_file: raw.groups_file.map(|f| PathBuf::from(f.into_inner())),
        remember_me,
        page,
        prefix,
        expired_message: raw
            .expired_message
            .unwrap_or_else(|| DEFAULT_EXPIRED_MESSAGE.to_string()),
        max_attempts,
        attempt_window,
        template: raw.template.map(|f| PathBuf::from(f.into_inner())),
        basic_realm,
        replay_max_bytes,
        replay_ttl,
    })
}

/// Whether a realm can go between the quotes of `realm="..."` as it
/// stands: printable ASCII, no quote to end it early, no backslash that a
/// client would take for an escape.
fn is_quotable_realm(realm: &str) -> bool {
    !realm.is_empty()
        && realm
            .bytes()
            .all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\')
}

/// `prefix`: a path below `/`, kept without its trailing slashes.
fn prefix(raw: Option<Spanned<String>>, s: &mut Section<'_, '_>) -> String {
    let Some(prefix) = raw else {
        return DEFAULT_LOGIN_PREFIX.to_string();
    };
    let valid = |prefix: &String| {
        let trimmed = prefix.trim_end_matches('/');
        prefix.starts_with('/') && !trimmed.is_empty() && is_plain_path(trimmed)
    };
    let message = "login.prefix must be a path like \"/.sessiongate\" (not \"/\")";
    s.checked(prefix, valid, message)
        .trim_end_matches('/')
        .to_string()
}
