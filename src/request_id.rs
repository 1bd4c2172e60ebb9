//! The request id: taken from a trusted proxy's `X-Request-Id` or made here, sent to the
//! upstream, returned to the client, written in the request's log lines and error pages. It must
//! never take an id from a peer that is not a trusted proxy (a client could otherwise make its
//! requests look like someone else's in the logs), and never carry a byte that is not safe in a
//! header, a log line and an HTML page.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// The header, as the upstream and the client see it.
pub const HEADER: http::HeaderName = http::HeaderName::from_static("x-request-id");

/// Longest id taken from a proxy (a UUID is 36, nginx's `$request_id` 32); longer ones are
/// replaced with one of ours.
const MAX: usize = 64;

/// One request's id, kept inline (no allocation per request).
#[derive(Clone, Copy)]
pub struct RequestId {
    bytes: [u8; MAX],
    len: u8,
}

impl RequestId {
    /// A new id: 32 hex digits, a random number drawn once per process followed by a counter,
    /// so ids of replicas and restarts do not collide and one process never repeats one.
    pub fn generate() -> RequestId {
        static PROCESS: OnceLock<u64> = OnceLock::new();
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let process = *PROCESS.get_or_init(rand::random::<u64>);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let mut id = RequestId { bytes: [0; MAX], len: 32 };
        let hex = |v: u64, out: &mut [u8]| {
            for (i, b) in out.iter_mut().enumerate() {
                *b = b"0123456789abcdef"[((v >> (60 - 4 * i)) & 0xf) as usize];
            }
        };
        hex(process, &mut id.bytes[..16]);
        hex(n, &mut id.bytes[16..32]);
        id
    }

    /// A proxy's id, when it is one we can carry: 1 to 64 characters of letters, digits and
    /// `-_.:+/=@`.
    pub fn parse(value: &[u8]) -> Option<RequestId> {
        if value.is_empty() || value.len() > MAX || !value.iter().all(|b| b.is_ascii_alphanumeric() || b"-_.:+/=@".contains(b)) {
            return None;
        }
        let mut id = RequestId { bytes: [0; MAX], len: value.len() as u8 };
        id.bytes[..value.len()].copy_from_slice(value);
        Some(id)
    }

    /// The id for a request: a trusted peer's (the first valid `X-Request-Id` it sent), else a
    /// new one.
    pub fn of(trusted: bool, sent: Option<&[u8]>) -> RequestId {
        sent.filter(|_| trusted).and_then(RequestId::parse).unwrap_or_else(RequestId::generate)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII is ever stored (see `generate` and `parse`).
        std::str::from_utf8(self.as_bytes()).unwrap_or("-")
    }

    pub fn header_value(&self) -> http::HeaderValue {
        http::HeaderValue::from_bytes(self.as_bytes()).unwrap_or(http::HeaderValue::from_static("-"))
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Debug for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

tokio::task_local! {
    /// The request being answered: its id (for the pages that show it) and its client's address
    /// (for the audit log).
    static CURRENT: (RequestId, Option<std::net::IpAddr>);
}

/// Runs `f` (which renders a response) as part of request `id`.
pub fn rendering<R>(id: RequestId, f: impl FnOnce() -> R) -> R {
    CURRENT.sync_scope((id, None), f)
}

/// Runs a request's future as part of request `id` from `client`.
pub async fn within<F: std::future::Future>(id: RequestId, client: std::net::IpAddr, f: F) -> F::Output {
    CURRENT.scope((id, Some(client)), f).await
}

/// The id of the request being answered, if any.
pub fn current() -> Option<RequestId> {
    CURRENT.try_with(|c| c.0).ok()
}

/// The address of the client whose request is being answered (behind trusted proxies, the one
/// they name), if any.
pub fn client() -> Option<std::net::IpAddr> {
    CURRENT.try_with(|c| c.1).ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_differ_and_look_alike() {
        let (a, b) = (RequestId::generate(), RequestId::generate());
        assert_ne!(a.as_str(), b.as_str());
        assert_eq!(a.as_str().len(), 32);
        assert_eq!(a.as_str()[..16], b.as_str()[..16], "one process prefix");
        assert!(a.as_str().bytes().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn only_a_trusted_peer_names_the_id_and_only_a_safe_one() {
        assert_eq!(RequestId::of(true, Some(b"abc-123")).as_str(), "abc-123");
        assert_ne!(RequestId::of(false, Some(b"abc-123")).as_str(), "abc-123");
        for bad in [&b""[..], b"a b", b"<script>", b"x\"y", &[b'a'; 65][..], "é".as_bytes()] {
            assert!(RequestId::parse(bad).is_none(), "{bad:?}");
        }
        assert!(RequestId::parse(&[b'a'; 64]).is_some());
    }
}
