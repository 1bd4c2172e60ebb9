//! Authentication state and the per-request check. It must never make a network call on the
//! signed-in hot path (open the cookie, one cache lookup), and never treat an unopenable cookie
//! as anything but "no session".

use std::sync::Arc;
use std::time::Duration;


use crate::config::{Config, ConfigError};
use crate::error::GatewayError;
use crate::headers::{Headers, bearer_token};
use crate::oidc::Provider;
use crate::session::cookie::Sealer;
use crate::session::memory::MemoryStore;
use crate::session::{Session, SessionStore, Store};

/// Whom a request's credentials name.
pub enum Found {
    Session(Arc<Session>),
    /// Nobody. `had_cookie`: a session cookie came that opens no live session (new keys,
    /// tampered, ended), which the answer clears.
    Nobody { had_cookie: bool },
    /// The store did not answer, or the Bearer token is invalid.
    Failed(GatewayError),
}

pub struct Auth {
    pub provider: Arc<Provider>,
    pub sealer: Sealer,
    pub store: Store,
    pub cookie_name: String,
    /// `session.cookie_domain`: the session cookie's `Domain` (None: this host only).
    pub cookie_domain: Option<String>,
    /// Pending-login cookies are named `{login_prefix}{state}`.
    pub login_prefix: String,
    pub ttl: Duration,
    /// Where a callback's state is claimed once (replay defence across every replica, with
    /// Redis), beside the broker's shared state.
    pub shared: Arc<crate::shared::Shared>,
    pub redirect_uri: String,
    /// Sign-in starts and callbacks per client address; None when switched off.
    pub sign_in_limit: Option<crate::ratelimit::PerClient>,
    /// None when `[bearer] enabled = false`.
    pub bearer: Option<crate::bearer::BearerVerifier>,
    /// xApp JWTs as Bearer tokens, when `[xapp] bearer = true`.
    pub xapp_jwt: Option<crate::xapp::XappJwt>,
    /// Tells this instance's entries apart in per-thread memos (tests run several gateways).
    instance: usize,
}

impl Auth {
    /// Builds the auth state when `[provider]` is configured.
    pub fn from_config(config: &Config, server: &crate::config::Server, shared: Arc<crate::shared::Shared>) -> Result<Option<Auth>, ConfigError> {
        let Some(p) = &config.provider else { return Ok(None) };
        let session = config.session.clone().unwrap_or_else(|| toml::from_str("").expect("defaults"));
        use base64::Engine;
        let secrets: Vec<Vec<u8>> = session
            .cookie_secrets
            .iter()
            .enumerate()
            .map(|(i, s)| base64::engine::general_purpose::STANDARD.decode(s.trim()).map_err(|_| crate::config::err(format!("session.cookie_secrets[{i}]"), "is not valid base64")))
            .collect::<Result<_, _>>()?;
        let secure = !(server.public_url.scheme() == "http"
            && server.public_url.host().is_some_and(|h| match h {
                url::Host::Domain(d) => d == "localhost",
                url::Host::Ipv4(ip) => ip.is_loopback(),
                url::Host::Ipv6(ip) => ip.is_loopback(),
            }));
        let idle = session.idle_timeout.get();
        let base = server.public_url.as_str().trim_end_matches('/');
        Ok(Some(Auth {
            provider: Arc::new(Provider::new(p.clone())),
            sealer: Sealer::new(&secrets, secure),
            store: match session.store.get() {
                crate::config::StoreKind::Redis => Store::Redis(
                    crate::session::redis::RedisStore::new(
                        &crate::session::redis::RedisSettings {
                            target: session.redis_target(),
                            prefix: session.redis_key_prefix.clone(),
                            timeout: session.redis_timeout.get(),
                            l1_ttl: session.l1_ttl.get(),
                            idle,
                            l1_max_entries: session.l1_max_entries,
                        },
                        &secrets,
                    )
                    .map_err(|e| crate::config::err("session.redis_url", e))?,
                ),
                _ => Store::Memory(MemoryStore::new(session.max_entries, idle)),
            },
            login_prefix: format!("{}_login_", session.cookie_name),
            cookie_domain: session.cookie_domain(),
            cookie_name: session.cookie_name,
            ttl: session.ttl.get(),
            shared,
            redirect_uri: format!("{base}{}/callback", server.prefix),
            sign_in_limit: (config.server.sign_in_per_minute > 0).then(|| crate::ratelimit::PerClient::new(config.server.sign_in_per_minute)),
            xapp_jwt: match (&config.xapp, &config.xumm) {
                (Some(x), Some(k)) if x.enabled && x.accept_jwt => Some(crate::xapp::XappJwt::new(&k.api_key, &k.api_secret, x.jwt_issuer.clone(), config.bearer.max_skew.get().as_secs())),
                _ => None,
            },
            // OAuth2 JWTs exist only with an OAuth2 provider.
            bearer: if config.bearer.enabled && p.kind.get() == crate::config::ProviderKind::Oauth2 { Some(crate::bearer::BearerVerifier::new(&config.bearer, &p.client_id)?) } else { None },
            instance: {
                static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
                NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            },
        }))
    }

