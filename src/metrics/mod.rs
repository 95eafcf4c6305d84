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
    /// Forms kept across a sign-in: kept, not kept, replayed, missing.
    pub replays: crate::replay::ReplayCounters,
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
