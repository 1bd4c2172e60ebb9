//! In-memory session store (moka's sync cache: a lookup never yields to the runtime). It must
//! never return an entry past its own expiry.

use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::sync::Cache;
use moka::Expiry;

use super::{Session, SessionStore, StoreError, now};

struct UntilExpiry;

impl Expiry<String, Arc<Session>> for UntilExpiry {
    fn expire_after_create(&self, _: &String, s: &Arc<Session>, _: Instant) -> Option<Duration> {
        Some(Duration::from_secs(s.expires_at.saturating_sub(now())))
    }
}

/// foldhash, not SipHash: keys are server-made random ids, and a lookup only happens for an id
/// that came out of an authentic sealed cookie, so nobody can pick colliding keys.
type Hasher = foldhash::fast::RandomState;

pub struct MemoryStore {
    cache: Cache<String, Arc<Session>, Hasher>,
}

impl MemoryStore {
    pub fn new(max_entries: u64, idle: Duration) -> MemoryStore {
        MemoryStore {
            cache: Cache::builder().max_capacity(max_entries).time_to_idle(idle).expire_after(UntilExpiry).build_with_hasher(Hasher::default()),
        }
    }

    /// The live session under `id`, without yielding (a lookup in memory).
    pub fn get_now(&self, id: &str) -> Option<Arc<Session>> {
        crate::metrics::session_lookups("memory").count(self.cache.get(id).filter(|s| !s.expired()))
    }

    pub fn held(&self) -> u64 {
        self.cache.run_pending_tasks();
        self.cache.entry_count()
    }
}

impl MemoryStore {
    /// Ends every session of `account`; how many there were.
    pub fn revoke_account(&self, account: &str) -> usize {
        let ids: Vec<Arc<String>> = self.cache.iter().filter(|(_, s)| s.account.as_str() == account).map(|(k, _)| k).collect();
        for id in &ids {
            self.cache.invalidate(id.as_str());
        }
        ids.len()
    }
}

impl SessionStore for MemoryStore {
    async fn get(&self, id: &str) -> Result<Option<Arc<Session>>, StoreError> {
        Ok(self.get_now(id))
    }
    async fn put(&self, id: String, session: Arc<Session>) -> Result<(), StoreError> {
        self.cache.insert(id, session);
        Ok(())
    }
    async fn delete(&self, id: &str) -> Result<(), StoreError> {
        self.cache.invalidate(id);
        Ok(())
    }
}
