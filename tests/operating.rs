//! Operating the gateway: request ids, metrics, the audit log.

mod common;

use common::*;
use http::{Request, StatusCode};

fn id_of(got: &Got) -> String {
    got.headers.get("x-request-id").expect("x-request-id on the response").to_str().unwrap().to_string()
}

/// A request with a body: the general path's (the fast path takes GET and HEAD only).
async fn post(addr: std::net::SocketAddr, path: &str, headers: &[(&str, &str)]) -> Got {
    let mut b = Request::post(format!("http://{addr}{path}"));
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    send(b.body(full("x")).unwrap()).await
}

#[tokio::test]
async fn each_request_gets_an_id_sent_up_and_back_and_a_client_cannot_choose_it() {
    let up = upstream().await;
    // No trusted proxies: loopback clients are clients like any other.
    let gw = gateway(&config_text(up, "trusted_proxies = []")).await;
    let addr = gw.addr;
    let mut seen = std::collections::HashSet::new();
    for fast in [true, false] {
        for _ in 0..3 {
            let sent = [("x-request-id", "chosen-by-client")];
            let got = if fast { get_with(addr, "/", &sent).await } else { post(addr, "/", &sent).await };
            assert_eq!(got.status, StatusCode::OK);
            let id = id_of(&got);
            assert_eq!(id.len(), 32, "{id}");
            assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
            assert_eq!(got.upstream_header("x-request-id"), vec![id.clone()], "fast path {fast}: the upstream gets our id only");
            assert_eq!(got.headers.get_all("x-request-id").iter().count(), 1);
            assert!(seen.insert(id), "ids repeat");
        }
    }
}

#[tokio::test]
async fn a_trusted_proxy_names_the_id_when_it_is_a_safe_one() {
    let up = upstream().await;
    let gw = gateway(&config_text(up, "")).await; // loopback is trusted by default
    let addr = gw.addr;
    for fast in [true, false] {
        let sent = [("x-request-id", "0f3b-edge:42")];
        let got = if fast { get_with(addr, "/", &sent).await } else { post(addr, "/", &sent).await };
        assert_eq!(id_of(&got), "0f3b-edge:42");
        assert_eq!(got.upstream_header("x-request-id"), vec!["0f3b-edge:42".to_string()]);
        // One that could break a log line or a page is replaced.
        let sent = [("x-request-id", "<b>x</b>")];
        let got = if fast { get_with(addr, "/", &sent).await } else { post(addr, "/", &sent).await };
        let id = id_of(&got);
        assert_eq!(id.len(), 32, "fast path {fast}: {id}");
        assert_eq!(got.upstream_header("x-request-id"), vec![id]);
    }
}

#[tokio::test]
async fn error_pages_name_the_request_id() {
    // Nothing listens upstream: 502 on both paths, as a page, JSON and text.
    let dead = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
    let gw = gateway(&config_text(dead, "")).await;
    let addr = gw.addr;
    for fast in [true, false] {
        for accept in ["text/html", "application/json", "*/*"] {
            let h = [("accept", accept)];
            let got = if fast { get_with(addr, "/", &h).await } else { post(addr, "/", &h).await };
            assert_eq!(got.status, StatusCode::BAD_GATEWAY);
            let id = id_of(&got);
            match accept {
                "application/json" => assert_eq!(got.json()["request_id"], id.as_str(), "fast path {fast}"),
                "text/html" => assert!(got.text().contains(&format!("<code id=\"request-id\">{id}</code>")), "fast path {fast}: {}", got.text()),
                _ => assert!(got.text().contains(&format!("request id {id}")), "fast path {fast}: {}", got.text()),
            }
        }
    }
    // A refusal of the gateway's own (sign-in required on a route without auth configured is
    // a 404 of the endpoints; an unknown gateway endpoint will do).
    let got = get_with(addr, "/.xumm/nothing-here", &[("accept", "application/json")]).await;
    assert_eq!(got.status, StatusCode::NOT_FOUND);
    assert_eq!(got.json()["request_id"], id_of(&got).as_str());
}

/// A gateway with sign-in, a dead upstream under /dead, and its audit log in a file.
async fn signed_gateway(audit: &AuditFile) -> (xumm_gate::Running, xumm_gate::demo::idp::DevIdp) {
    let up = upstream().await;
    let idp = idp().await;
    let dead = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
    let more = format!("\n[[upstream]]\npath = \"/dead\"\nurl = \"http://{dead}\"\n\n[[route]]\npath = \"/dead\"\npublic = true\n{}", audit.config());
    (ready_gateway(&auth_config(up, &idp.issuer, "", &more)).await, idp)
}

