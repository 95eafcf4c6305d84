//! Taking connections off a listener without running out of file
//! descriptors.
//!
//! Every client connection holds a [`Slot`], one of `server.max_connections`
//! shared by all listeners, from accept until its socket is closed (a
//! WebSocket tunnel keeps its connection's slot). A slot is taken once a
//! connection is waiting on the listener and *before* `accept` is called (a
//! listener with nothing waiting holds none, so it never keeps a slot from
//! another listener or worker): when every slot is in use the proxy stops accepting,
//! and new connections wait in the kernel's listen queue until one frees,
//! rather than being accepted into a process that has no descriptor left
//! for them, or making `accept` fail in a loop.
//!
//! `accept` can still fail (the descriptors may have gone elsewhere): the
//! failure is logged at most once a second, with the number of failures
//! not logged since, and the listener backs off, from 10 ms doubling to a
//! second, so that a failing `accept` does not spin.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError};
use tokio::time::Instant;

/// Descriptors kept aside from the default `max_connections` for the
/// listeners, log and snapshot files, the users file, Redis and CGI pipes.
const RESERVED_FDS: u64 = 64;
/// The least `max_connections` the default formula gives.
const MIN_DEFAULT_CONNECTIONS: u64 = 16;
/// The open files limit assumed when it cannot be read (the usual soft
/// limit of a login shell).
const ASSUMED_FD_LIMIT: u64 = 1024;
/// The most descriptors the default formula counts on, whatever the limit
/// says (Linux's own default ceiling, `fs.nr_open`).
const MAX_COUNTED_FDS: u64 = 1 << 20;
/// How often a repeated accept problem is logged.
const LOG_EVERY: Duration = Duration::from_secs(1);
/// First and longest pause after a failed `accept`.
const MIN_BACKOFF: Duration = Duration::from_millis(10);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// The open files limit of this process: its soft `RLIMIT_NOFILE`.
pub fn open_files_limit() -> FdLimit {
    use nix::sys::resource::{RLIM_INFINITY, Resource, getrlimit};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, _hard)) if soft == RLIM_INFINITY => FdLimit::Unlimited,
        Ok((soft, _hard)) => FdLimit::Files(soft),
        Err(_) => FdLimit::Unknown,
    }
}

/// An open files limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FdLimit {
    /// At most this many descriptors.
    Files(u64),
    /// No limit set.
    Unlimited,
    /// The limit could not be read.
    Unknown,
}

impl fmt::Display for FdLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FdLimit::Files(n) => write!(f, "{n}"),
            FdLimit::Unlimited => f.write_str("unlimited"),
            FdLimit::Unknown => f.write_str("unknown"),
        }
    }
}

/// The default `max_connections` for an open files limit:
/// `(limit - 64) / 2`, at least 16.
///
/// Each client connection costs a descriptor and may hold an upstream
/// connection beside it, hence the half; 64 descriptors stay aside for
/// everything else. An unreadable limit counts as 1024, and no limit at all
/// (or one above it) as 2^20.
pub fn max_connections_for(limit: FdLimit) -> usize {
    let fds = match limit {
        FdLimit::Files(n) => n.min(MAX_COUNTED_FDS),
        FdLimit::Unlimited => MAX_COUNTED_FDS,
        FdLimit::Unknown => ASSUMED_FD_LIMIT,
    };
    let connections = (fds.saturating_sub(RESERVED_FDS) / 2).max(MIN_DEFAULT_CONNECTIONS);
    usize::try_from(connections).unwrap_or(usize::MAX)
}

/// The default `max_connections` of this process, and the limit it was
/// worked out from.
pub fn default_max_connections() -> (usize, FdLimit) {
    let limit = open_files_limit();
    (max_connections_for(limit), limit)
}

/// The connections the proxy may have open at once, shared by every
/// listener; cheap to clone.
#[derive(Clone)]
pub struct ConnectionSlots {
    semaphore: Arc<Semaphore>,
    limit: usize,
    /// "Every slot is in use", once a second for all listeners together.
    full: Arc<std::sync::Mutex<LogLimiter>>,
}

impl ConnectionSlots {
    /// `limit` slots (at least one).
    pub fn new(limit: usize) -> Self {
        let limit = limit.clamp(1, Semaphore::MAX_PERMITS);
        ConnectionSlots {
            semaphore: Arc::new(Semaphore::new(limit)),
            limit,
            full: Arc::default(),
        }
    }

