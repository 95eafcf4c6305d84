//! WebSocket tunnels.
//!
//! A WebSocket handshake is an ordinary request to the proxy: it is routed,
//! its session checked and its headers rewritten like any other (on a
//! `login` route without a logged-in session it gets `401`, since a script
//! cannot follow a redirect to a login page). Only then does this module
//! step in:
//!
//! 1. [`classify`] recognises the handshake: an HTTP/1.1 `GET` with
//!    `Connection: upgrade` and `Upgrade: websocket` (RFC 6455), or an
//!    HTTP/2 extended `CONNECT` with `:protocol = websocket` (RFC 8441).
//!    Other `CONNECT` requests are refused; other `Upgrade` values
//!    (`h2c` above all) are dropped with the hop-by-hop headers.
//! 2. [`prepare`] takes the client's half of the upgrade and puts the
//!    `Upgrade` headers back on the request for the HTTP/1.1 upstream
//!    (turning an HTTP/2 handshake into the HTTP/1.1 one).
//! 3. [`PendingTunnel::complete`], once the upstream answered and its control
//!    headers were taken, turns its `101 Switching Protocols` into the
//!    client's answer and starts copying bytes both ways until either side
//!    closes.
//!
//! While a tunnel is open, the session it was opened with is looked up
//! again every `touch_interval` ([`SessionWatch`]); once it has ended
//! (logout, expiry, eviction) or belongs to another user, the tunnel is
//! closed.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use crate::body::ResponseBody;
use crate::clock::Clock;
use crate::respond::Reject;
use crate::session::{AnyStore, Policy, SessionId, SessionStore as _};

/// The shortest pause between two session checks of an open tunnel.
const MIN_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// The two forms of a WebSocket handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handshake {
    /// HTTP/1.1 `GET` with `Connection: upgrade`, `Upgrade: websocket`.
    Http1,
    /// HTTP/2 `CONNECT` with the `:protocol` pseudo-header `websocket`.
    ExtendedConnect,
}

/// Whether a request opens a WebSocket. `CONNECT` is refused unless it is
/// the HTTP/2 WebSocket handshake: a reverse proxy opens no other tunnels.
pub fn classify<B>(req: &Request<B>) -> Result<Option<Handshake>, Reject> {
    if req.method() == Method::CONNECT {
        return match req.extensions().get::<hyper::ext::Protocol>() {
            Some(p) if p.as_str().eq_ignore_ascii_case("websocket") => {
                Ok(Some(Handshake::ExtendedConnect))
            }
            _ => Err(Reject::MethodNotAllowed { allow: None }),
        };
    }
    let upgrades_to_websocket = req.method() == Method::GET
        && has_token(req.headers(), header::CONNECTION, "upgrade")
        && has_token(req.headers(), header::UPGRADE, "websocket");
    Ok(upgrades_to_websocket.then_some(Handshake::Http1))
}

