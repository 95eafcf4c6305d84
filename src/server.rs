//! Listeners, connections, background tasks and graceful shutdown.
//!
//! Each connection is accepted once one of `max_connections` slots is free
//! ([`crate::accept`]), goes through the TLS handshake when `server.tls` is
//! set (ALPN `h2` / `http/1.1`), then is served by hyper-util's builder:
//! HTTP/2 only after ALPN `h2`, HTTP/1.1 only after ALPN `http/1.1`, and
//! otherwise either, detected from the first bytes (h2c prior knowledge on
//! plain listeners), with RFC 8441 WebSockets over HTTP/2. Its deadlines
//! (first request head, idle) and its part in a graceful shutdown live in
//! [`crate::connection`]: on SIGTERM the proxy stops accepting, lets
//! in-flight requests finish within `shutdown_grace`, then returns.
//!
//! The memory store's snapshot is loaded by [`build_store`] before the
//! listeners open, written every `snapshot_interval` by a background task,
//! and written once more by [`Running::shutdown`] after the last connection
//! drained, so that it holds every update a client was answered for.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use http::header::HeaderValue;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

use crate::accept::{Acceptor, ConnectionSlots};
use crate::audit::{Audit, AuditError};
use crate::body::ResponseBody;
use crate::clock::Clock;
use crate::config::{Config, ServerConfig, StoreKind};
use crate::connection::{self, Deadlines, Drain, DrainToken, Held, Speak};
use crate::forwarded::ConnInfo;
use crate::proxy::Gate;
use crate::session::redis::RedisSetupError;
use crate::session::snapshot::{self, SnapshotError};
use crate::session::{AnyStore, MemoryStore, Policy, RedisStore, SessionStore, StoreError};
use crate::setup::Setup;
use crate::tls::ServerCert;
use crate::upstream::request_body::RequestBody;

/// How long an HTTP/2 client has to answer a keep-alive PING.
const H2_PING_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the start waits for a first answer from Redis before going on
/// without it.
const REDIS_START_PROBE: Duration = Duration::from_secs(3);
/// Smallest read buffer hyper accepts.
const MIN_BUF: usize = 8192;

