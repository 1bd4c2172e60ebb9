//! The HTTP/1.1 fast path (src/fast): what it relays itself, what it hands to hyper, and how it
//! treats upstreams that frame, close or fail in every way HTTP/1.1 allows.
mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn replies(head: &str) -> (Vec<u8>, bool) {
    let path = head.split(' ').nth(1).unwrap_or("");
    let r = |s: &str, close: bool| (s.as_bytes().to_vec(), close);
    match path {
        "/chunked" => r("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n", false),
        "/until-close" => r("HTTP/1.1 200 OK\r\nX-Case: Mixed\r\n\r\nread until close", true),
        "/one-shot" => r("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", true),
        "/twice" => r("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok", false),
        "/named-length" => r("HTTP/1.1 200 OK\r\nConnection: content-length\r\nContent-Length: 2\r\n\r\nok", false),
        "/conflict" => r("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok", false),
        "/cut" => r("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort", true),
        "/hints" => r("HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal", false),
        "/head" => r("HTTP/1.1 200 OK\r\nContent-Length: 11\r\nX-Case: Mixed\r\n\r\n", false),
        "/garbage" => r("HTTP/1.1 2OO OK\r\n\r\n", true),
        _ => r("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", false),
    }
}

/// Sends `bytes` on a fresh connection and reads until the gateway closes it (or 5 s pass).
async fn exchange(gw: SocketAddr, bytes: &[u8]) -> (String, Duration) {
    let t = Instant::now();
    let out = raw(gw, bytes, Duration::from_secs(5)).await;
    (out, t.elapsed())
}

#[tokio::test]
async fn fast_and_general_requests_share_one_pipelined_connection() {
    let up = upstream().await;
    let gw = gateway(&config_text(up, "")).await;
    // A fast-path GET, a POST with a body (hyper's), then a GET after the hand-over, in one write.
    let (out, _) = exchange(
        gw.addr,
        b"GET /first HTTP/1.1\r\nHost: app\r\n\r\n\
          POST /upload HTTP/1.1\r\nHost: app\r\nContent-Length: 5\r\n\r\nhello\
          GET /third HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n",
    )
    .await;
    let first = out.find("\"uri\":\"/first\"").expect(&out);
    let upload = out[first..].find("\r\n\r\n5").map(|i| i + first).expect(&out);
    let third = out.find("\"uri\":\"/third\"").expect(&out);
    assert!(first < upload && upload < third, "out of order: {out}");
    assert_eq!(out.matches("HTTP/1.1 200").count(), 3, "{out}");
    gw.shutdown().await;
}

#[tokio::test]
async fn chunked_close_delimited_and_head_responses_are_relayed_as_framed() {
    let up = raw_upstream(replies).await;
    let gw = gateway(&config_text(up, "")).await;

    let got = get(gw.addr, "/chunked").await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.text(), "hello world");

    // No length, no chunking: the body runs until the upstream closes, then the client's
    // connection closes too (nothing else could tell it where the body ends).
    let (out, took) = exchange(gw.addr, b"GET /until-close HTTP/1.1\r\nHost: app\r\n\r\n").await;
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
    assert!(out.to_ascii_lowercase().contains("connection: close\r\n"), "{out}");
    assert!(out.ends_with("\r\n\r\nread until close"), "{out}");
    assert!(took < Duration::from_secs(4), "client connection left open");

    // HEAD: the length header stays, no body follows, and the connection stays usable.
    let (out, _) = exchange(gw.addr, b"HEAD /head HTTP/1.1\r\nHost: app\r\n\r\nGET /chunked HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n").await;
    let (head, rest) = out.split_once("\r\n\r\n").expect(&out);
    assert!(head.starts_with("HTTP/1.1 200") && head.contains("Content-Length: 11"), "{out}");
    assert!(head.contains("X-Case: Mixed"), "the fast path keeps the upstream's header case: {out}");
    assert!(rest.starts_with("HTTP/1.1 200 OK\r\n"), "the next response follows the head at once: {out}");
    assert!(rest.contains("5;x=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"), "chunks and trailers relayed as sent: {out}");

    // A 103 before the real response is skipped.
    let got = get(gw.addr, "/hints").await;
    assert_eq!((got.status, got.text().as_str()), (StatusCode::OK, "final"));
    gw.shutdown().await;
}

