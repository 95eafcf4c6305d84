//! Forwarding to HTTP and HTTPS upstreams over kept-alive connections.
//!
//! Every upstream origin (`scheme://host:port`) has one [`HttpUpstream`]: a
//! pool of HTTP/1.1 connections made with `hyper::client::conn::http1`.
//! Upstreams always get HTTP/1.1, whatever the client spoke; `https://`
//! upstreams are reached through rustls, with SNI and certificate
//! verification for the upstream's host name.
//!
//! A connection goes back to the pool when the response body it carried
//! has been read to its end ([`UpstreamBody`]); one whose body was cut short
//! is closed. A request that meets an idle connection the upstream has just
//! closed, before any byte of it was written, is sent again on another
//! connection; nothing that may have reached the upstream is ever resent.
//! Idle connections older than [`POOL_IDLE_TIMEOUT`] are dropped when the
//! pool is next used; until then an upstream that closes idle connections
//! itself (most do) frees them. A reload builds new pools, and the old
//! ones close their connections as their last responses end.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, StatusCode, Uri, Version};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::request_body::{ClientBodyError, RequestBody};
use crate::respond::Reject;

/// How long an idle pooled upstream connection is kept.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Most idle connections kept per upstream.
const POOL_MAX_IDLE: usize = 256;
/// How long a TCP connect (and TLS handshake) to an upstream may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// TCP keepalive probes on upstream connections.
const TCP_KEEPALIVE: Duration = Duration::from_secs(60);

/// Why an upstream origin cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum OriginError {
    /// The host is not a name rustls can verify a certificate for.
    #[error("{0}: not a valid TLS server name")]
    ServerName(String),
}

/// The connections to one upstream origin; cheap to clone.
#[derive(Clone)]
pub struct HttpUpstream {
    origin: Arc<Origin>,
}

struct Origin {
    /// `host:port`, for logs.
    authority: Authority,
    /// Host to connect to, without IPv6 brackets.
    host: Box<str>,
    port: u16,
    /// Set for `https://` origins.
    tls: Option<(TlsConnector, ServerName<'static>)>,
    idle: Mutex<VecDeque<Idle>>,
}

struct Idle {
    sender: SendRequest<RequestBody>,
    since: Instant,
}

impl HttpUpstream {
    /// The pool for `scheme://authority`; `tls` says whom `https://`
    /// upstreams are trusted by (see [`crate::tls::upstream_client_config`]).
    pub fn new(
        scheme: &Scheme,
        authority: &Authority,
        tls: &Arc<rustls::ClientConfig>,
    ) -> Result<Self, OriginError> {
        let https = *scheme == Scheme::HTTPS;
        let host = authority.host();
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let tls = if https {
            let name = ServerName::try_from(host.to_owned())
                .map_err(|_| OriginError::ServerName(host.to_owned()))?;
            Some((TlsConnector::from(tls.clone()), name))
        } else {
            None
        };
        Ok(HttpUpstream {
            origin: Arc::new(Origin {
                authority: authority.clone(),
                host: host.into(),
                port: authority.port_u16().unwrap_or(if https { 443 } else { 80 }),
                tls,
                idle: Mutex::new(VecDeque::new()),
            }),
        })
    }

    /// Sends the request to this upstream with its own path and query, and
    /// waits at most `timeout` for the response head.
    pub async fn forward(
        &self,
        mut req: Request<RequestBody>,
        timeout: Duration,
    ) -> Result<Response<UpstreamBody>, Reject> {
        origin_form(req.uri_mut());
        // Upstreams speak HTTP/1.1 whatever the client spoke.
        *req.version_mut() = Version::HTTP_11;
        match tokio::time::timeout(timeout, self.send(req)).await {
            Err(_) => Err(Reject::GatewayTimeout),
            // The client's own body broke (see `request_body`): its error,
            // not the upstream's.
            Ok(Err(e)) if e.client_body_failed() => Err(Reject::BadRequest(BAD_BODY)),
            Ok(Err(e)) => {
                tracing::warn!(upstream = %self.origin.authority, error = %e, "upstream request failed");
                Err(Reject::BadGateway)
            }
            Ok(Ok((resp, sender))) => {
                // A connection that switched protocols is the tunnel's now.
                let lease = (resp.status() != StatusCode::SWITCHING_PROTOCOLS).then(|| Lease {
                    sender,
                    origin: self.origin.clone(),
                });
                Ok(resp.map(|body| UpstreamBody { body, lease }))
            }
        }
    }