/// Why the proxy could not start (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A worker thread or its runtime could not be started.
    #[error("cannot start a worker thread: {0}")]
    Worker(std::io::Error),
    /// The runtime could not be prepared.
    #[error(transparent)]
    Setup(#[from] crate::setup::SetupError),
    /// The certificate or key cannot be used.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// The memory store's snapshot exists but cannot be used.
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    /// The Redis store cannot be set up from its URL.
    #[error(transparent)]
    Redis(#[from] RedisSetupError),
    /// The audit log cannot be written.
    #[error(transparent)]
    Audit(#[from] AuditError),
}

/// A started proxy: its bound addresses and a handle to stop it.
pub struct Running {
    /// The addresses actually bound (useful with port 0).
    pub addrs: Vec<SocketAddr>,
    /// The plain-HTTP addresses that redirect to HTTPS, as bound.
    pub redirect_addrs: Vec<SocketAddr>,
    /// The admin listener's address, as bound, when `admin.listen` is set.
    pub admin_addr: Option<SocketAddr>,
    /// The listener's certificate, when `server.tls` is set.
    pub tls: Option<Arc<ServerCert>>,
    /// The gate, for reloads and inspection.
    pub gate: Arc<Gate>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    snapshot: Option<Snapshotting>,
}

impl Running {
    /// Stops accepting, drains connections within `shutdown_grace`, waits
    /// for every listener to finish, writes out the audit log (flushed and
    /// fsynced), then writes the memory store's snapshot (when one is
    /// configured).
    pub async fn shutdown(self) -> Result<(), SnapshotError> {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        self.gate.audit.close().await;
        if let Some(s) = self.snapshot {
            let written = snapshot::save(s.store, s.path.clone()).await?;
            tracing::info!(sessions = written, path = %s.path.display(), "snapshot written");
        }
        Ok(())
    }

    /// A receiver that flips to `true` at shutdown (for background tasks).
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }
}

/// Where and how often the memory store is saved.
#[derive(Clone)]
pub(crate) struct Snapshotting {
    pub(crate) store: Arc<MemoryStore>,
    pub(crate) path: PathBuf,
    pub(crate) interval: Duration,
}

/// Builds the store the config asks for. A memory store with a snapshot
/// file starts with the sessions saved in it, less those that expired
/// meanwhile (`clock` says when "now" is).
///
/// A Redis store starts even when Redis does not answer yet: `login` and
/// `session` routes answer 503 until it does, `public` routes keep working,
/// and the store connects by itself as soon as Redis is there. Only a URL
/// the client cannot use stops the start.
pub async fn build_store(config: &Config, clock: &Clock) -> Result<AnyStore, StartError> {
    match config.store.kind {
        StoreKind::Memory => {
            let store = MemoryStore::new();
            if let Some(path) = &config.store.snapshot {
                let policy = Policy::from_config(&config.session, config.store.max_sessions);
                // Read before any listener opens: nothing else runs yet.
                let restored = snapshot::restore(&store, path, clock.now(), &policy)?;
                tracing::info!(
                    path = %path.display(),
                    loaded = restored.loaded,
                    expired = restored.expired,
                    over_limit = restored.over_limit,
                    "sessions restored from the snapshot"
                );
            }
            Ok(AnyStore::Memory(store))
        }
        StoreKind::Redis => {
            if config.store.snapshot.is_some() {
                tracing::warn!(
                    "store.snapshot only applies to the memory store; ignored with Redis"
                );
            }
            let url = config.store.url.as_deref().unwrap_or_default();
            let workers = config.server.thread_per_core_workers().unwrap_or(0);
            let store = RedisStore::open_for_workers(url, &config.store.key_prefix, workers)?;
            let probe = tokio::time::timeout(REDIS_START_PROBE, store.ping())
                .await
                .unwrap_or_else(|_| Err(StoreError::Unavailable("no answer".into())));
            match probe {
                Ok(()) => tracing::info!(cluster = store.is_cluster(), "connected to Redis"),
                Err(e) => tracing::warn!(
                    error = %e,
                    "Redis does not answer yet: login and session routes answer 503 until it does"
                ),
            }
            Ok(AnyStore::Redis(Arc::new(store)))
        }
    }
}

/// Binds every listener and starts serving.
pub async fn start(config: Config, store: AnyStore) -> Result<Running, StartError> {
    start_with_clock(config, store, crate::clock::Clock::System).await
}

/// [`start`] with a chosen clock (tests move time forward by hand).
pub async fn start_with_clock(
    config: Config,
    store: AnyStore,
    clock: crate::clock::Clock,
) -> Result<Running, StartError> {
    let tls = match &config.server.tls {
        Some(files) => Some(Arc::new(ServerCert::load(files)?)),
        None => None,
    };
    let listeners = match config.server.thread_per_core_workers() {
        Some(workers) => Bound::PerWorker(bind_per_worker(&config.server.listen, workers)?),
        None => Bound::Shared(bind_all(&config.server.listen).await?),
    };
    let redirect_listeners = bind_all(&config.server.redirect_http).await?;
    let admin_listener = bind_all(config.admin.listen.as_slice()).await?.pop();
    let snapshotting = match (store.as_memory(), &config.store.snapshot) {
        (Some(memory), Some(path)) => Some(Snapshotting {
            store: memory.clone(),
            path: path.clone(),
            interval: config.store.snapshot_interval,
        }),
        _ => None,
    };
    let max_connections = match config.server.max_connections {
        Some(n) => n,
        None => {
            let (n, limit) = crate::accept::default_max_connections();
            tracing::info!(max_connections = n, open_files_limit = %limit, "max_connections sized from the open files limit");
            n
        }
    };
    let slots = ConnectionSlots::new(max_connections);
    let audit = Audit::start(config.log.audit.as_ref())?;
    let runtime = Setup::build(config)?;
    let gate = Arc::new(Gate::new(runtime, store, clock).with_audit(audit));
    let server = gate.setup().config.server.clone();
    let (shutdown, _) = watch::channel(false);
    let mut addrs = Vec::new();
    let mut tasks = Vec::new();
    let listening = |local: SocketAddr| Listening {
        gate: gate.clone(),
        local,
        tls: tls.as_ref().map(|t| t.acceptor()),
        protocols: Protocols::new(&server),
        // Never over plain HTTP (the config refuses hsts without tls).
        hsts: server.hsts.clone().filter(|_| tls.is_some()),
        request_header_timeout: server.request_header_timeout,
        keepalive_timeout: server.keepalive_timeout,
    };
    match listeners {
        Bound::Shared(listeners) => {
            for listener in listeners {
                let local = listener.local_addr().map_err(|source| StartError::Bind {
                    addr: SocketAddr::from(([0, 0, 0, 0], 0)),
                    source,
                })?;
                addrs.push(local);
                let acceptor =
                    Acceptor::new(listener, slots.clone()).map_err(|source| StartError::Bind {
                        addr: local,
                        source,
                    })?;
                tasks.push(tokio::spawn(serve(
                    acceptor,
                    Arc::new(listening(local)),
                    shutdown.subscribe(),
                )));
            }
        }
        Bound::PerWorker(workers) => {
            addrs.clone_from(&workers.addrs);
            tasks.extend(start_workers(workers, &slots, &listening, &shutdown)?);
        }
    }
    let mut redirect_addrs = Vec::new();
    // Redirects point at the first HTTPS listener's port.
    let https_port = addrs.first().map_or(443, SocketAddr::port);
    for listener in redirect_listeners {
        if let Ok(local) = listener.local_addr() {
            redirect_addrs.push(local);
        }
        let acceptor =
            Acceptor::new(listener, slots.clone()).map_err(|source| StartError::Bind {
                addr: SocketAddr::from(([0, 0, 0, 0], 0)),
                source,
            })?;
        tasks.push(tokio::spawn(crate::https_redirect::serve(
            acceptor,
            https_port,
            crate::https_redirect::Timing {
                request_header_timeout: server.request_header_timeout,
                keepalive_timeout: server.keepalive_timeout,
                grace: server.shutdown_grace,
            },
            shutdown.subscribe(),
        )));
    }
    let mut admin_addr = None;
    if let Some(listener) = admin_listener {
        admin_addr = listener.local_addr().ok();
        let timing = crate::admin::Timing {
            request_header_timeout: server.request_header_timeout,
            keepalive_timeout: server.keepalive_timeout,
        };
        tasks.push(tokio::spawn(crate::admin::serve(
            listener,
            gate.clone(),
            timing,
            shutdown.subscribe(),
        )));
    }
    if let Some(cert) = &tls {
        tasks.push(tokio::spawn(crate::background::cert_watch_loop(
            gate.clone(),
            cert.clone(),
            shutdown.subscribe(),
        )));
    }
    tasks.push(tokio::spawn(crate::background::sweep_loop(
        gate.clone(),
        shutdown.subscribe(),
    )));
    tasks.push(tokio::spawn(crate::background::users_refresh_loop(
        gate.clone(),
        shutdown.subscribe(),
    )));
    if let Some(s) = &snapshotting {
        tasks.push(tokio::spawn(crate::background::snapshot_loop(
            s.clone(),
            shutdown.subscribe(),
        )));
    }
    Ok(Running {
        addrs,
        redirect_addrs,
        admin_addr,
        tls,
        gate,
        shutdown,
        tasks,
        snapshot: snapshotting,
    })
}

/// Binds every address, or says which one failed.
async fn bind_all(addrs: &[SocketAddr]) -> Result<Vec<TcpListener>, StartError> {
    let mut listeners = Vec::with_capacity(addrs.len());
    for addr in addrs {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Bind {
                addr: *addr,
                source,
            })?;
        listeners.push(listener);
    }
    Ok(listeners)
}

