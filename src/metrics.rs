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

pub fn request_done(route: &str, status: StatusCode) {
    metrics::counter!("xumm_gate_requests_total", "route" => route.to_string(), "status" => class(status)).increment(1);
}

pub fn upstream_latency(upstream: &str, d: Duration) {
    metrics::histogram!("xumm_gate_upstream_duration_seconds", "upstream" => upstream.to_string()).record(d.as_secs_f64());
}

/// Counts a request in flight for as long as the guard lives.
pub struct InFlight;

impl InFlight {
    pub fn start() -> InFlight {
        metrics::gauge!("xumm_gate_requests_in_flight").increment(1.0);
        InFlight
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        metrics::gauge!("xumm_gate_requests_in_flight").decrement(1.0);
    }
}
