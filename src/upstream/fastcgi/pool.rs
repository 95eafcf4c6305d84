//! Kept-alive connections to one FastCGI server.
//!
//! php-fpm serves one request at a time on a connection (it does not
//! multiplex), so a connection is lent to one request and comes back only
//! when that request ended cleanly: its `FCGI_END_REQUEST` read, its whole
//! body sent. A connection that misbehaved in any way is closed.
//!
//! At most `server.upstream_max_connections` connections are open, idle
//! ones included. A request that finds every connection busy waits for
//! one, at most [`QUEUE_WAIT`] (or the upstream timeout when shorter), then
//! gets `503`. Idle connections older than [`IDLE_TIMEOUT`] are closed when
//! the pool is next used.
//!
//! A php-fpm child stays bound to a kept-alive connection until it closes,
//! so a connection opened beyond the pool's `pm.max_children` waits in the
//! server's backlog for a child that only a closed connection frees (nginx
//! with `keepalive` has the same trap). So while a new connection has had
//! no answer yet, a connection whose request ends is closed rather than
//! kept when that new one may be waiting for its child:
//!
//! - when no request waits for the connection (kept idle, it would only
//!   hold the child);
//! - when the new connection was opened before this connection's request
//!   began: a request that began later has ended, and the new one has not
//!   even started to answer.
//!
//! Otherwise it is kept: a new connection that a child is serving is
//! answered first, and under load every connection is reused. (Closing
//! every connection that ended while any new one was unanswered replaced
//! the whole pool on every request under load: each close let a waiting
//! request open another new connection.) Keeping `upstream_max_connections`
//! at or below `pm.max_children` saves even those reconnections.

use std::io;
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::{TcpStream, UnixStream, tcp, unix};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use crate::config::FastCgiServer;

/// How long a connect may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest a request waits for a connection when all are busy.
pub(super) const QUEUE_WAIT: Duration = Duration::from_secs(5);
/// How long an idle connection is kept (and a php-fpm child with it).
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// The connections to one server; shared by the routes that name it.
pub(super) struct Pool {
    server: FastCgiServer,
    idle: Mutex<Idle>,
    /// One permit per open connection, held by it.
    slots: Arc<Semaphore>,
    /// Told when a connection goes back to the idle list.
    returned: Notify,
}

/// The idle connections, and what decides whether there may be any.
#[derive(Default)]
struct Idle {
    conns: Vec<Conn>,
    /// New connections that have had no answer yet (maybe waiting in the
    /// server's backlog for a child), by number, with the time each was
    /// opened. Under one lock with `conns`, so that no connection is kept
    /// past the rules of the module doc.
    unanswered: Vec<(u64, Instant)>,
    /// The number the next new connection gets.
    opened: u64,
    /// Requests waiting for a connection to come back.
    waiting: usize,
}

/// The read half of a connection.
pub(super) enum Reader {
    Tcp(tcp::OwnedReadHalf),
    Unix(unix::OwnedReadHalf),
}

/// The write half of a connection.
pub(super) enum Writer {
    Tcp(tcp::OwnedWriteHalf),
    Unix(unix::OwnedWriteHalf),
}

/// One connection, lent to one request at a time.
pub(super) struct Conn {
    pub reader: Reader,
    pub writer: Writer,
    /// Whether it carried a request before (so a failure to write the
    /// first bytes may be the server's idle close, and worth one retry).
    pub reused: bool,
    /// Set on a new connection until the server's first answer on it.
    pub unanswered: Option<Unanswered>,
    /// When it went idle, or was lent to its current request.
    since: Instant,
    _slot: OwnedSemaphorePermit,
}

/// Why no connection could be had.
#[derive(Debug)]
pub(super) enum CheckoutError {
    /// Every connection stayed busy for as long as a request may wait.
    Busy,
    /// The server could not be reached.
    Connect(io::Error),
}

impl Pool {
    /// A pool of at most `max_connections` (at least one).
    pub(super) fn new(server: FastCgiServer, max_connections: usize) -> Self {
        Pool {
            server,
            idle: Mutex::new(Idle::default()),
            slots: Arc::new(Semaphore::new(
                max_connections.clamp(1, Semaphore::MAX_PERMITS),
            )),
            returned: Notify::new(),
        }
    }

    /// The server, for log lines.
    pub(super) fn server(&self) -> &FastCgiServer {
        &self.server
    }

