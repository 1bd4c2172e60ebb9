//! Upstream selection and forwarding. It must never buffer a body, never forward hop-by-hop
//! headers, and never trust a client's forwarding headers unless the peer is a trusted proxy.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, StatusCode, Uri, Version};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};

use crate::body::{Body, IdleBody};
use crate::config::{ConfigError, Server, UpstreamConfig};
use crate::error::GatewayError;

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static VIA_VALUE: HeaderValue = HeaderValue::from_static("1.1 xumm-gate");

/// One configured upstream.
#[derive(Debug)]
pub struct Upstream {
    /// Path prefix it serves (no trailing slash; empty for "/").
    pub prefix: String,
    pub label: Arc<str>,
    scheme: Scheme,
    authority: Authority,
    /// Path part of the upstream URL, no trailing slash.
    base_path: String,
    strip_prefix: bool,
    /// `aud` of assertions sent to this upstream.
    pub audience: Arc<str>,
    pub(crate) latency: metrics::Histogram,
    /// The broker app this upstream is (gets X-Xumm-User-Token handles).
    pub broker_app: Option<Arc<str>>,
    /// The Host header upstream requests carry (the URL's authority).
    pub host: HeaderValue,
    /// Names this upstream's connections in per-thread pools (unique per process).
    pub key: usize,
    /// TLS to an https:// upstream.
    tls: Option<UpstreamTls>,
}

/// How the gateway speaks TLS to one https:// upstream.
#[derive(Debug)]
struct UpstreamTls {
    config: rustls::ClientConfig,
    /// SNI and the name verified, when not the URL's host.
    server_name: Option<rustls_pki_types::ServerName<'static>>,
    http2: bool,
}

impl UpstreamTls {
    /// Reads `ca_file` and the client certificate of `[[upstream]]` number `i`.
    fn load(i: usize, cfg: &UpstreamConfig) -> Result<UpstreamTls, ConfigError> {
        use crate::tls::{pem_certs, pem_key, pem_roots};
        let key = |k: &str| format!("upstream[{i}].{k}");
        let read = |k: &str, path: &str| crate::config::read_file(&key(k), path);
        let roots = if cfg.ca_file.is_empty() {
            rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() }
        } else {
            pem_roots(&key("ca_file"), &cfg.ca_file, &read("ca_file", &cfg.ca_file)?)?
        };
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| crate::config::err(key("url"), e.to_string()))?
            .with_root_certificates(roots);
        let config = if cfg.client_cert.is_empty() {
            builder.with_no_client_auth()
        } else {
            let chain = pem_certs(&key("client_cert"), &cfg.client_cert, &read("client_cert", &cfg.client_cert)?)?;
            let der = pem_key(&key("client_key"), &cfg.client_key, &read("client_key", &cfg.client_key)?)?;
            builder.with_client_auth_cert(chain, der).map_err(|e| crate::config::err(key("client_key"), format!("{}: {e}", cfg.client_key)))?
        };
        let server_name = match cfg.tls_server_name.as_str() {
            "" => None,
            n => Some(rustls_pki_types::ServerName::try_from(n.to_string()).map_err(|_| crate::config::err(key("tls_server_name"), "is not a host name or IP address"))?),
        };
        Ok(UpstreamTls { config, server_name, http2: cfg.http2 })
    }

    /// A pooled client for one thread; `h1_only` for requests that may switch protocols
    /// (WebSocket needs HTTP/1.1's Upgrade).
    fn client(&self, connect_timeout: Duration, idle: Duration, h1_only: bool) -> crate::worker::TlsUpstreamClient {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.set_connect_timeout(Some(connect_timeout));
        http.enforce_http(false);
        let b = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(self.config.clone()).https_only();
        let b = match &self.server_name {
            Some(n) => b.with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(n.clone())),
            None => b,
        };
        let connector = if self.http2 && !h1_only { b.enable_all_versions().wrap_connector(http) } else { b.enable_http1().wrap_connector(http) };
        Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .pool_idle_timeout(idle)
            .pool_max_idle_per_host(1024)
            .build(connector)
    }
}

