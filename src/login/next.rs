//! Where to send the browser after a login or logout: the `next` parameter,
//! accepted only when it is a path on this site, so that the login page
//! cannot be used as an open redirect.
//!
//! The value is checked as the browser will read it in a `Location` header:
//! it must start with exactly one `/` (no `//host`, no `/\host`, which
//! browsers treat as `//`), hold only printable ASCII (a real request target
//! always does; anything else was crafted), and contain no backslash.
//!
//! Percent-encoded characters are then decoded (repeatedly, to catch double
//! encoding) and the result must hold no control character (`%0d%0a`,
//! `%09`, `%00`), no backslash in the path (`%5C`, which some servers
//! rewrite to `/`), no `.` or `..` segment, and no look-alike of a slash
//! (`%EF%BC%8F`, a fullwidth `／`) right after the leading `/`.
//!
//! An encoded slash inside the path is allowed (`/a/%2F/x`), but not one
//! that makes the decoded path start with `//`: `/%2F/evil.example` would
//! stay on this site in today's browsers, yet any component that decodes the
//! value once (a backend, a logging tool, an older browser) would read a
//! host in it, so it is refused like `//evil.example`.

/// Where a rejected or empty `next` sends the browser.
const HOME: &str = "/";

/// The longest `next` honoured; longer values are not worth the risk of
/// oversized headers.
pub const MAX_NEXT_LEN: usize = 4096;

/// More rounds of percent-decoding than this means the value was crafted.
const MAX_DECODE_ROUNDS: usize = 4;

/// Returns `raw` when it is a safe same-site path (see the module docs),
/// otherwise `/`.
///
/// `raw` is the parameter as the form or query string decoding gave it,
/// that is the original path and query, still percent-encoded as the
/// browser sent them (`/%2F/x?q=a%26b`).
pub fn safe_next(raw: &str) -> String {
    if is_same_site_path(raw) {
        raw.to_owned()
    } else {
        HOME.to_owned()
    }
}

fn is_same_site_path(raw: &str) -> bool {
    let bytes = raw.as_bytes();
    if bytes.len() > MAX_NEXT_LEN || bytes.first() != Some(&b'/') {
        return false;
    }
    if matches!(bytes.get(1), Some(b'/' | b'\\')) {
        return false;
    }
    // Printable ASCII without the space: a request target as sent on the
    // wire. This also keeps the value a valid header value.
    if !bytes.iter().all(|b| matches!(b, b'!'..=b'~')) || bytes.contains(&b'\\') {
        return false;
    }
    let path_len = raw.find(['?', '#']).unwrap_or(raw.len());
    let (path, query) = raw.split_at(path_len);
    let Some(path) = fully_decoded(path) else {
        return false;
    };
    let Some(query) = fully_decoded(query) else {
        return false;
    };
    !has_control(&path)
        && !has_control(&query)
        && !path.contains('\\')
        && !path.starts_with("//")
        && !has_dot_segment(&path)
        && !starts_with_slash_lookalike(&path)
}

/// Percent-decodes until nothing changes; `None` when that takes more than
/// [`MAX_DECODE_ROUNDS`]. Invalid UTF-8 is replaced, which is enough for the
/// checks that follow.
fn fully_decoded(text: &str) -> Option<String> {
    let mut current = text.to_owned();
    for _ in 0..MAX_DECODE_ROUNDS {
        let decoded = String::from_utf8_lossy(&percent_decode(current.as_bytes())).into_owned();
        if decoded == current {
            return Some(current);
        }
        current = decoded;
    }
    None
}

