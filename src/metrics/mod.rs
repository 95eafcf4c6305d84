//! What the proxy counts, for the admin listener's `/metrics`.
//!
//! Counting happens on the request path, so it must stay cheap: every
//! counter is a relaxed atomic, and no lock is shared by requests. Requests
//! are counted per route ([`routes`]): each route's counters are made when
//! a setup is built and kept across reloads by route label, statuses are a
//! fixed array of atomics, and the duration histogram's buckets are atomics
//! too. Nothing here formats anything: the admin listener reads these
//! counters at scrape time (`admin::exposition`), together with the
//! store's and the process's ([`process`]).

pub mod process;
pub mod routes;

use std::sync::atomic::{AtomicU64, Ordering};

pub use routes::{DURATION_BUCKETS, RouteMeter, RouteMeters, RouteRegistry};

/// Process-wide counters. Relaxed atomics: each is independent, and
/// nothing is ordered by them.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Requests, their durations and upstream errors, by route label.
    pub routes: RouteRegistry,
    /// Sessions created (first cookie issued).
    pub sessions_created: AtomicU64,
    /// Sessions ended by a logout (built-in, or the backend's control header).
    pub sessions_logged_out: AtomicU64,
    /// Sessions ended by an operator (`DELETE /sessions`) or because their
    /// user was removed: `sessions_ended_total{reason="revoked"}`.
    pub sessions_revoked: AtomicU64,
    /// Control-header updates refused for exceeding `max_data_bytes`.
    pub updates_too_large: AtomicU64,
    /// Store failures.
    pub store_errors: AtomicU64,
    /// Built-in logins: ok, failed, throttled.
    pub logins: crate::login::LoginCounters,
    /// Client connections accepted, by thread-per-core worker.
    pub worker_connections: WorkerConnections,
    /// Forms kept across a sign-in: kept, not kept, replayed, missing.
    pub replays: crate::replay::ReplayCounters,
}

/// The most workers counted apart; the config allows no more.
pub const MAX_COUNTED_WORKERS: usize = 1024;

/// Client connections accepted by each thread-per-core worker (all under
/// worker 0 without them): shows how the kernel spreads connections.
#[derive(Debug)]
pub struct WorkerConnections(Box<[AtomicU64; MAX_COUNTED_WORKERS]>);

impl Default for WorkerConnections {
    fn default() -> Self {
        WorkerConnections(Box::new(std::array::from_fn(|_| AtomicU64::new(0))))
    }
}

impl WorkerConnections {
    /// Counts a connection accepted by the calling worker.
    pub fn accepted(&self) {
        let worker = crate::workers::current().min(MAX_COUNTED_WORKERS - 1);
        Metrics::inc(&self.0[worker]);
    }

    /// `(worker, connections)` for every worker that accepted any.
    pub fn counts(&self) -> Vec<(usize, u64)> {
        self.0
            .iter()
            .map(Metrics::get)
            .enumerate()
            .filter(|&(_, n)| n > 0)
            .collect()
    }
}

impl Metrics {
    /// Adds one to a counter.
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Reads a counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// Requests answered so far, every route together.
    pub fn requests(&self) -> u64 {
        self.routes.all().iter().map(|m| m.requests()).sum()
    }

    /// Upstream failures (502/504) so far, every route together.
    pub fn upstream_errors(&self) -> u64 {
        self.routes.all().iter().map(|m| m.upstream_errors()).sum()
    }
}