/// The `server.listen` sockets: shared by the threads of one runtime, or
/// one set per thread-per-core worker.
enum Bound {
    Shared(Vec<TcpListener>),
    PerWorker(WorkerSockets),
}

/// Every `server.listen` address bound once per worker.
struct WorkerSockets {
    /// The addresses as bound (port 0 resolved), in `server.listen` order.
    addrs: Vec<SocketAddr>,
    /// For each worker, one socket per address, in the same order.
    sockets: Vec<Vec<std::net::TcpListener>>,
}

/// Binds every address `workers` times with `SO_REUSEPORT`.
fn bind_per_worker(addrs: &[SocketAddr], workers: usize) -> Result<WorkerSockets, StartError> {
    let mut bound = WorkerSockets {
        addrs: Vec::with_capacity(addrs.len()),
        sockets: (0..workers)
            .map(|_| Vec::with_capacity(addrs.len()))
            .collect(),
    };
    for addr in addrs {
        let failed = |source| StartError::Bind {
            addr: *addr,
            source,
        };
        let sockets = crate::workers::bind_shared(*addr, workers).map_err(failed)?;
        bound.addrs.push(sockets[0].local_addr().map_err(failed)?);
        for (worker, socket) in bound.sockets.iter_mut().zip(sockets) {
            worker.push(socket);
        }
    }
    Ok(bound)
}

/// How a listener's connections are served; fixed at start.
struct Listening {
    gate: Arc<Gate>,
    local: SocketAddr,
    tls: Option<TlsAcceptor>,
    protocols: Protocols,
    /// `Strict-Transport-Security`, on TLS listeners when configured.
    hsts: Option<HeaderValue>,
    request_header_timeout: Duration,
    keepalive_timeout: Duration,
}