/// `%XX` becomes the byte; a `%` without two hex digits stays as it is.
fn percent_decode(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        let escaped = match input.get(i..i + 3) {
            Some([b'%', hi, lo]) => hex_value(*hi).zip(hex_value(*lo)),
            _ => None,
        };
        match escaped {
            Some((hi, lo)) => {
                out.push((hi << 4) | lo);
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

fn hex_value(digit: u8) -> Option<u8> {
    char::from(digit)
        .to_digit(16)
        .and_then(|v| u8::try_from(v).ok())
}

/// C0 controls, DEL and C1 controls (such as U+0085, NEXT LINE).
fn has_control(text: &str) -> bool {
    text.chars().any(char::is_control)
}

/// `.` and `..` segments, including Tomcat's `..;` form: a real browser
/// removes them before sending a request, so only a crafted value has them.
fn has_dot_segment(path: &str) -> bool {
    path.split('/').any(|segment| {
        let name = segment.split(';').next().unwrap_or(segment);
        name == "." || name == ".."
    })
}

/// A character that Unicode normalisation (NFKC, IDNA) or a sloppy parser
/// may turn into `/` or `\`, directly after the leading slash, where it could
/// make `//host`.
fn starts_with_slash_lookalike(path: &str) -> bool {
    const LOOKALIKES: [char; 8] = [
        '\u{FF0F}', // FULLWIDTH SOLIDUS
        '\u{FF3C}', // FULLWIDTH REVERSE SOLIDUS
        '\u{2215}', // DIVISION SLASH
        '\u{2044}', // FRACTION SLASH
        '\u{29F8}', // BIG SOLIDUS
        '\u{29F9}', // BIG REVERSE SOLIDUS
        '\u{FE68}', // SMALL REVERSE SOLIDUS
        '\u{2216}', // SET MINUS
    ];
    path.chars()
        .nth(1)
        .is_some_and(|second| LOOKALIKES.contains(&second))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(raw: &str) {
        assert_eq!(safe_next(raw), raw, "{raw:?} should be kept");
    }

    fn refused(raw: &str) {
        assert_eq!(safe_next(raw), "/", "{raw:?} should be refused");
    }

    #[test]
    fn ordinary_paths_are_kept() {
        for raw in [
            "/",
            "/index.html",
            "/cgi-bin/app.cgi?x=1&y=2",
            "/a/b/c/?q=%2F%2Fevil.com",
            "/search?q=a+b&lang=en#results",
            "/caf%C3%A9",
            "/%E3%80%82",
            "/docs/%E3%80%82/x",
            "/@evil.com",
            "/user:pass@evil.com",
            "/javascript:alert(1)",
            "/100%",
            "/%zz",
            "/a.b/..c/.d",
            "/path%20with%20spaces",
        ] {
            kept(raw);
        }
    }

    #[test]
    fn encoded_slashes_inside_a_path_are_kept() {
        kept("/a%2Fb");
        kept("/a/%2F/x");
    }

    #[test]
    fn encoded_double_slashes_at_the_start_go_home() {
        for raw in [
            "/%2F/x",
            "/%2F/evil.com",
            "/%2f%2fevil.com",
            "/%252F%252Fevil.com",
        ] {
            assert_eq!(safe_next(raw), "/", "{raw}");
        }
    }

    #[test]
    fn empty_and_relative_values_go_home() {
        for raw in [
            "",
            "index.html",
            "./x",
            "../x",
            "?next=/",
            "#top",
            "%2F",
            "%2Fx",
        ] {
            refused(raw);
        }
    }

    #[test]
    fn other_hosts_and_schemes_go_home() {
        for raw in [
            "//evil.com",
            "///evil.com",
            "////evil.com",
            "//evil.com/%2F..",
            "/\\evil.com",
            "/\\/evil.com",
            "\\/\\/evil.com",
            "\\\\evil.com",
            "https://evil.com",
            "http:/evil.com",
            "http:evil.com",
            "HTTPS://evil.com",
            "//https://evil.com",
            "javascript:alert(1)",
            "JavaScript:alert(1)",
            "data:text/html,<script>alert(1)</script>",
            "vbscript:msgbox(1)",
            "%2F%2Fevil.com",
            "%2f%2fevil.com",
            "%5C%5Cevil.com",
            "//evil%E3%80%82com",
            "//evil\u{3002}com",
            "\u{FF0F}\u{FF0F}evil.com",
            "/\u{FF0F}evil.com",
            "/\u{3002}",
            "/%EF%BC%8F%EF%BC%8Fevil.com",
            "/%EF%BC%8Fevil.com",
            "/%EF%BC%BCevil.com",
            "/%E2%88%95evil.com",
        ] {
            refused(raw);
        }
    }

    #[test]
    fn backslashes_raw_or_encoded_go_home() {
        for raw in [
            "/%5Cevil.com",
            "/%5cevil.com",
            "/%5C%5Cevil.com",
            "/a/%5C/b",
            "/a\\b",
            "/x?q=\\",
            "/%255Cevil.com",
        ] {
            refused(raw);
        }
    }

    #[test]
    fn control_characters_raw_or_encoded_go_home() {
        for raw in [
            "/\t/evil.com",
            "/\r\n/evil.com",
            "/x\r\nSet-Cookie: a=b",
            "/\u{0}",
            "/x\u{7f}",
            "/\u{85}",
            "/%09/evil.com",
            "/%0d%0aSet-Cookie:%20a=b",
            "/%0D%0ALocation:%20//evil.com",
            "/%00",
            "/%7F",
            "/%C2%85",
            "/x?a=%0a",
            "/x#%0d",
            "/%250a",
            "/%25250d",
        ] {
            refused(raw);
        }
    }

    #[test]
    fn whitespace_and_non_ascii_go_home() {
        for raw in [
            " /x",
            "\t/x",
            "\n/x",
            "/x ",
            "/a b",
            "/caf\u{e9}",
            "/\u{a0}",
            "/\u{2028}",
            "\u{feff}/x",
        ] {
            refused(raw);
        }
    }

    #[test]
    fn dot_segments_go_home() {
        for raw in [
            "/.",
            "/..",
            "/./",
            "/../x",
            "/a/../b",
            "/a/./b",
            "/.//evil.com",
            "/%2e%2e/x",
            "/%2E/x",
            "/..;/x",
            "/%252e%252e/x",
        ] {
            refused(raw);
        }
    }

    #[test]
    fn too_long_or_too_deeply_encoded_goes_home() {
        let long = format!("/{}", "a".repeat(MAX_NEXT_LEN));
        refused(&long);
        kept(&long[..MAX_NEXT_LEN]);
        refused("/%252525252541");
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode(b"%41%2f%zz%4"), b"A/%zz%4");
        assert_eq!(fully_decoded("%2541").as_deref(), Some("A"));
    }
}
