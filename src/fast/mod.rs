//! The HTTP/1.1 fast path: a plain GET or HEAD for a public route or a live cookie session is
//! relayed inside the client connection's own task, through one read buffer and a pooled
//! upstream socket, with no task, channel or header map per request (the way nginx proxies).
//! It must never take a request it cannot finish as the general path would: everything else
//! (bodies, upgrades, sign-in, Bearer tokens, the gateway's endpoints, HTTP/2, malformed input)
//! goes to hyper with every unread byte, before any of it is answered. Parsing is httparse's;
//! this module only frames.

mod request;
mod response;
mod rewind;

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Buf, BytesMut};
use http::HeaderValue;
use hyper_util::rt::TokioExecutor;
use hyper_util::server::conn::auto;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Sleep;

use crate::Gateway;
use crate::accesslog::AccessLog;
use crate::error::GatewayError;
use request::{Peer, Plan, Planned};
use response::{Framing, Parsed};

/// What a connection does after a request.
enum Step {
    Again,
    Close,
    Handover,
}

/// A client connection the fast path can serve: a socket, or a TLS stream over one.
pub trait ClientIo: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static {}
impl<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static> ClientIo for S {}

struct Conn<S> {
    stream: S,
    peer: Peer,
    /// Bytes read from the client and not yet used.
    buf: BytesMut,
    /// The upstream's request head, then the client's response head.
    out: Vec<u8>,
    /// Bytes read from the upstream.
    ubuf: BytesMut,
    /// One timer per connection, re-armed for each wait that has a deadline.
    timer: Pin<Box<Sleep>>,
}

/// Serves one client connection: fast-path requests here, then (if one is not) the rest of the
/// connection through hyper.
pub async fn serve<S: ClientIo>(
    live: Arc<crate::reload::Live>,
    stream: S,
    addr: SocketAddr,
    builder: Arc<auto::Builder<TokioExecutor>>,
    mut conn: crate::connection::Conn,
) {
    let gw = live.load();
    let peer = Peer { trusted: gw.proxy.is_trusted(&addr), ip: crate::proxy::peer_value(addr.ip().to_canonical()) };
    let mut c = Conn {
        stream,
        peer,
        buf: BytesMut::with_capacity(8192),
        out: Vec::with_capacity(1024),
        ubuf: BytesMut::with_capacity(16 * 1024),
        timer: Box::pin(tokio::time::sleep(gw.server.header_read_timeout)),
    };
    drop(gw);
    loop {
        // Each request runs on the config current when it starts.
        match c.next(&live.load(), &mut conn.shutdown).await {
            Step::Again => {}
            Step::Close => {
                let _ = c.stream.shutdown().await;
                return;
            }
            Step::Handover => break,
        }
    }
    let io = rewind::Rewind::new(c.buf.freeze(), c.stream);
    crate::connection::serve_hyper(live, io, addr, &builder, conn, None).await;
}

/// The fast path's per-request decision on a request head: parse, policy, session lookup and
/// the upstream head written into `out`. Returns the upstream head's length, or None when the
/// request is not the fast path's. For `benches/pieces.rs`; serving goes through `serve`.
#[doc(hidden)]
pub fn plan_head(gw: &Gateway, head: &[u8], out: &mut Vec<u8>) -> Option<usize> {
    let peer = Peer { trusted: false, ip: HeaderValue::from_static("192.0.2.1") };
    match request::plan(gw, head, &peer, out) {
        Planned::Ready(_) => Some(out.len()),
        Planned::Partial | Planned::Handover | Planned::Lookup(_) => None,
    }
}

/// Closes idle upstream sockets of this thread's pool as they pass `server.upstream_idle_timeout`,
/// until `shutdown` flips. Runs once per worker runtime (each owns its thread's pool).
pub async fn reap_idle(live: Arc<crate::reload::Live>, mut shutdown: watch::Receiver<bool>) {
    let idle = live.load().proxy.idle_timeout;
    let mut every = tokio::time::interval((idle / 2).clamp(std::time::Duration::from_millis(50), std::time::Duration::from_secs(5)));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => response::reap(Instant::now(), idle),
            _ = shutdown.changed() => return,
        }
    }
}

