//! The admin listener (`admin.listen`): health, readiness, metrics and the
//! sessions API, on an address of its own, never one of the proxy's.
//!
//! ```text
//! GET    /healthz            200 "ok" while the process runs
//! GET    /readyz             200 when the store answers; 503 and the reason otherwise
//! GET    /metrics            Prometheus text 0.0.4, or OpenMetrics when asked (exposition)
//! GET    /sessions?user=U    the user's sessions (sessions)
//! DELETE /sessions?user=U    end them all
//! DELETE /sessions/TAG       end one
//! ```
//!
//! Every request first passes [`auth`]; then an unknown path is `404` and
//! a known one asked with another method `405`. The token and the store
//! come from the gate and its setup in force, so a reload (SIGHUP) applies
//! a new token at once; the address is bound at start, and a new one needs
//! a restart.
//!
//! The listener speaks HTTP/1.1 and has connections of its own, outside
//! `max_connections`, so that an operator can still look in while the
//! proxy is full; they keep the proxy's deadlines, and are drained at
//! shutdown like every other listener's.

pub mod auth;
pub mod exposition;
pub mod sessions;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioTimer;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::accept::{Acceptor, ConnectionSlots};
use crate::body::ResponseBody;
use crate::connection::{self, Deadlines, Drain, Held, Speak};
use crate::proxy::Gate;
use crate::session::{SessionStore as _, StoreError};
use exposition::{Exposition, Format};

/// Admin connections open at once; more wait in the listen queue.
const MAX_CONNECTIONS: usize = 64;
/// How long `/readyz` waits for the store to answer a ping.
pub const READY_PROBE: Duration = Duration::from_secs(1);

/// Why an admin request is refused; each is one status, in [`AdminError::status`].
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// No valid `Authorization: Bearer` token.
    #[error("a valid admin token is required")]
    Unauthorized,
    /// No such endpoint.
    #[error("no such admin endpoint")]
    NotFound,
    /// A known endpoint, another method.
    #[error("method not allowed")]
    MethodNotAllowed {
        /// The methods the endpoint takes, for `Allow`.
        allow: &'static str,
    },
    /// `/sessions` without `user`.
    #[error("the user parameter is required")]
    MissingUser,
    /// No session has this tag.
    #[error("no session with this tag")]
    UnknownSession,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The metrics could not be encoded.
    #[error("the metrics could not be encoded")]
    Encoding,
}

impl AdminError {
    /// The status this refusal is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            AdminError::Unauthorized => StatusCode::UNAUTHORIZED,
            AdminError::NotFound | AdminError::UnknownSession => StatusCode::NOT_FOUND,
            AdminError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            AdminError::MissingUser => StatusCode::BAD_REQUEST,
            AdminError::Store(StoreError::Unavailable(_)) => StatusCode::SERVICE_UNAVAILABLE,
            AdminError::Store(_) | AdminError::Encoding => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// `{"error": "..."}` with the status, and `WWW-Authenticate` or
    /// `Allow` where they belong.
    pub fn into_response(self) -> Response<ResponseBody> {
        #[derive(Serialize)]
        struct Body {
            error: String,
        }
        let mut resp = json(
            self.status(),
            &Body {
                error: self.to_string(),
            },
        );
        let headers = resp.headers_mut();
        match self {
            AdminError::Unauthorized => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"sessiongate admin\""),
                );
            }
            AdminError::MethodNotAllowed { allow } => {
                headers.insert(header::ALLOW, HeaderValue::from_static(allow));
            }
            _ => {}
        }
        resp
    }
}

/// What a request asks for, once its path and method are known.
#[derive(Debug, PartialEq, Eq)]
enum Endpoint<'a> {
    Health,
    Ready,
    Metrics,
    ListSessions,
    EndSessions,
    EndSession(&'a str),
}