impl Upstream {
    /// From a checked `[[upstream]]` (`i` its index, for the error a library caller gets if it
    /// skipped the check: never a panic).
    fn new(i: usize, cfg: &UpstreamConfig) -> Result<Upstream, ConfigError> {
        let uri = &cfg.url.checked(&format!("upstream[{i}].url"))?.0;
        let host_text = if cfg.host_header.is_empty() { uri.authority().map_or("", |a| a.as_str()) } else { &cfg.host_header };
        let (Some(authority), Ok(host)) = (uri.authority().cloned(), HeaderValue::from_str(host_text)) else {
            return Err(crate::config::err(format!("upstream[{i}].url"), "must name a host"));
        };
        let tls = (uri.scheme() == Some(&Scheme::HTTPS)).then(|| UpstreamTls::load(i, cfg)).transpose()?;
        Ok(Upstream {
            prefix: cfg.path.trim_end_matches('/').to_string(),
            label: Arc::from(cfg.url.text()),
            scheme: uri.scheme().cloned().unwrap_or(Scheme::HTTP),
            authority,
            base_path: uri.path().trim_end_matches('/').to_string(),
            strip_prefix: cfg.strip_prefix,
            audience: Arc::from(cfg.assertion_audience.as_deref().unwrap_or(cfg.url.text())),
            latency: crate::metrics::upstream_histogram(cfg.url.text()),
            broker_app: cfg.broker_app.as_deref().map(Arc::from),
            host,
            key: NEXT_UPSTREAM_KEY.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            tls,
        })
    }

    /// Plain `http://`: the fast path speaks only that (TLS upstreams go through the client).
    pub fn is_plain_http(&self) -> bool {
        self.scheme == Scheme::HTTP
    }

    /// Host and port to connect to (brackets of an IPv6 literal removed).
    pub fn connect_to(&self) -> (&str, u16) {
        let host = self.authority.host();
        let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
        (host, self.authority.port_u16().unwrap_or(if self.tls.is_some() { 443 } else { 80 }))
    }

    /// The upstream path for a normalized request path, as three pieces to concatenate: the
    /// base path, a '/' if needed, and the rest of the path (the prefix removed if stripped).
    pub fn path_pieces<'a>(&'a self, path: &'a str) -> [&'a str; 3] {
        let strip = self.strip_prefix && !self.prefix.is_empty();
        let rest = if strip { &path[self.prefix.len().min(path.len())..] } else { path };
        [&self.base_path, if rest.starts_with('/') { "" } else { "/" }, rest]
    }

    /// True when the request's own path and query go upstream unchanged.
    pub fn passes_path_through(&self) -> bool {
        self.base_path.is_empty() && (!self.strip_prefix || self.prefix.is_empty())
    }

    /// The URI to send upstream for a request whose URI already carries the normalized path.
    /// Without a base path or prefix stripping, the request's path and query are reused as they
    /// are (a refcount, no copy).
    fn target(&self, req: &Uri) -> Result<Uri, GatewayError> {
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(self.scheme.clone());
        parts.authority = Some(self.authority.clone());
        parts.path_and_query = if self.passes_path_through() {
            req.path_and_query().cloned()
        } else {
            let query = req.query();
            let mut pq: String = self.path_pieces(req.path()).concat();
            if let Some(q) = query {
                pq.push('?');
                pq.push_str(q);
            }
            Some(PathAndQuery::try_from(pq).map_err(|_| GatewayError::NoUpstream)?)
        };
        Uri::from_parts(parts).map_err(|_| GatewayError::NoUpstream)
    }
}

static NEXT_UPSTREAM_KEY: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// All upstreams and the pooled clients that reach them.
pub struct Proxy {
    upstreams: Vec<Upstream>, // longest prefix first
    /// Names this proxy's clients in per-thread pools; dead once the proxy is dropped (a
    /// reload replaced it), so the pools can let go of them.
    alive: Arc<()>,
    pub(crate) connect_timeout: Duration,
    pub(crate) idle_timeout: Duration,
    pub(crate) timeout: Duration,
    body_timeout: Duration,
    trusted: Vec<ipnet::IpNet>,
    pub(crate) proto: HeaderValue,
}

impl Proxy {
    pub fn new(server: &Server, upstreams: &[UpstreamConfig]) -> Result<Proxy, ConfigError> {
        let mut list: Vec<Upstream> = upstreams.iter().enumerate().map(|(i, u)| Upstream::new(i, u)).collect::<Result<_, _>>()?;
        list.sort_by_key(|u| std::cmp::Reverse(u.prefix.len()));
        let proto = HeaderValue::from_str(server.public_url.scheme()).expect("http or https");
        Ok(Proxy {
            upstreams: list,
            alive: Arc::new(()),
            connect_timeout: server.upstream_connect_timeout,
            idle_timeout: server.upstream_idle_timeout,
            timeout: server.upstream_timeout,
            body_timeout: server.body_timeout,
            trusted: server.trusted_proxies.clone(),
            proto,
        })
    }

