//! The backend's control headers: `upstream::control::take_control` on any
//! response header map.
//!
//! Afterwards no header carrying the prefix in any spelling (case, `_`, `.`
//! or `-`) is left, nor any hop-by-hop header (`TE: trailers` aside), nor a
//! `Set-Cookie` of our cookie; what was read is well formed; and a second
//! pass finds nothing more to take.

#![no_main]

use std::sync::OnceLock;

use arbitrary::Arbitrary;
use http::HeaderMap;
use http::header::{HeaderName, HeaderValue, SET_COOKIE, TE};
use libfuzzer_sys::fuzz_target;
use sessiongate::config::{Config, HeadersConfig};
use sessiongate::session::user::valid_user;
use sessiongate::upstream::control::take_control;

const COOKIE_NAME: &str = "sg_session";

#[derive(Debug, Arbitrary)]
struct Input {
    /// Which configured prefix: `X-Session-` or `X_SG.`.
    other_prefix: bool,
    headers: Vec<(Name, Vec<u8>)>,
}

#[derive(Debug, Arbitrary)]
enum Name {
    /// One of the names that matter here.
    Known(u8),
    /// One of them spelled another way: each byte of `spelling` picks the
    /// case of a letter or the separator in place of a `-`.
    Respelled(u8, Vec<u8>),
    /// Any bytes that make a header name.
    Raw(Vec<u8>),
}

const KNOWN: [&str; 22] = [
    "x-session-set",
    "x-session-delete",
    "x-session-login",
    "x-session-logout",
    "x-session-user",
    "x-session-data",
    "x-session-",
    "x-session",
    "x-sg-set",
    "x-sg-login",
    "x-sg-logout",
    "x-sg-delete",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "transfer-encoding",
    "upgrade",
    "http2-settings",
    "proxy-authenticate",
    "set-cookie",
    "content-type",
];

const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "transfer-encoding",
    "upgrade",
    "http2-settings",
];

impl Name {
    fn bytes(&self) -> Vec<u8> {
        match self {
            Name::Known(i) => KNOWN[usize::from(*i) % KNOWN.len()].as_bytes().to_vec(),
            Name::Respelled(i, spelling) => {
                let known = KNOWN[usize::from(*i) % KNOWN.len()];
                let mut pick = spelling.iter().copied().cycle();
                known
                    .bytes()
                    .map(|b| {
                        let p = pick.next().unwrap_or(0);
                        match b {
                            b'-' => b"-_."[usize::from(p % 3)],
                            _ if p & 1 == 1 => b.to_ascii_uppercase(),
                            _ => b,
                        }
                    })
                    .collect()
            }
            Name::Raw(bytes) => bytes.clone(),
        }
    }
}

fn configs() -> &'static [HeadersConfig; 2] {
    static CONFIGS: OnceLock<[HeadersConfig; 2]> = OnceLock::new();
    CONFIGS.get_or_init(|| {
        let config = |prefix: &str| {
            let text = format!(
                "[session]\nsecret_keys = [\"0123456789abcdef0123456789abcdef\"]\n\
                 [headers]\nprefix = \"{prefix}\"\n\
                 [[route]]\npath = \"/\"\nupstream = \"http://127.0.0.1:1\"\n"
            );
            text.parse::<Config>().expect("a valid config").headers
        };
        [config("X-Session-"), config("X_SG.")]
    })
}

/// The prefix test written out again: lowercase, `_` and `.` as `-`.
fn carries_prefix(name: &str, prefix: &str) -> bool {
    let folded: String = name
        .chars()
        .map(|c| match c {
            '_' | '.' => '-',
            c => c.to_ascii_lowercase(),
        })
        .collect();
    let prefix: String = prefix
        .chars()
        .map(|c| match c {
            '_' | '.' => '-',
            c => c.to_ascii_lowercase(),
        })
        .collect();
    folded.starts_with(&prefix)
}

fn sets_our_cookie(value: &HeaderValue) -> bool {
    let text = String::from_utf8_lossy(value.as_bytes());
    let first = text.split(';').next().unwrap_or("");
    first
        .split('=')
        .next()
        .unwrap_or("")
        .trim()
        .eq_ignore_ascii_case(COOKIE_NAME)
}

fuzz_target!(|input: Input| {
    let cfg = &configs()[usize::from(input.other_prefix)];
    let mut headers = HeaderMap::new();
    for (name, value) in &input.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(&name.bytes()),
            HeaderValue::from_bytes(value),
        ) {
            headers.append(name, value);
        }
    }
    let before = headers.clone();
    let control = take_control(&mut headers, cfg, COOKIE_NAME);

    for name in headers.keys() {
        assert!(
            !carries_prefix(name.as_str(), &cfg.prefix),
            "{name} is left: {before:?}"
        );
        assert!(
            *name == TE || !HOP_BY_HOP.contains(&name.as_str()),
            "{name} is left: {before:?}"
        );
    }
    for te in headers.get_all(TE) {
        assert_eq!(te, "trailers", "{before:?}");
    }
    for value in headers.get_all(SET_COOKIE) {
        assert!(!sets_our_cookie(value), "{value:?} is left");
    }
    if let Some(user) = &control.login {
        assert!(valid_user(user), "{user:?}");
    }
    for (k, _) in &control.set {
        assert!(!k.is_empty());
    }
    for k in &control.delete {
        assert!(!k.is_empty() && k.trim() == k, "{k:?}");
    }

    let after = headers.clone();
    let again = take_control(&mut headers, cfg, COOKIE_NAME);
    assert!(again.is_empty() && again.rejected.is_empty(), "{again:?}");
    assert_eq!(headers, after, "a second pass changed the headers");
});