/// `signed_gateway` with ACCOUNT signed in: its session cookie's value and the cookie header.
struct SignedIn {
    audit: AuditFile,
    gw: xumm_gate::Running,
    idp: xumm_gate::demo::idp::DevIdp,
    addr: std::net::SocketAddr,
    admin: std::net::SocketAddr,
    value: String,
    cookie: String,
}

async fn signed_in() -> SignedIn {
    let audit = AuditFile::new();
    let (gw, idp) = signed_gateway(&audit).await;
    let (addr, admin) = (gw.addr, gw.admin_addr.unwrap());
    let (name, value) = login(addr, ACCOUNT, "MAINNET").await;
    let cookie = format!("{name}={value}");
    SignedIn { audit, gw, idp, addr, admin, value, cookie }
}

#[tokio::test]
async fn metric_families_move_with_the_traffic_that_moves_them() {
    let audit = AuditFile::new();
    let (gw, idp) = signed_gateway(&audit).await;
    let (addr, admin) = (gw.addr, gw.admin_addr.unwrap());
    let before = scrape(admin).await;
    let failed = |m: &Metrics, reason: &str| m.value("xumm_gate_sign_ins_failed_total", &[("kind", "oauth2"), ("reason", reason)]);

    // Sign-ins: one completed, one rejected in the wallet, one with a state nobody started.
    let (name, value) = login(addr, ACCOUNT, "MAINNET").await;
    let cookie = format!("{name}={value}");
    let (pending, callback) = begin_login(addr, "/", ACCOUNT, "MAINNET", "reject").await;
    assert_eq!(get_with(addr, &callback, &[("cookie", &cookie_header(&pending))]).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(get(addr, "/.xumm/callback?state=nobody&code=x").await.status, StatusCode::BAD_REQUEST);

    // Decisions: allowed (fast path and general path), challenged, forbidden.
    for _ in 0..3 {
        assert_eq!(get_with(addr, "/admin/x", &[("cookie", &cookie)]).await.status, StatusCode::OK);
    }
    assert_eq!(post(addr, "/admin/x", &[("cookie", &cookie)]).await.status, StatusCode::OK);
    assert_eq!(get_with(addr, "/admin/x", &[("accept", "application/json")]).await.status, StatusCode::UNAUTHORIZED);
    let (other, other_value) = login(addr, OTHER_ACCOUNT, "MAINNET").await;
    assert_eq!(get_with(addr, "/admin/x", &[("cookie", &format!("{other}={other_value}"))]).await.status, StatusCode::FORBIDDEN);

    // Bearer tokens: a valid one twice (the second from the cache), a malformed one.
    let token = idp.issue_token(CLIENT_ID, ACCOUNT, "MAINNET", serde_json::json!({}));
    for _ in 0..2 {
        assert_eq!(get_with(addr, "/admin/api", &[("authorization", &format!("Bearer {token}"))]).await.status, StatusCode::OK);
    }
    assert_eq!(get_with(addr, "/admin/api", &[("authorization", "Bearer not.a.jwt")]).await.status, StatusCode::UNAUTHORIZED);

    // An upstream that is not there.
    assert_eq!(get(addr, "/dead/x").await.status, StatusCode::BAD_GATEWAY);

    let after = scrape(admin).await;
    let grew = |name: &str, labels: &[(&str, &str)]| after.value(name, labels) - before.value(name, labels);
    assert!(grew("xumm_gate_sign_ins_started_total", &[("kind", "oauth2")]) >= 3.0);
    assert!(grew("xumm_gate_sign_ins_completed_total", &[("kind", "oauth2")]) >= 2.0);
    assert!(failed(&after, "rejected") - failed(&before, "rejected") >= 1.0);
    assert!(failed(&after, "state") - failed(&before, "state") >= 1.0);
    let decided = |outcome: &str| grew("xumm_gate_policy_decisions_total", &[("route", "/admin"), ("outcome", outcome)]);
    assert!(decided("allowed") >= 6.0, "allowed {}", decided("allowed"));
    assert!(decided("challenged") >= 2.0, "challenged (401 and the malformed token) {}", decided("challenged"));
    assert!(decided("forbidden") >= 1.0);
    assert!(grew("xumm_gate_session_store_operations_total", &[("store", "memory"), ("op", "put"), ("result", "ok")]) >= 2.0);
    assert!(grew("xumm_gate_session_store_duration_seconds", &[("store", "memory"), ("op", "put")]) >= 2.0, "store latency histogram");
    assert!(grew("xumm_gate_session_cache_lookups_total", &[("store", "memory"), ("result", "hit")]) >= 4.0);
    assert!(after.value("xumm_gate_sessions_active", &[("store", "memory")]) >= 2.0);
    assert!(grew("xumm_gate_bearer_verifications_total", &[("result", "valid"), ("reason", "ok")]) >= 1.0);
    assert!(grew("xumm_gate_bearer_verifications_total", &[("result", "valid"), ("reason", "cached")]) >= 1.0);
    assert!(grew("xumm_gate_bearer_verifications_total", &[("result", "invalid"), ("reason", "malformed")]) >= 1.0);
    assert!(after.value("xumm_gate_jwks_fetches_total", &[("cause", "startup"), ("result", "ok")]) >= 1.0);
    assert!(grew("xumm_gate_upstream_errors_total", &[("kind", "connect")]) >= 1.0);
    assert!(after.label_values("xumm_gate_upstream_errors_total", "upstream").iter().all(|u| u.starts_with("http://127.0.0.1:")), "upstreams are labelled by their configured URL");
    assert!(after.value("xumm_gate_upstream_duration_seconds", &[]) >= 1.0, "upstream latency histogram");
    assert_eq!(after.value("xumm_gate_build_info", &[("version", env!("CARGO_PKG_VERSION"))]), 1.0);
    assert!(grew("xumm_gate_requests_total", &[("route", "/admin"), ("status", "2xx")]) >= 6.0);

    // Labels stay bounded: no account, path or token ever becomes one.
    let text = get(admin, "/metrics").await.text();
    for leak in [ACCOUNT, OTHER_ACCOUNT, "/admin/x", "/dead/x", &token[..20], "nobody"] {
        assert!(!text.contains(leak), "{leak} in /metrics");
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn the_fast_path_counts_as_the_general_path_does() {
    let SignedIn { gw, addr, admin, cookie, audit: _audit, idp: _idp, .. } = signed_in().await;
    let mut grew = Vec::new();
    for fast in [true, false] {
        let before = scrape(admin).await;
        for _ in 0..5 {
            let got = if fast { get_with(addr, "/mainnet/x", &[("cookie", &cookie)]).await } else { post(addr, "/mainnet/x", &[("cookie", &cookie)]).await };
            assert_eq!(got.status, StatusCode::OK);
        }
        // A request is counted as its response ends, a moment after the client has it.
        let mut after = scrape(admin).await;
        for _ in 0..40 {
            if after.value("xumm_gate_requests_total", &[("route", "/mainnet")]) - before.value("xumm_gate_requests_total", &[("route", "/mainnet")]) >= 5.0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
            after = scrape(admin).await;
        }
        let d = |n: &str, l: &[(&str, &str)]| after.value(n, l) - before.value(n, l);
        grew.push((
            d("xumm_gate_policy_decisions_total", &[("route", "/mainnet"), ("outcome", "allowed")]),
            d("xumm_gate_requests_total", &[("route", "/mainnet"), ("status", "2xx")]),
            d("xumm_gate_session_cache_lookups_total", &[("store", "memory"), ("result", "hit")]) >= 5.0,
            d("xumm_gate_upstream_duration_seconds", &[]) >= 5.0,
        ));
    }
    assert_eq!(grew[0], (5.0, 5.0, true, true), "fast path");
    assert_eq!(grew[0], grew[1], "the fast path (left) and the general path count alike");
    gw.shutdown().await;
}

#[tokio::test]
async fn the_audit_log_records_each_security_event_and_no_secret() {
    let SignedIn { audit, gw, idp, addr, admin, value, cookie } = signed_in().await;
    let (pending, callback) = begin_login(addr, "/", ACCOUNT, "MAINNET", "reject").await;
    get_with(addr, &callback, &[("cookie", &cookie_header(&pending))]).await;
    let (other, other_value) = login(addr, OTHER_ACCOUNT, "MAINNET").await;
    let refused = get_with(addr, "/admin/x", &[("cookie", &format!("{other}={other_value}")), ("accept", "application/json")]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let token = idp.issue_token(CLIENT_ID, ACCOUNT, "MAINNET", serde_json::json!({}));
    get_with(addr, "/admin/api", &[("authorization", &format!("Bearer {token}"))]).await;
    let out = send(Request::post(format!("http://{addr}/.xumm/sign_out")).header("cookie", &cookie).body(full("")).unwrap()).await;
    assert!(out.status.is_success() || out.status.is_redirection());
    let revoked = send(Request::post(format!("http://{admin}/sessions/revoke?account={OTHER_ACCOUNT}")).body(full("")).unwrap()).await;
    assert_eq!(revoked.status, StatusCode::OK);

    let lines = audit.lines();
    let one = |event: &str, f: &dyn Fn(&serde_json::Value) -> bool| {
        let found: Vec<_> = lines.iter().filter(|l| l["event"] == event && f(l)).collect();
        assert!(!found.is_empty(), "no {event} line in {lines:#?}");
        found[0].clone()
    };
    let ok = one("sign_in_succeeded", &|l| l["account"] == ACCOUNT);
    assert_eq!((ok["kind"].as_str(), ok["network"].as_str(), ok["client_ip"].as_str()), (Some("oauth2"), Some("MAINNET"), Some("127.0.0.1")));
    assert!(ok["request_id"].as_str().is_some_and(|id| !id.is_empty()) && ok["time"].as_str().is_some_and(|t| t.ends_with('Z')), "{ok}");
    assert_eq!(ok["log"], "audit");
    one("sign_in_failed", &|l| l["reason"] == "rejected" && l["kind"] == "oauth2");
    let forbidden = one("forbidden", &|l| l["account"] == OTHER_ACCOUNT);
    assert_eq!((forbidden["route"].as_str(), forbidden["request_id"].as_str()), (Some("/admin"), refused.headers["x-request-id"].to_str().ok()));
    one("signed_out", &|l| l["account"] == ACCOUNT);
    one("sessions_revoked", &|l| l["account"] == OTHER_ACCOUNT && l["sessions"] == 1);

    // Never a secret, token, cookie or code.
    let text = audit.text();
    for secret in [CLIENT_SECRET, COOKIE_SECRET, value.as_str(), other_value.as_str(), token.as_str(), "code="] {
        assert!(!text.contains(secret), "{secret} in the audit log");
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn a_reload_is_audited_whether_it_applies_or_not() {
    let audit = AuditFile::new();
    let up = upstream().await;
    let text = config_text(up, "") + &audit.config();
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &text).unwrap();
    let gw = gateway(&text).await;
    gw.live.set_source(file.path().to_path_buf());
    assert!(gw.live.reload_logged().is_ok());
    std::fs::write(file.path(), text.replace("[[route]]\npath = \"/admin\"", "[[route]]\npath = \"admin\"")).unwrap();
    assert!(gw.live.reload_logged().is_err());
    let reloads: Vec<_> = audit.lines().into_iter().filter(|l| l["event"] == "config_reloaded").collect();
    assert_eq!(reloads.len(), 2, "{reloads:?}");
    assert_eq!(reloads[0]["ok"], true);
    assert_eq!(reloads[1]["ok"], false);
    assert!(reloads[1]["error"].as_str().is_some_and(|e| e.contains("route")), "{:?}", reloads[1]);
    gw.shutdown().await;
}

#[tokio::test]
async fn with_tracing_off_a_trace_context_passes_through_untouched() {
    // (This test binary never configures [tracing].)
    let up = upstream().await;
    let gw = gateway(&config_text(up, "")).await;
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    for fast in [true, false] {
        let h = [("traceparent", tp), ("tracestate", "vendor=1")];
        let got = if fast { get_with(gw.addr, "/", &h).await } else { post(gw.addr, "/", &h).await };
        assert_eq!(got.upstream_header("traceparent"), vec![tp.to_string()], "fast path {fast}");
        assert_eq!(got.upstream_header("tracestate"), vec!["vendor=1".to_string()]);
    }
    assert!(!xumm_gate::telemetry::enabled());
}

#[test]
fn tracing_and_audit_settings_are_checked() {
    let up: std::net::SocketAddr = "127.0.0.1:9".parse().unwrap();
    for (extra, key) in [
        ("[tracing]\notlp_endpoint = \"collector:4318\"", "tracing.otlp_endpoint"),
        ("[tracing]\notlp_endpoint = \"http://127.0.0.1:4318/v1/traces\"\nsample_ratio = 1.5", "tracing.sample_ratio"),
        ("[log]\naudit = \"/nonexistent-dir/audit.log\"", "log.audit"),
    ] {
        let text = config_text(up, "") + "\n" + extra + "\n";
        let outcome = match xumm_gate::config::Config::from_toml(&text, &no_env) {
            Err(e) => e.to_string(),
            // log.audit is opened when the gateway starts.
            Ok(cfg) => match xumm_gate::audit::Audit::open(&cfg.log.audit) {
                Err(e) => e.to_string(),
                Ok(_) => String::new(),
            },
        };
        assert!(outcome.contains(key), "{extra}: {outcome}");
    }
}