    /// Sends `req` on this thread's pooled client (built on first use). The client is borrowed,
    /// not cloned: `request` already takes the handles its future needs.
    fn request(&self, req: Request<IdleBody>, up: &Upstream, upgrade: bool) -> hyper_util::client::legacy::ResponseFuture {
        // One pool per thread and proxy: with one current-thread runtime per core, each runtime
        // keeps its own upstream connections and never wakes another core for them.
        if let Some(tls) = &up.tls {
            return crate::worker::with(|w| {
                let mut pools = w.tls_clients.borrow_mut();
                let key = (up.key, upgrade && tls.http2);
                if let Some((_, _, c)) = pools.iter().find(|(_, k, _)| *k == key) {
                    return c.request(req);
                }
                pools.retain(|(owner, _, _)| owner.strong_count() > 0);
                let client = tls.client(self.connect_timeout, self.idle_timeout, key.1);
                let fut = client.request(req);
                pools.push((Arc::downgrade(&self.alive), key, client));
                fut
            });
        }
        crate::worker::with(|w| {
            let mut pools = w.clients.borrow_mut();
            if let Some((_, c)) = pools.iter().find(|(owner, _)| std::ptr::eq(owner.as_ptr(), Arc::as_ptr(&self.alive))) {
                return c.request(req);
            }
            // Clients of proxies a reload replaced go with their idle connections.
            pools.retain(|(owner, _)| owner.strong_count() > 0);
            let mut connector = HttpConnector::new();
            connector.set_nodelay(true);
            connector.set_connect_timeout(Some(self.connect_timeout));
            connector.enforce_http(true);
            let client = Client::builder(TokioExecutor::new())
                .pool_timer(TokioTimer::new())
                .timer(TokioTimer::new())
                .pool_idle_timeout(self.idle_timeout)
                .pool_max_idle_per_host(1024)
                .build(connector);
            let fut = client.request(req);
            pools.push((Arc::downgrade(&self.alive), client));
            fut
        })
    }

    /// The upstream serving a normalized path (longest segment-wise prefix).
    pub fn select(&self, path: &str) -> Option<&Upstream> {
        self.upstreams.iter().find(|u| crate::path::has_prefix(path, &u.prefix))
    }

    pub fn is_trusted(&self, peer: &SocketAddr) -> bool {
        self.is_trusted_ip(peer.ip())
    }

    pub fn is_trusted_ip(&self, ip: std::net::IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.trusted.iter().any(|n| n.contains(&ip))
    }

    /// Sends the request to `up` and returns its response with the body still streaming.
    pub async fn forward(
        &self,
        mut req: Request<Incoming>,
        up: &Upstream,
        peer: SocketAddr,
        upgrade: Option<HeaderValue>,
    ) -> Result<Response<Body>, GatewayError> {
        let client_upgrade = upgrade.as_ref().map(|_| hyper::upgrade::on(&mut req));
        let trusted = self.is_trusted(&peer);

        let uri = up.target(req.uri())?;
        let host = req
            .headers()
            .get(header::HOST)
            .cloned()
            .or_else(|| req.uri().authority().and_then(|a| HeaderValue::from_str(a.as_str()).ok()));
        *req.uri_mut() = uri;
        *req.version_mut() = Version::HTTP_11;

        // Hop-by-hop headers were removed before the gateway set any of its own (the caller's
        // job, so that a Connection header cannot name one of them).
        let headers = req.headers_mut();
        headers.insert(header::HOST, up.host.clone()); // precomputed: the client would format it
        set_forwarded(headers, peer, trusted, host, &self.proto);
        if let Some(proto) = &upgrade {
            headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            headers.insert(header::UPGRADE, proto.clone());
        }

        // The upstream call as a span of its own; the upstream continues the trace from it.
        let step = crate::telemetry::child("upstream", opentelemetry::trace::SpanKind::Client);
        step.inject(req.headers_mut());
        let started = Instant::now();
        let req = req.map(|b| IdleBody::new(b, self.body_timeout));
        let result = tokio::time::timeout(self.timeout, self.request(req, up, upgrade.is_some())).await;
        crate::metrics::record(&up.latency, started.elapsed());
        if !matches!(result, Ok(Ok(_))) {
            step.failed("upstream failed");
        }
        drop(step);
        let mut resp = match result {
            Err(_) => return Err(upstream_timed_out(&up.label)),
            Ok(Err(e)) if caused_by::<crate::body::BodyTimeout>(&e) => return Err(GatewayError::BodyTimeout),
            Ok(Err(e)) => {
                let kind = if is_timeout(&e) {
                    UpstreamFailure::Timeout
                } else if e.is_connect() {
                    UpstreamFailure::Connect
                } else if chain(&e).any(|c| c.downcast_ref::<hyper::Error>().is_some_and(|h| h.is_parse())) {
                    UpstreamFailure::Protocol
                } else {
                    UpstreamFailure::Reset
                };
                return Err(upstream_failed(&up.label, kind, &error_chain(&e)));
            }
            Ok(Ok(resp)) => resp,
        };

        if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
            let Some(client_upgrade) = client_upgrade else {
                // A switch nobody asked for would leave the gateway out of the connection.
                return Err(upstream_failed(&up.label, UpstreamFailure::Protocol, &"101 Switching Protocols without an upgrade request"));
            };
            let proto = resp.headers().get(header::UPGRADE).cloned();
            let upstream_upgrade = hyper::upgrade::on(&mut resp);
            let label = up.label.clone();
            tokio::spawn(async move {
                match tokio::try_join!(client_upgrade, upstream_upgrade) {
                    Ok((c, u)) => {
                        let (mut c, mut u) = (TokioIo::new(c), TokioIo::new(u));
                        let _ = tokio::io::copy_bidirectional(&mut c, &mut u).await;
                    }
                    Err(e) => tracing::debug!(upstream = %label, cause = %e, "upgrade failed"),
                }
            });
            let (mut parts, body) = resp.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            parts.headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            if let Some(p) = proto {
                parts.headers.insert(header::UPGRADE, p);
            }
            return Ok(Response::from_parts(parts, Body::stream(body)));
        }
        let (mut parts, body) = resp.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        Ok(Response::from_parts(parts, Body::stream(body)))
    }
}

