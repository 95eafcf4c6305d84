//! Listeners, connections, background tasks and graceful shutdown.
//!
//! Each accepted connection goes through the TLS handshake when
//! `server.tls` is set (ALPN `h2` / `http/1.1`, bounded by
//! [`crate::tls::HANDSHAKE_TIMEOUT`]), then is served by hyper-util's auto
//! builder (HTTP/1.1 and HTTP/2, including h2c prior knowledge on plain
//! listeners, and RFC 8441 WebSockets over HTTP/2) and watched by a
//! `GracefulShutdown`, so that on SIGTERM the proxy stops accepting, lets
//! in-flight requests finish within `shutdown_grace`, then returns.
//!
//! The memory store's snapshot is loaded by [`build_store`] before the
//! listeners open, written every `snapshot_interval` by a background task,
//! and written once more by [`Running::shutdown`] after the last connection
//! drained, so that it holds every update a client was answered for.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::clock::Clock;
use crate::config::{Config, StoreKind};
use crate::forwarded::ConnInfo;
use crate::proxy::{Gate, Runtime};
use crate::session::redis::RedisSetupError;
use crate::session::snapshot::{self, SnapshotError};
use crate::session::{AnyStore, MemoryStore, Policy, RedisStore, SessionStore, StoreError};
use crate::tls::{CERT_POLL_INTERVAL, HANDSHAKE_TIMEOUT, ServerCert};

