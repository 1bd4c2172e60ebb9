//! Listeners: the public one (HTTP/1.1 + h2c) and the admin one. It must never let a slow or
//! oversized client hold resources unbounded, and never drop in-flight requests on shutdown
//! before the drain timeout.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::Gateway;
use crate::reload::Live;
use crate::body::Body;

/// The listeners' shared state: whether the gateway is ready and whether it is draining (what
/// /readyz says), the open connections, the metrics registry /metrics renders.
pub struct Lifecycle {
    pub ready: std::sync::atomic::AtomicBool,
    pub draining: std::sync::atomic::AtomicBool,
    /// Open client connections, against the global and per-client caps.
    pub conns: Arc<crate::conns::Conns>,
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
    /// The public listener's TLS, when `[server.tls]` is set.
    pub tls: Option<Arc<crate::tls::Tls>>,
}

/// Accepts connections until `shutdown` flips, then drains in-flight requests (bounded).
/// Each connection is counted against `server.max_connections` and the per-client cap before
/// anything is read from it.
pub async fn serve_public(live: Arc<Live>, listener: TcpListener, mut shutdown: watch::Receiver<bool>) {
    let builder = Arc::new(crate::connection::builder(&live.load()));
    tokio::spawn(crate::fast::reap_idle(live.clone(), shutdown.clone()));
    let life = live.life();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(cause = %e, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let guard = match life.conns.admit(peer.ip(), live.load().proxy.is_trusted(&peer)) {
                    Ok(g) => g,
                    Err(why) => {
                        refuse(&stream, why, life.tls.is_none());
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let (live, builder, conn) = (live.clone(), builder.clone(), crate::connection::Conn::new(guard, shutdown.clone()));
                match life.tls.clone() {
                    Some(tls) => drop(tokio::spawn(serve_tls(live, tls, stream, peer, builder, conn))),
                    None => drop(tokio::spawn(serve(live, stream, peer, builder, conn))),
                }
            }
            _ = shutdown.changed() => break,
        }
    }
    drop(listener);
    let drain = live.load().server.drain_timeout;
    tracing::info!(timeout = ?drain, "draining in-flight requests");
    // Every connection task ends its connection gracefully on the shutdown signal and releases
    // its count when done: the drain is over when nothing is counted.
    let drained = async {
        while life.conns.open() > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    };
    tokio::select! {
        _ = drained => tracing::info!("drained"),
        _ = tokio::time::sleep(drain) => tracing::warn!("drain timeout reached; closing remaining connections"),
    }
}

/// Serves one connection (plain, or TLS after its handshake): the fast path first when it is
/// on, hyper for the rest.
async fn serve<S: crate::fast::ClientIo>(live: Arc<Live>, stream: S, peer: SocketAddr, builder: Arc<auto::Builder<TokioExecutor>>, conn: crate::connection::Conn) {
    if live.load().server.fast_path {
        crate::fast::serve(live, stream, peer, builder, conn).await
    } else {
        crate::connection::serve_hyper(live, stream, peer, &builder, conn, None).await
    }
}

/// The TLS handshake (within `server.header_read_timeout`), then the connection as any other;
/// HTTP/2 (ALPN h2) goes straight to hyper, the fast path being HTTP/1.1's.
async fn serve_tls(live: Arc<Live>, tls: Arc<crate::tls::Tls>, stream: tokio::net::TcpStream, peer: SocketAddr, builder: Arc<auto::Builder<TokioExecutor>>, conn: crate::connection::Conn) {
    let limit = live.load().server.header_read_timeout;
    let stream = match tokio::time::timeout(limit, tls.acceptor().accept(stream)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return tracing::debug!(peer = %peer, cause = %e, "TLS handshake failed"),
        Err(_) => return tracing::debug!(peer = %peer, "TLS handshake timed out"),
    };
    // HTTP/2, and connections with a client certificate (their requests carry its subject),
    // go to hyper; the fast path serves the rest.
    let subject = crate::tls::client_subject(stream.get_ref().1);
    if stream.get_ref().1.alpn_protocol() == Some(b"h2") || subject.is_some() {
        crate::connection::serve_hyper(live, stream, peer, &builder, conn, subject).await
    } else {
        serve(live, stream, peer, builder, conn).await
    }
}

