//! Sessions: what a signed-in user is, and where that is kept. It must never hand a session to a
//! request whose cookie did not open with one of the configured keys, and never keep a session
//! past its expiry.

pub mod cookie;
pub mod memory;
pub mod redis;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use http::HeaderValue;

use crate::account::Account;

/// How the identity was established.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Session,
    Bearer,
    /// Opened from an xApp one-time token (`xapp.rs`).
    Xapp,
}

/// What an xApp session knows beyond the account: how the wallet holds it, and its theme.
#[derive(Debug)]
pub struct XappSession {
    /// `FULL` or `READONLY` (Xumm's `accountaccess`).
    pub access: XappAccess,
    /// `LIGHT`, `DARK`, ... (upper-case letters only).
    pub style: Option<String>,
    pub access_header: HeaderValue,
    pub style_header: Option<HeaderValue>,
}

/// Whether the wallet can sign for the account (`FULL`) or only watches it (`READONLY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum XappAccess {
    Full,
    Readonly,
}

impl XappAccess {
    pub fn as_str(self) -> &'static str {
        match self {
            XappAccess::Full => "FULL",
            XappAccess::Readonly => "READONLY",
        }
    }
}

/// A signed-in user. Header values are computed once at sign-in so the hot path only clones
/// them (a refcount bump).
#[derive(Debug)]
pub struct Session {
    pub account: Account,
    pub network: Option<String>,
    /// Xumm's user token: kept server-side, never sent upstream or to the browser.
    pub user_token: Option<String>,
    pub source: Source,
    /// Unix seconds.
    pub expires_at: u64,
    pub account_header: HeaderValue,
    pub network_header: Option<HeaderValue>,
    /// Signed assertions per upstream audience: (audience, exp, header value).
    pub assertions: std::sync::Mutex<Vec<(Arc<str>, u64, HeaderValue)>>,
    /// The store id, for cookie sessions (server-side only; user-token handles refer to it).
    pub id: Option<String>,
    /// X-Xumm-User-Token handles per broker app.
    pub handles: std::sync::Mutex<Vec<(Arc<str>, HeaderValue)>>,
    /// For sessions opened in an xApp.
    pub xapp: Option<XappSession>,
}

impl Session {
    pub fn new(account: Account, network: Option<String>, user_token: Option<String>, source: Source, expires_at: u64) -> Session {
        let account_header = HeaderValue::from_str(account.as_str()).expect("a validated r-address is a valid header value");
        // Only a plain network name may become a header value (no CR/LF or other control bytes).
        let network = network.filter(|n| !n.is_empty() && n.len() <= 32 && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'));
        let network_header = network.as_deref().and_then(|n| HeaderValue::from_str(n).ok());
        Session {
            account,
            network,
            user_token,
            source,
            expires_at,
            account_header,
            network_header,
            assertions: Default::default(),
            id: None,
            handles: Default::default(),
            xapp: None,
        }
    }

    /// This session as opened in an xApp: the account access and the theme (a style that is not
    /// a plain word of letters is left out, never put in a header).
    pub fn with_xapp(mut self, access: XappAccess, style: Option<String>) -> Session {
        let style = style.filter(|s| !s.is_empty() && s.len() <= 16 && s.bytes().all(|b| b.is_ascii_alphabetic())).map(|s| s.to_ascii_uppercase());
        self.xapp = Some(XappSession {
            access,
            style_header: style.as_deref().and_then(|s| HeaderValue::from_str(s).ok()),
            style,
            access_header: HeaderValue::from_static(access.as_str()),
        });
        self
    }

    pub fn expired(&self) -> bool {
        self.expires_at <= now()
    }
}

/// Unix time in seconds.
pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("session store unavailable: {0}")]
    Unavailable(String),
}

impl From<crate::redis_conn::Unavailable> for StoreError {
    fn from(e: crate::redis_conn::Unavailable) -> StoreError {
        StoreError::Unavailable(e.0)
    }
}

/// Where sessions live, keyed by an opaque random id.
pub trait SessionStore: Send + Sync {
    fn get(&self, id: &str) -> impl std::future::Future<Output = Result<Option<Arc<Session>>, StoreError>> + Send;
    fn put(&self, id: String, session: Arc<Session>) -> impl std::future::Future<Output = Result<(), StoreError>> + Send;
    fn delete(&self, id: &str) -> impl std::future::Future<Output = Result<(), StoreError>> + Send;
}

