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
            duration_us: self.start.elapsed().as_micros().min(u128::from(u64::MAX)) as u64,
            bytes: self.bytes,
            aborted: self.body_error,
        };
        // The clock is read only when the line is written here (a tracing event stamps its own).
        let written = crate::logging::access_line(|buf, format| line.write(buf, format, std::time::SystemTime::now()));
        if !written {
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
    /// Logged as `duration_ms`, in milliseconds to the microsecond.
    duration_us: u64,
    bytes: u64,
    aborted: bool,
}

impl Line<'_> {
    /// The line as the tracing subscriber writes the event `event` makes (same fields, order
    /// and quoting; tests compare them), appended piece by piece: a line is written for every
    /// request, and `fmt`'s machinery (and `Debug`'s escaping char by char) cost more than the
    /// rest of a signed-in request's own work.
    fn write(&self, buf: &mut Vec<u8>, format: LineFormat, now: std::time::SystemTime) {
        let mut num = itoa::Buffer::new();
        let json = format == LineFormat::Json;
        match format {
            LineFormat::Json => buf.extend_from_slice(b"{\"timestamp\":\""),
            LineFormat::Text { .. } => {}
        }
        timestamp(buf, now);
        let fields: [(&str, &str, bool); 3] = [("request_id", self.request_id, false), ("method", self.method, false), ("path", self.path, true)];
        match format {
            LineFormat::Json => buf.extend_from_slice(b"\",\"level\":\"INFO\",\"message\":\"request\""),
            LineFormat::Text { ansi: true } => buf.extend_from_slice(b" \x1b[32m INFO\x1b[0m xumm_gate::access: request"),
            LineFormat::Text { ansi: false } => buf.extend_from_slice(b"  INFO xumm_gate::access: request"),
        }
        // Text quotes what the event records with `Debug` (path, upstream), not what it records
        // with `Display` (ids, method, route); JSON quotes every string.
        let field = |buf: &mut Vec<u8>, name: &str| {
            buf.extend_from_slice(if json { b",\"" } else { b" " });
            buf.extend_from_slice(name.as_bytes());
            buf.extend_from_slice(if json { b"\":" } else { b"=" });
        };
        let text = |buf: &mut Vec<u8>, name: &str, value: &str, debug: bool| {
            field(buf, name);
            if json || debug {
                quoted(buf, value, json);
            } else {
                buf.extend_from_slice(value.as_bytes());
            }
        };
        for (name, value, debug) in fields {
            text(buf, name, value, debug);
        }
        field(buf, "status");
        buf.extend_from_slice(num.format(self.status).as_bytes());
        text(buf, "route", self.route, false);
        text(buf, "upstream", self.upstream, true);
        field(buf, "duration_ms");
        millis(buf, self.duration_us);
        field(buf, "bytes");
        buf.extend_from_slice(num.format(self.bytes).as_bytes());
        field(buf, "aborted");
        buf.extend_from_slice(if self.aborted { b"true" } else { b"false" });
        if json {
            buf.extend_from_slice(b",\"target\":\"");
            buf.extend_from_slice(TARGET.as_bytes());
            buf.extend_from_slice(b"\"}");
        }
        buf.push(b'\n');
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
            duration_ms = self.duration_us as f64 / 1000.0,
            bytes = self.bytes,
            aborted = self.aborted,
            "request"
        );
    }
}

/// RFC 3339 in UTC to the microsecond, as the subscriber stamps its lines. The part to the
/// second is formatted once a second per thread (as nginx caches its time strings).
fn timestamp(buf: &mut Vec<u8>, now: std::time::SystemTime) {
    thread_local! {
        static SECOND: std::cell::Cell<(u64, [u8; 19])> = const { std::cell::Cell::new((u64::MAX, [0; 19])) };
    }
    let since = now.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let (secs, micros) = (since.as_secs(), since.subsec_micros());
    let prefix = SECOND.with(|c| {
        let (at, prefix) = c.get();
        if at == secs {
            return prefix;
        }
        let mut fresh = [0; 19];
        // "YYYY-MM-DDTHH:MM:SSZ": the first 19 bytes are the second.
        let whole = humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs)).to_string();
        fresh.copy_from_slice(&whole.as_bytes()[..19]);
        c.set((secs, fresh));
        fresh
    });
    buf.extend_from_slice(&prefix);
    let mut digits = *b".000000Z";
    let mut m = micros;
    for d in digits[1..7].iter_mut().rev() {
        *d = b'0' + (m % 10) as u8;
        m /= 10;
    }
    buf.extend_from_slice(&digits);
}

