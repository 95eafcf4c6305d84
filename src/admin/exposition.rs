//! `GET /metrics`: the gate's counters, the store's and the process's,
//! read at scrape time and encoded by `prometheus-client`, in the
//! Prometheus text format (version 0.0.4) unless the scraper asks for
//! OpenMetrics (as the Prometheus server does).
//!
//! The request path never touches prometheus-client: its `Family` takes a
//! lock on every lookup and its `Histogram` one on every observation.
//! The counters stay plain atomics ([`crate::metrics`]); a [`Collector`]
//! reads them here, once per scrape.
//!
//! ```text
//! sessiongate_requests_total{route,status}            counter
//! sessiongate_request_duration_seconds{route}         histogram (time to the response head)
//! sessiongate_upstream_errors_total{route}            counter
//! sessiongate_csrf_refused_total{route}               counter (the cross-site shield)
//! sessiongate_sessions_active                         gauge (memory store only)
//! sessiongate_sessions_created_total                  counter
//! sessiongate_sessions_ended_total{reason}            counter: logout, revoked; expired and
//!                                                     evicted with the memory store only
//! sessiongate_logins_total{result}                    counter: ok, failed, throttled
//! sessiongate_replays_total{outcome}                  counter: kept, not_kept, replayed, missing
//! sessiongate_store_errors_total                      counter
//! sessiongate_session_updates_refused_total           counter
//! sessiongate_worker_connections_total{worker}        counter: client connections accepted by each
//!                                                     thread-per-core worker (all under 0 without)
//! process_cpu_seconds_total, process_resident_memory_bytes, process_virtual_memory_bytes,
//! process_open_fds, process_max_fds, process_start_time_seconds
//! ```
//!
//! With Redis, sessions expire inside Redis and nothing counts them, and
//! counting the stored sessions means walking every key, which no scrape
//! should cost: those series are left out rather than shown as zero.

use std::sync::Arc;

use http::HeaderValue;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeCounterValue, EncodeLabelSet, MetricEncoder, NoLabelSet,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::metrics::process::ProcessFigures;
use crate::metrics::{Metrics, RouteMeter};
use crate::proxy::Gate;

/// The text format a scrape gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The Prometheus text format, version 0.0.4 (what `promtool` checks).
    Prometheus,
    /// OpenMetrics 1.0 text, for scrapers that ask for it.
    OpenMetrics,
}

impl Format {
    /// OpenMetrics when `Accept` names it (without refusing it by `q=0`),
    /// else the Prometheus text format.
    pub fn negotiate(accept: Option<&HeaderValue>) -> Format {
        let Some(accept) = accept.and_then(|a| a.to_str().ok()) else {
            return Format::Prometheus;
        };
        let wants_openmetrics = accept.split(',').any(|range| {
            let mut params = range.split(';').map(str::trim);
            let is_openmetrics = params
                .next()
                .is_some_and(|t| t.eq_ignore_ascii_case("application/openmetrics-text"));
            let refused = params.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            is_openmetrics && !refused
        });
        if wants_openmetrics {
            Format::OpenMetrics
        } else {
            Format::Prometheus
        }
    }

    /// The `Content-Type` of an answer in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// Everything `/metrics` shows, ready to be encoded at each scrape.
#[derive(Debug)]
pub struct Exposition {
    registry: Registry,
}

impl Exposition {
    /// The metrics of `gate` and of this process.
    pub fn new(gate: Arc<Gate>) -> Self {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(GateCollector(gate)));
        registry.register_collector(Box::new(ProcessCollector));
        Exposition { registry }
    }

    /// Reads every counter now and encodes them.
    pub fn encode(&self, format: Format) -> Result<String, std::fmt::Error> {
        let mut out = String::with_capacity(8 * 1024);
        match format {
            Format::Prometheus => {
                prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)?
            }
            Format::OpenMetrics => {
                prometheus_client::encoding::text::encode(&mut out, &self.registry)?
            }
        }
        Ok(out)
    }
}

/// The gate's counters and the store's.
struct GateCollector(Arc<Gate>);

impl std::fmt::Debug for GateCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GateCollector")
    }
}

