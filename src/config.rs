//! Typed configuration: TOML in, validated `Config` out. It must never print or log a secret value,
//! and every error it returns names the key path and what is wrong with it.
//!
//! Loading is three steps: parse the TOML into a tree, resolve every `env:NAME` / `file:/path` string
//! in that tree (so "any string value may be a reference" holds for every key, present and future),
//! then deserialize into the typed structs below with `deny_unknown_fields` and validate.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// A configuration error; the message always starts with the key path. When a file has several
/// problems, the first is `path`/`msg` and the others follow in `also`, one line each.
#[derive(Debug)]
pub struct ConfigError {
    pub path: String,
    pub msg: String,
    pub also: Vec<ConfigError>,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.msg)?;
        for e in &self.also {
            write!(f, "\n{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

pub(crate) fn err(path: impl Into<String>, msg: impl Into<String>) -> ConfigError {
    ConfigError { path: path.into(), msg: msg.into(), also: Vec::new() }
}

/// Collects every problem in a config, in the order the checks run.
#[derive(Default)]
struct Problems(Vec<ConfigError>);

impl Problems {
    fn add(&mut self, path: impl Into<String>, msg: impl Into<String>) {
        self.0.push(err(path, msg));
    }

    /// `r`'s value, or None with its error recorded.
    fn take<T>(&mut self, r: Result<T, ConfigError>) -> Option<T> {
        r.map_err(|e| self.0.push(e)).ok()
    }

    /// Records a number outside `min..=max`, naming the bounds.
    fn within(&mut self, key: &str, v: usize, min: usize, max: usize) {
        if !(min..=max).contains(&v) {
            self.add(key, format!("must be between {min} and {max}, got {v}"));
        }
    }

    fn finish(self) -> Result<(), ConfigError> {
        let mut all = self.0.into_iter();
        match all.next() {
            None => Ok(()),
            Some(mut first) => {
                first.also = all.collect();
                Err(first)
            }
        }
    }
}

/// A secret from the config (client and API secrets, cookie keys, signing keys, a Redis URL with
/// its password): `<redacted>` wherever it is printed (`Debug`) or serialized (`check-config`);
/// read it by dereferencing, at the one place that uses it.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl std::ops::Deref for Secret {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("<redacted>")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Secret, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Secret {
        Secret(s.to_string())
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub provider: Option<ProviderConfig>,
    #[serde(default)]
    pub session: Option<SessionConfig>,
    #[serde(default)]
    pub bearer: BearerConfig,
    #[serde(default)]
    pub forward_auth: ForwardAuthConfig,
    #[serde(default)]
    pub assertion: AssertionConfig,
    #[serde(default)]
    pub headers: HeadersConfig,
    #[serde(default)]
    pub cors: CorsConfig,
    #[serde(default)]
    pub xumm: Option<XummConfig>,
    #[serde(default)]
    pub broker: BrokerConfig,
    #[serde(default, rename = "upstream")]
    pub upstreams: Vec<UpstreamConfig>,
    #[serde(default, rename = "route")]
    pub routes: Vec<RouteConfig>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Public listener.
    pub listen: String,
    /// Admin listener: /healthz, /readyz, /metrics. Empty string switches it off.
    pub admin_listen: String,
    /// The URL users reach the gateway at (scheme decides X-Forwarded-Proto and cookie Secure).
    pub public_url: String,
    /// Path prefix of the gateway's own endpoints.
    pub prefix: String,
    pub allowed_redirect_hosts: Vec<String>,
    /// Peers whose X-Forwarded-* / X-Original-URI headers are believed.
    pub trusted_proxies: Vec<String>,
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
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// "text" (default) or "json".
    pub format: String,
    /// tracing filter, e.g. "info" or "xumm_gate=debug"; RUST_LOG wins when set.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { format: "text".into(), level: "info".into() }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    #[serde(default = "default_issuer")]
    pub issuer: String,
    #[serde(default)]
    pub client_id: String,
    #[serde(default)]
    pub client_secret: Secret,
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    #[serde(default = "default_account_claim")]
    pub account_claim: String,
    /// "client_secret_post" (default, what Xumm documents) or "client_secret_basic".
    #[serde(default = "default_token_auth")]
    pub token_auth: String,
    /// Least time between two JWKS fetches triggered by tokens no cached key verifies.
    #[serde(default = "default_jwks_min_refresh")]
    pub jwks_min_refresh: Span,
}

fn default_jwks_min_refresh() -> Span {
    "30s".into()
}

fn default_issuer() -> String {
    "https://oauth2.xumm.app".into()
}
fn default_scopes() -> Vec<String> {
    vec!["openid".into()]
}
fn default_account_claim() -> String {
    "sub".into()
}
fn default_token_auth() -> String {
    "client_secret_post".into()
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SessionConfig {
    #[serde(default = "default_store")]
    pub store: String,
    /// `redis://[user:password@]host:port[/db]` for `store = "redis"`; with `redis_mode =
    /// "cluster"`, the seed nodes: a list, or one string with commas between the URLs.
    #[serde(default)]
    pub redis_url: Option<OneOrMany>,
    /// `standalone` (one server, or a primary behind a stable address) or `cluster` (Redis
    /// Cluster).
    #[serde(default = "default_redis_mode")]
    pub redis_mode: String,
    /// For `rediss://`: a PEM file with the CA that signs the server's certificate (default: the
    /// system's roots).
    #[serde(default)]
    pub redis_ca_file: Option<String>,
    /// Prefix of every key (and the pub/sub channel) the gateway uses in Redis.
    #[serde(default = "default_redis_prefix")]
    pub redis_key_prefix: String,
    /// Each Redis command must answer within this (else 503 for the request that needed it).
    #[serde(default = "default_redis_timeout")]
    pub redis_timeout: Span,
    /// How long a replica keeps a session from Redis in memory (the hot path's cache). A
    /// sign-out reaches every replica at once by pub/sub, and within this at worst.
    #[serde(default = "default_l1_ttl")]
    pub l1_ttl: Span,
    /// How many sessions from Redis a replica keeps in memory at most (the least used go first).
    #[serde(default = "default_l1_max_entries")]
    pub l1_max_entries: u64,
    #[serde(default = "default_cookie_name")]
    pub cookie_name: String,
    #[serde(default)]
    pub cookie_secrets: Vec<Secret>,
    #[serde(default = "default_ttl")]
    pub ttl: Span,
    #[serde(default = "default_idle")]
    pub idle_timeout: Span,
    #[serde(default = "default_max_sessions")]
    pub max_entries: u64,
}

/// A secret string, or a list of them (Redis URLs, which may hold a password).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(Secret),
    Many(Vec<Secret>),
}

impl OneOrMany {
    /// Every item; a single string may list several, separated by commas.
    pub fn items(&self) -> Vec<String> {
        let all: Vec<&str> = match self {
            OneOrMany::One(s) => s.split(',').collect(),
            OneOrMany::Many(v) => v.iter().map(|s| &**s).collect(),
        };
        all.into_iter().map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect()
    }
}

impl SessionConfig {
    /// Where Redis is (for `store = "redis"`, once validated).
    pub fn redis_target(&self) -> crate::redis_conn::RedisTarget {
        crate::redis_conn::RedisTarget {
            urls: self.redis_url.as_ref().map(OneOrMany::items).unwrap_or_default(),
            cluster: self.redis_mode == "cluster",
            ca_file: self.redis_ca_file.clone(),
        }
    }
}

fn default_l1_max_entries() -> u64 {
    20_000
}
fn default_redis_mode() -> String {
    "standalone".into()
}
fn default_redis_prefix() -> String {
    "xumm-gate:".into()
}
fn default_redis_timeout() -> Span {
    "500ms".into()
}
fn default_l1_ttl() -> Span {
    "10s".into()
}
fn default_store() -> String {
    "memory".into()
}
fn default_cookie_name() -> String {
    "_xumm_gate".into()
}
fn default_ttl() -> Span {
    "24h".into()
}
fn default_idle() -> Span {
    "24h".into()
}
fn default_max_sessions() -> u64 {
    100_000
}

/// `Authorization: Bearer <JWT>` from native apps and SPAs that signed in with Xumm themselves.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BearerConfig {
    pub enabled: bool,
    /// Accepted `aud` values besides `provider.client_id` (native apps registered as their own client).
    pub audiences: Vec<String>,
    /// Signature algorithms accepted with the provider's keys (asymmetric only).
    pub algorithms: Vec<String>,
    /// Clock skew allowed on exp/nbf/iat.
    pub max_skew: Span,
    /// Verified tokens kept in the cache (each until its own `exp`).
    pub cache_entries: u64,
}

