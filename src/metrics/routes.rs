//! Request counters by route: answers by status, the duration histogram,
//! upstream errors, cross-site refusals.
//!
//! A request adds to three atomics of its route's [`RouteMeter`] (its
//! status, its duration bucket, the duration sum), with no lock and no
//! lookup: the meter is found with the route. Statuses are a fixed array
//! indexed by the code, so a status seen for the first time needs no
//! allocation either.
//!
//! Meters are made by [`RouteMeters::new`] when a setup is built, one per
//! route label, and [`RouteMeters::bind`] swaps them for those the
//! [`RouteRegistry`] already keeps under the same labels: a reload keeps
//! every total, and a route that comes back after a reload continues where
//! it left off. The registry's lock is taken only then and at scrape time.
//!
//! The duration is taken when the response head leaves the gate, not when
//! the body ends: it is the time the proxy and the backend took to answer,
//! and a slow client reading a large body does not stretch it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use http::StatusCode;

/// Upper bounds of the duration histogram's buckets, in seconds: from half a
/// millisecond (a cached page next door) to ten seconds (a slow CGI script).
pub const DURATION_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// [`DURATION_BUCKETS`] in microseconds, the unit durations are counted in.
const BUCKET_MICROS: [u64; 14] = [
    500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
    2_500_000, 5_000_000, 10_000_000,
];

/// The lowest status code; the statuses array starts there.
const FIRST_STATUS: u16 = 100;
/// Every code `http::StatusCode` can hold: 100 to 999.
const STATUSES: usize = 900;

/// One route label's counters.
pub struct RouteMeter {
    label: Arc<str>,
    /// Answers by status code, at `code - 100`.
    statuses: Box<[AtomicU64]>,
    /// Durations by bucket (not cumulative); the last one is over ten seconds.
    buckets: [AtomicU64; BUCKET_MICROS.len() + 1],
    /// The sum of every duration, in microseconds (u64 holds half a million
    /// years of them).
    sum_micros: AtomicU64,
    /// Upstream failures (502/504).
    upstream_errors: AtomicU64,
    /// State-changing requests the cross-site shield refused.
    csrf_refused: AtomicU64,
}

impl std::fmt::Debug for RouteMeter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteMeter")
            .field("label", &self.label)
            .field("requests", &self.requests())
            .finish_non_exhaustive()
    }
}

/// A snapshot of a meter's duration histogram.
#[derive(Debug, Clone, PartialEq)]
pub struct Durations {
    /// `(upper bound in seconds, observations in this bucket alone)`, for
    /// every bound of [`DURATION_BUCKETS`]; the `+Inf` bucket is `count`.
    pub buckets: Vec<(f64, u64)>,
    /// Every observation.
    pub count: u64,
    /// The sum of every duration, in seconds.
    pub sum: f64,
}

impl RouteMeter {
    /// Counters at zero for `label`.
    pub fn new(label: Arc<str>) -> Self {
        RouteMeter {
            label,
            statuses: (0..STATUSES).map(|_| AtomicU64::new(0)).collect(),
            buckets: Default::default(),
            sum_micros: AtomicU64::new(0),
            upstream_errors: AtomicU64::new(0),
            csrf_refused: AtomicU64::new(0),
        }
    }

    /// The route label (a route's path, `-` for no route, or the built-in
    /// endpoints' prefix).
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Counts one answer: its status, and the time it took.
    #[inline]
    pub fn observe(&self, status: StatusCode, elapsed: Duration) {
        let index = usize::from(status.as_u16().saturating_sub(FIRST_STATUS));
        if let Some(count) = self.statuses.get(index) {
            count.fetch_add(1, Ordering::Relaxed);
        }
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let bucket = BUCKET_MICROS
            .iter()
            .position(|&le| micros <= le)
            .unwrap_or(BUCKET_MICROS.len());
        if let Some(count) = self.buckets.get(bucket) {
            count.fetch_add(1, Ordering::Relaxed);
        }
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// Counts an upstream failure.
    pub fn upstream_error(&self) {
        self.upstream_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a request the cross-site shield refused.
    pub fn csrf_refusal(&self) {
        self.csrf_refused.fetch_add(1, Ordering::Relaxed);
    }

    /// Requests the cross-site shield refused so far.
    pub fn csrf_refused(&self) -> u64 {
        self.csrf_refused.load(Ordering::Relaxed)
    }

    /// Every status answered at least once, with its count, lowest first.
    pub fn statuses(&self) -> impl Iterator<Item = (StatusCode, u64)> + '_ {
        self.statuses
            .iter()
            .zip(FIRST_STATUS..)
            .filter_map(|(n, code)| {
                let n = n.load(Ordering::Relaxed);
                let status = StatusCode::from_u16(code).ok()?;
                (n > 0).then_some((status, n))
            })
    }

    /// Answers so far, whatever their status.
    pub fn requests(&self) -> u64 {
        self.statuses
            .iter()
            .map(|n| n.load(Ordering::Relaxed))
            .sum()
    }

    /// Upstream failures so far.
    pub fn upstream_errors(&self) -> u64 {
        self.upstream_errors.load(Ordering::Relaxed)
    }

    /// The duration histogram as it stands. Its count is the sum of its
    /// buckets, so the two always agree; the sum may be a request ahead.
    pub fn durations(&self) -> Durations {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|n| n.load(Ordering::Relaxed))
            .collect();
        let buckets = DURATION_BUCKETS.iter().copied().zip(counts.iter().copied());
        Durations {
            buckets: buckets.collect(),
            count: counts.iter().sum(),
            sum: self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
        }
    }
}

/// Every route label's meter since the process started, across reloads.
#[derive(Debug, Default)]
pub struct RouteRegistry {
    by_label: Mutex<BTreeMap<Arc<str>, Arc<RouteMeter>>>,
}

