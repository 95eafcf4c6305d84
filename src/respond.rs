//! Responses made by the proxy itself: error pages, redirects, and the
//! one place where a failure becomes a status code ([`Reject`]).

use std::borrow::Cow;

use http::header::{self, HeaderValue};
use http::{Response, StatusCode};

use crate::body::ResponseBody;
use crate::login::escape_html;
use crate::upstream::cgi::CgiError;
use crate::upstream::fastcgi::FastCgiError;
use crate::upstream::files::{ALLOWED_METHODS, StaticError};
use crate::upstream::http::UpstreamError;

/// Why a request is answered by the proxy instead of the backend.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Reject {
    /// The request is malformed.
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    /// No route matches the request.
    #[error("no route for this path")]
    NoRoute,
    /// The header block is larger than `max_header_bytes`.
    #[error("request headers too large")]
    HeadersTooLarge,
    /// A `login` route without a logged-in session, for an API client or a
    /// non-GET method.
    #[error("login required")]
    Unauthorized {
        /// Answer in JSON.
        json: bool,
    },
    /// A `basic_auth` route without a signed-in session, for a client that
    /// is not a browser, or with Basic credentials that are wrong or
    /// malformed: 401 with the route's Basic challenge.
    #[error("credentials required")]
    CredentialsRequired {
        /// Answer in JSON.
        json: bool,
        /// `WWW-Authenticate`, as built once per config.
        challenge: HeaderValue,
    },
    /// Too many failed sign-ins for the user or the address lately.
    #[error("too many failed sign-ins")]
    Throttled {
        /// Whole seconds before trying again (`Retry-After`).
        retry_after: u64,
    },
    /// The session store cannot be reached; protected routes fail closed.
    #[error("session store unavailable")]
    StoreUnavailable,
    /// The upstream could not be reached or broke the exchange.
    #[error("upstream unreachable")]
    BadGateway,
    /// The upstream did not answer within `upstream_timeout`.
    #[error("upstream timed out")]
    GatewayTimeout,
    /// Too many CGI scripts are running.
    #[error("too busy")]
    Busy,
    /// The built-in endpoint does not exist or does not take this method.
    #[error("not found")]
    NotFound,
    /// The method is not allowed here (a built-in endpoint, static files).
    #[error("method not allowed")]
    MethodNotAllowed {
        /// The methods that are, for `Allow` (`None`: no one list applies).
        allow: Option<&'static str>,
    },
    /// A CGI script is not runnable.
    #[error("forbidden")]
    Forbidden,
    /// Something inside the proxy failed.
    #[error("internal error")]
    Internal,
    /// A WebSocket handshake to a route that cannot take one (CGI).
    #[error("upgrade not supported")]
    UpgradeNotSupported,
    /// A request body larger than the target can take.
    #[error("request body too large")]
    PayloadTooLarge,
    /// A state-changing request from another origin (see [`crate::csrf`]).
    #[error("cross-site request refused")]
    CrossSite {
        /// Answer in JSON.
        json: bool,
    },
}

impl Reject {
    /// The status code for this rejection.
    pub fn status(&self) -> StatusCode {
        match self {
            Reject::BadRequest(_) => StatusCode::BAD_REQUEST,
            Reject::NoRoute | Reject::NotFound => StatusCode::NOT_FOUND,
            Reject::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Reject::Unauthorized { .. } | Reject::CredentialsRequired { .. } => {
                StatusCode::UNAUTHORIZED
            }
            Reject::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
            Reject::StoreUnavailable | Reject::Busy => StatusCode::SERVICE_UNAVAILABLE,
            Reject::BadGateway => StatusCode::BAD_GATEWAY,
            Reject::GatewayTimeout => StatusCode::GATEWAY_TIMEOUT,
            Reject::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Reject::Forbidden | Reject::CrossSite { .. } => StatusCode::FORBIDDEN,
            Reject::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Reject::UpgradeNotSupported => StatusCode::NOT_IMPLEMENTED,
            Reject::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        }
    }