impl Default for BearerConfig {
    fn default() -> Self {
        BearerConfig { enabled: true, audiences: vec![], algorithms: vec!["RS256".into()], max_skew: "60s".into(), cache_entries: 100_000 }
    }
}

/// `X-Xumm-Assertion`: a short-lived ES256 JWT about the user, verifiable at `{prefix}/jwks.json`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AssertionConfig {
    pub enabled: bool,
    /// PKCS#8 PEM of a P-256 key (e.g. "file:/etc/xumm-gate/assertion.pem"). Empty: a key is
    /// generated at start, which suits a single replica only (each replica would sign differently).
    pub key: Secret,
    /// Lifetime of each assertion.
    pub ttl: Span,
}

impl Default for AssertionConfig {
    fn default() -> Self {
        AssertionConfig { enabled: false, key: Secret::default(), ttl: "5m".into() }
    }
}

/// Xumm's platform API, used by the sign-request broker. The key and secret stay in the gateway.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct XummConfig {
    #[serde(default = "default_xumm_url")]
    pub api_url: String,
    pub api_key: String,
    pub api_secret: Secret,
}

fn default_xumm_url() -> String {
    "https://xumm.app".into()
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BrokerConfig {
    /// Backend apps behind the gateway, with credentials issued by the gateway (never Xumm's).
    pub app: Vec<BrokerAppConfig>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BrokerAppConfig {
    pub name: String,
    /// Sent by the app as `x-api-key`.
    pub key: Secret,
    /// Sent by the app as `x-api-secret`; only its SHA-256 is kept in memory. May be given as
    /// "sha256:<hex>" so the plain secret never appears in the config at all.
    pub secret: Secret,
    /// Transaction types the app may ask for (empty: any).
    #[serde(default)]
    pub allowed_tx_types: Vec<String>,
    #[serde(default = "default_per_minute")]
    pub max_per_minute: u32,
    /// When set, a payload counts as signed only if Xumm dispatched it to this network
    /// (`response.dispatched_nodetype`, e.g. "MAINNET").
    #[serde(default)]
    pub network: Option<String>,
    /// Where the gateway POSTs a signed notification when Xumm's webhook reports one of this
    /// app's payloads resolved (`X-Xumm-Gate-Signature`: hex HMAC-SHA256 with `callback_secret`).
    #[serde(default)]
    pub callback_url: Option<String>,
    #[serde(default)]
    pub callback_secret: Option<Secret>,
}

fn default_per_minute() -> u32 {
    30
}

/// Cross-origin callers (SPAs on another origin calling with Bearer tokens or cookies).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CorsConfig {
    /// Exact origins (`https://app.example.com`) allowed to call; credentials only for these.
    pub allowed_origins: Vec<String>,
}

/// `{prefix}/auth` for nginx auth_request, Traefik ForwardAuth and ingress-nginx auth-url.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ForwardAuthConfig {
    /// "status": 401 for no session (nginx, ingress-nginx). "redirect": browsers get 302/303 to
    /// sign-in (Traefik). `?mode=` on the request overrides it.
    pub mode: String,
}