impl<S: ClientIo> Conn<S> {
    /// Reads and answers one request, or says it is not the fast path's.
    async fn next(&mut self, gw: &Gateway, shutdown: &mut watch::Receiver<bool>) -> Step {
        let mut armed = false;
        let mut looked_up = false;
        let plan = loop {
            match request::plan(gw, &self.buf, &self.peer, &mut self.out) {
                Planned::Ready(p) => break p,
                Planned::Handover => return Step::Handover,
                Planned::Lookup(sid) if !looked_up => {
                    // Into L1 and plan again (once); no session, or a store fault, is the
                    // general path's to answer (302/401, or 503).
                    looked_up = true;
                    let found = match &gw.admission.auth {
                        Some(auth) => crate::session::SessionStore::get(&auth.store, &sid).await,
                        None => Ok(None),
                    };
                    if matches!(found, Ok(Some(_))) {
                        continue;
                    }
                    return Step::Handover;
                }
                Planned::Lookup(_) => return Step::Handover,
                Planned::Partial => {}
            }
            if self.buf.len() >= gw.server.max_header_bytes {
                return Step::Handover; // hyper answers 431
            }
            if self.buf.is_empty() && *shutdown.borrow() {
                return Step::Close; // draining: no new request on this connection
            }
            if !armed {
                // Slowloris defence: the whole head within header_read_timeout.
                self.timer.as_mut().reset(tokio::time::Instant::now() + gw.server.header_read_timeout);
                armed = true;
            }
            self.buf.reserve(4096);
            let idle = self.buf.is_empty();
            tokio::select! {
                biased;
                r = self.stream.read_buf(&mut self.buf) => match r {
                    Ok(n) if n > 0 => {}
                    _ => return Step::Close,
                },
                _ = &mut self.timer => return Step::Close,
                _ = shutdown.changed(), if idle => return Step::Close,
            }
        };
        self.answer(gw, plan).await
    }

    async fn answer(&mut self, gw: &Gateway, mut plan: Plan<'_>) -> Step {
        let start = Instant::now();
        self.buf.advance(plan.head_len);
        let mut log = AccessLog {
            method: plan.method.clone(),
            path: Some(plan.target.clone()),
            route: plan.route.clone(),
            upstream: Some(plan.up.label.clone()),
            status: http::StatusCode::BAD_GATEWAY,
            start,
            bytes: 0,
            body_error: false,
            inflight: crate::metrics::InFlight::start(),
            request_id: plan.request_id,
            trace: plan.trace.take(),
        };
        let mut upstream = match self.exchange(gw, &plan, start).await {
            Ok(u) => u,
            Err(e) => return self.fail(gw, &plan, e, &mut log).await,
        };
        let head_request = plan.method == http::Method::HEAD;
        let head = loop {
            let ours = response::Ours { hsts: gw.server.hsts.as_ref().map(|v| v.as_bytes()), request_id: plan.request_id.as_bytes() };
            match response::response_head(&self.ubuf, head_request, plan.close, ours, &mut self.out) {
                Parsed::Head(h) => break h,
                Parsed::Informational(n) => {
                    self.ubuf.advance(n);
                    continue; // the real head may be in the buffer already
                }
                Parsed::Partial => {}
                Parsed::Bad(cause) => return self.fail(gw, &plan, Failure::Bad(cause), &mut log).await,
            }
            if let Err(e) = self.read_upstream(&mut upstream).await {
                return self.fail(gw, &plan, e, &mut log).await;
            }
        };
        crate::metrics::record(&plan.up.latency, start.elapsed());
        log.status = head.status;
        self.ubuf.advance(head.len);
        let close = plan.close || head.framing == Framing::Close;
        match response::relay(&mut self.stream, &mut upstream, &mut self.ubuf, &mut self.out, head.framing, &mut log.bytes).await {
            Ok(clean) => {
                if clean && head.reusable {
                    response::checkin(plan.up, upstream, start);
                }
                if close { Step::Close } else { Step::Again }
            }
            Err(e) => {
                match e {
                    response::RelayError::Upstream(cause) => tracing::warn!(request_id = %plan.request_id, upstream = %plan.up.label, cause, "upstream body cut short"),
                    response::RelayError::Client(e) => tracing::debug!(request_id = %plan.request_id, cause = %e, "client went away mid-response"),
                }
                log.body_error = true;
                Step::Close
            }
        }
    }

