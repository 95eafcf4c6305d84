//! One client connection, from accept to close: the deadlines it must keep.
//!
//! - **First request head**: from accept, whatever was or was not sent, a
//!   connection has `server.request_header_timeout` to deliver a complete
//!   request head. The TLS handshake, HTTP/2 detection and the HTTP/2
//!   preface all count against it, so a client that says nothing, half a
//!   head, half a preface, or a preface and then nothing, is closed when it
//!   runs out. hyper's own `header_read_timeout` cannot do this: it starts
//!   only once hyper-util's auto builder has seen enough bytes to pick
//!   HTTP/1.1, and it knows nothing of TLS or HTTP/2.
//! - **Idle**: once the first request came, a connection with no request in
//!   progress (HTTP/1.1 between requests, HTTP/2 with no stream being
//!   answered) is shut down gracefully after `server.keepalive_timeout`. On
//!   HTTP/1.1 the next request head has to be complete within that time
//!   too. HTTP/2 connections also get PING-based liveness (see
//!   [`crate::server`]), so that one whose peer vanished mid-stream ends.
//! - **Shutdown**: [`Drain`] asks every connection to finish what it is
//!   answering, and waits for them within `shutdown_grace`.
//!
//! The timer lives in the connection's own task beside hyper's connection;
//! requests tell it when they start and end through per-connection atomics
//! (`Activity`), so no lock is shared between connections.
//!
//! [`Held`] keeps the connection's [`Slot`] with its socket, so that the
//! slot is freed when the socket is, even when the socket outlives the
//! HTTP connection as a WebSocket tunnel.

use std::convert::Infallible;
use std::io;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::task::AtomicWaker;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::accept::Slot;

/// A socket together with its place among `max_connections`.
pub struct Held<I> {
    io: I,
    _slot: Slot,
}

