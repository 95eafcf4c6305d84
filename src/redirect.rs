//! The plain-HTTP listener of `server.redirect_http`: every request is sent
//! to the same host and path over HTTPS, and nothing else happens there (no
//! session, no upstream), so no cookie is ever issued over plain HTTP.

use std::convert::Infallible;
use std::time::Duration;

use http::header::{self, HeaderValue};
use http::uri::Authority;
use http::{Method, Request, Response, StatusCode};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::body::ResponseBody;
use crate::respond::Reject;

/// How long a client may take to send its request head.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts connections until shutdown and answers each request with a
/// redirect to `https://<host>[:https_port]<path and query>`.
pub async fn serve(
    listener: TcpListener,
    https_port: u16,
    grace: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed on the redirect listener");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let service = service_fn(move |req: Request<hyper::body::Incoming>| async move {
                    Ok::<_, Infallible>(to_https(&req, https_port))
                });
                let conn = builder.serve_connection(TokioIo::new(stream), service);
                let conn = graceful.watch(conn.into_owned());
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(error = %e, "redirect connection ended with an error");
                    }
                });
            }
            _ = stop.changed() => break,
        }
    }
    drop(listener);
    let _ = tokio::time::timeout(grace, graceful.shutdown()).await;
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