    /// An idle connection, or a new one, waiting at most `wait` when every
    /// connection is busy.
    pub(super) async fn checkout(self: &Arc<Self>, wait: Duration) -> Result<Conn, CheckoutError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            // Registered before looking, so that a connection returned
            // between the look and the wait is not missed.
            let mut returned = pin!(self.returned.notified());
            returned.as_mut().enable();
            if let Some(conn) = self.take_idle() {
                return Ok(conn);
            }
            if let Ok(slot) = self.slots.clone().try_acquire_owned() {
                return self.connect(slot).await;
            }
            let _waiting = Waiting::count(self);
            tokio::select! {
                slot = self.slots.clone().acquire_owned() => match slot {
                    Ok(slot) => return self.connect(slot).await,
                    Err(_) => return Err(CheckoutError::Busy),
                },
                () = returned => {}
                () = tokio::time::sleep_until(deadline) => return Err(CheckoutError::Busy),
            }
        }
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, Idle> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The most recently returned idle connection still open.
    fn take_idle(&self) -> Option<Conn> {
        let mut idle = self.idle();
        idle.conns.retain(|c| c.since.elapsed() <= IDLE_TIMEOUT);
        while let Some(mut conn) = idle.conns.pop() {
            if conn.reader.is_open() {
                conn.since = Instant::now();
                return Some(conn);
            }
        }
        None
    }

    /// Takes back a connection whose request ended cleanly; closes it
    /// instead when a new connection may be waiting for its server's child
    /// (see the module doc).
    pub(super) fn put_back(&self, mut conn: Conn) {
        conn.reused = true;
        let lent = conn.since;
        conn.since = Instant::now();
        let mut idle = self.idle();
        let frees_a_child = !idle.unanswered.is_empty()
            && (idle.waiting == 0 || idle.unanswered.iter().any(|&(_, opened)| opened < lent));
        if frees_a_child {
            drop(idle);
            tracing::debug!(target: "fastcgi", server = %self.server, "a new connection waits for an answer: a finished one closed");
            return;
        }
        idle.conns.push(conn);
        drop(idle);
        self.returned.notify_one();
    }

    /// Opens a connection under `slot`. Until its first answer, no
    /// connection is kept idle, and those idle now are closed.
    async fn connect(self: &Arc<Self>, slot: OwnedSemaphorePermit) -> Result<Conn, CheckoutError> {
        let unanswered = {
            let mut idle = self.idle();
            let number = idle.opened;
            idle.opened += 1;
            idle.unanswered.push((number, Instant::now()));
            let closed = std::mem::take(&mut idle.conns);
            drop(idle);
            drop(closed);
            Unanswered(self.clone(), number)
        };
        let connect = async {
            match &self.server {
                FastCgiServer::Tcp { host, port } => {
                    let tcp = TcpStream::connect((host.as_str(), *port)).await?;
                    tcp.set_nodelay(true)?;
                    let (r, w) = tcp.into_split();
                    Ok((Reader::Tcp(r), Writer::Tcp(w)))
                }
                FastCgiServer::Unix(path) => {
                    let (r, w) = UnixStream::connect(path).await?.into_split();
                    Ok((Reader::Unix(r), Writer::Unix(w)))
                }
            }
        };
        let (reader, writer) = tokio::time::timeout(CONNECT_TIMEOUT, connect)
            .await
            .map_err(|_| CheckoutError::Connect(io::ErrorKind::TimedOut.into()))?
            .map_err(CheckoutError::Connect)?;
        Ok(Conn {
            reader,
            writer,
            reused: false,
            since: Instant::now(),
            unanswered: Some(unanswered),
            _slot: slot,
        })
    }
}

/// Counts a new connection as unanswered until dropped (at its first
/// record, or with the connection).
pub(super) struct Unanswered(Arc<Pool>, u64);

impl Drop for Unanswered {
    fn drop(&mut self) {
        self.0.idle().unanswered.retain(|&(n, _)| n != self.1);
    }
}

/// Counts a request as waiting for a connection while it lives.
struct Waiting<'a>(&'a Pool);

impl<'a> Waiting<'a> {
    fn count(pool: &'a Pool) -> Self {
        pool.idle().waiting += 1;
        Waiting(pool)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.idle().waiting -= 1;
    }
}

impl Reader {
    /// Whether the server has neither closed the connection nor sent
    /// anything unasked while it was idle (either makes it unusable).
    fn is_open(&self) -> bool {
        let mut byte = [0u8; 1];
        let read = match self {
            Reader::Tcp(r) => r.try_read(&mut byte),
            Reader::Unix(r) => r.try_read(&mut byte),
        };
        matches!(read, Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }
}

impl tokio::io::AsyncRead for Reader {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        match self.get_mut() {
            Reader::Tcp(r) => std::pin::Pin::new(r).poll_read(cx, buf),
            Reader::Unix(r) => std::pin::Pin::new(r).poll_read(cx, buf),
        }
    }
}

impl tokio::io::AsyncWrite for Writer {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        match self.get_mut() {
            Writer::Tcp(w) => std::pin::Pin::new(w).poll_write(cx, buf),
            Writer::Unix(w) => std::pin::Pin::new(w).poll_write(cx, buf),
        }
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        match self.get_mut() {
            Writer::Tcp(w) => std::pin::Pin::new(w).poll_flush(cx),
            Writer::Unix(w) => std::pin::Pin::new(w).poll_flush(cx),
        }
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        match self.get_mut() {
            Writer::Tcp(w) => std::pin::Pin::new(w).poll_shutdown(cx),
            Writer::Unix(w) => std::pin::Pin::new(w).poll_shutdown(cx),
        }
    }
}
