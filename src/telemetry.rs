//! OpenTelemetry traces, exported over OTLP/HTTP (JSON) when `[tracing] otlp_endpoint` is set:
//! a server span per request, children for admission, the session store, the identity provider,
//! Xumm and the upstream, and W3C `traceparent` sent to the upstream. It must never cost a
//! request more than one load when tracing is off, never put a query string, header value,
//! cookie, token or account into a span, and never take a trace parent from a peer that is not
//! a trusted proxy (a client could otherwise force every request to be sampled).

use std::sync::OnceLock;
use std::time::SystemTime;

use bytes::Bytes;
use http_body_util::Full;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{SpanKind, TraceContextExt, Tracer as _, TracerProvider as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider};

use crate::config::{ConfigError, TracingConfig, err};

struct Tracing {
    tracer: SdkTracer,
    provider: SdkTracerProvider,
    propagator: TraceContextPropagator,
    /// `sample_ratio`: decided here, before any span exists, so an unsampled request costs no
    /// span at all (the SDK's sampler then only follows the parent's decision).
    ratio: f64,
}

/// One per process, like the metrics registry: `[tracing]` needs a restart to change.
static TRACING: OnceLock<Tracing> = OnceLock::new();

/// Starts exporting when `cfg` names an endpoint (and no gateway in this process did before).
/// The exports run on a thread of their own (see `export_runtime`).
pub fn install(cfg: &TracingConfig) -> Result<(), ConfigError> {
    if cfg.otlp_endpoint.is_empty() || TRACING.get().is_some() {
        return Ok(());
    }
    use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
    let client = Exporting { runtime: export_runtime().map_err(|e| err("tracing.otlp_endpoint", format!("cannot start the exporter's thread: {e}")))?, client: crate::oidc::https_client() };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpJson)
        .with_endpoint(cfg.otlp_endpoint.clone())
        .with_http_client(client)
        .build()
        .map_err(|e| err("tracing.otlp_endpoint", e.to_string()))?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(cfg.service_name.clone())
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build();
    let provider = SdkTracerProvider::builder()
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)))
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build();
    let tracer = provider.tracer("xumm-gate");
    let _ = TRACING.set(Tracing { tracer, provider, propagator: TraceContextPropagator::new(), ratio: cfg.sample_ratio });
    Ok(())
}

/// A runtime on a thread of its own for the exporter's HTTP calls, so exports never take turns
/// with requests on a worker's runtime.
fn export_runtime() -> std::io::Result<tokio::runtime::Handle> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let handle = rt.handle().clone();
    std::thread::Builder::new().name("xumm-gate-otlp".into()).spawn(move || rt.block_on(std::future::pending::<()>()))?;
    Ok(handle)
}

/// Sends every finished span now (blocking: call off the runtime's threads, e.g. in
/// `spawn_blocking`, or at exit).
pub fn flush() {
    if let Some(t) = TRACING.get() {
        let _ = t.provider.force_flush();
    }
}

/// Whether traces are on in this process.
pub fn enabled() -> bool {
    TRACING.get().is_some()
}

/// The W3C trace headers a request came with, as far as the gateway believes them.
#[derive(Default, Clone, Copy)]
pub struct Parent<'a> {
    pub traceparent: Option<&'a str>,
    pub tracestate: Option<&'a str>,
}

impl Parent<'_> {
    fn of(trusted: bool, self_: Parent<'_>) -> Parent<'_> {
        if trusted { self_ } else { Parent::default() }
    }
}

impl Extractor for Parent<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            "traceparent" => self.traceparent,
            "tracestate" => self.tracestate,
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        vec!["traceparent", "tracestate"]
    }
}

/// A request being traced (sampled or not: an unsampled one still tells the upstream so).
pub struct Traced {
    /// A sampled request's context (its server span); None when it is not sampled.
    cx: Option<Context>,
    /// An unsampled request's `traceparent` for the upstream (no span, no context: on the hot
    /// path this is all that tracing costs for 99% of requests).
    unsampled: [u8; 55],
    /// The request continues a trusted proxy's trace (rather than starting one).
    continued: bool,
}

