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
//! Idle connections older than `POOL_IDLE_TIMEOUT` are dropped when the
//! pool is next used; until then an upstream that closes idle connections
//! itself (most do) frees them. A reload builds new pools, and the old
//! ones close their connections as their last responses end.
//!
//! An origin has at most `server.upstream_max_connections` connections
//! open, idle ones included: each holds a slot from when it is opened until
//! its socket closes (a WebSocket tunnel gives its slot back when the
//! upgrade completes, since its client connection already counts against
//! `max_connections`). A request that finds every slot taken and no idle
//! connection waits for one to come back or to close, at most
//! [`QUEUE_WAIT`] (or `upstream_timeout`, when shorter), then gets `503`
//! with `Retry-After`: slow clients reading slow responses can no longer
//! open thousands of sockets to one backend. (The wait is not strictly
//! first come, first served: a request arriving just as a connection is
//! returned may take it.) `upstream_timeout` starts once
//! the request has a connection, so time in the queue is not counted as
//! the upstream's.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::pin::Pin;
use std::pin::pin;
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
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsConnector;

use super::deadline::UpstreamTimer;
use super::request_body::{ClientBodyError, RequestBody};
use crate::accept::LogLimiter;

/// How long an idle pooled upstream connection is kept.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Most idle connections kept per upstream.
const POOL_MAX_IDLE: usize = 256;
/// How long a TCP connect (and TLS handshake) to an upstream may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// TCP keepalive probes on upstream connections.
const TCP_KEEPALIVE: Duration = Duration::from_secs(60);
/// The longest a request waits for a connection when every one of its
/// origin's `upstream_max_connections` is busy.
pub const QUEUE_WAIT: Duration = Duration::from_secs(5);

/// Why a request to an upstream got no response (details are logged here;
/// [`crate::respond::Reject`] turns each into a status).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    /// No response head within `upstream_timeout`.
    #[error("upstream timed out")]
    TimedOut,
    /// Every connection the origin may have stayed busy past the queue wait.
    #[error("every upstream connection busy")]
    Busy,
    /// The client's own request body broke while it was being sent.
    #[error("client request body broken")]
    ClientBody,
    /// The upstream could not be reached, or broke the exchange.
    #[error("upstream unreachable")]
    Failed,
}

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
    /// The idle connections, one list per thread-per-core worker (a single
    /// one otherwise): a worker reuses the connections its own runtime
    /// drives, and takes another worker's only when it would otherwise wait.
    idle: Box<[Mutex<VecDeque<Idle>>]>,
    /// One permit per open connection, held by its task.
    slots: Arc<Semaphore>,
    /// Told when a connection goes back to the idle list while requests
    /// may be waiting for one.
    returned: Notify,
    /// Keeps "every connection busy" to one log line a second.
    busy_log: Mutex<LogLimiter>,
}

struct Idle {
    sender: SendRequest<RequestBody>,
    since: Instant,
}

