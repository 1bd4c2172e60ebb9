//! What accounts hold on the XRP Ledger (and Xumm's KYC status), for route conditions: read
//! from each network's endpoints, cached per account and fact, refreshed in the background
//! before it expires. It must never check an account on a network other than its session's
//! (nor on a guessed one), never let concurrent misses for one fact each ask the ledger, and
//! never make the signed-in hot path wait: `now` answers from the cache or says it cannot.

mod condition;
mod rpc;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bigdecimal::BigDecimal;
use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};

pub use condition::{Condition, Currency, Judged, Leaf, parse_amount};

use crate::account::Account;
use crate::config::{ConfigError, LedgerNetworkConfig};
use crate::xumm::client::PlatformClient;

/// How long a KYC status is kept (Xumm's answer, not the ledger's).
const KYC_TTL: Duration = Duration::from_secs(300);
/// After a failed background refresh, the next one waits this long.
const REFRESH_RETRY: Duration = Duration::from_secs(5);
/// The network name KYC results are kept under (they hold on every network).
const XUMM: &str = "XUMM";

/// One thing read from the ledger (or Xumm), for one account or object.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub enum FactKey {
    Lines { account: Account, issuer: Account },
    Nfts { account: Account },
    Root { account: Account },
    Fees,
    MpToken { account: Account, issuance: String },
    Credential { subject: Account, issuer: Account, ctype: String },
    Signers { of: Account },
    Kyc { account: Account },
}

/// A trust line, from the account's side.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Line {
    pub currency: String,
    pub balance: BigDecimal,
    /// The balance as the ledger wrote it (what the upstream header carries).
    pub text: String,
    pub frozen: bool,
}

/// What was read.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub enum Fact {
    Lines(Vec<Line>),
    /// (issuer, taxon) of each NFToken held.
    Nfts(Vec<(String, u32)>),
    /// (drops, owned objects); None: not funded.
    Root(Option<(u64, u64)>),
    /// Reserves in drops: (base, per owned object).
    Fees(u64, u64),
    /// (amount, locked); None: no holding.
    MpToken(Option<(u64, bool)>),
    /// (accepted, expiration since the Ripple epoch); None: none.
    Credential(Option<(bool, Option<u64>)>),
    Signers(Vec<String>),
    Kyc(bool),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    network: Arc<str>,
    fact: FactKey,
}

struct Entry {
    fact: Fact,
    refresh_at: Instant,
    expires: Instant,
    refreshing: AtomicBool,
}

type Fetch = Shared<BoxFuture<'static, Result<Arc<Entry>, String>>>;

/// Results, kept across config reloads (a reload must not send every signed-in user to the
/// ledger at once).
pub struct Cache {
    entries: moka::sync::Cache<Key, Arc<Entry>>,
    inflight: Mutex<HashMap<Key, Fetch>>,
}

impl Cache {
    pub fn new(max_entries: u64) -> Cache {
        Cache { entries: moka::sync::Cache::builder().max_capacity(max_entries).time_to_live(Duration::from_secs(7 * 24 * 3600)).build(), inflight: Mutex::new(HashMap::new()) }
    }
}

struct Network {
    name: Arc<str>,
    endpoints: rpc::Endpoints,
    ttl: Duration,
}

pub struct Ledger {
    networks: Vec<Network>,
    cache: Arc<Cache>,
    platform: Option<Arc<PlatformClient>>,
    /// Redis, when replicas share state: what one replica read, the others use.
    shared: Option<Arc<crate::shared::Shared>>,
}

/// A fact as replicas share it (in Redis, under `ledger:{network}:{key}`).
#[derive(serde::Serialize, serde::Deserialize)]
struct Stored {
    fact: Fact,
    /// Unix milliseconds when it was read from the ledger.
    read_at: u64,
}

/// Every condition of one rule, judged leaf by leaf (for `policy explain`).
pub struct Explained {
    pub leaves: Vec<(String, Judged)>,
    pub overall: Judged,
}

impl Ledger {
    pub fn new(cfg: &std::collections::BTreeMap<String, LedgerNetworkConfig>, cache: Arc<Cache>, platform: Option<Arc<PlatformClient>>, shared: Option<Arc<crate::shared::Shared>>) -> Result<Ledger, ConfigError> {
        let mut networks = Vec::new();
        for (name, n) in cfg {
            let urls = crate::config::Parsed::all(&format!("ledger.{name}.urls"), &n.urls)?;
            let endpoints = rpc::Endpoints::new(urls.into_iter().map(|u| u.0).collect(), n.timeout.get(), crate::oidc::https_client());
            networks.push(Network { name: name.to_ascii_uppercase().into(), endpoints, ttl: n.cache_ttl.get() });
        }
        Ok(Ledger { networks, cache, platform, shared })
    }

