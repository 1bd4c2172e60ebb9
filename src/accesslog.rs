//! One access-log line and the request metrics per request, written when the response body ends.
//! It must never log a query string, a header value or a body: only method, path, status, sizes.

use std::sync::Arc;
use std::time::Instant;

use http::{Method, StatusCode};

pub struct AccessLog {
    pub method: Method,
    /// The normalized path and query (None when the path was refused); only the path is logged
    /// (queries can carry tokens).
    pub path: Option<http::uri::PathAndQuery>,
    pub route: Arc<crate::metrics::RouteMetrics>,
    pub upstream: Option<Arc<str>>,
    pub status: StatusCode,
    pub start: Instant,
    pub bytes: u64,
    pub body_error: bool,
    /// Keeps the in-flight gauge up until the response body ends.
    pub inflight: crate::metrics::InFlight,
    pub request_id: crate::request_id::RequestId,
    /// The request's span (and the fast path's upstream step), ended with the response body.
    pub trace: Option<(crate::telemetry::Traced, crate::telemetry::Child)>,
}

impl Drop for AccessLog {
    fn drop(&mut self) {
        let ms = self.start.elapsed().as_secs_f64() * 1000.0;
        self.route.done(self.status);
        if let Some((request, upstream)) = self.trace.take() {
            drop(upstream);
            request.end(None, self.status);
        }
        tracing::info!(
            target: "xumm_gate::access",
            request_id = %self.request_id,
            method = %self.method,
            path = self.path.as_ref().map_or("<invalid>", |p| p.path()),
            status = self.status.as_u16(),
            route = %self.route.label,
            upstream = self.upstream.as_deref().unwrap_or("-"),
            duration_ms = (ms * 1000.0).round() / 1000.0,
            bytes = self.bytes,
            aborted = self.body_error,
            "request"
        );
    }
}
