//! Per-worker state: what each worker thread (one current-thread runtime) keeps for itself so
//! the hot path shares nothing across cores and takes no lock. It must never hold anything
//! another thread needs to see (sessions, config, counters), and nobody may hold one of its
//! borrows across an `.await`.
//!
//! One value per thread, one field per owner; the owners (`fast::response`, `proxy`, `auth`)
//! keep the logic, this module only the storage, so it depends on none of them.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use http::HeaderValue;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use tokio::net::TcpStream;

use crate::body::IdleBody;

/// The general path's pooled client to the upstreams of one `Proxy`.
pub type UpstreamClient = Client<HttpConnector, IdleBody>;

/// The general path's pooled client to one https:// upstream.
pub type TlsUpstreamClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, IdleBody>;

/// Idle fast-path sockets to one upstream with the time each went idle, most recently used last.
pub type IdleSockets = Vec<(Instant, TcpStream)>;

/// Session cookie values that opened -> (the `Auth` instance they opened for, session id).
/// foldhash with a fixed seed, not SipHash: only values that opened (authentic, server-made)
/// are ever inserted, so nobody can pick colliding keys, and hashing a ~200-byte cookie is the
/// memo's main cost.
pub type OpenedCookies = HashMap<Box<str>, (usize, Arc<str>), foldhash::fast::FixedState>;

pub struct Worker {
    /// Idle fast-path upstream sockets by upstream key (a current-thread runtime owns its
    /// sockets: they are registered with its reactor).
    pub idle: RefCell<Vec<(usize, IdleSockets)>>,
    /// The general path's upstream clients by the `Proxy` they belong to (dead once it is
    /// dropped).
    pub clients: RefCell<Vec<(std::sync::Weak<()>, UpstreamClient)>>,
    /// Clients to https:// upstreams by (upstream key, HTTP/1.1 only for upgrades): each
    /// upstream has its own trust roots and client certificate.
    pub tls_clients: RefCell<Vec<(std::sync::Weak<()>, (usize, bool), TlsUpstreamClient)>>,
    /// The `Date` header of the current second.
    pub date: RefCell<HttpDate>,
    /// Session cookies already opened (`auth::open_session_cookie`).
    pub opened: RefCell<OpenedCookies>,
    /// The last client address as a header value: a proxy sees the same few peers over and over.
    pub last_peer: RefCell<Option<(IpAddr, HeaderValue)>>,
}

thread_local! {
    static WORKER: Worker = const {
        Worker {
            idle: RefCell::new(Vec::new()),
            clients: RefCell::new(Vec::new()),
            tls_clients: RefCell::new(Vec::new()),
            date: RefCell::new(HttpDate { second: 0, text: String::new() }),
            opened: RefCell::new(HashMap::with_hasher(foldhash::fast::FixedState::with_seed(0x5eed_c0ff_ee00_0001))),
            last_peer: RefCell::new(None),
        }
    };
}

/// This thread's worker state.
pub fn with<R>(f: impl FnOnce(&Worker) -> R) -> R {
    WORKER.with(f)
}

/// The HTTP date of the current second, formatted once per second and thread.
pub struct HttpDate {
    second: u64,
    text: String,
}

impl HttpDate {
    pub fn now(&mut self) -> &str {
        let now = std::time::SystemTime::now();
        let second = now.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if second != self.second || self.text.is_empty() {
            self.second = second;
            self.text = httpdate::fmt_http_date(now);
        }
        &self.text
    }
}
