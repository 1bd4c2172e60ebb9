//! The Redis session store, for several replicas: sessions sealed with the cookie keys under
//! hashed keys, an in-process L1 cache in front, sign-outs fanned out over pub/sub. It must
//! never store a session id or a Xumm user token readable in Redis, never make a network call
//! for a session in L1, and never let a Redis fault become anything but `StoreError` (the
//! caller answers 503, never a sign-in loop).

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use moka::Expiry;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::cookie::Sealer;
use super::{Session, SessionStore, Source, StoreError, now};
use crate::account::Account;
use crate::redis_conn::{Conn, RedisTarget, redis_cause};

/// What Redis holds of a session (sealed): enough to rebuild it on any replica.
#[derive(Serialize, Deserialize)]
struct Stored {
    a: String,
    n: Option<String>,
    t: Option<String>,
    s: Source,
    e: u64,
    /// xApp sessions: account access and theme.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    x: Option<(crate::session::XappAccess, Option<String>)>,
}

/// L1 entries live `l1_ttl`, and never past the session's own expiry.
struct L1Expiry(Duration);

impl Expiry<Arc<str>, Arc<Session>> for L1Expiry {
    fn expire_after_create(&self, _: &Arc<str>, s: &Arc<Session>, _: Instant) -> Option<Duration> {
        Some(self.0.min(Duration::from_secs(s.expires_at.saturating_sub(now()))))
    }
}

type Hasher = foldhash::fast::RandomState;

/// The caches the pub/sub listener clears; shared with it weakly, so it ends with the store.
struct Local {
    /// Session id -> session. Bounded by `session.l1_max_entries`, so a replica's memory does
    /// not grow with the number of live sessions (they live in Redis).
    l1: moka::sync::Cache<Arc<str>, Arc<Session>, Hasher>,
    /// The hash in a session's Redis key -> its id (one allocation, shared with `l1`), to find
    /// what a sign-out message (which names keys, never ids) refers to.
    ids: moka::sync::Cache<[u8; 32], Arc<str>, Hasher>,
}

impl Local {
    /// Drops the L1 copy of the session stored under Redis key `key` (a sign-out or revocation
    /// anywhere).
    fn forget(&self, key: &str) {
        let Some(digest) = key.rsplit(':').next().and_then(from_hex) else { return };
        if let Some(id) = self.ids.remove(&digest) {
            self.l1.invalidate(&id);
        }
    }
}

