//! The cross-site request shield: whether a state-changing request may
//! reach the backend, from the headers a browser sets and a page cannot
//! forge (`Sec-Fetch-Site`, `Origin`, `Referer`).
//!
//! A browser attaches the visitor's cookies to a form another site posts to
//! us; the backend, which cannot be changed, would take it as the user's
//! own. The browser also says where the request comes from, so the gate
//! refuses it first. In order:
//!
//! 1. `GET`, `HEAD`, `OPTIONS`, `TRACE` pass: they change nothing.
//! 2. `Sec-Fetch-Site: same-origin` or `none` (typed in, a bookmark) pass;
//!    `cross-site` and `same-site` are refused unless `Origin` names a
//!    trusted origin; any other value is refused.
//! 3. Without `Sec-Fetch-Site` (older browsers): `Origin`, else the origin
//!    of `Referer`, must be the request's own origin (the scheme the client
//!    used, the `Host` it asked for) or a trusted one. `Origin: null`
//!    (sandboxed frames, some redirects) is refused.
//! 4. Neither header: pass. Scripts and old clients send none, and carry no
//!    cookies a third party could make them send.
//!
//! Requests with HTTP Basic credentials on a `basic_auth` route are exempt
//! unless a browser says they are cross-site or same-site (step 2): a
//! script's Basic request is its own, while a browser that cached the
//! credentials attaches them to another site's form as it does a cookie.
//!
//! Pure and free of I/O: the stage in [`crate::proxy`] gives it the
//! request's facts and acts on the answer.

use http::{HeaderMap, HeaderValue, Method, header};

use crate::origin::Origin;

/// What the shield needs to know of a request.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    /// The method.
    pub method: &'a Method,
    /// The request headers, as the client sent them.
    pub headers: &'a HeaderMap,
    /// Whether the client's connection is HTTPS (as resolved, believing
    /// `X-Forwarded-Proto` from trusted proxies only).
    pub https: bool,
    /// The host the request is for (`Host` or `:authority`).
    pub host: Option<&'a HeaderValue>,
    /// Whether HTTP Basic credentials may stand in for the session here
    /// (a `basic_auth` route).
    pub basic_route: bool,
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The browser says the request comes from another site
    /// (`Sec-Fetch-Site` with this value).
    FetchSite(String),
    /// `Origin: null`: an opaque origin.
    NullOrigin,
    /// `Origin` (or `Referer`) names another origin (as written).
    Foreign(String),
    /// `Origin` or `Referer` is not an origin at all (as written, lossy).
    Unreadable(String),
}

impl Refusal {
    /// The origin (or `Sec-Fetch-Site` value) seen, for the log.
    pub fn seen(&self) -> &str {
        match self {
            Refusal::FetchSite(v) | Refusal::Foreign(v) | Refusal::Unreadable(v) => v,
            Refusal::NullOrigin => "null",
        }
    }

    /// A short name for the log.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::FetchSite(_) => "sec-fetch-site",
            Refusal::NullOrigin => "null origin",
            Refusal::Foreign(_) => "foreign origin",
            Refusal::Unreadable(_) => "unreadable origin",
        }
    }
}