/// Answers a connection over a cap with a short 503 if the socket takes it at once (never
/// waiting on the client), then closes it. A TLS listener just closes: a plain answer would
/// only be a handshake error to its client, and a handshake costs what the cap saves.
fn refuse(stream: &tokio::net::TcpStream, why: crate::conns::Refused, plain: bool) {
    const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\ncontent-length: 21\r\nretry-after: 1\r\nconnection: close\r\n\r\ntoo many connections\n";
    if plain {
        let _ = stream.try_write(BUSY);
    }
    crate::metrics::connection_refused(why.label());
    tracing::debug!(reason = why.label(), "connection refused");
}

/// `server.tls.redirect_http_listen`: plain HTTP that only sends people to the same path over HTTPS
/// (308, so a form post is repeated as one). The host is the one asked for when a certificate
/// covers it, else `server.public_url`'s: never a host nobody configured.
pub async fn serve_redirect(live: Arc<Live>, listener: TcpListener, shutdown: watch::Receiver<bool>) {
    // A redirect needs one request: a connection gets a minute at most.
    let limit = Some(std::time::Duration::from_secs(60));
    serve_small(listener, shutdown, limit, move |req| std::future::ready(Ok(to_https(&live.load(), &req)))).await
}

/// Serves one of the small listeners (admin, redirect) with `handle` until `shutdown` flips:
/// no fast path, no connection caps (the admin listener must answer whatever the public one
/// carries), each connection cut after `limit` when one is given.
async fn serve_small<F, Fut>(listener: TcpListener, mut shutdown: watch::Receiver<bool>, limit: Option<std::time::Duration>, handle: F)
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<Response<Body>, Infallible>> + Send + 'static,
{
    let builder = Arc::new(auto::Builder::new(TokioExecutor::new()));
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let (builder, svc) = (builder.clone(), service_fn(handle.clone()));
                tokio::spawn(async move {
                    let served = builder.serve_connection(TokioIo::new(stream), svc);
                    match limit {
                        Some(l) => drop(tokio::time::timeout(l, served).await),
                        None => drop(served.await),
                    }
                });
            }
            _ = shutdown.changed() => break,
        }
    }
}

/// A Host header's host, without its port (an IPv6 literal keeps its brackets).
fn host_of(h: &str) -> &str {
    match h.rfind(':') {
        Some(i) if !h[i..].contains(']') => &h[..i],
        _ => h,
    }
}

fn to_https(gw: &Gateway, req: &Request<Incoming>) -> Response<Body> {
    let public = &gw.server.public_url;
    let asked = req.uri().host().or_else(|| req.headers().get(header::HOST).and_then(|h| h.to_str().ok()).map(host_of));
    let host = match (asked, &gw.life.tls) {
        (Some(h), Some(tls)) if tls.serves(h) || public.host_str() == Some(h) => h,
        _ => public.host_str().unwrap_or_default(),
    };
    let port = public.port().map(|p| format!(":{p}")).unwrap_or_default();
    let target = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::PERMANENT_REDIRECT;
    match http::HeaderValue::from_str(&format!("https://{host}{port}{target}")) {
        Ok(v) => drop(r.headers_mut().insert(header::LOCATION, v)),
        Err(_) => *r.status_mut() = StatusCode::BAD_REQUEST,
    }
    r
}

/// The admin listener: /healthz, /readyz, /metrics, revocation, reload.
pub async fn serve_admin(live: Arc<Live>, listener: TcpListener, shutdown: watch::Receiver<bool>) {
    serve_small(listener, shutdown, None, move |req| admin(live.clone(), req)).await
}

