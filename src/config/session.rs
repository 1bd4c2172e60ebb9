//! `[session]`: cookie, lifetimes and the store (memory or Redis, one server or a cluster). It
//! must never echo a Redis URL (it may hold a password).

use super::*;

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SessionConfig {
    #[serde(default = "default_store")]
    pub store: Choice<StoreKind>,
    /// `redis://[user:password@]host:port[/db]` for `store = "redis"`; with `redis_mode =
    /// "cluster"`, the seed nodes: a list, or one string with commas between the URLs.
    #[serde(default)]
    pub redis_url: Option<OneOrMany>,
    /// `standalone` (one server, or a primary behind a stable address) or `cluster` (Redis
    /// Cluster).
    #[serde(default = "default_redis_mode")]
    pub redis_mode: Choice<RedisMode>,
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
    /// The session cookie's `Domain` (`example.com`): one sign-in then holds on every host
    /// under it, and return URLs to those hosts are allowed. Empty (the default): the cookie is
    /// the gateway's host's only.
    #[serde(default)]
    pub cookie_domain: String,
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
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
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
    /// `cookie_domain` as the cookie carries it (lower case, no leading or trailing dot).
    pub fn cookie_domain(&self) -> Option<String> {
        let d = self.cookie_domain.trim_start_matches('.').trim_end_matches('.').to_ascii_lowercase();
        (!d.is_empty()).then_some(d)
    }

    /// Where Redis is (for `store = "redis"`, once validated).
    pub fn redis_target(&self) -> crate::redis_conn::RedisTarget {
        crate::redis_conn::RedisTarget {
            urls: self.redis_url.as_ref().map(OneOrMany::items).unwrap_or_default(),
            cluster: self.redis_mode.get() == RedisMode::Cluster,
            ca_file: self.redis_ca_file.clone(),
        }
    }
}

pub(super) fn default_l1_max_entries() -> u64 {
    20_000
}
pub(super) fn default_redis_mode() -> Choice<RedisMode> {
    Choice::default()
}
pub(super) fn default_redis_prefix() -> String {
    "xumm-gate:".into()
}
pub(super) fn default_redis_timeout() -> Span {
    "500ms".into()
}
pub(super) fn default_l1_ttl() -> Span {
    "10s".into()
}
pub(super) fn default_store() -> Choice<StoreKind> {
    Choice::default()
}
pub(super) fn default_cookie_name() -> String {
    "_xumm_gate".into()
}
pub(super) fn default_ttl() -> Span {
    "24h".into()
}
pub(super) fn default_idle() -> Span {
    "24h".into()
}
pub(super) fn default_max_sessions() -> u64 {
    100_000
}

/// `session.redis_url` and `session.redis_mode`: one server's URL, or a cluster's seed nodes
/// (database 0 only, one scheme and one set of credentials). Never echoes a URL: it may hold a
/// password.
pub(super) fn check_redis_urls(s: &SessionConfig, p: &mut Problems) {
    let Some(mode) = p.take(s.redis_mode.checked("session.redis_mode")) else { return };
    let cluster = mode == RedisMode::Cluster;
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

/// `session.cookie_domain`: a DNS name with a dot (never a bare TLD), which `public_url`'s host
/// is (or is under): a browser drops a cookie whose Domain the setting host is not under.
pub(super) fn check_cookie_domain(s: &SessionConfig, public_url: Option<&url::Url>, p: &mut Problems) {
    let Some(d) = s.cookie_domain() else { return };
    if !is_dns_name(&d) || !d.contains('.') {
        return p.add("session.cookie_domain", format!("must be a domain like \"example.com\" (no scheme, port or wildcard), got {:?}", s.cookie_domain));
    }
    if let Some(host) = public_url.and_then(|u| u.host_str()) {
        if !host.eq_ignore_ascii_case(&d) && !is_under(host, &format!(".{d}")) {
            p.add("session.cookie_domain", format!("{d:?} does not cover server.public_url's host {host:?}: browsers would drop the cookie"));
        }
    }
}