    /// The key of each fact `leaf` reads for `account` on `network`, or why it cannot be read
    /// there (an unknown network fails closed).
    fn keys(&self, leaf: &Leaf, account: &Account, network: Option<&str>) -> Result<(Key, Option<Key>), String> {
        let name: Arc<str> = if leaf.is_kyc() {
            XUMM.into()
        } else {
            let n = network.ok_or("the session's network is unknown, so its ledger cannot be read")?;
            self.networks.iter().find(|x| x.name.eq_ignore_ascii_case(n)).map(|x| x.name.clone()).ok_or_else(|| format!("no [ledger.{n}] is configured for the session's network"))?
        };
        let (a, b) = leaf.facts(account);
        Ok((Key { network: name.clone(), fact: a }, b.map(|fact| Key { network: name, fact })))
    }

    /// The judgement from what is cached, or None when a fact is missing or expired (then the
    /// caller waits for `check`, off the hot path). A fact in the last quarter of its life is
    /// refreshed in the background.
    pub fn now(self: &Arc<Self>, cond: &Condition, account: &Account, network: Option<&str>) -> Option<Judged> {
        let now = Instant::now();
        cond.judge_with(&mut |leaf| {
            let (a, b) = match self.keys(leaf, account, network) {
                Ok(k) => k,
                Err(why) => return Some(Judged::Unmet(why)),
            };
            let first = self.cached(a, now)?;
            let second = match b {
                Some(k) => Some(self.cached(k, now)?),
                None => None,
            };
            Some(leaf.judge(account, &first.fact, second.as_ref().map(|e| &e.fact)))
        })
    }

    fn cached(self: &Arc<Self>, key: Key, now: Instant) -> Option<Arc<Entry>> {
        let e = self.cache.entries.get(&key)?;
        if now >= e.expires {
            return None;
        }
        if now >= e.refresh_at && !e.refreshing.swap(true, Ordering::AcqRel) {
            let (me, entry) = (self.clone(), e.clone());
            tokio::spawn(async move {
                if me.fetch_store(key).await.is_err() {
                    tokio::time::sleep(REFRESH_RETRY).await;
                    entry.refreshing.store(false, Ordering::Release);
                }
            });
        }
        Some(e)
    }

    /// The judgement, reading what is not cached (each fact once, however many ask at once).
    pub async fn check(self: &Arc<Self>, cond: &Condition, account: &Account, network: Option<&str>) -> Judged {
        let mut wanted = Vec::new();
        cond.judge_with(&mut |leaf| {
            if let Ok((a, b)) = self.keys(leaf, account, network) {
                wanted.push(a);
                wanted.extend(b);
            }
            Some(Judged::Unknown)
        });
        wanted.dedup();
        let got = futures_util::future::join_all(wanted.iter().map(|k| self.get(k.clone()))).await;
        let found: HashMap<&Key, Arc<Entry>> = wanted.iter().zip(got).filter_map(|(k, r)| Some((k, r.ok()?))).collect();
        cond.judge_with(&mut |leaf| {
            Some(match self.keys(leaf, account, network) {
                Err(why) => Judged::Unmet(why),
                Ok((a, b)) => match (found.get(&a), b.as_ref().map(|k| found.get(k))) {
                    (Some(first), None) => leaf.judge(account, &first.fact, None),
                    (Some(first), Some(Some(second))) => leaf.judge(account, &first.fact, Some(&second.fact)),
                    _ => Judged::Unknown,
                },
            })
        })
        .unwrap_or(Judged::Unknown)
    }

    /// Reads every fact `cond` needs for a user who just signed in, in the background, so their
    /// first request finds them cached.
    pub fn warm(self: &Arc<Self>, conds: Vec<&Arc<Condition>>, account: &Account, network: Option<&str>) {
        for c in conds {
            let (me, c, account, network) = (self.clone(), c.clone(), account.clone(), network.map(String::from));
            tokio::spawn(async move { me.check(&c, &account, network.as_deref()).await });
        }
    }

    /// Each leaf's judgement, read fresh, and the whole condition's (for operators).
    pub async fn explain(self: &Arc<Self>, cond: &Condition, account: &Account, network: Option<&str>) -> Explained {
        let mut leaves = Vec::new();
        for leaf in cond.leaves() {
            let single = Condition::Leaf(Leaf { test: leaf.test.clone(), header: leaf.header.clone() });
            leaves.push((leaf.describe(), self.check(&single, account, network).await));
        }
        Explained { leaves, overall: self.check(cond, account, network).await }
    }