impl HttpUpstream {
    /// The pool for `scheme://authority`, of at most `max_connections`
    /// connections (at least one); `tls` says whom `https://` upstreams are
    /// trusted by (see [`crate::tls::upstream_client_config`]); `lanes`
    /// idle lists, one per thread-per-core worker (1 otherwise).
    pub fn new(
        scheme: &Scheme,
        authority: &Authority,
        tls: &Arc<rustls::ClientConfig>,
        max_connections: usize,
        lanes: usize,
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
                idle: (0..lanes.max(1))
                    .map(|_| Mutex::new(VecDeque::new()))
                    .collect(),
                slots: Arc::new(Semaphore::new(
                    max_connections.clamp(1, Semaphore::MAX_PERMITS),
                )),
                returned: Notify::new(),
                busy_log: Mutex::new(LogLimiter::default()),
            }),
        })
    }

    /// Sends the request to this upstream with its own path and query, and
    /// waits at most `timeout` for the response head, once a connection is
    /// there to carry it (on `timer`, the client connection's; see
    /// [`super::deadline`]).
    ///
    /// One future from the pool to the response head: a layer of
    /// `async fn` more would copy this one's future on every request. It
    /// is an `async` block over the arguments rather than an `async fn`,
    /// which would keep a second copy of the request in its state.
    #[allow(
        clippy::manual_async_fn,
        reason = "an async fn keeps its arguments twice in its future"
    )]
    pub fn forward(
        &self,
        mut req: Request<RequestBody>,
        timeout: Duration,
        timer: &UpstreamTimer,
    ) -> impl Future<Output = Result<Response<UpstreamBody>, UpstreamError>> {
        async move {
            origin_form(req.uri_mut());
            // Upstreams speak HTTP/1.1 whatever the client spoke.
            *req.version_mut() = Version::HTTP_11;
            // Set once the first connection is in hand.
            let mut deadline = None;
            let sent = loop {
                let now = tokio::time::Instant::now();
                let (mut sender, reused) = match self.origin.checkout(now.into_std()) {
                    Some(sender) => {
                        // One reading of the clock for the idle check and the
                        // deadline.
                        deadline.get_or_insert(now + timeout);
                        (sender, true)
                    }
                    // Boxed: rare, and large. The deadline starts once it has
                    // a connection (time spent waiting for one is not the
                    // upstream's).
                    None => match Box::pin(self.new_connection(&mut deadline, timeout)).await {
                        Ok(got) => got,
                        Err(e) => break Err(e),
                    },
                };
                let deadline =
                    *deadline.get_or_insert_with(|| tokio::time::Instant::now() + timeout);
                match timer.run(deadline, sender.try_send_request(req)).await {
                    Err(_) => break Err(Failure::TimedOut),
                    Ok(Ok(resp)) => break Ok((resp, sender)),
                    Ok(Err(mut e)) => match e.take_message() {
                        // The idle connection was closed under us before the
                        // request went out: it is safe to send it again. Each
                        // retry uses up an idle connection, so this ends.
                        Some(unsent) if reused => req = unsent,
                        _ => break Err(Failure::Request(e.into_error())),
                    },
                }
            };
            self.conclude(sent)
        }
    }

    /// The response, or the error the proxy answers with, from what
    /// sending the request came to; failures are logged here.
    fn conclude(
        &self,
        sent: Result<(Response<Incoming>, SendRequest<RequestBody>), Failure>,
    ) -> Result<Response<UpstreamBody>, UpstreamError> {
        match sent {
            Err(Failure::TimedOut) => Err(UpstreamError::TimedOut),
            // The client's own body broke (see `request_body`): its error,
            // not the upstream's.
            Err(e) if e.client_body_failed() => Err(UpstreamError::ClientBody),
            Err(Failure::Busy) => {
                let logged = self
                    .origin
                    .busy_log
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .allow(tokio::time::Instant::now());
                if let Some(suppressed) = logged {
                    tracing::warn!(
                        upstream = %self.origin.authority,
                        suppressed,
                        "every upstream connection stayed busy; answered 503 (see upstream_max_connections)"
                    );
                }
                Err(UpstreamError::Busy)
            }
            Err(e) => {
                tracing::warn!(upstream = %self.origin.authority, error = %e, "upstream request failed");
                Err(UpstreamError::Failed)
            }
            Ok((resp, sender)) => {
                // A connection that switched protocols is the tunnel's now.
                let lease = (resp.status() != StatusCode::SWITCHING_PROTOCOLS).then(|| Lease {
                    sender,
                    origin: self.origin.clone(),
                });
                Ok(resp.map(|body| UpstreamBody { body, lease }))
            }
        }
    }

    /// A connection when no idle one is ready: a new one under a free
    /// slot, or, when every slot is taken, whichever comes first of a
    /// connection given back and a slot set free, within [`QUEUE_WAIT`].
    /// `true` with a connection that was given back (used before).
    async fn new_connection(
        &self,
        deadline: &mut Option<tokio::time::Instant>,
        timeout: Duration,
    ) -> Result<(SendRequest<RequestBody>, bool), Failure> {
        let slot = match self.origin.slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => match self
                .origin
                .wait_for_connection(QUEUE_WAIT.min(timeout))
                .await?
            {
                Waited::Idle(sender) => return Ok((sender, true)),
                Waited::Slot(slot) => slot,
            },
        };
        Ok((self.connect(slot, deadline, timeout).await?, false))
    }

    /// Opens a connection under `slot`, within the request's deadline
    /// (which starts now when it has not yet).
    async fn connect(
        &self,
        slot: OwnedSemaphorePermit,
        deadline: &mut Option<tokio::time::Instant>,
        timeout: Duration,
    ) -> Result<SendRequest<RequestBody>, Failure> {
        let deadline = *deadline.get_or_insert_with(|| tokio::time::Instant::now() + timeout);
        // Boxed: connecting is rare, and its future is large; the future of
        // every request stays small and cheap to move.
        tokio::time::timeout_at(deadline, Box::pin(self.origin.connect(slot)))
            .await
            .map_err(|_| Failure::TimedOut)?
    }
}

/// What a request waiting for a connection got.
enum Waited {
    /// A connection that another request has finished with.
    Idle(SendRequest<RequestBody>),
    /// A free slot to open a new connection under.
    Slot(OwnedSemaphorePermit),
}