/// hyper's connection builders: one that detects HTTP/1.1 or HTTP/2 from
/// the first bytes, and one for each protocol TLS ALPN can settle on.
struct Protocols {
    detect: auto::Builder<TokioExecutor>,
    http1: http1::Builder,
    http2: http2::Builder<TokioExecutor>,
}

/// The HTTP/1.1 settings, for hyper's builder and the auto builder's alike.
macro_rules! http1_settings {
    ($builder:expr, $server:expr) => {
        $builder
            .timer(TokioTimer::new())
            // Request heads and idle time are timed by crate::connection,
            // from accept on; hyper's timer would start later and, between
            // requests, cut keep-alive short at its own 30 s.
            .header_read_timeout(None)
            .max_buf_size($server.max_header_bytes.max(MIN_BUF) + MIN_BUF)
    };
}

/// The HTTP/2 settings, for hyper's builder and the auto builder's alike.
macro_rules! http2_settings {
    ($builder:expr, $server:expr) => {
        $builder
            .timer(TokioTimer::new())
            .max_header_list_size(u32::try_from($server.max_header_bytes).unwrap_or(u32::MAX))
            // A peer that stops answering PINGs is gone, even in the middle
            // of a long response or a WebSocket tunnel.
            .keep_alive_interval($server.keepalive_timeout)
            .keep_alive_timeout(H2_PING_TIMEOUT.min($server.keepalive_timeout))
            // RFC 8441: WebSockets over HTTP/2 (see crate::upgrade).
            .enable_connect_protocol()
    };
}

impl Protocols {
    fn new(server: &ServerConfig) -> Self {
        let mut detect = auto::Builder::new(TokioExecutor::new());
        http1_settings!(detect.http1(), server);
        http2_settings!(detect.http2(), server);
        let mut http1 = http1::Builder::new();
        http1_settings!(http1, server);
        let mut http2 = http2::Builder::new(TokioExecutor::new());
        http2_settings!(http2, server);
        Protocols {
            detect,
            http1,
            http2,
        }
    }

    /// How to speak after what ALPN chose: after `h2`, only HTTP/2 (an
    /// HTTP/1.1 request is a connection error, RFC 9113 section 3.4), after
    /// `http/1.1` only HTTP/1.1; without ALPN, the first bytes decide.
    fn for_alpn(&self, alpn: Option<&[u8]>) -> Speak<'_> {
        match alpn {
            Some(b"h2") => Speak::Http2(&self.http2),
            Some(b"http/1.1") => Speak::Http1(&self.http1),
            _ => Speak::Detect(&self.detect),
        }
    }
}

/// Threads for blocking work (file reads, CGI set-up) across every
/// worker's runtime: tokio's default for one runtime.
const BLOCKING_THREADS: usize = 512;
/// The fewest any one worker's runtime gets, however many workers.
const MIN_BLOCKING_THREADS: usize = 16;

/// Starts each thread-per-core worker: a runtime of its own, its sockets
/// registered with it, on a thread of its own (see [`spawn_worker`]).
fn start_workers(
    workers: WorkerSockets,
    slots: &ConnectionSlots,
    listening: &dyn Fn(SocketAddr) -> Listening,
    shutdown: &watch::Sender<bool>,
) -> Result<Vec<tokio::task::JoinHandle<()>>, StartError> {
    let count = workers.sockets.len();
    let mut started = Vec::with_capacity(count);
    for (index, sockets) in workers.sockets.into_iter().enumerate() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .on_thread_park(crate::idle_memory::on_park)
            // Each runtime has a blocking pool of its own (static files,
            // CGI): together no larger than one runtime's would be.
            .max_blocking_threads((BLOCKING_THREADS / count).max(MIN_BLOCKING_THREADS))
            .enable_all()
            .build()
            .map_err(StartError::Worker)?;
        let mut serving = Vec::with_capacity(sockets.len());
        for (socket, local) in sockets.into_iter().zip(&workers.addrs) {
            // Registered with the worker's own runtime.
            let acceptor = {
                let _in_worker = runtime.enter();
                Acceptor::from_std(socket, slots.clone())
            }
            .map_err(|source| StartError::Bind {
                addr: *local,
                source,
            })?;
            serving.push((acceptor, Arc::new(listening(*local)), shutdown.subscribe()));
        }
        started.push(spawn_worker(index, runtime, serving)?);
    }
    Ok(started)
}