async fn admin(live: Arc<Live>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let gw = live.load();
    let text = |status: StatusCode, body: String, ctype: &'static str| {
        let mut r = Response::new(Body::full(Bytes::from(body)));
        *r.status_mut() = status;
        r.headers_mut().insert(header::CONTENT_TYPE, http::HeaderValue::from_static(ctype));
        r
    };
    if req.method() == Method::POST && !admin_allowed(&gw, req.headers()) {
        let mut r = crate::pages::json(StatusCode::UNAUTHORIZED, &serde_json::json!({"error": "unauthorized", "reason": "server.admin_token is required"}));
        r.headers_mut().insert(header::WWW_AUTHENTICATE, http::HeaderValue::from_static("Bearer"));
        return Ok(r);
    }
    if req.method() == Method::POST && req.uri().path() == "/sessions/revoke" {
        return Ok(revoke(&gw, req.uri().query()).await);
    }
    if req.method() == Method::POST && req.uri().path() == "/config/reload" {
        return Ok(reload(&live));
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return Ok(text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n".into(), "text/plain"));
    }
    Ok(match req.uri().path() {
        "/healthz" => text(StatusCode::OK, "ok\n".into(), "text/plain"),
        "/readyz" => {
            if gw.life.draining.load(Ordering::Acquire) {
                text(StatusCode::SERVICE_UNAVAILABLE, "draining\n".into(), "text/plain")
            } else if !gw.life.ready.load(Ordering::Acquire) {
                text(StatusCode::SERVICE_UNAVAILABLE, "starting\n".into(), "text/plain")
            } else if let Some(Err(e)) = match &gw.admission.auth {
                Some(a) => Some(a.store.ready().await),
                None => None,
            } {
                text(StatusCode::SERVICE_UNAVAILABLE, format!("session store unavailable: {e}\n"), "text/plain")
            } else {
                text(StatusCode::OK, "ready\n".into(), "text/plain")
            }
        }
        "/metrics" => {
            // Gauges read when scraped rather than kept up to date on every request.
            if let Some(auth) = &gw.admission.auth {
                let (store, n) = auth.store.held();
                crate::metrics::sessions_active(store, n);
            }
            text(StatusCode::OK, gw.life.metrics.render(), "text/plain; version=0.0.4")
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n".into(), "text/plain"),
    })
}

/// `POST /sessions/revoke?account=r...` on the admin listener: ends every session of an account,
/// on every replica when the store is Redis (the admin listener is for operators only: keep it
/// off the public network).
async fn revoke(gw: &Gateway, query: Option<&str>) -> Response<Body> {
    let json = |status: StatusCode, v: serde_json::Value| crate::pages::json(status, &v);
    let account = query.and_then(|q| url::form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "account").map(|(_, v)| v.into_owned()));
    let Some(account) = account.filter(|a| crate::account::Account::parse(a).is_ok()) else {
        return json(StatusCode::BAD_REQUEST, serde_json::json!({"error": "bad_request", "reason": "account must be a valid r-address"}));
    };
    let Some(auth) = &gw.admission.auth else {
        return json(StatusCode::NOT_FOUND, serde_json::json!({"error": "not_found", "reason": "sign-in is not configured"}));
    };
    match auth.store.revoke_account(&account).await {
        Ok(n) => {
            gw.audit.record(crate::audit::Event::SessionsRevoked { account: &account, sessions: n });
            json(StatusCode::OK, serde_json::json!({"account": account, "revoked": n}))
        }
        Err(e) => {
            tracing::error!(cause = %e, "cannot revoke sessions");
            let mut r = json(StatusCode::SERVICE_UNAVAILABLE, serde_json::json!({"error": "session_store_unavailable"}));
            r.headers_mut().insert(header::RETRY_AFTER, http::HeaderValue::from_static("2"));
            r
        }
    }
}

/// Whether an admin action may run: no `server.admin_token`, or the request's Bearer token is
/// it (compared as SHA-256 digests in constant time, so timing says nothing about the token).
fn admin_allowed(gw: &Gateway, headers: &http::HeaderMap) -> bool {
    use sha2::Digest;
    use subtle::ConstantTimeEq;
    let Some(want) = &gw.server.admin_token else { return true };
    let Some(given) = crate::headers::bearer_token(headers) else { return false };
    let given: [u8; 32] = sha2::Sha256::digest(given.as_bytes()).into();
    bool::from(given.ct_eq(want))
}

/// `POST /config/reload` on the admin listener: what SIGHUP does, answered. 200 with the keys
/// that need a restart, or 422 with why the new config was refused (the running one stays).
fn reload(live: &Live) -> Response<Body> {
    match live.reload_logged() {
        Ok(r) => crate::pages::json(StatusCode::OK, &serde_json::json!({"reloaded": true, "restart_needed": r.restart_needed})),
        Err(e) => crate::pages::json(StatusCode::UNPROCESSABLE_ENTITY, &serde_json::json!({"reloaded": false, "error": e.to_string()})),
    }
}

/// Binds a listener with SO_REUSEADDR (restarts do not fail on TIME_WAIT sockets); with
/// `reuseport`, several workers bind the same address and the kernel spreads connections.
pub fn bind(addr: SocketAddr, reuseport: bool) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    if reuseport {
        socket.set_reuseport(true)?;
    }
    socket.set_nodelay(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}
