//! Per-client-address rate limits (token buckets) for what anonymous clients can make the
//! gateway do at someone else's expense (sign-in starts and callbacks spend the app's quota at
//! the provider). It must never key on anything a client can vary at will (only the peer
//! address, or the one a trusted proxy reports), and never grow without bound.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::HeaderMap;

struct Bucket {
    tokens: f64,
    at: Instant,
}

pub struct PerClient {
    per_sec: f64,
    burst: f64,
    buckets: moka::sync::Cache<IpAddr, Arc<Mutex<Bucket>>>,
}

impl PerClient {
    /// `per_minute` sustained, with bursts of a third of that (at least 1).
    pub fn new(per_minute: u32) -> PerClient {
        PerClient {
            per_sec: f64::from(per_minute) / 60.0,
            burst: (f64::from(per_minute) / 3.0).ceil().max(1.0),
            // An idle bucket is full again within a minute or so: forgetting it changes nothing.
            buckets: moka::sync::Cache::builder().max_capacity(200_000).time_to_idle(Duration::from_secs(120)).build(),
        }
    }

    /// Takes one token for `client`; Err carries the seconds until one is available.
    pub fn take(&self, client: IpAddr) -> Result<(), u64> {
        let b = self.buckets.get_with(client, || Arc::new(Mutex::new(Bucket { tokens: self.burst, at: Instant::now() })));
        let mut b = b.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * self.per_sec).min(self.burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - b.tokens) / self.per_sec).ceil().max(1.0) as u64)
        }
    }
}

/// The address a request comes from, as a rate-limit key: the peer, or, when the peer is a
/// trusted proxy, the nearest address in X-Forwarded-For that is not one of the trusted
/// proxies. IPv6 addresses count per /64 (one subscriber's network).
pub fn client_key(peer: SocketAddr, headers: &HeaderMap, is_trusted: impl Fn(IpAddr) -> bool) -> IpAddr {
    network_of(client_ip(peer, headers, is_trusted))
}

/// The client's address: the peer's, or behind trusted proxies the last address they name that
/// is not one of theirs.
pub fn client_ip(peer: SocketAddr, headers: &HeaderMap, is_trusted: impl Fn(IpAddr) -> bool) -> IpAddr {
    let mut ip = peer.ip().to_canonical();
    if is_trusted(ip) {
        let hops = headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(','));
        let hops: Vec<IpAddr> = hops.filter_map(|h| h.trim().parse::<IpAddr>().ok()).collect();
        if let Some(found) = hops.iter().rev().map(|a| a.to_canonical()).find(|a| !is_trusted(*a)) {
            ip = found;
        }
    }
    ip
}

/// One client's network as a limit key: an IPv4 address, or an IPv6 /64 (one subscriber's
/// network, all of whose addresses one client can use).
pub fn network_of(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_then_refills_and_keys_are_separate() {
        let l = PerClient::new(60); // 1 a second, bursts of 20
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..20 {
            assert_eq!(l.take(a), Ok(()));
        }
        assert_eq!(l.take(a), Err(1));
        assert_eq!(l.take("192.0.2.2".parse().unwrap()), Ok(()));
    }

    #[test]
    fn the_key_is_the_peer_unless_a_trusted_proxy_reports_one() {
        let trusted = |ip: IpAddr| ip.is_loopback();
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", "198.51.100.7, 203.0.113.5, 127.0.0.1".parse().unwrap());
        let proxy: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let client: SocketAddr = "192.0.2.9:9".parse().unwrap();
        assert_eq!(client_key(proxy, &h, trusted), "203.0.113.5".parse::<IpAddr>().unwrap(), "nearest untrusted hop");
        assert_eq!(client_key(client, &h, trusted), "192.0.2.9".parse::<IpAddr>().unwrap(), "an untrusted peer's header is ignored");
        let v6: SocketAddr = "[2001:db8:1:2:3:4:5:6]:9".parse().unwrap();
        assert_eq!(client_key(v6, &HeaderMap::new(), trusted), "2001:db8:1:2::".parse::<IpAddr>().unwrap());
    }
}