impl Collector for GateCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let gate = &*self.0;
        let m = &gate.metrics;
        let meters = m.routes.all();
        encode_requests(&mut encoder, &meters)?;
        encode_durations(&mut encoder, &meters)?;
        let upstream_errors = meters
            .iter()
            .map(|meter| ([("route", meter.label())], meter.upstream_errors()));
        counter_family(
            &mut encoder,
            "sessiongate_upstream_errors",
            "Requests whose upstream failed or timed out (502, 504), by route.",
            upstream_errors,
        )?;
        let csrf_refused = meters
            .iter()
            .map(|meter| ([("route", meter.label())], meter.csrf_refused()));
        counter_family(
            &mut encoder,
            "sessiongate_csrf_refused",
            "State-changing requests from another origin refused by the cross-site shield, by route.",
            csrf_refused,
        )?;
        let memory = gate.store.as_memory();
        if let Some(store) = memory {
            let active = encoder.encode_descriptor(
                "sessiongate_sessions_active",
                "Sessions held by the memory store.",
                None,
                MetricType::Gauge,
            )?;
            gauge(active, store.len() as i64)?;
        }
        counter(
            &mut encoder,
            "sessiongate_sessions_created",
            "Sessions created (a first session cookie issued).",
            Metrics::get(&m.sessions_created),
        )?;
        let mut ended = vec![
            ("logout", Metrics::get(&m.sessions_logged_out)),
            ("revoked", Metrics::get(&m.sessions_revoked)),
        ];
        if let Some(store) = memory {
            ended.push(("expired", store.expired_total()));
            ended.push(("evicted", store.evicted_total()));
        }
        counter_family(
            &mut encoder,
            "sessiongate_sessions_ended",
            "Sessions ended, by reason.",
            ended.into_iter().map(|(r, n)| ([("reason", r)], n)),
        )?;
        let logins = [
            ("ok", m.logins.ok()),
            ("failed", m.logins.failed()),
            ("throttled", m.logins.throttled()),
        ];
        counter_family(
            &mut encoder,
            "sessiongate_logins",
            "Logins at the built-in login page, by result.",
            logins.into_iter().map(|(r, n)| ([("result", r)], n)),
        )?;
        counter_family(
            &mut encoder,
            "sessiongate_replays",
            "Forms sent without a session, kept across the sign-in and sent on after it, by outcome.",
            m.replays
                .all()
                .into_iter()
                .map(|(o, n)| ([("outcome", o)], n)),
        )?;
        counter(
            &mut encoder,
            "sessiongate_store_errors",
            "Session store operations that failed.",
            Metrics::get(&m.store_errors),
        )?;
        counter(
            &mut encoder,
            "sessiongate_session_updates_refused",
            "Session updates from the backend refused for exceeding max_data_bytes.",
            Metrics::get(&m.updates_too_large),
        )?;
        let workers: Vec<(String, u64)> = m
            .worker_connections
            .counts()
            .into_iter()
            .map(|(worker, n)| (worker.to_string(), n))
            .collect();
        counter_family(
            &mut encoder,
            "sessiongate_worker_connections",
            "Client connections accepted, by thread-per-core worker (all under 0 without them).",
            workers.iter().map(|(w, n)| ([("worker", w.as_str())], *n)),
        )
    }
}

/// `sessiongate_requests_total{route,status}`: only the statuses seen.
fn encode_requests(
    encoder: &mut DescriptorEncoder,
    meters: &[Arc<RouteMeter>],
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(
        "sessiongate_requests",
        "Requests answered, by route and status.",
        None,
        MetricType::Counter,
    )?;
    for meter in meters {
        for (status, n) in meter.statuses() {
            let labels = [("route", meter.label()), ("status", status.as_str())];
            family
                .encode_family(&labels)?
                .encode_counter::<NoLabelSet, _, u64>(&n, None)?;
        }
    }
    Ok(())
}

/// `sessiongate_request_duration_seconds{route}`.
fn encode_durations(
    encoder: &mut DescriptorEncoder,
    meters: &[Arc<RouteMeter>],
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(
        "sessiongate_request_duration_seconds",
        "Time from the request head to the response head, by route.",
        None,
        MetricType::Histogram,
    )?;
    for meter in meters {
        let d = meter.durations();
        let labels = [("route", meter.label())];
        family
            .encode_family(&labels)?
            .encode_histogram::<NoLabelSet>(d.sum, d.count, &d.buckets, None)?;
    }
    Ok(())
}

/// The usual `process_*` metrics, from `/proc` at each scrape.
#[derive(Debug)]
struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let p = ProcessFigures::read();
        if let Some(v) = p.cpu_seconds {
            counter(
                &mut encoder,
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds.",
                v,
            )?;
        }
        let gauges = [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                p.resident_memory_bytes.map(|v| v as f64),
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
                p.virtual_memory_bytes.map(|v| v as f64),
            ),
            (
                "process_open_fds",
                "Number of open file descriptors.",
                p.open_fds.map(|v| v as f64),
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors.",
                p.max_fds.map(|v| v as f64),
            ),
            (
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
                p.start_time_seconds,
            ),
        ];
        for (name, help, value) in gauges {
            if let Some(v) = value {
                let m = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
                gauge(m, v)?;
            }
        }
        Ok(())
    }
}

/// One counter without labels. `name` is without `_total`: the encoder adds it.
fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: impl EncodeCounterValue,
) -> Result<(), std::fmt::Error> {
    encoder
        .encode_descriptor(name, help, None, MetricType::Counter)?
        .encode_counter::<NoLabelSet, _, u64>(&value, None)
}

/// A counter with one series per label set.
fn counter_family<L: EncodeLabelSet>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: impl Iterator<Item = (L, u64)>,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, value) in series {
        family
            .encode_family(&labels)?
            .encode_counter::<NoLabelSet, _, u64>(&value, None)?;
    }
    Ok(())
}

/// One gauge's value.
fn gauge<V: prometheus_client::encoding::EncodeGaugeValue>(
    mut encoder: MetricEncoder,
    value: V,
) -> Result<(), std::fmt::Error> {
    encoder.encode_gauge(&value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(v: &str) -> Format {
        Format::negotiate(Some(&HeaderValue::from_str(v).unwrap()))
    }

    #[test]
    fn openmetrics_only_when_asked_for() {
        assert_eq!(Format::negotiate(None), Format::Prometheus);
        assert_eq!(accept("*/*"), Format::Prometheus);
        assert_eq!(accept("text/plain;version=0.0.4"), Format::Prometheus);
        // What Prometheus 2.x sends.
        assert_eq!(
            accept(
                "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
            ),
            Format::OpenMetrics
        );
        assert_eq!(
            accept("application/openmetrics-text; q=0, text/plain"),
            Format::Prometheus
        );
    }
}
