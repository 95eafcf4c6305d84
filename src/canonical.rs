//! The request target as the gate sees it, and as the backend will see it.
//!
//! A gate that checks one spelling of a path and forwards another can be
//! walked around: `/%6dembers.cgi`, `//members.cgi` or `/pub/../members.cgi`
//! all name `/members.cgi` to a backend that decodes, merges or resolves
//! paths, while a route table matching raw text sees something else. So the
//! path is normalised once, before routing, and that one path is routed,
//! checked, logged and forwarded.
//!
//! The rules follow Envoy's `normalize_path` + `merge_slashes` with
//! `path_with_escaped_slashes_action: KEEP_UNCHANGED`, which is also what
//! nginx's location matching amounts to for these cases:
//!
//! - escapes of unreserved characters (`A-Z a-z 0-9 - . _ ~`) are decoded;
//!   every other escape stays, its hex digits upper-cased (`%2f` -> `%2F`);
//!   so `%2F` and `%5C` never become separators here, and a malformed escape
//!   (`%zz`, `%4`) is a bad request;
//! - `.` and `..` segments are resolved (RFC 3986 section 5.2.4), after the
//!   decoding, so `%2e%2e` counts; a `..` that would climb above `/` is a bad
//!   request rather than silently dropped;
//! - runs of `/` are merged; a trailing `/` is kept.
//!
//! Unlike nginx, other escapes are not decoded: the backend gets them as the
//! client wrote them (upper-cased), so a `%3F` stays data and never becomes a
//! query. The query string is never touched.
//!
//! The request head must also name one host: two `Host` headers, or a `Host`
//! that disagrees with an absolute-form target (or HTTP/2 `:authority`), make
//! a bad request, since routes by host and the backend could otherwise each
//! believe a different one.

use std::borrow::Cow;

use http::header::{self, HeaderValue};
use http::uri::{Authority, PathAndQuery, Uri};

/// Why a request target cannot be normalised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// A `%` not followed by two hex digits.
    #[error("malformed percent-escape in the path")]
    BadEscape,
    /// A `..` segment would climb above `/`.
    #[error("the path climbs above /")]
    AboveRoot,
    /// More than one `Host` header.
    #[error("more than one Host header")]
    DuplicateHost,
    /// The `Host` header names another host than the request target.
    #[error("Host header disagrees with the request target")]
    HostMismatch,
    /// The normalised path cannot be put back into a URI.
    #[error("the normalised path is not a valid URI path")]
    Unrepresentable,
}

/// Normalises an absolute URL path (see the module docs). Paths that do not
/// start with `/` (`*` of `OPTIONS *`) are returned as they are: they match
/// no route. Borrows when the path is already normal, which is the common case.
pub fn normalize_path(path: &str) -> Result<Cow<'_, str>, TargetError> {
    if !path.starts_with('/') || is_normal(path) {
        return Ok(Cow::Borrowed(path));
    }
    let mut out: Vec<u8> = Vec::with_capacity(path.len());
    // Segment by segment: `out` always holds "/seg/seg" with no trailing
    // slash except when it is just "/"-less empty (the root).
    let mut trailing_slash = false;
    for raw in path[1..].split('/') {
        let segment = decode_unreserved(raw)?;
        match segment.as_slice() {
            b"" => {
                // `//` merges; a final empty segment is a trailing slash.
                trailing_slash = true;
                continue;
            }
            b"." => trailing_slash = true,
            b".." => {
                let Some(cut) = out.iter().rposition(|&b| b == b'/') else {
                    return Err(TargetError::AboveRoot);
                };
                out.truncate(cut);
                trailing_slash = true;
            }
            _ => {
                out.push(b'/');
                out.extend_from_slice(&segment);
                trailing_slash = false;
            }
        }
    }
    if out.is_empty() || trailing_slash {
        out.push(b'/');
    }
    // Only ASCII was decoded and every other byte copied from a `&str`.
    String::from_utf8(out)
        .map(Cow::Owned)
        .map_err(|_| TargetError::Unrepresentable)
}

/// Whether a path needs no work: no escape, no empty, `.` or `..` segment
/// (but for the empty one after a trailing slash).
fn is_normal(path: &str) -> bool {
    if path.contains('%') {
        return false;
    }
    let mut segments = path[1..].split('/').peekable();
    while let Some(segment) = segments.next() {
        match segment {
            "." | ".." => return false,
            "" if segments.peek().is_some() => return false,
            _ => {}
        }
    }
    true
}

