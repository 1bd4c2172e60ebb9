//! Test fixtures: a real upstream (hyper), an in-process gateway, and small HTTP helpers.
#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream;
use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

pub mod js;
pub mod pki;

pub type TestBody = BoxBody<Bytes, Infallible>;

pub fn full(b: impl Into<Bytes>) -> TestBody {
    Full::new(b.into()).boxed()
}

/// A body of `n` zero bytes sent in 64 KiB chunks, never held whole in memory.
pub fn zeros(n: u64) -> TestBody {
    const CHUNK: usize = 64 * 1024;
    let chunk = Bytes::from(vec![0u8; CHUNK]);
    let s = stream::unfold(n, move |left| {
        let chunk = chunk.clone();
        async move {
            if left == 0 {
                return None;
            }
            let take = left.min(CHUNK as u64) as usize;
            Some((Ok::<_, Infallible>(Frame::data(chunk.slice(..take))), left - take as u64))
        }
    });
    StreamBody::new(s).boxed()
}

/// Starts the test upstream. Paths:
/// - `/download?n=N`: N zero bytes, streamed
/// - `/upload`: counts the request body, answers the count
/// - `/slow?ms=N`: answers after N ms
/// - `/trickle?ms=N`: answers at once, and sends the body after N ms
/// - `/hop`: answers with hop-by-hop headers that must not reach the client
/// - `/ws`: WebSocket echo
/// - anything else: JSON `{method, uri, headers: [[name, value]...]}`
pub async fn upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection_with_upgrades(TokioIo::new(stream), service_fn(upstream_handle))
                    .await;
            });
        }
    });
    addr
}

fn query_num(req: &Request<Incoming>, key: &str) -> u64 {
    req.uri()
        .query()
        .unwrap_or("")
        .split('&')
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

async fn upstream_handle(mut req: Request<Incoming>) -> Result<Response<TestBody>, Infallible> {
    let path = req.uri().path().to_string();
    Ok(match path.as_str() {
        "/download" => Response::new(zeros(query_num(&req, "n"))),
        "/upload" => {
            let mut body = req.into_body();
            let mut n = 0u64;
            while let Some(frame) = body.frame().await {
                if let Ok(d) = frame.unwrap().into_data() {
                    n += d.len() as u64;
                }
            }
            Response::new(full(n.to_string()))
        }
        "/slow" => {
            tokio::time::sleep(Duration::from_millis(query_num(&req, "ms"))).await;
            Response::new(full("slow done"))
        }
        "/trickle" => {
            // The head at once, the body after N ms.
            let ms = query_num(&req, "ms");
            let s = stream::once(async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Ok::<_, Infallible>(Frame::data(Bytes::from_static(b"trickled")))
            });
            Response::new(StreamBody::new(s).boxed())
        }
        "/hop" => Response::builder()
            .header("connection", "x-private-hop")
            .header("x-private-hop", "secret")
            .header("keep-alive", "timeout=5")
            .header("proxy-authenticate", "Basic")
            .header("x-end-to-end", "kept")
            .body(full("hop"))
            .unwrap(),
        "/ws" => {
            let key = req.headers().get("sec-websocket-key").cloned().unwrap();
            let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
            let on = hyper::upgrade::on(&mut req);
            tokio::spawn(async move {
                use futures_util::{SinkExt, StreamExt};
                let upgraded = on.await.unwrap();
                let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
                    TokioIo::new(upgraded),
                    tokio_tungstenite::tungstenite::protocol::Role::Server,
                    None,
                )
                .await;
                while let Some(Ok(msg)) = ws.next().await {
                    if msg.is_text() || msg.is_binary() {
                        let _ = ws.send(msg).await;
                    }
                }
            });
            Response::builder()
                .status(StatusCode::SWITCHING_PROTOCOLS)
                .header(header::CONNECTION, "upgrade")
                .header(header::UPGRADE, "websocket")
                .header("sec-websocket-accept", accept)
                .body(full(""))
                .unwrap()
        }
        _ => {
            let headers: Vec<(String, String)> = req
                .headers()
                .iter()
                .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
                .collect();
            let v = serde_json::json!({"method": req.method().as_str(), "uri": req.uri().to_string(), "version": format!("{:?}", req.version()), "headers": headers});
            Response::builder().header("content-type", "application/json").body(full(v.to_string())).unwrap()
        }
    })
}