#[tokio::test]
async fn a_pooled_connection_the_upstream_closed_is_retried_on_a_fresh_one() {
    // This upstream closes every connection after one response, without saying so.
    let up = raw_upstream(replies).await;
    let gw = gateway(&config_text(up, "")).await;
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    for i in 0..5 {
        s.write_all(b"GET /one-shot HTTP/1.1\r\nHost: app\r\n\r\n").await.unwrap();
        let mut got = Vec::new();
        while !got.ends_with(b"ok") {
            let mut b = [0u8; 1024];
            let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut b)).await.expect("answer").unwrap();
            assert!(n > 0, "gateway closed the client connection at request {i}");
            got.extend_from_slice(&b[..n]);
        }
        assert!(got.starts_with(b"HTTP/1.1 200 OK\r\n"), "request {i}: {}", String::from_utf8_lossy(&got));
        tokio::time::sleep(Duration::from_millis(20)).await; // the upstream's close lands first
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn upstreams_that_misframe_get_502_or_a_cut_connection() {
    let up = raw_upstream(replies).await;
    let gw = gateway(&config_text(up, "")).await;
    let got = get(gw.addr, "/conflict").await;
    assert_eq!(got.status, StatusCode::BAD_GATEWAY);
    let got = get(gw.addr, "/garbage").await;
    assert_eq!(got.status, StatusCode::BAD_GATEWAY);

    // The head promised 100 bytes and the upstream closed after 5: the client must not wait for
    // the rest, nor take the next bytes on the connection for them.
    let (out, took) = exchange(gw.addr, b"GET /cut HTTP/1.1\r\nHost: app\r\n\r\n").await;
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n") && out.ends_with("short"), "{out}");
    assert!(took < Duration::from_secs(4), "client connection left open after a cut body");
    gw.shutdown().await;
}

#[tokio::test]
async fn fast_path_can_be_switched_off() {
    let up = raw_upstream(replies).await;
    for (fast, case) in [(true, "X-Case: Mixed"), (false, "x-case: Mixed")] {
        let gw = gateway(&config_text(up, &format!("fast_path = {fast}"))).await;
        let (out, _) = exchange(gw.addr, b"HEAD /head HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n").await;
        assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
        // hyper writes header names in lower case; the fast path relays them as the upstream sent them
        assert!(out.contains(case), "fast_path = {fast}: {out}");
        gw.shutdown().await;
    }
}

#[tokio::test]
async fn identity_and_forwarding_headers_on_the_fast_path() {
    let up = upstream().await;
    let idp = idp().await;
    let gw = ready_gateway(&auth_config(up, &idp.issuer, "", "")).await;
    let (name, value) = login(gw.addr, ACCOUNT, "MAINNET").await;
    let cookie = format!("{name}={value}");
    // Spoofed identity in several spellings, a foreign cookie beside the session cookie.
    let (out, _) = exchange(
        gw.addr,
        format!(
            "GET /private HTTP/1.1\r\nHost: app.example\r\nX-Xumm-Account: rEvil\r\nx_xumm_account: rEvil\r\nX-XUMM-NETWORK: TESTNET\r\n\
             Cookie: theme=dark; {cookie}\r\nX-Forwarded-For: 10.0.0.1\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    )
    .await;
    let body = &out[out.find("\r\n\r\n").expect(&out) + 4..];
    let v: serde_json::Value = serde_json::from_str(body).expect(&out);
    let headers: Vec<(String, String)> = serde_json::from_value(v["headers"].clone()).unwrap();
    let all = |n: &str| headers.iter().filter(|(k, _)| k == n).map(|(_, v)| v.clone()).collect::<Vec<_>>();
    assert_eq!(all("x-xumm-account"), vec![ACCOUNT.to_string()]);
    assert_eq!(all("x-xumm-network"), vec!["MAINNET".to_string()]);
    assert!(all("x_xumm_account").is_empty());
    assert_eq!(all("cookie"), vec!["theme=dark".to_string()], "the session cookie stays at the gateway");
    // 127.0.0.1 is a trusted proxy by default: its X-Forwarded-For is appended to.
    assert_eq!(all("x-forwarded-for"), vec!["10.0.0.1, 127.0.0.1".to_string()]);
    assert_eq!(all("x-forwarded-host"), vec!["app.example".to_string()]);
    assert_eq!(all("via"), vec!["1.1 xumm-gate".to_string()]);
    assert_eq!(all("host"), vec![up.to_string()]);
    gw.shutdown().await;
}

#[tokio::test]
async fn idle_upstream_sockets_are_closed_after_the_idle_timeout() {
    // An upstream that reports when the gateway closes a connection to it.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up = listener.local_addr().unwrap();
    let (tx, mut closed) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => {
                            let _ = tx.send(Instant::now());
                            return;
                        }
                        Ok(_) => s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").await.unwrap(),
                    }
                }
            });
        }
    });
    let gw = gateway(&config_text(up, "upstream_idle_timeout = \"300ms\"")).await;
    let t = Instant::now();
    assert_eq!(get(gw.addr, "/x").await.status, StatusCode::OK);
    let at = tokio::time::timeout(Duration::from_secs(3), closed.recv()).await.expect("an idle upstream socket was kept open").unwrap();
    assert!(at - t >= Duration::from_millis(300), "closed after {:?}, before the idle timeout", at - t);
    gw.shutdown().await;
}

