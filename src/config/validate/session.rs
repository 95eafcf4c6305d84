//! `[session]`: the cookie, the secret keys, lifetimes and initial data.

use super::positive;
use crate::config::raw::RawSession;
use crate::config::report::Reporter;
use crate::config::secrets::{SecretSource, resolve_key};
use crate::config::{
    CookieSecure, DEFAULT_COOKIE_NAME, DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_DATA_BYTES,
    DEFAULT_MAX_LIFETIME, DEFAULT_TOUCH_INTERVAL, MIN_SECRET_KEY_LEN, SameSite, SessionConfig,
};

pub(super) fn validate_session(
    raw: RawSession,
    r: &mut Reporter<'_>,
    secrets: &dyn SecretSource,
) -> Option<SessionConfig> {
    let mut ok = true;
    let cookie_name = match raw.cookie_name {
        None => DEFAULT_COOKIE_NAME.to_string(),
        Some(n) => {
            let valid = !n.get_ref().is_empty()
                && n.get_ref()
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
            if !valid {
                r.span(
                    &n,
                    "cookie_name must be a non-empty token (letters, digits, and !#$%&'*+-.^_`|~)",
                );
                ok = false;
            }
            n.into_inner()
        }
    };
    let mut secret_keys = Vec::new();
    let mut generated_key = None;
    match raw.secret_keys {
        None => {
            r.at(
                0,
                "session.secret_keys is required: add secret_keys = [\"env:SESSIONGATE_KEY\"] and set the variable (sessiongate gen-key prints a key)",
            );
            ok = false;
        }
        Some(keys) if keys.get_ref().is_empty() => {
            r.span(&keys, "session.secret_keys must hold at least one key");
            ok = false;
        }
        Some(keys) => {
            for (i, key) in keys.get_ref().iter().enumerate() {
                let resolved = resolve_key(key.get_ref(), i == 0, secrets).map(|resolved| {
                    if resolved.generated_for.is_some() {
                        generated_key = resolved.generated_for;
                    }
                    resolved.key
                });
                match resolved {
                    Ok(k) if k.len() < MIN_SECRET_KEY_LEN => {
                        r.span(
                            key,
                            format!(
                                "secret key {} is {} characters; at least {MIN_SECRET_KEY_LEN} are required (sessiongate gen-key prints one)",
                                i + 1,
                                k.len()
                            ),
                        );
                        ok = false;
                    }
                    Ok(k) => secret_keys.push(k.into_bytes()),
                    Err(e) => {
                        r.span(key, e.to_string());
                        ok = false;
                    }
                }
            }
        }
    }
    let idle_timeout = positive(
        raw.idle_timeout,
        DEFAULT_IDLE_TIMEOUT,
        "idle_timeout",
        r,
        &mut ok,
    );
    let max_lifetime = positive(
        raw.max_lifetime,
        DEFAULT_MAX_LIFETIME,
        "max_lifetime",
        r,
        &mut ok,
    );
    let cookie_path = match raw.cookie_path {
        None => "/".to_string(),
        Some(p) => {
            if !p.get_ref().starts_with('/')
                || p.get_ref()
                    .bytes()
                    .any(|b| b.is_ascii_control() || b == b';')
            {
                r.span(
                    &p,
                    "cookie_path must start with / and hold no ';' or control characters",
                );
                ok = false;
            }
            p.into_inner()
        }
    };
    let cookie_domain = match raw.cookie_domain {
        None => None,
        Some(d) => {
            let valid = !d.get_ref().is_empty()
                && d.get_ref()
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
            if !valid {
                r.span(&d, "cookie_domain must be a host name like \"example.org\"");
                ok = false;
            }
            Some(d.into_inner())
        }
    };
    let cookie_secure = raw.cookie_secure.map_or(CookieSecure::Auto, |s| s.0);
    let cookie_same_site = match raw.cookie_same_site {
        None => SameSite::Lax,
        Some(s) => {
            if *s.get_ref() == SameSite::None && cookie_secure == CookieSecure::Never {
                r.span(&s, "cookie_same_site = \"none\" requires a Secure cookie; browsers drop it otherwise");
                ok = false;
            }
            s.into_inner()
        }
    };
    if let Some(prefixed) = cookie_name.strip_prefix("__Host-") {
        let _ = prefixed;
        if cookie_secure == CookieSecure::Never || cookie_path != "/" || cookie_domain.is_some() {
            r.at(
                0,
                "a __Host- cookie_name needs cookie_secure other than false, cookie_path = \"/\" and no cookie_domain",
            );
            ok = false;
        }
    }
    if cookie_name.starts_with("__Secure-") && cookie_secure == CookieSecure::Never {
        r.at(
            0,
            "a __Secure- cookie_name needs cookie_secure other than false",
        );
        ok = false;
    }
    let max_data_bytes = raw
        .max_data_bytes
        .map_or(DEFAULT_MAX_DATA_BYTES, |v| v.into_inner());
    let mut initial = Vec::new();
    if let Some(init) = raw.initial {
        for (k, v) in init.get_ref() {
            if k.is_empty() {
                r.span(&init, "session.initial keys must not be empty");
                ok = false;
            }
            initial.push((k.clone(), v.0.clone()));
        }
        let encoded_len = encoded_len(&initial);
        if encoded_len > max_data_bytes {
            r.span(
                &init,
                format!(
                    "session.initial holds {encoded_len} bytes, more than max_data_bytes ({max_data_bytes})"
                ),
            );
            ok = false;
        }
    }
    ok.then(|| SessionConfig {
        cookie_name,
        secret_keys,
        generated_key,
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