/// A free loopback port (bound then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Minimal config text for a gateway in front of `upstream`; `extra` is appended.
pub fn config_text(upstream: SocketAddr, extra: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
public_url = "http://127.0.0.1:4180"
{extra}

[[upstream]]
path = "/"
url = "http://{upstream}"

[[route]]
path = "/"
public = true

[[route]]
path = "/public"
public = true

[[route]]
path = "/admin"
"#
    )
}

pub fn no_env(_: &str) -> Option<String> {
    None
}

pub async fn gateway(text: &str) -> xumm_gate::Running {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cfg = xumm_gate::config::Config::from_toml(text, &no_env).expect("test config is valid");
    xumm_gate::start(cfg).await.expect("gateway starts")
}

pub fn client() -> Client<HttpConnector, TestBody> {
    Client::builder(TokioExecutor::new()).build(HttpConnector::new())
}

pub struct Got {
    pub status: StatusCode,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Got {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|_| panic!("not JSON: {:?}", self.body))
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    /// Values of a header the upstream echoed (our JSON upstream's `headers` list).
    pub fn upstream_header(&self, name: &str) -> Vec<String> {
        self.json()["headers"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p[0].as_str().unwrap().eq_ignore_ascii_case(name))
            .map(|p| p[1].as_str().unwrap().to_string())
            .collect()
    }
}

pub async fn send(req: Request<TestBody>) -> Got {
    let resp = client().request(req).await.expect("request sent");
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.map(|c| c.to_bytes()).unwrap_or_default();
    Got { status: parts.status, headers: parts.headers, body }
}

/// Sends over HTTP/2 with prior knowledge (h2c), as a client that speaks only HTTP/2 does.
pub async fn send_h2(req: Request<TestBody>) -> Got {
    let h2 = Client::builder(TokioExecutor::new()).http2_only(true).build::<_, TestBody>(HttpConnector::new());
    let resp = h2.request(req).await.expect("an HTTP/2 answer");
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.map(|c| c.to_bytes()).unwrap_or_default();
    Got { status: parts.status, headers: parts.headers, body }
}

pub async fn get(addr: SocketAddr, path: &str) -> Got {
    send(Request::get(format!("http://{addr}{path}")).body(full("")).unwrap()).await
}

/// Sends raw bytes on a fresh TCP connection and returns everything read until EOF or `wait`.
pub async fn raw(addr: SocketAddr, bytes: &[u8], wait: Duration) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(wait, s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

// ---------- sign-in fixtures ----------

pub const CLIENT_ID: &str = "6a7b8c9d-0e1f-4a2b-8c3d-4e5f6a7b8c9d";
pub const CLIENT_SECRET: &str = "f0e1d2c3-b4a5-4697-8889-aabbccddeeff";
pub const NATIVE_CLIENT_ID: &str = "11111111-2222-4333-8444-555555555555";
pub const COOKIE_SECRET: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
pub const COOKIE_SECRET_2: &str = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=";
pub const ACCOUNT: &str = "rHb9CJAWyB4rj91VRWn96DkukG4bwdtyTh";
pub const OTHER_ACCOUNT: &str = "r9DvujRNfGrZr4nBjudEJJWFBNfkDfcwNA";

pub async fn idp() -> xumm_gate::demo::idp::DevIdp {
    use xumm_gate::demo::idp::{ClientApp, DevIdp};
    DevIdp::start(
        "127.0.0.1:0".parse().unwrap(),
        vec![
            ClientApp { id: CLIENT_ID.into(), secret: CLIENT_SECRET.into(), name: "test app".into() },
            ClientApp { id: NATIVE_CLIENT_ID.into(), secret: "native-secret".into(), name: "native app".into() },
        ],
    )
    .await
    .unwrap()
}

/// Config for a gateway with sign-in against `idp`; `extra` goes into [server], `more` at the end.
pub fn auth_config(upstream: SocketAddr, issuer: &str, extra: &str, more: &str) -> String {
    auth_config_with(upstream, issuer, extra, "", more)
}

pub fn auth_config_with(upstream: SocketAddr, issuer: &str, extra: &str, provider_extra: &str, more: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
public_url = "http://127.0.0.1:4180"
allowed_redirect_hosts = ["app.example.com"]
{extra}

[provider]
issuer = "{issuer}"
client_id = "{CLIENT_ID}"
client_secret = "{CLIENT_SECRET}"
{provider_extra}

[session]
cookie_secrets = ["{COOKIE_SECRET}"]

[[upstream]]
path = "/"
url = "http://{upstream}"

[[route]]
path = "/public"
public = true

[[route]]
path = "/admin"
allow_accounts = ["{ACCOUNT}"]

[[route]]
path = "/mainnet"
allow_networks = ["MAINNET"]
{more}
"#
    )
}