/// Whether a method changes nothing (RFC 9110 "safe"), and so passes.
pub fn is_safe(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

/// The shield's decision for a request (see the module's rules).
pub fn check(facts: &Facts<'_>, trusted: &[Origin]) -> Result<(), Refusal> {
    if is_safe(facts.method) {
        return Ok(());
    }
    let headers = facts.headers;
    if let Some(site) = headers.get("sec-fetch-site") {
        return match site.as_bytes() {
            b"same-origin" | b"none" => Ok(()),
            _ if origin_is_trusted(headers, trusted) => Ok(()),
            _ => Err(Refusal::FetchSite(lossy(site))),
        };
    }
    if facts.basic_route && carries_basic(headers) {
        return Ok(());
    }
    let (value, origin) = match headers.get(header::ORIGIN) {
        Some(v) if v.as_bytes() == b"null" => return Err(Refusal::NullOrigin),
        // The common case, without parsing or allocating: the browser's
        // Origin spells the scheme and the Host the request came with.
        Some(v) if is_own_as_written(v.as_bytes(), facts) => return Ok(()),
        Some(v) => (v, v.to_str().ok().map(Origin::parse)),
        None => match headers.get(header::REFERER) {
            Some(v) => (v, v.to_str().ok().map(Origin::of_url)),
            None => return Ok(()),
        },
    };
    let Some(Ok(origin)) = origin else {
        return Err(Refusal::Unreadable(lossy(value)));
    };
    if trusted.contains(&origin) || own_origin(facts).is_some_and(|own| own == origin) {
        return Ok(());
    }
    Err(Refusal::Foreign(origin.to_string()))
}

/// Whether `origin` is `scheme://` + the request's `Host`, byte for byte
/// but for case (`https://app.example.org` for `Host: app.example.org`
/// over HTTPS). Anything else (a default port written out, say) is for the
/// full comparison.
fn is_own_as_written(origin: &[u8], facts: &Facts<'_>) -> bool {
    let Some(host) = facts.host.map(HeaderValue::as_bytes) else {
        return false;
    };
    let scheme: &[u8] = if facts.https { b"https://" } else { b"http://" };
    let Some((written, rest)) = origin.split_at_checked(scheme.len()) else {
        return false;
    };
    written.eq_ignore_ascii_case(scheme)
        && !host.is_empty()
        && !host
            .iter()
            .any(|b| matches!(b, b'/' | b'?' | b'#' | b'@' | b'\\'))
        && rest.eq_ignore_ascii_case(host)
}

/// The origin the request was sent to.
fn own_origin(facts: &Facts<'_>) -> Option<Origin> {
    let host = facts.host?.to_str().ok()?;
    Origin::of_request(facts.https, host)
}

/// Whether `Origin` names one of `trusted`.
fn origin_is_trusted(headers: &HeaderMap, trusted: &[Origin]) -> bool {
    if trusted.is_empty() {
        return false;
    }
    headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| Origin::parse(v).ok())
        .is_some_and(|o| trusted.contains(&o))
}

/// Whether the request carries `Authorization: Basic ...`.
fn carries_basic(headers: &HeaderMap) -> bool {
    headers.get(header::AUTHORIZATION).is_some_and(|v| {
        v.as_bytes()
            .get(..6)
            .is_some_and(|s| s.eq_ignore_ascii_case(b"basic "))
    })
}