/// The 32 bytes of a 64-digit hex string.
fn from_hex(hex: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    if hex.len() != 64 {
        return None;
    }
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

pub struct RedisStore {
    conn: Conn,
    prefix: String,
    sealer: Sealer,
    idle: Duration,
    local: Arc<Local>,
}

#[derive(Debug, Clone)]
pub struct RedisSettings {
    pub target: RedisTarget,
    pub prefix: String,
    pub timeout: Duration,
    pub l1_ttl: Duration,
    pub idle: Duration,
    /// Sessions each replica keeps in L1 at most.
    pub l1_max_entries: u64,
}

impl RedisStore {
    /// Connects lazily (a Redis that is down at start is an outage to recover from, not a
    /// start-up failure) and starts the sign-out listener. Must run inside a tokio runtime.
    pub fn new(cfg: &RedisSettings, secrets: &[Vec<u8>]) -> Result<RedisStore, String> {
        let conn = Conn::new(&cfg.target, cfg.timeout)?;
        let subscribers = crate::redis_conn::subscribers(&cfg.target)?;
        let local = Arc::new(Local {
            l1: moka::sync::Cache::builder().max_capacity(cfg.l1_max_entries).expire_after(L1Expiry(cfg.l1_ttl)).build_with_hasher(Hasher::default()),
            ids: moka::sync::Cache::builder().max_capacity(cfg.l1_max_entries).time_to_live(cfg.l1_ttl).build_with_hasher(Hasher::default()),
        });
        let store = RedisStore { conn, prefix: cfg.prefix.clone(), sealer: Sealer::new(secrets, true), idle: cfg.idle, local: local.clone() };
        tokio::spawn(listen_for_sign_outs(subscribers, store.channel(), Arc::downgrade(&local)));
        Ok(store)
    }

    /// The Redis key of a session: a hash of its id, so a reader of Redis cannot turn keys into
    /// cookies (nor cookies into keys without the cookie keys).
    fn key(&self, id: &str) -> String {
        self.hashed("session", id)
    }

    /// The set of an account's session keys (the account hashed like the ids: Redis holds no
    /// r-address in clear).
    fn account_key(&self, account: &str) -> String {
        self.hashed("account", account)
    }

    /// `{prefix}{kind}:<hex SHA-256 of name>`.
    fn hashed(&self, kind: &str, name: &str) -> String {
        format!("{}{kind}:{}", self.prefix, super::sha256_hex(name.as_bytes()))
    }

    /// Ends every session of `account` on every replica: deletes their keys and publishes each
    /// on the sign-out channel. How many there were.
    pub async fn revoke_account(&self, account: &str) -> Result<usize, StoreError> {
        let set = self.account_key(account);
        let mut c = self.conn.handle();
        let s2 = set.clone();
        let keys: Vec<String> = self.conn.run("SMEMBERS", async move { c.smembers(&s2).await }).await?;
        if keys.is_empty() {
            return Ok(0);
        }
        // Keys of different slots (a cluster) go in one multi-key DEL, which the cluster client
        // splits by slot; the messages all name one channel. The set may still name sessions
        // that signed out or expired: only the keys DEL found count.
        let mut publish = redis::pipe();
        for k in &keys {
            publish.publish(self.channel(), k).ignore();
        }
        let (mut c, mut c2, mut c3, gone) = (self.conn.handle(), self.conn.handle(), self.conn.handle(), keys.clone());
        let (ended, (), ()) = self
            .conn
            .run("DEL", async move { tokio::try_join!(c.del::<_, usize>(gone), c2.del::<_, ()>(set), publish.query_async::<()>(&mut c3)) })
            .await?;
        // This replica's own copies go at once (the messages come back too).
        keys.iter().for_each(|k| self.local.forget(k));
        Ok(ended)
    }

    fn channel(&self) -> String {
        format!("{}signed-out", self.prefix)
    }

    /// The session in this replica's L1, without a network call (the fast path's lookup).
    pub fn get_now(&self, id: &str) -> Option<Arc<Session>> {
        crate::metrics::session_lookups("redis").count(self.local.l1.get(id).filter(|s| !s.expired()))
    }

    /// Sessions in this replica's L1.
    pub fn held(&self) -> u64 {
        self.local.l1.run_pending_tasks();
        self.local.l1.entry_count()
    }

    /// Whether Redis answers (for /readyz).
    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut c = self.conn.handle();
        self.conn.run("PING", async move { redis::cmd("PING").query_async::<String>(&mut c).await }).await?;
        Ok(())
    }

    fn remember(&self, id: &str, s: &Arc<Session>) {
        let id: Arc<str> = id.into();
        self.local.ids.insert(Sha256::digest(id.as_bytes()).into(), id.clone());
        self.local.l1.insert(id, s.clone());
    }
}

impl SessionStore for RedisStore {
    /// L1, else Redis: `GETEX` reads the session and restarts its idle timer in one command, so
    /// the idle timeout costs no extra write; an active session's timer is restarted at most
    /// once per L1 lifetime per replica.
    async fn get(&self, id: &str) -> Result<Option<Arc<Session>>, StoreError> {
        if let Some(s) = self.get_now(id) {
            return Ok(Some(s));
        }
        let key = self.key(id);
        let mut c = self.conn.handle();
        let idle = self.idle.as_secs().max(1);
        let k = key.clone();
        let sealed: Option<String> = self.conn.run("GETEX", async move { c.get_ex(&k, redis::Expiry::EX(idle)).await }).await?;
        let Some(sealed) = sealed else { return Ok(None) };
        // Sealed under its own key: a value copied to another key does not open.
        let Some(stored) = self.sealer.open(&key, &sealed).and_then(|j| serde_json::from_str::<Stored>(&j).ok()) else {
            tracing::warn!("a session in redis does not open with the cookie keys; ignored");
            return Ok(None);
        };
        let Ok(account) = Account::parse(&stored.a) else { return Ok(None) };
        let mut s = Session::new(account, stored.n, stored.t, stored.s, stored.e);
        if let Some((access, style)) = stored.x {
            s = s.with_xapp(access, style);
        }
        if s.expired() {
            return Ok(None);
        }
        s.id = Some(id.to_string());
        let s = Arc::new(s);
        if stored.e < now() + idle {
            // The idle timer must not outlive the session itself.
            let mut c = self.conn.handle();
            let k = key.clone();
            tokio::spawn(async move {
                let _: redis::RedisResult<bool> = c.expire_at(&k, stored.e as i64).await;
            });
        }
        self.remember(id, &s);
        Ok(Some(s))
    }

