//! `inject_expiry_warning = true`: the warning script's tag, added to the
//! route's HTML pages as they stream through.
//!
//! Only a page that can take it gets it: a `text/html` response with a
//! body (not to `HEAD`; not `204`, `206`, `304` or a redirect), not
//! compressed (`Content-Encoding` absent or `identity`), to a request that
//! has a session (not HTTP Basic), whose `Content-Security-Policy` (if
//! any) lets a same-origin script run. Every other response passes byte
//! for byte.
//!
//! The tag goes before the last `</body>` ([`super::tag_splice`]), or at the
//! end. The body changes, so its headers follow: a `Content-Length` grows
//! by the tag's length, a strong `ETag` becomes weak (the bytes are not the
//! backend's), and `Accept-Ranges` goes (a range of the backend's bytes
//! would not fit the page the browser holds).
//!
//! # The backend's CSP
//!
//! A page's policy decides whether a script from the gate may run on it.
//! For each `Content-Security-Policy` header (and each policy in it), the
//! first of `script-src-elem`, `script-src`, `default-src` that is present
//! must hold `'self'`, `*` or this site's exact origin, and not
//! `'strict-dynamic'` (which makes browsers ignore those). Otherwise the
//! tag is not added (a refused script would only put an error in the
//! console), and this is logged once per route. A
//! `Content-Security-Policy-Report-Only` header enforces nothing, and is
//! not looked at.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};

use super::tag_splice::TagSplicer;
use crate::access::RouteId;
use crate::body::{BoxError, ResponseBody};
use crate::config::Config;

/// The tag and the per-route notes of one config.
pub struct ExpiryWarning {
    tag: Bytes,
    /// By route id: the route's path, and whether a CSP refusal was
    /// logged for it.
    csp_noted: Vec<(String, AtomicBool)>,
}

/// One request's page, as far as the warning is concerned.
#[derive(Debug)]
pub struct Page {
    route: RouteId,
    head: bool,
    /// `scheme://host[:port]` as the browser sees this site, when known.
    origin: Option<String>,
}

impl ExpiryWarning {
    /// The tag for `config`'s prefix (it names nothing secret: the
    /// script's address only).
    pub fn new(config: &Config) -> Self {
        let tag = format!(
            "<script src=\"{}/session.js\" defer></script>",
            config.login.prefix
        );
        ExpiryWarning {
            tag: Bytes::from(tag),
            csp_noted: config
                .routes
                .iter()
                .map(|r| (r.path.clone(), AtomicBool::new(false)))
                .collect(),
        }
    }

    /// The tag added to pages.
    pub fn tag(&self) -> &[u8] {
        &self.tag
    }

    /// Adds the tag to `resp` if it is a page that can take it.
    pub fn apply(&self, page: &Page, resp: &mut Response<ResponseBody>) {
        if page.head || !is_plain_html(resp.status(), resp.headers()) {
            return;
        }
        if !csp_allows(resp.headers(), page.origin.as_deref()) {
            if let Some((route, noted)) = self.csp_noted.get(page.route)
                && !noted.swap(true, Ordering::Relaxed)
            {
                tracing::warn!(route = %route, "expiry warning not added: the page's Content-Security-Policy does not allow a same-origin script (logged once per route)");
            }
            return;
        }
        let headers = resp.headers_mut();
        let length = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok());
        headers.remove(header::CONTENT_LENGTH);
        if let Some(n) = length {
            headers.insert(
                header::CONTENT_LENGTH,
                HeaderValue::from(n + self.tag.len() as u64),
            );
        }
        headers.remove(header::ACCEPT_RANGES);
        if let Some(etag) = headers.get(header::ETAG)
            && !etag.as_bytes().starts_with(b"W/")
        {
            let mut weak = b"W/".to_vec();
            weak.extend_from_slice(etag.as_bytes());
            match HeaderValue::from_bytes(&weak) {
                Ok(v) => headers.insert(header::ETAG, v),
                Err(_) => headers.remove(header::ETAG),
            };
        }
        let body = std::mem::replace(resp.body_mut(), ResponseBody::empty());
        *resp.body_mut() = ResponseBody::stream(Spliced {
            inner: body,
            splicer: Some(TagSplicer::new(self.tag.clone())),
            ready: VecDeque::new(),
            trailers: None,
            added: self.tag.len() as u64,
        });
    }
}

