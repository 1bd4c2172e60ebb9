//! Connection floods and idle connections on loopback: the caps, the idle and body timeouts,
//! and HTTP/2's head limits. Each test opens a bounded number of connections from its own
//! loopback addresses and checks that a normal client and `/healthz` are still served.
mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// The HTTP/2 connection preface and an empty SETTINGS frame: an h2c client that then idles.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

async fn connect_from(source: &str, to: SocketAddr) -> TcpStream {
    let s = TcpSocket::new_v4().unwrap();
    s.bind(format!("{source}:0").parse().unwrap()).unwrap();
    s.connect(to).await.unwrap()
}

/// Reads what the gateway sends within `wait`: (bytes, whether it closed the connection).
async fn drain(s: &mut TcpStream, wait: Duration) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (out, true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => return (out, false),
        }
    }
}

/// A normal request from `source`; the status, or 0 when the connection was refused.
async fn normal_client(source: &str, gw: SocketAddr) -> u16 {
    let mut s = connect_from(source, gw).await;
    if s.write_all(b"GET /public/x HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n").await.is_err() {
        return 0;
    }
    let (out, _) = drain(&mut s, Duration::from_secs(3)).await;
    String::from_utf8_lossy(&out).split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
}

#[tokio::test]
async fn one_address_cannot_take_every_connection() {
    let up = upstream().await;
    let gw = gateway(&config_text(up, "trusted_proxies = []\nmax_connections_per_ip = 20")).await;
    let mut idle = Vec::new();
    for _ in 0..40 {
        let mut s = connect_from("127.0.0.2", gw.addr).await;
        let _ = s.write_all(H2_PREFACE).await;
        idle.push(s);
    }
    let mut refused = 0;
    for s in idle.iter_mut() {
        let (out, closed) = drain(s, Duration::from_millis(200)).await;
        if closed && out.starts_with(b"HTTP/1.1 503") {
            refused += 1;
        }
    }
    assert_eq!(refused, 20, "the 21st connection on is refused with a 503");
    assert_eq!(normal_client("127.0.0.3", gw.addr).await, 200, "another client is served");
    assert_eq!(get(gw.admin_addr.unwrap(), "/healthz").await.status, StatusCode::OK);
    let metrics = get(gw.admin_addr.unwrap(), "/metrics").await.text();
    assert!(metrics.contains("xumm_gate_connections_refused_total{reason=\"per_client_limit\"}"), "{metrics}");
    gw.shutdown().await;
}