/// Starts the server span of a request (None when tracing is off). `parent` is only believed
/// from a trusted proxy.
pub fn begin(trusted: bool, parent: Parent<'_>, method: &str, request_id: &crate::request_id::RequestId, at: SystemTime) -> Option<Traced> {
    let t = TRACING.get()?;
    let parent = Parent::of(trusted, parent);
    // Most requests come with no trace context and are not sampled: for them this is one draw
    // of random bits and 55 bytes of hex, nothing of the SDK's.
    let mut rng = rand::rng();
    use rand::Rng as _;
    let parent_cx = if parent.traceparent.is_some() { t.propagator.extract(&parent) } else { Context::new() };
    let from = parent_cx.span().span_context().clone();
    let sampled = if from.is_valid() { from.is_sampled() } else { rng.random::<f64>() < t.ratio };
    if !sampled {
        // No span: the upstream still learns the trace and that it is not sampled (W3C).
        let trace = if from.is_valid() { u128::from_be_bytes(from.trace_id().to_bytes()) } else { rng.random::<u128>().max(1) };
        return Some(Traced { cx: None, unsampled: unsampled_traceparent(trace, rng.random::<u64>().max(1)), continued: from.is_valid() });
    }
    let span = t
        .tracer
        .span_builder("request")
        .with_kind(SpanKind::Server)
        .with_start_time(at)
        .with_attributes([KeyValue::new("http.request.method", method.to_string()), KeyValue::new("xumm_gate.request_id", request_id.as_str().to_string())])
        .start_with_context(&t.tracer, &parent_cx);
    Some(Traced { cx: Some(parent_cx.with_span(span)), unsampled: [0; 55], continued: from.is_valid() })
}

/// `00-{trace}-{span}-00`.
fn unsampled_traceparent(trace: u128, span: u64) -> [u8; 55] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = *b"00-00000000000000000000000000000000-0000000000000000-00";
    let hex = |bytes: &[u8], out: &mut [u8]| {
        for (b, pair) in bytes.iter().zip(out.chunks_exact_mut(2)) {
            pair[0] = HEX[usize::from(b >> 4)];
            pair[1] = HEX[usize::from(b & 0xf)];
        }
    };
    hex(&trace.to_be_bytes(), &mut out[3..35]);
    hex(&span.to_be_bytes(), &mut out[36..52]);
    out
}

impl Traced {
    /// The context a sampled request's own work runs in (the general path attaches it to its
    /// future).
    pub fn context(&self) -> Option<Context> {
        self.cx.clone()
    }

    /// Whether this request's spans are recorded and exported.
    pub fn sampled(&self) -> bool {
        self.cx.is_some()
    }

    /// A child span of the request, started at `at` (the fast path records its steps after
    /// the fact); none when the request is not sampled.
    pub fn child(&self, name: &'static str, kind: SpanKind, at: SystemTime) -> Child {
        match &self.cx {
            Some(cx) => child_in(cx, name, kind, Some(at)),
            None => Child(None),
        }
    }

    /// The `traceparent` for the upstream of an unsampled request (a sampled one's is its
    /// upstream step's).
    pub fn unsampled_traceparent(&self) -> Option<&[u8]> {
        if self.cx.is_some() {
            return None;
        }
        Some(&self.unsampled)
    }

    /// Whether the client's `tracestate` goes upstream as it came: only beside the trusted
    /// proxy's own trace (W3C: vendor state belongs to its trace; a new trace starts without).
    pub fn keeps_tracestate(&self) -> bool {
        self.continued
    }

    /// Ends the request's span with what it became (`route`: when the path did not note it).
    pub fn end(self, route: Option<&str>, status: http::StatusCode) {
        let Some(cx) = &self.cx else { return };
        let span = cx.span();
        if let Some(route) = route {
            span.set_attribute(KeyValue::new("http.route", route.to_string()));
        }
        span.set_attribute(KeyValue::new("http.response.status_code", i64::from(status.as_u16())));
        if status.is_server_error() {
            span.set_status(opentelemetry::trace::Status::error(status.as_str().to_string()));
        }
        span.end();
    }
}

/// A step of a request (admission, a store or provider call, the upstream): ends when dropped.
pub struct Child(Option<(Context, SystemTime)>);