impl Origin {
    /// The most recently returned idle connection that can take a request
    /// `now`.
    fn checkout(&self, now: Instant) -> Option<SendRequest<RequestBody>> {
        let mut idle = self.own_idle();
        for _ in 0..idle.len() {
            let entry = idle.pop_back()?;
            if entry.sender.is_closed()
                || now.saturating_duration_since(entry.since) > POOL_IDLE_TIMEOUT
            {
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

    /// The most recently returned idle connection, ready or about to be:
    /// for a request that waited, and would otherwise wait on.
    fn take_idle(&self) -> Option<SendRequest<RequestBody>> {
        let own = crate::workers::current() % self.idle.len();
        // This worker's connections first, then the other workers'.
        (0..self.idle.len()).find_map(|i| {
            let mut idle = self.idle[(own + i) % self.idle.len()]
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            while let Some(entry) = idle.pop_back() {
                if !entry.sender.is_closed() && entry.since.elapsed() <= POOL_IDLE_TIMEOUT {
                    return Some(entry.sender);
                }
            }
            None
        })
    }

    /// This worker's idle list.
    fn own_idle(&self) -> std::sync::MutexGuard<'_, VecDeque<Idle>> {
        self.idle[crate::workers::current() % self.idle.len()]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Waits, at most `wait`, for an idle connection or a free slot.
    async fn wait_for_connection(&self, wait: Duration) -> Result<Waited, Failure> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            // Registered before looking, so that a connection returned
            // between the look and the wait is not missed.
            let mut returned = pin!(self.returned.notified());
            returned.as_mut().enable();
            if let Some(mut sender) = self.take_idle() {
                // Its last response has just ended: it is ready as soon as
                // its task has run.
                match tokio::time::timeout_at(deadline, sender.ready()).await {
                    Ok(Ok(())) => return Ok(Waited::Idle(sender)),
                    // Closed meanwhile; its slot comes free with it.
                    Ok(Err(_)) => continue,
                    Err(_) => {
                        self.put_back(sender);
                        return Err(Failure::Busy);
                    }
                }
            }
            tokio::select! {
                slot = self.slots.clone().acquire_owned() => {
                    return slot.map(Waited::Slot).map_err(|_| Failure::Busy);
                }
                () = returned => {}
                () = tokio::time::sleep_until(deadline) => return Err(Failure::Busy),
            }
        }
    }

    /// Returns a connection whose response has been read to its end.
    fn put_back(&self, sender: SendRequest<RequestBody>) {
        if sender.is_closed() {
            return;
        }
        // One reading of the clock for both the check and the entry.
        let now = Instant::now();
        let mut idle = self.own_idle();
        while idle
            .front()
            .is_some_and(|e| now.saturating_duration_since(e.since) > POOL_IDLE_TIMEOUT)
        {
            idle.pop_front();
        }
        if idle.len() < POOL_MAX_IDLE {
            idle.push_back(Idle { sender, since: now });
            drop(idle);
            // Only when every slot is taken can a request be waiting.
            if self.slots.available_permits() == 0 {
                self.returned.notify_one();
            }
        }
    }

    /// Opens a new connection under `slot` and starts its task.
    async fn connect(
        &self,
        slot: OwnedSemaphorePermit,
    ) -> Result<SendRequest<RequestBody>, Failure> {
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
            None => handshake(tcp, slot).await,
            Some((connector, name)) => {
                let tls =
                    tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(name.clone(), tcp))
                        .await
                        .map_err(|_| Failure::Tls(io::ErrorKind::TimedOut.into()))?
                        .map_err(Failure::Tls)?;
                handshake(tls, slot).await
            }
        }
    }
}

/// Starts HTTP/1.1 on a connected stream; the connection runs on its own task
/// (with upgrades, for WebSocket tunnels) until the pool lets go of it, and
/// holds its origin's `slot` until then.
async fn handshake<S>(
    stream: S,
    slot: OwnedSemaphorePermit,
) -> Result<SendRequest<RequestBody>, Failure>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (sender, conn) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(Failure::Request)?;
    tokio::spawn(async move {
        let _slot = slot;
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
    /// No response head within `upstream_timeout`.
    TimedOut,
    /// Every connection stayed busy for as long as a request may wait.
    Busy,
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

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Connect(e) => write!(f, "connect: {e}"),
            Failure::Tls(e) => write!(f, "TLS handshake: {e}"),
            Failure::TimedOut => f.write_str("no response within upstream_timeout"),
            Failure::Busy => f.write_str("every connection busy"),
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
