//! "This happens once" claims for payload outcomes: the audit line, the app's callback. It must
//! never let two callers win the same claim, however closely they race (status socket, webhook
//! and reads arrive within milliseconds of each other).
//!
//! A claim is a set-if-absent on a key with a lifetime: here moka's entry API, whose
//! `or_insert` runs for exactly one caller per key; on a shared store the same operation is
//! Redis' `SET key 1 NX PX ttl`, so replicas share the claims unchanged.

use std::time::Duration;

pub struct Claims {
    taken: moka::sync::Cache<String, ()>,
}

impl Claims {
    /// Claims live as long as the payload records they guard.
    pub fn new(ttl: Duration) -> Claims {
        Claims { taken: moka::sync::Cache::builder().max_capacity(2_000_000).time_to_live(ttl).build() }
    }

    /// True for exactly one caller per `what` and `uuid` (until the claim expires).
    pub fn claim(&self, what: &str, uuid: &str) -> bool {
        self.taken.entry(format!("{what}:{uuid}")).or_insert(()).is_fresh()
    }
}
