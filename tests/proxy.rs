//! The proxy engine against a real upstream, over real sockets on 127.0.0.1.

mod common;

use std::time::{Duration, Instant};

use common::*;
use http::{Request, StatusCode};

#[tokio::test]
async fn proxies_and_sets_forwarding_headers() {
    let up = upstream().await;
    let gw = gateway(&config_text(up, "")).await;
    let got = send(
        Request::get(format!("http://{}/hello?x=1", gw.addr))
            .header("host", "app.example")
            .header("x-forwarded-for", "10.9.9.9")
            .body(full(""))
            .unwrap(),
    )
    .await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.json()["uri"], "/hello?x=1");
    // loopback is a trusted proxy by default: its X-Forwarded-For is appended to
    assert_eq!(got.upstream_header("x-forwarded-for"), vec!["10.9.9.9, 127.0.0.1"]);
    assert_eq!(got.upstream_header("x-forwarded-proto"), vec!["http"]);
    assert_eq!(got.upstream_header("x-forwarded-host"), vec!["app.example"]);
    assert_eq!(got.upstream_header("via"), vec!["1.1 xumm-gate"]);
    assert_eq!(got.upstream_header("host"), vec![up.to_string()]);
    gw.shutdown().await;
}

#[tokio::test]
async fn untrusted_peer_cannot_spoof_forwarding_headers() {
    let up = upstream().await;
    let gw = gateway(&config_text(up, "trusted_proxies = []")).await;
    let got = send(
        Request::get(format!("http://{}/x", gw.addr))
            .header("x-forwarded-for", "10.9.9.9")
            .header("x-forwarded-proto", "https")
            .header("x-forwarded-host", "evil.example")
            .header("host", "app.example")
            .body(full(""))
            .unwrap(),
    )
    .await;
    assert_eq!(got.upstream_header("x-forwarded-for"), vec!["127.0.0.1"]);
    assert_eq!(got.upstream_header("x-forwarded-proto"), vec!["http"]);
    assert_eq!(got.upstream_header("x-forwarded-host"), vec!["app.example"]);
    gw.shutdown().await;
}

#[tokio::test]
async fn hop_by_hop_headers_are_removed_both_ways() {
    let up = upstream().await;
    let gw = gateway(&config_text(up, "")).await;
    let got = send(
        Request::get(format!("http://{}/echo", gw.addr))
            .header("connection", "x-client-hop, keep-alive")
            .header("x-client-hop", "1")
            .header("keep-alive", "timeout=5")
            .header("proxy-authorization", "Basic Zm9vOmJhcg==")
            .header("te", "trailers")
            .header("trailer", "x-t")
            .header("upgrade", "h2c")
            .header("x-end-to-end", "kept")
            .body(full(""))
            .unwrap(),
    )
    .await;
    for h in ["x-client-hop", "keep-alive", "proxy-authorization", "te", "trailer", "upgrade", "connection"] {
        assert!(got.upstream_header(h).is_empty(), "{h} reached the upstream");
    }
    assert_eq!(got.upstream_header("x-end-to-end"), vec!["kept"]);

    let got = get(gw.addr, "/hop").await;
    assert_eq!(got.status, StatusCode::OK);
    for h in ["x-private-hop", "keep-alive", "proxy-authenticate"] {
        assert!(got.headers.get(h).is_none(), "{h} reached the client");
    }
    assert_eq!(got.headers["x-end-to-end"], "kept");
    gw.shutdown().await;
}

#[tokio::test]
async fn longest_upstream_prefix_wins_and_strip_prefix() {
    let up1 = upstream().await;
    let up2 = upstream().await;
    let text = format!(
        "{}\n[[upstream]]\npath = \"/api\"\nurl = \"http://{up2}/v2\"\nstrip_prefix = true\n\n[[upstream]]\npath = \"/apix\"\nurl = \"http://{up2}\"\n",
        config_text(up1, "")
    );
    let gw = gateway(&text).await;
    let got = get(gw.addr, "/api/users?id=7").await;
    assert_eq!(got.json()["uri"], "/v2/users?id=7");
    assert_eq!(got.upstream_header("host"), vec![up2.to_string()]);
    let got = get(gw.addr, "/apis").await; // segment-wise: /apis is not under /api
    assert_eq!(got.upstream_header("host"), vec![up1.to_string()]);
    let got = get(gw.addr, "/apix/a").await;
    assert_eq!(got.json()["uri"], "/apix/a");
    assert_eq!(got.upstream_header("host"), vec![up2.to_string()]);
    gw.shutdown().await;
}

