//! `[headers]`: the names of injected and control headers, and the keys
//! of the signed assertion.

use http::HeaderName;
use toml::Spanned;

use super::Section;
use crate::config::raw::{RawHeaders, SignKeySpecs};
use crate::config::report::Reporter;
use crate::config::secrets::{ENV_OR_GENERATE, SecretSource, resolve_secret};
use crate::config::{
    DEFAULT_HEADER_PREFIX, HeaderNames, HeadersConfig, MIN_SECRET_KEY_LEN, SignKey, sign_key_id,
};

/// Checks `[headers]`, resolving `sign_key` from `secrets`, and builds
/// every header name its prefix makes.
pub(super) fn validate_headers(
    raw: RawHeaders,
    r: &mut Reporter<'_>,
    secrets: &dyn SecretSource,
) -> Option<HeadersConfig> {
    let mut s = Section::new(r);
    let sign_keys = raw
        .sign_key
        .map(|specs| sign_keys(specs, secrets, &mut s))
        .unwrap_or_default();
    let prefix = raw.prefix.map_or_else(
        || DEFAULT_HEADER_PREFIX.to_string(),
        |prefix| {
            s.checked(
                prefix,
                |prefix| is_header_prefix(prefix),
                "headers.prefix must be a header name start like \"X-Session-\"",
            )
        },
    );
    let names = header_names(&prefix)?;
    s.finish(|| HeadersConfig {
        match_prefix: normalize_header_name(&prefix),
        prefix,
        send_id: raw.send_id.unwrap_or(false),
        names,
        sign_keys,
    })
}

/// `sign_key`, resolved. Each key is at least [`MIN_SECRET_KEY_LEN`]
/// long, holds no space or control character (verifiers take a list of
/// keys in one variable, separated by spaces), and has a key id of its
/// own. Messages name a key by its place, never by its text.
fn sign_keys(
    raw: Spanned<SignKeySpecs>,
    secrets: &dyn SecretSource,
    s: &mut Section<'_, '_>,
) -> Vec<SignKey> {
    let specs = match raw.get_ref() {
        SignKeySpecs::One(spec) => vec![Spanned::new(raw.span(), spec.clone())],
        SignKeySpecs::Many(specs) if specs.is_empty() => {
            s.error(&raw, "headers.sign_key must hold at least one key");
            return Vec::new();
        }
        SignKeySpecs::Many(specs) => specs.clone(),
    };
    let mut keys: Vec<SignKey> = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        let n = i + 1;
        if spec.get_ref().starts_with(ENV_OR_GENERATE) {
            s.error(
                spec,
                "headers.sign_key cannot be env-or-generate: the backends must hold the same key (sessiongate gen-key prints one)",
            );
            continue;
        }
        let Some(key) = s.parsed(spec, resolve_secret(spec.get_ref(), secrets)) else {
            continue;
        };
        if key.len() < MIN_SECRET_KEY_LEN {
            s.error(
                spec,
                format!(
                    "sign key {n} is {} characters; at least {MIN_SECRET_KEY_LEN} are required (sessiongate gen-key prints one)",
                    key.len()
                ),
            );
            continue;
        }
        if key
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        {
            s.error(
                spec,
                format!(
                    "sign key {n} holds a space or control character; verifiers read their keys as one list separated by spaces (sessiongate gen-key prints a key without any)"
                ),
            );
            continue;
        }
        let kid = sign_key_id(key.as_bytes());
        if let Some(m) = keys.iter().position(|k| k.kid == kid) {
            s.error(
                spec,
                format!("sign key {n} is sign key {} again (key id {kid})", m + 1),
            );
            continue;
        }
        keys.push(SignKey {
            kid,
            key: key.into_bytes(),
        });
    }
    keys
}

/// Whether `prefix` starts a header name.
fn is_header_prefix(prefix: &str) -> bool {
    !prefix.is_empty() && HeaderName::from_bytes(format!("{prefix}User").as_bytes()).is_ok()
}

/// Every header name `prefix` makes; `None` when they are not header names.
fn header_names(prefix: &str) -> Option<HeaderNames> {
    let name = |suffix: &str| HeaderName::from_bytes(format!("{prefix}{suffix}").as_bytes()).ok();
    Some(HeaderNames {
        user: name("User")?,
        data: name("Data")?,
        created: name("Created")?,
        expires: name("Expires")?,
        new: name("New")?,
        id: name("Id")?,
        set: name("Set")?,
        delete: name("Delete")?,
        incr: name("Incr")?,
        login: name("Login")?,
        logout: name("Logout")?,
        groups: name("Groups")?,
        expired: name("Expired")?,
        login_failed: name("Login-Failed")?,
        signature: name("Signature")?,
    })
}

/// Lowercases a header name and treats `_` and `.` as `-`, the way a CGI
/// gateway or a framework may fold them into one variable.
pub fn normalize_header_name(name: &str) -> String {
    name.bytes()
        .map(|b| match b {
            b'_' | b'.' => '-',
            other => other.to_ascii_lowercase() as char,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names_fold_underscores_and_dots() {
        assert_eq!(normalize_header_name("X_Session.User"), "x-session-user");
    }
}