/// A child of the request being answered on this task (none outside a traced request).
pub fn child(name: &'static str, kind: SpanKind) -> Child {
    if TRACING.get().is_none() {
        return Child(None);
    }
    let cx = Context::current();
    if !cx.has_active_span() {
        return Child(None);
    }
    child_in(&cx, name, kind, None)
}

fn child_in(parent: &Context, name: &'static str, kind: SpanKind, at: Option<SystemTime>) -> Child {
    let Some(t) = TRACING.get() else { return Child(None) };
    let at = at.unwrap_or_else(SystemTime::now);
    let span = t.tracer.span_builder(name).with_kind(kind).with_start_time(at).start_with_context(&t.tracer, parent);
    Child(Some((parent.with_span(span), at)))
}

impl Child {
    /// A step that is not traced.
    pub fn none() -> Child {
        Child(None)
    }

    /// Sets the W3C headers for a request made as this step (the upstream's request): the
    /// gateway's `traceparent` (and the trace's `tracestate`), in place of a client's.
    pub fn inject(&self, headers: &mut http::HeaderMap) {
        if let (Some((cx, _)), Some(t)) = (&self.0, TRACING.get()) {
            headers.remove("traceparent");
            headers.remove("tracestate");
            t.propagator.inject_context(cx, &mut HeaderInjector(headers));
        }
    }

    /// The `traceparent` value for a request made as this step, if traced.
    pub fn traceparent(&self) -> Option<String> {
        // Not traced (nearly every request): no header map to build and look up.
        self.0.as_ref()?;
        let mut h = http::HeaderMap::new();
        self.inject(&mut h);
        h.get("traceparent").and_then(|v| v.to_str().ok()).map(str::to_string)
    }

    /// Notes a fixed attribute (never user input).
    pub fn note(&self, key: &'static str, value: &'static str) {
        if let Some((cx, _)) = &self.0 {
            cx.span().set_attribute(KeyValue::new(key, value));
        }
    }

    /// Marks the step failed.
    pub fn failed(&self, why: &'static str) {
        if let Some((cx, _)) = &self.0 {
            cx.span().set_status(opentelemetry::trace::Status::error(why));
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if let Some((cx, _)) = &self.0 {
            cx.span().end();
        }
    }
}

/// Notes the route on a request's span.
pub fn route_of(traced: &Traced, label: &str) {
    let Some(cx) = &traced.cx else { return };
    cx.span().set_attribute(KeyValue::new("http.route", label.to_string()));
}

/// Notes the request's route on its span (the general path's, which decides it mid-way).
pub fn route(label: &str) {
    if TRACING.get().is_some() {
        let cx = Context::current();
        if cx.span().is_recording() {
            cx.span().set_attribute(KeyValue::new("http.route", label.to_string()));
        }
    }
}

struct HeaderInjector<'a>(&'a mut http::HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        // The propagator writes `tracestate` even when the trace has none: no empty header.
        if value.is_empty() {
            return;
        }
        if let (Ok(n), Ok(v)) = (http::HeaderName::from_bytes(key.as_bytes()), http::HeaderValue::from_str(&value)) {
            self.0.insert(n, v);
        }
    }
}

/// The exporter's HTTP client: the gateway's own (rustls with ring), driven on a runtime of its
/// own (the SDK's batch processor calls it from another thread of its own).
#[derive(Debug)]
struct Exporting {
    runtime: tokio::runtime::Handle,
    client: crate::oidc::HttpsClient,
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for Exporting {
    async fn send_bytes(&self, request: http::Request<Bytes>) -> Result<http::Response<Bytes>, opentelemetry_http::HttpError> {
        let client = self.client.clone();
        let request = request.map(Full::new);
        let sent = self.runtime.spawn(async move { crate::oidc::fetch_with_headers(&client, request).await });
        let (status, headers, body) = sent.await??;
        let mut resp = http::Response::new(body);
        *resp.status_mut() = status;
        *resp.headers_mut() = headers;
        Ok(resp)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_unsampled_traceparent_is_w3c_shaped() {
        let tp = super::unsampled_traceparent(0x4bf92f3577b34da6a3ce929d0e0e4736, 0x00f067aa0ba902b7);
        assert_eq!(std::str::from_utf8(&tp).unwrap(), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00");
    }
}