#[tokio::test]
async fn upstream_sees_the_normalized_path_and_ambiguous_paths_are_refused() {
    let up = upstream().await;
    let gw = gateway(&config_text(up, "")).await;
    // Policy sees the normalized path: these all land on the protected /admin rule.
    for input in ["/public/../admin", "/public/%2e%2e/admin", "//admin", "/public/./../ADMIN/x"] {
        let got = raw(gw.addr, format!("GET {input} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes(), Duration::from_secs(5)).await;
        assert!(got.starts_with("HTTP/1.1 401"), "{input}: {got}");
    }
    for (input, want) in [
        ("/public/../other", "/other"),
        ("/public/%2e%2e/other", "/other"),
        ("//other", "/other"),
        ("/a/./b//c?q=%2F", "/a/b/c?q=%2F"),
        ("/%7Euser", "/~user"),
    ] {
        let got = raw(gw.addr, format!("GET {input} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes(), Duration::from_secs(5)).await;
        assert!(got.starts_with("HTTP/1.1 200"), "{input}: {got}");
        assert!(got.contains(&format!("\"uri\":\"{want}\"")), "{input} should reach upstream as {want}: {got}");
    }
    for input in ["/public%2Fadmin", "/public%2fadmin", "/public%5Cadmin", "/public\\admin", "/../admin", "/a%zz"] {
        let got = raw(gw.addr, format!("GET {input} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes(), Duration::from_secs(5)).await;
        assert!(got.starts_with("HTTP/1.1 400"), "{input}: {got}");
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn route_rules_match_case_insensitively_in_metrics() {
    let up = upstream().await;
    let gw = gateway(&config_text(up, "")).await;
    let admin = gw.admin_addr.unwrap();
    get(gw.addr, "/ADMIN/panel").await;
    get(gw.addr, "/public/x").await;
    let metrics = get(admin, "/metrics").await.text();
    assert!(metrics.contains(r#"xumm_gate_requests_total{route="/admin",status="4xx"}"#), "{metrics}");
    assert!(metrics.contains(r#"xumm_gate_requests_total{route="/public",status="2xx"}"#), "{metrics}");
    assert!(metrics.contains("xumm_gate_upstream_duration_seconds_bucket"), "{metrics}");
    assert!(metrics.contains("xumm_gate_requests_in_flight"), "{metrics}");
    gw.shutdown().await;
}

#[tokio::test]
async fn upstream_refused_is_502_and_timeout_is_504() {
    let dead = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
    let gw = gateway(&config_text(dead, "")).await;
    let got = get(gw.addr, "/x").await;
    assert_eq!(got.status, StatusCode::BAD_GATEWAY);
    assert!(got.text().contains("502"), "{}", got.text());
    let got = send(Request::get(format!("http://{}/x", gw.addr)).header("accept", "application/json").body(full("")).unwrap()).await;
    assert_eq!(got.status, StatusCode::BAD_GATEWAY);
    assert_eq!(got.json()["error"], "bad_gateway");
    gw.shutdown().await;

    let up = upstream().await;
    let gw = gateway(&config_text(up, "upstream_timeout = \"300ms\"")).await;
    let t = Instant::now();
    let got = get(gw.addr, "/slow?ms=3000").await;
    assert_eq!(got.status, StatusCode::GATEWAY_TIMEOUT);
    assert!(t.elapsed() < Duration::from_secs(2));
    let got = get(gw.addr, "/slow?ms=10").await;
    assert_eq!(got.status, StatusCode::OK);
    gw.shutdown().await;
}

#[tokio::test]
async fn slow_headers_are_cut_off() {
    let up = upstream().await;
    let gw = gateway(&config_text(up, "header_read_timeout = \"1s\"")).await;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n").await.unwrap();
    let t = Instant::now();
    let mut buf = Vec::new();
    // keep trickling a header byte every 200ms; the gateway must close anyway
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            tokio::select! {
                r = s.read_to_end(&mut buf) => { let _ = r; break; }
                _ = tokio::time::sleep(Duration::from_millis(200)) => {
                    if s.write_all(b"x").await.is_err() { break; }
                }
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "connection still open after 5s");
    assert!(t.elapsed() < Duration::from_secs(3), "cut off after {:?}", t.elapsed());
    gw.shutdown().await;
}

#[tokio::test]
async fn malformed_and_oversized_requests_get_4xx() {
    let up = upstream().await;
    let gw = gateway(&config_text(up, "max_header_bytes = 8192\nmax_headers = 20")).await;
    let got = raw(gw.addr, b"GARBAGE\r\n\r\n", Duration::from_secs(3)).await;
    assert!(got.starts_with("HTTP/1.1 400"), "{got}");
    let big = format!("GET / HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n\r\n", "a".repeat(20_000));
    let got = raw(gw.addr, big.as_bytes(), Duration::from_secs(3)).await;
    assert!(got.starts_with("HTTP/1.1 431"), "{got}");
    let many: String = (0..50).map(|i| format!("x-h{i}: v\r\n")).collect();
    let got = raw(gw.addr, format!("GET / HTTP/1.1\r\nhost: x\r\n{many}\r\n").as_bytes(), Duration::from_secs(3)).await;
    assert!(got.starts_with("HTTP/1.1 431"), "{got}");
    // the server is still fine afterwards
    assert_eq!(get(gw.addr, "/ok").await.status, StatusCode::OK);
    gw.shutdown().await;
}

#[tokio::test]
async fn http2_prior_knowledge_works() {
    let up = upstream().await;
    let gw = gateway(&config_text(up, "")).await;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build::<_, TestBody>(hyper_util::client::legacy::connect::HttpConnector::new());
    let resp = client.request(Request::get(format!("http://{}/h2?x=1", gw.addr)).body(full("")).unwrap()).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.version(), http::Version::HTTP_2);
    use http_body_util::BodyExt;
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["uri"], "/h2?x=1");
    gw.shutdown().await;
}

#[tokio::test]
async fn websocket_echo_through_the_gateway() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let up = upstream().await;
    let gw = gateway(&config_text(up, "")).await;
    let (mut ws, resp) = tokio_tungstenite::connect_async(format!("ws://{}/ws", gw.addr)).await.expect("upgrade through gateway");
    assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
    for i in 0..3 {
        ws.send(Message::text(format!("hello {i}"))).await.unwrap();
        let echoed = tokio::time::timeout(Duration::from_secs(5), ws.next()).await.unwrap().unwrap().unwrap();
        assert_eq!(echoed.into_text().unwrap().as_str(), format!("hello {i}"));
    }
    ws.close(None).await.unwrap();
    gw.shutdown().await;
}

#[tokio::test]
async fn graceful_shutdown_finishes_in_flight_requests() {
    let up = upstream().await;
    let gw = gateway(&config_text(up, "drain_timeout = \"10s\"")).await;
    let addr = gw.addr;
    let admin = gw.admin_addr.unwrap();
    assert_eq!(get(admin, "/readyz").await.status, StatusCode::OK);
    assert_eq!(get(admin, "/healthz").await.status, StatusCode::OK);
    let inflight = tokio::spawn(async move { get(addr, "/slow?ms=1500").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stopping = tokio::spawn(gw.shutdown());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(get(admin, "/readyz").await.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "still accepting while draining");
    let got = inflight.await.unwrap();
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.text(), "slow done");
    tokio::time::timeout(Duration::from_secs(5), stopping).await.unwrap().unwrap();
}