impl<I> Held<I> {
    /// `io`, holding `slot` until it is dropped.
    pub fn new(io: I, slot: Slot) -> Self {
        Held { io, _slot: slot }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Held<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Held<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Asks a listener's connections to finish, and waits until they have.
pub struct Drain {
    tx: watch::Sender<bool>,
}

/// A connection's side of a [`Drain`]: tells it when to finish, and keeps
/// the drain waiting until it is dropped.
pub struct DrainToken(watch::Receiver<bool>);

impl Default for Drain {
    fn default() -> Self {
        Drain {
            tx: watch::channel(false).0,
        }
    }
}

impl Drain {
    /// A token for one more connection.
    pub fn token(&self) -> DrainToken {
        DrainToken(self.tx.subscribe())
    }

    /// Asks every connection to finish and waits, at most `grace`, for all
    /// of them to end. `false` when some were still open.
    pub async fn finish(self, grace: Duration) -> bool {
        let _ = self.tx.send(true);
        tokio::time::timeout(grace, self.tx.closed()).await.is_ok()
    }
}

impl DrainToken {
    /// Resolves once the connection is asked to finish.
    async fn asked(&mut self) {
        if self.0.wait_for(|finish| *finish).await.is_err() {
            // The drain is gone without asking: nothing will ever ask.
            std::future::pending::<()>().await;
        }
    }
}

/// The times a connection is held to.
#[derive(Debug, Clone, Copy)]
pub struct Deadlines {
    /// When a first complete request head must have arrived by.
    pub first_head: Instant,
    /// How long the connection may stay idle once it has served requests.
    pub keepalive: Duration,
}

/// What a connection's requests tell its timer.
///
/// The timer is lazy, as nginx's are: a request that ends only notes the
/// time, and the timer, when it fires, works out whether the connection has
/// really been idle that long, or re-arms for when it will have been. So
/// the connection's task is woken once per deadline, not once per request;
/// only the very first request head wakes it, to move from the first-head
/// deadline to the keep-alive one.
struct Activity {
    /// When the connection was accepted; `idle_since` counts from it.
    base: Instant,
    /// Requests whose response has not ended yet.
    open: AtomicUsize,
    /// Whether a complete request head has arrived.
    started: AtomicBool,
    /// When the last open request ended, in milliseconds since `base`.
    idle_since: AtomicU64,
    /// The connection's task, woken when the first request head arrives.
    waker: AtomicWaker,
}

impl Activity {
    fn new() -> Self {
        Activity {
            base: Instant::now(),
            open: AtomicUsize::new(0),
            started: AtomicBool::new(false),
            idle_since: AtomicU64::new(0),
            waker: AtomicWaker::new(),
        }
    }

    /// A request's head has arrived.
    fn begin(self: &Arc<Self>) -> RequestGuard {
        self.open.fetch_add(1, Ordering::AcqRel);
        if !self.started.swap(true, Ordering::AcqRel) {
            self.waker.wake();
        }
        RequestGuard {
            activity: self.clone(),
        }
    }

    /// Resolves once the first request head has arrived.
    fn first_request(&self) -> impl Future<Output = ()> + '_ {
        std::future::poll_fn(|cx| {
            self.waker.register(cx.waker());
            if self.started.load(Ordering::Acquire) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
    }

    /// When the connection will have been idle for `keepalive`, or `None`
    /// when that time has come (with nothing open).
    fn idle_deadline(&self, keepalive: Duration) -> Option<Instant> {
        let now = Instant::now();
        if self.open.load(Ordering::Acquire) > 0 {
            // Busy: look again a keep-alive from now.
            return Some(now + keepalive);
        }
        let since = self.base + Duration::from_millis(self.idle_since.load(Ordering::Acquire));
        let until = since + keepalive;
        (until > now).then_some(until)
    }
}

/// Counts one request as open until its response has ended (or the request
/// was given up).
struct RequestGuard {
    activity: Arc<Activity>,
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let activity = &self.activity;
        let since = u64::try_from(activity.base.elapsed().as_millis()).unwrap_or(u64::MAX);
        activity.idle_since.store(since, Ordering::Release);
        activity.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its request counted as open until it has
/// been sent to its end or dropped.
pub struct Tracked<B> {
    body: B,
    guard: Option<RequestGuard>,
}

impl<B> Body for Tracked<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) {
            self.guard = None;
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

/// Which HTTP a connection speaks, with hyper's settings for it.
#[derive(Clone, Copy)]
pub enum Speak<'a> {
    /// HTTP/1.1 or HTTP/2, told by the first bytes (plain listeners, and
    /// TLS without ALPN).
    Detect(&'a auto::Builder<TokioExecutor>),
    /// HTTP/1.1 only, with upgrades (TLS ALPN `http/1.1`).
    Http1(&'a http1::Builder),
    /// HTTP/2 only (TLS ALPN `h2`): anything else is a connection error.
    Http2(&'a http2::Builder<TokioExecutor>),
}

/// Serves HTTP on `io` as `speak` says, answering each request with
/// `handle`, until the client goes away, a deadline passes, or `drain`
/// asks the connection to finish.
pub async fn serve<I, H, F, B>(
    io: I,
    speak: Speak<'_>,
    handle: H,
    deadlines: Deadlines,
    drain: DrainToken,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<B>> + Send + 'static,
    B: Body<Data = Bytes> + Unpin + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let activity = Arc::new(Activity::new());
    let requests = activity.clone();
    let service = service_fn(move |req| {
        let guard = requests.begin();
        let answer = handle(req);
        async move {
            let resp = answer.await;
            Ok::<_, Infallible>(resp.map(|body| Tracked {
                body,
                guard: Some(guard),
            }))
        }
    });
    let io = TokioIo::new(io);
    // hyper-util's auto builder sniffs even when told one protocol, once
    // upgrades are on; hyper's own builders do not.
    match speak {
        Speak::Detect(builder) => {
            let conn = pin!(builder.serve_connection_with_upgrades(io, service));
            keep_deadlines(conn, |c| c.graceful_shutdown(), &activity, deadlines, drain).await;
        }
        Speak::Http1(builder) => {
            let conn = pin!(builder.serve_connection(io, service).with_upgrades());
            keep_deadlines(conn, |c| c.graceful_shutdown(), &activity, deadlines, drain).await;
        }
        Speak::Http2(builder) => {
            let conn = pin!(builder.serve_connection(io, service));
            keep_deadlines(conn, |c| c.graceful_shutdown(), &activity, deadlines, drain).await;
        }
    }
}

/// Drives `conn` to its end, closing it when the first request head is
/// late and shutting it down gracefully when it has been idle too long or
/// the drain asks.
async fn keep_deadlines<C, E>(
    mut conn: Pin<&mut C>,
    graceful_shutdown: impl Fn(Pin<&mut C>),
    activity: &Activity,
    deadlines: Deadlines,
    mut drain: DrainToken,
) where
    C: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let mut timer = pin!(tokio::time::sleep_until(deadlines.first_head));
    let mut first_request = pin!(activity.first_request());
    let mut asked = pin!(drain.asked());
    let mut waiting_first = true;
    let mut closing = false;
    loop {
        tokio::select! {
            ended = conn.as_mut() => {
                if let Err(e) = ended {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            () = first_request.as_mut(), if waiting_first => {
                // From now on the connection keeps the keep-alive deadline.
                waiting_first = false;
                timer.as_mut().reset(Instant::now() + deadlines.keepalive);
            }
            () = timer.as_mut(), if !closing => {
                if !activity.started.load(Ordering::Acquire) {
                    // Nothing to finish: close at once, whatever state the
                    // handshake, the detection or the head was in.
                    tracing::debug!("no complete request head within request_header_timeout; closing");
                    return;
                }
                match activity.idle_deadline(deadlines.keepalive) {
                    Some(later) => timer.as_mut().reset(later),
                    None => {
                        tracing::debug!("idle for keepalive_timeout; closing");
                        graceful_shutdown(conn.as_mut());
                        closing = true;
                    }
                }
            }
            () = asked.as_mut(), if !closing => {
                graceful_shutdown(conn.as_mut());
                closing = true;
            }
        }
    }
}
