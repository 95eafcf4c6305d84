//! The `Cookie` request header: `cookie_values`, which finds our cookie, and
//! `upstream::request_headers::strip_cookie`, which takes it out before the request
//! goes upstream.
//!
//! After stripping, our cookie name never appears as a cookie name, and
//! every other cookie is still there, in order.

#![no_main]

use arbitrary::Arbitrary;
use http::HeaderMap;
use http::header::{COOKIE, HeaderValue};
use libfuzzer_sys::fuzz_target;
use sessiongate::session::cookie::cookie_values;
use sessiongate::upstream::request_headers::strip_cookie;

#[derive(Debug, Arbitrary)]
struct Input {
    name: Name,
    /// One `Cookie` header each (those that are valid header values).
    values: Vec<Vec<u8>>,
}

#[derive(Debug, Arbitrary)]
enum Name {
    Known(u8),
    Other(String),
}

const KNOWN: [&str; 4] = ["sg_session", "__Host-sg", "s", "SG_SESSION"];

/// A name `session.cookie_name` accepts: a non-empty token.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Every `name=value` pair (trimmed, non-empty) of the `Cookie` headers, or
/// `None` when one of them is not visible ASCII.
fn pairs(headers: &HeaderMap) -> Option<Vec<String>> {
    let mut out = Vec::new();
    for v in headers.get_all(COOKIE) {
        for pair in v.to_str().ok()?.split(';') {
            let pair = pair.trim();
            if !pair.is_empty() {
                out.push(pair.to_owned());
            }
        }
    }
    Some(out)
}

fn cookie_name(pair: &str) -> &str {
    pair.split('=').next().unwrap_or(pair).trim()
}

fuzz_target!(|input: Input| {
    let name = match &input.name {
        Name::Known(i) => KNOWN[usize::from(*i) % KNOWN.len()],
        Name::Other(s) if valid_name(s) => s.as_str(),
        Name::Other(_) => return,
    };
    let mut headers = HeaderMap::new();
    for v in &input.values {
        if let Ok(v) = HeaderValue::from_bytes(v) {
            headers.append(COOKIE, v);
        }
    }

    for value in cookie_values(&headers, name) {
        assert!(!value.contains(';'), "{value:?}");
    }

    let before = headers.clone();
    strip_cookie(&mut headers, name);
    assert_eq!(cookie_values(&headers, name).count(), 0, "{before:?}");
    let after = pairs(&headers).expect("what is left is visible ASCII");
    for pair in &after {
        assert_ne!(cookie_name(pair), name, "{before:?} -> {headers:?}");
    }
    if headers != before {
        assert!(headers.get_all(COOKIE).iter().count() <= 1);
        let others: Vec<String> = before
            .get_all(COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .map(str::trim)
            .filter(|p| !p.is_empty() && cookie_name(p) != name)
            .map(str::to_owned)
            .collect();
        assert_eq!(after, others, "another cookie was lost: {before:?}");
    }
});
