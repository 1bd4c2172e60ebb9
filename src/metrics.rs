//! Prometheus metrics. It must never label a metric with user input (paths, accounts, tokens):
//! labels are configured route and upstream names and status classes only.

use std::sync::OnceLock;
use std::time::Duration;

use http::StatusCode;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the global recorder once per process and returns the render handle.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("xumm_gate_upstream_duration_seconds".into()),
                    &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0],
                )
                .expect("static bucket list is not empty")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (embedding apps); ours still renders.
            let _ = metrics::set_global_recorder(recorder);
            let upkeep = handle.clone();
            std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || loop {
                    std::thread::sleep(Duration::from_secs(5));
                    upkeep.run_upkeep();
                })
                .ok();
            handle
        })
        .clone()
}

fn class(status: StatusCode) -> &'static str {
    match status.as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// A route's label and its request counters, registered once so the hot path only increments.
pub struct RouteMetrics {
    pub label: std::sync::Arc<str>,
    counters: [metrics::Counter; 5],
}

impl RouteMetrics {
    /// Call after `install()`: handles bind to the recorder installed at that time.
    pub fn new(label: &str) -> RouteMetrics {
        RouteMetrics {
            label: std::sync::Arc::from(label),
            counters: CLASSES.map(|c| metrics::counter!("xumm_gate_requests_total", "route" => label.to_string(), "status" => c)),
        }
    }

    pub fn done(&self, status: StatusCode) {
        let i = CLASSES.iter().position(|c| *c == class(status)).unwrap_or(4);
        self.counters[i].increment(1);
    }
}

impl std::fmt::Debug for RouteMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.label)
    }
}

/// The upstream latency histogram for one upstream.
pub fn upstream_histogram(upstream: &str) -> metrics::Histogram {
    metrics::histogram!("xumm_gate_upstream_duration_seconds", "upstream" => upstream.to_string())
}

pub fn record(h: &metrics::Histogram, d: Duration) {
    h.record(d.as_secs_f64());
}

static IN_FLIGHT: OnceLock<metrics::Gauge> = OnceLock::new();

/// Counts a request in flight for as long as the guard lives.
pub struct InFlight;

impl InFlight {
    pub fn start() -> InFlight {
        IN_FLIGHT.get_or_init(|| metrics::gauge!("xumm_gate_requests_in_flight")).increment(1.0);
        InFlight
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(g) = IN_FLIGHT.get() {
            g.decrement(1.0);
        }
    }
}

static CONNECTIONS: OnceLock<metrics::Gauge> = OnceLock::new();

/// Open client connections on the public listener.
pub fn connections(open: usize) {
    CONNECTIONS.get_or_init(|| metrics::gauge!("xumm_gate_connections_open")).set(open as f64);
}

/// A client connection refused at accept (`global_limit`, `per_client_limit`).
pub fn connection_refused(reason: &'static str) {
    metrics::counter!("xumm_gate_connections_refused_total", "reason" => reason).increment(1);
}