impl Default for ForwardAuthConfig {
    fn default() -> Self {
        ForwardAuthConfig { mode: "status".into() }
    }
}

/// Names of the identity headers set on upstream requests; "" switches one off. Every name here
/// (and every default name) is stripped from incoming requests, whatever the client's spelling.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HeadersConfig {
    pub account: String,
    pub network: String,
    pub user: Vec<String>,
    pub user_token: String,
    pub assertion: String,
    /// Further header names to strip from every request.
    pub strip: Vec<String>,
}

impl Default for HeadersConfig {
    fn default() -> Self {
        HeadersConfig {
            account: "X-Xumm-Account".into(),
            network: "X-Xumm-Network".into(),
            user: vec!["X-Auth-Request-User".into(), "X-Forwarded-User".into()],
            user_token: "X-Xumm-User-Token".into(),
            assertion: "X-Xumm-Assertion".into(),
            strip: vec![],
        }
    }
}

impl HeadersConfig {
    pub fn all_names(&self) -> impl Iterator<Item = &str> {
        [self.account.as_str(), self.network.as_str(), self.user_token.as_str(), self.assertion.as_str()]
            .into_iter()
            .chain(self.user.iter().map(String::as_str))
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// Path prefix this upstream serves; the longest matching prefix wins.
    pub path: String,
    /// Base URL, http:// only for now.
    pub url: String,
    /// Remove `path` from the request path before forwarding.
    #[serde(default)]
    pub strip_prefix: bool,
    /// `aud` of the X-Xumm-Assertion sent to this upstream (default: its URL).
    #[serde(default)]
    pub assertion_audience: Option<String>,
    /// The `[[broker.app]]` this upstream is: its requests carry an X-Xumm-User-Token handle
    /// that only that app can use as `user_token`.
    #[serde(default)]
    pub broker_app: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    pub path: String,
    #[serde(default)]
    pub public: bool,
    #[serde(default)]
    pub allow_accounts: Vec<String>,
    #[serde(default)]
    pub allow_networks: Vec<String>,
    /// Strict path mode for this route (default true). `false` lets `;` matrix parameters
    /// through (never on a dot segment) and skips the trailing dot/space and encoded-'%' checks.
    #[serde(default = "yes")]
    pub strict_path: bool,
}

fn yes() -> bool {
    true
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
}

/// Looks up an environment variable; injected so tests never mutate the process environment.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

impl Config {
    /// Reads, resolves and validates a config file.
    pub fn load(path: &Path, env: EnvLookup) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| err(path.display().to_string(), format!("cannot read config file: {e}")))?;
        Config::from_toml(&text, env)
    }

    pub fn from_toml(text: &str, env: EnvLookup) -> Result<Config, ConfigError> {
        let mut tree: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            err("config", format!("invalid TOML: {}", e.message().trim()) + &line_of(text, e.span()))
        })?;
        resolve_table(&mut tree, "", env)?;
        let de = toml::Value::Table(tree);
        let config: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let msg = e.inner().to_string();
            let msg = msg.lines().next().unwrap_or_default().to_string();
            err(if path == "." { "config".into() } else { path }, msg)
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Every check `run` makes before it binds a socket, all of them, so that `check-config`
    /// and `run` agree and one run reports every problem in the file (each with its key path).
    fn validate(&self) -> Result<(), ConfigError> {
        let mut p = Problems::default();
        self.server_checked(&mut p);
        let fa_only = self.upstreams.is_empty();
        if fa_only && self.provider.is_none() {
            p.add("upstream", "at least one [[upstream]] is required (a gateway for forward auth only needs [provider] instead)");
        }
        for (i, u) in self.upstreams.iter().enumerate() {
            p.take(check_route_path(&format!("upstream[{i}].path"), &u.path));
            match u.url.parse::<http::Uri>() {
                Err(_) => p.add(format!("upstream[{i}].url"), format!("invalid URL {:?}", u.url)),
                Ok(parsed) if parsed.scheme_str() != Some("http") || parsed.authority().is_none() => {
                    p.add(format!("upstream[{i}].url"), format!("must be an http:// URL with a host, got {:?}", u.url))
                }
                Ok(parsed) if parsed.query().is_some() => p.add(format!("upstream[{i}].url"), "must not carry a query string"),
                Ok(_) => {}
            }
            if let Some(app) = &u.broker_app {
                if !self.broker.app.iter().any(|a| &a.name == app) {
                    p.add(format!("upstream[{i}].broker_app"), format!("no [[broker.app]] is named {app:?}"));
                }
            }
            if let Some(j) = self.upstreams[..i].iter().position(|o| same_path(&o.path, &u.path)) {
                p.add(format!("upstream[{i}].path"), format!("{:?} is also upstream[{j}].path: the first would silently win", u.path));
            }
        }
        for (i, r) in self.routes.iter().enumerate() {
            p.take(check_route_path(&format!("route[{i}].path"), &r.path));
            for (j, a) in r.allow_accounts.iter().enumerate() {
                if crate::account::Account::parse(a).is_err() {
                    p.add(format!("route[{i}].allow_accounts[{j}]"), format!("{a:?} is not a valid XRPL r-address"));
                }
            }
            // Rules match regardless of case: two rules whose paths differ only in case are the same rule.
            if let Some(j) = self.routes[..i].iter().position(|o| same_path(&o.path.to_ascii_lowercase(), &r.path.to_ascii_lowercase())) {
                p.add(format!("route[{i}].path"), format!("{:?} is also route[{j}].path: the first would silently win; merge them", r.path));
            }
        }
        for (key, name) in [("headers.account", &self.headers.account), ("headers.network", &self.headers.network), ("headers.user_token", &self.headers.user_token), ("headers.assertion", &self.headers.assertion)] {
            if !name.is_empty() && http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                p.add(key, format!("invalid header name {name:?}"));
            }
        }
        for (i, name) in self.headers.user.iter().enumerate() {
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                p.add(format!("headers.user[{i}]"), format!("invalid header name {name:?}"));
            }
        }
        for (i, name) in self.headers.strip.iter().enumerate() {
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                p.add(format!("headers.strip[{i}]"), format!("invalid header name {name:?}"));
            }
        }
        for (i, a) in self.bearer.algorithms.iter().enumerate() {
            if !matches!(a.as_str(), "RS256" | "RS384" | "RS512" | "PS256" | "PS384" | "PS512" | "ES256" | "ES384") {
                p.add(format!("bearer.algorithms[{i}]"), format!("{a:?} is not an accepted asymmetric algorithm (never none or HMAC)"));
            }
        }
        p.take(bounded("bearer.max_skew", &self.bearer.max_skew, Duration::ZERO, Duration::from_secs(3600)));
        if self.bearer.cache_entries > 10_000_000 {
            p.add("bearer.cache_entries", "must be at most 10000000");
        }
        p.take(bounded("assertion.ttl", &self.assertion.ttl, Duration::from_secs(10), Duration::from_secs(24 * 3600)));
        if self.assertion.enabled && !self.assertion.key.is_empty() && <p256::SecretKey as p256::pkcs8::DecodePrivateKey>::from_pkcs8_pem(&self.assertion.key).is_err() {
            p.add("assertion.key", "is not a PKCS#8 PEM P-256 private key");
        }
        for (i, o) in self.cors.allowed_origins.iter().enumerate() {
            let ok = url::Url::parse(o).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some() && u.path() == "/" && u.query().is_none())
                && !o.ends_with('/');
            if !ok {
                p.add(format!("cors.allowed_origins[{i}]"), format!("must be an origin like \"https://app.example.com\", got {o:?}"));
            }
        }
        if self.forward_auth.mode != "status" && self.forward_auth.mode != "redirect" {
            p.add("forward_auth.mode", format!("must be \"status\" or \"redirect\", got {:?}", self.forward_auth.mode));
        }
        if let Some(x) = &self.xumm {
            match url::Url::parse(&x.api_url) {
                Err(_) => p.add("xumm.api_url", format!("invalid URL {:?}", x.api_url)),
                Ok(u) if !matches!(u.scheme(), "http" | "https") => p.add("xumm.api_url", "scheme must be http or https"),
                Ok(_) => {}
            }
            if x.api_key.is_empty() {
                p.add("xumm.api_key", "is required");
            }
            if x.api_secret.is_empty() {
                p.add("xumm.api_secret", "is required");
            }
        }
        for (i, a) in self.broker.app.iter().enumerate() {
            if a.key.len() < 8 {
                p.add(format!("broker.app[{i}].key"), "must be at least 8 characters");
            }
            match a.secret.strip_prefix("sha256:") {
                Some(h) if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) => p.add(format!("broker.app[{i}].secret"), "sha256: must be followed by 64 hex digits"),
                None if a.secret.len() < 16 => p.add(format!("broker.app[{i}].secret"), "must be at least 16 characters"),
                _ => {}
            }
            if let Some(u) = &a.callback_url {
                let ok = url::Url::parse(u).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
                if !ok {
                    p.add(format!("broker.app[{i}].callback_url"), format!("invalid http(s) URL {u:?}"));
                }
                if a.callback_secret.as_ref().is_none_or(|s| s.len() < 16) {
                    p.add(format!("broker.app[{i}].callback_secret"), "must be at least 16 characters when callback_url is set");
                }
            }
            if let Some(j) = self.broker.app[..i].iter().position(|b| b.key == a.key) {
                p.add(format!("broker.app[{i}].key"), format!("is used by broker.app[{j}] too"));
            }
            if let Some(j) = self.broker.app[..i].iter().position(|b| b.name == a.name) {
                p.add(format!("broker.app[{i}].name"), format!("{:?} is broker.app[{j}].name too", a.name));
            }
        }
        if !self.broker.app.is_empty() && self.xumm.is_none() {
            p.add("xumm", "[xumm] api_key and api_secret are required when [[broker.app]] is set");
        }
        match self.log.format.as_str() {
            "text" | "json" => {}
            other => p.add("log.format", format!("must be \"text\" or \"json\", got {other:?}")),
        }
        if let Some(s) = &self.session {
            p.take(bounded("session.ttl", &s.ttl, Duration::from_secs(60), Duration::from_secs(90 * 24 * 3600)));
            p.take(bounded("session.idle_timeout", &s.idle_timeout, Duration::from_secs(60), Duration::from_secs(90 * 24 * 3600)));
            match s.store.as_str() {
                "memory" => {}
                "redis" => {
                    check_redis_urls(s, &mut p);
                    if let Some(ca) = &s.redis_ca_file {
                        match std::fs::read_to_string(ca) {
                            Ok(pem) if pem.contains("-----BEGIN CERTIFICATE-----") => {}
                            Ok(_) => p.add("session.redis_ca_file", format!("{ca} holds no PEM certificate")),
                            Err(e) => p.add("session.redis_ca_file", format!("cannot read {ca}: {}", io_reason(&e))),
                        }
                    }
                    p.take(bounded("session.redis_timeout", &s.redis_timeout, Duration::from_millis(10), Duration::from_secs(60)));
                    p.take(bounded("session.l1_ttl", &s.l1_ttl, Duration::from_secs(1), Duration::from_secs(300)));
                    p.within("session.l1_max_entries", s.l1_max_entries as usize, 100, 10_000_000);
                    if s.redis_key_prefix.is_empty() || s.redis_key_prefix.len() > 64 {
                        p.add("session.redis_key_prefix", "must be 1 to 64 characters");
                    }
                    // Each replica would sign assertions with its own generated key.
                    if self.assertion.enabled && self.assertion.key.is_empty() {
                        p.add("assertion.key", "is required with session.store = \"redis\" (several replicas must sign with one key)");
                    }
                }
                other => p.add("session.store", format!("must be \"memory\" or \"redis\", got {other:?}")),
            }
            if !(1..=100_000_000).contains(&s.max_entries) {
                p.add("session.max_entries", "must be between 1 and 100000000");
            }
            for (i, secret) in s.cookie_secrets.iter().enumerate() {
                use base64::Engine;
                match base64::engine::general_purpose::STANDARD.decode(secret.trim()) {
                    Err(_) => p.add(format!("session.cookie_secrets[{i}]"), "is not valid base64"),
                    Ok(bytes) if bytes.len() < 32 => p.add(format!("session.cookie_secrets[{i}]"), format!("must decode to at least 32 bytes, got {}", bytes.len())),
                    Ok(_) => {}
                }
            }
        }
        if let Some(pr) = &self.provider {
            if url::Url::parse(&pr.issuer).is_err() {
                p.add("provider.issuer", format!("invalid URL {:?}", pr.issuer));
            }
            if pr.client_id.is_empty() {
                p.add("provider.client_id", "is required (your app's API key from the Xumm Developer Console)");
            }
            if pr.client_secret.is_empty() {
                p.add("provider.client_secret", "is required (your app's API secret: Xumm's token endpoint needs it)");
            }
            p.take(bounded("provider.jwks_min_refresh", &pr.jwks_min_refresh, Duration::from_secs(1), Duration::from_secs(3600)));
            if pr.token_auth != "client_secret_post" && pr.token_auth != "client_secret_basic" {
                p.add("provider.token_auth", format!("must be \"client_secret_post\" or \"client_secret_basic\", got {:?}", pr.token_auth));
            }
            if self.session.as_ref().is_none_or(|s| s.cookie_secrets.is_empty()) {
                p.add("session.cookie_secrets", "at least one secret is required when [provider] is set (base64 of >= 32 random bytes: openssl rand -base64 32)");
            }
        }
        p.finish()
    }

    /// Things that work but are probably not what was meant; `check-config` prints them and
    /// `run` logs them.
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        if let Ok(u) = url::Url::parse(&self.server.public_url) {
            let loopback = match u.host() {
                Some(url::Host::Domain(d)) => d == "localhost",
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                None => true,
            };
            if u.scheme() == "http" && !loopback {
                w.push(format!(
                    "server.public_url: {:?} is plain http on a non-loopback host: session cookies go without Secure and tokens cross the network in clear; put TLS in front and use https://",
                    self.server.public_url
                ));
            }
        }
        w
    }

    /// The checked server settings.
    pub fn server(&self) -> Result<Server, ConfigError> {
        let mut p = Problems::default();
        match self.server_checked(&mut p) {
            Some(s) => Ok(s),
            None => Err(p.finish().expect_err("a failed check records a problem")),
        }
    }

    fn server_checked(&self, p: &mut Problems) -> Option<Server> {
        let s = &self.server;
        let before = p.0.len();
        let listen = p.take(socket("server.listen", &s.listen));
        let admin_listen = if s.admin_listen.is_empty() { Some(None) } else { p.take(socket("server.admin_listen", &s.admin_listen)).map(Some) };
        let public_url = match url::Url::parse(&s.public_url) {
            Err(_) => {
                p.add("server.public_url", format!("invalid URL {:?}", s.public_url));
                None
            }
            Ok(u) if !matches!(u.scheme(), "http" | "https") => {
                p.add("server.public_url", "scheme must be http or https");
                None
            }
            Ok(u) => Some(u),
        };
        let prefix = s.prefix.trim_end_matches('/').to_string();
        if !prefix.starts_with('/') || prefix.len() < 2 || crate::path::normalize(&prefix).ok().as_deref() != Some(&prefix) {
            p.add("server.prefix", format!("must be a normalized path like \"/.xumm\", got {:?}", s.prefix));
        }
        let mut trusted = Vec::new();
        for (i, cidr) in s.trusted_proxies.iter().enumerate() {
            match cidr.parse::<IpNet>().or_else(|_| cidr.parse::<std::net::IpAddr>().map(IpNet::from)) {
                Ok(net) => trusted.push(net),
                Err(_) => p.add(format!("server.trusted_proxies[{i}]"), format!("invalid CIDR {cidr:?}")),
            }
        }
        p.within("server.workers", s.workers, 0, 1024);
        p.within("server.max_header_bytes", s.max_header_bytes, 1024, 1024 * 1024);
        p.within("server.max_headers", s.max_headers, 1, 1000);
        p.within("server.max_connections", s.max_connections, 1, 1_000_000);
        p.within("server.max_connections_per_ip", s.max_connections_per_ip as usize, 1, 1_000_000);
        p.within("server.http2_max_streams", s.http2_max_streams as usize, 1, 10_000);
        p.within("server.sign_in_per_minute", s.sign_in_per_minute as usize, 0, 100_000);
        let ms = Duration::from_millis;
        let hour = Duration::from_secs(3600);
        let header_read_timeout = p.take(bounded("server.header_read_timeout", &s.header_read_timeout, ms(100), hour));
        let upstream_connect_timeout = p.take(bounded("server.upstream_connect_timeout", &s.upstream_connect_timeout, ms(10), hour));
        let upstream_timeout = p.take(bounded("server.upstream_timeout", &s.upstream_timeout, ms(10), 24 * hour));
        let upstream_idle_timeout = p.take(bounded("server.upstream_idle_timeout", &s.upstream_idle_timeout, ms(100), hour));
        let drain_timeout = p.take(bounded("server.drain_timeout", &s.drain_timeout, Duration::ZERO, hour));
        let idle_timeout = p.take(bounded("server.idle_timeout", &s.idle_timeout, ms(100), 24 * hour));
        let body_timeout = p.take(bounded("server.body_timeout", &s.body_timeout, ms(100), hour));
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
        })
    }

    /// The effective configuration as TOML, every secret replaced by "<redacted>" (`Secret`
    /// serializes so).
    pub fn redacted_toml(&self) -> String {
        let value = toml::Value::try_from(self).expect("config always serializes");
        toml::to_string_pretty(&value).unwrap_or_default()
    }
}