/// Decodes escapes of unreserved characters in one segment and upper-cases
/// the others.
fn decode_unreserved(segment: &str) -> Result<Vec<u8>, TargetError> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b != b'%' {
            out.push(b);
            i += 1;
            continue;
        }
        let (Some(hi), Some(lo)) = (
            bytes.get(i + 1).and_then(|&h| hex(h)),
            bytes.get(i + 2).and_then(|&l| hex(l)),
        ) else {
            return Err(TargetError::BadEscape);
        };
        let decoded = hi << 4 | lo;
        if is_unreserved(decoded) {
            out.push(decoded);
        } else {
            out.push(b'%');
            out.push(bytes[i + 1].to_ascii_uppercase());
            out.push(bytes[i + 2].to_ascii_uppercase());
        }
        i += 3;
    }
    Ok(out)
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// RFC 3986 section 2.3.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Puts the normalised path back into `uri`, keeping its scheme, authority
/// and query. Leaves `uri` alone when it is already normal.
pub fn normalize_uri(uri: &mut Uri) -> Result<(), TargetError> {
    let Cow::Owned(path) = normalize_path(uri.path())? else {
        return Ok(());
    };
    let target = match uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path,
    };
    let mut parts = std::mem::take(uri).into_parts();
    parts.path_and_query =
        Some(PathAndQuery::try_from(target).map_err(|_| TargetError::Unrepresentable)?);
    *uri = Uri::from_parts(parts).map_err(|_| TargetError::Unrepresentable)?;
    Ok(())
}

/// The host a request is for: an absolute-form target's (or HTTP/2
/// `:authority`) when there is one, else the one `Host` header. Refuses a
/// head with two `Host` headers, or one whose `Host` names another host than
/// its target.
pub fn request_host<B>(req: &http::Request<B>) -> Result<Option<HeaderValue>, TargetError> {
    let mut hosts = req.headers().get_all(header::HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err(TargetError::DuplicateHost);
    }
    let Some(authority) = req.uri().authority() else {
        return Ok(host.cloned());
    };
    if let Some(host) = host {
        let scheme_port = match req.uri().scheme_str() {
            Some("https") => 443,
            _ => 80,
        };
        let agrees = host
            .to_str()
            .ok()
            .and_then(|h| h.parse::<Authority>().ok())
            .is_some_and(|h| same_authority(&h, authority, scheme_port));
        if !agrees {
            return Err(TargetError::HostMismatch);
        }
    }
    HeaderValue::from_str(authority.as_str())
        .map(Some)
        .map_err(|_| TargetError::Unrepresentable)
}