/// Starts a gateway and waits until it is ready (provider discovered).
pub async fn ready_gateway(text: &str) -> xumm_gate::Running {
    let gw = gateway(text).await;
    for _ in 0..100 {
        if gw.gateway.life.ready.load(std::sync::atomic::Ordering::Acquire) {
            return gw;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("gateway never became ready");
}

/// Cookie name=value pairs from Set-Cookie headers (deletions excluded).
pub fn set_cookies(h: &http::HeaderMap) -> Vec<(String, String)> {
    h.get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter(|v| !v.contains("Max-Age=0"))
        .filter_map(|v| v.split(';').next()?.split_once('=').map(|(n, v)| (n.to_string(), v.to_string())))
        .collect()
}

pub fn cookie_header(c: &[(String, String)]) -> String {
    c.iter().map(|(n, v)| format!("{n}={v}")).collect::<Vec<_>>().join("; ")
}

pub async fn get_with(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Got {
    let mut b = Request::get(format!("http://{addr}{path}"));
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    send(b.body(full("")).unwrap()).await
}

/// The first half of a sign-in: /start, then the provider's answer to the user's decision.
/// Returns (pending cookies, the callback path+query the provider redirected to).
pub async fn begin_login(gw: SocketAddr, rd: &str, account: &str, network: &str, action: &str) -> (Vec<(String, String)>, String) {
    let start = get_with(gw, &format!("/.xumm/start?rd={}", url_encode(rd)), &[]).await;
    assert_eq!(start.status, StatusCode::FOUND, "start: {}", start.text());
    let pending = set_cookies(&start.headers);
    let auth_url = url::Url::parse(start.headers["location"].to_str().unwrap()).unwrap();
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in auth_url.query_pairs() {
        form.append_pair(&k, &v);
    }
    form.append_pair("account", account).append_pair("network", network).append_pair("action", action);
    let idp_addr = format!("{}:{}", auth_url.host_str().unwrap(), auth_url.port().unwrap());
    let decided = send(
        Request::post(format!("http://{idp_addr}/auth/decide"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(full(form.finish()))
            .unwrap(),
    )
    .await;
    assert_eq!(decided.status, StatusCode::FOUND, "decide: {}", decided.text());
    let cb = url::Url::parse(decided.headers["location"].to_str().unwrap()).unwrap();
    (pending, format!("{}?{}", cb.path(), cb.query().unwrap_or("")))
}

/// A whole sign-in; returns the session cookie pair.
pub async fn login(gw: SocketAddr, account: &str, network: &str) -> (String, String) {
    let (pending, callback) = begin_login(gw, "/", account, network, "approve").await;
    let done = get_with(gw, &callback, &[("cookie", &cookie_header(&pending))]).await;
    assert_eq!(done.status, StatusCode::FOUND, "callback: {}", done.text());
    set_cookies(&done.headers).into_iter().find(|(n, _)| n == "_xumm_gate").expect("session cookie")
}

pub fn url_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

// ---------- log capture ----------

static LOGS: std::sync::Mutex<Vec<u8>> = std::sync::Mutex::new(Vec::new());

struct LogWriter;

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOGS.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Captures this test binary's log lines (JSON, one event a line) from here on; returns every
/// line captured so far, as the gateway wrote it. Tests in one binary share the capture, so
/// each looks only for lines about its own objects.
pub fn captured_logs() -> Vec<serde_json::Value> {
    static INIT: std::sync::Once = std::sync::Once::new();
    INIT.call_once(|| {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
            .with_writer(|| LogWriter)
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init();
    });
    let text = String::from_utf8_lossy(&LOGS.lock().unwrap()).into_owned();
    text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

/// A backend app's callback endpoint that accepts every delivery and records the payload uuids.
pub async fn counting_receiver() -> (std::net::SocketAddr, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    json_receiver(|_, v| v["uuid"].as_str().unwrap().to_string(), 204, "").await
}

/// An HTTP endpoint that answers every request `status` with `body` (JSON) and keeps what `keep`
/// makes of each request's head and JSON body (Null when the body is not JSON).
pub async fn json_receiver<T: Send + 'static>(keep: fn(&http::request::Parts, serde_json::Value) -> T, status: u16, body: &'static str) -> (std::net::SocketAddr, std::sync::Arc<std::sync::Mutex<Vec<T>>>) {
    use http_body_util::BodyExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let record = record.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let record = record.clone();
                    async move {
                        let (parts, incoming) = req.into_parts();
                        let bytes = incoming.collect().await.unwrap().to_bytes();
                        let v = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
                        record.lock().unwrap().push(keep(&parts, v));
                        Ok::<_, std::convert::Infallible>(http::Response::builder().status(status).header("content-type", "application/json").body(full(body)).unwrap())
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(hyper_util::rt::TokioIo::new(stream), svc).await;
            });
        }
    });
    (addr, seen)
}

/// An upstream that answers each request head with raw bytes: `reply(head)` gives the bytes and
/// whether to close the connection after them.
pub async fn raw_upstream(reply: fn(&str) -> (Vec<u8>, bool)) -> SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        let mut chunk = [0u8; 4096];
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end + 4]).into_owned();
                    buf.drain(..end + 4);
                    let (bytes, close) = reply(&head);
                    if s.write_all(&bytes).await.is_err() || close {
                        return;
                    }
                }
            });
        }
    });
    addr
}


