//! `[server]`: listeners, limits and timeouts, checked into `Server`. It must never accept a
//! value outside its documented bounds.

use super::*;

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Public listener.
    pub listen: Parsed<SocketAddr>,
    /// Admin listener: /healthz, /readyz, /metrics. Empty string switches it off.
    pub admin_listen: Parsed<Option<SocketAddr>>,
    /// The URL users reach the gateway at (scheme decides X-Forwarded-Proto and cookie Secure).
    pub public_url: Parsed<url::Url>,
    /// Path prefix of the gateway's own endpoints.
    pub prefix: String,
    /// Hosts return URLs may name besides public_url's; `.example.com` allows it and every host
    /// under it.
    pub allowed_redirect_hosts: Vec<String>,
    /// Peers whose X-Forwarded-* / X-Original-URI headers are believed.
    pub trusted_proxies: Vec<Parsed<IpNet>>,
    /// Tokio worker threads; 0 means one per core.
    pub workers: usize,
    /// A client must finish sending request headers within this time (slowloris defence).
    pub header_read_timeout: Span,
    /// Largest request head (request line + headers) in bytes.
    pub max_header_bytes: usize,
    /// Most request headers accepted.
    pub max_headers: usize,
    /// Connecting to an upstream must finish within this time (else 502).
    pub upstream_connect_timeout: Span,
    /// The upstream must send its response head within this time (else 504).
    pub upstream_timeout: Span,
    /// Idle pooled upstream connections are closed after this time.
    pub upstream_idle_timeout: Span,
    /// On SIGTERM/SIGINT in-flight requests get this long to finish.
    pub drain_timeout: Span,
    /// Relay plain HTTP/1.1 GET/HEAD requests in the connection's own task (src/fast); every
    /// other request goes through hyper either way. `false` sends everything through hyper.
    pub fast_path: bool,
    /// Open client connections at most (lowered to fit the open-file limit, see README).
    pub max_connections: usize,
    /// Open client connections at most from one address (IPv6: one /64); trusted proxies
    /// count only against `max_connections`.
    pub max_connections_per_ip: u32,
    /// A connection with no open request is closed after this (HTTP/1.1 keep-alive on the
    /// general path, HTTP/2); before its first request it gets `header_read_timeout`.
    pub idle_timeout: Span,
    /// A request body that sends nothing for this long is cut off (408).
    pub body_timeout: Span,
    /// Concurrent streams per HTTP/2 connection.
    pub http2_max_streams: u32,
    /// Sign-in starts and callbacks per minute from one client address (bursts of a third of
    /// it); more get 429 with Retry-After. Each pair can make the gateway call the provider's
    /// token endpoint with the app's credentials. 0 switches the limit off.
    pub sign_in_per_minute: u32,
    /// Strict path mode: refuse with 400 paths that upstream frameworks may read differently
    /// (`;` parameters, trailing dots or spaces, encoded '%', encoded control characters)
    /// before any rule is matched. A route can opt out with `strict_path = false`.
    pub strict_paths: bool,
    /// `[server.tls]`: the public listener speaks TLS (HTTPS and HTTP/2 by ALPN).
    pub tls: Option<TlsConfig>,
    /// When set, the admin listener's actions (`POST /sessions/revoke`, `POST /config/reload`)
    /// need `Authorization: Bearer <admin_token>`; its probes and /metrics stay open.
    pub admin_token: Secret,
}

/// `[server.tls]`: certificates for the public listener, chosen by the name the client asks
/// for (SNI), optional client certificates, and the plain-HTTP listener that only redirects.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file: the certificate chain, leaf first. Served when no `sni` entry names the host.
    pub cert: String,
    /// PEM file: the private key (PKCS#8, PKCS#1 or SEC1).
    pub key: String,
    /// More certificates, each chosen for the host names it covers.
    #[serde(default)]
    pub sni: Vec<SniConfig>,
    /// PEM file of the CAs client certificates must chain to; "" asks clients for none.
    #[serde(default)]
    pub client_ca: String,
    /// With `client_ca`: "required" (no certificate, no connection) or "optional".
    #[serde(default)]
    pub client_auth: Choice<ClientAuth>,
    /// Oldest TLS version spoken: "1.2" or "1.3".
    #[serde(default)]
    pub min_version: Choice<TlsVersion>,
    /// Strict-Transport-Security value on every response; "" sends none.
    #[serde(default)]
    pub hsts: String,
    /// A plain-HTTP listener that only redirects to HTTPS; "" (default) opens none.
    #[serde(default = "no_address")]
    pub redirect_http_listen: Parsed<Option<SocketAddr>>,
    /// How often the certificate, key and CA files are checked for changes.
    #[serde(default = "tls_reload_interval")]
    pub reload_interval: Span,
}