    /// Stores `session` under a fresh id (a session id planted before sign-in is never
    /// promoted), ends the session the request's cookie named, and returns the Set-Cookie value
    /// of the new one: the end of every sign-in (OAuth2 callback, xApp launch).
    pub async fn open_session<H: Headers + ?Sized>(&self, mut session: Session, headers: &H) -> Result<String, crate::session::StoreError> {
        let old = self.session_id(headers);
        let id = crate::session::new_id();
        session.id = Some(id.clone());
        let expires_at = session.expires_at;
        self.store.put(id.clone(), Arc::new(session)).await?;
        if let Some(old) = old {
            let _ = self.store.delete(&old).await;
        }
        let sealed = self.sealer.seal(&self.cookie_name, &id);
        Ok(self.sealer.cookie(&self.cookie_name, sealed, "/", Some(expires_at.saturating_sub(crate::session::now()) as i64), self.cookie_domain.as_deref()))
    }

    /// The Set-Cookie value that ends the session cookie (with its `Domain`, when it has one).
    pub fn clear_session_cookie(&self) -> String {
        self.sealer.cookie(&self.cookie_name, String::new(), "/", Some(0), self.cookie_domain.as_deref())
    }

    /// The session id in the request's session cookie, if one opens (the first that does).
    pub fn session_id<H: Headers + ?Sized>(&self, headers: &H) -> Option<Arc<str>> {
        let name = self.cookie_name.as_bytes();
        headers.all("cookie").flat_map(crate::session::cookie::pairs).filter(|(n, _)| *n == name).find_map(|(_, v)| self.open_session_cookie(std::str::from_utf8(v).ok()?))
    }

    /// Who makes the request: the session cookie first, then a Bearer JWT.
    pub async fn identify<H: Headers + ?Sized>(&self, headers: &H) -> Found {
        if let Some(id) = self.session_id(headers) {
            match self.store.get(&id).await {
                Ok(Some(s)) => return Found::Session(s),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(cause = %e, "session store unavailable");
                    return Found::Failed(GatewayError::StoreUnavailable);
                }
            }
        }
        if let (Some(xapp), Some(token)) = (&self.xapp_jwt, bearer_token(headers)) {
            if crate::xapp::XappJwt::claims_to_be(token) {
                return match xapp.verify(token) {
                    Ok(s) => Found::Session(Arc::new(s)),
                    Err(e) => Found::Failed(GatewayError::InvalidToken(e.to_string())),
                };
            }
        }
        if let (Some(verifier), Some(token)) = (&self.bearer, bearer_token(headers)) {
            return match verifier.verify(&self.provider, token).await {
                Ok(s) => Found::Session(s),
                Err(e) => Found::Failed(crate::bearer::refused(&e)),
            };
        }
        Found::Nobody { had_cookie: self.has_session_cookie(headers) }
    }

    /// Whether a session cookie came at all (opening or not).
    pub fn has_session_cookie<H: Headers + ?Sized>(&self, headers: &H) -> bool {
        headers.all("cookie").flat_map(crate::session::cookie::pairs).any(|(n, _)| n == self.cookie_name.as_bytes())
    }

    /// Opens a session cookie value, remembering (per thread) what a value opened to: the same
    /// visitor sends the same bytes on every request, and opening them again is AES-GCM, base64
    /// and a handful of allocations (~1 us). Only values that opened are remembered, so junk
    /// cannot fill the memo; the session store still decides whether the id is alive.
    pub(crate) fn open_session_cookie(&self, sealed: &str) -> Option<Arc<str>> {
        const MAX: usize = 4096;
        let hit = crate::worker::with(|w| w.opened.borrow().get(sealed).filter(|(owner, _)| *owner == self.instance).map(|(_, id)| id.clone()));
        if hit.is_some() {
            return hit;
        }
        let id: Arc<str> = self.sealer.open(&self.cookie_name, sealed)?.into();
        crate::worker::with(|w| {
            let mut m = w.opened.borrow_mut();
            if m.len() >= MAX {
                m.clear();
            }
            m.insert(sealed.into(), (self.instance, id.clone()));
        });
        Some(id)
    }
}