/// The `Upgrade` value when a client asks to switch to WebSocket (`Connection: upgrade` +
/// `Upgrade: websocket`), the one protocol switch the gateway relays. Any other (`h2c` above
/// all: an upstream that accepted it would speak HTTP/2 with the client past every rule) is
/// never forwarded; the request goes on as a plain one.
pub fn websocket_requested(h: &HeaderMap) -> Option<HeaderValue> {
    let wants = h
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(connection_tokens)
        .any(|t| t.eq_ignore_ascii_case("upgrade"));
    let mut values = h.get_all(header::UPGRADE).iter();
    match (wants, values.next(), values.next()) {
        (true, Some(v), None) if v.as_bytes().trim_ascii().eq_ignore_ascii_case(b"websocket") => Some(HeaderValue::from_static("websocket")),
        _ => None,
    }
}

/// Removes hop-by-hop headers (RFC 9110 section 7.6.1): Connection and every header it names,
/// Keep-Alive, Proxy-*, TE, Trailer, Transfer-Encoding, Upgrade. One pass over the names present
/// (usually none of them are), instead of a hash lookup per hop-by-hop name.
pub fn strip_hop_by_hop(h: &mut HeaderMap) {
    let mut found: Vec<HeaderName> = Vec::new();
    let mut connection = false;
    for k in h.keys() {
        connection |= k == header::CONNECTION;
        if is_hop_by_hop(k.as_str()) {
            found.push(k.clone());
        }
    }
    if connection {
        let named = h
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(connection_tokens)
            .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok());
        found.extend(named.collect::<Vec<_>>());
    }
    for n in found {
        h.remove(n);
    }
}

/// True for the fixed hop-by-hop names (any letter case): Connection, Keep-Alive, Proxy-*, TE,
/// Trailer, Transfer-Encoding, Upgrade. Headers that Connection names are hop-by-hop as well.
pub fn is_hop_by_hop(name: &str) -> bool {
    const FIXED: [&str; 6] = ["connection", "keep-alive", "te", "trailer", "transfer-encoding", "upgrade"];
    FIXED.iter().any(|f| f.eq_ignore_ascii_case(name)) || name.get(..6).is_some_and(|p| p.eq_ignore_ascii_case("proxy-"))
}

/// The tokens of one Connection header value, trimmed, empty ones skipped.
pub fn connection_tokens(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|t| !t.is_empty())
}

