//! Typed configuration: TOML in, validated `Config` out. It must never print or log a secret value,
//! and every error it returns names the key path and what is wrong with it.
//!
//! Loading is three steps: parse the TOML into a tree, resolve every `env:NAME` / `file:/path` string
//! in that tree (so "any string value may be a reference" holds for every key, present and future),
//! then deserialize into the typed structs (one module per section: `server`, `session`,
//! `identity`, `routing`, `xumm`; value types in `values`) with `deny_unknown_fields`, and run
//! the cross-field checks here.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

mod identity;
mod ledger;
mod routing;
mod server;
mod session;
mod values;
mod xumm;

pub use identity::{AssertionConfig, BearerConfig, ForwardAuthConfig, HeadersConfig, ProviderConfig};
pub use ledger::{ConditionConfig, LedgerNetworkConfig};
pub use routing::{CorsConfig, PagesConfig, PolicyConfig, RouteConfig, UpstreamConfig};
pub use server::{Server, ServerConfig, SniConfig, TlsConfig};
pub use session::{OneOrMany, SessionConfig};
pub(crate) use values::{err, is_under, read_file};
pub use values::{Choice, ClientAuth, DefaultRule, HostPattern, ConfigError, TlsVersion, ForwardAuthMode, ProviderKind, FromText, LogFormat, Network, Origin, Parsed, RedisMode, Secret, Span, StoreKind, TokenAuth, UpstreamUrl};
pub use xumm::{BrokerAppConfig, BrokerConfig, XappConfig, XummConfig};
use session::{check_cookie_domain, check_redis_urls};
use values::*;

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub log: LogConfig,
    /// OpenTelemetry traces (off unless `otlp_endpoint` is set).
    #[serde(default)]
    pub tracing: TracingConfig,
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
    pub pages: PagesConfig,
    #[serde(default)]
    pub xumm: Option<XummConfig>,
    #[serde(default)]
    pub broker: BrokerConfig,
    /// xApp sessions; None: `?xAppToken=` means nothing to the gateway.
    #[serde(default)]
    pub xapp: Option<XappConfig>,
    #[serde(default, rename = "upstream")]
    pub upstreams: Vec<UpstreamConfig>,
    #[serde(default, rename = "route")]
    pub routes: Vec<RouteConfig>,
    /// What requests no `[[route]]` matches need.
    #[serde(default)]
    pub policy: PolicyConfig,
    /// Where ledger conditions are read, per network (`[ledger.MAINNET]`).
    #[serde(default)]
    pub ledger: std::collections::BTreeMap<String, LedgerNetworkConfig>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// "text" (default) or "json".
    pub format: Choice<LogFormat>,
    /// tracing filter, e.g. "info" or "xumm_gate=debug"; RUST_LOG wins when set.
    pub level: String,
    /// Where the audit log goes: "stdout" (default, each line marked `"log":"audit"`),
    /// "stderr", "off", or a file path (appended to).
    pub audit: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { format: Choice::default(), level: "info".into(), audit: "stdout".into() }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TracingConfig {
    /// The collector's OTLP/HTTP traces URL (JSON encoding), e.g.
    /// "http://127.0.0.1:4318/v1/traces"; empty: no traces.
    pub otlp_endpoint: String,
    /// The share of requests traced when no trusted proxy decided (0 to 1).
    pub sample_ratio: f64,
    /// `service.name` on every span.
    pub service_name: String,
}