/// One `[[server.tls.sni]]` certificate.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SniConfig {
    pub cert: String,
    pub key: String,
    /// The names it is served for (exact, or `*.example.org`); default: the DNS names the
    /// certificate itself lists.
    #[serde(default)]
    pub hosts: Vec<String>,
}

fn no_address() -> Parsed<Option<SocketAddr>> {
    "".into()
}

fn tls_reload_interval() -> Span {
    "10s".into()
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:4180".into(),
            admin_listen: "127.0.0.1:9180".into(),
            public_url: "http://127.0.0.1:4180".into(),
            prefix: "/.xumm".into(),
            allowed_redirect_hosts: vec![],
            trusted_proxies: vec!["127.0.0.0/8".into(), "::1/128".into()],
            workers: 0,
            header_read_timeout: "10s".into(),
            max_header_bytes: 64 * 1024,
            max_headers: 100,
            upstream_connect_timeout: "5s".into(),
            upstream_timeout: "60s".into(),
            upstream_idle_timeout: "50s".into(),
            drain_timeout: "30s".into(),
            fast_path: true,
            strict_paths: true,
            sign_in_per_minute: 60,
            max_connections: 10_000,
            max_connections_per_ip: 256,
            idle_timeout: "60s".into(),
            body_timeout: "30s".into(),
            http2_max_streams: 100,
            tls: None,
            admin_token: Secret::default(),
        }
    }
}

/// Settings derived and checked from `ServerConfig`, ready for use.
#[derive(Debug, Clone)]
pub struct Server {
    pub listen: SocketAddr,
    pub admin_listen: Option<SocketAddr>,
    pub public_url: url::Url,
    pub prefix: String,
    pub trusted_proxies: Vec<IpNet>,
    pub workers: usize,
    pub header_read_timeout: Duration,
    pub max_header_bytes: usize,
    pub max_headers: usize,
    pub upstream_connect_timeout: Duration,
    pub upstream_timeout: Duration,
    pub upstream_idle_timeout: Duration,
    pub drain_timeout: Duration,
    pub fast_path: bool,
    pub max_connections: usize,
    pub max_connections_per_ip: u32,
    pub idle_timeout: Duration,
    pub body_timeout: Duration,
    pub http2_max_streams: u32,
    /// `[server.tls]` as written (its files are read by `tls::Tls::load`).
    pub tls: Option<TlsConfig>,
    pub tls_reload_interval: Duration,
    pub redirect_http_listen: Option<SocketAddr>,
    /// `server.tls.hsts`: the Strict-Transport-Security value every response carries.
    pub hsts: Option<http::HeaderValue>,
    /// SHA-256 of `server.admin_token`, when one is set.
    pub admin_token: Option<[u8; 32]>,
}

impl Config {
    /// The checked server settings.
    pub fn server(&self) -> Result<Server, ConfigError> {
        let mut p = Problems::default();
        match self.server_checked(&mut p) {
            Some(s) => Ok(s),
            None => Err(p.finish().expect_err("a failed check records a problem")),
        }
    }

