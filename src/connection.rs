//! One client connection served by hyper (HTTP/1.1 and h2c, upgrades), from its first byte or
//! from where the fast path handed it over. It must never keep an idle or hostile connection
//! open past its timers, and never drop a request in flight before the drain timeout.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::sync::watch;

use crate::Gateway;
use crate::reload::Live;

/// Builds the connection builder with the configured limits.
pub fn builder(gw: &Gateway) -> auto::Builder<TokioExecutor> {
    let s = &gw.server;
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(s.header_read_timeout)
        .max_buf_size(s.max_header_bytes.max(8192))
        .max_headers(s.max_headers)
        .keep_alive(true);
    // HTTP/2 gets the same head limits as HTTP/1.1 (the header count is checked per request in
    // `Gateway::handle`), bounded streams, and bounded reset floods (rapid reset: streams the
    // client opens and cancels; streams our errors reset). PING and SETTINGS floods are bounded
    // by h2 itself (one pending PONG, one pending SETTINGS ack); idle connections are closed by
    // `serve_hyper`'s idle timer.
    b.http2()
        .timer(TokioTimer::new())
        .max_header_list_size(s.max_header_bytes as u32)
        .max_concurrent_streams(s.http2_max_streams)
        .max_pending_accept_reset_streams(Some(20))
        .max_local_error_reset_streams(Some(256))
        .keep_alive_interval(Some(std::time::Duration::from_secs(30)))
        .keep_alive_timeout(std::time::Duration::from_secs(20));
    b
}

/// What a connection task holds besides its socket: its count against the connection caps
/// (released when the task ends) and the shutdown signal.
pub struct Conn {
    _guard: crate::conns::ConnGuard,
    pub shutdown: watch::Receiver<bool>,
}

impl Conn {
    pub fn new(guard: crate::conns::ConnGuard, shutdown: watch::Receiver<bool>) -> Conn {
        Conn { _guard: guard, shutdown }
    }
}

/// Serves a connection (or the rest of one the fast path handed over) with hyper: HTTP/1.1
/// and h2c, upgrades, every endpoint. The connection closes gracefully when it has had no
/// open request for `server.idle_timeout` (`header_read_timeout` before its first one: an
/// HTTP/2 handshake that never becomes a request) and when the gateway shuts down; in-flight
/// requests finish first.
pub async fn serve_hyper<I>(live: Arc<Live>, io: I, peer: SocketAddr, builder: &auto::Builder<TokioExecutor>, mut conn: Conn, subject: Option<crate::tls::ClientSubject>)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(crate::conns::Activity::default());
    let s = &live.load().server;
    let (first, idle, gw_drain) = (s.header_read_timeout, s.idle_timeout, s.drain_timeout);
    let act = activity.clone();
    let svc = service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
        if let Some(s) = &subject {
            req.extensions_mut().insert(s.clone());
        }
        // Each request runs on the config current when it starts (a reload never changes
        // the rules under a request in flight).
        let (gw, in_use) = (live.load(), act.begin());
        async move {
            let hsts = gw.server.hsts.clone();
            let mut resp = gw.handle(req, peer).await?;
            if let Some(v) = hsts {
                resp.headers_mut().insert(http::header::STRICT_TRANSPORT_SECURITY, v);
            }
            resp.body_mut().hold(in_use); // the request stays open until its body is sent
            Ok::<_, Infallible>(resp)
        }
    });
    let served = builder.serve_connection_with_upgrades(TokioIo::new(io), svc);
    tokio::pin!(served);
    let timer = tokio::time::sleep(first);
    tokio::pin!(timer);
    // A graceful close waits for the peer (HTTP/2: its answer to GOAWAY's PING), which a
    // hostile one never sends: once nothing is in flight (checked every IDLE_CLOSE_GRACE), or
    // at the latest after the drain timeout, the connection is dropped.
    let mut closing = None;
    let close = |served: std::pin::Pin<&mut _>, timer: std::pin::Pin<&mut tokio::time::Sleep>| {
        hyper_util::server::conn::auto::UpgradeableConnection::graceful_shutdown(served);
        let now = tokio::time::Instant::now();
        timer.reset(now + IDLE_CLOSE_GRACE);
        Some(now + gw_drain)
    };
    if *conn.shutdown.borrow() {
        closing = close(served.as_mut(), timer.as_mut());
    }
    loop {
        tokio::select! {
            r = served.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(peer = %peer, cause = %e, "connection ended with error");
                }
                return;
            }
            _ = conn.shutdown.changed(), if closing.is_none() => {
                closing = close(served.as_mut(), timer.as_mut());
            }
            _ = &mut timer => {
                let now = tokio::time::Instant::now();
                if let Some(hard) = closing {
                    if now >= hard || activity.deadline(first, idle).is_some() {
                        return; // nothing in flight (or no more time): drop the connection
                    }
                    timer.as_mut().reset(now + IDLE_CLOSE_GRACE);
                    continue;
                }
                match activity.deadline(first, idle) {
                    Some(at) if at <= now.into_std() => {
                        closing = close(served.as_mut(), timer.as_mut());
                    }
                    Some(at) => timer.as_mut().reset(at.into()),
                    None => timer.as_mut().reset(now + idle), // busy: look again later
                }
            }
        }
    }
}

/// How long an idle connection being closed may take to say goodbye.
const IDLE_CLOSE_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

