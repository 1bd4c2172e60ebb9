//! State that every replica must see alike, beside the sessions: set-if-absent claims ("this
//! happens once"), small records with a lifetime, and per-minute counters. In memory for one
//! replica, in Redis for several. It must never let two callers win one claim, never store a
//! secret in clear, and never turn a Redis fault into anything but `StoreError`.
//!
//! Each operation is one atomic Redis command (claims: `SET NX PX`; records: `SET PX` / `GET`;
//! counters: `INCR` with `PEXPIRE` in one transaction), so replicas need no coordination.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use moka::Expiry;
use redis::AsyncCommands;

use crate::session::StoreError;

pub enum Shared {
    Memory(Memory),
    Redis(Redis),
}

pub struct Memory {
    values: moka::sync::Cache<String, (String, Duration)>,
    counters: moka::sync::Cache<String, Arc<AtomicU64>>,
}

/// Each record lives its own lifetime.
struct OwnTtl;

impl Expiry<String, (String, Duration)> for OwnTtl {
    fn expire_after_create(&self, _: &String, v: &(String, Duration), _: Instant) -> Option<Duration> {
        Some(v.1)
    }
}

pub struct Redis {
    conn: crate::redis_conn::Conn,
    prefix: String,
}

impl Shared {
    pub fn memory() -> Shared {
        Shared::Memory(Memory {
            values: moka::sync::Cache::builder().max_capacity(2_000_000).expire_after(OwnTtl).build(),
            counters: moka::sync::Cache::builder().max_capacity(200_000).time_to_live(Duration::from_secs(120)).build(),
        })
    }

    /// Lazily connected (a Redis down at start is an outage to recover from). Keys go under
    /// `{prefix}shared:`. Must run inside a tokio runtime.
    pub fn redis(target: &crate::redis_conn::RedisTarget, prefix: &str, timeout: Duration) -> Result<Shared, String> {
        let conn = crate::redis_conn::Conn::new(target, timeout)?;
        Ok(Shared::Redis(Redis { conn, prefix: format!("{prefix}shared:") }))
    }

    /// Redis when `session.store = "redis"` (the replicas share the sessions, so they share this
    /// too), else memory.
    pub fn from_config(session: Option<&crate::config::SessionConfig>) -> Result<Shared, crate::config::ConfigError> {
        match session.filter(|s| s.store.get() == crate::config::StoreKind::Redis) {
            Some(s) => {
                Shared::redis(&s.redis_target(), &s.redis_key_prefix, s.redis_timeout.get()).map_err(|e| crate::config::err("session.redis_url", e))
            }
            None => Ok(Shared::memory()),
        }
    }

    /// True when replicas share this (Redis).
    pub fn is_redis(&self) -> bool {
        matches!(self, Shared::Redis(_))
    }

    /// True for exactly one caller per `key` until `ttl` passes.
    pub async fn claim(&self, key: &str, ttl: Duration) -> Result<bool, StoreError> {
        match self {
            Shared::Memory(m) => Ok(m.values.entry(key.to_string()).or_insert((String::new(), ttl)).is_fresh()),
            Shared::Redis(r) => r.set_nx(key, "1", ttl).await,
        }
    }

    /// Like `claim`, for `owner`: true for the first caller and for any later caller with the
    /// same owner (one attempt repeated after a timeout, whose claim may have landed unseen),
    /// false for everyone else.
    pub async fn claim_for(&self, key: &str, owner: &str, ttl: Duration) -> Result<bool, StoreError> {
        match self {
            Shared::Memory(m) => Ok(m.values.entry(key.to_string()).or_insert((owner.to_string(), ttl)).into_value().0 == owner),
            Shared::Redis(r) => Ok(r.set_nx(key, owner, ttl).await? || self.get(key).await?.is_some_and(|v| v == owner)),
        }
    }

    pub async fn put(&self, key: &str, value: String, ttl: Duration) -> Result<(), StoreError> {
        match self {
            Shared::Memory(m) => {
                m.values.insert(key.to_string(), (value, ttl));
                Ok(())
            }
            Shared::Redis(r) => {
                let (mut c, k) = (r.conn.handle(), r.key(key));
                Ok(r.conn.run("SET", async move { c.pset_ex::<_, _, ()>(&k, value, ttl.as_millis() as u64).await }).await?)
            }
        }
    }

    pub async fn get(&self, key: &str) -> Result<Option<String>, StoreError> {
        match self {
            Shared::Memory(m) => Ok(m.values.get(key).map(|(v, _)| v)),
            Shared::Redis(r) => {
                let (mut c, k) = (r.conn.handle(), r.key(key));
                Ok(r.conn.run("GET", async move { c.get(&k).await }).await?)
            }
        }
    }

    /// Counts one more event in the current minute under `name`; the count so far (this one
    /// included) and the seconds until the minute ends. All replicas count together.
    pub async fn count_per_minute(&self, name: &str) -> Result<(u64, u64), StoreError> {
        let now = crate::session::now();
        let (minute, left) = (now / 60, 60 - now % 60);
        let key = format!("count:{name}:{minute}");
        let n = match self {
            Shared::Memory(m) => m.counters.get_with(key, || Arc::new(AtomicU64::new(0))).fetch_add(1, Ordering::AcqRel) + 1,
            Shared::Redis(r) => {
                let (mut c, k) = (r.conn.handle(), r.key(&key));
                let (n,): (u64,) = r.conn.run("INCR", async move { redis::pipe().atomic().incr(&k, 1u64).expire(&k, 120).ignore().query_async(&mut c).await }).await?;
                n
            }
        };
        Ok((n, left))
    }
}

impl Redis {
    fn key(&self, k: &str) -> String {
        format!("{}{k}", self.prefix)
    }

    /// `SET key value NX PX ttl`: true when this call set it.
    async fn set_nx(&self, key: &str, value: &str, ttl: Duration) -> Result<bool, StoreError> {
        let (mut c, k, v) = (self.conn.handle(), self.key(key), value.to_string());
        let set: Option<String> = self
            .conn
            .run("SET NX", async move { redis::cmd("SET").arg(&k).arg(&v).arg("NX").arg("PX").arg(ttl.as_millis() as u64).query_async(&mut c).await })
            .await?;
        Ok(set.is_some())
    }
}