    pub(super) fn server_checked(&self, p: &mut Problems) -> Option<Server> {
        let s = &self.server;
        let before = p.0.len();
        let listen = p.take(s.listen.checked("server.listen")).copied();
        let admin_listen = p.take(s.admin_listen.checked("server.admin_listen")).copied();
        let public_url = p.take(s.public_url.checked("server.public_url")).cloned();
        let prefix = s.prefix.trim_end_matches('/').to_string();
        if !prefix.starts_with('/') || prefix.len() < 2 || crate::path::normalize(&prefix).ok().as_deref() != Some(&prefix) {
            p.add("server.prefix", format!("must be a normalized path like \"/.xumm\", got {:?}", s.prefix));
        }
        p.each("server.trusted_proxies", &s.trusted_proxies);
        let trusted = s.trusted_proxies.iter().filter_map(|t| t.get().copied()).collect();
        p.within("server.workers", s.workers, 0, 1024);
        p.within("server.max_header_bytes", s.max_header_bytes, 1024, 1024 * 1024);
        p.within("server.max_headers", s.max_headers, 1, 1000);
        p.within("server.max_connections", s.max_connections, 1, 1_000_000);
        p.within("server.max_connections_per_ip", s.max_connections_per_ip as usize, 1, 1_000_000);
        p.within("server.http2_max_streams", s.http2_max_streams as usize, 1, 10_000);
        p.within("server.sign_in_per_minute", s.sign_in_per_minute as usize, 0, 100_000);
        if !s.admin_token.is_empty() && s.admin_token.len() < 16 {
            p.add("server.admin_token", "must be at least 16 characters (or empty for none)");
        }
        let ms = Duration::from_millis;
        let hour = Duration::from_secs(3600);
        let header_read_timeout = p.take(bounded("server.header_read_timeout", &s.header_read_timeout, ms(100), hour));
        let upstream_connect_timeout = p.take(bounded("server.upstream_connect_timeout", &s.upstream_connect_timeout, ms(10), hour));
        let upstream_timeout = p.take(bounded("server.upstream_timeout", &s.upstream_timeout, ms(10), 24 * hour));
        let upstream_idle_timeout = p.take(bounded("server.upstream_idle_timeout", &s.upstream_idle_timeout, ms(100), hour));
        let drain_timeout = p.take(bounded("server.drain_timeout", &s.drain_timeout, Duration::ZERO, hour));
        let idle_timeout = p.take(bounded("server.idle_timeout", &s.idle_timeout, ms(100), 24 * hour));
        let body_timeout = p.take(bounded("server.body_timeout", &s.body_timeout, ms(100), hour));
        let (mut tls_reload_interval, mut redirect_http_listen) = (Some(Duration::from_secs(10)), None);
        if let Some(t) = &s.tls {
            tls_reload_interval = p.take(bounded("server.tls.reload_interval", &t.reload_interval, ms(100), hour));
            redirect_http_listen = p.take(t.redirect_http_listen.checked("server.tls.redirect_http_listen")).copied().flatten();
            check_tls(p, t, public_url.as_ref());
        }
        if p.0.len() > before {
            return None;
        }
        Some(Server {
            listen: listen?,
            admin_listen: admin_listen?,
            public_url: public_url?,
            prefix,
            trusted_proxies: trusted,
            workers: s.workers,
            header_read_timeout: header_read_timeout?,
            max_header_bytes: s.max_header_bytes,
            max_headers: s.max_headers,
            upstream_connect_timeout: upstream_connect_timeout?,
            upstream_timeout: upstream_timeout?,
            upstream_idle_timeout: upstream_idle_timeout?,
            drain_timeout: drain_timeout?,
            fast_path: s.fast_path,
            max_connections: s.max_connections,
            max_connections_per_ip: s.max_connections_per_ip,
            idle_timeout: idle_timeout?,
            body_timeout: body_timeout?,
            http2_max_streams: s.http2_max_streams,
            tls: s.tls.clone(),
            admin_token: (!s.admin_token.is_empty()).then(|| <sha2::Sha256 as sha2::Digest>::digest(s.admin_token.as_bytes()).into()),
            hsts: s.tls.as_ref().filter(|t| !t.hsts.is_empty()).and_then(|t| http::HeaderValue::from_str(&t.hsts).ok()),
            tls_reload_interval: tls_reload_interval?,
            redirect_http_listen,
        })
    }
}

/// What can be checked of `[server.tls]` without reading its files (`tls::Tls::load` reads
/// them, and names the key of any that fails).
fn check_tls(p: &mut Problems, t: &TlsConfig, public_url: Option<&url::Url>) {
    for (key, v) in [("server.tls.cert", &t.cert), ("server.tls.key", &t.key)] {
        if v.is_empty() {
            p.add(key, "is required (a PEM file path)");
        }
    }
    for (i, e) in t.sni.iter().enumerate() {
        for (key, v) in [("cert", &e.cert), ("key", &e.key)] {
            if v.is_empty() {
                p.add(format!("server.tls.sni[{i}].{key}"), "is required (a PEM file path)");
            }
        }
        for (j, h) in e.hosts.iter().enumerate() {
            let name = h.strip_prefix("*.").unwrap_or(h);
            if name.is_empty() || name.contains('*') || rustls_pki_types::ServerName::try_from(name).is_err() {
                p.add(format!("server.tls.sni[{i}].hosts[{j}]"), format!("{h:?} is not a host name (exact, or \"*.example.org\")"));
            }
        }
    }
    p.take(t.client_auth.checked("server.tls.client_auth"));
    p.take(t.min_version.checked("server.tls.min_version"));
    if http::HeaderValue::from_str(&t.hsts).is_err() {
        p.add("server.tls.hsts", "must be a header value like \"max-age=31536000\"");
    }
    if public_url.is_some_and(|u| u.scheme() != "https") {
        p.add("server.public_url", "must be https:// when [server.tls] is set (users reach the gateway over TLS)");
    }
}
