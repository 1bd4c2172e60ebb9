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
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::Watcher;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::Gateway;
use crate::body::Body;

/// Builds the connection builder with the configured limits.
fn builder(gw: &Gateway) -> auto::Builder<TokioExecutor> {
    let s = &gw.server;
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(s.header_read_timeout)
        .max_buf_size(s.max_header_bytes.max(8192))
        .max_headers(s.max_headers)
        .keep_alive(true);
    b.http2()
        .timer(TokioTimer::new())
        .max_header_list_size(s.max_header_bytes as u32)
        .keep_alive_interval(Some(std::time::Duration::from_secs(30)));
    b
}

/// Accepts connections until `shutdown` flips, then drains in-flight requests (bounded).
pub async fn serve_public(gw: Arc<Gateway>, listener: TcpListener, mut shutdown: watch::Receiver<bool>) {
    let builder = Arc::new(builder(&gw));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    if gw.server.fast_path {
        tokio::spawn(crate::fast::reap_idle(gw.clone(), shutdown.clone()));
    }
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
                let _ = stream.set_nodelay(true);
                let (gw, builder, watcher) = (gw.clone(), builder.clone(), graceful.watcher());
                if gw.server.fast_path {
                    tokio::spawn(crate::fast::serve(gw, stream, peer, builder, watcher, shutdown.clone()));
                } else {
                    tokio::spawn(async move { serve_hyper(gw, stream, peer, &builder, watcher).await });
                }
            }
            _ = shutdown.changed() => break,
        }
    }
    drop(listener);
    tracing::info!(timeout = ?gw.server.drain_timeout, "draining in-flight requests");
    tokio::select! {
        _ = graceful.shutdown() => tracing::info!("drained"),
        _ = tokio::time::sleep(gw.server.drain_timeout) => tracing::warn!("drain timeout reached; closing remaining connections"),
    }
}

/// Serves a connection (or the rest of one the fast path handed over) with hyper: HTTP/1.1
/// and h2c, upgrades, every endpoint. In-flight requests finish when the gateway drains.
pub async fn serve_hyper<I>(gw: Arc<Gateway>, io: I, peer: SocketAddr, builder: &auto::Builder<TokioExecutor>, watcher: Watcher)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = service_fn(move |req| gw.clone().handle(req, peer));
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), svc);
    if let Err(e) = watcher.watch(conn.into_owned()).await {
        tracing::debug!(peer = %peer, cause = %e, "connection ended with error");
    }
}

/// The admin listener: /healthz, /readyz, /metrics.
pub async fn serve_admin(gw: Arc<Gateway>, listener: TcpListener, mut shutdown: watch::Receiver<bool>) {
    let builder = Arc::new(auto::Builder::new(TokioExecutor::new()));
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let gw = gw.clone();
                let svc = service_fn(move |req| admin(gw.clone(), req));
                let builder = builder.clone();
                tokio::spawn(async move {
                    let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
                });
            }
            _ = shutdown.changed() => break,
        }
    }
}

async fn admin(gw: Arc<Gateway>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let text = |status: StatusCode, body: String, ctype: &'static str| {
        let mut r = Response::new(Body::full(Bytes::from(body)));
        *r.status_mut() = status;
        r.headers_mut().insert(header::CONTENT_TYPE, http::HeaderValue::from_static(ctype));
        r
    };
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return Ok(text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n".into(), "text/plain"));
    }
    Ok(match req.uri().path() {
        "/healthz" => text(StatusCode::OK, "ok\n".into(), "text/plain"),
        "/readyz" => {
            if gw.draining.load(Ordering::Acquire) {
                text(StatusCode::SERVICE_UNAVAILABLE, "draining\n".into(), "text/plain")
            } else if !gw.ready.load(Ordering::Acquire) {
                text(StatusCode::SERVICE_UNAVAILABLE, "starting\n".into(), "text/plain")
            } else {
                text(StatusCode::OK, "ready\n".into(), "text/plain")
            }
        }
        "/metrics" => text(StatusCode::OK, gw.metrics.render(), "text/plain; version=0.0.4"),
        _ => text(StatusCode::NOT_FOUND, "not found\n".into(), "text/plain"),
    })
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