impl Page {
    /// A request on route `route` (`HEAD` or not), to this site at `origin`.
    pub fn new(route: RouteId, method: &Method, origin: Option<String>) -> Self {
        Page {
            route,
            head: method == Method::HEAD,
            origin,
        }
    }
}

/// `scheme://host` of a request to `host`, by TLS or not.
pub fn origin(https: bool, host: Option<&HeaderValue>) -> Option<String> {
    let host = host?.to_str().ok()?;
    let scheme = if https { "https" } else { "http" };
    Some(format!("{scheme}://{}", host.to_ascii_lowercase()))
}

/// An HTML page with a body of its own, not compressed.
fn is_plain_html(status: StatusCode, headers: &HeaderMap) -> bool {
    let has_body = !(status.is_informational()
        || status.is_redirection()
        || matches!(
            status,
            StatusCode::NO_CONTENT | StatusCode::RESET_CONTENT | StatusCode::PARTIAL_CONTENT
        ));
    let html = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("text/html"));
    let identity = headers.get_all(header::CONTENT_ENCODING).iter().all(|v| {
        v.to_str()
            .is_ok_and(|v| v.trim().eq_ignore_ascii_case("identity"))
    });
    has_body && html && identity && !headers.contains_key(header::CONTENT_RANGE)
}

/// Whether every enforced policy lets a script from `origin` run.
pub fn csp_allows(headers: &HeaderMap, origin: Option<&str>) -> bool {
    headers
        .get_all(header::CONTENT_SECURITY_POLICY)
        .iter()
        .all(|v| {
            v.to_str()
                .is_ok_and(|v| v.split(',').all(|p| policy_allows(p, origin)))
        })
}

/// One policy: the directive that governs `<script src>`, if any, must
/// name this site.
fn policy_allows(policy: &str, origin: Option<&str>) -> bool {
    let directive = |name: &str| {
        policy.split(';').find_map(|d| {
            let mut words = d.split_ascii_whitespace();
            let first = words.next()?;
            first.eq_ignore_ascii_case(name).then_some(words)
        })
    };
    let Some(sources) = directive("script-src-elem")
        .or_else(|| directive("script-src"))
        .or_else(|| directive("default-src"))
    else {
        return true;
    };
    let mut allowed = false;
    for source in sources {
        if source.eq_ignore_ascii_case("'strict-dynamic'") {
            return false;
        }
        allowed |= source.eq_ignore_ascii_case("'self'")
            || source == "*"
            || origin.is_some_and(|o| same_origin(source, o));
    }
    allowed
}

/// Whether a CSP source expression is exactly the origin `origin`
/// (`scheme://host[:port]`), a default port written or not.
fn same_origin(source: &str, origin: &str) -> bool {
    let plain = |s: &str| {
        let s = s.trim_end_matches('/').to_ascii_lowercase();
        match s.strip_suffix(":443") {
            Some(bare) if s.starts_with("https://") => bare.to_string(),
            _ => match s.strip_suffix(":80") {
                Some(bare) if s.starts_with("http://") => bare.to_string(),
                _ => s,
            },
        }
    };
    plain(source) == plain(origin)
}

/// A body with the tag spliced in as it streams.
struct Spliced {
    inner: ResponseBody,
    /// `None` once the body has ended and the rest was sent.
    splicer: Option<TagSplicer>,
    ready: VecDeque<Bytes>,
    trailers: Option<HeaderMap>,
    /// The bytes the tag adds, for the size hint.
    added: u64,
}

impl Body for Spliced {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            if let Some(data) = this.ready.pop_front() {
                return Poll::Ready(Some(Ok(Frame::data(data))));
            }
            let Some(splicer) = this.splicer.as_mut() else {
                return Poll::Ready(this.trailers.take().map(|t| Ok(Frame::trailers(t))));
            };
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => splicer.push(data, &mut this.ready),
                    // Trailers end the data: the rest goes out before them.
                    Err(frame) => {
                        this.trailers = frame.into_trailers().ok();
                        this.finish();
                    }
                },
                Poll::Ready(None) => this.finish(),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.splicer.is_none() && self.ready.is_empty() && self.trailers.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        if self.splicer.is_none() {
            let left: u64 = self.ready.iter().map(|b| b.len() as u64).sum();
            return SizeHint::with_exact(left);
        }
        let inner = self.inner.size_hint();
        let held = self.ready.iter().map(|b| b.len() as u64).sum::<u64>() + self.added;
        let mut hint = SizeHint::new();
        hint.set_lower(inner.lower() + held);
        if let Some(upper) = inner.upper() {
            // Bytes the splicer holds are counted in neither: the upper
            // bound allows for them.
            hint.set_upper(upper + held + super::tag_splice::HOLD_LIMIT as u64 + 8);
        }
        hint
    }
}