/// Characters `Debug` and JSON both write as they are: printable ASCII but the quote and the
/// backslash. (Anything else takes the slow, exact way.)
fn plain(s: &str) -> bool {
    // Without an early exit, so that the check runs many bytes at a time.
    !s.bytes().fold(false, |odd, b| odd | !(0x20..0x7f).contains(&b) | (b == b'"') | (b == b'\\'))
}

/// `value` in quotes, as `{:?}` writes it or (`json`) as serde_json writes a JSON string.
fn quoted(buf: &mut Vec<u8>, value: &str, json: bool) {
    if plain(value) {
        buf.push(b'"');
        buf.extend_from_slice(value.as_bytes());
        buf.push(b'"');
    } else if json {
        let _ = serde_json::to_writer(&mut *buf, value);
    } else {
        let _ = write!(buf, "{value:?}");
    }
}

/// Microseconds as milliseconds, written as `{:?}` writes the `f64` (the event's field): at
/// least one decimal, no trailing zeros ("0.081", "12.5", "3.0").
fn millis(buf: &mut Vec<u8>, us: u64) {
    let mut num = itoa::Buffer::new();
    buf.extend_from_slice(num.format(us / 1000).as_bytes());
    buf.push(b'.');
    let frac = us % 1000;
    if frac == 0 {
        buf.push(b'0');
        return;
    }
    let digits = [b'0' + (frac / 100) as u8, b'0' + (frac / 10 % 10) as u8, b'0' + (frac % 10) as u8];
    let keep = if frac % 100 == 0 { 1 } else if frac % 10 == 0 { 2 } else { 3 };
    buf.extend_from_slice(&digits[..keep]);
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
        line.write(&mut buf, format, std::time::SystemTime::now());
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn access_lines_are_written_as_the_subscriber_writes_them() {
        let odd = Line { request_id: "abc-1", method: "GET", path: "/a%20b/\"q\"\\", status: 502, route: "app \"x\"", upstream: "http://10.0.0.1:8080", duration_us: 1000, bytes: 0, aborted: true };
        let plain = Line { request_id: "4818662ba4075a1a0000000000000001", method: "POST", path: "/", status: 200, route: "default", upstream: "-", duration_us: 81, bytes: 109, aborted: false };
        let unicode = Line { request_id: "r", method: "GET", path: "/caf\u{e9}/\u{7}\t", status: 404, route: "/", upstream: "-", duration_us: 123_456_789, bytes: 5, aborted: false };
        for line in [&odd, &plain, &unicode] {
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

    #[test]
    fn durations_are_written_as_debug_writes_the_milliseconds() {
        let mut buf = Vec::new();
        for us in (0..200_000).chain([999_999, 1_000_000, 86_400_000_000, 123_456_789_012]) {
            buf.clear();
            millis(&mut buf, us);
            assert_eq!(std::str::from_utf8(&buf).unwrap(), format!("{:?}", us as f64 / 1000.0), "{us} us");
        }
    }

    #[test]
    fn timestamps_are_rfc3339_to_the_microsecond_across_seconds() {
        let mut buf = Vec::new();
        let start = std::time::UNIX_EPOCH + std::time::Duration::from_micros(1_764_773_243_999_990);
        for step in 0..40u64 {
            let t = start + std::time::Duration::from_micros(step * 7 + step * step * 13_000);
            buf.clear();
            timestamp(&mut buf, t);
            assert_eq!(std::str::from_utf8(&buf).unwrap(), humantime::format_rfc3339_micros(t).to_string());
        }
    }
}