    /// How many slots there are.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// How many slots are held by open connections.
    pub fn in_use(&self) -> usize {
        self.limit - self.semaphore.available_permits()
    }
}

/// One connection's place among `max_connections`; freed when dropped.
#[derive(Debug)]
pub struct Slot {
    _permit: OwnedSemaphorePermit,
}

/// A connection taken off the listener, with its slot.
pub struct Accepted {
    /// The client's socket.
    pub stream: TcpStream,
    /// The client's address.
    pub peer: SocketAddr,
    /// Its place among `max_connections`.
    pub slot: Slot,
}

/// One listener's side of accepting: a connection waiting, then a slot for
/// it, then the socket. No slot is held while nothing is waiting, so that
/// listeners (or thread-per-core workers) with no connection to take never
/// keep a slot from one that has.
pub struct Acceptor {
    listener: AsyncFd<std::net::TcpListener>,
    slots: ConnectionSlots,
    failed: LogLimiter,
    backoff: Duration,
}

impl Acceptor {
    /// Accepts from `listener`, within `slots`. Must be called within the
    /// Tokio runtime that will accept.
    pub fn new(listener: TcpListener, slots: ConnectionSlots) -> io::Result<Self> {
        Acceptor::from_std(listener.into_std()?, slots)
    }

    /// [`Acceptor::new`] for a listener not yet registered with a runtime.
    pub fn from_std(listener: std::net::TcpListener, slots: ConnectionSlots) -> io::Result<Self> {
        listener.set_nonblocking(true)?;
        // Deprecated because an `AsRawFd` type could hand out another
        // descriptor later; a std `TcpListener` owns its one descriptor for
        // its whole life, which is what the replacement (an `unsafe fn`,
        // forbidden in this crate) asks its caller to promise.
        #[allow(deprecated)]
        let listener = AsyncFd::with_interest(listener, Interest::READABLE)?;
        Ok(Acceptor {
            listener,
            slots,
            failed: LogLimiter::default(),
            backoff: Duration::ZERO,
        })
    }

    /// The listener's address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.get_ref().local_addr()
    }

    /// The next connection, once a slot is free for it. Cancel-safe: a
    /// slot taken for a connection not yet accepted is simply given back.
    pub async fn accept(&mut self) -> Accepted {
        loop {
            let mut ready = match self.listener.readable().await {
                Ok(ready) => ready,
                Err(e) => {
                    self.failed_accept(&e).await;
                    continue;
                }
            };
            let permit = match self.slots.semaphore.clone().try_acquire_owned() {
                Ok(permit) => permit,
                Err(TryAcquireError::NoPermits | TryAcquireError::Closed) => {
                    let logged = self
                        .slots
                        .full
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .allow(Instant::now());
                    if let Some(suppressed) = logged {
                        tracing::warn!(
                            max_connections = self.slots.limit,
                            suppressed,
                            "every connection slot is in use; new connections wait in the listen queue"
                        );
                    }
                    self.wait_for_slot().await
                }
            };
            match ready.try_io(|listener| listener.get_ref().accept()) {
                // Nothing left to take (another taker, or a client that gave
                // up): wait for the next one, slot given back.
                Err(_would_block) => continue,
                Ok(Ok((stream, peer))) => {
                    let stream = match stream
                        .set_nonblocking(true)
                        .and_then(|()| TcpStream::from_std(stream))
                    {
                        Ok(stream) => stream,
                        Err(e) => {
                            self.failed_accept(&e).await;
                            continue;
                        }
                    };
                    self.backoff = Duration::ZERO;
                    return Accepted {
                        stream,
                        peer,
                        slot: Slot { _permit: permit },
                    };
                }
                // The client gave up before we took its connection: nothing
                // is wrong on our side.
                Ok(Err(e)) if is_peer_error(&e) => continue,
                Ok(Err(e)) => {
                    drop(permit);
                    self.failed_accept(&e).await;
                }
            }
        }
    }

    /// Logs a failed `accept` (at most once a second) and backs off.
    async fn failed_accept(&mut self, e: &io::Error) {
        self.backoff = (self.backoff * 2).clamp(MIN_BACKOFF, MAX_BACKOFF);
        if let Some(suppressed) = self.failed.allow(Instant::now()) {
            tracing::warn!(
                error = %e,
                suppressed,
                backoff = ?self.backoff,
                open_connections = self.slots.in_use(),
                "accept failed; retrying"
            );
        }
        tokio::time::sleep(self.backoff).await;
    }

    async fn wait_for_slot(&self) -> OwnedSemaphorePermit {
        match self.slots.semaphore.clone().acquire_owned().await {
            Ok(permit) => permit,
            // The semaphore is never closed; should it ever be, this
            // listener stops accepting rather than exceeding the limit.
            Err(_) => std::future::pending().await,
        }
    }
}