impl<'a> Endpoint<'a> {
    /// The endpoint for `method` on `path`.
    fn find(method: &Method, path: &'a str) -> Result<Endpoint<'a>, AdminError> {
        const READ: &str = "GET, HEAD";
        let read = matches!(*method, Method::GET | Method::HEAD);
        let only = |ok: bool, endpoint: Endpoint<'a>, allow| {
            if ok {
                Ok(endpoint)
            } else {
                Err(AdminError::MethodNotAllowed { allow })
            }
        };
        match path {
            "/healthz" => only(read, Endpoint::Health, READ),
            "/readyz" => only(read, Endpoint::Ready, READ),
            "/metrics" => only(read, Endpoint::Metrics, READ),
            "/sessions" => match *method {
                Method::GET => Ok(Endpoint::ListSessions),
                Method::DELETE => Ok(Endpoint::EndSessions),
                _ => Err(AdminError::MethodNotAllowed {
                    allow: "GET, DELETE",
                }),
            },
            _ => match path.strip_prefix("/sessions/") {
                Some(tag) if !tag.is_empty() && !tag.contains('/') => only(
                    *method == Method::DELETE,
                    Endpoint::EndSession(tag),
                    "DELETE",
                ),
                _ => Err(AdminError::NotFound),
            },
        }
    }
}

/// The admin listener's state: the gate it reports on, its metrics, and
/// the address it is bound to.
struct Admin {
    gate: Arc<Gate>,
    exposition: Arc<Exposition>,
    local: SocketAddr,
}

impl Admin {
    /// Answers one request from the operator at `peer`.
    async fn answer(&self, req: Request<Incoming>, peer: IpAddr) -> Response<ResponseBody> {
        let mut resp = self
            .dispatch(&req, peer)
            .await
            .unwrap_or_else(AdminError::into_response);
        resp.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        resp
    }

    async fn dispatch(
        &self,
        req: &Request<Incoming>,
        peer: IpAddr,
    ) -> Result<Response<ResponseBody>, AdminError> {
        let setup = self.gate.setup();
        auth::check(
            setup.config.admin.token.as_deref(),
            req.headers(),
            self.local,
        )?;
        let query = req.uri().query();
        match Endpoint::find(req.method(), req.uri().path())? {
            Endpoint::Health => Ok(text(StatusCode::OK, "ok\n".into())),
            Endpoint::Ready => Ok(ready(&self.gate).await),
            Endpoint::Metrics => self.metrics(req.headers().get(header::ACCEPT)).await,
            Endpoint::ListSessions => sessions::list(&self.gate, query).await,
            Endpoint::EndSessions => sessions::end_all(&self.gate, query, peer).await,
            Endpoint::EndSession(tag) => sessions::end_one(&self.gate, tag, peer).await,
        }
    }

    /// `GET /metrics`. Encoded off the request threads: it reads `/proc`.
    async fn metrics(
        &self,
        accept: Option<&HeaderValue>,
    ) -> Result<Response<ResponseBody>, AdminError> {
        let format = Format::negotiate(accept);
        let exposition = self.exposition.clone();
        let body = tokio::task::spawn_blocking(move || exposition.encode(format))
            .await
            .map_err(|_| AdminError::Encoding)?
            .map_err(|_| AdminError::Encoding)?;
        let mut resp = Response::new(ResponseBody::full(body));
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(format.content_type()),
        );
        Ok(resp)
    }
}

/// `GET /readyz`: the config is loaded (or this listener would not be
/// running); ready when the store answers a ping within [`READY_PROBE`].
async fn ready(gate: &Gate) -> Response<ResponseBody> {
    match tokio::time::timeout(READY_PROBE, gate.store.ping()).await {
        Ok(Ok(())) => text(StatusCode::OK, "ready\n".into()),
        Ok(Err(e)) => text(StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {e}\n")),
        Err(_) => text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: the session store did not answer within {READY_PROBE:?}\n"),
        ),
    }
}

