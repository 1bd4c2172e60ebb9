//! OpenTelemetry traces over OTLP/HTTP to a collector stand-in: spans for the request, its
//! admission, the provider and the upstream, and W3C `traceparent` to the upstream. (Tracing is
//! per process: this file's tests share one exporter.)

mod common;

use common::*;
use http::{Request, StatusCode};
use std::sync::{Arc, Mutex};

/// An OTLP/HTTP collector stand-in: accepts every export, keeps what was sent where, and the JSON.
async fn collector() -> (std::net::SocketAddr, Arc<Mutex<Vec<(String, serde_json::Value)>>>) {
    let what = |p: &http::request::Parts, v| (format!("{} {} {}", p.method, p.uri.path(), p.headers.get("content-type").and_then(|c| c.to_str().ok()).unwrap_or("")), v);
    json_receiver(what, 200, "{}").await
}

/// A span as exported: (trace id, span id, parent span id, name, kind, attributes as text).
#[derive(Debug, Clone)]
struct Exported {
    trace: String,
    id: String,
    parent: String,
    name: String,
    attributes: serde_json::Value,
    /// Nanoseconds from start to end.
    took: u64,
}

fn spans(seen: &[(String, serde_json::Value)]) -> Vec<Exported> {
    let mut out = Vec::new();
    for (_, v) in seen {
        for rs in v["resourceSpans"].as_array().into_iter().flatten() {
            for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                for s in ss["spans"].as_array().into_iter().flatten() {
                    out.push(Exported {
                        trace: s["traceId"].as_str().unwrap_or_default().to_ascii_lowercase(),
                        id: s["spanId"].as_str().unwrap_or_default().to_ascii_lowercase(),
                        parent: s["parentSpanId"].as_str().unwrap_or_default().to_ascii_lowercase(),
                        name: s["name"].as_str().unwrap_or_default().to_string(),
                        attributes: s["attributes"].clone(),
                        took: nanos(&s["endTimeUnixNano"]).saturating_sub(nanos(&s["startTimeUnixNano"])),
                    });
                }
            }
        }
    }
    out
}

/// An OTLP/JSON time (a uint64, as a number or a string).
fn nanos(v: &serde_json::Value) -> u64 {
    v.as_u64().or_else(|| v.as_str().and_then(|s| s.parse().ok())).unwrap_or_default()
}

/// (trace id, parent span id) of a `traceparent` value.
fn parse_traceparent(v: &str) -> (String, String) {
    let parts: Vec<&str> = v.split('-').collect();
    assert_eq!(parts.len(), 4, "{v}");
    assert_eq!((parts[0], parts[1].len(), parts[2].len()), ("00", 32, 16), "{v}");
    (parts[1].to_string(), parts[2].to_string())
}