/// A header value for the log, at most 200 characters.
fn lossy(value: &HeaderValue) -> String {
    String::from_utf8_lossy(value.as_bytes())
        .chars()
        .take(200)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &str = "app.example.org";

    struct Case {
        method: Method,
        headers: HeaderMap,
        https: bool,
        host: Option<HeaderValue>,
        basic_route: bool,
    }

    fn post(pairs: &[(&str, &str)]) -> Case {
        let mut headers = HeaderMap::new();
        for (k, v) in pairs {
            headers.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        Case {
            method: Method::POST,
            headers,
            https: true,
            host: Some(HeaderValue::from_static(HOST)),
            basic_route: false,
        }
    }

    impl Case {
        fn check(&self, trusted: &[Origin]) -> Result<(), Refusal> {
            check(
                &Facts {
                    method: &self.method,
                    headers: &self.headers,
                    https: self.https,
                    host: self.host.as_ref(),
                    basic_route: self.basic_route,
                },
                trusted,
            )
        }
    }

    fn trusted() -> Vec<Origin> {
        vec![Origin::parse("https://partner.example.net").unwrap()]
    }

    #[test]
    fn safe_methods_pass_whatever_they_carry() {
        for method in [Method::GET, Method::HEAD, Method::OPTIONS, Method::TRACE] {
            let mut c = post(&[
                ("sec-fetch-site", "cross-site"),
                ("origin", "https://evil.test"),
            ]);
            c.method = method.clone();
            assert_eq!(c.check(&[]), Ok(()), "{method}");
        }
        for method in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            let mut c = post(&[("origin", "https://evil.test")]);
            c.method = method.clone();
            assert!(c.check(&[]).is_err(), "{method}");
        }
        let mut custom = post(&[("origin", "https://evil.test")]);
        custom.method = Method::from_bytes(b"PROPPATCH").unwrap();
        assert!(
            custom.check(&[]).is_err(),
            "an unknown method changes things"
        );
    }

    #[test]
    fn sec_fetch_site_decides_when_present() {
        assert_eq!(
            post(&[("sec-fetch-site", "same-origin")]).check(&[]),
            Ok(())
        );
        assert_eq!(post(&[("sec-fetch-site", "none")]).check(&[]), Ok(()));
        for site in ["cross-site", "same-site", "Same-Origin", "whatever", ""] {
            assert_eq!(
                post(&[("sec-fetch-site", site)]).check(&[]),
                Err(Refusal::FetchSite(site.into())),
                "{site:?}"
            );
        }
        // The browser's word wins over a matching Origin...
        let own = post(&[
            ("sec-fetch-site", "cross-site"),
            ("origin", "https://app.example.org"),
        ]);
        assert!(own.check(&[]).is_err());
        // ...and over a foreign one.
        let same = post(&[
            ("sec-fetch-site", "same-origin"),
            ("origin", "https://evil.test"),
        ]);
        assert_eq!(same.check(&[]), Ok(()));
    }

    #[test]
    fn a_trusted_origin_passes_even_cross_site() {
        for site in ["cross-site", "same-site"] {
            let c = post(&[
                ("sec-fetch-site", site),
                ("origin", "https://Partner.example.net:443"),
            ]);
            assert_eq!(c.check(&trusted()), Ok(()), "{site}");
            assert!(
                c.check(&[]).is_err(),
                "{site}: not trusted without the list"
            );
        }
        let referer_only = post(&[
            ("sec-fetch-site", "cross-site"),
            ("referer", "https://partner.example.net/page"),
        ]);
        assert!(
            referer_only.check(&trusted()).is_err(),
            "a browser that sends Sec-Fetch-Site sends Origin on a POST"
        );
        let without_fetch = post(&[("origin", "https://partner.example.net")]);
        assert_eq!(without_fetch.check(&trusted()), Ok(()));
        let referer = post(&[("referer", "https://partner.example.net/x?y")]);
        assert_eq!(referer.check(&trusted()), Ok(()));
    }

    #[test]
    fn origin_must_be_our_own_when_sec_fetch_site_is_absent() {
        assert_eq!(
            post(&[("origin", "https://app.example.org")]).check(&[]),
            Ok(())
        );
        assert_eq!(
            post(&[("origin", "https://APP.example.org:443")]).check(&[]),
            Ok(())
        );
        assert_eq!(
            post(&[("origin", "https://evil.test")]).check(&[]),
            Err(Refusal::Foreign("https://evil.test".into()))
        );
        // Scheme and port are part of the origin.
        assert!(
            post(&[("origin", "http://app.example.org")])
                .check(&[])
                .is_err()
        );
        assert!(
            post(&[("origin", "https://app.example.org:8443")])
                .check(&[])
                .is_err()
        );
        assert_eq!(
            post(&[("origin", "null")]).check(&[]),
            Err(Refusal::NullOrigin)
        );
        assert_eq!(
            post(&[("origin", "https://app.example.org/path")]).check(&[]),
            Err(Refusal::Unreadable("https://app.example.org/path".into()))
        );
    }

    #[test]
    fn the_own_origin_follows_the_client_scheme_and_host() {
        let mut plain = post(&[("origin", "http://app.example.org:8080")]);
        plain.https = false;
        plain.host = Some(HeaderValue::from_static("App.Example.org:8080"));
        assert_eq!(plain.check(&[]), Ok(()));
        plain.https = true;
        assert!(plain.check(&[]).is_err(), "https seen, http origin");

        let mut default_port = post(&[("origin", "http://app.example.org")]);
        default_port.https = false;
        default_port.host = Some(HeaderValue::from_static("app.example.org:80"));
        assert_eq!(default_port.check(&[]), Ok(()));

        let mut no_host = post(&[("origin", "https://app.example.org")]);
        no_host.host = None;
        assert!(no_host.check(&[]).is_err(), "no host: nothing to match");
        no_host.headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://partner.example.net"),
        );
        assert_eq!(no_host.check(&trusted()), Ok(()));
    }

    #[test]
    fn referer_stands_in_for_a_missing_origin() {
        assert_eq!(
            post(&[("referer", "https://app.example.org/form?x=1")]).check(&[]),
            Ok(())
        );
        assert_eq!(
            post(&[("referer", "https://evil.test/attack")]).check(&[]),
            Err(Refusal::Foreign("https://evil.test".into()))
        );
        assert!(matches!(
            post(&[("referer", "not a url")]).check(&[]),
            Err(Refusal::Unreadable(_))
        ));
        // Origin, when present, is what counts.
        let both = post(&[
            ("origin", "https://evil.test"),
            ("referer", "https://app.example.org/"),
        ]);
        assert!(both.check(&[]).is_err());
    }

    #[test]
    fn the_quick_comparison_agrees_with_the_full_one() {
        let cases = [
            ("https://app.example.org", "app.example.org", true, true),
            ("HTTPS://App.Example.org", "app.example.ORG", true, true),
            ("http://app.example.org", "app.example.org", true, false),
            ("https://app.example.org", "app.example.org", false, false),
            ("https://app.example.org:443", "app.example.org", true, true),
            ("https://app.example.org", "app.example.org:443", true, true),
            (
                "https://app.example.org/x",
                "app.example.org/x",
                true,
                false,
            ),
            (
                "https://a@app.example.org",
                "a@app.example.org",
                true,
                false,
            ),
            ("https://", "", true, false),
        ];
        for (origin, host, https, passes) in cases {
            let mut c = post(&[("origin", origin)]);
            c.host = Some(HeaderValue::from_str(host).unwrap());
            c.https = https;
            assert_eq!(
                c.check(&[]).is_ok(),
                passes,
                "{origin} for {host}, https {https}"
            );
        }
    }

    #[test]
    fn neither_header_passes() {
        assert_eq!(post(&[]).check(&[]), Ok(()));
        assert_eq!(post(&[("user-agent", "curl/8")]).check(&[]), Ok(()));
    }

    #[test]
    fn basic_credentials_are_exempt_on_basic_auth_routes_only() {
        let mut c = post(&[
            ("authorization", "Basic dXNlcjpwYXNz"),
            ("origin", "https://evil.test"),
        ]);
        assert!(c.check(&[]).is_err(), "not a basic_auth route");
        c.basic_route = true;
        assert_eq!(c.check(&[]), Ok(()));
        let mut bearer = post(&[
            ("authorization", "Bearer x"),
            ("origin", "https://evil.test"),
        ]);
        bearer.basic_route = true;
        assert!(bearer.check(&[]).is_err());
        // A browser that attaches cached credentials to another site's form
        // says so.
        let mut browser = post(&[
            ("authorization", "basic dXNlcjpwYXNz"),
            ("sec-fetch-site", "cross-site"),
            ("origin", "https://evil.test"),
        ]);
        browser.basic_route = true;
        assert!(browser.check(&[]).is_err());
    }

    #[test]
    fn a_refusal_says_what_was_seen() {
        assert_eq!(Refusal::NullOrigin.seen(), "null");
        assert_eq!(
            Refusal::Foreign("https://e.test".into()).seen(),
            "https://e.test"
        );
        let long = HeaderValue::from_str(&"x".repeat(500)).unwrap();
        assert_eq!(lossy(&long).len(), 200);
    }
}