impl RouteRegistry {
    /// The meter kept for `meter`'s label, or `meter` itself, now kept.
    fn adopt(&self, meter: &Arc<RouteMeter>) -> Arc<RouteMeter> {
        let mut by_label = self.by_label.lock().unwrap_or_else(PoisonError::into_inner);
        by_label
            .entry(meter.label.clone())
            .or_insert_with(|| meter.clone())
            .clone()
    }

    /// Every meter, ordered by label.
    pub fn all(&self) -> Vec<Arc<RouteMeter>> {
        let by_label = self.by_label.lock().unwrap_or_else(PoisonError::into_inner);
        by_label.values().cloned().collect()
    }
}

/// The meters of one setup: one per route (routes with the same label share
/// one), one for requests no route matched, one for the built-in endpoints.
#[derive(Debug)]
pub struct RouteMeters {
    by_route: Vec<Arc<RouteMeter>>,
    no_route: Arc<RouteMeter>,
    builtin: Arc<RouteMeter>,
}

impl RouteMeters {
    /// Fresh meters for these labels, `route_labels` in route order.
    pub fn new(route_labels: &[Arc<str>], no_route: &Arc<str>, builtin: &Arc<str>) -> Self {
        let mut made: BTreeMap<Arc<str>, Arc<RouteMeter>> = BTreeMap::new();
        let mut meter = |label: &Arc<str>| {
            made.entry(label.clone())
                .or_insert_with(|| Arc::new(RouteMeter::new(label.clone())))
                .clone()
        };
        RouteMeters {
            by_route: route_labels.iter().map(&mut meter).collect(),
            no_route: meter(no_route),
            builtin: meter(builtin),
        }
    }

    /// Swaps every meter for the one `registry` keeps under its label (or
    /// leaves it, and the registry keeps it from now on).
    pub fn bind(&mut self, registry: &RouteRegistry) {
        for meter in self
            .by_route
            .iter_mut()
            .chain([&mut self.no_route, &mut self.builtin])
        {
            *meter = registry.adopt(meter);
        }
    }

    /// The meter of the route with id `id`, if there is one.
    pub fn route(&self, id: usize) -> Option<&RouteMeter> {
        self.by_route.get(id).map(|m| &**m)
    }

    /// The meter of requests no route matched.
    pub fn no_route(&self) -> &RouteMeter {
        &self.no_route
    }

    /// The meter of the built-in endpoints.
    pub fn builtin(&self) -> &RouteMeter {
        &self.builtin
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(names: &[&str]) -> Vec<Arc<str>> {
        names.iter().map(|n| Arc::from(*n)).collect()
    }

    #[test]
    fn durations_land_in_the_first_bucket_that_holds_them() {
        let m = RouteMeter::new(Arc::from("/"));
        m.observe(StatusCode::OK, Duration::from_micros(500));
        m.observe(StatusCode::OK, Duration::from_micros(501));
        m.observe(StatusCode::OK, Duration::from_millis(30));
        m.observe(StatusCode::OK, Duration::from_secs(11));
        let d = m.durations();
        assert_eq!(d.count, 4);
        assert_eq!(d.buckets[0], (0.0005, 1));
        assert_eq!(d.buckets[1], (0.001, 1));
        assert_eq!(d.buckets[6], (0.05, 1));
        let finite: u64 = d.buckets.iter().map(|(_, n)| n).sum();
        assert_eq!(finite, 3, "the eleven seconds are only in +Inf");
        assert!((d.sum - 11.031001).abs() < 1e-9, "{}", d.sum);
    }

    #[test]
    fn statuses_are_counted_by_code() {
        let m = RouteMeter::new(Arc::from("/"));
        for status in [200, 200, 502, 100, 999] {
            m.observe(StatusCode::from_u16(status).unwrap(), Duration::ZERO);
        }
        let seen: Vec<(u16, u64)> = m.statuses().map(|(s, n)| (s.as_u16(), n)).collect();
        assert_eq!(seen, [(100, 1), (200, 2), (502, 1), (999, 1)]);
        assert_eq!(m.requests(), 5);
    }

    #[test]
    fn totals_survive_a_reload_by_label() {
        let registry = RouteRegistry::default();
        let dash: Arc<str> = Arc::from("-");
        let builtin: Arc<str> = Arc::from("/.sessiongate");
        let mut first = RouteMeters::new(&labels(&["/", "/app/"]), &dash, &builtin);
        first.bind(&registry);
        first
            .route(1)
            .unwrap()
            .observe(StatusCode::OK, Duration::ZERO);
        first
            .no_route()
            .observe(StatusCode::NOT_FOUND, Duration::ZERO);

        // The reloaded config drops "/" and adds "/new/".
        let mut second = RouteMeters::new(&labels(&["/new/", "/app/"]), &dash, &builtin);
        second.bind(&registry);
        let app = second.route(1).unwrap();
        app.observe(StatusCode::OK, Duration::ZERO);
        assert_eq!(app.requests(), 2);
        assert_eq!(second.no_route().requests(), 1);
        let kept: Vec<String> = registry.all().iter().map(|m| m.label().into()).collect();
        assert_eq!(kept, ["-", "/", "/.sessiongate", "/app/", "/new/"]);
    }

    #[test]
    fn routes_with_one_label_share_a_meter() {
        let dash: Arc<str> = Arc::from("-");
        let meters = RouteMeters::new(&labels(&["/", "/"]), &dash, &dash);
        meters
            .route(0)
            .unwrap()
            .observe(StatusCode::OK, Duration::ZERO);
        assert_eq!(meters.route(1).unwrap().requests(), 1);
        assert_eq!(meters.no_route().requests(), 0);
        assert!(meters.route(2).is_none());
    }
}