/// Whether a comma-separated header holds `token` (case-insensitive).
fn has_token(headers: &http::HeaderMap, name: header::HeaderName, token: &str) -> bool {
    // Bytes split by hand: every request asks this of its `Connection`.
    headers
        .get_all(name)
        .iter()
        .filter(|v| v.to_str().is_ok())
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

/// A handshake on its way to the upstream, holding the client's side of the
/// future tunnel.
pub struct PendingTunnel {
    kind: Handshake,
    client: OnUpgrade,
}

impl std::fmt::Debug for PendingTunnel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingTunnel")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// Takes the client's side of the upgrade out of `req` and makes `req` the
/// HTTP/1.1 handshake the upstream expects. Runs after the request was
/// prepared, since that removed `Connection` and `Upgrade` with the other
/// hop-by-hop headers.
pub fn prepare<B>(req: &mut Request<B>, kind: Handshake) -> PendingTunnel {
    let client = hyper::upgrade::on(&mut *req);
    let headers = req.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if kind == Handshake::ExtendedConnect {
        // RFC 8441 has no key; the HTTP/1.1 handshake needs one. Its answer
        // (Sec-WebSocket-Accept) only proves the upstream speaks WebSocket,
        // so it is dropped on the way back rather than checked.
        headers.insert(header::SEC_WEBSOCKET_KEY, websocket_key());
        headers
            .entry(header::SEC_WEBSOCKET_VERSION)
            .or_insert(HeaderValue::from_static("13"));
        *req.method_mut() = Method::GET;
        req.extensions_mut().remove::<hyper::ext::Protocol>();
    }
    PendingTunnel { kind, client }
}

/// A fresh `Sec-WebSocket-Key`: 16 random bytes, base64.
fn websocket_key() -> HeaderValue {
    let mut nonce = [0u8; 16];
    // A failing system RNG leaves zeros: the key is a handshake nonce, not a secret.
    let _ = getrandom::fill(&mut nonce);
    let key = base64::engine::general_purpose::STANDARD.encode(nonce);
    HeaderValue::from_str(&key)
        .unwrap_or_else(|_| HeaderValue::from_static("AAAAAAAAAAAAAAAAAAAAAA=="))
}

impl PendingTunnel {
    /// Turns the upstream's answer into the client's. A `101` becomes the
    /// client's `101` (HTTP/1.1) or `200` (HTTP/2), and the tunnel starts
    /// once both sides have switched; any other answer goes back as it is,
    /// and the tunnel never opens. Call it after the control headers were
    /// taken, so that the `Upgrade` headers it sets stay.
    pub fn complete(
        self,
        resp: &mut Response<ResponseBody>,
        watch: Option<SessionWatch>,
    ) -> Result<(), Reject> {
        if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
            if self.kind == Handshake::ExtendedConnect && resp.status().is_success() {
                // A 2xx would open the client's stream onto nothing.
                tracing::warn!(status = %resp.status(), "upstream answered a WebSocket handshake without switching protocols");
                return Err(Reject::BadGateway);
            }
            return Ok(());
        }
        let upstream = hyper::upgrade::on(&mut *resp);
        let headers = resp.headers_mut();
        headers.remove(header::CONTENT_LENGTH);
        match self.kind {
            Handshake::Http1 => {
                headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
                headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
            }
            Handshake::ExtendedConnect => {
                headers.remove(header::SEC_WEBSOCKET_ACCEPT);
                *resp.status_mut() = StatusCode::OK;
            }
        }
        *resp.body_mut() = ResponseBody::empty();
        tokio::spawn(run(self.client, upstream, watch));
        Ok(())
    }
}

