//! The `next` parameter of the login page: `login::next::safe_next` on any
//! text.
//!
//! What comes out is a path on this site however it is read: it starts with
//! one `/` (never `//` or `/\`), holds no control character, has no scheme,
//! stays on the site when a browser resolves it, and still does once
//! percent-decoded (as a backend or an older browser might); and it is a
//! fixed point, so checking it again keeps it.

#![no_main]

use http::HeaderValue;
use libfuzzer_sys::fuzz_target;
use sessiongate::login::next::safe_next;
use url::Url;

const SITE: &str = "https://site.example/login/page";

fuzz_target!(|raw: &str| {
    let out = safe_next(raw);
    assert!(out == raw || out == "/", "{raw:?} -> {out:?}");
    assert!(out.starts_with('/'), "{out:?}");
    assert!(!out.starts_with("//") && !out.starts_with("/\\"), "{out:?}");
    assert!(!out.chars().any(char::is_control), "{out:?}");
    assert!(HeaderValue::from_str(&out).is_ok(), "{out:?}");
    assert!(Url::parse(&out).is_err(), "{out:?} has a scheme");
    assert_eq!(safe_next(&out), out, "not a fixed point");

    let base = Url::parse(SITE).expect("a valid base");
    let mut text = out.clone();
    for round in 0..4 {
        let resolved = base.join(&text).expect("a relative reference");
        assert_eq!(
            (resolved.scheme(), resolved.host_str()),
            ("https", Some("site.example")),
            "{out:?} leaves the site after {round} rounds of decoding: {text:?}"
        );
        let decoded = String::from_utf8_lossy(&percent_decode(text.as_bytes())).into_owned();
        if decoded == text {
            break;
        }
        text = decoded;
    }
});

/// `%XX` becomes the byte; anything else stays.
fn percent_decode(input: &[u8]) -> Vec<u8> {
    let hex = |b: u8| char::from(b).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        let escaped = match input.get(i..i + 3) {
            Some(&[b'%', hi, lo]) => hex(hi).zip(hex(lo)),
            _ => None,
        };
        match escaped {
            Some((hi, lo)) => {
                out.push(hi << 4 | lo);
                i += 3;
            }
            None => {
                out.push(input[i]);
                i += 1;
            }
        }
    }
    out
}