    /// Sends the upstream head on a pooled socket (or a new one) and waits for the first bytes
    /// of the response. A pooled socket that turns out dead before answering anything is
    /// retried once on a fresh connection (GET and HEAD are safe to repeat).
    async fn exchange(&mut self, gw: &Gateway, plan: &Plan<'_>, start: Instant) -> Result<TcpStream, Failure> {
        let proxy = &gw.proxy;
        self.ubuf.clear();
        let mut pooled = response::checkout(plan.up, start, proxy.idle_timeout);
        self.timer.as_mut().reset(tokio::time::Instant::from_std(start) + proxy.timeout);
        loop {
            let reused = pooled.is_some();
            let mut s = match pooled.take() {
                Some(s) => s,
                None => response::connect(plan.up, proxy.connect_timeout).await.map_err(Failure::Connect)?,
            };
            let sent = s.write_all(&self.out).await;
            let read = match sent {
                Ok(()) => self.read_upstream(&mut s).await,
                Err(e) => Err(Failure::Io(e)),
            };
            match read {
                Ok(()) => return Ok(s),
                Err(Failure::Io(_) | Failure::Closed) if reused => response::forget(plan.up),
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads more of the response head, within the upstream timeout.
    async fn read_upstream(&mut self, s: &mut TcpStream) -> Result<(), Failure> {
        if self.ubuf.len() >= response::MAX_HEAD {
            return Err(Failure::Bad("response head too large"));
        }
        self.ubuf.reserve(8192);
        tokio::select! {
            biased;
            r = s.read_buf(&mut self.ubuf) => match r {
                Ok(0) => Err(if self.ubuf.is_empty() { Failure::Closed } else { Failure::Bad("closed mid-head") }),
                Ok(_) => Ok(()),
                Err(e) => Err(Failure::Io(e)),
            },
            _ = &mut self.timer => Err(Failure::Timeout),
        }
    }

    /// Answers an upstream failure with the gateway's error response (the client connection
    /// stays usable). Failures count in the upstream latency histogram, as on the hyper path.
    async fn fail(&mut self, gw: &Gateway, plan: &Plan<'_>, failure: Failure, log: &mut AccessLog) -> Step {
        crate::metrics::record(&plan.up.latency, log.start.elapsed());
        // The failure's log line and page carry the request's id, as on the general path.
        let resp = tracing::info_span!("request", request_id = %plan.request_id)
            .in_scope(|| crate::request_id::rendering(plan.request_id, || failure.into_error(plan).response_for(plan.accepts)));
        log.status = resp.status();
        let (parts, body) = resp.into_parts();
        let body = body.into_full().unwrap_or_default();
        let out = &mut self.out;
        status_line(out, parts.status, None);
        for (n, v) in &parts.headers {
            header_line(out, n.as_str().as_bytes(), v.as_bytes());
        }
        if let Some(v) = gw.server.hsts.as_ref().map(|v| v.as_bytes()) {
            header_line(out, b"strict-transport-security", v);
        }
        header_line(out, b"x-request-id", plan.request_id.as_bytes());
        header_line(out, b"content-length", body.len().to_string().as_bytes());
        if plan.close {
            out.extend_from_slice(b"connection: close\r\n");
        }
        out.extend_from_slice(b"\r\n");
        if plan.method != http::Method::HEAD {
            out.extend_from_slice(&body);
            log.bytes = body.len() as u64;
        }
        let written = match self.stream.write_all(out).await {
            Ok(()) => self.stream.flush().await,
            e => e,
        };
        match written {
            Ok(()) if !plan.close => Step::Again,
            _ => Step::Close,
        }
    }
}

/// Starts a response head in `out`: the status line, with `reason` or else the canonical one.
fn status_line(out: &mut Vec<u8>, status: http::StatusCode, reason: Option<&str>) {
    out.clear();
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    let reason = reason.filter(|r| !r.is_empty()).or(status.canonical_reason()).unwrap_or("");
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Appends one `name: value` header line to a head being written.
fn header_line(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Why no response head came from the upstream.
enum Failure {
    Connect(std::io::Error),
    Io(std::io::Error),
    /// Closed before sending a byte.
    Closed,
    Timeout,
    Bad(&'static str),
}

impl Failure {
    /// Logs the cause and maps it to the client's error, with the general path's helpers.
    fn into_error(self, plan: &Plan<'_>) -> GatewayError {
        use crate::proxy::{UpstreamFailure as Kind, upstream_failed, upstream_timed_out};
        let label = &plan.up.label;
        match self {
            Failure::Timeout => upstream_timed_out(label),
            Failure::Connect(e) if e.kind() == std::io::ErrorKind::TimedOut => upstream_failed(label, Kind::Timeout, &e),
            Failure::Connect(e) => upstream_failed(label, Kind::Connect, &e),
            Failure::Io(e) => upstream_failed(label, Kind::Reset, &e),
            Failure::Closed => upstream_failed(label, Kind::Reset, &"closed without a response"),
            Failure::Bad(cause) => upstream_failed(label, Kind::Protocol, &cause),
        }
    }
}