/// A plain-text answer.
fn text(status: StatusCode, body: String) -> Response<ResponseBody> {
    let mut resp = Response::new(ResponseBody::full(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// A JSON answer.
fn json(status: StatusCode, value: &impl Serialize) -> Response<ResponseBody> {
    // Serializing these plain structs cannot fail; should it, the answer
    // is still JSON.
    let body = serde_json::to_string(value)
        .unwrap_or_else(|_| r#"{"error":"unencodable answer"}"#.to_string());
    let mut resp = Response::new(ResponseBody::full(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// How the admin listener's connections are held.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// From accept to a complete first request head.
    pub request_header_timeout: Duration,
    /// Idle time allowed between requests.
    pub keepalive_timeout: Duration,
}

/// Accepts connections on `listener` until shutdown, then drains them
/// within the `shutdown_grace` in force.
pub async fn serve(
    listener: TcpListener,
    gate: Arc<Gate>,
    timing: Timing,
    mut stop: watch::Receiver<bool>,
) {
    let local = match listener.local_addr() {
        Ok(local) => local,
        Err(e) => {
            tracing::error!(error = %e, "admin listener has no address; not serving");
            return;
        }
    };
    let admin = Arc::new(Admin {
        exposition: Arc::new(Exposition::new(gate.clone())),
        gate,
        local,
    });
    let builder = Arc::new({
        let mut b = http1::Builder::new();
        b.timer(TokioTimer::new()).header_read_timeout(None);
        b
    });
    let mut acceptor = match Acceptor::new(listener, ConnectionSlots::new(MAX_CONNECTIONS)) {
        Ok(acceptor) => acceptor,
        Err(e) => {
            tracing::error!(error = %e, "admin listener cannot accept; not serving");
            return;
        }
    };
    let drain = Drain::default();
    loop {
        let accepted = tokio::select! {
            accepted = acceptor.accept() => accepted,
            _ = stop.changed() => break,
        };
        let deadlines = Deadlines {
            first_head: Instant::now() + timing.request_header_timeout,
            keepalive: timing.keepalive_timeout,
        };
        let _ = accepted.stream.set_nodelay(true);
        let io = Held::new(accepted.stream, accepted.slot);
        let admin = admin.clone();
        let builder = builder.clone();
        let token = drain.token();
        let peer = accepted.peer.ip();
        tokio::spawn(async move {
            let handle = move |req: Request<Incoming>| {
                let admin = admin.clone();
                async move { admin.answer(req, peer).await }
            };
            connection::serve(io, Speak::Http1(&builder), handle, deadlines, token).await;
        });
    }
    drop(acceptor);
    let grace = admin.gate.setup().config.server.shutdown_grace;
    if !drain.finish(grace).await {
        tracing::warn!(grace = ?grace, "admin connections still open after shutdown_grace; closing them");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_methods_find_their_endpoint() {
        use Endpoint::*;
        let find = |m: Method, p: &'static str| Endpoint::find(&m, p);
        assert_eq!(find(Method::GET, "/healthz").unwrap(), Health);
        assert_eq!(find(Method::HEAD, "/readyz").unwrap(), Ready);
        assert_eq!(find(Method::GET, "/metrics").unwrap(), Metrics);
        assert_eq!(find(Method::GET, "/sessions").unwrap(), ListSessions);
        assert_eq!(find(Method::DELETE, "/sessions").unwrap(), EndSessions);
        assert_eq!(
            find(Method::DELETE, "/sessions/0123456789ab").unwrap(),
            EndSession("0123456789ab")
        );
        for (m, p) in [
            (Method::POST, "/healthz"),
            (Method::DELETE, "/metrics"),
            (Method::POST, "/sessions"),
            (Method::GET, "/sessions/0123456789ab"),
        ] {
            let e = Endpoint::find(&m, p).unwrap_err();
            assert_eq!(e.status(), StatusCode::METHOD_NOT_ALLOWED, "{m} {p}");
        }
        for p in ["/", "/metrics/", "/sessions/", "/sessions/a/b", "/healthz2"] {
            let e = Endpoint::find(&Method::GET, p).unwrap_err();
            assert_eq!(e.status(), StatusCode::NOT_FOUND, "{p}");
        }
    }

    #[test]
    fn every_refusal_has_its_status_and_headers() {
        let cases = [
            (AdminError::Unauthorized, 401),
            (AdminError::NotFound, 404),
            (AdminError::MethodNotAllowed { allow: "GET" }, 405),
            (AdminError::MissingUser, 400),
            (AdminError::UnknownSession, 404),
            (AdminError::Store(StoreError::Unavailable("x".into())), 503),
            (AdminError::Store(StoreError::Corrupt("x".into())), 500),
            (AdminError::Encoding, 500),
        ];
        for (e, status) in cases {
            let resp = e.into_response();
            assert_eq!(resp.status().as_u16(), status);
            assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/json");
        }
        let resp = AdminError::Unauthorized.into_response();
        assert!(
            resp.headers()[header::WWW_AUTHENTICATE]
                .to_str()
                .unwrap()
                .starts_with("Bearer")
        );
        let resp = AdminError::MethodNotAllowed { allow: "DELETE" }.into_response();
        assert_eq!(resp.headers()[header::ALLOW], "DELETE");
    }
}