    async fn get(self: &Arc<Self>, key: Key) -> Result<Arc<Entry>, String> {
        if let Some(e) = self.cache.entries.get(&key).filter(|e| Instant::now() < e.expires) {
            return Ok(e);
        }
        let fetch = {
            let mut inflight = self.cache.inflight.lock().unwrap_or_else(|p| p.into_inner());
            inflight
                .entry(key.clone())
                .or_insert_with(|| {
                    let me = self.clone();
                    let k = key.clone();
                    async move { me.fetch_store(k).await }.boxed().shared()
                })
                .clone()
        };
        fetch.await
    }

    /// Reads one fact (from another replica's reading while it is not due for refresh, else
    /// from the ledger) and keeps it.
    async fn fetch_store(self: Arc<Self>, key: Key) -> Result<Arc<Entry>, String> {
        let ttl = self.ttl(&key);
        let (result, age) = match self.shared_read(&key, ttl).await {
            Some((fact, age)) => (Ok(fact), age),
            None => {
                let r = self.fetch(&key).await;
                if let Ok(fact) = &r {
                    self.shared_write(&key, fact, ttl).await;
                }
                (r, Duration::ZERO)
            }
        };
        let out = result.map(|fact| {
            let read = Instant::now().checked_sub(age).unwrap_or_else(Instant::now);
            let e = Arc::new(Entry { fact, refresh_at: read + ttl * 3 / 4, expires: read + ttl, refreshing: AtomicBool::new(false) });
            self.cache.entries.insert(key.clone(), e.clone());
            e
        });
        if let Err(why) = &out {
            tracing::warn!(network = %key.network, reason = %why, "a ledger condition could not be read");
        }
        self.cache.inflight.lock().unwrap_or_else(|p| p.into_inner()).remove(&key);
        out
    }

    /// How long a fact of `key` is used.
    fn ttl(&self, key: &Key) -> Duration {
        match key.fact {
            FactKey::Kyc { .. } => KYC_TTL,
            _ => self.networks.iter().find(|n| n.name == key.network).map_or(KYC_TTL, |n| n.ttl),
        }
    }

    fn shared_key(key: &Key) -> String {
        format!("ledger:{}:{}", key.network, serde_json::to_string(&key.fact).unwrap_or_default())
    }

    /// Another replica's reading of `key` and its age, while it is not due for refresh. A Redis
    /// fault only means asking the ledger.
    async fn shared_read(&self, key: &Key, ttl: Duration) -> Option<(Fact, Duration)> {
        let text = self.shared.as_ref()?.get(&Self::shared_key(key)).await.ok()??;
        let stored: Stored = serde_json::from_str(&text).ok()?;
        let age = Duration::from_millis(unix_ms().saturating_sub(stored.read_at));
        (age < ttl * 3 / 4).then_some((stored.fact, age))
    }

    async fn shared_write(&self, key: &Key, fact: &Fact, ttl: Duration) {
        let Some(shared) = &self.shared else { return };
        let Ok(text) = serde_json::to_string(&Stored { fact: fact.clone(), read_at: unix_ms() }) else { return };
        if let Err(e) = shared.put(&Self::shared_key(key), text, ttl).await {
            tracing::debug!(cause = %e, "a ledger result was not shared");
        }
    }

    async fn fetch(&self, key: &Key) -> Result<Fact, String> {
        if let FactKey::Kyc { account } = &key.fact {
            let p = self.platform.as_ref().ok_or("no [xumm] for KYC")?;
            let v = p.call(http::Method::GET, &format!("kyc-status/{account}"), None).await.map_err(|e| e.to_string())?;
            let approved = v["kycApproved"].as_bool().ok_or("Xumm's kyc-status answer has no kycApproved")?;
            return Ok(Fact::Kyc(approved));
        }
        let n = self.networks.iter().find(|n| n.name == key.network).ok_or("network no longer configured")?;
        let e = &n.endpoints;
        let fact = match &key.fact {
            FactKey::Lines { account, issuer } => e.lines(account.as_str(), issuer.as_str()).await,
            FactKey::Nfts { account } => e.nfts(account.as_str()).await,
            FactKey::Root { account } => e.root(account.as_str()).await,
            FactKey::Fees => e.fees().await,
            FactKey::MpToken { account, issuance } => e.mptoken(account.as_str(), issuance).await,
            FactKey::Credential { subject, issuer, ctype } => e.credential(subject.as_str(), issuer.as_str(), ctype).await,
            FactKey::Signers { of } => e.signers(of.as_str()).await,
            FactKey::Kyc { .. } => unreachable!("answered above"),
        };
        fact.map_err(|e| e.to_string())
    }
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}