impl Default for TracingConfig {
    fn default() -> Self {
        TracingConfig { otlp_endpoint: String::new(), sample_ratio: 0.01, service_name: "xumm-gate".into() }
    }
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
            p.parsed(&format!("upstream[{i}].url"), &u.url);
            check_upstream_tls(&mut p, i, u);
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
            p.each(&format!("route[{i}].allow_accounts"), &r.allow_accounts);
            p.each(&format!("route[{i}].allow_networks"), &r.allow_networks);
            p.each(&format!("route[{i}].allow_account_access"), &r.allow_account_access);
            p.each(&format!("route[{i}].allow_sources"), &r.allow_sources);
            p.each(&format!("route[{i}].methods"), &r.methods);
            p.each(&format!("route[{i}].hosts"), &r.hosts);
            check_deny(&mut p, i, r);
            if let Some(c) = &r.require {
                c.check(&format!("route[{i}].require"), &mut p, self.xumm.is_some());
                if r.public {
                    p.add(format!("route[{i}].require"), "needs a signed-in account: a public route has none");
                }
                if c.reads_ledger() && self.ledger.is_empty() {
                    p.add(format!("route[{i}].require"), "reads the XRP Ledger: add a [ledger.MAINNET] (or other network) with urls");
                }
            }
            // Rules match regardless of case: two rules whose paths differ only in case, for the
            // same hosts and methods, are the same rule.
            if let Some(j) = self.routes[..i].iter().position(|o| same_path(&o.path.to_ascii_lowercase(), &r.path.to_ascii_lowercase()) && o.same_scope(r)) {
                p.add(format!("route[{i}].path"), format!("{:?} is also route[{j}].path, for the same hosts and methods: the first would silently win; merge them", r.path));
            }
        }
        p.take(self.policy.default.checked("policy.default"));
        ledger::check_ledgers(&self.ledger, &mut p);
        for (key, name) in self.headers.singles() {
            p.parsed(key, name);
        }
        p.each("headers.user", &self.headers.user);
        p.each("headers.strip", &self.headers.strip);
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
        p.each("cors.allowed_origins", &self.cors.allowed_origins);
        if let Err(e) = crate::pages::Branding::from_config(&self.pages, "") {
            p.0.push(e);
        }
        p.take(self.forward_auth.mode.checked("forward_auth.mode"));
        if let Some(x) = &self.xumm {
            p.parsed("xumm.api_url", &x.api_url);
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
            if let Some(n) = &a.network {
                p.parsed(&format!("broker.app[{i}].network"), n);
            }
            if let Some(u) = &a.callback_url {
                p.parsed(&format!("broker.app[{i}].callback_url"), u);
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
        if self.xapp.as_ref().is_some_and(|x| x.enabled) && self.xumm.is_none() {
            p.add("xapp", "[xumm] api_key and api_secret are required: the gateway resolves xApp one-time tokens with them");
        }
        if self.xapp.as_ref().is_some_and(|x| x.enabled) && self.provider.is_none() {
            p.add("xapp", "[provider] is required (xApp sessions are kept like sign-in sessions; Xumm's OAuth2 client id and secret are the same API key and secret)");
        }
        if !self.broker.app.is_empty() && self.xumm.is_none() {
            p.add("xumm", "[xumm] api_key and api_secret are required when [[broker.app]] is set");
        }
        p.take(self.log.format.checked("log.format"));
        let t = &self.tracing;
        if !t.otlp_endpoint.is_empty() && !url::Url::parse(&t.otlp_endpoint).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host()) {
            p.add("tracing.otlp_endpoint", format!("must be an http(s) URL like \"http://127.0.0.1:4318/v1/traces\", got {:?}", t.otlp_endpoint));
        }
        if !(0.0..=1.0).contains(&t.sample_ratio) {
            p.add("tracing.sample_ratio", format!("must be between 0 and 1, got {}", t.sample_ratio));
        }
        if t.service_name.is_empty() {
            p.add("tracing.service_name", "must not be empty");
        }
        if let Some(s) = &self.session {
            p.take(bounded("session.ttl", &s.ttl, Duration::from_secs(60), Duration::from_secs(90 * 24 * 3600)));
            p.take(bounded("session.idle_timeout", &s.idle_timeout, Duration::from_secs(60), Duration::from_secs(90 * 24 * 3600)));
            if p.take(s.store.checked("session.store")) == Some(StoreKind::Redis) {
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
            check_cookie_domain(s, self.server.public_url.get(), &mut p);
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
            p.parsed("provider.issuer", &pr.issuer);
            let payload = p.take(pr.kind.checked("provider.kind")) == Some(ProviderKind::Payload);
            if pr.qr_sign_in && !payload && self.xumm.is_none() {
                p.add("provider.qr_sign_in", "needs [xumm] api_key and api_secret (the gateway creates the SignIn payloads with them)");
            }
            if payload && self.xumm.is_none() {
                p.add("provider.kind", "\"payload\" needs [xumm] api_key and api_secret (the gateway creates the SignIn payloads with them)");
            }
            p.within("provider.payloads_per_minute", pr.payloads_per_minute as usize, 1, 100_000);
            if let Some(d) = p.take(bounded("provider.payload_expiry", &pr.payload_expiry, Duration::from_secs(60), Duration::from_secs(3600))) {
                if d.as_secs() % 60 != 0 || d.subsec_nanos() != 0 {
                    p.add("provider.payload_expiry", "must be whole minutes (Xumm's expire is in minutes)");
                }
            }
            if pr.client_id.is_empty() && !payload {
                p.add("provider.client_id", "is required (your app's API key from the Xumm Developer Console)");
            }
            if pr.client_secret.is_empty() && !payload {
                p.add("provider.client_secret", "is required (your app's API secret: Xumm's token endpoint needs it)");
            }
            p.take(bounded("provider.jwks_min_refresh", &pr.jwks_min_refresh, Duration::from_secs(1), Duration::from_secs(3600)));
            p.take(pr.token_auth.checked("provider.token_auth"));
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
        if let Some(u) = self.server.public_url.get() {
            let loopback = match u.host() {
                Some(url::Host::Domain(d)) => d == "localhost",
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                None => true,
            };
            if u.scheme() == "http" && !loopback {
                w.push(format!(
                    "server.public_url: {:?} is plain http on a non-loopback host: session cookies go without Secure and tokens cross the network in clear; put TLS in front and use https://",
                    self.server.public_url.text()
                ));
            }
        }
        w
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

/// A `deny` rule refuses everyone it matches: nothing may look like it lets someone through.
fn check_deny(p: &mut Problems, i: usize, r: &RouteConfig) {
    if !r.deny {
        return;
    }
    let allows = [
        ("public", r.public),
        ("allow_accounts", !r.allow_accounts.is_empty()),
        ("allow_accounts_file", !r.allow_accounts_file.is_empty()),
        ("allow_client_subjects", !r.allow_client_subjects.is_empty()),
        ("allow_networks", !r.allow_networks.is_empty()),
        ("allow_account_access", !r.allow_account_access.is_empty()),
        ("allow_sources", !r.allow_sources.is_empty()),
        ("require", r.require.is_some()),
    ];
    for (key, set) in allows {
        if set {
            p.add(format!("route[{i}].{key}"), "has no effect on a deny rule (it refuses every request it matches); remove one of them");
        }
    }
}

/// An upstream's TLS settings: only on https://, a client certificate with its key, names that
/// are names. (The files are read, and named if they fail, when the gateway starts.)
fn check_upstream_tls(p: &mut Problems, i: usize, u: &UpstreamConfig) {
    let https = u.url.get().is_some_and(|x| x.0.scheme_str() == Some("https"));
    let tls_keys = [("ca_file", &u.ca_file), ("client_cert", &u.client_cert), ("client_key", &u.client_key), ("tls_server_name", &u.tls_server_name)];
    for (key, v) in tls_keys {
        if !https && !v.is_empty() {
            p.add(format!("upstream[{i}].{key}"), "applies only to an https:// url");
        }
    }
    if u.client_cert.is_empty() != u.client_key.is_empty() {
        p.add(format!("upstream[{i}].client_key"), "client_cert and client_key go together");
    }
    if !u.tls_server_name.is_empty() && rustls_pki_types::ServerName::try_from(u.tls_server_name.as_str()).is_err() {
        p.add(format!("upstream[{i}].tls_server_name"), format!("{:?} is not a host name or IP address", u.tls_server_name));
    }
    if http::HeaderValue::from_str(&u.host_header).is_err() || u.host_header.contains(char::is_whitespace) {
        p.add(format!("upstream[{i}].host_header"), format!("{:?} is not a host", u.host_header));
    }
}