    async fn send(
        &self,
        mut req: Request<RequestBody>,
    ) -> Result<(Response<Incoming>, SendRequest<RequestBody>), Failure> {
        loop {
            let (mut sender, reused) = match self.origin.checkout() {
                Some(sender) => (sender, true),
                // Boxed: connecting is rare, and its future is large; the
                // future of every request stays small and cheap to move.
                None => (Box::pin(self.origin.connect()).await?, false),
            };
            match sender.try_send_request(req).await {
                Ok(resp) => return Ok((resp, sender)),
                Err(mut e) => match e.take_message() {
                    // The idle connection was closed under us before the
                    // request went out: it is safe to send it again. Each
                    // retry uses up an idle connection, so this ends.
                    Some(unsent) if reused => req = unsent,
                    _ => return Err(Failure::Request(e.into_error())),
                },
            }
        }
    }
}

impl Origin {
    /// The most recently returned idle connection that can take a request.
    fn checkout(&self) -> Option<SendRequest<RequestBody>> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        for _ in 0..idle.len() {
            let entry = idle.pop_back()?;
            if entry.sender.is_closed() || entry.since.elapsed() > POOL_IDLE_TIMEOUT {
                continue;
            }
            if entry.sender.is_ready() {
                return Some(entry.sender);
            }
            // Its last response has just ended; the connection will be
            // ready once its task has run. Keep it for a later request.
            idle.push_front(entry);
        }
        None
    }

    /// Returns a connection whose response has been read to its end.
    fn put_back(&self, sender: SendRequest<RequestBody>) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        while idle
            .front()
            .is_some_and(|e| e.since.elapsed() > POOL_IDLE_TIMEOUT)
        {
            idle.pop_front();
        }
        if idle.len() < POOL_MAX_IDLE {
            idle.push_back(Idle {
                sender,
                since: Instant::now(),
            });
        }
    }

    /// Opens a new connection and starts its task.
    async fn connect(&self) -> Result<SendRequest<RequestBody>, Failure> {
        let tcp = tokio::time::timeout(
            CONNECT_TIMEOUT,
            TcpStream::connect((&*self.host, self.port)),
        )
        .await
        .map_err(|_| Failure::Connect(io::ErrorKind::TimedOut.into()))?
        .map_err(Failure::Connect)?;
        tcp.set_nodelay(true).map_err(Failure::Connect)?;
        let keepalive = socket2::TcpKeepalive::new().with_time(TCP_KEEPALIVE);
        if let Err(e) = socket2::SockRef::from(&tcp).set_tcp_keepalive(&keepalive) {
            tracing::debug!(error = %e, "cannot set TCP keepalive on an upstream connection");
        }
        match &self.tls {
            None => handshake(tcp).await,
            Some((connector, name)) => {
                let tls =
                    tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(name.clone(), tcp))
                        .await
                        .map_err(|_| Failure::Tls(io::ErrorKind::TimedOut.into()))?
                        .map_err(Failure::Tls)?;
                handshake(tls).await
            }
        }
    }
}

/// Starts HTTP/1.1 on a connected stream; the connection runs on its own task
/// (with upgrades, for WebSocket tunnels) until the pool lets go of it.
async fn handshake<S>(stream: S) -> Result<SendRequest<RequestBody>, Failure>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (sender, conn) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(Failure::Request)?;
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(error = %e, "upstream connection ended with an error");
        }
    });
    Ok(sender)
}

/// Makes the request target `/path?query`, as an origin server expects it
/// (HTTP/2 requests and absolute-form requests carry scheme and authority).
fn origin_form(uri: &mut Uri) {
    if uri.scheme().is_none() && uri.authority().is_none() {
        return;
    }
    let path = uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    *uri = Uri::from(path);
}

/// What went wrong on the way to the upstream.
#[derive(Debug)]
enum Failure {
    Connect(io::Error),
    Tls(io::Error),
    Request(hyper::Error),
}

impl Failure {
    /// Whether the request failed because the client's body could not be read.
    fn client_body_failed(&self) -> bool {
        let Failure::Request(e) = self else {
            return false;
        };
        let mut cause = std::error::Error::source(e);
        while let Some(inner) = cause {
            if inner.is::<ClientBodyError>() {
                return true;
            }
            cause = inner.source();
        }
        false
    }
}

/// What a client whose body could not be read is told.
pub const BAD_BODY: &str = "The request body is malformed.";

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Connect(e) => write!(f, "connect: {e}"),
            Failure::Tls(e) => write!(f, "TLS handshake: {e}"),
            Failure::Request(e) => {
                write!(f, "{e}")?;
                let mut cause = std::error::Error::source(e);
                while let Some(inner) = cause {
                    write!(f, ": {inner}")?;
                    cause = inner.source();
                }
                Ok(())
            }
        }
    }
}

/// A connection lent to one response.
struct Lease {
    sender: SendRequest<RequestBody>,
    origin: Arc<Origin>,
}

/// An upstream's response body, streamed through. Once it has been read to
/// its end, its connection goes back to the pool.
pub struct UpstreamBody {
    body: Incoming,
    lease: Option<Lease>,
}

impl UpstreamBody {
    fn release(&mut self) {
        if let Some(lease) = self.lease.take() {
            lease.origin.put_back(lease.sender);
        }
    }
}

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        // A body nobody needed to read (HEAD, 204, 304, Content-Length: 0)
        // leaves the connection reusable; a body cut short does not, and
        // its connection closes with it.
        if self.body.is_end_stream() {
            self.release();
        }
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => self.release(),
            Poll::Ready(Some(Err(_))) => self.lease = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
