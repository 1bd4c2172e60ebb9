//! What an attacker on the network tries against the trust boundary: cookies the reader must
//! find in any bytes, headers a client must not remove, protocol switches that bypass the
//! gateway, credentials it did not verify, and paths upstream frameworks read differently. Each
//! attack goes over a raw socket, on both proxy paths where both apply, and a real upstream
//! reports what it received.
mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use http::StatusCode;

/// Sends raw bytes and returns the whole answer (the request should say `Connection: close`).
async fn exchange(gw: SocketAddr, bytes: &[u8]) -> String {
    raw(gw, bytes, Duration::from_secs(5)).await
}

fn status(out: &str) -> u16 {
    out.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// The echo upstream's JSON from a raw answer.
fn echoed(out: &str) -> serde_json::Value {
    let body = &out[out.find("\r\n\r\n").unwrap_or_else(|| panic!("no head end: {out}")) + 4..];
    serde_json::from_str(body).unwrap_or_else(|_| panic!("not the upstream's echo: {out}"))
}

fn header_values(v: &serde_json::Value, name: &str) -> Vec<String> {
    v["headers"].as_array().unwrap().iter().filter(|p| p[0].as_str().unwrap().eq_ignore_ascii_case(name)).map(|p| p[1].as_str().unwrap().to_string()).collect()
}

/// A signed-in gateway per proxy path: (fast_path, gateway, session cookie).
async fn signed_in_gateways(up: SocketAddr, issuer: &str, more: &str) -> Vec<(bool, xumm_gate::Running, (String, String))> {
    let mut out = Vec::new();
    for fast in [true, false] {
        let gw = ready_gateway(&auth_config(up, issuer, &format!("fast_path = {fast}"), more)).await;
        let c = login(gw.addr, ACCOUNT, "MAINNET").await;
        out.push((fast, gw, c));
    }
    out
}

#[tokio::test]
async fn own_cookies_are_found_and_removed_in_non_ascii_cookie_headers() {
    let up = upstream().await;
    let idp = idp().await;
    for (fast, gw, (name, value)) in signed_in_gateways(up, &idp.issuer, "").await {
        for path in ["/private", "/public/x"] {
            let mut req = format!("GET {path} HTTP/1.1\r\nHost: app\r\nConnection: close\r\nCookie: app=").into_bytes();
            req.extend_from_slice("café ☕".as_bytes());
            req.extend_from_slice(format!("; {name}={value}; {name}_login_abc=pending; b=2\r\n\r\n").as_bytes());
            let out = exchange(gw.addr, &req).await;
            let at = format!("fast_path = {fast}, {path}: {out}");
            assert_eq!(status(&out), 200, "{at}");
            let v = echoed(&out);
            assert_eq!(header_values(&v, "cookie"), vec!["app=café ☕; b=2".to_string()], "{at}");
            if path == "/private" {
                assert_eq!(header_values(&v, "x-xumm-account"), vec![ACCOUNT.to_string()], "signed in on both paths: {at}");
            }
        }
        gw.shutdown().await;
    }
}

#[tokio::test]
async fn a_connection_header_cannot_remove_what_the_gateway_sets() {
    let up = upstream().await;
    let idp = idp().await;
    let more = "[assertion]\nenabled = true\n";
    for (fast, gw, (name, value)) in signed_in_gateways(up, &idp.issuer, more).await {
        let out = exchange(
            gw.addr,
            format!(
                "GET /private HTTP/1.1\r\nHost: app\r\nCookie: {name}={value}\r\n\
                 Connection: close, X-Xumm-Account, x-xumm-network, X-Auth-Request-User, X-Forwarded-User, X-Xumm-Assertion, \
                 X-Forwarded-For, X-Forwarded-Proto, X-Forwarded-Host, Via, X-Private\r\nX-Private: hop\r\n\r\n"
            )
            .as_bytes(),
        )
        .await;
        let at = format!("fast_path = {fast}: {out}");
        assert_eq!(status(&out), 200, "{at}");
        let v = echoed(&out);
        for h in ["x-xumm-account", "x-auth-request-user", "x-forwarded-user"] {
            assert_eq!(header_values(&v, h), vec![ACCOUNT.to_string()], "{h}: {at}");
        }
        assert_eq!(header_values(&v, "x-xumm-network"), vec!["MAINNET".to_string()], "{at}");
        assert_eq!(header_values(&v, "x-xumm-assertion").len(), 1, "{at}");
        assert_eq!(header_values(&v, "x-forwarded-for"), vec!["127.0.0.1".to_string()], "{at}");
        assert_eq!(header_values(&v, "x-forwarded-proto"), vec!["http".to_string()], "{at}");
        assert_eq!(header_values(&v, "x-forwarded-host"), vec!["app".to_string()], "{at}");
        assert_eq!(header_values(&v, "via"), vec!["1.1 xumm-gate".to_string()], "{at}");
        assert!(header_values(&v, "x-private").is_empty(), "a header Connection names is still hop-by-hop: {at}");
        gw.shutdown().await;
    }
}

/// An upstream that accepts every upgrade it is offered (as several Java and Python servers
/// accept h2c) and otherwise echoes the request head.
fn upgrading(head: &str) -> (Vec<u8>, bool) {
    let head = head.to_ascii_lowercase();
    let reply = if head.contains("\r\nupgrade:") || head.contains("/always-101") {
        "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\nSPEAKING-H2-NOW".to_string()
    } else {
        format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{head}", head.len())
    };
    (reply.into_bytes(), true)
}

#[tokio::test]
async fn h2c_upgrades_are_never_relayed() {
    let up = raw_upstream(upgrading).await;
    for fast in [true, false] {
        let gw = gateway(&config_text(up, &format!("fast_path = {fast}"))).await;
        let out = exchange(
            gw.addr,
            b"GET /public/x HTTP/1.1\r\nHost: app\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
        )
        .await;
        let at = format!("fast_path = {fast}: {out}");
        assert_eq!(status(&out), 200, "answered without the upgrade: {at}");
        let lower = out.to_ascii_lowercase();
        assert!(!lower.contains("speaking-h2-now") && !lower.contains("\r\nupgrade:") && !lower.contains("http2-settings"), "{at}");
        // An upstream that switches protocols unasked is a bad gateway, never spliced through.
        let out = exchange(gw.addr, b"GET /always-101 HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n").await;
        assert_eq!(status(&out), 502, "fast_path = {fast}: {out}");
        assert!(!out.contains("SPEAKING-H2-NOW"), "{out}");
        gw.shutdown().await;
    }
}

#[tokio::test]
async fn no_unverified_bearer_token_reaches_the_upstream_beside_a_session() {
    let up = upstream().await;
    let idp = idp().await;
    for (fast, gw, (name, value)) in signed_in_gateways(up, &idp.issuer, "").await {
        let out = exchange(
            gw.addr,
            format!("GET /private HTTP/1.1\r\nHost: app\r\nCookie: {name}={value}\r\nAuthorization: Bearer forged.token.here\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await;
        let at = format!("fast_path = {fast}: {out}");
        assert_eq!(status(&out), 200, "{at}");
        let v = echoed(&out);
        assert!(header_values(&v, "authorization").is_empty(), "{at}");
        assert_eq!(header_values(&v, "x-xumm-account"), vec![ACCOUNT.to_string()], "{at}");
        gw.shutdown().await;
    }
}

#[tokio::test]
async fn strict_path_mode_refuses_paths_upstreams_read_differently() {
    let up = upstream().await;
    let extra_routes = "[[route]]\npath = \"/matrix\"\npublic = true\nstrict_path = false\n";
    for fast in [true, false] {
        let gw = gateway(&(config_text(up, &format!("fast_path = {fast}")) + extra_routes)).await;
        for bad in [
            "/public/..;/admin",
            "/public/.;/admin",
            "/public;x=1/y",
            "/public/%3B/y",
            "/admin.",
            "/admin./x",
            "/admin%20",
            "/admin%09",
            "/public/%252e%252e/admin",
            "/public/a%00b",
            "/matrix/..;/admin",
        ] {
            let out = exchange(gw.addr, format!("GET {bad} HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n").as_bytes()).await;
            assert_eq!(status(&out), 400, "fast_path = {fast}, {bad}: {out}");
        }
        for good in ["/public/x", "/.well-known/a", "/public/a..b", "/public/a%20b", "/matrix/a;jsessionid=1", "/matrix/a;v=1/b", "/matrix/a."] {
            let out = exchange(gw.addr, format!("GET {good} HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n").as_bytes()).await;
            assert_eq!(status(&out), 200, "fast_path = {fast}, {good}: {out}");
        }
        gw.shutdown().await;
    }
    // Switched off for the whole gateway, only the dot-segment parameter stays refused.
    let gw = gateway(&config_text(up, "strict_paths = false")).await;
    assert_eq!(get(gw.addr, "/public;x=1/y").await.status, StatusCode::OK);
    assert_eq!(get(gw.addr, "/public/..;/admin").await.status, StatusCode::BAD_REQUEST);
    gw.shutdown().await;
}

#[tokio::test]
async fn forward_auth_applies_strict_path_mode_to_the_original_uri() {
    let up = upstream().await;
    let idp = idp().await;
    let gw = ready_gateway(&auth_config(up, &idp.issuer, "", "")).await;
    let got = get_with(gw.addr, "/.xumm/auth", &[("x-original-uri", "/public/..;/admin")]).await;
    assert_eq!(got.status, StatusCode::FORBIDDEN, "{}", got.text());
    assert_eq!(got.json()["error"], "bad_path");
    let got = get_with(gw.addr, "/.xumm/auth", &[("x-original-uri", "/public/x")]).await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.text());
    gw.shutdown().await;
}

#[tokio::test]
async fn a_cookie_that_opens_no_session_is_cleared() {
    let up = upstream().await;
    let idp = idp().await;
    let gw = ready_gateway(&auth_config(up, &idp.issuer, "", "")).await;
    for value in ["garbage", "c29tZXRoaW5nIHNlYWxlZCBieSBhbm90aGVyIGtleQ"] {
        let got = get_with(gw.addr, "/private", &[("accept", "text/html"), ("cookie", &format!("_xumm_gate={value}"))]).await;
        assert_eq!(got.status, StatusCode::FOUND);
        let cleared: Vec<_> = got.headers.get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).filter(|v| v.starts_with("_xumm_gate=;") && v.contains("Max-Age=0")).collect();
        assert_eq!(cleared.len(), 1, "{:?}", got.headers);
    }
    // No cookie, nothing to clear.
    let got = get_with(gw.addr, "/private", &[("accept", "text/html")]).await;
    assert!(got.headers.get("set-cookie").is_none());
    gw.shutdown().await;
}

#[tokio::test]
async fn start_answers_a_bounded_number_of_set_cookie_headers() {
    let up = upstream().await;
    let idp = idp().await;
    let gw = ready_gateway(&auth_config(up, &idp.issuer, "max_header_bytes = 262144", "")).await;
    let stale: Vec<String> = (0..2000).map(|i| format!("_xumm_gate_login_s{i}=x")).collect();
    let got = get_with(gw.addr, "/.xumm/start?rd=/", &[("cookie", &stale.join("; "))]).await;
    assert_eq!(got.status, StatusCode::FOUND);
    let n = got.headers.get_all("set-cookie").iter().count();
    assert!((2..=17).contains(&n), "{n} Set-Cookie headers");
    gw.shutdown().await;
}

#[tokio::test]
async fn sign_in_starts_and_callbacks_are_rate_limited_per_client_address() {
    let up = upstream().await;
    let idp = idp().await;
    // 6 a minute: bursts of 2.
    let gw = ready_gateway(&auth_config(up, &idp.issuer, "sign_in_per_minute = 6", "")).await;
    let before = idp.token_requests();
    let mut statuses = Vec::new();
    for _ in 0..10 {
        // /start, then a forged callback with its pending cookie: each pair would make the
        // gateway call the provider's token endpoint with the app's credentials.
        let start = get_with(gw.addr, "/.xumm/start?rd=/", &[("accept", "text/html")]).await;
        statuses.push(start.status);
        if start.status != StatusCode::FOUND {
            assert_eq!(start.status, StatusCode::TOO_MANY_REQUESTS);
            assert!(start.headers["retry-after"].to_str().unwrap().parse::<u64>().unwrap() >= 1);
            assert!(start.text().contains("Too many sign-in attempts"), "{}", start.text());
            continue;
        }
        let pending = set_cookies(&start.headers);
        let state = url::Url::parse(start.headers["location"].to_str().unwrap()).unwrap().query_pairs().find(|(k, _)| k == "state").unwrap().1.to_string();
        let cb = get_with(gw.addr, &format!("/.xumm/callback?state={state}&code=forged"), &[("cookie", &cookie_header(&pending))]).await;
        statuses.push(cb.status);
    }
    let limited = statuses.iter().filter(|s| **s == StatusCode::TOO_MANY_REQUESTS).count();
    assert!(limited >= 8, "{statuses:?}");
    assert!(idp.token_requests() - before <= 1, "the flood reached the token endpoint {} times", idp.token_requests() - before);
    // Another client (as a trusted proxy reports it) is not held back by the first one.
    let other = get_with(gw.addr, "/.xumm/start?rd=/", &[("x-forwarded-for", "203.0.113.7")]).await;
    assert_eq!(other.status, StatusCode::FOUND);
    gw.shutdown().await;
}

#[tokio::test]
async fn over_http2_the_same_request_gets_the_same_answer() {
    // HTTP/2 requests take the general path: the cookie, Authorization and strict-path rules
    // hold for them as for HTTP/1.1.
    let up = upstream().await;
    let idp = idp().await;
    let gw = ready_gateway(&auth_config(up, &idp.issuer, "", "")).await;
    let (name, value) = login(gw.addr, ACCOUNT, "MAINNET").await;
    let mut cookie = b"app=".to_vec();
    cookie.extend_from_slice("café ☕".as_bytes());
    cookie.extend_from_slice(format!("; {name}={value}; b=2").as_bytes());
    let req = http::Request::get(format!("http://{}/private", gw.addr))
        .header("cookie", http::HeaderValue::from_bytes(&cookie).unwrap())
        .header("authorization", "Bearer forged.token.here")
        .header("x-xumm-account", "rEvil")
        .body(full(""))
        .unwrap();
    let got = send_h2(req).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.upstream_header("x-xumm-account"), vec![ACCOUNT.to_string()]);
    assert!(got.upstream_header("authorization").is_empty(), "{:?}", got.text());
    assert_eq!(got.upstream_header("cookie"), vec!["app=café ☕; b=2".to_string()]);
    let bad = send_h2(http::Request::get(format!("http://{}/public/..;/admin", gw.addr)).body(full("")).unwrap()).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    gw.shutdown().await;
}
