//! One access-log line and the request metrics per request, written when the response body ends.
//! It must never log a query string, a header value or a body: only method, path, status, sizes.

use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

use http::{Method, StatusCode};

use crate::logging::LineFormat;

const TARGET: &str = "xumm_gate::access";

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
        if !tracing::enabled!(target: TARGET, tracing::Level::INFO) {
            return;
        }
        let line = Line {
            request_id: self.request_id.as_str(),
            method: self.method.as_str(),
            path: self.path.as_ref().map_or("<invalid>", |p| p.path()),
            status: self.status.as_u16(),
            route: &self.route.label,
            upstream: self.upstream.as_deref().unwrap_or("-"),
            duration_ms: (ms * 1000.0).round() / 1000.0,
            bytes: self.bytes,
            aborted: self.body_error,
        };
        let now = humantime::format_rfc3339_micros(std::time::SystemTime::now());
        if !crate::logging::access_line(|buf, format| line.write(buf, format, now)) {
            line.event();
        }
    }
}

/// An access line's fields.
struct Line<'a> {
    request_id: &'a str,
    method: &'a str,
    path: &'a str,
    status: u16,
    route: &'a str,
    upstream: &'a str,
    duration_ms: f64,
    bytes: u64,
    aborted: bool,
}

impl Line<'_> {
    /// The line as the tracing subscriber writes the event `event` makes (same fields, order
    /// and quoting; tests compare them), without its per-field formatting machinery.
    fn write(&self, buf: &mut Vec<u8>, format: LineFormat, time: impl std::fmt::Display) {
        // Writing into a Vec cannot fail.
        let _ = match format {
            LineFormat::Json => {
                let s = |buf: &mut Vec<u8>, v: &str| serde_json::to_writer(buf, v);
                let _ = write!(buf, "{{\"timestamp\":\"{time}\",\"level\":\"INFO\",\"message\":\"request\",\"request_id\":");
                let _ = s(buf, self.request_id);
                let _ = write!(buf, ",\"method\":");
                let _ = s(buf, self.method);
                let _ = write!(buf, ",\"path\":");
                let _ = s(buf, self.path);
                let _ = write!(buf, ",\"status\":{},\"route\":", self.status);
                let _ = s(buf, self.route);
                let _ = write!(buf, ",\"upstream\":");
                let _ = s(buf, self.upstream);
                writeln!(buf, ",\"duration_ms\":{:?},\"bytes\":{},\"aborted\":{},\"target\":\"{TARGET}\"}}", self.duration_ms, self.bytes, self.aborted)
            }
            LineFormat::Text { ansi } => {
                let level = if ansi { "\x1b[32m INFO\x1b[0m" } else { " INFO" };
                writeln!(
                    buf,
                    "{time} {level} {TARGET}: request request_id={} method={} path={:?} status={} route={} upstream={:?} duration_ms={:?} bytes={} aborted={}",
                    self.request_id, self.method, self.path, self.status, self.route, self.upstream, self.duration_ms, self.bytes, self.aborted
                )
            }
        };
    }

    /// The line as a tracing event (the gateway run without `logging::init`).
    fn event(&self) {
        tracing::info!(
            target: TARGET,
            request_id = %self.request_id,
            method = %self.method,
            path = self.path,
            status = self.status,
            route = %self.route,
            upstream = self.upstream,
            duration_ms = self.duration_ms,
            bytes = self.bytes,
            aborted = self.aborted,
            "request"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// What the subscriber the binary installs writes for the event.
    fn from_subscriber(json: bool, line: &Line<'_>) -> String {
        #[derive(Clone, Default)]
        struct Sink(Arc<Mutex<Vec<u8>>>);
        impl Write for Sink {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let sink = Sink::default();
        let out = sink.clone();
        let builder = tracing_subscriber::fmt().with_writer(move || sink.clone()).with_ansi(false);
        let subscriber: Box<dyn tracing::Subscriber + Send + Sync> =
            if json { Box::new(builder.json().flatten_event(true).with_current_span(true).with_span_list(false).finish()) } else { Box::new(builder.finish()) };
        tracing::subscriber::with_default(subscriber, || line.event());
        String::from_utf8(out.0.lock().unwrap().clone()).unwrap()
    }

    fn ours(format: LineFormat, line: &Line<'_>) -> String {
        let mut buf = Vec::new();
        line.write(&mut buf, format, humantime::format_rfc3339_micros(std::time::SystemTime::now()));
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn access_lines_are_written_as_the_subscriber_writes_them() {
        let odd = Line { request_id: "abc-1", method: "GET", path: "/a%20b/\"q\"\\", status: 502, route: "app \"x\"", upstream: "http://10.0.0.1:8080", duration_ms: 1.0, bytes: 0, aborted: true };
        let plain = Line { request_id: "4818662ba4075a1a0000000000000001", method: "POST", path: "/", status: 200, route: "default", upstream: "-", duration_ms: 0.081, bytes: 109, aborted: false };
        for line in [&odd, &plain] {
            // Text: the same after the timestamp.
            let (theirs, mine) = (from_subscriber(false, line), ours(LineFormat::Text { ansi: false }, line));
            let after_time = |s: &str| s.split_once(' ').unwrap().1.to_string();
            assert_eq!(after_time(&mine), after_time(&theirs));
            assert!(mine.ends_with('\n') && mine.matches('\n').count() == 1);
            // JSON: the same object but for the time, and a valid RFC 3339 time.
            let (theirs, mine) = (from_subscriber(true, line), ours(LineFormat::Json, line));
            let mut t: serde_json::Value = serde_json::from_str(&theirs).unwrap();
            let mut m: serde_json::Value = serde_json::from_str(&mine).unwrap();
            assert!(humantime::parse_rfc3339(m["timestamp"].as_str().unwrap()).is_ok(), "{mine}");
            t.as_object_mut().unwrap().remove("timestamp");
            m.as_object_mut().unwrap().remove("timestamp");
            assert_eq!(m, t);
            assert_eq!(mine.split(',').map(|kv| kv.split(':').next().unwrap().to_string()).collect::<Vec<_>>()[1..], theirs.split(',').map(|kv| kv.split(':').next().unwrap().to_string()).collect::<Vec<_>>()[1..], "field order");
        }
    }
}
