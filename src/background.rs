//! The proxy's background tasks, each a loop that ends at shutdown: the
//! certificate watch, the memory store's sweeper and snapshots, and the
//! users file's refresh (which also signs out users who left it).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::login::Departures;
use crate::proxy::Gate;
use crate::server::Snapshotting;
use crate::session::snapshot;
use crate::tls::{CERT_POLL_INTERVAL, ServerCert};

/// Re-reads the certificate and key when their files change (a `stat`
/// every [`CERT_POLL_INTERVAL`]) and after every config reload (SIGHUP), so
/// that new handshakes get the new pair; open connections keep theirs.
pub(crate) async fn cert_watch_loop(
    gate: Arc<Gate>,
    cert: Arc<ServerCert>,
    mut stop: watch::Receiver<bool>,
) {
    /// How often the runtime is checked for a reload.
    const TICK: Duration = Duration::from_millis(250);
    let mut seen = gate.setup();
    let mut since_poll = Duration::ZERO;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            _ = stop.changed() => return,
        }
        since_poll += TICK;
        let rt = gate.setup();
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
pub(crate) async fn sweep_loop(gate: Arc<Gate>, mut stop: watch::Receiver<bool>) {
    // Redis expires its keys by itself.
    let Some(store) = gate.store.as_memory().cloned() else {
        return;
    };
    loop {
        let rt = gate.setup();
        let every = Duration::from_secs((rt.sessions.policy.idle_timeout / 4).clamp(1, 60));
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
        let now = gate.clock.now();
        let policy = rt.sessions.policy;
        let store = store.clone();
        // The sweep walks the whole map: keep it off the request threads' queues.
        let removed = tokio::task::spawn_blocking(move || store.sweep(now, &policy))
            .await
            .unwrap_or(0);
        // The store counts them, for `sessions_ended_total{reason="expired"}`.
        if removed > 0 {
            tracing::debug!(removed, "expired sessions swept");
        }
    }
}

/// Re-reads the users file and the groups file when they change (one
/// `stat` each a second), and ends the sessions of the users who left the
/// users file (after a change of the file or a reload), so that within a
/// second of the file changing they are signed out everywhere. A groups
/// file change needs nothing more: every request asks the file in force.
pub(crate) async fn users_refresh_loop(gate: Arc<Gate>, mut stop: watch::Receiver<bool>) {
    let mut departures = Departures::new(gate.setup().login.users.as_ref().map(|u| u.current()));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.changed() => return,
        }
        let rt = gate.setup();
        if let Some(groups) = rt.groups.clone() {
            refresh("groups", move || groups.refresh_if_changed()).await;
        }
        let Some(users) = rt.login.users.clone() else {
            departures
                .settle(None, &gate.store, &gate.audit, &gate.metrics)
                .await;
            continue;
        };
        let source = users.clone();
        refresh("users", move || source.refresh_if_changed()).await;
        departures
            .settle(
                Some(users.current()),
                &gate.store,
                &gate.audit,
                &gate.metrics,
            )
            .await;
    }
}

/// Runs one `refresh_if_changed` of the `what` file off the runtime's
/// threads (it reads and parses the file), and logs what came of it.
async fn refresh<E: std::fmt::Display + Send + 'static>(
    what: &'static str,
    refresh_if_changed: impl FnOnce() -> Result<bool, E> + Send + 'static,
) {
    match tokio::task::spawn_blocking(refresh_if_changed).await {
        Ok(Ok(true)) => tracing::info!("{what} file reloaded"),
        Ok(Ok(false)) => {}
        Ok(Err(e)) => {
            tracing::error!(error = %e, "{what} file not reloaded; keeping the previous {what}")
        }
        Err(e) => tracing::error!(error = %e, "{what} file refresh task failed"),
    }
}

/// Writes the memory store's snapshot every `snapshot_interval`, when it
/// changed since the last one. A failed write is logged and retried at the
/// next interval; the previous snapshot stays intact meanwhile.
pub(crate) async fn snapshot_loop(s: Snapshotting, mut stop: watch::Receiver<bool>) {
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