impl Spliced {
    fn finish(&mut self) {
        if let Some(splicer) = self.splicer.take() {
            self.ready.push_back(splicer.finish());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csp_decides_by_the_directive_that_governs_scripts() {
        let o = Some("https://app.example");
        let allows = |p: &str| policy_allows(p, o);
        assert!(allows(""));
        assert!(allows("img-src 'none'"));
        assert!(allows("default-src 'self'"));
        assert!(allows("default-src 'none'; script-src 'SELF' cdn.example"));
        assert!(allows("script-src https://app.example/"));
        assert!(allows("script-src https://APP.example:443"));
        assert!(allows("script-src *"));
        assert!(!allows("default-src 'none'"));
        assert!(!allows("script-src 'nonce-abc'"));
        assert!(!allows("default-src 'self'; script-src cdn.example"));
        assert!(!allows("script-src 'self' 'strict-dynamic' 'nonce-x'"));
        assert!(!allows("script-src 'self'; script-src-elem 'none'"));
        assert!(!allows("script-src http://app.example"));
        assert!(!policy_allows("script-src https://app.example", None));
    }

    #[test]
    fn a_page_its_csp_forbids_is_left_alone_and_noted_once() {
        let config: Config = r#"
[session]
secret_keys = ["expiry-warning-key-0123456789-abcdefgh"]

[[route]]
path = "/"
upstream = "http://127.0.0.1:9"
access = "session"
inject_expiry_warning = true
"#
        .parse()
        .expect("config");
        let warning = ExpiryWarning::new(&config);
        assert_eq!(
            warning.tag(),
            b"<script src=\"/.sessiongate/session.js\" defer></script>"
        );
        let page = Page::new(0, &Method::GET, Some("http://site.example".into()));
        for _ in 0..2 {
            let mut resp = Response::new(ResponseBody::full("<body></body>"));
            let h = resp.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(13));
            h.insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static("script-src https://cdn.example"),
            );
            warning.apply(&page, &mut resp);
            assert_eq!(resp.headers()[header::CONTENT_LENGTH], "13");
            assert_eq!(resp.body().size_hint().exact(), Some(13));
            assert!(warning.csp_noted[0].1.load(Ordering::Relaxed));
        }
    }

    #[test]
    fn every_enforced_policy_must_allow() {
        let mut h = HeaderMap::new();
        h.append(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'self'"),
        );
        assert!(csp_allows(&h, None));
        h.append(
            "content-security-policy-report-only",
            HeaderValue::from_static("script-src 'none'"),
        );
        assert!(csp_allows(&h, None), "report-only enforces nothing");
        h.append(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("script-src 'self', script-src 'none'"),
        );
        assert!(!csp_allows(&h, None));
    }

    #[test]
    fn only_plain_html_with_a_body() {
        let with = |pairs: &[(&'static str, &'static str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.append(*k, HeaderValue::from_static(v));
            }
            h
        };
        let html = with(&[("content-type", "Text/HTML; charset=utf-8")]);
        assert!(is_plain_html(StatusCode::OK, &html));
        assert!(is_plain_html(StatusCode::NOT_FOUND, &html));
        for status in [204, 206, 301, 304] {
            let status = StatusCode::from_u16(status).expect("status");
            assert!(!is_plain_html(status, &html), "{status}");
        }
        assert!(!is_plain_html(
            StatusCode::OK,
            &with(&[("content-type", "application/json")])
        ));
        assert!(!is_plain_html(
            StatusCode::OK,
            &with(&[("content-type", "text/htmlx")])
        ));
        assert!(!is_plain_html(StatusCode::OK, &HeaderMap::new()));
        let gzip = with(&[("content-type", "text/html"), ("content-encoding", "gzip")]);
        assert!(!is_plain_html(StatusCode::OK, &gzip));
        let identity = with(&[
            ("content-type", "text/html"),
            ("content-encoding", "identity"),
        ]);
        assert!(is_plain_html(StatusCode::OK, &identity));
    }
}