/// Starts worker `index`: a thread that serves its listeners on its own
/// runtime until shutdown has drained them all, then drops the runtime (and
/// with it any connection still open past `shutdown_grace`). The returned
/// task, on the calling runtime, ends when the thread has.
fn spawn_worker(
    index: usize,
    runtime: tokio::runtime::Runtime,
    listeners: Vec<(Acceptor, Arc<Listening>, watch::Receiver<bool>)>,
) -> Result<tokio::task::JoinHandle<()>, StartError> {
    let (done, finished) = tokio::sync::oneshot::channel::<()>();
    // Logs go where the starting thread's go (the global subscriber, or a
    // scoped one when the proxy runs inside another program or a test).
    let logs = tracing::dispatcher::get_default(Clone::clone);
    std::thread::Builder::new()
        .name(format!("sessiongate-worker-{index}"))
        .spawn(move || {
            let _logs = tracing::dispatcher::set_default(&logs);
            crate::workers::enter(index);
            runtime.block_on(async move {
                // Ends with the runtime; see `idle_memory`.
                tokio::spawn(crate::idle_memory::tick());
                let serving: Vec<_> = listeners
                    .into_iter()
                    .map(|(acceptor, listening, stop)| {
                        tokio::spawn(serve(acceptor, listening, stop))
                    })
                    .collect();
                for task in serving {
                    let _ = task.await;
                }
            });
            drop(runtime);
            let _ = done.send(());
        })
        .map_err(StartError::Worker)?;
    // A worker that panicked drops `done` too: either way it is over.
    Ok(tokio::spawn(async move {
        let _ = finished.await;
    }))
}

/// Accepts connections until shutdown, then drains them.
async fn serve(mut acceptor: Acceptor, listening: Arc<Listening>, mut stop: watch::Receiver<bool>) {
    let drain = Drain::default();
    loop {
        let accepted = tokio::select! {
            accepted = acceptor.accept() => accepted,
            _ = stop.changed() => break,
        };
        listening.gate.metrics.worker_connections.accepted();
        // The clock for the first request head starts now.
        let first_head = Instant::now() + listening.request_header_timeout;
        let _ = accepted.stream.set_nodelay(true);
        let conn_info = ConnInfo::new(accepted.peer, listening.local, listening.tls.is_some());
        tokio::spawn(connection(
            Held::new(accepted.stream, accepted.slot),
            conn_info,
            listening.clone(),
            first_head,
            drain.token(),
        ));
    }
    drop(acceptor);
    let grace = listening.gate.setup().config.server.shutdown_grace;
    if !drain.finish(grace).await {
        tracing::warn!(grace = ?grace, "connections still open after shutdown_grace; closing them");
    }
}

/// One connection: the TLS handshake (when the listener has TLS), then HTTP
/// until the client goes away, a deadline passes, or shutdown drains it.
async fn connection(
    stream: Held<TcpStream>,
    conn_info: ConnInfo,
    listening: Arc<Listening>,
    first_head: Instant,
    drain: DrainToken,
) {
    let deadlines = Deadlines {
        first_head,
        keepalive: listening.keepalive_timeout,
    };
    let Some(acceptor) = &listening.tls else {
        let handle = handler(listening.gate.clone(), conn_info);
        let speak = Speak::Detect(&listening.protocols.detect);
        connection::serve(stream, speak, handle, deadlines, drain).await;
        return;
    };
    // The handshake counts against the first request head's deadline.
    let stream = match tokio::time::timeout_at(first_head, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            tracing::debug!(peer = %conn_info.peer, error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(peer = %conn_info.peer, "TLS handshake not done within request_header_timeout");
            return;
        }
    };
    let speak = listening
        .protocols
        .for_alpn(stream.get_ref().1.alpn_protocol());
    // A copy of its own, so that requests on this connection share no
    // reference count with every other connection.
    let hsts = listening
        .hsts
        .as_ref()
        .and_then(|v| HeaderValue::from_bytes(v.as_bytes()).ok());
    let handle = handler(listening.gate.clone(), conn_info.with_hsts(hsts));
    connection::serve(stream, speak, handle, deadlines, drain).await;
}

/// What answers one connection's requests: the gate, then (over TLS, when
/// configured) `Strict-Transport-Security` on every response, the proxy's
/// own error pages included.
fn handler(
    gate: Arc<Gate>,
    conn_info: ConnInfo,
) -> impl Fn(Request<Incoming>) -> Pin<Box<dyn Future<Output = Response<ResponseBody>> + Send>>
+ Clone
+ Send
+ Sync
+ 'static {
    let conn = Arc::new(conn_info);
    move |req| {
        // Boxed: the request's future is large, and hyper moves the
        // service's future around; a box moves as one pointer. The gate's
        // own future is what is boxed, with no future around it: each
        // layer of async fn costs a copy of the layer inside it.
        Box::pin(Gate::handle_in(
            gate.clone(),
            conn.clone(),
            req.map(RequestBody::from),
        ))
    }
}
