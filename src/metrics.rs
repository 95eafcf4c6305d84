//! Counters kept by the proxy, for the admin listener's `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering};

/// Process-wide counters. Relaxed atomics: each is independent.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Requests answered.
    pub requests: AtomicU64,
    /// Sessions created (first cookie issued).
    pub sessions_created: AtomicU64,
    /// Sessions removed by the sweeper after they expired.
    pub sessions_expired: AtomicU64,
    /// Control-header updates refused for exceeding `max_data_bytes`.
    pub updates_too_large: AtomicU64,
    /// Upstream failures (502/504).
    pub upstream_errors: AtomicU64,
    /// Store failures.
    pub store_errors: AtomicU64,
    /// Built-in logins: ok, failed, throttled.
    pub logins: crate::login::LoginCounters,
}

impl Metrics {
    /// Adds one to a counter.
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Reads a counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