    async fn put(&self, id: String, session: Arc<Session>) -> Result<(), StoreError> {
        let key = self.key(&id);
        let stored = Stored { a: session.account.to_string(), n: session.network.clone(), t: session.user_token.clone(), s: session.source, e: session.expires_at, x: session.xapp.as_ref().map(|x| (x.access, x.style.clone())) };
        let sealed = self.sealer.seal(&key, &serde_json::to_string(&stored).expect("serializable"));
        let ttl = self.idle.as_secs().min(session.expires_at.saturating_sub(now())).max(1);
        let (mut c, k, set) = (self.conn.handle(), key.clone(), self.account_key(session.account.as_str()));
        let life = session.expires_at.saturating_sub(now()).max(1);
        // The session, and its key in the account's set, which lives as long as the newest
        // session (the one that ends last: every session's life is capped by session.ttl).
        // Side by side, not one pipeline: in a cluster the two keys live in different slots.
        // Plain commands only, so any Redis from 2.8 on will do.
        let mut c2 = c.clone();
        self.conn.run("SET", async move {
            let mut account = redis::pipe();
            account.sadd(&set, &k).ignore().expire(&set, life as i64).ignore();
            tokio::try_join!(c.set_ex::<_, _, ()>(&k, sealed, ttl), account.query_async::<()>(&mut c2)).map(|_| ())
        })
        .await?;
        self.remember(&id, &session);
        Ok(())
    }

    /// Deletes the session and tells every replica to drop its L1 copy (the message names the
    /// key, never the id).
    async fn delete(&self, id: &str) -> Result<(), StoreError> {
        self.local.l1.invalidate(id);
        let key = self.key(id);
        let (mut c, mut c2, channel) = (self.conn.handle(), self.conn.handle(), self.channel());
        Ok(self.conn.run("DEL", async move { tokio::try_join!(c.del::<_, ()>(&key), c2.publish::<_, _, ()>(&channel, &key)).map(|_| ()) }).await?)
    }
}

/// Listens for sign-outs from every replica and drops their sessions from this one's L1; on a
/// lost subscription (messages may have been missed) the whole L1 is dropped once it is back.
/// Ends when the store is gone.
async fn listen_for_sign_outs(subscribers: Vec<redis::Client>, channel: String, local: Weak<Local>) {
    use futures_util::StreamExt;
    let mut first = true;
    // In a cluster any node will do; the next one after a failure.
    for client in subscribers.iter().cycle() {
        if local.strong_count() == 0 {
            return;
        }
        match client.get_async_pubsub().await {
            Ok(mut ps) => match ps.subscribe(&channel).await {
                Ok(()) => {
                    if !first {
                        if let Some(l) = local.upgrade() {
                            l.l1.invalidate_all();
                        }
                        tracing::info!("session sign-out channel subscribed again; local cache cleared");
                    }
                    first = false;
                    let mut messages = ps.into_on_message();
                    while let Some(m) = messages.next().await {
                        let Some(l) = local.upgrade() else { return };
                        if let Ok(key) = m.get_payload::<String>() {
                            l.forget(&key);
                        }
                    }
                    tracing::warn!("session sign-out channel lost; resubscribing");
                }
                Err(e) => tracing::warn!(cause = %redis_cause(&e), "cannot subscribe to the session sign-out channel"),
            },
            Err(e) => tracing::debug!(cause = %redis_cause(&e), "redis unreachable for the sign-out channel"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
