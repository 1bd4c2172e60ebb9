//! Bearer JWTs from native apps and SPAs. It must never accept `none` or HMAC with provider keys,
//! never skip a claim check on a cache hit (entries live only until the token's own `exp`), and
//! never log or echo a token.

use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::Algorithm;
use moka::Expiry;
use sha2::{Digest, Sha256};

use crate::config::{BearerConfig, ConfigError};
use crate::oidc::{OidcError, Provider, TokenError};
use crate::session::{Session, Source, now};

struct UntilExp;

impl Expiry<[u8; 32], Arc<Session>> for UntilExp {
    fn expire_after_create(&self, _: &[u8; 32], s: &Arc<Session>, _: Instant) -> Option<Duration> {
        Some(Duration::from_secs(s.expires_at.saturating_sub(now())))
    }
}

pub struct BearerVerifier {
    audiences: Vec<String>,
    algorithms: Vec<Algorithm>,
    skew: u64,
    cache: moka::sync::Cache<[u8; 32], Arc<Session>>,
}

#[derive(Debug, thiserror::Error)]
pub enum BearerError {
    #[error("{0}")]
    Invalid(TokenError),
    #[error("identity provider not ready")]
    NotReady,
}

impl BearerError {
    /// Why, as the verification counter's `reason` label.
    pub fn label(&self) -> &'static str {
        match self {
            BearerError::Invalid(t) => t.label(),
            BearerError::NotReady => "provider_not_ready",
        }
    }
}

impl BearerVerifier {
    pub fn new(cfg: &BearerConfig, client_id: &str) -> Result<BearerVerifier, ConfigError> {
        let algorithms = cfg
            .algorithms
            .iter()
            .enumerate()
            .map(|(i, a)| a.parse::<Algorithm>().map_err(|_| crate::config::err(format!("bearer.algorithms[{i}]"), format!("unknown algorithm {a:?}"))))
            .collect::<Result<_, _>>()?;
        let mut audiences = vec![client_id.to_string()];
        audiences.extend(cfg.audiences.iter().cloned());
        Ok(BearerVerifier {
            audiences,
            algorithms,
            skew: cfg.max_skew.get().as_secs(),
            cache: moka::sync::Cache::builder().max_capacity(cfg.cache_entries).expire_after(UntilExp).build(),
        })
    }

    /// Verifies (or finds in the cache) a token; a repeated token costs a hash and a lookup.
    pub async fn verify(&self, provider: &Provider, token: &str) -> Result<Arc<Session>, BearerError> {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(s) = self.cache.get(&key) {
            if !s.expired() {
                crate::metrics::bearer_verification(true, "cached");
                return Ok(s);
            }
        }
        let v = provider
            .verify_with_skew(token, &self.audiences, &self.algorithms, None, self.skew)
            .await
            .map_err(|e| match e {
                OidcError::Token(t) => BearerError::Invalid(t),
                OidcError::NotReady => BearerError::NotReady,
                _ => BearerError::Invalid(TokenError::Signature),
            })
            .inspect_err(|e| crate::metrics::bearer_verification(false, e.label()))?;
        crate::metrics::bearer_verification(true, "ok");
        let s = Arc::new(Session::new(v.account, v.network, v.user_token, Source::Bearer, v.expires_at));
        self.cache.insert(key, s.clone());
        Ok(s)
    }

    pub fn cached(&self) -> u64 {
        self.cache.run_pending_tasks();
        self.cache.entry_count()
    }
}

/// The refusal for a token that does not verify (RFC 6750 `invalid_token`, rendered by
/// `GatewayError`).
pub fn refused(e: &BearerError) -> crate::error::GatewayError {
    match e {
        BearerError::Invalid(t) => crate::error::GatewayError::InvalidToken(t.to_string()),
        BearerError::NotReady => crate::error::GatewayError::ProviderNotReady,
    }
}