/// One scrape of `/metrics`, parsed by a Prometheus text-format parser.
pub struct Metrics(pub prometheus_parse::Scrape);

pub async fn scrape(admin: SocketAddr) -> Metrics {
    let got = get(admin, "/metrics").await;
    assert_eq!(got.status, StatusCode::OK);
    let text = got.text();
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap_or_else(|e| panic!("/metrics does not parse: {e}\n{text}"));
    Metrics(scrape)
}

impl Metrics {
    /// The sum of the samples of `name` whose labels include `labels` (a histogram: its count).
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        use prometheus_parse::Value;
        // A histogram's count is its `_count` series.
        let count = format!("{name}_count");
        if self.0.samples.iter().any(|s| s.metric == count) {
            return self.value(&count, labels);
        }
        self.0
            .samples
            .iter()
            .filter(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match &s.value {
                Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
                Value::Histogram(b) => b.last().map_or(0.0, |b| b.count),
                Value::Summary(_) => 0.0,
            })
            .sum()
    }

    /// Every metric family name in the scrape.
    pub fn names(&self) -> std::collections::BTreeSet<String> {
        self.0.samples.iter().map(|s| s.metric.clone()).collect()
    }

    /// The label values `label` takes across the samples of `name`.
    pub fn label_values(&self, name: &str, label: &str) -> std::collections::BTreeSet<String> {
        self.0.samples.iter().filter(|s| s.metric == name).filter_map(|s| s.labels.get(label).map(str::to_string)).collect()
    }
}

/// A fresh file for a gateway's audit log (`log.audit`), and its lines so far.
pub struct AuditFile(pub tempfile::TempPath);

impl AuditFile {
    pub fn new() -> AuditFile {
        AuditFile(tempfile::NamedTempFile::new().unwrap().into_temp_path())
    }

    /// The `[log]` table that sends the audit log here.
    pub fn config(&self) -> String {
        format!("\n[log]\naudit = {:?}\n", self.0.to_str().unwrap())
    }

    pub fn lines(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.0).unwrap().lines().map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("audit line is not JSON: {l}"))).collect()
    }

    pub fn text(&self) -> String {
        std::fs::read_to_string(&self.0).unwrap()
    }
}
