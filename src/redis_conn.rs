//! The gateway's connection to Redis, one server or a Redis Cluster, for the session store and
//! the shared state. It must never connect eagerly (a Redis down at start is an outage to
//! recover from, not a start-up failure), never let a command run past the timeout, and never
//! put the URL (which may hold a password) in an error.
//!
//! In cluster mode every command is routed by its key's slot (redis-rs's cluster client, which
//! follows MOVED/ASK and reloads the slot map); callers therefore never pipeline commands on
//! keys of different slots, and send such commands side by side instead.

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};


/// Redis did not answer (in time, or at all): the command and the cause, never the URL.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Unavailable(pub String);

/// Where the gateway's Redis is.
#[derive(Debug, Clone)]
pub struct RedisTarget {
    /// One URL for a single server; a cluster's seed nodes (any reachable one will do).
    pub urls: Vec<String>,
    pub cluster: bool,
    /// PEM CA certificate(s) that sign the servers' certificates, for `rediss://` (else the
    /// system's roots).
    pub ca_file: Option<String>,
}

/// A connection to send commands on: cheap to clone, multiplexed, reconnecting by itself.
#[derive(Clone)]
pub enum Handle {
    One(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Handle {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Handle::One(c) => c.req_packed_command(cmd),
            Handle::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(&'a mut self, cmd: &'a Pipeline, offset: usize, count: usize) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Handle::One(c) => c.req_packed_commands(cmd, offset, count),
            Handle::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Handle::One(c) => c.get_db(),
            Handle::Cluster(c) => c.get_db(),
        }
    }
}

/// A lazily connected Redis whose every command is bounded by `timeout`.
pub struct Conn {
    handle: Handle,
    timeout: Duration,
}

impl Conn {
    /// Must run inside a tokio runtime.
    pub fn new(target: &RedisTarget, timeout: Duration) -> Result<Conn, String> {
        let handle = if target.cluster {
            let mut b = redis::cluster::ClusterClientBuilder::new(target.urls.iter().map(String::as_str)).retries(2).max_retry_wait(1000);
            if let Some(certs) = tls_certificates(target.ca_file.as_deref())? {
                b = b.certs(certs);
            }
            let client = b.build().map_err(|e| redis_cause(&e))?;
            let config = redis::cluster::ClusterConfig::new().set_connection_timeout(timeout).set_response_timeout(timeout);
            Handle::Cluster(client.get_pending_async_connection_with_config(config))
        } else {
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(timeout))
                .set_response_timeout(Some(timeout))
                .set_number_of_retries(2)
                .set_max_delay(Duration::from_secs(1));
            let url = target.urls.first().map(String::as_str).unwrap_or_default();
            Handle::One(ConnectionManager::new_lazy_with_config(client(url, target.ca_file.as_deref())?, config).map_err(|e| redis_cause(&e))?)
        };
        Ok(Conn { handle, timeout })
    }

    /// A handle to send commands on (a clone: cheap, the same connections).
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// Runs Redis commands within the timeout; any failure is `Unavailable` naming the command
    /// and the cause (never the URL).
    pub async fn run<T>(&self, what: &'static str, f: impl std::future::Future<Output = redis::RedisResult<T>>) -> Result<T, Unavailable> {
        match tokio::time::timeout(self.timeout, f).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(Unavailable(format!("redis {what}: {}", redis_cause(&e)))),
            Err(_) => Err(Unavailable(format!("redis {what}: no answer within {:?}", self.timeout))),
        }
    }
}

/// Clients for subscribing: one per URL. In a cluster a message published on any node reaches
/// the subscribers of every node, so a subscriber needs only one node that answers.
pub fn subscribers(target: &RedisTarget) -> Result<Vec<redis::Client>, String> {
    target.urls.iter().map(|u| client(u, target.ca_file.as_deref())).collect()
}

/// A client for one server at `url`; for `rediss://` (TLS through rustls, the one crypto stack)
/// with the CA in `ca_file` when given, else the system's roots.
fn client(url: &str, ca_file: Option<&str>) -> Result<redis::Client, String> {
    match tls_certificates(ca_file)? {
        Some(certs) => redis::Client::build_with_tls(url, certs).map_err(|e| redis_cause(&e)),
        None => redis::Client::open(url).map_err(|e| redis_cause(&e)),
    }
}

fn tls_certificates(ca_file: Option<&str>) -> Result<Option<redis::TlsCertificates>, String> {
    let Some(path) = ca_file else { return Ok(None) };
    let root = std::fs::read(path).map_err(|e| format!("cannot read session.redis_ca_file {path}: {e}"))?;
    Ok(Some(redis::TlsCertificates { client_tls: None, root_cert: Some(root) }))
}

/// A Redis error as a log cause: its kind and text, never the URL (which may hold a password).
pub fn redis_cause(e: &redis::RedisError) -> String {
    format!("{:?}: {}", e.kind(), e.detail().unwrap_or_else(|| e.category()))
}
