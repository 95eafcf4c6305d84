//! Path normalisation: `canonical::normalize_path` on any text, and
//! `normalize_uri` on any request target `http` parses.
//!
//! Besides not panicking, the normal form must be what routing relies on:
//! normalising it again changes nothing; it starts with `/` when the input
//! did; it has no `.`, `..` or empty segment (a trailing `/` aside); every
//! escape is two upper-case hex digits and never one of an unreserved
//! character (so never `%2E`).

#![no_main]

use libfuzzer_sys::fuzz_target;
use sessiongate::canonical::{normalize_path, normalize_uri};

fuzz_target!(|input: &str| {
    check_path(input);
    if let Ok(uri) = input.parse::<http::Uri>() {
        check_uri(uri);
    }
});

fn check_path(input: &str) {
    let Ok(out) = normalize_path(input) else {
        return;
    };
    if !input.starts_with('/') {
        assert_eq!(out, input, "a path without a leading / is left alone");
        return;
    }
    assert!(out.starts_with('/'), "{input:?} -> {out:?}");
    assert_eq!(
        normalize_path(&out).as_deref(),
        Ok(&*out),
        "not idempotent: {input:?}"
    );
    let inner = out[1..].strip_suffix('/').unwrap_or(&out[1..]);
    if !inner.is_empty() {
        for segment in inner.split('/') {
            assert!(
                !matches!(segment, "" | "." | ".."),
                "{input:?} -> {out:?}: segment {segment:?}"
            );
        }
    }
    let bytes = out.as_bytes();
    for (i, _) in out.match_indices('%') {
        let (Some(&hi), Some(&lo)) = (bytes.get(i + 1), bytes.get(i + 2)) else {
            panic!("{input:?} -> {out:?}: a % without two digits");
        };
        for digit in [hi, lo] {
            assert!(
                digit.is_ascii_digit() || (b'A'..=b'F').contains(&digit),
                "{input:?} -> {out:?}: escape not in upper-case hex"
            );
        }
        let byte = u8::from_str_radix(&out[i + 1..i + 3], 16).expect("two hex digits");
        assert!(
            !(byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~')),
            "{input:?} -> {out:?}: escape of an unreserved character"
        );
    }
}

/// `normalize_uri` puts `normalize_path`'s answer in the path and touches
/// nothing else; it fails only when `normalize_path` does.
fn check_uri(uri: http::Uri) {
    let path = normalize_path(uri.path()).map(|p| p.into_owned());
    let mut normalised = uri.clone();
    match normalize_uri(&mut normalised) {
        Ok(()) => {
            assert_eq!(Ok(normalised.path()), path.as_deref(), "{uri}");
            assert_eq!(normalised.query(), uri.query(), "{uri}");
            assert_eq!(normalised.scheme(), uri.scheme(), "{uri}");
            assert_eq!(normalised.authority(), uri.authority(), "{uri}");
        }
        Err(e) => assert_eq!(path.err(), Some(e), "{uri}"),
    }
}
