//! The plain-HTTP listener of `server.redirect_http`: every request is sent
//! to the same host and path over HTTPS, and nothing else happens there (no
//! session, no upstream), so no cookie is ever issued over plain HTTP.

use std::sync::Arc;
use std::time::Duration;

use http::header::{self, HeaderValue};
use http::uri::Authority;
use http::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::accept::Acceptor;
use crate::body::ResponseBody;
use crate::connection::{self, Deadlines, Drain, Held, Speak};
use crate::respond::Reject;

/// The times the redirect listener's connections are held to (those of
/// the main listeners).
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// From accept to a complete first request head.
    pub request_header_timeout: Duration,
    /// Idle time allowed between requests.
    pub keepalive_timeout: Duration,
    /// Time open connections get to finish at shutdown.
    pub grace: Duration,
}

/// Accepts connections until shutdown and answers each request with a
/// redirect to `https://<host>[:https_port]<path and query>`. Connections
/// count against `max_connections` like any other, and keep the same
/// deadlines ([`crate::connection`]).
pub async fn serve(
    mut acceptor: Acceptor,
    https_port: u16,
    timing: Timing,
    mut stop: watch::Receiver<bool>,
) {
    let drain = Drain::default();
    let builder = Arc::new({
        let mut b = auto::Builder::new(TokioExecutor::new());
        b.http1().timer(TokioTimer::new()).header_read_timeout(None);
        b
    });
    loop {
        let accepted = tokio::select! {
            accepted = acceptor.accept() => accepted,
            _ = stop.changed() => break,
        };
        let deadlines = Deadlines {
            first_head: Instant::now() + timing.request_header_timeout,
            keepalive: timing.keepalive_timeout,
        };
        let io = Held::new(accepted.stream, accepted.slot);
        let builder = builder.clone();
        let token = drain.token();
        tokio::spawn(async move {
            let handle = move |req: Request<hyper::body::Incoming>| async move {
                to_https(&req, https_port)
            };
            connection::serve(io, Speak::Detect(&builder), handle, deadlines, token).await;
        });
    }
    drop(acceptor);
    let _ = drain.finish(timing.grace).await;
}

/// The redirect for one request: `301` for GET and HEAD, `308` for other
/// methods (which keeps the method and body); `400` without a usable Host.
pub fn to_https<B>(req: &Request<B>, https_port: u16) -> Response<ResponseBody> {
    let Some(host) = request_host(req) else {
        return Reject::BadRequest("The request names no valid host.").into_response("/");
    };
    let port = if https_port == 443 {
        String::new()
    } else {
        format!(":{https_port}")
    };
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let location = format!("https://{host}{port}{path}");
    let status = if matches!(*req.method(), Method::GET | Method::HEAD) {
        StatusCode::MOVED_PERMANENTLY
    } else {
        StatusCode::PERMANENT_REDIRECT
    };
    let Ok(location) = HeaderValue::from_str(&location) else {
        return Reject::BadRequest("The request target is invalid.").into_response("/");
    };
    let mut resp = Response::new(ResponseBody::empty());
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::LOCATION, location);
    resp
}

/// The host the client asked for, without its port; `None` unless it is a
/// plain host name or IP literal (no user info, nothing that could turn the
/// redirect elsewhere).
fn request_host<B>(req: &Request<B>) -> Option<String> {
    let raw = match req.headers().get(header::HOST) {
        Some(v) => v.to_str().ok()?.to_string(),
        None => req.uri().authority()?.as_str().to_string(),
    };
    let authority: Authority = raw.parse().ok()?;
    if authority.as_str().contains('@') {
        return None;
    }
    let host = authority.host();
    let plain = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'[' | b']' | b':'));
    plain.then(|| host.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redirect(method: Method, host: Option<&str>, target: &str, port: u16) -> (u16, String) {
        let mut b = Request::builder().method(method).uri(target);
        if let Some(h) = host {
            b = b.header("host", h);
        }
        let resp = to_https(&b.body(()).unwrap(), port);
        let location = resp
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        (resp.status().as_u16(), location)
    }

    #[test]
    fn get_is_moved_permanently_with_path_and_query() {
        assert_eq!(
            redirect(Method::GET, Some("Example.org:80"), "/a/b?c=d", 443),
            (301, "https://example.org/a/b?c=d".into())
        );
        assert_eq!(
            redirect(Method::HEAD, Some("example.org"), "/", 8443),
            (301, "https://example.org:8443/".into())
        );
        assert_eq!(
            redirect(Method::GET, Some("[::1]:8080"), "/x", 443),
            (301, "https://[::1]/x".into())
        );
    }

    #[test]
    fn other_methods_keep_their_method() {
        assert_eq!(
            redirect(Method::POST, Some("example.org"), "/form", 443).0,
            308
        );
    }

    #[test]
    fn a_bad_host_gets_400() {
        assert_eq!(redirect(Method::GET, None, "/", 443).0, 400);
        assert_eq!(
            redirect(Method::GET, Some("evil.example@good.example"), "/", 443).0,
            400
        );
        assert_eq!(redirect(Method::GET, Some("a/b"), "/", 443).0, 400);
    }
}