    /// The text shown to the client: short, and never internal detail.
    fn message(&self) -> Cow<'static, str> {
        let text = match self {
            Reject::BadRequest(why) => why,
            Reject::NoRoute | Reject::NotFound => "There is nothing at this address.",
            Reject::HeadersTooLarge => "The request headers are too large.",
            Reject::Unauthorized { .. } => "Please sign in to see this page.",
            Reject::CredentialsRequired { .. } => {
                "This address needs a user name and password (HTTP Basic) or a signed-in session."
            }
            Reject::Throttled { retry_after } => {
                return Cow::Owned(crate::login::throttle::wait_message(*retry_after));
            }
            Reject::StoreUnavailable => {
                "Sessions are unavailable right now. Please try again shortly."
            }
            Reject::BadGateway => "The site behind this gateway could not be reached.",
            Reject::GatewayTimeout => "The site behind this gateway took too long to answer.",
            Reject::Busy => "The server is busy. Please try again shortly.",
            Reject::MethodNotAllowed { .. } => "This method is not allowed here.",
            Reject::Forbidden => "Access to this address is forbidden.",
            Reject::Internal => "Something went wrong inside the gateway.",
            Reject::UpgradeNotSupported => "This address does not take WebSocket connections.",
            Reject::PayloadTooLarge => "The request body is too large.",
            Reject::CrossSite { .. } => {
                "This request came from another site, so it was not passed on."
            }
        };
        Cow::Borrowed(text)
    }

    /// The response for this rejection: a small HTML page, or JSON for API clients.
    pub fn into_response(self, login_page: &str) -> Response<ResponseBody> {
        let status = self.status();
        let mut resp = match &self {
            Reject::Unauthorized { json: true }
            | Reject::CredentialsRequired { json: true, .. } => {
                let body = format!(
                    "{{\"error\":\"login required\",\"login\":{}}}",
                    json_string(login_page)
                );
                with_type(Response::new(ResponseBody::full(body)), "application/json")
            }
            Reject::CrossSite { json: true } => with_type(
                Response::new(ResponseBody::full(r#"{"error":"cross_site_request"}"#)),
                "application/json",
            ),
            Reject::CrossSite { json: false } => {
                builtin_page(crate::login::page::render_cross_site())
            }
            _ => error_page(status, &self.message()),
        };
        *resp.status_mut() = status;
        match self {
            Reject::Unauthorized { .. } | Reject::CrossSite { .. } => {
                resp.headers_mut()
                    .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            }
            Reject::CredentialsRequired { challenge, .. } => {
                let h = resp.headers_mut();
                h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                h.insert(header::WWW_AUTHENTICATE, challenge);
            }
            Reject::Throttled { retry_after } => {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            }
            Reject::MethodNotAllowed { allow: Some(allow) } => {
                resp.headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static(allow));
            }
            Reject::StoreUnavailable | Reject::Busy => {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            }
            // Sent before the body was read to its end: the connection
            // cannot carry another request, and the client is told so
            // rather than finding it closed under its next one. (HTTP/2
            // has no such header; hyper leaves it out there.)
            Reject::PayloadTooLarge => {
                resp.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            _ => {}
        }
        resp
    }
}

/// The answer to a signed-in visitor whom the route's `allow` list does not
/// admit: `403`, a page saying who they are signed in as with a way to
/// sign out (`logout` is the sign-out endpoint), or JSON for API clients.
/// Never a redirect to the login page: the visitor is signed in, and would
/// only come back here.
pub fn not_admitted(user: &str, logout: &str, json: bool) -> Response<ResponseBody> {
    let mut resp = if json {
        let body = format!("{{\"error\":\"forbidden\",\"user\":{}}}", json_string(user));
        with_type(Response::new(ResponseBody::full(body)), "application/json")
    } else {
        builtin_page(crate::login::page::render_not_admitted(user, logout))
    };
    *resp.status_mut() = StatusCode::FORBIDDEN;
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// A page in the built-in pages' style, with their CSP, never framed.
fn builtin_page(html: String) -> Response<ResponseBody> {
    let mut resp = with_type(
        Response::new(ResponseBody::full(html)),
        "text/html; charset=utf-8",
    );
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(crate::login::page::builtin_page_csp()),
    );
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    resp
}

impl From<UpstreamError> for Reject {
    fn from(e: UpstreamError) -> Self {
        match e {
            UpstreamError::TimedOut => Reject::GatewayTimeout,
            UpstreamError::Busy => Reject::Busy,
            UpstreamError::ClientBody => Reject::BadRequest(BAD_BODY),
            UpstreamError::Failed => Reject::BadGateway,
        }
    }
}

/// What a client whose body could not be read is told.
pub const BAD_BODY: &str = "The request body is malformed.";

impl From<CgiError> for Reject {
    /// The status for a CGI failure; details go to the log only.
    fn from(e: CgiError) -> Self {
        match e {
            CgiError::NotFound => Reject::NotFound,
            CgiError::Forbidden => Reject::Forbidden,
            CgiError::Busy => Reject::Busy,
            CgiError::Timeout => Reject::GatewayTimeout,
            CgiError::BadGateway(detail) => {
                tracing::warn!(target: "cgi", detail = %detail, "CGI script failed");
                Reject::BadGateway
            }
            CgiError::Config(detail) => {
                tracing::error!(target: "cgi", detail = %detail, "CGI gateway misconfigured");
                Reject::Internal
            }
        }
    }
}

impl From<StaticError> for Reject {
    /// The status for a file that is not served; details go to the log only.
    fn from(e: StaticError) -> Self {
        match e {
            StaticError::NotFound => Reject::NotFound,
            StaticError::MethodNotAllowed => Reject::MethodNotAllowed {
                allow: Some(ALLOWED_METHODS),
            },
            StaticError::Config(detail) | StaticError::Io(detail) => {
                tracing::error!(target: "files", detail = %detail, "static file not served");
                Reject::Internal
            }
        }
    }
}

impl From<FastCgiError> for Reject {
    /// The status for a FastCGI failure; details go to the log only.
    fn from(e: FastCgiError) -> Self {
        match e {
            FastCgiError::NotFound => Reject::NotFound,
            FastCgiError::Busy => Reject::Busy,
            FastCgiError::Timeout => Reject::GatewayTimeout,
            FastCgiError::ClientBody => Reject::BadRequest(BAD_BODY),
            FastCgiError::BodyTooLarge => Reject::PayloadTooLarge,
            FastCgiError::BadGateway(detail) => {
                tracing::warn!(target: "fastcgi", detail = %detail, "FastCGI request failed");
                Reject::BadGateway
            }
        }
    }
}

impl From<crate::canonical::TargetError> for Reject {
    fn from(e: crate::canonical::TargetError) -> Self {
        use crate::canonical::TargetError as E;
        Reject::BadRequest(match e {
            E::BadEscape => "The address holds a malformed %-escape.",
            E::AboveRoot => "The address climbs above the site's root.",
            E::DuplicateHost => "The request names more than one host.",
            E::HostMismatch => "The Host header disagrees with the request target.",
            E::Unrepresentable => "The address cannot be used.",
        })
    }
}

impl From<crate::session::commit::CommitError> for Reject {
    /// A login or logout the store could not keep: the user may retry; a
    /// login the throttle refused: after the wait.
    fn from(e: crate::session::commit::CommitError) -> Self {
        use crate::session::commit::CommitError as E;
        match e {
            E::Store(_) => Reject::StoreUnavailable,
            E::Throttled(wait) => Reject::Throttled {
                retry_after: wait.seconds(),
            },
        }
    }
}

/// `{login_page}?next=<path and query>[&expired=1]`: where a browser that
/// must sign in is sent.
pub fn login_redirect<B>(login_page: &str, req: &http::Request<B>, expired: bool) -> String {
    let next = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair("next", next);
    if expired {
        q.append_pair("expired", "1");
    }
    let sep = if login_page.contains('?') { '&' } else { '?' };
    format!("{login_page}{sep}{}", q.finish())
}

/// A small self-contained HTML page for a status.
pub fn error_page(status: StatusCode, message: &str) -> Response<ResponseBody> {
    let title = format!(
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Error")
    );
    let html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{title}</title>\
<style>body{{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;color:#222}}h1{{font-size:1.4rem}}</style></head>\
<body><main><h1>{title}</h1><p>{}</p></main></body></html>\n",
        escape_html(message)
    );
    let mut resp = with_type(
        Response::new(ResponseBody::full(html)),
        "text/html; charset=utf-8",
    );
    *resp.status_mut() = status;
    resp
}

/// A redirect to `location` (already a safe, encoded path).
pub fn redirect(status: StatusCode, location: &str) -> Response<ResponseBody> {
    let mut resp = Response::new(ResponseBody::empty());
    *resp.status_mut() = status;
    match HeaderValue::from_str(location) {
        Ok(v) => {
            resp.headers_mut().insert(header::LOCATION, v);
        }
        Err(_) => {
            resp.headers_mut()
                .insert(header::LOCATION, HeaderValue::from_static("/"));
        }
    }
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn with_type(
    mut resp: Response<ResponseBody>,
    content_type: &'static str,
) -> Response<ResponseBody> {
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_rejection_has_its_status() {
        let cases = [
            (Reject::BadRequest("x"), 400),
            (Reject::NoRoute, 404),
            (Reject::HeadersTooLarge, 431),
            (Reject::Unauthorized { json: false }, 401),
            (Reject::Unauthorized { json: true }, 401),
            (
                Reject::CredentialsRequired {
                    json: false,
                    challenge: HeaderValue::from_static("Basic realm=\"x\""),
                },
                401,
            ),
            (Reject::Throttled { retry_after: 7 }, 429),
            (Reject::StoreUnavailable, 503),
            (Reject::BadGateway, 502),
            (Reject::GatewayTimeout, 504),
            (Reject::Busy, 503),
            (Reject::NotFound, 404),
            (Reject::MethodNotAllowed { allow: None }, 405),
            (Reject::Forbidden, 403),
            (Reject::Internal, 500),
            (Reject::UpgradeNotSupported, 501),
            (Reject::PayloadTooLarge, 413),
            (Reject::CrossSite { json: false }, 403),
            (Reject::CrossSite { json: true }, 403),
        ];
        for (reject, status) in cases {
            let resp = reject.clone().into_response("/.sessiongate/login");
            assert_eq!(resp.status().as_u16(), status, "{reject:?}");
            assert_eq!(reject.status().as_u16(), status);
            // Only the answer sent before the body was read ends the connection.
            assert_eq!(
                resp.headers().get(header::CONNECTION).is_some(),
                status == 413,
                "{reject:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_cross_site_refusal_explains_itself_in_html_or_json() {
        use http_body_util::BodyExt as _;
        let page = Reject::CrossSite { json: false }.into_response("/login");
        assert_eq!(page.headers()[header::CACHE_CONTROL], "no-store");
        assert!(page.headers().contains_key(header::CONTENT_SECURITY_POLICY));
        let body = page.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&body);
        assert!(text.contains("sent from another site"), "{text}");
        let json = Reject::CrossSite { json: true }.into_response("/login");
        assert_eq!(json.headers()[header::CONTENT_TYPE], "application/json");
        let body = json.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], br#"{"error":"cross_site_request"}"#);
    }

    #[test]
    fn every_upstream_error_has_its_status() {
        let status = |e: UpstreamError| Reject::from(e).status().as_u16();
        assert_eq!(status(UpstreamError::TimedOut), 504);
        assert_eq!(status(UpstreamError::Busy), 503);
        assert_eq!(status(UpstreamError::ClientBody), 400);
        assert_eq!(status(UpstreamError::Failed), 502);
    }

    #[test]
    fn every_cgi_error_has_its_status() {
        let status = |e: CgiError| Reject::from(e).status();
        assert_eq!(status(CgiError::NotFound), StatusCode::NOT_FOUND);
        assert_eq!(status(CgiError::Forbidden), StatusCode::FORBIDDEN);
        assert_eq!(status(CgiError::Busy), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(status(CgiError::Timeout), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(
            status(CgiError::BadGateway("x".into())),
            StatusCode::BAD_GATEWAY
        );
        assert_eq!(
            status(CgiError::Config("x".into())),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }

    #[test]
    fn every_static_error_has_its_status() {
        let status = |e: StaticError| Reject::from(e).status();
        assert_eq!(status(StaticError::NotFound), StatusCode::NOT_FOUND);
        assert_eq!(
            status(StaticError::MethodNotAllowed),
            StatusCode::METHOD_NOT_ALLOWED
        );
        assert_eq!(
            status(StaticError::Io("x".into())),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        assert_eq!(
            status(StaticError::Config("x".into())),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }

    #[test]
    fn a_405_says_what_is_allowed() {
        let resp = Reject::from(StaticError::MethodNotAllowed).into_response("/login");
        assert_eq!(resp.headers()["allow"], "GET, HEAD");
        let resp = Reject::MethodNotAllowed { allow: None }.into_response("/login");
        assert!(!resp.headers().contains_key("allow"));
    }

    #[test]
    fn the_basic_challenge_and_the_wait_go_with_their_answers() {
        let challenge = HeaderValue::from_static("Basic realm=\"scripts\", charset=\"UTF-8\"");
        for json in [false, true] {
            let resp = Reject::CredentialsRequired {
                json,
                challenge: challenge.clone(),
            }
            .into_response("/.sessiongate/login");
            assert_eq!(resp.headers()[header::WWW_AUTHENTICATE], challenge);
            assert_eq!(resp.headers()[header::CACHE_CONTROL], "no-store");
        }
        let resp = Reject::Throttled { retry_after: 42 }.into_response("/.sessiongate/login");
        assert_eq!(resp.headers()[header::RETRY_AFTER], "42");
    }

    #[tokio::test]
    async fn the_429_page_says_how_long_to_wait() {
        use http_body_util::BodyExt as _;
        let resp = Reject::Throttled { retry_after: 250 }.into_response("/.sessiongate/login");
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let html = String::from_utf8_lossy(&body);
        assert!(
            html.contains("Please wait 250 seconds (about 5 minutes) and try again."),
            "{html}"
        );
    }

    #[test]
    fn every_fastcgi_error_has_its_status() {
        let status = |e: FastCgiError| Reject::from(e).status().as_u16();
        assert_eq!(status(FastCgiError::NotFound), 404);
        assert_eq!(status(FastCgiError::Busy), 503);
        assert_eq!(status(FastCgiError::Timeout), 504);
        assert_eq!(status(FastCgiError::ClientBody), 400);
        assert_eq!(status(FastCgiError::BodyTooLarge), 413);
        assert_eq!(status(FastCgiError::BadGateway("x".into())), 502);
    }

    #[test]
    fn json_401_names_the_login_page() {
        let resp = Reject::Unauthorized { json: true }.into_response("/.sessiongate/login");
        assert_eq!(resp.headers()["content-type"], "application/json");
    }
}