#[tokio::test]
async fn both_paths_send_the_upstream_the_same_headers() {
    let up = upstream().await;
    let idp = idp().await;
    let mut seen = Vec::new();
    for fast in [true, false] {
        let gw = ready_gateway(&auth_config(up, &idp.issuer, &format!("fast_path = {fast}"), "")).await;
        let (name, value) = login(gw.addr, ACCOUNT, "MAINNET").await;
        let (out, _) = exchange(
            gw.addr,
            format!(
                "GET /both?q=1 HTTP/1.1\r\nHost: app.example\r\nAccept: text/html\r\nX-Forwarded-For: 10.0.0.1\r\n\
                 X-Forwarded-Proto: https\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nProxy-Authorization: Basic eA==\r\n\
                 X-Xumm-Account: rEvil\r\nX_Xumm_Network: TESTNET\r\nX-Request-Id: edge-7\r\nCookie: a=1; {name}={value}; b=2\r\nX-End: kept\r\nCookie: {name}={value}\r\n\
                 Connection: keep-alive, close\r\n\r\n"
            )
            .as_bytes(),
        )
        .await;
        let body = &out[out.find("\r\n\r\n").expect(&out) + 4..];
        let v: serde_json::Value = serde_json::from_str(body).expect(&out);
        assert_eq!(v["uri"], "/both?q=1");
        let mut headers: Vec<(String, String)> = serde_json::from_value(v["headers"].clone()).unwrap();
        headers.sort();
        seen.push(headers);
        gw.shutdown().await;
    }
    assert_eq!(seen[0], seen[1], "fast path (left) and hyper path (right) differ");
    let names: Vec<&str> = seen[0].iter().map(|(n, _)| n.as_str()).collect();
    for gone in ["keep-alive", "te", "proxy-authorization", "connection", "x_xumm_network"] {
        assert!(!names.contains(&gone), "{gone} reached the upstream: {names:?}");
    }
    // the header with only the gateway's cookie goes; the mixed one keeps the others
    assert_eq!(names.iter().filter(|n| **n == "cookie").count(), 1, "{names:?}");
    assert!(seen[0].contains(&("cookie".into(), "a=1; b=2".into())), "{:?}", seen[0]);
    assert!(seen[0].contains(&("x-forwarded-proto".into(), "https".into())), "a trusted peer's proto is kept: {:?}", seen[0]);
}

#[tokio::test]
async fn the_client_gets_one_content_length_however_the_upstream_sends_it() {
    let up = raw_upstream(replies).await;
    // Repeated equal Content-Lengths, and a Content-Length the upstream's Connection names.
    for (fast, path) in [(true, "/twice"), (false, "/twice"), (true, "/named-length"), (false, "/named-length")] {
        let gw = gateway(&config_text(up, &format!("fast_path = {fast}"))).await;
        let req = format!("GET {path} HTTP/1.1\r\nHost: app\r\n\r\nGET {path} HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n");
        let (out, _) = exchange(gw.addr, req.as_bytes()).await;
        let at = format!("fast_path = {fast}, {path}: {out}");
        assert_eq!(out.matches("HTTP/1.1 200 OK\r\n").count(), 2, "{at}");
        assert_eq!(out.to_ascii_lowercase().matches("content-length: 2\r\n").count(), 2, "{at}");
        assert_eq!(out.to_ascii_lowercase().matches("content-length").count(), 2, "{at}");
        assert!(out.ends_with("\r\n\r\nok"), "{at}");
        gw.shutdown().await;
    }
}

#[tokio::test]
async fn both_paths_answer_a_browser_with_the_same_error_page() {
    // Nothing listens upstream: a 502, an HTML page for browsers, JSON for API callers.
    let dead = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut seen = Vec::new();
    for fast in [true, false] {
        let gw = gateway(&config_text(dead, &format!("fast_path = {fast}"))).await;
        for (accept, ctype) in [("text/html,application/xhtml+xml", "text/html"), ("application/json", "application/json"), ("*/*", "text/plain")] {
            let got = get_with(gw.addr, "/public/x", &[("accept", accept)]).await;
            assert_eq!(got.status, StatusCode::BAD_GATEWAY);
            let ct = got.headers["content-type"].to_str().unwrap().to_string();
            assert!(ct.starts_with(ctype), "fast_path = {fast}, {accept}: {ct}");
            // Each request has its own id; the pages agree on where it goes.
            let id = got.headers["x-request-id"].to_str().unwrap();
            seen.push((accept, got.text().replace(id, "<id>")));
        }
        gw.shutdown().await;
    }
    assert_eq!(seen[..3], seen[3..], "the fast path and the hyper path differ");
}