fn line_of(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    match span {
        Some(s) => format!(" (line {})", text[..s.start.min(text.len())].lines().count().max(1)),
        None => String::new(),
    }
}


/// `session.redis_url` and `session.redis_mode`: one server's URL, or a cluster's seed nodes
/// (database 0 only, one scheme and one set of credentials). Never echoes a URL: it may hold a
/// password.
fn check_redis_urls(s: &SessionConfig, p: &mut Problems) {
    let cluster = match s.redis_mode.as_str() {
        "standalone" => false,
        "cluster" => true,
        other => return p.add("session.redis_mode", format!("must be \"standalone\" or \"cluster\", got {other:?}")),
    };
    let urls = s.redis_url.as_ref().map(OneOrMany::items).unwrap_or_default();
    if urls.is_empty() {
        return p.add("session.redis_url", "is required with store = \"redis\" (redis://[user:password@]host:6379[/db])");
    }
    if !cluster && urls.len() > 1 {
        return p.add("session.redis_url", "lists several servers: set session.redis_mode = \"cluster\" for a Redis Cluster, or give one URL");
    }
    let mut seen: Option<(String, String, Option<String>)> = None;
    for (i, raw) in urls.iter().enumerate() {
        let which = if urls.len() > 1 { format!("URL {} ", i + 1) } else { String::new() };
        let u = match url::Url::parse(raw) {
            Ok(u) if matches!(u.scheme(), "redis" | "rediss") && u.host_str().is_some() => u,
            _ => return p.add("session.redis_url", format!("{which}must be a redis://host:port URL")),
        };
        if cluster && !matches!(u.path(), "" | "/" | "/0") {
            return p.add("session.redis_url", format!("{which}names a database: a Redis Cluster has only database 0"));
        }
        let who = (u.scheme().to_string(), u.username().to_string(), u.password().map(String::from));
        if seen.as_ref().is_some_and(|s| *s != who) {
            return p.add("session.redis_url", "the seed nodes must share one scheme and one user and password");
        }
        seen = Some(who);
    }
}

