//! `[session]`: the cookie, the secret keys, lifetimes and initial data.

use std::collections::BTreeMap;

use toml::Spanned;

use super::Section;
use crate::config::raw::{InitialValue, RawSession, format_duration};
use crate::config::report::Reporter;
use crate::config::secrets::{SecretSource, resolve_key};
use crate::config::{
    CookieSecure, DEFAULT_COOKIE_NAME, DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_DATA_BYTES,
    DEFAULT_MAX_LIFETIME, DEFAULT_TOUCH_INTERVAL, MIN_SECRET_KEY_LEN, SameSite, SessionConfig,
};

/// Checks `[session]`, resolving its secret keys from `secrets`.
pub(super) fn validate_session(
    raw: RawSession,
    r: &mut Reporter<'_>,
    secrets: &dyn SecretSource,
) -> Option<SessionConfig> {
    let mut s = Section::new(r);
    let cookie_name = cookie_name(raw.cookie_name, &mut s);
    let (secret_keys, generated_key) = secret_keys(raw.secret_keys, secrets, &mut s);
    // Where a warning about the two lifetimes goes: the idle timeout if
    // written, else the lifetime.
    let lifetimes_at = raw
        .idle_timeout
        .as_ref()
        .or(raw.max_lifetime.as_ref())
        .map(|d| Spanned::new(d.span(), ()));
    let idle_timeout = s.seconds(raw.idle_timeout, DEFAULT_IDLE_TIMEOUT, "idle_timeout");
    let max_lifetime = s.seconds(raw.max_lifetime, DEFAULT_MAX_LIFETIME, "max_lifetime");
    if let Some(at) = lifetimes_at
        && idle_timeout > max_lifetime
    {
        s.warn(&at, lifetimes_warning(idle_timeout, max_lifetime));
    }
    let cookie_path = cookie_path(raw.cookie_path, &mut s);
    let cookie_domain = raw
        .cookie_domain
        .map(|domain| cookie_domain(domain, &mut s));
    let cookie_secure = raw
        .cookie_secure
        .map_or(CookieSecure::Auto, |v| v.into_inner().0);
    let cookie_same_site = same_site(raw.cookie_same_site, cookie_secure, &mut s);
    let has_domain = cookie_domain.is_some();
    check_name_prefix(
        &cookie_name,
        cookie_secure,
        &cookie_path,
        has_domain,
        &mut s,
    );
    let max_data_bytes = raw
        .max_data_bytes
        .map_or(DEFAULT_MAX_DATA_BYTES, |v| v.into_inner());
    let initial = raw
        .initial
        .map(|init| initial(init, max_data_bytes, &mut s))
        .unwrap_or_default();
    s.finish(|| SessionConfig {
        cookie_name,
        secret_keys,
        generated_key,
        kept_key: None,
        idle_timeout,
        max_lifetime,
        touch_interval: raw.touch_interval.map_or(DEFAULT_TOUCH_INTERVAL, |d| d.0),
        cookie_secure,
        cookie_same_site,
        cookie_path,
        cookie_domain,
        persistent_cookie: raw.persistent_cookie.unwrap_or(false),
        bind_ip: raw.bind_ip.unwrap_or(false),
        max_data_bytes,
        initial,
    })
}

/// Why an idle timeout longer than the lifetime is only a warning: the
/// config works, the idle timeout never fires.
fn lifetimes_warning(idle: std::time::Duration, lifetime: std::time::Duration) -> String {
    format!(
        "session.idle_timeout ({}) is longer than session.max_lifetime ({}); max_lifetime wins: sessions end after {} however idle",
        format_duration(idle),
        format_duration(lifetime),
        format_duration(lifetime)
    )
}

/// `cookie_name`: an HTTP token.
fn cookie_name(raw: Option<Spanned<String>>, s: &mut Section<'_, '_>) -> String {
    let Some(name) = raw else {
        return DEFAULT_COOKIE_NAME.to_string();
    };
    s.checked(
        name,
        |name| {
            !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
        },
        "cookie_name must be a non-empty token (letters, digits, and !#$%&'*+-.^_`|~)",
    )
}

/// `cookie_path`: absolute, and nothing that would end the attribute.
fn cookie_path(raw: Option<Spanned<String>>, s: &mut Section<'_, '_>) -> String {
    let Some(path) = raw else {
        return "/".to_string();
    };
    s.checked(
        path,
        |path| path.starts_with('/') && !path.bytes().any(|b| b.is_ascii_control() || b == b';'),
        "cookie_path must start with / and hold no ';' or control characters",
    )
}

