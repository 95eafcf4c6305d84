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
    use std::path::Path;

    use super::*;
    use crate::config::testing::{FixedSecrets, KEY, ROUTE};
    use crate::config::{Config, ConfigError};

    const SIGN_KEY: &str = "sign-key-0123456789-abcdefghijklmnop";
    const OLD_SIGN_KEY: &str = "old-sign-key-0123456789-abcdefghijk";

    fn parse(sign_key: &str, secrets: &FixedSecrets) -> Result<Config, Vec<ConfigError>> {
        let text = format!(
            "[session]\nsecret_keys = [\"{KEY}\"]\n\n[headers]\nsign_key = {sign_key}\n\n{ROUTE}"
        );
        Config::parse_with_secrets(Path::new("<config>"), &text, secrets).map_err(|e| e.0)
    }

    #[test]
    fn one_sign_key_or_a_list_from_any_secret_form_the_first_signs() {
        let secrets = FixedSecrets::default()
            .with_env("SIGN_KEY", SIGN_KEY)
            .with_file("/run/secrets/old", &format!("{OLD_SIGN_KEY}\n"));
        let c = parse("\"env:SIGN_KEY\"", &secrets).unwrap();
        assert_eq!(c.headers.sign_keys.len(), 1);
        assert_eq!(c.headers.sign_keys[0].key, SIGN_KEY.as_bytes());
        assert_eq!(c.headers.sign_keys[0].kid, sign_key_id(SIGN_KEY.as_bytes()));

        let c = parse("[\"env:SIGN_KEY\", \"file:/run/secrets/old\"]", &secrets).unwrap();
        let kids: Vec<&str> = c.headers.sign_keys.iter().map(|k| k.kid.as_str()).collect();
        assert_eq!(
            kids,
            [
                sign_key_id(SIGN_KEY.as_bytes()),
                sign_key_id(OLD_SIGN_KEY.as_bytes())
            ]
        );
        assert_eq!(c.headers.names.signature.as_str(), "x-session-signature");

        let c = parse(&format!("\"{SIGN_KEY}\""), &secrets).unwrap();
        assert_eq!(c.headers.sign_keys[0].key, SIGN_KEY.as_bytes());
    }

    #[test]
    fn key_ids_are_eight_hex_digits_of_a_labelled_sha256() {
        // SHA-256("sessiongate-kid" || "sign-key-0123456789-abcdefghijklmnop"),
        // as `printf %s ... | sha256sum` gives it.
        let kid = sign_key_id(SIGN_KEY.as_bytes());
        assert_eq!(kid.len(), 8);
        assert!(
            kid.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_ne!(kid, sign_key_id(OLD_SIGN_KEY.as_bytes()));
    }

    #[test]
    fn bad_sign_keys_are_refused_at_the_key_without_showing_it() {
        let short = "short-sign-key";
        let spaced = "sign key 0123456789 abcdefghijklmnop";
        let secrets = FixedSecrets::default()
            .with_env("SHORT", short)
            .with_env("SPACED", spaced);
        for (value, message) in [
            (
                "\"env:SHORT\"",
                "sign key 1 is 14 characters; at least 32 are required",
            ),
            (
                "[\"env:SPACED\"]",
                "sign key 1 holds a space or control character",
            ),
            (
                &format!("[\"{SIGN_KEY}\", \"{SIGN_KEY}\"]"),
                "sign key 2 is sign key 1 again",
            ),
            ("[]", "headers.sign_key must hold at least one key"),
            ("\"env:UNSET\"", "environment variable UNSET is not set"),
            (
                "\"env-or-generate:SIGN\"",
                "headers.sign_key cannot be env-or-generate",
            ),
        ] {
            let errs = parse(value, &secrets).unwrap_err();
            assert_eq!(errs.len(), 1, "{value}: {errs:?}");
            assert!(errs[0].message.starts_with(message), "{value}: {errs:?}");
            assert_eq!(errs[0].line, 5, "{value}: {errs:?}");
            for key in [short, spaced, SIGN_KEY] {
                assert!(!errs[0].message.contains(key), "{errs:?}");
            }
        }
    }

    #[test]
    fn sign_keys_never_reach_debug_output() {
        let c = parse(&format!("\"{SIGN_KEY}\""), &FixedSecrets::default()).unwrap();
        let shown = format!("{:?}", c.headers);
        assert!(!shown.contains(SIGN_KEY), "{shown}");
        assert!(shown.contains(&c.headers.sign_keys[0].kid), "{shown}");
    }

    #[test]
    fn header_names_fold_underscores_and_dots() {
        assert_eq!(normalize_header_name("X_Session.User"), "x-session-user");
    }
}