/// Replaces `env:NAME` and `file:/path` strings everywhere in the tree.
fn resolve_table(t: &mut toml::Table, path: &str, env: EnvLookup) -> Result<(), ConfigError> {
    for (k, v) in t.iter_mut() {
        let p = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
        resolve_value(v, &p, env)?;
    }
    Ok(())
}

fn resolve_value(v: &mut toml::Value, path: &str, env: EnvLookup) -> Result<(), ConfigError> {
    match v {
        toml::Value::String(s) => {
            if let Some(name) = s.strip_prefix("env:") {
                if name.is_empty() {
                    return Err(err(path, "env: needs a variable name, e.g. \"env:XUMM_API_SECRET\""));
                }
                let value = env(name).ok_or_else(|| err(path, format!("env {name} is not set")))?;
                if value.is_empty() {
                    return Err(err(path, format!("env {name} is empty")));
                }
                *s = value;
            } else if let Some(file) = s.strip_prefix("file:") {
                if file.is_empty() {
                    return Err(err(path, "file: needs a path, e.g. \"file:/run/secrets/cookie\""));
                }
                let value = std::fs::read_to_string(file)
                    .map_err(|e| err(path, format!("cannot read file {file}: {}", io_reason(&e))))?;
                *s = value.trim_end_matches(['\n', '\r']).to_string();
            }
        }
        toml::Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                resolve_value(item, &format!("{path}[{i}]"), env)?;
            }
        }
        toml::Value::Table(t) => resolve_table(t, path, env)?,
        _ => {}
    }
    Ok(())
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