/// Host names compared without case, ports with the scheme's default filled in.
fn same_authority(a: &Authority, b: &Authority, default_port: u16) -> bool {
    a.host().eq_ignore_ascii_case(b.host())
        && a.port_u16().unwrap_or(default_port) == b.port_u16().unwrap_or(default_port)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn norm(p: &str) -> Result<String, TargetError> {
        normalize_path(p).map(Cow::into_owned)
    }

    #[test]
    fn the_bypass_spellings_become_the_path() {
        for spelling in [
            "/members.cgi",
            "/%6dembers.cgi",
            "/%6Dembers.cgi",
            "//members.cgi",
            "///members.cgi",
            "/./members.cgi",
            "/pub/../members.cgi",
            "/pub/%2e%2e/members.cgi",
            "/pub/%2E./members.cgi",
            "/%2e/members.cgi",
            "/a/b/../../members.cgi",
        ] {
            assert_eq!(norm(spelling).as_deref(), Ok("/members.cgi"), "{spelling}");
        }
        assert_eq!(norm("//private//x/").as_deref(), Ok("/private/x/"));
        assert_eq!(norm("/%70rivate/").as_deref(), Ok("/private/"));
    }

    #[test]
    fn escapes_that_are_not_unreserved_stay_upper_cased() {
        assert_eq!(norm("/a%2fb").as_deref(), Ok("/a%2Fb"));
        assert_eq!(norm("/a%5cb").as_deref(), Ok("/a%5Cb"));
        assert_eq!(norm("/a%20b%3f").as_deref(), Ok("/a%20b%3F"));
        assert_eq!(norm("/%7e%41").as_deref(), Ok("/~A"));
        assert_eq!(norm("/x%00").as_deref(), Ok("/x%00"));
    }

    #[test]
    fn dots_and_slashes() {
        assert_eq!(norm("/").as_deref(), Ok("/"));
        assert_eq!(norm("//").as_deref(), Ok("/"));
        assert_eq!(norm("/a/.").as_deref(), Ok("/a/"));
        assert_eq!(norm("/a/..").as_deref(), Ok("/"));
        assert_eq!(norm("/a/b/").as_deref(), Ok("/a/b/"));
        assert_eq!(norm("/a/b//").as_deref(), Ok("/a/b/"));
        assert_eq!(norm("/a./b..").as_deref(), Ok("/a./b.."));
        assert_eq!(norm("/..."), Ok("/...".into()));
        assert_eq!(norm("*").as_deref(), Ok("*"));
    }

    #[test]
    fn climbing_above_the_root_and_bad_escapes_are_refused() {
        assert_eq!(norm("/.."), Err(TargetError::AboveRoot));
        assert_eq!(norm("/a/../.."), Err(TargetError::AboveRoot));
        assert_eq!(norm("/%2e%2e/etc/passwd"), Err(TargetError::AboveRoot));
        assert_eq!(norm("/a%zz"), Err(TargetError::BadEscape));
        assert_eq!(norm("/a%4"), Err(TargetError::BadEscape));
        assert_eq!(norm("/a%"), Err(TargetError::BadEscape));
    }

    #[test]
    fn normal_paths_are_borrowed() {
        for p in ["/", "/a", "/a/b/", "/a.cgi/x", "/static/app.css"] {
            assert!(matches!(normalize_path(p), Ok(Cow::Borrowed(_))), "{p}");
        }
    }

    #[test]
    fn the_query_is_untouched() {
        let mut uri: Uri = "/pub/../x%2fy?a=%2e%2e/&b=//c".parse().unwrap();
        normalize_uri(&mut uri).unwrap();
        assert_eq!(uri.to_string(), "/x%2Fy?a=%2e%2e/&b=//c");
        let mut uri: Uri = "http://h.example/a//b?q".parse().unwrap();
        normalize_uri(&mut uri).unwrap();
        assert_eq!(uri.to_string(), "http://h.example/a/b?q");
    }

    fn req(target: &str, hosts: &[&str]) -> http::Request<()> {
        let mut b = http::Request::builder().uri(target);
        for h in hosts {
            b = b.header(header::HOST, *h);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn one_host_per_request() {
        let host = |t, h: &[&str]| {
            request_host(&req(t, h)).map(|v| v.map(|v| v.to_str().unwrap().to_owned()))
        };
        assert_eq!(host("/", &["a.example"]), Ok(Some("a.example".into())));
        assert_eq!(host("/", &[]), Ok(None));
        assert_eq!(
            host("/", &["a.example", "b.example"]),
            Err(TargetError::DuplicateHost)
        );
        assert_eq!(
            host("/", &["a.example", "a.example"]),
            Err(TargetError::DuplicateHost)
        );
        assert_eq!(
            host("http://a.example/", &["b.example"]),
            Err(TargetError::HostMismatch)
        );
        assert_eq!(
            host("http://a.example/", &["A.Example:80"]),
            Ok(Some("a.example".into()))
        );
        assert_eq!(
            host("https://a.example:443/", &["a.example"]),
            Ok(Some("a.example:443".into()))
        );
        assert_eq!(
            host("http://a.example:8080/", &["a.example"]),
            Err(TargetError::HostMismatch)
        );
        assert_eq!(
            host("http://a.example/x", &[]),
            Ok(Some("a.example".into()))
        );
    }

    /// A normal path: segments of unreserved and a few other characters.
    fn normal_path() -> impl Strategy<Value = String> {
        let segment = "[a-zA-Z0-9._~!$&'()*+,;=:@-]{1,8}"
            .prop_filter("not a dot segment", |s| s != "." && s != "..");
        (prop::collection::vec(segment, 0..6), any::<bool>()).prop_map(|(segs, slash)| {
            let mut p = String::new();
            for s in &segs {
                p.push('/');
                p.push_str(s);
            }
            if slash || p.is_empty() {
                p.push('/');
            }
            p
        })
    }

    /// Another spelling of `path`: escapes, `.`, `x/..`, and doubled slashes.
    fn respell(path: &str, choices: &[u8]) -> String {
        let mut out = String::new();
        let mut c = choices.iter().cycle();
        for (i, seg) in path.split('/').enumerate() {
            if i > 0 {
                out.push('/');
                match c.next().copied().unwrap_or(0) % 5 {
                    0 => out.push('/'),
                    1 => out.push_str("./"),
                    2 => out.push_str("zz/../"),
                    _ => {}
                }
            }
            for ch in seg.chars() {
                let pick = c.next().copied().unwrap_or(0);
                if pick % 3 == 0 && is_unreserved(ch as u8) {
                    if pick % 2 == 0 {
                        out.push_str(&format!("%{:02x}", ch as u8));
                    } else {
                        out.push_str(&format!("%{:02X}", ch as u8));
                    }
                } else {
                    out.push(ch);
                }
            }
        }
        out
    }

    proptest! {
        #[test]
        fn normalising_is_idempotent(p in "/[a-zA-Z0-9%./_~-]{0,40}") {
            if let Ok(once) = normalize_path(&p) {
                let twice = normalize_path(&once).unwrap();
                prop_assert_eq!(&*once, &*twice);
            }
        }

        #[test]
        fn the_output_has_no_dot_segment_nor_empty_segment(p in "/[a-z%2eE./]{0,40}") {
            if let Ok(out) = normalize_path(&p) {
                prop_assert!(out.starts_with('/'));
                let inner = &out[1..out.len() - usize::from(out.ends_with('/') && out.len() > 1)];
                for seg in inner.split('/').filter(|_| !inner.is_empty()) {
                    prop_assert!(seg != "." && seg != ".." && !seg.is_empty(), "{out}");
                }
            }
        }

        #[test]
        fn every_spelling_routes_like_the_path(
            path in normal_path(),
            choices in prop::collection::vec(any::<u8>(), 1..64),
        ) {
            let spelled = respell(&path, &choices);
            prop_assert_eq!(norm(&spelled), Ok(path.clone()), "{}", spelled);
            let routes = crate::access::RouteTable::from_paths(&["/", "/a", "/a/", "/A/b", "/~x/"]);
            prop_assert_eq!(routes.find(None, &norm(&spelled).unwrap()), routes.find(None, &path));
        }
    }
}