/// The peer's address as a header value. A proxy sees the same few peers over and over (one
/// client per keep-alive connection, or a load balancer), so each thread keeps the last one.
pub fn peer_value(ip: std::net::IpAddr) -> HeaderValue {
    crate::worker::with(|w| {
        let mut last = w.last_peer.borrow_mut();
        if let Some((_, v)) = last.as_ref().filter(|(a, _)| *a == ip) {
            return v.clone();
        }
        let v = HeaderValue::from_str(&ip.to_string()).expect("an IP address is a valid header value");
        *last = Some((ip, v.clone()));
        v
    })
}

/// Sets X-Forwarded-For/Proto/Host and Via. A client's own X-Forwarded-* are kept (and appended
/// to) only when the peer is a trusted proxy; otherwise they are replaced.
fn set_forwarded(h: &mut HeaderMap, peer: SocketAddr, trusted: bool, host: Option<HeaderValue>, proto: &HeaderValue) {
    let ip = peer_value(peer.ip().to_canonical());
    let pieces = forwarded_for(trusted, h.get(&X_FORWARDED_FOR).map(HeaderValue::as_bytes), ip.as_bytes());
    // The peer alone (the common case) is the cached value itself: no new allocation.
    let xff = if pieces[0].is_empty() { Ok(ip.clone()) } else { HeaderValue::from_bytes(&pieces.concat()) };
    if let Ok(v) = xff {
        h.insert(X_FORWARDED_FOR.clone(), v);
    }
    if sets_own(trusted, h.contains_key(&X_FORWARDED_PROTO)) {
        h.insert(X_FORWARDED_PROTO.clone(), proto.clone());
    }
    if sets_own(trusted, h.contains_key(&X_FORWARDED_HOST)) {
        match host {
            Some(v) => h.insert(X_FORWARDED_HOST.clone(), v),
            None => h.remove(&X_FORWARDED_HOST),
        };
    }
    h.append(header::VIA, VIA_VALUE.clone());
}

/// The pieces of the X-Forwarded-For value the upstream gets (both proxy paths): a trusted
/// peer's list with the peer appended, anyone else's replaced by the peer.
pub fn forwarded_for<'a>(trusted: bool, client: Option<&'a [u8]>, peer: &'a [u8]) -> [&'a [u8]; 3] {
    match client {
        Some(prev) if trusted && !prev.is_empty() => [prev, b", ", peer],
        _ => [b"", b"", peer],
    }
}

/// Whether the gateway sets X-Forwarded-Proto / -Host itself: unless a trusted peer sent them.
pub fn sets_own(trusted: bool, client_sent: bool) -> bool {
    !(trusted && client_sent)
}

/// Logs that `upstream` sent no response head within `upstream_timeout`; the client gets 504.
pub fn upstream_timed_out(upstream: &str) -> GatewayError {
    tracing::warn!(upstream, cause = "no response head within upstream_timeout", "upstream timeout");
    crate::metrics::upstream_error(upstream, UpstreamFailure::Timeout.label());
    GatewayError::UpstreamTimeout
}

/// How an upstream failed, as `xumm_gate_upstream_errors_total` counts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpstreamFailure {
    /// No connection (refused, unreachable).
    Connect,
    /// Connecting or answering took too long.
    Timeout,
    /// The connection broke or closed before a response.
    Reset,
    /// A response the gateway cannot relay (malformed, misframed, an unasked protocol switch).
    Protocol,
}

impl UpstreamFailure {
    pub fn label(self) -> &'static str {
        match self {
            UpstreamFailure::Connect => "connect",
            UpstreamFailure::Timeout => "timeout",
            UpstreamFailure::Reset => "reset",
            UpstreamFailure::Protocol => "protocol",
        }
    }
}

/// Logs and counts why `upstream` failed; the client gets 504 for a timeout, else 502.
pub fn upstream_failed(upstream: &str, kind: UpstreamFailure, cause: &dyn std::fmt::Display) -> GatewayError {
    tracing::warn!(upstream, kind = kind.label(), cause = %cause, "upstream failed");
    crate::metrics::upstream_error(upstream, kind.label());
    if kind == UpstreamFailure::Timeout { GatewayError::UpstreamTimeout } else { GatewayError::UpstreamUnavailable }
}

/// `e` and every error behind it, outermost first.
fn chain<'a>(e: &'a (dyn std::error::Error + 'static)) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(e), |err| err.source())
}

/// True when an error of type `E` is in `e`'s source chain.
fn caused_by<E: std::error::Error + 'static>(e: &(dyn std::error::Error + 'static)) -> bool {
    chain(e).any(|err| err.is::<E>())
}

fn is_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    chain(e).any(|err| err.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut))
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    chain(e).map(|err| err.to_string()).collect::<Vec<_>>().join(": ")
}