/// `cookie_domain`: a host name.
fn cookie_domain(raw: Spanned<String>, s: &mut Section<'_, '_>) -> String {
    s.checked(
        raw,
        |domain| {
            !domain.is_empty()
                && domain
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        },
        "cookie_domain must be a host name like \"example.org\"",
    )
}

/// `cookie_same_site`: `none` only on a cookie that may be Secure.
fn same_site(
    raw: Option<Spanned<SameSite>>,
    secure: CookieSecure,
    s: &mut Section<'_, '_>,
) -> SameSite {
    let Some(same_site) = raw else {
        return SameSite::Lax;
    };
    s.checked(
        same_site,
        |same_site| *same_site != SameSite::None || secure != CookieSecure::Never,
        "cookie_same_site = \"none\" requires a Secure cookie; browsers drop it otherwise",
    )
}

/// `secret_keys`, resolved, and the variable of a key generated at start
/// (see [`resolve_key`]). Every key must be at least [`MIN_SECRET_KEY_LEN`] long.
fn secret_keys(
    raw: Option<Spanned<Vec<Spanned<String>>>>,
    secrets: &dyn SecretSource,
    s: &mut Section<'_, '_>,
) -> (Vec<Vec<u8>>, Option<String>) {
    let mut keys = Vec::new();
    let mut generated_key = None;
    let specs = match raw {
        None if s.was_removed("session.secret_keys") => return (keys, generated_key),
        None => {
            s.error_at(
                0,
                "session.secret_keys is required: add secret_keys = [\"env:SESSIONGATE_KEY\"] and set the variable (sessiongate gen-key prints a key)",
            );
            return (keys, generated_key);
        }
        Some(specs) if specs.get_ref().is_empty() => {
            s.error(&specs, "session.secret_keys must hold at least one key");
            return (keys, generated_key);
        }
        Some(specs) => specs.into_inner(),
    };
    for (i, spec) in specs.iter().enumerate() {
        let Some(resolved) = s.parsed(spec, resolve_key(spec.get_ref(), i == 0, secrets)) else {
            continue;
        };
        if resolved.generated_for.is_some() {
            generated_key = resolved.generated_for;
        }
        if resolved.key.len() < MIN_SECRET_KEY_LEN {
            s.error(
                spec,
                format!(
                    "secret key {} is {} characters; at least {MIN_SECRET_KEY_LEN} are required (sessiongate gen-key prints one)",
                    i + 1,
                    resolved.key.len()
                ),
            );
        } else {
            keys.push(resolved.key.into_bytes());
        }
    }
    (keys, generated_key)
}

/// Browsers drop a `__Host-` or `__Secure-` cookie that lacks what its
/// name promises.
fn check_name_prefix(
    name: &str,
    secure: CookieSecure,
    path: &str,
    has_domain: bool,
    s: &mut Section<'_, '_>,
) {
    if name.starts_with("__Host-") && (secure == CookieSecure::Never || path != "/" || has_domain) {
        s.error_at(
            0,
            "a __Host- cookie_name needs cookie_secure other than false, cookie_path = \"/\" and no cookie_domain",
        );
    }
    if name.starts_with("__Secure-") && secure == CookieSecure::Never {
        s.error_at(
            0,
            "a __Secure- cookie_name needs cookie_secure other than false",
        );
    }
}

/// `initial`, in key order: no empty key, and no more than `max_data_bytes`
/// once encoded.
fn initial(
    raw: Spanned<BTreeMap<String, InitialValue>>,
    max_data_bytes: usize,
    s: &mut Section<'_, '_>,
) -> Vec<(String, String)> {
    let mut initial = Vec::new();
    for (k, v) in raw.get_ref() {
        if k.is_empty() {
            s.error(&raw, "session.initial keys must not be empty");
        }
        initial.push((k.clone(), v.0.clone()));
    }
    let encoded_len = encoded_len(&initial);
    if encoded_len > max_data_bytes {
        s.error(
            &raw,
            format!(
                "session.initial holds {encoded_len} bytes, more than max_data_bytes ({max_data_bytes})"
            ),
        );
    }
    initial
}

/// The size of `pairs` as a session holds them: `k=v&k2=v2`,
/// `application/x-www-form-urlencoded`, the form `max_data_bytes` limits.
fn encoded_len(pairs: &[(String, String)]) -> usize {
    let mut encoded = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        encoded.append_pair(k, v);
    }
    encoded.finish().len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_data_is_measured_urlencoded() {
        let pairs = |p: &[(&str, &str)]| -> Vec<(String, String)> {
            p.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(encoded_len(&[]), 0);
        // k=%C3%A9&z=1&a+b=%26
        assert_eq!(
            encoded_len(&pairs(&[("k", "é"), ("z", "1"), ("a b", "&")])),
            20
        );
    }
}