/// Errors of one incoming connection rather than of the listener.
fn is_peer_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
    )
}

/// Lets a repeated message through at most once per [`LOG_EVERY`], and
/// counts the ones held back.
#[derive(Debug, Default)]
pub(crate) struct LogLimiter {
    last: Option<Instant>,
    suppressed: u64,
}

impl LogLimiter {
    /// `Some(number held back since the last one)` when the message may be
    /// logged `now`.
    pub(crate) fn allow(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(last) if now.duration_since(last) < LOG_EVERY => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_half_the_limit_less_what_is_kept_aside() {
        assert_eq!(max_connections_for(FdLimit::Files(1024)), 480);
        assert_eq!(max_connections_for(FdLimit::Files(65536)), 32736);
        assert_eq!(max_connections_for(FdLimit::Unknown), 480);
        assert_eq!(max_connections_for(FdLimit::Files(50)), 16);
        assert_eq!(
            max_connections_for(FdLimit::Unlimited),
            max_connections_for(FdLimit::Files(u64::MAX))
        );
        assert_eq!(max_connections_for(FdLimit::Unlimited), 524_256);
    }

    #[test]
    fn this_process_has_a_readable_limit() {
        let (n, limit) = default_max_connections();
        assert_ne!(limit, FdLimit::Unknown);
        assert!(n >= 16);
    }

    #[test]
    fn a_repeated_message_is_logged_once_a_second_with_a_count() {
        let start = Instant::now();
        let mut limiter = LogLimiter::default();
        assert_eq!(limiter.allow(start), Some(0));
        for ms in 1..20 {
            assert_eq!(limiter.allow(start + Duration::from_millis(ms * 50)), None);
        }
        assert_eq!(limiter.allow(start + LOG_EVERY), Some(19));
        assert_eq!(limiter.allow(start + LOG_EVERY), None);
    }

    #[tokio::test]
    async fn a_listener_with_nothing_waiting_holds_no_slot() {
        let slots = ConnectionSlots::new(1);
        let idle = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let busy = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let busy_addr = busy.local_addr().unwrap();
        let mut idle = Acceptor::new(idle, slots.clone()).unwrap();
        let mut busy = Acceptor::new(busy, slots.clone()).unwrap();
        let _client = TcpStream::connect(busy_addr).await.unwrap();
        // The idle listener waits for a connection (polled first, all the
        // while) without keeping the only slot from the busy one.
        let idle_wait = idle.accept();
        let accepted = tokio::select! {
            biased;
            _ = idle_wait => panic!("accepted with no connection waiting"),
            accepted = tokio::time::timeout(Duration::from_secs(5), busy.accept()) => accepted,
        };
        let accepted = accepted.expect("the idle listener kept the only slot");
        assert_eq!(slots.in_use(), 1);
        drop(accepted);
        assert_eq!(slots.in_use(), 0);
    }

    #[tokio::test]
    async fn no_accept_without_a_slot() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let slots = ConnectionSlots::new(1);
        let mut acceptor = Acceptor::new(listener, slots.clone()).unwrap();
        let _a = TcpStream::connect(addr).await.unwrap();
        let first = acceptor.accept().await;
        assert_eq!(slots.in_use(), 1);
        let _b = TcpStream::connect(addr).await.unwrap();
        // The second connection is complete in the kernel, but is not taken
        // while the first holds the only slot.
        let waiting = tokio::time::timeout(Duration::from_millis(200), acceptor.accept()).await;
        assert!(waiting.is_err(), "accepted beyond max_connections");
        drop(first);
        let second = tokio::time::timeout(Duration::from_secs(5), acceptor.accept())
            .await
            .expect("the freed slot was not used");
        assert_eq!(slots.in_use(), 1);
        drop(second);
        assert_eq!(slots.in_use(), 0);
    }
}