/// Waits for both sides to switch, then copies bytes until either side
/// closes or the session ends.
async fn run(client: OnUpgrade, upstream: OnUpgrade, watch: Option<SessionWatch>) {
    let (client, upstream) = match tokio::try_join!(client, upstream) {
        Ok(pair) => pair,
        Err(e) => {
            tracing::debug!(error = %e, "WebSocket upgrade did not complete");
            return;
        }
    };
    let mut client = TokioIo::new(client);
    let mut upstream = TokioIo::new(upstream);
    let session_ended = async {
        match &watch {
            Some(w) => w.until_ended().await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        copied = tokio::io::copy_bidirectional(&mut client, &mut upstream) => match copied {
            Ok((to_upstream, to_client)) => {
                tracing::debug!(to_upstream, to_client, "WebSocket tunnel closed");
            }
            Err(e) => tracing::debug!(error = %e, "WebSocket tunnel ended with an error"),
        },
        reason = session_ended => {
            let session = watch.as_ref().map(|w| w.id.log_hash());
            tracing::info!(session = session.as_deref().unwrap_or("-"), reason, "closing a WebSocket tunnel");
        }
    }
}

/// The session an open tunnel depends on, looked up again at intervals.
pub struct SessionWatch {
    /// The store to ask.
    pub store: AnyStore,
    /// The proxy's clock.
    pub clock: Clock,
    /// The session the handshake carried.
    pub id: SessionId,
    /// Its user at the handshake.
    pub user: Option<Arc<str>>,
    /// Lifetime rules at the handshake.
    pub policy: Policy,
    /// Time between two lookups (`touch_interval`, at least a second).
    pub every: Duration,
}

impl SessionWatch {
    /// A watch checking every `touch_interval` (at least every second).
    pub fn new(
        store: AnyStore,
        clock: Clock,
        id: SessionId,
        user: Option<Arc<str>>,
        policy: Policy,
    ) -> SessionWatch {
        SessionWatch {
            store,
            clock,
            id,
            user,
            policy,
            every: Duration::from_secs(policy.touch_interval).max(MIN_CHECK_INTERVAL),
        }
    }

    /// Resolves, with the reason, once the session has ended or changed
    /// hands. A store that cannot be reached keeps the tunnel open: it is
    /// asked again at the next interval.
    async fn until_ended(&self) -> &'static str {
        loop {
            tokio::time::sleep(self.every).await;
            // A lookup counts as activity, as a request would: an open
            // tunnel keeps its session from going idle.
            match self
                .store
                .load(&self.id, self.clock.now(), &self.policy)
                .await
            {
                Ok(Some(record)) if record.user == self.user => {}
                Ok(Some(_)) => return "the session's user changed",
                Ok(None) => return "the session ended",
                Err(e) => {
                    tracing::warn!(error = %e, "cannot check the session of a WebSocket tunnel; keeping it open");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: Method, headers: &[(&str, &str)]) -> Request<()> {
        let mut b = Request::builder().method(method).uri("/ws");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn websocket_get_is_a_handshake() {
        let r = req(
            Method::GET,
            &[
                ("connection", "keep-alive, Upgrade"),
                ("upgrade", "WebSocket"),
            ],
        );
        assert_eq!(classify(&r), Ok(Some(Handshake::Http1)));
    }

    #[test]
    fn other_upgrades_are_plain_requests() {
        let h2c = req(
            Method::GET,
            &[
                ("connection", "upgrade, http2-settings"),
                ("upgrade", "h2c"),
            ],
        );
        assert_eq!(classify(&h2c), Ok(None));
        let post = req(
            Method::POST,
            &[("connection", "upgrade"), ("upgrade", "websocket")],
        );
        assert_eq!(classify(&post), Ok(None));
        let no_connection = req(Method::GET, &[("upgrade", "websocket")]);
        assert_eq!(classify(&no_connection), Ok(None));
    }

    #[test]
    fn connect_is_refused_unless_it_opens_a_websocket() {
        let plain = req(Method::CONNECT, &[]);
        assert_eq!(
            classify(&plain),
            Err(Reject::MethodNotAllowed { allow: None })
        );
        let mut ws = req(Method::CONNECT, &[]);
        ws.extensions_mut()
            .insert(hyper::ext::Protocol::from_static("websocket"));
        assert_eq!(classify(&ws), Ok(Some(Handshake::ExtendedConnect)));
        let mut other = req(Method::CONNECT, &[]);
        other
            .extensions_mut()
            .insert(hyper::ext::Protocol::from_static("connect-udp"));
        assert_eq!(
            classify(&other),
            Err(Reject::MethodNotAllowed { allow: None })
        );
    }

    #[test]
    fn extended_connect_becomes_an_http1_handshake() {
        let mut r = req(Method::CONNECT, &[("sec-websocket-version", "13")]);
        r.extensions_mut()
            .insert(hyper::ext::Protocol::from_static("websocket"));
        let _pending = prepare(&mut r, Handshake::ExtendedConnect);
        assert_eq!(r.method(), Method::GET);
        assert_eq!(r.headers()["upgrade"], "websocket");
        assert_eq!(r.headers()["connection"], "upgrade");
        let key = r.headers()["sec-websocket-key"].to_str().unwrap();
        assert_eq!(
            base64::engine::general_purpose::STANDARD
                .decode(key)
                .unwrap()
                .len(),
            16
        );
        assert!(r.extensions().get::<hyper::ext::Protocol>().is_none());
    }
}