#[tokio::test]
async fn idle_http2_connections_are_closed_and_the_global_cap_frees_up() {
    let up = upstream().await;
    for fast in [true, false] {
        let extra = format!("trusted_proxies = []\nmax_connections = 30\nmax_connections_per_ip = 1000\nidle_timeout = \"1s\"\nheader_read_timeout = \"1s\"\nfast_path = {fast}");
        let gw = gateway(&config_text(up, &extra)).await;
        let mut idle = Vec::new();
        for i in 0..30 {
            let mut s = connect_from("127.0.0.4", gw.addr).await;
            // Half speak HTTP/2 and go quiet, half never send a byte.
            if i % 2 == 0 {
                s.write_all(H2_PREFACE).await.unwrap();
            }
            idle.push(s);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(gw.gateway.life.conns.open(), 30, "fast_path = {fast}");
        assert_eq!(normal_client("127.0.0.5", gw.addr).await, 503, "at the global cap, fast_path = {fast}");
        assert_eq!(get(gw.admin_addr.unwrap(), "/healthz").await.status, StatusCode::OK, "the admin listener still answers");
        // Past the idle timeout every one of them is closed by the gateway.
        for s in idle.iter_mut() {
            let (_, closed) = drain(s, Duration::from_secs(4)).await;
            assert!(closed, "an idle connection stayed open, fast_path = {fast}");
        }
        assert_eq!(normal_client("127.0.0.5", gw.addr).await, 200, "fast_path = {fast}");
        gw.shutdown().await;
    }
}

#[tokio::test]
async fn an_http2_connection_in_use_is_not_idle() {
    // A request that takes longer than the idle timeout finishes on its HTTP/2 connection.
    let up = upstream().await;
    let gw = gateway(&config_text(up, "idle_timeout = \"1s\"")).await;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build::<_, TestBody>(hyper_util::client::legacy::connect::HttpConnector::new());
    let resp = client.request(http::Request::get(format!("http://{}/slow?ms=1800", gw.addr)).body(full("")).unwrap()).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    gw.shutdown().await;
}

#[tokio::test]
async fn a_request_body_that_stops_arriving_is_cut_off() {
    let up = upstream().await;
    let gw = gateway(&config_text(up, "body_timeout = \"1s\"")).await;
    let started = std::time::Instant::now();
    let out = raw(gw.addr, b"POST /upload HTTP/1.1\r\nHost: app\r\nContent-Length: 100\r\n\r\n0123456789", Duration::from_secs(6)).await;
    assert!(out.starts_with("HTTP/1.1 408"), "{out}");
    assert!(started.elapsed() < Duration::from_secs(4));
    // A body that keeps arriving, however slowly, is not cut.
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(b"POST /upload HTTP/1.1\r\nHost: app\r\nContent-Length: 4\r\nConnection: close\r\n\r\n").await.unwrap();
    for b in [b"a", b"b", b"c", b"d"] {
        tokio::time::sleep(Duration::from_millis(600)).await;
        s.write_all(b).await.unwrap();
    }
    let (out, _) = drain(&mut s, Duration::from_secs(3)).await;
    let out = String::from_utf8_lossy(&out);
    assert!(out.starts_with("HTTP/1.1 200") && out.ends_with("4"), "{out}");
    gw.shutdown().await;
}

#[tokio::test]
async fn http2_requests_obey_max_headers() {
    let up = upstream().await;
    let gw = gateway(&config_text(up, "max_headers = 40")).await;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build::<_, TestBody>(hyper_util::client::legacy::connect::HttpConnector::new());
    for (n, want) in [(30, StatusCode::OK), (60, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)] {
        let mut b = http::Request::get(format!("http://{}/public/x", gw.addr));
        for i in 0..n {
            b = b.header(format!("x-h{i}"), "v");
        }
        let resp = client.request(b.body(full("")).unwrap()).await.unwrap();
        assert_eq!(resp.status(), want, "{n} headers");
    }
    gw.shutdown().await;
}

/// An HTTP/2 frame: 9-byte header (length, type, flags, stream id) and payload.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

#[tokio::test]
async fn http2_rapid_reset_floods_end_the_connection() {
    let up = upstream().await;
    let gw = gateway(&config_text(up, "")).await;
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    let mut flood = H2_PREFACE.to_vec();
    // HPACK: :method GET, :scheme http, :path / (static table), :authority "app" (literal).
    let headers = [0x82, 0x86, 0x84, 0x01, 0x03, b'a', b'p', b'p'];
    for i in 0..500u32 {
        let id = 2 * i + 1;
        flood.extend(frame(0x1, 0x4, id, &headers)); // HEADERS, END_HEADERS (no END_STREAM)
        flood.extend(frame(0x3, 0x0, id, &8u32.to_be_bytes())); // RST_STREAM CANCEL
    }
    let _ = s.write_all(&flood).await;
    let (out, closed) = drain(&mut s, Duration::from_secs(5)).await;
    // A GOAWAY (type 7) with ENHANCE_YOUR_CALM (0xb), then the connection ends.
    let goaway = out.windows(4).any(|w| w[0] == 0x07) && out.windows(4).any(|w| w == [0, 0, 0, 0x0b]);
    assert!(goaway && closed, "the flood was not stopped (closed: {closed}, {} bytes)", out.len());
    assert_eq!(get(gw.addr, "/public/x").await.status, StatusCode::OK, "others are still served");
    gw.shutdown().await;
}

#[tokio::test]
async fn http2_header_lists_obey_max_header_bytes() {
    let up = upstream().await;
    let gw = gateway(&config_text(up, "max_header_bytes = 4096")).await;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build::<_, TestBody>(hyper_util::client::legacy::connect::HttpConnector::new());
    let big = "x".repeat(8000);
    let got = client.request(http::Request::get(format!("http://{}/public/x", gw.addr)).header("x-big", big).body(full("")).unwrap()).await;
    match got {
        Ok(resp) => assert_eq!(resp.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE),
        Err(e) => assert!(format!("{e:?}").to_lowercase().contains("header") || format!("{e:?}").contains("Reset"), "{e:?}"),
    }
    gw.shutdown().await;
}
