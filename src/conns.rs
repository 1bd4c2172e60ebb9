//! Connection accounting for the public listener: a global cap and a per-client-address cap on
//! open client connections, and per-connection activity for the idle timeout. It must never
//! count a connection without releasing it (every count lives in a guard), and never apply to
//! the admin listener, which must keep answering whatever the public one carries.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Why a connection was refused at accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// `server.max_connections` are open.
    Global,
    /// `server.max_connections_per_ip` are open from this address (IPv6: this /64).
    PerClient,
}

impl Refused {
    pub fn label(self) -> &'static str {
        match self {
            Refused::Global => "global_limit",
            Refused::PerClient => "per_client_limit",
        }
    }
}

pub struct Conns {
    open: AtomicUsize,
    max: usize,
    per_client_max: u32,
    per_client: Mutex<HashMap<IpAddr, u32, foldhash::fast::RandomState>>,
}

impl Conns {
    pub fn new(max: usize, per_client_max: u32) -> Conns {
        Conns { open: AtomicUsize::new(0), max, per_client_max, per_client: Mutex::default() }
    }

    /// Open client connections now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// Counts a new connection from `ip`, or says why it may not open. A trusted proxy
    /// (`exempt`) carries many clients' connections: only the global cap applies to it.
    pub fn admit(self: &Arc<Self>, ip: IpAddr, exempt: bool) -> Result<ConnGuard, Refused> {
        if self.open.fetch_add(1, Ordering::AcqRel) >= self.max {
            self.open.fetch_sub(1, Ordering::AcqRel);
            return Err(Refused::Global);
        }
        let client = (!exempt).then(|| crate::ratelimit::network_of(ip));
        if let Some(key) = client {
            let mut m = self.per_client.lock().unwrap_or_else(|e| e.into_inner());
            let n = m.entry(key).or_insert(0);
            if *n >= self.per_client_max {
                drop(m);
                self.open.fetch_sub(1, Ordering::AcqRel);
                return Err(Refused::PerClient);
            }
            *n += 1;
        }
        crate::metrics::connections(self.open());
        Ok(ConnGuard { conns: self.clone(), client })
    }
}

/// One counted connection; dropping it releases the count.
pub struct ConnGuard {
    conns: Arc<Conns>,
    client: Option<IpAddr>,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        if let Some(key) = self.client {
            let mut m = self.conns.per_client.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(n) = m.get_mut(&key) {
                *n -= 1;
                if *n == 0 {
                    m.remove(&key);
                }
            }
        }
        self.conns.open.fetch_sub(1, Ordering::AcqRel);
        crate::metrics::connections(self.conns.open());
    }
}

/// What one hyper-served connection is doing: how many of its requests are open, and since
/// when it has had none. An HTTP/2 connection keeps sending PINGs and SETTINGS while nobody
/// uses it, so idleness is judged by requests, not bytes.
pub struct Activity {
    state: Mutex<(usize, Instant, bool)>, // (open requests, last change, any request yet)
}

impl Default for Activity {
    fn default() -> Self {
        Activity { state: Mutex::new((0, Instant::now(), false)) }
    }
}

impl Activity {
    /// A request starts; the returned guard ends it (held by the response body).
    pub fn begin(self: &Arc<Self>) -> InUse {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        *s = (s.0 + 1, Instant::now(), true);
        InUse(self.clone())
    }

    /// When the connection counts as idle and should close: None while a request is open.
    /// Before its first request a connection gets `first` (the header read timeout: an HTTP/2
    /// handshake or first request that never comes), after that `idle`.
    pub fn deadline(&self, first: Duration, idle: Duration) -> Option<Instant> {
        let s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        (s.0 == 0).then(|| s.1 + if s.2 { idle } else { first })
    }
}

/// An open request on a connection; dropping it (when its response body ends) ends it.
pub struct InUse(Arc<Activity>);

impl Drop for InUse {
    fn drop(&mut self) {
        let mut s = self.0.state.lock().unwrap_or_else(|e| e.into_inner());
        s.0 = s.0.saturating_sub(1);
        s.1 = Instant::now();
    }
}

/// The global cap fitted to the process's file-descriptor limit: each client connection may
/// hold an upstream socket too, and a reserve stays for the admin listener, the provider,
/// Xumm and logs. Linux reports the limit in /proc/self/limits; elsewhere `configured` stands.
pub fn fit_to_fd_limit(configured: usize) -> usize {
    const RESERVE: usize = 128;
    let soft = std::fs::read_to_string("/proc/self/limits").ok().and_then(|t| {
        t.lines().find(|l| l.starts_with("Max open files")).and_then(|l| l.split_whitespace().nth(3)).and_then(|v| v.parse::<usize>().ok())
    });
    match soft {
        Some(fds) if (fds.saturating_sub(RESERVE)) / 2 < configured => {
            let fitted = (fds.saturating_sub(RESERVE) / 2).max(1);
            tracing::warn!(configured, fitted, fd_limit = fds, "server.max_connections lowered to fit the open-file limit (raise it with ulimit -n)");
            fitted
        }
        _ => configured,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_count_and_release() {
        let c = Arc::new(Conns::new(3, 2));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let g1 = c.admit(a, false).unwrap();
        let _g2 = c.admit(a, false).unwrap();
        assert_eq!(c.admit(a, false).err(), Some(Refused::PerClient));
        let _g3 = c.admit(b, true).unwrap();
        assert_eq!(c.admit(b, true).err(), Some(Refused::Global));
        assert_eq!(c.open(), 3);
        drop(g1);
        assert_eq!(c.open(), 2);
        assert!(c.admit(a, false).is_ok());
    }

    #[test]
    fn idle_deadline_waits_for_open_requests() {
        let act = Arc::new(Activity::default());
        let (first, idle) = (Duration::from_secs(1), Duration::from_secs(60));
        let fresh = act.deadline(first, idle).unwrap();
        assert!(fresh <= Instant::now() + first);
        let r = act.begin();
        assert_eq!(act.deadline(first, idle), None);
        drop(r);
        assert!(act.deadline(first, idle).unwrap() > Instant::now() + Duration::from_secs(59));
    }
}