/// A new random session id (256 bits, URL-safe).
pub fn new_id() -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

/// Lower-case hex of the SHA-256 of `data`: how a secret-bearing value (a session id, a sign-in
/// code) becomes a key that tells a reader of the store nothing.
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

/// The configured store: `memory` (one replica) or `redis` (shared by replicas, with an L1).
pub enum Store {
    Memory(memory::MemoryStore),
    Redis(redis::RedisStore),
}

impl Store {
    /// The live session under `id` if it is in this process (memory, or Redis' L1), without
    /// yielding: the fast path's lookup. None sends the request to the general path.
    pub fn get_now(&self, id: &str) -> Option<Arc<Session>> {
        match self {
            Store::Memory(m) => m.get_now(id),
            Store::Redis(r) => r.get_now(id),
        }
    }

    /// True when a session missing from this process may still live elsewhere (Redis).
    pub fn is_shared(&self) -> bool {
        matches!(self, Store::Redis(_))
    }

    /// Ends every session of `account` (on every replica with Redis); how many there were.
    /// Bearer JWTs are not sessions: they stay valid until their own `exp`.
    pub async fn revoke_account(&self, account: &str) -> Result<usize, StoreError> {
        let (start, step) = (std::time::Instant::now(), self.step("revoke"));
        let r = match self {
            Store::Memory(m) => Ok(m.revoke_account(account)),
            Store::Redis(r) => r.revoke_account(account).await,
        };
        drop(step);
        crate::metrics::store_operation(self.label(), "revoke", r.is_ok(), start.elapsed());
        r
    }

    /// A trace span for one operation (Redis only: the memory store answers in nanoseconds).
    fn step(&self, op: &'static str) -> crate::telemetry::Child {
        match self {
            Store::Memory(_) => crate::telemetry::Child::none(),
            Store::Redis(_) => {
                let c = crate::telemetry::child("session_store", opentelemetry::trace::SpanKind::Client);
                c.note("db.operation.name", op);
                c
            }
        }
    }

    /// The store's metric label.
    pub fn label(&self) -> &'static str {
        match self {
            Store::Memory(_) => "memory",
            Store::Redis(_) => "redis",
        }
    }

    /// Sessions this process holds (memory: every live one; Redis: those in this replica's L1).
    pub fn held(&self) -> (&'static str, u64) {
        let n = match self {
            Store::Memory(m) => m.held(),
            Store::Redis(r) => r.held(),
        };
        (self.label(), n)
    }

    /// Whether the store can serve (for /readyz).
    pub async fn ready(&self) -> Result<(), StoreError> {
        match self {
            Store::Memory(_) => Ok(()),
            Store::Redis(r) => r.ping().await,
        }
    }
}

/// Every store operation is counted and timed here (`xumm_gate_session_store_*`), whichever
/// store serves it.
impl SessionStore for Store {
    async fn get(&self, id: &str) -> Result<Option<Arc<Session>>, StoreError> {
        let (start, step) = (std::time::Instant::now(), self.step("get"));
        let r = match self {
            Store::Memory(m) => m.get(id).await,
            Store::Redis(r) => r.get(id).await,
        };
        drop(step);
        crate::metrics::store_operation(self.label(), "get", r.is_ok(), start.elapsed());
        r
    }
    async fn put(&self, id: String, session: Arc<Session>) -> Result<(), StoreError> {
        let (start, step) = (std::time::Instant::now(), self.step("put"));
        let r = match self {
            Store::Memory(m) => m.put(id, session).await,
            Store::Redis(r) => r.put(id, session).await,
        };
        drop(step);
        crate::metrics::store_operation(self.label(), "put", r.is_ok(), start.elapsed());
        r
    }
    async fn delete(&self, id: &str) -> Result<(), StoreError> {
        let (start, step) = (std::time::Instant::now(), self.step("delete"));
        let r = match self {
            Store::Memory(m) => m.delete(id).await,
            Store::Redis(r) => r.delete(id).await,
        };
        drop(step);
        crate::metrics::store_operation(self.label(), "delete", r.is_ok(), start.elapsed());
        r
    }
}