/// How long a client may take to send its request head.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
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
    /// The runtime could not be prepared.
    #[error(transparent)]
    Runtime(#[from] crate::proxy::RuntimeError),
    /// The certificate or key cannot be used.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// The memory store's snapshot exists but cannot be used.
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    /// The Redis store cannot be set up from its URL.
    #[error(transparent)]
    Redis(#[from] RedisSetupError),
}

/// A started proxy: its bound addresses and a handle to stop it.
pub struct Running {
    /// The addresses actually bound (useful with port 0).
    pub addrs: Vec<SocketAddr>,
    /// The plain-HTTP addresses that redirect to HTTPS, as bound.
    pub redirect_addrs: Vec<SocketAddr>,
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
    /// for every listener to finish, then writes the memory store's
    /// snapshot (when one is configured).
    pub async fn shutdown(self) -> Result<(), SnapshotError> {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
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
struct Snapshotting {
    store: Arc<MemoryStore>,
    path: PathBuf,
    interval: Duration,
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
            let store = Arc::new(MemoryStore::new());
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
            let store = RedisStore::open(url, &config.store.key_prefix)?;
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
    let listeners = bind_all(&config.server.listen).await?;
    let redirect_listeners = bind_all(&config.server.redirect_http).await?;
    let snapshotting = match (store.as_memory(), &config.store.snapshot) {
        (Some(memory), Some(path)) => Some(Snapshotting {
            store: memory.clone(),
            path: path.clone(),
            interval: config.store.snapshot_interval,
        }),
        _ => None,
    };
    let runtime = Runtime::build(config)?;
    let gate = Arc::new(Gate::new(runtime, store, clock));
    let (shutdown, _) = watch::channel(false);
    let mut addrs = Vec::new();
    let mut tasks = Vec::new();
    for listener in listeners {
        let local = listener.local_addr().map_err(|source| StartError::Bind {
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            source,
        })?;
        addrs.push(local);
        tasks.push(tokio::spawn(serve(
            listener,
            local,
            gate.clone(),
            tls.as_ref().map(|t| t.acceptor()),
            shutdown.subscribe(),
        )));
    }
    let mut redirect_addrs = Vec::new();
    // Redirects point at the first HTTPS listener's port.
    let https_port = addrs.first().map_or(443, SocketAddr::port);
    for listener in redirect_listeners {
        if let Ok(local) = listener.local_addr() {
            redirect_addrs.push(local);
        }
        tasks.push(tokio::spawn(crate::redirect::serve(
            listener,
            https_port,
            gate.runtime().config.server.shutdown_grace,
            shutdown.subscribe(),
        )));
    }
    if let Some(cert) = &tls {
        tasks.push(tokio::spawn(cert_watch_loop(
            gate.clone(),
            cert.clone(),
            shutdown.subscribe(),
        )));
    }
    tasks.push(tokio::spawn(sweep_loop(gate.clone(), shutdown.subscribe())));
    tasks.push(tokio::spawn(users_refresh_loop(
        gate.clone(),
        shutdown.subscribe(),
    )));
    if let Some(s) = &snapshotting {
        tasks.push(tokio::spawn(snapshot_loop(s.clone(), shutdown.subscribe())));
    }
    Ok(Running {
        addrs,
        redirect_addrs,
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

/// Accepts connections until shutdown, then drains them.
async fn serve(
    listener: TcpListener,
    local: SocketAddr,
    gate: Arc<Gate>,
    tls: Option<TlsAcceptor>,
    mut stop: watch::Receiver<bool>,
) {
    let graceful = GracefulShutdown::new();
    let builder = Arc::new({
        let rt = gate.runtime();
        let mut b = auto::Builder::new(TokioExecutor::new());
        b.http1()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .max_buf_size(rt.config.server.max_header_bytes.max(MIN_BUF) + MIN_BUF);
        b.http2()
            .timer(TokioTimer::new())
            .max_header_list_size(
                u32::try_from(rt.config.server.max_header_bytes).unwrap_or(u32::MAX),
            )
            // RFC 8441: WebSockets over HTTP/2 (see crate::upgrade).
            .enable_connect_protocol();
        b
    });
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        // Out of file descriptors and the like: back off, do not exit.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let conn_info = ConnInfo::new(peer, local, tls.is_some());
                tokio::spawn(connection(
                    stream,
                    conn_info,
                    tls.clone(),
                    builder.clone(),
                    graceful.watcher(),
                    gate.clone(),
                ));
            }
            _ = stop.changed() => break,
        }
    }
    drop(listener);
    let grace = gate.runtime().config.server.shutdown_grace;
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(grace = ?grace, "connections still open after shutdown_grace; closing them");
    }
}

/// One connection: the TLS handshake (when the listener has TLS), then HTTP
/// until the client goes away or shutdown drains it.
async fn connection(
    stream: TcpStream,
    conn_info: ConnInfo,
    tls: Option<TlsAcceptor>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    watcher: Watcher,
    gate: Arc<Gate>,
) {
    match tls {
        None => serve_http(stream, conn_info, &builder, watcher, gate).await,
        Some(acceptor) => {
            // A client that stalls the handshake must not hold a task forever.
            let stream =
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(e)) => {
                        tracing::debug!(peer = %conn_info.peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(peer = %conn_info.peer, "TLS handshake timed out");
                        return;
                    }
                };
            serve_http(stream, conn_info, &builder, watcher, gate).await;
        }
    }
}

/// Serves HTTP/1.1 or HTTP/2 on an accepted (and perhaps decrypted) stream.
async fn serve_http<I>(
    io: I,
    conn_info: ConnInfo,
    builder: &auto::Builder<TokioExecutor>,
    watcher: Watcher,
    gate: Arc<Gate>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let conn_info = Arc::new(conn_info);
    let service = service_fn(move |req| {
        let gate = gate.clone();
        let conn_info = conn_info.clone();
        // Boxed: the request's future is large, and hyper moves the
        // service's future around; a box moves as one pointer.
        async move { Ok::<_, Infallible>(Box::pin(gate.handle(req, &conn_info)).await) }
    });
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    if let Err(e) = watcher.watch(conn.into_owned()).await {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// Re-reads the certificate and key when their files change (a `stat`
/// every [`CERT_POLL_INTERVAL`]) and after every config reload (SIGHUP), so
/// that new handshakes get the new pair; open connections keep theirs.
async fn cert_watch_loop(gate: Arc<Gate>, cert: Arc<ServerCert>, mut stop: watch::Receiver<bool>) {
    /// How often the runtime is checked for a reload.
    const TICK: Duration = Duration::from_millis(250);
    let mut seen = gate.runtime();
    let mut since_poll = Duration::ZERO;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            _ = stop.changed() => return,
        }
        since_poll += TICK;
        let rt = gate.runtime();
        let reloaded = !Arc::ptr_eq(&rt, &seen);
        if !reloaded && since_poll < CERT_POLL_INTERVAL {
            continue;
        }
        since_poll = Duration::ZERO;
        seen = rt.clone();
        let Some(files) = rt.config.server.tls.clone() else {
            if reloaded {
                tracing::warn!(
                    "server.tls was removed from the config; TLS listeners keep their certificate until a restart"
                );
            }
            continue;
        };
        let cert = cert.clone();
        let result = tokio::task::spawn_blocking(move || {
            if reloaded {
                cert.reload(&files).map(|()| true)
            } else {
                cert.reload_if_changed(&files)
            }
        })
        .await;
        match result {
            Ok(Ok(true)) => tracing::info!("TLS certificate reloaded"),
            Ok(Ok(false)) => {}
            Ok(Err(e)) => {
                tracing::error!(error = %e, "TLS certificate not reloaded; keeping the one in use")
            }
            Err(e) => tracing::error!(error = %e, "TLS certificate reload task failed"),
        }
    }
}

/// Removes expired sessions from the memory store, regularly.
async fn sweep_loop(gate: Arc<Gate>, mut stop: watch::Receiver<bool>) {
    // Redis expires its keys by itself.
    let Some(store) = gate.store.as_memory().cloned() else {
        return;
    };
    loop {
        let rt = gate.runtime();
        let every = Duration::from_secs((rt.policy.idle_timeout / 4).clamp(1, 60));
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
        let now = gate.clock.now();
        let policy = rt.policy;
        let store = store.clone();
        // The sweep walks the whole map: keep it off the request threads' queues.
        let removed = tokio::task::spawn_blocking(move || store.sweep(now, &policy))
            .await
            .unwrap_or(0);
        if removed > 0 {
            gate.metrics
                .sessions_expired
                .fetch_add(removed as u64, std::sync::atomic::Ordering::Relaxed);
            tracing::debug!(removed, "expired sessions swept");
        }
    }
}

/// Re-reads the users file when it changes (one `stat` a second).
async fn users_refresh_loop(gate: Arc<Gate>, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.changed() => return,
        }
        let rt = gate.runtime();
        let Some(users) = rt.users.clone() else {
            continue;
        };
        let refreshed = tokio::task::spawn_blocking(move || users.refresh_if_changed()).await;
        match refreshed {
            Ok(Ok(true)) => tracing::info!("users file reloaded"),
            Ok(Ok(false)) => {}
            Ok(Err(e)) => {
                tracing::error!(error = %e, "users file not reloaded; keeping the previous users")
            }
            Err(e) => tracing::error!(error = %e, "users file refresh task failed"),
        }
    }
}

/// Writes the memory store's snapshot every `snapshot_interval`, when it
/// changed since the last one. A failed write is logged and retried at the
/// next interval; the previous snapshot stays intact meanwhile.
async fn snapshot_loop(s: Snapshotting, mut stop: watch::Receiver<bool>) {
    let mut saved = s.store.generation();
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + s.interval, s.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let generation = s.store.generation();
        if generation == saved {
            continue;
        }
        match snapshot::save(s.store.clone(), s.path.clone()).await {
            Ok(written) => {
                saved = generation;
                tracing::debug!(sessions = written, "snapshot written");
            }
            Err(e) => {
                tracing::error!(error = %e, "snapshot not written; trying again at the next interval")
            }
        }
    }
}