fn socket(key: &str, v: &str) -> Result<SocketAddr, ConfigError> {
    v.parse().map_err(|_| err(key, format!("invalid socket address {v:?}")))
}


/// A duration as the config writes it ("500ms", "30s", "24h"), parsed once when the file is
/// read (a bad one is an error at its key path); consumers take `get()` and never parse again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    text: String,
    value: Duration,
}

impl Span {
    pub fn get(&self) -> Duration {
        self.value
    }

    fn parse(text: &str) -> Result<Span, String> {
        humantime::parse_duration(text).map(|value| Span { text: text.to_string(), value }).map_err(|_| format!("invalid duration {text:?} (use e.g. \"30s\", \"24h\")"))
    }
}

/// For the defaults written in this file (a typo there fails every test at once).
impl From<&str> for Span {
    fn from(text: &str) -> Span {
        Span::parse(text).expect("a default duration parses")
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Span, D::Error> {
        Span::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

impl Serialize for Span {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

/// A duration within `min..=max`, the bounds named when it is not.
fn bounded(key: &str, v: &Span, min: Duration, max: Duration) -> Result<Duration, ConfigError> {
    let d = v.get();
    if d < min || d > max {
        return Err(err(key, format!("must be between {} and {}, got {:?}", show(min), show(max), v.text)));
    }
    Ok(d)
}

/// A bound as people write it in the config ("100ms", "90s", "1h", "90d").
fn show(d: Duration) -> String {
    let s = d.as_secs();
    match (s, d.subsec_millis()) {
        (0, ms) => format!("{ms}ms"),
        (s, 0) if s % 86_400 == 0 => format!("{}d", s / 86_400),
        (s, 0) if s % 3600 == 0 => format!("{}h", s / 3600),
        (s, 0) if s % 60 == 0 => format!("{}m", s / 60),
        (s, _) => format!("{s}s"),
    }
}

/// Two rule or upstream paths that match the same requests ("/a" and "/a/").
fn same_path(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

fn check_route_path(key: &str, p: &str) -> Result<(), ConfigError> {
    match crate::path::normalize(p) {
        Ok(n) if n == p || (p.ends_with('/') && n == p.trim_end_matches('/')) => Ok(()),
        _ => Err(err(key, format!("must be a normalized absolute path like \"/app\", got {p:?}"))),
    }
}