async fn exported(seen: &Arc<Mutex<Vec<(String, serde_json::Value)>>>, want: impl Fn(&[Exported]) -> bool) -> Vec<Exported> {
    for _ in 0..50 {
        tokio::task::spawn_blocking(xumm_gate::telemetry::flush).await.unwrap();
        let got = spans(&seen.lock().unwrap());
        if want(&got) {
            return got;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    spans(&seen.lock().unwrap())
}

#[tokio::test]
async fn requests_are_traced_and_the_upstream_continues_the_trace() {
    let (rcv, seen) = collector().await;
    let up = upstream().await;
    let idp = idp().await;
    let tracing = format!("\n[tracing]\notlp_endpoint = \"http://{rcv}/v1/traces\"\nsample_ratio = 1.0\nservice_name = \"gate-under-test\"\n");
    let gw = ready_gateway(&auth_config(up, &idp.issuer, "", &tracing)).await;
    let (name, value) = login(gw.addr, ACCOUNT, "MAINNET").await;
    let cookie = format!("{name}={value}");

    // The fast path, with a trusted proxy's trace context: the request joins that trace.
    let parent_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent_span = "00f067aa0ba902b7";
    let fast = get_with(gw.addr, "/admin/fast", &[("cookie", &cookie), ("traceparent", &format!("00-{parent_trace}-{parent_span}-01")), ("tracestate", "vendor=abc")]).await;
    assert_eq!(fast.status, StatusCode::OK);
    assert_eq!(fast.upstream_header("tracestate"), ["vendor=abc"], "the trace's vendor state goes with it");
    let sent = fast.upstream_header("traceparent");
    assert_eq!(sent.len(), 1, "one traceparent upstream: {sent:?}");
    let (fast_trace, fast_upstream_span) = parse_traceparent(&sent[0]);
    assert_eq!(fast_trace, parent_trace, "the upstream continues the proxy's trace");
    assert_ne!(fast_upstream_span, parent_span);

    // The general path, no trace context: a new trace.
    let general = send(Request::post(format!("http://{}/admin/general", gw.addr)).header("cookie", &cookie).body(full("x")).unwrap()).await;
    assert_eq!(general.status, StatusCode::OK);
    let (general_trace, general_upstream_span) = parse_traceparent(&general.upstream_header("traceparent")[0]);
    assert_ne!(general_trace, parent_trace);

    let all = exported(&seen, |s| s.iter().filter(|x| x.trace == general_trace || x.trace == fast_trace).count() >= 6).await;
    {
        let seen = seen.lock().unwrap();
        assert!(seen.iter().all(|(what, _)| what == "POST /v1/traces application/json"), "{:?}", seen.iter().map(|s| &s.0).collect::<Vec<_>>());
    }
    for (trace, upstream_span, path_parent) in [(&fast_trace, &fast_upstream_span, Some(parent_span)), (&general_trace, &general_upstream_span, None)] {
        let mine: Vec<&Exported> = all.iter().filter(|s| &s.trace == trace).collect();
        let request = mine.iter().find(|s| s.name == "request").unwrap_or_else(|| panic!("no request span in {mine:#?}"));
        assert_eq!(request.parent, path_parent.unwrap_or_default(), "{request:?}");
        let text = request.attributes.to_string();
        assert!(text.contains("http.route") && text.contains("/admin") && text.contains("http.response.status_code") && text.contains("xumm_gate.request_id"), "{text}");
        for step in ["admission", "upstream"] {
            let s = mine.iter().find(|s| s.name == step).unwrap_or_else(|| panic!("no {step} span in {mine:#?}"));
            assert_eq!(s.parent, request.id, "{step} is a child of the request");
        }
        assert_eq!(&mine.iter().find(|s| s.name == "upstream").unwrap().id, upstream_span, "the upstream's parent is the upstream span");
    }
    // A request's span lasts until its response body ends (not only its head), on both paths.
    let mut slow = Vec::new();
    for (general, trace) in [(false, "11111111111111111111111111111111"), (true, "22222222222222222222222222222222")] {
        let req = Request::builder().method(if general { "POST" } else { "GET" }).uri(format!("http://{}/trickle?ms=300", gw.addr));
        let req = req.header("cookie", &cookie).header("traceparent", format!("00-{trace}-{parent_span}-01"));
        let got = send(req.body(if general { full("x") } else { full("") }).unwrap()).await;
        assert_eq!(got.text(), "trickled");
        slow.push(trace);
    }
    let all_slow = exported(&seen, |s| slow.iter().all(|t| s.iter().any(|x| &x.trace == t && x.name == "request"))).await;
    for trace in slow {
        let request = all_slow.iter().find(|s| s.trace == trace && s.name == "request").unwrap_or_else(|| panic!("no request span for {trace}"));
        assert!(request.took >= 300_000_000, "{trace}: the request span ended after {} ms, before its body", request.took / 1_000_000);
    }

    // A trusted proxy's "not sampled" is kept: no span, and the upstream hears the decision.
    let unsampled_trace = "0af7651916cd43dd8448eb211c80319c";
    let got = get_with(gw.addr, "/admin/quiet", &[("cookie", &cookie), ("traceparent", &format!("00-{unsampled_trace}-b7ad6b7169203331-00")), ("tracestate", "vendor=q")]).await;
    let sent = got.upstream_header("traceparent");
    assert_eq!(sent.len(), 1);
    assert!(sent[0].starts_with(&format!("00-{unsampled_trace}-")) && sent[0].ends_with("-00"), "{sent:?}");
    assert_eq!(got.upstream_header("tracestate"), ["vendor=q"]);
    // The same on the general path.
    let post = Request::post(format!("http://{}/admin/quiet", gw.addr)).header("cookie", &cookie);
    let got = send(post.header("traceparent", format!("00-{unsampled_trace}-b7ad6b7169203331-00")).header("tracestate", "vendor=g").body(full("x")).unwrap()).await;
    assert!(got.upstream_header("traceparent")[0].starts_with(&format!("00-{unsampled_trace}-")));
    assert_eq!(got.upstream_header("tracestate"), ["vendor=g"]);
    tokio::task::spawn_blocking(xumm_gate::telemetry::flush).await.unwrap();
    assert!(!spans(&seen.lock().unwrap()).iter().any(|s| s.trace == unsampled_trace), "an unsampled request was exported");

    // The sign-in's callback: the token exchange with the provider is a span of its request.
    let provider = all.iter().find(|s| s.name == "identity_provider").expect("a provider span");
    assert!(all.iter().any(|s| s.name == "request" && s.id == provider.parent && s.trace == provider.trace));

    // Never a cookie, a secret or an account in a span.
    let text = format!("{:?}", seen.lock().unwrap());
    for secret in [value.as_str(), CLIENT_SECRET, COOKIE_SECRET, ACCOUNT] {
        assert!(!text.contains(secret), "{secret} exported");
    }
    assert!(text.contains("gate-under-test"), "service.name");
    gw.shutdown().await;

    // A client that is not a trusted proxy cannot join (or force the sampling of) a trace.
    let untrusted = gateway(&config_text(up, "trusted_proxies = []")).await;
    let theirs = [("traceparent", format!("00-{parent_trace}-{parent_span}-01")), ("tracestate", "vendor=forged".to_string())];
    let got = get_with(untrusted.addr, "/", &theirs.iter().map(|(n, v)| (*n, v.as_str())).collect::<Vec<_>>()).await;
    let sent = got.upstream_header("traceparent");
    assert_eq!(sent.len(), 1);
    assert_ne!(parse_traceparent(&sent[0]).0, parent_trace);
    assert!(got.upstream_header("tracestate").is_empty(), "another trace's state does not go with a new trace");
    let mut post = Request::post(format!("http://{}/", untrusted.addr));
    for (n, v) in &theirs {
        post = post.header(*n, v);
    }
    let got = send(post.body(full("x")).unwrap()).await;
    assert_ne!(parse_traceparent(&got.upstream_header("traceparent")[0]).0, parent_trace);
    assert!(got.upstream_header("tracestate").is_empty(), "general path: {:?}", got.upstream_header("tracestate"));
    // And over HTTP/2 (the general path, header names in lower case only).
    let mut req = Request::get(format!("http://{}/", untrusted.addr));
    for (n, v) in &theirs {
        req = req.header(*n, v);
    }
    let got = send_h2(req.body(full("")).unwrap()).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_ne!(parse_traceparent(&got.upstream_header("traceparent")[0]).0, parent_trace, "HTTP/2");
    assert!(got.upstream_header("tracestate").is_empty(), "HTTP/2: {:?}", got.upstream_header("tracestate"));
    untrusted.shutdown().await;
}
